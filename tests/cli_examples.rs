//! Every example in `examples/` gives the result a bank's platform engineer expects, through
//! the real binary (exit status and JSON report).

use std::collections::BTreeSet;
use std::process::Command;

fn check(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mtls-gate"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("check")
        .args(args)
        .output()
        .expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// A finding that must be reported: (code, host, endpoint).
type Finding = (&'static str, &'static str, Option<&'static str>);

/// (example, expected exit, codes that must be reported, findings that must be among them)
const CASES: &[(&str, i32, &[&str], &[Finding])] = &[
    ("examples/nginx-split-host", 0, &[], &[]),
    ("examples/traefik-split-host", 0, &[], &[]),
    ("examples/haproxy-ingress", 0, &[], &[]),
    (
        "examples/broken/haproxy-older-ingress-weakens-host.yaml",
        1,
        &["HostSettingsConflict", "MtlsNotRequired"],
        &[
            ("HostSettingsConflict", "mtls-api.bank.example", None),
            (
                "MtlsNotRequired",
                "mtls-api.bank.example",
                Some("/domestic-payments"),
            ),
        ],
    ),
    ("examples/traefik-ingressroute", 0, &[], &[]),
    ("examples/gateway-api-split-host", 0, &[], &[]),
    (
        "examples/broken/gateway-api-public-listener-on-mtls-port.yaml",
        1,
        &["MtlsNotRequired"],
        &[
            ("MtlsNotRequired", "mtls-api.bank.example", None),
            ("MtlsNotRequired", "mtls-auth.bank.example", None),
        ],
    ),
    (
        "examples/broken/gateway-api-merged-gateways.yaml",
        1,
        &["UnmodelledSetting"],
        &[
            ("UnmodelledSetting", "mtls-api.bank.example", None),
            ("UnmodelledSetting", "mtls-auth.bank.example", None),
            ("UnmodelledSetting", "auth.bank.example", None),
        ],
    ),
    (
        "examples/broken/gateway-api-single-host-ext-auth.yaml",
        1,
        &["UnmodelledSetting", "MtlsNotRequired"],
        &[
            ("UnmodelledSetting", "auth.bank.example", None),
            ("MtlsNotRequired", "auth.bank.example", Some("/token")),
        ],
    ),
    ("examples/nginx-single-host-gate", 0, &[], &[]),
    (
        "examples/broken/mtls-on-public-host.yaml",
        1,
        &["MtlsRequiredOnTlsEndpoint"],
        &[
            (
                "MtlsRequiredOnTlsEndpoint",
                "auth.bank.example",
                Some("/authorize"),
            ),
            (
                "MtlsRequiredOnTlsEndpoint",
                "auth.bank.example",
                Some("/jwks or /keys"),
            ),
            (
                "MtlsRequiredOnTlsEndpoint",
                "auth.bank.example",
                Some("/.well-known/openid-configuration"),
            ),
        ],
    ),
    (
        "examples/broken/controller-configmap-forwarded-headers.yaml",
        1,
        &["MtlsNotRequired", "TlsMissing"],
        &[
            ("MtlsNotRequired", "mtls-auth.bank.example", Some("/token")),
            (
                "MtlsNotRequired",
                "mtls-api.bank.example",
                Some("/domestic-payments"),
            ),
            ("TlsMissing", "auth.bank.example", None),
        ],
    ),
    (
        "examples/broken/older-ingress-weakens-host.yaml",
        1,
        &["HostSettingsConflict", "MtlsNotRequired"],
        &[
            ("HostSettingsConflict", "mtls-api.bank.example", None),
            (
                "MtlsNotRequired",
                "mtls-api.bank.example",
                Some("/accounts/{AccountId}/balances"),
            ),
            (
                "MtlsNotRequired",
                "mtls-api.bank.example",
                Some("/domestic-payments"),
            ),
        ],
    ),
    (
        "examples/broken/ca-secret-without-ca-crt.yaml",
        1,
        &["CaSecretInvalid", "MtlsNotRequired"],
        &[
            ("CaSecretInvalid", "mtls-api.bank.example", None),
            ("CaSecretInvalid", "mtls-auth.bank.example", None),
            ("MtlsNotRequired", "mtls-auth.bank.example", Some("/token")),
        ],
    ),
    (
        "examples/broken/api-host-without-tls.yaml",
        1,
        &["MtlsNotRequired", "TlsMissing"],
        &[
            ("TlsMissing", "mtls-api.bank.example", None),
            (
                "MtlsNotRequired",
                "mtls-api.bank.example",
                Some("/accounts"),
            ),
        ],
    ),
    // The case: an IngressRoute serving /token without client authentication was
    // ignored ("COMPLIANT", exit 0).
    (
        "examples/broken/ingressroute-token-without-client-auth.yaml",
        1,
        &["MtlsNotRequired"],
        &[("MtlsNotRequired", "mtls-auth.bank.example", Some("/token"))],
    ),
    (
        "examples/broken/token-on-public-host.yaml",
        1,
        &["MtlsNotRequired"],
        &[("MtlsNotRequired", "auth.bank.example", Some("/token"))],
    ),
];

#[test]
fn examples_give_the_expected_verdicts() {
    for (example, exit, codes, findings) in CASES {
        let (status, stdout, stderr) = check(&["--output", "json", example]);
        assert_eq!(status, *exit, "{example}: exit status; stderr: {stderr}");
        let report: serde_json::Value =
            serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{example}: JSON: {e}"));
        assert_eq!(report["compliant"], *exit == 0, "{example}");
        let violations = report["violations"].as_array().expect("violations array");
        let got: BTreeSet<&str> = violations
            .iter()
            .filter_map(|v| v["code"].as_str())
            .collect();
        let want: BTreeSet<&str> = codes.iter().copied().collect();
        assert_eq!(got, want, "{example}: violation codes");
        for (code, host, endpoint) in *findings {
            assert!(
                violations.iter().any(|v| v["code"] == *code
                    && v["host"] == *host
                    && v["endpoint"].as_str() == *endpoint),
                "{example}: expected {code} on {host} for {endpoint:?}"
            );
        }
        for v in violations {
            for field in [
                "code", "message", "profile", "host", "ingress", "path", "endpoint",
            ] {
                assert!(
                    v.get(field).is_some(),
                    "{example}: violation lacks {field}: {v}"
                );
            }
            assert!(
                v["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("Fix") || m.contains(". ")),
                "{v}"
            );
        }
        assert!(
            report["coverage"].as_array().is_some_and(|c| !c.is_empty()),
            "{example}: coverage"
        );
    }
}

#[test]
fn text_report_groups_by_host_and_summarises() {
    let (status, stdout, _) = check(&["examples/broken/older-ingress-weakens-host.yaml"]);
    assert_eq!(status, 1);
    assert!(stdout.contains("NOT COMPLIANT"), "{stdout}");
    assert!(stdout.contains("  host mtls-api.bank.example"), "{stdout}");
    assert!(
        stdout.contains("FAIL HostSettingsConflict [ingress open-banking/open-banking-apis]"),
        "{stdout}"
    );
    // Long endpoint lists are grouped by the table's categories and wrapped.
    assert!(stdout.contains("FAIL MtlsNotRequired [ingress open-banking/open-banking-apis, path /open-banking-nz/v3.0]"), "{stdout}");
    assert!(
        stdout.contains(
            ": 35 endpoint(s)\n         Account Information API (25): /account-access-consents,"
        ),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("Summary: 1 profile(s), 4 Ingress(es);")),
        "{stdout}"
    );
}

#[test]
fn endpoints_command_prints_the_table() {
    let out = Command::new(env!("CARGO_BIN_EXE_mtls-gate"))
        .args(["endpoints", "--output", "json"])
        .output()
        .expect("runs");
    assert!(out.status.success());
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(rows.len(), 43);
    assert_eq!(rows[0]["endpoint"], "/account-access-consents");
    assert_eq!(rows[34]["endpoint"], "/authorize");
    assert_eq!(rows[34]["scheme"], "TLS");
    assert_eq!(rows[39]["discoveryKey"], "token_endpoint");
    let text = Command::new(env!("CARGO_BIN_EXE_mtls-gate"))
        .arg("endpoints")
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("/accounts/{AccountId}/statements/{StatementId}/file"));
    assert!(text.trim_end().ends_with("43 endpoints"));
}
