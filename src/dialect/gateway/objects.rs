//! The Gateway API and Envoy Gateway objects the `gateway-api` dialect reads, reduced to the
//! fields that decide routing and client authentication (compact serde-free views of the
//! JSON, as the engine reduces every object: see the module doc of the dialect for why the
//! `gateway-api` crate is not used).
//!
//! Field names and defaults follow `apis/v1/gateway_types.go` and `apis/v1/httproute_types.go`
//! of kubernetes-sigs/gateway-api v1.5 and `api/v1alpha1/clienttrafficpolicy_types.go` /
//! `tls_types.go` of envoyproxy/gateway v1.8.

use std::any::Any;
use std::sync::Arc;

use serde_json::Value;

use crate::dialect::{ObjectKind, ObjectView, ReduceError, SharedObject};
use crate::model::{ObjectKey, PROFILE_LABEL};

/// The Gateway API group.
pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

pub const GATEWAY: ObjectKind = ObjectKind {
    group: GATEWAY_GROUP,
    version: "v1",
    kind: "Gateway",
    plural: "gateways",
};

pub const HTTP_ROUTE: ObjectKind = ObjectKind {
    group: GATEWAY_GROUP,
    version: "v1",
    kind: "HTTPRoute",
    plural: "httproutes",
};

/// Read only to report it when it attaches to a profile host's listener (not modelled).
pub const GRPC_ROUTE: ObjectKind = ObjectKind {
    group: GATEWAY_GROUP,
    version: "v1",
    kind: "GRPCRoute",
    plural: "grpcroutes",
};

/// Read only to report it (not modelled). `v1alpha2` is the version every channel serves.
pub const TLS_ROUTE: ObjectKind = ObjectKind {
    group: GATEWAY_GROUP,
    version: "v1alpha2",
    kind: "TLSRoute",
    plural: "tlsroutes",
};

/// Read only to report it (not modelled; experimental channel).
pub const TCP_ROUTE: ObjectKind = ObjectKind {
    group: GATEWAY_GROUP,
    version: "v1alpha2",
    kind: "TCPRoute",
    plural: "tcproutes",
};

pub const CLIENT_TRAFFIC_POLICY: ObjectKind = ObjectKind {
    group: ENVOY_GATEWAY_GROUP,
    version: "v1alpha1",
    kind: "ClientTrafficPolicy",
    plural: "clienttrafficpolicies",
};

/// Permits a Gateway's `caCertificateRefs` to name a ConfigMap or Secret in another
/// namespace (GEP-91 `FrontendTLSValidation.CACertificateRefs`). `v1beta1`: served by every
/// Gateway API release since v0.6 (v1.5 adds `v1`).
pub const REFERENCE_GRANT: ObjectKind = ObjectKind {
    group: GATEWAY_GROUP,
    version: "v1beta1",
    kind: "ReferenceGrant",
    plural: "referencegrants",
};

/// Read only to report it when it may add listeners for a profile host (not modelled;
/// standard channel since Gateway API v1.5).
pub const LISTENER_SET: ObjectKind = ObjectKind {
    group: GATEWAY_GROUP,
    version: "v1",
    kind: "ListenerSet",
    plural: "listenersets",
};

/// The experimental-channel ListenerSet of Gateway API v1.3-v1.4 (not modelled).
pub const X_LISTENER_SET: ObjectKind = ObjectKind {
    group: "gateway.networking.x-k8s.io",
    version: "v1alpha1",
    kind: "XListenerSet",
    plural: "xlistenersets",
};

/// Envoy Gateway `SecurityPolicy` (ext-auth, JWT, OIDC, basic/API-key auth, authorization):
/// read only to report it where it could be taken for the MTLS gate (not modelled).
pub const SECURITY_POLICY: ObjectKind = ObjectKind {
    group: ENVOY_GATEWAY_GROUP,
    version: "v1alpha1",
    kind: "SecurityPolicy",
    plural: "securitypolicies",
};

/// Cluster-scoped: read for a Gateway's class, whose `spec.parametersRef` may name the
/// Envoy Gateway `EnvoyProxy` that merges Gateways (`apis/v1/gatewayclass_types.go`).
pub const GATEWAY_CLASS: ObjectKind = ObjectKind {
    group: GATEWAY_GROUP,
    version: "v1",
    kind: "GatewayClass",
    plural: "gatewayclasses",
};

/// The Envoy Gateway group of `EnvoyProxy`, `ClientTrafficPolicy` and `SecurityPolicy`.
pub const ENVOY_GATEWAY_GROUP: &str = "gateway.envoyproxy.io";

/// Envoy Gateway `EnvoyProxy`, read only for `spec.mergeGateways`
/// (envoyproxy/gateway `api/v1alpha1/envoyproxy_types.go`).
pub const ENVOY_PROXY: ObjectKind = ObjectKind {
    group: ENVOY_GATEWAY_GROUP,
    version: "v1alpha1",
    kind: "EnvoyProxy",
    plural: "envoyproxies",
};

/// CA bundles of `caCertificateRefs` (key `ca.crt`: "Core" support in GEP-91); the kind
/// and its one reduction are shared with the dialects that read controller ConfigMaps.
pub use crate::dialect::config_map::{CONFIG_MAP, ConfigMapView};

/// The kinds the `gateway-api` dialect reads.
pub static KINDS: [ObjectKind; 13] = [
    GATEWAY,
    HTTP_ROUTE,
    GRPC_ROUTE,
    TLS_ROUTE,
    TCP_ROUTE,
    CLIENT_TRAFFIC_POLICY,
    CONFIG_MAP,
    REFERENCE_GRANT,
    LISTENER_SET,
    X_LISTENER_SET,
    SECURITY_POLICY,
    GATEWAY_CLASS,
    ENVOY_PROXY,
];

/// Most listeners a Gateway may have (`+kubebuilder:validation:MaxItems=64`).
const MAX_LISTENERS: usize = 64;
/// Most rules of an HTTPRoute (`MaxItems=16`) and matches of a rule (`MaxItems=64`).
const MAX_RULES: usize = 16;
const MAX_MATCHES: usize = 64;

fn reduce_error(field: impl Into<String>, message: impl Into<String>) -> ReduceError {
    ReduceError {
        field: field.into(),
        message: message.into(),
    }
}

/// `metadata.creationTimestamp` in seconds (RFC 3339); `None` for objects not yet created.
fn created(value: &Value) -> Option<i64> {
    let stamp = &value["metadata"]["creationTimestamp"];
    if stamp.is_null() {
        return None;
    }
    serde_json::from_value::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>(stamp.clone())
        .ok()
        .map(|t| t.0.as_second())
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn items<'a>(value: &'a Value, field: &str, max: usize) -> Result<&'a [Value], ReduceError> {
    match value {
        Value::Null => Ok(&[]),
        Value::Array(items) if items.len() <= max => Ok(items),
        Value::Array(items) => Err(reduce_error(
            field,
            format!(
                "has {} entries, more than the API allows ({max})",
                items.len()
            ),
        )),
        _ => Err(reduce_error(field, "must be a list")),
    }
}

fn port(value: &Value, field: &str) -> Result<Option<u16>, ReduceError> {
    match value {
        Value::Null => Ok(None),
        v => v
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
            .map(Some)
            .ok_or_else(|| reduce_error(field, format!("{v} is not a port (1-65535)"))),
    }
}

/// Reduces an object of one of [`KINDS`].
pub fn reduce(
    kind: &ObjectKind,
    value: &Value,
    default_namespace: &str,
) -> Result<SharedObject, ReduceError> {
    if value["metadata"]["name"].as_str().is_none_or(str::is_empty) {
        return Err(reduce_error("metadata.name", "is required"));
    }
    if *kind == GATEWAY {
        Ok(Arc::new(GatewayView::from_value(value, default_namespace)?))
    } else if *kind == HTTP_ROUTE {
        Ok(Arc::new(HttpRouteView::from_value(
            value,
            default_namespace,
        )?))
    } else if *kind == GRPC_ROUTE || *kind == TLS_ROUTE || *kind == TCP_ROUTE {
        Ok(Arc::new(OtherRouteView {
            kind: kind.kind,
            key: ObjectKey::of_manifest(value, default_namespace),
            hostnames: lower(strings(&value["spec"]["hostnames"])),
            parent_refs: parent_refs(&value["spec"]["parentRefs"])?,
        }))
    } else if *kind == CLIENT_TRAFFIC_POLICY {
        Ok(Arc::new(ClientTrafficPolicyView::from_value(
            value,
            default_namespace,
        )?))
    } else if *kind == REFERENCE_GRANT {
        Ok(Arc::new(ReferenceGrantView::from_value(
            value,
            default_namespace,
        )?))
    } else if *kind == LISTENER_SET || *kind == X_LISTENER_SET {
        let spec = &value["spec"];
        let parent = &spec["parentRef"];
        Ok(Arc::new(ListenerSetView {
            kind: kind.kind,
            key: ObjectKey::of_manifest(value, default_namespace),
            parent_namespace: parent["namespace"].as_str().map(str::to_string),
            parent_name: parent["name"].as_str().unwrap_or("").to_string(),
            listeners: listeners(&spec["listeners"])?,
        }))
    } else if *kind == SECURITY_POLICY {
        let spec = &value["spec"];
        Ok(Arc::new(SecurityPolicyView {
            key: ObjectKey::of_manifest(value, default_namespace),
            targets: policy_targets(spec)?,
            has_target_selectors: spec["targetSelectors"]
                .as_array()
                .is_some_and(|a| !a.is_empty()),
            features: SECURITY_FEATURES
                .iter()
                .copied()
                .filter(|f| !spec[*f].is_null())
                .collect(),
        }))
    } else if *kind == GATEWAY_CLASS {
        Ok(Arc::new(GatewayClassView::from_value(value)))
    } else if *kind == ENVOY_PROXY {
        Ok(Arc::new(EnvoyProxyView::from_value(
            value,
            default_namespace,
        )?))
    } else if *kind == CONFIG_MAP {
        crate::dialect::config_map::reduce(value, default_namespace)
    } else {
        Err(reduce_error(
            "kind",
            format!("{kind} is not read by the gateway-api dialect"),
        ))
    }
}

fn lower(v: Vec<String>) -> Vec<String> {
    v.into_iter().map(|h| h.to_ascii_lowercase()).collect()
}

/// `frontend` validation or `clientValidation` CA references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaRef {
    /// `""` for the core group.
    pub group: String,
    pub kind: String,
    pub name: String,
    /// `None`: the referring object's namespace.
    pub namespace: Option<String>,
}

fn ca_refs(value: &Value) -> Vec<CaRef> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| CaRef {
            group: r["group"].as_str().unwrap_or("").to_string(),
            kind: r["kind"].as_str().unwrap_or("ConfigMap").to_string(),
            name: r["name"].as_str().unwrap_or("").to_string(),
            namespace: r["namespace"].as_str().map(str::to_string),
        })
        .collect()
}

/// A Gateway's `FrontendTLSValidation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontendValidation {
    pub ca_refs: Vec<CaRef>,
    /// `AllowValidOnly` (the default) or `AllowInsecureFallback`.
    pub mode: String,
}

fn frontend_validation(value: &Value) -> Option<FrontendValidation> {
    let v = &value["validation"];
    v.is_object().then(|| FrontendValidation {
        ca_refs: ca_refs(&v["caCertificateRefs"]),
        mode: v["mode"].as_str().unwrap_or("AllowValidOnly").to_string(),
    })
}

/// One `spec.listeners[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    /// `HTTP`, `HTTPS`, `TLS`, `TCP`, `UDP` or an implementation's own.
    pub protocol: String,
    pub port: u16,
    /// Lower-case; `None` matches every host.
    pub hostname: Option<String>,
    /// `allowedRoutes.namespaces.from`: `Same` (default), `All` or `Selector`.
    pub allowed_from: String,
    /// `allowedRoutes.kinds[].kind`; empty: the protocol's defaults.
    pub allowed_kinds: Vec<String>,
}

/// `spec.listeners` of a Gateway or ListenerSet.
fn listeners(value: &Value) -> Result<Vec<Listener>, ReduceError> {
    let mut listeners = Vec::new();
    for (i, l) in items(value, "spec.listeners", MAX_LISTENERS)?
        .iter()
        .enumerate()
    {
        let field = format!("spec.listeners[{i}]");
        let port = port(&l["port"], &format!("{field}.port"))?
            .ok_or_else(|| reduce_error(format!("{field}.port"), "is required"))?;
        let allowed = &l["allowedRoutes"];
        listeners.push(Listener {
            name: l["name"].as_str().unwrap_or("").to_string(),
            protocol: l["protocol"].as_str().unwrap_or("").to_string(),
            port,
            hostname: l["hostname"].as_str().map(|h| h.to_ascii_lowercase()),
            allowed_from: allowed["namespaces"]["from"]
                .as_str()
                .unwrap_or("Same")
                .to_string(),
            allowed_kinds: allowed["kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|k| k["kind"].as_str().map(str::to_string))
                .collect(),
        });
    }
    Ok(listeners)
}

/// The routing- and client-auth-relevant part of a Gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayView {
    pub key: ObjectKey,
    pub class: String,
    pub profile_label: Option<String>,
    pub listeners: Vec<Listener>,
    /// `spec.tls.frontend.default`.
    pub frontend_default: Option<FrontendValidation>,
    /// `spec.tls.frontend.perPort[]`: (port, validation).
    pub frontend_per_port: Vec<(u16, Option<FrontendValidation>)>,
}

impl GatewayView {
    pub fn from_value(value: &Value, default_namespace: &str) -> Result<Self, ReduceError> {
        let spec = &value["spec"];
        let listeners = listeners(&spec["listeners"])?;
        let frontend = &spec["tls"]["frontend"];
        let mut per_port = Vec::new();
        for (i, p) in items(
            &frontend["perPort"],
            "spec.tls.frontend.perPort",
            MAX_LISTENERS,
        )?
        .iter()
        .enumerate()
        {
            let field = format!("spec.tls.frontend.perPort[{i}].port");
            let port =
                port(&p["port"], &field)?.ok_or_else(|| reduce_error(field, "is required"))?;
            per_port.push((port, frontend_validation(&p["tls"])));
        }
        Ok(Self {
            key: ObjectKey::of_manifest(value, default_namespace),
            class: spec["gatewayClassName"].as_str().unwrap_or("").to_string(),
            profile_label: value["metadata"]["labels"][PROFILE_LABEL]
                .as_str()
                .map(str::to_string),
            listeners,
            frontend_default: frontend_validation(&frontend["default"]),
            frontend_per_port: per_port,
        })
    }
}

/// One `spec.parentRefs[]` entry, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentRef {
    pub group: String,
    pub kind: String,
    /// `None`: the route's namespace.
    pub namespace: Option<String>,
    pub name: String,
    pub section_name: Option<String>,
    pub port: Option<u16>,
}

fn parent_refs(value: &Value) -> Result<Vec<ParentRef>, ReduceError> {
    let mut out = Vec::new();
    for (i, r) in items(value, "spec.parentRefs", 32)?.iter().enumerate() {
        out.push(ParentRef {
            group: r["group"].as_str().unwrap_or(GATEWAY_GROUP).to_string(),
            kind: r["kind"].as_str().unwrap_or("Gateway").to_string(),
            namespace: r["namespace"].as_str().map(str::to_string),
            name: r["name"].as_str().unwrap_or("").to_string(),
            section_name: r["sectionName"].as_str().map(str::to_string),
            port: port(&r["port"], &format!("spec.parentRefs[{i}].port"))?,
        });
    }
    Ok(out)
}

/// `HTTPPathMatch.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpPathType {
    Exact,
    PathPrefix,
    RegularExpression,
}

/// One `HTTPRouteMatch`: its path, and whether it also needs headers, query parameters or
/// a method (then the match may or may not apply to a request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpMatch {
    pub path_type: HttpPathType,
    pub path: String,
    pub has_method: bool,
    pub headers: usize,
    pub query_params: usize,
}

impl HttpMatch {
    pub fn conditional(&self) -> bool {
        self.has_method || self.headers > 0 || self.query_params > 0
    }
}

/// One `spec.rules[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRule {
    /// At least one: a rule without matches matches `PathPrefix /`.
    pub matches: Vec<HttpMatch>,
    /// The rule answers with a redirect (`RequestRedirect` filter) instead of a backend.
    pub redirects: bool,
}

/// The routing-relevant part of an HTTPRoute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRouteView {
    pub key: ObjectKey,
    pub created: Option<i64>,
    /// Lower-case; empty: every hostname of the listener.
    pub hostnames: Vec<String>,
    pub parent_refs: Vec<ParentRef>,
    pub rules: Vec<HttpRule>,
}

impl HttpRouteView {
    pub fn from_value(value: &Value, default_namespace: &str) -> Result<Self, ReduceError> {
        let spec = &value["spec"];
        let mut rules = Vec::new();
        for (i, rule) in items(&spec["rules"], "spec.rules", MAX_RULES)?
            .iter()
            .enumerate()
        {
            let field = format!("spec.rules[{i}].matches");
            let mut matches = Vec::new();
            for (j, m) in items(&rule["matches"], &field, MAX_MATCHES)?
                .iter()
                .enumerate()
            {
                let path = &m["path"];
                let path_type = match path["type"].as_str() {
                    None | Some("PathPrefix") => HttpPathType::PathPrefix,
                    Some("Exact") => HttpPathType::Exact,
                    Some("RegularExpression") => HttpPathType::RegularExpression,
                    Some(other) => {
                        return Err(reduce_error(
                            format!("{field}[{j}].path.type"),
                            format!(
                                "{other:?} is not a path match type (Exact, PathPrefix, RegularExpression)"
                            ),
                        ));
                    }
                };
                let count = |v: &Value| v.as_array().map_or(0, Vec::len);
                matches.push(HttpMatch {
                    path_type,
                    path: path["value"].as_str().unwrap_or("/").to_string(),
                    has_method: m["method"].is_string(),
                    headers: count(&m["headers"]),
                    query_params: count(&m["queryParams"]),
                });
            }
            if matches.is_empty() {
                matches.push(HttpMatch {
                    path_type: HttpPathType::PathPrefix,
                    path: "/".into(),
                    has_method: false,
                    headers: 0,
                    query_params: 0,
                });
            }
            let redirects = rule["filters"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|f| f["type"].as_str() == Some("RequestRedirect"));
            rules.push(HttpRule { matches, redirects });
        }
        if rules.is_empty() {
            // `rules` defaults to one rule matching `PathPrefix /`.
            rules.push(HttpRule {
                matches: vec![HttpMatch {
                    path_type: HttpPathType::PathPrefix,
                    path: "/".into(),
                    has_method: false,
                    headers: 0,
                    query_params: 0,
                }],
                redirects: false,
            });
        }
        Ok(Self {
            key: ObjectKey::of_manifest(value, default_namespace),
            created: created(value),
            hostnames: lower(strings(&spec["hostnames"])),
            parent_refs: parent_refs(&spec["parentRefs"])?,
            rules,
        })
    }
}

/// Rule host keys of a route object: its hostnames, plus `""` when it has none or has a
/// wildcard (a Gateway API wildcard matches any number of labels, so a `*.bank.example`
/// route can serve `mtls.api.bank.example`, which the cluster view's one-label wildcard
/// lookup would not find: indexing it under `""` makes every host reach the dialect).
fn route_keys(hostnames: &[String]) -> Vec<String> {
    let mut keys = hostnames.to_vec();
    if hostnames.is_empty() || hostnames.iter().any(|h| h.starts_with("*.")) {
        keys.push(String::new());
    }
    keys
}

impl ObjectView for HttpRouteView {
    fn key(&self) -> &ObjectKey {
        &self.key
    }
    fn route_hosts(&self) -> Vec<String> {
        route_keys(&self.hostnames)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn same_view(&self, other: &dyn ObjectView) -> bool {
        crate::dialect::same_view_by_eq(self, other)
    }
}

/// A GRPCRoute, TLSRoute or TCPRoute: only where it attaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherRouteView {
    pub kind: &'static str,
    pub key: ObjectKey,
    pub hostnames: Vec<String>,
    pub parent_refs: Vec<ParentRef>,
}

impl ObjectView for OtherRouteView {
    fn key(&self) -> &ObjectKey {
        &self.key
    }
    fn route_hosts(&self) -> Vec<String> {
        route_keys(&self.hostnames)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn same_view(&self, other: &dyn ObjectView) -> bool {
        crate::dialect::same_view_by_eq(self, other)
    }
}

/// One `targetRefs[]` (or the deprecated `targetRef`) entry of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyTarget {
    pub group: String,
    pub kind: String,
    pub name: String,
    pub section_name: Option<String>,
}

/// `targetRefs` (and the deprecated `targetRef`) of an Envoy Gateway policy.
fn policy_targets(spec: &Value) -> Result<Vec<PolicyTarget>, ReduceError> {
    let target = |t: &Value| PolicyTarget {
        group: t["group"].as_str().unwrap_or("").to_string(),
        kind: t["kind"].as_str().unwrap_or("").to_string(),
        name: t["name"].as_str().unwrap_or("").to_string(),
        section_name: t["sectionName"].as_str().map(str::to_string),
    };
    let mut targets: Vec<PolicyTarget> = items(&spec["targetRefs"], "spec.targetRefs", 64)?
        .iter()
        .map(target)
        .collect();
    if spec["targetRef"].is_object() {
        targets.push(target(&spec["targetRef"]));
    }
    Ok(targets)
}

/// Envoy Gateway `ClientTrafficPolicy.spec.tls.clientValidation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientValidation {
    pub ca_refs: Vec<CaRef>,
    /// `mode`, if set.
    pub mode: Option<String>,
    /// Deprecated `optional: true`.
    pub optional: bool,
}

/// The client-auth part of an Envoy Gateway `ClientTrafficPolicy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTrafficPolicyView {
    pub key: ObjectKey,
    pub created: Option<i64>,
    pub targets: Vec<PolicyTarget>,
    /// `targetSelectors` is set (targets chosen by labels: not modelled).
    pub has_target_selectors: bool,
    pub client_validation: Option<ClientValidation>,
}

impl ClientTrafficPolicyView {
    pub fn from_value(value: &Value, default_namespace: &str) -> Result<Self, ReduceError> {
        let spec = &value["spec"];
        let targets = policy_targets(spec)?;
        let cv = &spec["tls"]["clientValidation"];
        Ok(Self {
            key: ObjectKey::of_manifest(value, default_namespace),
            created: created(value),
            targets,
            has_target_selectors: spec["targetSelectors"]
                .as_array()
                .is_some_and(|a| !a.is_empty()),
            client_validation: cv.is_object().then(|| ClientValidation {
                ca_refs: ca_refs(&cv["caCertificateRefs"]),
                mode: cv["mode"].as_str().map(str::to_string),
                optional: cv["optional"].as_bool().unwrap_or(false),
            }),
        })
    }
}

/// One `spec.from[]` entry of a ReferenceGrant: who may refer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantFrom {
    pub group: String,
    pub kind: String,
    pub namespace: String,
}

/// One `spec.to[]` entry of a ReferenceGrant: what may be referred to (`name` `None`: every
/// object of the kind in the grant's namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantTo {
    pub group: String,
    pub kind: String,
    pub name: Option<String>,
}

/// A ReferenceGrant (`apis/v1beta1/referencegrant_types.go`): it lets objects described by
/// `from` refer to objects described by `to` in the grant's own namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceGrantView {
    pub key: ObjectKey,
    pub from: Vec<GrantFrom>,
    pub to: Vec<GrantTo>,
}

impl ReferenceGrantView {
    pub fn from_value(value: &Value, default_namespace: &str) -> Result<Self, ReduceError> {
        let spec = &value["spec"];
        let text = |v: &Value| v.as_str().unwrap_or("").to_string();
        let from = items(&spec["from"], "spec.from", 16)?
            .iter()
            .map(|f| GrantFrom {
                group: text(&f["group"]),
                kind: text(&f["kind"]),
                namespace: text(&f["namespace"]),
            })
            .collect();
        let to = items(&spec["to"], "spec.to", 16)?
            .iter()
            .map(|t| GrantTo {
                group: text(&t["group"]),
                kind: text(&t["kind"]),
                name: t["name"]
                    .as_str()
                    .filter(|n| !n.is_empty())
                    .map(str::to_string),
            })
            .collect();
        Ok(Self {
            key: ObjectKey::of_manifest(value, default_namespace),
            from,
            to,
        })
    }

    /// Whether this grant lets a `from_kind` (of `from_group`) in `from_namespace` refer to
    /// the `to_kind` (core group) object `to` in the grant's namespace.
    pub fn permits(
        &self,
        (from_group, from_kind, from_namespace): (&str, &str, &str),
        (to_group, to_kind, to): (&str, &str, &ObjectKey),
    ) -> bool {
        to.namespace == self.key.namespace
            && self.from.iter().any(|f| {
                f.group == from_group && f.kind == from_kind && f.namespace == from_namespace
            })
            && self.to.iter().any(|t| {
                t.group == to_group
                    && t.kind == to_kind
                    && t.name.as_deref().is_none_or(|n| n == to.name)
            })
    }
}

/// A ListenerSet or XListenerSet: the listeners it adds to its parent Gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSetView {
    pub kind: &'static str,
    pub key: ObjectKey,
    /// `spec.parentRef.namespace` (`None`: the ListenerSet's).
    pub parent_namespace: Option<String>,
    pub parent_name: String,
    pub listeners: Vec<Listener>,
}

/// The `SecurityPolicy` fields that make it an access gate.
pub const SECURITY_FEATURES: [&str; 7] = [
    "extAuth",
    "jwt",
    "oidc",
    "basicAuth",
    "apiKeyAuth",
    "authorization",
    "cors",
];

/// An Envoy Gateway SecurityPolicy: what it targets and which gates it sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityPolicyView {
    pub key: ObjectKey,
    pub targets: Vec<PolicyTarget>,
    pub has_target_selectors: bool,
    /// Which of [`SECURITY_FEATURES`] it sets.
    pub features: Vec<&'static str>,
}

/// `GatewayClass.spec.parametersRef` (`ParametersReference`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParametersRef {
    pub group: String,
    pub kind: String,
    pub name: String,
    /// Set for a namespaced kind such as `EnvoyProxy`.
    pub namespace: Option<String>,
}

/// A GatewayClass: its controller and its parameters. Cluster-scoped, so its key has the
/// namespace `""` wherever it is read from (the API server, an admission review, a file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayClassView {
    pub key: ObjectKey,
    pub controller_name: String,
    pub parameters: Option<ParametersRef>,
}

impl GatewayClassView {
    pub fn from_value(value: &Value) -> Self {
        let spec = &value["spec"];
        let text = |v: &Value| v.as_str().unwrap_or("").to_string();
        let parameters = &spec["parametersRef"];
        Self {
            key: Self::key_of(value["metadata"]["name"].as_str().unwrap_or("")),
            controller_name: text(&spec["controllerName"]),
            parameters: parameters.is_object().then(|| ParametersRef {
                group: text(&parameters["group"]),
                kind: text(&parameters["kind"]),
                name: text(&parameters["name"]),
                namespace: parameters["namespace"].as_str().map(str::to_string),
            }),
        }
    }

    /// The key of the GatewayClass `name` (cluster-scoped: no namespace).
    pub fn key_of(name: &str) -> ObjectKey {
        ObjectKey::new("", name)
    }
}

/// An Envoy Gateway EnvoyProxy, reduced to `spec.mergeGateways`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvoyProxyView {
    pub key: ObjectKey,
    /// `spec.mergeGateways` (unset: false, every Gateway gets its own proxies).
    pub merge_gateways: bool,
}

impl EnvoyProxyView {
    pub fn from_value(value: &Value, default_namespace: &str) -> Result<Self, ReduceError> {
        let merge = &value["spec"]["mergeGateways"];
        let merge_gateways = match merge {
            Value::Null => false,
            Value::Bool(b) => *b,
            other => {
                return Err(reduce_error(
                    "spec.mergeGateways",
                    format!("{other} is not a boolean"),
                ));
            }
        };
        Ok(Self {
            key: ObjectKey::of_manifest(value, default_namespace),
            merge_gateways,
        })
    }
}

macro_rules! plain_view {
    ($($t:ty),*) => {$(
        impl ObjectView for $t {
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
    )*};
}
plain_view!(
    GatewayView,
    ClientTrafficPolicyView,
    ReferenceGrantView,
    ListenerSetView,
    SecurityPolicyView,
    GatewayClassView,
    EnvoyProxyView
);
