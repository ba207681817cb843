//! ConfigMaps, a kind several dialects read: Gateway API CA bundles (`ca.crt` of a
//! `caCertificateRefs` target) and the controller ConfigMap of ingress-nginx and
//! haproxy-ingress (`--configmap`), which a profile names in `spec.controllerConfigMap`.
//!
//! One reduction serves every dialect that lists [`CONFIG_MAP`] among its kinds, so the
//! cluster view stores one view per ConfigMap whichever dialect reduced it. The data of a
//! ConfigMap is kept only when it carries [`CONTROLLER_CONFIG_LABEL`]: the cluster holds
//! many ConfigMaps that no controller reads, and the label is also what lets the webhook's
//! match conditions send changes of the controller ConfigMap (and of no other) for review.
//! A named ConfigMap without the label is reported ([`controller_config`]), so removing the
//! label is itself a reviewed change that is refused.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{HostContext, ObjectKind, ObjectView, ReduceError, SharedObject, downcast_lookup};
use crate::model::{CaBundle, Lookup, ObjectKey, inspect_ca_bundle};
use crate::violation::{Violation, ViolationCode};

/// The ConfigMap kind (core, `v1`).
pub const CONFIG_MAP: ObjectKind = ObjectKind {
    group: "",
    version: "v1",
    kind: "ConfigMap",
    plural: "configmaps",
};

/// The label that marks a ConfigMap as an ingress controller's configuration: its data is
/// kept in the view and the admission webhook reviews its changes.
pub const CONTROLLER_CONFIG_LABEL: &str = "mtls-gate.io/controller-config";

/// A ConfigMap, reduced to what the dialects read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigMapView {
    pub key: ObjectKey,
    /// The `ca.crt` bundle, if the ConfigMap has one (Gateway API CA references).
    pub ca_crt: Option<CaBundle>,
    /// `data`, for a ConfigMap labelled [`CONTROLLER_CONFIG_LABEL`]; `None` otherwise.
    pub controller_data: Option<BTreeMap<String, String>>,
}

impl ObjectView for ConfigMapView {
    fn key(&self) -> &ObjectKey {
        &self.key
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn same_view(&self, other: &dyn ObjectView) -> bool {
        super::same_view_by_eq(self, other)
    }
}

/// Reduces a ConfigMap manifest (the only reduction of the kind, whichever dialect asks).
pub fn reduce(
    object: &serde_json::Value,
    default_namespace: &str,
) -> Result<SharedObject, ReduceError> {
    let data = &object["data"];
    if !data.is_null() && !data.is_object() {
        return Err(ReduceError {
            field: "data".into(),
            message: "must be a map of strings".into(),
        });
    }
    let labelled = object["metadata"]["labels"]
        .get(CONTROLLER_CONFIG_LABEL)
        .is_some();
    let controller_data = if labelled {
        let mut entries = BTreeMap::new();
        for (k, v) in data.as_object().into_iter().flatten() {
            let Some(v) = v.as_str() else {
                return Err(ReduceError {
                    field: format!("data.{k}"),
                    message: "must be a string".into(),
                });
            };
            entries.insert(k.clone(), v.to_string());
        }
        Some(entries)
    } else {
        None
    };
    Ok(Arc::new(ConfigMapView {
        key: ObjectKey::of_manifest(object, default_namespace),
        ca_crt: data["ca.crt"]
            .as_str()
            .map(|pem| inspect_ca_bundle(pem.as_bytes())),
        controller_data,
    }))
}

/// The controller settings a host's evaluation reads.
pub enum ControllerConfig<'a> {
    /// The profile names no controller ConfigMap: the controller's defaults are assumed.
    Defaults,
    /// The data of the named, labelled ConfigMap.
    Data {
        key: &'a ObjectKey,
        data: &'a BTreeMap<String, String>,
    },
    /// The named ConfigMap cannot be evaluated; the finding says why (fail closed).
    Unusable(Violation),
}

/// The profile's controller ConfigMap as the host's evaluation sees it.
pub fn controller_config<'a>(ctx: &'a HostContext<'_>, controller: &str) -> ControllerConfig<'a> {
    let Some(reference) = ctx.profile.spec.controller_config_map.as_ref() else {
        return ControllerConfig::Defaults;
    };
    let key = ObjectKey::new(reference.namespace.clone(), reference.name.clone());
    let unusable = |why: String| {
        ControllerConfig::Unusable(ctx.finding(
            ViolationCode::UnmodelledSetting,
            Some(&key),
            format!(
                "Host {host} of profile {profile} is served by {controller}, whose settings come from ConfigMap {key} (spec.controllerConfigMap), but {why}. Its keys (ssl-redirect among them) decide whether the host's endpoints answer without a client certificate, so the host cannot be proven compliant.",
                host = ctx.host,
                profile = ctx.profile.name,
            ),
        ))
    };
    match downcast_lookup::<ConfigMapView>(ctx.objects.object(&CONFIG_MAP, &key)) {
        Lookup::Found(view) => match &view.controller_data {
            Some(data) => ControllerConfig::Data {
                key: &view.key,
                data,
            },
            None => unusable(format!(
                "it does not carry the label {CONTROLLER_CONFIG_LABEL}, without which the admission webhook does not review its changes. Fix: kubectl label configmap -n {} {} {CONTROLLER_CONFIG_LABEL}=true",
                key.namespace, key.name
            )),
        },
        Lookup::Missing => unusable(format!(
            "it is not found: it does not exist, or it lacks the label {CONTROLLER_CONFIG_LABEL} (the controller lists only labelled ConfigMaps unless it also reads Gateway API CA bundles), or it is not among the manifests given to check. Fix: name the ConfigMap the controller's --configmap flag names, and label it: kubectl label configmap -n {} {} {CONTROLLER_CONFIG_LABEL}=true",
            key.namespace, key.name
        )),
        Lookup::Unknown => unusable("mtls-gate cannot read ConfigMaps".into()),
    }
}

/// The kinds of a dialect whose only own kind is its controller ConfigMap
/// ([`super::Dialect::reads_controller_config_map`]).
pub static CONTROLLER_CONFIG_KINDS: [ObjectKind; 1] = [CONFIG_MAP];
