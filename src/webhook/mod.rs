//! The HTTPS side of the admission webhooks and the per-path gate (design §6).
//!
//! This module owns the transport: TLS (rustls with the `ring` provider, TLS 1.2 and 1.3,
//! certificates reloaded from files), HTTP/1.1 and HTTP/2, request limits and timeouts, the
//! `/verify` gate, the probe port (`/healthz`, `/readyz`, `/metrics`) and the webhook
//! metrics. The admission *logic* lives behind [`AdmissionHandler`], implemented elsewhere.
//!
//! Wiring, in short:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use mtls_gate::webhook::{AdmissionHandler, WebhookConfig, WebhookMetrics};
//! # async fn example(handler: Arc<dyn AdmissionHandler>) -> anyhow::Result<()> {
//! let mut registry = prometheus_client::registry::Registry::default();
//! let metrics = Arc::new(WebhookMetrics::register(&mut registry));
//! // ... the controller registers its own metrics in `registry` here ...
//! let registry = Arc::new(registry);
//! let config = WebhookConfig::new(
//!     "0.0.0.0:8443".parse()?,
//!     "0.0.0.0:8080".parse()?,
//!     "/tls/tls.crt",
//!     "/tls/tls.key",
//! );
//! mtls_gate::webhook::serve(config, handler, metrics, registry, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await
//! # }
//! ```

mod body;
mod conn;
pub mod gate;
pub mod limits;
pub mod metrics;
mod probe;
mod request_head;
mod review;
mod runtimes;
pub mod server;
mod tarpit;
pub mod tls;

use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse};

pub use limits::{LimitArgs, Limits, ProbeLimits};
pub use metrics::WebhookMetrics;
pub use review::parse_admission_review;
pub use server::{BoundWebhook, WebhookConfig, bind, serve};

/// The admission logic behind `POST /validate` and `POST /mutate`.
///
/// Implementations run on the admission path: they must be synchronous, fast and free of
/// I/O (no disk, no network, no processes). The server calls them on the blocking thread
/// pool, at most `Limits::review_workers` at once, never on the async workers, and catches
/// panics (a panic becomes HTTP 500 and is counted in
/// `mtls_gate_http_errors_total{reason="handler_panic"}`). A call that has not returned
/// within `Limits::review_deadline` is answered for it: denied (fail closed), for
/// `/mutate` too; the call itself runs to its end and keeps its worker until then.
///
/// The server always echoes the request `uid` in the response, whatever the handler sets.
pub trait AdmissionHandler: Send + Sync + 'static {
    /// Validating review of one request (Ingress CREATE/UPDATE/DELETE, ApiProviderProfile CREATE/UPDATE, anything else: allow).
    fn validate(&self, request: &AdmissionRequest<DynamicObject>) -> Reviewed;
    /// Mutating review: a JSON patch for managed Ingresses, plain allow otherwise.
    fn mutate(&self, request: &AdmissionRequest<DynamicObject>) -> Reviewed;
    /// True once the cluster view (caches or manifest files) is loaded; /readyz needs it.
    fn view_ready(&self) -> bool;
    /// Number of Ingresses in the view, for the cache-size gauge.
    fn cached_ingresses(&self) -> usize;
}

/// The outcome of one review: the response sent to the API server, and the decision
/// recorded in `mtls_gate_admission_requests_total{decision}`.
#[derive(Debug, Clone)]
pub struct Reviewed {
    pub response: AdmissionResponse,
    pub decision: Decision,
}

/// What a review decided, as a metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Admitted without remarks.
    Allowed,
    /// Rejected (`allowed: false`).
    Denied,
    /// Admitted with warnings (enforcement `Warn`).
    Warned,
    /// Admitted silently although non-compliant (enforcement `Audit`).
    Audited,
    /// Admitted with a JSON patch (mutating webhook).
    Patched,
}

impl Decision {
    /// The label value: `allowed`, `denied`, `warned`, `audited` or `patched`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::Denied => "denied",
            Decision::Warned => "warned",
            Decision::Audited => "audited",
            Decision::Patched => "patched",
        }
    }
}

impl Reviewed {
    /// A review with the given response and decision.
    pub fn new(response: AdmissionResponse, decision: Decision) -> Self {
        Self { response, decision }
    }

    /// Plain allow for `request` (uid echoed, no patch, no warnings).
    pub fn allow(request: &AdmissionRequest<DynamicObject>) -> Self {
        Self::new(AdmissionResponse::from(request), Decision::Allowed)
    }
}
