//! Policy reports against a mock API server (the tower-test pattern of the controller tests):
//! what `policy_report::sync` sends, in which order, and that a missing CRD is not fatal.

use std::path::Path;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use mtls_gate::controller::policy_report;
use mtls_gate::engine::{self, Verdict};
use mtls_gate::manifest;
use mtls_gate::profile::ApiProviderProfile;
use serde_json::{Value, json};
use tower_test::mock::{Handle, SendResponse};

type ApiHandle = Handle<Request<Body>, Response<Body>>;

/// (method, path and query, body) of the next request.
async fn next(handle: &mut ApiHandle) -> (String, String, Value, SendResponse<Response<Body>>) {
    let (req, send) = tokio::time::timeout(Duration::from_secs(10), handle.next_request())
        .await
        .expect("a request within 10 s")
        .expect("the client is alive");
    let (parts, body) = req.into_parts();
    let bytes = body.collect_bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let uri = parts
        .uri
        .path_and_query()
        .map(ToString::to_string)
        .unwrap_or_default();
    (parts.method.to_string(), uri, body, send)
}

fn reply(send: SendResponse<Response<Body>>, code: u16, body: &Value) {
    send.send_response(
        Response::builder()
            .status(StatusCode::from_u16(code).expect("status"))
            .body(Body::from(serde_json::to_vec(body).expect("JSON")))
            .expect("response"),
    );
}

fn profile_and_verdict(example: &str) -> (ApiProviderProfile, Verdict) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs = manifest::read_paths(&[root.join(example)]).expect("reads");
    let doc = docs
        .iter()
        .find(|d| d.kind() == "ApiProviderProfile")
        .expect("a profile");
    let mut profile: ApiProviderProfile = manifest::typed(doc).expect("profile");
    profile.metadata.uid = Some("3f6c0e9a-uid".into());
    let loaded = manifest::load(docs, "default", false).expect("loads");
    let verdict = engine::evaluate(&loaded.profiles[0].1, &loaded.view).expect("evaluates");
    (profile, verdict)
}

const BASE: &str = "/apis/wgpolicyk8s.io/v1alpha2";

#[tokio::test]
async fn sync_applies_the_changed_reports_and_prunes_stale_namespaces() {
    let (profile, verdict) = profile_and_verdict("examples/broken/token-on-public-host.yaml");
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");

    // Off by default: nothing is sent.
    policy_report::sync(&client, &profile, &verdict).await;
    let idle = tokio::time::timeout(Duration::from_millis(200), handle.next_request()).await;
    assert!(idle.is_err(), "a request while policy reports are off");

    policy_report::enable(true);
    let task = tokio::spawn({
        let client = client.clone();
        let (profile, verdict) = (profile.clone(), verdict.clone());
        async move { policy_report::sync(&client, &profile, &verdict).await }
    });
    let name = "mtls-gate-example-bank";
    let expected = policy_report::build(
        "example-bank",
        Some("3f6c0e9a-uid"),
        profile.spec.enforcement,
        &verdict,
        0,
    );
    // First the profile's reports as stored: one says what the new one says (results
    // written at another time), one is in a namespace with no results now.
    let (method, uri, _, send) = next(&mut handle).await;
    assert_eq!(method, "GET");
    assert!(uri.starts_with(&format!("{BASE}/policyreports?")), "{uri}");
    assert!(
        uri.contains("labelSelector=mtls-gate.io%2Fprofile%3Dexample-bank"),
        "{uri}"
    );
    let kept = expected
        .namespaced
        .keys()
        .next()
        .expect("a namespace")
        .clone();
    let stored_kept = {
        let mut r = expected.namespaced[&kept].clone();
        r["metadata"]["uid"] = json!("stored-uid");
        for result in r["results"].as_array_mut().expect("results") {
            result["timestamp"] = json!({"seconds": 1_600_000_000, "nanos": 0});
        }
        r
    };
    let stale = json!({"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
        "metadata": {"name": name, "namespace": "old-team"}, "results": [], "summary": {}});
    reply(
        send,
        200,
        &json!({"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReportList",
                "metadata": {}, "items": [stored_kept, stale]}),
    );
    // Only the reports that changed are applied.
    for ns in expected.namespaced.keys().filter(|ns| **ns != kept) {
        let (method, uri, body, send) = next(&mut handle).await;
        assert_eq!(method, "PATCH");
        assert!(
            uri.starts_with(&format!("{BASE}/namespaces/{ns}/policyreports/{name}?")),
            "{uri}"
        );
        assert!(
            uri.contains("fieldManager=mtls-gate") && uri.contains("force=true"),
            "{uri}"
        );
        assert_eq!(body["kind"], "PolicyReport");
        assert_eq!(
            body["metadata"]["ownerReferences"][0]["uid"],
            "3f6c0e9a-uid"
        );
        reply(send, 200, &body);
    }
    assert!(
        expected.namespaced[&kept]["summary"]["fail"].as_u64() > Some(0),
        "the example has a finding"
    );
    let (method, uri, _, send) = next(&mut handle).await;
    assert_eq!(method, "GET");
    assert_eq!(uri, format!("{BASE}/clusterpolicyreports/{name}"));
    reply(
        send,
        404,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "reason": "NotFound", "code": 404, "message": "not found"}),
    );
    let (method, uri, body, send) = next(&mut handle).await;
    assert_eq!(method, "PATCH");
    assert!(
        uri.starts_with(&format!("{BASE}/clusterpolicyreports/{name}?")),
        "{uri}"
    );
    assert_eq!(body["kind"], "ClusterPolicyReport");
    reply(send, 200, &body);
    let (method, uri, _, send) = next(&mut handle).await;
    assert_eq!(method, "DELETE");
    assert!(
        uri.starts_with(&format!("{BASE}/namespaces/old-team/policyreports/{name}")),
        "{uri}"
    );
    reply(
        send,
        200,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
    );
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("sync ends")
        .expect("sync does not panic");

    // Everything stored as it would be written: reads only, no write.
    let task = tokio::spawn({
        let client = client.clone();
        let (profile, verdict) = (profile.clone(), verdict.clone());
        async move { policy_report::sync(&client, &profile, &verdict).await }
    });
    let (method, _, _, send) = next(&mut handle).await;
    assert_eq!(method, "GET");
    reply(
        send,
        200,
        &json!({"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReportList",
                "metadata": {}, "items": expected.namespaced.values().collect::<Vec<_>>()}),
    );
    let (method, uri, _, send) = next(&mut handle).await;
    assert_eq!(
        (method.as_str(), uri),
        ("GET", format!("{BASE}/clusterpolicyreports/{name}"))
    );
    reply(send, 200, &expected.cluster);
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("sync ends")
        .expect("sync does not panic");
    let idle = tokio::time::timeout(Duration::from_millis(200), handle.next_request()).await;
    assert!(idle.is_err(), "a write although nothing changed");

    // Without the wgpolicyk8s.io CRDs the first request gets 404: logged, nothing else sent.
    let task = tokio::spawn({
        let client = client.clone();
        async move { policy_report::sync(&client, &profile, &verdict).await }
    });
    let (method, _, _, send) = next(&mut handle).await;
    assert_eq!(method, "GET");
    reply(
        send,
        404,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "reason": "NotFound", "code": 404, "message": "the server could not find the requested resource"}),
    );
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("sync ends")
        .expect("sync does not panic");
    let idle = tokio::time::timeout(Duration::from_millis(200), handle.next_request()).await;
    assert!(idle.is_err(), "no request after the 404");
}
