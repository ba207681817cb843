//! The admission webhooks end to end: real AdmissionReview JSON over HTTPS on loopback to
//! the real server, answered by the engine-backed handler on a cluster view built from the
//! examples. CREATE/UPDATE/DELETE, every enforcement mode, mutation patches applied and
//! re-checked, profile validation, readiness, and the standalone `mtls-gate webhook` binary.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine as _;
use mtls_gate::admission::ClusterAdmission;
use mtls_gate::cluster::ClusterView;
use mtls_gate::manifest::{load, read_paths};
use mtls_gate::webhook::{WebhookConfig, WebhookMetrics, bind};
use prometheus_client::registry::Registry;
use rustls::RootCertStore;
use serde_json::{Value, json};
use support::{INGRESS, Tls, ingress, post, probe, review, tls};

fn example_view(paths: &[&str]) -> ClusterView {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs = read_paths(&paths.iter().map(|p| root.join(p)).collect::<Vec<_>>()).unwrap();
    load(docs, "default", true).unwrap().view
}

struct Running {
    addr: SocketAddr,
    probe: SocketAddr,
    roots: Arc<RootCertStore>,
    view: Arc<RwLock<ClusterView>>,
    ready: Arc<AtomicBool>,
    _tls: Tls,
}

async fn start(view: ClusterView, ready: bool) -> Running {
    let tls = tls();
    let config = WebhookConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        tls.dir.path().join("tls.crt"),
        tls.dir.path().join("tls.key"),
    );
    let view = Arc::new(RwLock::new(view));
    let ready = Arc::new(AtomicBool::new(ready));
    let handler = Arc::new(ClusterAdmission::new(
        view.clone(),
        ready.clone(),
        vec!["kube-system".into()],
    ));
    let mut registry = Registry::default();
    let metrics = Arc::new(WebhookMetrics::register(&mut registry));
    let bound = bind(config).await.unwrap();
    let (addr, probe) = (bound.local_addr(), bound.probe_addr());
    tokio::spawn(bound.serve(
        handler,
        metrics,
        Arc::new(registry),
        std::future::pending::<()>(),
    ));
    Running {
        addr,
        probe,
        roots: Arc::new(tls.roots.clone()),
        view,
        ready,
        _tls: tls,
    }
}

fn example_ingress(file: &str, name: &str) -> Value {
    let docs = read_paths(&[Path::new(env!("CARGO_MANIFEST_DIR")).join(file)]).unwrap();
    docs.into_iter().find(|d| d.name() == name).unwrap().value
}

#[tokio::test]
async fn ingress_create_update_delete_are_judged_after_the_change() {
    let server = start(example_view(&["examples/nginx-split-host"]), true).await;
    let send = |body: Value| {
        let (addr, roots) = (server.addr, server.roots.clone());
        async move { post(addr, &roots, "/validate", &body).await }
    };

    // CREATE: a new Ingress on the MTLS API host is covered by the host-wide settings.
    let ok = ingress(
        "statements-export",
        "mtls-api.bank.example",
        "/open-banking-nz/v3.0/statements",
        json!({}),
        json!({}),
    );
    let (status, body) = send(review(
        "u-1",
        "CREATE",
        INGRESS,
        Some("open-banking"),
        "statements-export",
        Some(ok.clone()),
        None,
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["response"]["uid"], "u-1");
    assert_eq!(body["response"]["allowed"], true, "{body}");

    // CREATE: /token on the public host is denied, naming endpoint, path and fix.
    let bad = ingress(
        "token-shortcut",
        "auth.bank.example",
        "/token",
        json!({}),
        json!({}),
    );
    let (_, body) = send(review(
        "u-2",
        "CREATE",
        INGRESS,
        Some("open-banking"),
        "token-shortcut",
        Some(bad),
        None,
    ))
    .await;
    assert_eq!(body["response"]["uid"], "u-2");
    assert_eq!(body["response"]["allowed"], false);
    let message = body["response"]["status"]["message"].as_str().unwrap();
    assert!(message.contains("[MtlsNotRequired] profile example-bank, host auth.bank.example endpoint /token path /token"), "{message}");
    assert!(message.contains("Fix:"), "{message}");

    // UPDATE: weakening the API host's verification is denied.
    let current = example_ingress(
        "examples/nginx-split-host/ingresses.yaml",
        "open-banking-apis",
    );
    let mut weakened = current.clone();
    weakened["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-tls-verify-client"] =
        json!("optional");
    let (_, body) = send(review(
        "u-3",
        "UPDATE",
        INGRESS,
        Some("open-banking"),
        "open-banking-apis",
        Some(weakened),
        Some(current.clone()),
    ))
    .await;
    assert_eq!(body["response"]["allowed"], false, "{body}");

    // DELETE of the Ingress that carries the host's CA, once another Ingress relies on it.
    server
        .view
        .write()
        .unwrap()
        .upsert_ingress(mtls_gate::model::IngressView::from_ingress(
            &serde_json::from_value(ok).unwrap(),
            "open-banking",
        ));
    let (_, body) = send(review(
        "u-4",
        "DELETE",
        INGRESS,
        Some("open-banking"),
        "open-banking-apis",
        None,
        Some(current),
    ))
    .await;
    assert_eq!(body["response"]["allowed"], false, "{body}");
    assert!(
        body["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("open-banking/statements-export")
    );

    // Excluded namespaces and other kinds are admitted.
    let (_, body) = send(review(
        "u-5",
        "CREATE",
        INGRESS,
        Some("kube-system"),
        "token-shortcut",
        Some(ingress(
            "x",
            "auth.bank.example",
            "/token",
            json!({}),
            json!({}),
        )),
        None,
    ))
    .await;
    assert_eq!(body["response"]["allowed"], true);
    let (_, body) = send(review(
        "u-6",
        "CREATE",
        ("", "v1", "ConfigMap"),
        Some("open-banking"),
        "cm",
        Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}})),
        None,
    ))
    .await;
    assert_eq!(
        (
            body["response"]["allowed"].clone(),
            body["response"]["uid"].clone()
        ),
        (json!(true), json!("u-6"))
    );
}

#[tokio::test]
async fn traefik_tls_option_changes_are_judged_on_the_profile_hosts() {
    const TLS_OPTION: (&str, &str, &str) = ("traefik.io", "v1alpha1", "TLSOption");
    let server = start(example_view(&["examples/traefik-split-host"]), true).await;
    let send = |body: Value| {
        let (addr, roots) = (server.addr, server.roots.clone());
        async move { post(addr, &roots, "/validate", &body).await }
    };
    let option = example_ingress("examples/traefik-split-host/bank.yaml", "mtls-required");
    assert_eq!(option["kind"], "TLSOption");

    // DELETE: Traefik would fall back to its default options (no client certificate).
    let (status, body) = send(review(
        "t-1",
        "DELETE",
        TLS_OPTION,
        Some("open-banking"),
        "mtls-required",
        None,
        Some(option.clone()),
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["response"]["uid"], "t-1");
    assert_eq!(body["response"]["allowed"], false, "{body}");
    let message = body["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("TLSOption.traefik.io open-banking/mtls-required"),
        "{message}"
    );

    // UPDATE to optional client certificates: denied.
    let mut optional = option.clone();
    optional["spec"]["clientAuth"]["clientAuthType"] = json!("VerifyClientCertIfGiven");
    let (_, body) = send(review(
        "t-2",
        "UPDATE",
        TLS_OPTION,
        Some("open-banking"),
        "mtls-required",
        Some(optional),
        Some(option.clone()),
    ))
    .await;
    assert_eq!(body["response"]["allowed"], false, "{body}");

    // UPDATE that keeps RequireAndVerifyClientCert: allowed.
    let (_, body) = send(review(
        "t-3",
        "UPDATE",
        TLS_OPTION,
        Some("open-banking"),
        "mtls-required",
        Some(option.clone()),
        Some(option),
    ))
    .await;
    assert_eq!(body["response"]["allowed"], true, "{body}");
}

#[tokio::test]
async fn a_labelled_gateway_gets_its_frontend_validation_and_then_validates() {
    const GATEWAY: (&str, &str, &str) = ("gateway.networking.k8s.io", "v1", "Gateway");
    // The split-host bank on Envoy Gateway, plus the CA Secret the profile names (the
    // rendering references it).
    let server = start(
        example_view(&[
            "examples/gateway-api-split-host",
            "examples/nginx-split-host/client-ca.yaml",
        ]),
        true,
    )
    .await;
    let mut original = example_ingress("examples/gateway-api-split-host/bank.yaml", "mtls");
    assert_eq!(original["kind"], "Gateway");
    // A team creates the MTLS Gateway without client-certificate validation, opting in.
    original["spec"].as_object_mut().unwrap().remove("tls");
    original["metadata"]["labels"] = json!({"mtls-gate.io/profile": "example-bank-gateway-api"});
    let send = |path: &'static str, body: Value| {
        let (addr, roots) = (server.addr, server.roots.clone());
        async move { post(addr, &roots, path, &body).await }
    };
    let (_, body) = send(
        "/validate",
        review(
            "g-0",
            "UPDATE",
            GATEWAY,
            Some("open-banking"),
            "mtls",
            Some(original.clone()),
            None,
        ),
    )
    .await;
    assert_eq!(
        body["response"]["allowed"], false,
        "unrendered, it is denied: {body}"
    );

    let (_, body) = send(
        "/mutate",
        review(
            "g-1",
            "CREATE",
            GATEWAY,
            Some("open-banking"),
            "mtls",
            Some(original.clone()),
            None,
        ),
    )
    .await;
    assert_eq!(body["response"]["allowed"], true);
    assert_eq!(body["response"]["patchType"], "JSONPatch", "{body}");
    let patch = base64::engine::general_purpose::STANDARD
        .decode(body["response"]["patch"].as_str().expect("a patch"))
        .unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&patch).unwrap();
    let mut patched = original.clone();
    json_patch::patch(&mut patched, &patch).unwrap();
    let port = &patched["spec"]["tls"]["frontend"]["perPort"][0];
    assert_eq!(port["port"], 443, "{patched}");
    assert_eq!(port["tls"]["validation"]["mode"], "AllowValidOnly");
    assert_eq!(
        port["tls"]["validation"]["caCertificateRefs"][0]["name"],
        "open-banking-client-ca"
    );

    // The rendered Gateway passes validation.
    let (_, body) = send(
        "/validate",
        review(
            "g-2",
            "UPDATE",
            GATEWAY,
            Some("open-banking"),
            "mtls",
            Some(patched.clone()),
            None,
        ),
    )
    .await;
    assert_eq!(body["response"]["allowed"], true, "{body}");

    // Rendered already: the mutation has nothing left to do.
    let (_, body) = send(
        "/mutate",
        review(
            "g-3",
            "UPDATE",
            GATEWAY,
            Some("open-banking"),
            "mtls",
            Some(patched),
            None,
        ),
    )
    .await;
    assert!(body["response"]["patch"].is_null(), "{body}");
}

#[tokio::test]
async fn enforcement_modes_deny_warn_and_audit() {
    let bad = ingress(
        "token-shortcut",
        "auth.bank.example",
        "/token",
        json!({}),
        json!({}),
    );
    for (mode, allowed, warned) in [
        ("Deny", false, false),
        ("Warn", true, true),
        ("Audit", true, false),
    ] {
        let mut view = example_view(&["examples/nginx-split-host"]);
        let mut profile = (**view.profile("example-bank").unwrap()).clone();
        profile.spec.enforcement = serde_json::from_value(json!(mode)).unwrap();
        let profile = profile.spec.compile("example-bank").unwrap();
        view.upsert_profile(profile);
        let server = start(view, true).await;
        let (_, body) = post(
            server.addr,
            &server.roots,
            "/validate",
            &review(
                "m",
                "CREATE",
                INGRESS,
                Some("open-banking"),
                "token-shortcut",
                Some(bad.clone()),
                None,
            ),
        )
        .await;
        assert_eq!(body["response"]["allowed"], allowed, "{mode}: {body}");
        assert_eq!(
            body["response"]["warnings"]
                .as_array()
                .is_some_and(|w| !w.is_empty()),
            warned,
            "{mode}: {body}"
        );
        let (_, metrics) = probe(server.probe, "/metrics").await;
        let decision = match mode {
            "Deny" => "denied",
            "Warn" => "warned",
            _ => "audited",
        };
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("mtls_gate_admission_requests_total")
                    && l.contains(&format!("decision=\"{decision}\""))
                    && l.ends_with(" 1")),
            "{mode}: {metrics}"
        );
    }
}

#[tokio::test]
async fn mutation_patch_applies_and_the_result_validates() {
    let server = start(
        example_view(&["examples/render/nginx-split-host.yaml"]),
        true,
    )
    .await;
    let original = example_ingress("examples/render/nginx-split-host.yaml", "open-banking-apis");
    let (_, body) = post(
        server.addr,
        &server.roots,
        "/mutate",
        &review(
            "p-1",
            "CREATE",
            INGRESS,
            Some("open-banking"),
            "open-banking-apis",
            Some(original.clone()),
            None,
        ),
    )
    .await;
    assert_eq!(body["response"]["allowed"], true);
    assert_eq!(body["response"]["patchType"], "JSONPatch", "{body}");
    let patch = body["response"]["patch"]
        .as_str()
        .unwrap_or_else(|| panic!("no patch: {body}"));
    let patch = base64::engine::general_purpose::STANDARD
        .decode(patch)
        .unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&patch).unwrap();
    let mut patched = original;
    json_patch::patch(&mut patched, &patch).unwrap();
    assert_eq!(
        patched["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-tls-verify-client"],
        "on"
    );
    // The patched object passes validation and a second mutation changes nothing.
    let (_, body) = post(
        server.addr,
        &server.roots,
        "/validate",
        &review(
            "p-2",
            "CREATE",
            INGRESS,
            Some("open-banking"),
            "open-banking-apis",
            Some(patched.clone()),
            None,
        ),
    )
    .await;
    assert_eq!(body["response"]["allowed"], true, "{body}");
    let (_, body) = post(
        server.addr,
        &server.roots,
        "/mutate",
        &review(
            "p-3",
            "CREATE",
            INGRESS,
            Some("open-banking"),
            "open-banking-apis",
            Some(patched),
            None,
        ),
    )
    .await;
    assert!(body["response"]["patch"].is_null(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_changes_are_validated() {
    let server = start(ClusterView::new(), true).await;
    let profile = json!({
        "apiVersion": "mtls-gate.io/v1alpha1",
        "kind": "ApiProviderProfile",
        "metadata": {"name": "bank"},
        "spec": {"issuer": "https://auth.bank.example", "apiBaseUrls": ["https://api.bank.example/open-banking-nz/v3.0"],
                 "clientCertificate": {"caSecretName": "client-ca", "verifyDepth": 11}}
    });
    let kind = ("mtls-gate.io", "v1alpha1", "ApiProviderProfile");
    let (_, body) = post(
        server.addr,
        &server.roots,
        "/validate",
        &review(
            "pr-1",
            "CREATE",
            kind,
            None,
            "bank",
            Some(profile.clone()),
            None,
        ),
    )
    .await;
    assert_eq!(body["response"]["allowed"], false);
    assert!(
        body["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("spec.clientCertificate.verifyDepth: 11 is out of range 1..10"),
        "{body}"
    );
    let mut fixed = profile;
    fixed["spec"]["clientCertificate"]["verifyDepth"] = json!(2);
    let (_, body) = post(
        server.addr,
        &server.roots,
        "/validate",
        &review("pr-2", "UPDATE", kind, None, "bank", Some(fixed), None),
    )
    .await;
    assert_eq!(body["response"]["allowed"], true, "{body}");
}

#[tokio::test]
async fn not_ready_until_the_view_is_loaded() {
    let server = start(ClusterView::new(), false).await;
    // The certificate is loaded by the reload task shortly after start; then only the
    // view is missing.
    let last = readyz_until(server.probe, |(code, text)| {
        *code == 200 || text.contains("view")
    })
    .await;
    assert_eq!(last.0, 503, "{}", last.1);
    assert!(last.1.contains("view"), "{}", last.1);
    server.ready.store(true, Ordering::SeqCst);
    let last = readyz_until(server.probe, |(code, _)| *code == 200).await;
    assert_eq!(last.0, 200, "{}", last.1);
}

/// Polls `/readyz` until `done` holds or 20 s pass (a deadline, not a count of tries: a
/// loaded CI machine is slow), and returns the last answer.
async fn readyz_until(
    probe_addr: std::net::SocketAddr,
    done: impl Fn(&(u16, String)) -> bool,
) -> (u16, String) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let last = probe(probe_addr, "/readyz").await;
        if done(&last) || std::time::Instant::now() > deadline {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
