//! The cluster view: every object the engine reads, indexed by host.
//!
//! One view serves the CLI (filled from manifests), the webhooks and the controller (filled
//! from reflectors). Admission evaluates "the world after the change" through
//! [`WithIngressChange`], an overlay that replaces one Ingress without copying the view, so
//! the work per admission depends on the Ingresses of the touched hosts only.
//!
//! The maps are persistent (`imbl`: hash array mapped tries and B-trees sharing their
//! nodes), so cloning a view is O(1) and an update copies only the path to what it
//! changes. A review clones the view under the read lock and evaluates the clone without
//! it: watch updates never wait for a review, and a review of a 10,000-Ingress cluster
//! copies nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};

use crate::dialect::{ObjectKind, SharedObject};
use crate::model::{IngressClassView, IngressView, Lookup, ObjectKey, ObjectSource, SecretView};
use crate::profile::CompiledProfile;

/// The cluster view shared by the controller (which fills it from its watches) and the
/// admission webhooks (which read it). Writers hold the lock only to apply one watch event;
/// readers only for one evaluation. Never hold it across an `.await`.
pub type SharedView = Arc<RwLock<ClusterView>>;

/// Set once every watch that feeds a [`SharedView`] has listed its objects; the webhook's
/// `/readyz` reads it. It stays set while a watch re-lists (the previous objects stay in
/// the view until the new list completes).
pub type SyncedFlag = Arc<AtomicBool>;

/// A new, empty shared view.
pub fn shared_view() -> SharedView {
    Arc::new(RwLock::new(ClusterView::new()))
}

/// Whether a source is complete for a kind (absent objects are missing) or only carries
/// what it was given (absent objects are unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Completeness {
    /// Absent means "not checked" (CLI runs without those manifests).
    #[default]
    Partial,
    /// Absent means "does not exist" (watched caches, or inputs that carry the kind).
    Complete,
}

/// Objects of one dialect-owned kind that a live view should hold but cannot read: the
/// whole kind (not watched, listing forbidden, discovery failing) or single objects the
/// dialect cannot reduce. Unlike [`Completeness::Partial`] (a CLI run given some of the
/// manifests on purpose), an unreadable kind may hide routes of a profile host, so the
/// engine reports it on every host whose controller reads the kind
/// (`ViolationCode::ObjectsUnreadable`) and admission refuses changes there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct UnreadableObjects {
    kind: Option<String>,
    objects: BTreeMap<ObjectKey, String>,
}

impl UnreadableObjects {
    fn is_empty(&self) -> bool {
        self.kind.is_none() && self.objects.is_empty()
    }
}

#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    ingresses: imbl::HashMap<ObjectKey, Arc<IngressView>>,
    /// Ingresses by rule host key, in key order (so a host's Ingresses come in the same
    /// order whatever the order of arrivals).
    by_host: imbl::HashMap<String, HostIndex<ObjectKey>>,
    /// Ingresses by the host names they name outside their rules
    /// ([`IngressView::named_hosts`]).
    by_named_host: imbl::HashMap<String, HostIndex<ObjectKey>>,
    secrets: imbl::HashMap<ObjectKey, SecretView>,
    ingress_classes: imbl::HashMap<String, IngressClassView>,
    ingress_classes_completeness: Completeness,
    /// Objects of dialect-owned kinds, in key order.
    objects: BTreeMap<ObjectKind, imbl::OrdMap<ObjectKey, SharedObject>>,
    /// Route objects of dialect-owned kinds by rule host key.
    routes_by_host: imbl::HashMap<String, HostIndex<(ObjectKind, ObjectKey)>>,
    profiles: BTreeMap<String, Arc<CompiledProfile>>,
    secrets_completeness: Completeness,
    /// Dialect-owned kinds the source is complete for (absent kinds are partial).
    complete_kinds: std::collections::BTreeSet<ObjectKind>,
    /// Kinds the view should hold but cannot read, and why (see [`UnreadableObjects`]).
    unreadable: BTreeMap<ObjectKind, UnreadableObjects>,
    /// Kinds whose CRD API discovery found not served (complete and empty). An object of
    /// one arriving at admission means the CRD was installed since.
    absent_kinds: std::collections::BTreeSet<ObjectKind>,
    /// Generation of each rule host key: changes whenever an Ingress or route object with a
    /// rule for it is added, replaced or removed.
    host_generations: imbl::HashMap<String, u64>,
    /// Generation of everything else an evaluation reads (Secrets, dialect objects that
    /// are not routes, profiles, completeness).
    objects_generation: u64,
}

/// Identifies the state of everything an evaluation of one host reads. Generations come
/// from one process-wide counter, so stamps of different views never collide and a cached
/// evaluation is reused only for exactly the state it was computed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HostStamp {
    objects: u64,
    exact: u64,
    wildcard: u64,
    hostless: u64,
}

fn next_generation() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl ClusterView {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn ingress_count(&self) -> usize {
        self.ingresses.len()
    }

    pub fn ingress(&self, key: &ObjectKey) -> Option<&Arc<IngressView>> {
        self.ingresses.get(key)
    }

    pub fn ingresses(&self) -> impl Iterator<Item = &Arc<IngressView>> {
        self.ingresses.values()
    }

    /// Inserts or replaces an Ingress. Returns the previous version.
    pub fn upsert_ingress(&mut self, view: IngressView) -> Option<Arc<IngressView>> {
        self.upsert_shared_ingress(Arc::new(view))
    }

    /// Inserts or replaces an Ingress that is already shared (no copy of the view).
    pub fn upsert_shared_ingress(&mut self, view: Arc<IngressView>) -> Option<Arc<IngressView>> {
        let key = view.key.clone();
        let previous = self.remove_ingress(&key);
        let generation = next_generation();
        for host in unique_hosts(&view) {
            insert_sorted(
                self.by_host.entry(host.to_string()).or_default(),
                key.clone(),
            );
            self.host_generations.insert(host.to_string(), generation);
        }
        for host in &view.named_hosts {
            insert_sorted(
                self.by_named_host.entry(host.clone()).or_default(),
                key.clone(),
            );
            self.host_generations.insert(host.clone(), generation);
        }
        self.ingresses.insert(key, view);
        previous
    }

    /// The state of everything evaluating `host` reads (see [`HostStamp`]).
    pub fn host_stamp(&self, host: &str) -> HostStamp {
        let generation = |key: &str| self.host_generations.get(key).copied().unwrap_or(0);
        HostStamp {
            objects: self.objects_generation,
            exact: generation(host),
            wildcard: host
                .split_once('.')
                .map_or(0, |(_, rest)| generation(&format!("*.{rest}"))),
            hostless: generation(""),
        }
    }

    pub fn secrets_completeness(&self) -> Completeness {
        self.secrets_completeness
    }

    /// Sets whether the view is complete for Secrets (bumps the objects generation).
    pub fn set_secrets_completeness(&mut self, completeness: Completeness) {
        if self.secrets_completeness != completeness {
            self.secrets_completeness = completeness;
            self.objects_changed();
        }
    }

    /// Sets whether the view is complete for IngressClasses (bumps the objects generation).
    pub fn set_ingress_classes_completeness(&mut self, completeness: Completeness) {
        if self.ingress_classes_completeness != completeness {
            self.ingress_classes_completeness = completeness;
            self.objects_changed();
        }
    }

    pub fn upsert_ingress_class(&mut self, view: IngressClassView) {
        if self.ingress_classes.get(&view.name) != Some(&view) {
            self.ingress_classes.insert(view.name.clone(), view);
            self.objects_changed();
        }
    }

    pub fn remove_ingress_class(&mut self, name: &str) {
        if self.ingress_classes.remove(name).is_some() {
            self.objects_changed();
        }
    }

    /// Keeps only the IngressClasses for which `keep` is true (a re-list).
    pub fn retain_ingress_classes(&mut self, mut keep: impl FnMut(&IngressClassView) -> bool) {
        let before = self.ingress_classes.len();
        self.ingress_classes.retain(|_, v| keep(v));
        if self.ingress_classes.len() != before {
            self.objects_changed();
        }
    }

    /// Sets whether the view is complete for a dialect-owned kind.
    pub fn set_kind_completeness(&mut self, kind: ObjectKind, completeness: Completeness) {
        self.absent_kinds.remove(&kind);
        if completeness == Completeness::Complete {
            self.clear_unreadable(&kind, None);
        }
        let changed = match completeness {
            Completeness::Complete => self.complete_kinds.insert(kind),
            Completeness::Partial => self.complete_kinds.remove(&kind),
        };
        if changed {
            self.objects_changed();
        }
    }

    /// Marks a kind whose CRD is not served: no object of it can exist, so the view is
    /// complete and empty for it.
    pub fn set_kind_absent(&mut self, kind: ObjectKind) {
        self.retain_objects(&kind, |_| false);
        self.set_kind_completeness(kind, Completeness::Complete);
        self.absent_kinds.insert(kind);
    }

    /// Whether discovery last found `kind`'s CRD not served.
    pub fn kind_absent(&self, kind: &ObjectKind) -> bool {
        self.absent_kinds.contains(kind)
    }

    /// Marks the whole of `kind` as unreadable (`reason` says why and how to fix it); its
    /// objects become unknown. Cleared by marking the kind complete.
    pub fn set_kind_unreadable(&mut self, kind: ObjectKind, reason: impl Into<String>) {
        self.absent_kinds.remove(&kind);
        let reason = Some(reason.into());
        let entry = self.unreadable.entry(kind).or_default();
        let changed = entry.kind != reason;
        entry.kind = reason;
        if self.complete_kinds.remove(&kind) || changed {
            self.objects_changed();
        }
    }

    /// Marks one object as present but unreadable (its kind stays complete otherwise).
    /// Cleared when the object is upserted readable or removed.
    pub fn set_object_unreadable(
        &mut self,
        kind: ObjectKind,
        key: ObjectKey,
        reason: impl Into<String>,
    ) {
        self.remove_object(&kind, &key);
        let reason = reason.into();
        let entry = self.unreadable.entry(kind).or_default();
        if entry.objects.get(&key) != Some(&reason) {
            entry.objects.insert(key, reason);
            self.objects_changed();
        }
    }

    fn clear_unreadable(&mut self, kind: &ObjectKind, key: Option<&ObjectKey>) {
        let Some(entry) = self.unreadable.get_mut(kind) else {
            return;
        };
        let changed = match key {
            Some(key) => entry.objects.remove(key).is_some(),
            None => entry.kind.take().is_some(),
        };
        if entry.is_empty() {
            self.unreadable.remove(kind);
        }
        if changed {
            self.objects_changed();
        }
    }

    /// Whether the view is complete for `kind` and, if not, whether that is because its
    /// objects cannot be read (see [`ObjectSource::unreadable`](crate::model::ObjectSource::unreadable)).
    pub fn kind_completeness(&self, kind: &ObjectKind) -> Completeness {
        if self.complete_kinds.contains(kind) {
            Completeness::Complete
        } else {
            Completeness::Partial
        }
    }

    /// Inserts or replaces an object of a dialect-owned kind. Returns the previous version.
    /// Replacing a view with [`crate::dialect::ObjectView::same_view`] changes nothing (no
    /// generation).
    pub fn upsert_object(&mut self, kind: ObjectKind, view: SharedObject) -> Option<SharedObject> {
        let key = view.key().clone();
        self.clear_unreadable(&kind, Some(&key));
        if let Some(existing) = self.objects.get(&kind).and_then(|m| m.get(&key))
            && existing.same_view(view.as_ref())
        {
            return Some(existing.clone());
        }
        let previous = self.remove_object(&kind, &key);
        let hosts = unique(view.route_hosts());
        if hosts.is_empty() {
            self.objects_changed();
        } else {
            let generation = next_generation();
            for host in hosts {
                insert_sorted(
                    self.routes_by_host.entry(host.clone()).or_default(),
                    (kind, key.clone()),
                );
                self.host_generations.insert(host, generation);
            }
        }
        self.objects.entry(kind).or_default().insert(key, view);
        previous
    }

    /// Removes an object (and any mark that it was unreadable).
    pub fn remove_object(&mut self, kind: &ObjectKind, key: &ObjectKey) -> Option<SharedObject> {
        self.clear_unreadable(kind, Some(key));
        let previous = self.objects.get_mut(kind)?.remove(key)?;
        let hosts = unique(previous.route_hosts());
        if hosts.is_empty() {
            self.objects_changed();
        } else {
            let generation = next_generation();
            for host in hosts {
                self.host_generations.insert(host.clone(), generation);
                if let Some(keys) = self.routes_by_host.get_mut(&host) {
                    Arc::make_mut(keys).retain(|(k, o)| !(k == kind && o == key));
                    if keys.is_empty() {
                        self.routes_by_host.remove(&host);
                    }
                }
            }
        }
        Some(previous)
    }

    /// Every object of a dialect-owned kind.
    pub fn objects(&self, kind: &ObjectKind) -> impl Iterator<Item = &SharedObject> {
        self.objects.get(kind).into_iter().flat_map(|m| m.values())
    }

    /// Keeps only the objects of `kind` for which `keep` is true (a re-list dropping what
    /// it did not see).
    pub fn retain_objects(
        &mut self,
        kind: &ObjectKind,
        mut keep: impl FnMut(&SharedObject) -> bool,
    ) {
        let gone: Vec<ObjectKey> = self
            .objects(kind)
            .filter(|o| !keep(o))
            .map(|o| o.key().clone())
            .collect();
        for key in gone {
            self.remove_object(kind, &key);
        }
    }

    fn objects_changed(&mut self) {
        self.objects_generation = next_generation();
    }

    /// A view holding only what evaluating and rendering `hosts` can read: the Ingresses
    /// that can serve them (exact, `*.` wildcard and host-less rules), those `also` selects,
    /// every Secret, TLSOption, Middleware and profile, and the completeness flags. The
    /// Ingress views are shared, not copied. Build it under a short read lock and evaluate
    /// it without any lock.
    pub fn slice_for_hosts<'a>(
        &self,
        hosts: impl IntoIterator<Item = &'a str>,
        also: impl Fn(&IngressView) -> bool,
    ) -> ClusterView {
        let mut out = ClusterView {
            secrets: self.secrets.clone(),
            ingress_classes: self.ingress_classes.clone(),
            ingress_classes_completeness: self.ingress_classes_completeness,
            objects: self.objects.clone(),
            profiles: self.profiles.clone(),
            secrets_completeness: self.secrets_completeness,
            complete_kinds: self.complete_kinds.clone(),
            unreadable: self.unreadable.clone(),
            absent_kinds: self.absent_kinds.clone(),
            objects_generation: self.objects_generation,
            ..ClusterView::default()
        };
        for host in hosts {
            for k in naming_keys(host).iter().flat_map(|key| {
                self.by_named_host
                    .get(key)
                    .into_iter()
                    .flat_map(|keys| keys.iter())
            }) {
                if !out.ingresses.contains_key(k)
                    && let Some(v) = self.ingresses.get(k)
                {
                    out.upsert_shared_ingress(v.clone());
                }
            }
            for key in rule_keys(host) {
                for k in self
                    .by_host
                    .get(&key)
                    .into_iter()
                    .flat_map(|keys| keys.iter())
                {
                    if !out.ingresses.contains_key(k)
                        && let Some(v) = self.ingresses.get(k)
                    {
                        out.upsert_shared_ingress(v.clone());
                    }
                }
                if let Some(routes) = self.routes_by_host.get(&key) {
                    out.routes_by_host.insert(key.clone(), routes.clone());
                }
                out.host_generations.insert(key, 0);
            }
        }
        for v in self.ingresses.values() {
            if also(v) && !out.ingresses.contains_key(&v.key) {
                out.upsert_shared_ingress(v.clone());
            }
        }
        // The slice answers host stamps as the view it was cut from.
        for (key, generation) in out.host_generations.iter_mut() {
            *generation = self.host_generations.get(key).copied().unwrap_or(0);
        }
        out
    }

    pub fn remove_ingress(&mut self, key: &ObjectKey) -> Option<Arc<IngressView>> {
        let previous = self.ingresses.remove(key)?;
        let generation = next_generation();
        for host in unique_hosts(&previous) {
            self.host_generations.insert(host.to_string(), generation);
            if let Some(keys) = self.by_host.get_mut(host) {
                Arc::make_mut(keys).retain(|k| k != key);
                if keys.is_empty() {
                    self.by_host.remove(host);
                }
            }
        }
        for host in &previous.named_hosts {
            self.host_generations.insert(host.clone(), generation);
            if let Some(keys) = self.by_named_host.get_mut(host) {
                Arc::make_mut(keys).retain(|k| k != key);
                if keys.is_empty() {
                    self.by_named_host.remove(host);
                }
            }
        }
        Some(previous)
    }

    pub fn secrets(&self) -> impl Iterator<Item = &SecretView> {
        self.secrets.values()
    }
    /// Keeps only the Secrets for which `keep` is true.
    pub fn retain_secrets(&mut self, mut keep: impl FnMut(&SecretView) -> bool) {
        self.secrets.retain(|_, v| keep(v));
        self.objects_changed();
    }

    pub fn upsert_secret(&mut self, view: SecretView) {
        self.secrets.insert(view.key.clone(), view);
        self.objects_changed();
    }
    pub fn remove_secret(&mut self, key: &ObjectKey) {
        self.secrets.remove(key);
        self.objects_changed();
    }

    pub fn upsert_profile(&mut self, profile: CompiledProfile) {
        self.profiles
            .insert(profile.name.clone(), Arc::new(profile));
        self.objects_changed();
    }
    pub fn remove_profile(&mut self, name: &str) {
        self.profiles.remove(name);
        self.objects_changed();
    }
    pub fn profiles(&self) -> impl Iterator<Item = &Arc<CompiledProfile>> {
        self.profiles.values()
    }
    pub fn profile(&self, name: &str) -> Option<&Arc<CompiledProfile>> {
        self.profiles.get(name)
    }

    /// Profiles with an endpoint on one of `hosts` (exact, or reached through a wildcard or
    /// host-less rule key).
    pub fn profiles_touching<'a>(
        &'a self,
        host_keys: &'a [String],
    ) -> impl Iterator<Item = &'a Arc<CompiledProfile>> + 'a {
        self.profiles.values().filter(move |p| {
            p.hosts
                .iter()
                .any(|h| host_keys.iter().any(|k| host_key_covers(k, h)))
        })
    }

    fn lookup<T>(found: Option<&T>, completeness: Completeness) -> Lookup<'_, T> {
        match (found, completeness) {
            (Some(v), _) => Lookup::Found(v),
            (None, Completeness::Complete) => Lookup::Missing,
            (None, Completeness::Partial) => Lookup::Unknown,
        }
    }
}

/// The Ingress rule host keys that can serve `host`, in the order controllers pick them:
/// the host, its `*.` wildcard, the host-less rule `""`.
pub fn rule_keys(host: &str) -> Vec<String> {
    let mut keys = vec![host.to_string()];
    keys.extend(host.split_once('.').map(|(_, rest)| format!("*.{rest}")));
    keys.push(String::new());
    keys
}

/// The [`IngressView::named_hosts`] keys that can name `host`: the host, its `*.`
/// wildcard, and [`ANY_HOST_NAME`].
pub fn naming_keys(host: &str) -> Vec<String> {
    let mut keys = vec![host.to_string()];
    keys.extend(host.split_once('.').map(|(_, rest)| format!("*.{rest}")));
    keys.push(ANY_HOST_NAME.to_string());
    keys
}

/// The named-host key of names mtls-gate cannot match exactly (an nginx `server_name`
/// regular expression in an alias): it may name any host.
pub const ANY_HOST_NAME: &str = "~";

/// Whether an Ingress rule host key (exact, `*.wildcard` or `""`), or a named-host key
/// ([`ANY_HOST_NAME`]), can serve `host`.
pub fn host_key_covers(key: &str, host: &str) -> bool {
    key == host
        || key.is_empty()
        || key == ANY_HOST_NAME
        || key
            .strip_prefix("*.")
            .is_some_and(|suffix| host.split_once('.').is_some_and(|(_, rest)| rest == suffix))
}

fn unique(mut hosts: Vec<String>) -> Vec<String> {
    hosts.sort_unstable();
    hosts.dedup();
    hosts
}

fn unique_hosts(view: &IngressView) -> Vec<&str> {
    let mut hosts: Vec<&str> = view.hosts().collect();
    hosts.sort_unstable();
    hosts.dedup();
    hosts
}

impl ObjectSource for ClusterView {
    fn ingresses_for_host(&self, host: &str) -> Vec<Arc<IngressView>> {
        self.by_host
            .get(host)
            .into_iter()
            .flat_map(|keys| keys.iter())
            .filter_map(|k| self.ingresses.get(k).cloned())
            .collect()
    }
    fn ingresses_naming_host(&self, host: &str) -> Vec<Arc<IngressView>> {
        self.by_named_host
            .get(host)
            .into_iter()
            .flat_map(|keys| keys.iter())
            .filter_map(|k| self.ingresses.get(k).cloned())
            .collect()
    }
    fn secret(&self, key: &ObjectKey) -> Lookup<'_, SecretView> {
        Self::lookup(self.secrets.get(key), self.secrets_completeness)
    }
    fn ingress_class(&self, name: &str) -> Lookup<'_, IngressClassView> {
        match (
            self.ingress_classes.get(name),
            self.ingress_classes_completeness,
        ) {
            (Some(v), _) => Lookup::Found(v),
            (None, Completeness::Complete) => Lookup::Missing,
            (None, Completeness::Partial) => Lookup::Unknown,
        }
    }
    fn object(&self, kind: &ObjectKind, key: &ObjectKey) -> Lookup<'_, SharedObject> {
        if self
            .unreadable
            .get(kind)
            .is_some_and(|u| u.objects.contains_key(key))
        {
            return Lookup::Unknown;
        }
        match self.objects.get(kind) {
            Some(map) => Self::lookup(map.get(key), self.kind_completeness(kind)),
            None if self.kind_completeness(kind) == Completeness::Complete => Lookup::Missing,
            None => Lookup::Unknown,
        }
    }
    fn objects_of(&self, kind: &ObjectKind) -> Vec<SharedObject> {
        // In key order (the store is ordered), the same in every process.
        self.objects(kind).cloned().collect()
    }
    fn routes_for_host(&self, host: &str) -> Vec<(ObjectKind, SharedObject)> {
        self.routes_by_host
            .get(host)
            .into_iter()
            .flat_map(|keys| keys.iter())
            .filter_map(|(kind, key)| Some((*kind, self.objects.get(kind)?.get(key)?.clone())))
            .collect()
    }
    fn unreadable(&self, kind: &ObjectKind) -> Vec<String> {
        let Some(entry) = self.unreadable.get(kind) else {
            return Vec::new();
        };
        entry
            .kind
            .iter()
            .cloned()
            .chain(
                entry
                    .objects
                    .iter()
                    .map(|(key, why)| format!("{} {key} cannot be read: {why}", kind.kind)),
            )
            .collect()
    }
}

/// A view with one Ingress created, replaced (`Some`) or deleted (`None`).
pub struct WithIngressChange<'a> {
    pub base: &'a dyn ObjectSource,
    pub key: &'a ObjectKey,
    pub replacement: Option<Arc<IngressView>>,
}

impl ObjectSource for WithIngressChange<'_> {
    fn ingresses_for_host(&self, host: &str) -> Vec<Arc<IngressView>> {
        let mut out: Vec<Arc<IngressView>> = self
            .base
            .ingresses_for_host(host)
            .into_iter()
            .filter(|i| &i.key != self.key)
            .collect();
        if let Some(new) = &self.replacement
            && new.hosts().any(|h| h == host)
        {
            out.insert(out.partition_point(|i| i.key < new.key), new.clone());
        }
        out
    }
    fn ingresses_naming_host(&self, host: &str) -> Vec<Arc<IngressView>> {
        let mut out: Vec<Arc<IngressView>> = self
            .base
            .ingresses_naming_host(host)
            .into_iter()
            .filter(|i| &i.key != self.key)
            .collect();
        if let Some(new) = &self.replacement
            && new.named_hosts.iter().any(|h| h == host)
        {
            out.insert(out.partition_point(|i| i.key < new.key), new.clone());
        }
        out
    }
    fn secret(&self, key: &ObjectKey) -> Lookup<'_, SecretView> {
        self.base.secret(key)
    }
    fn ingress_class(&self, name: &str) -> Lookup<'_, IngressClassView> {
        self.base.ingress_class(name)
    }
    fn object(&self, kind: &ObjectKind, key: &ObjectKey) -> Lookup<'_, SharedObject> {
        self.base.object(kind, key)
    }
    fn objects_of(&self, kind: &ObjectKind) -> Vec<SharedObject> {
        self.base.objects_of(kind)
    }
    fn routes_for_host(&self, host: &str) -> Vec<(ObjectKind, SharedObject)> {
        self.base.routes_for_host(host)
    }
    fn unreadable(&self, kind: &ObjectKind) -> Vec<String> {
        self.base.unreadable(kind)
    }
}

/// A view with one object of a dialect-owned kind created, replaced (`Some`) or deleted
/// (`None`).
pub struct WithObjectChange<'a> {
    pub base: &'a dyn ObjectSource,
    pub kind: ObjectKind,
    pub key: &'a ObjectKey,
    pub replacement: Option<SharedObject>,
}

impl WithObjectChange<'_> {
    fn is_changed(&self, kind: &ObjectKind, key: &ObjectKey) -> bool {
        *kind == self.kind && key == self.key
    }
}

impl ObjectSource for WithObjectChange<'_> {
    fn ingresses_for_host(&self, host: &str) -> Vec<Arc<IngressView>> {
        self.base.ingresses_for_host(host)
    }
    fn ingresses_naming_host(&self, host: &str) -> Vec<Arc<IngressView>> {
        self.base.ingresses_naming_host(host)
    }
    fn secret(&self, key: &ObjectKey) -> Lookup<'_, SecretView> {
        self.base.secret(key)
    }
    fn ingress_class(&self, name: &str) -> Lookup<'_, IngressClassView> {
        self.base.ingress_class(name)
    }
    fn object(&self, kind: &ObjectKind, key: &ObjectKey) -> Lookup<'_, SharedObject> {
        if !self.is_changed(kind, key) {
            return self.base.object(kind, key);
        }
        match &self.replacement {
            Some(new) => Lookup::Found(new),
            None => Lookup::Missing,
        }
    }
    fn objects_of(&self, kind: &ObjectKind) -> Vec<SharedObject> {
        let mut out = self.base.objects_of(kind);
        if *kind == self.kind {
            out.retain(|o| o.key() != self.key);
            if let Some(new) = &self.replacement {
                out.insert(out.partition_point(|o| o.key() < new.key()), new.clone());
            }
        }
        out
    }
    fn routes_for_host(&self, host: &str) -> Vec<(ObjectKind, SharedObject)> {
        let mut out = self.base.routes_for_host(host);
        out.retain(|(kind, o)| !self.is_changed(kind, o.key()));
        if let Some(new) = &self.replacement
            && new.route_hosts().iter().any(|h| h == host)
        {
            let at = out.partition_point(|(kind, o)| (kind, o.key()) < (&self.kind, new.key()));
            out.insert(at, (self.kind, new.clone()));
        }
        out
    }
    fn unreadable(&self, kind: &ObjectKind) -> Vec<String> {
        self.base.unreadable(kind)
    }
}

/// A view with planned changes on top: Ingresses as they will be once rendered, and the
/// dialect objects the renderer asks for (the mutating webhook references them before the
/// controller has written them; the controller evaluates the world after its own writes).
pub struct PlannedObjects<'a> {
    pub base: &'a dyn ObjectSource,
    pub ingresses: HashMap<ObjectKey, Arc<IngressView>>,
    objects: HashMap<(ObjectKind, ObjectKey), SharedObject>,
}

impl<'a> PlannedObjects<'a> {
    pub fn new(base: &'a dyn ObjectSource) -> Self {
        Self {
            base,
            ingresses: HashMap::new(),
            objects: HashMap::new(),
        }
    }

    /// Adds a rendered object of a dialect-owned kind (other manifests are ignored: the
    /// renderer only produces kinds its dialect reads).
    pub fn add_rendered(&mut self, manifest: &serde_json::Value) {
        if let Some(Ok((kind, view))) = crate::dialect::reduce_owned(manifest, "") {
            self.objects.insert((*kind, view.key().clone()), view);
        }
    }

    /// Replaces an object of a dialect-owned kind by its view after a planned write (a
    /// labelled Gateway once its rendering is applied).
    pub fn add_view(&mut self, kind: ObjectKind, view: SharedObject) {
        self.objects.insert((kind, view.key().clone()), view);
    }
}

impl PlannedObjects<'_> {
    fn planned(&self, mut out: Vec<Arc<IngressView>>) -> Vec<Arc<IngressView>> {
        if !self.ingresses.is_empty() {
            for i in &mut out {
                if let Some(planned) = self.ingresses.get(&i.key) {
                    *i = planned.clone();
                }
            }
        }
        out
    }
}

impl ObjectSource for PlannedObjects<'_> {
    fn ingresses_for_host(&self, host: &str) -> Vec<Arc<IngressView>> {
        self.planned(self.base.ingresses_for_host(host))
    }
    fn ingresses_naming_host(&self, host: &str) -> Vec<Arc<IngressView>> {
        self.planned(self.base.ingresses_naming_host(host))
    }
    fn secret(&self, key: &ObjectKey) -> Lookup<'_, SecretView> {
        self.base.secret(key)
    }
    fn ingress_class(&self, name: &str) -> Lookup<'_, IngressClassView> {
        self.base.ingress_class(name)
    }
    fn object(&self, kind: &ObjectKind, key: &ObjectKey) -> Lookup<'_, SharedObject> {
        match self.objects.get(&(*kind, key.clone())) {
            Some(v) => Lookup::Found(v),
            None => self.base.object(kind, key),
        }
    }
    fn objects_of(&self, kind: &ObjectKind) -> Vec<SharedObject> {
        let mut out: Vec<SharedObject> = self
            .base
            .objects_of(kind)
            .into_iter()
            .filter(|o| !self.objects.contains_key(&(*kind, o.key().clone())))
            .collect();
        out.extend(
            self.objects
                .iter()
                .filter(|((k, _), _)| k == kind)
                .map(|(_, v)| v.clone()),
        );
        out
    }
    fn routes_for_host(&self, host: &str) -> Vec<(ObjectKind, SharedObject)> {
        self.base.routes_for_host(host)
    }
    fn unreadable(&self, kind: &ObjectKind) -> Vec<String> {
        self.base.unreadable(kind)
    }
}

/// One host's entry of an index, in key order, so that every source lists a host's objects
/// in the same order whatever the order of their arrivals and updates (dialects that break
/// ties by list order then give the same result in `check`, the controller and admission).
/// Shared: a snapshot's copy of the index node holds the same list, which an update then
/// copies only if a snapshot still holds it.
type HostIndex<T> = Arc<Vec<T>>;

fn insert_sorted<T: Ord + Clone>(keys: &mut HostIndex<T>, key: T) {
    if let Err(at) = keys.binary_search(&key) {
        Arc::make_mut(keys).insert(at, key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{IngressPath, IngressRule, PathType};

    fn ingress(name: &str, hosts: &[&str]) -> IngressView {
        IngressView {
            key: ObjectKey::new("ns", name),
            created: None,
            class: None,
            class_from_annotation: false,
            profile_label: None,
            annotations: Default::default(),
            tls_hosts: Vec::new(),
            rules: hosts
                .iter()
                .map(|h| IngressRule {
                    host: h.to_string(),
                    paths: vec![IngressPath {
                        path: "/".into(),
                        path_type: PathType::Prefix,
                    }],
                })
                .collect(),
            has_default_backend: false,
            named_hosts: Vec::new(),
            dialect_memo: Default::default(),
        }
    }

    /// A host's Ingresses come in key order from the view, from a view updated in any
    /// order, and from an admission overlay, so ties in dialect orderings resolve alike.
    #[test]
    fn a_hosts_ingresses_are_listed_in_key_order_whatever_the_arrival_order() {
        const HOST: &str = "api.bank.example";
        let names = |list: Vec<Arc<IngressView>>| -> Vec<String> {
            list.iter().map(|i| i.key.name.clone()).collect()
        };
        let mut view = ClusterView::new();
        for name in ["c", "a", "b"] {
            view.upsert_ingress(ingress(name, &[HOST]));
        }
        view.upsert_ingress(ingress("a", &[HOST]));
        assert_eq!(names(view.ingresses_for_host(HOST)), ["a", "b", "c"]);
        let key = ObjectKey::new("ns", "a");
        let changed = WithIngressChange {
            base: &view,
            key: &key,
            replacement: Some(Arc::new(ingress("a", &[HOST]))),
        };
        assert_eq!(names(changed.ingresses_for_host(HOST)), ["a", "b", "c"]);
    }

    #[test]
    fn slices_keep_what_can_serve_the_hosts_and_share_the_views() {
        let mut view = ClusterView::new();
        view.upsert_ingress(ingress("exact", &["api.bank.example"]));
        view.upsert_ingress(ingress("wild", &["*.bank.example"]));
        view.upsert_ingress(ingress("hostless", &[""]));
        view.upsert_ingress(ingress("other", &["shop.example"]));
        view.upsert_ingress(ingress("picked", &["elsewhere.example"]));
        view.set_secrets_completeness(Completeness::Complete);
        let slice = view.slice_for_hosts(["api.bank.example"], |i| i.key.name == "picked");
        let mut names: Vec<&str> = slice.ingresses().map(|i| i.key.name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["exact", "hostless", "picked", "wild"]);
        assert_eq!(slice.secrets_completeness(), Completeness::Complete);
        assert_eq!(slice.ingresses_for_host("*.bank.example").len(), 1);
        let k = ObjectKey::new("ns", "exact");
        assert!(Arc::ptr_eq(
            view.ingress(&k).unwrap(),
            slice.ingress(&k).unwrap()
        ));
    }
}
