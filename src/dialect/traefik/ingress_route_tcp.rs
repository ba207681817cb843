//! Traefik `IngressRouteTCP` (kubernetescrd provider) as the dialect reads it: only what
//! decides whether a TCP router can take a profile host's connections before Traefik's HTTP
//! routers see them.
//!
//! Sources (traefik/traefik): the object is `IngressRouteTCPSpec`
//! (`pkg/provider/kubernetes/crd/traefikio/v1alpha1/ingressroutetcp.go`: `routes[].match`,
//! `routes[].services`, `entryPoints` (empty: every default entry point), `tls.passthrough`,
//! `tls.options`); each route becomes one TCP router. "If both HTTP routers and TCP routers
//! listen to the same EntryPoint, the TCP routers will apply before the HTTP routers"
//! (Traefik's TCP routers documentation). The code (`ServeTCP`,
//! `pkg/server/router/tcp/router.go`, v3) refines this: a TLS connection goes first to an
//! HTTPS router whose `Host` rule names its SNI on that entry point ("not to depart from the
//! behavior in 2.6"), else to a TCP TLS router whose rule matches the SNI (`HostSNI`,
//! `HostSNIRegexp`, passthrough included), else to the HTTPS catch-all, else to a TCP
//! `HostSNI(`*`)` router; a plain-text connection goes to a TCP router without `tls` before
//! the HTTP routers. A connection a TCP router takes never reaches the HTTP routers, their
//! TLS options or their middlewares; with `tls.passthrough` Traefik does not even terminate
//! TLS. Whether an HTTPS router shares the TCP router's entry point is static configuration
//! mtls-gate cannot see, so every TCP router that may match a profile host is reported. Both groups are read (`traefik.io`, and `traefik.containo.us`, still
//! served by v2.10-v2.11); no object of one group hides one of the other (fail closed).

use std::any::Any;
use std::sync::Arc;

use super::rule::{self, Rule};
use crate::dialect::{ObjectKind, ObjectView};
use crate::model::ObjectKey;

pub const INGRESS_ROUTE_TCP: ObjectKind = ObjectKind {
    group: "traefik.io",
    version: "v1alpha1",
    kind: "IngressRouteTCP",
    plural: "ingressroutetcps",
};

/// The older group, still read by Traefik v2.10-v2.11.
pub const INGRESS_ROUTE_TCP_CONTAINOUS: ObjectKind = ObjectKind {
    group: "traefik.containo.us",
    version: "v1alpha1",
    kind: "IngressRouteTCP",
    plural: "ingressroutetcps",
};

/// One `spec.routes[]` entry: one TCP router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpRoute {
    /// The `match` rule as written.
    pub text: String,
    /// The parsed rule, or why it cannot be parsed.
    pub rule: Result<Arc<Rule>, String>,
    /// `services[].name` (namespace/name when another namespace is named).
    pub services: Vec<String>,
}

/// How a TCP router handles TLS (`spec.tls`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpTls {
    /// No `tls`: the router takes plain-text connections only.
    None,
    /// `tls.passthrough: true`: the connection is forwarded still encrypted.
    Passthrough,
    /// Traefik terminates TLS with these options (`tls.options.name`, `None`: `default`).
    Terminated { options: Option<String> },
}

/// A Traefik `IngressRouteTCP` of either group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressRouteTcpView {
    pub key: ObjectKey,
    pub routes: Vec<TcpRoute>,
    /// `spec.entryPoints` (empty: every default entry point).
    pub entry_points: Vec<String>,
    pub tls: TcpTls,
    /// SNI names the cluster view indexes this object by (`""`: every host).
    hosts: Vec<String>,
}

impl ObjectView for IngressRouteTcpView {
    fn key(&self) -> &ObjectKey {
        &self.key
    }
    fn route_hosts(&self) -> Vec<String> {
        self.hosts.clone()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn same_view(&self, other: &dyn ObjectView) -> bool {
        crate::dialect::same_view_by_eq(self, other)
    }
}

impl IngressRouteTcpView {
    pub fn from_value(value: &serde_json::Value, default_namespace: &str) -> Self {
        let key = ObjectKey::of_manifest(value, default_namespace);
        let spec = &value["spec"];
        let routes: Vec<TcpRoute> = spec["routes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|route| {
                let text = route["match"].as_str().unwrap_or("").to_string();
                TcpRoute {
                    rule: rule::parse_tcp(&text).map(Arc::new),
                    text,
                    services: route["services"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|s| {
                            let name = s["name"].as_str()?;
                            Some(match s["namespace"].as_str().filter(|n| !n.is_empty()) {
                                Some(ns) if ns != key.namespace => format!("{ns}/{name}"),
                                _ => name.to_string(),
                            })
                        })
                        .collect(),
                }
            })
            .collect();
        let mut hosts: Vec<String> = Vec::new();
        for route in &routes {
            match route.rule.as_deref().ok().and_then(rule::exact_sni_hosts) {
                Some(exact) => hosts.extend(exact),
                // Unparseable, `*`, regex or negated: every host.
                None => hosts.push(String::new()),
            }
        }
        hosts.sort();
        hosts.dedup();
        let tls = match spec.get("tls").filter(|t| !t.is_null()) {
            None => TcpTls::None,
            // The CRD schema types `passthrough` as a boolean; any other value is read as
            // passthrough, the case that skips the most (fail closed).
            Some(tls)
                if !matches!(tls["passthrough"], serde_json::Value::Null)
                    && tls["passthrough"] != serde_json::Value::Bool(false) =>
            {
                TcpTls::Passthrough
            }
            Some(tls) => TcpTls::Terminated {
                options: tls["options"]["name"].as_str().map(str::to_string),
            },
        };
        Self {
            key,
            routes,
            entry_points: spec["entryPoints"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e.as_str().map(str::to_string))
                .collect(),
            tls,
            hosts,
        }
    }
}
