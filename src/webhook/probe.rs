//! The plain-HTTP probe port: `/healthz`, `/readyz`, `/metrics`.
//!
//! Its own connection slots (with eviction of the idlest connection at the limit, see
//! [`super::conn`]) and short timeouts, so that idle or slow clients cannot starve the
//! kubelet's probes (adversarial test F3: 40 idle connections made 15 of 17 `/healthz`
//! requests time out) and the probes cannot take resources from the webhook.

use std::convert::Infallible;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::AdmissionHandler;
use super::conn::ConnectionSlots;
use super::limits::ProbeLimits;
use super::metrics::{PortLabel, WebhookMetrics};
use super::runtimes::ServerThread;
use super::server::Phase;
use super::tls::{CertResolver, unix_now};

/// OpenMetrics text, as produced by prometheus-client (Prometheus negotiates it).
pub(crate) const METRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub(crate) struct ProbeState {
    pub handler: Arc<dyn AdmissionHandler>,
    pub metrics: Arc<WebhookMetrics>,
    pub registry: Arc<Registry>,
    pub resolver: Arc<CertResolver>,
    pub phase: watch::Receiver<Phase>,
}

/// Serves probes on a thread of their own with a single-threaded runtime, until the
/// phase reaches `Stopped`.
///
/// Why a thread: on the webhook's runtime, a `/healthz` request waits in the same run
/// queue as every TLS handshake and connection task of the HTTPS port, so a connection
/// flood there delayed probes by hundreds of milliseconds (BENCHMARKS.md, "Webhook under
/// attack": `/healthz` p99 464-742 ms) although the probe port itself was idle. On its
/// own thread the probe port shares only the CPU with the webhook, not the scheduler.
pub(crate) async fn spawn_thread(
    listener: TcpListener,
    state: ProbeState,
    limits: ProbeLimits,
) -> std::io::Result<ServerThread> {
    ServerThread::spawn("mtls-gate-probes", 1, listener, move |listener| {
        run(listener, state, limits)
    })
    .await
}

/// Serves probes until the phase reaches `Stopped`.
async fn run(listener: TcpListener, state: ProbeState, limits: ProbeLimits) {
    let state = Arc::new(state);
    let port = PortLabel { port: "probe" };
    let slots = ConnectionSlots::new(
        limits.max_connections,
        state.metrics.open_connections.get_or_create(&port).clone(),
    );
    let mut phase = state.phase.clone();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true)
        .max_headers(32)
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(limits.max_header_bytes.max(8192) + 8192);
    loop {
        let accepted = tokio::select! {
            biased;
            () = stopped(&mut phase) => return,
            a = listener.accept() => a,
        };
        let (tcp, _) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed on the probe port");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (slot, evicted) = tokio::select! {
            biased;
            () = stopped(&mut phase) => return,
            s = slots.acquire() => s,
        };
        if evicted > 0 {
            state
                .metrics
                .connections_evicted
                .get_or_create(&port)
                .inc_by(evicted);
        }
        let state = state.clone();
        let builder = builder.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            let activity = slot.activity();
            let svc_state = state.clone();
            let svc_activity = activity.clone();
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let busy = svc_activity.begin();
                let response = answer(&svc_state, &req);
                drop(busy);
                async move { Ok::<_, Infallible>(response) }
            });
            let mut stop = state.phase.clone();
            let conn = builder.serve_connection(TokioIo::new(tcp), service);
            tokio::select! {
                r = conn => {
                    if let Err(e) = r { tracing::debug!(error = %e, "probe connection error"); }
                }
                // hyper's header timeout covers HTTP/1.1; this covers a client that
                // stops reading its response.
                () = activity.idle_for(limits.header_read_timeout, limits.header_read_timeout) => {}
                () = activity.evicted() => {}
                () = stopped(&mut stop) => {}
            }
            drop(slot);
        });
    }
}

async fn stopped(phase: &mut watch::Receiver<Phase>) {
    let _ = phase.wait_for(|p| *p >= Phase::Stopped).await;
}

fn plain(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(format!("{body}\n"))));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn answer(state: &ProbeState, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if !matches!(path, "/healthz" | "/readyz" | "/metrics") {
        return plain(StatusCode::NOT_FOUND, "not found");
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        resp.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return resp;
    }
    match path {
        "/healthz" => plain(StatusCode::OK, "ok"),
        "/readyz" => match not_ready_reason(state) {
            None => plain(StatusCode::OK, "ready"),
            Some(reason) => plain(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("not ready: {reason}"),
            ),
        },
        _ => metrics(state),
    }
}

fn not_ready_reason(state: &ProbeState) -> Option<&'static str> {
    if *state.phase.borrow() != Phase::Running {
        return Some("shutting down");
    }
    match state.resolver.validity() {
        None if !state.resolver.is_loaded() => return Some("no serving certificate loaded"),
        None => return Some("serving certificate validity unknown"),
        Some(v) if v.check(unix_now()).is_err() => {
            return Some("serving certificate expired or not yet valid");
        }
        Some(_) => {}
    }
    let handler = &*state.handler;
    match catch_unwind(AssertUnwindSafe(|| handler.view_ready())) {
        Ok(true) => None,
        Ok(false) => Some("cluster view not loaded"),
        Err(_) => Some("cluster view readiness check failed"),
    }
}

fn metrics(state: &ProbeState) -> Response<Full<Bytes>> {
    let handler = &*state.handler;
    if let Ok(n) = catch_unwind(AssertUnwindSafe(|| handler.cached_ingresses())) {
        state
            .metrics
            .cached_ingresses
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    let mut body = String::with_capacity(4096);
    if let Err(e) = prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        tracing::error!(error = %e, "cannot encode metrics");
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics");
    }
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(METRICS_CONTENT_TYPE));
    resp
}
