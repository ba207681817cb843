//! Reconciling one profile: render its managed Ingresses, write what changed, evaluate,
//! report.
//!
//! The work is split into a pure step ([`plan`]: render, diff against the cache, evaluate the
//! world as it will be after the writes) and the writes ([`reconcile`]). The plan reads the
//! shared view under its read lock and releases it before any request is sent.
//!
//! Writes, all as field manager `mtls-gate`, only by the leader, only when needed:
//! - a managed Ingress whose owned annotations differ from the rendering (or that lacks the
//!   `mtls-gate.io/rendered-by` marker): server-side apply of a minimal Ingress holding
//!   only the annotations mtls-gate owns. Owned annotations the apply leaves out are removed
//!   by the API server; annotations the renderer removes that another manager set are then
//!   deleted with a merge patch;
//! - Objects of dialect-owned kinds the renderer asks for (Traefik TLSOptions and
//!   Middlewares): server-side apply, labelled with the profile,
//!   owned by it (ownerReference) and annotated with a hash of their content, so unchanged
//!   objects are not written again; objects of the profile the plan no longer has: delete;
//! - Objects of dialect-owned kinds labelled `mtls-gate.io/profile` that the dialect renders
//!   in place (`Dialect::render_object`: a Gateway's `spec.tls.frontend` validation per
//!   port): server-side apply of only the rendered fields, as for Ingress annotations, when
//!   the object does not carry them yet; a refusal (MTLS and TLS hosts on one port) goes to
//!   status and Events. Such objects are the user's: no owner reference, never deleted;
//! - Ingresses rendered by this profile that are no longer managed by it (label removed or
//!   pointing at a profile that does not exist): an empty apply, which removes every field
//!   mtls-gate owns;
//! - Events for new findings, and the status when it changed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::{Value, json};
use tokio::time::Instant;
use tracing::Instrument;

use super::Error;
use super::ca_access;
use super::caches::{
    CacheContext, OwnedObjectKey, RENDERED_BY, RENDERED_HASH, RenderedMeta, api_resource,
};
use super::events::{EventDedup, Finding, FindingKey, MAX_NOTE_BYTES, publish, truncate};
use super::leader::Leadership;
use super::metrics::{ControllerMetrics, ProfileLabel};
use super::status;
use crate::cluster::{ClusterView, PlannedObjects};
use crate::dialect::{HostRole, ObjectKind, RenderInput, dialect_for};
use crate::engine::{EngineError, Verdict, evaluate, ingress_class_decision};
use crate::model::{IngressView, Lookup, ObjectKey, ObjectSource};
use crate::profile::{ApiProviderProfile, ApiProviderProfileStatus, CompiledProfile};
use crate::render::{Refusal, render_profile};

/// Finalizer that holds a profile until what it rendered is removed.
pub const FINALIZER: &str = "mtls-gate.io/cleanup";
/// Reason of the Event when admission denies removing rendered settings.
pub const CLEANUP_DENIED: &str = "CleanupDenied";
/// Field manager of every write.
pub const FIELD_MANAGER: &str = "mtls-gate";

/// How often a write that got 409 Conflict is tried in all.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            delay: Duration::from_millis(200),
        }
    }
}

/// Everything a reconcile needs.
pub struct Context {
    pub client: Client,
    pub caches: Arc<CacheContext>,
    pub leadership: Leadership,
    pub metrics: Arc<ControllerMetrics>,
    pub recorder: Recorder,
    pub events: EventDedup,
    pub requeue_interval: Duration,
    pub retry: RetryPolicy,
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(
        client: Client,
        caches: Arc<CacheContext>,
        leadership: Leadership,
        metrics: Arc<ControllerMetrics>,
        identity: &str,
        requeue_interval: Duration,
    ) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: FIELD_MANAGER.to_string(),
                instance: Some(identity.to_string()),
            },
        );
        Self {
            client,
            caches,
            leadership,
            metrics,
            recorder,
            events: EventDedup::default(),
            requeue_interval,
            retry: RetryPolicy::default(),
            failures: Mutex::default(),
        }
    }

    fn ensure_leader(&self) -> Result<(), Error> {
        if self.leadership.is_leader() {
            Ok(())
        } else {
            Err(Error::NotLeader)
        }
    }

    fn view(&self) -> std::sync::RwLockReadGuard<'_, ClusterView> {
        self.caches.view.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// Retries `op` on 409 Conflict, with a growing pause.
async fn retry_conflicts<T, F, Fut>(policy: RetryPolicy, mut op: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Err(kube::Error::Api(s)) if s.is_conflict() && attempt < policy.attempts => {
                tracing::debug!(attempt, "409 Conflict; retrying");
                tokio::time::sleep(policy.delay * attempt).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

// ---- The plan ---------------------------------------------------------------------------

/// One server-side apply of a managed Ingress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressWrite {
    pub ingress: ObjectKey,
    /// Every annotation mtls-gate owns on it after the apply (including the marker).
    pub annotations: BTreeMap<String, String>,
    /// Annotations the renderer removes; deleted by merge patch if the apply leaves them
    /// (they were set by another field manager).
    pub remove: Vec<String>,
}

/// Removing what mtls-gate rendered on an Ingress it no longer manages.
///
/// First an apply that owns nothing: the API server removes every field only mtls-gate
/// owned. Annotations another field manager co-owns (the mutating webhook's rendering at
/// creation is recorded under the creator's manager) survive that; those whose value is
/// still exactly the rendered one are then reset by merge patch to what they would be
/// without mtls-gate (removed, or for a Traefik middleware chain: the user's middlewares).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupWrite {
    pub ingress: ObjectKey,
    /// Annotation → (rendered value now on the object, value without mtls-gate).
    pub strip: BTreeMap<String, (String, Option<String>)>,
}

/// What to strip from each of `ingresses` to undo `compiled`'s rendering (see
/// [`CleanupWrite`]). One render of all of them (one analysis per host) tells which values
/// are the rendered ones.
pub fn cleanups_for(
    compiled: &CompiledProfile,
    view: &ClusterView,
    ingresses: &[&IngressView],
) -> Vec<CleanupWrite> {
    let name = compiled.name.as_str();
    let as_managed: Vec<IngressView> = ingresses
        .iter()
        .map(|i| {
            let mut m = (*i).clone();
            m.profile_label = Some(name.to_string());
            m
        })
        .collect();
    let mut desired: HashMap<ObjectKey, BTreeMap<String, String>> = HashMap::new();
    if let Ok(plan) = render_profile(compiled, view, as_managed.iter()) {
        for r in plan.ingresses {
            desired.insert(r.ingress, r.changes.set);
        }
    }
    let dialect = dialect_for(compiled.controller());
    let mut out: Vec<CleanupWrite> = ingresses
        .iter()
        .map(|ing| {
            let mut strip = BTreeMap::new();
            if let (Some(dialect), Some(set)) = (dialect, desired.get(&ing.key)) {
                let (without, _) = dialect.render(&RenderInput {
                    profile: compiled,
                    ingress: ing,
                    role: HostRole::Tls,
                    serves_mtls: false,
                    annotations: &ing.annotations,
                });
                for (k, v) in set {
                    if ing.annotations.get(k) == Some(v) {
                        strip.insert(k.clone(), (v.clone(), without.set.get(k).cloned()));
                    }
                }
            }
            if ing.annotation(RENDERED_BY) == Some(name) {
                strip.insert(RENDERED_BY.to_string(), (name.to_string(), None));
            }
            CleanupWrite {
                ingress: ing.key.clone(),
                strip,
            }
        })
        .collect();
    out.sort_by(|a, b| a.ingress.cmp(&b.ingress));
    out
}

/// One rendered object of a dialect-owned kind to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectWrite {
    pub key: OwnedObjectKey,
    pub manifest: Value,
}

/// What one reconcile of a valid profile will do, and what it found.
#[derive(Debug, Clone)]
pub struct Plan {
    pub ingress_writes: Vec<IngressWrite>,
    /// Ingresses to clean.
    pub cleanups: Vec<CleanupWrite>,
    pub object_writes: Vec<ObjectWrite>,
    pub object_deletes: Vec<OwnedObjectKey>,
    pub verdict: Verdict,
    pub refusals: Vec<Refusal>,
    pub managed: usize,
    /// Rendered objects whose kind cannot be written, by kind.
    pub unwritable: BTreeMap<String, usize>,
}

impl Plan {
    pub fn write_count(&self) -> usize {
        self.ingress_writes.len()
            + self.cleanups.len()
            + self.object_writes.len()
            + self.object_deletes.len()
    }
}

/// FNV-1a, 64 bit: a stable content hash (std's hasher may change between releases).
fn fnv1a(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn owner_reference(profile: &ApiProviderProfile) -> Value {
    json!({
        "apiVersion": ApiProviderProfile::api_version(&()),
        "kind": ApiProviderProfile::kind(&()),
        "name": profile.name_any(),
        "uid": profile.metadata.uid.clone().unwrap_or_default(),
        "controller": true,
    })
}

/// Computes what to write for `profile` against `view`, and the verdict of the world after
/// those writes. Pure: no I/O.
pub fn plan(
    profile: &ApiProviderProfile,
    compiled: &CompiledProfile,
    view: &ClusterView,
    owned: &HashMap<OwnedObjectKey, RenderedMeta>,
    writable: &BTreeSet<ObjectKind>,
) -> Result<Plan, EngineError> {
    let name = compiled.name.as_str();
    let mut managed: Vec<&Arc<IngressView>> = view
        .ingresses()
        .filter(|i| {
            i.profile_label.as_deref() == Some(name)
                && ingress_class_decision(compiled, view, i).counts()
        })
        .collect();
    // Deterministic order of writes, refusals and Events.
    managed.sort_by(|a, b| a.key.cmp(&b.key));
    let rendered = render_profile(compiled, view, managed.iter().map(|i| &***i))?;

    // The view as it will be once the plan is written: evaluating it keeps the status and
    // Events from reporting findings this reconcile is about to fix.
    let mut planned = PlannedObjects::new(view);
    let mut ingress_writes = Vec::new();
    for r in &rendered.ingresses {
        let Some(current) = view.ingress(&r.ingress) else {
            continue;
        };
        if r.changes.is_noop(&current.annotations) && current.annotation(RENDERED_BY) == Some(name)
        {
            continue;
        }
        let mut annotations = r.changes.set.clone();
        annotations.insert(RENDERED_BY.to_string(), name.to_string());
        let mut after = (**current).clone();
        r.changes.apply(&mut after.annotations);
        after
            .annotations
            .insert(RENDERED_BY.to_string(), name.to_string());
        planned.ingresses.insert(r.ingress.clone(), Arc::new(after));
        ingress_writes.push(IngressWrite {
            ingress: r.ingress.clone(),
            annotations,
            remove: r.changes.remove.clone(),
        });
    }

    // Ingresses this profile rendered earlier that it no longer manages.
    let rendered_keys: BTreeSet<&ObjectKey> =
        rendered.ingresses.iter().map(|r| &r.ingress).collect();
    let refused: BTreeSet<&ObjectKey> = rendered.refusals.iter().map(|r| &r.ingress).collect();
    let leaving: Vec<&IngressView> = view
        .ingresses()
        .filter(|i| i.annotation(RENDERED_BY) == Some(name) && !rendered_keys.contains(&i.key))
        .filter(|i| match i.profile_label.as_deref() {
            // Still labelled for us: keep the last rendering of a refused Ingress (removing
            // client auth would only make it worse); clean one that needs no settings any
            // more (no profile host) or whose class the profile no longer considers.
            Some(l) if l == name => {
                !(ingress_class_decision(compiled, view, i).counts() && refused.contains(&i.key))
            }
            // Labelled for another existing profile: its apply replaces ours.
            Some(other) => view.profile(other).is_none(),
            None => true,
        })
        .map(|i| &**i)
        .collect();
    let cleanups = if leaving.is_empty() {
        Vec::new()
    } else {
        cleanups_for(compiled, view, &leaving)
    };

    // Objects of dialect-owned kinds (Traefik TLSOptions and Middlewares).
    let uid = profile.metadata.uid.clone().unwrap_or_default();
    let mut object_writes = Vec::new();
    let mut wanted: BTreeSet<OwnedObjectKey> = BTreeSet::new();
    let mut unwritable: BTreeMap<String, usize> = BTreeMap::new();
    for obj in &rendered.objects {
        let Some(key) = OwnedObjectKey::of_manifest(obj) else {
            continue;
        };
        if !writable.contains(&key.kind) {
            *unwritable.entry(key.kind.to_string()).or_default() += 1;
            continue;
        }
        wanted.insert(key.clone());
        planned.add_rendered(obj);
        let hash = fnv1a(format!("{uid}\n{obj}").as_bytes());
        if owned.get(&key).and_then(|m| m.hash.as_deref()) == Some(hash.as_str()) {
            continue;
        }
        let mut manifest = obj.clone();
        manifest["metadata"]["annotations"] = json!({ RENDERED_HASH: hash });
        manifest["metadata"]["ownerReferences"] = json!([owner_reference(profile)]);
        object_writes.push(ObjectWrite { key, manifest });
    }
    // Labelled objects the dialect renders in place (Gateways): only the fields it owns.
    let mut refusals = rendered.refusals;
    if let Some(dialect) = dialect_for(compiled.controller()) {
        let mut labelled: Vec<&OwnedObjectKey> = owned
            .iter()
            .filter(|(k, m)| {
                m.profile.as_deref() == Some(name)
                    && m.hash.is_none()
                    && writable.contains(&k.kind)
                    && dialect.kinds().contains(&k.kind)
            })
            .map(|(k, _)| k)
            .collect();
        labelled.sort();
        for key in labelled {
            let Lookup::Found(object) = view.object(&key.kind, &key.key) else {
                continue;
            };
            match dialect.render_object(compiled, &key.kind, object) {
                Ok(None) => {}
                Ok(Some(merge)) => {
                    if let Some(after) = dialect.rendered_view(compiled, &key.kind, object) {
                        planned.add_view(key.kind, after);
                    }
                    object_writes.push(ObjectWrite {
                        key: key.clone(),
                        manifest: object_apply_body(key, &merge),
                    });
                }
                Err(message) => refusals.push(Refusal {
                    ingress: key.key.clone(),
                    kind: key.kind.kind,
                    host: None,
                    message,
                }),
            }
        }
    }
    // Only objects the writer created (they carry its hash) are ever deleted: a labelled
    // object the user owns (a Gateway) is rendered in place, never removed.
    let mut object_deletes: Vec<OwnedObjectKey> = owned
        .iter()
        .filter(|(k, m)| {
            m.profile.as_deref() == Some(name)
                && m.hash.is_some()
                && !wanted.contains(*k)
                && writable.contains(&k.kind)
        })
        .map(|(k, _)| k.clone())
        .collect();
    object_deletes.sort();
    object_writes.sort_by(|a, b| a.key.cmp(&b.key));

    let verdict = evaluate(compiled, &planned)?;
    Ok(Plan {
        ingress_writes,
        cleanups,
        object_writes,
        object_deletes,
        verdict,
        refusals,
        managed: managed.len(),
        unwritable,
    })
}

/// The server-side apply body of a labelled object rendered in place: its identity and
/// the fields of the rendering's merge patch (a `null`, which removes a field in a merge
/// patch, is left out: the apply then drops that field if mtls-gate owned it). No owner
/// reference, label or hash: the object is the user's.
pub fn object_apply_body(key: &OwnedObjectKey, merge: &Value) -> Value {
    fn without_nulls(v: &Value) -> Value {
        match v {
            Value::Object(map) => Value::Object(
                map.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), without_nulls(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    let mut body = without_nulls(merge);
    body["apiVersion"] = json!(key.kind.api_version());
    body["kind"] = json!(key.kind.kind);
    body["metadata"] = json!({"name": key.key.name, "namespace": key.key.namespace});
    body
}

/// The part of the view a reconcile of `compiled` reads: Ingresses on its hosts, the ones
/// labelled for it and the ones it rendered (see [`ClusterView::slice_for_hosts`]).
pub fn profile_slice(view: &ClusterView, compiled: &CompiledProfile) -> ClusterView {
    let name = compiled.name.as_str();
    view.slice_for_hosts(compiled.hosts.iter().map(String::as_str), |i| {
        i.profile_label.as_deref() == Some(name) || i.annotation(RENDERED_BY) == Some(name)
    })
}

/// The findings of a plan that become Events.
pub fn findings(plan: &Plan) -> Vec<Finding> {
    plan.verdict
        .violations
        .iter()
        .filter_map(Finding::from_violation)
        .chain(plan.refusals.iter().map(Finding::from_refusal))
        .collect()
}

// ---- Writes -----------------------------------------------------------------------------

fn kube_err(
    action: &'static str,
    kind: &'static str,
    name: impl ToString,
    e: kube::Error,
) -> Error {
    Error::Kube {
        action,
        kind,
        name: name.to_string(),
        source: Box::new(e),
    }
}

fn is_gone(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_not_found())
}

/// The minimal Ingress mtls-gate applies: identity plus the annotations it owns.
pub fn ingress_apply_body(
    key: &ObjectKey,
    annotations: Option<&BTreeMap<String, String>>,
) -> Value {
    let mut metadata = json!({"name": key.name, "namespace": key.namespace});
    if let Some(a) = annotations {
        metadata["annotations"] = json!(a);
    }
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": metadata})
}

impl Context {
    fn ingress_still_cached(&self, key: &ObjectKey) -> bool {
        self.view().ingress(key).is_some()
    }

    async fn apply_ingress(&self, w: &IngressWrite) -> Result<(), Error> {
        self.ensure_leader()?;
        let key = &w.ingress;
        let api: Api<Ingress> = Api::namespaced(self.client.clone(), &key.namespace);
        let body = ingress_apply_body(key, Some(&w.annotations));
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        let patch = Patch::Apply(&body);
        let applied = match retry_conflicts(self.retry, || api.patch(&key.name, &pp, &patch)).await
        {
            Ok(a) => a,
            // Deleted meanwhile (an apply would try to create it and fail validation).
            Err(_) if !self.ingress_still_cached(key) => return Ok(()),
            Err(e) => return Err(kube_err("apply", "Ingress", key, e)),
        };
        self.metrics.write("Ingress", "apply");
        tracing::info!(ingress = %key, annotations = ?w.annotations.keys().collect::<Vec<_>>(), "rendered client-auth settings");
        let leftover: Vec<&String> = w
            .remove
            .iter()
            .filter(|k| applied.annotations().contains_key(*k))
            .collect();
        if !leftover.is_empty() {
            let nulls: serde_json::Map<String, Value> = leftover
                .iter()
                .map(|k| ((*k).clone(), Value::Null))
                .collect();
            if !self.merge_annotations(&api, key, nulls).await? {
                return Ok(());
            }
            tracing::info!(ingress = %key, removed = ?leftover, "removed client-auth annotations set by another field manager");
        }
        Ok(())
    }

    /// Merge-patches annotations (a null value removes the key), retrying conflicts.
    /// `false` when the Ingress is gone.
    async fn merge_annotations(
        &self,
        api: &Api<Ingress>,
        key: &ObjectKey,
        annotations: serde_json::Map<String, Value>,
    ) -> Result<bool, Error> {
        let body = json!({"metadata": {"annotations": annotations}});
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..Default::default()
        };
        let patch = Patch::Merge(&body);
        match retry_conflicts(self.retry, || api.patch(&key.name, &pp, &patch)).await {
            Ok(_) => {}
            Err(e) if is_gone(&e) => return Ok(false),
            Err(e) => return Err(kube_err("patch", "Ingress", key, e)),
        }
        self.metrics.write("Ingress", "patch");
        Ok(true)
    }

    /// Removes every field mtls-gate owns on an Ingress (an apply that owns nothing).
    async fn clean_ingress(&self, w: &CleanupWrite) -> Result<(), Error> {
        self.ensure_leader()?;
        let key = &w.ingress;
        let api: Api<Ingress> = Api::namespaced(self.client.clone(), &key.namespace);
        let body = ingress_apply_body(key, None);
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        let patch = Patch::Apply(&body);
        let applied = match retry_conflicts(self.retry, || api.patch(&key.name, &pp, &patch)).await
        {
            Ok(a) => a,
            Err(_) if !self.ingress_still_cached(key) => return Ok(()),
            Err(e) => return Err(kube_err("apply", "Ingress", key, e)),
        };
        self.metrics.write("Ingress", "apply");
        // Co-owned leftovers that still hold the rendered value.
        let now = applied.annotations();
        let leftovers: serde_json::Map<String, Value> = w
            .strip
            .iter()
            .filter(|(k, (rendered, _))| now.get(*k) == Some(rendered))
            .map(|(k, (_, reset))| (k.clone(), reset.clone().map_or(Value::Null, Value::String)))
            .collect();
        if !leftovers.is_empty() {
            let keys: Vec<&String> = leftovers.keys().collect();
            tracing::info!(ingress = %key, annotations = ?keys, "resetting rendered annotations another field manager co-owns");
            if !self.merge_annotations(&api, key, leftovers).await? {
                return Ok(());
            }
        }
        tracing::info!(ingress = %key, "removed what mtls-gate rendered");
        Ok(())
    }

    /// Cleans an Ingress; when an admission webhook denies it (removing the settings would
    /// break a policy, e.g. leave an MTLS endpoint without client certificates), the
    /// settings stay and the denial is returned as a finding for an Event instead of
    /// failing the reconcile (and, for a deleted profile, blocking its deletion).
    async fn clean_or_report(
        &self,
        profile: &str,
        w: &CleanupWrite,
    ) -> Result<Option<Finding>, Error> {
        let key = &w.ingress;
        match self.clean_ingress(w).await {
            Ok(()) => Ok(None),
            Err(e) if e.is_admission_denial() => {
                tracing::warn!(ingress = %key, error = %e, "admission denied removing the rendered settings; they stay");
                Ok(Some(Finding {
                    key: FindingKey {
                        ingress: key.clone(),
                        reason: CLEANUP_DENIED.to_string(),
                        host: String::new(),
                        path: None,
                        endpoint: None,
                    },
                    note: truncate(
                        &format!(
                            "mtls-gate did not remove the client-auth settings it rendered for profile {profile}, because admission denied the change: {e}. Label the Ingress for a profile again, or change its paths so that it no longer serves MTLS endpoints, then remove the annotations."
                        ),
                        MAX_NOTE_BYTES,
                    ),
                }))
            }
            Err(e) => Err(e),
        }
    }

    async fn apply_object(&self, w: &ObjectWrite) -> Result<(), Error> {
        self.ensure_leader()?;
        let ar = api_resource(&w.key.kind);
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &w.key.key.namespace, &ar);
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        let patch = Patch::Apply(&w.manifest);
        retry_conflicts(self.retry, || api.patch(&w.key.key.name, &pp, &patch))
            .await
            .map_err(|e| kube_err("apply", w.key.kind.kind, &w.key.key, e))?;
        self.metrics.write(w.key.kind.kind, "apply");
        tracing::info!(ingress_namespace = %w.key.key.namespace, object = %w.key.key, kind = %w.key.kind, "applied rendered object");
        Ok(())
    }

    async fn delete_object(&self, key: &OwnedObjectKey) -> Result<(), Error> {
        self.ensure_leader()?;
        let ar = api_resource(&key.kind);
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &key.key.namespace, &ar);
        match api.delete(&key.key.name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if is_gone(&e) => return Ok(()),
            Err(e) => return Err(kube_err("delete", key.kind.kind, &key.key, e)),
        }
        self.metrics.write(key.kind.kind, "delete");
        tracing::info!(object = %key.key, kind = %key.kind, "deleted rendered object the profile no longer renders");
        Ok(())
    }

    async fn patch_status(
        &self,
        profile: &ApiProviderProfile,
        status: ApiProviderProfileStatus,
    ) -> Result<(), Error> {
        let Some(status) = status::diff(profile, status) else {
            return Ok(());
        };
        self.ensure_leader()?;
        let name = profile.name_any();
        let api: Api<ApiProviderProfile> = Api::all(self.client.clone());
        let patch = status::merge_patch(profile.status.as_ref(), &status)?;
        let patch = Patch::Merge(&patch);
        let pp = PatchParams::default();
        retry_conflicts(self.retry, || api.patch_status(&name, &pp, &patch))
            .await
            .map_err(|e| kube_err("patch status of", "ApiProviderProfile", &name, e))?;
        self.metrics.write("ApiProviderProfile", "patch_status");
        tracing::info!(
            violations = status.violations,
            served = status.endpoints_served.as_deref().unwrap_or(""),
            "status updated"
        );
        Ok(())
    }

    /// Publishes the findings not published yet. Failures are logged, not fatal: the
    /// finding stays unpublished and is tried again on the next reconcile.
    async fn publish_findings(&self, profile: &ApiProviderProfile, current: &[Finding]) {
        let name = profile.name_any();
        let reference = profile.object_ref(&());
        for f in self.events.fresh(&name, current) {
            if !self.leadership.is_leader() {
                return;
            }
            match publish(&self.client, &self.recorder, &reference, &f).await {
                Ok(()) => {
                    self.metrics.write("Event", "create");
                    self.events.mark_published(&name, f.key.clone());
                }
                Err(e) => {
                    tracing::warn!(ingress = %f.key.ingress, reason = %f.key.reason, error = %e, "could not publish Event");
                }
            }
        }
    }
}

// ---- Reconcile --------------------------------------------------------------------------

async fn apply(profile: Arc<ApiProviderProfile>, ctx: &Context) -> Result<Action, Error> {
    let name = profile.name_any();
    let compiled = match profile.compile() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "profile is invalid; nothing rendered");
            ctx.metrics.compliance(&name, None);
            ctx.patch_status(
                &profile,
                status::not_evaluable(&profile, "InvalidProfile", e.to_string()),
            )
            .await?;
            return Ok(Action::await_change());
        }
    };
    // A slice of the view, taken under a short read lock: the webhooks and the cache
    // writers never wait for a render or an evaluation.
    let (slice, owned) = {
        let view = ctx.view();
        let slice = profile_slice(&view, &compiled);
        let owned: HashMap<OwnedObjectKey, RenderedMeta> = ctx
            .caches
            .dialect_objects
            .objects
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, m)| m.profile.as_deref() == Some(compiled.name.as_str()))
            .map(|(k, m)| (k.clone(), m.clone()))
            .collect();
        (slice, owned)
    };
    let writable = ctx.caches.dialect_objects.writable_kinds();
    let planned = plan(&profile, &compiled, &slice, &owned, &writable);
    let plan = match planned {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "profile cannot be evaluated");
            ctx.metrics.compliance(&name, None);
            ctx.patch_status(
                &profile,
                status::not_evaluable(&profile, "UnsupportedController", e.to_string()),
            )
            .await?;
            return Ok(Action::await_change());
        }
    };
    if plan.write_count() > 0 {
        tracing::info!(
            ingresses = plan.ingress_writes.len(),
            cleanups = plan.cleanups.len(),
            object_applies = plan.object_writes.len(),
            object_deletes = plan.object_deletes.len(),
            "writing rendered settings"
        );
    }
    // Objects first (Ingresses reference them), stale objects last (after the Ingresses
    // stopped referencing them).
    for w in &plan.object_writes {
        ctx.apply_object(w).await?;
    }
    for w in &plan.ingress_writes {
        ctx.apply_ingress(w)
            .instrument(tracing::info_span!("ingress", ingress = %w.ingress))
            .await?;
    }
    let mut current = findings(&plan);
    let ca_secret = &compiled.spec.client_certificate.ca_secret_name;
    let ca_issues =
        ca_access::check(&ctx.client, &ca_access::uncached(&slice, &name, ca_secret)).await;
    current.extend(ca_access::findings(&slice, &name, &ca_issues));
    for w in &plan.cleanups {
        if let Some(denied) = ctx
            .clean_or_report(&name, w)
            .instrument(tracing::info_span!("ingress", ingress = %w.ingress))
            .await?
        {
            current.push(denied);
        }
    }
    for key in &plan.object_deletes {
        ctx.delete_object(key).await?;
    }
    ctx.publish_findings(&profile, &current).await;
    let mut new_status = status::evaluated(
        &profile,
        &status::Evaluation {
            verdict: &plan.verdict,
            refusals: &plan.refusals,
            managed: plan.managed,
            unwritable: &plan.unwritable,
        },
    );
    new_status.conditions.push(status::ca_secret_condition(
        &ca_issues,
        profile.metadata.generation,
    ));
    ctx.patch_status(&profile, new_status).await?;
    crate::controller::policy_report::sync(&ctx.client, &profile, &plan.verdict).await;
    ctx.metrics
        .compliance(&name, Some(&plan.verdict.violations));
    Ok(Action::requeue(ctx.requeue_interval))
}

/// The profile is being deleted: remove everything it rendered.
async fn cleanup(profile: Arc<ApiProviderProfile>, ctx: &Context) -> Result<Action, Error> {
    let name = profile.name_any();
    let compiled = profile.compile().ok();
    let (slice, objects) = {
        let view = ctx.view();
        let slice = match &compiled {
            Some(c) => profile_slice(&view, c),
            None => view.slice_for_hosts(std::iter::empty(), |i| {
                i.annotation(RENDERED_BY) == Some(name.as_str())
            }),
        };
        let mut objects: Vec<OwnedObjectKey> = ctx
            .caches
            .dialect_objects
            .objects
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            // Only what the writer created (it carries the hash): a labelled Gateway is the
            // user's and stays.
            .filter(|(_, m)| m.profile.as_deref() == Some(name.as_str()) && m.hash.is_some())
            .map(|(k, _)| k.clone())
            .collect();
        objects.sort();
        (slice, objects)
    };
    let leaving: Vec<&IngressView> = slice
        .ingresses()
        .filter(|i| i.annotation(RENDERED_BY) == Some(name.as_str()))
        .filter(|i| match i.profile_label.as_deref() {
            Some(other) if other != name => slice.profile(other).is_none(),
            _ => true,
        })
        .map(|i| &**i)
        .collect();
    let ingresses = match &compiled {
        Some(c) => cleanups_for(c, &slice, &leaving),
        None => {
            let mut v: Vec<CleanupWrite> = leaving
                .iter()
                .map(|i| CleanupWrite {
                    ingress: i.key.clone(),
                    strip: [(RENDERED_BY.to_string(), (name.clone(), None))].into(),
                })
                .collect();
            v.sort_by(|a, b| a.ingress.cmp(&b.ingress));
            v
        }
    };
    tracing::info!(
        ingresses = ingresses.len(),
        rendered_objects = objects.len(),
        "profile deleted; removing what it rendered"
    );
    let mut denied = Vec::new();
    for w in &ingresses {
        if let Some(d) = ctx
            .clean_or_report(&name, w)
            .instrument(tracing::info_span!("ingress", ingress = %w.ingress))
            .await?
        {
            denied.push(d);
        }
    }
    for key in &objects {
        ctx.delete_object(key).await?;
    }
    ctx.events.forget_profile(&name);
    ctx.publish_findings(&profile, &denied).await;
    ctx.events.forget_profile(&name);
    ctx.metrics.forget_profile(&name);
    Ok(Action::await_change())
}

/// Non-leaders evaluate for their metrics only.
fn observe(profile: &ApiProviderProfile, ctx: &Context) {
    let name = profile.name_any();
    let Ok(compiled) = profile.compile() else {
        ctx.metrics.compliance(&name, None);
        return;
    };
    let slice = profile_slice(&ctx.view(), &compiled);
    let verdict = evaluate(&compiled, &slice);
    match verdict {
        Ok(v) => ctx.metrics.compliance(&name, Some(&v.violations)),
        Err(_) => ctx.metrics.compliance(&name, None),
    }
}

/// The reconcile function of the profile [`kube::runtime::Controller`].
pub async fn reconcile(
    profile: Arc<ApiProviderProfile>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let name = profile.name_any();
    let span = tracing::info_span!("reconcile", profile = %name);
    async move {
        let started = Instant::now();
        // The live check's result needs no cache: every replica exports it, from the start.
        if profile.meta().deletion_timestamp.is_none() {
            ctx.metrics.probe(
                &name,
                profile.status.as_ref().and_then(|s| s.probe.as_ref()),
            );
        }
        if !ctx.caches.synced.load(Ordering::Acquire) {
            ctx.metrics.reconciled(&name, "not_synced");
            return Ok(Action::requeue(Duration::from_secs(2)));
        }
        if !ctx.leadership.is_leader() {
            observe(&profile, &ctx);
            ctx.metrics.reconciled(&name, "not_leader");
            return Ok(Action::requeue(ctx.requeue_interval));
        }
        let deleting = profile.meta().deletion_timestamp.is_some();
        let has_finalizer = profile.finalizers().iter().any(|f| f == FINALIZER);
        let adds_finalizer = !deleting && !has_finalizer;
        let removes_finalizer = deleting && has_finalizer;
        let api: Api<ApiProviderProfile> = Api::all(ctx.client.clone());
        let result = finalizer(&api, FINALIZER, profile, |event| async {
            match event {
                FinalizerEvent::Apply(p) => apply(p, &ctx).await,
                FinalizerEvent::Cleanup(p) => cleanup(p, &ctx).await,
            }
        })
        .await;
        let elapsed = started.elapsed().as_secs_f64();
        ctx.metrics
            .reconcile_duration
            .get_or_create(&ProfileLabel {
                profile: name.clone(),
            })
            .observe(elapsed);
        match result {
            Ok(action) => {
                if adds_finalizer {
                    ctx.metrics.write("ApiProviderProfile", "patch");
                }
                if removes_finalizer {
                    ctx.metrics.write("ApiProviderProfile", "patch");
                }
                ctx.failures
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&name);
                ctx.metrics.reconciled(&name, "ok");
                Ok(action)
            }
            Err(e) => Err(Error::from_finalizer(e)),
        }
    }
    .instrument(span)
    .await
}

/// Requeues failed reconciles with an exponential backoff per profile (1 s .. 5 min).
pub fn error_policy(profile: Arc<ApiProviderProfile>, error: &Error, ctx: Arc<Context>) -> Action {
    let name = profile.name_any();
    if matches!(error, Error::NotLeader) {
        ctx.metrics.reconciled(&name, "not_leader");
        return Action::requeue(ctx.requeue_interval);
    }
    let failures = {
        let mut map = ctx.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(name.clone()).or_default();
        *n = n.saturating_add(1);
        *n
    };
    let backoff = Duration::from_secs(1u64 << failures.min(9).saturating_sub(1))
        .min(Duration::from_secs(300));
    ctx.metrics.reconciled(&name, "error");
    ctx.metrics.failed(&name, error.reason());
    tracing::warn!(profile = %name, error = %error, retry_in = ?backoff, "reconcile failed");
    Action::requeue(backoff)
}
