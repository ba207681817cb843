//! Engine benchmarks (design.md §7): one admission-style decision with 10,000 Ingresses
//! indexed, and `check` over 10,000 Ingresses (parse + index + evaluate).
//!
//! Run: `cargo bench --bench engine` (figures in BENCHMARKS.md).

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use k8s_openapi::api::networking::v1::Ingress;
use mtls_gate::admission::review_ingress;
use mtls_gate::cluster::Completeness;
use mtls_gate::manifest::{load, parse_documents};
use mtls_gate::model::ObjectKey;
use mtls_gate::synthetic;

const INGRESSES: usize = 10_000;

fn benches(c: &mut Criterion) {
    let yaml = synthetic::cluster_yaml(INGRESSES);
    let docs = parse_documents(Path::new("cluster.yaml"), &yaml).expect("parses");
    let mut manifests = load(docs, "default", true).expect("loads");
    manifests.view.secrets_completeness = Completeness::Complete;
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
    group.bench_function("check 10k Ingresses (parse + index + evaluate)", |b| {
        b.iter(|| {
            let docs =
                parse_documents(Path::new("cluster.yaml"), black_box(&yaml)).expect("parses");
            let manifests = load(docs, "default", false).expect("loads");
            mtls_gate::cli::evaluate_all(&manifests).expect("evaluates")
        })
    });
    group.finish();
}

criterion_group!(engine, benches);
criterion_main!(engine);
