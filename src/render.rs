//! The renderer: the client-auth settings a profile's managed Ingresses must carry.
//!
//! One renderer serves `mtls-gate render`, the mutating webhook and the controller. It is
//! declarative: a host's role comes from where the profile says endpoints live, and an
//! Ingress's need for the gate from which endpoints its paths serve. It refuses, with the
//! paths to move, when no settings can make an Ingress compliant.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::catalog::Scheme;
use crate::cluster::{ClusterView, WithIngressChange, host_key_covers};
use crate::dialect::{
    AnnotationChanges, HostRole, INGRESS_KIND, RenderInput, RenderedObject, dialect_for,
};
use crate::engine::{EngineError, host_table, host_targets, serving_routes};
use crate::model::{IngressView, ObjectKey, ObjectSource};
use crate::paths::RouteLiterals;
use crate::profile::CompiledProfile;

/// The settings for one managed Ingress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IngressRendering {
    pub ingress: ObjectKey,
    pub role: HostRole,
    pub changes: AnnotationChanges,
}

/// Why an Ingress cannot be made compliant, and what to move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// The object refused: an Ingress, or (rendered in place) a dialect's object such as a
    /// Gateway; `kind` says which.
    pub ingress: ObjectKey,
    /// The kind of the object refused (`Ingress`, `Gateway`).
    pub kind: &'static str,
    pub host: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RenderPlan {
    pub profile: String,
    pub ingresses: Vec<IngressRendering>,
    /// Extra objects (Traefik TLSOptions and Middlewares), deduplicated.
    pub objects: Vec<RenderedObject>,
    pub refusals: Vec<Refusal>,
    /// Route objects of dialect-owned kinds (Traefik IngressRoutes) that serve endpoints of
    /// the profile: the renderer writes Ingress annotations only and never changes them.
    pub unrendered: Vec<UnrenderedRoute>,
    /// Labelled objects of dialect-owned kinds (Gateways) that cannot be rendered: why.
    pub object_refusals: Vec<String>,
}

/// A route object serving endpoints of a profile on a host, left as it is by the renderer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnrenderedRoute {
    pub kind: &'static str,
    pub object: ObjectKey,
    pub host: String,
}

/// The route objects (not Ingresses) that serve some endpoint of `profile`.
fn unrendered_routes(
    profile: &CompiledProfile,
    objects: &dyn ObjectSource,
) -> Vec<UnrenderedRoute> {
    let mut out = BTreeSet::new();
    let Some(dialect) = dialect_for(profile.controller()) else {
        return Vec::new();
    };
    for host in &profile.hosts {
        let Some(table) = host_table(profile, dialect, objects, host) else {
            continue;
        };
        let literals = RouteLiterals::new(table.routes.iter().map(|r| &r.matcher));
        for target in host_targets(profile, host) {
            for i in serving_routes(dialect, &table, &literals, &target) {
                let source = &table.routes[i].source;
                if !source.is_ingress() {
                    out.insert((source.kind, source.key.clone(), host.clone()));
                }
            }
        }
    }
    out.into_iter()
        .map(|(kind, object, host)| UnrenderedRoute { kind, object, host })
        .collect()
}

/// The role the profile gives a host: which schemes its endpoints need.
pub fn host_role(profile: &CompiledProfile, host: &str) -> Option<HostRole> {
    let mut schemes: BTreeSet<Scheme> = profile
        .endpoints
        .iter()
        .filter(|e| e.host == host && !e.default_alias)
        .map(|e| e.row.scheme)
        .collect();
    schemes.extend(
        profile
            .unlisted
            .iter()
            .filter(|s| s.host == host)
            .map(|s| s.scheme),
    );
    match (
        schemes.contains(&Scheme::Mtls),
        schemes.contains(&Scheme::Tls),
    ) {
        (true, true) => Some(HostRole::Mixed),
        (true, false) => Some(HostRole::Mtls),
        (false, true) => Some(HostRole::Tls),
        (false, false) => None,
    }
}

/// Which endpoints each path serves on a host: path → (scheme → endpoints).
type PathSchemes = BTreeMap<String, BTreeMap<Scheme, BTreeSet<String>>>;

/// For every Ingress with routes on `host`: which endpoints each of its paths serves.
/// One analysis of the host serves all its Ingresses (the route table and the winners of
/// every endpoint instance do not depend on which Ingress is being rendered).
fn served_by_paths_all(
    profile: &CompiledProfile,
    objects: &dyn ObjectSource,
    host: &str,
) -> HashMap<ObjectKey, PathSchemes> {
    let mut out: HashMap<ObjectKey, PathSchemes> = HashMap::new();
    let Some(dialect) = dialect_for(profile.controller()) else {
        return out;
    };
    let Some(table) = host_table(profile, dialect, objects, host) else {
        return out;
    };
    let literals = RouteLiterals::new(table.routes.iter().map(|r| &r.matcher));
    for target in host_targets(profile, host) {
        for i in serving_routes(dialect, &table, &literals, &target) {
            let r = &table.routes[i];
            if !r.source.is_ingress() {
                continue;
            }
            out.entry(r.source.key.clone())
                .or_default()
                .entry(r.path.clone())
                .or_default()
                .entry(target.scheme)
                .or_default()
                .insert(target.label.to_string());
        }
    }
    out
}

/// Per-host analyses, computed on first use and shared by the Ingresses of one render.
#[derive(Default)]
struct HostAnalyses {
    hosts: HashMap<String, HashMap<ObjectKey, PathSchemes>>,
}

impl HostAnalyses {
    fn served_by_paths(
        &mut self,
        profile: &CompiledProfile,
        objects: &dyn ObjectSource,
        host: &str,
        ingress: &ObjectKey,
    ) -> PathSchemes {
        self.hosts
            .entry(host.to_string())
            .or_insert_with(|| served_by_paths_all(profile, objects, host))
            .get(ingress)
            .cloned()
            .unwrap_or_default()
    }
}

/// Renders the settings of every managed Ingress of `profile` in `objects`.
pub fn render_profile<'a>(
    profile: &CompiledProfile,
    objects: &dyn ObjectSource,
    managed: impl IntoIterator<Item = &'a IngressView>,
) -> Result<RenderPlan, EngineError> {
    let dialect = crate::engine::profile_dialect(profile)?;
    let mut plan = RenderPlan {
        profile: profile.name.clone(),
        ..Default::default()
    };
    let mut seen_objects = BTreeSet::new();
    let mut analyses = HostAnalyses::default();
    for ingress in managed {
        if ingress.profile_label.as_deref() != Some(profile.name.as_str())
            || !crate::engine::ingress_class_decision(profile, objects, ingress).counts()
        {
            continue;
        }
        match render_one(profile, dialect, objects, ingress, &mut analyses) {
            Ok(Some((rendering, extra))) => {
                for obj in extra {
                    let id = (
                        obj["kind"].as_str().unwrap_or("").to_string(),
                        obj["metadata"]["namespace"]
                            .as_str()
                            .unwrap_or("")
                            .to_string(),
                        obj["metadata"]["name"].as_str().unwrap_or("").to_string(),
                    );
                    if seen_objects.insert(id) {
                        plan.objects.push(obj);
                    }
                }
                plan.ingresses.push(rendering);
            }
            Ok(None) => {}
            Err(refusal) => plan.refusals.push(refusal),
        }
    }
    plan.unrendered = unrendered_routes(profile, objects);
    Ok(plan)
}

/// A labelled object of a dialect-owned kind (a Gateway labelled `mtls-gate.io/profile`) as
/// its profile's dialect renders it ([`crate::dialect::Dialect::render_object`]): `None`
/// when it is not labelled, its kind is not rendered, or it already carries the rendering;
/// `Err` with the reason when it cannot be rendered. The mutating webhook turns the result
/// into a JSON Patch, `mtls-gate render` prints it.
pub fn render_labelled_object(
    view: &ClusterView,
    object: &serde_json::Value,
    namespace: &str,
) -> Result<Option<serde_json::Value>, String> {
    let Some(profile_name) = object["metadata"]["labels"][crate::model::PROFILE_LABEL].as_str()
    else {
        return Ok(None);
    };
    let Some((controller, owner, kind)) = crate::dialect::kind_owner(
        object["apiVersion"].as_str().unwrap_or(""),
        object["kind"].as_str().unwrap_or(""),
    ) else {
        return Ok(None);
    };
    let what = format!(
        "{kind} {namespace}/{}",
        object["metadata"]["name"].as_str().unwrap_or("")
    );
    let Some(profile) = view.profile(profile_name) else {
        return Err(format!(
            "{what} is labelled {}={profile_name}, but no ApiProviderProfile {profile_name} exists; nothing was rendered",
            crate::model::PROFILE_LABEL
        ));
    };
    // A kind several dialects read (ConfigMap) is the profile's controller's when it reads it.
    let (controller, owner, kind) = crate::dialect::owned_kinds()
        .find(|(c, _, k)| *c == profile.controller() && *k == kind)
        .unwrap_or((controller, owner, kind));
    if profile.controller() != controller {
        return Err(format!(
            "{what} is labelled {}={profile_name}, but that profile's ingressController is {}; nothing was rendered",
            crate::model::PROFILE_LABEL,
            profile.controller().as_str()
        ));
    }
    let reduced = owner
        .reduce(kind, object, namespace)
        .map_err(|e| format!("{what} cannot be read: {e}"))?;
    let Some(merge) = owner.render_object(profile, kind, &reduced)? else {
        return Ok(None);
    };
    let mut rendered = object.clone();
    json_patch::merge(&mut rendered, &merge);
    Ok(Some(rendered))
}

/// Renders one managed Ingress against the view (used directly by the mutating webhook with
/// the incoming object overlaid on the cluster view).
pub fn render_ingress(
    profile: &CompiledProfile,
    objects: &dyn ObjectSource,
    ingress: &IngressView,
) -> Result<Option<(IngressRendering, Vec<RenderedObject>)>, Refusal> {
    let Some(dialect) = dialect_for(profile.controller()) else {
        return Err(Refusal {
            ingress: ingress.key.clone(),
            kind: INGRESS_KIND,
            host: None,
            message: format!(
                "spec.ingressController {} cannot be rendered by this version",
                profile.controller()
            ),
        });
    };
    let overlay = WithIngressChange {
        base: objects,
        key: &ingress.key,
        replacement: Some(std::sync::Arc::new(ingress.clone())),
    };
    render_one(
        profile,
        dialect,
        &overlay,
        ingress,
        &mut HostAnalyses::default(),
    )
}

fn render_one(
    profile: &CompiledProfile,
    dialect: &dyn crate::dialect::Dialect,
    objects: &dyn ObjectSource,
    ingress: &IngressView,
    analyses: &mut HostAnalyses,
) -> Result<Option<(IngressRendering, Vec<RenderedObject>)>, Refusal> {
    let refuse = |host: Option<&str>, message: String| Refusal {
        ingress: ingress.key.clone(),
        kind: INGRESS_KIND,
        host: host.map(str::to_string),
        message,
    };
    // The profile hosts this Ingress's rules serve, with their roles.
    let mut roles: BTreeMap<String, HostRole> = BTreeMap::new();
    for key in ingress.hosts() {
        for host in profile.hosts.iter().filter(|h| host_key_covers(key, h)) {
            if let Some(role) = host_role(profile, host) {
                roles.insert(host.clone(), role);
            }
        }
    }
    let Some(&role) = roles.values().next() else {
        return Ok(None);
    };
    if roles.values().any(|r| *r != role) {
        let listing: Vec<String> = roles.iter().map(|(h, r)| format!("{h} ({r:?})")).collect();
        return Err(refuse(
            None,
            format!(
                "Ingress {} has rules for hosts with different client-certificate roles ({}); client-auth settings apply to the whole Ingress. Split it into one Ingress per host role.",
                ingress.key,
                listing.join(", ")
            ),
        ));
    }
    let mut serves_mtls = false;
    for (host, host_role) in &roles {
        if *host_role == HostRole::Mixed && profile.gate_url().is_none() {
            let (mtls, tls) = schemes_on_host(profile, host);
            return Err(refuse(
                Some(host),
                format!(
                    "host {host} serves MTLS endpoints ({mtls}) and TLS endpoints ({tls}) according to the profile, and spec.gate is not set: one host cannot both require and not require client certificates. Move the TLS endpoints to another host (split host, RFC 8705 mtls_endpoint_aliases), or set spec.gate for a single-host layout."
                ),
            ));
        }
        // Which endpoints each path serves decides only for a host that serves both
        // schemes (behind the gate); on a single-scheme host the role alone decides, and
        // the analysis (every endpoint of the host over its whole route table) is skipped.
        if *host_role != HostRole::Mixed {
            continue;
        }
        let by_path = analyses.served_by_paths(profile, objects, host, &ingress.key);
        let mixed_paths: Vec<String> = by_path
            .iter()
            .filter(|(_, s)| s.len() > 1)
            .map(|(p, s)| {
                format!(
                    "{p} (MTLS: {}; TLS: {})",
                    join(&s[&Scheme::Mtls]),
                    join(&s[&Scheme::Tls])
                )
            })
            .collect();
        let ingress_mtls: Vec<&String> = by_path
            .iter()
            .filter(|(_, s)| s.contains_key(&Scheme::Mtls))
            .map(|(p, _)| p)
            .collect();
        let ingress_tls: Vec<&String> = by_path
            .iter()
            .filter(|(_, s)| s.contains_key(&Scheme::Tls))
            .map(|(p, _)| p)
            .collect();
        if !mixed_paths.is_empty() {
            return Err(refuse(
                Some(host),
                format!(
                    "on host {host}, path(s) {} of Ingress {} serve both MTLS and TLS endpoints, so no per-path setting fits. Replace them with specific paths that each serve one scheme.",
                    mixed_paths.join(", "),
                    ingress.key
                ),
            ));
        }
        if !ingress_mtls.is_empty() && !ingress_tls.is_empty() {
            return Err(refuse(
                Some(host),
                format!(
                    "Ingress {} serves MTLS endpoints on paths {} and TLS endpoints on paths {} of host {host}; the gate applies to every path of an Ingress. Move the TLS paths ({}) to a separate Ingress for the same host.",
                    ingress.key,
                    join_refs(&ingress_mtls),
                    join_refs(&ingress_tls),
                    join_refs(&ingress_tls)
                ),
            ));
        }
        serves_mtls |= !ingress_mtls.is_empty();
    }
    let input = RenderInput {
        profile,
        ingress,
        role,
        serves_mtls,
        annotations: &ingress.annotations,
    };
    let (changes, objects) = dialect.render(&input);
    // A user's own external auth must not be silently replaced by the gate.
    if role == HostRole::Mixed && serves_mtls {
        for (key, value) in &changes.set {
            if let Some(current) = ingress.annotations.get(key)
                && key.ends_with("/auth-url")
                && current != value
            {
                return Err(refuse(
                    None,
                    format!(
                        "Ingress {} already sets {key}={current:?}; the gate needs that annotation for its MTLS paths. Remove it or move the MTLS paths to an Ingress without external auth.",
                        ingress.key
                    ),
                ));
            }
        }
    }
    Ok(Some((
        IngressRendering {
            ingress: ingress.key.clone(),
            role,
            changes,
        },
        objects,
    )))
}

fn schemes_on_host(profile: &CompiledProfile, host: &str) -> (String, String) {
    let pick = |scheme: Scheme| {
        let names: Vec<&str> = profile
            .endpoints
            .iter()
            .filter(|e| e.host == host && e.row.scheme == scheme)
            .map(|e| e.row.endpoint)
            .collect();
        let mut names = names;
        names.dedup();
        if names.len() > 4 {
            format!("{} and {} more", names[..4].join(", "), names.len() - 4)
        } else {
            names.join(", ")
        }
    };
    (pick(Scheme::Mtls), pick(Scheme::Tls))
}

/// A readable list: at most six names, then a count.
fn join(set: &BTreeSet<String>) -> String {
    let names: Vec<&str> = set.iter().map(String::as_str).collect();
    if names.len() > 6 {
        format!("{} and {} more", names[..6].join(", "), names.len() - 6)
    } else {
        names.join(", ")
    }
}

fn join_refs(v: &[&String]) -> String {
    v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

impl AnnotationChanges {
    /// Whether applying the changes to `annotations` changes nothing.
    pub fn is_noop(&self, annotations: &BTreeMap<String, String>) -> bool {
        self.set.iter().all(|(k, v)| annotations.get(k) == Some(v))
            && self.remove.iter().all(|k| !annotations.contains_key(k))
    }

    /// Applies the changes to a full annotation map.
    pub fn apply(&self, annotations: &mut BTreeMap<String, String>) {
        for k in &self.remove {
            annotations.remove(k);
        }
        for (k, v) in &self.set {
            annotations.insert(k.clone(), v.clone());
        }
    }
}
