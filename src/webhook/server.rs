//! The HTTPS listener (`/validate`, `/mutate`, `/verify`) and the server lifecycle:
//! bind, serve, certificate reloading, graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use http::header::{ALLOW, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Bytes, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use super::metrics::{AdmissionLabels, ErrorReason, GateLabels, WebhookLabel, WebhookMetrics};
use super::review::{encode_response, parse_admission_review};
use super::tls::{CertReloader, CertResolver, server_config};
use super::{AdmissionHandler, gate, probe};

/// Limits and timeouts of the webhook server. `Default` gives production values.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest accepted request body (413 beyond). Default 4 MiB.
    pub max_body_bytes: usize,
    /// HTTP/1.1: time allowed to receive a request header. Note that hyper also applies it
    /// between requests on a keep-alive connection, so it is the HTTP/1.1 idle timeout too.
    /// Default 10 s.
    pub header_read_timeout: Duration,
    /// Time allowed to receive a whole request body once its header arrived (408 beyond).
    /// Default 10 s.
    pub body_read_timeout: Duration,
    /// Time allowed for the TLS handshake. Default 10 s.
    pub tls_handshake_timeout: Duration,
    /// A connection with no request in flight for this long is closed gracefully
    /// (HTTP/2 GOAWAY; covers HTTP/2 clients that never send a complete request).
    /// Default 90 s.
    pub idle_timeout: Duration,
    /// Open HTTPS connections (TLS handshakes included); beyond, new connections wait in
    /// the listen backlog. Default 1024.
    pub max_connections: usize,
    /// Admission requests being read or reviewed at once; beyond, 503. `/verify` is not
    /// counted (it reads no body). Default 64 (bounds buffered bodies to 256 MiB).
    pub max_in_flight: usize,
    /// HTTP/2 streams per connection. Default 128.
    pub http2_max_concurrent_streams: u32,
    /// After shutdown is requested, how long in-flight requests may take to finish before
    /// the remaining connections are dropped. Default 15 s.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 * 1024 * 1024,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
            max_connections: 1024,
            max_in_flight: 64,
            http2_max_concurrent_streams: 128,
            drain_timeout: Duration::from_secs(15),
        }
    }
}

/// Where and how the webhook server listens.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// HTTPS address (`/validate`, `/mutate`, `/verify`). Port 0 picks a free port.
    pub listen_addr: SocketAddr,
    /// Plain-HTTP probe address (`/healthz`, `/readyz`, `/metrics`). Port 0 picks one.
    pub probe_addr: SocketAddr,
    /// PEM certificate chain, leaf first (e.g. a mounted `tls.crt`).
    pub cert_file: PathBuf,
    /// PEM private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC) (e.g. a mounted `tls.key`).
    pub key_file: PathBuf,
    /// How often the two files are checked for a new pair. Default 2 s.
    pub reload_interval: Duration,
    /// Limits and timeouts.
    pub limits: Limits,
}

impl WebhookConfig {
    /// A configuration with default reload interval and limits.
    pub fn new(
        listen_addr: SocketAddr,
        probe_addr: SocketAddr,
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> Self {
        Self {
            listen_addr,
            probe_addr,
            cert_file: cert_file.into(),
            key_file: key_file.into(),
            reload_interval: Duration::from_secs(2),
            limits: Limits::default(),
        }
    }
}

/// Binds both listeners; starts nothing. Use [`BoundWebhook::local_addr`] and
/// [`BoundWebhook::probe_addr`] to learn ephemeral ports, then [`BoundWebhook::serve`].
pub async fn bind(config: WebhookConfig) -> anyhow::Result<BoundWebhook> {
    let https = TcpListener::bind(config.listen_addr)
        .await
        .with_context(|| format!("cannot listen on {} (webhook HTTPS)", config.listen_addr))?;
    let probe = TcpListener::bind(config.probe_addr)
        .await
        .with_context(|| format!("cannot listen on {} (probes)", config.probe_addr))?;
    let resolver = Arc::new(CertResolver::new());
    let tls = server_config(resolver.clone(), &[b"h2", b"http/1.1"])
        .context("cannot build the TLS configuration")?;
    Ok(BoundWebhook {
        https,
        probe,
        config,
        resolver,
        tls: Arc::new(tls),
    })
}

/// Binds and serves until `shutdown` resolves, then drains (see [`BoundWebhook::serve`]).
pub async fn serve(
    config: WebhookConfig,
    handler: Arc<dyn AdmissionHandler>,
    metrics: Arc<WebhookMetrics>,
    registry: Arc<Registry>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    bind(config)
        .await?
        .serve(handler, metrics, registry, shutdown)
        .await
}

/// Lifecycle of a running server, broadcast to connection tasks and the probe server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    Running,
    /// Shutdown requested: no new connections, in-flight requests finish.
    Draining,
    /// Drain timeout expired: remaining connections are dropped.
    Abort,
    /// Everything stopped (probe server and reloader exit).
    Stopped,
}

/// Both listeners, bound, with the TLS configuration ready.
pub struct BoundWebhook {
    https: TcpListener,
    probe: TcpListener,
    config: WebhookConfig,
    resolver: Arc<CertResolver>,
    tls: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for BoundWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundWebhook")
            .field("https", &self.https.local_addr().ok())
            .field("probe", &self.probe.local_addr().ok())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl BoundWebhook {
    /// The bound HTTPS address.
    pub fn local_addr(&self) -> SocketAddr {
        self.https.local_addr().unwrap_or(self.config.listen_addr)
    }

    /// The bound probe address.
    pub fn probe_addr(&self) -> SocketAddr {
        self.probe.local_addr().unwrap_or(self.config.probe_addr)
    }

    /// Serves until `shutdown` resolves. Then: `/readyz` answers 503, the HTTPS listener
    /// closes, connections finish their in-flight requests (HTTP/1.1 closes after the
    /// current response, HTTP/2 sends GOAWAY) for at most `limits.drain_timeout`, the
    /// rest are dropped, and the function returns.
    ///
    /// The certificate is loaded before the first connection is accepted when the files
    /// exist; otherwise handshakes fail and `/readyz` answers 503 until a poll finds a
    /// valid pair.
    pub async fn serve(
        self,
        handler: Arc<dyn AdmissionHandler>,
        metrics: Arc<WebhookMetrics>,
        registry: Arc<Registry>,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let BoundWebhook {
            https,
            probe,
            config,
            resolver,
            tls,
        } = self;
        let limits = config.limits.clone();
        let (phase_tx, phase_rx) = watch::channel(Phase::Running);
        let (reload_stop_tx, reload_stop_rx) = watch::channel(false);

        let mut reloader = CertReloader::new(
            &config.cert_file,
            &config.key_file,
            resolver.clone(),
            metrics.clone(),
        );
        reloader.poll_once().await;
        let reload_task = tokio::spawn(reloader.run(config.reload_interval, reload_stop_rx));

        let probe_task = tokio::spawn(probe::run(
            probe,
            probe::ProbeState {
                handler: handler.clone(),
                metrics: metrics.clone(),
                registry,
                resolver,
                phase: phase_rx.clone(),
            },
            limits.header_read_timeout,
        ));

        let shared = Arc::new(Shared {
            handler,
            metrics: metrics.clone(),
            in_flight: Semaphore::new(limits.max_in_flight.max(1)),
            limits: limits.clone(),
        });
        let builders = Arc::new(Builders::new(&limits));
        let acceptor = TlsAcceptor::from(tls);
        let max_connections = limits.max_connections.clamp(1, 1 << 20);
        let connections = Arc::new(Semaphore::new(max_connections));

        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                biased;
                () = &mut shutdown => break,
                p = connections.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let accepted = tokio::select! {
                biased;
                () = &mut shutdown => break,
                a = https.accept() => a,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    metrics.error(ErrorReason::Accept);
                    tracing::warn!(error = %e, "accept failed on the webhook port");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            tokio::spawn(serve_connection(
                tcp,
                peer,
                acceptor.clone(),
                shared.clone(),
                builders.clone(),
                phase_rx.clone(),
                permit,
            ));
        }

        tracing::info!("shutdown requested: draining webhook connections");
        drop(https);
        let _ = phase_tx.send(Phase::Draining);
        let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
        let drained = tokio::time::timeout(limits.drain_timeout, connections.acquire_many(all))
            .await
            .is_ok();
        if !drained {
            tracing::warn!(
                timeout = ?limits.drain_timeout,
                "drain timeout expired: dropping the remaining webhook connections"
            );
            let _ = phase_tx.send(Phase::Abort);
            // Connection tasks drop their connection as soon as they see Abort.
            let _ =
                tokio::time::timeout(Duration::from_secs(1), connections.acquire_many(all)).await;
        }
        let _ = phase_tx.send(Phase::Stopped);
        let _ = reload_stop_tx.send(true);
        let _ = reload_task.await;
        let _ = probe_task.await;
        tracing::info!("webhook server stopped");
        Ok(())
    }
}

/// State shared by all requests on the HTTPS port.
struct Shared {
    handler: Arc<dyn AdmissionHandler>,
    metrics: Arc<WebhookMetrics>,
    in_flight: Semaphore,
    limits: Limits,
}

/// One HTTP/1.1-only and one HTTP/2-only builder; ALPN picks one per connection.
struct Builders {
    h1: auto::Builder<TokioExecutor>,
    h2: auto::Builder<TokioExecutor>,
}

impl Builders {
    fn new(limits: &Limits) -> Self {
        let mut h1 = auto::Builder::new(TokioExecutor::new()).http1_only();
        h1.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .keep_alive(true)
            .max_headers(64);
        let mut h2 = auto::Builder::new(TokioExecutor::new()).http2_only();
        h2.http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.http2_max_concurrent_streams)
            .max_header_list_size(64 * 1024);
        // No HTTP/2 PING keep-alive: it costs on every frame, and connections without a
        // request in flight are closed by the idle watchdog (`idle_timeout`) anyway.
        Self { h1, h2 }
    }
}

/// Requests in flight and time of the last request activity on one connection.
struct Activity {
    epoch: Instant,
    in_flight: AtomicUsize,
    last_ms: AtomicU64,
}

struct ActivityGuard(Arc<Activity>);

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
        })
    }

    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn begin(self: &Arc<Self>) -> ActivityGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
        ActivityGuard(self.clone())
    }

    /// Resolves once no request has been in flight for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            if self.in_flight.load(Ordering::Relaxed) == 0 {
                let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
                let idle = self.epoch.elapsed().saturating_sub(last);
                if idle >= timeout {
                    return;
                }
                tokio::time::sleep(timeout - idle).await;
            } else {
                tokio::time::sleep(timeout).await;
            }
        }
    }
}

impl Drop for ActivityGuard {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn wait_phase(phase: &mut watch::Receiver<Phase>, at_least: Phase) {
    if phase.wait_for(|p| *p >= at_least).await.is_err() {
        // Sender gone: the server is gone; treat as the requested phase.
    }
}

async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    builders: Arc<Builders>,
    phase: watch::Receiver<Phase>,
    _permit: tokio::sync::OwnedSemaphorePermit,
) {
    let mut drain_rx = phase.clone();
    let mut abort_rx = phase;
    let limits = &shared.limits;
    let handshake = tokio::time::timeout(limits.tls_handshake_timeout, acceptor.accept(tcp));
    let tls = tokio::select! {
        r = handshake => match r {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                shared.metrics.error(ErrorReason::TlsHandshake);
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                shared.metrics.error(ErrorReason::TlsHandshakeTimeout);
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
        () = wait_phase(&mut drain_rx, Phase::Draining) => return,
    };
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
    let builder = if h2 { &builders.h2 } else { &builders.h1 };

    let activity = Activity::new();
    let svc_activity = activity.clone();
    let svc_shared = shared.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let guard = svc_activity.begin();
        let shared = svc_shared.clone();
        async move {
            let response = route(&shared, req).await;
            drop(guard);
            Ok::<_, Infallible>(response)
        }
    });
    let conn = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);

    let mut closing = false;
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    classify_connection_error(&shared.metrics, peer, &*e);
                }
                return;
            }
            () = wait_phase(&mut drain_rx, Phase::Draining), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            () = activity.idle_for(limits.idle_timeout), if !closing => {
                tracing::debug!(%peer, "closing idle connection");
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            () = wait_phase(&mut abort_rx, Phase::Abort) => return,
        }
    }
}

fn classify_connection_error(
    metrics: &WebhookMetrics,
    peer: SocketAddr,
    err: &(dyn std::error::Error + 'static),
) {
    if let Some(e) = err.downcast_ref::<hyper::Error>() {
        if e.is_timeout() {
            metrics.error(ErrorReason::HeaderTimeout);
            tracing::debug!(%peer, "request header read timed out");
            return;
        }
        if e.is_parse() || e.is_parse_too_large() {
            metrics.error(ErrorReason::Connection);
            tracing::debug!(%peer, error = %e, "malformed HTTP request");
            return;
        }
    }
    // Client resets and early closes are routine; not counted.
    tracing::debug!(%peer, error = %err, "connection ended with an error");
}

type Resp = Response<Full<Bytes>>;

fn text(status: StatusCode, message: impl Into<String>) -> Resp {
    let mut body = message.into();
    body.push('\n');
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Webhook {
    Validate,
    Mutate,
}

impl Webhook {
    fn as_str(self) -> &'static str {
        match self {
            Webhook::Validate => "validate",
            Webhook::Mutate => "mutate",
        }
    }
}

async fn route(shared: &Shared, req: Request<Incoming>) -> Resp {
    let webhook = match req.uri().path() {
        "/verify" => return verify(shared, &req),
        "/validate" => Webhook::Validate,
        "/mutate" => Webhook::Mutate,
        _ => {
            shared.metrics.error(ErrorReason::NotFound);
            return text(StatusCode::NOT_FOUND, "not found");
        }
    };
    if req.method() != Method::POST {
        shared.metrics.error(ErrorReason::MethodNotAllowed);
        let mut resp = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed: use POST",
        );
        resp.headers_mut()
            .insert(ALLOW, http::HeaderValue::from_static("POST"));
        return resp;
    }
    admission(shared, req, webhook).await
}

fn verify(shared: &Shared, req: &Request<Incoming>) -> Resp {
    let verdict = gate::verify(req.uri().query(), req.headers());
    let decision = if verdict.allowed { "allow" } else { "deny" };
    shared
        .metrics
        .gate_decisions
        .get_or_create(&GateLabels {
            controller: verdict.controller_label(),
            decision,
        })
        .inc();
    if verdict.allowed {
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = StatusCode::NO_CONTENT;
        resp
    } else {
        tracing::debug!(
            reason = verdict.reason,
            controller = verdict.controller_label(),
            "gate denied"
        );
        text(StatusCode::FORBIDDEN, verdict.reason)
    }
}

/// Reads the body within the limits, or returns the error response.
async fn read_body(shared: &Shared, body: Incoming) -> Result<Vec<u8>, Resp> {
    let max = shared.limits.max_body_bytes;
    let too_large = |shared: &Shared| {
        shared.metrics.error(ErrorReason::PayloadTooLarge);
        text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {max} bytes"),
        )
    };
    // Content-Length (HTTP/1.1 and HTTP/2) is known up front: refuse before reading.
    let announced = body.size_hint().lower();
    if announced > max as u64 {
        return Err(too_large(shared));
    }
    let deadline = tokio::time::Instant::now() + shared.limits.body_read_timeout;
    let mut buf = Vec::with_capacity(usize::try_from(announced).unwrap_or(0));
    let mut body = body;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => {
                shared.metrics.error(ErrorReason::BodyTimeout);
                return Err(text(
                    StatusCode::REQUEST_TIMEOUT,
                    "request body not received in time",
                ));
            }
            Ok(None) => return Ok(buf),
            Ok(Some(Err(e))) => {
                shared.metrics.error(ErrorReason::BodyRead);
                return Err(text(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read request body: {e}"),
                ));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if buf.len().saturating_add(data.len()) > max {
                return Err(too_large(shared));
            }
            buf.extend_from_slice(&data);
        }
    }
}

/// Keeps `mtls_gate_admission_in_flight` up while alive.
struct InFlight<'a>(&'a prometheus_client::metrics::gauge::Gauge);

impl<'a> InFlight<'a> {
    fn enter(gauge: &'a prometheus_client::metrics::gauge::Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn kind_label(kind: &str) -> &'static str {
    match kind {
        "Ingress" => "Ingress",
        "ApiProviderProfile" => "ApiProviderProfile",
        _ => "other",
    }
}

fn operation_label(op: &kube::core::admission::Operation) -> &'static str {
    use kube::core::admission::Operation;
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

async fn admission(shared: &Shared, req: Request<Incoming>, webhook: Webhook) -> Resp {
    let Ok(_permit) = shared.in_flight.try_acquire() else {
        shared.metrics.error(ErrorReason::Overloaded);
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many admission requests in flight",
        );
    };
    let _in_flight = InFlight::enter(&shared.metrics.admission_in_flight);
    let started = Instant::now();
    let body = match read_body(shared, req.into_body()).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let request = match parse_admission_review(&body) {
        Ok(r) => r,
        Err(message) => {
            shared.metrics.error(ErrorReason::BadRequest);
            tracing::debug!(%message, "malformed AdmissionReview");
            return text(StatusCode::BAD_REQUEST, message);
        }
    };
    drop(body);
    let handler = &*shared.handler;
    let outcome = catch_unwind(AssertUnwindSafe(|| match webhook {
        Webhook::Validate => handler.validate(&request),
        Webhook::Mutate => handler.mutate(&request),
    }));
    let mut labels = AdmissionLabels {
        webhook: webhook.as_str(),
        operation: operation_label(&request.operation),
        kind: kind_label(&request.kind.kind),
        decision: "error",
    };
    let resp = match outcome {
        Ok(reviewed) => {
            labels.decision = reviewed.decision.as_str();
            match encode_response(&request, reviewed.response) {
                Ok(json) => {
                    let mut resp = Response::new(Full::new(Bytes::from(json)));
                    resp.headers_mut().insert(
                        CONTENT_TYPE,
                        http::HeaderValue::from_static("application/json"),
                    );
                    resp
                }
                Err(e) => {
                    labels.decision = "error";
                    shared.metrics.error(ErrorReason::ResponseEncoding);
                    tracing::error!(uid = %request.uid, error = %e, "cannot encode admission response");
                    text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "cannot encode admission response",
                    )
                }
            }
        }
        Err(_) => {
            shared.metrics.error(ErrorReason::HandlerPanic);
            tracing::error!(
                uid = %request.uid,
                webhook = webhook.as_str(),
                "admission handler panicked"
            );
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "admission handler failed",
            )
        }
    };
    shared
        .metrics
        .admission_requests
        .get_or_create(&labels)
        .inc();
    shared
        .metrics
        .admission_duration
        .get_or_create(&WebhookLabel {
            webhook: webhook.as_str(),
        })
        .observe(started.elapsed().as_secs_f64());
    resp
}
