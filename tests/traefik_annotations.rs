//! Traefik Ingress annotations are read as Traefik's Ingress provider reads them (paerser:
//! field names case-insensitive after the fixed prefix, booleans with Go's
//! `strconv.ParseBool`), and every `router.*` annotation the dialect does not model is
//! reported instead of ignored (fail closed).

mod common;

use std::collections::BTreeSet;

use common::traefik::tls_option;
use common::*;

const ROUTER_TLS: &str = "traefik.ingress.kubernetes.io/router.tls";

/// The split-host bank on Traefik Ingresses, with the MTLS authorisation server's Ingress
/// replaced by `auth`.
fn bank(auth: Ingress) -> Vec<String> {
    let public = Ingress::new("authorization-server-public", PUBLIC_HOST)
        .exact("/authorize")
        .exact("/jwks")
        .exact("/.well-known/openid-configuration");
    let apis = Ingress::new("open-banking-apis", MTLS_API_HOST)
        .annotations(common::traefik::tls_options("mtls-required"))
        .prefix(&format!("{API_BASE}/"));
    vec![
        Profile::split_host().traefik().yaml(),
        ca_secret(),
        tls_option("mtls-required", "RequireAndVerifyClientCert"),
        public.yaml(),
        apis.yaml(),
        auth.yaml(),
    ]
}

fn auth() -> Ingress {
    Ingress::new("authorization-server-mtls", MTLS_AUTH_HOST)
        .annotations(common::traefik::tls_options("mtls-required"))
        .prefix("/")
}

#[test]
fn router_annotations_as_traefik_decodes_them() {
    let options = "open-banking-mtls-required@kubernetescrd";
    let cases: &[(&str, Ingress, &[&str])] = &[
        ("spec.tls and the options annotation", auth(), &[]),
        (
            "router.tls: \"True\" is true for strconv.ParseBool",
            auth().without_tls().annotation(ROUTER_TLS, "True"),
            &[],
        ),
        (
            "router.tls: \"1\" is true for strconv.ParseBool",
            auth().without_tls().annotation(ROUTER_TLS, "1"),
            &[],
        ),
        (
            "router.tls: \"yes\" is rejected by Traefik: reported, and plain HTTP",
            auth().without_tls().annotation(ROUTER_TLS, "yes"),
            &["UnmodelledSetting", "MtlsNotRequired", "TlsMissing"],
        ),
        (
            "router.tls: \"false\" leaves the router plain HTTP",
            auth().without_tls().annotation(ROUTER_TLS, "false"),
            &["MtlsNotRequired", "TlsMissing"],
        ),
        (
            "field names after the prefix are case-insensitive",
            Ingress::new("authorization-server-mtls", MTLS_AUTH_HOST)
                .annotation("traefik.ingress.kubernetes.io/router.TLS.Options", options)
                .prefix("/"),
            &[],
        ),
        (
            "router.entrypoints does not change who reaches the route",
            auth().annotation(
                "traefik.ingress.kubernetes.io/router.entrypoints",
                "websecure",
            ),
            &[],
        ),
        (
            "ACME domains do not change who reaches the route",
            auth().annotation(
                "traefik.ingress.kubernetes.io/router.tls.domains.0.main",
                "bank.example",
            ),
            &[],
        ),
        (
            "an unknown router annotation is reported",
            auth().annotation(
                "traefik.ingress.kubernetes.io/router.rule",
                "PathPrefix(`/`)",
            ),
            &["UnmodelledSetting"],
        ),
        (
            "a misspelt options annotation is reported (and the default options apply)",
            Ingress::new("authorization-server-mtls", MTLS_AUTH_HOST)
                .annotation("traefik.ingress.kubernetes.io/router.tls.option", options)
                .prefix("/"),
            &["UnmodelledSetting", "MtlsNotRequired"],
        ),
    ];
    for (desc, ingress, codes) in cases {
        let verdict = evaluate_complete(&bank(ingress.clone()));
        let got: BTreeSet<String> = verdict
            .violations
            .iter()
            .map(|v| v.code.to_string())
            .collect();
        let want: BTreeSet<String> = codes.iter().map(|c| c.to_string()).collect();
        assert_eq!(got, want, "{desc}:\n{}", describe(&verdict));
        for v in &verdict.violations {
            if v.code.to_string() == "UnmodelledSetting" {
                assert_eq!(
                    ingress_of(v).as_deref(),
                    Some("open-banking/authorization-server-mtls"),
                    "{desc}"
                );
            }
        }
    }
}
