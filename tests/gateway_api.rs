//! The `gateway-api` dialect, rule by rule (module doc of `src/dialect/gateway/mod.rs`),
//! on realistic Envoy Gateway manifests: a bank's split-host layout and the mistakes made
//! when moving it from Ingress to Gateway API.

mod common;

use common::{describe, evaluate, evaluate_complete};
use mtls_gate::engine::Verdict;
use mtls_gate::violation::ViolationCode::{self, *};

const NS: &str = "open-banking";
const PUBLIC: &str = "auth.bank.example";
const MTLS_API: &str = "mtls-api.bank.example";
const MTLS_AUTH: &str = "mtls-auth.bank.example";
const BALANCES: &str = "/accounts/{AccountId}/balances";

/// The example's profile (`examples/gateway-api-split-host`), with `extra` spec lines.
fn profile(extra: &str) -> String {
    common::gateway_profile(extra)
}

/// One listener: (name, protocol, port, hostname).
type L<'a> = (&'a str, &'a str, u16, Option<&'a str>);

/// A Gateway of class `eg` with `listeners` and `spec.tls` YAML (indented under `spec:`).
fn gateway(name: &str, class: &str, listeners: &[L<'_>], tls: &str) -> String {
    let mut out = format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: {name}
  namespace: {NS}
spec:
  gatewayClassName: {class}
  listeners:
"
    );
    for (l, protocol, port, hostname) in listeners {
        out += &format!("    - name: {l}\n      protocol: {protocol}\n      port: {port}\n");
        if let Some(h) = hostname {
            out += &format!("      hostname: \"{h}\"\n");
        }
        if *protocol == "HTTPS" {
            out +=
                &format!("      tls: {{mode: Terminate, certificateRefs: [{{name: {l}-tls}}]}}\n");
        }
    }
    out + tls
}

/// `spec.tls.frontend.default` requiring verified certificates from the bank's CA.
const FRONTEND_REQUIRED: &str = "  tls:
    frontend:
      default:
        validation:
          mode: AllowValidOnly
          caCertificateRefs: [{group: \"\", kind: ConfigMap, name: open-banking-client-ca}]
";

/// An HTTPRoute in `namespace` with `parentRefs`, `hostnames` and `rules` as YAML flow.
fn route_in(namespace: &str, name: &str, parents: &str, hostnames: &str, rules: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: {name}
  namespace: {namespace}
  creationTimestamp: \"2026-01-0{}T00:00:00Z\"
spec:
  parentRefs: {parents}
  hostnames: {hostnames}
  rules: {rules}
",
        1 + name.len() % 8
    )
}

fn route(name: &str, parents: &str, hostnames: &str, rules: &str) -> String {
    route_in(NS, name, parents, hostnames, rules)
}

fn public_route() -> String {
    route(
        "authorization-server-public",
        "[{name: public, sectionName: auth-https}]",
        &format!("[{PUBLIC}]"),
        "[{matches: [{path: {type: Exact, value: /authorize}}, {path: {type: Exact, value: /jwks}}, {path: {type: Exact, value: /.well-known/openid-configuration}}]}]",
    )
}

fn mtls_auth_route(parents: &str) -> String {
    route(
        "authorization-server-mtls",
        parents,
        &format!("[{MTLS_AUTH}]"),
        "[{backendRefs: [{name: authorization-server, port: 8443}]}]",
    )
}

fn api_route(parents: &str) -> String {
    route(
        "open-banking-apis",
        parents,
        &format!("[{MTLS_API}]"),
        "[{matches: [{path: {type: PathPrefix, value: /open-banking-nz/v3.0}}]}]",
    )
}

fn public_gateway() -> String {
    gateway(
        "public",
        "eg",
        &[("auth-https", "HTTPS", 443, Some(PUBLIC))],
        "",
    )
}

fn mtls_listeners() -> [L<'static>; 2] {
    [
        ("mtls-auth", "HTTPS", 443, Some(MTLS_AUTH)),
        ("mtls-api", "HTTPS", 443, Some(MTLS_API)),
    ]
}

/// The compliant split-host layout: the MTLS hosts on a Gateway of their own whose port
/// requires verified certificates.
fn split_host() -> Vec<String> {
    vec![
        profile(""),
        common::gateway_ca_config_map(),
        public_gateway(),
        gateway("mtls", "eg", &mtls_listeners(), FRONTEND_REQUIRED),
        public_route(),
        mtls_auth_route("[{name: mtls, sectionName: mtls-auth}]"),
        api_route("[{name: mtls, sectionName: mtls-api}]"),
    ]
}

/// Envoy Gateway ClientTrafficPolicy targeting Gateway `gw` (and listener `section`).
fn policy(name: &str, gw: &str, section: Option<&str>, client_validation: &str) -> String {
    let section = section.map_or(String::new(), |s| format!(", sectionName: {s}"));
    format!(
        "apiVersion: gateway.envoyproxy.io/v1alpha1
kind: ClientTrafficPolicy
metadata:
  name: {name}
  namespace: {NS}
  creationTimestamp: \"2026-02-01T00:00:00Z\"
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: Gateway, name: {gw}{section}}}]
{client_validation}"
    )
}

fn client_validation(mode: &str) -> String {
    format!(
        "  tls:
    clientValidation:
      {mode}
      caCertificateRefs: [{{kind: ConfigMap, name: open-banking-client-ca}}]
"
    )
}

/// The split-host layout with the MTLS Gateway's client validation from `policies`
/// instead of `spec.tls.frontend`.
fn split_host_with_policies(policies: Vec<String>) -> Vec<String> {
    let mut docs = split_host();
    docs[3] = gateway("mtls", "eg", &mtls_listeners(), "");
    docs.extend(policies);
    docs
}

struct Case {
    name: &'static str,
    docs: Vec<String>,
    /// Findings that must be reported: (code, host, endpoint, message fragment).
    expect: &'static [(
        ViolationCode,
        &'static str,
        Option<&'static str>,
        &'static str,
    )],
    /// Codes that may be reported (consequences of the same mistake); others may not.
    codes: &'static [ViolationCode],
}

fn check(case: &Case, verdict: &Verdict) {
    let name = case.name;
    for (code, host, endpoint, fragment) in case.expect {
        assert!(
            verdict.violations.iter().any(|v| v.code == *code
                && v.host == *host
                && (endpoint.is_none() || v.endpoint == *endpoint)
                && v.message.contains(fragment)),
            "[{name}] expected {code} on {host} {endpoint:?} saying {fragment:?}, got:\n{}",
            describe(verdict)
        );
    }
    for v in &verdict.violations {
        assert!(
            case.codes.contains(&v.code),
            "[{name}] unexpected {}: {}",
            v.code,
            v.message
        );
    }
    assert_eq!(verdict.compliant, case.codes.is_empty(), "[{name}]");
}

fn run(cases: Vec<Case>) {
    for case in &cases {
        check(case, &evaluate_complete(&case.docs));
    }
}

/// Serving routes (`kind namespace/name path`) of an endpoint on a host.
fn serving(verdict: &Verdict, host: &str, endpoint: &str) -> Vec<String> {
    let entry = verdict
        .coverage
        .iter()
        .find(|c| c.host == host && c.endpoint == endpoint)
        .unwrap_or_else(|| panic!("no coverage entry for {endpoint} on {host}"));
    let mut routes: Vec<String> = entry
        .routes
        .iter()
        .map(|r| {
            format!(
                "{} {} {}",
                r.kind.as_deref().unwrap_or("Ingress"),
                r.ingress,
                r.path
            )
        })
        .collect();
    routes.sort();
    routes
}

#[test]
fn split_host_layouts_are_compliant() {
    let redirect = route(
        "https-redirect",
        "[{name: public, sectionName: http}]",
        "[]",
        "[{filters: [{type: RequestRedirect, requestRedirect: {scheme: https}}]}]",
    );
    let mut with_redirect = split_host();
    with_redirect[2] = gateway(
        "public",
        "eg",
        &[
            ("auth-https", "HTTPS", 443, Some(PUBLIC)),
            ("http", "HTTP", 80, None),
        ],
        "",
    );
    with_redirect.push(redirect);
    run(vec![
        Case {
            name: "MTLS hosts on their own Gateway, spec.tls.frontend requires certificates",
            docs: split_host(),
            expect: &[],
            codes: &[],
        },
        Case {
            name: "an HTTP listener that only redirects to HTTPS serves nothing in clear text",
            docs: with_redirect,
            expect: &[],
            codes: &[],
        },
        Case {
            name: "Gateway-wide ClientTrafficPolicy RequireAndVerify",
            docs: split_host_with_policies(vec![policy(
                "mtls-clients",
                "mtls",
                None,
                &client_validation("mode: RequireAndVerify"),
            )]),
            expect: &[],
            codes: &[],
        },
        Case {
            name: "ClientTrafficPolicy without mode defaults to RequireAndVerify",
            docs: split_host_with_policies(vec![policy(
                "mtls-clients",
                "mtls",
                None,
                &client_validation(""),
            )]),
            expect: &[],
            codes: &[],
        },
    ]);
}

#[test]
fn the_example_passes_check() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/gateway-api-split-host/bank.yaml"
    ))
    .expect("example");
    let verdict = evaluate_complete(&[text]);
    assert!(verdict.compliant, "{}", describe(&verdict));
    assert!(verdict.coverage.iter().all(|c| c.served));
}

#[test]
fn client_validation_per_port_and_listener() {
    let mut shared_port = split_host();
    shared_port[2] = gateway(
        "mtls",
        "eg",
        &[
            ("auth-https", "HTTPS", 443, Some(PUBLIC)),
            ("mtls-auth", "HTTPS", 443, Some(MTLS_AUTH)),
            ("mtls-api", "HTTPS", 443, Some(MTLS_API)),
        ],
        FRONTEND_REQUIRED,
    );
    shared_port.remove(3);
    shared_port[3] = public_route().replace("name: public,", "name: mtls,");

    let mut public_listener_on_mtls_port = split_host_with_policies(vec![
        policy(
            "mtls-api-clients",
            "mtls",
            Some("mtls-api"),
            &client_validation("mode: RequireAndVerify"),
        ),
        policy(
            "mtls-auth-clients",
            "mtls",
            Some("mtls-auth"),
            &client_validation("mode: RequireAndVerify"),
        ),
    ]);
    public_listener_on_mtls_port[3] = gateway(
        "mtls",
        "eg",
        &[
            ("mtls-auth", "HTTPS", 443, Some(MTLS_AUTH)),
            ("mtls-api", "HTTPS", 443, Some(MTLS_API)),
            ("auth-https", "HTTPS", 443, Some(PUBLIC)),
        ],
        "",
    );
    public_listener_on_mtls_port[4] = public_route().replace("name: public,", "name: mtls,");
    public_listener_on_mtls_port.remove(2);

    let per_port_override = {
        let mut docs = split_host();
        docs[3] = gateway(
            "mtls",
            "eg",
            &mtls_listeners(),
            &format!(
                "{FRONTEND_REQUIRED}      perPort:\n        - port: 443\n          tls: {{}}\n"
            ),
        );
        docs
    };

    run(vec![
        Case {
            name: "the public host on the MTLS port: certificates demanded at /authorize",
            docs: shared_port,
            expect: &[
                (
                    MtlsRequiredOnTlsEndpoint,
                    PUBLIC,
                    Some("/authorize"),
                    "applies to every listener on port 443",
                ),
                (
                    MtlsRequiredOnTlsEndpoint,
                    PUBLIC,
                    Some("/jwks or /keys"),
                    "",
                ),
            ],
            codes: &[MtlsRequiredOnTlsEndpoint],
        },
        Case {
            name: "a public /authorize listener on the MTLS port: connection coalescing",
            docs: public_listener_on_mtls_port,
            expect: &[
                (MtlsNotRequired, MTLS_API, None, "connection coalescing"),
                (
                    MtlsNotRequired,
                    MTLS_AUTH,
                    None,
                    "serve the TLS hosts from another port",
                ),
            ],
            codes: &[MtlsNotRequired],
        },
        Case {
            name: "AllowInsecureFallback does not verify presented certificates",
            docs: {
                let mut docs = split_host();
                docs[3] = docs[3].replace("AllowValidOnly", "AllowInsecureFallback");
                docs
            },
            expect: &[(MtlsNotRequired, MTLS_API, Some(BALANCES), "maps to Request")],
            codes: &[MtlsNotRequired],
        },
        Case {
            name: "a perPort entry without validation replaces the default for its port",
            docs: per_port_override,
            expect: &[(
                MtlsNotRequired,
                MTLS_AUTH,
                Some("/token"),
                "perPort (port 443)",
            )],
            codes: &[MtlsNotRequired],
        },
    ]);
}

#[test]
fn client_traffic_policy_modes_and_precedence() {
    let mut cases = Vec::new();
    for (name, mode) in [
        (
            "VerifyIfGiven admits clients without a certificate",
            "mode: VerifyIfGiven",
        ),
        (
            "deprecated optional: true is VerifyIfGiven",
            "optional: true",
        ),
        ("RequireAny never verifies the chain", "mode: RequireAny"),
        ("Request never verifies the chain", "mode: Request"),
    ] {
        cases.push(Case {
            name,
            docs: split_host_with_policies(vec![policy(
                "mtls-clients",
                "mtls",
                None,
                &client_validation(mode),
            )]),
            expect: &[(
                MtlsNotRequired,
                MTLS_API,
                Some(BALANCES),
                "ClientTrafficPolicy open-banking/mtls-clients",
            )],
            codes: &[MtlsNotRequired],
        });
    }
    cases.push(Case {
        name: "a listener policy without clientValidation replaces the Gateway-wide one",
        docs: split_host_with_policies(vec![
            policy(
                "mtls-clients",
                "mtls",
                None,
                &client_validation("mode: RequireAndVerify"),
            ),
            policy(
                "api-timeouts",
                "mtls",
                Some("mtls-api"),
                "  timeout:\n    http:\n      requestReceivedTimeout: 10s\n",
            ),
        ]),
        expect: &[(
            MtlsNotRequired,
            MTLS_API,
            Some(BALANCES),
            "replaces the Gateway-wide open-banking/mtls-clients",
        )],
        codes: &[MtlsNotRequired],
    });
    cases.push(Case {
        name: "two Gateway-wide policies conflict",
        docs: split_host_with_policies(vec![
            policy(
                "a",
                "mtls",
                None,
                &client_validation("mode: RequireAndVerify"),
            ),
            policy("b", "mtls", None, &client_validation("mode: VerifyIfGiven")),
        ]),
        expect: &[(
            HostSettingsConflict,
            MTLS_API,
            None,
            "applies only the oldest",
        )],
        codes: &[HostSettingsConflict],
    });
    cases.push(Case {
        name: "frontend validation and a ClientTrafficPolicy on one listener",
        docs: {
            let mut docs = split_host();
            docs.push(policy(
                "mtls-clients",
                "mtls",
                None,
                &client_validation("mode: RequireAndVerify"),
            ));
            docs
        },
        expect: &[(
            UnmodelledSetting,
            MTLS_API,
            None,
            "Configure it in one place",
        )],
        codes: &[UnmodelledSetting],
    });
    run(cases);

    // The failing mode is named in the finding.
    let verdict = evaluate_complete(&split_host_with_policies(vec![policy(
        "mtls-clients",
        "mtls",
        None,
        &client_validation("mode: RequireAny"),
    )]));
    assert!(
        verdict
            .violations
            .iter()
            .any(|v| v.message.contains("required-unverified")),
        "{}",
        describe(&verdict)
    );
}

#[test]
fn ca_bundles() {
    let mut missing = split_host();
    missing.remove(1);
    let mut no_key = split_host();
    no_key[1] = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: open-banking-client-ca\n  namespace: {NS}\ndata:\n  bundle.pem: x\n"
    );
    run(vec![
        Case {
            name: "the CA ConfigMap does not exist",
            docs: missing,
            expect: &[(CaSecretInvalid, MTLS_API, None, "does not exist")],
            codes: &[CaSecretInvalid, MtlsNotRequired],
        },
        Case {
            name: "the CA ConfigMap has no ca.crt",
            docs: no_key,
            expect: &[(CaSecretInvalid, MTLS_AUTH, None, "has no ca.crt key")],
            codes: &[CaSecretInvalid, MtlsNotRequired],
        },
    ]);
    // Without ConfigMap manifests the CLI cannot know the bundle: not a finding.
    let mut unknown = split_host();
    unknown.remove(1);
    assert!(evaluate(&unknown).compliant);
}

#[test]
fn attachment_hostnames_and_classes() {
    let hostless_listener = {
        let mut docs = split_host();
        docs[2] = gateway(
            "public",
            "eg",
            &[
                ("auth-https", "HTTPS", 443, Some(PUBLIC)),
                ("catch-all", "HTTPS", 443, None),
            ],
            "",
        );
        // Attached to the whole public Gateway: the catch-all listener serves the API host.
        docs[6] = api_route("[{name: mtls, sectionName: mtls-api}, {name: public}]");
        docs
    };
    let wildcard_listener = {
        let mut docs = split_host();
        docs[2] = gateway(
            "public",
            "eg",
            &[
                ("wildcard", "HTTPS", 443, Some("*.example")),
                ("auth-https", "HTTPS", 443, Some(PUBLIC)),
            ],
            "",
        );
        docs[6] = api_route("[{name: mtls}, {name: public, sectionName: wildcard}]");
        docs
    };
    let http_listener = {
        let mut docs = split_host();
        docs[3] = gateway(
            "mtls",
            "eg",
            &[
                ("mtls-auth", "HTTPS", 443, Some(MTLS_AUTH)),
                ("mtls-api", "HTTPS", 443, Some(MTLS_API)),
                ("http", "HTTP", 80, None),
            ],
            FRONTEND_REQUIRED,
        );
        docs[6] = api_route("[{name: mtls}]");
        docs
    };
    run(vec![
        Case {
            name: "a host-less listener of another Gateway serves the API without certificates",
            docs: hostless_listener,
            expect: &[(
                MtlsNotRequired,
                MTLS_API,
                Some(BALANCES),
                "listener \"catch-all\"",
            )],
            codes: &[MtlsNotRequired],
        },
        Case {
            name: "a *.example listener matches mtls-api.bank.example (suffix over several labels)",
            docs: wildcard_listener,
            expect: &[(
                MtlsNotRequired,
                MTLS_API,
                Some(BALANCES),
                "listener \"wildcard\"",
            )],
            codes: &[MtlsNotRequired],
        },
        Case {
            name: "an HTTP listener attached without sectionName exposes the API in clear text",
            docs: http_listener,
            expect: &[
                (TlsMissing, MTLS_API, None, "plain HTTP"),
                (MtlsNotRequired, MTLS_API, Some(BALANCES), "plain HTTP"),
            ],
            codes: &[TlsMissing, MtlsNotRequired],
        },
    ]);

    // Routes that do not attach leave the endpoints unserved (no finding, coverage says so).
    let unattached = |docs: Vec<String>, why: &str| {
        let verdict = evaluate_complete(&docs);
        assert!(
            serving(&verdict, MTLS_API, BALANCES).is_empty(),
            "[{why}] {:?}",
            serving(&verdict, MTLS_API, BALANCES)
        );
    };
    let mut docs = split_host();
    docs[6] = api_route("[{name: mtls, sectionName: mtls-auth}]");
    unattached(docs, "sectionName names the other listener");
    let mut docs = split_host();
    docs[6] = api_route("[{name: mtls, port: 8443}]");
    unattached(docs, "parentRef port names no listener port");
    let mut docs = split_host();
    docs[6] = route_in(
        "partner",
        "open-banking-apis",
        "[{name: mtls, namespace: open-banking}]",
        &format!("[{MTLS_API}]"),
        "[]",
    );
    unattached(
        docs,
        "allowedRoutes From Same keeps another namespace's route out",
    );
    let mut docs = split_host();
    docs[3] = docs[3].replace("gatewayClassName: eg", "gatewayClassName: istio");
    unattached(docs, "Gateways of other classes are not the profile's");
    let mut docs = split_host();
    docs[6] = api_route("[{name: mtls, sectionName: mtls-api}]").replace(
        &format!("hostnames: [{MTLS_API}]"),
        &format!("hostnames: [{PUBLIC}]"),
    );
    unattached(docs, "route hostnames that do not intersect the listener's");

    // allowedRoutes From All admits it; Selector is not modelled and fails closed.
    let mut all = split_host();
    all[3] = all[3].replace(
        &format!("hostname: \"{MTLS_API}\"\n"),
        &format!("hostname: \"{MTLS_API}\"\n      allowedRoutes: {{namespaces: {{from: All}}}}\n"),
    );
    all[6] = route_in(
        "partner",
        "open-banking-apis",
        "[{name: mtls, namespace: open-banking}]",
        &format!("[{MTLS_API}]"),
        "[]",
    );
    let verdict = evaluate_complete(&all);
    assert_eq!(
        serving(&verdict, MTLS_API, BALANCES),
        ["HTTPRoute partner/open-banking-apis /"]
    );
    assert!(verdict.compliant, "{}", describe(&verdict));
    let selector = {
        let mut docs = all.clone();
        docs[3] = docs[3].replace(
            "from: All",
            "from: Selector, selector: {matchLabels: {bank: \"true\"}}",
        );
        docs
    };
    run(vec![Case {
        name: "allowedRoutes From Selector is not modelled",
        docs: selector,
        expect: &[(UnmodelledSetting, MTLS_API, None, "treated as attached")],
        codes: &[UnmodelledSetting],
    }]);
}

#[test]
fn endpoint_ports() {
    // The API is published on port 8443; only listeners on 8443 serve it.
    let mut docs = split_host();
    docs[0] = docs[0].replace(
        &format!("https://{MTLS_API}/open-banking-nz"),
        &format!("https://{MTLS_API}:8443/open-banking-nz"),
    );
    let verdict = evaluate_complete(&docs);
    assert!(serving(&verdict, MTLS_API, BALANCES).is_empty());
    docs[3] = docs[3].replace(
        "port: 443\n      hostname: \"mtls-api",
        "port: 8443\n      hostname: \"mtls-api",
    );
    let verdict = evaluate_complete(&docs);
    assert_eq!(
        serving(&verdict, MTLS_API, BALANCES),
        ["HTTPRoute open-banking/open-banking-apis /open-banking-nz/v3.0"]
    );
    assert!(verdict.compliant, "{}", describe(&verdict));
}

#[test]
fn match_precedence() {
    let on_api = |extra: Vec<String>| {
        let mut docs = split_host();
        docs.extend(extra);
        evaluate_complete(&docs)
    };
    let exact = route(
        "balances",
        "[{name: mtls, sectionName: mtls-api}]",
        &format!("[{MTLS_API}]"),
        "[{matches: [{path: {type: RegularExpression, value: \"/open-banking-nz/v3\\\\.0/accounts/[^/]+/balances\"}}]}]",
    );
    // A regular expression may win wherever it matches (its precedence is
    // implementation-specific): both routes are reported.
    let verdict = on_api(vec![exact]);
    assert_eq!(
        serving(&verdict, MTLS_API, BALANCES),
        [
            "HTTPRoute open-banking/balances /open-banking-nz/v3\\.0/accounts/[^/]+/balances",
            "HTTPRoute open-banking/open-banking-apis /open-banking-nz/v3.0"
        ]
    );
    // ... and only where it matches.
    assert_eq!(
        serving(&verdict, MTLS_API, "/accounts"),
        ["HTTPRoute open-banking/open-banking-apis /open-banking-nz/v3.0"]
    );

    // The longest PathPrefix wins, by path elements.
    let longer = route(
        "accounts",
        "[{name: mtls, sectionName: mtls-api}]",
        &format!("[{MTLS_API}]"),
        "[{matches: [{path: {type: PathPrefix, value: /open-banking-nz/v3.0/accounts/}}]}]",
    );
    let verdict = on_api(vec![longer]);
    assert_eq!(
        serving(&verdict, MTLS_API, BALANCES),
        ["HTTPRoute open-banking/accounts /open-banking-nz/v3.0/accounts/"]
    );
    assert_eq!(
        serving(&verdict, MTLS_API, "/accounts"),
        ["HTTPRoute open-banking/accounts /open-banking-nz/v3.0/accounts/"]
    );
    assert_eq!(
        serving(&verdict, MTLS_API, "/account-access-consents"),
        ["HTTPRoute open-banking/open-banking-apis /open-banking-nz/v3.0"]
    );

    // A match that also tests a header may or may not apply: both may serve.
    let header = route(
        "accounts-beta",
        "[{name: mtls, sectionName: mtls-api}]",
        &format!("[{MTLS_API}]"),
        "[{matches: [{path: {type: PathPrefix, value: /open-banking-nz/v3.0/accounts}, headers: [{name: x-beta, value: \"1\"}]}]}]",
    );
    let verdict = on_api(vec![header]);
    assert_eq!(
        serving(&verdict, MTLS_API, BALANCES),
        [
            "HTTPRoute open-banking/accounts-beta /open-banking-nz/v3.0/accounts",
            "HTTPRoute open-banking/open-banking-apis /open-banking-nz/v3.0"
        ]
    );

    // An exact hostname beats a wildcard one; equal matches: the oldest route wins.
    let wildcard = route(
        "wildcard-accounts",
        "[{name: mtls, sectionName: mtls-api}]",
        "[\"*.bank.example\"]",
        "[{matches: [{path: {type: PathPrefix, value: /open-banking-nz/v3.0/accounts}}]}]",
    );
    // On a listener with an exact hostname both routes' hostnames intersect to it (Envoy
    // Gateway builds one virtual host per intersected hostname): the longer path wins.
    let verdict = on_api(vec![wildcard.clone()]);
    assert_eq!(
        serving(&verdict, MTLS_API, BALANCES),
        ["HTTPRoute open-banking/wildcard-accounts /open-banking-nz/v3.0/accounts"]
    );
    // On a host-less listener the route hostnames decide first.
    let mut docs = split_host();
    docs[3] = docs[3].replace(&format!("      hostname: \"{MTLS_API}\"\n"), "");
    docs.push(wildcard);
    let verdict = evaluate_complete(&docs);
    assert_eq!(
        serving(&verdict, MTLS_API, BALANCES),
        ["HTTPRoute open-banking/open-banking-apis /open-banking-nz/v3.0"]
    );
    let twin = route(
        "open-banking-apis-v2",
        "[{name: mtls, sectionName: mtls-api}]",
        &format!("[{MTLS_API}]"),
        "[{matches: [{path: {type: PathPrefix, value: /open-banking-nz/v3.0}}]}]",
    )
    .replace("2026-01-0", "2025-01-0");
    let verdict = on_api(vec![twin]);
    assert_eq!(
        serving(&verdict, MTLS_API, BALANCES),
        ["HTTPRoute open-banking/open-banking-apis-v2 /open-banking-nz/v3.0"]
    );
    // Equal matches created at the same second: `{namespace}/{name}` alphabetically first.
    let same_age = |name: &str| {
        route(
            name,
            "[{name: mtls, sectionName: mtls-api}]",
            &format!("[{MTLS_API}]"),
            "[{matches: [{path: {type: PathPrefix, value: /open-banking-nz/v3.0}}]}]",
        )
        .lines()
        .map(|l| match l.trim_start().starts_with("creationTimestamp:") {
            true => "  creationTimestamp: \"2025-06-01T00:00:00Z\"",
            false => l,
        })
        .map(|l| format!("{l}\n"))
        .collect::<String>()
    };
    for (names, winner) in [
        (
            ["apis-open-banking", "open-banking-apis-v2"],
            "apis-open-banking",
        ),
        (
            ["open-banking-apis-v2", "open-banking-apis-v1"],
            "open-banking-apis-v1",
        ),
    ] {
        let docs = names.iter().map(|n| same_age(n)).collect();
        let verdict = on_api(docs);
        assert_eq!(
            serving(&verdict, MTLS_API, BALANCES),
            [format!(
                "HTTPRoute open-banking/{winner} /open-banking-nz/v3.0"
            )],
            "{names:?}"
        );
    }

    // Exact beats any PathPrefix.
    let exact_token = route(
        "token-exact",
        "[{name: mtls, sectionName: mtls-auth}]",
        "[]",
        "[{matches: [{path: {type: Exact, value: /token}}]}]",
    );
    let verdict = on_api(vec![exact_token]);
    assert_eq!(
        serving(&verdict, MTLS_AUTH, "/token"),
        ["HTTPRoute open-banking/token-exact /token"]
    );
}

#[test]
fn unmodelled_layouts_fail_closed() {
    let grpc = format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: payments-grpc
  namespace: {NS}
spec:
  parentRefs: [{{name: mtls, sectionName: mtls-api}}]
  hostnames: [{MTLS_API}]
"
    );
    let mut with_grpc = split_host();
    with_grpc.push(grpc);

    let single_host = {
        let mut docs = split_host();
        docs[0] = profile("").replace(MTLS_AUTH, PUBLIC);
        docs
    };
    let selectors = split_host_with_policies(vec![
        policy("mtls-clients", "mtls", None, &client_validation("mode: RequireAndVerify")),
        format!(
            "apiVersion: gateway.envoyproxy.io/v1alpha1
kind: ClientTrafficPolicy
metadata:
  name: by-label
  namespace: {NS}
spec:
  targetSelectors: [{{kind: Gateway, group: gateway.networking.k8s.io, matchLabels: {{tier: edge}}}}]
"
        ),
    ]);
    let mut regex_bomb = split_host();
    regex_bomb.push(route(
        "bomb",
        "[{name: public, sectionName: auth-https}]",
        &format!("[{PUBLIC}]"),
        "[{matches: [{path: {type: RegularExpression, value: \"/((a{100}){100}){100}\"}}]}]",
    ));
    run(vec![
        Case {
            name: "a GRPCRoute on an MTLS listener",
            docs: with_grpc,
            expect: &[(
                UnmodelledSetting,
                MTLS_API,
                None,
                "GRPCRoute open-banking/payments-grpc",
            )],
            codes: &[UnmodelledSetting],
        },
        Case {
            name: "single host: MTLS and TLS endpoints on one host",
            docs: single_host,
            expect: &[(UnmodelledSetting, PUBLIC, None, "Fix: split hosts")],
            codes: &[UnmodelledSetting, MtlsNotRequired],
        },
        Case {
            name: "ClientTrafficPolicy targetSelectors",
            docs: selectors,
            expect: &[(UnmodelledSetting, MTLS_API, None, "targetSelectors")],
            codes: &[UnmodelledSetting],
        },
        Case {
            name: "a regular expression beyond the analysis budget",
            docs: regex_bomb,
            // It may match the issuer-relative MTLS defaults (/token, ...): fail closed.
            expect: &[(UnmodelledSetting, PUBLIC, None, "cannot analyse")],
            codes: &[UnmodelledSetting, MtlsNotRequired],
        },
    ]);
}

/// Renders the labelled Gateway `name` of `docs` for the profile (`docs[0]`).
fn render(
    docs: &[String],
    name: &str,
) -> Result<serde_json::Value, Vec<mtls_gate::dialect::gateway::GatewayRenderRefusal>> {
    use mtls_gate::dialect::gateway::{GATEWAY, GatewayView, render_gateway};
    use mtls_gate::model::{Lookup, ObjectKey, ObjectSource};
    let text = common::stream(docs);
    let documents =
        mtls_gate::manifest::parse_documents(std::path::Path::new("bank.yaml"), &text).unwrap();
    let manifests = mtls_gate::manifest::load(documents, "default", true).unwrap();
    let Lookup::Found(object) = manifests.view.object(&GATEWAY, &ObjectKey::new(NS, name)) else {
        panic!("no Gateway {name}");
    };
    let gateway = object.as_any().downcast_ref::<GatewayView>().unwrap();
    render_gateway(&manifests.profiles[0].1, gateway)
}

/// `doc` with the merge patch applied.
fn patched(doc: &str, patch: &serde_json::Value) -> String {
    let mut value: serde_json::Value = serde_yaml_ng::from_str(doc).unwrap();
    json_patch::merge(&mut value, patch);
    serde_yaml_ng::to_string(&value).unwrap()
}

fn ca_secret() -> String {
    let pem = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/client-ca.crt"
    ))
    .unwrap();
    let indented: String = pem.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: open-banking-client-ca\n  namespace: {NS}\nstringData:\n  ca.crt: |\n{indented}"
    )
}

#[test]
fn rendering_a_labelled_gateway() {
    // The MTLS Gateway without client validation, labelled for the profile: rendering
    // requires verified certificates on its port 443, and the result passes the check.
    let mut docs = split_host();
    docs[3] = gateway("mtls", "eg", &mtls_listeners(), "").replace(
        "  namespace: open-banking\n",
        "  namespace: open-banking\n  labels: {mtls-gate.io/profile: example-bank}\n",
    );
    docs.push(ca_secret());
    assert!(!evaluate_complete(&docs).compliant);
    let patch = render(&docs, "mtls").expect("renders");
    assert_eq!(
        patch["spec"]["tls"]["frontend"]["perPort"],
        serde_json::json!([{"port": 443, "tls": {"validation": {
            "mode": "AllowValidOnly",
            "caCertificateRefs": [{"group": "", "kind": "Secret", "name": "open-banking-client-ca"}]
        }}}])
    );
    docs[3] = patched(&docs[3], &patch);
    let verdict = evaluate_complete(&docs);
    assert!(verdict.compliant, "{}", describe(&verdict));

    // The public Gateway serves only TLS hosts: no validation.
    let patch = render(&docs, "public").expect("renders");
    assert_eq!(
        patch["spec"]["tls"]["frontend"]["perPort"],
        serde_json::Value::Null
    );
    assert_eq!(
        patch["spec"]["tls"]["frontend"]["default"],
        serde_json::json!({})
    );

    // MTLS and TLS hosts on one port: refused, naming the hosts and the reason.
    let mut shared = split_host();
    shared[3] = gateway(
        "mtls",
        "eg",
        &[
            ("mtls-api", "HTTPS", 443, Some(MTLS_API)),
            ("auth-https", "HTTPS", 443, Some(PUBLIC)),
        ],
        "",
    );
    let refusals = render(&shared, "mtls").expect_err("refused");
    assert_eq!(refusals.len(), 1);
    let message = refusals[0].to_string();
    for fragment in [
        "Gateway open-banking/mtls port 443",
        "MTLS hosts mtls-api.bank.example (listener \"mtls-api\")",
        "TLS hosts auth.bank.example (listener \"auth-https\")",
        "connection coalescing",
        "Move the TLS hosts to another port or Gateway",
    ] {
        assert!(message.contains(fragment), "{fragment:?} not in {message}");
    }
}

#[test]
fn core_kinds_match_an_api_version_without_group() {
    use mtls_gate::dialect::gateway::{CONFIG_MAP, GATEWAY};
    use mtls_gate::dialect::kind_owner;
    assert_eq!(CONFIG_MAP.api_version(), "v1");
    assert_eq!(GATEWAY.api_version(), "gateway.networking.k8s.io/v1");
    assert!(kind_owner("v1", "ConfigMap").is_some());
    // The AdmissionReview form of a core kind: empty group.
    assert!(kind_owner("/v1", "ConfigMap").is_some());
    assert!(kind_owner("apps/v1", "ConfigMap").is_none());
    assert!(kind_owner("v1", "Secret").is_none());
    assert!(kind_owner("", "ConfigMap").is_none());
    assert!(kind_owner("gateway.networking.k8s.io/v1beta1", "HTTPRoute").is_some());
}

/// Runs the `mtls-gate` binary with `args` on `docs` (one file) and returns (exit, stdout,
/// stderr).
fn cli(args: &[&str], docs: &[String]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bank.yaml");
    std::fs::write(&file, common::stream(docs)).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mtls-gate"))
        .args(args)
        .arg(&file)
        .output()
        .expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// `doc` labelled `mtls-gate.io/profile: example-bank`.
fn labelled(doc: String) -> String {
    doc.replace(
        "  namespace: open-banking\n",
        "  namespace: open-banking\n  labels: {mtls-gate.io/profile: example-bank}\n",
    )
}

/// `mtls-gate render` writes a labelled Gateway as the mutating webhook renders it, and
/// the output passes `check`; a Gateway that no rendering can fix is refused (exit 1).
#[test]
fn render_command_outputs_labelled_gateways() {
    struct Case {
        name: &'static str,
        /// The MTLS Gateway (labelled).
        mtls_gateway: String,
        /// Exit status of `render`.
        exit: i32,
        /// `spec.tls.frontend.perPort` of the rendered MTLS Gateway (when rendered).
        per_port: serde_json::Value,
        stderr: &'static str,
    }
    let rendered_443 = serde_json::json!([{"port": 443, "tls": {"validation": {
        "mode": "AllowValidOnly",
        "caCertificateRefs": [{"group": "", "kind": "Secret", "name": "open-banking-client-ca"}]
    }}}]);
    let cases = [
        Case {
            name: "MTLS Gateway without client validation",
            mtls_gateway: labelled(gateway("mtls", "eg", &mtls_listeners(), "")),
            exit: 0,
            per_port: rendered_443.clone(),
            stderr: "",
        },
        Case {
            name: "MTLS Gateway with AllowInsecureFallback",
            mtls_gateway: labelled(gateway(
                "mtls",
                "eg",
                &mtls_listeners(),
                &FRONTEND_REQUIRED.replace("AllowValidOnly", "AllowInsecureFallback"),
            )),
            exit: 0,
            per_port: rendered_443.clone(),
            stderr: "",
        },
        Case {
            name: "MTLS Gateway serving the MTLS hosts on 443 and 8443",
            mtls_gateway: labelled(gateway(
                "mtls",
                "eg",
                &[
                    ("mtls-auth", "HTTPS", 8443, Some(MTLS_AUTH)),
                    ("mtls-api", "HTTPS", 443, Some(MTLS_API)),
                ],
                "",
            )),
            exit: 0,
            per_port: {
                let mut both = rendered_443.clone();
                let mut other = both[0].clone();
                other["port"] = 8443.into();
                both.as_array_mut().unwrap().push(other);
                both
            },
            stderr: "",
        },
        Case {
            name: "MTLS and TLS hosts on one port",
            mtls_gateway: labelled(gateway(
                "mtls",
                "eg",
                &[
                    ("mtls-api", "HTTPS", 443, Some(MTLS_API)),
                    ("auth-https", "HTTPS", 443, Some(PUBLIC)),
                ],
                "",
            )),
            exit: 1,
            per_port: serde_json::Value::Null,
            stderr: "cannot render for profile example-bank: Gateway open-banking/mtls port 443: serves MTLS hosts mtls-api.bank.example",
        },
    ];
    for case in cases {
        let name = case.name;
        let mut docs = split_host();
        docs[3] = case.mtls_gateway;
        docs.push(ca_secret());
        let (exit, out, err) = cli(&["render", "--assume-complete"], &docs);
        assert_eq!(exit, case.exit, "[{name}] {err}");
        assert!(err.contains(case.stderr), "[{name}] {err}");
        if exit != 0 {
            continue;
        }
        let rendered: Vec<serde_json::Value> = serde_yaml_ng::Deserializer::from_str(&out)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .filter(|v: &serde_json::Value| !v.is_null())
            .collect();
        let mtls = rendered
            .iter()
            .find(|d| d["kind"] == "Gateway" && d["metadata"]["name"] == "mtls")
            .expect("the MTLS Gateway is in the output");
        assert_eq!(
            mtls["spec"]["tls"]["frontend"]["perPort"], case.per_port,
            "[{name}]"
        );
        assert_eq!(
            mtls["spec"]["listeners"].as_array().map(Vec::len),
            Some(2),
            "[{name}] the rest of the Gateway is kept"
        );
        // The rendered output is compliant, and rendering it again changes nothing.
        let again: Vec<String> = rendered
            .iter()
            .map(|d| serde_yaml_ng::to_string(d).unwrap())
            .collect();
        let (exit, report, _) = cli(&["check", "--assume-complete"], &again);
        assert_eq!(exit, 0, "[{name}] rendered output fails check:\n{report}");
        let (exit, out_again, _) = cli(&["render", "--assume-complete"], &again);
        assert_eq!(exit, 0, "[{name}]");
        let reparsed: Vec<serde_json::Value> = serde_yaml_ng::Deserializer::from_str(&out_again)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .filter(|v: &serde_json::Value| !v.is_null())
            .collect();
        assert_eq!(reparsed, rendered, "[{name}] rendering is idempotent");
    }
}

/// A ReferenceGrant in `namespace` (v1beta1, as every Gateway API release serves it).
fn reference_grant(namespace: &str, from: &str, to: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata:
  name: client-ca-for-gateways
  namespace: {namespace}
spec:
  from: [{from}]
  to: [{to}]
"
    )
}

/// GEP-91 `FrontendTLSValidation.CACertificateRefs`: a CA in another namespace is valid only
/// with a ReferenceGrant there (else ResolvedRefs False, RefNotPermitted); Envoy Gateway
/// never lets a ClientTrafficPolicy refer across namespaces.
#[test]
fn a_ca_in_another_namespace_needs_a_reference_grant() {
    // The bank's PKI team keeps the client CA in namespace `pki`.
    let pki_split_host = |grants: &[String]| {
        let mut docs = split_host();
        docs[1] =
            common::gateway_ca_config_map().replace("namespace: open-banking", "namespace: pki");
        docs[3] = docs[3].replace(
            "name: open-banking-client-ca}",
            "name: open-banking-client-ca, namespace: pki}",
        );
        docs.extend(grants.iter().cloned());
        docs
    };
    let gateways_of_open_banking =
        "{group: gateway.networking.k8s.io, kind: Gateway, namespace: open-banking}";
    let the_ca = "{group: \"\", kind: ConfigMap, name: open-banking-client-ca}";
    let policy_in_pki = {
        let mut docs = split_host_with_policies(vec![policy(
            "mtls-clients",
            "mtls",
            None,
            &client_validation("mode: RequireAndVerify").replace(
                "name: open-banking-client-ca}",
                "name: open-banking-client-ca, namespace: pki}",
            ),
        )]);
        docs[1] =
            common::gateway_ca_config_map().replace("namespace: open-banking", "namespace: pki");
        docs.push(reference_grant(
            "pki",
            "{group: gateway.envoyproxy.io, kind: ClientTrafficPolicy, namespace: open-banking}",
            the_ca,
        ));
        docs
    };
    run(vec![
        Case {
            name: "granted to Gateways of the namespace, for this ConfigMap",
            docs: pki_split_host(&[reference_grant("pki", gateways_of_open_banking, the_ca)]),
            expect: &[],
            codes: &[],
        },
        Case {
            name: "granted for every ConfigMap of the namespace (to without a name)",
            docs: pki_split_host(&[reference_grant(
                "pki",
                gateways_of_open_banking,
                "{group: \"\", kind: ConfigMap}",
            )]),
            expect: &[],
            codes: &[],
        },
        Case {
            name: "no ReferenceGrant",
            docs: pki_split_host(&[]),
            expect: &[
                (CaSecretInvalid, MTLS_API, None, "RefNotPermitted"),
                (MtlsNotRequired, MTLS_API, Some(BALANCES), ""),
            ],
            codes: &[CaSecretInvalid, MtlsNotRequired],
        },
        Case {
            name: "the grant is in the Gateway's namespace, not the CA's",
            docs: pki_split_host(&[reference_grant(
                "open-banking",
                gateways_of_open_banking,
                the_ca,
            )]),
            expect: &[(
                CaSecretInvalid,
                MTLS_AUTH,
                None,
                "no ReferenceGrant in namespace pki",
            )],
            codes: &[CaSecretInvalid, MtlsNotRequired],
        },
        Case {
            name: "the grant is for Gateways of another namespace",
            docs: pki_split_host(&[reference_grant(
                "pki",
                "{group: gateway.networking.k8s.io, kind: Gateway, namespace: payments}",
                the_ca,
            )]),
            expect: &[(CaSecretInvalid, MTLS_API, None, "RefNotPermitted")],
            codes: &[CaSecretInvalid, MtlsNotRequired],
        },
        Case {
            name: "the grant names another ConfigMap",
            docs: pki_split_host(&[reference_grant(
                "pki",
                gateways_of_open_banking,
                "{group: \"\", kind: ConfigMap, name: payments-client-ca}",
            )]),
            expect: &[(CaSecretInvalid, MTLS_API, None, "RefNotPermitted")],
            codes: &[CaSecretInvalid, MtlsNotRequired],
        },
        Case {
            name: "the grant is for Secrets, the reference names a ConfigMap",
            docs: pki_split_host(&[reference_grant(
                "pki",
                gateways_of_open_banking,
                "{group: \"\", kind: Secret}",
            )]),
            expect: &[(CaSecretInvalid, MTLS_API, None, "RefNotPermitted")],
            codes: &[CaSecretInvalid, MtlsNotRequired],
        },
        Case {
            name: "a ClientTrafficPolicy never refers across namespaces, grant or not",
            docs: policy_in_pki,
            expect: &[(
                CaSecretInvalid,
                MTLS_API,
                None,
                "does not allow cross-namespace CA references from a ClientTrafficPolicy",
            )],
            codes: &[CaSecretInvalid, MtlsNotRequired],
        },
    ]);
}

/// An Envoy Gateway SecurityPolicy (`gateway.envoyproxy.io/v1alpha1`).
fn security_policy(name: &str, target: &str, gate: &str) -> String {
    format!(
        "apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata:
  name: {name}
  namespace: {NS}
spec:
  targetRefs: [{target}]
{gate}"
    )
}

const EXT_AUTH_GATE: &str = "  extAuth:
    http:
      backendRefs: [{name: mtls-gate, port: 8443}]
      path: /verify
      headersToBackend: [x-client-cert]
";
const JWT_AUTH: &str = "  jwt:
    providers:
      - name: bank
        remoteJWKS: {uri: https://auth.bank.example/jwks}
";

/// SecurityPolicies are not modelled: where one could be taken for the MTLS gate (an MTLS
/// host whose handshake does not require a verified certificate, single-host layouts
/// included) it is reported and the host fails closed. Where the handshake already
/// requires verified certificates, a SecurityPolicy only acts on requests that passed it
/// (Envoy HTTP filters), so it cannot admit a client without one: no finding.
#[test]
fn security_policies_are_not_credited_as_the_mtls_gate() {
    let api_route_target =
        "{group: gateway.networking.k8s.io, kind: HTTPRoute, name: open-banking-apis}";
    let mtls_gateway_target = "{group: gateway.networking.k8s.io, kind: Gateway, name: mtls}";
    // The single-host layout: the public host also serves the MTLS endpoints, without
    // validation at the handshake, gated by ext auth on a Gateway-wide SecurityPolicy.
    let single_host = {
        let mut docs = split_host();
        docs[0] = profile("").replace(MTLS_AUTH, PUBLIC);
        docs.push(
            mtls_auth_route("[{name: public, sectionName: auth-https}]")
                .replace(
                    &format!("hostnames: [{MTLS_AUTH}]"),
                    &format!("hostnames: [{PUBLIC}]"),
                )
                .replace(
                    "name: authorization-server-mtls",
                    "name: authorization-server-gated",
                ),
        );
        docs.push(security_policy(
            "mtls-gate",
            "{group: gateway.networking.k8s.io, kind: Gateway, name: public}",
            EXT_AUTH_GATE,
        ));
        docs
    };
    let insecure_fallback = |policy: String| {
        let mut docs = split_host();
        docs[3] = docs[3].replace("mode: AllowValidOnly", "mode: AllowInsecureFallback");
        docs.push(policy);
        docs
    };
    let compliant_with = |policy: String| {
        let mut docs = split_host();
        docs.push(policy);
        docs
    };
    run(vec![
        Case {
            name: "single host gated by a SecurityPolicy extAuth",
            docs: single_host,
            expect: &[
                (
                    UnmodelledSetting,
                    PUBLIC,
                    None,
                    "SecurityPolicy open-banking/mtls-gate (extAuth)",
                ),
                (UnmodelledSetting, PUBLIC, None, "Fix: split hosts"),
            ],
            codes: &[UnmodelledSetting, MtlsNotRequired],
        },
        Case {
            name: "AllowInsecureFallback plus an extAuth gate on the API route",
            docs: insecure_fallback(security_policy("api-gate", api_route_target, EXT_AUTH_GATE)),
            expect: &[
                (
                    UnmodelledSetting,
                    MTLS_API,
                    None,
                    "HTTPRoute open-banking/open-banking-apis",
                ),
                (MtlsNotRequired, MTLS_API, Some(BALANCES), ""),
            ],
            codes: &[UnmodelledSetting, MtlsNotRequired],
        },
        Case {
            name: "AllowInsecureFallback plus an extAuth gate on the Gateway listener",
            docs: insecure_fallback(security_policy(
                "listener-gate",
                "{group: gateway.networking.k8s.io, kind: Gateway, name: mtls, sectionName: mtls-auth}",
                EXT_AUTH_GATE,
            )),
            expect: &[(UnmodelledSetting, MTLS_AUTH, None, "listener \"mtls-auth\"")],
            codes: &[UnmodelledSetting, MtlsNotRequired],
        },
        Case {
            name: "verified certificates at the handshake, JWT on the API route",
            docs: compliant_with(security_policy("api-jwt", api_route_target, JWT_AUTH)),
            expect: &[],
            codes: &[],
        },
        Case {
            name: "verified certificates at the handshake, extAuth on the whole Gateway",
            docs: compliant_with(security_policy(
                "gw-gate",
                mtls_gateway_target,
                EXT_AUTH_GATE,
            )),
            expect: &[],
            codes: &[],
        },
    ]);
}

/// A ListenerSet or XListenerSet `name` for Gateway `mtls` with one HTTPS listener.
fn listener_set(api_version: &str, kind: &str, hostname: &str, port: u16) -> String {
    format!(
        "apiVersion: {api_version}
kind: {kind}
metadata:
  name: team-listeners
  namespace: {NS}
spec:
  parentRef: {{name: mtls}}
  listeners:
    - name: extra
      protocol: HTTPS
      port: {port}
      hostname: \"{hostname}\"
      tls: {{mode: Terminate, certificateRefs: [{{name: extra-tls}}]}}
"
    )
}

/// ListenerSets are not modelled: one that may add a listener for a profile host makes the
/// host fail closed; one for other hosts or ports changes nothing.
#[test]
fn listener_sets_fail_closed_on_profile_hosts() {
    let with = |doc: String| {
        let mut docs = split_host();
        docs.push(doc);
        docs
    };
    run(vec![
        Case {
            name: "ListenerSet (v1.5 standard) with a listener for the API host",
            docs: with(listener_set(
                "gateway.networking.k8s.io/v1",
                "ListenerSet",
                MTLS_API,
                443,
            )),
            expect: &[(
                UnmodelledSetting,
                MTLS_API,
                None,
                "ListenerSet open-banking/team-listeners adds listener \"extra\"",
            )],
            codes: &[UnmodelledSetting],
        },
        Case {
            name: "XListenerSet (experimental) with a wildcard listener",
            docs: with(listener_set(
                "gateway.networking.x-k8s.io/v1alpha1",
                "XListenerSet",
                "*.bank.example",
                443,
            )),
            expect: &[
                (
                    UnmodelledSetting,
                    MTLS_API,
                    None,
                    "XListenerSet open-banking/team-listeners",
                ),
                (
                    UnmodelledSetting,
                    MTLS_AUTH,
                    None,
                    "XListenerSet open-banking/team-listeners",
                ),
                (
                    UnmodelledSetting,
                    PUBLIC,
                    None,
                    "XListenerSet open-banking/team-listeners",
                ),
            ],
            codes: &[UnmodelledSetting],
        },
        Case {
            name: "a ListenerSet for another host",
            docs: with(listener_set(
                "gateway.networking.k8s.io/v1",
                "ListenerSet",
                "payments.bank.example",
                443,
            )),
            expect: &[],
            codes: &[],
        },
        Case {
            name: "a ListenerSet for the API host on a port no endpoint uses",
            docs: with(listener_set(
                "gateway.networking.k8s.io/v1",
                "ListenerSet",
                MTLS_API,
                9443,
            )),
            expect: &[],
            codes: &[],
        },
    ]);
}

/// GatewayClass `name` of Envoy Gateway with `parametersRef` YAML (flow), if any.
fn gateway_class(name: &str, parameters_ref: Option<&str>) -> String {
    let mut out = format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: {name}
spec:
  controllerName: gateway.envoyproxy.io/gatewayclass-controller
"
    );
    if let Some(r) = parameters_ref {
        out += &format!("  parametersRef: {r}\n");
    }
    out
}

/// EnvoyProxy `envoy-gateway-system/{name}` with `spec` lines (indented under `spec:`).
fn envoy_proxy(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: gateway.envoyproxy.io/v1alpha1
kind: EnvoyProxy
metadata:
  name: {name}
  namespace: envoy-gateway-system
spec:
  provider:
    type: Kubernetes
    kubernetes:
      envoyDeployment: {{replicas: 2}}
{spec}"
    )
}

/// Envoy Gateway merged Gateways (EnvoyProxy `spec.mergeGateways: true` named by the
/// GatewayClass) put the listeners of every Gateway of the class on one proxy fleet: the
/// per-port checks would have to span Gateways, so hosts served by such a class fail closed.
#[test]
fn merged_gateways_fail_closed() {
    let to_proxy = "{group: gateway.envoyproxy.io, kind: EnvoyProxy, name: shared-proxy, namespace: envoy-gateway-system}";
    let with = |extra: Vec<String>| {
        let mut docs = split_host();
        docs.extend(extra);
        docs
    };
    run(vec![
        Case {
            name: "the class without parameters",
            docs: with(vec![gateway_class("eg", None)]),
            expect: &[],
            codes: &[],
        },
        Case {
            name: "an EnvoyProxy that keeps Gateways apart (mergeGateways unset)",
            docs: with(vec![
                gateway_class("eg", Some(to_proxy)),
                envoy_proxy("shared-proxy", ""),
            ]),
            expect: &[],
            codes: &[],
        },
        Case {
            name: "an EnvoyProxy with mergeGateways: false",
            docs: with(vec![
                gateway_class("eg", Some(to_proxy)),
                envoy_proxy("shared-proxy", "  mergeGateways: false\n"),
            ]),
            expect: &[],
            codes: &[],
        },
        Case {
            name: "merged Gateways: every host of the class fails closed",
            docs: with(vec![
                gateway_class("eg", Some(to_proxy)),
                envoy_proxy("shared-proxy", "  mergeGateways: true\n"),
            ]),
            expect: &[
                (
                    UnmodelledSetting,
                    MTLS_API,
                    None,
                    "Gateway open-banking/mtls serves host mtls-api.bank.example on port 443, and its GatewayClass eg uses EnvoyProxy envoy-gateway-system/shared-proxy, which sets mergeGateways: true",
                ),
                (UnmodelledSetting, MTLS_AUTH, None, "mergeGateways: true"),
                (
                    UnmodelledSetting,
                    PUBLIC,
                    None,
                    "Gateway open-banking/public serves host auth.bank.example",
                ),
            ],
            codes: &[UnmodelledSetting],
        },
        Case {
            name: "merged Gateways of another class",
            docs: with(vec![
                gateway_class("eg", None),
                gateway_class("eg-merged", Some(to_proxy)),
                envoy_proxy("shared-proxy", "  mergeGateways: true\n"),
            ]),
            expect: &[],
            codes: &[],
        },
        Case {
            name: "the class names an EnvoyProxy that does not exist",
            docs: with(vec![gateway_class("eg", Some(to_proxy))]),
            expect: &[(
                UnmodelledSetting,
                MTLS_API,
                None,
                "names EnvoyProxy envoy-gateway-system/shared-proxy in its parametersRef, which does not exist",
            )],
            codes: &[UnmodelledSetting],
        },
        Case {
            name: "the class names an EnvoyProxy without a namespace",
            docs: with(vec![
                gateway_class(
                    "eg",
                    Some("{group: gateway.envoyproxy.io, kind: EnvoyProxy, name: shared-proxy}"),
                ),
                envoy_proxy("shared-proxy", "  mergeGateways: false\n"),
            ]),
            expect: &[(UnmodelledSetting, MTLS_AUTH, None, "without a namespace")],
            codes: &[UnmodelledSetting],
        },
        Case {
            name: "parameters of another implementation are not read",
            docs: with(vec![gateway_class(
                "eg",
                Some(
                    "{group: gateway.nginx.org, kind: NginxProxy, name: shared-proxy, namespace: nginx-gateway}",
                ),
            )]),
            expect: &[],
            codes: &[],
        },
    ]);
}

/// The validating webhook reviews GatewayClasses (cluster-scoped) and EnvoyProxies: a change
/// that merges the Gateways serving the bank's hosts is denied, one that stops it is
/// admitted, judged on the world after the change.
#[test]
fn admission_reviews_gateway_classes_and_envoy_proxies() {
    use mtls_gate::admission::OutcomeKind;
    use mtls_gate::manifest::{load, parse_documents, read_paths};
    use mtls_gate::model::ObjectKey;

    let to_proxy = Some(
        "{group: gateway.envoyproxy.io, kind: EnvoyProxy, name: shared-proxy, namespace: envoy-gateway-system}",
    );
    let merged = || envoy_proxy("shared-proxy", "  mergeGateways: true\n");
    let separate = || envoy_proxy("shared-proxy", "  mergeGateways: false\n");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    // (case, objects already in the cluster, the object created or updated, its key, allowed)
    let cases = [
        (
            "the class starts using an EnvoyProxy that merges Gateways",
            vec![merged()],
            gateway_class("eg", to_proxy),
            ObjectKey::new("", "eg"),
            false,
        ),
        (
            "the class's EnvoyProxy turns mergeGateways on",
            vec![gateway_class("eg", to_proxy), separate()],
            merged(),
            ObjectKey::new("envoy-gateway-system", "shared-proxy"),
            false,
        ),
        (
            "the class's EnvoyProxy turns mergeGateways off",
            vec![gateway_class("eg", to_proxy), merged()],
            separate(),
            ObjectKey::new("envoy-gateway-system", "shared-proxy"),
            true,
        ),
        (
            "a class without parameters",
            vec![],
            gateway_class("eg", None),
            ObjectKey::new("", "eg"),
            true,
        ),
    ];
    for (desc, existing, change, key, allowed) in cases {
        let mut docs =
            read_paths(&[root.join("examples/gateway-api-split-host")]).expect("example reads");
        let extra = existing.join("---\n");
        docs.extend(parse_documents(std::path::Path::new("cluster.yaml"), &extra).expect("parses"));
        let view = load(docs, "default", true).expect("loads").view;
        let manifest: serde_json::Value = serde_yaml_ng::from_str(&change).expect("YAML");
        let (reviewed, outcome) = common::review_object_change(&view, &manifest, "");
        assert_eq!(reviewed, key, "{desc}: the view's key is the review's");
        assert_eq!(outcome.allowed, allowed, "{desc}: {:?}", outcome.message);
        if !allowed {
            assert_eq!(outcome.decision, OutcomeKind::Denied, "{desc}");
            let message = outcome.message.unwrap_or_default();
            assert!(message.contains("mergeGateways: true"), "{desc}: {message}");
        }
    }
}
