//! One case per violation code of design.md §5 (and the added `TlsOptionInvalid`): each
//! finding names the code, host, Ingress, path and endpoint, and its message says what to
//! change.

mod common;

use common::*;
use mtls_gate::violation::ViolationCode::{self, *};

/// What one finding must say.
struct Expect {
    code: ViolationCode,
    host: &'static str,
    ingress: Option<String>,
    path: Option<&'static str>,
    endpoint: Option<&'static str>,
    /// Fragments of the message that say what to change.
    fix: &'static [&'static str],
    /// Every code the verdict holds (the expected one included): consequences of the same
    /// mistake, e.g. a CA Secret without `ca.crt` also leaves MTLS endpoints unprotected.
    /// `None`: asserted by a dedicated test.
    codes: Option<&'static [ViolationCode]>,
}

struct Case {
    name: &'static str,
    docs: Vec<String>,
    /// Absent Secrets / TLSOptions do not exist (`check --assume-complete`).
    complete: bool,
    expect: Expect,
}

fn run(case: Case) {
    let Case {
        name,
        docs,
        complete,
        expect,
    } = case;
    let verdict = if complete {
        evaluate_complete(&docs)
    } else {
        evaluate(&docs)
    };
    let found = with_code(&verdict, expect.code);
    assert_eq!(
        found.len(),
        1,
        "[{name}] expected exactly one {}, got:\n{}",
        expect.code,
        describe(&verdict)
    );
    let v = found[0];
    assert_eq!(v.host, expect.host, "[{name}] host");
    assert_eq!(ingress_of(v), expect.ingress, "[{name}] ingress");
    assert_eq!(v.path.as_deref(), expect.path, "[{name}] path");
    assert_eq!(v.endpoint, expect.endpoint, "[{name}] endpoint");
    assert_eq!(v.profile, "example-bank", "[{name}] profile");
    for fragment in expect.fix {
        assert!(
            v.message.contains(fragment),
            "[{name}] the message must say {fragment:?}: {}",
            v.message
        );
    }
    if let Some(expected) = expect.codes {
        let mut codes: Vec<ViolationCode> = verdict.violations.iter().map(|v| v.code).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(
            codes,
            expected,
            "[{name}] codes in the verdict:\n{}",
            describe(&verdict)
        );
    }
    assert!(!verdict.compliant, "[{name}] verdict must not be compliant");
}

/// The MTLS alias host of the split-host profile, configured correctly.
fn mtls_auth_ingress() -> Ingress {
    Ingress::new("authorization-server-mtls", MTLS_AUTH_HOST)
        .annotations(nginx::client_auth("on"))
        .prefix("/")
}

/// The public authorisation host, configured correctly.
fn public_ingress() -> Ingress {
    Ingress::new("authorization-server-public", PUBLIC_HOST)
        .exact("/authorize")
        .exact("/jwks")
        .exact("/.well-known/openid-configuration")
}

fn api_ingress() -> Ingress {
    Ingress::new("open-banking-apis", MTLS_API_HOST).prefix(API_BASE)
}

#[test]
fn mtls_not_required() {
    // A route for /token left on the public host from before the split.
    let public = public_ingress().exact("/token");
    run(Case {
        name: "/token left on the public host",
        docs: vec![
            Profile::split_host().yaml(),
            ca_secret(),
            public.yaml(),
            mtls_auth_ingress().yaml(),
        ],
        complete: false,
        expect: Expect {
            code: MtlsNotRequired,
            host: PUBLIC_HOST,
            ingress: Some(public.key()),
            path: Some("/token"),
            endpoint: Some("/token"),
            fix: &["Fix:", "require verified client certificates"],
            codes: Some(&[MtlsNotRequired]),
        },
    });
}

#[test]
fn mtls_required_on_tls_endpoint() {
    // Someone copied the MTLS annotations onto the public host.
    let public = Ingress::new("authorization-server-public", PUBLIC_HOST)
        .annotations(nginx::client_auth("on"))
        .exact("/authorize");
    run(Case {
        name: "/authorize on a host that requires certificates",
        docs: vec![
            Profile::split_host().yaml(),
            ca_secret(),
            public.yaml(),
            mtls_auth_ingress().yaml(),
        ],
        complete: false,
        expect: Expect {
            code: MtlsRequiredOnTlsEndpoint,
            host: PUBLIC_HOST,
            ingress: Some(public.key()),
            path: Some("/authorize"),
            endpoint: Some("/authorize"),
            fix: &["Fix:", "do not require client certificates"],
            codes: Some(&[MtlsRequiredOnTlsEndpoint]),
        },
    });
}

#[test]
fn host_settings_conflict() {
    // Both Ingresses require certificates, but their settings differ: ingress-nginx applies
    // the older one's to the whole host, so the newer one's depth is silently ignored.
    let v3 = api_ingress().annotations(nginx::client_auth("on"));
    let beta = Ingress::new("open-banking-apis-beta", MTLS_API_HOST)
        .created(NEWER)
        .annotations(nginx::client_auth("on"))
        .annotation(nginx::AUTH_TLS_VERIFY_DEPTH, "3")
        .prefix("/open-banking-nz/v3.1-beta");
    run(Case {
        name: "two Ingresses of one host with different auth-tls-verify-depth",
        docs: vec![
            Profile::split_host().yaml(),
            ca_secret(),
            v3.yaml(),
            beta.yaml(),
        ],
        complete: false,
        expect: Expect {
            code: HostSettingsConflict,
            host: MTLS_API_HOST,
            ingress: Some(beta.key()),
            path: None,
            endpoint: None,
            fix: &[
                "identical auth-tls-* annotations",
                "open-banking/open-banking-apis",
            ],
            codes: Some(&[HostSettingsConflict]),
        },
    });
}

#[test]
fn ca_secret_invalid() {
    let apis = api_ingress().annotations(nginx::client_auth("on"));
    let cross_ns = api_ingress().annotations(nginx::client_auth_with_secret(
        &format!("shared-pki/{CA_SECRET}"),
        "on",
    ));
    let profile = Profile::split_host().yaml();
    let cases = vec![
        Case {
            name: "missing Secret (inputs are complete): whole host answers 403",
            docs: vec![profile.clone(), apis.yaml()],
            complete: true,
            expect: Expect {
                code: CaSecretInvalid,
                host: MTLS_API_HOST,
                ingress: Some(apis.key()),
                path: None,
                endpoint: None,
                fix: &["does not exist", "Create the Secret", "ca.crt"],
                // Fail-closed: the 403 keeps MTLS endpoints safe.
                codes: Some(&[CaSecretInvalid]),
            },
        },
        Case {
            name: "Secret without ca.crt (only tls.crt/tls.key): mTLS silently off",
            docs: vec![
                profile.clone(),
                secret(NS, CA_SECRET, &[("tls.crt", CA_PEM), ("tls.key", "unused")]),
                apis.yaml(),
            ],
            complete: false,
            expect: Expect {
                code: CaSecretInvalid,
                host: MTLS_API_HOST,
                ingress: Some(apis.key()),
                path: None,
                endpoint: None,
                fix: &["no ca.crt key", "under the key ca.crt"],
                // Fail-open: the APIs no longer require certificates.
                codes: Some(&[MtlsNotRequired, CaSecretInvalid]),
            },
        },
        Case {
            name: "cross-namespace auth-tls-secret",
            docs: vec![
                profile.clone(),
                secret("shared-pki", CA_SECRET, &[("ca.crt", CA_PEM)]),
                cross_ns.yaml(),
            ],
            complete: false,
            expect: Expect {
                code: CaSecretInvalid,
                host: MTLS_API_HOST,
                ingress: Some(cross_ns.key()),
                path: None,
                endpoint: None,
                fix: &["cross-namespace", "in namespace open-banking"],
                codes: Some(&[CaSecretInvalid]),
            },
        },
        Case {
            name: "ca.crt is not PEM",
            docs: vec![
                profile.clone(),
                secret(
                    NS,
                    CA_SECRET,
                    &[("ca.crt", "Example Bank Third Party CA (see wiki)")],
                ),
                apis.yaml(),
            ],
            complete: false,
            expect: Expect {
                code: CaSecretInvalid,
                host: MTLS_API_HOST,
                ingress: Some(apis.key()),
                path: None,
                endpoint: None,
                fix: &["PEM", "ca.crt"],
                // Consequences: `non_pem_ca_crt_makes_ingress_nginx_deny_the_whole_host`.
                codes: None,
            },
        },
    ];
    for case in cases {
        run(case);
    }
}

/// ingress-nginx cannot load a Secret whose `ca.crt` is not PEM (`getPemCertificate` →
/// `ssl.CreateCACert` fails, the Secret never reaches the local SSL store), so
/// `GetAuthCertificate` fails, the auth-tls annotation is "location denied" and the whole
/// host answers 403 (reference §1.3 point 2) — fail-closed, exactly like a missing Secret.
/// MTLS endpoints are therefore not exposed, but TLS endpoints on such a host are refused.
#[test]
fn non_pem_ca_crt_makes_ingress_nginx_deny_the_whole_host() {
    let not_pem = secret(
        NS,
        CA_SECRET,
        &[("ca.crt", "Example Bank Third Party CA (see wiki)")],
    );
    // Split host: the API host alone.
    let apis = api_ingress().annotations(nginx::client_auth("on"));
    let verdict = evaluate(&[Profile::split_host().yaml(), not_pem.clone(), apis.yaml()]);
    assert_eq!(
        endpoints_with(&verdict, MtlsNotRequired),
        Vec::<&str>::new(),
        "a 403 host exposes no MTLS endpoint:\n{}",
        describe(&verdict)
    );
    let url = format!("https://{MTLS_API_HOST}{API_BASE}/accounts");
    assert_eq!(
        serving(&verdict, "/accounts", &url),
        [(apis.key(), API_BASE.to_string(), "rejected".to_string())]
    );
    // Single host with the gate: /authorize is refused too.
    let public = Ingress::new("oauth2-public", SINGLE_HOST)
        .annotations(nginx::client_auth("optional"))
        .exact("/oauth2/authorize");
    let verdict = evaluate(&[Profile::single_host().yaml(), not_pem, public.yaml()]);
    assert_eq!(
        endpoints_with(&verdict, MtlsRequiredOnTlsEndpoint),
        ["/authorize"],
        "{}",
        describe(&verdict)
    );
}

/// Without `--assume-complete`, a Secret absent from the inputs is not checked: no finding.
#[test]
fn absent_secret_is_not_checked_unless_inputs_are_complete() {
    let apis = api_ingress().annotations(nginx::client_auth("on"));
    let verdict = evaluate(&[Profile::split_host().yaml(), apis.yaml()]);
    assert!(
        verdict.violations.is_empty(),
        "partial inputs: {}",
        describe(&verdict)
    );
}

#[test]
fn tls_missing() {
    let apis = api_ingress()
        .annotations(nginx::client_auth("on"))
        .without_tls();
    let verdict = evaluate(&[Profile::split_host().yaml(), ca_secret(), apis.yaml()]);
    run(Case {
        name: "API host without spec.tls",
        docs: vec![Profile::split_host().yaml(), ca_secret(), apis.yaml()],
        complete: false,
        expect: Expect {
            code: TlsMissing,
            host: MTLS_API_HOST,
            ingress: Some(apis.key()),
            path: None,
            endpoint: None,
            fix: &["Add a spec.tls entry for mtls-api.bank.example"],
            // No TLS means no client certificate either.
            codes: Some(&[MtlsNotRequired, TlsMissing]),
        },
    });
    assert!(
        naming(&verdict, "/accounts/{AccountId}")
            .iter()
            .all(|v| v.code == MtlsNotRequired),
        "{}",
        describe(&verdict)
    );
}

#[test]
fn tls_option_invalid() {
    let profile = Profile::split_host().traefik().yaml();
    let apis = api_ingress().annotations(traefik::tls_options("mtls-required"));
    let cases = vec![
        Case {
            name: "router.tls.options names a TLSOption that does not exist",
            docs: vec![profile.clone(), ca_secret(), apis.yaml()],
            complete: true,
            expect: Expect {
                code: TlsOptionInvalid,
                host: MTLS_API_HOST,
                ingress: Some(apis.key()),
                path: None,
                endpoint: None,
                fix: &["Create the TLSOption or fix the reference"],
                // What Traefik then serves on the host (its router is in error) is not
                // established in the reference; only the finding is asserted.
                codes: None,
            },
        },
        Case {
            name: "TLSOption with an unknown clientAuthType",
            docs: vec![
                profile.clone(),
                ca_secret(),
                traefik::tls_option("mtls-required", "RequireAndVerify"),
                apis.yaml(),
            ],
            complete: true,
            expect: Expect {
                code: TlsOptionInvalid,
                host: MTLS_API_HOST,
                ingress: Some(apis.key()),
                path: None,
                endpoint: None,
                fix: &["RequireAndVerify", "Use RequireAndVerifyClientCert"],
                codes: None,
            },
        },
    ];
    for case in cases {
        run(case);
    }
}

/// Traefik reads the CA from `tls.ca` or `ca.crt` of every `clientAuth.secretNames` entry.
#[test]
fn traefik_ca_secret_invalid() {
    let profile = Profile::split_host().traefik().yaml();
    let apis = api_ingress().annotations(traefik::tls_options("mtls-required"));
    run(Case {
        name: "TLSOption's Secret has neither tls.ca nor ca.crt",
        docs: vec![
            profile,
            secret(NS, CA_SECRET, &[("tls.crt", CA_PEM), ("tls.key", "unused")]),
            traefik::tls_option("mtls-required", "RequireAndVerifyClientCert"),
            apis.yaml(),
        ],
        complete: true,
        expect: Expect {
            code: CaSecretInvalid,
            host: MTLS_API_HOST,
            ingress: Some(apis.key()),
            path: None,
            endpoint: None,
            fix: &["tls.ca", "ca.crt"],
            codes: Some(&[MtlsNotRequired, CaSecretInvalid]),
        },
    });
}
