//! The ingress controller's own ConfigMap (`spec.controllerConfigMap`, issue 9): one case
//! per key rule of the ingress-nginx dialect (src/dialect/nginx/config_map.rs) and of the
//! haproxy-ingress global ConfigMap (src/dialect/haproxy.rs), on the bank's split-host
//! layout with the controller's ConfigMap as its Helm chart names it.

mod common;

use common::*;
use mtls_gate::engine::Verdict;
use mtls_gate::violation::ViolationCode::{self, *};

const CONTROLLER_NS: &str = "ingress-nginx";
const CONTROLLER_CM: &str = "ingress-nginx-controller";
const LABEL: (&str, &str) = ("mtls-gate.io/controller-config", "true");
const SSL_REDIRECT: &str = "nginx.ingress.kubernetes.io/ssl-redirect";
const FORCE_SSL_REDIRECT: &str = "nginx.ingress.kubernetes.io/force-ssl-redirect";

fn nginx_profile(named: bool) -> String {
    let p = Profile::split_host();
    if named {
        p.controller_config_map(CONTROLLER_NS, CONTROLLER_CM).yaml()
    } else {
        p.yaml()
    }
}

fn haproxy_profile() -> String {
    let mut p =
        Profile::split_host().controller_config_map("ingress-controller", "haproxy-ingress");
    p.controller = "haproxy-ingress".into();
    p.yaml()
}

/// The public authorisation host's Ingress: TLS endpoints, no client certificate.
fn public_ingress() -> String {
    Ingress::new("authorization-server-public", PUBLIC_HOST)
        .exact("/authorize")
        .exact("/jwks")
        .exact("/.well-known/openid-configuration")
        .yaml()
}

fn nginx_layout(api_annotations: &[(&str, &str)]) -> Vec<String> {
    let mut api = Ingress::new("open-banking-apis", MTLS_API_HOST)
        .annotations(nginx::client_auth("on"))
        .prefix(API_BASE);
    for (k, v) in api_annotations {
        api = api.annotation(k, v);
    }
    vec![
        ca_secret(),
        public_ingress(),
        Ingress::new("authorization-server-mtls", MTLS_AUTH_HOST)
            .annotations(nginx::client_auth("on"))
            .prefix("/")
            .yaml(),
        api.yaml(),
    ]
}

fn haproxy_layout() -> Vec<String> {
    vec![
        ca_secret(),
        public_ingress(),
        Ingress::new("authorization-server-mtls", MTLS_AUTH_HOST)
            .prefix("/")
            .annotations(haproxy::client_auth("on"))
            .yaml(),
        Ingress::new("open-banking-apis", MTLS_API_HOST)
            .prefix(&format!("{API_BASE}/"))
            .annotations(haproxy::client_auth("on"))
            .yaml(),
    ]
}

fn nginx_config(data: &[(&str, &str)]) -> String {
    config_map(CONTROLLER_NS, CONTROLLER_CM, &[LABEL], data)
}

enum Expect {
    Compliant,
    /// Some violation with this code whose message contains every string.
    Violation(ViolationCode, &'static [&'static str]),
    /// As `Violation`, and no endpoint is reported exposed (the finding alone).
    OnlyFinding(ViolationCode, &'static [&'static str]),
}

struct Case {
    name: &'static str,
    docs: Vec<String>,
    expect: Expect,
}

fn nginx_case(
    name: &'static str,
    named: bool,
    config: Option<String>,
    api_annotations: &[(&str, &str)],
    expect: Expect,
) -> Case {
    let mut docs = vec![nginx_profile(named)];
    docs.extend(config);
    docs.extend(nginx_layout(api_annotations));
    Case { name, docs, expect }
}

fn exposed(verdict: &Verdict) -> Vec<&str> {
    let mut out = endpoints_with(verdict, MtlsNotRequired);
    out.extend(endpoints_with(verdict, TlsMissing));
    out
}

fn check(case: &Case) {
    let verdict = evaluate_complete(&case.docs);
    match &case.expect {
        Expect::Compliant => assert!(
            verdict.compliant,
            "{}: expected compliant, got:\n{}",
            case.name,
            describe(&verdict)
        ),
        Expect::Violation(code, says) | Expect::OnlyFinding(code, says) => {
            assert!(!verdict.compliant, "{}: expected a violation", case.name);
            let found = with_code(&verdict, *code)
                .into_iter()
                .any(|v| says.iter().all(|s| v.message.contains(s)));
            assert!(
                found,
                "{}: no {code} saying {says:?} in:\n{}",
                case.name,
                verdict
                    .violations
                    .iter()
                    .map(|v| format!("{} {}", v.code, v.message))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            if matches!(case.expect, Expect::OnlyFinding(..)) {
                assert!(
                    exposed(&verdict).is_empty(),
                    "{}: endpoints reported exposed:\n{}",
                    case.name,
                    describe(&verdict)
                );
            }
        }
    }
}

#[test]
fn ingress_nginx_controller_configmap_rules() {
    let mut cases = vec![
        nginx_case(
            "no ConfigMap named: the controller's defaults are assumed",
            false,
            None,
            &[],
            Expect::Compliant,
        ),
        nginx_case(
            "a labelled ConfigMap with no relevant key",
            true,
            Some(nginx_config(&[
                ("proxy-body-size", "8m"),
                ("allow-snippet-annotations", "false"),
                ("ssl-protocols", "TLSv1.2 TLSv1.3"),
            ])),
            &[],
            Expect::Compliant,
        ),
        nginx_case(
            "ssl-redirect true, as the default",
            true,
            Some(nginx_config(&[("ssl-redirect", "true")])),
            &[],
            Expect::Compliant,
        ),
        nginx_case(
            "ssl-redirect false serves the APIs in clear text on port 80",
            true,
            Some(nginx_config(&[("ssl-redirect", "false")])),
            &[],
            Expect::Violation(
                MtlsNotRequired,
                &["ssl-redirect \"false\"", "clear text on port 80"],
            ),
        ),
        nginx_case(
            "an empty ssl-redirect is false (mapstructure's weak decoding)",
            true,
            Some(nginx_config(&[("ssl-redirect", "")])),
            &[],
            Expect::Violation(MtlsNotRequired, &["clear text on port 80"]),
        ),
        nginx_case(
            "ssl-redirect false, but the Ingress sets ssl-redirect true",
            true,
            Some(nginx_config(&[("ssl-redirect", "false")])),
            &[(SSL_REDIRECT, "true")],
            // The other two hosts' Ingresses still follow the ConfigMap.
            Expect::Violation(MtlsNotRequired, &["authorization-server-mtls"]),
        ),
        nginx_case(
            "an unreadable ssl-redirect keeps the default and is reported",
            true,
            Some(nginx_config(&[("ssl-redirect", "yes")])),
            &[],
            Expect::OnlyFinding(
                UnmodelledSetting,
                &["ssl-redirect: \"yes\"", "keeps the default"],
            ),
        ),
        nginx_case(
            "use-forwarded-headers true lets a forged X-Forwarded-Proto skip the redirect",
            true,
            Some(nginx_config(&[("use-forwarded-headers", "true")])),
            &[(SSL_REDIRECT, "true"), (FORCE_SSL_REDIRECT, "true")],
            Expect::Violation(
                MtlsNotRequired,
                &["use-forwarded-headers", "X-Forwarded-Proto"],
            ),
        ),
        nginx_case(
            "use-forwarded-headers false, as the default",
            true,
            Some(nginx_config(&[("use-forwarded-headers", "False")])),
            &[],
            Expect::Compliant,
        ),
        nginx_case(
            "no-tls-redirect-locations at its default",
            true,
            Some(nginx_config(&[(
                "no-tls-redirect-locations",
                "/.well-known/acme-challenge",
            )])),
            &[],
            Expect::Compliant,
        ),
        nginx_case(
            "no-tls-redirect-locations widened",
            true,
            Some(nginx_config(&[(
                "no-tls-redirect-locations",
                "/.well-known/acme-challenge,/open-banking-nz",
            )])),
            &[],
            Expect::OnlyFinding(UnmodelledSetting, &["no-tls-redirect-locations"]),
        ),
        nginx_case(
            "an empty snippet is nothing",
            true,
            Some(nginx_config(&[("server-snippet", "  ")])),
            &[],
            Expect::Compliant,
        ),
        nginx_case(
            "the ConfigMap named does not exist",
            true,
            None,
            &[],
            Expect::OnlyFinding(
                UnmodelledSetting,
                &["ingress-nginx/ingress-nginx-controller", "is not found"],
            ),
        ),
        nginx_case(
            "the ConfigMap named lacks the label the webhook selects on",
            true,
            Some(config_map(CONTROLLER_NS, CONTROLLER_CM, &[], &[])),
            &[],
            Expect::OnlyFinding(
                UnmodelledSetting,
                &["mtls-gate.io/controller-config", "kubectl label"],
            ),
        ),
        nginx_case(
            "another ConfigMap of the same name elsewhere is not the controller's",
            true,
            Some(config_map("default", CONTROLLER_CM, &[LABEL], &[])),
            &[],
            Expect::OnlyFinding(UnmodelledSetting, &["is not found"]),
        ),
    ];
    const SNIPPETS: [&[&str]; 4] = [
        &["main-snippet"],
        &["http-snippet"],
        &["server-snippet"],
        &["location-snippet"],
    ];
    for says in SNIPPETS {
        cases.push(nginx_case(
            "a snippet key is raw nginx configuration",
            true,
            Some(nginx_config(&[(says[0], "ssl_verify_client off;")])),
            &[],
            Expect::OnlyFinding(UnmodelledSetting, says),
        ));
    }
    for value in ["0", "f", "F", "FALSE", "false", "False"] {
        cases.push(nginx_case(
            "ssl-redirect false in any Go spelling",
            true,
            Some(nginx_config(&[("ssl-redirect", value)])),
            &[],
            Expect::Violation(MtlsNotRequired, &["clear text on port 80"]),
        ));
    }
    for case in &cases {
        check(case);
    }
}

#[test]
fn haproxy_ingress_global_configmap_rules() {
    let config =
        |data: &[(&str, &str)]| config_map("ingress-controller", "haproxy-ingress", &[LABEL], data);
    let case = |name: &'static str, data: &[(&str, &str)], expect: Expect| {
        let mut docs = vec![haproxy_profile(), config(data)];
        docs.extend(haproxy_layout());
        Case { name, docs, expect }
    };
    let cases = [
        case(
            "no relevant key",
            &[
                ("syslog-endpoint", "127.0.0.1:514"),
                ("timeout-connect", "5s"),
                ("nbthread", "2"),
            ],
            Expect::Compliant,
        ),
        case(
            "ssl-redirect true, the default",
            &[("ssl-redirect", "true")],
            Expect::Compliant,
        ),
        case(
            "ssl-redirect false as a global default",
            &[("ssl-redirect", "false")],
            Expect::OnlyFinding(UnmodelledSetting, &["sets ssl-redirect", "annotation"]),
        ),
        case(
            "auth-tls-secret as a global default reaches the public host too",
            &[("auth-tls-secret", "ingress-controller/client-ca")],
            Expect::OnlyFinding(UnmodelledSetting, &["auth-tls-secret"]),
        ),
        case(
            "a raw HAProxy snippet",
            &[("config-frontend", "http-request allow")],
            Expect::OnlyFinding(
                UnmodelledSetting,
                &["config-frontend", "raw HAProxy configuration"],
            ),
        ),
        case(
            "clear-text locations widened",
            &[("no-tls-redirect-locations", "/open-banking-nz")],
            Expect::OnlyFinding(
                UnmodelledSetting,
                &["no-tls-redirect-locations", "clear text"],
            ),
        ),
        case(
            "clear-text locations at their default",
            &[("no-tls-redirect-locations", "/.well-known/acme-challenge")],
            Expect::Compliant,
        ),
    ];
    for case in &cases {
        check(case);
    }
}

#[test]
fn profiles_name_a_controller_configmap_only_where_the_controller_has_one() {
    let cases = [
        (
            Profile::split_host()
                .traefik()
                .controller_config_map(CONTROLLER_NS, CONTROLLER_CM),
            "spec.controllerConfigMap",
        ),
        (
            Profile::split_host().controller_config_map("Ingress_Nginx", CONTROLLER_CM),
            "spec.controllerConfigMap.namespace",
        ),
        (
            Profile::split_host().controller_config_map(CONTROLLER_NS, "Not A Name"),
            "spec.controllerConfigMap.name",
        ),
    ];
    for (profile, field) in cases {
        let text = stream(&[profile.yaml()]);
        let documents = mtls_gate::manifest::parse_documents(std::path::Path::new("p.yaml"), &text)
            .expect("parses");
        let err = mtls_gate::manifest::load(documents, "default", true)
            .err()
            .unwrap_or_else(|| panic!("{field}: the profile was accepted"));
        assert!(err.to_string().contains(field), "{field}: {err}");
    }
}

#[test]
fn unreadable_configmaps_matter_only_to_profiles_that_name_one() {
    use mtls_gate::dialect::config_map::CONFIG_MAP;
    for (named, expect_unreadable) in [(false, false), (true, true)] {
        let mut docs = vec![nginx_profile(named), nginx_config(&[])];
        docs.extend(nginx_layout(&[]));
        let text = stream(&docs);
        let documents = mtls_gate::manifest::parse_documents(std::path::Path::new("m.yaml"), &text)
            .expect("parses");
        let mut manifests = mtls_gate::manifest::load(documents, "default", true).expect("loads");
        manifests
            .view
            .set_kind_unreadable(CONFIG_MAP, "forbidden: list configmaps");
        let verdict = mtls_gate::engine::evaluate(&manifests.profiles[0].1, &manifests.view)
            .expect("evaluates");
        let unreadable = !with_code(&verdict, ObjectsUnreadable).is_empty();
        assert_eq!(
            unreadable,
            expect_unreadable,
            "named={named}:\n{}",
            describe(&verdict)
        );
    }
}

mod spellings {
    use super::*;
    use proptest::prelude::*;

    /// Go's `strconv.ParseBool` spellings.
    const GO_TRUE: [&str; 6] = ["1", "t", "T", "TRUE", "true", "True"];
    const GO_FALSE: [&str; 6] = ["0", "f", "F", "FALSE", "false", "False"];

    /// What the controller does with a boolean ConfigMap value (mapstructure's weak
    /// decoding): `Some(value)`, or `None` when it rejects it and keeps the default.
    fn controller_reads(value: &str) -> Option<bool> {
        if value.is_empty() || GO_FALSE.contains(&value) {
            Some(false)
        } else if GO_TRUE.contains(&value) {
            Some(true)
        } else {
            None
        }
    }

    fn spelling() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(GO_TRUE.to_vec()).prop_map(String::from),
            proptest::sample::select(GO_FALSE.to_vec()).prop_map(String::from),
            Just(String::new()),
            proptest::sample::select(vec![
                "yes", "no", "on", "off", " true", "false ", "tRuE", "2"
            ])
            .prop_map(String::from),
            "[a-zA-Z0-9 ]{0,6}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// Whatever the spellings of ssl-redirect and use-forwarded-headers, the bank's
        /// layout is called compliant only when the controller serves no path in clear text
        /// (and every value is one it reads).
        #[test]
        fn never_admits_what_the_controller_would_serve_in_clear_text(
            ssl_redirect in proptest::option::of(spelling()),
            forwarded in proptest::option::of(spelling()),
        ) {
            let mut data: Vec<(&str, &str)> = Vec::new();
            if let Some(v) = &ssl_redirect {
                data.push(("ssl-redirect", v));
            }
            if let Some(v) = &forwarded {
                data.push(("use-forwarded-headers", v));
            }
            let mut docs = vec![nginx_profile(true), nginx_config(&data)];
            docs.extend(nginx_layout(&[]));
            let verdict = evaluate_complete(&docs);
            let read = |v: &Option<String>| v.as_deref().map(controller_reads);
            let clear_text = read(&ssl_redirect).flatten() == Some(false)
                || read(&forwarded).flatten() == Some(true);
            let rejected = read(&ssl_redirect) == Some(None) || read(&forwarded) == Some(None);
            prop_assert_eq!(
                verdict.compliant,
                !clear_text && !rejected,
                "ssl-redirect {:?}, use-forwarded-headers {:?}:\n{}",
                ssl_redirect, forwarded, describe(&verdict)
            );
            if clear_text {
                prop_assert!(!exposed(&verdict).is_empty(), "no endpoint reported exposed");
            }
        }
    }
}

/// A ConfigMap update that changes nothing a dialect reads (the data of an unlabelled
/// ConfigMap) leaves every host's stamp as it was, so the admission webhook's cached
/// before-states stay valid; a change of a labelled one's data does not.
#[test]
fn configmap_updates_that_change_nothing_read_keep_the_view_generation() {
    use mtls_gate::cluster::ClusterView;
    use mtls_gate::dialect::config_map::{CONFIG_MAP, reduce};
    let manifest = |labelled: bool, value: &str| {
        let mut labels = serde_json::json!({"app": "shop"});
        if labelled {
            labels[LABEL.0] = serde_json::json!(LABEL.1);
        }
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": "shop", "labels": labels},
            "data": {"ssl-redirect": value}})
    };
    let mut view = ClusterView::new();
    for labelled in [false, true] {
        view.upsert_object(
            CONFIG_MAP,
            reduce(&manifest(labelled, "true"), "").expect("reduces"),
        );
        let before = view.host_stamp(MTLS_API_HOST);
        view.upsert_object(
            CONFIG_MAP,
            reduce(&manifest(labelled, "false"), "").expect("reduces"),
        );
        let after = view.host_stamp(MTLS_API_HOST);
        assert_eq!(before == after, !labelled, "labelled={labelled}");
    }
}
