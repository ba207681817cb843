//! The haproxy-ingress dialect, one case per rule (src/dialect/haproxy.rs cites the
//! controller's source for each). Every case is a bank's manifests: a split-host layout
//! (`auth.bank.example` public, `mtls-auth.`/`mtls-api.bank.example` requiring
//! certificates) or a single host with the gate, changed in the one way the rule is about.

mod common;

use std::collections::BTreeSet;

use common::*;
use mtls_gate::violation::ViolationCode::{self, *};

fn split_profile() -> String {
    let mut p = Profile::split_host();
    p.controller = "haproxy-ingress".into();
    p.yaml()
}

fn single_profile() -> String {
    let mut p = Profile::single_host();
    p.controller = "haproxy-ingress".into();
    p.yaml()
}

fn public_ingress() -> Ingress {
    Ingress::new("authorization-server-public", PUBLIC_HOST)
        .exact("/authorize")
        .exact("/jwks")
        .exact("/.well-known/openid-configuration")
}

fn mtls_auth_ingress() -> Ingress {
    Ingress::new("authorization-server-mtls", MTLS_AUTH_HOST)
        .prefix("/")
        .annotations(haproxy::client_auth("on"))
}

fn api_ingress() -> Ingress {
    Ingress::new("open-banking-apis", MTLS_API_HOST)
        .prefix(&format!("{API_BASE}/"))
        .annotations(haproxy::client_auth("on"))
}

/// The compliant split-host layout with the API Ingress replaced.
fn split_with_api(api: Ingress) -> Vec<String> {
    vec![
        split_profile(),
        ca_secret(),
        public_ingress().yaml(),
        mtls_auth_ingress().yaml(),
        api.yaml(),
    ]
}

/// Single host: host-wide `optional`, the gate on the MTLS paths.
fn single_public() -> Ingress {
    Ingress::new("authorization-server-public", SINGLE_HOST)
        .exact("/oauth2/authorize")
        .exact("/oauth2/jwks")
        .exact("/oauth2/.well-known/openid-configuration")
        .annotations(haproxy::client_auth("optional"))
}

fn single_mtls() -> Ingress {
    Ingress::new("authorization-server-mtls", SINGLE_HOST)
        .prefix("/oauth2")
        .annotations(haproxy::client_auth("optional"))
        .annotations(haproxy::gate())
}

fn single_apis() -> Ingress {
    Ingress::new("open-banking-apis", SINGLE_HOST)
        .prefix(API_BASE)
        .annotations(haproxy::client_auth("optional"))
        .annotations(haproxy::gate())
}

fn single_with(extra: &[Ingress]) -> Vec<String> {
    let mut docs = vec![
        single_profile(),
        ca_secret(),
        single_public().yaml(),
        single_mtls().yaml(),
        single_apis().yaml(),
    ];
    docs.extend(extra.iter().map(Ingress::yaml));
    docs
}

struct Case {
    rule: &'static str,
    docs: fn() -> Vec<String>,
    /// Evaluate with absent Secrets meaning "does not exist".
    complete: bool,
    /// Exactly these codes are reported.
    codes: &'static [ViolationCode],
    /// Violations that must be among them: (code, endpoint).
    naming: &'static [(ViolationCode, &'static str)],
}

const CASES: &[Case] = &[
    Case {
        rule: "split host, haproxy-ingress.github.io keys: compliant",
        docs: || split_with_api(api_ingress()),
        complete: true,
        codes: &[],
        naming: &[],
    },
    Case {
        rule: "the legacy prefix ingress.kubernetes.io is read too",
        docs: || {
            split_with_api(
                Ingress::new("open-banking-apis", MTLS_API_HOST)
                    .prefix(&format!("{API_BASE}/"))
                    .annotation(
                        "ingress.kubernetes.io/auth-tls-secret",
                        "open-banking-client-ca",
                    )
                    .annotation("ingress.kubernetes.io/auth-tls-verify-client", "on"),
            )
        },
        complete: true,
        codes: &[],
        naming: &[],
    },
    Case {
        rule: "haproxy-ingress.github.io wins over ingress.kubernetes.io on one Ingress",
        docs: || {
            split_with_api(
                api_ingress().annotation("ingress.kubernetes.io/auth-tls-verify-client", "off"),
            )
        },
        complete: true,
        codes: &[],
        naming: &[],
    },
    Case {
        rule: "... so an `off` under the first prefix switches verification off",
        docs: || {
            split_with_api(
                api_ingress()
                    .annotation(&haproxy::key("auth-tls-verify-client"), "off")
                    .annotation("ingress.kubernetes.io/auth-tls-verify-client", "on"),
            )
        },
        complete: true,
        codes: &[MtlsNotRequired],
        naming: &[(MtlsNotRequired, "/accounts")],
    },
    Case {
        rule: "auth-tls-verify-client defaults to on with a valid secret",
        docs: || {
            split_with_api(
                Ingress::new("open-banking-apis", MTLS_API_HOST)
                    .prefix(&format!("{API_BASE}/"))
                    .annotation(&haproxy::key("auth-tls-secret"), "open-banking-client-ca"),
            )
        },
        complete: true,
        codes: &[],
        naming: &[],
    },
    Case {
        rule: "an unknown auth-tls-verify-client value means on",
        docs: || split_with_api(api_ingress().annotations(haproxy::client_auth("On"))),
        complete: true,
        codes: &[],
        naming: &[],
    },
    Case {
        rule: "auth-tls-verify-client optional without the gate does not require certificates",
        docs: || split_with_api(api_ingress().annotations(haproxy::client_auth("optional"))),
        complete: true,
        codes: &[MtlsNotRequired],
        naming: &[(MtlsNotRequired, "/accounts")],
    },
    Case {
        rule: "auth-tls-verify-client optional_no_ca never verifies",
        docs: || split_with_api(api_ingress().annotations(haproxy::client_auth("optional_no_ca"))),
        complete: true,
        codes: &[MtlsNotRequired],
        naming: &[(MtlsNotRequired, "/domestic-payments")],
    },
    Case {
        rule: "first-created Ingress wins a Host-scope key",
        docs: || {
            split_with_api(api_ingress().created(NEWER))
                .into_iter()
                .chain([Ingress::new("statements-legacy", MTLS_API_HOST)
                    .created(OLDER)
                    .prefix(&format!("{API_BASE}/legacy"))
                    .annotations(haproxy::client_auth("optional"))
                    .yaml()])
                .collect()
        },
        complete: true,
        codes: &[HostSettingsConflict, MtlsNotRequired],
        naming: &[(MtlsNotRequired, "/accounts")],
    },
    Case {
        rule: "equal creation times: ascending namespace/name wins (not ingress-nginx's order)",
        docs: || {
            split_with_api(api_ingress().created(OLDER))
                .into_iter()
                .chain([Ingress::new("aaa-statements-legacy", MTLS_API_HOST)
                    .created(OLDER)
                    .prefix(&format!("{API_BASE}/legacy"))
                    .annotations(haproxy::client_auth("optional"))
                    .yaml()])
                .collect()
        },
        complete: true,
        codes: &[HostSettingsConflict, MtlsNotRequired],
        naming: &[(MtlsNotRequired, "/accounts")],
    },
    Case {
        rule: "Host-scope keys merge per key: secret from one Ingress, verify mode from another",
        docs: || {
            split_with_api(
                Ingress::new("open-banking-apis", MTLS_API_HOST)
                    .created(NEWER)
                    .prefix(&format!("{API_BASE}/"))
                    .annotation(&haproxy::key("auth-tls-verify-client"), "on"),
            )
            .into_iter()
            .chain([Ingress::new("api-host-settings", MTLS_API_HOST)
                .created(OLDER)
                .prefix("/host-settings-only")
                .annotation(&haproxy::key("auth-tls-secret"), "open-banking-client-ca")
                .yaml()])
            .collect()
        },
        complete: true,
        codes: &[],
        naming: &[],
    },
    Case {
        rule: "an older Ingress with a rule but no paths adds no Host-scope keys",
        docs: || {
            let mut docs = split_with_api(api_ingress().created(NEWER));
            docs.push(format!(
                "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: api-placeholder\n  namespace: {NS}\n  creationTimestamp: {OLDER:?}\n  annotations:\n    haproxy-ingress.github.io/auth-tls-secret: {CA_SECRET}\n    haproxy-ingress.github.io/auth-tls-verify-client: \"off\"\nspec:\n  rules:\n    - host: {MTLS_API_HOST}\n"
            ));
            docs
        },
        complete: true,
        codes: &[],
        naming: &[],
    },
    Case {
        rule: "missing CA Secret with auth-tls-strict (default): every request rejected",
        docs: || {
            vec![
                split_profile(),
                public_ingress().yaml(),
                mtls_auth_ingress().yaml(),
                api_ingress().yaml(),
            ]
        },
        complete: true,
        codes: &[CaSecretInvalid],
        naming: &[],
    },
    Case {
        rule: "missing CA Secret with auth-tls-strict false: client auth silently dropped",
        docs: || {
            vec![
                split_profile(),
                public_ingress().yaml(),
                mtls_auth_ingress()
                    .annotation(&haproxy::key("auth-tls-strict"), "false")
                    .yaml(),
                api_ingress().yaml(),
            ]
        },
        complete: true,
        codes: &[CaSecretInvalid, MtlsNotRequired],
        naming: &[(MtlsNotRequired, "/token")],
    },
    Case {
        rule: "auth-tls-strict is strconv.ParseBool: `yes` is an error, hence false",
        docs: || {
            vec![
                split_profile(),
                public_ingress().yaml(),
                mtls_auth_ingress()
                    .annotation(&haproxy::key("auth-tls-strict"), "yes")
                    .yaml(),
                api_ingress().yaml(),
            ]
        },
        complete: true,
        codes: &[CaSecretInvalid, MtlsNotRequired],
        naming: &[(MtlsNotRequired, "/par")],
    },
    Case {
        rule: "auth-tls-strict `T` is true",
        docs: || {
            vec![
                split_profile(),
                public_ingress().yaml(),
                mtls_auth_ingress()
                    .annotation(&haproxy::key("auth-tls-strict"), "T")
                    .yaml(),
                api_ingress().yaml(),
            ]
        },
        complete: true,
        codes: &[CaSecretInvalid],
        naming: &[],
    },
    Case {
        rule: "the CA is read from ca.crt only",
        docs: || {
            vec![
                split_profile(),
                secret(NS, CA_SECRET, &[("tls.ca", CA_PEM)]),
                public_ingress().yaml(),
                mtls_auth_ingress().yaml(),
                api_ingress().yaml(),
            ]
        },
        complete: true,
        codes: &[CaSecretInvalid],
        naming: &[],
    },
    Case {
        rule: "a CA Secret in another namespace is refused (cross-namespace-secrets-ca: deny)",
        docs: || {
            split_with_api(api_ingress().annotation(
                &haproxy::key("auth-tls-secret"),
                &format!("shared-pki/{CA_SECRET}"),
            ))
        },
        complete: true,
        codes: &[CaSecretInvalid],
        naming: &[],
    },
    Case {
        rule: "a file:// CA cannot be checked",
        docs: || {
            split_with_api(
                api_ingress().annotation(&haproxy::key("auth-tls-secret"), "file:///etc/ca.pem"),
            )
        },
        complete: true,
        codes: &[UnmodelledSetting],
        naming: &[],
    },
    Case {
        rule: "single host: optional on the host and the gate on the MTLS paths",
        docs: || single_with(&[]),
        complete: true,
        codes: &[],
        naming: &[],
    },
    Case {
        rule: "single host: an MTLS path without the gate",
        docs: || {
            let mut docs = single_with(&[]);
            docs[4] = Ingress::new("open-banking-apis", SINGLE_HOST)
                .prefix(API_BASE)
                .annotations(haproxy::client_auth("optional"))
                .yaml();
            docs
        },
        complete: true,
        codes: &[MtlsNotRequired],
        naming: &[(MtlsNotRequired, "/accounts")],
    },
    Case {
        rule: "single host: auth-url of another service is no gate",
        docs: || {
            let mut docs = single_with(&[]);
            docs[4] = single_apis()
                .annotation(
                    &haproxy::key("auth-url"),
                    "http://oauth2-proxy.auth.svc:4180/oauth2/auth",
                )
                .yaml();
            docs
        },
        complete: true,
        codes: &[MtlsNotRequired],
        naming: &[(MtlsNotRequired, "/accounts")],
    },
    Case {
        rule: "single host: the gate URL without ?controller=haproxy-ingress can be forged",
        docs: || {
            let mut docs = single_with(&[]);
            docs[4] = single_apis()
                .annotation(&haproxy::key("auth-url"), GATE_URL)
                .yaml();
            docs
        },
        complete: true,
        codes: &[MtlsNotRequired],
        naming: &[(MtlsNotRequired, "/accounts")],
    },
    Case {
        rule: "ssl-redirect false also serves the MTLS paths over plain HTTP",
        docs: || split_with_api(api_ingress().annotation(&haproxy::key("ssl-redirect"), "false")),
        complete: true,
        codes: &[MtlsNotRequired],
        naming: &[(MtlsNotRequired, "/accounts")],
    },
    Case {
        rule: "an invalid ssl-redirect value is ignored (default true)",
        docs: || split_with_api(api_ingress().annotation(&haproxy::key("ssl-redirect"), "no")),
        complete: true,
        codes: &[],
        naming: &[],
    },
    Case {
        rule: "exact paths are matched before prefix paths",
        docs: || {
            single_with(&[Ingress::new("token-debug", SINGLE_HOST)
                .exact("/oauth2/token")
                .annotations(haproxy::client_auth("optional"))])
        },
        complete: true,
        codes: &[MtlsNotRequired],
        naming: &[(MtlsNotRequired, "/token")],
    },
    Case {
        rule: "ImplementationSpecific is `begin`: case-insensitive, and a longer begin path outranks a shorter prefix",
        docs: || {
            single_with(&[Ingress::new("token-debug", SINGLE_HOST)
                .implementation_specific("/OAUTH2/TOK")
                .annotations(haproxy::client_auth("optional"))])
        },
        complete: true,
        codes: &[MtlsNotRequired],
        naming: &[(MtlsNotRequired, "/token")],
    },
    Case {
        rule: "path-type exact on an ImplementationSpecific path is case-sensitive",
        docs: || {
            single_with(&[Ingress::new("token-debug", SINGLE_HOST)
                .implementation_specific("/OAUTH2/TOKEN")
                .annotation(&haproxy::key("path-type"), "Exact")
                .annotations(haproxy::client_auth("optional"))])
        },
        complete: true,
        codes: &[],
        naming: &[],
    },
    Case {
        rule: "a regex path may serve whatever it matches (the engine over-approximates regexes)",
        docs: || {
            single_with(&[Ingress::new("token-debug", SINGLE_HOST)
                .implementation_specific("/oauth2/(token|par)")
                .annotation(&haproxy::key("path-type"), "regex")
                .annotations(haproxy::client_auth("optional"))])
        },
        complete: true,
        codes: &[MtlsNotRequired],
        naming: &[(MtlsNotRequired, "/token"), (MtlsNotRequired, "/par")],
    },
    Case {
        rule: "the same path as Prefix and as begin: prefix is consulted first (path-type-order)",
        docs: || {
            let mut docs = single_with(&[Ingress::new("oauth2-legacy", SINGLE_HOST)
                .prefix("/oauth2")
                .annotations(haproxy::client_auth("optional"))]);
            docs[3] = Ingress::new("authorization-server-mtls", SINGLE_HOST)
                .implementation_specific("/oauth2")
                .annotations(haproxy::client_auth("optional"))
                .annotations(haproxy::gate())
                .yaml();
            docs
        },
        complete: true,
        codes: &[MtlsNotRequired],
        naming: &[(MtlsNotRequired, "/token")],
    },
    Case {
        rule: "a regex with a top-level alternation escapes the host anchor",
        docs: || {
            single_with(&[Ingress::new("token-debug", SINGLE_HOST)
                .implementation_specific("/debug|/x")
                .annotation(&haproxy::key("path-type"), "regex")
                .annotations(haproxy::client_auth("optional"))])
        },
        complete: true,
        codes: &[UnmodelledSetting],
        naming: &[],
    },
    Case {
        rule: "a Prefix path matches whole segments only",
        docs: || {
            single_with(&[Ingress::new("token-debug", SINGLE_HOST)
                .prefix("/oauth2/tok")
                .annotations(haproxy::client_auth("optional"))])
        },
        complete: true,
        codes: &[],
        naming: &[],
    },
    Case {
        rule: "the same path and match type twice: the first-created Ingress keeps it",
        docs: || {
            single_with(&[Ingress::new("apis-v0", SINGLE_HOST)
                .created("2025-06-01T00:00:00Z")
                .prefix(API_BASE)
                .annotations(haproxy::client_auth("optional"))])
        },
        complete: true,
        codes: &[MtlsNotRequired],
        naming: &[(MtlsNotRequired, "/accounts")],
    },
    Case {
        rule: "an annotation that changes routing fails closed (rewrite-target)",
        docs: || split_with_api(api_ingress().annotation(&haproxy::key("rewrite-target"), "/")),
        complete: true,
        codes: &[UnmodelledSetting],
        naming: &[],
    },
    Case {
        rule: "an annotation that adds a host fails closed (legacy-prefix server-alias)",
        docs: || {
            split_with_api(
                api_ingress().annotation("ingress.kubernetes.io/server-alias", "api.bank.example"),
            )
        },
        complete: true,
        codes: &[UnmodelledSetting],
        naming: &[],
    },
    Case {
        rule: "a request header the gate could trust fails closed (headers)",
        docs: || {
            split_with_api(
                api_ingress().annotation(&haproxy::key("headers"), "X-SSL-Client-SHA1: forged"),
            )
        },
        complete: true,
        codes: &[UnmodelledSetting],
        naming: &[],
    },
    Case {
        rule: "an unknown key fails closed",
        docs: || {
            split_with_api(api_ingress().annotation(&haproxy::key("auth-tls-verify-depth"), "2"))
        },
        complete: true,
        codes: &[UnmodelledSetting],
        naming: &[],
    },
    Case {
        rule: "keys that cannot widen access are ignored (timeouts, HSTS, Global keys)",
        docs: || {
            split_with_api(
                api_ingress()
                    .annotation(&haproxy::key("timeout-server"), "30s")
                    .annotation(&haproxy::key("hsts-max-age"), "31536000")
                    .annotation(&haproxy::key("ssl-headers-prefix"), "X-Forged"),
            )
        },
        complete: true,
        codes: &[],
        naming: &[],
    },
    Case {
        rule: "haproxytech/kubernetes-ingress annotations are refused",
        docs: || {
            split_with_api(
                Ingress::new("open-banking-apis", MTLS_API_HOST)
                    .prefix(&format!("{API_BASE}/"))
                    .annotation(
                        "haproxy.org/client-ca",
                        "open-banking/open-banking-client-ca",
                    ),
            )
        },
        complete: true,
        codes: &[UnmodelledSetting, MtlsNotRequired],
        naming: &[(MtlsNotRequired, "/accounts")],
    },
    Case {
        rule: "a host-less rule beside the hosts' own rules fails closed (default host fallback)",
        docs: || {
            let mut docs = split_with_api(api_ingress());
            docs.push(
                Ingress::new("catch-all", "")
                    .without_tls()
                    .prefix("/")
                    .yaml(),
            );
            docs
        },
        complete: true,
        codes: &[UnmodelledSetting],
        naming: &[],
    },
    Case {
        rule: "a wildcard rule serving a profile host fails closed",
        docs: || {
            vec![
                split_profile(),
                ca_secret(),
                public_ingress().yaml(),
                mtls_auth_ingress().yaml(),
                Ingress::new("open-banking-apis", "*.bank.example")
                    .prefix(&format!("{API_BASE}/"))
                    .annotations(haproxy::client_auth("on"))
                    .yaml(),
            ]
        },
        complete: true,
        codes: &[UnmodelledSetting],
        naming: &[],
    },
    Case {
        rule: "an IngressClass with spec.parameters (class-wide configuration keys) fails closed",
        docs: || {
            let mut docs = split_with_api(api_ingress().class("haproxy"));
            docs.push(ingress_class("haproxy", true));
            docs
        },
        complete: true,
        codes: &[UnmodelledSetting],
        naming: &[],
    },
    Case {
        rule: "... an IngressClass without parameters brings no class-wide keys",
        docs: || {
            let mut docs = split_with_api(api_ingress().class("haproxy"));
            docs.push(ingress_class("haproxy", false));
            docs
        },
        complete: true,
        codes: &[],
        naming: &[],
    },
    Case {
        rule: "... the legacy class annotation names no IngressClass object, so no parameters",
        docs: || {
            let mut docs =
                split_with_api(api_ingress().annotation("kubernetes.io/ingress.class", "haproxy"));
            docs.push(ingress_class("haproxy", true));
            docs
        },
        complete: true,
        codes: &[],
        naming: &[],
    },
];

/// haproxy-ingress's IngressClass, optionally linking a ConfigMap of class-wide keys
/// (keys.md: "Per IngressClass, from a ConfigMap linked in the IngressClass' `parameters`
/// field").
fn ingress_class(name: &str, with_parameters: bool) -> String {
    let mut y = format!(
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: {name}\nspec:\n  controller: haproxy-ingress.github.io/controller\n"
    );
    if with_parameters {
        y.push_str("  parameters:\n    apiGroup: \"\"\n    kind: ConfigMap\n    name: haproxy-class-config\n    namespace: ingress-haproxy\n    scope: Namespace\n");
    }
    y
}

#[test]
fn each_rule_gives_the_expected_findings() {
    for case in CASES {
        let docs = (case.docs)();
        let verdict = if case.complete {
            evaluate_complete(&docs)
        } else {
            evaluate(&docs)
        };
        let got: BTreeSet<ViolationCode> = verdict.violations.iter().map(|v| v.code).collect();
        let want: BTreeSet<ViolationCode> = case.codes.iter().copied().collect();
        assert_eq!(
            got,
            want,
            "[{}] codes; violations:\n{}",
            case.rule,
            describe(&verdict)
        );
        assert_eq!(verdict.compliant, case.codes.is_empty(), "[{}]", case.rule);
        for (code, endpoint) in case.naming {
            assert!(
                verdict
                    .violations
                    .iter()
                    .any(|v| v.code == *code && v.endpoint == Some(*endpoint)),
                "[{}] expected {code} naming {endpoint}; violations:\n{}",
                case.rule,
                describe(&verdict)
            );
        }
    }
}

/// Which route serves an endpoint, and the client auth the report gives it.
#[test]
fn coverage_names_the_serving_route_and_its_auth() {
    /// (case, manifests, endpoint, URL, the one serving route: Ingress, path, client auth)
    type CoverageCase = (
        &'static str,
        fn() -> Vec<String>,
        &'static str,
        &'static str,
        (&'static str, &'static str, &'static str),
    );
    let cases: &[CoverageCase] = &[
        (
            "split host: Prefix / on the MTLS alias",
            || split_with_api(api_ingress()),
            "/token",
            "https://mtls-auth.bank.example/token",
            ("open-banking/authorization-server-mtls", "/", "required"),
        ),
        (
            "single host: exact /authorize beats the gated Prefix /oauth2",
            || single_with(&[]),
            "/authorize",
            "https://api.bank.example/oauth2/authorize",
            (
                "open-banking/authorization-server-public",
                "/oauth2/authorize",
                "optional",
            ),
        ),
        (
            "single host: the gated Prefix /oauth2 serves /token",
            || single_with(&[]),
            "/token",
            "https://api.bank.example/oauth2/token",
            (
                "open-banking/authorization-server-mtls",
                "/oauth2",
                "required-by-gate",
            ),
        ),
        (
            "strict with a missing CA: rejected",
            || {
                vec![
                    split_profile(),
                    public_ingress().yaml(),
                    mtls_auth_ingress().yaml(),
                    api_ingress().yaml(),
                ]
            },
            "/token",
            "https://mtls-auth.bank.example/token",
            ("open-banking/authorization-server-mtls", "/", "rejected"),
        ),
    ];
    for (name, docs, endpoint, url, (ingress, path, auth)) in cases {
        let verdict = evaluate_complete(&docs());
        assert_eq!(
            serving(&verdict, endpoint, url),
            [(ingress.to_string(), path.to_string(), auth.to_string())],
            "[{name}]"
        );
    }
}

/// Go's `strconv.ParseBool`: the spellings it accepts, and `None` for everything else.
fn go_parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Boolean spellings: every form `strconv.ParseBool` accepts, near-misses (case, spaces,
/// YAML words) and short arbitrary strings.
fn bool_spelling() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let known = prop::sample::select(vec![
        "1", "t", "T", "true", "TRUE", "True", "0", "f", "F", "false", "FALSE", "False", "tRuE",
        "fAlse", "yes", "no", "on", "off", "y", "n", "", " true", "false ", "01", "truee",
    ])
    .prop_map(str::to_string);
    prop_oneof![known, "[ a-zA-Z01]{0,6}"]
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config { cases: 96, ..Default::default() })]

    /// `ssl-redirect: V` on the API Ingress: the APIs are also served over plain HTTP,
    /// without a certificate, exactly when ParseBool(V) is false (an invalid value is
    /// ignored: the default `true`). Never admitted when haproxy-ingress would serve them
    /// in clear text.
    #[test]
    fn ssl_redirect_spellings_are_read_as_haproxy_ingress_reads_them(value in bool_spelling()) {
        let docs = split_with_api(api_ingress().annotation(&haproxy::key("ssl-redirect"), &value));
        let verdict = evaluate_complete(&docs);
        let plain = go_parse_bool(&value) == Some(false);
        proptest::prop_assert_eq!(!verdict.compliant, plain, "{:?}: {}", value, describe(&verdict));
    }

    /// `auth-tls-strict: V` beside a CA Secret that does not exist: every request is
    /// refused unless ParseBool(V) is a valid false or an error (both `false`), when client
    /// auth is silently dropped and the MTLS endpoints are exposed.
    #[test]
    fn auth_tls_strict_spellings_are_read_as_haproxy_ingress_reads_them(value in bool_spelling()) {
        let docs = vec![
            split_profile(),
            public_ingress().yaml(),
            mtls_auth_ingress().annotation(&haproxy::key("auth-tls-strict"), &value).yaml(),
            api_ingress().yaml(),
        ];
        let verdict = evaluate_complete(&docs);
        let exposed = !with_code(&verdict, MtlsNotRequired).is_empty();
        proptest::prop_assert_eq!(exposed, go_parse_bool(&value) != Some(true), "{:?}: {}", value, describe(&verdict));
    }
}
