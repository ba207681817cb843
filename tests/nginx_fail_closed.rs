//! Fail closed on ingress-nginx (issue 9): every annotation that changes who reaches a route
//! is modelled exactly as the controller parses it, or reported as `UnmodelledSetting`;
//! Ingresses with only a default backend, unknown creation order and misspelt profile
//! fields are not guessed past.
//!
//! A variant is *denied* when the verdict is not compliant and some finding names the
//! Ingress the variant adds or changes: that is what the validating webhook counts
//! (`admission::review_ingress`: a finding naming the changed Ingress denies it).
//! The adversarial report's §3 variant classes (shared/reports/adversarial-test-2026-11-30.md)
//! are rebuilt below; `adversarial_variants_are_all_denied` prints the figures.

mod common;

use common::*;
use mtls_gate::dialect::nginx::annotations::{self, Decision};
use mtls_gate::engine::Verdict;
use mtls_gate::violation::ViolationCode::{self, *};
use proptest::prelude::*;

const USE_REGEX: &str = "nginx.ingress.kubernetes.io/use-regex";
const REWRITE_TARGET: &str = "nginx.ingress.kubernetes.io/rewrite-target";
const SSL_REDIRECT: &str = "nginx.ingress.kubernetes.io/ssl-redirect";
const FORCE_SSL_REDIRECT: &str = "nginx.ingress.kubernetes.io/force-ssl-redirect";
const SATISFY: &str = "nginx.ingress.kubernetes.io/satisfy";
const ALLOWLIST: &str = "nginx.ingress.kubernetes.io/whitelist-source-range";
const AUTH_CACHE_KEY: &str = "nginx.ingress.kubernetes.io/auth-cache-key";
const AUTH_CACHE_DURATION: &str = "nginx.ingress.kubernetes.io/auth-cache-duration";
const AUTH_PROXY_SET_HEADERS: &str = "nginx.ingress.kubernetes.io/auth-proxy-set-headers";

/// Go's `strconv.ParseBool` spellings.
const GO_TRUE: [&str; 6] = ["1", "t", "T", "TRUE", "true", "True"];
const GO_FALSE: [&str; 6] = ["0", "f", "F", "FALSE", "false", "False"];

// ---------------------------------------------------------------------------------------
// Compliant baselines
// ---------------------------------------------------------------------------------------

fn public_ingress() -> Ingress {
    Ingress::new("authorization-server-public", PUBLIC_HOST)
        .exact("/authorize")
        .exact("/jwks")
        .exact("/.well-known/openid-configuration")
}

fn mtls_auth_ingress() -> Ingress {
    Ingress::new("authorization-server-mtls", MTLS_AUTH_HOST)
        .annotations(nginx::client_auth("on"))
        .prefix("/")
}

fn api_ingress() -> Ingress {
    Ingress::new("open-banking-apis", MTLS_API_HOST)
        .annotations(nginx::client_auth("on"))
        .prefix(API_BASE)
}

/// The split-host layout, compliant, with `api` as the API host's Ingress (if any) and
/// `extra` added.
fn split(api: Option<Ingress>, extra: &[Ingress]) -> Vec<String> {
    let mut docs = vec![
        Profile::split_host().yaml(),
        ca_secret(),
        public_ingress().yaml(),
        mtls_auth_ingress().yaml(),
    ];
    docs.extend(api.map(|i| i.yaml()));
    docs.extend(extra.iter().map(Ingress::yaml));
    docs
}

/// Single host with the gate: optional verification host-wide, the gate on every Ingress
/// that serves MTLS endpoints.
fn single_public() -> Ingress {
    Ingress::new("oauth2-public", SINGLE_HOST)
        .annotations(nginx::client_auth("optional"))
        .exact("/oauth2/authorize")
        .exact("/oauth2/jwks")
        .exact("/oauth2/.well-known/openid-configuration")
}

fn single_gated_apis() -> Ingress {
    Ingress::new("open-banking-apis", SINGLE_HOST)
        .annotations(nginx::client_auth("optional"))
        .annotations(nginx::gate())
        .prefix(API_BASE)
        .prefix("/oauth2/token")
        .prefix("/oauth2/par")
        .prefix("/oauth2/bc-authorize")
        .prefix("/oauth2/introspect")
        .prefix("/oauth2/revoke")
        .prefix("/oauth2/userinfo")
}

fn single(apis: Ingress, extra: &[Ingress]) -> Vec<String> {
    let mut docs = vec![
        Profile::single_host().yaml(),
        ca_secret(),
        single_public().yaml(),
        apis.yaml(),
    ];
    docs.extend(extra.iter().map(Ingress::yaml));
    docs
}

/// Whether the webhook would deny the change to `ingress` (`namespace/name`).
fn denied(verdict: &Verdict, ingress: &str) -> bool {
    !verdict.compliant
        && verdict
            .violations
            .iter()
            .any(|v| ingress_of(v).as_deref() == Some(ingress))
}

#[test]
fn baselines_are_compliant() {
    for (name, docs) in [
        ("split host", split(Some(api_ingress()), &[])),
        ("split host, API host empty", split(None, &[])),
        ("single host with gate", single(single_gated_apis(), &[])),
    ] {
        let verdict = evaluate(&docs);
        assert!(verdict.compliant, "[{name}]\n{}", describe(&verdict));
    }
}

// ---------------------------------------------------------------------------------------
// One case per modelled and reported setting
// ---------------------------------------------------------------------------------------

/// What a case must produce.
enum Expect {
    /// Compliant: the setting does not expose anything.
    Compliant,
    /// Denied, with a finding of this code naming the changed Ingress and saying this.
    Denied {
        code: ViolationCode,
        says: &'static [&'static str],
    },
}

struct Case {
    name: &'static str,
    docs: Vec<String>,
    /// The Ingress the case adds or changes.
    changed: String,
    expect: Expect,
}

fn run(cases: Vec<Case>) {
    for case in cases {
        let verdict = evaluate(&case.docs);
        match case.expect {
            Expect::Compliant => assert!(
                verdict.compliant,
                "[{}] must be compliant:\n{}",
                case.name,
                describe(&verdict)
            ),
            Expect::Denied { code, says } => {
                assert!(
                    denied(&verdict, &case.changed),
                    "[{}] must be denied:\n{}",
                    case.name,
                    describe(&verdict)
                );
                let found: Vec<_> = with_code(&verdict, code)
                    .into_iter()
                    .filter(|v| ingress_of(v).as_deref() == Some(case.changed.as_str()))
                    .collect();
                assert!(
                    !found.is_empty(),
                    "[{}] expected {code} naming {}:\n{}",
                    case.name,
                    case.changed,
                    describe(&verdict)
                );
                for fragment in says {
                    assert!(
                        found.iter().any(|v| v.message.contains(fragment)),
                        "[{}] a {code} must say {fragment:?}: {:?}",
                        case.name,
                        found.iter().map(|v| &v.message).collect::<Vec<_>>()
                    );
                }
            }
        }
    }
}

#[test]
fn ssl_redirect_and_force_ssl_redirect() {
    let api = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .fold(api_ingress(), |i, (k, v)| i.annotation(k, v))
    };
    let mut cases = Vec::new();
    for value in GO_FALSE {
        cases.push(Case {
            name: "ssl-redirect false: the APIs are served on port 80 without a certificate",
            docs: split(Some(api(&[(SSL_REDIRECT, value)])), &[]),
            changed: api_ingress().key(),
            expect: Expect::Denied {
                code: MtlsNotRequired,
                says: &["clear text on port 80"],
            },
        });
    }
    cases.extend([
        Case {
            name: "ssl-redirect false also reports the clear-text serving",
            docs: split(Some(api(&[(SSL_REDIRECT, "false")])), &[]),
            changed: api_ingress().key(),
            expect: Expect::Denied {
                code: TlsMissing,
                says: &["ssl-redirect"],
            },
        },
        Case {
            name: "force-ssl-redirect true wins over ssl-redirect false",
            docs: split(
                Some(api(&[
                    (SSL_REDIRECT, "false"),
                    (FORCE_SSL_REDIRECT, "True"),
                ])),
                &[],
            ),
            changed: api_ingress().key(),
            expect: Expect::Compliant,
        },
        Case {
            name: "ssl-redirect true (any Go spelling) keeps HTTPS only",
            docs: split(Some(api(&[(SSL_REDIRECT, "T")])), &[]),
            changed: api_ingress().key(),
            expect: Expect::Compliant,
        },
        Case {
            name: "an invalid ssl-redirect is reported with what the controller does",
            docs: split(Some(api(&[(SSL_REDIRECT, "off")])), &[]),
            changed: api_ingress().key(),
            expect: Expect::Denied {
                code: UnmodelledSetting,
                says: &["strconv.ParseBool", "ConfigMap's ssl-redirect"],
            },
        },
        Case {
            name: "an invalid force-ssl-redirect is reported",
            docs: split(Some(api(&[(FORCE_SSL_REDIRECT, "yes")])), &[]),
            changed: api_ingress().key(),
            expect: Expect::Denied {
                code: UnmodelledSetting,
                says: &["force-ssl-redirect"],
            },
        },
    ]);
    // S3: an Ingress without client-auth annotations next to the protected one; the
    // host-wide CA makes its route "required" over HTTPS, but port 80 has no certificate.
    let plain = Ingress::new("accounts-legacy", MTLS_API_HOST)
        .created(NEWER)
        .annotation(SSL_REDIRECT, "false")
        .prefix(&format!("{API_BASE}/accounts"));
    cases.push(Case {
        name: "S3: a second Ingress with ssl-redirect false on the protected host",
        docs: split(Some(api_ingress()), std::slice::from_ref(&plain)),
        changed: plain.key(),
        expect: Expect::Denied {
            code: MtlsNotRequired,
            says: &["clear text"],
        },
    });
    run(cases);
}

#[test]
fn gate_bypasses_on_the_single_host() {
    let gated = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .fold(single_gated_apis(), |i, (k, v)| i.annotation(k, v))
    };
    let key = single_gated_apis().key();
    let denied_by = |name, pairs: &[(&str, &str)], says| Case {
        name,
        docs: single(gated(pairs), &[]),
        changed: key.clone(),
        expect: Expect::Denied {
            code: MtlsNotRequired,
            says,
        },
    };
    run(vec![
        denied_by(
            "satisfy any with an allow list for everyone",
            &[(SATISFY, "any"), (ALLOWLIST, "0.0.0.0/0")],
            &["satisfy \"any\""],
        ),
        denied_by(
            "satisfy any, trimmed as the controller trims strings",
            &[(SATISFY, " any ")],
            &["satisfy \"any\""],
        ),
        denied_by(
            "auth cache under a constant key",
            &[(AUTH_CACHE_KEY, "static"), (AUTH_CACHE_DURATION, "204 5m")],
            &["auth-cache"],
        ),
        denied_by(
            "auth cache duration",
            &[(AUTH_CACHE_DURATION, "any 5m")],
            &["auth-cache"],
        ),
        denied_by(
            "headers for the gate from a ConfigMap",
            &[(AUTH_PROXY_SET_HEADERS, "open-banking/gate-headers")],
            &["auth-proxy-set-headers"],
        ),
        Case {
            name: "satisfy all keeps the gate deciding",
            docs: single(gated(&[(SATISFY, "all")]), &[]),
            changed: key.clone(),
            expect: Expect::Compliant,
        },
        Case {
            name: "an allow list with satisfy all only refuses more",
            docs: single(gated(&[(ALLOWLIST, "10.0.0.0/8")]), &[]),
            changed: key.clone(),
            expect: Expect::Compliant,
        },
        Case {
            name: "an invalid satisfy is reported",
            docs: single(gated(&[(SATISFY, "ANY")]), &[]),
            changed: key.clone(),
            expect: Expect::Denied {
                code: UnmodelledSetting,
                says: &["any or all"],
            },
        },
    ]);
}

#[test]
fn invalid_values_of_modelled_annotations_are_reported() {
    let api = |k: &str, v: &str| api_ingress().annotation(k, v);
    let case = |name, ingress: Ingress, says| Case {
        name,
        docs: split(Some(ingress), &[]),
        changed: api_ingress().key(),
        expect: Expect::Denied {
            code: UnmodelledSetting,
            says,
        },
    };
    run(vec![
        case(
            "use-regex yes",
            api(USE_REGEX, "yes"),
            &["strconv.ParseBool", "uses false"],
        ),
        case(
            "use-regex with a leading space (ParseBool does not trim)",
            api(USE_REGEX, " true"),
            &["without spaces"],
        ),
        case(
            "verify-client in capitals",
            api(nginx::AUTH_TLS_VERIFY_CLIENT, "ON"),
            &["on, off, optional or optional_no_ca", "uses \"on\""],
        ),
        case(
            "verify-depth not a number",
            api(nginx::AUTH_TLS_VERIFY_DEPTH, "two"),
            &["positive integer", "uses 1"],
        ),
        case(
            "pass-certificate yes",
            api(nginx::AUTH_TLS_PASS_CERT, "yes"),
            &["strconv.ParseBool"],
        ),
        case(
            "rewrite-target with characters the validator refuses",
            api(REWRITE_TARGET, "/$1;return 200"),
            &["RegexPathWithCapture"],
        ),
    ]);
}

/// A realistic value for an annotation of the audit table.
fn sample_value(key: &str) -> &'static str {
    match key.rsplit('/').next().unwrap_or_default() {
        "configuration-snippet" | "server-snippet" | "auth-snippet" | "modsecurity-snippet" => {
            "more_set_headers \"X-Frame-Options: DENY\";"
        }
        "stream-snippet" => "server { listen 8000; proxy_pass 127.0.0.1:9000; }",
        "server-alias" => "api.bank.example",
        "auth-tls-error-page" => "https://www.bank.example/certificate-error",
        "auth-tls-match-cn" => "CN=third-party",
        "ssl-passthrough" | "canary" => "true",
        _ => "1",
    }
}

#[test]
fn every_reported_annotation_is_named_on_a_profile_host() {
    let reported: Vec<String> = annotations::audited()
        .filter(|(_, a)| a.decision == Decision::Reported)
        .map(|(k, _)| k)
        .collect();
    assert!(reported.len() >= 10, "{reported:?}");
    let cases = reported
        .iter()
        .map(|key| {
            let ingress = api_ingress().annotation(key, sample_value(key));
            let verdict = evaluate(&split(Some(ingress), &[]));
            (key.clone(), verdict)
        })
        .collect::<Vec<_>>();
    for (key, verdict) in cases {
        let named: Vec<_> = with_code(&verdict, UnmodelledSetting)
            .into_iter()
            .filter(|v| v.message.contains(&key))
            .collect();
        assert!(
            denied(&verdict, &api_ingress().key()) && !named.is_empty(),
            "{key} must be reported:\n{}",
            describe(&verdict)
        );
        assert!(named[0].message.contains("Fix:"), "{}", named[0].message);
    }
}

#[test]
fn irrelevant_annotations_leave_a_compliant_host_compliant() {
    let irrelevant: Vec<String> = annotations::audited()
        .filter(|(_, a)| a.decision == Decision::Irrelevant)
        .map(|(k, _)| k)
        .collect();
    assert!(irrelevant.len() > 80, "{}", irrelevant.len());
    let ingress = irrelevant
        .iter()
        .fold(api_ingress(), |i, k| i.annotation(k, "1"));
    let verdict = evaluate(&split(Some(ingress), &[]));
    assert!(verdict.compliant, "{}", describe(&verdict));
}

#[test]
fn unknown_annotations_of_the_prefix_are_reported() {
    for key in [
        "nginx.ingress.kubernetes.io/ssl-redirct",
        "nginx.ingress.kubernetes.io/auth-tls-verify-client-v2",
    ] {
        let verdict = evaluate(&split(Some(api_ingress().annotation(key, "false")), &[]));
        let named = with_code(&verdict, UnmodelledSetting);
        assert!(
            named
                .iter()
                .any(|v| v.message.contains(key) && v.message.contains("not an ingress-nginx")),
            "{key}:\n{}",
            describe(&verdict)
        );
    }
}

#[test]
fn reported_annotations_on_hosts_outside_the_profile_are_not_findings() {
    let elsewhere = Ingress::new("marketing", "www.bank.example")
        .annotation("nginx.ingress.kubernetes.io/server-snippet", "return 200;")
        .prefix("/");
    let verdict = evaluate(&split(Some(api_ingress()), &[elsewhere]));
    assert!(verdict.compliant, "{}", describe(&verdict));
}

// ---------------------------------------------------------------------------------------
// Regex mode
// ---------------------------------------------------------------------------------------

#[test]
fn regex_mode_needs_a_placed_regex_location() {
    // ingress-nginx enables regex mode only when a location that is placed has use-regex
    // or a rewrite-target other than its own path (enforceRegexModifier, needsRewrite).
    let first = Ingress::new("probe", MTLS_API_HOST).prefix("/o");
    let duplicate = Ingress::new("probe-regex", MTLS_API_HOST)
        .created(NEWER)
        .annotation(USE_REGEX, "true")
        .prefix("/o");
    let rewrite_to_itself = Ingress::new("probe-root", MTLS_API_HOST)
        .created(NEWER)
        .annotation(REWRITE_TARGET, "/")
        .exact("/");
    let rewrite_elsewhere = Ingress::new("probe-root", MTLS_API_HOST)
        .created(NEWER)
        .annotation(REWRITE_TARGET, "/x")
        .exact("/");
    let placed = Ingress::new("probe-regex", MTLS_API_HOST)
        .created(NEWER)
        .annotation(USE_REGEX, "True")
        .prefix("/healthz");
    run(vec![
        Case {
            name: "use-regex on an Ingress whose only path is a duplicate: plain mode",
            docs: split(None, &[first.clone(), duplicate.clone()]),
            changed: duplicate.key(),
            expect: Expect::Compliant,
        },
        Case {
            name: "rewrite-target equal to its only path: plain mode",
            docs: split(None, &[first.clone(), rewrite_to_itself.clone()]),
            changed: rewrite_to_itself.key(),
            expect: Expect::Compliant,
        },
        Case {
            name: "rewrite-target different from its path: regex mode, /o serves the APIs",
            docs: split(None, &[first.clone(), rewrite_elsewhere]),
            changed: first.key(),
            expect: Expect::Denied {
                code: MtlsNotRequired,
                says: &[],
            },
        },
        Case {
            name: "use-regex True on a placed location: regex mode, /o serves the APIs",
            docs: split(None, &[first.clone(), placed.clone()]),
            changed: first.key(),
            expect: Expect::Denied {
                code: MtlsNotRequired,
                says: &[],
            },
        },
    ]);
}

// ---------------------------------------------------------------------------------------
// Default backend only
// ---------------------------------------------------------------------------------------

fn default_backend_only(name: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: {NS}\n  creationTimestamp: {OLDER:?}\nspec:\n  defaultBackend:\n    service:\n      name: catch-all\n      port: {{number: 8080}}\n"
    )
}

#[test]
fn an_ingress_with_only_a_default_backend_serves_hosts_without_a_server() {
    let key = format!("{NS}/catch-all");
    // The API host has no server block: the catch-all server answers its URLs.
    let mut docs = split(None, &[]);
    docs.push(default_backend_only("catch-all"));
    let verdict = evaluate(&docs);
    assert!(denied(&verdict, &key), "{}", describe(&verdict));
    let named = endpoints_with(&verdict, MtlsNotRequired);
    assert!(
        named.contains(&"/accounts"),
        "the catch-all serves the APIs: {named:?}"
    );
    // With a server block for the API host the catch-all does not serve it.
    let mut docs = split(Some(api_ingress()), &[]);
    docs.push(default_backend_only("catch-all"));
    let verdict = evaluate(&docs);
    assert!(verdict.compliant, "{}", describe(&verdict));
}

// ---------------------------------------------------------------------------------------
// Creation order unknown offline
// ---------------------------------------------------------------------------------------

#[test]
fn unknown_creation_order_is_reported_and_covered_as_the_worst_case() {
    // examples/broken/older-ingress-weakens-host.yaml without creationTimestamps.
    let strong = api_ingress().without_created();
    let weak = Ingress::new("legacy-health-check", MTLS_API_HOST)
        .without_created()
        .annotations(nginx::client_auth("optional"))
        .exact("/healthz");
    let verdict = evaluate(&split(Some(strong.clone()), std::slice::from_ref(&weak)));
    let order: Vec<_> = with_code(&verdict, HostSettingsConflict)
        .into_iter()
        .filter(|v| v.message.contains("creationTimestamp"))
        .collect();
    assert_eq!(order.len(), 1, "{}", describe(&verdict));
    assert!(order[0].message.contains("weakens MTLS endpoints most"));
    let url = format!("https://{MTLS_API_HOST}{API_BASE}/accounts");
    let accounts = coverage(&verdict, "/accounts", &url);
    assert!(
        !accounts.compliant,
        "the worst case (the optional Ingress is older) decides the coverage: {accounts:?}"
    );
    // Identical settings: the order does not matter, nothing to report.
    let same = Ingress::new("health", MTLS_API_HOST)
        .without_created()
        .annotations(nginx::client_auth("on"))
        .exact("/healthz");
    let verdict = evaluate(&split(Some(api_ingress().without_created()), &[same]));
    assert!(verdict.compliant, "{}", describe(&verdict));
}

// ---------------------------------------------------------------------------------------
// Strict profiles
// ---------------------------------------------------------------------------------------

#[test]
fn check_rejects_unknown_profile_fields_naming_field_and_file() {
    let dir = std::env::temp_dir().join(format!("mtls-gate-strict-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("profile.yaml");
    let profile = Profile::split_host().yaml().replace(
        "  ingressController:",
        "  ingresClassName: nginx\n  ingressController:",
    );
    std::fs::write(&file, profile).expect("write profile");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mtls-gate"))
        .arg("check")
        .arg(&file)
        .output()
        .expect("run mtls-gate check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("spec.ingresClassName"), "{stderr}");
    assert!(stderr.contains("profile.yaml"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------
// The adversarial report's §3 variant classes
// ---------------------------------------------------------------------------------------

/// Regex-looking paths that reach the API only in regex mode (group A2).
const REGEX_PATHS: [(&str, &str); 8] = [
    ("/open.*", "ImplementationSpecific"),
    ("/[o]pen-banking-nz", "ImplementationSpecific"),
    ("/OPEN-BANKING-NZ/V3.0/ACCOUNTS", "Prefix"),
    ("/.*", "ImplementationSpecific"),
    ("/o", "Prefix"),
    ("/open-banking-nz/v3\\.0/accounts", "ImplementationSpecific"),
    ("/open-banking-nz", "Exact"),
    ("/(open|x)", "ImplementationSpecific"),
];

/// Issuer-host paths that serve `/token` only in regex mode (group C).
const ISSUER_PATHS: [&str; 5] = ["/tok", "/TOKEN", "/t.ken", "/to", "/(token|x)"];

/// Every variant of §3 that must be denied, as (class, docs, changed Ingress).
fn must_deny_variants() -> Vec<(&'static str, Vec<String>, String)> {
    let mut out = Vec::new();
    let regex_settings: Vec<(&str, &str)> = GO_TRUE
        .iter()
        .map(|v| (USE_REGEX, *v))
        .chain([(REWRITE_TARGET, "/$1")])
        .collect();
    // A2: the empty API host.
    for (path, path_type) in REGEX_PATHS {
        for (k, v) in &regex_settings {
            let ing = Ingress::new("probe", MTLS_API_HOST)
                .annotation(k, v)
                .path(path, path_type);
            out.push((
                "A2 regex on the empty API host",
                split(None, std::slice::from_ref(&ing)),
                ing.key(),
            ));
        }
    }
    // C: the issuer host.
    for path in ISSUER_PATHS {
        for (k, v) in &regex_settings {
            let ing = Ingress::new("issuer-probe", PUBLIC_HOST)
                .created(NEWER)
                .annotation(k, v)
                .prefix(path);
            out.push((
                "C regex on the issuer host",
                split(Some(api_ingress()), std::slice::from_ref(&ing)),
                ing.key(),
            ));
        }
    }
    // D: the single host with the gate.
    for v in GO_TRUE {
        let ing = Ingress::new("accounts-fast-path", SINGLE_HOST)
            .created(NEWER)
            .annotation(USE_REGEX, v)
            .exact("/OPEN-BANKING-NZ/V3.0/ACCOUNTS");
        out.push((
            "D ungated regex Exact on the single host",
            single(single_gated_apis(), std::slice::from_ref(&ing)),
            ing.key(),
        ));
    }
    for pairs in [
        vec![(SATISFY, "any"), (ALLOWLIST, "0.0.0.0/0")],
        vec![
            (SATISFY, "any"),
            (
                "nginx.ingress.kubernetes.io/allowlist-source-range",
                "0.0.0.0/0",
            ),
        ],
        vec![(AUTH_CACHE_KEY, "static"), (AUTH_CACHE_DURATION, "204 5m")],
        vec![(AUTH_CACHE_KEY, "static"), (AUTH_CACHE_DURATION, "any 5m")],
    ] {
        let ing = pairs
            .iter()
            .fold(single_gated_apis(), |i, (k, v)| i.annotation(k, v));
        out.push(("D gate bypass", single(ing.clone(), &[]), ing.key()));
    }
    // A3: only a default backend while the API host has no server.
    let mut docs = split(None, &[]);
    docs.push(default_backend_only("catch-all"));
    out.push(("A3 default backend only", docs, format!("{NS}/catch-all")));
    // A4: ssl-redirect off.
    for v in ["false", "False", "0"] {
        let ing = api_ingress().annotation(SSL_REDIRECT, v);
        out.push((
            "A4 ssl-redirect off",
            split(Some(ing.clone()), &[]),
            ing.key(),
        ));
    }
    // S3: ssl-redirect off on a second Ingress of the protected host.
    let plain = Ingress::new("accounts-legacy", MTLS_API_HOST)
        .created(NEWER)
        .annotation(SSL_REDIRECT, "false")
        .prefix(&format!("{API_BASE}/accounts"));
    out.push((
        "S3 ssl-redirect off next to the CA",
        split(Some(api_ingress()), std::slice::from_ref(&plain)),
        plain.key(),
    ));
    // S10/S12: Y1 `/tok` exists; Y2 adds only use-regex and /healthz (whole host in regex
    // mode, Y1 now serves /token), for every true spelling but "true".
    for v in GO_TRUE.iter().filter(|v| **v != "true") {
        let y1 = Ingress::new("y1", PUBLIC_HOST).prefix("/tok");
        let y2 = Ingress::new("y2", PUBLIC_HOST)
            .created(NEWER)
            .annotation(USE_REGEX, v)
            .prefix("/healthz");
        out.push((
            "S10/S12 a second Ingress flips the issuer host into regex mode",
            split(Some(api_ingress()), &[y1, y2.clone()]),
            y2.key(),
        ));
    }
    out
}

#[test]
fn adversarial_variants_are_all_denied() {
    let variants = must_deny_variants();
    let mut admitted = Vec::new();
    for (class, docs, changed) in &variants {
        let verdict = evaluate(docs);
        // S10/S12: the finding names Y1 (whose route now serves /token); the change to Y2
        // is denied because the violation is new (admission counts new findings too).
        let denied_here =
            denied(&verdict, changed) || (class.starts_with("S10") && !verdict.compliant);
        if !denied_here {
            admitted.push(format!("{class} ({changed}):\n{}", describe(&verdict)));
        }
    }
    println!(
        "adversarial §3 classes: {} must-deny variants, {} admitted",
        variants.len(),
        admitted.len()
    );
    assert!(
        admitted.is_empty(),
        "false admits:\n{}",
        admitted.join("\n\n")
    );
}

#[test]
fn adversarial_must_admit_variants_stay_admitted() {
    // The same regex-looking paths with use-regex off (any Go spelling of false) are
    // literal paths that reach no API endpoint.
    let mut checked = 0;
    for (path, path_type) in REGEX_PATHS {
        if path_type == "Exact" || path.eq_ignore_ascii_case("/open-banking-nz") {
            continue;
        }
        for v in GO_FALSE {
            let ing = Ingress::new("probe", MTLS_API_HOST)
                .annotation(USE_REGEX, v)
                .path(path, path_type);
            let verdict = evaluate(&split(None, &[ing]));
            assert!(
                verdict.compliant,
                "{path} with use-regex {v:?}:\n{}",
                describe(&verdict)
            );
            checked += 1;
        }
    }
    assert!(checked >= 30);
}

// ---------------------------------------------------------------------------------------
// Property: no spelling or value of a boolean or enum annotation is admitted exposed
// ---------------------------------------------------------------------------------------

/// Values a user or an attacker might write: every Go spelling, case and space variants,
/// YAML-ish words and arbitrary short strings.
fn annotation_value() -> impl Strategy<Value = String> {
    let known = prop::sample::select(vec![
        "1",
        "t",
        "T",
        "TRUE",
        "true",
        "True",
        "0",
        "f",
        "F",
        "FALSE",
        "false",
        "False",
        "tRUE",
        "yes",
        "no",
        "on",
        "off",
        "ON",
        "Off",
        " true",
        "true ",
        "false\n",
        "",
        "any",
        "all",
        "ANY",
        " any",
        "any\n",
        "optional",
        "optional_no_ca",
        "on ",
        "2",
    ])
    .prop_map(str::to_string);
    prop_oneof![known, "[ a-zA-Z01_\\n]{0,8}"]
}

/// What the controller does with a value, per Go's `strconv.ParseBool`.
fn go_bool(value: &str) -> Option<bool> {
    GO_TRUE
        .contains(&value)
        .then_some(true)
        .or_else(|| GO_FALSE.contains(&value).then_some(false))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// use-regex V on `/open.*` of the empty API host: exposed exactly when ParseBool(V)
    /// is true; admitted only for a valid false.
    #[test]
    fn use_regex_is_never_admitted_exposed(value in annotation_value()) {
        let ing = Ingress::new("probe", MTLS_API_HOST)
            .annotation(USE_REGEX, &value)
            .implementation_specific("/open.*");
        let verdict = evaluate(&split(None, &[ing]));
        if go_bool(&value) == Some(true) {
            prop_assert!(!verdict.compliant, "exposed by {value:?}");
        }
        prop_assert_eq!(verdict.compliant, go_bool(&value) == Some(false), "{:?}: {}", value, describe(&verdict));
    }

    /// ssl-redirect V and force-ssl-redirect W on the API Ingress: exposed on port 80 when
    /// ssl-redirect is false and force-ssl-redirect is not true.
    #[test]
    fn ssl_redirect_is_never_admitted_exposed(v in annotation_value(), w in annotation_value()) {
        let ing = api_ingress().annotation(SSL_REDIRECT, &v).annotation(FORCE_SSL_REDIRECT, &w);
        let verdict = evaluate(&split(Some(ing), &[]));
        let exposed = go_bool(&v) == Some(false) && go_bool(&w) != Some(true);
        if exposed {
            prop_assert!(!verdict.compliant, "exposed by {v:?}/{w:?}");
        }
        let valid = go_bool(&v).is_some() && go_bool(&w).is_some();
        prop_assert_eq!(verdict.compliant, valid && !exposed, "{:?}/{:?}: {}", v, w, describe(&verdict));
    }

    /// satisfy V on the gated single host: the gate is bypassed when the trimmed value is
    /// `any`; admitted only for exactly `all`.
    #[test]
    fn satisfy_is_never_admitted_exposed(value in annotation_value()) {
        let ing = single_gated_apis().annotation(SATISFY, &value).annotation(ALLOWLIST, "0.0.0.0/0");
        let verdict = evaluate(&single(ing, &[]));
        if value.trim() == "any" {
            prop_assert!(!verdict.compliant, "exposed by {value:?}");
        }
        prop_assert_eq!(verdict.compliant, value == "all", "{:?}: {}", value, describe(&verdict));
    }

    /// auth-tls-verify-client V on the MTLS API host: only exactly `on` requires verified
    /// certificates (anything else: off, optional, or an invalid value the controller
    /// turns into `on`, which is reported).
    #[test]
    fn verify_client_is_never_admitted_exposed(value in annotation_value()) {
        let ing = api_ingress().annotation(nginx::AUTH_TLS_VERIFY_CLIENT, &value);
        let verdict = evaluate(&split(Some(ing), &[]));
        prop_assert_eq!(verdict.compliant, value == "on", "{:?}: {}", value, describe(&verdict));
    }
}
