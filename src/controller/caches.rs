//! The caches: watches that keep the [`SharedView`] current, and the triggers that tell the
//! controller which profiles a change concerns.
//!
//! Nothing here keeps API objects. Each watch event is reduced to the engine's view on
//! arrival (`IngressView`, `SecretView`, or the owning dialect's view) and upserted into
//! the shared view, which the webhooks read too; managedFields, last-applied annotations,
//! status and every annotation the dialects do not read are gone at that point. A re-list
//! (watch restart) upserts as objects arrive and drops the ones it did not see at `InitDone`,
//! so memory never holds two copies of the cluster.
//!
//! - Ingresses: all namespaces. The webhooks skip some namespaces (`--exclude-namespaces`:
//!   the release's own, kube-system), but the controllers still serve their Ingresses and
//!   merge them into the same hosts, so they count for status, Events and metrics.
//! - Secrets: only the names profiles use in `clientCertificate.caSecretName`, one watch per
//!   name with `fieldSelector=metadata.name=<name>` (RBAC can grant exactly those names).
//! - Every kind a dialect reads ([`crate::dialect::Dialect::kinds`], e.g. Traefik's
//!   `TLSOption` and `Middleware`): one generic watch per kind when discovery finds its CRD
//!   and RBAC lets us list it; otherwise its objects count as unknown (fail closed), and it
//!   is looked up again every minute, so a CRD installed later is noticed.
//! - Profiles: fed by the controller's own profile watch ([`CacheContext::on_profile_event`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::channel::mpsc::UnboundedSender;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::core::GroupVersion;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::cluster::{ClusterView, Completeness, SharedView, SyncedFlag};
use crate::dialect::{self, ObjectKind};
use crate::model::{IngressClassView, IngressView, ObjectKey, PROFILE_LABEL, SecretView};
use crate::profile::{ApiProviderProfile, IngressController};

pub use crate::model::RENDERED_BY;
/// Annotation on rendered dialect objects: a hash of what was applied, so an unchanged
/// object is not written again.
pub const RENDERED_HASH: &str = "mtls-gate.io/rendered-hash";

/// One object of a dialect-owned kind the controller may own.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwnedObjectKey {
    pub kind: ObjectKind,
    pub key: ObjectKey,
}

impl OwnedObjectKey {
    /// The key of a rendered manifest of a dialect-owned kind.
    pub fn of_manifest(manifest: &serde_json::Value) -> Option<Self> {
        let (_, _, kind) = dialect::kind_owner(
            manifest["apiVersion"].as_str().unwrap_or(""),
            manifest["kind"].as_str().unwrap_or(""),
        )?;
        Some(Self {
            kind: *kind,
            key: ObjectKey::new(
                manifest["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default(),
                manifest["metadata"]["name"].as_str().unwrap_or_default(),
            ),
        })
    }
}

/// The API resource of a dialect-owned kind (the group and version the controller writes).
pub fn api_resource(kind: &ObjectKind) -> ApiResource {
    let mut ar = ApiResource::from_gvk(&GroupVersionKind::gvk(kind.group, kind.version, kind.kind));
    ar.plural = kind.plural.to_string();
    ar
}

/// What the controller needs to know about a cached dialect object besides its view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderedMeta {
    /// Its `mtls-gate.io/profile` label.
    pub profile: Option<String>,
    /// Its `mtls-gate.io/rendered-hash` annotation.
    pub hash: Option<String>,
}

/// The dialect-owned kinds in the caches: which can be written, and who rendered what.
#[derive(Debug, Default)]
pub struct DialectObjects {
    /// Kinds whose CRDs exist and whose objects were listed: rendered objects of them can
    /// be written.
    writable: RwLock<BTreeSet<ObjectKind>>,
    pub objects: RwLock<HashMap<OwnedObjectKey, RenderedMeta>>,
}

impl DialectObjects {
    pub fn is_writable(&self, kind: &ObjectKind) -> bool {
        self.writable
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(kind)
    }
    fn set_writable(&self, kind: ObjectKind, writable: bool) {
        let mut w = self.writable.write().unwrap_or_else(|e| e.into_inner());
        if writable {
            w.insert(kind);
        } else {
            w.remove(&kind);
        }
    }
    /// The writable kinds now.
    pub fn writable_kinds(&self) -> BTreeSet<ObjectKind> {
        self.writable
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Where cache handlers send reconcile requests.
#[derive(Clone)]
pub struct Triggers {
    pub one: UnboundedSender<ObjectRef<ApiProviderProfile>>,
    pub all: UnboundedSender<()>,
}

impl Triggers {
    fn profiles(&self, names: impl IntoIterator<Item = String>) {
        for name in names {
            let _ = self.one.unbounded_send(ObjectRef::new(&name));
        }
    }
    fn everything(&self) {
        let _ = self.all.unbounded_send(());
    }
}

#[derive(Debug, Default)]
struct Readiness {
    profiles: bool,
    ingresses: bool,
    /// IngressClasses listed once, or found unreadable.
    ingress_classes: bool,
    /// Dialect-owned kinds listed once or found unavailable.
    kinds_done: BTreeSet<ObjectKind>,
}

impl Readiness {
    fn kinds_done(&self) -> bool {
        dialect::owned_kinds().all(|(_, _, k)| self.kinds_done.contains(k))
    }
}

#[derive(Debug, Default)]
struct Relists {
    ingresses: Option<HashSet<ObjectKey>>,
    ingress_classes: Option<HashSet<String>>,
    profiles: Option<HashSet<String>>,
    secrets: HashMap<String, HashSet<ObjectKey>>,
    objects: HashMap<ObjectKind, HashSet<ObjectKey>>,
}

/// State shared by the cache tasks and the reconciler.
pub struct CacheContext {
    pub view: SharedView,
    pub synced: SyncedFlag,
    pub dialect_objects: Arc<DialectObjects>,
    triggers: Triggers,
    readiness: Mutex<Readiness>,
    relists: Mutex<Relists>,
    secret_names: watch::Sender<BTreeSet<String>>,
    /// Per watched Secret name: listed at least once.
    secret_synced: Mutex<HashMap<String, bool>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn key_of(meta_ns: Option<String>, name: String) -> ObjectKey {
    ObjectKey::new(meta_ns.unwrap_or_default(), name)
}

impl CacheContext {
    pub fn new(view: SharedView, synced: SyncedFlag, triggers: Triggers) -> Self {
        let (secret_names, _) = watch::channel(BTreeSet::new());
        Self {
            view,
            synced,
            dialect_objects: Arc::default(),
            triggers,
            readiness: Mutex::default(),
            relists: Mutex::default(),
            secret_names,
            secret_synced: Mutex::default(),
        }
    }

    fn write_view(&self) -> std::sync::RwLockWriteGuard<'_, ClusterView> {
        self.view.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read_view(&self) -> std::sync::RwLockReadGuard<'_, ClusterView> {
        self.view.read().unwrap_or_else(|e| e.into_inner())
    }

    fn update_readiness(&self, f: impl FnOnce(&mut Readiness)) {
        let now_ready = {
            let mut r = lock(&self.readiness);
            f(&mut r);
            r.profiles && r.ingresses && r.ingress_classes && r.kinds_done()
        };
        let was = self.synced.swap(now_ready, Ordering::AcqRel);
        if now_ready && !was {
            tracing::info!("caches synced");
            self.triggers.everything();
        }
    }

    /// Marks a dialect-owned kind whose CRD the API server does not serve: no object of it
    /// can exist, so the view is complete (and empty) for it; rendered objects of it cannot
    /// be written. A CRD installed later is found by the next discovery round
    /// (every minute).
    pub fn kind_absent(&self, kind: ObjectKind) {
        self.dialect_objects.set_writable(kind, false);
        self.write_view().set_kind_absent(kind);
        self.update_readiness(|r| {
            r.kinds_done.insert(kind);
        });
    }

    /// Marks a dialect-owned kind that exists (or may) but cannot be read: not watched,
    /// listing forbidden, discovery failing. Its objects are unknown, and every host of a
    /// profile whose controller reads the kind is reported (`ObjectsUnreadable`) with
    /// `reason`, which says how to fix it.
    pub fn kind_unreadable(&self, kind: ObjectKind, reason: impl Into<String>) {
        self.dialect_objects.set_writable(kind, false);
        self.write_view().set_kind_unreadable(kind, reason);
        self.update_readiness(|r| {
            r.kinds_done.insert(kind);
        });
        self.triggers.profiles(self.kind_profiles(&kind, None));
    }

    // ---- Ingresses ----------------------------------------------------------------------

    /// Profiles an Ingress change concerns: those with a host the old or new version serves,
    /// and those it is (or was) labelled for or rendered by.
    fn profiles_for_ingress(
        view: &ClusterView,
        old: Option<&IngressView>,
        new: Option<&IngressView>,
    ) -> BTreeSet<String> {
        let mut hosts: Vec<String> = old
            .into_iter()
            .chain(new)
            .flat_map(|i| i.touched_hosts().map(str::to_string))
            .collect();
        hosts.sort();
        hosts.dedup();
        let mut names: BTreeSet<String> = view
            .profiles_touching(&hosts)
            .map(|p| p.name.clone())
            .collect();
        for i in old.into_iter().chain(new) {
            for named in [i.profile_label.as_deref(), i.annotation(RENDERED_BY)]
                .into_iter()
                .flatten()
            {
                if view.profile(named).is_some() {
                    names.insert(named.to_string());
                }
            }
        }
        names
    }

    // ---- IngressClasses -----------------------------------------------------------------

    /// IngressClasses decide which Ingresses of other classes the profile's controller
    /// serves (`engine::ingress_class_decision`), so every change re-evaluates everything;
    /// they change rarely.
    pub fn on_ingress_class_event(&self, event: Event<IngressClass>) {
        match event {
            Event::Init => {
                lock(&self.relists).ingress_classes = Some(HashSet::new());
            }
            Event::InitApply(class) => {
                let view = IngressClassView::from_class(&class);
                if let Some(seen) = lock(&self.relists).ingress_classes.as_mut() {
                    seen.insert(view.name.clone());
                }
                self.write_view().upsert_ingress_class(view);
            }
            Event::InitDone => {
                let seen = lock(&self.relists)
                    .ingress_classes
                    .take()
                    .unwrap_or_default();
                {
                    let mut view = self.write_view();
                    view.retain_ingress_classes(|c| seen.contains(&c.name));
                    view.set_ingress_classes_completeness(Completeness::Complete);
                }
                let first = !lock(&self.readiness).ingress_classes;
                self.update_readiness(|r| r.ingress_classes = true);
                if !first {
                    self.triggers.everything();
                }
            }
            Event::Apply(class) => {
                self.write_view()
                    .upsert_ingress_class(IngressClassView::from_class(&class));
                self.triggers.everything();
            }
            Event::Delete(class) => {
                self.write_view().remove_ingress_class(&class.name_any());
                self.triggers.everything();
            }
        }
    }

    /// IngressClasses cannot be listed: Ingresses of other classes on profile hosts count
    /// (fail closed; findings say why).
    pub fn ingress_classes_unreadable(&self) {
        self.write_view()
            .set_ingress_classes_completeness(Completeness::Partial);
        self.update_readiness(|r| r.ingress_classes = true);
    }

    pub fn on_ingress_event(&self, event: Event<Ingress>) {
        match event {
            Event::Init => {
                lock(&self.relists).ingresses = Some(HashSet::new());
            }
            Event::InitApply(ing) => {
                if let Some(key) = self.upsert_ingress(&ing, false)
                    && let Some(seen) = lock(&self.relists).ingresses.as_mut()
                {
                    seen.insert(key);
                }
            }
            Event::InitDone => {
                let seen = lock(&self.relists).ingresses.take().unwrap_or_default();
                let gone: Vec<ObjectKey> = {
                    let view = self.read_view();
                    view.ingresses()
                        .map(|i| i.key.clone())
                        .filter(|k| !seen.contains(k))
                        .collect()
                };
                let mut names = BTreeSet::new();
                {
                    let mut view = self.write_view();
                    for key in &gone {
                        if let Some(old) = view.remove_ingress(key) {
                            names.extend(Self::profiles_for_ingress(&view, Some(&old), None));
                        }
                    }
                }
                self.triggers.profiles(names);
                let first = !lock(&self.readiness).ingresses;
                self.update_readiness(|r| r.ingresses = true);
                if !first {
                    // A re-list may have missed changes: evaluate everything again.
                    self.triggers.everything();
                }
                tracing::debug!(
                    ingresses = seen.len(),
                    removed = gone.len(),
                    "Ingress list complete"
                );
            }
            Event::Apply(ing) => {
                self.upsert_ingress(&ing, true);
            }
            Event::Delete(ing) => {
                let key = key_of(ing.namespace(), ing.name_any());
                let names = {
                    let mut view = self.write_view();
                    match view.remove_ingress(&key) {
                        Some(old) => Self::profiles_for_ingress(&view, Some(&old), None),
                        None => BTreeSet::new(),
                    }
                };
                self.triggers.profiles(names);
            }
        }
    }

    /// Upserts one Ingress; returns its key.
    fn upsert_ingress(&self, ing: &Ingress, trigger: bool) -> Option<ObjectKey> {
        let ns = ing.namespace().unwrap_or_default();
        let new = IngressView::from_ingress(ing, &ns);
        let key = new.key.clone();
        let names = {
            let mut view = self.write_view();
            let old = view.ingress(&key).cloned();
            if old.as_deref() == Some(&new) {
                return Some(key);
            }
            let names = Self::profiles_for_ingress(&view, old.as_deref(), Some(&new));
            view.upsert_ingress(new);
            names
        };
        if trigger {
            self.triggers.profiles(names);
        }
        Some(key)
    }

    // ---- Profiles -----------------------------------------------------------------------

    /// Keeps the compiled profiles in the view (invalid ones are left out) and the set of
    /// CA Secret names to watch.
    pub fn on_profile_event(&self, event: &Event<ApiProviderProfile>) {
        match event {
            Event::Init => lock(&self.relists).profiles = Some(HashSet::new()),
            Event::InitApply(p) | Event::Apply(p) => {
                let name = p.name_any();
                if let Some(seen) = lock(&self.relists).profiles.as_mut() {
                    seen.insert(name.clone());
                }
                let mut view = self.write_view();
                if p.metadata.deletion_timestamp.is_some() {
                    // Being deleted: no longer enforced (the webhooks must let the cleanup
                    // of what it rendered through), only cleaned up by the controller.
                    view.remove_profile(&name);
                    return self.refresh_secret_names(view);
                }
                match p.compile() {
                    Ok(compiled) => view.upsert_profile(compiled),
                    Err(e) => {
                        tracing::debug!(profile = %name, error = %e, "profile is invalid; not in the view");
                        view.remove_profile(&name);
                    }
                }
            }
            Event::Delete(p) => self.write_view().remove_profile(&p.name_any()),
            Event::InitDone => {
                let seen = lock(&self.relists).profiles.take().unwrap_or_default();
                {
                    let mut view = self.write_view();
                    let gone: Vec<String> = view
                        .profiles()
                        .map(|p| p.name.clone())
                        .filter(|n| !seen.contains(n))
                        .collect();
                    for name in gone {
                        view.remove_profile(&name);
                    }
                }
                self.update_readiness(|r| r.profiles = true);
            }
        }
        let view = self.write_view();
        self.refresh_secret_names(view);
    }

    fn refresh_secret_names(&self, view: std::sync::RwLockWriteGuard<'_, ClusterView>) {
        let names: BTreeSet<String> = view
            .profiles()
            .map(|p| p.spec.client_certificate.ca_secret_name.clone())
            .collect();
        drop(view);
        self.secret_names.send_if_modified(|current| {
            if *current == names {
                false
            } else {
                *current = names;
                true
            }
        });
    }

    /// The CA Secret names profiles use (changes when profiles change).
    pub fn secret_names(&self) -> watch::Receiver<BTreeSet<String>> {
        self.secret_names.subscribe()
    }

    // ---- Secrets ------------------------------------------------------------------------

    fn profiles_using_secret(&self, name: &str) -> Vec<String> {
        self.read_view()
            .profiles()
            .filter(|p| p.spec.client_certificate.ca_secret_name == name)
            .map(|p| p.name.clone())
            .collect()
    }

    fn refresh_secret_completeness(&self) {
        let complete = lock(&self.secret_synced).values().all(|s| *s);
        self.write_view().set_secrets_completeness(if complete {
            Completeness::Complete
        } else {
            Completeness::Partial
        });
    }

    /// Starts tracking a Secret name (its watch is about to start).
    pub fn secret_watch_started(&self, name: &str) {
        lock(&self.secret_synced).insert(name.to_string(), false);
        self.refresh_secret_completeness();
    }

    /// Stops tracking a Secret name: its watch ended, its Secrets leave the view.
    pub fn secret_watch_stopped(&self, name: &str) {
        lock(&self.secret_synced).remove(name);
        lock(&self.relists).secrets.remove(name);
        self.write_view().retain_secrets(|s| s.key.name != name);
        self.refresh_secret_completeness();
    }

    pub fn on_secret_event(&self, name: &str, event: Event<Secret>) {
        let apply = matches!(event, Event::Apply(_));
        match event {
            Event::Init => {
                lock(&self.relists)
                    .secrets
                    .insert(name.to_string(), HashSet::new());
            }
            Event::InitApply(s) | Event::Apply(s) => {
                if s.name_any() != name {
                    return;
                }
                let view = SecretView::from_secret(&s, "");
                if let Some(seen) = lock(&self.relists).secrets.get_mut(name) {
                    seen.insert(view.key.clone());
                }
                self.write_view().upsert_secret(view);
                if apply {
                    self.triggers.profiles(self.profiles_using_secret(name));
                }
            }
            Event::Delete(s) => {
                self.write_view()
                    .remove_secret(&key_of(s.namespace(), s.name_any()));
                self.triggers.profiles(self.profiles_using_secret(name));
            }
            Event::InitDone => {
                let seen = lock(&self.relists).secrets.remove(name).unwrap_or_default();
                self.write_view()
                    .retain_secrets(|s| s.key.name != name || seen.contains(&s.key));
                lock(&self.secret_synced).insert(name.to_string(), true);
                self.refresh_secret_completeness();
                self.triggers.profiles(self.profiles_using_secret(name));
            }
        }
    }

    // ---- Dialect-owned kinds -----------------------------------------------------------

    /// Profiles a change of `kind` concerns: those whose controller reads the kind, and
    /// the one the object is labelled for.
    fn kind_profiles(&self, kind: &ObjectKind, label: Option<&str>) -> BTreeSet<String> {
        let view = self.read_view();
        view.profiles()
            .filter(|p| dialect::profile_reads_kind(p, kind) || Some(p.name.as_str()) == label)
            .map(|p| p.name.clone())
            .collect()
    }

    /// Reduces and stores one object; its key, and whether its view changed.
    fn upsert_dialect_object(
        &self,
        kind: ObjectKind,
        obj: &DynamicObject,
    ) -> Option<(ObjectKey, bool)> {
        let ns = obj.namespace().unwrap_or_default();
        let value = serde_json::to_value(obj).ok()?;
        let key = ObjectKey::new(ns.clone(), obj.name_any());
        let (_, owner, _) = dialect::owned_kinds().find(|(_, _, k)| **k == kind)?;
        let mut changed = true;
        match owner.reduce(&kind, &value, &ns) {
            Ok(view) => {
                let mut write = self.write_view();
                changed = !matches!(
                    crate::model::ObjectSource::object(&*write, &kind, &key),
                    crate::model::Lookup::Found(old) if old.same_view(view.as_ref())
                );
                write.upsert_object(kind, view);
            }
            Err(e) => {
                // The API server accepted it, so the controller will read it somehow:
                // evaluations treat it as unknown and report it (fail closed), never as
                // absent.
                tracing::warn!(kind = %kind, object = %key, error = %e, "object cannot be read; evaluations treat it as unknown");
                self.write_view()
                    .set_object_unreadable(kind, key.clone(), e.to_string());
            }
        }
        let meta = RenderedMeta {
            profile: obj.labels().get(PROFILE_LABEL).cloned(),
            hash: obj.annotations().get(RENDERED_HASH).cloned(),
        };
        let previous = self
            .dialect_objects
            .objects
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                OwnedObjectKey {
                    kind,
                    key: key.clone(),
                },
                meta.clone(),
            );
        // A changed profile label or rendered hash is a change for the renderer, whatever
        // the view (which keeps neither for most kinds).
        changed |= previous.as_ref() != Some(&meta);
        Some((key, changed))
    }

    fn remove_dialect_object(&self, kind: ObjectKind, key: &ObjectKey) -> Option<RenderedMeta> {
        self.write_view().remove_object(&kind, key);
        self.dialect_objects
            .objects
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&OwnedObjectKey {
                kind,
                key: key.clone(),
            })
    }

    pub fn on_object_event(&self, kind: ObjectKind, event: Event<DynamicObject>) {
        match event {
            Event::Init => {
                lock(&self.relists).objects.insert(kind, HashSet::new());
            }
            Event::InitApply(obj) => {
                if let Some((key, _)) = self.upsert_dialect_object(kind, &obj)
                    && let Some(seen) = lock(&self.relists).objects.get_mut(&kind)
                {
                    seen.insert(key);
                }
            }
            Event::Apply(obj) => {
                // An update that changes nothing any dialect reads (an unlabelled
                // ConfigMap's data) triggers no evaluation.
                if let Some((_, false)) = self.upsert_dialect_object(kind, &obj) {
                    return;
                }
                let label = obj.labels().get(PROFILE_LABEL).cloned();
                self.triggers
                    .profiles(self.kind_profiles(&kind, label.as_deref()));
            }
            Event::Delete(obj) => {
                let key = key_of(obj.namespace(), obj.name_any());
                let meta = self.remove_dialect_object(kind, &key);
                let label = meta.and_then(|m| m.profile);
                self.triggers
                    .profiles(self.kind_profiles(&kind, label.as_deref()));
            }
            Event::InitDone => {
                let seen = lock(&self.relists)
                    .objects
                    .remove(&kind)
                    .unwrap_or_default();
                let gone: Vec<ObjectKey> = self
                    .dialect_objects
                    .objects
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .keys()
                    .filter(|k| k.kind == kind && !seen.contains(&k.key))
                    .map(|k| k.key.clone())
                    .collect();
                for key in &gone {
                    self.remove_dialect_object(kind, key);
                }
                self.write_view()
                    .set_kind_completeness(kind, Completeness::Complete);
                self.dialect_objects.set_writable(kind, true);
                self.update_readiness(|r| {
                    r.kinds_done.insert(kind);
                });
                self.triggers.profiles(self.kind_profiles(&kind, None));
            }
        }
    }
}

// ---- Watch tasks ------------------------------------------------------------------------

fn is_forbidden(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => s.is_forbidden(),
        watcher::Error::WatchError(s) => s.is_forbidden(),
        _ => false,
    }
}

/// Drives one watch stream into `on_event`, logging errors at most once a minute (the
/// stream backs off by itself). Returns when the stream ends, or at the first 403 when
/// `stop_on_forbidden`.
async fn drive<K>(
    what: &str,
    stream: impl Stream<Item = Result<Event<K>, watcher::Error>>,
    stop_on_forbidden: bool,
    mut on_event: impl FnMut(Event<K>),
) -> Result<(), watcher::Error> {
    futures::pin_mut!(stream);
    let mut last_logged: Option<Instant> = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => on_event(event),
            Err(e) if stop_on_forbidden && is_forbidden(&e) => return Err(e),
            Err(e) => {
                if last_logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    tracing::warn!(watch = what, error = %e, "watch failed; retrying with backoff");
                    last_logged = Some(Instant::now());
                }
            }
        }
    }
    Ok(())
}

/// Watches every Ingress, in every namespace: the controllers merge Ingresses of namespaces
/// the webhooks skip into the same hosts, so they count for status, Events and metrics.
pub async fn run_ingress_watch(client: Client, ctx: Arc<CacheContext>) {
    let api: Api<Ingress> = Api::all(client);
    let config = watcher::Config::default().any_semantic();
    let stream = watcher::watcher(api, config).default_backoff();
    let _ = drive("ingresses", stream, false, |e| ctx.on_ingress_event(e)).await;
}

/// Watches IngressClasses (cluster-scoped). Without permission, other classes count.
pub async fn run_ingress_class_watch(client: Client, ctx: Arc<CacheContext>) {
    let api: Api<IngressClass> = Api::all(client);
    let stream = watcher::watcher(api, watcher::Config::default().any_semantic()).default_backoff();
    if let Err(e) = drive("ingressclasses", stream, true, |e| {
        ctx.on_ingress_class_event(e)
    })
    .await
    {
        tracing::warn!(error = %e, "not allowed to list IngressClasses (RBAC: list/watch on ingressclasses); Ingresses of other classes on profile hosts count");
        ctx.ingress_classes_unreadable();
    }
}

/// Keeps one Secret watch per CA Secret name the profiles use.
pub async fn run_secret_watches(client: Client, ctx: Arc<CacheContext>) {
    let mut names_rx = ctx.secret_names();
    let mut tasks: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        let names = names_rx.borrow_and_update().clone();
        let removed: Vec<String> = tasks
            .keys()
            .filter(|n| !names.contains(*n))
            .cloned()
            .collect();
        for name in removed {
            if let Some(task) = tasks.remove(&name) {
                task.abort();
            }
            ctx.secret_watch_stopped(&name);
            tracing::info!(secret = %name, "stopped watching CA Secrets");
        }
        for name in names {
            if tasks.contains_key(&name) {
                continue;
            }
            ctx.secret_watch_started(&name);
            tracing::info!(secret = %name, "watching CA Secrets of this name in all namespaces");
            let (client, ctx2, n) = (client.clone(), ctx.clone(), name.clone());
            tasks.insert(
                name,
                tokio::spawn(async move {
                    let api: Api<Secret> = Api::all(client);
                    let config = watcher::Config::default()
                        .any_semantic()
                        .fields(&format!("metadata.name={n}"));
                    let stream = watcher::watcher(api, config).default_backoff();
                    let result = drive(&format!("secrets/{n}"), stream, true, |e| {
                        ctx2.on_secret_event(&n, e)
                    })
                    .await;
                    if let Err(e) = result {
                        tracing::warn!(secret = %n, error = %e, "not allowed to read CA Secrets of this name (RBAC: get/list/watch on secrets with resourceNames); CA checks for them are skipped");
                    }
                }),
            );
        }
        if names_rx.changed().await.is_err() {
            break;
        }
    }
    for (_, task) in tasks {
        task.abort();
    }
}

/// Objects per page when listing a dialect-owned kind.
const DIALECT_LIST_PAGE_SIZE: u32 = 100;

/// How often kinds whose CRDs were absent (or not readable) are looked up again, so a CRD
/// installed after the controller started is noticed.
const KIND_DISCOVERY_INTERVAL: Duration = Duration::from_secs(60);

/// Watches every kind of the `controllers`' dialects whose CRD exists and may be listed;
/// looks the others up again every minute. Kinds of other controllers
/// are never listed (the chart grants no RBAC for them) and stay unknown.
pub async fn run_dialect_watches(client: Client, ctx: Arc<CacheContext>, controllers: Vec<String>) {
    let watched = |c: IngressController| controllers.iter().any(|n| n == c.as_str());
    for (controller, _, kind) in dialect::owned_kinds() {
        // A kind several dialects read (ConfigMap) is watched when any of them is.
        let read_by_watched = dialect::owned_kinds().any(|(c, _, k)| k == kind && watched(c));
        if !read_by_watched {
            tracing::info!(kind = %kind, controller = controller.as_str(), "not watched (--watch-controllers); its objects count as unknown");
            ctx.kind_unreadable(
                *kind,
                format!(
                    "not watched: --watch-controllers does not list {} (enable the controller in the chart values, e.g. traefik.enabled or gatewayApi.enabled, which also grants the RBAC)",
                    controller.as_str()
                ),
            );
        }
    }
    let mut watching: HashMap<ObjectKind, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        watching.retain(|_, task| !task.is_finished());
        let mut groups: BTreeSet<(&'static str, &'static str)> = BTreeSet::new();
        for (_, _, kind) in dialect::owned_kinds().filter(|(c, _, _)| watched(*c)) {
            if !watching.contains_key(kind) {
                groups.insert((kind.group, kind.version));
            }
        }
        for (group, version) in groups {
            let gv = GroupVersion::gv(group, version);
            let discovered = kube::discovery::pinned_group(&client, &gv).await;
            for (_, _, kind) in dialect::owned_kinds()
                .filter(|(c, _, k)| watched(*c) && k.group == group && k.version == version)
            {
                if watching.contains_key(kind) {
                    continue;
                }
                let found = discovered
                    .as_ref()
                    .ok()
                    .and_then(|g| g.recommended_kind(kind.kind));
                let Some((ar, _)) = found else {
                    let first = !lock(&ctx.readiness).kinds_done.contains(kind);
                    if discovery_says_absent(&discovered) {
                        // The group/version or the kind is not served: no object can exist.
                        if first {
                            tracing::info!(kind = %kind, version, "CRD not installed; looked up again every minute");
                        }
                        ctx.kind_absent(*kind);
                    } else {
                        let error = discovered
                            .as_ref()
                            .err()
                            .map_or_else(String::new, ToString::to_string);
                        tracing::warn!(kind = %kind, version, error = %error, "API discovery failed; objects of this kind are unknown (looked up again every minute)");
                        ctx.kind_unreadable(
                            *kind,
                            format!("API discovery of {group}/{version} failed: {error}"),
                        );
                    }
                    continue;
                };
                // ConfigMaps read only as controller ConfigMaps are listed by their label:
                // the cluster's other ConfigMaps never cross the wire.
                let mut selectors = dialect::owned_kinds()
                    .filter(|(c, _, k)| watched(*c) && *k == kind)
                    .map(|(_, d, _)| d.watch_selector(kind));
                let first = selectors.next().flatten();
                let selector = first.filter(|s| selectors.all(|o| o == Some(*s)));
                // Pages of 100 (kube's default is 500): a page of ConfigMaps, up to 1 MiB
                // each, is held whole while it is reduced.
                let mut config = watcher::Config::default()
                    .any_semantic()
                    .page_size(DIALECT_LIST_PAGE_SIZE);
                if let Some(selector) = selector {
                    config = config.labels(selector);
                }
                let (client, ctx, kind) = (client.clone(), ctx.clone(), *kind);
                tracing::info!(kind = %kind, selector = selector.unwrap_or(""), "watching");
                watching.insert(
                    kind,
                    tokio::spawn(async move {
                        let api: Api<DynamicObject> = Api::all_with(client, &ar);
                        let stream =
                            watcher::watcher(api, config)
                                .default_backoff();
                        let result = drive(&kind.to_string(), stream, true, |e| {
                            ctx.on_object_event(kind, e)
                        })
                        .await;
                        if let Err(e) = result {
                            tracing::warn!(kind = %kind, error = %e, "not allowed to list this kind; its objects are not watched");
                            ctx.kind_unreadable(
                                kind,
                                format!("listing them failed ({e}); grant mtls-gate list and watch on {}", ar.plural),
                            );
                        }
                    }),
                );
            }
        }
        tokio::time::sleep(KIND_DISCOVERY_INTERVAL).await;
    }
}

/// Whether a discovery answer says the kind is not served: the group/version is unknown to
/// the API server (404) or served without the kind. Any other failure leaves it unknown.
fn discovery_says_absent(discovered: &kube::Result<kube::discovery::ApiGroup>) -> bool {
    match discovered {
        Ok(_) => true,
        // A plain-text 404 ("404 page not found") carries the code but not the reason.
        Err(kube::Error::Api(status)) => status.code == 404 || status.is_not_found(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Lookup, ObjectSource};
    use futures::channel::mpsc;
    use serde_json::{Value, json};

    fn ctx() -> (
        Arc<CacheContext>,
        mpsc::UnboundedReceiver<ObjectRef<ApiProviderProfile>>,
        mpsc::UnboundedReceiver<()>,
    ) {
        let (one, one_rx) = mpsc::unbounded();
        let (all, all_rx) = mpsc::unbounded();
        let ctx = CacheContext::new(
            crate::cluster::shared_view(),
            SyncedFlag::default(),
            Triggers { one, all },
        );
        (Arc::new(ctx), one_rx, all_rx)
    }

    fn ingress(ns: &str, name: &str, host: &str, label: Option<&str>) -> Ingress {
        serde_json::from_value(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": ns,
                "labels": label.map(|l| json!({PROFILE_LABEL: l})).unwrap_or(json!({})),
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}"}},
            "spec": {"rules": [{"host": host, "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "s", "port": {"number": 80}}}}]}}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}
        }))
        .unwrap()
    }

    fn profile(name: &str, host: &str) -> ApiProviderProfile {
        serde_json::from_value(json!({
            "apiVersion": "mtls-gate.io/v1alpha1", "kind": "ApiProviderProfile",
            "metadata": {"name": name},
            "spec": {"issuer": format!("https://{host}"), "apiBaseUrls": [format!("https://{host}/api")],
                "clientCertificate": {"caSecretName": format!("{name}-ca")}}
        }))
        .unwrap()
    }

    fn drain<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> Vec<T> {
        let mut out = Vec::new();
        while let Ok(x) = rx.try_recv() {
            out.push(x);
        }
        out
    }

    #[test]
    fn sync_needs_profiles_ingresses_and_traefik_then_triggers_everything() {
        let (ctx, _one, mut all) = ctx();
        ctx.on_profile_event(&Event::Init);
        ctx.on_profile_event(&Event::InitDone);
        ctx.on_ingress_event(Event::Init);
        ctx.on_ingress_event(Event::InitDone);
        ctx.on_ingress_class_event(Event::Init);
        ctx.on_ingress_class_event(Event::InitDone);
        assert!(!ctx.synced.load(Ordering::Acquire));
        for (_, _, kind) in crate::dialect::owned_kinds() {
            ctx.kind_absent(*kind);
        }
        assert!(ctx.synced.load(Ordering::Acquire));
        assert_eq!(drain(&mut all).len(), 1);
    }

    #[test]
    fn ingress_changes_trigger_the_profiles_whose_hosts_they_touch() {
        let (ctx, mut one, _all) = ctx();
        ctx.on_profile_event(&Event::Apply(profile("bank", "api.bank.example")));
        ctx.on_profile_event(&Event::Apply(profile("other", "api.other.example")));
        ctx.on_ingress_event(Event::Apply(ingress("ob", "a", "api.bank.example", None)));
        let names: Vec<String> = drain(&mut one).into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["bank"]);
        // Same object again (only status or irrelevant fields differ): no trigger.
        ctx.on_ingress_event(Event::Apply(ingress("ob", "a", "api.bank.example", None)));
        assert!(drain(&mut one).is_empty());
        // Moving the host: both the old and the new profile.
        ctx.on_ingress_event(Event::Apply(ingress("ob", "a", "api.other.example", None)));
        let mut names: Vec<String> = drain(&mut one).into_iter().map(|r| r.name).collect();
        names.sort();
        assert_eq!(names, ["bank", "other"]);
        // Label for a profile whose hosts it does not touch.
        ctx.on_ingress_event(Event::Apply(ingress("ob", "b", "x.example", Some("bank"))));
        let names: Vec<String> = drain(&mut one).into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["bank"]);
        ctx.on_ingress_event(Event::Delete(ingress("ob", "b", "x.example", Some("bank"))));
        assert_eq!(drain(&mut one).len(), 1);
        assert_eq!(ctx.view.read().unwrap().ingress_count(), 1);
    }

    #[test]
    fn ingresses_of_namespaces_the_webhooks_skip_are_cached() {
        let (ctx, _one, _all) = ctx();
        ctx.on_ingress_event(Event::Apply(ingress("kube-system", "a", "h", None)));
        assert_eq!(ctx.view.read().unwrap().ingress_count(), 1);
    }

    #[test]
    fn relist_drops_what_it_did_not_see() {
        let (ctx, _one, mut all) = ctx();
        ctx.on_ingress_event(Event::Init);
        ctx.on_ingress_event(Event::InitApply(ingress("ob", "a", "h", None)));
        ctx.on_ingress_event(Event::InitApply(ingress("ob", "b", "h", None)));
        ctx.on_ingress_event(Event::InitDone);
        assert_eq!(ctx.view.read().unwrap().ingress_count(), 2);
        ctx.on_ingress_event(Event::Init);
        // During the re-list the old objects stay visible.
        assert_eq!(ctx.view.read().unwrap().ingress_count(), 2);
        ctx.on_ingress_event(Event::InitApply(ingress("ob", "b", "h", None)));
        ctx.on_ingress_event(Event::InitDone);
        let view = ctx.view.read().unwrap();
        assert_eq!(view.ingress_count(), 1);
        assert!(view.ingress(&ObjectKey::new("ob", "b")).is_some());
        drop(view);
        // The second InitDone is a re-list: everything is re-evaluated.
        assert_eq!(drain(&mut all).len(), 1);
    }

    #[test]
    fn cached_views_drop_managed_fields_and_foreign_annotations() {
        let (ctx, _one, _all) = ctx();
        ctx.on_ingress_event(Event::Apply(ingress("ob", "a", "h", None)));
        let view = ctx.view.read().unwrap();
        let i = view.ingress(&ObjectKey::new("ob", "a")).unwrap();
        assert!(i.annotations.is_empty());
    }

    #[test]
    fn profiles_feed_secret_names_and_invalid_ones_stay_out() {
        let (ctx, _one, _all) = ctx();
        let rx = ctx.secret_names();
        ctx.on_profile_event(&Event::Apply(profile("bank", "api.bank.example")));
        assert_eq!(rx.borrow().iter().cloned().collect::<Vec<_>>(), ["bank-ca"]);
        let mut bad = profile("bank", "api.bank.example");
        bad.spec.issuer = "http://insecure".into();
        ctx.on_profile_event(&Event::Apply(bad));
        assert!(ctx.view.read().unwrap().profile("bank").is_none());
        assert!(rx.borrow().is_empty());
    }

    #[test]
    fn profiles_being_deleted_are_no_longer_enforced() {
        let (ctx, _one, _all) = ctx();
        let mut p = profile("bank", "api.bank.example");
        ctx.on_profile_event(&Event::Apply(p.clone()));
        assert!(ctx.view.read().unwrap().profile("bank").is_some());
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::now(),
        ));
        ctx.on_profile_event(&Event::Apply(p));
        assert!(ctx.view.read().unwrap().profile("bank").is_none());
        assert!(ctx.secret_names().borrow().is_empty());
    }

    #[test]
    fn secret_completeness_follows_the_watches() {
        let (ctx, mut one, _all) = ctx();
        ctx.on_profile_event(&Event::Apply(profile("bank", "api.bank.example")));
        ctx.secret_watch_started("bank-ca");
        assert_eq!(
            ctx.view.read().unwrap().secrets_completeness(),
            Completeness::Partial
        );
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "bank-ca", "namespace": "ob"},
            "data": {"ca.crt": "bm90IGEgY2VydA=="}
        }))
        .unwrap();
        ctx.on_secret_event("bank-ca", Event::Init);
        ctx.on_secret_event("bank-ca", Event::InitApply(secret));
        ctx.on_secret_event("bank-ca", Event::InitDone);
        {
            let view = ctx.view.read().unwrap();
            assert_eq!(view.secrets_completeness(), Completeness::Complete);
            assert_eq!(view.secrets().count(), 1);
        }
        assert_eq!(drain(&mut one).len(), 1);
        ctx.secret_watch_stopped("bank-ca");
        assert_eq!(ctx.view.read().unwrap().secrets().count(), 0);
    }

    #[test]
    fn a_refused_kind_is_unwritable_and_unknown_while_a_listed_one_is_complete() {
        use crate::dialect::traefik::{MIDDLEWARE, TLS_OPTION};
        let (ctx, _one, _all) = ctx();
        ctx.on_object_event(MIDDLEWARE, Event::Init);
        ctx.on_object_event(MIDDLEWARE, Event::InitDone);
        // The TLSOption list was refused (403).
        ctx.kind_unreadable(TLS_OPTION, "listing them failed (403)");
        assert!(!ctx.dialect_objects.is_writable(&TLS_OPTION));
        assert!(ctx.dialect_objects.is_writable(&MIDDLEWARE));
        let view = ctx.view.read().unwrap();
        assert_eq!(view.kind_completeness(&TLS_OPTION), Completeness::Partial);
        assert_eq!(
            view.unreadable(&TLS_OPTION),
            ["listing them failed (403)"],
            "reported on the hosts of Traefik profiles"
        );
        assert_eq!(view.kind_completeness(&MIDDLEWARE), Completeness::Complete);
        assert!(view.unreadable(&MIDDLEWARE).is_empty());
    }

    #[test]
    fn a_kind_whose_crd_is_not_served_is_complete_and_empty_until_listed() {
        use crate::dialect::traefik::TLS_OPTION;
        let (ctx, _one, _all) = ctx();
        ctx.kind_unreadable(TLS_OPTION, "API discovery failed");
        ctx.kind_absent(TLS_OPTION);
        let view = ctx.view.read().unwrap();
        assert_eq!(view.kind_completeness(&TLS_OPTION), Completeness::Complete);
        assert!(view.unreadable(&TLS_OPTION).is_empty());
        assert!(!ctx.dialect_objects.is_writable(&TLS_OPTION));
    }

    #[test]
    fn only_a_not_found_discovery_answer_means_the_kind_is_absent() {
        let status = |code: u16| {
            Err(kube::Error::Api(
                kube::core::Status::failure("x", "y")
                    .with_code(code)
                    .boxed(),
            ))
        };
        assert!(discovery_says_absent(&status(404)));
        for code in [401, 403, 500, 503] {
            assert!(!discovery_says_absent(&status(code)), "{code}");
        }
    }

    #[test]
    fn an_object_that_cannot_be_reduced_is_unreadable_until_fixed_or_deleted() {
        use crate::dialect::gateway::GATEWAY;
        let (ctx, _one, _all) = ctx();
        let gateway = |port: Value| -> DynamicObject {
            serde_json::from_value(json!({
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                "metadata": {"name": "mtls", "namespace": "ob"},
                "spec": {"gatewayClassName": "eg", "listeners": [
                    {"name": "https", "protocol": "HTTPS", "port": port}]}
            }))
            .unwrap()
        };
        ctx.on_object_event(GATEWAY, Event::Init);
        ctx.on_object_event(GATEWAY, Event::InitDone);
        ctx.on_object_event(GATEWAY, Event::Apply(gateway(json!(70000))));
        let key = ObjectKey::new("ob", "mtls");
        {
            let view = ctx.view.read().unwrap();
            let reasons = view.unreadable(&GATEWAY);
            assert_eq!(reasons.len(), 1, "{reasons:?}");
            assert!(
                reasons[0].starts_with("Gateway ob/mtls cannot be read"),
                "{reasons:?}"
            );
            assert!(matches!(view.object(&GATEWAY, &key), Lookup::Unknown));
        }
        ctx.on_object_event(GATEWAY, Event::Apply(gateway(json!(443))));
        assert!(ctx.view.read().unwrap().unreadable(&GATEWAY).is_empty());
        ctx.on_object_event(GATEWAY, Event::Apply(gateway(json!(0))));
        assert_eq!(ctx.view.read().unwrap().unreadable(&GATEWAY).len(), 1);
        ctx.on_object_event(GATEWAY, Event::Delete(gateway(json!(0))));
        assert!(ctx.view.read().unwrap().unreadable(&GATEWAY).is_empty());
    }

    /// An update of a dialect-owned object triggers the profiles that read its kind when
    /// its view changes, or its profile label or rendered hash (which the renderer reads
    /// and most views do not keep); a status written by its controller triggers nothing.
    #[test]
    fn object_updates_trigger_on_what_the_view_or_the_renderer_reads() {
        use crate::dialect::traefik::TLS_OPTION;
        let (ctx, mut one, _all) = ctx();
        let mut bank = profile("bank", "api.bank.example");
        bank.spec.ingress_controller = crate::profile::IngressController::Traefik;
        ctx.on_profile_event(&Event::Apply(bank));
        let option = |client_auth: &str, hash: &str, status: Value| -> DynamicObject {
            serde_json::from_value(json!({
                "apiVersion": "traefik.io/v1alpha1", "kind": "TLSOption",
                "metadata": {"name": "o", "namespace": "ob",
                    "labels": {PROFILE_LABEL: "bank"}, "annotations": {RENDERED_HASH: hash}},
                "spec": {"clientAuth": {"clientAuthType": client_auth, "secretNames": ["ca"]}},
                "status": status
            }))
            .expect("a TLSOption")
        };
        let verify = "RequireAndVerifyClientCert";
        let mut apply = |object: DynamicObject| {
            ctx.on_object_event(TLS_OPTION, Event::Apply(object));
            drain(&mut one).len()
        };
        assert_eq!(apply(option(verify, "abc", json!({}))), 1, "created");
        assert_eq!(
            apply(option(verify, "abc", json!({"observed": 2}))),
            0,
            "status only"
        );
        assert_eq!(apply(option(verify, "def", json!({}))), 1, "rendered hash");
        assert_eq!(
            apply(option("VerifyClientCertIfGiven", "def", json!({}))),
            1,
            "view"
        );
    }

    #[test]
    fn dialect_objects_are_indexed_with_label_and_hash() {
        let (ctx, _one, _all) = ctx();
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "traefik.io/v1alpha1", "kind": "TLSOption",
            "metadata": {"name": "o", "namespace": "ob",
                "labels": {PROFILE_LABEL: "bank"}, "annotations": {RENDERED_HASH: "abc"}},
            "spec": {"clientAuth": {"clientAuthType": "RequireAndVerifyClientCert", "secretNames": ["ca"]}}
        }))
        .unwrap();
        use crate::dialect::traefik::{MIDDLEWARE, TLS_OPTION};
        ctx.on_object_event(TLS_OPTION, Event::Init);
        ctx.on_object_event(TLS_OPTION, Event::InitApply(obj));
        let view = || ctx.view.read().unwrap();
        assert_eq!(
            view().kind_completeness(&TLS_OPTION),
            Completeness::Partial,
            "complete only once listed"
        );
        ctx.on_object_event(TLS_OPTION, Event::InitDone);
        let meta = ctx
            .dialect_objects
            .objects
            .read()
            .unwrap()
            .get(&OwnedObjectKey {
                kind: TLS_OPTION,
                key: ObjectKey::new("ob", "o"),
            })
            .cloned()
            .unwrap();
        assert_eq!(meta.profile.as_deref(), Some("bank"));
        assert_eq!(meta.hash.as_deref(), Some("abc"));
        assert_eq!(view().objects(&TLS_OPTION).count(), 1);
        assert_eq!(
            view().kind_completeness(&TLS_OPTION),
            Completeness::Complete
        );
        assert_eq!(view().kind_completeness(&MIDDLEWARE), Completeness::Partial);
        assert!(!ctx.synced.load(Ordering::Acquire));
    }
}
