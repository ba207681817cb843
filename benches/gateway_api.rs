//! Gateway API host evaluation (design.md §7): the bank's API host served by 20, 200 and
//! 2,000 HTTPRoutes on one Gateway listener, as admission re-evaluates it after a change
//! (`engine::evaluate_host`: route table, precedence, every endpoint's winners).
//!
//! Run: `cargo bench --bench gateway_api` (figures in BENCHMARKS.md).

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use mtls_gate::engine::{evaluate_host, profile_dialect};
use mtls_gate::manifest::{load, parse_documents};

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
        docs.push(format!(
            "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: api-{i}, namespace: open-banking, creationTimestamp: \"2026-01-{:02}T10:00:00Z\"}}
spec:
  parentRefs: [{{name: mtls, sectionName: mtls-api}}]
  hostnames: [{API_HOST}]
  rules:
    - matches: [{{path: {{type: PathPrefix, value: {path}}}}}, {{path: {{type: Exact, value: {path}/status}}, headers: [{{name: x-probe, value: \"1\"}}]}}]
",
            1 + i % 28
        ));
    }
    docs.join("---\n")
}

fn api_host(c: &mut Criterion) {
    let mut group = c.benchmark_group("gateway-api host");
    for routes in [20usize, 200, 2_000] {
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

criterion_group!(gateway_api, api_host);
criterion_main!(gateway_api);
