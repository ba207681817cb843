//! Traefik Ingress annotations are read as Traefik's Ingress provider reads them (paerser:
//! field names case-insensitive after the fixed prefix; `router.tls` is an `allowEmpty`
//! section, enabled by an empty value or `true` in any case and disabled by anything else),
//! and every `router.*` annotation the dialect does not model is reported instead of ignored
//! (fail closed).

mod common;

use std::collections::BTreeSet;

use common::traefik::tls_option;
use common::*;

const ROUTER_TLS: &str = "traefik.ingress.kubernetes.io/router.tls";

/// The split-host bank on Traefik Ingresses, with the MTLS authorisation server's Ingress
/// replaced by `auth`.
fn bank(auth: Ingress) -> Vec<String> {
    let public = Ingress::new("authorization-server-public", PUBLIC_HOST)
        .annotation(ROUTER_TLS, "true")
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
            "spec.tls without any router.tls* annotation: Traefik reads spec.tls only for certificates, the router is plain HTTP",
            Ingress::new("authorization-server-mtls", MTLS_AUTH_HOST).prefix("/"),
            &["MtlsNotRequired", "TlsMissing"],
        ),
        (
            "router.tls: \"True\": paerser enables the TLS section for true in any case",
            auth().without_tls().annotation(ROUTER_TLS, "True"),
            &[],
        ),
        (
            "router.tls: \"1\" is not true for paerser: plain HTTP (not strconv.ParseBool)",
            auth().without_tls().annotation(ROUTER_TLS, "1"),
            &["MtlsNotRequired", "TlsMissing"],
        ),
        (
            "router.tls: \"1\" beside spec.tls still makes the router plain HTTP",
            auth().annotation(ROUTER_TLS, "1"),
            &["MtlsNotRequired", "TlsMissing"],
        ),
        (
            "router.tls: \"yes\" disables the TLS section: plain HTTP",
            auth().without_tls().annotation(ROUTER_TLS, "yes"),
            &["MtlsNotRequired", "TlsMissing"],
        ),
        (
            "router.tls: \"false\" leaves the router plain HTTP",
            auth().without_tls().annotation(ROUTER_TLS, "false"),
            &["MtlsNotRequired", "TlsMissing"],
        ),
        (
            "router.tls.options alone makes the router TLS (the section has a child)",
            auth().without_tls(),
            &[],
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

/// `router.tls` spellings: quoted YAML words, near-misses of `true`, and short arbitrary
/// strings.
fn router_tls_value() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let known = prop::sample::select(vec![
        "", "true", "True", "TRUE", "tRuE", "1", "t", "T", "yes", "on", "y", "false", "False", "0",
        "f", " true", "true ", "true\n", "\ttrue", "truee", "tru",
    ])
    .prop_map(str::to_string);
    prop_oneof![known, "[ a-zA-Z01_\\n]{0,6}"]
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config { cases: 64, ..Default::default() })]

    /// router.tls V on the MTLS authorisation server's Ingress (which names the enforcing
    /// TLS options), with and without a spec.tls entry: Traefik's routers are TLS, and the
    /// host compliant, exactly when paerser enables the section (V empty or `true` in any
    /// case); any other value makes plain-HTTP routers, which must never be admitted.
    #[test]
    fn router_tls_is_never_admitted_plain(value in router_tls_value(), spec_tls in proptest::bool::ANY) {
        let ingress = if spec_tls { auth() } else { auth().without_tls() };
        let verdict = evaluate_complete(&bank(ingress.annotation(ROUTER_TLS, &value)));
        let enabled = value.is_empty() || value.eq_ignore_ascii_case("true");
        proptest::prop_assert_eq!(
            verdict.compliant,
            enabled,
            "{:?} (spec.tls: {}): {}",
            value,
            spec_tls,
            describe(&verdict)
        );
    }
}
