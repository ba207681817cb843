//! Engine benchmarks (design.md §7): one admission-style decision with 10,000 Ingresses
//! indexed, and `check` over 10,000 Ingresses (parse + index + evaluate).
//!
//! Run: `cargo bench --bench engine` (figures in BENCHMARKS.md).

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use k8s_openapi::api::networking::v1::Ingress;
use mtls_gate::admission::{BeforeStateCache, review_ingress, review_ingress_cached};
use mtls_gate::cluster::Completeness;
use mtls_gate::manifest::{load, parse_documents};
use mtls_gate::model::{IngressView, ObjectKey};
use mtls_gate::synthetic;

const INGRESSES: usize = 10_000;

fn benches(c: &mut Criterion) {
    let yaml = synthetic::cluster_yaml(INGRESSES);
    let docs = parse_documents(Path::new("cluster.yaml"), &yaml).expect("parses");
    let mut manifests = load(docs, "default", true).expect("loads");
    manifests
        .view
        .set_secrets_completeness(Completeness::Complete);
    assert_eq!(manifests.view.ingress_count(), INGRESSES);

    // An UPDATE of one of the bank's API Ingresses (the host has 24 Ingresses).
    let changed: Ingress =
        serde_json::from_value(synthetic::bank_ingresses()[5].clone()).expect("ingress");
    let key = ObjectKey::new(
        "open-banking",
        changed.metadata.name.clone().unwrap_or_default(),
    );
    let outcome = review_ingress(&manifests.view, &key, Some(&changed));
    assert!(outcome.allowed, "{:?}", outcome.message);

    let mut group = c.benchmark_group("engine");
    group.bench_function("admission decision, 1 changed Ingress, 10k indexed", |b| {
        b.iter(|| {
            review_ingress(
                black_box(&manifests.view),
                black_box(&key),
                black_box(Some(&changed)),
            )
        })
    });
    // An Ingress of an unrelated tenant: no profile host is touched.
    let other: Ingress =
        serde_json::from_value(synthetic::cluster_ingresses(100)[60].clone()).expect("ingress");
    let other_key = ObjectKey::new(
        other.metadata.namespace.clone().unwrap_or_default(),
        other.metadata.name.clone().unwrap_or_default(),
    );
    group.bench_function("admission decision, unrelated Ingress, 10k indexed", |b| {
        b.iter(|| {
            review_ingress(
                black_box(&manifests.view),
                black_box(&other_key),
                black_box(Some(&other)),
            )
        })
    });
    group.bench_function("evaluate profile, 10k indexed", |b| {
        b.iter(|| mtls_gate::cli::evaluate_all(black_box(&manifests)).expect("evaluates"))
    });
    group.sample_size(10);
    // As `mtls-gate check` does, the parsed documents are freed outside the time measured:
    // `cli::check` frees them on a thread of its own and the process exits without
    // waiting for it.
    group.bench_function("check 10k Ingresses (parse + index + evaluate)", |b| {
        b.iter_with_large_drop(|| {
            let docs =
                parse_documents(Path::new("cluster.yaml"), black_box(&yaml)).expect("parses");
            let manifests = load(docs, "default", false).expect("loads");
            let verdict = mtls_gate::cli::evaluate_all(&manifests).expect("evaluates");
            (manifests, verdict)
        })
    });
    group.finish();
}

/// One admission decision on the bank's MTLS API host with 20, 200 and 2,000 routes on it
/// (10,000 Ingresses in view), as the webhook makes it: take a snapshot of the view (an
/// O(1) clone of its persistent maps), then decide with the before-state cache
/// (`review_ingress_cached`). Three changes: an UPDATE that leaves the Ingress's view as
/// it was (labels, backends: the common case), one that changes an annotation the dialect
/// reads but that decides nothing here (`ssl-redirect: "true"`, the default: the host's
/// table is rebuilt and compared),
/// and one that moves its path (incremental re-evaluation of what the path can reach).
/// Besides criterion's medians, prints p50/p99 over up to 2,000 single decisions (fewer
/// when they take more than 20 s), for the decision with the snapshot and without it.
/// `API_HOST_ROUTES=200` (a comma-separated list) picks the sizes; default 20, 200, 2,000.
fn api_host_scaling(c: &mut Criterion) {
    let sizes: Vec<usize> = std::env::var("API_HOST_ROUTES")
        .ok()
        .map(|list| {
            list.split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect()
        })
        .unwrap_or_else(|| vec![20, 200, 2_000]);
    let mut group = c.benchmark_group("api host routes");
    for routes in sizes {
        let yaml = synthetic::cluster_yaml_with_api_routes(INGRESSES, routes);
        let docs = parse_documents(Path::new("cluster.yaml"), &yaml).expect("parses");
        let mut manifests = load(docs, "default", true).expect("loads");
        manifests
            .view
            .set_secrets_completeness(Completeness::Complete);
        let bank = synthetic::bank_ingresses_with_api_routes(routes);
        let same: Ingress = serde_json::from_value(bank[5].clone()).expect("ingress");
        let mut moved_value = bank[5].clone();
        moved_value["spec"]["rules"][0]["http"]["paths"][0]["path"] =
            serde_json::json!("/open-banking-nz/v3.0/balances-v2");
        let moved: Ingress = serde_json::from_value(moved_value).expect("ingress");
        let mut annotated_value = bank[5].clone();
        annotated_value["metadata"]["annotations"]["nginx.ingress.kubernetes.io/ssl-redirect"] =
            serde_json::json!("true");
        let annotated: Ingress = serde_json::from_value(annotated_value).expect("ingress");
        assert_ne!(
            IngressView::from_ingress(&annotated, "open-banking"),
            IngressView::from_ingress(&same, "open-banking"),
            "the dialect reads the annotation, so the view changes"
        );
        let key = ObjectKey::new(
            "open-banking",
            same.metadata.name.clone().unwrap_or_default(),
        );
        let cache = BeforeStateCache::default();
        let decide = |ingress: &Ingress| {
            let snapshot = manifests.view.clone();
            review_ingress_cached(&snapshot, &key, Some(ingress), &cache)
        };
        for (label, ingress) in [
            ("routes unchanged", &same),
            ("ssl-redirect \"true\" (the default) added", &annotated),
            ("path moved", &moved),
        ] {
            let outcome = decide(ingress);
            assert!(outcome.allowed, "{label}: {:?}", outcome.message);
            assert_eq!(
                outcome,
                review_ingress(&manifests.view, &key, Some(ingress)),
                "{label}: the cached decision is the reference decision"
            );
            let snapshot = manifests.view.clone();
            let decide_on_snapshot =
                || review_ingress_cached(&snapshot, &key, Some(ingress), &cache);
            let with_snapshot = percentiles(|| {
                black_box(decide(black_box(ingress)));
            });
            let on_snapshot = percentiles(|| {
                black_box(decide_on_snapshot());
            });
            eprintln!(
                "api host {routes} routes, {label}: snapshot + decision p50 {:?} p99 {:?}; decision on the snapshot p50 {:?} p99 {:?} ({} decisions)",
                with_snapshot.0, with_snapshot.1, on_snapshot.0, on_snapshot.1, with_snapshot.2
            );
            group.bench_function(format!("{routes} routes, {label}"), |b| {
                b.iter(|| decide(black_box(ingress)))
            });
        }
    }
    group.finish();
}

/// p50 and p99 of up to 2,000 runs of `run` (stopping after 20 s), and the run count.
fn percentiles(mut run: impl FnMut()) -> (std::time::Duration, std::time::Duration, usize) {
    let budget = std::time::Instant::now();
    let mut samples: Vec<std::time::Duration> = Vec::with_capacity(2_000);
    while samples.len() < 2_000 && (samples.len() < 20 || budget.elapsed().as_secs() < 20) {
        let started = std::time::Instant::now();
        run();
        samples.push(started.elapsed());
    }
    samples.sort();
    (
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100],
        samples.len(),
    )
}

criterion_group!(engine, benches, api_host_scaling);
criterion_main!(engine);
