//! render → check round trips: rendered output passes `check`, rendering is idempotent, and
//! an Ingress that cannot be made compliant is refused with the paths to move.

use std::path::Path;

use mtls_gate::cli::{InputArgs, load_inputs, render_documents};
use mtls_gate::engine;
use mtls_gate::manifest::{load, parse_documents};

fn args(path: &str) -> InputArgs {
    InputArgs {
        profile: None,
        namespace: "default".into(),
        assume_complete: false,
        paths: vec![Path::new(env!("CARGO_MANIFEST_DIR")).join(path)],
    }
}

/// Renders the example and returns the rendered manifests as YAML text.
fn render(path: &str) -> (String, Vec<mtls_gate::render::RenderPlan>) {
    let manifests = load_inputs(&args(path)).expect("example loads");
    let (docs, plans) = render_documents(&manifests).expect("renders");
    let yaml: String = docs
        .iter()
        .map(|d| format!("---\n{}", mtls_gate::manifest::to_yaml(d).expect("yaml")))
        .collect();
    (yaml, plans)
}

fn rerender(yaml: &str) -> (String, Vec<mtls_gate::render::RenderPlan>) {
    let docs = parse_documents(Path::new("rendered.yaml"), yaml).expect("rendered output parses");
    let manifests = load(docs, "default", false).expect("rendered output loads");
    let (docs, plans) = render_documents(&manifests).expect("renders");
    let yaml: String = docs
        .iter()
        .map(|d| format!("---\n{}", mtls_gate::manifest::to_yaml(d).expect("yaml")))
        .collect();
    (yaml, plans)
}

fn check_yaml(yaml: &str) -> engine::Verdict {
    let docs = parse_documents(Path::new("rendered.yaml"), yaml).expect("parses");
    let manifests = load(docs, "default", true).expect("loads");
    mtls_gate::cli::evaluate_all(&manifests).expect("evaluates")
}

#[test]
fn rendered_examples_pass_check_and_render_is_idempotent() {
    for (example, managed, extra_objects) in [
        ("examples/render/nginx-split-host.yaml", 3, 0),
        ("examples/render/traefik-single-host-gate.yaml", 2, 4),
        ("examples/render/haproxy-single-host-gate.yaml", 2, 0),
        ("examples/nginx-split-host", 2, 0),
        ("examples/nginx-single-host-gate", 2, 0),
    ] {
        let before = load_inputs(&args(example)).expect("loads");
        let (rendered, plans) = render(example);
        assert!(
            plans.iter().all(|p| p.refusals.is_empty()),
            "{example}: {:?}",
            plans[0].refusals
        );
        assert_eq!(
            plans.iter().map(|p| p.ingresses.len()).sum::<usize>(),
            managed,
            "{example}: managed Ingresses"
        );
        assert_eq!(
            plans.iter().map(|p| p.objects.len()).sum::<usize>(),
            extra_objects,
            "{example}: extra objects"
        );
        let verdict = check_yaml(&rendered);
        assert!(
            verdict.compliant,
            "{example}: rendered output is not compliant: {:#?}",
            verdict.violations
        );
        assert!(
            verdict.coverage.iter().all(|c| c.served),
            "{example}: every endpoint is served"
        );
        // Rendering the rendered output changes nothing.
        let (again, plans) = rerender(&rendered);
        assert_eq!(again, rendered, "{example}: render is not idempotent");
        let after = parse_documents(Path::new("x.yaml"), &again).expect("parses");
        let after = load(after, "default", false).expect("loads");
        for plan in &plans {
            for r in &plan.ingresses {
                let view = after
                    .view
                    .ingress(&r.ingress)
                    .expect("rendered Ingress present");
                assert!(
                    r.changes.is_noop(&view.annotations),
                    "{example}: {} still changes: {:?}",
                    r.ingress,
                    r.changes
                );
            }
        }
        // Nothing but annotations changed on the input Ingresses.
        assert_eq!(
            before.view.ingress_count(),
            after.view.ingress_count(),
            "{example}"
        );
    }
}

#[test]
fn nginx_split_host_renders_required_verification_on_mtls_hosts_only() {
    let (yaml, plans) = render("examples/render/nginx-split-host.yaml");
    let roles: Vec<(String, String)> = plans[0]
        .ingresses
        .iter()
        .map(|r| {
            (
                r.ingress.to_string(),
                serde_json::to_value(r.role)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        [
            (
                "open-banking/authorization-server-mtls".to_string(),
                "mtls".to_string()
            ),
            (
                "open-banking/authorization-server-public".to_string(),
                "tls".to_string()
            ),
            (
                "open-banking/open-banking-apis".to_string(),
                "mtls".to_string()
            ),
        ]
    );
    assert!(yaml.contains(
        "nginx.ingress.kubernetes.io/auth-tls-secret: open-banking/open-banking-client-ca"
    ));
    assert!(
        yaml.contains("nginx.ingress.kubernetes.io/auth-tls-verify-client: 'on'"),
        "{yaml}"
    );
    assert!(!yaml.contains("snippet"), "never renders snippets");
    assert!(!yaml.contains("auth-url"), "split host needs no gate");
}

#[test]
fn traefik_gate_chain_is_rendered_in_order() {
    let (yaml, plans) = render("examples/render/traefik-single-host-gate.yaml");
    let kinds: Vec<(&str, &str)> = plans[0]
        .objects
        .iter()
        .map(|o| {
            (
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("TLSOption", "mtls-gate-example-bank-mtls-optional"),
            ("Middleware", "mtls-gate-example-bank-strip-client-cert"),
            ("Middleware", "mtls-gate-example-bank-pass-client-cert"),
            ("Middleware", "mtls-gate-example-bank-gate"),
        ]
    );
    assert_eq!(
        plans[0].objects[0]["spec"]["clientAuth"]["clientAuthType"],
        "VerifyClientCertIfGiven"
    );
    assert_eq!(
        plans[0].objects[3]["spec"]["forwardAuth"]["address"],
        "https://mtls-gate.mtls-gate.svc.cluster.local/verify?controller=traefik"
    );
    assert!(yaml.contains(
        "router.middlewares: open-banking-mtls-gate-example-bank-strip-client-cert@kubernetescrd,open-banking-mtls-gate-example-bank-pass-client-cert@kubernetescrd,open-banking-mtls-gate-example-bank-gate@kubernetescrd"
    ));
}

#[test]
fn catch_all_on_a_mixed_host_is_refused_with_the_paths_to_split() {
    let (_, plans) = render("examples/render/cannot-render-catch-all.yaml");
    let refusal = &plans[0].refusals[0];
    assert_eq!(refusal.ingress.to_string(), "open-banking/everything");
    assert_eq!(refusal.host.as_deref(), Some("api.bank.example"));
    assert!(
        refusal.message.contains("path(s) / (MTLS:"),
        "{}",
        refusal.message
    );
    assert!(
        refusal
            .message
            .contains("TLS: /.well-known/openid-configuration, /authorize, /jwks or /keys"),
        "{}",
        refusal.message
    );
    assert!(
        refusal.message.contains("Replace them with specific paths"),
        "{}",
        refusal.message
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mtls-gate"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["render", "examples/render/cannot-render-catch-all.yaml"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("cannot render Ingress open-banking/everything")
    );
}

#[test]
fn mixed_host_without_gate_is_refused() {
    let yaml = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/render/cannot-render-catch-all.yaml"),
    )
    .unwrap();
    let yaml = yaml.replace(
        "  gate: {url: \"https://mtls-gate.mtls-gate.svc.cluster.local/verify\"}\n",
        "",
    );
    let (_, plans) = rerender(&yaml);
    let message = &plans[0].refusals[0].message;
    assert!(message.contains("spec.gate is not set"), "{message}");
    assert!(
        message.contains("Move the TLS endpoints to another host"),
        "{message}"
    );
}
