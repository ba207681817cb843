//! Compact views of the Kubernetes objects the engine reads.
//!
//! The engine never sees full API objects: Ingresses and Secrets are reduced here, the kinds
//! a controller owns by its dialect ([`crate::dialect::Dialect::reduce`]), to the fields that
//! decide routing and client authentication. That keeps the controller's
//! caches near 1-3 KB per Ingress and makes the engine independent of where objects come
//! from (manifest files, AdmissionReviews or reflectors).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;
use serde::Serialize;

use crate::dialect::{ObjectKind, SharedObject};

/// Label that opts an Ingress into rendering by a profile.
pub const PROFILE_LABEL: &str = "mtls-gate.io/profile";

/// Marker annotation on every Ingress mtls-gate has rendered (by the controller or the
/// mutating webhook, which write the same so a create costs no follow-up write): the
/// profile that rendered it, so cleanup knows what to undo.
pub const RENDERED_BY: &str = "mtls-gate.io/rendered-by";

/// `namespace/name` of a namespaced object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key of a manifest or admission object (as JSON); `default_namespace` for one
    /// without a namespace, as kubectl applies it.
    pub fn of_manifest(value: &serde_json::Value, default_namespace: &str) -> Self {
        let meta = &value["metadata"];
        Self::new(
            meta["namespace"].as_str().unwrap_or(default_namespace),
            meta["name"].as_str().unwrap_or(""),
        )
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl Serialize for ObjectKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Kubernetes `pathType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum PathType {
    Exact,
    Prefix,
    ImplementationSpecific,
}

impl PathType {
    fn parse(s: Option<&str>) -> Self {
        match s {
            Some("Exact") => PathType::Exact,
            Some("Prefix") => PathType::Prefix,
            _ => PathType::ImplementationSpecific,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            PathType::Exact => "Exact",
            PathType::Prefix => "Prefix",
            PathType::ImplementationSpecific => "ImplementationSpecific",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressPath {
    pub path: String,
    pub path_type: PathType,
}

/// One `spec.rules[]` entry. `host` is lower-case; `""` is a rule without a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressRule {
    pub host: String,
    pub paths: Vec<IngressPath>,
}

/// The routing- and client-auth-relevant part of a `networking.k8s.io/v1` Ingress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressView {
    pub key: ObjectKey,
    /// `metadata.creationTimestamp` in seconds; `None` for objects not yet created
    /// (an admission CREATE), which sort as the newest.
    pub created: Option<i64>,
    pub class: Option<String>,
    /// `class` comes from the legacy `kubernetes.io/ingress.class` annotation, which
    /// controllers compare with their class name, never with IngressClass objects.
    pub class_from_annotation: bool,
    /// Value of the `mtls-gate.io/profile` label.
    pub profile_label: Option<String>,
    /// Only annotations that affect routing or client auth (see [`is_relevant_annotation`]).
    pub annotations: BTreeMap<String, String>,
    /// Hosts listed in `spec.tls[].hosts`, lower-case.
    pub tls_hosts: Vec<String>,
    pub rules: Vec<IngressRule>,
    /// `spec.defaultBackend` is set: it serves requests no path of this Ingress matches.
    pub has_default_backend: bool,
    /// Host names the Ingress names outside its rules (`spec.tls` hosts, a dialect's host
    /// aliases such as ingress-nginx's `server-alias`), lower-case, without its rule hosts:
    /// controllers can let such an Ingress change how those hosts are served
    /// ([`crate::dialect::HostContext::named_by`]).
    pub named_hosts: Vec<String>,
    /// What a dialect derives from this view alone (parsed annotations), kept with it: a
    /// review rebuilds the table of a host from views that the states before and after
    /// the change share, so each is parsed once, not once per review. Not part of the
    /// object (ignored by `==`; a clone starts empty, as it may then be changed).
    pub dialect_memo: ViewMemo,
}

/// One value derived from the view that holds it, computed on first use
/// ([`IngressView::dialect_memo`]). A view is immutable once shared (`Arc`), so the value
/// stays what `derive` gives for it; code that changes a view's fields must do so on a
/// fresh view or a clone, never after the memo was read.
#[derive(Default)]
pub struct ViewMemo(std::sync::OnceLock<Arc<dyn std::any::Any + Send + Sync>>);

impl ViewMemo {
    /// The value `derive` gives, computed once. A value of another type is kept by
    /// another user (a second dialect reading the same view): `derive` then runs each time.
    pub fn get_or_derive<T: std::any::Any + Send + Sync>(
        &self,
        derive: impl FnOnce() -> T,
    ) -> Arc<T> {
        if let Some(kept) = self.0.get() {
            return kept
                .clone()
                .downcast::<T>()
                .unwrap_or_else(|_| Arc::new(derive()));
        }
        let value = Arc::new(derive());
        // Two first uses at once derive equal values from the same view; either is kept.
        let _ = self.0.set(value.clone());
        value
    }
}

impl Clone for ViewMemo {
    /// Empty: the clone may be changed, and its memo must be derived from what it becomes.
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for ViewMemo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for ViewMemo {}

impl fmt::Debug for ViewMemo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ViewMemo")
    }
}

/// Annotations some dialect reads or reports ([`crate::dialect::Dialect::keeps_annotation`];
/// for ingress-nginx every annotation its audit does not find irrelevant), the legacy class
/// annotation and mtls-gate's own; everything else is dropped from cached views.
pub fn is_relevant_annotation(key: &str) -> bool {
    key == "kubernetes.io/ingress.class"
        || key.starts_with("mtls-gate.io/")
        || crate::dialect::DIALECTS
            .iter()
            .any(|(_, dialect)| dialect.keeps_annotation(key))
}

impl IngressView {
    /// Reduces an Ingress. Objects without a name are given `""`; a namespace-less object
    /// (a manifest that relies on `kubectl -n`) is placed in `default_namespace`.
    pub fn from_ingress(ing: &Ingress, default_namespace: &str) -> Self {
        let meta = &ing.metadata;
        let key = ObjectKey::new(
            meta.namespace
                .clone()
                .unwrap_or_else(|| default_namespace.to_string()),
            meta.name.clone().unwrap_or_default(),
        );
        let annotations: BTreeMap<String, String> = meta
            .annotations
            .iter()
            .flatten()
            .filter(|(k, _)| is_relevant_annotation(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let spec = ing.spec.as_ref();
        let spec_class = spec.and_then(|s| s.ingress_class_name.clone());
        let class_from_annotation =
            spec_class.is_none() && annotations.contains_key("kubernetes.io/ingress.class");
        let class = spec_class.or_else(|| annotations.get("kubernetes.io/ingress.class").cloned());
        let tls_hosts = spec
            .and_then(|s| s.tls.as_ref())
            .into_iter()
            .flatten()
            .flat_map(|t| t.hosts.iter().flatten())
            .map(|h| h.to_ascii_lowercase())
            .collect();
        let rules: Vec<IngressRule> = spec
            .and_then(|s| s.rules.as_ref())
            .into_iter()
            .flatten()
            .map(|r| IngressRule {
                host: r.host.as_deref().unwrap_or("").to_ascii_lowercase(),
                paths: r
                    .http
                    .iter()
                    .flat_map(|h| h.paths.iter())
                    .map(|p| IngressPath {
                        path: p
                            .path
                            .clone()
                            .filter(|p| !p.is_empty())
                            .unwrap_or_else(|| "/".into()),
                        path_type: PathType::parse(Some(p.path_type.as_str())),
                    })
                    .collect(),
            })
            .collect();
        let mut view = Self {
            key,
            created: meta.creation_timestamp.as_ref().map(|t| t.0.as_second()),
            class,
            class_from_annotation,
            profile_label: meta
                .labels
                .as_ref()
                .and_then(|l| l.get(PROFILE_LABEL).cloned()),
            annotations,
            tls_hosts,
            rules,
            has_default_backend: spec.is_some_and(|s| s.default_backend.is_some()),
            named_hosts: Vec::new(),
            dialect_memo: ViewMemo::default(),
        };
        view.named_hosts = view.names_outside_rules();
        view
    }

    /// See [`Self::named_hosts`].
    fn names_outside_rules(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .tls_hosts
            .iter()
            .cloned()
            .chain(
                crate::dialect::DIALECTS
                    .iter()
                    .flat_map(|(_, dialect)| dialect.host_aliases(self)),
            )
            .filter(|name| !name.is_empty() && !self.rules.iter().any(|r| &r.host == name))
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Rule hosts and [`Self::named_hosts`]: every host a change to this Ingress can touch.
    pub fn touched_hosts(&self) -> impl Iterator<Item = &str> {
        self.hosts()
            .chain(self.named_hosts.iter().map(String::as_str))
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(String::as_str)
    }

    /// Every host key this Ingress serves: those it has a rule for, and `""` (the
    /// catch-all server of hosts no rule names) for an Ingress with only a default backend.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        let catch_all = (self.rules.is_empty() && self.has_default_backend).then_some("");
        self.rules.iter().map(|r| r.host.as_str()).chain(catch_all)
    }

    pub fn has_tls_for(&self, host: &str) -> bool {
        self.tls_hosts.iter().any(|h| h == host)
    }
}

/// Outcome of reading one key of a Secret as PEM CA certificates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "status")]
pub enum CaBundle {
    /// The key holds this many PEM certificates, all parseable as X.509.
    Certificates { count: usize },
    /// The key is present but unusable; the reason says why.
    Invalid { reason: String },
}

/// The part of a `networking.k8s.io/v1` IngressClass that says which controller serves
/// Ingresses of the class (`spec.controller`) and whether it is the cluster's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressClassView {
    pub name: String,
    pub controller: String,
    pub is_default: bool,
    /// `spec.parameters` as `kind apiGroup namespace/name`: controllers such as
    /// haproxy-ingress read configuration from it, which mtls-gate does not.
    pub parameters: Option<String>,
}

impl IngressClassView {
    pub fn from_class(class: &k8s_openapi::api::networking::v1::IngressClass) -> Self {
        Self {
            name: class.metadata.name.clone().unwrap_or_default(),
            controller: class
                .spec
                .as_ref()
                .and_then(|s| s.controller.clone())
                .unwrap_or_default(),
            is_default: class
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("ingressclass.kubernetes.io/is-default-class"))
                .is_some_and(|v| v == "true"),
            parameters: class
                .spec
                .as_ref()
                .and_then(|s| s.parameters.as_ref())
                .map(|p| {
                    let group = p.api_group.as_deref().unwrap_or("");
                    let at = match p.namespace.as_deref() {
                        Some(ns) => format!("{ns}/{}", p.name),
                        None => p.name.clone(),
                    };
                    let group = if group.is_empty() { "core" } else { group };
                    format!("{} ({group}) {at}", p.kind)
                }),
        }
    }
}

/// The CA-relevant part of a Secret: which keys exist and whether they hold certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretView {
    pub key: ObjectKey,
    pub bundles: BTreeMap<String, CaBundle>,
}

/// Secret keys a controller may read trust anchors from.
pub const CA_KEYS: &[&str] = &["ca.crt", "tls.ca", "tls.crt"];

impl SecretView {
    pub fn from_secret(secret: &Secret, default_namespace: &str) -> Self {
        let meta = &secret.metadata;
        let key = ObjectKey::new(
            meta.namespace
                .clone()
                .unwrap_or_else(|| default_namespace.to_string()),
            meta.name.clone().unwrap_or_default(),
        );
        let mut bundles = BTreeMap::new();
        for name in CA_KEYS {
            let bytes = secret
                .data
                .as_ref()
                .and_then(|d| d.get(*name))
                .map(|b| b.0.clone())
                .or_else(|| {
                    secret
                        .string_data
                        .as_ref()
                        .and_then(|d| d.get(*name))
                        .map(|s| s.as_bytes().to_vec())
                });
            if let Some(bytes) = bytes {
                bundles.insert((*name).to_string(), inspect_ca_bundle(&bytes));
            }
        }
        Self { key, bundles }
    }

    pub fn bundle(&self, key: &str) -> Option<&CaBundle> {
        self.bundles.get(key)
    }
}

/// Checks that `bytes` are one or more PEM `CERTIFICATE` blocks that parse as X.509.
pub fn inspect_ca_bundle(bytes: &[u8]) -> CaBundle {
    use rustls_pki_types::pem::{PemObject, SectionKind};
    let mut count = 0;
    for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(bytes) {
        match item {
            Ok((SectionKind::Certificate, der)) => {
                let der = rustls_pki_types::CertificateDer::from(der);
                if let Err(e) = webpki::EndEntityCert::try_from(&der) {
                    return CaBundle::Invalid {
                        reason: format!("certificate {} is not valid X.509: {e:?}", count + 1),
                    };
                }
                count += 1;
            }
            Ok((kind, _)) => {
                return CaBundle::Invalid {
                    reason: format!(
                        "contains a PEM block of kind {kind:?}, expected only CERTIFICATE"
                    ),
                };
            }
            Err(e) => {
                return CaBundle::Invalid {
                    reason: format!("is not valid PEM: {e}"),
                };
            }
        }
    }
    if count == 0 {
        CaBundle::Invalid {
            reason: "holds no PEM CERTIFICATE block".into(),
        }
    } else {
        CaBundle::Certificates { count }
    }
}

/// What a lookup of a referenced object found.
#[derive(Debug, Clone, Copy)]
pub enum Lookup<'a, T> {
    Found(&'a T),
    /// The source is complete for this kind and the object does not exist.
    Missing,
    /// The source does not carry this kind (e.g. a CLI run without Secret manifests).
    Unknown,
}

/// Where the engine reads objects from: the CLI's manifests, the controller's caches, or
/// either of those with one admission change applied on top.
pub trait ObjectSource {
    /// Every Ingress with a rule for this exact host key (`""` for host-less rules).
    fn ingresses_for_host(&self, host: &str) -> Vec<Arc<IngressView>>;
    /// Every Ingress that names this exact host outside its rules
    /// ([`IngressView::named_hosts`]).
    fn ingresses_naming_host(&self, host: &str) -> Vec<Arc<IngressView>>;
    fn secret(&self, key: &ObjectKey) -> Lookup<'_, SecretView>;
    /// The IngressClass of this name (cluster-scoped).
    fn ingress_class(&self, name: &str) -> Lookup<'_, IngressClassView>;
    /// One object of a dialect-owned kind.
    fn object(&self, kind: &ObjectKind, key: &ObjectKey) -> Lookup<'_, SharedObject>;
    /// Every object of a dialect-owned kind the source carries.
    fn objects_of(&self, kind: &ObjectKind) -> Vec<SharedObject>;
    /// Route objects of dialect-owned kinds (see [`crate::dialect::ObjectView::route_hosts`])
    /// with a rule for this exact host key.
    fn routes_for_host(&self, host: &str) -> Vec<(ObjectKind, SharedObject)>;
    /// Why objects of `kind` that the source should hold cannot be read (empty: readable,
    /// or not expected, as in a CLI run given only some manifests). Each entry says what
    /// cannot be read and how to fix it.
    fn unreadable(&self, kind: &ObjectKind) -> Vec<String>;
}
