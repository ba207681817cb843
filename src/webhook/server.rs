//! The HTTPS listener (`/validate`, `/mutate`, `/verify`) and the server lifecycle:
//! bind, serve, certificate reloading, graceful shutdown.
//!
//! Defences (design §8, adversarial test F1, F3, F7): connection slots with eviction of
//! the idlest connection at the limit (`webhook::conn`), an evicted connection that never
//! sent a request held open, unread, for a while so that its client does not reconnect at
//! once (`webhook::tarpit`); TLS handshake, header and first-request deadlines; HTTP/2
//! stream limit, keep-alive PINGs and small flow-control windows; header size limits;
//! bodies read under a deadline and a minimum rate into one shared memory budget, large
//! ones at a shared pace (`webhook::body`); reviews decoded and run on the blocking pool,
//! at most `review_workers` at once, taken only once the body is complete, and answered
//! (fail closed) when they miss the review deadline. New connections are taken in (accept,
//! TLS handshake, the first request's arrival; an HTTP/1.1 head read whole before hyper's
//! connection is built, `webhook::request_head`) on a runtime of their own, so a handshake
//! flood does not queue in front of established connections (`webhook::runtimes`).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use http::header::{ALLOW, CONTENT_TYPE, EXPECT};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use kube::core::TypeMeta;
use kube::core::admission::AdmissionResponse;
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, oneshot, watch};
use tokio_rustls::TlsAcceptor;

use super::body::{self, BodyBudget, BodyError, BodyPace};
use super::conn::{Activity, ConnectionSlots, Slot};
use super::metrics::{
    AdmissionLabels, ErrorReason, GateLabels, PortLabel, WebhookLabel, WebhookMetrics,
};
use super::request_head::{HeadRead, ReadAhead, read_request_head};
use super::review::{
    encode_response, encode_response_to, estimate_decoded_bytes, largest_unscanned_body,
    parse_admission_review,
};
use super::runtimes::{BackgroundPool, MovableTcp, ServerThread, raise_open_file_limit};
use super::tarpit::Tarpit;
use super::tls::{CertReloader, CertResolver, server_config};
use super::{AdmissionHandler, Reviewed, gate, probe};

pub use super::limits::{Limits, ProbeLimits};

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

/// Connections the kernel keeps established for the HTTPS listener until they are
/// accepted. The kernel caps it at `net.core.somaxconn` (4096 by default since Linux
/// 5.4); Go's listeners ask for that value (`net.maxListenerBacklog`, sock_linux.go).
/// tokio's `TcpListener::bind` asks for 128 (mio 1.2, as Rust's standard library): a
/// burst of new connections (a connection flood's first second) filled that queue, and a
/// good client's SYN was dropped and sent again a second later (measured under 1,100
/// slowloris connections: one new-connection review took 1.05 s). A connection waiting
/// here costs no memory of this process.
const HTTPS_BACKLOG: u32 = 4096;

/// A listener on `addr` (`SO_REUSEADDR`, as `TcpListener::bind` sets it) with room for
/// `backlog` connections not yet accepted.
fn listen(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Binds both listeners; starts nothing. Use [`BoundWebhook::local_addr`] and
/// [`BoundWebhook::probe_addr`] to learn ephemeral ports, then [`BoundWebhook::serve`].
pub async fn bind(config: WebhookConfig) -> anyhow::Result<BoundWebhook> {
    let limits = &config.limits;
    // Connections, held evicted connections, probe connections, and room for the rest.
    let descriptors = [limits.max_held_evicted, limits.probe.max_connections, 256]
        .into_iter()
        .fold(limits.max_connections, usize::saturating_add);
    raise_open_file_limit(u64::try_from(descriptors).unwrap_or(u64::MAX));
    let https = listen(config.listen_addr, HTTPS_BACKLOG)
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

        let mut probe_thread = probe::spawn_thread(
            probe,
            probe::ProbeState {
                handler: handler.clone(),
                metrics: metrics.clone(),
                registry,
                resolver,
                phase: phase_rx.clone(),
            },
            limits.probe.clone(),
        )
        .await
        .context("cannot start the probe server")?;

        let large_workers = (limits.review_workers / 2).max(1);
        let shared = Arc::new(Shared {
            handler,
            metrics: metrics.clone(),
            budget: BodyBudget::new(limits.body_memory_bytes, metrics.body_bytes.clone()),
            // Paced beyond the size from which bodies need the decoded-size scan.
            body_pace: BodyPace::new(
                limits.large_body_read_rate,
                largest_unscanned_body(limits.max_decoded_bytes),
            ),
            waiting: Semaphore::new(limits.max_in_flight.max(1)),
            workers: Arc::new(Semaphore::new(limits.review_workers.max(1))),
            large_workers: Arc::new(Semaphore::new(large_workers)),
            large_reviews: BackgroundPool::new(
                "mtls-gate-large-reviews",
                large_workers,
                LARGE_REVIEW_NICENESS,
            )
            .context("cannot start the large-review threads")?,
            limits: limits.clone(),
            h1: http1_builder(&limits),
            h2: http2_builder(&limits),
        });
        let slots = ConnectionSlots::new(
            limits.max_connections,
            metrics
                .open_connections
                .get_or_create(&PortLabel { port: "webhook" })
                .clone(),
        );
        let graceful = Arc::new(GracefulShutdown::new());
        let (stop_accepting, stop_accepting_rx) = watch::channel(false);
        let intake = Intake {
            acceptor: TlsAcceptor::from(tls),
            shared,
            stop_accepting: stop_accepting_rx,
            phase: phase_rx.clone(),
            slots: slots.clone(),
            graceful: graceful.clone(),
            serving: tokio::runtime::Handle::current(),
            tarpit: Arc::new(Tarpit::new(
                limits.evicted_hold,
                limits.max_held_evicted,
                metrics.held_connections.clone(),
            )),
        };
        // As many handshake workers as the serving runtime has (the CPUs this process may
        // use); they take CPU from requests only through the operating system's scheduler.
        let workers = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let mut intake_thread = ServerThread::spawn("mtls-gate-intake", workers, https, |https| {
            intake.run(https)
        })
        .await
        .context("cannot start the connection intake threads")?;

        // Only a panic ends the intake before the drain: then the server drains and stops
        // with an error rather than run without accepting connections.
        let intake_failed = tokio::select! {
            () = shutdown => false,
            () = intake_thread.stopped() => true,
        };

        if intake_failed {
            tracing::error!("the connection intake stopped: draining and stopping");
        } else {
            tracing::info!("shutdown requested: draining webhook connections");
        }
        // The intake stops accepting: its listener is closed, and the connections that have
        // not sent a request yet close with its runtime. Only then does `/readyz` say so
        // (phase `Draining`), so that nothing connects after it has; the others drain.
        let _ = stop_accepting.send(true);
        intake_thread.stopped().await;
        let _ = phase_tx.send(Phase::Draining);
        let drain = async {
            // The intake held the only other reference.
            if let Ok(graceful) = Arc::try_unwrap(graceful) {
                graceful.shutdown().await;
            }
            slots.all_closed().await;
        };
        if tokio::time::timeout(limits.drain_timeout, drain)
            .await
            .is_err()
        {
            tracing::warn!(
                timeout = ?limits.drain_timeout,
                "drain timeout expired: dropping the remaining webhook connections"
            );
            let _ = phase_tx.send(Phase::Abort);
            // Connection tasks drop their connection as soon as they see Abort.
            let _ = tokio::time::timeout(Duration::from_secs(1), slots.all_closed()).await;
        }
        let _ = phase_tx.send(Phase::Stopped);
        let _ = reload_stop_tx.send(true);
        let _ = reload_task.await;
        probe_thread.stopped().await;
        if intake_failed {
            anyhow::bail!("the webhook's connection intake stopped unexpectedly");
        }
        tracing::info!("webhook server stopped");
        Ok(())
    }
}

/// How much lower the CPU priority of large-body reviews is (nice value added): at 10 a
/// busy thread gets about a tenth of the CPU that one at the process's priority gets
/// (the kernel's weights, `sched_prio_to_weight`: 110 against 1024).
const LARGE_REVIEW_NICENESS: i32 = 10;

/// State shared by all requests on the HTTPS port.
struct Shared {
    handler: Arc<dyn AdmissionHandler>,
    metrics: Arc<WebhookMetrics>,
    /// Memory of all request bodies.
    budget: Arc<BodyBudget>,
    /// The pace of reading large bodies.
    body_pace: BodyPace,
    /// Complete admission requests waiting for or holding a review worker.
    waiting: Semaphore,
    /// Review workers (blocking-pool threads running a review).
    workers: Arc<Semaphore>,
    /// The workers that reviews of large bodies may take: half of them.
    large_workers: Arc<Semaphore>,
    /// Where reviews of large bodies run: threads at a lower CPU priority.
    large_reviews: BackgroundPool,
    limits: Limits,
    h1: hyper::server::conn::http1::Builder,
    h2: hyper::server::conn::http2::Builder<TokioExecutor>,
}

fn http1_builder(limits: &Limits) -> hyper::server::conn::http1::Builder {
    let mut h1 = hyper::server::conn::http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true)
        .max_headers(64)
        .max_header_size(limits.max_header_bytes)
        // The read buffer: one header, or body chunks of at most this size.
        .max_buf_size(limits.max_header_bytes.max(8192) + 8192);
    h1
}

fn http2_builder(limits: &Limits) -> hyper::server::conn::http2::Builder<TokioExecutor> {
    let mut h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(limits.http2_keep_alive_interval)
        .keep_alive_timeout(limits.http2_keep_alive_timeout)
        .initial_connection_window_size(limits.http2_connection_window)
        .initial_stream_window_size(limits.http2_stream_window);
    h2
}

async fn wait_phase(phase: &mut watch::Receiver<Phase>, at_least: Phase) {
    if phase.wait_for(|p| *p >= at_least).await.is_err() {
        // Sender gone: the server is gone; treat as the requested phase.
    }
}

/// The intake of new HTTPS connections, on a runtime of its own (`webhook::runtimes`: a
/// handshake flood then queues behind itself, not in front of the requests of established
/// connections): accept, take a connection slot, TLS handshake, and wait for the client's
/// first request. Then the connection moves to the serving runtime.
struct Intake {
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    /// `true` (or its sender gone) once the server stops accepting connections.
    stop_accepting: watch::Receiver<bool>,
    phase: watch::Receiver<Phase>,
    slots: Arc<ConnectionSlots>,
    /// Shared with `serve`, which shuts it down once the intake has stopped.
    graceful: Arc<GracefulShutdown>,
    /// The runtime that serves requests.
    serving: tokio::runtime::Handle,
    /// Where connections evicted before their first request wait to close.
    tarpit: Arc<Tarpit>,
}

impl Intake {
    /// Accepts until told to stop; the listener closes when this returns.
    async fn run(self, https: TcpListener) {
        let metrics = &self.shared.metrics;
        let port = PortLabel { port: "webhook" };
        let mut stop = self.stop_accepting.clone();
        let mut stopped = async move || {
            let _ = stop.wait_for(|stop| *stop).await;
        };
        let tarpit = self.tarpit.clone();
        // Dropped with the intake's runtime; the sockets still held close with the tarpit.
        tokio::spawn(async move { tarpit.run().await });
        loop {
            let accepted = tokio::select! {
                biased;
                () = stopped() => return,
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
            let (slot, evicted) = tokio::select! {
                biased;
                () = stopped() => return,
                s = self.slots.acquire() => s,
            };
            if evicted > 0 {
                metrics
                    .connections_evicted
                    .get_or_create(&port)
                    .inc_by(evicted);
            }
            let _ = tcp.set_nodelay(true);
            let connection = Connection {
                peer,
                shared: self.shared.clone(),
                phase: self.phase.clone(),
                slot,
                graceful: self.graceful.watcher(),
            };
            tokio::spawn(admit(
                tcp,
                self.acceptor.clone(),
                connection,
                self.serving.clone(),
                self.tarpit.clone(),
            ));
        }
    }
}

/// A TLS connection that can move to the serving runtime.
type TlsConnection = tokio_rustls::server::TlsStream<MovableTcp>;

/// What a connection holds from its acceptance to its end, on either runtime.
struct Connection {
    peer: SocketAddr,
    shared: Arc<Shared>,
    phase: watch::Receiver<Phase>,
    /// Released when the connection ends.
    slot: Slot,
    graceful: Watcher,
}

/// The intake's part of a connection: the TLS handshake and the wait for the client's first
/// request (HTTP/1.1: its whole head). A connection that gets that far moves to the serving
/// runtime ([`serve_http`]); the others close here.
async fn admit(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    connection: Connection,
    serving: tokio::runtime::Handle,
    tarpit: Arc<Tarpit>,
) {
    // No wait for the drain here: when the server stops accepting, the intake's runtime
    // and with it this task are dropped, before the drain begins.
    let Connection {
        peer,
        ref shared,
        ref slot,
        ..
    } = connection;
    let limits = &shared.limits;
    let activity = slot.activity();
    let handshake = tokio::time::timeout(
        limits.tls_handshake_timeout,
        acceptor.accept(MovableTcp::new(tcp)),
    );
    let mut tls = tokio::select! {
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
        () = activity.evicted() => return,
    };
    let Some(head) = first_request(&mut tls, shared, &activity, peer).await else {
        if activity.was_evicted() {
            hold_evicted(&tarpit, tls, peer);
        }
        return;
    };
    if let Err(e) = tls.get_mut().0.detach() {
        tracing::debug!(%peer, error = %e, "cannot move the connection to the serving runtime");
        return;
    }
    serving.spawn(serve_http(tls, head, connection));
}

/// The serving runtime's part of a connection: hyper's connection, HTTP/2, or HTTP/1.1
/// starting with the request head the intake read.
async fn serve_http(mut tls: TlsConnection, http1_head: Option<Bytes>, connection: Connection) {
    let Connection {
        peer,
        shared,
        phase,
        slot,
        graceful,
    } = connection;
    if let Err(e) = tls.get_mut().0.attach() {
        tracing::debug!(%peer, error = %e, "cannot move the connection to the serving runtime");
        return;
    }
    let activity = slot.activity();
    let svc_activity = activity.clone();
    let svc_shared = shared.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let busy = svc_activity.begin();
        let shared = svc_shared.clone();
        async move {
            let response = route(&shared, req).await;
            drop(busy);
            Ok::<_, Infallible>(response)
        }
    });
    match http1_head {
        None => {
            let conn = graceful.watch(shared.h2.serve_connection(TokioIo::new(tls), service));
            drive(conn, &shared, &activity, phase, peer).await;
        }
        Some(head) => {
            let io = TokioIo::new(ReadAhead::new(head, tls));
            let conn = graceful.watch(shared.h1.serve_connection(io, service));
            drive(conn, &shared, &activity, phase, peer).await;
        }
    }
    drop(slot);
}

/// Waits, after the handshake, until the client sends something: a client that stays
/// silent (an idle flood, adversarial test F3) then holds only its TLS state, and hyper's
/// connection (its buffers, the HTTP/2 state) is built only for clients that speak. In
/// both protocols the client speaks first. `None` when the connection is to be closed
/// instead (see [`before_hyper`]) or on a record rustls refuses. Bytes that arrived with
/// the handshake's last flight are already in rustls's buffer, not on the socket, so they
/// are looked for there first.
async fn first_bytes(
    tls: &mut TlsConnection,
    shared: &Shared,
    activity: &Activity,
    peer: SocketAddr,
) -> Option<()> {
    let buffered = match tls.get_mut().1.process_new_packets() {
        Ok(state) => state.plaintext_bytes_to_read() > 0 || state.peer_has_closed(),
        Err(e) => {
            shared.metrics.error(ErrorReason::Connection);
            tracing::debug!(%peer, error = %e, "TLS record refused after the handshake");
            return None;
        }
    };
    if !buffered {
        let readable = tls.get_ref().0.readable();
        before_hyper(readable, shared, activity, peer).await?.ok()?;
    }
    Some(())
}

/// Waits for the client's first request: `Some(None)` once an HTTP/2 client has sent
/// something (hyper reads the preface), `Some(Some(head))` with an HTTP/1.1 request head.
/// `None` when the connection is to be closed instead.
async fn first_request(
    tls: &mut TlsConnection,
    shared: &Shared,
    activity: &Activity,
    peer: SocketAddr,
) -> Option<Option<Bytes>> {
    first_bytes(tls, shared, activity, peer).await?;
    if tls.get_ref().1.alpn_protocol() == Some(b"h2".as_slice()) {
        return Some(None);
    }
    http1_head(tls, shared, activity, peer).await.map(Some)
}

/// Hands the socket of a connection evicted before its first request to the tarpit: its
/// client then sees no close for a while, and does not reconnect at once to evict the
/// next connection (`webhook::tarpit`). The TLS state is dropped here.
fn hold_evicted(tarpit: &Tarpit, tls: TlsConnection, peer: SocketAddr) {
    let (tcp, _) = tls.into_inner();
    match tcp.into_std() {
        Ok(socket) => tarpit.hold(socket, Instant::now()),
        Err(e) => tracing::debug!(%peer, error = %e, "cannot hold an evicted connection"),
    }
}

/// An HTTP/1.1 connection's first request head (and what followed it in the same reads),
/// read before hyper's connection is built (`webhook::request_head`: a slowloris client
/// then holds its TLS state and the bytes it sent, not hyper's buffers). `None` when the
/// connection is to be closed instead.
async fn http1_head(
    tls: &mut TlsConnection,
    shared: &Shared,
    activity: &Activity,
    peer: SocketAddr,
) -> Option<Bytes> {
    let read = read_request_head(tls, shared.limits.max_header_bytes);
    match before_hyper(read, shared, activity, peer).await? {
        Ok(HeadRead::Ready(head)) => Some(head),
        Ok(HeadRead::Closed) => None,
        Err(e) => {
            // A record rustls refuses is counted, as in `first_bytes`; client resets and
            // early closes are routine, as in `classify_connection_error`.
            if e.kind() == std::io::ErrorKind::InvalidData {
                shared.metrics.error(ErrorReason::Connection);
            }
            tracing::debug!(%peer, error = %e, "connection ended before its request head");
            None
        }
    }
}

/// Runs `wait` (for the client, before hyper's connection is built) unless, first, the
/// connection has been open past its header read timeout without a request or is
/// evicted: then `None`, and the connection is to be closed. The deadline
/// runs from the connection's arrival, so bytes trickling in do not extend it.
async fn before_hyper<T>(
    wait: impl Future<Output = T>,
    shared: &Shared,
    activity: &Activity,
    peer: SocketAddr,
) -> Option<T> {
    let limits = &shared.limits;
    tokio::select! {
        r = wait => Some(r),
        () = activity.idle_for(limits.header_read_timeout, limits.idle_timeout) => {
            shared.metrics.error(ErrorReason::HeaderTimeout);
            tracing::debug!(%peer, "closing a connection whose request did not arrive in time");
            None
        }
        () = activity.evicted() => None,
    }
}

/// Runs one connection until it ends, is idle too long (before its first request:
/// `header_read_timeout`, after: `idle_timeout`), is evicted to make room, or shutdown
/// aborts it. Dropping the connection closes it.
async fn drive(
    conn: impl Future<Output = Result<(), hyper::Error>>,
    shared: &Shared,
    activity: &Activity,
    mut phase: watch::Receiver<Phase>,
    peer: SocketAddr,
) {
    let limits = &shared.limits;
    tokio::select! {
        res = conn => {
            if let Err(e) = res {
                classify_connection_error(&shared.metrics, peer, &e);
            }
        }
        () = activity.idle_for(limits.header_read_timeout, limits.idle_timeout) => {
            // Before the first request this deadline is the header read timeout, and it
            // races hyper's own header timer (armed later, after the TLS handshake): count
            // the header timeout whichever of the two closes the connection.
            if !activity.started_a_request() {
                shared.metrics.error(ErrorReason::HeaderTimeout);
            }
            tracing::debug!(%peer, "closing idle connection");
        }
        () = activity.evicted() => {
            tracing::debug!(%peer, "closing idle connection to make room for a new one");
        }
        () = wait_phase(&mut phase, Phase::Abort) => {}
    }
}

fn classify_connection_error(metrics: &WebhookMetrics, peer: SocketAddr, e: &hyper::Error) {
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
    // Client resets and early closes are routine; not counted.
    tracing::debug!(%peer, error = %e, "connection ended with an error");
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

/// The answer to a body that was not accepted.
fn body_error(shared: &Shared, error: BodyError) -> Resp {
    let limits = &shared.limits;
    let (reason, status, message) = match error {
        BodyError::TooLarge { drained } => {
            let message = format!("request body larger than {} bytes", limits.max_body_bytes);
            let mut resp = text(StatusCode::PAYLOAD_TOO_LARGE, message);
            if !drained {
                // The rest of the body is unread: this HTTP/1.1 connection cannot carry on.
                resp.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            shared.metrics.error(ErrorReason::PayloadTooLarge);
            return resp;
        }
        BodyError::Timeout => (
            ErrorReason::BodyTimeout,
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "request body not received within {:?}",
                limits.body_read_timeout
            ),
        ),
        BodyError::TooSlow => (
            ErrorReason::BodyTooSlow,
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "request body arriving slower than {} bytes/s",
                limits.min_body_rate
            ),
        ),
        BodyError::Memory => (
            ErrorReason::BodyMemory,
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "request bodies in progress exceed the {}-byte memory limit; retry",
                limits.body_memory_bytes
            ),
        ),
        BodyError::Read(e) => (
            ErrorReason::BodyRead,
            StatusCode::BAD_REQUEST,
            format!("cannot read request body: {e}"),
        ),
    };
    shared.metrics.error(reason);
    text(status, message)
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

/// What a review worker reports as soon as the request is decoded, so that a review that
/// misses its deadline can still be answered with the request's uid.
struct Started {
    uid: String,
    types: TypeMeta,
    labels: AdmissionLabels,
}

/// What a review worker produced: the response and what to record.
struct Finished {
    resp: Resp,
    labels: Option<AdmissionLabels>,
    error: Option<ErrorReason>,
}

fn json_response(json: Vec<u8>) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from(json)));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// Decodes and reviews one body; runs on a blocking-pool thread.
fn review_blocking(
    handler: &dyn AdmissionHandler,
    webhook: Webhook,
    body: &[u8],
    max_decoded_bytes: usize,
    started: oneshot::Sender<Started>,
) -> Finished {
    let fail = |status, reason, message: String| Finished {
        resp: text(status, message),
        labels: None,
        error: Some(reason),
    };
    if body.len() > largest_unscanned_body(max_decoded_bytes)
        && estimate_decoded_bytes(body, max_decoded_bytes).is_none()
    {
        return fail(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorReason::DecodedTooLarge,
            format!(
                "AdmissionReview would take more than {max_decoded_bytes} bytes of memory once decoded"
            ),
        );
    }
    let request = match parse_admission_review(body) {
        Ok(r) => r,
        Err(message) => {
            tracing::debug!(%message, "malformed AdmissionReview");
            return fail(StatusCode::BAD_REQUEST, ErrorReason::BadRequest, message);
        }
    };
    let mut labels = AdmissionLabels {
        webhook: webhook.as_str(),
        operation: operation_label(&request.operation),
        kind: kind_label(&request.kind.kind),
        decision: "error",
    };
    let _ = started.send(Started {
        uid: request.uid.clone(),
        types: request.types.clone(),
        labels: labels.clone(),
    });
    let outcome = catch_unwind(AssertUnwindSafe(|| match webhook {
        Webhook::Validate => handler.validate(&request),
        Webhook::Mutate => handler.mutate(&request),
    }));
    let reviewed: Reviewed = match outcome {
        Ok(r) => r,
        Err(_) => {
            tracing::error!(
                uid = %request.uid,
                webhook = webhook.as_str(),
                "admission handler panicked"
            );
            return Finished {
                resp: text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "admission handler failed",
                ),
                labels: Some(labels),
                error: Some(ErrorReason::HandlerPanic),
            };
        }
    };
    match encode_response(&request, reviewed.response) {
        Ok(json) => {
            labels.decision = reviewed.decision.as_str();
            Finished {
                resp: json_response(json),
                labels: Some(labels),
                error: None,
            }
        }
        Err(e) => {
            tracing::error!(uid = %request.uid, error = %e, "cannot encode admission response");
            Finished {
                resp: text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "cannot encode admission response",
                ),
                labels: Some(labels),
                error: Some(ErrorReason::ResponseEncoding),
            }
        }
    }
}

/// The fail-closed answer to a review that missed its deadline: denied, uid echoed. For
/// `/mutate` too: the object was not rendered, so it must not pass unrendered.
fn deadline_denial(webhook: Webhook, deadline: Duration, started: &Started) -> Resp {
    let what = match webhook {
        Webhook::Validate => "the review",
        Webhook::Mutate => "rendering (mutating review)",
    };
    let message = format!(
        "mtls-gate: {what} did not finish within the {deadline:?} review deadline \
         (--review-deadline); denied to fail closed, retry later"
    );
    let mut response = AdmissionResponse::invalid(&message);
    response.result.reason = "Timeout".into();
    response.result.code = 503;
    match encode_response_to(&started.uid, &started.types, response) {
        Ok(json) => json_response(json),
        Err(_) => text(StatusCode::SERVICE_UNAVAILABLE, message),
    }
}

async fn admission(shared: &Shared, req: Request<Incoming>, webhook: Webhook) -> Resp {
    let _in_flight = InFlight::enter(&shared.metrics.admission_in_flight);
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let expect_continue = parts
        .headers
        .get(EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let read = body::read(
        body,
        expect_continue,
        &shared.limits,
        &shared.budget,
        &shared.body_pace,
    );
    let body = match read.await {
        Ok(b) => b,
        Err(e) => return body_error(shared, e),
    };
    // The body is complete: only now does the request compete for review workers.
    let deadline = tokio::time::Instant::now() + shared.limits.review_deadline;
    let Ok(_waiting) = shared.waiting.try_acquire() else {
        shared.metrics.error(ErrorReason::Overloaded);
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many admission requests waiting for review",
        );
    };
    // Bodies large enough to need the decoded-size estimate (a scan of up to 4 MiB before
    // decoding) may take only some of the workers, so that a few clients sending large
    // bodies cannot make ordinary reviews wait for a worker.
    let large = body.bytes.len() > largest_unscanned_body(shared.limits.max_decoded_bytes);
    let workers = async {
        let lane = if large {
            Some(shared.large_workers.clone().acquire_owned().await?)
        } else {
            None
        };
        let worker = shared.workers.clone().acquire_owned().await?;
        Ok::<_, tokio::sync::AcquireError>((lane, worker))
    };
    let worker = match tokio::time::timeout_at(deadline, workers).await {
        Ok(Ok(w)) => w,
        _ => {
            shared.metrics.error(ErrorReason::ReviewDeadline);
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "no review worker free within the {:?} review deadline; retry later",
                    shared.limits.review_deadline
                ),
            );
        }
    };
    let (started_tx, mut started_rx) = oneshot::channel();
    let handler = shared.handler.clone();
    let max_decoded = shared.limits.max_decoded_bytes;
    let review = move || {
        let finished = review_blocking(&*handler, webhook, &body.bytes, max_decoded, started_tx);
        // The worker slot and the body's memory are released only when the work is done,
        // even if the caller stopped waiting.
        drop((worker, body));
        finished
    };
    let task = if large {
        shared.large_reviews.spawn_blocking(review)
    } else {
        tokio::task::spawn_blocking(review)
    };
    let finished = match tokio::time::timeout_at(deadline, task).await {
        Ok(Ok(finished)) => finished,
        Ok(Err(e)) => {
            // Not reachable: the handler runs under catch_unwind. Kept for completeness.
            tracing::error!(error = %e, "review worker failed");
            Finished {
                resp: text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "admission handler failed",
                ),
                labels: None,
                error: Some(ErrorReason::HandlerPanic),
            }
        }
        Err(_) => match started_rx.try_recv() {
            Ok(started) => {
                tracing::warn!(
                    uid = %started.uid,
                    webhook = webhook.as_str(),
                    deadline = ?shared.limits.review_deadline,
                    "review missed its deadline: denied"
                );
                let mut labels = started.labels.clone();
                labels.decision = "denied";
                Finished {
                    resp: deadline_denial(webhook, shared.limits.review_deadline, &started),
                    labels: Some(labels),
                    error: Some(ErrorReason::ReviewDeadline),
                }
            }
            Err(_) => Finished {
                resp: text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "AdmissionReview not decoded within the {:?} review deadline",
                        shared.limits.review_deadline
                    ),
                ),
                labels: None,
                error: Some(ErrorReason::ReviewDeadline),
            },
        },
    };
    if let Some(reason) = finished.error {
        shared.metrics.error(reason);
    }
    if let Some(labels) = &finished.labels {
        shared
            .metrics
            .admission_requests
            .get_or_create(labels)
            .inc();
        shared
            .metrics
            .admission_duration
            .get_or_create(&WebhookLabel {
                webhook: webhook.as_str(),
            })
            .observe(started.elapsed().as_secs_f64());
    }
    finished.resp
}
