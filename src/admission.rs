//! Admission decisions (design.md §6, §8): pure functions from a request and the cluster
//! view to an outcome. The HTTPS server in [`crate::webhook`] is a thin shell around them.
//!
//! The engine judges the world *after* the change, on the hosts the change touches only, so
//! the work per request does not grow with the cluster. A finding counts against the change
//! when the change introduces it or when it names the changed Ingress; findings that were
//! already there and concern other Ingresses are reported as warnings, so a team can fix a
//! host in several steps.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::networking::v1::Ingress;

use crate::cluster::{
    ClusterView, HostStamp, PlannedObjects, SharedView, SyncedFlag, WithIngressChange,
    WithObjectChange, host_key_covers,
};
use crate::dialect::{self, ObjectKind, SharedObject};
use crate::engine::{self, HostEvaluation};
use crate::model::{IngressView, Lookup, ObjectKey, ObjectSource, RENDERED_BY};
use crate::profile::{ApiProviderProfile, CompiledProfile, Enforcement};
use crate::render;
use crate::violation::{Violation, ViolationCode};

/// What the admission decided, before it is put into an AdmissionResponse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub allowed: bool,
    /// The denial message (what, where, how to fix).
    pub message: Option<String>,
    /// `warnings` for kubectl.
    pub warnings: Vec<String>,
    pub decision: OutcomeKind,
    /// Findings that counted against the change (for metrics and logs).
    pub counted: Vec<Violation>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeKind {
    Allowed,
    Denied,
    /// Admitted with warnings (enforcement Warn).
    Warned,
    /// Admitted silently; recorded (enforcement Audit).
    Audited,
}

impl OutcomeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Allowed => "allowed",
            OutcomeKind::Denied => "denied",
            OutcomeKind::Warned => "warned",
            OutcomeKind::Audited => "audited",
        }
    }
}

impl Outcome {
    fn allow() -> Self {
        Self {
            allowed: true,
            message: None,
            warnings: Vec::new(),
            decision: OutcomeKind::Allowed,
            counted: Vec::new(),
        }
    }
}

/// Most findings listed in one denial message; the rest are counted.
const MAX_LISTED: usize = 5;
/// Most warnings returned to kubectl.
const MAX_WARNINGS: usize = 10;

/// Evaluations of profile hosts as they were before a change, per [`HostStamp`]: the
/// "before" half of every review on a host is computed once per host generation, and the
/// "after" half re-evaluates only what the change can reach
/// ([`engine::evaluate_host_after_change`]). Bounded: it is cleared when full.
#[derive(Debug, Default)]
pub struct BeforeStateCache {
    entries: Mutex<HashMap<ProfileHost, (HostStamp, Arc<HostEvaluation>)>>,
}

/// (profile name, host).
type ProfileHost = (String, String);

/// Most hosts whose before-state is kept (a host evaluation is a few KB to a few hundred).
const MAX_CACHED_HOSTS: usize = 512;

impl BeforeStateCache {
    fn get_or_evaluate(
        &self,
        profile: &CompiledProfile,
        host: &str,
        stamp: HostStamp,
        evaluate: impl FnOnce() -> HostEvaluation,
    ) -> Arc<HostEvaluation> {
        let key = (profile.name.clone(), host.to_string());
        let lock = || {
            self.entries
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some((cached, evaluation)) = lock().get(&key)
            && *cached == stamp
        {
            return evaluation.clone();
        }
        let evaluation = Arc::new(evaluate());
        let mut entries = lock();
        if entries.len() >= MAX_CACHED_HOSTS {
            entries.clear();
        }
        entries.insert(key, (stamp, evaluation.clone()));
        evaluation
    }
}

/// Reviews an Ingress CREATE/UPDATE (`new` set) or DELETE (`new` unset), evaluating both
/// states in full (the reference; see [`review_ingress_cached`]).
pub fn review_ingress(view: &ClusterView, key: &ObjectKey, new: Option<&Ingress>) -> Outcome {
    review_ingress_with(view, key, new, None)
}

/// Like [`review_ingress`], reusing before-states from `cache` and re-evaluating after
/// the change only the targets it can reach. Decides exactly as [`review_ingress`].
pub fn review_ingress_cached(
    view: &ClusterView,
    key: &ObjectKey,
    new: Option<&Ingress>,
    cache: &BeforeStateCache,
) -> Outcome {
    review_ingress_with(view, key, new, Some(cache))
}

/// The rule host keys an Ingress change touches: the old version's and the new one's.
fn touched_host_keys(
    view: &ClusterView,
    key: &ObjectKey,
    new: Option<&IngressView>,
) -> Vec<String> {
    let mut host_keys: Vec<String> = Vec::new();
    if let Some(old) = view.ingress(key) {
        host_keys.extend(old.touched_hosts().map(str::to_string));
    }
    if let Some(new) = new {
        host_keys.extend(new.touched_hosts().map(str::to_string));
    }
    host_keys.sort();
    host_keys.dedup();
    host_keys
}

fn review_ingress_with(
    view: &ClusterView,
    key: &ObjectKey,
    new: Option<&Ingress>,
    cache: Option<&BeforeStateCache>,
) -> Outcome {
    let new_view = new.map(|ing| Arc::new(IngressView::from_ingress(ing, &key.namespace)));
    let host_keys = touched_host_keys(view, key, new_view.as_deref());
    if host_keys.is_empty() {
        return Outcome::allow();
    }

    // An UPDATE that leaves the Ingress's view as it was (labels, backends, annotations
    // mtls-gate does not read: the common UPDATE) leaves the world as it was: the state
    // after is the state before, which the cache already holds.
    let view_unchanged = matches!(
        (view.ingress(key), new_view.as_deref()),
        (Some(old), Some(new)) if **old == *new
    );
    let mut outcome = Outcome::allow();
    let mut denials: Vec<(String, Vec<Violation>)> = Vec::new();
    for profile in view.profiles_touching(&host_keys) {
        let dialect = match engine::profile_dialect(profile) {
            Ok(d) => d,
            Err(e) => {
                outcome.warnings.push(truncate(&e.to_string(), 512));
                continue;
            }
        };
        let hosts: BTreeSet<&String> = profile
            .hosts
            .iter()
            .filter(|h| host_keys.iter().any(|k| host_key_covers(k, h)))
            .collect();
        // Traefik objects the renderer will create for this managed Ingress count as present.
        let rendered = new_view
            .as_ref()
            .filter(|n| n.profile_label.as_deref() == Some(profile.name.as_str()))
            .and_then(|n| render::render_ingress(profile, view, n).ok().flatten())
            .map(|(_, objects)| objects)
            .unwrap_or_default();
        let before_source = with_objects(view, &rendered);
        let change = WithIngressChange {
            base: view,
            key,
            replacement: new_view.clone(),
        };
        let after_source = with_objects(&change, &rendered);
        let mut before: Vec<Violation> = Vec::new();
        let mut after: Vec<Violation> = Vec::new();
        for host in hosts {
            let evaluate_before = || match cache {
                Some(_) => engine::evaluate_host_before_change(
                    profile,
                    dialect,
                    &before_source,
                    host,
                    false,
                ),
                None => engine::evaluate_host(profile, dialect, &before_source, host, false),
            };
            let before_host = match cache {
                // The cached state is the view's; rendered objects make it another state.
                Some(cache) if rendered.is_empty() => {
                    cache.get_or_evaluate(profile, host, view.host_stamp(host), evaluate_before)
                }
                _ => Arc::new(evaluate_before()),
            };
            let after_host = match cache {
                Some(_) if view_unchanged => before_host.clone(),
                Some(_) => Arc::new(engine::evaluate_host_after_change(
                    profile,
                    dialect,
                    &after_source,
                    host,
                    &before_host,
                    &engine::IngressChange {
                        key,
                        old: view.ingress(key).map(|old| &**old),
                        new: new_view.as_deref(),
                    },
                    false,
                )),
                None => Arc::new(engine::evaluate_host(
                    profile,
                    dialect,
                    &after_source,
                    host,
                    false,
                )),
            };
            before.extend(before_host.violations().iter().cloned());
            after.extend(after_host.violations().iter().cloned());
        }
        judge(
            &mut outcome,
            &mut denials,
            profile,
            &before,
            after,
            Some(key),
        );
    }
    if !denials.is_empty() {
        outcome.allowed = false;
        outcome.decision = OutcomeKind::Denied;
        outcome.message = Some(denial_message(&format!("Ingress {key}"), &denials));
    }
    outcome
}

/// Weighs one profile's findings before and after a change: a finding counts against the
/// change when the change introduces it, or when it names the changed Ingress (`changed`);
/// the others are reported as existing. Enforcement decides what counting means.
fn judge(
    outcome: &mut Outcome,
    denials: &mut Vec<(String, Vec<Violation>)>,
    profile: &CompiledProfile,
    before: &[Violation],
    mut after: Vec<Violation>,
    changed: Option<&ObjectKey>,
) {
    after.sort();
    after.dedup();
    let existing: BTreeSet<_> = before.iter().map(Violation::identity).collect();
    // Unreadable objects may be what the change interacts with: they count against every
    // change on the host (fail closed), not only against the change that brought them.
    let (counted, kept): (Vec<Violation>, Vec<Violation>) = after.into_iter().partition(|v| {
        v.code == ViolationCode::ObjectsUnreadable
            || (changed.is_some() && v.ingress.as_ref() == changed)
            || !existing.contains(&v.identity())
    });
    for v in &kept {
        push_warning(
            &mut outcome.warnings,
            format!(
                "existing violation, not caused by this change: {}",
                short(v)
            ),
        );
    }
    if counted.is_empty() {
        return;
    }
    match profile.spec.enforcement {
        Enforcement::Deny => denials.push((profile.name.clone(), counted.clone())),
        Enforcement::Warn => {
            for v in &counted {
                push_warning(
                    &mut outcome.warnings,
                    format!("profile {} (Warn): {}", profile.name, short(v)),
                );
            }
            if outcome.decision == OutcomeKind::Allowed {
                outcome.decision = OutcomeKind::Warned;
            }
        }
        Enforcement::Audit => {
            if outcome.decision == OutcomeKind::Allowed {
                outcome.decision = OutcomeKind::Audited;
            }
        }
    }
    outcome.counted.extend(counted);
}

/// Profiles whose controller reads `kind`, and all their hosts: a change to an object of a
/// dialect-owned kind (a Traefik TLSOption or Middleware) can reach any route of them.
fn profiles_reading<'a>(
    view: &'a ClusterView,
    kind: &'a ObjectKind,
) -> impl Iterator<Item = &'a Arc<CompiledProfile>> + 'a {
    view.profiles()
        .filter(move |p| dialect::profile_reads_kind(p, kind))
}

/// The view a review of a change to an object of `kind` reads: a snapshot of `view`
/// ([`ClusterView`] clones share its maps). When the view holds the kind as absent (its
/// CRD was not served at the last discovery), the object under review proves the CRD was
/// installed since, and other objects of the kind may exist that the view has not read
/// yet: the kind is unreadable for this review (fail closed) until discovery lists it.
pub fn object_review_view(view: &ClusterView, kind: &ObjectKind) -> ClusterView {
    let mut snapshot = view.clone();
    if snapshot.kind_absent(kind) {
        snapshot.set_kind_unreadable(
            *kind,
            "its CRD was installed after mtls-gate last looked it up (API discovery runs every minute), so other objects of the kind are not read yet; retry in a minute",
        );
    }
    snapshot
}

/// Reviews a CREATE/UPDATE (`new` set) or DELETE (`new` unset) of an object of a
/// dialect-owned kind: every profile whose controller reads the kind is judged on all its
/// hosts before and after the change. Before-states come from `cache`; after the change,
/// only the targets the object's routes can reach are re-evaluated
/// ([`engine::evaluate_host_after_object_change`]). Decides exactly as
/// [`review_object_in_full`].
pub fn review_object(
    view: &ClusterView,
    kind: &ObjectKind,
    key: &ObjectKey,
    new: Option<SharedObject>,
    cache: &BeforeStateCache,
) -> Outcome {
    review_object_with(view, kind, key, new, Some(cache))
}

/// [`review_object`] evaluating both states of every host in full: the reference.
pub fn review_object_in_full(
    view: &ClusterView,
    kind: &ObjectKind,
    key: &ObjectKey,
    new: Option<SharedObject>,
) -> Outcome {
    review_object_with(view, kind, key, new, None)
}

fn review_object_with(
    view: &ClusterView,
    kind: &ObjectKind,
    key: &ObjectKey,
    new: Option<SharedObject>,
    cache: Option<&BeforeStateCache>,
) -> Outcome {
    let mut outcome = Outcome::allow();
    let mut denials: Vec<(String, Vec<Violation>)> = Vec::new();
    // The rule host keys the object routes for, before and after: a host none of them
    // covers keeps its state, as its [`ClusterView::host_stamp`] does. A version that
    // routes no host (a Gateway, a policy, an option) may change every host (`None`).
    // An old version the view cannot read may have routed any host.
    let old = match view.object(kind, key) {
        Lookup::Found(old) => Some(Some(old.clone())),
        Lookup::Missing => Some(None),
        Lookup::Unknown => None,
    };
    let route_hosts: Option<Vec<String>> = old.as_ref().and_then(|old| {
        [old.as_ref(), new.as_ref()]
            .into_iter()
            .flatten()
            .map(|version| Some(version.route_hosts()).filter(|hosts| !hosts.is_empty()))
            .try_fold(Vec::new(), |mut all, hosts| {
                all.extend(hosts?);
                Some(all)
            })
    });
    let reaches = |host: &str| {
        route_hosts
            .as_ref()
            .is_none_or(|keys| keys.iter().any(|k| host_key_covers(k, host)))
    };
    let change = WithObjectChange {
        base: view,
        kind: *kind,
        key,
        replacement: new.clone(),
    };
    // The old version, for the dialect to patch host tables with (none when unreadable:
    // the tables are then built in full).
    let old_version = old.flatten();
    // An UPDATE that leaves the object's view as it was (status, labels, fields no dialect
    // reads: the common UPDATE) leaves the world as it was, as the cluster view's
    // generation does ([`ObjectView::same_view`](crate::dialect::ObjectView::same_view)):
    // the state after is the cached state before.
    let view_unchanged = matches!(
        (&old_version, &new),
        (Some(old), Some(new)) if old.same_view(new.as_ref())
    );
    for profile in profiles_reading(view, kind) {
        let dialect = match engine::profile_dialect(profile) {
            Ok(d) => d,
            Err(e) => {
                outcome.warnings.push(truncate(&e.to_string(), 512));
                continue;
            }
        };
        let mut before: Vec<Violation> = Vec::new();
        let mut after: Vec<Violation> = Vec::new();
        for host in &profile.hosts {
            let after_host = match cache {
                Some(cache) => {
                    // The cached state serves Ingress reviews too: keep its probes.
                    let before_host =
                        cache.get_or_evaluate(profile, host, view.host_stamp(host), || {
                            engine::evaluate_host_before_change(profile, dialect, view, host, false)
                        });
                    before.extend(before_host.violations().iter().cloned());
                    if view_unchanged || !reaches(host) {
                        after.extend(before_host.violations().iter().cloned());
                        continue;
                    }
                    engine::evaluate_host_after_object_change(
                        profile,
                        dialect,
                        &change,
                        host,
                        &before_host,
                        kind,
                        key,
                        (old_version.as_ref(), new.as_ref()),
                        false,
                    )
                }
                None => {
                    before.extend(
                        engine::evaluate_host(profile, dialect, view, host, false)
                            .violations()
                            .iter()
                            .cloned(),
                    );
                    engine::evaluate_host(profile, dialect, &change, host, false)
                }
            };
            after.extend(after_host.violations().iter().cloned());
        }
        judge(&mut outcome, &mut denials, profile, &before, after, None);
    }
    if !denials.is_empty() {
        outcome.allowed = false;
        outcome.decision = OutcomeKind::Denied;
        outcome.message = Some(denial_message(&format!("{kind} {key}"), &denials));
    }
    outcome
}

fn with_objects<'a>(
    base: &'a dyn ObjectSource,
    rendered: &[serde_json::Value],
) -> PlannedObjects<'a> {
    let mut planned = PlannedObjects::new(base);
    rendered.iter().for_each(|obj| planned.add_rendered(obj));
    planned
}

fn denial_message(object: &str, denials: &[(String, Vec<Violation>)]) -> String {
    let total: usize = denials.iter().map(|(_, v)| v.len()).sum();
    let mut msg = format!(
        "mtls-gate denied this change to {object}: {total} client-certificate violation(s)"
    );
    let mut listed = 0;
    for (profile, violations) in denials {
        for v in violations {
            if listed == MAX_LISTED {
                break;
            }
            let endpoint = v
                .endpoint
                .map(|e| format!(" endpoint {e}"))
                .unwrap_or_default();
            let path = v
                .path
                .as_ref()
                .map(|p| format!(" path {p}"))
                .unwrap_or_default();
            msg.push_str(&format!(
                "\n- [{}] profile {profile}, host {}{endpoint}{path}: {}",
                v.code, v.host, v.message
            ));
            listed += 1;
        }
    }
    if total > listed {
        msg.push_str(&format!(
            "\n… and {} more; run `mtls-gate check` on the manifests or see `kubectl get approfile -o yaml` for all of them.",
            total - listed
        ));
    }
    msg
}

fn short(v: &Violation) -> String {
    let mut s = format!("[{}] host {}", v.code, v.host);
    if let Some(e) = v.endpoint {
        s.push_str(&format!(" endpoint {e}"));
    }
    if let Some(i) = &v.ingress {
        s.push_str(&format!(" ingress {i}"));
    }
    if let Some(p) = &v.path {
        s.push_str(&format!(" path {p}"));
    }
    s
}

fn push_warning(warnings: &mut Vec<String>, w: String) {
    if warnings.len() < MAX_WARNINGS {
        warnings.push(truncate(&w, 512));
    } else if warnings.len() == MAX_WARNINGS {
        warnings.push("more findings omitted; see `kubectl get approfile -o yaml`".to_string());
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Reviews an ApiProviderProfile CREATE/UPDATE: an invalid spec is denied with the field
/// and the reason; a valid one is admitted, with the cluster's current findings as warnings
/// (a new profile must be installable on a cluster that is not yet compliant).
pub fn review_profile(view: &ClusterView, profile: &ApiProviderProfile) -> Outcome {
    let compiled = match profile.compile() {
        Ok(p) => p,
        Err(e) => {
            return Outcome {
                allowed: false,
                message: Some(format!(
                    "invalid ApiProviderProfile {}: {e}",
                    profile.metadata.name.as_deref().unwrap_or("")
                )),
                warnings: Vec::new(),
                decision: OutcomeKind::Denied,
                counted: Vec::new(),
            };
        }
    };
    let mut outcome = Outcome::allow();
    match engine::evaluate(&compiled, view) {
        Ok(verdict) => {
            for v in &verdict.violations {
                push_warning(
                    &mut outcome.warnings,
                    format!("current state: {}", short(v)),
                );
            }
        }
        Err(e) => push_warning(&mut outcome.warnings, e.to_string()),
    }
    outcome
}

/// The JSON Patch that renders a managed Ingress's client-auth annotations, or `None` when
/// the Ingress is not managed or already rendered. A refusal becomes a warning: the
/// validating webhook then explains what is wrong.
pub fn mutate_ingress(
    view: &ClusterView,
    key: &ObjectKey,
    ingress: &Ingress,
) -> Result<Option<json_patch::Patch>, String> {
    let ing_view = IngressView::from_ingress(ingress, &key.namespace);
    let Some(profile_name) = ing_view.profile_label.as_deref() else {
        return Ok(None);
    };
    let Some(profile) = view.profile(profile_name) else {
        return Err(format!(
            "Ingress {key} is labelled {}={profile_name}, but no ApiProviderProfile {profile_name} exists; nothing was rendered",
            crate::model::PROFILE_LABEL
        ));
    };
    let rendered = render::render_ingress(profile, view, &ing_view).map_err(|r| r.message)?;
    let Some((rendering, _)) = rendered else {
        return Ok(None);
    };
    let current: BTreeMap<String, String> =
        ingress.metadata.annotations.clone().unwrap_or_default();
    let mut changes = rendering.changes;
    // The marker the controller writes too: with it, the controller finds the object
    // rendered and does not write it again right after the create.
    changes
        .set
        .insert(RENDERED_BY.to_string(), profile.name.clone());
    if changes.is_noop(&current) {
        return Ok(None);
    }
    Ok(Some(annotation_patch(
        ingress.metadata.annotations.is_some(),
        &changes,
    )))
}

/// The JSON Patch that renders a managed object of a dialect-owned kind (a Gateway labelled
/// `mtls-gate.io/profile`), or `None` when it is not managed, its kind is not rendered, or it
/// is already rendered. Like [`mutate_ingress`], a refusal is returned as the reason.
pub fn mutate_object(
    view: &ClusterView,
    object: &serde_json::Value,
    namespace: &str,
) -> Result<Option<json_patch::Patch>, String> {
    let Some(rendered) = crate::render::render_labelled_object(view, object, namespace)? else {
        return Ok(None);
    };
    let patch = json_patch::diff(object, &rendered);
    Ok((!patch.0.is_empty()).then_some(patch))
}

/// JSON Patch operations for annotation changes (RFC 6901 escaping of `/` and `~`).
pub fn annotation_patch(
    has_annotations: bool,
    changes: &crate::dialect::AnnotationChanges,
) -> json_patch::Patch {
    use json_patch::{AddOperation, PatchOperation, RemoveOperation};
    let pointer = |k: &str| {
        format!(
            "/metadata/annotations/{}",
            k.replace('~', "~0").replace('/', "~1")
        )
    };
    let mut ops = Vec::new();
    if !has_annotations {
        let map: serde_json::Map<String, serde_json::Value> = changes
            .set
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        ops.push(PatchOperation::Add(AddOperation {
            path: "/metadata/annotations".parse().unwrap_or_default(),
            value: serde_json::Value::Object(map),
        }));
        return json_patch::Patch(ops);
    }
    for k in &changes.remove {
        if let Ok(path) = pointer(k).parse() {
            ops.push(PatchOperation::Remove(RemoveOperation { path }));
        }
    }
    for (k, v) in &changes.set {
        if let Ok(path) = pointer(k).parse() {
            ops.push(PatchOperation::Add(AddOperation {
                path,
                value: serde_json::Value::String(v.clone()),
            }));
        }
    }
    json_patch::Patch(ops)
}

/// The engine-backed [`crate::webhook::AdmissionHandler`]: reads the shared cluster view
/// (the controller's caches, or manifests in standalone mode) and answers reviews.
pub struct ClusterAdmission {
    view: SharedView,
    ready: SyncedFlag,
    excluded_namespaces: Vec<String>,
    before_states: BeforeStateCache,
}

impl ClusterAdmission {
    pub fn new(view: SharedView, ready: SyncedFlag, excluded_namespaces: Vec<String>) -> Self {
        Self {
            view,
            ready,
            excluded_namespaces,
            before_states: BeforeStateCache::default(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, ClusterView> {
        // A writer that panicked leaves consistent data behind (every update is one insert
        // or remove); keep serving rather than failing every admission.
        self.view
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The view as it is now, for one review: taken under the read lock in O(1) (its maps
    /// are persistent and shared), then read without any lock, so watch updates never
    /// wait for a review and a review never sees half an update.
    fn snapshot(&self) -> ClusterView {
        self.read().clone()
    }

    fn excluded(&self, namespace: Option<&str>) -> bool {
        namespace.is_some_and(|ns| self.excluded_namespaces.iter().any(|e| e == ns))
    }
}

use crate::webhook::{AdmissionHandler, Decision, Reviewed};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};

fn is_ingress(req: &AdmissionRequest<DynamicObject>) -> bool {
    req.kind.group == "networking.k8s.io" && req.kind.kind == "Ingress"
}

fn is_profile(req: &AdmissionRequest<DynamicObject>) -> bool {
    req.kind.group == "mtls-gate.io" && req.kind.kind == "ApiProviderProfile"
}

/// The request's object as a typed resource; `None` when absent (DELETE).
fn typed_object<T: serde::de::DeserializeOwned>(
    obj: Option<&DynamicObject>,
) -> Result<Option<T>, String> {
    let Some(obj) = obj else { return Ok(None) };
    let value = serde_json::to_value(obj).map_err(|e| e.to_string())?;
    // As `manifest::typed`: read without tracking the path (a segment allocated per field,
    // a tenth of a review), and read a failing object again with it to name the field.
    T::deserialize(&value).map(Some).or_else(|_| {
        serde_path_to_error::deserialize(&value)
            .map(Some)
            .map_err(|e| format!("{}: {}", e.path(), e.inner()))
    })
}

fn respond(req: &AdmissionRequest<DynamicObject>, outcome: Outcome) -> Reviewed {
    let mut response = AdmissionResponse::from(req);
    if !outcome.warnings.is_empty() {
        response.warnings = Some(outcome.warnings);
    }
    let decision = match outcome.decision {
        OutcomeKind::Allowed => Decision::Allowed,
        OutcomeKind::Denied => Decision::Denied,
        OutcomeKind::Warned => Decision::Warned,
        OutcomeKind::Audited => Decision::Audited,
    };
    for v in &outcome.counted {
        tracing::info!(
            decision = decision.as_str(),
            profile = %v.profile,
            ingress = %v.ingress.as_ref().map(ToString::to_string).unwrap_or_default(),
            host = %v.host,
            path = v.path.as_deref().unwrap_or(""),
            endpoint = v.endpoint.unwrap_or(""),
            code = v.code.as_str(),
            "admission finding"
        );
    }
    if !outcome.allowed {
        response = response.deny(outcome.message.unwrap_or_default());
    }
    Reviewed::new(response, decision)
}

/// The mutation response for a rendering outcome: the patch, nothing, or a warning (a
/// mutation never blocks; the validating webhook explains what is wrong).
fn patched(
    req: &AdmissionRequest<DynamicObject>,
    outcome: Result<Option<json_patch::Patch>, String>,
) -> Reviewed {
    match outcome {
        Ok(None) => Reviewed::allow(req),
        Ok(Some(patch)) => match AdmissionResponse::from(req).with_patch(patch) {
            Ok(response) => Reviewed::new(response, Decision::Patched),
            Err(e) => {
                let mut response = AdmissionResponse::from(req);
                response.warnings =
                    Some(vec![format!("mtls-gate could not encode its patch: {e}")]);
                Reviewed::new(response, Decision::Allowed)
            }
        },
        Err(message) => {
            let mut response = AdmissionResponse::from(req);
            response.warnings = Some(vec![truncate(
                &format!("mtls-gate did not render: {message}"),
                1024,
            )]);
            Reviewed::new(response, Decision::Warned)
        }
    }
}

fn deny(req: &AdmissionRequest<DynamicObject>, message: String) -> Reviewed {
    Reviewed::new(AdmissionResponse::from(req).deny(message), Decision::Denied)
}

impl AdmissionHandler for ClusterAdmission {
    fn validate(&self, req: &AdmissionRequest<DynamicObject>) -> Reviewed {
        if is_ingress(req) {
            if self.excluded(req.namespace.as_deref()) || req.operation == Operation::Connect {
                return Reviewed::allow(req);
            }
            let new: Option<Ingress> = match req.operation {
                Operation::Delete => None,
                _ => match typed_object(req.object.as_ref()) {
                    Ok(Some(ing)) => Some(ing),
                    Ok(None) => {
                        return deny(req, "the AdmissionReview carries no Ingress object".into());
                    }
                    Err(e) => return deny(req, format!("the Ingress cannot be read: {e}")),
                },
            };
            let namespace = req.namespace.clone().unwrap_or_else(|| "default".into());
            let name = if req.name.is_empty() {
                new.as_ref()
                    .and_then(|i| i.metadata.name.clone())
                    .unwrap_or_default()
            } else {
                req.name.clone()
            };
            let key = ObjectKey::new(namespace, name);
            let outcome =
                review_ingress_cached(&self.snapshot(), &key, new.as_ref(), &self.before_states);
            return respond(req, outcome);
        }
        if let Some((_, owner, kind)) = dialect::kind_owner(
            &format!("{}/{}", req.kind.group, req.kind.version),
            &req.kind.kind,
        ) {
            if self.excluded(req.namespace.as_deref()) || req.operation == Operation::Connect {
                return Reviewed::allow(req);
            }
            let namespace = req.namespace.clone().unwrap_or_default();
            let new = match (&req.operation, req.object.as_ref()) {
                (Operation::Delete, _) => None,
                (_, None) => {
                    return deny(req, format!("the AdmissionReview carries no {kind} object"));
                }
                (_, Some(obj)) => {
                    let reduced = serde_json::to_value(obj)
                        .map_err(|e| e.to_string())
                        .and_then(|v| {
                            owner
                                .reduce(kind, &v, &namespace)
                                .map_err(|e| e.to_string())
                        });
                    match reduced {
                        Ok(view) => Some(view),
                        Err(e) => return deny(req, format!("the {kind} cannot be read: {e}")),
                    }
                }
            };
            let name = match &new {
                Some(v) if req.name.is_empty() => v.key().name.clone(),
                _ => req.name.clone(),
            };
            let key = ObjectKey::new(namespace, name);
            let snapshot = object_review_view(&self.read(), kind);
            return respond(
                req,
                review_object(&snapshot, kind, &key, new, &self.before_states),
            );
        }
        if is_profile(req) && matches!(req.operation, Operation::Create | Operation::Update) {
            return match typed_object::<ApiProviderProfile>(req.object.as_ref()) {
                Ok(Some(profile)) => respond(req, review_profile(&self.snapshot(), &profile)),
                Ok(None) => deny(
                    req,
                    "the AdmissionReview carries no ApiProviderProfile object".into(),
                ),
                Err(e) => deny(req, format!("invalid ApiProviderProfile: {e}")),
            };
        }
        Reviewed::allow(req)
    }

    fn mutate(&self, req: &AdmissionRequest<DynamicObject>) -> Reviewed {
        if !matches!(req.operation, Operation::Create | Operation::Update)
            || self.excluded(req.namespace.as_deref())
        {
            return Reviewed::allow(req);
        }
        if !is_ingress(req) {
            // Objects of dialect-owned kinds a profile renders (labelled Gateways).
            let Some(object) = req
                .object
                .as_ref()
                .and_then(|o| serde_json::to_value(o).ok())
            else {
                return Reviewed::allow(req);
            };
            let namespace = req.namespace.clone().unwrap_or_else(|| "default".into());
            let outcome = mutate_object(&self.snapshot(), &object, &namespace);
            return patched(req, outcome);
        }
        let ing: Ingress = match typed_object(req.object.as_ref()) {
            Ok(Some(ing)) => ing,
            // The validating webhook explains unreadable objects; mutation never blocks.
            _ => return Reviewed::allow(req),
        };
        let namespace = req.namespace.clone().unwrap_or_else(|| "default".into());
        let key = ObjectKey::new(
            namespace,
            ing.metadata
                .name
                .clone()
                .unwrap_or_else(|| req.name.clone()),
        );
        patched(req, mutate_ingress(&self.snapshot(), &key, &ing))
    }

    fn view_ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::Acquire)
    }

    fn cached_ingresses(&self) -> usize {
        self.read().ingress_count()
    }
}
