//! Ingress-controller dialects: how one controller turns Ingresses (and its own kinds) into
//! routes, merges client-auth settings across the objects of a host, and renders settings.
//!
//! Each controller is one module implementing [`Dialect`]; the engine only sees the
//! [`HostRouteTable`] a dialect builds. A dialect owns the Kubernetes kinds it reads besides
//! Ingress and Secret ([`Dialect::kinds`]) and reduces them to compact views
//! ([`Dialect::reduce`]); the cluster view stores those views by kind without knowing their
//! type, the CLI loads them from manifests, the controller watches them and the webhooks
//! review changes to them, all through this interface. Adding a controller means adding a
//! module and one entry in [`DIALECTS`].

pub mod config_map;
pub mod gateway;
pub mod go_parse;
pub mod haproxy;
pub mod nginx;
pub mod route_list;
pub mod traefik;

pub use route_list::RouteList;

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::model::{IngressView, Lookup, ObjectKey, ObjectSource, PathType};
use crate::paths::PathMatcher;
use crate::profile::{CompiledProfile, IngressController};
use crate::violation::Violation;

/// What a request on one route must present, all controller settings applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthKind {
    /// A verified client certificate is required in the handshake.
    Required,
    /// The handshake verifies a certificate if one is sent; the gate rejects requests
    /// without a verified one.
    RequiredByGate,
    /// A certificate is verified if sent, but not required.
    Optional,
    /// No certificate is requested, or a gate relies on a header the client can forge.
    None,
    /// A certificate is demanded but its chain is never verified.
    RequiredUnverified,
    /// A certificate is requested but never verified.
    OptionalUnverified,
    /// Every request is rejected (a broken configuration that fails closed).
    Rejected,
}

impl AuthKind {
    /// Requests reach the backend only with a verified client certificate.
    pub fn requires_verified_certificate(self) -> bool {
        matches!(
            self,
            AuthKind::Required | AuthKind::RequiredByGate | AuthKind::Rejected
        )
    }
    /// Requests without a client certificate are turned away.
    pub fn refuses_clients_without_certificate(self) -> bool {
        matches!(
            self,
            AuthKind::Required | AuthKind::RequiredByGate | AuthKind::RequiredUnverified
        )
    }
    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::Required => "required",
            AuthKind::RequiredByGate => "required-by-gate",
            AuthKind::Optional => "optional",
            AuthKind::None => "none",
            AuthKind::RequiredUnverified => "required-unverified",
            AuthKind::OptionalUnverified => "optional-unverified",
            AuthKind::Rejected => "rejected",
        }
    }
}

/// The effective client authentication of a route, and the setting that decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteAuth {
    pub kind: AuthKind,
    /// Why, in the controller's terms (which annotation of which Ingress).
    pub detail: Arc<str>,
}

/// The object a route comes from: an Ingress, or a route object of a dialect-owned kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteSource {
    /// `Ingress`, or the dialect-owned kind (`IngressRoute`, `HTTPRoute`).
    pub kind: &'static str,
    pub key: ObjectKey,
}

impl RouteSource {
    pub fn ingress(ingress: &IngressView) -> Self {
        Self {
            kind: INGRESS_KIND,
            key: ingress.key.clone(),
        }
    }
    pub fn is_ingress(&self) -> bool {
        self.kind == INGRESS_KIND
    }
}

impl fmt::Display for RouteSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.key)
    }
}

/// The kind of a [`RouteSource`] that is an Ingress.
pub const INGRESS_KIND: &str = "Ingress";

/// One route of a host as the controller really serves it.
#[derive(Debug, Clone)]
pub struct Route {
    /// The object whose path this is (for ingress-nginx's implicit default location: the
    /// Ingress whose annotations it inherits).
    pub source: RouteSource,
    /// The path as written in the Ingress.
    pub path: String,
    pub path_type: PathType,
    pub matcher: PathMatcher,
    /// Serves a backend of the Ingress (false for ingress-nginx's implicit default `/`
    /// location, which answers 404 from the default backend).
    pub serves_backend: bool,
    /// The route is reached over TLS.
    pub tls: bool,
    pub auth: RouteAuth,
    /// Dialect-specific rank (Traefik router priority); unused by others.
    pub priority: i64,
}

/// Every route of one host, with the host's client-auth settings and findings.
#[derive(Debug, Clone, Default)]
pub struct HostRouteTable {
    /// The rule host the controller uses for the requested host (exact, `*.` wildcard or
    /// `""` for host-less rules).
    pub host_key: String,
    /// Shared, so that a table derived from another after a change
    /// ([`Dialect::patched_table`]) shares the older table's routes ([`RouteList`]).
    pub routes: RouteList,
    /// Host-level client-auth summary for reports.
    pub client_auth: String,
    /// Host-level findings (conflicts, CA secrets, TLS options).
    pub findings: Vec<Violation>,
    /// What else, in this controller, makes a route TLS (appended to `TlsMissing`).
    pub plain_http_hint: &'static str,
    /// Ingresses counted although their class is not the profile's, and why (filled by
    /// the engine, [`crate::engine::ingress_class_decision`]; findings about their routes
    /// say so).
    pub class_notes: std::collections::BTreeMap<ObjectKey, String>,
    /// Indices of routes that match only some requests of their paths (Traefik rules that
    /// also test headers, methods or client addresses): they may serve a path, but never
    /// shadow another route.
    pub conditional: std::collections::BTreeSet<usize>,
    /// A dialect's lookup structure over `routes`, built by its `winners` on first use and
    /// kept with the table, so that each representative path does not rescan every route.
    pub winners_index: std::sync::OnceLock<Arc<dyn std::any::Any + Send + Sync>>,
    /// What the dialect needs, beyond the routes, to derive the table after a change of
    /// one Ingress from this one ([`Dialect::patched_table`]): host-wide settings and who
    /// claims which path. `None`: every change rebuilds the table.
    pub patch_state: Option<Arc<dyn std::any::Any + Send + Sync>>,
    /// [`HostRouteTable::routes_of`], indexed on first use.
    pub(crate) routes_by_source:
        std::sync::OnceLock<std::collections::HashMap<RouteSource, Vec<usize>>>,
    /// [`HostRouteTable::opaque_routes`], found on first use or taken over from the table
    /// this one was derived from ([`HostRouteTable::take_opaque_routes_over`]).
    pub(crate) opaque_routes: std::sync::OnceLock<Vec<usize>>,
}

impl HostRouteTable {
    /// A table with this one's host-wide fields (host key, client auth, findings, class
    /// notes, conditions) and `routes`: what a dialect's patch derives after a change.
    pub fn with_routes(
        &self,
        routes: RouteList,
        patch_state: Option<Arc<dyn std::any::Any + Send + Sync>>,
    ) -> HostRouteTable {
        HostRouteTable {
            host_key: self.host_key.clone(),
            routes,
            client_auth: self.client_auth.clone(),
            findings: self.findings.clone(),
            plain_http_hint: self.plain_http_hint,
            class_notes: self.class_notes.clone(),
            conditional: self.conditional.clone(),
            winners_index: std::sync::OnceLock::new(),
            patch_state,
            routes_by_source: std::sync::OnceLock::new(),
            opaque_routes: std::sync::OnceLock::new(),
        }
    }

    /// Indices of the routes whose matcher representative paths cannot enumerate
    /// ([`PathMatcher::is_opaque`]), ascending: such a route may serve any path it admits,
    /// so the engine looks at these besides the winners of representatives.
    pub fn opaque_routes(&self) -> &[usize] {
        self.opaque_routes.get_or_init(|| {
            self.routes
                .iter()
                .enumerate()
                .filter(|(_, r)| r.matcher.is_opaque())
                .map(|(i, _)| i)
                .collect()
        })
    }

    /// Sets this table's opaque routes from those of `before`, the table it was derived
    /// from by `moves`: the kept ones in their new places and the added ones that are
    /// opaque, without reading every route. No effect once they are known. (No dialect
    /// patches a change that adds an opaque route today: ingress-nginx rebuilds a host in
    /// regex mode, and the Gateway API patch a change with a `RegularExpression` match. The
    /// debug assertion holds the derivation to a scan if one does; the Gateway API property
    /// test reaches the kept routes.)
    pub fn take_opaque_routes_over(&self, before: &HostRouteTable, moves: &RouteMoves) {
        if self.opaque_routes.get().is_some() {
            return;
        }
        let opaque = moves.carry_over(before.opaque_routes(), |j| {
            self.routes[j].matcher.is_opaque()
        });
        debug_assert_eq!(
            opaque,
            HostRouteTable {
                routes: self.routes.clone(),
                ..Default::default()
            }
            .opaque_routes(),
            "opaque routes taken over across a change"
        );
        let _ = self.opaque_routes.set(opaque);
    }

    /// The indices of the routes of `source`, ascending: where a patch finds the changed
    /// object's routes without reading every route again (indexed once per table, on the
    /// first patch of it; a table's routes do not change once it is built).
    pub fn routes_of(&self, source: &RouteSource) -> &[usize] {
        let by_source = self.routes_by_source.get_or_init(|| {
            let mut by_source: std::collections::HashMap<RouteSource, Vec<usize>> =
                std::collections::HashMap::new();
            for (i, route) in self.routes.iter().enumerate() {
                by_source.entry(route.source.clone()).or_default().push(i);
            }
            by_source
        });
        by_source.get(source).map_or(&[], Vec::as_slice)
    }

    /// The state a dialect kept for patching this table, if it is a `T`.
    pub fn kept_patch_state<T: 'static>(&self) -> Option<&T> {
        self.patch_state.as_deref()?.downcast_ref::<T>()
    }
}

/// A host's table after a change of one object, derived from the table before it
/// ([`Dialect::patched_table`], [`Dialect::patched_object_table`]): the changed object's
/// routes moved as `moves` says; every other route, in the same relative order, and every
/// host-wide field is the old table's.
#[derive(Debug)]
pub struct TablePatch {
    pub table: HostRouteTable,
    pub moves: RouteMoves,
}

/// Where a patch moved the old table's routes: the changed object's were removed, its new
/// ones added, every other route kept in order. Kept routes are found by arithmetic on
/// the two (short) lists, so a change costs by its own routes, not the host's.
#[derive(Debug, Clone)]
pub struct RouteMoves {
    old_len: usize,
    /// Indices into the old table's routes, ascending.
    removed: Vec<usize>,
    /// Indices into the new table's routes, ascending.
    added: Vec<usize>,
}

impl RouteMoves {
    /// The routes at `removed` of an old table of `old_len` routes removed and those at
    /// `added` of the new table added (both ascending, without repeats).
    pub fn new(old_len: usize, removed: Vec<usize>, added: Vec<usize>) -> Self {
        debug_assert!(
            removed.windows(2).all(|w| w[0] < w[1]) && removed.last().is_none_or(|&r| r < old_len),
            "removed routes {removed:?} of {old_len} are ascending and in range"
        );
        debug_assert!(
            added.windows(2).all(|w| w[0] < w[1])
                && added
                    .last()
                    .is_none_or(|&a| a < old_len - removed.len() + added.len()),
            "added routes {added:?} are ascending and in range"
        );
        Self {
            old_len,
            removed,
            added,
        }
    }

    pub fn removed(&self) -> &[usize] {
        &self.removed
    }

    pub fn added(&self) -> &[usize] {
        &self.added
    }

    /// Routes in the old table.
    pub fn old_len(&self) -> usize {
        self.old_len
    }

    /// Routes in the new table.
    pub fn new_len(&self) -> usize {
        self.old_len - self.removed.len() + self.added.len()
    }

    /// Whether every kept route has the same index in both tables (the changed object's
    /// routes were replaced in place, as many as before).
    pub fn keeps_indices(&self) -> bool {
        self.removed == self.added
    }

    /// The index in the new table of route `i` of the old one (`None`: removed, or out of
    /// range).
    pub fn new_index(&self, i: usize) -> Option<usize> {
        (i < self.old_len && self.removed.binary_search(&i).is_err())
            .then(|| kept_at(&self.added, i - self.removed.partition_point(|&r| r < i)))
    }

    /// Routes of the new table picked as `before` picks routes of the old one: the kept
    /// routes of `before` in their new places, and the added routes `added_picked` picks,
    /// ascending. How a set of routes that only a route's own fields decide is derived
    /// across a change without reading the other routes.
    pub fn carry_over(&self, before: &[usize], added_picked: impl Fn(usize) -> bool) -> Vec<usize> {
        let mut routes: Vec<usize> = (before.iter().filter_map(|&i| self.new_index(i)))
            .chain(self.added.iter().copied().filter(|&j| added_picked(j)))
            .collect();
        routes.sort_unstable();
        routes
    }

    /// The index in the old table of route `j` of the new one (`None`: added, or out of
    /// range).
    pub fn old_index(&self, j: usize) -> Option<usize> {
        (j < self.new_len() && self.added.binary_search(&j).is_err())
            .then(|| kept_at(&self.removed, j - self.added.partition_point(|&a| a < j)))
    }
}

/// The index of the `k`-th (from 0) index not in `skipped` (ascending): before the
/// `t`-th skipped index lie `skipped[t] - t` unskipped ones, a count that never decreases.
pub(super) fn kept_at(skipped: &[usize], k: usize) -> usize {
    let (mut lo, mut hi) = (0, skipped.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if skipped[mid] - mid <= k {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    k + lo
}

/// Inputs for building one host's table.
pub struct HostContext<'a> {
    pub profile: &'a CompiledProfile,
    /// The host the profile's endpoints use.
    pub host: &'a str,
    /// The rule host the Ingresses use for it.
    pub host_key: &'a str,
    /// Ingresses of the considered class with a rule for `host_key` (empty when only route
    /// objects of the dialect's own kinds serve the host: `host_key` is then the host).
    pub ingresses: Vec<Arc<IngressView>>,
    /// Ingresses of the considered class that name `host` outside their rules (in
    /// `spec.tls`, or as an alias: [`IngressView::named_hosts`]) and have no rule for
    /// `host_key`. haproxy-ingress merges the Host keys of `spec.tls`-only Ingresses;
    /// ingress-nginx answers an alias with the aliasing host's server.
    pub named_by: Vec<Arc<IngressView>>,
    /// Everything else: Secrets, and the dialect's own kinds
    /// ([`ObjectSource::object`], [`ObjectSource::objects_of`], and route objects by rule
    /// host with [`ObjectSource::routes_for_host`]).
    pub objects: &'a dyn ObjectSource,
    /// The table is a before-state that later changes patch ([`Dialect::patched_table`]):
    /// only then does a dialect pay for keeping what patching needs
    /// ([`HostRouteTable::patch_state`]). `check`, `render` and the controller do not.
    pub keep_patch_state: bool,
}

impl HostContext<'_> {
    /// A host-level finding for this profile and host.
    pub fn finding(
        &self,
        code: crate::violation::ViolationCode,
        ingress: Option<&ObjectKey>,
        message: String,
    ) -> Violation {
        Violation {
            code,
            message,
            profile: self.profile.name.clone(),
            host: self.host.to_string(),
            ingress: ingress.cloned(),
            path: None,
            endpoint: None,
            url: None,
        }
    }
}

/// What the renderer writes onto one managed Ingress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AnnotationChanges {
    /// Annotations to set (key → value).
    pub set: BTreeMap<String, String>,
    /// Owned annotations to remove.
    pub remove: Vec<String>,
}

/// The role a host plays in the profile's layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostRole {
    /// Serves only MTLS endpoints: require verified certificates at the handshake.
    Mtls,
    /// Serves only TLS endpoints: never request certificates.
    Tls,
    /// Serves both (single host with gate): optional at the handshake, gate on MTLS routes.
    Mixed,
}

/// Render request for one managed Ingress on one host.
pub struct RenderInput<'a> {
    pub profile: &'a CompiledProfile,
    pub ingress: &'a IngressView,
    pub role: HostRole,
    /// Whether the Ingress's paths on this host serve MTLS endpoints (gate needed in a
    /// mixed host).
    pub serves_mtls: bool,
    /// Current annotations of the Ingress (all of them, not only the cached subset).
    pub annotations: &'a BTreeMap<String, String>,
}

/// An extra object a dialect needs (Traefik TLSOption, Middleware), as a full manifest.
pub type RenderedObject = serde_json::Value;

/// A Kubernetes kind a dialect reads besides Ingress and Secret (a controller's CRDs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
}

impl ObjectKind {
    /// Whether a manifest's `apiVersion` and `kind` are this kind (a core kind, group
    /// `""`, has an `apiVersion` without a group: `v1`).
    pub fn matches(&self, api_version: &str, kind: &str) -> bool {
        kind == self.kind
            && match api_version.split_once('/') {
                Some((group, _)) => group == self.group,
                None => self.group.is_empty() && !api_version.is_empty(),
            }
    }
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "{}.{}", self.kind, self.group)
        }
    }
}

/// The compact view of one object of a dialect-owned kind. The cluster view stores it
/// without knowing its type; the dialect that reduced it downcasts it back.
pub trait ObjectView: Any + Send + Sync + fmt::Debug {
    fn key(&self) -> &ObjectKey;
    /// Rule host keys this object routes requests for (exact, `*.` wildcard or `""`);
    /// empty for objects that only configure routes (options, middlewares). The cluster
    /// view indexes route objects by these hosts, as it does Ingresses.
    fn route_hosts(&self) -> Vec<String> {
        Vec::new()
    }
    fn as_any(&self) -> &dyn Any;
    /// Whether `other` is the same view (an update that changes nothing the dialects read,
    /// such as a ConfigMap's unlabelled data): the cluster view then keeps its generation,
    /// so cached before-states stay valid. `false` when unknown.
    fn same_view(&self, other: &dyn ObjectView) -> bool {
        let _ = other;
        false
    }
}

/// [`ObjectView::same_view`] of a view type whose fields are all read by its dialect (so a
/// derived `PartialEq` compares exactly what an evaluation can see).
pub fn same_view_by_eq<T: ObjectView + PartialEq>(view: &T, other: &dyn ObjectView) -> bool {
    other.as_any().downcast_ref::<T>() == Some(view)
}

/// A shared, type-erased object view.
pub type SharedObject = Arc<dyn ObjectView>;

/// Why an object of a dialect-owned kind cannot be reduced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ReduceError {
    /// The offending field (`spec.routes[0].match`).
    pub field: String,
    pub message: String,
}

/// The typed view behind a lookup of a dialect-owned kind (`Unknown` if the stored view is
/// of another type, which only a dialect bug can cause).
pub fn downcast_lookup<'a, T: 'static>(lookup: Lookup<'a, SharedObject>) -> Lookup<'a, T> {
    match lookup {
        Lookup::Found(object) => match object.as_any().downcast_ref::<T>() {
            Some(typed) => Lookup::Found(typed),
            None => Lookup::Unknown,
        },
        Lookup::Missing => Lookup::Missing,
        Lookup::Unknown => Lookup::Unknown,
    }
}

/// One ingress controller's semantics.
pub trait Dialect: Send + Sync {
    /// Whether this controller reads (or reports) an Ingress annotation: cached Ingress
    /// views keep only annotations some dialect keeps ([`crate::model::is_relevant_annotation`]).
    fn keeps_annotation(&self, key: &str) -> bool {
        let _ = key;
        false
    }

    /// Further host names an Ingress makes this controller answer (ingress-nginx's
    /// `server-alias`), lower-case: the cluster view indexes Ingresses by them too, so the
    /// dialect sees them in [`HostContext::named_by`].
    fn host_aliases(&self, ingress: &IngressView) -> Vec<String> {
        let _ = ingress;
        Vec::new()
    }

    /// The value the controller compares the legacy `kubernetes.io/ingress.class`
    /// annotation with when its flag is left unchanged (ingress-nginx `--ingress-class`,
    /// default and Helm chart value `nginx`). The flag is invisible to mtls-gate, so an
    /// Ingress annotated with this value counts even when the profile names another class.
    fn legacy_class_default(&self) -> Option<&'static str> {
        None
    }

    /// Whether the controller reads its settings from a ConfigMap (`--configmap`) that a
    /// profile may name in `spec.controllerConfigMap`: the dialect then reads ConfigMaps
    /// (by default, [`config_map::CONTROLLER_CONFIG_KINDS`]) for the profiles that name one.
    fn reads_controller_config_map(&self) -> bool {
        false
    }

    /// A label selector that every object of `kind` this dialect reads carries, so a watch
    /// may list only those (`None`: every object). A kind is watched with the selector only
    /// when every watched dialect that reads it gives the same one.
    fn watch_selector(&self, kind: &ObjectKind) -> Option<&'static str> {
        (self.reads_controller_config_map() && *kind == config_map::CONFIG_MAP)
            .then_some(config_map::CONTROLLER_CONFIG_LABEL)
    }

    /// Kinds this controller reads besides Ingress and Secret; the CLI loads them from
    /// manifests, the controller watches them and the webhooks review their changes.
    fn kinds(&self) -> &'static [ObjectKind] {
        if self.reads_controller_config_map() {
            &config_map::CONTROLLER_CONFIG_KINDS
        } else {
            &[]
        }
    }

    /// Whether evaluations of `profile` read objects of `kind` (one of [`Dialect::kinds`]):
    /// only then does an unreadable kind keep the profile's hosts from being proven
    /// compliant. A controller ConfigMap matters only to profiles that name one.
    fn reads_kind(&self, profile: &CompiledProfile, kind: &ObjectKind) -> bool {
        !(self.reads_controller_config_map() && *kind == config_map::CONFIG_MAP)
            || profile.spec.controller_config_map.is_some()
    }

    /// Reduces one object of one of [`Dialect::kinds`] (as JSON) to its compact view.
    /// `default_namespace` is given to an object without one.
    fn reduce(
        &self,
        kind: &ObjectKind,
        object: &serde_json::Value,
        default_namespace: &str,
    ) -> Result<SharedObject, ReduceError> {
        if *kind == config_map::CONFIG_MAP {
            return config_map::reduce(object, default_namespace);
        }
        Err(ReduceError {
            field: "kind".into(),
            message: format!("{kind} is not read by this controller"),
        })
    }

    /// Builds the route table of one host from all its Ingresses.
    fn host_table(&self, ctx: &HostContext<'_>) -> HostRouteTable;

    /// The table of `host` after its Ingress changed from `old` to `new` (`None`: not
    /// there, a CREATE or a DELETE), derived from `before` (the host's table before the
    /// change, from [`Dialect::host_table`] or an earlier patch) without reading the host's
    /// other Ingresses, so in O(the changed Ingress's paths). `None` when the change may
    /// touch anything but that Ingress's own routes (host-wide settings, a path another
    /// Ingress also claims, the order of Ingresses), and the table is built in full.
    ///
    /// The engine calls it only when both versions have a rule for exactly `host`, are
    /// served by the profile's controller by their class, and `before.host_key` is `host`.
    /// The result must be the table [`Dialect::host_table`] builds on the world after the
    /// change (`tests/incremental_equivalence.rs` holds every dialect to that).
    fn patched_table(
        &self,
        profile: &CompiledProfile,
        host: &str,
        before: &HostRouteTable,
        old: Option<&IngressView>,
        new: Option<&IngressView>,
    ) -> Option<TablePatch> {
        let _ = (profile, host, before, old, new);
        None
    }

    /// The table of `host` after the object `old` of `kind` (one of [`Dialect::kinds`])
    /// became `new` (`None`: not there), derived from `before` like
    /// [`Dialect::patched_table`] derives it after an Ingress change: `None` when the change
    /// may touch anything but that object's own routes, and the table is built in full.
    /// The engine calls it only when the host is served after the change as before.
    /// The result must be the table [`Dialect::host_table`] builds on the world after the
    /// change (`tests/incremental_objects.rs` holds the dialects to that).
    fn patched_object_table(
        &self,
        host: &str,
        before: &HostRouteTable,
        kind: &ObjectKind,
        old: Option<&SharedObject>,
        new: Option<&SharedObject>,
    ) -> Option<TablePatch> {
        let _ = (host, before, kind, old, new);
        None
    }

    /// Routes that may serve the concrete request `path` (more than one when the
    /// controller's choice is undefined or cannot be decided). Must depend only on the
    /// routes whose matcher may match `path` (their order, matchers, TLS, priorities and
    /// [`HostRouteTable::conditional`] membership): the engine takes the winners of a path
    /// over across a change that touches no such route.
    fn winners(&self, table: &HostRouteTable, path: &str) -> Vec<usize>;

    /// The JSON merge patch (RFC 7386) that renders a managed object of one of
    /// [`Dialect::kinds`] (labelled `mtls-gate.io/profile`) for `profile`: `Ok(None)` when
    /// the kind is not rendered or the object already carries the rendering, `Err` with the
    /// reason when no rendering can make it compliant. The mutating webhook applies it at
    /// admission, `mtls-gate render` to manifests, and the controller to existing objects
    /// (server-side apply of the patch's fields, field manager `mtls-gate`).
    fn render_object(
        &self,
        profile: &CompiledProfile,
        kind: &ObjectKind,
        object: &SharedObject,
    ) -> Result<Option<serde_json::Value>, String> {
        let _ = (profile, kind, object);
        Ok(None)
    }

    /// `object` as it is once the controller has applied [`Dialect::render_object`]'s
    /// rendering with server-side apply (fields of other managers kept): the controller
    /// evaluates the world after its writes. `None` when the kind is not rendered or the
    /// rendering is refused.
    fn rendered_view(
        &self,
        profile: &CompiledProfile,
        kind: &ObjectKind,
        object: &SharedObject,
    ) -> Option<SharedObject> {
        let _ = (profile, kind, object);
        None
    }

    /// Annotations that must be set or removed on a managed Ingress for its host role, and
    /// the objects (namespaced like the Ingress) they reference.
    fn render(&self, input: &RenderInput<'_>) -> (AnnotationChanges, Vec<RenderedObject>);
}

/// The dialect of a controller; `None` for controllers this version cannot evaluate.
pub fn dialect_for(controller: IngressController) -> Option<&'static dyn Dialect> {
    DIALECTS
        .iter()
        .find(|(c, _)| *c == controller)
        .map(|(_, dialect)| *dialect)
}

/// Every dialect this version evaluates, with the controller it models.
pub static DIALECTS: &[(IngressController, &dyn Dialect)] = &[
    (IngressController::IngressNginx, &nginx::IngressNginx),
    (IngressController::Traefik, &traefik::Traefik),
    (IngressController::HaproxyIngress, &haproxy::HaproxyIngress),
    (IngressController::GatewayApi, &gateway::GatewayApi),
];

/// Every kind some dialect reads, with the controller that owns it.
pub fn owned_kinds()
-> impl Iterator<Item = (IngressController, &'static dyn Dialect, &'static ObjectKind)> {
    DIALECTS
        .iter()
        .flat_map(|(c, d)| d.kinds().iter().map(move |k| (*c, *d, k)))
}

/// Whether evaluations of `profile` read objects of `kind`: its controller's dialect owns
/// the kind and [`Dialect::reads_kind`] says the profile needs it.
pub fn profile_reads_kind(profile: &CompiledProfile, kind: &ObjectKind) -> bool {
    dialect_for(profile.controller())
        .is_some_and(|d| d.kinds().contains(kind) && d.reads_kind(profile, kind))
}

/// The dialect-owned kind a manifest's `apiVersion` and `kind` name, if any.
pub fn kind_owner(
    api_version: &str,
    kind: &str,
) -> Option<(IngressController, &'static dyn Dialect, &'static ObjectKind)> {
    owned_kinds().find(|(_, _, k)| k.matches(api_version, kind))
}

/// Reduces a manifest of a dialect-owned kind (a rendered object, an admission object).
pub fn reduce_owned(
    object: &serde_json::Value,
    default_namespace: &str,
) -> Option<Result<(&'static ObjectKind, SharedObject), ReduceError>> {
    let (_, dialect, kind) = kind_owner(
        object["apiVersion"].as_str().unwrap_or(""),
        object["kind"].as_str().unwrap_or(""),
    )?;
    Some(
        dialect
            .reduce(kind, object, default_namespace)
            .map(|v| (kind, v)),
    )
}

/// Ingress-order key shared by controllers that let the oldest Ingress win: creation time
/// ascending (not-yet-created objects last), then `namespace/name` descending, as
/// ingress-nginx's `sortIngressSlice` does (haproxy-ingress breaks ties the other way; its
/// dialect orders ties itself).
pub fn oldest_first(a: &IngressView, b: &IngressView) -> std::cmp::Ordering {
    let ta = a.created.unwrap_or(i64::MAX);
    let tb = b.created.unwrap_or(i64::MAX);
    // "namespace/name" compared byte-wise (descending), without building the strings.
    ta.cmp(&tb).then_with(|| {
        let (ka, kb) = (&a.key, &b.key);
        let ia = ka
            .namespace
            .bytes()
            .chain(std::iter::once(b'/'))
            .chain(ka.name.bytes());
        let ib = kb
            .namespace
            .bytes()
            .chain(std::iter::once(b'/'))
            .chain(kb.name.bytes());
        ib.cmp(ia)
    })
}

/// Compares a configured URL with the profile's gate URL, allowing the `controller` query
/// parameter the renderer appends.
pub fn is_gate_url(configured: &str, gate: Option<&str>, controller: &str) -> bool {
    let Some(gate) = gate else { return false };
    let configured = configured.trim();
    configured == gate || configured == gate_url_for(gate, controller)
}

/// The gate URL as rendered for a controller: the `/verify` endpoint needs to know which
/// forwarded header proves verification.
pub fn gate_url_for(gate: &str, controller: &str) -> String {
    let sep = if gate.contains('?') { '&' } else { '?' };
    format!("{gate}{sep}controller={controller}")
}

/// A TLS route of `kind` that requires verified client certificates, for the dialects'
/// unit tests of route choice (only the matcher and the rank matter there).
#[cfg(test)]
pub(crate) fn required_route(
    kind: &'static str,
    matcher: PathMatcher,
    priority: i64,
) -> Arc<Route> {
    Arc::new(Route {
        source: RouteSource {
            kind,
            key: ObjectKey::new("open-banking", "api"),
        },
        path: String::new(),
        path_type: PathType::Prefix,
        matcher,
        serves_backend: true,
        tls: true,
        auth: RouteAuth {
            kind: AuthKind::Required,
            detail: Arc::from("client certificate required"),
        },
        priority,
    })
}

#[cfg(test)]
mod registry_tests {
    use super::*;

    /// Every value the CRD accepts for `spec.ingressController` is evaluated (design.md §4).
    #[test]
    fn every_controller_the_crd_accepts_has_a_dialect() {
        let schema =
            serde_json::to_value(schemars::schema_for!(IngressController)).expect("schema");
        let values: Vec<&str> = schema["enum"]
            .as_array()
            .or_else(|| schema["oneOf"].as_array())
            .expect("an enum schema")
            .iter()
            .flat_map(|v| {
                v.as_str().into_iter().chain(v["const"].as_str()).chain(
                    v["enum"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|e| e.as_str()),
                )
            })
            .collect();
        assert!(values.len() >= 4, "{schema}");
        for value in values {
            let controller: IngressController =
                serde_json::from_value(serde_json::json!(value)).expect(value);
            assert!(dialect_for(controller).is_some(), "{value} has no dialect");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RouteMoves;

    /// (old table's length, removed, added, expected remap).
    type RemapCase = (
        usize,
        &'static [usize],
        &'static [usize],
        &'static [Option<usize>],
    );

    /// Kept routes keep their order and move past the removed and added ones.
    #[test]
    fn kept_routes_move_past_removals_and_additions() {
        let cases: [RemapCase; 6] = [
            // Nothing changed.
            (3, &[], &[], &[Some(0), Some(1), Some(2)]),
            // One run replaced by two routes (ingress-nginx's patch).
            (4, &[1], &[1, 2], &[Some(0), None, Some(3), Some(4)]),
            // Scattered removals and additions (Gateway API precedence).
            (
                5,
                &[0, 3],
                &[2, 4],
                &[None, Some(0), Some(1), None, Some(3)],
            ),
            // Additions after every old route.
            (2, &[], &[2, 3], &[Some(0), Some(1)]),
            // Everything removed, one route added first.
            (2, &[0, 1], &[0], &[None, None]),
            // Additions and removals interleaved, more added than removed.
            (
                6,
                &[1, 4],
                &[0, 2, 3, 7],
                &[Some(1), None, Some(4), Some(5), None, Some(6)],
            ),
        ];
        for (old_len, removed, added, expected) in cases {
            let moves = RouteMoves::new(old_len, removed.to_vec(), added.to_vec());
            let case = format!("{old_len} routes, removed {removed:?}, added {added:?}");
            let remap: Vec<Option<usize>> = (0..old_len).map(|i| moves.new_index(i)).collect();
            assert_eq!(remap, expected, "{case}");
            assert_eq!(moves.new_index(old_len), None, "{case}: out of range");
            // The way back: every kept route's new index leads to it, added ones to none.
            let mut back = vec![None; moves.new_len() + 1];
            for (i, j) in remap.iter().enumerate() {
                if let Some(j) = j {
                    back[*j] = Some(i);
                }
            }
            let old: Vec<Option<usize>> =
                (0..=moves.new_len()).map(|j| moves.old_index(j)).collect();
            assert_eq!(old, back, "{case}: old indices");
            assert_eq!(
                moves.keeps_indices(),
                remap
                    .iter()
                    .enumerate()
                    .all(|(i, j)| j.is_none_or(|j| j == i))
                    && moves.new_len() == old_len,
                "{case}: indices kept"
            );
        }
    }
}
