//! `crds/apiproviderprofiles.yaml` is the output of `mtls-gate crd`, and the CRD says what
//! design.md §4 fixes.

use kube::CustomResourceExt;
use mtls_gate::profile::ApiProviderProfile;

#[test]
fn checked_in_crd_is_the_generated_one() {
    let generated = mtls_gate::cli::crd_yaml().expect("CRD serialises");
    let on_disk = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/apiproviderprofiles.yaml"
    ))
    .expect("crds/apiproviderprofiles.yaml exists");
    assert!(
        generated == on_disk,
        "crds/apiproviderprofiles.yaml is stale: run `make crd` (cargo run -- crd > crds/apiproviderprofiles.yaml)"
    );
}

#[test]
fn crd_matches_the_contract() {
    let crd = ApiProviderProfile::crd();
    assert_eq!(crd.spec.group, "mtls-gate.io");
    assert_eq!(crd.spec.scope, "Cluster");
    assert_eq!(crd.spec.names.kind, "ApiProviderProfile");
    assert_eq!(
        crd.spec.names.short_names.as_deref(),
        Some(&["approfile".to_string()][..])
    );
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some(),
        "status subresource"
    );
    let columns: Vec<&str> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert!(
        columns.contains(&"Compliant") && columns.contains(&"Violations"),
        "{columns:?}"
    );
    let schema = serde_json::to_value(&version.schema).expect("schema serialises");
    let spec = &schema["openAPIV3Schema"]["properties"]["spec"];
    let required: Vec<&str> = spec["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for field in ["issuer", "apiBaseUrls", "clientCertificate"] {
        assert!(required.contains(&field), "{field} must be required");
    }
    for field in [
        "issuer",
        "apiBaseUrls",
        "authorizationServer",
        "clientCertificate",
        "ingressController",
        "ingressClassName",
        "gatewayClassName",
        "gate",
        "unlistedApiPaths",
        "enforcement",
    ] {
        let prop = &spec["properties"][field];
        assert!(prop.is_object(), "spec.{field} missing");
        assert!(
            prop["description"].as_str().is_some_and(|d| d.len() > 20),
            "spec.{field} needs a description for kubectl explain"
        );
    }
    let enums = |field: &str| -> Vec<String> {
        spec["properties"][field]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        enums("ingressController"),
        ["ingress-nginx", "traefik", "haproxy-ingress", "gateway-api"]
    );
    assert_eq!(enums("unlistedApiPaths"), ["MTLS", "TLS", "Ignore"]);
    assert_eq!(enums("enforcement"), ["Deny", "Warn", "Audit"]);
    let depth = &spec["properties"]["clientCertificate"]["properties"]["verifyDepth"];
    assert_eq!(
        (
            depth["minimum"].as_f64(),
            depth["maximum"].as_f64(),
            depth["default"].as_i64()
        ),
        (Some(1.0), Some(10.0), Some(2))
    );
    let auth = &spec["properties"]["authorizationServer"]["properties"];
    for key in [
        "authorizationEndpoint",
        "tokenEndpoint",
        "backchannelAuthenticationEndpoint",
        "pushedAuthorizationRequestEndpoint",
        "introspectionEndpoint",
        "revocationEndpoint",
        "userinfoEndpoint",
        "jwksUri",
    ] {
        assert!(auth[key].is_object(), "authorizationServer.{key}");
    }
}
