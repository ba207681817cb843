//! design.md §5: unusable input makes `mtls-gate check` exit 2 with a message that names
//! the file and, where possible, the document and the field. Runs the real binary.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

fn mtls_gate(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mtls-gate"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run mtls-gate")
}

/// One unusable input: the files to write, the `check` arguments, and what stderr must say.
struct Case {
    name: &'static str,
    files: Vec<(&'static str, Vec<u8>)>,
    args: Vec<&'static str>,
    stderr: Vec<String>,
}

fn text(s: impl Into<String>) -> Vec<u8> {
    s.into().into_bytes()
}

fn profile_with(edit: impl Fn(String) -> String) -> Vec<u8> {
    let yaml = Profile::split_host().yaml();
    let edited = edit(yaml.clone());
    assert_ne!(edited, yaml, "the edit must change the profile");
    text(edited)
}

fn apis() -> Ingress {
    Ingress::new("open-banking-apis", MTLS_API_HOST)
        .annotations(nginx::client_auth("on"))
        .prefix(API_BASE)
}

fn run(case: Case) {
    let name = case.name;
    let dir = tempfile::tempdir().expect("tempdir");
    for (file, contents) in &case.files {
        let path = dir.path().join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, contents).expect("write");
    }
    let mut args = vec!["check"];
    args.extend(&case.args);
    let out = mtls_gate(dir.path(), &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "[{name}] exit status; stderr:\n{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "[{name}] no report on unusable input, got:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr.starts_with("error: "), "[{name}] stderr: {stderr}");
    for fragment in &case.stderr {
        assert!(
            stderr.contains(fragment.as_str()),
            "[{name}] stderr must contain {fragment:?}:\n{stderr}"
        );
    }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn malformed_files() {
    let cases = vec![
        Case {
            name: "malformed YAML in the second document",
            files: vec![
                ("profile.yaml", text(Profile::split_host().yaml())),
                (
                    "ingresses.yaml",
                    text(format!(
                        "{}---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: broken\n  annotations: [unclosed\n",
                        apis().yaml()
                    )),
                ),
            ],
            args: vec!["profile.yaml", "ingresses.yaml"],
            stderr: s(&["ingresses.yaml: document 2", "not valid YAML"]),
        },
        Case {
            name: "JSON syntax error",
            files: vec![
                ("profile.yaml", text(Profile::split_host().yaml())),
                (
                    "ingress.json",
                    text(
                        r#"{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "apis",}}"#,
                    ),
                ),
            ],
            args: vec!["profile.yaml", "ingress.json"],
            stderr: s(&[
                "ingress.json: document 1",
                "not valid JSON",
                "line 1 column",
            ]),
        },
        Case {
            name: "scalar document",
            files: vec![
                ("profile.yaml", text(Profile::split_host().yaml())),
                (
                    "ingresses.yaml",
                    text(format!("{}---\nopen-banking-apis\n", apis().yaml())),
                ),
            ],
            args: vec!["profile.yaml", "ingresses.yaml"],
            stderr: s(&[
                "ingresses.yaml: document 2",
                "expected a mapping with apiVersion and kind, found a string",
            ]),
        },
        Case {
            name: "file that is not UTF-8 text",
            files: vec![
                ("profile.yaml", text(Profile::split_host().yaml())),
                ("ingress.yaml", vec![0xff, 0xfe, b'k', b'i', b'n', b'd']),
            ],
            args: vec!["profile.yaml", "ingress.yaml"],
            stderr: s(&["ingress.yaml: document 1", "UTF-8"]),
        },
    ];
    for case in cases {
        run(case);
    }
}

#[test]
fn invalid_profiles() {
    let cases = vec![
        Case {
            name: "http issuer",
            files: vec![(
                "profile.yaml",
                profile_with(|y| {
                    y.replace("https://auth.bank.example", "http://auth.bank.example")
                }),
            )],
            args: vec!["profile.yaml"],
            stderr: s(&[
                "profile.yaml: document 1",
                "ApiProviderProfile \"example-bank\"",
                "spec.issuer",
                "https",
            ]),
        },
        Case {
            name: "verifyDepth 11",
            files: vec![(
                "profile.yaml",
                profile_with(|y| y.replace("verifyDepth: 2", "verifyDepth: 11")),
            )],
            args: vec!["profile.yaml"],
            stderr: s(&[
                "profile.yaml: document 1",
                "spec.clientCertificate.verifyDepth",
                "11",
            ]),
        },
        Case {
            name: "verifyDepth of the wrong type",
            files: vec![(
                "profile.yaml",
                profile_with(|y| y.replace("verifyDepth: 2", "verifyDepth: two")),
            )],
            args: vec!["profile.yaml"],
            stderr: s(&[
                "profile.yaml: document 1",
                "spec.clientCertificate.verifyDepth",
            ]),
        },
        Case {
            name: "empty apiBaseUrls",
            files: vec![(
                "profile.yaml",
                text(Profile::split_host().api_base_urls(&[]).yaml()),
            )],
            args: vec!["profile.yaml"],
            stderr: s(&[
                "profile.yaml: document 1",
                "spec.apiBaseUrls",
                "at least one",
            ]),
        },
        Case {
            name: "second apiBaseUrl is not a URL",
            files: vec![(
                "profile.yaml",
                text(
                    Profile::split_host()
                        .api_base_urls(&[
                            "https://mtls-api.bank.example/open-banking-nz/v3.0",
                            "mtls-api.bank.example/open-banking-nz/v2.3",
                        ])
                        .yaml(),
                ),
            )],
            args: vec!["profile.yaml"],
            stderr: s(&["profile.yaml: document 1", "spec.apiBaseUrls[1]"]),
        },
        Case {
            name: "caSecretName that is not a Secret name",
            files: vec![(
                "profile.yaml",
                text(Profile::split_host().ca_secret_name("Client_CA").yaml()),
            )],
            args: vec!["profile.yaml"],
            stderr: s(&[
                "profile.yaml: document 1",
                "spec.clientCertificate.caSecretName",
                "Client_CA",
            ]),
        },
        Case {
            name: "invalid profile given with --profile, after a valid document",
            files: vec![
                (
                    "profile.yaml",
                    text(format!(
                        "{}---\n{}",
                        ca_secret(),
                        String::from_utf8(profile_with(|y| {
                            y.replace("verifyDepth: 2", "verifyDepth: 0")
                        }))
                        .expect("utf-8")
                    )),
                ),
                ("ingresses.yaml", text(apis().yaml())),
            ],
            args: vec!["--profile", "profile.yaml", "ingresses.yaml"],
            stderr: s(&[
                "profile.yaml: document 2",
                "spec.clientCertificate.verifyDepth",
            ]),
        },
        Case {
            name: "no profile at all",
            files: vec![("ingresses.yaml", text(apis().yaml()))],
            args: vec!["ingresses.yaml"],
            stderr: s(&["no ApiProviderProfile found", "--profile"]),
        },
    ];
    for case in cases {
        run(case);
    }
}

#[test]
fn unreadable_paths() {
    let cases = vec![
        Case {
            name: "nonexistent file",
            files: vec![("profile.yaml", text(Profile::split_host().yaml()))],
            args: vec!["profile.yaml", "missing.yaml"],
            stderr: s(&["missing.yaml: cannot read"]),
        },
        Case {
            name: "nonexistent --profile",
            files: vec![("ingresses.yaml", text(apis().yaml()))],
            args: vec!["--profile", "profiles/bank.yaml", "ingresses.yaml"],
            stderr: s(&["profiles/bank.yaml: cannot read"]),
        },
        Case {
            name: "directory without manifests",
            files: vec![
                ("profile.yaml", text(Profile::split_host().yaml())),
                ("manifests/README.md", text("# nothing here\n")),
            ],
            args: vec!["profile.yaml", "manifests"],
            stderr: s(&["manifests: no .yaml, .yml or .json files found"]),
        },
    ];
    for case in cases {
        run(case);
    }
}

/// A manifest directory holding a dangling symlink (a file that cannot be read).
#[cfg(unix)]
#[test]
fn unreadable_file_inside_a_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("profile.yaml"),
        Profile::split_host().yaml(),
    )
    .expect("write");
    std::fs::create_dir(dir.path().join("manifests")).expect("mkdir");
    std::fs::write(dir.path().join("manifests/apis.yaml"), apis().yaml()).expect("write");
    std::os::unix::fs::symlink(
        dir.path().join("gone/ingress.yaml"),
        dir.path().join("manifests/zz-gone.yaml"),
    )
    .expect("symlink");
    let out = mtls_gate(dir.path(), &["check", "profile.yaml", "manifests"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(
        stderr.contains("manifests/zz-gone.yaml: cannot read"),
        "stderr must name the file: {stderr}"
    );
}

#[test]
fn invalid_ingresses() {
    let with_bad_field = |field_line: &str, replacement: &str| {
        let yaml = apis().yaml();
        assert!(yaml.contains(field_line), "{field_line:?} in\n{yaml}");
        yaml.replacen(field_line, replacement, 1)
    };
    let public = Ingress::new("authorization-server-public", PUBLIC_HOST).exact("/authorize");
    let cases = vec![
        Case {
            name: "paths is a string, in the second document",
            files: vec![
                ("profile.yaml", text(Profile::split_host().yaml())),
                (
                    "ingresses.yaml",
                    text(format!(
                        "{}---\n{}",
                        public.yaml(),
                        with_bad_field(
                            "        paths:\n",
                            "        paths: \"/open-banking-nz/v3.0\"\n"
                        )
                        .split("          - path:")
                        .next()
                        .expect("head")
                    )),
                ),
            ],
            args: vec!["profile.yaml", "ingresses.yaml"],
            stderr: s(&[
                "ingresses.yaml: document 2",
                "Ingress \"open-banking-apis\"",
                "spec.rules[0].http.paths",
            ]),
        },
        Case {
            name: "pathType is a number",
            files: vec![
                ("profile.yaml", text(Profile::split_host().yaml())),
                (
                    "ingresses.yaml",
                    text(with_bad_field("pathType: Prefix", "pathType: 7")),
                ),
            ],
            args: vec!["profile.yaml", "ingresses.yaml"],
            stderr: s(&[
                "ingresses.yaml: document 1",
                "spec.rules[0].http.paths[0].pathType",
            ]),
        },
        Case {
            name: "annotation value is a mapping",
            files: vec![
                ("profile.yaml", text(Profile::split_host().yaml())),
                (
                    "ingresses.yaml",
                    text(with_bad_field(
                        "auth-tls-verify-client: \"on\"",
                        "auth-tls-verify-client: {value: on}",
                    )),
                ),
            ],
            args: vec!["profile.yaml", "ingresses.yaml"],
            stderr: s(&[
                "ingresses.yaml: document 1",
                "metadata.annotations",
                "auth-tls-verify-client",
            ]),
        },
        Case {
            name: "extensions/v1beta1 Ingress",
            files: vec![
                ("profile.yaml", text(Profile::split_host().yaml())),
                (
                    "ingresses.yaml",
                    text(apis().yaml().replace(
                        "apiVersion: networking.k8s.io/v1\n",
                        "apiVersion: extensions/v1beta1\n",
                    )),
                ),
            ],
            args: vec!["profile.yaml", "ingresses.yaml"],
            stderr: s(&[
                "ingresses.yaml: document 1",
                "apiVersion",
                "extensions/v1beta1",
                "networking.k8s.io/v1",
            ]),
        },
        Case {
            name: "networking.k8s.io/v1beta1 Ingress inside a List",
            files: vec![
                ("profile.yaml", text(Profile::split_host().yaml())),
                (
                    "list.json",
                    text(
                        r#"{"apiVersion": "v1", "kind": "List", "items": [
                             {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "ok", "namespace": "open-banking"}},
                             {"apiVersion": "networking.k8s.io/v1beta1", "kind": "Ingress", "metadata": {"name": "old", "namespace": "open-banking"}}
                           ]}"#,
                    ),
                ),
            ],
            args: vec!["profile.yaml", "list.json"],
            stderr: s(&[
                "list.json: document 1 item 1",
                "Ingress \"old\"",
                "networking.k8s.io/v1beta1",
            ]),
        },
    ];
    for case in cases {
        run(case);
    }
}

/// `render` reads its inputs the same way and refuses the same unusable input.
#[test]
fn render_refuses_unusable_input_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("profile.yaml"),
        Profile::split_host().verify_depth(11).yaml(),
    )
    .expect("write");
    let out = mtls_gate(dir.path(), &["render", "profile.yaml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(out.stdout.is_empty(), "nothing rendered");
    assert!(
        stderr.contains("profile.yaml: document 1") && stderr.contains("verifyDepth"),
        "{stderr}"
    );
}

/// The counterpart: the same files, fixed, are usable (exit 0), so the cases above fail
/// for the reason they name.
#[test]
fn fixed_input_is_usable() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("profile.yaml"),
        Profile::split_host().yaml(),
    )
    .expect("write");
    std::fs::write(
        dir.path().join("ingresses.yaml"),
        format!("{}---\n{}", ca_secret(), apis().yaml()),
    )
    .expect("write");
    let out = mtls_gate(dir.path(), &["check", "profile.yaml", "ingresses.yaml"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("COMPLIANT"));
}
