//! Rendering for a Gateway labelled `mtls-gate.io/profile`: its frontend TLS validation
//! (GEP-91, `spec.tls.frontend`), per port, from the hosts of the profile its HTTPS
//! listeners serve.
//!
//! * A port whose listeners serve MTLS hosts of the profile (and no TLS host) gets
//!   `perPort[] {port, tls.validation {mode: AllowValidOnly, caCertificateRefs: [Secret
//!   <caSecretName>]}}` (Envoy Gateway reads `ca.crt` of a ConfigMap or a Secret;
//!   `helpers.go`).
//! * A port that serves only TLS hosts (or none of the profile's) gets no validation: the
//!   rendered `spec.tls.frontend.default` (required by the schema) is empty.
//! * A port that serves both MTLS and TLS hosts cannot be rendered: validation is per port,
//!   and per-listener settings on one port would be bypassed by connection coalescing. The
//!   refusal says which hosts to move to another port or Gateway.
//!
//! The result is a JSON merge patch (RFC 7386) of `spec.tls.frontend`: mtls-gate owns the
//! frontend validation of a labelled Gateway, as it owns the client-auth annotations of a
//! labelled Ingress. The mutating webhook and `mtls-gate render` apply the patch; the
//! controller sends its fields as a server-side apply (field manager `mtls-gate`), so the
//! rendered `perPort` entries replace those of their ports and other managers' fields
//! stay ([`with_rendering`] is the Gateway after that apply). A Gateway that already
//! carries every rendered entry ([`carries`]) is not written.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::{
    CaRef, FrontendValidation, GatewayView, Listener, host_schemes, hostname_matches, specificity,
};
use crate::profile::CompiledProfile;

/// Why a labelled Gateway cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Gateway {gateway} port {port}: {message}")]
pub struct GatewayRenderRefusal {
    pub gateway: String,
    pub port: u16,
    pub message: String,
}

/// The listener of `gw` on `port` that serves `host` (the most specific hostname match).
fn serving_listener<'g>(gw: &'g GatewayView, port: u16, host: &str) -> Option<&'g Listener> {
    gw.listeners
        .iter()
        .filter(|l| l.port == port && l.protocol == "HTTPS")
        .filter(|l| {
            l.hostname
                .as_deref()
                .is_none_or(|h| hostname_matches(h, host))
        })
        .max_by_key(|l| specificity(l.hostname.as_deref()))
}

/// The frontend validation `profile` needs on `gw`: one entry per port whose HTTPS
/// listeners serve MTLS hosts of the profile, or why no rendering can do it.
pub fn desired_frontend(
    profile: &CompiledProfile,
    gw: &GatewayView,
) -> Result<Vec<(u16, FrontendValidation)>, Vec<GatewayRenderRefusal>> {
    let ports: BTreeSet<u16> = gw
        .listeners
        .iter()
        .filter(|l| l.protocol == "HTTPS")
        .map(|l| l.port)
        .collect();
    let mut per_port = Vec::new();
    let mut refusals = Vec::new();
    for port in ports {
        // Profile hosts served on this port, by scheme.
        let mut mtls = BTreeSet::new();
        let mut tls = BTreeSet::new();
        let mut listeners: BTreeMap<&str, &str> = BTreeMap::new();
        for host in &profile.hosts {
            let Some(l) = serving_listener(gw, port, host) else {
                continue;
            };
            listeners.insert(host, &l.name);
            let (serves_mtls, serves_tls) = host_schemes(profile, host);
            if serves_mtls {
                mtls.insert(host.as_str());
            }
            if serves_tls {
                tls.insert(host.as_str());
            }
        }
        if mtls.is_empty() {
            continue;
        }
        if !tls.is_empty() {
            let names = |hosts: &BTreeSet<&str>| {
                hosts
                    .iter()
                    .map(|h| format!("{h} (listener {:?})", listeners[h]))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            refusals.push(GatewayRenderRefusal {
                gateway: gw.key.to_string(),
                port,
                message: format!(
                    "serves MTLS hosts {} and TLS hosts {}. Gateway API validates client certificates per port (a connection opened for one host can be reused for another on the same port: GEP-91 connection coalescing), so no setting can require certificates for the MTLS hosts only. Move the TLS hosts to another port or Gateway (split host).",
                    names(&mtls),
                    names(&tls)
                ),
            });
            continue;
        }
        per_port.push((
            port,
            FrontendValidation {
                ca_refs: vec![CaRef {
                    group: String::new(),
                    kind: "Secret".into(),
                    name: profile.spec.client_certificate.ca_secret_name.clone(),
                    namespace: None,
                }],
                mode: "AllowValidOnly".into(),
            },
        ));
    }
    if refusals.is_empty() {
        Ok(per_port)
    } else {
        Err(refusals)
    }
}

/// Whether `gw` already carries the validation `desired` (every entry, as rendered).
pub fn carries(gw: &GatewayView, desired: &[(u16, FrontendValidation)]) -> bool {
    desired.iter().all(|(port, validation)| {
        gw.frontend_per_port
            .iter()
            .any(|(p, v)| p == port && v.as_ref() == Some(validation))
    })
}

/// `gw` as it is after a server-side apply of the rendering: the rendered `perPort`
/// entries replace those of their ports (a list map keyed by port), everything else
/// stays (other managers' fields are kept).
pub fn with_rendering(gw: &GatewayView, desired: &[(u16, FrontendValidation)]) -> GatewayView {
    let mut after = gw.clone();
    after
        .frontend_per_port
        .retain(|(p, _)| !desired.iter().any(|(d, _)| d == p));
    after
        .frontend_per_port
        .extend(desired.iter().map(|(p, v)| (*p, Some(v.clone()))));
    after
}

/// The merge patch that sets `gw`'s frontend validation for `profile`, or why it cannot.
pub fn render_gateway(
    profile: &CompiledProfile,
    gw: &GatewayView,
) -> Result<Value, Vec<GatewayRenderRefusal>> {
    let per_port: Vec<Value> = desired_frontend(profile, gw)?
        .into_iter()
        .map(|(port, v)| {
            let refs: Vec<Value> = v
                .ca_refs
                .iter()
                .map(|r| json!({"group": r.group, "kind": r.kind, "name": r.name}))
                .collect();
            json!({
                "port": port,
                "tls": {"validation": {"mode": v.mode, "caCertificateRefs": refs}},
            })
        })
        .collect();
    // `default` is required (`FrontendTLSConfig`, gateway_types.go v1.5.1): empty, it
    // validates nothing; `perPort` is a list map keyed by port, replaced whole.
    let per_port = if per_port.is_empty() {
        Value::Null
    } else {
        Value::Array(per_port)
    };
    Ok(json!({"spec": {"tls": {"frontend": {"default": {}, "perPort": per_port}}}}))
}
