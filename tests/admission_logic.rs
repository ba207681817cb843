//! Admission decisions on the cluster view: the world after the change is judged, only
//! findings the change introduces or that name the changed Ingress count, and the profile's
//! enforcement mode decides what happens to them.

use std::path::Path;

use k8s_openapi::api::networking::v1::Ingress;
use mtls_gate::admission::{
    OutcomeKind, annotation_patch, mutate_ingress, review_ingress, review_profile,
};
use mtls_gate::cluster::ClusterView;
use mtls_gate::manifest::{load, parse_documents, read_paths};
use mtls_gate::model::ObjectKey;
use mtls_gate::profile::ApiProviderProfile;

fn view_of(path: &str, edit: impl Fn(String) -> String) -> ClusterView {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs = read_paths(&[root.join(path)]).expect("example reads");
    let text: String = docs
        .iter()
        .map(|d| format!("---\n{}\n", serde_json::to_string(&d.value).unwrap()))
        .collect();
    let docs = parse_documents(Path::new("x.yaml"), &edit(text)).expect("parses");
    let mut m = load(docs, "default", true).expect("loads");
    m.view
        .set_secrets_completeness(mtls_gate::cluster::Completeness::Complete);
    m.view
}

fn ingress(yaml: &str) -> Ingress {
    serde_yaml_ng::from_str(yaml).expect("ingress yaml")
}

const API_V3_EXTRA: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: statements-export, namespace: open-banking}
spec:
  ingressClassName: nginx
  tls: [{hosts: [mtls-api.bank.example], secretName: t}]
  rules:
    - host: mtls-api.bank.example
      http:
        paths:
          - {path: /open-banking-nz/v3.0/accounts, pathType: Prefix, backend: {service: {name: statements, port: {number: 80}}}}
"#;

fn key(name: &str) -> ObjectKey {
    ObjectKey::new("open-banking", name)
}

#[test]
fn compliant_create_on_a_required_host_is_allowed() {
    let view = view_of("examples/nginx-split-host", |t| t);
    // Host-wide settings come from the oldest Ingress with a CA, so a plain new Ingress is covered.
    let outcome = review_ingress(
        &view,
        &key("statements-export"),
        Some(&ingress(API_V3_EXTRA)),
    );
    assert!(outcome.allowed, "{:?}", outcome.message);
    assert_eq!(outcome.decision, OutcomeKind::Allowed);
    assert!(outcome.counted.is_empty());
}

#[test]
fn create_exposing_token_on_the_public_host_is_denied_with_endpoint_path_and_fix() {
    let view = view_of("examples/nginx-split-host", |t| t);
    let bad = ingress(
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: token-shortcut, namespace: open-banking}
spec:
  ingressClassName: nginx
  tls: [{hosts: [auth.bank.example], secretName: t}]
  rules:
    - host: auth.bank.example
      http: {paths: [{path: /token, pathType: Exact, backend: {service: {name: as, port: {number: 80}}}}]}
"#,
    );
    let outcome = review_ingress(&view, &key("token-shortcut"), Some(&bad));
    assert!(!outcome.allowed);
    assert_eq!(outcome.decision, OutcomeKind::Denied);
    let msg = outcome.message.unwrap();
    assert!(msg.contains("Ingress open-banking/token-shortcut"), "{msg}");
    assert!(msg.contains("[MtlsNotRequired] profile example-bank, host auth.bank.example endpoint /token path /token"), "{msg}");
    assert!(msg.contains("Fix:"), "{msg}");
}

#[test]
fn update_that_weakens_verification_is_denied() {
    let view = view_of("examples/nginx-split-host", |t| t);
    let current = view
        .ingress(&key("open-banking-apis"))
        .expect("cached")
        .clone();
    let docs = read_paths(&[
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/nginx-split-host/ingresses.yaml")
    ])
    .unwrap();
    let mut doc = docs
        .into_iter()
        .find(|d| d.name() == "open-banking-apis")
        .unwrap()
        .value;
    doc["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-tls-verify-client"] =
        "optional".into();
    let weakened: Ingress = serde_json::from_value(doc).unwrap();
    let outcome = review_ingress(&view, &current.key, Some(&weakened));
    assert!(!outcome.allowed);
    assert!(
        outcome
            .counted
            .iter()
            .all(|v| v.code.as_str() == "MtlsNotRequired"),
        "{:?}",
        outcome.counted
    );
    assert!(
        outcome
            .message
            .unwrap()
            .contains("auth-tls-verify-client \"optional\"")
    );
}

#[test]
fn deleting_the_ingress_that_carries_the_ca_is_denied() {
    // open-banking-apis carries the CA for the host; statements-export relies on it.
    let view = view_of("examples/nginx-split-host", |t| {
        format!("{t}\n---\n{API_V3_EXTRA}")
    });
    let outcome = review_ingress(&view, &key("open-banking-apis"), None);
    assert!(!outcome.allowed, "deleting the CA carrier must be caught");
    assert!(outcome.counted.iter().any(
        |v| v.ingress == Some(key("statements-export")) && v.code.as_str() == "MtlsNotRequired"
    ));
    // Deleting the dependent Ingress is fine.
    let outcome = review_ingress(&view, &key("statements-export"), None);
    assert!(outcome.allowed, "{:?}", outcome.message);
}

#[test]
fn enforcement_modes_decide_what_happens_to_findings() {
    let bad = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: token-shortcut, namespace: open-banking}
spec:
  ingressClassName: nginx
  tls: [{hosts: [auth.bank.example], secretName: t}]
  rules:
    - host: auth.bank.example
      http: {paths: [{path: /token, pathType: Exact, backend: {service: {name: as, port: {number: 80}}}}]}
"#;
    for (mode, allowed, decision, warned) in [
        ("Deny", false, OutcomeKind::Denied, false),
        ("Warn", true, OutcomeKind::Warned, true),
        ("Audit", true, OutcomeKind::Audited, false),
    ] {
        let view = view_of("examples/nginx-split-host", |t| {
            t.replace(
                "\"enforcement\":\"Deny\"",
                &format!("\"enforcement\":\"{mode}\""),
            )
        });
        let outcome = review_ingress(&view, &key("token-shortcut"), Some(&ingress(bad)));
        assert_eq!(outcome.allowed, allowed, "{mode}");
        assert_eq!(outcome.decision, decision, "{mode}");
        assert_eq!(
            !outcome.warnings.is_empty(),
            warned,
            "{mode}: {:?}",
            outcome.warnings
        );
        assert_eq!(
            outcome.counted.len(),
            1,
            "{mode}: the finding is recorded in every mode"
        );
    }
}

#[test]
fn existing_violations_of_other_ingresses_only_warn() {
    // legacy-health-check already weakens the host; an unrelated new Ingress is not blamed.
    let view = view_of("examples/broken/older-ingress-weakens-host.yaml", |t| t);
    let outcome = review_ingress(
        &view,
        &key("statements-export"),
        Some(&ingress(API_V3_EXTRA)),
    );
    // The new Ingress's own routes are unprotected too: that is new and names it.
    assert!(!outcome.allowed);
    assert!(
        outcome
            .counted
            .iter()
            .all(|v| v.ingress == Some(key("statements-export"))),
        "{:?}",
        outcome.counted
    );
    assert!(
        outcome
            .warnings
            .iter()
            .any(|w| w.starts_with("existing violation, not caused by this change")),
        "{:?}",
        outcome.warnings
    );
    // A change on another profile host leaves the weakened host out of the picture.
    let elsewhere = API_V3_EXTRA.replace("mtls-api.bank.example", "unrelated.bank.example");
    let outcome = review_ingress(&view, &key("statements-export"), Some(&ingress(&elsewhere)));
    assert!(
        outcome.allowed && outcome.warnings.is_empty(),
        "{outcome:?}"
    );
}

#[test]
fn invalid_profile_is_denied_with_the_field() {
    let view = ClusterView::new();
    let profile: ApiProviderProfile = serde_yaml_ng::from_str(
        r#"
apiVersion: mtls-gate.io/v1alpha1
kind: ApiProviderProfile
metadata: {name: bank}
spec:
  issuer: http://auth.bank.example
  apiBaseUrls: [https://api.bank.example/open-banking-nz/v3.0]
  clientCertificate: {caSecretName: ca}
"#,
    )
    .unwrap();
    let outcome = review_profile(&view, &profile);
    assert!(!outcome.allowed);
    assert!(
        outcome
            .message
            .unwrap()
            .contains("spec.issuer: \"http://auth.bank.example\" must use https")
    );
}

#[test]
fn mutation_renders_managed_ingresses_and_is_idempotent() {
    let view = view_of("examples/render/nginx-split-host.yaml", |t| t);
    let docs = read_paths(&[
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/render/nginx-split-host.yaml")
    ])
    .unwrap();
    let doc = docs
        .into_iter()
        .find(|d| d.name() == "open-banking-apis")
        .unwrap()
        .value;
    let ing: Ingress = serde_json::from_value(doc.clone()).unwrap();
    let patch = mutate_ingress(&view, &key("open-banking-apis"), &ing)
        .expect("renders")
        .expect("patch");
    let mut patched = doc;
    json_patch::patch(&mut patched, &patch).expect("patch applies");
    let annotations = &patched["metadata"]["annotations"];
    assert_eq!(
        annotations["nginx.ingress.kubernetes.io/auth-tls-verify-client"],
        "on"
    );
    assert_eq!(
        annotations["nginx.ingress.kubernetes.io/auth-tls-secret"],
        "open-banking/open-banking-client-ca"
    );
    let patched: Ingress = serde_json::from_value(patched).unwrap();
    assert_eq!(
        mutate_ingress(&view, &key("open-banking-apis"), &patched),
        Ok(None),
        "second pass changes nothing"
    );
    // And the patched Ingress passes validation.
    assert!(review_ingress(&view, &key("open-banking-apis"), Some(&patched)).allowed);
    // A key with '/' is escaped in JSON pointers.
    let changes = mtls_gate::dialect::AnnotationChanges {
        set: [("a/b~c".to_string(), "v".to_string())].into(),
        remove: vec![],
    };
    let ops = serde_json::to_value(annotation_patch(true, &changes)).unwrap();
    assert_eq!(ops[0]["path"], "/metadata/annotations/a~1b~0c");
}
