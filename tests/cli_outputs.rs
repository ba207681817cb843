//! `check`'s CI- and auditor-facing outputs through the real binary: SARIF validated against
//! the official 2.1.0 schema, JUnit parsed back, file and line of every finding, standard
//! input, `--fail-on`, colour only when asked or on a terminal, the discovery document, and
//! the `init`, `completion` and `version` subcommands.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use mtls_gate::manifest;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Runs the binary with `args` and `stdin`; returns (exit, stdout, stderr).
fn run(args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mtls-gate"))
        .current_dir(ROOT)
        .args(args)
        .env_remove("NO_COLOR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .expect("stdin written");
    drop(input);
    let out = child.wait_with_output().expect("binary ends");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(path)).expect("file reads")
}

/// Every example, compliant and broken (the inputs of the format tests).
const EXAMPLES: &[&str] = &[
    "examples/nginx-split-host",
    "examples/traefik-split-host",
    "examples/nginx-single-host-gate",
    "examples/broken/mtls-on-public-host.yaml",
    "examples/broken/older-ingress-weakens-host.yaml",
    "examples/broken/ca-secret-without-ca-crt.yaml",
    "examples/broken/api-host-without-tls.yaml",
    "examples/broken/token-on-public-host.yaml",
];

fn sarif_validator() -> jsonschema::Validator {
    let schema: serde_json::Value =
        serde_json::from_str(&read("tests/fixtures/sarif/sarif-schema-2.1.0.json"))
            .expect("schema is JSON");
    jsonschema::validator_for(&schema).expect("the SARIF schema compiles")
}

fn assert_valid_sarif(validator: &jsonschema::Validator, what: &str, sarif: &serde_json::Value) {
    let errors: Vec<String> = validator
        .iter_errors(sarif)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what}: SARIF schema errors: {errors:#?}"
    );
}

#[test]
fn sarif_is_valid_against_the_2_1_0_schema_with_one_result_per_violation() {
    let validator = sarif_validator();
    // The validator is not vacuous: a log without `version` is rejected.
    assert!(!validator.is_valid(&serde_json::json!({"runs": []})));
    for example in EXAMPLES {
        let (exit, stdout, stderr) = run(&["check", "-o", "sarif", example], None);
        assert!(exit == 0 || exit == 1, "{example}: exit {exit}: {stderr}");
        let sarif: serde_json::Value = serde_json::from_str(&stdout).expect("SARIF is JSON");
        assert_valid_sarif(&validator, example, &sarif);
        let (_, json, _) = run(&["check", "-o", "json", example], None);
        let json: serde_json::Value = serde_json::from_str(&json).expect("JSON report");
        let run0 = &sarif["runs"][0];
        let results = run0["results"].as_array().expect("results");
        let violations = json["violations"].as_array().expect("violations");
        assert_eq!(results.len(), violations.len(), "{example}");
        let rules: Vec<&str> = run0["tool"]["driver"]["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .map(|r| r["id"].as_str().unwrap_or(""))
            .collect();
        for (result, violation) in results.iter().zip(violations) {
            assert_eq!(result["ruleId"], violation["code"], "{example}");
            let index = result["ruleIndex"].as_u64().expect("ruleIndex") as usize;
            assert_eq!(rules[index], violation["code"], "{example}: ruleIndex");
            assert_eq!(
                result["level"], "error",
                "{example}: Deny profiles are errors"
            );
            let physical = &result["locations"][0]["physicalLocation"];
            assert_eq!(physical["artifactLocation"]["uri"], violation["file"]);
            assert_eq!(physical["region"]["startLine"], violation["line"]);
        }
    }
}

#[test]
fn findings_point_at_the_path_entry_or_the_document() {
    // (example, code, the text the finding's line must hold)
    let cases = [
        (
            "examples/broken/token-on-public-host.yaml",
            "MtlsNotRequired",
            "path: /token",
        ),
        (
            "examples/broken/older-ingress-weakens-host.yaml",
            "MtlsNotRequired",
            "path: /open-banking-nz/v",
        ),
        (
            "examples/broken/older-ingress-weakens-host.yaml",
            "HostSettingsConflict",
            "apiVersion: networking.k8s.io/v1",
        ),
        (
            "examples/broken/mtls-on-public-host.yaml",
            "MtlsRequiredOnTlsEndpoint",
            "path: /",
        ),
    ];
    for (example, code, want) in cases {
        let (_, stdout, _) = run(&["check", "-o", "json", example], None);
        let json: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
        let text = read(example);
        let lines: Vec<&str> = text.lines().collect();
        let found: Vec<&serde_json::Value> = json["violations"]
            .as_array()
            .expect("violations")
            .iter()
            .filter(|v| v["code"] == code)
            .collect();
        assert!(!found.is_empty(), "{example}: no {code}");
        for v in found {
            assert_eq!(v["file"], example);
            let line = v["line"].as_u64().expect("a line") as usize;
            assert!(
                lines[line - 1].contains(want),
                "{example}: {code} at line {line} {:?}, want {want:?}",
                lines[line - 1]
            );
            if let Some(path) = v["path"].as_str().filter(|_| want.starts_with("path")) {
                assert!(lines[line - 1].contains(path), "{example}: {path}");
            }
        }
    }
}

#[test]
fn every_example_document_and_path_has_a_line() {
    for example in EXAMPLES
        .iter()
        .chain(&["examples/render", "examples/starter-profile.yaml"])
    {
        let docs = manifest::read_paths(&[Path::new(ROOT).join(example)]).expect("reads");
        for doc in docs {
            let line = doc
                .origin
                .line
                .unwrap_or_else(|| panic!("{}: no line", doc.origin));
            let text = std::fs::read_to_string(&doc.origin.file).expect("reads");
            let first = text.lines().nth(line - 1).expect("line exists");
            assert!(
                first.contains("apiVersion") || first.contains("kind"),
                "{}: line {line} is {first:?}",
                doc.origin
            );
            let want: BTreeSet<String> = doc.value["spec"]["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|r| r["http"]["paths"].as_array().into_iter().flatten())
                .filter_map(|p| p["path"].as_str().map(str::to_string))
                .collect();
            let got: BTreeSet<String> = doc.path_lines.iter().map(|(p, _)| p.clone()).collect();
            assert!(want.is_subset(&got), "{}: {want:?} vs {got:?}", doc.origin);
        }
    }
}

#[test]
fn a_kubectl_list_dump_locates_each_item() {
    let text = "apiVersion: v1
kind: List
items:
- apiVersion: networking.k8s.io/v1
  kind: Ingress
  metadata: {name: first, namespace: a}
  spec:
    rules:
    - host: x.example
      http:
        paths:
        - path: /one
          pathType: Prefix
          backend: {service: {name: s, port: {number: 80}}}
- apiVersion: networking.k8s.io/v1
  kind: Ingress
  metadata: {name: second, namespace: a}
  spec:
    rules:
    - host: x.example
      http:
        paths:
        - backend: {service: {name: s, port: {number: 80}}}
          path: /two
          pathType: Prefix
metadata: {resourceVersion: \"\"}
";
    let docs = manifest::parse_documents(Path::new("dump.yaml"), text).expect("parses");
    type Located = (Option<usize>, Vec<(String, usize)>);
    let found: Vec<Located> = docs
        .iter()
        .map(|d| (d.origin.line, d.path_lines.clone()))
        .collect();
    assert_eq!(
        found,
        vec![
            (Some(4), vec![("/one".to_string(), 12)]),
            (Some(15), vec![("/two".to_string(), 24)]),
        ]
    );
}

/// JUnit: (suite name, attributes, test cases as (name, classname, outcome, failure message)).
type Case = (String, String, &'static str, String);

fn parse_junit(xml: &str) -> Vec<(String, BTreeMap<String, String>, Vec<Case>)> {
    let doc = roxmltree::Document::parse(xml).expect("JUnit XML parses");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let mut suites = Vec::new();
    for suite in root.children().filter(|n| n.has_tag_name("testsuite")) {
        let attrs: BTreeMap<String, String> = suite
            .attributes()
            .map(|a| (a.name().to_string(), a.value().to_string()))
            .collect();
        let mut cases = Vec::new();
        for case in suite.children().filter(|n| n.has_tag_name("testcase")) {
            let failure = case.children().find(|n| n.has_tag_name("failure"));
            let skipped = case.children().any(|n| n.has_tag_name("skipped"));
            let outcome = match (&failure, skipped) {
                (Some(_), _) => "failed",
                (None, true) => "skipped",
                (None, false) => "passed",
            };
            cases.push((
                case.attribute("name").unwrap_or("").to_string(),
                case.attribute("classname").unwrap_or("").to_string(),
                outcome,
                failure
                    .map(|f| {
                        format!(
                            "{} {}",
                            f.attribute("message").unwrap_or(""),
                            f.text().unwrap_or("")
                        )
                    })
                    .unwrap_or_default(),
            ));
        }
        suites.push((
            suite.attribute("name").unwrap_or("").to_string(),
            attrs,
            cases,
        ));
    }
    suites
}

#[test]
fn junit_has_one_test_case_per_endpoint_url_and_every_finding_fails_one() {
    for example in EXAMPLES {
        let (exit, xml, stderr) = run(&["check", "-o", "junit", example], None);
        assert!(exit == 0 || exit == 1, "{example}: {stderr}");
        let suites = parse_junit(&xml);
        let (_, json, _) = run(&["check", "-o", "json", example], None);
        let json: serde_json::Value = serde_json::from_str(&json).expect("JSON");
        let coverage = json["coverage"].as_array().expect("coverage");
        for (name, attrs, cases) in &suites {
            let urls: Vec<&str> = coverage
                .iter()
                .filter(|c| c["profile"] == name.as_str())
                .map(|c| c["url"].as_str().unwrap_or(""))
                .collect();
            let case_urls: Vec<&str> = cases
                .iter()
                .take(urls.len())
                .map(|c| c.0.as_str())
                .collect();
            assert_eq!(
                case_urls, urls,
                "{example}: one test case per endpoint URL, in order"
            );
            let failed = cases.iter().filter(|c| c.2 == "failed").count();
            let skipped = cases.iter().filter(|c| c.2 == "skipped").count();
            assert_eq!(attrs["tests"], cases.len().to_string(), "{example}");
            assert_eq!(attrs["failures"], failed.to_string(), "{example}");
            assert_eq!(attrs["skipped"], skipped.to_string(), "{example}");
        }
        let failures: Vec<&Case> = suites
            .iter()
            .flat_map(|s| &s.2)
            .filter(|c| c.2 == "failed")
            .collect();
        let violations = json["violations"].as_array().expect("violations");
        assert_eq!(failures.is_empty(), violations.is_empty(), "{example}");
        for v in violations {
            let message = v["message"].as_str().unwrap_or("");
            assert!(
                failures.iter().any(|c| c.3.contains(message)),
                "{example}: finding in no failed test case: {message}"
            );
        }
    }
}

#[test]
fn stdin_reads_like_a_file() {
    let example = "examples/broken/token-on-public-host.yaml";
    let (exit_file, from_file, _) = run(&["check", "-o", "json", example], None);
    let (exit_stdin, from_stdin, stderr) = run(&["check", "-o", "json", "-"], Some(&read(example)));
    assert_eq!((exit_file, exit_stdin), (1, 1), "{stderr}");
    let mut a: serde_json::Value = serde_json::from_str(&from_file).expect("JSON");
    let b: serde_json::Value = serde_json::from_str(&from_stdin).expect("JSON");
    for v in a["violations"].as_array_mut().expect("violations") {
        v["file"] = "<stdin>".into();
    }
    assert_eq!(a, b);
    // SARIF of standard input has no artifact but still names the object.
    let (_, sarif, _) = run(&["check", "-o", "sarif", "-"], Some(&read(example)));
    let sarif: serde_json::Value = serde_json::from_str(&sarif).expect("SARIF");
    assert_valid_sarif(&sarif_validator(), "stdin", &sarif);
    let location = &sarif["runs"][0]["results"][0]["locations"][0];
    assert!(location.get("physicalLocation").is_none(), "{location}");
    assert_eq!(
        location["logicalLocations"][0]["fullyQualifiedName"],
        "Ingress/open-banking/authorization-server-public"
    );
    let (exit, _, stderr) = run(&["check", "-", "-"], Some(&read(example)));
    assert_eq!(exit, 2);
    assert!(stderr.contains("more than once"), "{stderr}");
}

#[test]
fn fail_on_lets_warn_and_audit_findings_pass() {
    let deny = read("examples/broken/token-on-public-host.yaml");
    assert!(deny.contains("enforcement: Deny"));
    // (enforcement, --fail-on, exit, SARIF level)
    let cases = [
        ("Deny", "any", 1, "error"),
        ("Deny", "deny", 1, "error"),
        ("Warn", "any", 1, "warning"),
        ("Warn", "warn", 1, "warning"),
        ("Warn", "deny", 0, "warning"),
        ("Audit", "warn", 0, "note"),
        ("Audit", "any", 1, "note"),
    ];
    for (enforcement, fail_on, want, level) in cases {
        let input = deny.replace("enforcement: Deny", &format!("enforcement: {enforcement}"));
        let (exit, sarif, stderr) = run(
            &["check", "-o", "sarif", "--fail-on", fail_on, "-"],
            Some(&input),
        );
        assert_eq!(exit, want, "{enforcement} --fail-on {fail_on}: {stderr}");
        let sarif: serde_json::Value = serde_json::from_str(&sarif).expect("SARIF");
        assert_eq!(sarif["runs"][0]["results"][0]["level"], level);
        let (_, json, _) = run(
            &["check", "-o", "json", "--fail-on", fail_on, "-"],
            Some(&input),
        );
        let json: serde_json::Value = serde_json::from_str(&json).expect("JSON");
        assert_eq!(
            json["compliant"], false,
            "the report still lists the finding"
        );
        assert_eq!(json["violations"][0]["enforcement"], enforcement);
    }
}

#[test]
fn yaml_output_is_the_json_report() {
    let example = "examples/broken/api-host-without-tls.yaml";
    let (exit, yaml, _) = run(&["check", "-o", "yaml", example], None);
    assert_eq!(exit, 1);
    let (_, json, _) = run(&["check", "-o", "json", example], None);
    let from_yaml: serde_json::Value = serde_yaml_ng::from_str(&yaml).expect("YAML");
    let from_json: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(from_yaml, from_json);
}

#[test]
fn colour_only_when_asked_or_on_a_terminal() {
    let example = "examples/broken/token-on-public-host.yaml";
    let (_, piped, _) = run(&["check", example], None);
    assert!(!piped.contains('\x1b'), "no escapes into a pipe");
    let (_, forced, _) = run(&["check", "--color", "always", example], None);
    assert!(forced.contains("\x1b[1;31mFAIL\x1b[0m"), "{forced}");
    let (_, never, _) = run(&["check", "--color", "never", example], None);
    assert_eq!(never, piped);
}

#[test]
fn text_report_wraps_and_groups_long_endpoint_lists() {
    let (_, text, _) = run(
        &["check", "examples/broken/older-ingress-weakens-host.yaml"],
        None,
    );
    for line in text.lines() {
        // Only a single unbreakable word (a URL) may run past the width.
        assert!(
            line.chars().count() <= 100 || !line.trim().contains(' '),
            "line too long: {line}"
        );
    }
    assert!(
        text.contains("Account Information API (25): /account-access-consents,"),
        "{text}"
    );
    assert!(text.contains("Payment Initiation API (7):"), "{text}");
    assert!(
        text.contains("(examples/broken/older-ingress-weakens-host.yaml:"),
        "{text}"
    );
}

#[test]
fn discovery_document_findings() {
    let base = [
        "check",
        "-o",
        "json",
        "examples/nginx-split-host",
        "--discovery",
    ];
    // The bank's real document: nothing to report.
    let mut args = base.to_vec();
    args.extend([
        "examples/discovery/openid-configuration.json",
        "--discovery-url",
        "https://auth.bank.example/.well-known/openid-configuration",
    ]);
    let (exit, json, stderr) = run(&args, None);
    assert_eq!(exit, 0, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(json["discovery"], serde_json::json!([]));
    // Aliases on the public host, published at the RFC 8414 location.
    let mut args = base.to_vec();
    args.extend([
        "examples/discovery/aliases-on-public-host.json",
        "--discovery-url",
        "https://auth.bank.example/.well-known/oauth-authorization-server",
    ]);
    let (exit, json, _) = run(&args, None);
    assert_eq!(exit, 1);
    let json: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let codes: BTreeSet<(&str, &str)> = json["discovery"]
        .as_array()
        .expect("discovery")
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap_or(""),
                f["key"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let want: BTreeSet<(&str, &str)> = [
        ("DiscoveryUrlNotFromIssuer", ""),
        ("DiscoveryEndpointMismatch", "token_endpoint"),
        (
            "DiscoveryEndpointMismatch",
            "pushed_authorization_request_endpoint",
        ),
        ("MtlsAliasOnTlsHost", "token_endpoint"),
        ("MtlsAliasMissing", "pushed_authorization_request_endpoint"),
    ]
    .into();
    assert_eq!(codes, want);
    // The same in SARIF (valid, with the discovery rules) and JUnit (failing test cases).
    args[2] = "sarif";
    let (_, sarif, _) = run(&args, None);
    let sarif: serde_json::Value = serde_json::from_str(&sarif).expect("SARIF");
    assert_valid_sarif(&sarif_validator(), "discovery", &sarif);
    let uris: BTreeSet<&str> = sarif["runs"][0]["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].as_str())
        .collect();
    assert_eq!(
        uris,
        ["examples/discovery/aliases-on-public-host.json"].into()
    );
    args[2] = "junit";
    let (_, xml, _) = run(&args, None);
    let failed: Vec<String> = parse_junit(&xml)
        .into_iter()
        .flat_map(|s| s.2)
        .filter(|c| c.2 == "failed")
        .map(|c| c.0)
        .collect();
    assert_eq!(failed.len(), 5, "{failed:?}");
    // A document that is not JSON is unusable input.
    let (exit, _, stderr) = run(
        &[
            "check",
            "examples/nginx-split-host",
            "--discovery",
            "examples/starter-profile.yaml",
        ],
        None,
    );
    assert_eq!(exit, 2);
    assert!(
        stderr.contains("examples/starter-profile.yaml: not a valid discovery document"),
        "{stderr}"
    );
}

#[test]
fn init_prints_profiles_that_check_accepts() {
    let (exit, template, _) = run(&["init"], None);
    assert_eq!(exit, 0);
    assert_eq!(template, read("examples/starter-profile.yaml"));
    let (exit, generated, stderr) = run(
        &[
            "init",
            "--from-discovery",
            "examples/discovery/openid-configuration.json",
            "--api-base-url",
            "https://mtls-api.bank.example/open-banking-nz/v3.0",
            "--api-base-url",
            "https://mtls-api.bank.example/open-banking-nz/v2.3",
            "--ingress-class-name",
            "nginx",
        ],
        None,
    );
    assert_eq!(exit, 0, "{stderr}");
    // The generated profile judges the split-host example exactly as the example's own.
    let dir = tempfile::tempdir().expect("tempdir");
    for f in ["ingresses.yaml", "client-ca.yaml"] {
        std::fs::copy(
            Path::new(ROOT).join("examples/nginx-split-host").join(f),
            dir.path().join(f),
        )
        .expect("copy");
    }
    let dir_arg = dir.path().to_string_lossy().to_string();
    let (exit, report, stderr) = run(
        &["check", "-o", "json", "--profile", "-", &dir_arg],
        Some(&generated),
    );
    assert_eq!(exit, 0, "{stderr}\n{generated}");
    let report: serde_json::Value = serde_json::from_str(&report).expect("JSON");
    assert_eq!(report["coverage"].as_array().map(Vec::len), Some(79));
    let (exit, _, stderr) = run(
        &[
            "init",
            "--from-discovery",
            "examples/discovery/openid-configuration.json",
        ],
        None,
    );
    assert_eq!(exit, 2);
    assert!(stderr.contains("--api-base-url"), "{stderr}");
}

#[test]
fn completion_and_version_subcommands() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let (exit, script, _) = run(&["completion", shell], None);
        assert_eq!(exit, 0, "{shell}");
        assert!(
            script.contains("mtls-gate") && script.contains("discovery"),
            "{shell}"
        );
    }
    let (exit, text, _) = run(&["version"], None);
    assert_eq!(exit, 0);
    assert!(
        text.starts_with(&format!(
            "mtls-gate {} (Kubernetes API 1.33, ",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    let (_, json, _) = run(&["version", "-o", "json"], None);
    let json: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
}

/// Runs the binary with stdout or stderr a pipe whose reader is already gone.
fn run_with_closed(args: &[&str], close_stdout: bool) -> Option<i32> {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtls-gate"));
    cmd.current_dir(ROOT).args(args).stdin(Stdio::null());
    if close_stdout {
        cmd.stdout(writer).stderr(Stdio::null());
    } else {
        cmd.stdout(Stdio::null()).stderr(writer);
    }
    cmd.status().expect("runs").code()
}

#[test]
fn closed_pipes_are_not_a_panic() {
    // (args, stdout closed (else stderr), exit): `| head` or a log shipper that went away
    // must not turn into a panic (exit 101).
    let cases: &[(&[&str], bool, i32)] = &[
        (&["crd"], true, 0),
        (&["completion", "bash"], true, 0),
        (&["endpoints"], true, 0),
        (
            &["check", "examples/broken/token-on-public-host.yaml"],
            true,
            1,
        ),
        (
            &["check", "-o", "sarif", "examples/nginx-split-host"],
            true,
            0,
        ),
        (&["check", "no-such-file.yaml"], false, 2),
        (&["init", "--from-discovery", "no-such-file.json"], false, 2),
    ];
    for (args, stdout, exit) in cases {
        assert_eq!(run_with_closed(args, *stdout), Some(*exit), "{args:?}");
    }
}

#[test]
fn text_logs_into_a_pipe_carry_no_colour() {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_mtls-gate"))
        .current_dir(ROOT)
        .args([
            "webhook",
            "--listen",
            "127.0.0.1:0",
            "--probe-listen",
            "127.0.0.1:0",
        ])
        .args([
            "--log-format",
            "text",
            "--objects",
            "examples/nginx-split-host",
        ])
        .args([
            "--tls-cert-file",
            "no-such-dir/tls.crt",
            "--tls-key-file",
            "no-such-dir/tls.key",
        ])
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = Vec::new();
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        let listening = line.contains("listening");
        lines.push(line);
        if listening {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(lines.iter().any(|l| l.contains(" INFO ")), "{lines:?}");
    assert!(lines.iter().all(|l| !l.contains('\x1b')), "{lines:?}");
}

#[test]
fn standalone_webhook_without_a_profile_refuses_to_start() {
    let (exit, _, stderr) = run(
        &[
            "webhook",
            "--tls-cert-file",
            "no-such-dir/tls.crt",
            "--tls-key-file",
            "no-such-dir/tls.key",
            "--objects",
            "examples/nginx-split-host/ingresses.yaml",
        ],
        None,
    );
    assert_eq!(exit, 1);
    assert!(stderr.contains("no ApiProviderProfile found"), "{stderr}");
}

#[test]
fn endpoints_text_names_only_discovery_metadata_keys() {
    let (exit, text, _) = run(&["endpoints"], None);
    assert_eq!(exit, 0);
    let discovery = text
        .lines()
        .find(|l| l.contains("/.well-known/openid-configuration"))
        .expect("the discovery row");
    assert!(discovery.trim_end().ends_with(" -"), "{discovery}");
    assert!(!text.contains("openid_configuration"));
    assert!(text.contains("token_endpoint") && text.contains("jwks_uri"));
}

/// The text report says where an ingress controller's controller-wide settings came from:
/// the ConfigMap the profile names, or the defaults `check` assumed.
#[test]
fn the_text_report_says_where_controller_settings_come_from() {
    let cases = [
        (
            "examples/nginx-split-host",
            "controller settings: ConfigMap ingress-nginx/ingress-nginx-controller",
        ),
        (
            "examples/nginx-single-host-gate",
            "controller settings: the controller ConfigMap's defaults are assumed",
        ),
        (
            "examples/haproxy-ingress",
            "controller settings: the controller ConfigMap's defaults are assumed",
        ),
    ];
    for (example, says) in cases {
        let (_, stdout, _) = run(&["check", "--output", "text", example], None);
        assert!(stdout.contains(says), "{example}: {stdout}");
    }
    let (_, stdout, _) = run(
        &["check", "--output", "text", "examples/traefik-split-host"],
        None,
    );
    assert!(!stdout.contains("controller settings"), "{stdout}");
}
