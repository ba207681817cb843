//! `status.probe`: what `mtls-gate probe --write-status` sends to the API server (checked on
//! a mock API, the tower-test pattern of the controller tests), and that the controller's
//! own status writes neither overwrite nor delete it.

use std::time::Duration;

use http::{Request, Response, StatusCode};
use kube::client::Body;
use mtls_gate::catalog::Scheme;
use mtls_gate::controller::status::merge_patch;
use mtls_gate::probe::status::{FIELD_MANAGER, MAX_FAILING, ProbeStatus, write};
use mtls_gate::probe::{Attempt, Outcome, ProbeResult};
use mtls_gate::profile::{ApiProviderProfile, ApiProviderProfileStatus, ProbeFailure};
use serde_json::{Value, json};

fn attempt(outcome: Outcome, status: Option<u16>) -> Attempt {
    Attempt {
        outcome,
        status,
        detail: "detail".into(),
    }
}

fn result(profile: &str, url: &str, compliant: bool, reached: bool) -> ProbeResult {
    let a = if reached {
        attempt(Outcome::Response, Some(200))
    } else {
        attempt(Outcome::Unreachable, None)
    };
    ProbeResult {
        profile: profile.into(),
        endpoint: "/token",
        url: url.into(),
        scheme: Scheme::Mtls,
        default_alias: false,
        without_certificate: a.clone(),
        with_certificate: a,
        compliant,
        reason: if compliant {
            "ok"
        } else {
            "MTLS endpoint answers without a client certificate"
        }
        .into(),
    }
}

#[test]
fn status_counts_one_profile_and_caps_the_failing_list() {
    let mut results = vec![
        result("bank", "https://a/ok", true, true),
        result("bank", "https://a/down", false, false),
        result("other-bank", "https://b/bad", false, true),
    ];
    for i in 0..MAX_FAILING + 5 {
        results.push(result("bank", &format!("https://a/bad{i}"), false, true));
    }
    let s = ProbeStatus::of("bank", &results);
    assert_eq!(s.passed, 1);
    assert_eq!(s.failed, i32::try_from(MAX_FAILING + 6).unwrap());
    assert_eq!(s.unreachable, 1);
    assert_eq!(s.failing.len(), MAX_FAILING);
    assert_eq!(
        s.failing[0],
        ProbeFailure {
            endpoint: "/token".into(),
            url: "https://a/down".into(),
            reason: "MTLS endpoint answers without a client certificate".into(),
        }
    );
    assert!(s.failing.iter().all(|f| !f.url.starts_with("https://b/")));
}

#[tokio::test]
async fn write_status_is_a_forced_server_side_apply_of_status_probe_only() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let probe = ProbeStatus::of("bank", &[result("bank", "https://a/token", false, true)]);
    let expected = serde_json::to_value(&probe).unwrap();
    let server = tokio::spawn(async move {
        let (req, send) = tokio::time::timeout(Duration::from_secs(10), handle.next_request())
            .await
            .expect("a request within 10 s")
            .expect("client alive");
        let (parts, body) = req.into_parts();
        let bytes = body.collect_bytes().await.unwrap();
        let sent: Value = serde_json::from_slice(&bytes).expect("apply body is JSON");
        send.send_response(
            Response::builder()
                .status(StatusCode::OK)
                .body(Body::from(
                    serde_json::to_vec(&json!({
                        "apiVersion": "mtls-gate.io/v1alpha1",
                        "kind": "ApiProviderProfile",
                        "metadata": {"name": "bank"},
                        "spec": {
                            "issuer": "https://auth.bank.example",
                            "apiBaseUrls": ["https://api.bank.example/open-banking-nz/v3.0"],
                            "clientCertificate": {"caSecretName": "client-ca"}
                        },
                        "status": sent["status"].clone(),
                    }))
                    .unwrap(),
                ))
                .unwrap(),
        );
        (parts, sent)
    });
    write(&client, "bank", &probe)
        .await
        .expect("status written");
    let (parts, sent) = server.await.unwrap();
    assert_eq!(parts.method, http::Method::PATCH);
    assert_eq!(
        parts.uri.path(),
        "/apis/mtls-gate.io/v1alpha1/apiproviderprofiles/bank/status"
    );
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    assert!(query.contains(&("fieldManager".into(), FIELD_MANAGER.into())));
    assert!(query.contains(&("force".into(), "true".into())));
    assert_eq!(
        parts.headers[http::header::CONTENT_TYPE],
        "application/apply-patch+yaml"
    );
    // Only status.probe: the probe owns no other field.
    assert_eq!(
        sent,
        json!({
            "apiVersion": "mtls-gate.io/v1alpha1",
            "kind": "ApiProviderProfile",
            "metadata": {"name": "bank"},
            "status": {"probe": expected},
        })
    );
}

#[test]
fn controller_status_patches_leave_status_probe_alone() {
    let probe = ProbeStatus::of("bank", &[result("bank", "https://a/token", true, true)]);
    let old = ApiProviderProfileStatus {
        probe: Some(probe.clone()),
        violations: 3,
        ..Default::default()
    };
    // A new status without the probe (or with a stale copy) neither deletes nor writes it.
    for new in [
        ApiProviderProfileStatus::default(),
        ApiProviderProfileStatus {
            probe: Some(probe),
            ..Default::default()
        },
    ] {
        let patch = merge_patch(Some(&old), &new).unwrap();
        assert!(
            patch["status"].get("probe").is_none(),
            "controller patch touches status.probe: {patch}"
        );
        assert_eq!(patch["status"]["violations"], 0);
    }
}

#[tokio::test]
async fn cluster_profiles_skip_an_invalid_one_unless_it_is_named() {
    use mtls_gate::probe::status::profiles_from_cluster;
    let list = json!({
        "apiVersion": "mtls-gate.io/v1alpha1",
        "kind": "ApiProviderProfileList",
        "metadata": {},
        "items": [
            {"apiVersion": "mtls-gate.io/v1alpha1", "kind": "ApiProviderProfile",
             "metadata": {"name": "bank"},
             "spec": {"issuer": "https://auth.bank.example",
                      "apiBaseUrls": ["https://api.bank.example/open-banking-nz/v3.0"],
                      "clientCertificate": {"caSecretName": "client-ca"}}},
            {"apiVersion": "mtls-gate.io/v1alpha1", "kind": "ApiProviderProfile",
             "metadata": {"name": "broken"},
             "spec": {"issuer": "http://plain.example",
                      "apiBaseUrls": ["https://api.bank.example/v1"],
                      "clientCertificate": {"caSecretName": "client-ca"}}}
        ]
    });
    for (names, want) in [
        (vec![], Ok(vec!["bank".to_string()])),
        (vec!["bank".to_string()], Ok(vec!["bank".to_string()])),
        (
            vec!["broken".to_string()],
            Err("ApiProviderProfile broken is invalid"),
        ),
        (
            vec!["absent".to_string()],
            Err("ApiProviderProfile absent not found"),
        ),
    ] {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "default");
        let body = list.clone();
        let server = tokio::spawn(async move {
            let (req, send) = handle.next_request().await.expect("a list request");
            assert_eq!(req.method(), http::Method::GET);
            assert_eq!(
                req.uri().path(),
                "/apis/mtls-gate.io/v1alpha1/apiproviderprofiles"
            );
            send.send_response(
                Response::builder()
                    .status(StatusCode::OK)
                    .body(Body::from(serde_json::to_vec(&body).unwrap()))
                    .unwrap(),
            );
        });
        let got = profiles_from_cluster(&client, &names)
            .await
            .map(|ps| ps.into_iter().map(|p| p.name).collect::<Vec<_>>())
            .map_err(|e| format!("{e:#}"));
        server.await.unwrap();
        match (got, want) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{names:?}"),
            (Err(got), Err(want)) => assert!(got.contains(want), "{names:?}: {got}"),
            (got, want) => panic!("{names:?}: got {got:?}, want {want:?}"),
        }
    }
}

// ---- The probe metrics ------------------------------------------------------------------

/// A profile whose status carries `probe` (as `mtls-gate probe --write-status` left it).
fn profile_with_probe(probe: Option<&ProbeStatus>, deleting: bool) -> ApiProviderProfile {
    let mut v = json!({
        "apiVersion": "mtls-gate.io/v1alpha1", "kind": "ApiProviderProfile",
        "metadata": {"name": "bank", "uid": "u-1", "generation": 1, "resourceVersion": "7",
            "finalizers": ["mtls-gate.io/cleanup"]},
        "spec": {"issuer": "https://auth.bank.example",
            "apiBaseUrls": ["https://api.bank.example/open-banking-nz/v3.0"],
            "clientCertificate": {"caSecretName": "client-ca"}},
        "status": {"violations": 0},
    });
    if let Some(p) = probe {
        v["status"]["probe"] = serde_json::to_value(p).unwrap();
    }
    if deleting {
        v["metadata"]["deletionTimestamp"] = json!("2026-11-30T08:00:00Z");
    }
    serde_json::from_value(v).unwrap()
}

/// The `mtls_gate_probe_*` lines of the exposition, sorted.
fn probe_series(registry: &prometheus_client::registry::Registry) -> Vec<String> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("mtls_gate_probe_"))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

#[tokio::test]
async fn reconciles_export_status_probe_as_metrics_and_drop_them_when_it_goes() {
    use mtls_gate::cluster::{SyncedFlag, shared_view};
    use mtls_gate::controller::ControllerMetrics;
    use mtls_gate::controller::caches::{CacheContext, Triggers};
    use mtls_gate::controller::leader::Leadership;
    use mtls_gate::controller::reconcile::{Context, reconcile};
    use std::sync::Arc;

    // Caches not synced yet: the reconcile sends nothing (the mock answers nothing), but
    // the probe result needs no cache and is exported at once, by every replica.
    let (service, _handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let (one, _one_rx) = futures::channel::mpsc::unbounded();
    let (all, _all_rx) = futures::channel::mpsc::unbounded();
    let caches = Arc::new(CacheContext::new(
        shared_view(),
        SyncedFlag::default(),
        Triggers { one, all },
    ));
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Arc::new(ControllerMetrics::register(&mut registry));
    let ctx = Arc::new(Context::new(
        client,
        caches,
        Leadership::fixed(false),
        metrics.clone(),
        "mtls-gate-test-0",
        Duration::from_secs(300),
    ));

    let mut results: Vec<ProbeResult> = (0..40)
        .map(|i| result("bank", &format!("https://a/ok{i}"), true, true))
        .collect();
    results.push(result("bank", "https://a/token", false, true));
    results.push(result("bank", "https://a/par", false, true));
    results.push(result("bank", "https://a/down", false, false));
    let failing = ProbeStatus::of("bank", &results);
    let ran_at = failing.time.0.as_second();
    let passing = ProbeStatus::of("bank", &results[..40]);

    let expect = |passed: u32, failed: u32, unreachable: u32, at: i64| -> Vec<String> {
        let mut v = vec![
            format!("mtls_gate_probe_endpoints{{profile=\"bank\",result=\"failed\"}} {failed}"),
            format!("mtls_gate_probe_endpoints{{profile=\"bank\",result=\"passed\"}} {passed}"),
            format!("mtls_gate_probe_last_run_timestamp_seconds{{profile=\"bank\"}} {at}"),
            format!("mtls_gate_probe_unreachable_endpoints{{profile=\"bank\"}} {unreachable}"),
        ];
        v.sort();
        v
    };
    // (status.probe, the series after the reconcile)
    let steps: Vec<(Option<&ProbeStatus>, Vec<String>)> = vec![
        (None, vec![]),
        (Some(&failing), expect(40, 3, 1, ran_at)),
        (Some(&passing), expect(40, 0, 0, passing.time.0.as_second())),
        // status.probe removed (the field cleared): no stale result stays exported.
        (None, vec![]),
        (Some(&failing), expect(40, 3, 1, ran_at)),
    ];
    for (i, (probe, want)) in steps.into_iter().enumerate() {
        let profile: ApiProviderProfile = profile_with_probe(probe, false);
        tokio::time::timeout(
            Duration::from_secs(10),
            reconcile(Arc::new(profile), ctx.clone()),
        )
        .await
        .expect("reconcile returns")
        .expect("reconcile succeeds");
        assert_eq!(probe_series(&registry), want, "step {i}");
    }
    // A profile being deleted does not export its probe again; its deletion drops them.
    metrics.forget_profile("bank");
    reconcile(
        Arc::new(profile_with_probe(Some(&failing), true)),
        ctx.clone(),
    )
    .await
    .expect("reconcile succeeds");
    assert_eq!(probe_series(&registry), Vec::<String>::new());
}
