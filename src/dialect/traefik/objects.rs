//! Traefik's own kinds as the dialect reads them: `TLSOption` (client authentication of the
//! routers that reference it) and `Middleware` (the per-path gate and the header handling
//! around it), under `traefik.io/v1alpha1`, and `IngressRoute` and `IngressRouteTCP` of
//! both groups ([`super::ingress_route`], [`super::ingress_route_tcp`]). Traefik v3 no
//! longer reads the older `traefik.containo.us` group (its objects "do not exist" for it:
//! fluxcd/flagger#1641), so TLSOptions and Middlewares of that group are not read here
//! either: an Ingress that names one gets the finding for a missing TLSOption or
//! Middleware, never the protection it does not get.

use std::any::Any;

use super::ingress_route::{INGRESS_ROUTE, INGRESS_ROUTE_CONTAINOUS, IngressRouteView};
use super::ingress_route_tcp::{
    INGRESS_ROUTE_TCP, INGRESS_ROUTE_TCP_CONTAINOUS, IngressRouteTcpView,
};
use crate::dialect::{ObjectKind, ObjectView, ReduceError, SharedObject};
use crate::model::ObjectKey;

pub const TLS_OPTION: ObjectKind = ObjectKind {
    group: "traefik.io",
    version: "v1alpha1",
    kind: "TLSOption",
    plural: "tlsoptions",
};

pub const MIDDLEWARE: ObjectKind = ObjectKind {
    group: "traefik.io",
    version: "v1alpha1",
    kind: "Middleware",
    plural: "middlewares",
};

/// The kinds the Traefik dialect reads.
pub static KINDS: [ObjectKind; 6] = [
    TLS_OPTION,
    MIDDLEWARE,
    INGRESS_ROUTE,
    INGRESS_ROUTE_CONTAINOUS,
    INGRESS_ROUTE_TCP,
    INGRESS_ROUTE_TCP_CONTAINOUS,
];

/// Reduces a Traefik object of one of [`KINDS`].
pub fn reduce(
    kind: &ObjectKind,
    value: &serde_json::Value,
    default_namespace: &str,
) -> Result<SharedObject, ReduceError> {
    if value["metadata"]["name"].as_str().is_none_or(str::is_empty) {
        return Err(ReduceError {
            field: "metadata.name".into(),
            message: "is required".into(),
        });
    }
    if *kind == TLS_OPTION {
        Ok(std::sync::Arc::new(TlsOptionView::from_value(
            value,
            default_namespace,
        )))
    } else if *kind == MIDDLEWARE {
        Ok(std::sync::Arc::new(MiddlewareView::from_value(
            value,
            default_namespace,
        )))
    } else if *kind == INGRESS_ROUTE || *kind == INGRESS_ROUTE_CONTAINOUS {
        Ok(std::sync::Arc::new(IngressRouteView::from_value(
            value,
            default_namespace,
        )))
    } else if *kind == INGRESS_ROUTE_TCP || *kind == INGRESS_ROUTE_TCP_CONTAINOUS {
        Ok(std::sync::Arc::new(IngressRouteTcpView::from_value(
            value,
            default_namespace,
        )))
    } else {
        Err(ReduceError {
            field: "kind".into(),
            message: format!("{kind} is not a Traefik kind"),
        })
    }
}

impl ObjectView for TlsOptionView {
    fn key(&self) -> &ObjectKey {
        &self.key
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn same_view(&self, other: &dyn ObjectView) -> bool {
        crate::dialect::same_view_by_eq(self, other)
    }
}

impl ObjectView for MiddlewareView {
    fn key(&self) -> &ObjectKey {
        &self.key
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn same_view(&self, other: &dyn ObjectView) -> bool {
        crate::dialect::same_view_by_eq(self, other)
    }
}

/// A Traefik `TLSOption` (`traefik.io/v1alpha1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptionView {
    pub key: ObjectKey,
    pub client_auth_type: Option<String>,
    pub secret_names: Vec<String>,
}

/// The part of a Traefik `Middleware` that matters for the per-path gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MiddlewareKind {
    ForwardAuth {
        address: String,
        trust_forward_header: bool,
        auth_request_headers: Vec<String>,
    },
    PassTlsClientCert {
        pem: bool,
    },
    /// A `headers` middleware that deletes these request headers (empty custom values).
    StripsRequestHeaders(Vec<String>),
    /// A middleware that may set a request header the gate trusts: a `headers` middleware
    /// with a non-empty custom value, a `forwardAuth` copying it from its auth server's
    /// response (`authResponseHeaders`, `authResponseHeadersRegex`), or a `plugin`
    /// (unknown code). Names the headers (`*`: any).
    SetsRequestHeaders(Vec<String>),
    /// A `forwardAuth` that copies headers of its auth server's response into the request.
    ForwardAuthCopying {
        address: String,
        copies: Vec<String>,
    },
    /// A `chain` of other Middlewares (`name`, `namespace` defaulting to the chain's).
    Chain(Vec<ObjectKey>),
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MiddlewareView {
    pub key: ObjectKey,
    pub kind: MiddlewareKind,
}

impl TlsOptionView {
    pub fn from_value(value: &serde_json::Value, default_namespace: &str) -> Self {
        let auth = &value["spec"]["clientAuth"];
        Self {
            key: ObjectKey::of_manifest(value, default_namespace),
            client_auth_type: auth["clientAuthType"].as_str().map(str::to_string),
            secret_names: auth["secretNames"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect(),
        }
    }
}

impl MiddlewareView {
    pub fn from_value(value: &serde_json::Value, default_namespace: &str) -> Self {
        let spec = &value["spec"];
        let copies = |fa: &serde_json::Value| -> Vec<String> {
            let mut headers: Vec<String> = fa["authResponseHeaders"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|h| h.as_str().map(str::to_string))
                .collect();
            if fa["authResponseHeadersRegex"]
                .as_str()
                .is_some_and(|r| !r.is_empty())
            {
                headers.push("*".into());
            }
            headers
        };
        let kind = if spec.get("plugin").is_some() {
            MiddlewareKind::SetsRequestHeaders(vec!["*".into()])
        } else if let Some(fa) = spec.get("forwardAuth").filter(|fa| !copies(fa).is_empty()) {
            // Checked first by the gate model: an auth server that may answer with the
            // trusted header (only the profile's own gate is credited, below).
            MiddlewareKind::ForwardAuthCopying {
                address: fa["address"].as_str().unwrap_or("").to_string(),
                copies: copies(fa),
            }
        } else if let Some(fa) = spec.get("forwardAuth") {
            MiddlewareKind::ForwardAuth {
                address: fa["address"].as_str().unwrap_or("").to_string(),
                trust_forward_header: fa["trustForwardHeader"].as_bool().unwrap_or(false),
                auth_request_headers: fa["authRequestHeaders"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|h| h.as_str().map(str::to_string))
                    .collect(),
            }
        } else if let Some(p) = spec.get("passTLSClientCert") {
            MiddlewareKind::PassTlsClientCert {
                pem: p["pem"].as_bool().unwrap_or(false),
            }
        } else if let Some(c) = spec.get("chain") {
            let namespace = ObjectKey::of_manifest(value, default_namespace).namespace;
            MiddlewareKind::Chain(
                c["middlewares"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|m| {
                        let name = m["name"].as_str()?;
                        let ns = m["namespace"]
                            .as_str()
                            .filter(|s| !s.is_empty())
                            .unwrap_or(&namespace);
                        Some(ObjectKey::new(ns, name))
                    })
                    .collect(),
            )
        } else if let Some(h) = spec.get("headers") {
            let custom = h["customRequestHeaders"].as_object();
            let (stripped, set): (Vec<_>, Vec<_>) = custom
                .into_iter()
                .flatten()
                .partition(|(_, v)| v.as_str() == Some(""));
            // Only the certificate header matters to the gate: a middleware that sets it
            // is a setter, whatever it deletes.
            let sets_cert = set
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("X-Forwarded-Tls-Client-Cert"));
            if sets_cert {
                MiddlewareKind::SetsRequestHeaders(
                    set.into_iter().map(|(k, _)| k.clone()).collect(),
                )
            } else if stripped.is_empty() {
                MiddlewareKind::Other
            } else {
                MiddlewareKind::StripsRequestHeaders(
                    stripped.into_iter().map(|(k, _)| k.clone()).collect(),
                )
            }
        } else {
            MiddlewareKind::Other
        };
        Self {
            key: ObjectKey::of_manifest(value, default_namespace),
            kind,
        }
    }
}
