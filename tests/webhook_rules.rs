//! The validating webhook sees every kind a dialect reads: a dialect-owned kind missing from
//! the chart's rules would let changes to it through unreviewed (a false admit), one too
//! many would send the API server requests the webhook does not judge. Checked on the
//! rendered manifests in `deploy/` (regenerated from the chart by `make deploy`).

use std::collections::BTreeSet;
use std::path::Path;

use mtls_gate::dialect;

const WEBHOOK: &str = "controller-objects.validate.mtls-gate.io";

#[test]
fn controller_objects_webhook_rules_are_the_dialects_kinds() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/mtls-gate.yaml");
    let text = std::fs::read_to_string(&path).expect("deploy/mtls-gate.yaml");
    let mut rules: BTreeSet<(String, String, String)> = BTreeSet::new();
    let mut found = false;
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let doc: serde_json::Value = serde::Deserialize::deserialize(doc).expect("yaml");
        if doc["kind"] != "ValidatingWebhookConfiguration" {
            continue;
        }
        for hook in doc["webhooks"].as_array().into_iter().flatten() {
            if hook["name"] != WEBHOOK {
                continue;
            }
            found = true;
            for rule in hook["rules"].as_array().into_iter().flatten() {
                let operations: Vec<&str> = rule["operations"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|o| o.as_str())
                    .collect();
                assert_eq!(operations, ["CREATE", "UPDATE", "DELETE"], "{rule}");
                let strings = |field: &str| -> Vec<String> {
                    rule[field]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                };
                for group in strings("apiGroups") {
                    for version in strings("apiVersions") {
                        for resource in strings("resources") {
                            rules.insert((group.clone(), version.clone(), resource));
                        }
                    }
                }
            }
        }
    }
    assert!(found, "{WEBHOOK} is not in deploy/mtls-gate.yaml");
    let kinds: BTreeSet<(String, String, String)> = dialect::owned_kinds()
        .map(|(_, _, k)| {
            (
                k.group.to_string(),
                k.version.to_string(),
                k.plural.to_string(),
            )
        })
        .collect();
    assert_eq!(rules, kinds);
}
