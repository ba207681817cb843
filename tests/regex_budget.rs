//! The inputs that stalled the webhook on main (adversarial test 2026-11-30, F1;
//! `tests/fixtures/crashers/`, copied from the report) are now decided within the engine's
//! regex limits: each review completes, and an expression the engine cannot analyse is
//! reported as `UnmodelledSetting` naming the Ingress and path (fail closed), instead of
//! being compiled without bound. Time and memory per review are measured by
//! `cargo bench --bench engine` (BENCHMARKS.md), not asserted here.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionReview};
use mtls_gate::admission::ClusterAdmission;
use mtls_gate::cluster::Completeness;
use mtls_gate::manifest::{load, read_paths};
use mtls_gate::webhook::{AdmissionHandler, Decision};

fn handler() -> ClusterAdmission {
    let docs = read_paths(&[PathBuf::from("examples/nginx-split-host")]).expect("examples load");
    let mut manifests = load(docs, "default", false).expect("examples are valid");
    manifests
        .view
        .set_secrets_completeness(Completeness::Complete);
    ClusterAdmission::new(
        Arc::new(std::sync::RwLock::new(manifests.view)),
        Arc::new(AtomicBool::new(true)),
        Vec::new(),
    )
}

fn request(file: &str) -> AdmissionRequest<DynamicObject> {
    let text = std::fs::read_to_string(format!("tests/fixtures/crashers/{file}"))
        .expect("crasher fixture");
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_str(&text).expect("fixture is an AdmissionReview");
    review.try_into().expect("fixture has a request")
}

#[test]
fn crafted_regex_paths_are_reported_not_compiled_without_bound() {
    // (fixture, a path the denial must name as unanalysable)
    let cases: [(&str, &str); 4] = [
        (
            "regex-oom-nested-repeat.review.json",
            "/((x{1000}){1000}){2}",
        ),
        ("regex-slow-counted-repeat.review.json", "/{1000000}"),
        // (a|b)*a(a|b){14}: the textbook DFA with 2^15 states, beyond the size limit.
        (
            "regex-slow-20-paths.review.json",
            "/open-banking-nz/v3.0/(a|b)*a(a|b){14}x0",
        ),
        ("fuzz-valid-seed1008484.review.json", "/{1000000}"),
    ];
    let handler = handler();
    for (file, path) in cases {
        let req = request(file);
        let started = std::time::Instant::now();
        let reviewed = handler.validate(&req);
        eprintln!("{file}: decided in {:?}", started.elapsed());
        assert_eq!(reviewed.response.uid, req.uid, "{file}: uid echoed");
        let message = reviewed.response.result.message.clone();
        assert_eq!(reviewed.decision, Decision::Denied, "{file}: {message}");
        assert!(
            message.contains("[UnmodelledSetting]") && message.contains(path),
            "{file}: the denial names the unanalysable path {path}: {message}"
        );
    }
}
