//! Traefik `IngressRoute` (kubernetescrd provider) as the dialect reads it.
//!
//! Sources (traefik/traefik `pkg/provider/kubernetes/crd/kubernetes_http.go`,
//! `loadIngressRouteConfiguration`): each `spec.routes[]` becomes one router with the
//! route's `match` rule, its `priority` (0 or absent: the rule's length,
//! `httpmuxer.GetRulePriority`, `pkg/server/router/router.go`), the object's
//! `spec.entryPoints` (empty: every default entry point) and its middlewares
//! (`name`, `namespace` defaulting to the IngressRoute's; a name with `@` names another
//! provider's middleware). With `spec.tls` the router is a TLS router whose options are
//! `spec.tls.options` (`name`, `namespace` defaulting to the IngressRoute's; absent: the
//! `default` options); without it the router serves plain HTTP (an entry point's static
//! `http.tls` can make it TLS, which mtls-gate cannot see: it counts as plain HTTP).
//!
//! Groups (design.md §10): Traefik v2.10-v2.11 read IngressRoutes of `traefik.io` and of
//! the older `traefik.containo.us`, the `traefik.io` object winning for the same
//! namespace/name; v3 reads only `traefik.io`. Both are read here (a `containo.us` object
//! may be served by v2), and a `containo.us` object is ignored when a `traefik.io` one of
//! the same namespace/name exists.

use std::any::Any;
use std::sync::Arc;

use super::rule::{self, Rule};
use crate::dialect::{ObjectKind, ObjectView};
use crate::model::ObjectKey;

pub const INGRESS_ROUTE: ObjectKind = ObjectKind {
    group: "traefik.io",
    version: "v1alpha1",
    kind: "IngressRoute",
    plural: "ingressroutes",
};

/// The older group, still read by Traefik v2.10-v2.11.
pub const INGRESS_ROUTE_CONTAINOUS: ObjectKind = ObjectKind {
    group: "traefik.containo.us",
    version: "v1alpha1",
    kind: "IngressRoute",
    plural: "ingressroutes",
};

/// The `RouteSource` kind of IngressRoute routes.
pub const INGRESS_ROUTE_KIND: &str = "IngressRoute";

/// A reference to a Middleware or TLSOption of an IngressRoute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrdRef {
    pub name: String,
    /// Explicit namespace (`None`: the IngressRoute's).
    pub namespace: Option<String>,
}

impl CrdRef {
    fn from_value(value: &serde_json::Value) -> Option<Self> {
        Some(Self {
            name: value["name"].as_str()?.to_string(),
            namespace: value["namespace"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        })
    }
}

/// One `spec.routes[]` entry of kind `Rule`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressRouteRoute {
    /// The `match` rule as written.
    pub text: String,
    /// The parsed rule, or why it cannot be parsed.
    pub rule: Result<Arc<Rule>, String>,
    /// `priority` (0: the rule length).
    pub priority: i64,
    pub middlewares: Vec<CrdRef>,
}

impl IngressRouteRoute {
    /// The router priority Traefik uses.
    pub fn effective_priority(&self) -> i64 {
        if self.priority != 0 {
            self.priority
        } else {
            self.text.len() as i64
        }
    }
}

/// The TLS section of an IngressRoute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressRouteTls {
    pub options: Option<CrdRef>,
}

/// A Traefik `IngressRoute` of either group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressRouteView {
    pub key: ObjectKey,
    pub routes: Vec<IngressRouteRoute>,
    pub entry_points: Vec<String>,
    pub tls: Option<IngressRouteTls>,
    /// Rule hosts the cluster view indexes this object by.
    hosts: Vec<String>,
}

impl ObjectView for IngressRouteView {
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

impl IngressRouteView {
    pub fn from_value(value: &serde_json::Value, default_namespace: &str) -> Self {
        let key = ObjectKey::of_manifest(value, default_namespace);
        let spec = &value["spec"];
        let mut routes = Vec::new();
        for route in spec["routes"].as_array().into_iter().flatten() {
            // Fields the CRD schema constrains (`kind: Rule`, an integer `priority`) are not
            // reduce errors: an object that cannot be read would vanish from the route
            // tables, so the route is kept and reported as unreadable (fail closed).
            let text = route["match"].as_str().unwrap_or("").to_string();
            let mut problem = None;
            if route["kind"].as_str().is_some_and(|k| k != "Rule") {
                problem = Some(format!("kind {} is not Rule", route["kind"]));
            }
            let priority = match &route["priority"] {
                serde_json::Value::Null => 0,
                p => p.as_i64().unwrap_or_else(|| {
                    problem = Some(format!("priority {p} is not an integer"));
                    0
                }),
            };
            let rule = match problem {
                Some(problem) => Err(problem),
                None => rule::parse(&text).map(Arc::new),
            };
            routes.push(IngressRouteRoute {
                rule,
                text,
                priority,
                middlewares: route["middlewares"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(CrdRef::from_value)
                    .collect(),
            });
        }
        let mut hosts: Vec<String> = Vec::new();
        for route in &routes {
            match route.rule.as_deref().ok().and_then(rule::exact_hosts) {
                Some(exact) => hosts.extend(exact),
                // Unparseable, regex or host-less: every host.
                None => hosts.push(String::new()),
            }
        }
        hosts.sort();
        hosts.dedup();
        Self {
            key,
            routes,
            entry_points: spec["entryPoints"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e.as_str().map(str::to_string))
                .collect(),
            tls: spec
                .get("tls")
                .filter(|t| !t.is_null())
                .map(|tls| IngressRouteTls {
                    options: CrdRef::from_value(&tls["options"]),
                }),
            hosts,
        }
    }
}
