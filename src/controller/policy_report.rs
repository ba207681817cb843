//! Policy reports: a profile's verdict in the `wgpolicyk8s.io/v1alpha2` PolicyReport format
//! that Kyverno's Policy Reporter, OpenShift and other dashboards read.
//!
//! Source: the Kubernetes Policy WG's Policy Report API (kubernetes-sigs/wg-policy-prototypes,
//! `policy-report/crd/v1alpha2`): a namespaced `PolicyReport` for namespaced resources and a
//! `ClusterPolicyReport` for the rest, each with `summary` {pass, fail, warn, error, skip}
//! and `results` of {source, policy, rule, category, severity, result, scored, message,
//! resources, properties, timestamp}.
//!
//! Mapping: one PolicyReport per profile and namespace (`mtls-gate-<profile>`), one result per
//! endpoint URL and Ingress route that serves it (`pass` or `fail`), plus one `fail` per
//! finding about an Ingress that names no endpoint (host conflicts, CA Secrets); one
//! ClusterPolicyReport per profile for what belongs to no namespace: endpoint URLs no route
//! serves (`skip`) and findings without an Ingress. The reports are owned by the profile, so
//! the garbage collector removes them with it. [`build`] is pure; [`sync`] writes them (server-
//! side apply, field manager `mtls-gate`) when `run --policy-reports` turned them on, and only
//! those whose results changed (a list and a get per reconcile; no write in steady state).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::engine::Verdict;
use crate::profile::{ApiProviderProfile, Enforcement};

pub const GROUP: &str = "wgpolicyk8s.io";
pub const VERSION: &str = "v1alpha2";
/// The `source` of every result.
pub const SOURCE: &str = "mtls-gate";
/// Label naming the profile a report belongs to.
pub const PROFILE_LABEL: &str = "mtls-gate.io/profile";

/// The reports of one profile.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyReports {
    /// Namespace → PolicyReport manifest.
    pub namespaced: BTreeMap<String, Value>,
    pub cluster: Value,
}

/// The report name for a profile (`mtls-gate-<profile>`).
pub fn report_name(profile: &str) -> String {
    format!("mtls-gate-{profile}")
}

fn ingress_ref(namespace: &str, name: &str) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "namespace": namespace, "name": name})
}

fn summary(results: &[Value]) -> Value {
    let mut counts: BTreeMap<&str, u64> = ["pass", "fail", "warn", "error", "skip"]
        .into_iter()
        .map(|k| (k, 0))
        .collect();
    for r in results {
        if let Some(n) = r["result"].as_str().and_then(|k| counts.get_mut(k)) {
            *n += 1;
        }
    }
    json!(counts)
}

/// Splits `namespace/name`.
fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

/// Builds the reports of `profile` from its verdict. `owner_uid` makes the profile their
/// owner; `now` is the results' timestamp (seconds since the epoch).
pub fn build(
    profile: &str,
    owner_uid: Option<&str>,
    enforcement: Enforcement,
    verdict: &Verdict,
    now: i64,
) -> PolicyReports {
    let severity = match enforcement {
        Enforcement::Deny => "high",
        Enforcement::Warn => "medium",
        Enforcement::Audit => "low",
    };
    let result =
        |rule: &str, outcome: &str, message: String, resource: Option<Value>, props: Value| {
            let mut r = json!({
                "source": SOURCE,
                "policy": profile,
                "rule": rule,
                "category": "Open banking MTLS",
                "severity": severity,
                "result": outcome,
                "scored": true,
                "message": message,
                "properties": props,
                "timestamp": {"seconds": now, "nanos": 0},
            });
            if let Some(resource) = resource {
                r["resources"] = json!([resource]);
            }
            r
        };
    let mut namespaced: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut cluster = Vec::new();
    for c in verdict.coverage.iter().filter(|c| c.profile == profile) {
        let props = |detail: &str| {
            json!({
                "endpoint": c.endpoint,
                "url": c.url,
                "host": c.host,
                "scheme": c.scheme,
                "clientAuth": detail,
            })
        };
        if c.routes.is_empty() {
            cluster.push(result(
                "EndpointServed",
                "skip",
                format!(
                    "{} endpoint {} ({}) is not served by any Ingress route",
                    c.scheme, c.endpoint, c.url
                ),
                None,
                props(""),
            ));
            continue;
        }
        for route in &c.routes {
            let (ns, name) = split_key(&route.ingress);
            let (rule, outcome, message) = if route.compliant {
                (
                    "EndpointClientAuth",
                    "pass",
                    format!(
                        "{} endpoint {} ({}) is served by path {} with client auth {} as required",
                        c.scheme, c.endpoint, c.url, route.path, route.client_auth
                    ),
                )
            } else {
                // The engine's finding for this URL and route says why and what to change.
                let finding = verdict.violations.iter().find(|v| {
                    v.url.as_deref() == Some(c.url.as_str())
                        && v.ingress
                            .as_ref()
                            .is_some_and(|i| i.to_string() == route.ingress)
                });
                (
                    finding
                        .map(|v| v.code.as_str())
                        .unwrap_or("EndpointClientAuth"),
                    "fail",
                    finding.map(|v| v.message.clone()).unwrap_or_else(|| {
                        format!(
                            "{} endpoint {} ({}) is served by path {} with client auth {} ({})",
                            c.scheme,
                            c.endpoint,
                            c.url,
                            route.path,
                            route.client_auth,
                            route.detail
                        )
                    }),
                )
            };
            let mut p = props(&route.client_auth);
            p["path"] = route.path.clone().into();
            namespaced.entry(ns.to_string()).or_default().push(result(
                rule,
                outcome,
                message,
                Some(ingress_ref(ns, name)),
                p,
            ));
        }
    }
    // Findings no endpoint result carries: about an Ingress (namespaced) or about a host.
    for v in verdict
        .violations
        .iter()
        .filter(|v| v.profile == profile && v.url.is_none())
    {
        let props = json!({"host": v.host, "path": v.path.clone().unwrap_or_default()});
        match &v.ingress {
            Some(key) => namespaced
                .entry(key.namespace.clone())
                .or_default()
                .push(result(
                    v.code.as_str(),
                    "fail",
                    v.message.clone(),
                    Some(ingress_ref(&key.namespace, &key.name)),
                    props,
                )),
            None => cluster.push(result(
                v.code.as_str(),
                "fail",
                v.message.clone(),
                None,
                props,
            )),
        }
    }
    let metadata = |namespace: Option<&str>| {
        let mut m = json!({
            "name": report_name(profile),
            "labels": {
                PROFILE_LABEL: profile,
                "app.kubernetes.io/managed-by": SOURCE,
            },
        });
        if let Some(ns) = namespace {
            m["namespace"] = ns.into();
        }
        if let Some(uid) = owner_uid {
            m["ownerReferences"] = json!([{
                "apiVersion": "mtls-gate.io/v1alpha1",
                "kind": "ApiProviderProfile",
                "name": profile,
                "uid": uid,
            }]);
        }
        m
    };
    let namespaced = namespaced
        .into_iter()
        .map(|(ns, results)| {
            let report = json!({
                "apiVersion": format!("{GROUP}/{VERSION}"),
                "kind": "PolicyReport",
                "metadata": metadata(Some(&ns)),
                "summary": summary(&results),
                "results": results,
            });
            (ns, report)
        })
        .collect();
    let cluster = json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": "ClusterPolicyReport",
        "metadata": metadata(None),
        "summary": summary(&cluster),
        "results": cluster,
    });
    PolicyReports {
        namespaced,
        cluster,
    }
}

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns report writing on (`run --policy-reports`); off by default, since the
/// wgpolicyk8s.io CRDs may not be installed.
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Release);
}

fn resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(GROUP, VERSION, kind))
}

/// Writes the profile's reports and deletes its reports in namespaces that no longer have
/// results. Does nothing unless enabled; failures are logged, never fatal: reports are a
/// view for dashboards, the profile status stays the source of truth.
pub async fn sync(client: &Client, profile: &ApiProviderProfile, verdict: &Verdict) {
    if !ENABLED.load(Ordering::Acquire) {
        return;
    }
    let name = profile.name_any();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let reports = build(
        &name,
        profile.metadata.uid.as_deref(),
        profile.spec.enforcement,
        verdict,
        now,
    );
    if let Err(e) = write(client, &name, &reports).await {
        tracing::warn!(error = %e, "could not write policy reports");
    }
}

/// What a report says, without when: `results` without their timestamps (a result's time
/// is when it was written) in a canonical order (the evaluation's order of routes follows
/// the cache's), and `summary`; null fields dropped, as the API server stores them.
fn content(report: &Value) -> Value {
    fn strip_nulls(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), strip_nulls(v)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(strip_nulls).collect()),
            other => other.clone(),
        }
    }
    let mut results = strip_nulls(&report["results"]);
    if let Some(items) = results.as_array_mut() {
        for r in items.iter_mut() {
            if let Some(r) = r.as_object_mut() {
                r.remove("timestamp");
            }
        }
        items.sort_by_cached_key(Value::to_string);
    }
    json!({"results": results, "summary": strip_nulls(&report["summary"])})
}

/// Whether the stored report already says what `desired` says (then it is not written:
/// an unchanged world costs no write).
pub fn unchanged(stored: Option<&DynamicObject>, desired: &Value) -> bool {
    stored
        .and_then(|o| serde_json::to_value(o).ok())
        .is_some_and(|v| content(&v) == content(desired))
}

async fn write(client: &Client, profile: &str, reports: &PolicyReports) -> Result<(), kube::Error> {
    let params = PatchParams::apply(crate::controller::FIELD_MANAGER).force();
    let report_name = report_name(profile);
    let namespaced = resource("PolicyReport");
    // The profile's reports as stored: only those that changed are written.
    let all: Api<DynamicObject> = Api::all_with(client.clone(), &namespaced);
    let stored: BTreeMap<String, DynamicObject> = all
        .list(&ListParams::default().labels(&format!("{PROFILE_LABEL}={profile}")))
        .await?
        .items
        .into_iter()
        .filter(|o| o.name_any() == report_name)
        .filter_map(|o| Some((o.metadata.namespace.clone()?, o)))
        .collect();
    for (ns, report) in &reports.namespaced {
        if unchanged(stored.get(ns), report) {
            continue;
        }
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &namespaced);
        api.patch(&report_name, &params, &Patch::Apply(report))
            .await?;
    }
    let cluster: Api<DynamicObject> =
        Api::all_with(client.clone(), &resource("ClusterPolicyReport"));
    if !unchanged(
        cluster.get_opt(&report_name).await?.as_ref(),
        &reports.cluster,
    ) {
        cluster
            .patch(&report_name, &params, &Patch::Apply(&reports.cluster))
            .await?;
    }
    // Reports of namespaces whose results are gone.
    for ns in stored.keys() {
        if reports.namespaced.contains_key(ns) {
            continue;
        }
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &namespaced);
        match api.delete(&report_name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest;
    use std::path::Path;

    fn verdict_of(example: &str) -> (String, Enforcement, Verdict) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let docs = manifest::read_paths(&[root.join(example)]).unwrap();
        let m = manifest::load(docs, "default", false).unwrap();
        let (_, p) = &m.profiles[0];
        let v = crate::engine::evaluate(p, &m.view).unwrap();
        (p.name.clone(), p.spec.enforcement, v)
    }

    #[test]
    fn a_compliant_profile_reports_one_pass_per_endpoint_and_route() {
        let (name, enforcement, verdict) = verdict_of("examples/nginx-split-host");
        let reports = build(&name, Some("uid-1"), enforcement, &verdict, 1_700_000_000);
        let routes: usize = verdict.coverage.iter().map(|c| c.routes.len()).sum();
        let results: Vec<&Value> = reports
            .namespaced
            .values()
            .flat_map(|r| r["results"].as_array().unwrap())
            .collect();
        assert_eq!(results.len(), routes);
        assert!(results.iter().all(|r| r["result"] == "pass"));
        for (ns, report) in &reports.namespaced {
            assert_eq!(report["kind"], "PolicyReport");
            assert_eq!(report["apiVersion"], "wgpolicyk8s.io/v1alpha2");
            assert_eq!(report["metadata"]["namespace"], ns.as_str());
            assert_eq!(report["metadata"]["name"], "mtls-gate-example-bank");
            assert_eq!(report["metadata"]["ownerReferences"][0]["uid"], "uid-1");
            assert_eq!(
                report["summary"]["pass"],
                report["results"].as_array().unwrap().len()
            );
            for r in report["results"].as_array().unwrap() {
                assert_eq!(r["resources"][0]["kind"], "Ingress");
                assert_eq!(r["resources"][0]["namespace"], ns.as_str());
                assert_eq!(r["timestamp"]["seconds"], 1_700_000_000);
                assert_eq!(r["source"], "mtls-gate");
                assert_eq!(r["policy"], "example-bank");
            }
        }
        assert_eq!(reports.cluster["kind"], "ClusterPolicyReport");
        assert!(reports.cluster["metadata"].get("namespace").is_none());
    }

    #[test]
    fn every_finding_is_a_failed_result_on_its_object() {
        for example in [
            "examples/broken/older-ingress-weakens-host.yaml",
            "examples/broken/token-on-public-host.yaml",
            "examples/broken/ca-secret-without-ca-crt.yaml",
            "examples/broken/api-host-without-tls.yaml",
        ] {
            let (name, enforcement, verdict) = verdict_of(example);
            let reports = build(&name, None, enforcement, &verdict, 0);
            let all: Vec<&Value> = reports
                .namespaced
                .values()
                .chain([&reports.cluster])
                .flat_map(|r| r["results"].as_array().unwrap())
                .collect();
            for v in &verdict.violations {
                let found = all.iter().any(|r| {
                    r["result"] == "fail"
                        && r["message"] == v.message.as_str()
                        && match &v.ingress {
                            Some(k) => {
                                r["resources"][0]["name"] == k.name.as_str()
                                    && r["resources"][0]["namespace"] == k.namespace.as_str()
                            }
                            None => r.get("resources").is_none(),
                        }
                });
                assert!(
                    found,
                    "{example}: no failed result for {} {:?}",
                    v.code, v.url
                );
            }
            let fails: u64 = reports
                .namespaced
                .values()
                .chain([&reports.cluster])
                .map(|r| r["summary"]["fail"].as_u64().unwrap())
                .sum();
            assert_eq!(
                fails as usize,
                all.iter().filter(|r| r["result"] == "fail").count(),
                "{example}: summary"
            );
        }
    }
}
