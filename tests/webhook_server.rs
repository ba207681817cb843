//! The webhook HTTPS server, driven for real: TLS on loopback with ephemeral ports, real
//! HTTP/1.1 and HTTP/2 clients, certificates issued at run time (see
//! `tests/fixtures/tls/README.md`), a tiny test `AdmissionHandler`.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame};
use hyper_util::rt::{TokioExecutor, TokioIo};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use mtls_gate::webhook::metrics::{ErrorReason, ReasonLabel, ReloadLabels};
use mtls_gate::webhook::{
    AdmissionHandler, Decision, Reviewed, WebhookConfig, WebhookMetrics, bind, tls,
};
use prometheus_client::registry::Registry;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ProtocolVersion, RootCertStore, SupportedProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

type Body = BoxBody<Bytes, Infallible>;

const RSA_PKCS8: &str = include_str!("fixtures/tls/rsa2048.pkcs8.pem");
const RSA_PKCS1: &str = include_str!("fixtures/tls/rsa2048.pkcs1.pem");
const EC_PKCS8: &str = include_str!("fixtures/tls/ec-p256.pkcs8.pem");
const EC_SEC1: &str = include_str!("fixtures/tls/ec-p256.sec1.pem");

// ---------------------------------------------------------------------------------------
// Test handler: denies Ingresses named `bad-*`, panics on `panic`, warns on `warn-*`,
// takes `SLOW_REVIEW` over Ingresses named `slow` (both webhooks); mutate adds one label
// to Ingresses.

/// How long the handler takes over an Ingress named `slow`: well beyond the test review
/// deadline.
const SLOW_REVIEW: Duration = Duration::from_millis(1500);

#[derive(Default)]
struct TestHandler {
    ready: AtomicBool,
    ingresses: AtomicUsize,
    /// The name of the thread each validated Ingress was reviewed on, by Ingress name.
    review_threads: std::sync::Mutex<Vec<(String, Option<String>)>>,
}

fn object_name(req: &AdmissionRequest<DynamicObject>) -> &str {
    req.name.as_str()
}

impl AdmissionHandler for TestHandler {
    fn validate(&self, req: &AdmissionRequest<DynamicObject>) -> Reviewed {
        if req.kind.kind != "Ingress" {
            return Reviewed::allow(req);
        }
        let name = object_name(req);
        if let Ok(mut threads) = self.review_threads.lock() {
            threads.push((
                name.to_string(),
                std::thread::current().name().map(str::to_string),
            ));
        }
        if name == "panic" {
            panic!("test handler asked to panic");
        }
        if name == "slow" {
            std::thread::sleep(SLOW_REVIEW);
        }
        if name.starts_with("bad-") {
            let resp = AdmissionResponse::from(req).deny(format!("{name}: MtlsNotRequired"));
            return Reviewed::new(resp, Decision::Denied);
        }
        if name.starts_with("warn-") {
            let mut resp = AdmissionResponse::from(req);
            resp.warnings = Some(vec!["MtlsNotRequired".into()]);
            return Reviewed::new(resp, Decision::Warned);
        }
        Reviewed::allow(req)
    }

    fn mutate(&self, req: &AdmissionRequest<DynamicObject>) -> Reviewed {
        if req.kind.kind != "Ingress" || req.object.is_none() {
            return Reviewed::allow(req);
        }
        if object_name(req) == "slow" {
            std::thread::sleep(SLOW_REVIEW);
        }
        let patch: json_patch::Patch = serde_json::from_value(serde_json::json!([
            {"op": "add", "path": "/metadata/labels/mtls-gate.io~1rendered", "value": "true"}
        ]))
        .expect("static patch");
        match AdmissionResponse::from(req).with_patch(patch) {
            Ok(resp) => Reviewed::new(resp, Decision::Patched),
            Err(_) => Reviewed::allow(req),
        }
    }

    fn view_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    fn cached_ingresses(&self) -> usize {
        self.ingresses.load(Ordering::SeqCst)
    }
}

// ---------------------------------------------------------------------------------------
// PKI

struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    roots: RootCertStore,
}

fn pki() -> Pki {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "mtls-gate test CA");
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    Pki { ca, roots }
}

/// A leaf for `localhost` with `key`, signed by the CA; returns (PEM, DER).
fn issue(pki: &Pki, key: &KeyPair, serial: u64) -> (String, CertificateDer<'static>) {
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.serial_number = Some(serial.into());
    let cert = params.signed_by(key, &pki.ca).unwrap();
    (cert.pem(), cert.der().clone())
}

/// Installs a pair the way kubelet updates a Secret volume: a new timestamped directory,
/// then an atomic rename of the `..data` symlink; `tls.crt`/`tls.key` point through it.
fn install_pair(dir: &Path, cert_pem: &str, key_pem: &str) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let ts = format!("..2026_01_01_{}", N.fetch_add(1, Ordering::SeqCst));
    std::fs::create_dir(dir.join(&ts)).unwrap();
    std::fs::write(dir.join(&ts).join("tls.crt"), cert_pem).unwrap();
    std::fs::write(dir.join(&ts).join("tls.key"), key_pem).unwrap();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&ts, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for f in ["tls.crt", "tls.key"] {
        let link = dir.join(f);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{f}"), &link).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Server harness

struct Server {
    addr: SocketAddr,
    probe: SocketAddr,
    dir: tempfile::TempDir,
    handler: Arc<TestHandler>,
    metrics: Arc<WebhookMetrics>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

fn test_config(dir: &Path) -> WebhookConfig {
    let mut config = WebhookConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        dir.join("tls.crt"),
        dir.join("tls.key"),
    );
    config.reload_interval = Duration::from_millis(50);
    config.limits.header_read_timeout = Duration::from_millis(400);
    config.limits.body_read_timeout = Duration::from_millis(400);
    config.limits.tls_handshake_timeout = Duration::from_secs(2);
    config.limits.drain_timeout = Duration::from_secs(5);
    config
}

async fn start(
    pair: Option<(&str, &str)>,
    ready: bool,
    tweak: impl FnOnce(&mut WebhookConfig),
) -> Server {
    let dir = tempfile::tempdir().unwrap();
    if let Some((cert, key)) = pair {
        install_pair(dir.path(), cert, key);
    }
    let mut config = test_config(dir.path());
    tweak(&mut config);
    let handler = Arc::new(TestHandler::default());
    handler.ready.store(ready, Ordering::SeqCst);
    let mut registry = Registry::default();
    let metrics = Arc::new(WebhookMetrics::register(&mut registry));
    let bound = bind(config).await.unwrap();
    let (addr, probe) = (bound.local_addr(), bound.probe_addr());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(bound.serve(
        handler.clone(),
        metrics.clone(),
        Arc::new(registry),
        async move {
            let _ = rx.await;
        },
    ));
    Server {
        addr,
        probe,
        dir,
        handler,
        metrics,
        shutdown: Some(tx),
        task: Some(task),
    }
}

impl Server {
    fn reloads(&self, success: bool) -> u64 {
        let result = if success { "success" } else { "failure" };
        self.metrics
            .certificate_reloads
            .get_or_create(&ReloadLabels { result })
            .get()
    }

    fn errors(&self, reason: ErrorReason) -> u64 {
        self.metrics
            .http_errors
            .get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            })
            .get()
    }

    async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("server stops")
                .unwrap()
                .unwrap();
        }
    }
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Clients

const H2: &[u8] = b"h2";
const H1: &[u8] = b"http/1.1";
static TLS12: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];
static TLS13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
static TLS_ANY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

fn client_config(
    roots: &RootCertStore,
    versions: &[&'static SupportedProtocolVersion],
    alpn: &[u8],
) -> Arc<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(tls::crypto_provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    // Every connection does a full handshake, so it reports the certificate served now
    // (a resumed session reports the certificate of the session it resumes).
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

async fn tls_connect(addr: SocketAddr, config: Arc<ClientConfig>) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Body>),
    H2(hyper::client::conn::http2::SendRequest<Body>),
}

struct Conn {
    sender: Sender,
    peer: CertificateDer<'static>,
    version: Option<ProtocolVersion>,
    driver: JoinHandle<()>,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The answer as kube's type. The wire format carries `patch` as base64 (what the API
    /// server reads), while kube's type holds the decoded bytes.
    fn review(&self) -> AdmissionReview<DynamicObject> {
        use base64::Engine as _;
        let mut value: serde_json::Value = serde_json::from_slice(&self.body).unwrap();
        if let Some(patch) = value["response"]["patch"].as_str() {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(patch)
                .expect("patch is base64");
            value["response"]["patch"] = serde_json::json!(bytes);
        }
        serde_json::from_value(value).unwrap()
    }
}

impl Conn {
    async fn open(addr: SocketAddr, config: Arc<ClientConfig>) -> Conn {
        let stream = tls_connect(addr, config).await;
        let (_, session) = stream.get_ref();
        let peer = session.peer_certificates().unwrap()[0].clone().into_owned();
        let version = session.protocol_version();
        let h2 = session.alpn_protocol() == Some(H2);
        let io = TokioIo::new(stream);
        if h2 {
            let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
            let driver = tokio::spawn(async move {
                let _ = conn.await;
            });
            Conn {
                sender: Sender::H2(sender),
                peer,
                version,
                driver,
            }
        } else {
            let (sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            let driver = tokio::spawn(async move {
                let _ = conn.await;
            });
            Conn {
                sender: Sender::H1(sender),
                peer,
                version,
                driver,
            }
        }
    }

    async fn send(&mut self, req: Request<Body>) -> Result<Answer, hyper::Error> {
        let resp = match &mut self.sender {
            Sender::H1(s) => {
                s.ready().await?;
                s.send_request(req).await?
            }
            Sender::H2(s) => {
                s.ready().await?;
                s.send_request(req).await?
            }
        };
        let (parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    fn request(&self, method: Method, path: &str, body: Body) -> Request<Body> {
        let builder = match self.sender {
            Sender::H1(_) => Request::builder().uri(path).header("host", "localhost"),
            Sender::H2(_) => Request::builder().uri(format!("https://localhost{path}")),
        };
        builder.method(method).body(body).unwrap()
    }

    async fn post(&mut self, path: &str, body: impl Into<Bytes>) -> Answer {
        let req = self.request(Method::POST, path, full(body));
        self.send(req).await.unwrap()
    }

    async fn verify(&mut self, query: &str, headers: &[(&str, &str)]) -> Answer {
        let mut req = self.request(Method::GET, &format!("/verify{query}"), full(""));
        for (k, v) in headers {
            req.headers_mut().append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        self.send(req).await.unwrap()
    }
}

fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into()).boxed()
}

/// A request body fed chunk by chunk through a channel.
fn streamed() -> (futures::channel::mpsc::UnboundedSender<Bytes>, Body) {
    use futures::StreamExt;
    let (tx, rx) = futures::channel::mpsc::unbounded::<Bytes>();
    let body = StreamBody::new(rx.map(|b| Ok::<_, Infallible>(Frame::data(b))));
    (tx, BodyExt::boxed(body))
}

async fn probe_get(addr: SocketAddr, path: &str) -> Answer {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = Request::builder()
        .uri(path)
        .header("host", "localhost")
        .body(full(""))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

/// Writes raw bytes on a fresh TLS (HTTP/1.1) connection and reads until the server
/// closes it or `limit` passes; returns what was read.
async fn raw_exchange(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    request: &[u8],
    limit: Duration,
) -> (String, Duration) {
    let mut stream = tls_connect(addr, config).await;
    stream.write_all(request).await.unwrap();
    stream.flush().await.unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((started + limit).into(), stream.read(&mut buf)).await {
            Err(_) => panic!("server did not close the connection within {limit:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    (
        String::from_utf8_lossy(&out).into_owned(),
        started.elapsed(),
    )
}

/// Sends an oversize body of `len` bytes on a fresh HTTP/1.1 connection (Content-Length
/// or chunked), writing it while reading, as a streaming client does; then a good review
/// on the same connection. Returns both raw answers.
async fn stream_oversize_then_review(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    len: usize,
    chunked: bool,
) -> (String, String) {
    let stream = tls_connect(addr, config).await;
    let (mut rd, mut wr) = tokio::io::split(stream);
    let framing = if chunked {
        "transfer-encoding: chunked".to_string()
    } else {
        format!("content-length: {len}")
    };
    let writer = tokio::spawn(async move {
        let head = format!("POST /validate HTTP/1.1\r\nhost: localhost\r\n{framing}\r\n\r\n");
        wr.write_all(head.as_bytes()).await?;
        let chunk = vec![b' '; 64 * 1024];
        let mut sent = 0;
        while sent < len {
            let n = chunk.len().min(len - sent);
            if chunked {
                wr.write_all(format!("{n:x}\r\n").as_bytes()).await?;
                wr.write_all(&chunk[..n]).await?;
                wr.write_all(b"\r\n").await?;
            } else {
                wr.write_all(&chunk[..n]).await?;
            }
            sent += n;
        }
        if chunked {
            wr.write_all(b"0\r\n\r\n").await?;
        }
        wr.flush().await?;
        Ok::<_, std::io::Error>(wr)
    });
    let first = read_response(&mut rd).await;
    let mut wr = tokio::time::timeout(Duration::from_secs(10), writer)
        .await
        .expect("body written")
        .unwrap()
        .expect("the server read the whole body");
    let review = ingress_review("u-after-413", "good", "CREATE");
    let request = format!(
        "POST /validate HTTP/1.1\r\nhost: localhost\r\ncontent-length: {}\r\n\r\n{review}",
        review.len()
    );
    wr.write_all(request.as_bytes()).await.unwrap();
    wr.flush().await.unwrap();
    let second = read_response(&mut rd).await;
    (first, second)
}

/// Reads one HTTP/1.1 response with a Content-Length body (raw text).
async fn read_response(rd: &mut (impl tokio::io::AsyncRead + Unpin)) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = String::from_utf8_lossy(&out).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())
                        .flatten()
                })
                .unwrap_or(0);
            if out.len() >= end + 4 + length {
                return text;
            }
        }
        let n = tokio::time::timeout_at(deadline.into(), rd.read(&mut buf))
            .await
            .expect("response within 10 s")
            .unwrap_or(0);
        if n == 0 {
            return String::from_utf8_lossy(&out).into_owned();
        }
        out.extend_from_slice(&buf[..n]);
    }
}

// ---------------------------------------------------------------------------------------
// AdmissionReview bodies

fn ingress_review(uid: &str, name: &str, operation: &str) -> String {
    let object = serde_json::json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": "bank", "labels": {"mtls-gate.io/profile": "bank"}},
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": ["mtls.api.bank.example"], "secretName": "api-tls"}],
            "rules": [{"host": "mtls.api.bank.example", "http": {"paths": [
                {"path": "/open-banking-nz/v3.0/accounts", "pathType": "Prefix",
                 "backend": {"service": {"name": "accounts", "port": {"number": 8080}}}}
            ]}}]
        }
    });
    let (obj, old) = if operation == "DELETE" {
        (serde_json::Value::Null, object)
    } else {
        (object, serde_json::Value::Null)
    };
    serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "networking.k8s.io", "version": "v1", "kind": "Ingress"},
            "resource": {"group": "networking.k8s.io", "version": "v1", "resource": "ingresses"},
            "name": name,
            "namespace": "bank",
            "operation": operation,
            "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
            "object": obj,
            "oldObject": old,
            "dryRun": false
        }
    })
    .to_string()
}

fn pod_review(uid: &str) -> String {
    serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "p", "namespace": "bank", "operation": "CREATE",
            "userInfo": {"username": "alice"},
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}
        }
    })
    .to_string()
}

/// A leaf for `localhost` with the EC test key, valid from `not_before` to `not_after`
/// (seconds relative to now).
fn ec_pair_valid(
    pki: &Pki,
    serial: u64,
    not_before: i64,
    not_after: i64,
) -> (String, CertificateDer<'static>) {
    let now = time::OffsetDateTime::now_utc();
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.serial_number = Some(serial.into());
    params.not_before = now + time::Duration::seconds(not_before);
    params.not_after = now + time::Duration::seconds(not_after);
    let cert = params
        .signed_by(&KeyPair::from_pem(EC_PKCS8).unwrap(), &pki.ca)
        .unwrap();
    (cert.pem(), cert.der().clone())
}

fn ec_pair(pki: &Pki, serial: u64) -> (String, CertificateDer<'static>) {
    issue(pki, &KeyPair::from_pem(EC_PKCS8).unwrap(), serial)
}

// ---------------------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_versions_key_types_and_alpn() {
    let pki = pki();
    let rsa = KeyPair::from_pem(RSA_PKCS8).unwrap();
    let ec = KeyPair::from_pem(EC_PKCS8).unwrap();
    for (label, key, key_file) in [("rsa/pkcs1", &rsa, RSA_PKCS1), ("ecdsa/sec1", &ec, EC_SEC1)] {
        let (cert, der) = issue(&pki, key, 7);
        let server = start(Some((&cert, key_file)), true, |_| {}).await;
        for (versions, expected) in [
            (TLS12, ProtocolVersion::TLSv1_2),
            (TLS13, ProtocolVersion::TLSv1_3),
        ] {
            for alpn in [H1, H2] {
                let mut conn =
                    Conn::open(server.addr, client_config(&pki.roots, versions, alpn)).await;
                assert_eq!(conn.version, Some(expected), "{label}");
                assert_eq!(conn.peer, der, "{label}");
                assert_eq!(matches!(conn.sender, Sender::H2(_)), alpn == H2);
                let uid = format!("{label}-{expected:?}-{}", alpn.len());
                let answer = conn
                    .post("/validate", ingress_review(&uid, "good", "CREATE"))
                    .await;
                assert_eq!(answer.status, StatusCode::OK, "{label}: {}", answer.text());
                let response = answer.review().response.unwrap();
                assert_eq!(response.uid, uid);
                assert!(response.allowed);
            }
        }
        server.stop().await;
    }
}

#[test]
fn every_key_encoding_loads_and_mismatches_are_rejected() {
    let pki = pki();
    let rsa = KeyPair::from_pem(RSA_PKCS8).unwrap();
    let ec = KeyPair::from_pem(EC_PKCS8).unwrap();
    let (rsa_cert, _) = issue(&pki, &rsa, 1);
    let (ec_cert, _) = issue(&pki, &ec, 2);
    for key in [RSA_PKCS8, RSA_PKCS1] {
        tls::load_certified_key(rsa_cert.as_bytes(), key.as_bytes()).unwrap();
    }
    for key in [EC_PKCS8, EC_SEC1] {
        tls::load_certified_key(ec_cert.as_bytes(), key.as_bytes()).unwrap();
    }
    // Chains load too (leaf first).
    let chain = format!("{ec_cert}{}", pki.ca.pem());
    tls::load_certified_key(chain.as_bytes(), EC_SEC1.as_bytes()).unwrap();
    let err = tls::load_certified_key(ec_cert.as_bytes(), RSA_PKCS1.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
    assert!(tls::load_certified_key(b"junk", EC_SEC1.as_bytes()).is_err());
    assert!(tls::load_certified_key(ec_cert.as_bytes(), b"junk").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_and_mutate_happy_paths() {
    let pki = pki();
    let (cert, _) = ec_pair(&pki, 1);
    let server = start(Some((&cert, EC_SEC1)), true, |_| {}).await;
    for alpn in [H1, H2] {
        let mut conn = Conn::open(server.addr, client_config(&pki.roots, TLS_ANY, alpn)).await;

        let answer = conn
            .post("/validate", ingress_review("u-ok", "good", "CREATE"))
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(
            answer.headers.get("content-type").unwrap(),
            "application/json"
        );
        let review = answer.review();
        assert_eq!(review.types.api_version, "admission.k8s.io/v1");
        assert_eq!(review.types.kind, "AdmissionReview");
        let response = review.response.unwrap();
        assert_eq!(response.uid, "u-ok");
        assert!(response.allowed);

        let answer = conn
            .post("/validate", ingress_review("u-bad", "bad-1", "UPDATE"))
            .await;
        let response = answer.review().response.unwrap();
        assert_eq!(response.uid, "u-bad");
        assert!(!response.allowed);
        assert_eq!(response.result.message, "bad-1: MtlsNotRequired");

        let answer = conn
            .post("/validate", ingress_review("u-del", "bad-2", "DELETE"))
            .await;
        assert!(!answer.review().response.unwrap().allowed);

        let answer = conn
            .post("/validate", ingress_review("u-warn", "warn-1", "CREATE"))
            .await;
        let response = answer.review().response.unwrap();
        assert!(response.allowed);
        assert_eq!(response.warnings, Some(vec!["MtlsNotRequired".to_string()]));

        // Unknown kinds are allowed, uid echoed.
        let answer = conn.post("/validate", pod_review("u-pod")).await;
        let response = answer.review().response.unwrap();
        assert_eq!(response.uid, "u-pod");
        assert!(response.allowed);

        let answer = conn
            .post("/mutate", ingress_review("u-mut", "good", "CREATE"))
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(json["response"]["uid"], "u-mut");
        assert_eq!(json["response"]["patchType"], "JSONPatch");
        let response = answer.review().response.unwrap();
        let patch: serde_json::Value = serde_json::from_slice(&response.patch.unwrap()).unwrap();
        assert_eq!(patch[0]["path"], "/metadata/labels/mtls-gate.io~1rendered");

        let answer = conn.post("/mutate", pod_review("u-mut-pod")).await;
        let response = answer.review().response.unwrap();
        assert_eq!(response.uid, "u-mut-pod");
        assert!(response.patch.is_none());
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_clear_http_errors() {
    let pki = pki();
    let (cert, _) = ec_pair(&pki, 1);
    let server = start(Some((&cert, EC_SEC1)), true, |_| {}).await;
    let h1 = client_config(&pki.roots, TLS_ANY, H1);
    for alpn in [H1, H2] {
        let mut conn = Conn::open(server.addr, client_config(&pki.roots, TLS_ANY, alpn)).await;

        let answer = conn.post("/validate", "{\"apiVersion\": ").await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert!(answer.text().contains("line 1 column"), "{}", answer.text());

        let answer = conn.post("/validate", "").await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);

        let v1beta1 = ingress_review("u", "good", "CREATE")
            .replace("admission.k8s.io/v1\"", "admission.k8s.io/v1beta1\"");
        let answer = conn.post("/validate", v1beta1).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert!(answer.text().contains("apiVersion"), "{}", answer.text());

        let wrong_kind = ingress_review("u", "good", "CREATE")
            .replace("\"AdmissionReview\"", "\"AdmissionResponse\"");
        let answer = conn.post("/mutate", wrong_kind).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert!(answer.text().contains("kind"), "{}", answer.text());

        let no_request = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#;
        let answer = conn.post("/validate", no_request).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert!(answer.text().contains("no request"), "{}", answer.text());

        let answer = conn.post("/validate", "[1,2,3]").await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);

        let answer = conn.post("/nope", "{}").await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND);

        let req = conn.request(Method::GET, "/validate", full(""));
        let answer = conn.send(req).await.unwrap();
        assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(answer.headers.get("allow").unwrap(), "POST");
        let req = conn.request(Method::PUT, "/mutate", full("{}"));
        assert_eq!(
            conn.send(req).await.unwrap().status,
            StatusCode::METHOD_NOT_ALLOWED
        );

        // The connection is still usable after all of that.
        let answer = conn
            .post("/validate", ingress_review("u-after", "good", "CREATE"))
            .await;
        assert_eq!(answer.status, StatusCode::OK);
    }

    // 413 by Content-Length: a body announced over the limit that never arrives gets
    // its 413 when the body deadline passes, and the connection closes.
    let (out, _) = raw_exchange(
        server.addr,
        h1.clone(),
        b"POST /validate HTTP/1.1\r\nhost: localhost\r\ncontent-length: 4194305\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    assert!(
        out.to_ascii_lowercase().contains("connection: close"),
        "{out}"
    );

    // With `Expect: 100-continue` the client waits: 413 at once, no body asked for.
    let (out, took) = raw_exchange(
        server.addr,
        h1.clone(),
        b"POST /validate HTTP/1.1\r\nhost: localhost\r\nexpect: 100-continue\r\ncontent-length: 5242880\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    assert!(took < Duration::from_secs(2), "{took:?}");

    // The bodies of 4 MiB and more go to a server with a generous body deadline: streaming
    // them through TLS can take longer than this server's 400 ms on a loaded machine, and
    // then the answer is a (correct) 408 instead of the status under test. The oversize
    // bodies end, so the 413 comes when the server has read and discarded them, not when a
    // deadline passes (the 413-at-the-deadline case is the Content-Length one above).
    let sized = start(Some((&cert, EC_SEC1)), true, |c| {
        c.limits.body_read_timeout = Duration::from_secs(30);
        c.limits.min_body_rate = 0;
    })
    .await;
    // Exactly at the limit is accepted (and is then not JSON: 400).
    let mut conn = Conn::open(sized.addr, h1.clone()).await;
    let answer = conn.post("/validate", vec![b' '; 4 * 1024 * 1024]).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);

    // 413 while reading a chunked body with no Content-Length.
    let mut conn = Conn::open(sized.addr, h1.clone()).await;
    let (tx, body) = streamed();
    let req = conn.request(Method::POST, "/validate", body);
    let pending = tokio::spawn(async move { conn.send(req).await });
    for _ in 0..65 {
        tx.unbounded_send(Bytes::from(vec![b' '; 64 * 1024]))
            .unwrap();
    }
    // The body ends: the server reads it to its end, discarding, and answers.
    drop(tx);
    let answer = tokio::time::timeout(Duration::from_secs(20), pending)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);

    // The same over HTTP/2 (no Content-Length, DATA frames).
    let mut conn = Conn::open(sized.addr, client_config(&pki.roots, TLS_ANY, H2)).await;
    let (tx, body) = streamed();
    let req = conn.request(Method::POST, "/mutate", body);
    let pending = tokio::spawn(async move { conn.send(req).await });
    for _ in 0..65 {
        tx.unbounded_send(Bytes::from(vec![b' '; 64 * 1024]))
            .unwrap();
    }
    // The body ends: the server reads it to its end, discarding, and answers.
    drop(tx);
    let answer = tokio::time::timeout(Duration::from_secs(20), pending)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);

    assert!(sized.errors(ErrorReason::PayloadTooLarge) >= 2);
    assert!(sized.errors(ErrorReason::BadRequest) >= 1);
    sized.stop().await;

    // Slow header: the connection is closed at its first-request deadline, between half
    // and all of header_read_timeout (400 ms).
    let (out, took) = raw_exchange(
        server.addr,
        h1.clone(),
        b"POST /validate HTTP/1.1\r\nhost: local",
        Duration::from_secs(3),
    )
    .await;
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(!out.contains("200 OK"), "{out}");

    // Slow body: 408 after body_read_timeout (400 ms).
    let (out, took) = raw_exchange(
        server.addr,
        h1.clone(),
        b"POST /validate HTTP/1.1\r\nhost: localhost\r\ncontent-length: 100\r\n\r\n{\"apiV",
        Duration::from_secs(3),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
    assert!(took >= Duration::from_millis(300), "{took:?}");

    // Garbage instead of HTTP.
    let (out, _) = raw_exchange(
        server.addr,
        h1.clone(),
        b"\x00\x01\x02 not http\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(!out.contains("200"), "{out}");

    // Not TLS at all: the handshake fails, the server carries on.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /verify HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), tcp.read_to_end(&mut sink)).await;

    wait_until("error metrics", || {
        server.errors(ErrorReason::HeaderTimeout) >= 1
            && server.errors(ErrorReason::TlsHandshake) >= 1
    })
    .await;
    assert!(server.errors(ErrorReason::PayloadTooLarge) >= 2);
    assert!(server.errors(ErrorReason::BodyTimeout) >= 1);
    assert!(server.errors(ErrorReason::BadRequest) >= 12);
    assert!(server.errors(ErrorReason::NotFound) >= 2);
    assert!(server.errors(ErrorReason::MethodNotAllowed) >= 4);

    let mut conn = Conn::open(server.addr, h1).await;
    let answer = conn
        .post("/validate", ingress_review("u-end", "good", "CREATE"))
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_streamed_bodies_get_a_readable_413() {
    let pki = pki();
    let (cert, _) = ec_pair(&pki, 1);
    // Generous body deadline: the 413 must not depend on the machine's speed.
    let server = start(Some((&cert, EC_SEC1)), true, |c| {
        c.limits.body_read_timeout = Duration::from_secs(30);
        c.limits.min_body_rate = 0;
    })
    .await;
    let h1 = client_config(&pki.roots, TLS_ANY, H1);
    // A client that streams 5 MiB with a Content-Length and without `Expect` (Go's and
    // Python's clients) reads the 413: the server reads the body to its end and throws it
    // away before answering, and the connection stays usable.
    for chunked in [false, true] {
        let answer = stream_oversize_then_review(server.addr, h1.clone(), 5 << 20, chunked).await;
        assert!(
            answer.0.starts_with("HTTP/1.1 413"),
            "chunked={chunked}: {}",
            answer.0
        );
        assert!(
            answer.0.contains("larger than 4194304 bytes"),
            "{}",
            answer.0
        );
        assert!(
            answer.1.starts_with("HTTP/1.1 200"),
            "chunked={chunked}: {}",
            answer.1
        );
    }

    // HTTP/2 without a Content-Length: the same, and the connection carries on.
    let mut conn = Conn::open(server.addr, client_config(&pki.roots, TLS_ANY, H2)).await;
    let (tx, body) = streamed();
    let req = conn.request(Method::POST, "/validate", body);
    let pending = tokio::spawn(async move {
        let answer = conn.send(req).await;
        (answer, conn)
    });
    for _ in 0..80 {
        tx.unbounded_send(Bytes::from(vec![b' '; 64 * 1024]))
            .unwrap();
    }
    drop(tx);
    let (answer, mut conn) = tokio::time::timeout(Duration::from_secs(20), pending)
        .await
        .expect("413 within 20 s")
        .unwrap();
    let answer = answer.unwrap();
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    let answer = conn
        .post("/validate", ingress_review("u-h2-after", "good", "CREATE"))
        .await;
    assert_eq!(answer.status, StatusCode::OK);

    assert_eq!(server.errors(ErrorReason::PayloadTooLarge), 3);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_panic_is_a_500_and_the_server_lives_on() {
    let pki = pki();
    let (cert, _) = ec_pair(&pki, 1);
    let server = start(Some((&cert, EC_SEC1)), true, |_| {}).await;
    let mut conn = Conn::open(server.addr, client_config(&pki.roots, TLS_ANY, H2)).await;
    let answer = conn
        .post("/validate", ingress_review("u-p", "panic", "CREATE"))
        .await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(server.errors(ErrorReason::HandlerPanic), 1);
    let answer = conn
        .post("/validate", ingress_review("u-q", "good", "CREATE"))
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_do_not_hold_review_workers() {
    let pki = pki();
    let (cert, _) = ec_pair(&pki, 1);
    let server = start(Some((&cert, EC_SEC1)), true, |c| {
        c.limits.review_workers = 1;
        c.limits.max_in_flight = 1;
        c.limits.body_read_timeout = Duration::from_secs(8);
        c.limits.body_rate_grace = Duration::from_secs(8);
    })
    .await;
    let config = client_config(&pki.roots, TLS_ANY, H2);
    // Three requests whose bodies are still arriving, on their own connections.
    let review = ingress_review("u-slow", "good", "CREATE");
    let (head, tail) = review.split_at(100);
    let mut slow = Vec::new();
    for _ in 0..3 {
        let mut conn = Conn::open(server.addr, config.clone()).await;
        let (tx, body) = streamed();
        let req = conn.request(Method::POST, "/validate", body);
        tx.unbounded_send(Bytes::from(head.to_string())).unwrap();
        slow.push((tx, tokio::spawn(async move { conn.send(req).await })));
    }
    wait_until("bodies arriving", || {
        server.metrics.admission_in_flight.get() == 3
    })
    .await;
    // The only review worker and the only waiting place are free: complete reviews pass.
    let mut conn = Conn::open(server.addr, config).await;
    for i in 0..3 {
        let uid = format!("u-good-{i}");
        let answer = conn
            .post("/validate", ingress_review(&uid, "good", "CREATE"))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        assert_eq!(answer.review().response.unwrap().uid, uid);
    }
    // Gate requests read no body and need no worker.
    let answer = conn.verify("", &[("ssl-client-verify", "SUCCESS")]).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    // The slow ones complete and are reviewed too.
    for (tx, pending) in slow {
        tx.unbounded_send(Bytes::from(tail.to_string())).unwrap();
        drop(tx);
        let answer = pending.await.unwrap().unwrap();
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        assert_eq!(answer.review().response.unwrap().uid, "u-slow");
    }
    assert_eq!(server.errors(ErrorReason::Overloaded), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_bodies_are_cut_off_by_the_minimum_rate() {
    let pki = pki();
    let (cert, _) = ec_pair(&pki, 1);
    let server = start(Some((&cert, EC_SEC1)), true, |c| {
        c.limits.body_read_timeout = Duration::from_secs(30);
        c.limits.body_rate_grace = Duration::from_millis(300);
        c.limits.min_body_rate = 1000;
    })
    .await;
    for alpn in [H1, H2] {
        let mut conn = Conn::open(server.addr, client_config(&pki.roots, TLS_ANY, alpn)).await;
        let (tx, body) = streamed();
        let req = conn.request(Method::POST, "/validate", body);
        let pending = tokio::spawn(async move { conn.send(req).await });
        // Ten bytes, then nothing: far below 1,000 bytes/s once the grace period is over.
        tx.unbounded_send(Bytes::from_static(b"{\"apiVersi"))
            .unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(10), pending)
            .await
            .expect("cut off long before the 30 s body timeout")
            .unwrap()
            .unwrap();
        assert_eq!(answer.status, StatusCode::REQUEST_TIMEOUT);
        assert!(
            answer.text().contains("slower than 1000 bytes/s"),
            "{}",
            answer.text()
        );
        drop(tx);
    }
    assert_eq!(server.errors(ErrorReason::BodyTooSlow), 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviews_past_the_deadline_are_denied_with_their_uid() {
    let pki = pki();
    let (cert, _) = ec_pair(&pki, 1);
    let server = start(Some((&cert, EC_SEC1)), true, |c| {
        c.limits.review_deadline = Duration::from_millis(300);
        c.limits.review_workers = 2;
    })
    .await;
    let config = client_config(&pki.roots, TLS_ANY, H2);
    for (path, uid) in [("/validate", "u-slow-v"), ("/mutate", "u-slow-m")] {
        let mut conn = Conn::open(server.addr, config.clone()).await;
        let answer = conn.post(path, ingress_review(uid, "slow", "CREATE")).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        let response = answer.review().response.unwrap();
        assert_eq!(response.uid, uid);
        assert!(!response.allowed, "{path}: fail closed");
        assert!(response.patch.is_none(), "{path}: no patch");
        assert!(
            response.result.message.contains("300ms review deadline"),
            "{}",
            response.result.message
        );
    }
    // The two slow reviews still hold both workers: the next review cannot start before
    // the deadline and is refused (503 without a uid: it was never decoded).
    let mut conn = Conn::open(server.addr, config.clone()).await;
    let answer = conn
        .post("/validate", ingress_review("u-next", "good", "CREATE"))
        .await;
    if answer.status == StatusCode::SERVICE_UNAVAILABLE {
        assert!(
            answer.text().contains("review deadline"),
            "{}",
            answer.text()
        );
    } else {
        // On a machine slow enough for the slow review to have ended already.
        assert_eq!(answer.status, StatusCode::OK);
    }
    // Once the slow reviews end their workers are free again. They end SLOW_REVIEW after
    // they started; a loaded machine may take longer, so the test waits for the first
    // answer (each refused attempt is a 503 after the review deadline) up to a bound far
    // above SLOW_REVIEW, instead of sleeping a fixed time.
    tokio::time::sleep(SLOW_REVIEW).await;
    let freed_by = std::time::Instant::now() + SLOW_REVIEW * 10;
    let answer = loop {
        let answer = conn
            .post("/validate", ingress_review("u-after", "good", "CREATE"))
            .await;
        if answer.status != StatusCode::SERVICE_UNAVAILABLE || std::time::Instant::now() > freed_by
        {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert!(answer.review().response.unwrap().allowed);
    assert!(server.errors(ErrorReason::ReviewDeadline) >= 2);
    let metrics = probe_get(server.probe, "/metrics").await.text();
    assert!(
        metrics.contains("mtls_gate_admission_requests_total{webhook=\"mutate\",operation=\"CREATE\",kind=\"Ingress\",decision=\"denied\"} 1"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_answers() {
    let pki = pki();
    let (cert, _) = ec_pair(&pki, 1);
    let server = start(Some((&cert, EC_SEC1)), true, |_| {}).await;
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], StatusCode);
    let cases: &[Case] = &[
        (
            "",
            &[("ssl-client-verify", "SUCCESS")],
            StatusCode::NO_CONTENT,
        ),
        (
            "?controller=ingress-nginx",
            &[("ssl-client-verify", "SUCCESS")],
            StatusCode::NO_CONTENT,
        ),
        (
            "",
            &[("ssl-client-verify", "FAILED:unable to verify")],
            StatusCode::FORBIDDEN,
        ),
        ("", &[("ssl-client-verify", "NONE")], StatusCode::FORBIDDEN),
        (
            "",
            &[("ssl-client-verify", "success")],
            StatusCode::FORBIDDEN,
        ),
        ("", &[], StatusCode::FORBIDDEN),
        (
            "",
            &[
                ("ssl-client-verify", "SUCCESS"),
                ("ssl-client-verify", "SUCCESS"),
            ],
            StatusCode::FORBIDDEN,
        ),
        (
            "",
            &[
                ("ssl-client-verify", "NONE"),
                ("ssl-client-verify", "SUCCESS"),
            ],
            StatusCode::FORBIDDEN,
        ),
        (
            "?controller=traefik",
            &[("x-forwarded-tls-client-cert", "MIIBszCCAVmgAwIBAgIU")],
            StatusCode::NO_CONTENT,
        ),
        (
            "?controller=traefik",
            &[("x-forwarded-tls-client-cert", "")],
            StatusCode::FORBIDDEN,
        ),
        (
            "?controller=traefik",
            &[("ssl-client-verify", "SUCCESS")],
            StatusCode::FORBIDDEN,
        ),
        (
            "?controller=traefik",
            &[
                ("x-forwarded-tls-client-cert", "a"),
                ("x-forwarded-tls-client-cert", "b"),
            ],
            StatusCode::FORBIDDEN,
        ),
        (
            "?controller=haproxy-ingress",
            &[("x-ssl-client-sha1", "3F2A9C")],
            StatusCode::NO_CONTENT,
        ),
        ("?controller=haproxy-ingress", &[], StatusCode::FORBIDDEN),
        (
            "?controller=haproxy-ingress",
            &[("x-ssl-client-sha1", "")],
            StatusCode::FORBIDDEN,
        ),
        (
            "?controller=nginx",
            &[("ssl-client-verify", "SUCCESS")],
            StatusCode::FORBIDDEN,
        ),
        (
            "?controller=",
            &[("ssl-client-verify", "SUCCESS")],
            StatusCode::FORBIDDEN,
        ),
        (
            "?controller=traefik&controller=ingress-nginx",
            &[("ssl-client-verify", "SUCCESS")],
            StatusCode::FORBIDDEN,
        ),
    ];
    for alpn in [H1, H2] {
        let mut conn = Conn::open(server.addr, client_config(&pki.roots, TLS_ANY, alpn)).await;
        for (query, headers, expected) in cases {
            let answer = conn.verify(query, headers).await;
            assert_eq!(answer.status, *expected, "{query} {headers:?}");
            if *expected == StatusCode::FORBIDDEN {
                assert!(!answer.body.is_empty());
                assert_eq!(
                    answer.headers.get("content-type").unwrap(),
                    "text/plain; charset=utf-8"
                );
            } else {
                assert!(answer.body.is_empty());
            }
        }
        // Any method: ingress controllers reuse the original request's method.
        for method in [Method::POST, Method::DELETE, Method::HEAD, Method::PATCH] {
            let mut req = conn.request(method.clone(), "/verify", full(""));
            req.headers_mut()
                .insert("ssl-client-verify", HeaderValue::from_static("SUCCESS"));
            assert_eq!(
                conn.send(req).await.unwrap().status,
                StatusCode::NO_CONTENT,
                "{method}"
            );
        }
    }
    let metrics = probe_get(server.probe, "/metrics").await.text();
    assert!(
        metrics.contains(
            "mtls_gate_gate_decisions_total{controller=\"ingress-nginx\",decision=\"allow\"} 12"
        ),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("mtls_gate_gate_decisions_total{controller=\"unknown\",decision=\"deny\"} 6"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_certificate_and_view() {
    let pki = pki();
    let server = start(None, false, |_| {}).await;
    let health = probe_get(server.probe, "/healthz").await;
    assert_eq!(health.status, StatusCode::OK);
    let ready = probe_get(server.probe, "/readyz").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        ready.text().contains("no serving certificate"),
        "{}",
        ready.text()
    );

    // No certificate: handshakes fail, nothing is served.
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let handshake = TlsConnector::from(client_config(&pki.roots, TLS_ANY, H1))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await;
    assert!(handshake.is_err());

    // The Secret appears: the poller loads it.
    let (cert, der) = ec_pair(&pki, 3);
    install_pair(server.dir.path(), &cert, EC_SEC1);
    let deadline = Instant::now() + Duration::from_secs(5);
    let ready = loop {
        let ready = probe_get(server.probe, "/readyz").await;
        if !ready.text().contains("certificate") || Instant::now() > deadline {
            break ready;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        ready.text().contains("cluster view not loaded"),
        "{}",
        ready.text()
    );
    let conn = Conn::open(server.addr, client_config(&pki.roots, TLS_ANY, H1)).await;
    assert_eq!(conn.peer, der);

    server.handler.ready.store(true, Ordering::SeqCst);
    let ready = probe_get(server.probe, "/readyz").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text());

    server.handler.ready.store(false, Ordering::SeqCst);
    assert_eq!(
        probe_get(server.probe, "/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        probe_get(server.probe, "/nope").await.status,
        StatusCode::NOT_FOUND
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_some_requests() {
    let pki = pki();
    let (cert, _) = ec_pair(&pki, 1);
    let server = start(Some((&cert, EC_SEC1)), true, |_| {}).await;
    server.handler.ingresses.store(42, Ordering::SeqCst);
    let mut conn = Conn::open(server.addr, client_config(&pki.roots, TLS_ANY, H2)).await;
    conn.post("/validate", ingress_review("a", "good", "CREATE"))
        .await;
    conn.post("/validate", ingress_review("b", "good", "CREATE"))
        .await;
    conn.post("/validate", ingress_review("c", "bad-x", "UPDATE"))
        .await;
    conn.post("/mutate", ingress_review("d", "good", "CREATE"))
        .await;
    conn.post("/validate", pod_review("e")).await;
    conn.post("/validate", "nope").await;
    conn.verify("", &[("ssl-client-verify", "NONE")]).await;

    let answer = probe_get(server.probe, "/metrics").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.headers.get("content-type").unwrap(),
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = answer.text();
    for line in [
        "mtls_gate_admission_requests_total{webhook=\"validate\",operation=\"CREATE\",kind=\"Ingress\",decision=\"allowed\"} 2",
        "mtls_gate_admission_requests_total{webhook=\"validate\",operation=\"UPDATE\",kind=\"Ingress\",decision=\"denied\"} 1",
        "mtls_gate_admission_requests_total{webhook=\"mutate\",operation=\"CREATE\",kind=\"Ingress\",decision=\"patched\"} 1",
        "mtls_gate_admission_requests_total{webhook=\"validate\",operation=\"CREATE\",kind=\"other\",decision=\"allowed\"} 1",
        "mtls_gate_admission_duration_seconds_count{webhook=\"validate\"} 4",
        "mtls_gate_admission_duration_seconds_bucket{le=\"0.00005\",webhook=\"mutate\"}",
        "mtls_gate_gate_decisions_total{controller=\"ingress-nginx\",decision=\"deny\"} 1",
        "mtls_gate_certificate_reloads_total{result=\"success\"} 1",
        "mtls_gate_cached_ingresses 42",
        "mtls_gate_http_errors_total{reason=\"bad_request\"} 1",
        "# TYPE mtls_gate_admission_duration_seconds histogram",
        "# EOF",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_rotation_under_load_and_broken_pairs() {
    let pki = pki();
    let (cert_a, der_a) = ec_pair(&pki, 100);
    let server = start(Some((&cert_a, EC_SEC1)), true, |_| {}).await;
    wait_until("first load", || server.reloads(true) == 1).await;

    let stop = Arc::new(AtomicBool::new(false));
    // One counter of successful requests per worker.
    let counters: Vec<Arc<AtomicU64>> = (0..6).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let mut workers = Vec::new();
    // Keep-alive clients: two HTTP/1.1, two HTTP/2, each on one connection throughout.
    for (i, alpn) in [H1, H1, H2, H2].into_iter().enumerate() {
        let config = client_config(&pki.roots, TLS_ANY, alpn);
        let (stop, ok, addr) = (stop.clone(), counters[i].clone(), server.addr);
        workers.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr, config).await;
            let first_peer = conn.peer.clone();
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let uid = format!("ka-{i}-{n}");
                let answer = conn
                    .post("/validate", ingress_review(&uid, "good", "CREATE"))
                    .await;
                assert_eq!(answer.status, StatusCode::OK);
                assert_eq!(answer.review().response.unwrap().uid, uid);
                ok.fetch_add(1, Ordering::SeqCst);
                n += 1;
            }
            assert_eq!(conn.peer, first_peer);
            HashSet::from([first_peer])
        }));
    }
    // New-connection clients: one TLS connection per request, recording the certificate.
    for i in 0..2 {
        let config = client_config(&pki.roots, TLS_ANY, if i == 0 { H1 } else { H2 });
        let (stop, ok, addr) = (stop.clone(), counters[4 + i].clone(), server.addr);
        workers.push(tokio::spawn(async move {
            let mut seen = HashSet::new();
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let mut conn = Conn::open(addr, config.clone()).await;
                seen.insert(conn.peer.clone());
                let uid = format!("nc-{i}-{n}");
                let answer = conn
                    .post("/mutate", ingress_review(&uid, "good", "CREATE"))
                    .await;
                assert_eq!(answer.status, StatusCode::OK);
                assert_eq!(answer.review().response.unwrap().uid, uid);
                ok.fetch_add(1, Ordering::SeqCst);
                n += 1;
            }
            seen
        }));
    }
    // Waits until every worker has completed `more` further requests.
    let wait_requests = |more: u64| {
        let counters = counters.clone();
        let targets: Vec<u64> = counters
            .iter()
            .map(|c| c.load(Ordering::SeqCst) + more)
            .collect();
        async move {
            wait_until("requests", || {
                counters
                    .iter()
                    .zip(&targets)
                    .all(|(c, t)| c.load(Ordering::SeqCst) >= *t)
            })
            .await
        }
    };
    wait_requests(5).await;

    // Rotate to a new key and serial, the kubelet way.
    let new_key = KeyPair::generate().unwrap();
    let (cert_b, der_b) = issue(&pki, &new_key, 101);
    install_pair(server.dir.path(), &cert_b, &new_key.serialize_pem());
    wait_until("reload", || server.reloads(true) == 2).await;
    let conn = Conn::open(server.addr, client_config(&pki.roots, TLS_ANY, H1)).await;
    assert_eq!(conn.peer, der_b);
    wait_requests(5).await;

    // A broken pair (key of another certificate): rejected, B keeps serving.
    let (cert_c, _) = issue(&pki, &KeyPair::generate().unwrap(), 102);
    install_pair(server.dir.path(), &cert_c, &new_key.serialize_pem());
    wait_until("rejection", || server.reloads(false) == 1).await;
    // Garbage: rejected too.
    install_pair(server.dir.path(), "not a certificate", "not a key");
    wait_until("rejection", || server.reloads(false) == 2).await;
    wait_requests(5).await;
    stop.store(true, Ordering::SeqCst);

    let mut seen = HashSet::new();
    for w in workers {
        seen.extend(w.await.expect("no request failed"));
    }
    assert_eq!(
        seen.len(),
        2,
        "a={} b={}",
        seen.contains(&der_a),
        seen.contains(&der_b)
    );
    assert_eq!(seen, HashSet::from([der_a, der_b.clone()]));
    let conn = Conn::open(server.addr, client_config(&pki.roots, TLS_ANY, H2)).await;
    assert_eq!(conn.peer, der_b);
    assert_eq!(server.reloads(true), 2);
    assert_eq!(
        probe_get(server.probe, "/readyz").await.status,
        StatusCode::OK
    );
    server.stop().await;
}

#[test]
fn pairs_outside_their_validity_window_are_refused() {
    let pki = pki();
    let now = tls::unix_now();
    type Case = (&'static str, i64, i64, Option<&'static str>);
    let cases: &[Case] = &[
        ("valid for a day", -60, 86_400, None),
        ("expired a minute ago", -86_400, -60, Some("expired at")),
        (
            "valid only from tomorrow",
            86_400,
            2 * 86_400,
            Some("not valid before"),
        ),
    ];
    for (i, (label, from, to, refusal)) in cases.iter().enumerate() {
        let (cert, _) = ec_pair_valid(&pki, 10 + i as u64, *from, *to);
        match (
            tls::load_serving_pair(cert.as_bytes(), EC_SEC1.as_bytes(), now),
            refusal,
        ) {
            (Ok(serving), None) => {
                let v = serving.validity;
                assert!((v.not_after - (now + to)).abs() <= 2, "{label}: {v:?}");
                assert!((v.not_before - (now + from)).abs() <= 2, "{label}: {v:?}");
            }
            (Err(e), Some(message)) => {
                assert!(e.to_string().contains(message), "{label}: {e}");
            }
            (Ok(_), Some(_)) => panic!("{label}: loaded"),
            (Err(e), None) => panic!("{label}: {e}"),
        }
    }
    // A key of another certificate is refused as before.
    let (cert, _) = ec_pair_valid(&pki, 20, -60, 86_400);
    let err = tls::load_serving_pair(cert.as_bytes(), RSA_PKCS1.as_bytes(), now)
        .err()
        .expect("mismatch refused");
    assert!(err.to_string().contains("does not match"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_the_old_pair_when_the_new_one_is_expired_or_not_yet_valid() {
    let pki = pki();
    let (cert_a, der_a) = ec_pair_valid(&pki, 30, -60, 86_400);
    let server = start(Some((&cert_a, EC_SEC1)), true, |_| {}).await;
    wait_until("first load", || server.reloads(true) == 1).await;
    let not_after_a = server.metrics.certificate_not_after.get();
    assert!(
        (not_after_a - (tls::unix_now() + 86_400)).abs() <= 5,
        "{not_after_a}"
    );

    let (expired, _) = ec_pair_valid(&pki, 31, -86_400, -60);
    let (future, _) = ec_pair_valid(&pki, 32, 86_400, 2 * 86_400);
    let (other, _) = ec_pair_valid(&pki, 33, -60, 86_400);
    let refused: [(&str, &str); 3] = [(&expired, EC_SEC1), (&future, EC_SEC1), (&other, RSA_PKCS1)];
    for (n, (cert, key)) in refused.into_iter().enumerate() {
        install_pair(server.dir.path(), cert, key);
        wait_until("refusal", || server.reloads(false) == n as u64 + 1).await;
        // Still serving A, still ready, still advertising A's notAfter.
        let conn = Conn::open(server.addr, client_config(&pki.roots, TLS_ANY, H1)).await;
        assert_eq!(conn.peer, der_a, "case {n}");
        let ready = probe_get(server.probe, "/readyz").await;
        assert_eq!(ready.status, StatusCode::OK, "case {n}: {}", ready.text());
        assert_eq!(server.metrics.certificate_not_after.get(), not_after_a);
    }
    let metrics = probe_get(server.probe, "/metrics").await.text();
    assert!(
        metrics.contains(&format!(
            "mtls_gate_certificate_not_after_seconds {not_after_a}"
        )),
        "{metrics}"
    );
    assert!(metrics.contains("mtls_gate_certificate_reloads_total{result=\"failure\"} 3"));
    server.stop().await;

    // Started with only an expired pair: nothing is loaded, not ready, no handshake.
    let server = start(Some((&expired, EC_SEC1)), true, |_| {}).await;
    wait_until("refusal", || server.reloads(false) == 1).await;
    let ready = probe_get(server.probe, "/readyz").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        ready.text().contains("no serving certificate"),
        "{}",
        ready.text()
    );
    assert_eq!(server.metrics.certificate_not_after.get(), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_drains_in_flight_requests() {
    let pki = pki();
    let (cert, _) = ec_pair(&pki, 1);
    let mut server = start(Some((&cert, EC_SEC1)), true, |c| {
        c.limits.body_read_timeout = Duration::from_secs(5);
    })
    .await;
    let (addr, probe) = (server.addr, server.probe);
    let mut h1 = Conn::open(addr, client_config(&pki.roots, TLS_ANY, H1)).await;
    let mut h2 = Conn::open(addr, client_config(&pki.roots, TLS_ANY, H2)).await;
    let idle = Conn::open(addr, client_config(&pki.roots, TLS_ANY, H1)).await;
    let review = ingress_review("u-drain", "good", "CREATE");
    let (head, tail) = review.split_at(200);
    let (tx1, body1) = streamed();
    let (tx2, body2) = streamed();
    let req1 = h1.request(Method::POST, "/validate", body1);
    let req2 = h2.request(Method::POST, "/mutate", body2);
    let p1 = tokio::spawn(async move { h1.send(req1).await });
    let p2 = tokio::spawn(async move { h2.send(req2).await });
    tx1.unbounded_send(Bytes::from(head.to_string())).unwrap();
    tx2.unbounded_send(Bytes::from(head.to_string())).unwrap();
    // Both requests are in the server (their bodies half read) before shutdown.
    wait_until("requests in flight", || {
        server.metrics.admission_in_flight.get() == 2
    })
    .await;

    let _ = server.shutdown.take().unwrap().send(());
    // Draining: not ready any more, no new connections.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ready = probe_get(probe, "/readyz").await;
        if ready.text().contains("shutting down") {
            assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
            break;
        }
        assert!(Instant::now() < deadline, "readyz never said shutting down");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
    // The idle keep-alive connection is closed by the server.
    tokio::time::timeout(Duration::from_secs(3), idle.driver)
        .await
        .expect("idle connection closed")
        .unwrap();

    tx1.unbounded_send(Bytes::from(tail.to_string())).unwrap();
    tx2.unbounded_send(Bytes::from(tail.to_string())).unwrap();
    drop((tx1, tx2));
    let a1 = p1.await.unwrap().unwrap();
    let a2 = p2.await.unwrap().unwrap();
    assert_eq!(a1.status, StatusCode::OK);
    assert_eq!(a2.status, StatusCode::OK);
    assert_eq!(a1.review().response.unwrap().uid, "u-drain");
    assert_eq!(a2.review().response.unwrap().uid, "u-drain");
    tokio::time::timeout(Duration::from_secs(5), server.task.take().unwrap())
        .await
        .expect("server returns after draining")
        .unwrap()
        .unwrap();
    assert!(
        TcpStream::connect(probe).await.is_err(),
        "probe port closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_timeout_bounds_shutdown_and_idle_connections_close() {
    let pki = pki();
    let (cert, _) = ec_pair(&pki, 1);
    let mut server = start(Some((&cert, EC_SEC1)), true, |c| {
        c.limits.body_read_timeout = Duration::from_secs(30);
        c.limits.drain_timeout = Duration::from_millis(300);
        c.limits.idle_timeout = Duration::from_millis(300);
    })
    .await;
    // An HTTP/2 connection that sends nothing is closed after the idle timeout.
    let idle = Conn::open(server.addr, client_config(&pki.roots, TLS_ANY, H2)).await;
    tokio::time::timeout(Duration::from_secs(3), idle.driver)
        .await
        .expect("idle HTTP/2 connection closed")
        .unwrap();

    // A request whose body never completes does not hold shutdown beyond the drain timeout.
    let mut conn = Conn::open(server.addr, client_config(&pki.roots, TLS_ANY, H2)).await;
    let (tx, body) = streamed();
    let req = conn.request(Method::POST, "/validate", body);
    let pending = tokio::spawn(async move { conn.send(req).await });
    tx.unbounded_send(Bytes::from_static(b"{\"apiVersion\""))
        .unwrap();
    wait_until("request in flight", || {
        server.metrics.admission_in_flight.get() == 1
    })
    .await;
    let started = Instant::now();
    let _ = server.shutdown.take().unwrap().send(());
    tokio::time::timeout(Duration::from_secs(5), server.task.take().unwrap())
        .await
        .expect("server returns after the drain timeout")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(pending.await.unwrap().is_err());
    drop(tx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_tcp_connections_hit_the_tls_handshake_timeout() {
    let pki = pki();
    let (cert, _) = ec_pair(&pki, 1);
    let server = start(Some((&cert, EC_SEC1)), true, |c| {
        c.limits.tls_handshake_timeout = Duration::from_millis(300);
    })
    .await;
    let started = Instant::now();
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(3), tcp.read(&mut buf))
        .await
        .expect("server closes a connection that never starts TLS")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(started.elapsed() >= Duration::from_millis(250));
    wait_until("handshake timeout counted", || {
        server.errors(ErrorReason::TlsHandshakeTimeout) == 1
    })
    .await;
    // Served normally afterwards.
    let mut conn = Conn::open(server.addr, client_config(&pki.roots, TLS_ANY, H1)).await;
    let answer = conn
        .post("/validate", ingress_review("u", "good", "CREATE"))
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_limit_busy_connections_stay_and_idle_ones_make_room() {
    let pki = pki();
    let (cert, _) = ec_pair(&pki, 1);
    let server = start(Some((&cert, EC_SEC1)), true, |c| {
        c.limits.max_connections = 1;
        c.limits.body_read_timeout = Duration::from_secs(10);
        c.limits.body_rate_grace = Duration::from_secs(10);
    })
    .await;
    let config = client_config(&pki.roots, TLS_ANY, H1);
    // The only slot is held by a connection with a request in progress.
    let mut first = Conn::open(server.addr, config.clone()).await;
    let (tx, body) = streamed();
    let req = first.request(Method::POST, "/validate", body);
    let review = ingress_review("u1", "good", "CREATE");
    let (head, tail) = review.split_at(100);
    tx.unbounded_send(Bytes::from(head.to_string())).unwrap();
    let pending = tokio::spawn(async move {
        let answer = first.send(req).await;
        (answer, first)
    });
    wait_until("request in progress", || {
        server.metrics.admission_in_flight.get() == 1
    })
    .await;
    // A second connection is not served while the first is busy...
    let second = tokio::spawn(Conn::open(server.addr, config));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished());
    // ...and is served as soon as the first is idle: the first makes room.
    tx.unbounded_send(Bytes::from(tail.to_string())).unwrap();
    drop(tx);
    let (answer, first) = pending.await.unwrap();
    assert_eq!(answer.unwrap().status, StatusCode::OK);
    let mut second = tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .expect("second connection served")
        .unwrap();
    let answer = second
        .post("/validate", ingress_review("u2", "good", "CREATE"))
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    // Closed at once, not held like a connection that never sent a request.
    tokio::time::timeout(Duration::from_secs(1), first.driver)
        .await
        .expect("the idle first connection was closed")
        .unwrap();
    let metrics = probe_get(server.probe, "/metrics").await.text();
    assert!(
        metrics.contains("mtls_gate_connections_evicted_total{port=\"webhook\"} 1"),
        "{metrics}"
    );
    server.stop().await;
}

/// A TLS connection that negotiates `alpn` and then sends nothing.
async fn silent_tls(addr: SocketAddr, config: Arc<ClientConfig>) -> TlsStream<TcpStream> {
    tls_connect(addr, config).await
}

/// True when the server closes `stream` within `limit`.
async fn closed_within(stream: &mut (impl tokio::io::AsyncRead + Unpin), limit: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline.into(), stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// Silent connections opened together are closed spread over the second half of the
/// header read timeout, not all at once: a client that reconnects when closed (an
/// attacker's) would otherwise send all its handshakes again in one burst (stop 29).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_opened_together_are_closed_spread_out() {
    let pki = pki();
    let (cert, _) = ec_pair(&pki, 1);
    let timeout = Duration::from_secs(1);
    let server = start(Some((&cert, EC_SEC1)), true, |c| {
        c.limits.header_read_timeout = timeout;
    })
    .await;
    let h2 = client_config(&pki.roots, TLS_ANY, H2);
    let mut silent = Vec::new();
    for _ in 0..16 {
        let opened = Instant::now();
        let mut conn = silent_tls(server.addr, h2.clone()).await;
        silent.push(tokio::spawn(async move {
            assert!(closed_within(&mut conn, Duration::from_secs(5)).await);
            opened.elapsed()
        }));
    }
    let mut lived = Vec::new();
    for s in silent {
        lived.push(s.await.unwrap());
    }
    let shortest = *lived.iter().min().unwrap();
    let longest = *lived.iter().max().unwrap();
    assert!(shortest >= timeout / 2, "{lived:?}");
    assert!(longest < timeout + Duration::from_millis(500), "{lived:?}");
    assert!(longest - shortest >= timeout / 4, "{lived:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_http2_connections_are_closed_and_make_room_at_the_limit() {
    let pki = pki();
    let (cert, _) = ec_pair(&pki, 1);
    // A first-request deadline of 400 ms (the test header timeout).
    let server = start(Some((&cert, EC_SEC1)), true, |_| {}).await;
    let h2 = client_config(&pki.roots, TLS_ANY, H2);
    let mut silent = silent_tls(server.addr, h2.clone()).await;
    assert!(
        closed_within(&mut silent, Duration::from_secs(5)).await,
        "a connection that never sends its HTTP/2 preface is closed"
    );
    server.stop().await;

    // With a long deadline, four silent connections fill the limit of four; good clients
    // still get in, each taking the slot of the silent connection idle longest.
    let server = start(Some((&cert, EC_SEC1)), true, |c| {
        c.limits.max_connections = 4;
        c.limits.header_read_timeout = Duration::from_secs(60);
        c.limits.evicted_hold = Duration::from_millis(1500);
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(silent_tls(server.addr, h2.clone()).await);
    }
    let mut good = Vec::new();
    for i in 0..3 {
        let mut conn =
            tokio::time::timeout(Duration::from_secs(5), Conn::open(server.addr, h2.clone()))
                .await
                .expect("a good client gets a connection");
        let uid = format!("u-{i}");
        let answer = conn
            .post("/validate", ingress_review(&uid, "good", "CREATE"))
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        // Kept open (and idle now, but younger than the silent ones).
        good.push(conn);
    }
    // The three oldest silent connections were evicted: held open, unread, so that their
    // clients do not reconnect at once, then closed; the newest still waits.
    let metrics = probe_get(server.probe, "/metrics").await.text();
    assert!(
        metrics.contains("mtls_gate_held_connections 3")
            && metrics.contains("mtls_gate_connections_evicted_total{port=\"webhook\"} 3"),
        "{metrics}"
    );
    for stream in &mut held {
        assert!(!closed_within(stream, Duration::from_millis(100)).await);
    }
    for (i, stream) in held.iter_mut().enumerate() {
        let closed = closed_within(
            stream,
            Duration::from_millis(if i < 3 { 3000 } else { 200 }),
        )
        .await;
        assert_eq!(closed, i < 3, "silent connection {i}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_probe_connections_cannot_starve_the_probes() {
    let pki = pki();
    let (cert, _) = ec_pair(&pki, 1);
    let server = start(Some((&cert, EC_SEC1)), true, |c| {
        c.limits.probe.max_connections = 8;
        c.limits.probe.header_read_timeout = Duration::from_secs(60);
    })
    .await;
    // Twelve connections that send nothing, more than the probe port's slots.
    let mut idle = Vec::new();
    for _ in 0..12 {
        idle.push(TcpStream::connect(server.probe).await.unwrap());
    }
    for path in ["/healthz", "/readyz", "/metrics"] {
        let answer = tokio::time::timeout(Duration::from_secs(5), probe_get(server.probe, path))
            .await
            .expect("probe answered although idle connections fill the port");
        assert_eq!(answer.status, StatusCode::OK, "{path}");
    }
    let metrics = probe_get(server.probe, "/metrics").await.text();
    assert!(
        metrics.contains("mtls_gate_connections_evicted_total{port=\"probe\"}"),
        "{metrics}"
    );
    // A slow header is cut off after the probe header timeout.
    let server2 = start(Some((&cert, EC_SEC1)), true, |c| {
        c.limits.probe.header_read_timeout = Duration::from_millis(300);
    })
    .await;
    let mut slow = TcpStream::connect(server2.probe).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: x")
        .await
        .unwrap();
    assert!(closed_within(&mut slow, Duration::from_secs(5)).await);
    server2.stop().await;
    drop(idle);
    server.stop().await;
}

/// A client whose first request travels in the same TCP write as the last message of its
/// TLS handshake (`Finished`): the server reads both at once, so the request is in rustls's
/// buffer and never makes the socket readable again. It must be answered, not left to the
/// header timeout. (The server waits for a client's first bytes before it builds the HTTP
/// connection.) A blocking rustls client, driven by hand, holds its `Finished` back until
/// the request is queued behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_the_handshakes_last_flight_is_answered() {
    use std::io::{Read, Write};
    let pki = pki();
    let (cert, _) = ec_pair(&pki, 1);
    let server = start(Some((&cert, EC_SEC1)), true, |c| {
        c.limits.header_read_timeout = Duration::from_secs(30);
    })
    .await;
    for (versions, label) in [(TLS13, "TLS 1.3"), (TLS12, "TLS 1.2")] {
        let config = client_config(&pki.roots, versions, H1);
        let addr = server.addr;
        let answer = tokio::task::spawn_blocking(move || {
            let mut tcp = std::net::TcpStream::connect(addr).unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let name = ServerName::try_from("localhost").unwrap();
            let mut tls = rustls::ClientConnection::new(config, name).unwrap();
            // Handshake messages go out while handshaking; the last flight stays queued.
            while tls.is_handshaking() {
                if tls.wants_write() {
                    tls.write_tls(&mut tcp).unwrap();
                } else {
                    assert!(tls.read_tls(&mut tcp).unwrap() > 0, "server closed early");
                    tls.process_new_packets().unwrap();
                }
            }
            let request = "GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n";
            tls.writer().write_all(request.as_bytes()).unwrap();
            let mut flight = Vec::new();
            while tls.wants_write() {
                tls.write_tls(&mut flight).unwrap();
            }
            // One write: the handshake's end and the request together.
            tcp.write_all(&flight).unwrap();
            let mut answer = Vec::new();
            loop {
                match tls.read_tls(&mut tcp) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => panic!("no answer: {e}"),
                }
                tls.process_new_packets().unwrap();
                let _ = tls.reader().read_to_end(&mut answer);
            }
            String::from_utf8_lossy(&answer).into_owned()
        })
        .await
        .unwrap();
        assert!(answer.starts_with("HTTP/1.1 "), "{label}: {answer:?}");
    }
    server.stop().await;
}

/// Slowloris (adversarial test F7): request heads sent a line at a time. The server reads
/// an HTTP/1.1 head before it builds hyper's connection, so each case checks that this
/// reading keeps hyper's behaviour: a head completed slowly is served; one that never ends
/// is closed at the header read timeout counted from the connection's arrival, however
/// often lines arrive; one longer than the header limit is answered 431; a head, body and
/// second request in one write are all served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_heads_sent_a_line_at_a_time() {
    let pki = pki();
    let (cert, _) = ec_pair(&pki, 1);
    let server = start(Some((&cert, EC_SEC1)), true, |_| {}).await;
    let h1 = client_config(&pki.roots, TLS_ANY, H1);
    let review = ingress_review("slow-head", "good", "CREATE");

    // Completed slowly, within the earliest first-request deadline (half the 400 ms header
    // read timeout): served.
    let mut stream = tls_connect(server.addr, h1.clone()).await;
    let content_length = format!("content-length: {}\r\n", review.len());
    for line in [
        "POST /validate HTTP/1.1\r\n",
        "host: localhost\r\n",
        "content-type: application/json\r\n",
        &content_length,
        "\r\n",
    ] {
        stream.write_all(line.as_bytes()).await.unwrap();
        stream.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    stream.write_all(review.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
    let answer = read_response(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"uid\":\"slow-head\""), "{answer}");

    // Never ending, a line every 100 ms: closed at its first-request deadline (200-400 ms).
    let timeouts_before = server.errors(ErrorReason::HeaderTimeout);
    let mut stream = tls_connect(server.addr, h1.clone()).await;
    let opened = Instant::now();
    stream
        .write_all(b"POST /validate HTTP/1.1\r\n")
        .await
        .unwrap();
    stream.flush().await.unwrap();
    let (mut rd, mut wr) = tokio::io::split(stream);
    let trickle = tokio::spawn(async move {
        while wr.write_all(b"x-slow: 1\r\n").await.is_ok() && wr.flush().await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    assert!(closed_within(&mut rd, Duration::from_secs(3)).await);
    let took = opened.elapsed();
    assert!(took >= Duration::from_millis(200), "closed after {took:?}");
    assert!(took < Duration::from_millis(2000), "closed after {took:?}");
    trickle.abort();
    wait_until("header timeout counted", || {
        server.errors(ErrorReason::HeaderTimeout) > timeouts_before
    })
    .await;

    // Longer than the header limit (16 KiB) without an end: 431, as hyper answers it.
    let mut long = b"POST /validate HTTP/1.1\r\nhost: localhost\r\n".to_vec();
    while long.len() < 20 * 1024 {
        long.extend_from_slice(b"x-padding: 0123456789abcdef0123456789abcdef\r\n");
    }
    let (out, _) = raw_exchange(server.addr, h1.clone(), &long, Duration::from_secs(3)).await;
    assert!(out.starts_with("HTTP/1.1 431"), "{out}");

    // Two requests and their bodies in one write: both answered, in order.
    let one = |uid: &str| {
        let body = ingress_review(uid, "good", "CREATE");
        format!(
            "POST /validate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let mut stream = tls_connect(server.addr, h1).await;
    let both = one("first") + &one("second");
    stream.write_all(both.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
    let mut out = String::new();
    let mut buf = [0u8; 4096];
    while out.matches("HTTP/1.1 200").count() < 2 || !out.contains("\"uid\":\"second\"") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("both answers within 5 s")
            .unwrap();
        assert!(n > 0, "closed before both answers: {out}");
        out.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let (first, second) = (
        out.find("\"uid\":\"first\""),
        out.find("\"uid\":\"second\""),
    );
    assert!(first.is_some() && first < second, "{out}");
    server.stop().await;
}

/// The server chooses the cipher suite, SHA-256 suites first (`tls::server_config`: cheaper
/// handshakes in a connection flood), whatever order the client prefers; a client that
/// offers only the SHA-384 suite still gets it.
#[tokio::test]
async fn the_server_prefers_the_sha256_suites() {
    use rustls::CipherSuite::{
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384,
    };
    let pki = pki();
    let (cert, _) = ec_pair(&pki, 1);
    let server = start(Some((&cert, EC_SEC1)), true, |_| {}).await;
    // rustls's clients put the AES-256 suites first.
    let only = |suite: rustls::CipherSuite| {
        let mut provider = tls::crypto_provider().as_ref().clone();
        provider.cipher_suites.retain(|s| s.suite() == suite);
        Arc::new(provider)
    };
    let cases = [
        (TLS13, None, TLS13_AES_128_GCM_SHA256),
        (TLS12, None, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
        (
            TLS13,
            Some(TLS13_AES_256_GCM_SHA384),
            TLS13_AES_256_GCM_SHA384,
        ),
        (
            TLS12,
            Some(TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384),
            TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ),
    ];
    for (versions, offered, expected) in cases {
        let provider = offered.map_or_else(tls::crypto_provider, only);
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(pki.roots.clone())
            .with_no_client_auth();
        config.alpn_protocols = vec![H1.to_vec()];
        let stream = tls_connect(server.addr, Arc::new(config)).await;
        let chosen = stream
            .get_ref()
            .1
            .negotiated_cipher_suite()
            .map(|s| s.suite());
        assert_eq!(chosen, Some(expected), "offered {offered:?}");
    }
    server.stop().await;
}

/// Reviews of bodies large enough for the decoded-size scan run on the large-review
/// threads (at a lower CPU priority, `webhook::runtimes::BackgroundPool`); the others on
/// the blocking pool of the server's runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_are_reviewed_on_the_large_review_threads() {
    let pki = pki();
    let (cert, _) = ec_pair(&pki, 1);
    let server = start(Some((&cert, EC_SEC1)), true, |_| {}).await;
    let mut conn = Conn::open(server.addr, client_config(&pki.roots, TLS_ANY, H1)).await;
    // Over max_decoded_bytes / MAX_AMPLIFICATION (16 MiB / 128 = 128 KiB): a 200 KB
    // annotation, as a large last-applied-configuration can be.
    let mut large: serde_json::Value =
        serde_json::from_str(&ingress_review("u-large", "large", "CREATE")).unwrap();
    large["request"]["object"]["metadata"]["annotations"] = serde_json::json!({"kubectl.kubernetes.io/last-applied-configuration": "x".repeat(200_000)});
    for body in [
        ingress_review("u-small", "small", "CREATE"),
        large.to_string(),
    ] {
        let answer = conn.post("/validate", body).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        assert!(answer.review().response.unwrap().allowed);
    }
    let threads = server.handler.review_threads.lock().unwrap().clone();
    let thread_of = |name: &str| {
        threads
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, t)| t.clone())
            .unwrap_or_default()
    };
    assert_eq!(thread_of("large"), "mtls-gate-large-reviews", "{threads:?}");
    assert_ne!(thread_of("small"), "mtls-gate-large-reviews", "{threads:?}");
    server.stop().await;
}

/// Large bodies are read at the configured pace, all of them together, beyond their first
/// 128 KiB (`webhook::body::BodyPace`); small reviews are not slowed by them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_are_read_at_the_configured_pace_and_small_reviews_are_not() {
    let pki = pki();
    let (cert, _) = ec_pair(&pki, 1);
    let server = start(Some((&cert, EC_SEC1)), true, |c| {
        c.limits.large_body_read_rate = 1 << 20;
        c.limits.body_read_timeout = Duration::from_secs(30);
        c.limits.min_body_rate = 0;
    })
    .await;
    let h1 = client_config(&pki.roots, TLS_ANY, H1);
    let mut large: serde_json::Value =
        serde_json::from_str(&ingress_review("u-large", "large", "CREATE")).unwrap();
    large["request"]["object"]["metadata"]["annotations"] = serde_json::json!({"kubectl.kubernetes.io/last-applied-configuration": "x".repeat(600_000)});
    let mut conn = Conn::open(server.addr, h1.clone()).await;
    let started = Instant::now();
    let pending = tokio::spawn(async move {
        let answer = conn.post("/validate", large.to_string()).await;
        (answer, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut small = Conn::open(server.addr, h1).await;
    let answer = small
        .post("/validate", ingress_review("u-small", "small", "CREATE"))
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(!pending.is_finished(), "the small review is answered first");
    let (answer, took) = pending.await.unwrap();
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    // ~470 KB past the free 128 KiB at 1 MiB/s: at least ~440 ms.
    assert!(took >= Duration::from_millis(400), "{took:?}");
    server.stop().await;
}
