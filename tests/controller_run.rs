//! `run_controller` end to end against a mock API server that routes requests like a small
//! API server: the caches list and watch, the replica takes the Lease, the profile is
//! rendered and its status written, and a shutdown releases the Lease and returns.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use http::{Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use mtls_gate::cluster::{SyncedFlag, shared_view};
use mtls_gate::controller::{RunArgs, run_controller};
use serde_json::{Value, json};
use tower_test::mock::SendResponse;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
}

fn ok(send: SendResponse<Response<Body>>, body: &Value) {
    send.send_response(
        Response::builder()
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap(),
    );
}

fn not_found(send: SendResponse<Response<Body>>) {
    let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "reason": "NotFound", "code": 404, "message": "not found"});
    send.send_response(
        Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap(),
    );
}

fn profile() -> Value {
    json!({"apiVersion": "mtls-gate.io/v1alpha1", "kind": "ApiProviderProfile",
        "metadata": {"name": "bank", "uid": "u-1", "generation": 1, "resourceVersion": "3",
            "finalizers": ["mtls-gate.io/cleanup"]},
        "spec": {"issuer": "https://auth.bank.example",
            "apiBaseUrls": ["https://mtls-api.bank.example/v3"],
            "clientCertificate": {"caSecretName": "client-ca"}}})
}

/// The profile as listed: with the last live check `mtls-gate probe` recorded.
fn listed_profile() -> Value {
    let mut p = profile();
    p["status"] = json!({"probe": {"time": "2026-11-30T06:00:00Z", "passed": 5, "failed": 2,
        "unreachable": 1}});
    p
}

fn ingress() -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "api", "namespace": "ob", "uid": "u-2", "resourceVersion": "4",
            "labels": {"mtls-gate.io/profile": "bank"}},
        "spec": {"tls": [{"hosts": ["mtls-api.bank.example"], "secretName": "t"}],
            "rules": [{"host": "mtls-api.bank.example", "http": {"paths": [
                {"path": "/v3", "pathType": "Prefix",
                 "backend": {"service": {"name": "api", "port": {"number": 443}}}}]}}]}})
}

fn list(kind: &str, api_version: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"resourceVersion": "10"}, "items": items})
}

#[derive(Default)]
struct Seen {
    requests: Vec<(String, String, Value)>,
    lease: Option<Value>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_controller_syncs_leads_renders_and_releases_the_lease_on_shutdown() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let server_seen = seen.clone();
    // The test's signal to end the profile watch with a DELETED event for the profile.
    let (delete_tx, mut delete_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        // Watches are held open until the test ends (the profile watch until told).
        let mut open_watches = Vec::new();
        let mut profile_watch = None;
        let mut deleted = false;
        loop {
            let (req, send) = tokio::select! {
                next = handle.next_request() => match next {
                    Some(r) => r,
                    None => break,
                },
                Ok(()) = &mut delete_rx, if profile_watch.is_some() && !deleted => {
                    deleted = true;
                    let mut gone = profile();
                    gone["metadata"]["deletionTimestamp"] = json!("2026-11-30T07:00:00Z");
                    let event = json!({"type": "DELETED", "object": gone});
                    let send: SendResponse<Response<Body>> =
                        profile_watch.take().expect("the profile watch");
                    send.send_response(
                        Response::builder()
                            .body(Body::from(format!("{event}\n").into_bytes()))
                            .unwrap(),
                    );
                    continue;
                }
            };
            let method = req.method().to_string();
            let path = req.uri().path().to_string();
            let query: BTreeMap<String, String> = req
                .uri()
                .query()
                .map(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .into_owned()
                        .collect()
                })
                .unwrap_or_default();
            let bytes = req.into_body().collect_bytes().await.unwrap();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            server_seen
                .lock()
                .unwrap()
                .requests
                .push((method.clone(), path.clone(), body.clone()));
            if query.get("watch").map(String::as_str) == Some("true") {
                if path == "/apis/mtls-gate.io/v1alpha1/apiproviderprofiles"
                    && profile_watch.is_none()
                    && !deleted
                {
                    profile_watch = Some(send);
                } else {
                    open_watches.push(send);
                }
                continue;
            }
            match (method.as_str(), path.as_str()) {
                ("GET", "/apis/mtls-gate.io/v1alpha1/apiproviderprofiles") => ok(
                    send,
                    &list(
                        "ApiProviderProfileList",
                        "mtls-gate.io/v1alpha1",
                        vec![listed_profile()],
                    ),
                ),
                ("GET", "/apis/networking.k8s.io/v1/ingresses") => {
                    // Every namespace: those the webhooks skip still count for status.
                    assert_eq!(query.get("fieldSelector"), None);
                    ok(
                        send,
                        &list("IngressList", "networking.k8s.io/v1", vec![ingress()]),
                    )
                }
                ("GET", "/apis/networking.k8s.io/v1/ingressclasses") => ok(
                    send,
                    &list(
                        "IngressClassList",
                        "networking.k8s.io/v1",
                        vec![
                            json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                            "metadata": {"name": "nginx", "resourceVersion": "1"},
                            "spec": {"controller": "k8s.io/ingress-nginx"}}),
                        ],
                    ),
                ),
                ("GET", "/api/v1/secrets") => {
                    assert_eq!(
                        query.get("fieldSelector").map(String::as_str),
                        Some("metadata.name=client-ca")
                    );
                    ok(send, &list("SecretList", "v1", vec![]))
                }
                // ConfigMaps (controller ConfigMaps, read with ingress-nginx and
                // haproxy-ingress): discovery of the core group, then one list.
                ("GET", "/api/v1") => ok(
                    send,
                    &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1",
                        "resources": [{"name": "configmaps", "singularName": "configmap",
                            "namespaced": true, "kind": "ConfigMap",
                            "verbs": ["get", "list", "watch"]}]}),
                ),
                ("GET", "/api/v1/configmaps") => {
                    // Only ingress-nginx and haproxy-ingress are watched: controller
                    // ConfigMaps, listed by their label.
                    assert_eq!(
                        query.get("labelSelector").map(String::as_str),
                        Some("mtls-gate.io/controller-config")
                    );
                    ok(send, &list("ConfigMapList", "v1", vec![]))
                }
                ("GET", "/apis/traefik.io/v1alpha1")
                | ("GET", "/apis/traefik.containo.us/v1alpha1") => not_found(send),
                // The CA Secret the managed Ingress needs is not in the (empty) cache: the
                // controller asks once per reconcile; it does not exist.
                ("GET", "/api/v1/namespaces/ob/secrets/client-ca") => not_found(send),
                (
                    "GET",
                    "/apis/coordination.k8s.io/v1/namespaces/mtls-gate/leases/mtls-gate-leader",
                ) => {
                    let lease = server_seen.lock().unwrap().lease.clone();
                    match lease {
                        Some(l) => ok(send, &l),
                        None => not_found(send),
                    }
                }
                ("POST", "/apis/coordination.k8s.io/v1/namespaces/mtls-gate/leases")
                | (
                    "PUT",
                    "/apis/coordination.k8s.io/v1/namespaces/mtls-gate/leases/mtls-gate-leader",
                ) => {
                    let mut lease = body.clone();
                    let rv = server_seen.lock().unwrap().requests.len();
                    lease["metadata"]["resourceVersion"] = json!(rv.to_string());
                    server_seen.lock().unwrap().lease = Some(lease.clone());
                    ok(send, &lease)
                }
                ("PATCH", "/apis/networking.k8s.io/v1/namespaces/ob/ingresses/api") => {
                    let mut obj = ingress();
                    obj["metadata"]["annotations"] = body["metadata"]["annotations"].clone();
                    ok(send, &obj)
                }
                ("PATCH", "/apis/mtls-gate.io/v1alpha1/apiproviderprofiles/bank/status") => {
                    ok(send, &profile())
                }
                ("GET", "/apis/networking.k8s.io/v1/namespaces/ob/ingresses/api") => {
                    ok(send, &ingress())
                }
                ("POST", "/apis/events.k8s.io/v1/namespaces/ob/events") => ok(send, &body),
                (m, p) => panic!("unexpected request {m} {p} {query:?}"),
            }
        }
        drop((open_watches, profile_watch));
    });

    let args = Cli::try_parse_from([
        "mtls-gate",
        "--pod-name=replica-0",
        // As the chart's defaults: Traefik and Gateway API kinds are not read.
        "--watch-controllers=ingress-nginx,haproxy-ingress",
        "--leader-election-namespace=mtls-gate",
        "--leader-election-retry-period=200ms",
        "--leader-election-renew-deadline=1s",
        "--leader-election-lease-duration=2s",
        "--shutdown-grace-period=2s",
    ])
    .unwrap()
    .run;
    let view = shared_view();
    let synced = SyncedFlag::default();
    let mut registry = prometheus_client::registry::Registry::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(run_controller(
        args,
        client,
        view.clone(),
        synced.clone(),
        &mut registry,
        async move {
            let _ = stopped.await;
        },
    ));

    // Synced, leading, rendered, status written.
    let rendered = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let done = {
                let s = seen.lock().unwrap();
                let applied = s.requests.iter().any(|(m, p, _)| {
                    m == "PATCH" && p == "/apis/networking.k8s.io/v1/namespaces/ob/ingresses/api"
                });
                let status = s
                    .requests
                    .iter()
                    .any(|(_, p, _)| p.ends_with("/bank/status"));
                applied && status
            };
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        rendered.is_ok(),
        "no render within 20 s: {:#?}",
        seen.lock().unwrap().requests
    );
    assert!(synced.load(Ordering::Acquire), "caches synced");
    assert_eq!(view.read().unwrap().ingress_count(), 1);
    assert!(
        view.read().unwrap().profile("bank").is_some(),
        "compiled profile in the view"
    );
    {
        let s = seen.lock().unwrap();
        let lease = s.lease.as_ref().unwrap();
        assert_eq!(lease["spec"]["holderIdentity"], "replica-0");
        let apply = s
            .requests
            .iter()
            .find(|(m, p, _)| m == "PATCH" && p.ends_with("/ingresses/api"))
            .unwrap();
        assert_eq!(
            apply.2["metadata"]["annotations"]["mtls-gate.io/rendered-by"],
            "bank"
        );
    }
    // The compliance gauge is set at the end of the reconcile, after the render the wait
    // above saw: wait for it rather than race it.
    let encode = || {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    };
    let text = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let text = encode();
            if text.contains("mtls_gate_profile_compliant{profile=\"bank\"}") {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| encode());
    assert!(text.contains("mtls_gate_leader 1"), "{text}");
    assert!(
        text.contains("mtls_gate_api_writes_total{kind=\"Ingress\",verb=\"apply\"} 1"),
        "{text}"
    );
    // The profile's status.probe, as metrics.
    for line in [
        "mtls_gate_probe_endpoints{profile=\"bank\",result=\"passed\"} 5",
        "mtls_gate_probe_endpoints{profile=\"bank\",result=\"failed\"} 2",
        "mtls_gate_probe_unreachable_endpoints{profile=\"bank\"} 1",
        "mtls_gate_probe_last_run_timestamp_seconds{profile=\"bank\"} 1796018400",
        "mtls_gate_profile_compliant{profile=\"bank\"}",
    ] {
        assert!(text.contains(line), "{line} missing: {text}");
    }
    // The profile goes (its watch reports the deletion): its series go with it.
    delete_tx.send(()).unwrap();
    let gone = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let mut text = String::new();
            prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
            // The per-profile gauges (reconcile counters are history and stay).
            let gauges = text.lines().any(|l| {
                (l.starts_with("mtls_gate_probe_") || l.starts_with("mtls_gate_profile_"))
                    && l.contains("profile=\"bank\"")
            });
            if !gauges {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "gauges of the deleted profile remain");

    // Shutdown: the Lease is released (holder cleared) and run_controller returns.
    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), controller)
        .await
        .expect("run_controller returns after shutdown")
        .unwrap();
    result.unwrap();
    let s = seen.lock().unwrap();
    let lease = s.lease.as_ref().unwrap();
    assert!(
        lease["spec"].get("holderIdentity").is_none(),
        "Lease released: {lease}"
    );
    drop(s);
    server.abort();
}
