//! Webhook metrics (prometheus-client), registered into a caller-supplied registry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of `mtls_gate_admission_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AdmissionLabels {
    /// `validate` or `mutate`.
    pub webhook: &'static str,
    /// `CREATE`, `UPDATE`, `DELETE`, `CONNECT`.
    pub operation: &'static str,
    /// `Ingress`, `ApiProviderProfile` or `other` (bounded cardinality).
    pub kind: &'static str,
    /// A [`super::Decision`] label, or `error` when the handler panicked.
    pub decision: &'static str,
}

/// Labels of `mtls_gate_admission_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabel {
    /// `validate` or `mutate`.
    pub webhook: &'static str,
}

/// Labels of `mtls_gate_gate_decisions_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GateLabels {
    /// `ingress-nginx`, `traefik`, `haproxy-ingress` or `unknown`.
    pub controller: &'static str,
    /// `allow` or `deny`.
    pub decision: &'static str,
}

/// Labels of `mtls_gate_certificate_reloads_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `success` or `failure`.
    pub result: &'static str,
}

/// Labels of `mtls_gate_http_errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// See [`ErrorReason`].
    pub reason: &'static str,
}

/// Labels of the per-listener connection metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PortLabel {
    /// `webhook` (HTTPS) or `probe`.
    pub port: &'static str,
}

/// Reasons counted in `mtls_gate_http_errors_total{reason}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorReason {
    /// 400: body is not an AdmissionReview v1 with a request.
    BadRequest,
    /// 404: unknown path.
    NotFound,
    /// 405: wrong method.
    MethodNotAllowed,
    /// 408: the body did not arrive within the body read timeout.
    BodyTimeout,
    /// 408: the body arrived slower than the minimum rate.
    BodyTooSlow,
    /// 503: the body did not fit in the memory left for request bodies.
    BodyMemory,
    /// 413: the decoded review would take more memory than one review may.
    DecodedTooLarge,
    /// The review did not finish before the review deadline (denied, fail closed).
    ReviewDeadline,
    /// 413: body over the limit.
    PayloadTooLarge,
    /// 503: too many complete admission requests waiting for a review worker.
    Overloaded,
    /// 500: the admission handler panicked.
    HandlerPanic,
    /// 500: the response could not be serialised.
    ResponseEncoding,
    /// Reading the request body failed (client reset, protocol error).
    BodyRead,
    /// TLS handshake failed.
    TlsHandshake,
    /// TLS handshake did not finish within the handshake timeout.
    TlsHandshakeTimeout,
    /// The request header did not arrive within the header read timeout.
    HeaderTimeout,
    /// Other connection-level HTTP errors (malformed HTTP, resets).
    Connection,
    /// `accept()` failed (e.g. out of file descriptors).
    Accept,
}

impl ErrorReason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorReason::BadRequest => "bad_request",
            ErrorReason::NotFound => "not_found",
            ErrorReason::MethodNotAllowed => "method_not_allowed",
            ErrorReason::BodyTimeout => "body_timeout",
            ErrorReason::BodyTooSlow => "body_too_slow",
            ErrorReason::BodyMemory => "body_memory",
            ErrorReason::DecodedTooLarge => "decoded_too_large",
            ErrorReason::ReviewDeadline => "review_deadline",
            ErrorReason::PayloadTooLarge => "payload_too_large",
            ErrorReason::Overloaded => "overloaded",
            ErrorReason::HandlerPanic => "handler_panic",
            ErrorReason::ResponseEncoding => "response_encoding",
            ErrorReason::BodyRead => "body_read",
            ErrorReason::TlsHandshake => "tls_handshake",
            ErrorReason::TlsHandshakeTimeout => "tls_handshake_timeout",
            ErrorReason::HeaderTimeout => "header_timeout",
            ErrorReason::Connection => "connection",
            ErrorReason::Accept => "accept",
        }
    }
}

type HistogramCtor = fn() -> Histogram;

fn duration_histogram() -> Histogram {
    // 50 µs .. ~0.82 s, doubling: resolves sub-millisecond reviews and the 1 s range.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 15))
}

/// The webhook's metrics. Cheap to update from any thread; clone-free sharing via `Arc`.
#[derive(Debug)]
pub struct WebhookMetrics {
    /// `mtls_gate_admission_requests_total{webhook, operation, kind, decision}`.
    pub admission_requests: Family<AdmissionLabels, Counter>,
    /// `mtls_gate_admission_duration_seconds{webhook}`: from the first byte of the body
    /// being awaited to the response being ready (body read, parse, review, encode).
    pub admission_duration: Family<WebhookLabel, Histogram, HistogramCtor>,
    /// `mtls_gate_gate_decisions_total{controller, decision}`.
    pub gate_decisions: Family<GateLabels, Counter>,
    /// `mtls_gate_certificate_reloads_total{result}`.
    pub certificate_reloads: Family<ReloadLabels, Counter>,
    /// `mtls_gate_cached_ingresses`: set from `AdmissionHandler::cached_ingresses` at scrape.
    pub cached_ingresses: Gauge,
    /// `mtls_gate_http_errors_total{reason}`.
    pub http_errors: Family<ReasonLabel, Counter>,
    /// `mtls_gate_admission_in_flight`: admission requests being read or reviewed now.
    pub admission_in_flight: Gauge,
    /// `mtls_gate_certificate_not_after_seconds`: notAfter (Unix time) of the serving
    /// certificate in use; 0 until one is loaded.
    pub certificate_not_after: Gauge,
    /// `mtls_gate_open_connections{port}`: connections holding a slot now.
    pub open_connections: Family<PortLabel, Gauge>,
    /// `mtls_gate_connections_evicted_total{port}`: idle connections closed to make room
    /// for a new one at the connection limit.
    pub connections_evicted: Family<PortLabel, Counter>,
    /// `mtls_gate_held_connections`: evicted connections held open, unread, before they
    /// close (`webhook::tarpit`).
    pub held_connections: Gauge,
    /// `mtls_gate_request_body_bytes`: bytes of request bodies held in memory now.
    pub body_bytes: Gauge,
}

impl WebhookMetrics {
    /// Creates the metrics and registers them in `registry` under their full names
    /// (`mtls_gate_...`), so pass a registry without a prefix. Register every other metric
    /// of the process in the same registry, then hand it to [`super::serve`] in an `Arc`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::unregistered();
        registry.register(
            "mtls_gate_admission_requests",
            "Admission reviews answered, by webhook, operation, kind and decision",
            metrics.admission_requests.clone(),
        );
        registry.register(
            "mtls_gate_admission_duration_seconds",
            "Time to answer one admission review (body read, parse, review, encode)",
            metrics.admission_duration.clone(),
        );
        registry.register(
            "mtls_gate_gate_decisions",
            "Per-path gate (/verify) answers, by controller dialect and decision",
            metrics.gate_decisions.clone(),
        );
        registry.register(
            "mtls_gate_certificate_reloads",
            "Serving certificate (re)loads from the mounted files, by result",
            metrics.certificate_reloads.clone(),
        );
        registry.register(
            "mtls_gate_cached_ingresses",
            "Ingresses in the admission handler's cluster view",
            metrics.cached_ingresses.clone(),
        );
        registry.register(
            "mtls_gate_http_errors",
            "HTTP and TLS level errors on the webhook port, by reason",
            metrics.http_errors.clone(),
        );
        registry.register(
            "mtls_gate_admission_in_flight",
            "Admission requests being read or reviewed at this moment",
            metrics.admission_in_flight.clone(),
        );
        registry.register(
            "mtls_gate_certificate_not_after_seconds",
            "notAfter of the serving certificate in use, Unix time (0: none loaded)",
            metrics.certificate_not_after.clone(),
        );
        registry.register(
            "mtls_gate_open_connections",
            "Connections holding a slot, by listener",
            metrics.open_connections.clone(),
        );
        registry.register(
            "mtls_gate_connections_evicted",
            "Idle connections closed to make room at the connection limit, by listener",
            metrics.connections_evicted.clone(),
        );
        registry.register(
            "mtls_gate_held_connections",
            "Connections evicted before their first request, held open unread until they close",
            metrics.held_connections.clone(),
        );
        registry.register(
            "mtls_gate_request_body_bytes",
            "Bytes of request bodies held in memory (received or waiting for review)",
            metrics.body_bytes.clone(),
        );
        metrics
    }

    /// Metrics that are not registered anywhere (tests, benchmarks).
    pub fn unregistered() -> Self {
        Self {
            admission_requests: Family::default(),
            admission_duration: Family::new_with_constructor(duration_histogram as HistogramCtor),
            gate_decisions: Family::default(),
            certificate_reloads: Family::default(),
            cached_ingresses: Gauge::default(),
            http_errors: Family::default(),
            admission_in_flight: Gauge::default(),
            certificate_not_after: Gauge::default(),
            open_connections: Family::default(),
            connections_evicted: Family::default(),
            held_connections: Gauge::default(),
            body_bytes: Gauge::default(),
        }
    }

    pub(crate) fn error(&self, reason: ErrorReason) {
        self.http_errors
            .get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            })
            .inc();
    }

    pub(crate) fn reload(&self, success: bool) {
        let result = if success { "success" } else { "failure" };
        self.certificate_reloads
            .get_or_create(&ReloadLabels { result })
            .inc();
    }
}
