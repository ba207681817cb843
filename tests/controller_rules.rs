//! How ingress-nginx and Traefik really apply client-certificate settings
//! (shared/reference/ingress-controllers.md §1-§2, design.md §2), one test per rule, with
//! the manifests a platform team would write.

mod common;

use common::*;
use mtls_gate::catalog::{ENDPOINT_TABLE, Scheme};
use mtls_gate::engine::Verdict;
use mtls_gate::violation::ViolationCode::{self, *};

// ---------------------------------------------------------------------------------------
// Layouts
// ---------------------------------------------------------------------------------------

/// The six MTLS authorisation endpoints of the single-host profile (issuer `/oauth2`).
const SINGLE_HOST_MTLS_AUTH: [&str; 6] = [
    "/oauth2/token",
    "/oauth2/par",
    "/oauth2/bc-authorize",
    "/oauth2/introspect",
    "/oauth2/revoke",
    "/oauth2/userinfo",
];
/// The three TLS endpoints of the single-host profile.
const SINGLE_HOST_TLS: [&str; 3] = [
    "/oauth2/authorize",
    "/oauth2/jwks",
    "/oauth2/.well-known/openid-configuration",
];

/// Every MTLS endpoint of the table, sorted.
fn all_mtls() -> Vec<&'static str> {
    sorted(
        ENDPOINT_TABLE
            .iter()
            .filter(|r| r.scheme == Scheme::Mtls)
            .map(|r| r.endpoint),
    )
}

/// Every TLS endpoint of the table, sorted.
fn all_tls() -> Vec<&'static str> {
    sorted(
        ENDPOINT_TABLE
            .iter()
            .filter(|r| r.scheme == Scheme::Tls)
            .map(|r| r.endpoint),
    )
}

/// Every `/accounts...` endpoint, sorted.
fn accounts_endpoints() -> Vec<&'static str> {
    sorted(
        ENDPOINT_TABLE
            .iter()
            .map(|r| r.endpoint)
            .filter(|e| e.starts_with("/accounts")),
    )
}

fn sorted(it: impl Iterator<Item = &'static str>) -> Vec<&'static str> {
    let mut v: Vec<_> = it.collect();
    v.sort_unstable();
    v
}

/// Single host: the TLS endpoints' Ingress (no client-auth annotations yet).
fn oauth2_public() -> Ingress {
    SINGLE_HOST_TLS
        .iter()
        .fold(Ingress::new("oauth2-public", SINGLE_HOST), |i, p| {
            i.exact(p)
        })
}

/// Single host: the MTLS endpoints' Ingress (no client-auth annotations yet).
fn oauth2_and_apis_mtls() -> Ingress {
    SINGLE_HOST_MTLS_AUTH
        .iter()
        .fold(Ingress::new("oauth2-and-apis-mtls", SINGLE_HOST), |i, p| {
            i.exact(p)
        })
        .prefix(API_BASE)
}

fn single_url(path: &str) -> String {
    format!("https://{SINGLE_HOST}{path}")
}

fn api_url(host: &str, endpoint: &str) -> String {
    format!("https://{host}{API_BASE}{endpoint}")
}

/// The host-level client-auth summary of a host.
fn host_auth<'a>(verdict: &'a Verdict, host: &str) -> &'a str {
    &verdict
        .hosts
        .iter()
        .find(|h| h.host == host)
        .unwrap_or_else(|| panic!("no host summary for {host}"))
        .client_auth
}

fn codes(verdict: &Verdict) -> Vec<ViolationCode> {
    let mut c: Vec<_> = verdict.violations.iter().map(|v| v.code).collect();
    c.sort();
    c.dedup();
    c
}

// =======================================================================================
// ingress-nginx
// =======================================================================================

/// §1.3: `auth-tls-*` are host-wide; the oldest Ingress (creationTimestamp ascending, ties
/// by `namespace/name` descending) whose `auth-tls-secret` resolves to a Secret with
/// `ca.crt` decides for every path of the host, including other Ingresses' paths.
#[test]
fn nginx_oldest_ingress_with_a_ca_decides_for_the_whole_host() {
    let apis = |created: &str| {
        Ingress::new("open-banking-apis", MTLS_API_HOST)
            .created(created)
            .annotations(nginx::client_auth("on"))
            .prefix(API_BASE)
    };
    let legacy = |name: &str, created: &str| {
        Ingress::new(name, MTLS_API_HOST)
            .created(created)
            .annotations(nginx::client_auth("optional"))
            .prefix("/legacy")
    };
    struct Case {
        name: &'static str,
        docs: Vec<String>,
        /// The Ingress whose settings the host uses.
        decider: &'static str,
        /// Whether the APIs end up without required certificates.
        exposed: bool,
    }
    let cases = [
        Case {
            name: "older optional Ingress weakens the newer one that asks for on",
            docs: vec![legacy("legacy-portal", OLDER).yaml(), apis(NEWER).yaml()],
            decider: "open-banking/legacy-portal",
            exposed: true,
        },
        Case {
            name: "older on Ingress wins over a newer optional one",
            docs: vec![apis(OLDER).yaml(), legacy("legacy-portal", NEWER).yaml()],
            decider: "open-banking/open-banking-apis",
            exposed: false,
        },
        Case {
            name: "same timestamp: open-banking/open-banking-apis sorts before open-banking/aaa-legacy",
            docs: vec![legacy("aaa-legacy", OLDER).yaml(), apis(OLDER).yaml()],
            decider: "open-banking/open-banking-apis",
            exposed: false,
        },
        Case {
            name: "same timestamp: open-banking/zzz-legacy sorts before open-banking/open-banking-apis",
            docs: vec![apis(OLDER).yaml(), legacy("zzz-legacy", OLDER).yaml()],
            decider: "open-banking/zzz-legacy",
            exposed: true,
        },
        Case {
            name: "older Ingress whose Secret has no ca.crt does not decide",
            docs: vec![
                secret(
                    NS,
                    "legacy-ca",
                    &[("tls.crt", CA_PEM), ("tls.key", "unused")],
                ),
                legacy("legacy-portal", OLDER)
                    .annotation(nginx::AUTH_TLS_SECRET, "open-banking/legacy-ca")
                    .yaml(),
                apis(NEWER).yaml(),
            ],
            decider: "open-banking/open-banking-apis",
            exposed: false,
        },
    ];
    for case in cases {
        let mut docs = vec![Profile::split_host().yaml(), ca_secret()];
        docs.extend(case.docs);
        let verdict = evaluate(&docs);
        let name = case.name;
        assert!(
            host_auth(&verdict, MTLS_API_HOST).contains(&format!("from Ingress {}", case.decider)),
            "[{name}] host settings must come from {}: {}",
            case.decider,
            host_auth(&verdict, MTLS_API_HOST)
        );
        let exposed = endpoints_with(&verdict, MtlsNotRequired);
        if case.exposed {
            assert_eq!(exposed.len(), 34, "[{name}] every API endpoint is exposed");
            let v = naming(&verdict, "/accounts");
            assert_eq!(
                ingress_of(v[0]).as_deref(),
                Some("open-banking/open-banking-apis"),
                "[{name}]"
            );
            assert!(
                v[0].message.contains(case.decider),
                "[{name}] {}",
                v[0].message
            );
        } else {
            assert!(exposed.is_empty(), "[{name}]\n{}", describe(&verdict));
        }
        // The ignored Ingress's differing settings are an order-dependent merge.
        let conflicts = with_code(&verdict, HostSettingsConflict);
        assert_eq!(conflicts.len(), 1, "[{name}]\n{}", describe(&verdict));
        assert_ne!(
            ingress_of(conflicts[0]).as_deref(),
            Some(case.decider),
            "[{name}] the conflict names the Ingress whose settings are ignored"
        );
    }
}

/// §1.2: a path of an Ingress without any `auth-tls-*` annotation gets the host's settings
/// from another Ingress of the host.
#[test]
fn nginx_paths_of_an_ingress_without_annotations_inherit_the_host_settings() {
    let cache = Ingress::new("accounts-cache", MTLS_API_HOST)
        .created(OLDER)
        .prefix("/open-banking-nz/v3.0/accounts");
    let apis = Ingress::new("open-banking-apis", MTLS_API_HOST)
        .created(NEWER)
        .annotations(nginx::client_auth("on"))
        .prefix(API_BASE);
    let verdict = evaluate(&[
        Profile::split_host().yaml(),
        ca_secret(),
        cache.yaml(),
        apis.yaml(),
    ]);
    assert!(verdict.compliant, "{}", describe(&verdict));
    let url = api_url(MTLS_API_HOST, "/accounts/{AccountId}/balances");
    assert_eq!(
        serving(&verdict, "/accounts/{AccountId}/balances", &url),
        [(
            cache.key(),
            "/open-banking-nz/v3.0/accounts".to_string(),
            "required".to_string()
        )]
    );
}

/// §1.1: `auth-tls-verify-client` is `on|off|optional|optional_no_ca`; a missing or
/// invalid value silently becomes `on`. `auth-tls-secret` may omit the namespace (the
/// Ingress's own).
#[test]
fn nginx_auth_tls_annotation_values() {
    for (name, secret, verify, token_auth) in [
        (
            "on",
            "open-banking/open-banking-client-ca",
            Some("on"),
            "required",
        ),
        (
            "off",
            "open-banking/open-banking-client-ca",
            Some("off"),
            "none",
        ),
        (
            "optional",
            "open-banking/open-banking-client-ca",
            Some("optional"),
            "optional",
        ),
        (
            "invalid value \"true\" becomes on",
            "open-banking/open-banking-client-ca",
            Some("true"),
            "required",
        ),
        (
            "upper-case \"ON\" is invalid and becomes on",
            "open-banking/open-banking-client-ca",
            Some("ON"),
            "required",
        ),
        (
            "no verify-client annotation: on",
            "open-banking/open-banking-client-ca",
            None,
            "required",
        ),
        (
            "secret name without namespace: k8s.ParseNameNS fails, the host answers 403",
            "open-banking-client-ca",
            Some("on"),
            "rejected",
        ),
    ] {
        let mut ingress = Ingress::new("authorization-server-mtls", MTLS_AUTH_HOST)
            .annotation(nginx::AUTH_TLS_SECRET, secret)
            .prefix("/");
        if let Some(v) = verify {
            ingress = ingress.annotation(nginx::AUTH_TLS_VERIFY_CLIENT, v);
        }
        let verdict = evaluate(&[Profile::split_host().yaml(), ca_secret(), ingress.yaml()]);
        let url = format!("https://{MTLS_AUTH_HOST}/token");
        assert_eq!(
            serving(&verdict, "/token", &url),
            [(ingress.key(), "/".to_string(), token_auth.to_string())],
            "[{name}]"
        );
        // A value the controller rejects is evaluated as the controller then behaves, and
        // reported (`UnmodelledSetting`): never compliant.
        let valid = verify.is_none_or(|v| ["on", "off", "optional", "optional_no_ca"].contains(&v));
        assert_eq!(
            verdict.compliant,
            token_auth == "required" && valid,
            "[{name}]\n{}",
            describe(&verdict)
        );
        assert_eq!(
            with_code(&verdict, ViolationCode::UnmodelledSetting).len(),
            usize::from(!valid),
            "[{name}]\n{}",
            describe(&verdict)
        );
    }
}

/// §1.4 / design §2: on a host that verifies optionally, only a route whose Ingress sends
/// requests through the profile's gate (`auth-url`) requires a verified certificate;
/// `optional_no_ca` never verifies the chain, gate or not.
#[test]
fn nginx_optional_verification_needs_the_gate() {
    struct Case {
        name: &'static str,
        verify: &'static str,
        auth_url: Option<&'static str>,
        /// clientAuth of the /token route.
        token_auth: &'static str,
        exposed: bool,
    }
    let cases = [
        Case {
            name: "optional without gate",
            verify: "optional",
            auth_url: None,
            token_auth: "optional",
            exposed: true,
        },
        Case {
            name: "optional + gate as rendered (?controller=ingress-nginx)",
            verify: "optional",
            auth_url: Some(NGINX_GATE_URL),
            token_auth: "required-by-gate",
            exposed: false,
        },
        Case {
            name: "optional + the profile's gate URL verbatim",
            verify: "optional",
            auth_url: Some(GATE_URL),
            token_auth: "required-by-gate",
            exposed: false,
        },
        Case {
            name: "optional + some other auth service",
            verify: "optional",
            auth_url: Some("https://oauth2-proxy.auth.svc.cluster.local/oauth2/auth"),
            token_auth: "optional",
            exposed: true,
        },
        Case {
            name: "optional_no_ca + gate: the chain is never verified",
            verify: "optional_no_ca",
            auth_url: Some(NGINX_GATE_URL),
            token_auth: "optional-unverified",
            exposed: true,
        },
        Case {
            name: "optional_no_ca without gate",
            verify: "optional_no_ca",
            auth_url: None,
            token_auth: "optional-unverified",
            exposed: true,
        },
    ];
    for case in cases {
        let name = case.name;
        let public = oauth2_public().annotations(nginx::client_auth(case.verify));
        let mut mtls = oauth2_and_apis_mtls().annotations(nginx::client_auth(case.verify));
        if let Some(url) = case.auth_url {
            mtls = mtls.annotation(nginx::AUTH_URL, url);
        }
        let verdict = evaluate(&[
            Profile::single_host().yaml(),
            ca_secret(),
            public.yaml(),
            mtls.yaml(),
        ]);
        assert_eq!(
            serving(&verdict, "/token", &single_url("/oauth2/token")),
            [(
                mtls.key(),
                "/oauth2/token".to_string(),
                case.token_auth.to_string()
            )],
            "[{name}]"
        );
        if case.exposed {
            assert_eq!(
                endpoints_with(&verdict, MtlsNotRequired),
                all_mtls(),
                "[{name}]"
            );
            let token = naming(&verdict, "/token");
            assert_eq!(ingress_of(token[0]), Some(mtls.key()), "[{name}]");
            assert_eq!(token[0].path.as_deref(), Some("/oauth2/token"), "[{name}]");
        } else {
            assert!(verdict.compliant, "[{name}]\n{}", describe(&verdict));
        }
        // TLS endpoints accept clients without certificates in every case.
        assert!(
            endpoints_with(&verdict, MtlsRequiredOnTlsEndpoint).is_empty(),
            "[{name}]\n{}",
            describe(&verdict)
        );
    }
}

/// §1.4: without a CA on the host nginx never sets `ssl-client-verify`, so the gate sees
/// whatever header the client sent: a gate there proves nothing.
#[test]
fn nginx_gate_on_a_host_without_a_ca_is_forgeable() {
    let public = oauth2_public();
    let mtls = oauth2_and_apis_mtls().annotations(nginx::gate());
    let verdict = evaluate(&[Profile::single_host().yaml(), public.yaml(), mtls.yaml()]);
    assert_eq!(endpoints_with(&verdict, MtlsNotRequired), all_mtls());
    let cov = coverage(&verdict, "/token", &single_url("/oauth2/token"));
    assert_eq!(cov.routes.len(), 1);
    assert_eq!(cov.routes[0].client_auth, "none");
    assert!(
        cov.routes[0].detail.contains("forge"),
        "detail must say the header can be forged: {}",
        cov.routes[0].detail
    );
}

/// §1.2 + design §1: a `Prefix /` catch-all on one host serves TLS and MTLS endpoints alike;
/// whatever the host's client auth, one of the two schemes is violated.
#[test]
fn nginx_prefix_root_catch_all_serves_both_schemes() {
    struct Case {
        name: &'static str,
        profile: Profile,
        annotations: Vec<(String, String)>,
        mtls_exposed: Vec<&'static str>,
        tls_refused: Vec<&'static str>,
    }
    let cases = [
        Case {
            name: "no client auth: every MTLS endpoint exposed",
            profile: Profile::single_host().without_gate(),
            annotations: vec![],
            mtls_exposed: all_mtls(),
            tls_refused: vec![],
        },
        Case {
            name: "verify on: /authorize, JWKS and discovery refuse browsers and relying parties",
            profile: Profile::single_host().without_gate(),
            annotations: nginx::client_auth("on"),
            mtls_exposed: vec![],
            tls_refused: all_tls(),
        },
        Case {
            name: "optional + gate on the catch-all: the gate also guards the TLS endpoints",
            profile: Profile::single_host(),
            annotations: [nginx::client_auth("optional"), nginx::gate()].concat(),
            mtls_exposed: vec![],
            tls_refused: all_tls(),
        },
    ];
    for case in cases {
        let name = case.name;
        let everything = Ingress::new("bank", SINGLE_HOST)
            .annotations(case.annotations)
            .prefix("/");
        let verdict = evaluate(&[case.profile.yaml(), ca_secret(), everything.yaml()]);
        assert_eq!(
            endpoints_with(&verdict, MtlsNotRequired),
            case.mtls_exposed,
            "[{name}]"
        );
        assert_eq!(
            endpoints_with(&verdict, MtlsRequiredOnTlsEndpoint),
            case.tls_refused,
            "[{name}]"
        );
        for v in &verdict.violations {
            assert_eq!(ingress_of(v), Some(everything.key()), "[{name}]");
            assert_eq!(v.path.as_deref(), Some("/"), "[{name}]");
        }
    }
}

/// design §2: "exact before prefix": an `Exact` route of another Ingress takes the request
/// away from a covering `Prefix`, in either direction.
#[test]
fn nginx_exact_route_of_another_ingress_shadows_a_prefix() {
    let gated_prefix = Ingress::new("oauth2-and-apis-mtls", SINGLE_HOST)
        .annotations(nginx::client_auth("optional"))
        .annotations(nginx::gate())
        .prefix("/oauth2")
        .prefix(API_BASE);
    let public = oauth2_public().annotations(nginx::client_auth("optional"));
    struct Case {
        name: &'static str,
        public: Option<Ingress>,
        mtls_exposed: Vec<&'static str>,
        tls_refused: Vec<&'static str>,
        /// (endpoint, path, expected serving Ingress)
        served_by: (&'static str, &'static str, &'static str),
    }
    let cases = [
        Case {
            name: "public Exact routes shadow the gated Prefix /oauth2",
            public: Some(public.clone()),
            mtls_exposed: vec![],
            tls_refused: vec![],
            served_by: (
                "/authorize",
                "/oauth2/authorize",
                "open-banking/oauth2-public",
            ),
        },
        Case {
            name: "without them the gated Prefix serves the TLS endpoints",
            public: None,
            mtls_exposed: vec![],
            tls_refused: all_tls(),
            served_by: (
                "/authorize",
                "/oauth2/authorize",
                "open-banking/oauth2-and-apis-mtls",
            ),
        },
        Case {
            name: "an ungated Exact /oauth2/token shadows the gated Prefix",
            public: Some(public.clone().exact("/oauth2/token")),
            mtls_exposed: vec!["/token"],
            tls_refused: vec![],
            served_by: ("/token", "/oauth2/token", "open-banking/oauth2-public"),
        },
    ];
    for case in cases {
        let name = case.name;
        let mut docs = vec![
            Profile::single_host().yaml(),
            ca_secret(),
            gated_prefix.yaml(),
        ];
        docs.extend(case.public.iter().map(Ingress::yaml));
        let verdict = evaluate(&docs);
        assert_eq!(
            endpoints_with(&verdict, MtlsNotRequired),
            case.mtls_exposed,
            "[{name}]\n{}",
            describe(&verdict)
        );
        assert_eq!(
            endpoints_with(&verdict, MtlsRequiredOnTlsEndpoint),
            case.tls_refused,
            "[{name}]"
        );
        let (endpoint, path, ingress) = case.served_by;
        let routes = serving(&verdict, endpoint, &single_url(path));
        assert_eq!(
            routes.len(),
            1,
            "[{name}] {endpoint} has one route: {routes:?}"
        );
        assert_eq!(routes[0].0, ingress, "[{name}] {endpoint} served by");
        if let Some(v) = naming(&verdict, "/token").first() {
            assert_eq!(ingress_of(v).as_deref(), Some("open-banking/oauth2-public"));
            assert_eq!(v.path.as_deref(), Some("/oauth2/token"));
        }
    }
}

/// §1.3 / `getBackendServers`: the same path with the same pathType on two Ingresses of a
/// host is served by the oldest; the newer duplicate is dropped.
#[test]
fn nginx_duplicate_path_and_type_oldest_wins() {
    let gated = |created: &str| {
        Ingress::new("oauth2-token-mtls", SINGLE_HOST)
            .created(created)
            .annotations(nginx::client_auth("optional"))
            .annotations(nginx::gate())
            .exact("/oauth2/token")
    };
    let ungated = |created: &str| {
        Ingress::new("oauth2-token-legacy", SINGLE_HOST)
            .created(created)
            .annotations(nginx::client_auth("optional"))
            .exact("/oauth2/token")
    };
    for (name, docs, winner, exposed) in [
        (
            "ungated duplicate is older",
            vec![ungated(OLDER), gated(NEWER)],
            "open-banking/oauth2-token-legacy",
            true,
        ),
        (
            "gated duplicate is older",
            vec![gated(OLDER), ungated(NEWER)],
            "open-banking/oauth2-token-mtls",
            false,
        ),
    ] {
        let mut all = vec![Profile::single_host().yaml(), ca_secret()];
        all.extend(docs.iter().map(Ingress::yaml));
        let verdict = evaluate(&all);
        let routes = serving(&verdict, "/token", &single_url("/oauth2/token"));
        assert_eq!(routes.len(), 1, "[{name}] one location: {routes:?}");
        assert_eq!(routes[0].0, winner, "[{name}]");
        assert_eq!(
            naming(&verdict, "/token")
                .iter()
                .any(|v| v.code == MtlsNotRequired),
            exposed,
            "[{name}]\n{}",
            describe(&verdict)
        );
    }
}

/// API base without a `.`: in regex mode every location of such a host stays a plain
/// case-insensitive prefix. (Paths with `.` — `v3.0`, `.well-known` — are real regexes:
/// `nginx_regex_mode_paths_with_dots_are_evaluated_exactly`.)
const DOTLESS_BASE: &str = "/open-banking-nz/v3";

fn dotless_single_host() -> Profile {
    Profile::single_host().api_base_urls(&[&single_url(DOTLESS_BASE)])
}

/// Every endpoint below `/accounts/{AccountId}`, sorted.
fn below_account_id() -> Vec<&'static str> {
    accounts_endpoints()
        .into_iter()
        .filter(|e| *e != "/accounts")
        .collect()
}

/// design §2 / §1: `use-regex` on ANY Ingress of a host turns every location of the host
/// into `~* "^<path>"` — case-insensitive, no end anchor — so an ungated
/// `Exact .../accounts` of another Ingress suddenly also serves every
/// `/accounts/{AccountId}/...` endpoint.
#[test]
fn nginx_use_regex_on_any_ingress_turns_exact_paths_into_prefix_regexes() {
    let accounts_path = format!("{DOTLESS_BASE}/accounts");
    let gated = Ingress::new("open-banking-apis", SINGLE_HOST)
        .annotations(nginx::client_auth("optional"))
        .annotations(nginx::gate())
        .prefix(DOTLESS_BASE);
    let accounts_list = Ingress::new("accounts-list-cache", SINGLE_HOST)
        .annotations(nginx::client_auth("optional"))
        .exact(&accounts_path);
    let docs = |use_regex: Option<&str>| {
        let mut d = Ingress::new("developer-docs", SINGLE_HOST)
            .annotations(nginx::client_auth("optional"))
            .implementation_specific("/docs/v[0-9]+/");
        match use_regex {
            Some("rewrite-target") => {
                d = d.annotation("nginx.ingress.kubernetes.io/rewrite-target", "/$1");
            }
            Some(v) => d = d.annotation(nginx::USE_REGEX, v),
            None => {}
        }
        d
    };
    for (name, use_regex, exposed) in [
        (
            "no regex: the Exact route serves /accounts only",
            None,
            vec!["/accounts"],
        ),
        (
            "use-regex \"false\" changes nothing",
            Some("false"),
            vec!["/accounts"],
        ),
        (
            "use-regex \"true\" on another Ingress: ~* ^.../accounts also matches /accounts/{AccountId}/...",
            Some("true"),
            accounts_endpoints(),
        ),
        (
            "rewrite-target on another Ingress enables regex mode as well",
            Some("rewrite-target"),
            accounts_endpoints(),
        ),
    ] {
        let verdict = evaluate(&[
            dotless_single_host().yaml(),
            ca_secret(),
            gated.yaml(),
            accounts_list.yaml(),
            docs(use_regex).yaml(),
        ]);
        assert_eq!(
            endpoints_with(&verdict, MtlsNotRequired),
            exposed,
            "[{name}]\n{}",
            describe(&verdict)
        );
        for v in with_code(&verdict, MtlsNotRequired) {
            assert_eq!(ingress_of(v), Some(accounts_list.key()), "[{name}]");
            assert_eq!(v.path.as_deref(), Some(accounts_path.as_str()), "[{name}]");
        }
    }
}

/// Regex mode is case-insensitive and tries locations longest first (equal lengths: the
/// greater byte string first): a mixed-case legacy route that prefix mode never matches
/// captures every `/oauth2/...` endpoint that no longer location claims.
#[test]
fn nginx_regex_mode_is_case_insensitive_and_longest_first() {
    let gated = Ingress::new("oauth2-mtls", SINGLE_HOST)
        .annotations(nginx::client_auth("optional"))
        .annotations(nginx::gate())
        .exact("/oauth2/token")
        .exact("/oauth2/revoke");
    for (name, legacy_path, use_regex, exposed) in [
        (
            "prefix mode: Exact /OAuth2/Token does not match /oauth2/token",
            "/OAuth2/Token",
            false,
            vec![],
        ),
        (
            "regex mode: ~* ^/OAuth2/Token matches /oauth2/token too, but the equal-length gated location sorts first (\"/oauth2/token\" > \"/OAuth2/Token\")",
            "/OAuth2/Token",
            true,
            vec![],
        ),
        (
            "prefix mode: Exact /OAUTH2 serves /OAUTH2 only",
            "/OAUTH2",
            false,
            vec![],
        ),
        (
            "regex mode: ~* ^/OAUTH2 serves every /oauth2 endpoint no longer location claims",
            "/OAUTH2",
            true,
            vec!["/bc-authorize", "/introspect", "/par", "/userinfo"],
        ),
    ] {
        let mut legacy = Ingress::new("oauth2-legacy", SINGLE_HOST)
            .annotations(nginx::client_auth("optional"))
            .exact(legacy_path);
        if use_regex {
            legacy = legacy.annotation(nginx::USE_REGEX, "true");
        }
        let verdict = evaluate(&[
            dotless_single_host().yaml(),
            ca_secret(),
            gated.yaml(),
            legacy.yaml(),
        ]);
        assert_eq!(
            endpoints_with(&verdict, MtlsNotRequired),
            exposed,
            "[{name}]\n{}",
            describe(&verdict)
        );
        for v in with_code(&verdict, MtlsNotRequired) {
            assert_eq!(ingress_of(v), Some(legacy.key()), "[{name}]");
        }
    }
}

/// design §2 (soundness): a regex route that some instances of a templated endpoint reach
/// makes the endpoint non-compliant, even though other instances go through the gate.
#[test]
fn nginx_regex_route_on_an_ungated_ingress_exposes_templated_endpoints() {
    let gated = Ingress::new("open-banking-apis", SINGLE_HOST)
        .annotations(nginx::client_auth("optional"))
        .annotations(nginx::gate())
        .prefix(DOTLESS_BASE);
    let regex = format!("{DOTLESS_BASE}/accounts/[0-9]+");
    let numeric_accounts = Ingress::new("legacy-numeric-accounts", SINGLE_HOST)
        .created(NEWER)
        .annotations(nginx::client_auth("optional"))
        .annotation(nginx::USE_REGEX, "true")
        .implementation_specific(&regex);
    let verdict = evaluate(&[
        dotless_single_host().yaml(),
        ca_secret(),
        gated.yaml(),
        numeric_accounts.yaml(),
    ]);
    assert!(!verdict.compliant);
    // `~* ^.../accounts/[0-9]+` has no end anchor: every endpoint below
    // /accounts/{AccountId} with a numeric id is reachable through it; /accounts is not.
    assert_eq!(
        endpoints_with(&verdict, MtlsNotRequired),
        below_account_id(),
        "{}",
        describe(&verdict)
    );
    let v = naming(&verdict, "/accounts/{AccountId}");
    assert_eq!(v.len(), 1, "{}", describe(&verdict));
    assert_eq!(v[0].code, MtlsNotRequired);
    assert_eq!(ingress_of(v[0]), Some(numeric_accounts.key()));
    assert_eq!(v[0].path.as_deref(), Some(regex.as_str()));
    assert_eq!(
        v[0].url.as_deref(),
        Some(single_url(&format!("{DOTLESS_BASE}/accounts/{{AccountId}}")).as_str())
    );
    // Instances with a non-numeric id still go through the gate.
    let url = single_url(&format!("{DOTLESS_BASE}/accounts/{{AccountId}}"));
    let routes = serving(&verdict, "/accounts/{AccountId}", &url);
    assert!(
        routes.contains(&(
            gated.key(),
            DOTLESS_BASE.to_string(),
            "required-by-gate".to_string()
        )),
        "{routes:?}"
    );
}

/// In regex mode ingress-nginx renders `~* "^<path>"` for every location and nginx tries
/// them in order (longest path first) — each one an exact regular expression. A location
/// such as `~* "^/oauth2/.well-known/openid-configuration"` cannot serve `/oauth2/token`,
/// and `~* "^/open-banking-nz/v3.0/accounts"` cannot serve `/open-banking-nz/v3.0/balances`.
#[test]
fn nginx_regex_mode_paths_with_dots_are_evaluated_exactly() {
    // 1. The compliant single-host layout stays compliant when one Ingress enables regex.
    let public = oauth2_public().annotations(nginx::client_auth("optional"));
    let mtls = oauth2_and_apis_mtls()
        .annotations(nginx::client_auth("optional"))
        .annotations(nginx::gate());
    let verdict = evaluate(&[
        Profile::single_host().yaml(),
        ca_secret(),
        public.clone().annotation(nginx::USE_REGEX, "true").yaml(),
        mtls.yaml(),
    ]);
    assert!(
        verdict.compliant,
        "use-regex on the compliant example:\n{}",
        describe(&verdict)
    );

    // 2. An ungated Exact .../v3.0/accounts widens to the /accounts endpoints only.
    let accounts_list = Ingress::new("accounts-list-cache", SINGLE_HOST)
        .annotations(nginx::client_auth("optional"))
        .annotation(nginx::USE_REGEX, "true")
        .exact("/open-banking-nz/v3.0/accounts");
    let verdict = evaluate(&[
        Profile::single_host().yaml(),
        ca_secret(),
        mtls.yaml(),
        accounts_list.yaml(),
    ]);
    assert_eq!(
        endpoints_with(&verdict, MtlsNotRequired),
        accounts_endpoints(),
        "{}",
        describe(&verdict)
    );

    // 3. A numeric-id regex under v3.0 exposes the endpoints below /accounts/{AccountId}.
    let numeric_accounts = Ingress::new("legacy-numeric-accounts", SINGLE_HOST)
        .annotations(nginx::client_auth("optional"))
        .annotation(nginx::USE_REGEX, "true")
        .implementation_specific("/open-banking-nz/v3.0/accounts/[0-9]+");
    let verdict = evaluate(&[
        Profile::single_host().yaml(),
        ca_secret(),
        public.yaml(),
        mtls.yaml(),
        numeric_accounts.yaml(),
    ]);
    assert_eq!(
        endpoints_with(&verdict, MtlsNotRequired),
        below_account_id(),
        "{}",
        describe(&verdict)
    );
}

/// design §2: a route that matches only some instances of a templated endpoint exposes
/// those instances: `Exact .../accounts/123` on an ungated Ingress beside the gated
/// `Prefix /open-banking-nz/v3.0`.
#[test]
fn nginx_templated_endpoint_partially_exposed_by_an_exact_instance() {
    let gated = Ingress::new("open-banking-apis", SINGLE_HOST)
        .annotations(nginx::client_auth("optional"))
        .annotations(nginx::gate())
        .prefix(API_BASE);
    let one_account = Ingress::new("account-123-migration", SINGLE_HOST)
        .annotations(nginx::client_auth("optional"))
        .exact("/open-banking-nz/v3.0/accounts/123");
    let verdict = evaluate(&[
        Profile::single_host().yaml(),
        ca_secret(),
        gated.yaml(),
        one_account.yaml(),
    ]);
    assert_eq!(
        endpoints_with(&verdict, MtlsNotRequired),
        ["/accounts/{AccountId}"],
        "{}",
        describe(&verdict)
    );
    let v = naming(&verdict, "/accounts/{AccountId}");
    assert_eq!(v.len(), 1);
    assert_eq!(ingress_of(v[0]), Some(one_account.key()));
    assert_eq!(
        v[0].path.as_deref(),
        Some("/open-banking-nz/v3.0/accounts/123")
    );
    let account = api_url(SINGLE_HOST, "/accounts/{AccountId}");
    assert_eq!(
        serving(&verdict, "/accounts/{AccountId}", &account),
        [
            (
                one_account.key(),
                "/open-banking-nz/v3.0/accounts/123".to_string(),
                "optional".to_string()
            ),
            (
                gated.key(),
                API_BASE.to_string(),
                "required-by-gate".to_string()
            ),
        ]
    );
    let balances = api_url(SINGLE_HOST, "/accounts/{AccountId}/balances");
    let cov = coverage(&verdict, "/accounts/{AccountId}/balances", &balances);
    assert!(cov.served && cov.compliant, "{cov:?}");
    assert_eq!(
        serving(&verdict, "/accounts/{AccountId}/balances", &balances),
        [(
            gated.key(),
            API_BASE.to_string(),
            "required-by-gate".to_string()
        )]
    );
}

/// A wildcard rule host serves every profile host it covers that has no exact rule; an
/// exact rule host takes the host away from the wildcard.
#[test]
fn nginx_wildcard_host_serves_profile_hosts() {
    let wildcard = |verify: Option<&str>| {
        let w = Ingress::new("bank-wildcard", "*.bank.example").prefix("/");
        match verify {
            Some(v) => w.annotations(nginx::client_auth(v)),
            None => w,
        }
    };
    let public = Ingress::new("authorization-server-public", PUBLIC_HOST)
        .exact("/authorize")
        .exact("/jwks")
        .exact("/.well-known/openid-configuration");
    let apis = Ingress::new("open-banking-apis", MTLS_API_HOST)
        .annotations(nginx::client_auth("on"))
        .prefix(API_BASE);
    struct Case {
        name: &'static str,
        ingresses: Vec<Ingress>,
        /// (host, rule host serving it)
        rule_hosts: Vec<(&'static str, &'static str)>,
        mtls_exposed: Vec<&'static str>,
        tls_refused: Vec<&'static str>,
    }
    let cases = [
        Case {
            name: "wildcard requiring certificates + exact public host",
            ingresses: vec![wildcard(Some("on")), public.clone()],
            rule_hosts: vec![
                (MTLS_API_HOST, "*.bank.example"),
                (MTLS_AUTH_HOST, "*.bank.example"),
                (PUBLIC_HOST, PUBLIC_HOST),
            ],
            mtls_exposed: vec![],
            tls_refused: vec![],
        },
        Case {
            name: "wildcard requiring certificates also serves the public host",
            ingresses: vec![wildcard(Some("on"))],
            rule_hosts: vec![(PUBLIC_HOST, "*.bank.example")],
            mtls_exposed: vec![],
            tls_refused: all_tls(),
        },
        Case {
            name: "open wildcard: the exact API host is safe, the MTLS auth host is not",
            ingresses: vec![wildcard(None), apis.clone()],
            rule_hosts: vec![
                (MTLS_API_HOST, MTLS_API_HOST),
                (MTLS_AUTH_HOST, "*.bank.example"),
            ],
            mtls_exposed: vec![
                "/bc-authorize",
                "/introspect",
                "/par",
                "/revoke",
                "/token",
                "/userinfo",
            ],
            tls_refused: vec![],
        },
    ];
    for case in cases {
        let name = case.name;
        let mut docs = vec![Profile::split_host().yaml(), ca_secret()];
        docs.extend(case.ingresses.iter().map(Ingress::yaml));
        let verdict = evaluate(&docs);
        for (host, rule_host) in &case.rule_hosts {
            let summary = verdict
                .hosts
                .iter()
                .find(|h| h.host == *host)
                .unwrap_or_else(|| panic!("[{name}] no summary for {host}"));
            assert_eq!(
                summary.rule_host.as_deref(),
                Some(*rule_host),
                "[{name}] {host}"
            );
        }
        assert_eq!(
            endpoints_with(&verdict, MtlsNotRequired),
            case.mtls_exposed,
            "[{name}]\n{}",
            describe(&verdict)
        );
        assert_eq!(
            endpoints_with(&verdict, MtlsRequiredOnTlsEndpoint),
            case.tls_refused,
            "[{name}]"
        );
    }
}

/// `spec.ingressClassName`: Ingresses of other classes belong to another controller and are
/// not evaluated; `kubernetes.io/ingress.class` counts as the class too.
#[test]
fn ingress_class_name_filters_ingresses() {
    let stray = || {
        Ingress::new("leftover-token-route", PUBLIC_HOST)
            .created(NEWER)
            .exact("/token")
    };
    let layout = [
        Ingress::new("authorization-server-public", PUBLIC_HOST)
            .class("nginx")
            .exact("/authorize"),
        Ingress::new("authorization-server-mtls", MTLS_AUTH_HOST)
            .class("nginx")
            .annotations(nginx::client_auth("on"))
            .prefix("/"),
    ];
    let class = |name: &str, controller: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {{name: {name}}}\nspec: {{controller: {controller}}}\n"
        )
    };
    // A second ingress-nginx installation with its own controller class.
    let two_controllers = vec![
        class("nginx", "k8s.io/ingress-nginx"),
        class("nginx-internal", "k8s.io/ingress-nginx-internal"),
    ];
    let one_controller = vec![
        class("nginx", "k8s.io/ingress-nginx"),
        class("nginx-internal", "k8s.io/ingress-nginx"),
    ];
    for (name, profile, stray, classes, exposed) in [
        (
            "profile class nginx, stray route of class nginx-internal (another controller)",
            Profile::split_host().class("nginx"),
            stray().class("nginx-internal"),
            two_controllers.clone(),
            false,
        ),
        (
            "profile class nginx, stray route of class nginx-internal (same controller)",
            Profile::split_host().class("nginx"),
            stray().class("nginx-internal"),
            one_controller,
            true,
        ),
        (
            "profile class nginx, stray route of class nginx-internal (IngressClasses unknown)",
            Profile::split_host().class("nginx"),
            stray().class("nginx-internal"),
            Vec::new(),
            true,
        ),
        (
            "profile class nginx, stray route of class nginx",
            Profile::split_host().class("nginx"),
            stray().class("nginx"),
            Vec::new(),
            true,
        ),
        (
            "profile without class considers every class",
            Profile::split_host(),
            stray().class("nginx-internal"),
            two_controllers.clone(),
            true,
        ),
        (
            "kubernetes.io/ingress.class annotation names the class",
            Profile::split_host().class("nginx"),
            stray().annotation("kubernetes.io/ingress.class", "nginx-internal"),
            Vec::new(),
            false,
        ),
    ] {
        let mut docs = vec![profile.yaml(), ca_secret(), stray.yaml()];
        docs.extend(layout.iter().map(Ingress::yaml));
        docs.extend(classes);
        let verdict = evaluate(&docs);
        let token = naming(&verdict, "/token");
        if exposed {
            assert_eq!(token.len(), 1, "[{name}]\n{}", describe(&verdict));
            assert_eq!(token[0].code, MtlsNotRequired, "[{name}]");
            assert_eq!(ingress_of(token[0]), Some(stray.key()), "[{name}]");
            assert_eq!(token[0].host, PUBLIC_HOST, "[{name}]");
        } else {
            assert!(verdict.compliant, "[{name}]\n{}", describe(&verdict));
        }
    }
}

// =======================================================================================
// Traefik
// =======================================================================================

/// Traefik split host: one TLSOption requiring verified certificates for the MTLS hosts.
fn traefik_split_docs() -> Vec<String> {
    vec![
        Profile::split_host().traefik().yaml(),
        ca_secret(),
        traefik::tls_option("mtls-required", "RequireAndVerifyClientCert"),
        Ingress::new("authorization-server-public", PUBLIC_HOST)
            .annotation("traefik.ingress.kubernetes.io/router.tls", "true")
            .exact("/authorize")
            .exact("/jwks")
            .exact("/.well-known/openid-configuration")
            .yaml(),
        Ingress::new("authorization-server-mtls", MTLS_AUTH_HOST)
            .annotations(traefik::tls_options("mtls-required"))
            .prefix("/")
            .yaml(),
    ]
}

/// §2.4: routers of one host that resolve to different TLS options (a router without
/// `router.tls.options` resolves to `default`) all get the `default` options — normally no
/// client certificate at all.
#[test]
fn traefik_different_tls_options_on_one_host_fall_back_to_default() {
    let apis = Ingress::new("open-banking-apis", MTLS_API_HOST)
        .annotations(traefik::tls_options("mtls-required"))
        .prefix(API_BASE);
    let beta = || Ingress::new("open-banking-apis-beta", MTLS_API_HOST).prefix("/beta");
    for (name, beta, extra, conflict) in [
        (
            "both name mtls-required",
            beta().annotations(traefik::tls_options("mtls-required")),
            None,
            false,
        ),
        (
            "beta names another TLSOption",
            beta().annotations(traefik::tls_options("mtls-required-v2")),
            Some(traefik::tls_option(
                "mtls-required-v2",
                "RequireAndVerifyClientCert",
            )),
            true,
        ),
        (
            "beta names none (default)",
            beta().annotation("traefik.ingress.kubernetes.io/router.tls", "true"),
            None,
            true,
        ),
    ] {
        let mut docs = traefik_split_docs();
        docs.extend([apis.yaml(), beta.yaml()]);
        docs.extend(extra);
        let verdict = evaluate(&docs);
        if !conflict {
            assert!(verdict.compliant, "[{name}]\n{}", describe(&verdict));
            continue;
        }
        let mut conflicting: Vec<String> = with_code(&verdict, HostSettingsConflict)
            .iter()
            .map(|v| {
                assert_eq!(v.host, MTLS_API_HOST, "[{name}]");
                assert!(
                    v.message.contains("same router.tls.options"),
                    "[{name}] {}",
                    v.message
                );
                ingress_of(v).unwrap_or_default()
            })
            .collect();
        conflicting.sort();
        assert_eq!(conflicting, [apis.key(), beta.key()], "[{name}]");
        assert!(
            host_auth(&verdict, MTLS_API_HOST).contains("conflicting options"),
            "[{name}] {}",
            host_auth(&verdict, MTLS_API_HOST)
        );
        assert_eq!(
            endpoints_with(&verdict, MtlsNotRequired).len(),
            34,
            "[{name}] every API endpoint loses client auth"
        );
        assert_eq!(
            serving(&verdict, "/accounts", &api_url(MTLS_API_HOST, "/accounts")),
            [(apis.key(), API_BASE.to_string(), "none".to_string())],
            "[{name}]"
        );
        // The MTLS auth host is unaffected: its only router names mtls-required.
        assert!(naming(&verdict, "/token").is_empty(), "[{name}]");
    }
}

/// §2.1: `RequireAnyClientCert` and `RequestClientCert` never verify the chain.
#[test]
fn traefik_client_auth_types() {
    for (auth_type, token_auth, exposed) in [
        ("RequireAndVerifyClientCert", "required", false),
        ("VerifyClientCertIfGiven", "optional", true),
        ("RequireAnyClientCert", "required-unverified", true),
        ("RequestClientCert", "optional-unverified", true),
        ("NoClientCert", "none", true),
    ] {
        let docs = vec![
            Profile::split_host().traefik().yaml(),
            ca_secret(),
            traefik::tls_option("mtls-auth", auth_type),
            Ingress::new("authorization-server-mtls", MTLS_AUTH_HOST)
                .annotations(traefik::tls_options("mtls-auth"))
                .prefix("/")
                .yaml(),
        ];
        let verdict = evaluate(&docs);
        let url = format!("https://{MTLS_AUTH_HOST}/token");
        assert_eq!(
            serving(&verdict, "/token", &url),
            [(
                "open-banking/authorization-server-mtls".to_string(),
                "/".to_string(),
                token_auth.to_string()
            )],
            "[{auth_type}]"
        );
        let token = naming(&verdict, "/token");
        assert_eq!(token.len(), usize::from(exposed), "[{auth_type}]");
        if let Some(v) = token.first() {
            assert_eq!(v.code, MtlsNotRequired, "[{auth_type}]");
        }
        if token_auth.ends_with("unverified") {
            assert!(
                token[0].message.contains("verify the chain"),
                "[{auth_type}] {}",
                token[0].message
            );
        }
    }
}

/// §2.1: `RequireAnyClientCert` still refuses clients without a certificate, so it must not
/// be used on a host serving TLS endpoints.
#[test]
fn traefik_require_any_client_cert_refuses_tls_endpoint_clients() {
    let public = Ingress::new("authorization-server-public", PUBLIC_HOST)
        .annotation("traefik.ingress.kubernetes.io/router.tls", "true")
        .annotations(traefik::tls_options("any-cert"))
        .exact("/authorize");
    let verdict = evaluate(&[
        Profile::split_host().traefik().yaml(),
        ca_secret(),
        traefik::tls_option("any-cert", "RequireAnyClientCert"),
        public.yaml(),
    ]);
    let v = naming(&verdict, "/authorize");
    assert_eq!(v.len(), 1, "{}", describe(&verdict));
    assert_eq!(v[0].code, MtlsRequiredOnTlsEndpoint);
    assert_eq!(ingress_of(v[0]), Some(public.key()));
    assert_eq!(v[0].path.as_deref(), Some("/authorize"));
}

/// Traefik single host with the gate: one `VerifyClientCertIfGiven` option on every router,
/// and the gate chain on the MTLS routes.
fn traefik_single_host_docs(gate_chain: &[&str]) -> (Vec<String>, Ingress, Ingress) {
    let public = Ingress::new("oauth2-public", SINGLE_HOST)
        .annotations(traefik::tls_options("mtls-optional"))
        .prefix("/oauth2/");
    let mtls = oauth2_and_apis_mtls()
        .annotations(traefik::tls_options("mtls-optional"))
        .annotations(traefik::middlewares(gate_chain));
    let docs = vec![
        Profile::single_host().traefik().yaml(),
        ca_secret(),
        traefik::tls_option("mtls-optional", "VerifyClientCertIfGiven"),
        traefik::strip_client_cert("strip-client-cert"),
        traefik::pass_client_cert("pass-client-cert"),
        traefik::forward_auth("mtls-gate", TRAEFIK_GATE_URL, true),
        traefik::forward_auth("mtls-gate-untrusted", TRAEFIK_GATE_URL, false),
    ];
    (docs, public, mtls)
}

const GATE_CHAIN: [&str; 3] = ["strip-client-cert", "pass-client-cert", "mtls-gate"];

/// §2.3: a router's priority is the length of its rule unless `router.priority` is set, so
/// ``Host(`api.bank.example`) && PathPrefix(`/oauth2/`)`` (50 characters) beats
/// ``Host(`api.bank.example`) && Path(`/oauth2/token`)`` (49): an ungated Prefix route
/// shadows the gated Exact route — the opposite of nginx's "exact first".
#[test]
fn traefik_longer_rule_wins_so_a_prefix_can_shadow_an_exact_route() {
    for (name, priority, exposed) in [
        (
            "rule length decides: /oauth2/token (49) and /oauth2/par (47) lose to PathPrefix(/oauth2/) (50); /oauth2/revoke ties at 50",
            None,
            vec!["/par", "/revoke", "/token"],
        ),
        (
            "router.priority 1000 on the gated Ingress",
            Some("1000"),
            vec![],
        ),
    ] {
        let (mut docs, public, mut mtls) = traefik_single_host_docs(&GATE_CHAIN);
        if let Some(p) = priority {
            mtls = mtls.annotation(traefik::PRIORITY, p);
        }
        docs.extend([public.yaml(), mtls.yaml()]);
        let verdict = evaluate(&docs);
        assert_eq!(
            endpoints_with(&verdict, MtlsNotRequired),
            exposed,
            "[{name}]\n{}",
            describe(&verdict)
        );
        for v in with_code(&verdict, MtlsNotRequired) {
            assert_eq!(ingress_of(v), Some(public.key()), "[{name}]");
            assert_eq!(v.path.as_deref(), Some("/oauth2/"), "[{name}]");
        }
        // The longer introspect route keeps the gate either way.
        assert_eq!(
            serving(&verdict, "/introspect", &single_url("/oauth2/introspect")),
            [(
                mtls.key(),
                "/oauth2/introspect".to_string(),
                "required-by-gate".to_string()
            )],
            "[{name}]"
        );
        assert!(
            endpoints_with(&verdict, MtlsRequiredOnTlsEndpoint).is_empty(),
            "[{name}]"
        );
    }
}

/// §2.5: the gate chain is only sound as headers(strip) → passTLSClientCert →
/// forwardAuth(trustForwardHeader); without the strip a client forges the certificate
/// header, without trustForwardHeader the gate never sees it (fail-closed).
#[test]
fn traefik_gate_chain() {
    for (name, chain, token_auth, exposed) in [
        (
            "complete chain",
            GATE_CHAIN.to_vec(),
            "required-by-gate",
            false,
        ),
        (
            "no strip middleware: the header is forgeable",
            vec!["pass-client-cert", "mtls-gate"],
            "none",
            true,
        ),
        (
            "strip after the gate: too late",
            vec!["pass-client-cert", "mtls-gate", "strip-client-cert"],
            "none",
            true,
        ),
        (
            "forwardAuth without trustForwardHeader: the gate never sees the certificate",
            vec![
                "strip-client-cert",
                "pass-client-cert",
                "mtls-gate-untrusted",
            ],
            "rejected",
            false,
        ),
        ("no chain at all", vec![], "optional", true),
    ] {
        let (mut docs, public, mtls) = traefik_single_host_docs(&chain);
        let mtls = if chain.is_empty() {
            Ingress {
                annotations: mtls
                    .annotations
                    .into_iter()
                    .filter(|(k, _)| k != traefik::MIDDLEWARES)
                    .collect(),
                ..mtls
            }
        } else {
            mtls
        };
        // Give the gated routes precedence so only the chain decides.
        let mtls = mtls.annotation(traefik::PRIORITY, "1000");
        docs.extend([public.yaml(), mtls.yaml()]);
        let verdict = evaluate(&docs);
        assert_eq!(
            serving(&verdict, "/token", &single_url("/oauth2/token")),
            [(
                mtls.key(),
                "/oauth2/token".to_string(),
                token_auth.to_string()
            )],
            "[{name}]"
        );
        if exposed {
            assert_eq!(
                endpoints_with(&verdict, MtlsNotRequired),
                all_mtls(),
                "[{name}]"
            );
        } else {
            assert!(verdict.compliant, "[{name}]\n{}", describe(&verdict));
        }
    }
}

/// §6.2: if one router of the gated host lacks the TLS option, Traefik applies `default`,
/// no certificate is ever requested, and the gate rejects every MTLS request —
/// fail-closed, but the host-wide conflict is reported.
#[test]
fn traefik_gate_on_a_host_that_falls_back_to_default_rejects_everything() {
    let (mut docs, public, mtls) = traefik_single_host_docs(&GATE_CHAIN);
    // A TLS router without TLS options: Traefik's `default` ones.
    let public = Ingress {
        annotations: vec![(
            "traefik.ingress.kubernetes.io/router.tls".into(),
            "true".into(),
        )],
        ..public
    };
    let mtls = mtls.annotation(traefik::PRIORITY, "1000");
    docs.extend([public.yaml(), mtls.yaml()]);
    let verdict = evaluate(&docs);
    assert_eq!(
        codes(&verdict),
        [HostSettingsConflict],
        "{}",
        describe(&verdict)
    );
    assert_eq!(
        serving(&verdict, "/token", &single_url("/oauth2/token")),
        [(
            mtls.key(),
            "/oauth2/token".to_string(),
            "rejected".to_string()
        )]
    );
}
