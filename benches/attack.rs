//! Attack load test of the webhook (issue 11; adversarial test 2026-11-30 §1, §4, F3, F7,
//! F8): starts the real `mtls-gate webhook` binary on loopback over a realistic 20-route
//! API host, runs each attack of the issue at the size listed while good clients measure,
//! and prints the figures against the targets.
//!
//! `make attack` (or `cargo bench --bench attack`). Loopback only; every attack is bounded
//! in connections and time and stops by itself; the server child is killed by its pid at
//! the end. Environment (optional):
//! - `ATTACK_SECONDS` (default 20, at most 60): duration of each phase. 20 s gives the
//!   new-connection client (10 reviews/s) ~190 samples after the opening second, so that
//!   its p99 is not simply its slowest sample.
//! - `ATTACK_ONLY`: comma-separated phase names to run (default: all), e.g. `h2-idle,slowloris`.
//! - `ATTACK_ONE_SERVER=1`: run every phase against one server process (RSS then also shows
//!   what earlier phases left allocated); default: a fresh server per phase, so each
//!   phase's RSS is that attack's own.
//! - `MTLS_GATE_BIN`: the server binary to attack (default: this build's `mtls-gate`), to
//!   compare two builds under the same conditions.
//! - `ATTACK_NICE` (0-19, default 0): niceness of the attacker process. The attacker runs
//!   in a process of its own (this binary again, with its own runtime), so the good
//!   clients are not measured through a runtime busy with the attack; but on this 2-core
//!   machine it still takes CPU from the server, which a remote attacker would not. With 0
//!   it competes at the server's priority (the worst case here); with 19 it mostly gets
//!   what the server and the good clients leave.
//!
//! Besides the latency table, the run prints the CPU each party used during each phase
//! (server, good clients, attacker, everything else on the machine, from `/proc`), so that
//! a figure can be read against what else was running, and each phase's three slowest
//! new-connection reviews with when they started (an attack opens its connections at
//! once when its phase starts) and how much of them was the TCP connect and TLS handshake.
//!
//! Phases: `baseline`; `h2-idle` (1,024 TLS connections that negotiate HTTP/2 and send
//! nothing, reopened when closed); `slow-bodies` (80 requests trickling one body byte
//! every 2 s); `probe-idle` (40 idle TCP connections to the probe port); `slowloris`
//! (1,100 TLS connections sending one header line a second); `stream-5mib` (a client
//! streaming a 5 MiB body with a Content-Length and no `Expect`); `bodies-4mib` (four
//! concurrent crafted 4 MiB reviews, an array of two million numbers each);
//! `expired-cert` (the serving certificate file replaced by an expired pair).
//!
//! Measured during every phase: a keep-alive HTTP/2 client (as the API server) sending
//! 50 good reviews/s and a client opening a new TLS connection per review 10 times a
//! second (both: success = HTTP 200, uid echoed, allowed), `/healthz` every 100 ms on a
//! new connection with a 1 s timeout (as the kubelet), and the server's RSS
//! (`/proc/PID/status` VmRSS, every 50 ms). Targets (issue 11), "while each attack runs at
//! the size listed": ≥ 99 % good reviews succeed with p99 ≤ 10 ms; `/healthz` p99 ≤ 100 ms;
//! RSS ≤ 64 MiB. Successes, failures and RSS count over the whole phase; the latency
//! percentiles from the end of the phase's first second, when the attack has opened its
//! connections (all at once: a burst of up to 1,100 TLS handshakes from a process on the
//! same cores). That first second's latencies are printed in a table of their own.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::RootCertStore;
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

const API_HOST: &str = "mtls-api.bank.example";
/// Routes on the API host (issue 11: "a realistic 20-route host").
const API_ROUTES: usize = 20;

/// Targets of issue 11.
const GOOD_SUCCESS_MIN: f64 = 0.99;
const GOOD_P99_MAX: Duration = Duration::from_millis(10);
const HEALTHZ_P99_MAX: Duration = Duration::from_millis(100);
const RSS_MAX_KIB: u64 = 64 * 1024;

// ---------------------------------------------------------------------------------------
// The server under test

/// Where the attacks and good clients connect, and the CA that signed the server's pair.
#[derive(Clone)]
struct Target {
    https: SocketAddr,
    probe: SocketAddr,
    roots: Arc<RootCertStore>,
}

/// The `mtls-gate webhook` child process; killed (by its pid) when dropped.
struct Server {
    child: Child,
    https: SocketAddr,
    probe: SocketAddr,
    roots: Arc<RootCertStore>,
    dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
    key_pem: String,
    cert_pem: String,
}

impl Server {
    /// The CA certificate (DER), for the attacker process.
    fn ca_file(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.der")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The cluster view: the bank's profile and CA Secret, its two authorisation-server
/// Ingresses and 20 Ingresses on the API host (one per API resource and version).
fn cluster_yaml() -> String {
    use mtls_gate::synthetic;
    let mut docs = vec![synthetic::bank_profile(), synthetic::bank_ca_secret()];
    let mut on_api_host = 0;
    for ingress in synthetic::bank_ingresses() {
        let host = ingress["spec"]["rules"][0]["host"].as_str().unwrap_or("");
        if host == API_HOST {
            if on_api_host == API_ROUTES {
                continue;
            }
            on_api_host += 1;
        }
        docs.push(ingress);
    }
    docs.iter()
        .map(|d| format!("---\n{}\n", serde_json::to_string(d).unwrap_or_default()))
        .collect()
}

fn leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    key: &KeyPair,
    valid: Option<(time::OffsetDateTime, time::OffsetDateTime)>,
) -> anyhow::Result<String> {
    let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])?;
    if let Some((from, to)) = valid {
        params.not_before = from;
        params.not_after = to;
    }
    Ok(params.signed_by(key, ca)?.pem())
}

/// Replaces `path` atomically (write beside, rename), as a Secret volume update does.
fn replace_file(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Finds `"https"`/`"probes"` in a JSON log line.
fn find_field(v: &Value, key: &str) -> Option<String> {
    match v {
        Value::Object(m) => m
            .get(key)
            .and_then(|x| x.as_str())
            .map(String::from)
            .or_else(|| m.values().find_map(|x| find_field(x, key))),
        _ => None,
    }
}

fn start_server() -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
    let key = KeyPair::generate()?;
    let cert_pem = leaf(&ca, &key, None)?;
    let key_pem = key.serialize_pem();
    std::fs::write(dir.path().join("tls.crt"), &cert_pem)?;
    std::fs::write(dir.path().join("tls.key"), &key_pem)?;
    std::fs::write(dir.path().join("cluster.yaml"), cluster_yaml())?;
    std::fs::write(dir.path().join("ca.der"), ca.der().as_ref())?;
    let mut roots = RootCertStore::empty();
    roots.add(ca.der().clone())?;

    // MTLS_GATE_BIN: another build of the server (e.g. before a change), for comparisons.
    let bin =
        std::env::var_os("MTLS_GATE_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_mtls-gate").into());
    let mut child = Command::new(bin)
        .args([
            "webhook",
            "--listen=127.0.0.1:0",
            "--probe-listen=127.0.0.1:0",
        ])
        .arg(format!(
            "--tls-cert-file={}",
            dir.path().join("tls.crt").display()
        ))
        .arg(format!(
            "--tls-key-file={}",
            dir.path().join("tls.key").display()
        ))
        .arg(format!(
            "--objects={}",
            dir.path().join("cluster.yaml").display()
        ))
        .args(["--namespace=open-banking", "--log-format=json"])
        .env("RUST_LOG", "warn,mtls_gate::cli=info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start mtls-gate webhook")?;
    let stderr = child.stderr.take().context("no stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    // Drains the server's log for the whole run (a full pipe would stall the server); the
    // first line naming the addresses is passed on, warnings and errors are echoed.
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let parsed: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if !sent
                && let (Some(h), Some(p)) =
                    (find_field(&parsed, "https"), find_field(&parsed, "probes"))
            {
                let _ = tx.send((h, p));
                sent = true;
                continue;
            }
            if line.contains("\"ERROR\"") || line.contains("rejected") {
                eprintln!("  server: {line}");
            }
        }
    });
    let (https, probe) = rx
        .recv_timeout(Duration::from_secs(30))
        .context("the server did not report its addresses within 30 s")?;
    Ok(Server {
        child,
        https: https.parse()?,
        probe: probe.parse()?,
        roots: Arc::new(roots),
        dir,
        ca,
        key_pem,
        cert_pem,
    })
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

// ---------------------------------------------------------------------------------------
// Clients

fn client_config(roots: &Arc<RootCertStore>, alpn: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS 1.2 and 1.3 are supported")
    .with_root_certificates(roots.clone())
    .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

async fn tls(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
) -> anyhow::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    Ok(TlsConnector::from(config.clone())
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?)
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

async fn connect(addr: SocketAddr, config: &Arc<rustls::ClientConfig>) -> anyhow::Result<Sender> {
    let stream = tls(addr, config).await?;
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
    let io = TokioIo::new(stream);
    Ok(if h2 {
        let (s, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(conn);
        Sender::H2(s)
    } else {
        let (s, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(conn);
        Sender::H1(s)
    })
}

async fn post(sender: &mut Sender, path: &str, body: Bytes) -> anyhow::Result<(StatusCode, Bytes)> {
    let builder = Request::builder()
        .method(Method::POST)
        .header("content-type", "application/json");
    let resp = match sender {
        Sender::H1(s) => {
            let req = builder
                .uri(path)
                .header("host", "localhost")
                .body(Full::new(body))?;
            s.ready().await?;
            s.send_request(req).await?
        }
        Sender::H2(s) => {
            let req = builder
                .uri(format!("https://localhost{path}"))
                .body(Full::new(body))?;
            s.ready().await?;
            s.send_request(req).await?
        }
    };
    let status = resp.status();
    Ok((status, resp.into_body().collect().await?.to_bytes()))
}

/// A CREATE review of a new, compliant Ingress on the API host (~2.5 KB).
fn good_review(uid: &str) -> Bytes {
    let paths: Vec<Value> = ["accounts", "balances", "transactions"]
        .iter()
        .map(|r| json!({"path": format!("/open-banking-nz/v3.0/{r}"), "pathType": "Prefix",
                        "backend": {"service": {"name": "open-banking-api", "port": {"number": 8443}}}}))
        .collect();
    let object = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "open-banking-api-v2",
            "namespace": "open-banking",
            "labels": {"app.kubernetes.io/name": "open-banking-api", "app.kubernetes.io/part-of": "open-banking"},
            "annotations": {
                "nginx.ingress.kubernetes.io/auth-tls-secret": "open-banking/open-banking-client-ca",
                "nginx.ingress.kubernetes.io/auth-tls-verify-client": "on",
                "nginx.ingress.kubernetes.io/auth-tls-verify-depth": "2",
                "nginx.ingress.kubernetes.io/auth-tls-pass-certificate-to-upstream": "true"
            },
            "managedFields": [{"manager": "argocd-controller", "operation": "Apply", "apiVersion": "networking.k8s.io/v1",
                               "time": "2026-11-30T00:00:00Z", "fieldsType": "FieldsV1",
                               "fieldsV1": {"f:metadata": {"f:annotations": {}, "f:labels": {}}, "f:spec": {"f:rules": {}, "f:tls": {}}}}]
        },
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": [API_HOST], "secretName": "mtls-api-tls"}],
            "rules": [{"host": API_HOST, "http": {"paths": paths}}]
        }
    });
    review_with(uid, object)
}

fn review_with(uid: &str, object: Value) -> Bytes {
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "networking.k8s.io", "version": "v1", "kind": "Ingress"},
            "resource": {"group": "networking.k8s.io", "version": "v1", "resource": "ingresses"},
            "name": object["metadata"]["name"].clone(),
            "namespace": "open-banking",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:argocd:argocd-application-controller",
                         "groups": ["system:serviceaccounts", "system:authenticated"]},
            "object": object,
            "oldObject": null,
            "dryRun": false
        }
    });
    Bytes::from(serde_json::to_vec(&review).unwrap_or_default())
}

/// A 4 MiB review whose object carries an array of two million small numbers (the
/// adversarial test's memory amplifier).
fn crafted_review(uid: &str) -> Bytes {
    let head = review_with(
        uid,
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "x", "namespace": "open-banking"}, "spec": {"x": "HOLE"}}),
    );
    let text = String::from_utf8_lossy(&head).into_owned();
    let budget = 4 * 1024 * 1024 - text.len();
    let numbers = format!("[{}0]", "1,".repeat((budget - 3) / 2));
    Bytes::from(text.replace("\"HOLE\"", &numbers))
}

fn is_good_answer(status: StatusCode, body: &[u8], uid: &str) -> bool {
    if status != StatusCode::OK {
        return false;
    }
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    v["response"]["uid"] == uid && v["response"]["allowed"] == true
}

// ---------------------------------------------------------------------------------------
// Measurement

/// The first part of each phase, while the attack opens its connections (all at once:
/// each phase's slowest samples show they are open within ~0.3 s): its latencies are
/// printed on their own, and the latency targets are checked on the rest, when the
/// attack runs at the size the issue lists. Failures count in the whole phase.
const OPENING: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Samples {
    /// Latencies of the successes once the attack runs at its size.
    ok: Vec<Duration>,
    /// Latencies of the successes in the phase's [`OPENING`].
    opening: Vec<Duration>,
    failed: u64,
    first_failure: Option<String>,
}

impl Samples {
    /// `at`: since the attack started.
    fn record(&mut self, at: Duration, outcome: Result<Duration, String>) {
        match outcome {
            Ok(d) if at < OPENING => self.opening.push(d),
            Ok(d) => self.ok.push(d),
            Err(e) => {
                self.failed += 1;
                self.first_failure.get_or_insert(e);
            }
        }
    }

    fn succeeded(&self) -> usize {
        self.ok.len() + self.opening.len()
    }
}

#[derive(Default)]
struct PhaseStats {
    /// When the phase's attack started.
    started: Option<Instant>,
    keep_alive: Samples,
    new_conn: Samples,
    /// The slowest new-connection reviews, slowest first.
    slowest_new_conn: Vec<SlowSample>,
    healthz: Samples,
    rss_max_kib: u64,
}

/// Where the time of one new-connection review went, to tell a phase's start (an attack
/// opening its connections at once) from its steady state.
struct SlowSample {
    /// Since the attack started.
    at: Duration,
    total: Duration,
    /// TCP connect and TLS handshake, as the client saw them.
    handshake: Duration,
}

/// New-connection samples kept per phase, slowest first.
const SLOWEST_KEPT: usize = 3;

impl PhaseStats {
    fn starting_now() -> Self {
        Self {
            started: Some(Instant::now()),
            ..Self::default()
        }
    }

    /// Since the attack started, of a sample that began at `began`.
    fn since_start(&self, began: Instant) -> Duration {
        self.started
            .map_or(Duration::ZERO, |s| began.saturating_duration_since(s))
    }

    fn record_new_conn(&mut self, began: Instant, outcome: Result<(Duration, Duration), String>) {
        let at = self.since_start(began);
        let Ok((total, handshake)) = outcome else {
            self.new_conn.record(at, outcome.map(|(total, _)| total));
            return;
        };
        self.new_conn.record(at, Ok(total));
        self.slowest_new_conn.push(SlowSample {
            at,
            total,
            handshake,
        });
        self.slowest_new_conn
            .sort_by_key(|s| std::cmp::Reverse(s.total));
        self.slowest_new_conn.truncate(SLOWEST_KEPT);
    }
}

type Shared = Arc<Mutex<PhaseStats>>;

fn with(stats: &Shared, f: impl FnOnce(&mut PhaseStats)) {
    f(&mut stats.lock().unwrap_or_else(|e| e.into_inner()));
}

async fn keep_alive_client(
    addr: SocketAddr,
    roots: Arc<RootCertStore>,
    stats: Shared,
    mut stop: watch::Receiver<bool>,
) {
    let config = client_config(&roots, b"h2");
    let mut sender: Option<Sender> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut n = 0u64;
    loop {
        tokio::select! { _ = tick.tick() => {}, _ = stop.changed() => return }
        n += 1;
        let uid = format!("ka-{n}");
        let started = Instant::now();
        let outcome = async {
            if sender.is_none() {
                sender = Some(
                    connect(addr, &config)
                        .await
                        .map_err(|e| format!("connect: {e}"))?,
                );
            }
            let s = sender.as_mut().ok_or("no connection")?;
            match tokio::time::timeout(
                Duration::from_secs(5),
                post(s, "/validate", good_review(&uid)),
            )
            .await
            {
                Ok(Ok((status, body))) if is_good_answer(status, &body, &uid) => {
                    Ok(started.elapsed())
                }
                Ok(Ok((status, body))) => {
                    Err(format!("{status}: {}", String::from_utf8_lossy(&body)))
                }
                Ok(Err(e)) => {
                    sender = None;
                    Err(format!("request: {e}"))
                }
                Err(_) => {
                    sender = None;
                    Err("no answer within 5 s".into())
                }
            }
        }
        .await;
        with(&stats, |s| {
            let at = s.since_start(started);
            s.keep_alive.record(at, outcome);
        });
    }
}

async fn new_connection_client(
    addr: SocketAddr,
    roots: Arc<RootCertStore>,
    stats: Shared,
    mut stop: watch::Receiver<bool>,
) {
    let config = client_config(&roots, b"http/1.1");
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut n = 0u64;
    loop {
        tokio::select! { _ = tick.tick() => {}, _ = stop.changed() => return }
        n += 1;
        let uid = format!("nc-{n}");
        let started = Instant::now();
        let attempt = async {
            let mut s = connect(addr, &config)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let handshake = started.elapsed();
            let (status, body) = post(&mut s, "/validate", good_review(&uid))
                .await
                .map_err(|e| format!("request: {e}"))?;
            if is_good_answer(status, &body, &uid) {
                Ok((started.elapsed(), handshake))
            } else {
                Err(format!("{status}: {}", String::from_utf8_lossy(&body)))
            }
        };
        let outcome = tokio::time::timeout(Duration::from_secs(5), attempt)
            .await
            .unwrap_or_else(|_| Err("no answer within 5 s".into()));
        with(&stats, |s| s.record_new_conn(started, outcome));
    }
}

/// Plain HTTP GET on a new connection; (status, body).
async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut out = Vec::new();
    tcp.read_to_end(&mut out).await?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .context("no status line")?;
    Ok((status, text))
}

async fn healthz_prober(addr: SocketAddr, stats: Shared, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! { _ = tick.tick() => {}, _ = stop.changed() => return }
        let started = Instant::now();
        let outcome =
            match tokio::time::timeout(Duration::from_secs(1), http_get(addr, "/healthz")).await {
                Ok(Ok((200, _))) => Ok(started.elapsed()),
                Ok(Ok((s, _))) => Err(format!("status {s}")),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("no answer within 1 s".into()),
            };
        with(&stats, |s| {
            let at = s.since_start(started);
            s.healthz.record(at, outcome);
        });
    }
}

async fn rss_sampler(pid: u32, stats: Shared, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! { _ = tick.tick() => {}, _ = stop.changed() => return }
        if let Some(kib) = rss_kib(pid) {
            with(&stats, |s| s.rss_max_kib = s.rss_max_kib.max(kib));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Attacks

/// Counters an attack reports.
#[derive(Default)]
struct AttackCounters {
    opened: AtomicU64,
    closed_by_server: AtomicU64,
    answers_413: AtomicU64,
    resets: AtomicU64,
    other: AtomicU64,
    readyz_ok: AtomicU64,
    readyz_not_ok: AtomicU64,
}

impl AttackCounters {
    fn summary(&self) -> String {
        let fields = [
            ("attack connections opened", &self.opened),
            ("closed by the server", &self.closed_by_server),
            ("readable 413s", &self.answers_413),
            ("resets or no answer", &self.resets),
            ("other answers", &self.other),
            ("/readyz 200", &self.readyz_ok),
            ("/readyz not 200", &self.readyz_not_ok),
        ];
        let parts: Vec<String> = fields
            .iter()
            .map(|(name, n)| (name, n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        parts.join(", ")
    }
}

/// Resolves when the peer closes `stream` (or `stop` fires: then false).
async fn until_closed(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let mut buf = [0u8; 512];
    loop {
        tokio::select! {
            r = stream.read(&mut buf) => match r { Ok(0) | Err(_) => return true, Ok(_) => continue },
            _ = stop.changed() => return false,
        }
    }
}

/// `n` TLS connections negotiating `h2` that never send anything; reopened when closed.
async fn h2_idle(target: &Target, n: usize, c: Arc<AttackCounters>, stop: watch::Receiver<bool>) {
    let config = client_config(&target.roots, b"h2");
    let addr = target.https;
    for _ in 0..n {
        let (config, c, mut stop) = (config.clone(), c.clone(), stop.clone());
        tokio::spawn(async move {
            while !*stop.borrow() {
                let Ok(Ok(mut s)) =
                    tokio::time::timeout(Duration::from_secs(10), tls(addr, &config)).await
                else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                c.opened.fetch_add(1, Ordering::Relaxed);
                if until_closed(&mut s, &mut stop).await {
                    c.closed_by_server.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
}

/// `n` HTTP/1.1 requests announcing a 4,000-byte body and sending one byte every 2 s.
async fn slow_bodies(
    target: &Target,
    n: usize,
    c: Arc<AttackCounters>,
    stop: watch::Receiver<bool>,
) {
    let config = client_config(&target.roots, b"http/1.1");
    let addr = target.https;
    for _ in 0..n {
        let (config, c, mut stop) = (config.clone(), c.clone(), stop.clone());
        tokio::spawn(async move {
            while !*stop.borrow() {
                let Ok(Ok(s)) =
                    tokio::time::timeout(Duration::from_secs(10), tls(addr, &config)).await
                else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                c.opened.fetch_add(1, Ordering::Relaxed);
                let (mut rd, mut wr) = tokio::io::split(s);
                let head = b"POST /validate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 4000\r\n\r\n";
                if wr.write_all(head).await.is_err() {
                    continue;
                }
                let mut buf = [0u8; 512];
                let mut tick = tokio::time::interval(Duration::from_secs(2));
                loop {
                    tokio::select! {
                        r = rd.read(&mut buf) => {
                            match r {
                                Ok(n) if n > 0 && buf[..n].starts_with(b"HTTP/1.1 408") => { c.other.fetch_add(1, Ordering::Relaxed); }
                                // 408 answers count as "other answers" here.
                                _ => { c.closed_by_server.fetch_add(1, Ordering::Relaxed); }
                            }
                            break;
                        }
                        _ = tick.tick() => { if wr.write_all(b" ").await.is_err() { break; } }
                        _ = stop.changed() => return,
                    }
                }
            }
        });
    }
}

/// `n` TCP connections to the probe port that send nothing; reopened when closed.
async fn probe_idle(
    target: &Target,
    n: usize,
    c: Arc<AttackCounters>,
    stop: watch::Receiver<bool>,
) {
    let addr = target.probe;
    for _ in 0..n {
        let (c, mut stop) = (c.clone(), stop.clone());
        tokio::spawn(async move {
            while !*stop.borrow() {
                let Ok(mut s) = TcpStream::connect(addr).await else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                c.opened.fetch_add(1, Ordering::Relaxed);
                if until_closed(&mut s, &mut stop).await {
                    c.closed_by_server.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
}

/// `n` TLS connections sending a request line, then one header line a second, never
/// ending the header; reopened when closed.
async fn slowloris(target: &Target, n: usize, c: Arc<AttackCounters>, stop: watch::Receiver<bool>) {
    let config = client_config(&target.roots, b"http/1.1");
    let addr = target.https;
    for _ in 0..n {
        let (config, c, mut stop) = (config.clone(), c.clone(), stop.clone());
        tokio::spawn(async move {
            while !*stop.borrow() {
                let Ok(Ok(s)) =
                    tokio::time::timeout(Duration::from_secs(10), tls(addr, &config)).await
                else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                c.opened.fetch_add(1, Ordering::Relaxed);
                let (mut rd, mut wr) = tokio::io::split(s);
                if wr.write_all(b"POST /validate HTTP/1.1\r\n").await.is_err() {
                    continue;
                }
                let mut buf = [0u8; 512];
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tokio::select! {
                        _ = rd.read(&mut buf) => { c.closed_by_server.fetch_add(1, Ordering::Relaxed); break; }
                        _ = tick.tick() => { if wr.write_all(b"x-slow: 1\r\n").await.is_err() { break; } }
                        _ = stop.changed() => return,
                    }
                }
            }
        });
    }
}

/// One client after the other streaming `len` bytes with a Content-Length and no
/// `Expect`, reading the answer while writing; counts readable 413s and resets.
async fn oversize_stream(
    target: &Target,
    len: usize,
    c: Arc<AttackCounters>,
    stop: watch::Receiver<bool>,
) {
    let config = client_config(&target.roots, b"http/1.1");
    let addr = target.https;
    tokio::spawn(async move {
        while !*stop.borrow() {
            let Ok(s) = tls(addr, &config).await else {
                continue;
            };
            c.opened.fetch_add(1, Ordering::Relaxed);
            let (mut rd, mut wr) = tokio::io::split(s);
            let writer = tokio::spawn(async move {
                let head = format!(
                    "POST /validate HTTP/1.1\r\nhost: localhost\r\ncontent-length: {len}\r\n\r\n"
                );
                wr.write_all(head.as_bytes()).await?;
                let chunk = vec![b' '; 64 * 1024];
                let mut sent = 0;
                while sent < len {
                    let n = chunk.len().min(len - sent);
                    wr.write_all(&chunk[..n]).await?;
                    sent += n;
                }
                wr.flush().await?;
                Ok::<_, std::io::Error>(wr)
            });
            let mut out = Vec::new();
            let mut buf = [0u8; 4096];
            let read = tokio::time::timeout(Duration::from_secs(30), async {
                loop {
                    match rd.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            out.extend_from_slice(&buf[..n]);
                            if out.windows(4).any(|w| w == b"\r\n\r\n") {
                                break;
                            }
                        }
                    }
                }
            })
            .await;
            let _ = writer.await;
            if read.is_ok() && out.starts_with(b"HTTP/1.1 413") {
                c.answers_413.fetch_add(1, Ordering::Relaxed);
            } else if out.is_empty() {
                c.resets.fetch_add(1, Ordering::Relaxed);
            } else {
                c.other.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
}

/// `n` clients each sending crafted 4 MiB reviews in a loop (keep-alive).
async fn crafted_bodies(
    target: &Target,
    n: usize,
    c: Arc<AttackCounters>,
    stop: watch::Receiver<bool>,
) {
    let config = client_config(&target.roots, b"http/1.1");
    let addr = target.https;
    let body = crafted_review("crafted");
    for _ in 0..n {
        let (config, c, stop, body) = (config.clone(), c.clone(), stop.clone(), body.clone());
        tokio::spawn(async move {
            let mut sender = None;
            while !*stop.borrow() {
                if sender.is_none() {
                    sender = connect(addr, &config).await.ok();
                    c.opened.fetch_add(1, Ordering::Relaxed);
                }
                let Some(s) = sender.as_mut() else { continue };
                match post(s, "/validate", body.clone()).await {
                    Ok((StatusCode::PAYLOAD_TOO_LARGE, _)) => {
                        c.answers_413.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {
                        c.other.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        c.resets.fetch_add(1, Ordering::Relaxed);
                        sender = None;
                    }
                }
            }
        });
    }
}

// ---------------------------------------------------------------------------------------
// The attacker process
//
// Each attack runs in a process of its own (this bench binary again, `ATTACK_ROLE=attacker`)
// with its own runtime, so that the good clients' latencies are not measured through a
// runtime busy with the attacker's handshakes, and the attacker's CPU use can be reported
// apart. It still shares the two cores with the server: `ATTACK_NICE` lowers its priority.

const ROLE_VAR: &str = "ATTACK_ROLE";

/// Starts the attack of `phase` at its size; false for a phase without one.
async fn start_attack(
    phase: &str,
    target: &Target,
    c: Arc<AttackCounters>,
    stop: watch::Receiver<bool>,
) -> bool {
    match phase {
        "h2-idle" => h2_idle(target, 1024, c, stop).await,
        "slow-bodies" => slow_bodies(target, 80, c, stop).await,
        "probe-idle" => probe_idle(target, 40, c, stop).await,
        "slowloris" => slowloris(target, 1100, c, stop).await,
        "stream-5mib" => oversize_stream(target, 5 << 20, c, stop).await,
        "bodies-4mib" => crafted_bodies(target, 4, c, stop).await,
        _ => return false,
    }
    true
}

fn spawn_attacker(phase: &str, server: &Server, seconds: u64, nice: u8) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("cannot find the bench executable")?;
    let mut cmd = if nice > 0 {
        let mut c = Command::new("nice");
        c.arg(format!("-n{nice}")).arg(exe);
        c
    } else {
        Command::new(exe)
    };
    cmd.env(ROLE_VAR, "attacker")
        .env("ATTACK_PHASE", phase)
        .env("ATTACK_HTTPS", server.https.to_string())
        .env("ATTACK_PROBE", server.probe.to_string())
        .env("ATTACK_CA", server.ca_file())
        .env("ATTACK_SECONDS", seconds.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start the attacker process")
}

/// What the attacker process reports when its attack is over.
struct AttackerReport {
    summary: String,
    cpu_seconds: f64,
}

async fn attacker_report(child: Child) -> anyhow::Result<AttackerReport> {
    let output = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await
    .context("the attacker process did not end")???;
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .last()
        .context("the attacker reported nothing")?;
    let v: Value = serde_json::from_str(line).context("unreadable attacker report")?;
    Ok(AttackerReport {
        summary: v["summary"].as_str().unwrap_or_default().to_string(),
        cpu_seconds: v["cpu_seconds"].as_f64().unwrap_or(f64::NAN),
    })
}

/// The attacker process: runs one phase's attack for its duration, then prints its
/// counters and CPU time as one JSON line.
fn attacker_main() -> anyhow::Result<()> {
    let var = |k: &str| std::env::var(k).with_context(|| format!("{k} not set"));
    let phase = var("ATTACK_PHASE")?;
    let seconds: u64 = var("ATTACK_SECONDS")?.parse()?;
    let mut roots = RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(std::fs::read(
        var("ATTACK_CA")?,
    )?))?;
    let target = Target {
        https: var("ATTACK_HTTPS")?.parse()?,
        probe: var("ATTACK_PROBE")?.parse()?,
        roots: Arc::new(roots),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = runtime.block_on(async {
        let c = Arc::new(AttackCounters::default());
        let (stop_tx, stop) = watch::channel(false);
        if !start_attack(&phase, &target, c.clone(), stop).await {
            anyhow::bail!("no attack named {phase}");
        }
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let _ = stop_tx.send(true);
        Ok(json!({
            "summary": c.summary(),
            "cpu_seconds": cpu_seconds("self").unwrap_or(f64::NAN),
        }))
    })?;
    println!("{report}");
    // The attack's connections are dropped with the process.
    std::process::exit(0)
}

/// CPU time (user + system, all threads) of a process so far, from `/proc/PID/stat`
/// (`utime`, `stime`; Linux reports them in USER_HZ = 100 ticks per second).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Busy and total CPU time of the whole machine so far, from `/proc/stat` (seconds).
fn machine_cpu() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: f64 = v.iter().take(8).sum();
    // idle + iowait
    let idle = v.get(3)? + v.get(4).unwrap_or(&0.0);
    Some(((total - idle) / 100.0, total / 100.0))
}

struct CpuSnapshot {
    at: Instant,
    server: f64,
    clients: f64,
    machine_busy: Option<f64>,
}

impl CpuSnapshot {
    fn take(server_pid: u32) -> Self {
        Self {
            at: Instant::now(),
            server: cpu_seconds(&server_pid.to_string()).unwrap_or(f64::NAN),
            clients: cpu_seconds("self").unwrap_or(f64::NAN),
            machine_busy: machine_cpu().map(|(busy, _)| busy),
        }
    }
}

/// Average CPU use during a phase, in cores.
struct CpuUse {
    server: f64,
    clients: f64,
    attacker: Option<f64>,
    others: Option<f64>,
    load_avg: f64,
}

impl CpuUse {
    fn between(a: &CpuSnapshot, b: &CpuSnapshot, attacker_seconds: Option<f64>) -> Self {
        let wall = b.at.duration_since(a.at).as_secs_f64().max(1e-3);
        let server = (b.server - a.server) / wall;
        let clients = (b.clients - a.clients) / wall;
        let attacker = attacker_seconds.map(|s| s / wall);
        let others = match (a.machine_busy, b.machine_busy) {
            (Some(x), Some(y)) => {
                Some(((y - x) / wall - server - clients - attacker.unwrap_or(0.0)).max(0.0))
            }
            _ => None,
        };
        let load_avg = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next().and_then(|x| x.parse().ok()))
            .unwrap_or(f64::NAN);
        Self {
            server,
            clients,
            attacker,
            others,
            load_avg,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Phases

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

struct Row {
    phase: &'static str,
    stats: PhaseStats,
    note: String,
    cpu: CpuUse,
}

fn rate(s: &Samples) -> f64 {
    let total = s.succeeded() as u64 + s.failed;
    if total == 0 {
        0.0
    } else {
        s.succeeded() as f64 / total as f64
    }
}

fn print_rows(rows: &mut [Row]) -> bool {
    println!();
    println!(
        "| phase | keep-alive ok | p50 ms | p99 ms | new-conn ok | p50 ms | p99 ms | /healthz ok | p99 ms | RSS max MiB | verdict |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let mut all_pass = true;
    for row in rows.iter_mut() {
        let s = &mut row.stats;
        for x in [&mut s.keep_alive, &mut s.new_conn, &mut s.healthz] {
            x.ok.sort();
            x.opening.sort();
        }
        let mut misses = Vec::new();
        for (name, x) in [("keep-alive", &s.keep_alive), ("new-conn", &s.new_conn)] {
            if rate(x) < GOOD_SUCCESS_MIN {
                misses.push(format!("{name} success {:.1} %", rate(x) * 100.0));
            }
            if percentile(&x.ok, 0.99) > GOOD_P99_MAX {
                misses.push(format!("{name} p99 {} ms", ms(percentile(&x.ok, 0.99))));
            }
        }
        if percentile(&s.healthz.ok, 0.99) > HEALTHZ_P99_MAX || rate(&s.healthz) < GOOD_SUCCESS_MIN
        {
            misses.push("/healthz".into());
        }
        if s.rss_max_kib > RSS_MAX_KIB {
            misses.push("RSS".into());
        }
        all_pass &= misses.is_empty();
        let frac = |x: &Samples| format!("{}/{}", x.succeeded(), x.succeeded() as u64 + x.failed);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {} |",
            row.phase,
            frac(&s.keep_alive),
            ms(percentile(&s.keep_alive.ok, 0.5)),
            ms(percentile(&s.keep_alive.ok, 0.99)),
            frac(&s.new_conn),
            ms(percentile(&s.new_conn.ok, 0.5)),
            ms(percentile(&s.new_conn.ok, 0.99)),
            frac(&s.healthz),
            ms(percentile(&s.healthz.ok, 0.99)),
            s.rss_max_kib as f64 / 1024.0,
            if misses.is_empty() {
                "pass".to_string()
            } else {
                format!("MISS: {}", misses.join(", "))
            },
        );
    }
    println!();
    println!(
        "CPU during each phase, in cores (of 2): the server, the good clients (this process), the attacker process, everything else on the machine; and the 1-min load average at the end"
    );
    println!("| phase | server | good clients | attacker | others | load avg |");
    println!("|---|---:|---:|---:|---:|---:|");
    for row in rows.iter() {
        let c = &row.cpu;
        println!(
            "| {} | {:.2} | {:.2} | {} | {} | {:.1} |",
            row.phase,
            c.server,
            c.clients,
            c.attacker.map_or("-".into(), |a| format!("{a:.2}")),
            c.others.map_or("?".into(), |o| format!("{o:.2}")),
            c.load_avg,
        );
    }
    println!();
    println!(
        "the first {} s of each phase, while the attack opens its connections (latencies above: from then on): successes, p50 / max ms",
        OPENING.as_secs()
    );
    println!("| phase | keep-alive | new-conn | /healthz |");
    println!("|---|---:|---:|---:|");
    for row in rows.iter() {
        let opening = |x: &Samples| {
            format!(
                "{}, {} / {}",
                x.opening.len(),
                ms(percentile(&x.opening, 0.5)),
                ms(x.opening.last().copied().unwrap_or_default())
            )
        };
        let s = &row.stats;
        println!(
            "| {} | {} | {} | {} |",
            row.phase,
            opening(&s.keep_alive),
            opening(&s.new_conn),
            opening(&s.healthz)
        );
    }
    println!();
    println!(
        "slowest new-connection reviews of each phase: time since the attack started, the review's time (of which TCP connect and TLS handshake)"
    );
    for row in rows.iter() {
        let slowest: Vec<String> = row
            .stats
            .slowest_new_conn
            .iter()
            .map(|s| {
                format!(
                    "+{:.2} s {} ms ({} ms)",
                    s.at.as_secs_f64(),
                    ms(s.total),
                    ms(s.handshake)
                )
            })
            .collect();
        println!("{}: {}", row.phase, slowest.join(", "));
    }
    println!();
    for row in rows.iter() {
        println!("{}: {}", row.phase, row.note);
        for (name, x) in [
            ("keep-alive", &row.stats.keep_alive),
            ("new-conn", &row.stats.new_conn),
            ("healthz", &row.stats.healthz),
        ] {
            if let Some(f) = &x.first_failure {
                println!(
                    "  first {name} failure: {}",
                    f.chars().take(200).collect::<String>()
                );
            }
        }
    }
    all_pass
}

/// Counters from `/metrics` worth showing after a phase.
async fn metrics_note(server: &Server) -> String {
    let Ok((_, text)) = http_get(server.probe, "/metrics").await else {
        return "metrics unavailable".into();
    };
    text.lines()
        .filter(|l| {
            !l.starts_with('#')
                && (l.starts_with("mtls_gate_connections_evicted_total")
                    || l.starts_with("mtls_gate_http_errors_total")
                    || l.starts_with("mtls_gate_certificate_reloads_total")
                    || l.starts_with("mtls_gate_held_connections"))
        })
        .map(|l| l.replace("mtls_gate_", ""))
        .collect::<Vec<_>>()
        .join("; ")
}

const PHASES: [&str; 8] = [
    "baseline",
    "h2-idle",
    "slow-bodies",
    "probe-idle",
    "slowloris",
    "stream-5mib",
    "bodies-4mib",
    "expired-cert",
];

/// The good clients and samplers against one server.
struct Measuring {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn measure(server: &Server, stats: &Shared) -> Measuring {
    let (stop, rx) = watch::channel(false);
    let pid = server.child.id();
    let tasks = vec![
        tokio::spawn(keep_alive_client(
            server.https,
            server.roots.clone(),
            stats.clone(),
            rx.clone(),
        )),
        tokio::spawn(new_connection_client(
            server.https,
            server.roots.clone(),
            stats.clone(),
            rx.clone(),
        )),
        tokio::spawn(healthz_prober(server.probe, stats.clone(), rx.clone())),
        tokio::spawn(rss_sampler(pid, stats.clone(), rx)),
    ];
    Measuring { stop, tasks }
}

impl Measuring {
    async fn finish(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

async fn run(
    seconds: u64,
    only: Option<Vec<String>>,
    one_server: bool,
    nice: u8,
) -> anyhow::Result<bool> {
    let stats: Shared = Arc::default();
    let mut current: Option<(Server, Measuring)> = None;
    let mut rows = Vec::new();
    for phase in PHASES {
        if only.as_ref().is_some_and(|o| !o.iter().any(|p| p == phase)) {
            continue;
        }
        if current.is_none() || !one_server {
            if let Some((server, measuring)) = current.take() {
                measuring.finish().await;
                drop(server);
            }
            let server = start_server()?;
            println!(
                "{phase}: mtls-gate webhook pid {}: https {} probes {}; {API_ROUTES} routes on {API_HOST}; {seconds} s",
                server.child.id(),
                server.https,
                server.probe
            );
            let measuring = measure(&server, &stats);
            // Warm-up: connections and caches, not measured.
            tokio::time::sleep(Duration::from_secs(1)).await;
            current = Some((server, measuring));
        }
        let Some((server, _)) = current.as_ref() else {
            continue;
        };
        let counters = Arc::new(AttackCounters::default());
        let (stop_tx, stop) = watch::channel(false);
        *stats.lock().unwrap_or_else(|e| e.into_inner()) = PhaseStats::starting_now();
        let mut note = String::new();
        let cpu_before = CpuSnapshot::take(server.child.id());
        let mut attacker = None;
        match phase {
            "h2-idle" | "slow-bodies" | "probe-idle" | "slowloris" | "stream-5mib"
            | "bodies-4mib" => {
                attacker = Some(spawn_attacker(phase, server, seconds, nice)?);
            }
            "expired-cert" => {
                let key = KeyPair::from_pem(&server.key_pem)?;
                let now = time::OffsetDateTime::now_utc();
                let expired = leaf(
                    &server.ca,
                    &key,
                    Some((
                        now - time::Duration::days(30),
                        now - time::Duration::days(1),
                    )),
                )?;
                replace_file(&server.dir.path().join("tls.crt"), &expired)?;
                let probe = server.probe;
                let c = counters.clone();
                tokio::spawn(async move {
                    let mut stop = stop;
                    let mut tick = tokio::time::interval(Duration::from_millis(200));
                    loop {
                        tokio::select! { _ = tick.tick() => {}, _ = stop.changed() => return }
                        match http_get(probe, "/readyz").await {
                            Ok((200, _)) => c.readyz_ok.fetch_add(1, Ordering::Relaxed),
                            _ => c.readyz_not_ok.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                });
                note.push_str("expired pair installed (reload poll every 2 s); ");
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let _ = stop_tx.send(true);
        let phase_stats = std::mem::take(&mut *stats.lock().unwrap_or_else(|e| e.into_inner()));
        let cpu_after = CpuSnapshot::take(server.child.id());
        let attacker_report = match attacker {
            Some(child) => Some(attacker_report(child).await),
            None => None,
        };
        if phase == "expired-cert" {
            replace_file(&server.dir.path().join("tls.crt"), &server.cert_pem)?;
        }
        note.push_str(&counters.summary());
        let mut attacker_cpu = None;
        match attacker_report {
            Some(Ok(report)) => {
                note.push_str(&report.summary);
                attacker_cpu = Some(report.cpu_seconds);
            }
            Some(Err(e)) => note.push_str(&format!("attacker: {e:#}")),
            None => {}
        }
        note.push_str(" | server: ");
        note.push_str(&metrics_note(server).await);
        eprintln!("{phase}: done");
        rows.push(Row {
            phase,
            stats: phase_stats,
            note,
            cpu: CpuUse::between(&cpu_before, &cpu_after, attacker_cpu),
        });
        // Let the attack's connections drain before the next phase.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    if let Some((server, measuring)) = current.take() {
        measuring.finish().await;
        drop(server);
    }
    let pass = print_rows(&mut rows);
    println!(
        "attacker process: {}",
        if nice == 0 {
            "same priority as the server and the good clients (ATTACK_NICE=0)".to_string()
        } else {
            format!("nice {nice} (ATTACK_NICE)")
        }
    );
    println!(
        "\ntargets: good reviews ≥ {:.0} % ok and p99 ≤ {} ms (each client), /healthz p99 ≤ {} ms, RSS ≤ {} MiB: {}",
        GOOD_SUCCESS_MIN * 100.0,
        GOOD_P99_MAX.as_millis(),
        HEALTHZ_P99_MAX.as_millis(),
        RSS_MAX_KIB / 1024,
        if pass { "all met" } else { "NOT all met" }
    );
    Ok(pass)
}

fn main() -> anyhow::Result<()> {
    // cargo bench passes `--bench`; nothing else is accepted.
    match rlimit::increase_nofile_limit(16_384) {
        Ok(n) if n < 4_096 => {
            eprintln!("warning: open-file limit {n}: attacks will be limited by it")
        }
        Ok(_) => {}
        Err(e) => eprintln!("warning: cannot raise the open-file limit: {e}"),
    }
    if std::env::var(ROLE_VAR).is_ok_and(|r| r == "attacker") {
        return attacker_main();
    }
    let nice = std::env::var("ATTACK_NICE")
        .ok()
        .and_then(|s| s.parse::<u8>().ok())
        .unwrap_or(0)
        .min(19);
    let seconds = std::env::var("ATTACK_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(20)
        .clamp(1, 60);
    let only = std::env::var("ATTACK_ONLY").ok().map(|s| {
        s.split(',')
            .map(|p| p.trim().to_string())
            .collect::<Vec<_>>()
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // Every phase is bounded; the whole run is too.
    let one_server = std::env::var("ATTACK_ONE_SERVER").is_ok_and(|v| v == "1");
    let limit = Duration::from_secs((seconds + 15) * PHASES.len() as u64 + 60);
    let pass = runtime
        .block_on(async { tokio::time::timeout(limit, run(seconds, only, one_server, nice)).await })
        .context("the attack run exceeded its time bound")??;
    runtime.shutdown_timeout(Duration::from_secs(2));
    if !pass {
        eprintln!("some targets were missed (see the table)");
    }
    Ok(())
}
