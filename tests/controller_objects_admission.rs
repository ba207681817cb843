//! Admission of changes to the ingress controllers' own objects (Traefik TLSOptions and
//! Middlewares): judged on every host of the profiles whose controller reads them, on the
//! world after the change. Deleting or weakening the TLSOption that enforces client
//! certificates on the MTLS hosts must be denied like the Ingress change with that effect.

use std::path::Path;

use mtls_gate::admission::{BeforeStateCache, OutcomeKind, object_review_view, review_object};
use mtls_gate::cluster::{ClusterView, Completeness};
use mtls_gate::dialect::{self, ObjectKind, SharedObject};
use mtls_gate::manifest::{load, read_paths};
use mtls_gate::model::ObjectKey;
use serde_json::json;

fn traefik_bank() -> ClusterView {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs = read_paths(&[root.join("examples/traefik-split-host")]).expect("example reads");
    let mut m = load(docs, "default", true).expect("loads");
    m.view.set_secrets_completeness(Completeness::Complete);
    m.view
}

fn reduce(manifest: serde_json::Value) -> (&'static ObjectKind, SharedObject) {
    dialect::reduce_owned(&manifest, "open-banking")
        .expect("a dialect-owned kind")
        .expect("reduces")
}

fn tls_option(client_auth_type: &str) -> serde_json::Value {
    json!({
        "apiVersion": "traefik.io/v1alpha1", "kind": "TLSOption",
        "metadata": {"name": "mtls-required", "namespace": "open-banking"},
        "spec": {"clientAuth": {"clientAuthType": client_auth_type,
                                "secretNames": ["open-banking-client-ca"]}}
    })
}

fn middleware(name: &str, spec: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "traefik.io/v1alpha1", "kind": "Middleware",
        "metadata": {"name": name, "namespace": "open-banking"},
        "spec": spec
    })
}

enum Change {
    Upsert(serde_json::Value),
    Delete(&'static ObjectKind, &'static str),
}

#[test]
fn changes_to_traefik_objects_are_judged_on_the_profile_hosts() {
    use mtls_gate::dialect::traefik::{MIDDLEWARE, TLS_OPTION};
    let cases: Vec<(&str, Change, bool)> = vec![
        (
            "the enforcing TLSOption is deleted: Traefik falls back to its default options",
            Change::Delete(&TLS_OPTION, "mtls-required"),
            false,
        ),
        (
            "client certificates become optional",
            Change::Upsert(tls_option("VerifyClientCertIfGiven")),
            false,
        ),
        (
            "client certificates are requested but never verified",
            Change::Upsert(tls_option("RequireAnyClientCert")),
            false,
        ),
        (
            "the TLSOption is re-applied unchanged",
            Change::Upsert(tls_option("RequireAndVerifyClientCert")),
            true,
        ),
        (
            "an unrelated Middleware is created",
            Change::Upsert(middleware("compress", json!({"compress": {}}))),
            true,
        ),
        (
            "an unrelated TLSOption is deleted",
            Change::Delete(&TLS_OPTION, "does-not-exist"),
            true,
        ),
        (
            "the Middleware that strips client-sent certificate headers is deleted",
            Change::Delete(&MIDDLEWARE, "strip-client-cert"),
            true,
        ),
    ];
    judge(traefik_bank, "open-banking", cases);
}

/// Reviews each change of an object in `namespace` against a fresh `view()`: allowed or
/// denied as the case says, and a denial names the object.
fn judge(view: impl Fn() -> ClusterView, namespace: &str, cases: Vec<(&str, Change, bool)>) {
    for (desc, change, allowed) in cases {
        let view = view();
        let cache = BeforeStateCache::default();
        let (kind, name, new) = match change {
            Change::Upsert(manifest) => {
                let (kind, object) = reduce(manifest);
                let name = object.key().name.clone();
                (kind, name, Some(object))
            }
            Change::Delete(kind, name) => (kind, name.to_string(), None),
        };
        let key = ObjectKey::new(namespace, name);
        let snapshot = object_review_view(&view, kind);
        let outcome = review_object(&snapshot, kind, &key, new, &cache);
        assert_eq!(outcome.allowed, allowed, "{desc}: {:?}", outcome.message);
        if !allowed {
            assert_eq!(outcome.decision, OutcomeKind::Denied, "{desc}");
            let message = outcome.message.unwrap_or_default();
            assert!(
                message.contains(&format!("{kind} {namespace}/{}", key.name)),
                "{desc}: the denial names the object: {message}"
            );
        }
    }
}

/// The split-host example with its profile naming the ingress-nginx controller ConfigMap,
/// which exists, labelled, with `settings` as its data.
fn nginx_bank_with_controller_config(settings: serde_json::Value) -> ClusterView {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut docs = read_paths(&[root.join("examples/nginx-split-host")]).expect("example reads");
    for doc in &mut docs {
        if doc.value["kind"] == "ApiProviderProfile" {
            doc.value["spec"]["controllerConfigMap"] =
                json!({"namespace": "ingress-nginx", "name": "ingress-nginx-controller"});
        }
    }
    let mut m = load(docs, "default", true).expect("loads");
    m.view.set_secrets_completeness(Completeness::Complete);
    let (kind, object) = reduce(controller_config(true, settings));
    m.view.upsert_object(*kind, object);
    m.view
}

fn controller_config(labelled: bool, data: serde_json::Value) -> serde_json::Value {
    let mut labels = json!({"app.kubernetes.io/component": "controller"});
    if labelled {
        labels["mtls-gate.io/controller-config"] = json!("true");
    }
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "ingress-nginx-controller", "namespace": "ingress-nginx",
                     "labels": labels},
        "data": data
    })
}

#[test]
fn changes_to_the_controller_configmap_are_judged_on_the_profile_hosts() {
    use mtls_gate::dialect::config_map::CONFIG_MAP;
    let defaults = json!({"allow-snippet-annotations": "false"});
    let cases: Vec<(&str, Change, bool)> = vec![
        (
            "use-forwarded-headers true: a forged X-Forwarded-Proto skips the HTTPS redirect",
            Change::Upsert(controller_config(
                true,
                json!({"allow-snippet-annotations": "false", "use-forwarded-headers": "true"}),
            )),
            false,
        ),
        (
            "ssl-redirect false: the APIs answer on port 80",
            Change::Upsert(controller_config(true, json!({"ssl-redirect": "false"}))),
            false,
        ),
        (
            "a server snippet",
            Change::Upsert(controller_config(
                true,
                json!({"server-snippet": "ssl_verify_client off;"}),
            )),
            false,
        ),
        (
            "the label is removed: later changes would not be reviewed",
            Change::Upsert(controller_config(false, defaults.clone())),
            false,
        ),
        (
            "the ConfigMap is deleted",
            Change::Delete(&CONFIG_MAP, "ingress-nginx-controller"),
            false,
        ),
        (
            "a key that does not change who reaches an endpoint",
            Change::Upsert(controller_config(
                true,
                json!({"allow-snippet-annotations": "false", "proxy-body-size": "8m"}),
            )),
            true,
        ),
        (
            "re-applied unchanged",
            Change::Upsert(controller_config(true, defaults.clone())),
            true,
        ),
    ];
    judge(
        || nginx_bank_with_controller_config(defaults.clone()),
        "ingress-nginx",
        cases,
    );
}
