//! Time of a full resync of one profile whose hosts carry many managed Ingresses
//! (design.md §7: full resync of 10,000 Ingresses ≤ 60 s; zero writes when nothing changed).
//!
//! The real reconcile runs against a mock API server that answers every request at once, so
//! the time is the controller's own work: render, the writes' request building and response
//! parsing, evaluation and the status diff. Two passes: the first render (one server-side
//! apply per Ingress), then a resync of the rendered state (no write at all).
//!
//!     cargo test --release --test controller_resync -- --ignored --nocapture

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::channel::mpsc;
use http::{Request, Response};
use k8s_openapi::api::networking::v1::Ingress;
use kube::Client;
use kube::client::Body;
use kube::runtime::watcher::Event;
use mtls_gate::cluster::{SyncedFlag, shared_view};
use mtls_gate::controller::ControllerMetrics;
use mtls_gate::controller::caches::{CacheContext, Triggers};
use mtls_gate::controller::leader::Leadership;
use mtls_gate::controller::reconcile::{Context, reconcile};
use mtls_gate::profile::ApiProviderProfile;
use serde_json::{Value, json};

fn profile() -> ApiProviderProfile {
    serde_json::from_value(json!({
        "apiVersion": "mtls-gate.io/v1alpha1", "kind": "ApiProviderProfile",
        "metadata": {"name": "example-bank", "uid": "u-1", "generation": 1,
            "finalizers": ["mtls-gate.io/cleanup"]},
        "spec": {
            "issuer": "https://auth.bank.example",
            "apiBaseUrls": ["https://mtls-api.bank.example/open-banking-nz/v3.0",
                            "https://mtls-api.bank.example/open-banking-nz/v2.3"],
            "authorizationServer": {
                "tokenEndpoint": "https://mtls-auth.bank.example/token",
                "pushedAuthorizationRequestEndpoint": "https://mtls-auth.bank.example/par",
                "backchannelAuthenticationEndpoint": "https://mtls-auth.bank.example/bc-authorize",
                "introspectionEndpoint": "https://mtls-auth.bank.example/introspect",
                "revocationEndpoint": "https://mtls-auth.bank.example/revoke",
                "userinfoEndpoint": "https://mtls-auth.bank.example/userinfo"},
            "clientCertificate": {"caSecretName": "open-banking-client-ca"},
            "ingressClassName": "nginx"
        }
    }))
    .unwrap()
}

const APIS: &[&str] = &[
    "accounts",
    "balances",
    "transactions",
    "beneficiaries",
    "direct-debits",
    "scheduled-payments",
    "standing-orders",
    "statements",
    "payments",
    "account-access-consents",
];

/// Ingress `i` of the bank: most on the resource-API host (one per API and tenant), some on
/// the authorisation server's MTLS host; all labelled for the profile.
fn ingress(i: usize, rendered: bool) -> Value {
    let (host, path, path_type) = match i % 20 {
        0 => (
            "mtls-auth.bank.example",
            format!("/internal/tenant-{i}"),
            "Prefix",
        ),
        _ => (
            "mtls-api.bank.example",
            format!("/open-banking-nz/v3.0/{}/tenant-{i}", APIS[i % APIS.len()]),
            if i.is_multiple_of(2) {
                "Prefix"
            } else {
                "Exact"
            },
        ),
    };
    // One namespace owns the bank's API hosts (and the CA Secret the settings name).
    let ns = "open-banking";
    let mut annotations = json!({"meta.helm.sh/release-name": format!("api-{i}")});
    if rendered {
        for (k, v) in [
            (
                "nginx.ingress.kubernetes.io/auth-tls-secret",
                format!("{ns}/open-banking-client-ca"),
            ),
            (
                "nginx.ingress.kubernetes.io/auth-tls-verify-client",
                "on".into(),
            ),
            (
                "nginx.ingress.kubernetes.io/auth-tls-verify-depth",
                "2".into(),
            ),
            (
                "nginx.ingress.kubernetes.io/auth-tls-pass-certificate-to-upstream",
                "true".into(),
            ),
            ("mtls-gate.io/rendered-by", "example-bank".into()),
        ] {
            annotations[k] = json!(v);
        }
    }
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": format!("api-{i:05}"), "namespace": ns,
            "creationTimestamp": "2026-01-12T14:30:00Z",
            "labels": {"mtls-gate.io/profile": "example-bank"},
            "annotations": annotations},
        "spec": {"ingressClassName": "nginx",
            "tls": [{"hosts": [host], "secretName": "tls"}],
            "rules": [{"host": host, "http": {"paths": [
                {"path": path, "pathType": path_type,
                 "backend": {"service": {"name": format!("api-{i}"), "port": {"number": 443}}}}]}}]}
    })
}

struct Run {
    render: Duration,
    resync: Duration,
    first_writes: usize,
    resync_requests: usize,
}

async fn run(n: usize) -> Run {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    let profile_json = serde_json::to_value(profile()).unwrap();
    // The API server: echoes applies, accepts the status.
    tokio::spawn(async move {
        while let Some((req, send)) = handle.next_request().await {
            counter.fetch_add(1, Ordering::Relaxed);
            let path = req.uri().path().to_string();
            let bytes = req.into_body().collect_bytes().await.unwrap();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let answer = if path.ends_with("/status") {
                profile_json.clone()
            } else {
                body
            };
            send.send_response(
                Response::builder()
                    .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                    .unwrap(),
            );
        }
    });
    let (one, _one_rx) = mpsc::unbounded();
    let (all, _all_rx) = mpsc::unbounded();
    let caches = Arc::new(CacheContext::new(
        shared_view(),
        SyncedFlag::default(),
        Triggers { one, all },
    ));
    let p = profile();
    caches.on_profile_event(&Event::Init);
    caches.on_profile_event(&Event::InitApply(p.clone()));
    caches.on_profile_event(&Event::InitDone);
    caches.on_ingress_event(Event::Init);
    for i in 0..n {
        caches.on_ingress_event(Event::InitApply(
            serde_json::from_value::<Ingress>(ingress(i, false)).unwrap(),
        ));
    }
    caches.on_ingress_event(Event::InitDone);
    caches.on_ingress_class_event(Event::Init);
    caches.on_ingress_class_event(Event::InitDone);
    // The CA Secret the settings name, as its watch delivers it (a healthy profile: no
    // request to check it).
    let ca = "open-banking-client-ca";
    let secret: k8s_openapi::api::core::v1::Secret = serde_yaml_ng::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/nginx-split-host/client-ca.yaml"
        ))
        .unwrap(),
    )
    .unwrap();
    caches.secret_watch_started(ca);
    caches.on_secret_event(ca, Event::Init);
    caches.on_secret_event(ca, Event::InitApply(secret));
    caches.on_secret_event(ca, Event::InitDone);
    for (_, _, kind) in mtls_gate::dialect::owned_kinds() {
        caches.kind_absent(*kind);
    }
    let ctx = Arc::new(Context::new(
        client,
        caches.clone(),
        Leadership::fixed(true),
        Arc::new(ControllerMetrics::unregistered()),
        "bench",
        Duration::from_secs(300),
    ));

    let started = Instant::now();
    reconcile(Arc::new(p.clone()), ctx.clone()).await.unwrap();
    let render = started.elapsed();
    let first_writes = requests.swap(0, Ordering::SeqCst);

    // The watch delivers the rendered Ingresses; the status is what was written.
    for i in 0..n {
        caches.on_ingress_event(Event::Apply(
            serde_json::from_value::<Ingress>(ingress(i, true)).unwrap(),
        ));
    }
    let view_status = {
        let view = caches.view.read().unwrap();
        let compiled = p.compile().unwrap();
        let owned = caches.dialect_objects.objects.read().unwrap();
        let writable = caches.dialect_objects.writable_kinds();
        let plan = mtls_gate::controller::reconcile::plan(&p, &compiled, &view, &owned, &writable)
            .unwrap();
        assert_eq!(plan.write_count(), 0, "rendered state needs no write");
        // The slice a reconcile works on gives the same answer as the whole view.
        let slice = mtls_gate::controller::reconcile::profile_slice(&view, &compiled);
        let on_slice =
            mtls_gate::controller::reconcile::plan(&p, &compiled, &slice, &owned, &writable)
                .unwrap();
        assert_eq!(on_slice.verdict, plan.verdict);
        let mut status = mtls_gate::controller::status::evaluated(
            &p,
            &mtls_gate::controller::status::Evaluation {
                verdict: &plan.verdict,
                refusals: &plan.refusals,
                managed: plan.managed,
                unwritable: &Default::default(),
            },
        );
        status
            .conditions
            .push(mtls_gate::controller::status::ca_secret_condition(
                &[],
                p.metadata.generation,
            ));
        status
    };
    let mut steady = p.clone();
    steady.status = Some(view_status);
    let started = Instant::now();
    reconcile(Arc::new(steady), ctx.clone()).await.unwrap();
    let resync = started.elapsed();
    let resync_requests = requests.load(Ordering::SeqCst);
    Run {
        render,
        resync,
        first_writes,
        resync_requests,
    }
}

fn report(n: usize, r: &Run) {
    println!(
        "full resync, {n} managed Ingresses on the profile's hosts: first render {:.2} s ({} requests), \
         steady-state resync {:.3} s ({} requests)",
        r.render.as_secs_f64(),
        r.first_writes,
        r.resync.as_secs_f64(),
        r.resync_requests
    );
}

#[tokio::test]
async fn resync_of_500_ingresses_writes_once_then_nothing() {
    let r = run(500).await;
    report(500, &r);
    assert_eq!(r.first_writes, 501, "one apply per Ingress and the status");
    assert_eq!(r.resync_requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark (10,000 Ingresses, tens of seconds in debug builds): cargo test --release --test controller_resync -- --ignored --nocapture"]
async fn full_resync_of_10000_ingresses() {
    let n = std::env::var("MTLS_GATE_RESYNC_INGRESSES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let r = run(n).await;
    report(n, &r);
    assert_eq!(r.first_writes, n + 1);
    assert_eq!(r.resync_requests, 0);
    assert!(r.render < Duration::from_secs(60), "design target: ≤ 60 s");
}
