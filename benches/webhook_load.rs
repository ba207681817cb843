//! Load benchmark of the webhook HTTPS server against a bare TLS echo server on the same
//! stack (same rustls configuration, same hyper server), in one process, loopback only.
//!
//! `cargo bench --bench webhook_load` runs, for each target, N keep-alive connections that
//! send an Ingress CREATE AdmissionReview (~3 KB) to `POST /validate` (webhook) or to the
//! echo server, closed loop, and prints requests, throughput and latency percentiles, then
//! the webhook/echo latency ratios.
//!
//! Environment (all optional):
//! - `LOAD_CONNECTIONS` (default 8): keep-alive connections per target.
//! - `LOAD_SECONDS` (default 5): measured duration per target (after a 0.5 s warm-up).
//! - `LOAD_REQUESTS`: stop a target after this many measured requests (whichever first).
//! - `LOAD_RATE`: fixed total request rate (req/s) instead of closed loop, e.g. 1000;
//!   latency is then measured from each request's scheduled start (no coordinated
//!   omission).
//! - `LOAD_PROTOCOL` (`h1` default, or `h2`): HTTP version negotiated with ALPN.
//! - `LOAD_TARGETS` (default `echo,webhook`): which targets to run.
//! - `LOAD_WEBHOOK` (`validate` default, `mutate`, or `verify`): which webhook path is
//!   driven (`verify` measures the transport alone: the gate ignores the body).
//! - `LOAD_INGRESSES` (default 10,000): Ingresses in the webhook's view.
//! - `LOAD_API_ROUTES` (default 200, the reference world of design.md §7): routes on the
//!   bank's MTLS API host, the host of the reviewed Ingress.
//! - `LOAD_REVIEW` (`update` default, or `create`): the review sent. `update` is the UPDATE
//!   of one of the API host's Ingresses that moves its path (the case, and the
//!   engine bench's "path moved"); `create` is a new Ingress with seven paths that other
//!   Ingresses of the host already claim (duplicates: the host's table is built in full).
//!
//! Server and clients share one tokio runtime with 2 worker threads (the machine has 2
//! cores), so the figures include the client's cost; the echo run pays the same cost,
//! which is what makes the ratio meaningful.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse};
use mtls_gate::webhook::tls::{CertResolver, crypto_provider, load_certified_key, server_config};
use mtls_gate::webhook::{AdmissionHandler, Decision, Reviewed, WebhookConfig, WebhookMetrics};
use prometheus_client::registry::Registry;
use rustls::RootCertStore;
use rustls::pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The engine-backed handler over a synthetic cluster of 10,000 Ingresses (the bank of
/// `mtls_gate::synthetic`, 200 routes on its API host, plus other tenants);
/// `LOAD_HANDLER=stub` uses the stand-in below to measure the transport alone.
fn load_handler() -> Arc<dyn AdmissionHandler> {
    if std::env::var("LOAD_HANDLER").as_deref() == Ok("stub") {
        return Arc::new(BenchHandler);
    }
    let count = env::<usize>("LOAD_INGRESSES").unwrap_or(10_000);
    let api_routes = api_routes();
    let yaml = mtls_gate::synthetic::cluster_yaml_with_api_routes(count, api_routes);
    let docs = mtls_gate::manifest::parse_documents(std::path::Path::new("cluster.yaml"), &yaml)
        .expect("synthetic cluster parses");
    let view = mtls_gate::manifest::load(docs, "default", true)
        .expect("synthetic cluster loads")
        .view;
    eprintln!(
        "cluster view: {} Ingresses, {api_routes} routes on the API host",
        view.ingress_count()
    );
    Arc::new(mtls_gate::admission::ClusterAdmission::new(
        Arc::new(std::sync::RwLock::new(view)),
        Arc::new(std::sync::atomic::AtomicBool::new(true)),
        vec!["kube-system".into()],
    ))
}

/// Stand-in handler (same behaviour as the test handler): denies Ingresses named `bad-*`,
/// mutate adds one label.
struct BenchHandler;

impl AdmissionHandler for BenchHandler {
    fn validate(&self, req: &AdmissionRequest<DynamicObject>) -> Reviewed {
        if req.kind.kind == "Ingress" && req.name.starts_with("bad-") {
            let resp = AdmissionResponse::from(req).deny(format!("{}: MtlsNotRequired", req.name));
            return Reviewed::new(resp, Decision::Denied);
        }
        Reviewed::allow(req)
    }

    fn mutate(&self, req: &AdmissionRequest<DynamicObject>) -> Reviewed {
        if req.kind.kind != "Ingress" || req.object.is_none() {
            return Reviewed::allow(req);
        }
        let patch: Result<json_patch::Patch, _> = serde_json::from_value(serde_json::json!([
            {"op": "add", "path": "/metadata/labels/mtls-gate.io~1rendered", "value": "true"}
        ]));
        match patch.map(|p| AdmissionResponse::from(req).with_patch(p)) {
            Ok(Ok(resp)) => Reviewed::new(resp, Decision::Patched),
            _ => Reviewed::allow(req),
        }
    }

    fn view_ready(&self) -> bool {
        true
    }

    fn cached_ingresses(&self) -> usize {
        0
    }
}

struct Settings {
    connections: usize,
    seconds: f64,
    requests: Option<u64>,
    rate: Option<f64>,
    h2: bool,
    targets: Vec<String>,
    webhook_path: &'static str,
}

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    let value = std::env::var(name).ok()?;
    match value.parse() {
        Ok(v) => Some(v),
        Err(_) => {
            eprintln!("ignoring {name}={value:?}: not a valid value");
            None
        }
    }
}

impl Settings {
    fn from_env() -> Self {
        let protocol = std::env::var("LOAD_PROTOCOL").unwrap_or_else(|_| "h1".into());
        Self {
            connections: env("LOAD_CONNECTIONS").unwrap_or(8).clamp(1, 512),
            seconds: env("LOAD_SECONDS").unwrap_or(5.0f64).clamp(0.1, 120.0),
            requests: env("LOAD_REQUESTS"),
            rate: env::<f64>("LOAD_RATE").filter(|r| *r > 0.0),
            h2: protocol == "h2",
            targets: std::env::var("LOAD_TARGETS")
                .unwrap_or_else(|_| "echo,webhook".into())
                .split(',')
                .map(|s| s.trim().to_string())
                .collect(),
            webhook_path: match std::env::var("LOAD_WEBHOOK").as_deref() {
                Ok("mutate") => "/mutate",
                Ok("verify") => "/verify",
                _ => "/validate",
            },
        }
    }
}

fn api_routes() -> usize {
    env::<usize>("LOAD_API_ROUTES").unwrap_or(200)
}

/// The review the load sends (`LOAD_REVIEW`).
fn review_body() -> Vec<u8> {
    if std::env::var("LOAD_REVIEW").as_deref() == Ok("create") {
        return create_review_body();
    }
    update_review_body()
}

/// An AdmissionReview of an Ingress `operation` (`CREATE`, `UPDATE`), as Argo CD's
/// application controller sends it, for `object` (its name and namespace) and `old`.
fn ingress_review(operation: &str, object: serde_json::Value, old: serde_json::Value) -> Vec<u8> {
    let options = if operation == "CREATE" {
        "CreateOptions"
    } else {
        "UpdateOptions"
    };
    let review = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "networking.k8s.io", "version": "v1", "kind": "Ingress"},
            "resource": {"group": "networking.k8s.io", "version": "v1", "resource": "ingresses"},
            "requestKind": {"group": "networking.k8s.io", "version": "v1", "kind": "Ingress"},
            "requestResource": {"group": "networking.k8s.io", "version": "v1", "resource": "ingresses"},
            "name": object["metadata"]["name"],
            "namespace": object["metadata"]["namespace"],
            "operation": operation,
            "userInfo": {
                "username": "system:serviceaccount:argocd:argocd-application-controller",
                "uid": "6f1c1bd5-2a52-4b7e-8f55-1c0f0d0c1c11",
                "groups": ["system:serviceaccounts", "system:serviceaccounts:argocd", "system:authenticated"]
            },
            "object": object,
            "oldObject": old,
            "dryRun": false,
            "options": {"kind": options, "apiVersion": "meta.k8s.io/v1", "fieldManager": "argocd-controller"}
        }
    });
    serde_json::to_vec(&review).unwrap_or_default()
}

/// An UPDATE of one of the bank's API-host Ingresses, as the view holds it, that moves its
/// path to one no other Ingress claims.
fn update_review_body() -> Vec<u8> {
    let bank = mtls_gate::synthetic::bank_ingresses_with_api_routes(api_routes());
    let old = bank
        .iter()
        .rev()
        .find(|i| {
            i["spec"]["rules"][0]["host"] == "mtls-api.bank.example"
                && i["metadata"]["name"] != "api-catch-all"
        })
        .or_else(|| bank.last())
        .cloned()
        .unwrap_or_default();
    let mut new = old.clone();
    new["spec"]["rules"][0]["http"]["paths"][0]["path"] =
        serde_json::json!("/open-banking-nz/v3.0/service-moved");
    ingress_review("UPDATE", new, old)
}

/// A realistic Ingress CREATE review (~3 KB): labels, annotations, managedFields, TLS,
/// several paths.
fn create_review_body() -> Vec<u8> {
    let paths: Vec<serde_json::Value> = [
        "/accounts",
        "/accounts/{AccountId}",
        "/accounts/{AccountId}/balances",
        "/accounts/{AccountId}/transactions",
        "/payments",
        "/payment-consents",
        "/event-subscriptions",
    ]
    .iter()
    .map(|p| {
        serde_json::json!({
            "path": format!("/open-banking-nz/v3.0{}", p.replace("{AccountId}", "123")),
            "pathType": "Prefix",
            "backend": {"service": {"name": "open-banking-api", "port": {"number": 8443}}}
        })
    })
    .collect();
    let object = serde_json::json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "open-banking-api",
            "namespace": "open-banking",
            "creationTimestamp": null,
            "labels": {
                "app.kubernetes.io/name": "open-banking-api",
                "app.kubernetes.io/instance": "bank-prod",
                "app.kubernetes.io/part-of": "open-banking",
                "mtls-gate.io/profile": "example-bank"
            },
            "annotations": {
                "nginx.ingress.kubernetes.io/backend-protocol": "HTTPS",
                "nginx.ingress.kubernetes.io/proxy-body-size": "1m",
                "argocd.argoproj.io/tracking-id": "bank-prod:networking.k8s.io/Ingress:bank-prod/open-banking-api"
            },
            "managedFields": [{
                "manager": "argocd-controller",
                "operation": "Apply",
                "apiVersion": "networking.k8s.io/v1",
                "time": "2026-01-01T00:00:00Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:annotations": {}, "f:labels": {}}, "f:spec": {"f:ingressClassName": {}, "f:rules": {}, "f:tls": {}}}
            }]
        },
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": ["mtls-api.bank.example"], "secretName": "mtls-api-tls"}],
            "rules": [{"host": "mtls-api.bank.example", "http": {"paths": paths}}]
        },
        "status": {"loadBalancer": {}}
    });
    ingress_review("CREATE", object, serde_json::Value::Null)
}

/// The bare TLS echo server: same rustls configuration and hyper builders as the webhook
/// (ALPN chooses HTTP/1.1 or HTTP/2), returns the request body.
async fn echo_server(listener: TcpListener, tls: Arc<rustls::ServerConfig>) {
    let acceptor = TlsAcceptor::from(tls);
    // The webhook's builder settings (src/webhook/server.rs, `Builders::new`).
    let mut h1 = auto::Builder::new(TokioExecutor::new()).http1_only();
    h1.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .keep_alive(true)
        .max_headers(64);
    let mut h2 = auto::Builder::new(TokioExecutor::new()).http2_only();
    h2.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(128)
        .max_header_list_size(64 * 1024);
    let builders = Arc::new((h1, h2));
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let builders = builders.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let is_h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
            let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                let body = match req.into_body().collect().await {
                    Ok(b) => b.to_bytes(),
                    Err(_) => Bytes::new(),
                };
                Ok::<_, Infallible>(hyper::Response::new(Full::new(body)))
            });
            let builder = if is_h2 { &builders.1 } else { &builders.0 };
            let _ = builder.serve_connection(TokioIo::new(tls), service).await;
        });
    }
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

async fn connect(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> anyhow::Result<Sender> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let tls = TlsConnector::from(config)
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
    let io = TokioIo::new(tls);
    Ok(if h2 {
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(conn);
        Sender::H2(sender)
    } else {
        let (sender, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(conn);
        Sender::H1(sender)
    })
}

/// Sends one review; the status and the answer's body.
async fn send(
    sender: &mut Sender,
    path: &str,
    body: &Bytes,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let builder = Request::builder().method(Method::POST);
    let resp = match sender {
        Sender::H1(s) => {
            let req = builder
                .uri(path)
                .header("host", "localhost")
                .header("content-type", "application/json")
                .header("ssl-client-verify", "SUCCESS")
                .body(Full::new(body.clone()))?;
            s.ready().await?;
            s.send_request(req).await?
        }
        Sender::H2(s) => {
            let req = builder
                .uri(format!("https://localhost{path}"))
                .header("content-type", "application/json")
                .header("ssl-client-verify", "SUCCESS")
                .body(Full::new(body.clone()))?;
            s.ready().await?;
            s.send_request(req).await?
        }
    };
    let status = resp.status();
    Ok((status, resp.into_body().collect().await?.to_bytes()))
}

/// What the webhook answers to `body`: the status, and for an AdmissionReview whether it
/// allowed the change and why not (the load must measure a decision, not an error).
async fn first_response(
    addr: SocketAddr,
    path: &str,
    client: Arc<rustls::ClientConfig>,
    body: &Bytes,
) -> anyhow::Result<String> {
    let mut sender = connect(addr, client).await?;
    let (status, bytes) = send(&mut sender, path, body).await?;
    let review: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let response = &review["response"];
    Ok(format!(
        "HTTP {status}, allowed {}, {}",
        response["allowed"],
        response["status"]["message"]
            .as_str()
            .map_or("no message".to_string(), |m| m.chars().take(300).collect())
    ))
}

struct RunResult {
    latencies: Vec<Duration>,
    elapsed: Duration,
    errors: u64,
}

/// One connection's loop: closed loop, or fixed rate from `start` every `interval`.
#[allow(clippy::too_many_arguments)]
async fn drive(
    mut sender: Sender,
    path: &'static str,
    body: Bytes,
    warmup_until: Instant,
    until: Instant,
    max_requests: u64,
    interval: Option<Duration>,
    offset: Duration,
) -> (Vec<Duration>, u64) {
    let mut latencies = Vec::with_capacity(65_536);
    let mut errors = 0u64;
    let mut next = Instant::now() + offset;
    loop {
        // Fixed rate: when on schedule, latency counts from the actual send (the timer
        // wakes up to ~1 ms late); when behind schedule, from the scheduled start, so a
        // slow server is not hidden (no coordinated omission).
        let (scheduled, started) = match interval {
            Some(step) => {
                let s = next;
                next += step;
                if Instant::now() < s {
                    tokio::time::sleep_until(s.into()).await;
                    (s, Instant::now())
                } else {
                    (s, s)
                }
            }
            None => {
                let now = Instant::now();
                (now, now)
            }
        };
        if scheduled >= until || latencies.len() as u64 >= max_requests {
            break;
        }
        match send(&mut sender, path, &body).await {
            Ok((status, _)) if status.is_success() => {
                if started >= warmup_until {
                    latencies.push(started.elapsed());
                }
            }
            Ok(_) | Err(_) => errors += 1,
        }
    }
    (latencies, errors)
}

async fn run_target(
    addr: SocketAddr,
    path: &'static str,
    client: Arc<rustls::ClientConfig>,
    settings: &Settings,
    body: &Bytes,
) -> anyhow::Result<RunResult> {
    let mut senders = Vec::new();
    for _ in 0..settings.connections {
        senders.push(connect(addr, client.clone()).await?);
    }
    let warmup = Duration::from_millis(500);
    let start = Instant::now();
    let warmup_until = start + warmup;
    let until = warmup_until + Duration::from_secs_f64(settings.seconds);
    let per_conn_max = settings
        .requests
        .map_or(u64::MAX, |r| r.div_ceil(settings.connections as u64));
    let interval = settings
        .rate
        .map(|r| Duration::from_secs_f64(settings.connections as f64 / r));
    let mut tasks = Vec::new();
    for (i, sender) in senders.into_iter().enumerate() {
        let offset = interval.map_or(Duration::ZERO, |step| {
            step.mul_f64(i as f64 / settings.connections as f64)
        });
        tasks.push(tokio::spawn(drive(
            sender,
            path,
            body.clone(),
            warmup_until,
            until,
            per_conn_max,
            interval,
            offset,
        )));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        latencies.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed().saturating_sub(warmup);
    latencies.sort_unstable();
    Ok(RunResult {
        latencies,
        elapsed,
        errors,
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn report(name: &str, r: &RunResult) {
    let n = r.latencies.len();
    println!(
        "{name:<8} requests {n:>8}  errors {:>3}  throughput {:>9.0} req/s  p50 {:>8.1} µs  p90 {:>8.1} µs  p99 {:>8.1} µs  max {:>8.1} µs",
        r.errors,
        n as f64 / r.elapsed.as_secs_f64().max(1e-9),
        us(percentile(&r.latencies, 50.0)),
        us(percentile(&r.latencies, 90.0)),
        us(percentile(&r.latencies, 99.0)),
        us(r.latencies.last().copied().unwrap_or_default()),
    );
}

/// Mean time the server spent per review (body read, decode, handler, encode), from
/// `mtls_gate_admission_duration_seconds`.
fn server_side_time(registry: &Registry) {
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, registry).is_err() {
        return;
    }
    let value = |prefix: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    };
    for webhook in ["validate", "mutate"] {
        let sum = value(&format!(
            "mtls_gate_admission_duration_seconds_sum{{webhook=\"{webhook}\"}}"
        ));
        let count = value(&format!(
            "mtls_gate_admission_duration_seconds_count{{webhook=\"{webhook}\"}}"
        ));
        if let (Some(sum), Some(count)) = (sum, count)
            && count > 0.0
        {
            println!(
                "server-side /{webhook}: {count} reviews, mean {:.1} µs (body read, decode, review, encode)",
                sum / count * 1e6
            );
        }
    }
}

/// CPU cost of decoding the review body alone (reference point for the latency gap).
fn parse_costs(body: &[u8]) {
    fn time<T>(what: &str, body: &[u8], f: impl Fn(&[u8]) -> T) {
        let n = 2000;
        let start = Instant::now();
        for _ in 0..n {
            std::hint::black_box(f(std::hint::black_box(body)));
        }
        println!("decode {what}: {:.1} µs", us(start.elapsed()) / n as f64);
    }
    time("serde_json::Value", body, |b| {
        serde_json::from_slice::<serde_json::Value>(b).ok()
    });
    time("kube AdmissionReview<DynamicObject>", body, |b| {
        serde_json::from_slice::<kube::core::admission::AdmissionReview<DynamicObject>>(b).ok()
    });
    time("webhook parse_admission_review", body, |b| {
        mtls_gate::webhook::parse_admission_review(b).ok()
    });
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    // Certificate: a CA and an ECDSA P-256 leaf for localhost, written to a temp dir.
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key)?;
    let leaf_key = rcgen::KeyPair::generate()?;
    let leaf =
        rcgen::CertificateParams::new(vec!["localhost".to_string()])?.signed_by(&leaf_key, &ca)?;
    let dir = tempfile::tempdir()?;
    let (cert_file, key_file) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_file, leaf.pem())?;
    std::fs::write(&key_file, leaf_key.serialize_pem())?;

    let mut roots = RootCertStore::empty();
    roots.add(ca.der().clone())?;
    let mut client = rustls::ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = vec![if settings.h2 {
        b"h2".to_vec()
    } else {
        b"http/1.1".to_vec()
    }];
    let client = Arc::new(client);

    // The webhook server.
    let mut config = WebhookConfig::new(
        "127.0.0.1:0".parse()?,
        "127.0.0.1:0".parse()?,
        &cert_file,
        &key_file,
    );
    config.limits.max_in_flight = 1024;
    let mut registry = Registry::default();
    let metrics = Arc::new(WebhookMetrics::register(&mut registry));
    let registry = Arc::new(registry);
    let bound = mtls_gate::webhook::bind(config).await?;
    let webhook_addr = bound.local_addr();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        bound.serve(load_handler(), metrics, registry.clone(), async {
            let _ = stop_rx.await;
        }),
    );

    // The echo server, same rustls configuration.
    let resolver = Arc::new(CertResolver::new());
    resolver.set(Arc::new(load_certified_key(
        leaf.pem().as_bytes(),
        leaf_key.serialize_pem().as_bytes(),
    )?));
    let echo_tls = Arc::new(server_config(resolver, &[b"h2", b"http/1.1"])?);
    let echo_listener = TcpListener::bind("127.0.0.1:0").await?;
    let echo_addr = echo_listener.local_addr()?;
    let echo = tokio::spawn(echo_server(echo_listener, echo_tls));

    let body = Bytes::from(review_body());
    parse_costs(&body);
    if settings.targets.iter().any(|t| t == "webhook") {
        let decided =
            first_response(webhook_addr, settings.webhook_path, client.clone(), &body).await?;
        println!("webhook answer to the review: {decided}");
    }
    println!(
        "webhook_load: {} keep-alive connections, {}, body {} bytes, {} s per target{}{}",
        settings.connections,
        if settings.h2 { "HTTP/2" } else { "HTTP/1.1" },
        body.len(),
        settings.seconds,
        settings
            .requests
            .map_or(String::new(), |r| format!(", at most {r} requests")),
        settings
            .rate
            .map_or(", closed loop".to_string(), |r| format!(
                ", fixed rate {r} req/s"
            )),
    );

    let mut echo_result = None;
    let mut webhook_result = None;
    for target in &settings.targets {
        match target.as_str() {
            "echo" => {
                let r = run_target(echo_addr, "/echo", client.clone(), &settings, &body).await?;
                report("echo", &r);
                echo_result = Some(r);
            }
            "webhook" => {
                let r = run_target(
                    webhook_addr,
                    settings.webhook_path,
                    client.clone(),
                    &settings,
                    &body,
                )
                .await?;
                report("webhook", &r);
                webhook_result = Some(r);
            }
            other => eprintln!("unknown target {other:?} (use echo, webhook)"),
        }
    }
    if let (Some(e), Some(w)) = (&echo_result, &webhook_result) {
        let ratio = |p| us(percentile(&w.latencies, p)) / us(percentile(&e.latencies, p)).max(1e-9);
        println!(
            "ratio webhook/echo: p50 {:.2}x  p99 {:.2}x",
            ratio(50.0),
            ratio(99.0)
        );
    }
    server_side_time(&registry);
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(20), server).await;
    echo.abort();
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too: keep that short.
    let mut settings = Settings::from_env();
    if !std::env::args().any(|a| a == "--bench") {
        settings.seconds = settings.seconds.min(0.2);
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run(settings))
}
