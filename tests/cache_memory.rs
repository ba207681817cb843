//! Memory of the controller's caches per Ingress (design.md §7: ≤ 3 KB per cached Ingress).
//!
//! A counting global allocator measures the live heap before and after 10,000 realistic
//! Ingresses (as the API server sends them: managedFields, last-applied annotation, status,
//! unrelated annotations) went through the cache's watch-event handler into the shared
//! view. What stays is the memory the caches really hold; the API objects are dropped on
//! arrival. Run with `--nocapture` to see the figures:
//!
//!     cargo test --release --test cache_memory -- --nocapture

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};

use k8s_openapi::api::networking::v1::Ingress;
use kube::runtime::watcher::Event;
use mtls_gate::cluster::{SyncedFlag, shared_view};
use mtls_gate::controller::caches::{CacheContext, Triggers};
use serde_json::json;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static BLOCKS: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
            BLOCKS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        BLOCKS.fetch_sub(1, Ordering::Relaxed);
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
            BLOCKS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const N: usize = 10_000;

/// An Ingress as a watch delivers it: a team's API behind ingress-nginx, two paths, TLS,
/// the usual labels and annotations, kubectl's last-applied copy and managedFields.
fn realistic(i: usize) -> Ingress {
    let ns = format!("team-{:03}", i % 250);
    let name = format!("payments-api-{i:05}");
    let host = if i.is_multiple_of(10) {
        "mtls-api.bank.example".to_string()
    } else {
        format!("svc-{:04}.apps.bank.example", i % 4000)
    };
    let spec = json!({
        "ingressClassName": "nginx",
        "tls": [{"hosts": [host], "secretName": format!("{name}-tls")}],
        "rules": [{"host": host, "http": {"paths": [
            {"path": format!("/open-banking-nz/v3.0/accounts/{i}"), "pathType": "Prefix",
             "backend": {"service": {"name": name, "port": {"name": "https"}}}},
            {"path": "/healthz", "pathType": "Exact",
             "backend": {"service": {"name": name, "port": {"number": 8080}}}}
        ]}}]
    });
    let last_applied = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": ns}, "spec": spec});
    let managed = i.is_multiple_of(10);
    let mut annotations = json!({
        "kubectl.kubernetes.io/last-applied-configuration": last_applied.to_string(),
        "meta.helm.sh/release-name": format!("payments-{i}"),
        "meta.helm.sh/release-namespace": ns,
        "nginx.ingress.kubernetes.io/proxy-body-size": "8m",
        "nginx.ingress.kubernetes.io/backend-protocol": "HTTPS",
    });
    if managed {
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
    let mut labels = json!({
        "app.kubernetes.io/name": "payments-api",
        "app.kubernetes.io/instance": format!("payments-{i}"),
        "app.kubernetes.io/managed-by": "Helm",
        "helm.sh/chart": "payments-api-4.2.0",
    });
    if managed {
        labels["mtls-gate.io/profile"] = json!("example-bank");
    }
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": name, "namespace": ns,
            "uid": format!("5d6c8a7e-{i:04x}-4b1e-9c3a-0123456789ab"),
            "resourceVersion": format!("{}", 100_000 + i),
            "generation": 3,
            "creationTimestamp": "2026-01-12T14:30:00Z",
            "labels": labels,
            "annotations": annotations,
            "managedFields": [
                {"manager": "helm", "operation": "Update", "apiVersion": "networking.k8s.io/v1",
                 "time": "2026-01-12T14:30:00Z", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, "f:meta.helm.sh/release-name": {}}},
                              "f:spec": {"f:ingressClassName": {}, "f:rules": {}, "f:tls": {}}}},
                {"manager": "nginx-ingress-controller", "operation": "Update", "subresource": "status",
                 "apiVersion": "networking.k8s.io/v1", "time": "2026-01-12T14:31:00Z",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:loadBalancer": {"f:ingress": {}}}}}
            ]
        },
        "spec": spec,
        "status": {"loadBalancer": {"ingress": [{"ip": "10.20.30.40"}]}}
    }))
    .unwrap()
}

#[test]
fn cache_memory_per_ingress() {
    let (one, _one_rx) = futures::channel::mpsc::unbounded();
    let (all, _all_rx) = futures::channel::mpsc::unbounded();
    let ctx = Arc::new(CacheContext::new(
        shared_view(),
        SyncedFlag::default(),
        Triggers { one, all },
    ));
    // What one API object costs, for comparison (a kube reflector Store keeps these).
    let before_obj = LIVE.load(Ordering::SeqCst);
    let sample = realistic(1);
    let object_bytes = LIVE.load(Ordering::SeqCst) - before_obj;
    drop(sample);

    let before = LIVE.load(Ordering::SeqCst);
    let blocks_before = BLOCKS.load(Ordering::SeqCst);
    ctx.on_ingress_event(Event::Init);
    for i in 0..N {
        ctx.on_ingress_event(Event::InitApply(realistic(i)));
    }
    ctx.on_ingress_event(Event::InitDone);
    let after = LIVE.load(Ordering::SeqCst);
    let blocks = (BLOCKS.load(Ordering::SeqCst) - blocks_before) as f64 / N as f64;
    let per_ingress = (after - before) as f64 / N as f64;
    // glibc malloc adds 8 bytes per block and rounds to 16.
    let with_overhead = per_ingress + blocks * 16.0;
    assert_eq!(ctx.view.read().unwrap().ingress_count(), N);
    println!(
        "cache memory: {N} Ingresses -> {:.1} MiB live heap, {per_ingress:.0} bytes per Ingress \
         in {blocks:.1} blocks (~{with_overhead:.0} bytes with allocator overhead); the API \
         object itself: {object_bytes} bytes",
        (after - before) as f64 / (1024.0 * 1024.0)
    );
    assert!(
        with_overhead <= 3072.0,
        "{per_ingress:.0} bytes per cached Ingress exceeds the 3 KB budget"
    );
}
