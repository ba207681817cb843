//! Gateway API host evaluation (design.md §7): the bank's API host served by 20, 200 and
//! 2,000 HTTPRoutes on one Gateway listener, as admission re-evaluates it after a change
//! (`engine::evaluate_host`: route table, precedence, every endpoint's winners).
//!
//! The webhook's decision on an HTTPRoute UPDATE on that host (`admission::review_object`,
//! before-state cached, only what the changed route can reach re-evaluated) at the same
//! sizes.
//!
//! Run: `cargo bench --bench gateway_api` (figures in BENCHMARKS.md); `API_HOST_ROUTES=200`
//! picks the sizes.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use mtls_gate::admission::{BeforeStateCache, review_object, review_object_in_full};
use mtls_gate::dialect::reduce_owned;
use mtls_gate::engine::{evaluate_host, profile_dialect};
use mtls_gate::manifest::{load, parse_documents};
use mtls_gate::model::ObjectKey;

const API_HOST: &str = "mtls-api.bank.example";

/// The bank's split-host Gateway API layout with `routes` HTTPRoutes on the API host.
fn cluster_yaml(routes: usize) -> String {
    let mut docs = vec![format!(
        "apiVersion: mtls-gate.io/v1alpha1
kind: ApiProviderProfile
metadata: {{name: example-bank}}
spec:
  issuer: https://auth.bank.example
  apiBaseUrls: [https://{API_HOST}/open-banking-nz/v3.0]
  clientCertificate: {{caSecretName: open-banking-client-ca}}
  ingressController: gateway-api
"
    )];
    // The client CA bundle the Gateway's frontend validation names (GEP-91: ConfigMap,
    // key ca.crt).
    let pem = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/client-ca.crt"
    ))
    .expect("client CA fixture");
    let indented: String = pem.lines().map(|l| format!("    {l}\n")).collect();
    docs.push(format!(
        "apiVersion: v1
kind: ConfigMap
metadata: {{name: open-banking-client-ca, namespace: open-banking}}
data:
  ca.crt: |
{indented}"
    ));
    docs.push(format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: mtls, namespace: open-banking}}
spec:
  gatewayClassName: eg
  listeners:
    - {{name: mtls-api, protocol: HTTPS, port: 443, hostname: {API_HOST}}}
  tls:
    frontend:
      default:
        validation:
          caCertificateRefs: [{{group: \"\", kind: ConfigMap, name: open-banking-client-ca}}]
"
    ));
    for i in 0..routes {
        let path = if i == 0 {
            "/open-banking-nz/v3.0".to_string()
        } else {
            format!("/open-banking-nz/v3.0/service-{i}")
        };
        docs.push(http_route(i, &path, 1));
    }
    docs.join("---\n")
}

/// HTTPRoute `api-{i}` on the API host: a `PathPrefix` match on `path`, and an `Exact`
/// match on `{path}/status` that also tests `headers` headers.
fn http_route(i: usize, path: &str, headers: usize) -> String {
    let headers: Vec<String> = (0..headers)
        .map(|h| format!("{{name: x-probe-{h}, value: \"1\"}}"))
        .collect();
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: api-{i}, namespace: open-banking, creationTimestamp: \"2026-01-{:02}T10:00:00Z\"}}
spec:
  parentRefs: [{{name: mtls, sectionName: mtls-api}}]
  hostnames: [{API_HOST}]
  rules:
    - matches: [{{path: {{type: PathPrefix, value: {path}}}}}, {{path: {{type: Exact, value: {path}/status}}, headers: [{}]}}]
",
        1 + i % 28,
        headers.join(", ")
    )
}

/// Route counts on the host: `API_HOST_ROUTES` (comma-separated), else 20, 200 and 2,000.
fn sizes() -> Vec<usize> {
    std::env::var("API_HOST_ROUTES")
        .ok()
        .map(|list| {
            list.split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect()
        })
        .unwrap_or_else(|| vec![20, 200, 2_000])
}

fn api_host(c: &mut Criterion) {
    let mut group = c.benchmark_group("gateway-api host");
    for routes in sizes() {
        let yaml = cluster_yaml(routes);
        let docs = parse_documents(Path::new("cluster.yaml"), &yaml).expect("parses");
        let manifests = load(docs, "default", true).expect("loads");
        let profile = &manifests.profiles[0].1;
        let dialect = profile_dialect(profile).expect("gateway-api is evaluated");
        let evaluation = evaluate_host(profile, dialect, &manifests.view, API_HOST, false);
        assert!(
            evaluation.violations().is_empty(),
            "{:?}",
            evaluation.violations()
        );
        let mut samples: Vec<std::time::Duration> = (0..200)
            .map(|_| {
                let started = std::time::Instant::now();
                black_box(evaluate_host(
                    profile,
                    dialect,
                    &manifests.view,
                    black_box(API_HOST),
                    false,
                ));
                started.elapsed()
            })
            .collect();
        samples.sort();
        eprintln!(
            "gateway-api host, {routes} HTTPRoutes: p50 {:?} p99 {:?} (200 evaluations)",
            samples[samples.len() / 2],
            samples[samples.len() * 99 / 100]
        );
        group.bench_function(format!("{routes} HTTPRoutes, evaluate host"), |b| {
            b.iter(|| {
                evaluate_host(
                    profile,
                    dialect,
                    &manifests.view,
                    black_box(API_HOST),
                    false,
                )
            })
        });
    }
    group.finish();
}

/// The validating webhook's decision on an HTTPRoute UPDATE on the API host
/// (`admission::review_object` with the before-state cache warm, as the webhook runs it
/// on a snapshot of its view), against the reference that evaluates both states in full.
fn http_route_review(c: &mut Criterion) {
    let mut group = c.benchmark_group("gateway-api HTTPRoute review");
    for routes in sizes() {
        let yaml = cluster_yaml(routes);
        let docs = parse_documents(Path::new("cluster.yaml"), &yaml).expect("parses");
        let manifests = load(docs, "default", true).expect("loads");
        let view = manifests.view;
        let reduced = |manifest: String| {
            let value: serde_json::Value = serde_yaml_ng::from_str(&manifest).expect("yaml");
            reduce_owned(&value, "open-banking")
                .expect("a Gateway API kind")
                .expect("reduces")
        };
        let path = "/open-banking-nz/v3.0/service-5";
        let (kind, same) = reduced(http_route(5, path, 1));
        let (_, headers_added) = reduced(http_route(5, path, 2));
        let (_, moved) = reduced(http_route(5, "/open-banking-nz/v3.0/balances-v2", 1));
        let key = ObjectKey::new("open-banking", "api-5");
        let cache = BeforeStateCache::default();
        for (label, object) in [
            ("HTTPRoute unchanged", &same),
            ("header match added", &headers_added),
            ("path moved", &moved),
        ] {
            let decide = || {
                let snapshot = view.clone();
                review_object(&snapshot, kind, &key, Some(object.clone()), &cache)
            };
            let outcome = decide();
            assert!(outcome.allowed, "{label}: {:?}", outcome.message);
            assert_eq!(
                outcome,
                review_object_in_full(&view, kind, &key, Some(object.clone())),
                "{label}: the cached decision is the reference decision"
            );
            let mut samples: Vec<std::time::Duration> = (0..400)
                .map(|_| {
                    let started = std::time::Instant::now();
                    black_box(decide());
                    started.elapsed()
                })
                .collect();
            samples.sort();
            let full = {
                let started = std::time::Instant::now();
                for _ in 0..20 {
                    black_box(review_object_in_full(
                        &view,
                        kind,
                        &key,
                        Some(object.clone()),
                    ));
                }
                started.elapsed() / 20
            };
            eprintln!(
                "gateway-api host {routes} HTTPRoutes, {label}: snapshot + decision p50 {:?} p99 {:?} (400 decisions); reference (both states in full) mean {:?}",
                samples[samples.len() / 2],
                samples[samples.len() * 99 / 100],
                full
            );
            group.bench_function(format!("{routes} HTTPRoutes, {label}"), |b| b.iter(&decide));
        }
    }
    group.finish();
}

criterion_group!(gateway_api, api_host, http_route_review);
criterion_main!(gateway_api);
