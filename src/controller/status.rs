//! The profile status: conditions, counts and the per-endpoint coverage an auditor reads.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use crate::engine::{EndpointCoverage, Verdict};
use crate::profile::{ApiProviderProfile, ApiProviderProfileStatus, RenderRefusal};
use crate::render::Refusal;

pub const READY: &str = "Ready";
pub const COMPLIANT: &str = "Compliant";
/// False when the CA Secret the profile names cannot be read or does not exist where its
/// managed Ingresses need it (then CA checks are off, or the host refuses every request).
pub const CA_SECRET_AVAILABLE: &str = "CaSecretAvailable";

/// Serving routes listed per coverage entry; more are summarised (etcd objects are capped
/// at 1.5 MiB, and a catch-all host can have thousands of routes).
pub const MAX_ROUTES_PER_ENDPOINT: usize = 20;

fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: if status { "True" } else { "False" }.to_string(),
        reason: reason.to_string(),
        message,
        observed_generation: generation,
        last_transition_time: Time(Timestamp::now()),
    }
}

/// What one reconcile found, as the status reports it.
pub struct Evaluation<'a> {
    pub verdict: &'a Verdict,
    pub refusals: &'a [Refusal],
    pub managed: usize,
    /// Rendered objects that could not be written, by kind (CRD absent or not readable).
    pub unwritable: &'a BTreeMap<String, usize>,
}

/// The status of a profile that compiled and was evaluated.
pub fn evaluated(profile: &ApiProviderProfile, e: &Evaluation<'_>) -> ApiProviderProfileStatus {
    let generation = profile.metadata.generation;
    let verdict = e.verdict;
    let total = verdict.coverage.len();
    let served = verdict.coverage.iter().filter(|c| c.served).count();
    let compliant_endpoints = verdict
        .coverage
        .iter()
        .filter(|c| c.served && c.compliant)
        .count();
    let mut truncated = 0usize;
    let coverage: Vec<EndpointCoverage> = verdict
        .coverage
        .iter()
        .map(|c| {
            let mut c = c.clone();
            c.profile.clear();
            // A stable order (non-compliant first: the ones to act on), whatever order the
            // cache holds the Ingresses in, so an unchanged world is an unchanged status.
            c.routes.sort_by(|a, b| {
                (a.compliant, &a.ingress, &a.path, &a.path_type).cmp(&(
                    b.compliant,
                    &b.ingress,
                    &b.path,
                    &b.path_type,
                ))
            });
            if c.routes.len() > MAX_ROUTES_PER_ENDPOINT {
                truncated += c.routes.len() - MAX_ROUTES_PER_ENDPOINT;
                c.routes.truncate(MAX_ROUTES_PER_ENDPOINT);
            }
            c
        })
        .collect();

    let (ready_reason, ready_ok, mut ready_msg) = if !e.unwritable.is_empty() {
        let kinds: Vec<String> = e
            .unwritable
            .iter()
            .map(|(kind, n)| format!("{n} {kind}"))
            .collect();
        (
            "CrdsMissing",
            false,
            format!(
                "rendered objects could not be written ({}): their CRDs are not installed or not readable by mtls-gate",
                kinds.join(", ")
            ),
        )
    } else if !e.refusals.is_empty() {
        (
            "RenderRefused",
            true,
            format!(
                "{} of {} managed Ingress(es) cannot be made compliant by rendering; see status.refusals",
                e.refusals.len(),
                e.managed
            ),
        )
    } else {
        (
            "Reconciled",
            true,
            format!(
                "{} managed Ingress(es) rendered; {served} of {total} endpoint URLs served",
                e.managed
            ),
        )
    };
    if truncated > 0 {
        ready_msg.push_str(&format!(
            "; {truncated} serving route(s) omitted from status.coverage (at most {MAX_ROUTES_PER_ENDPOINT} per endpoint, non-compliant first)"
        ));
    }

    let mut by_code: BTreeMap<&str, usize> = BTreeMap::new();
    for v in &verdict.violations {
        *by_code.entry(v.code.as_str()).or_default() += 1;
    }
    let compliant = verdict.violations.is_empty();
    let compliant_msg = if compliant {
        format!("No violations; {compliant_endpoints} of {served} served endpoint URLs compliant")
    } else {
        let codes: Vec<String> = by_code.iter().map(|(c, n)| format!("{n} {c}")).collect();
        format!(
            "{} violation(s): {}; {compliant_endpoints} of {served} served endpoint URLs compliant",
            verdict.violations.len(),
            codes.join(", ")
        )
    };
    ApiProviderProfileStatus {
        observed_generation: generation,
        conditions: vec![
            condition(READY, ready_ok, ready_reason, ready_msg, generation),
            condition(
                COMPLIANT,
                compliant,
                if compliant {
                    "NoViolations"
                } else {
                    "ViolationsFound"
                },
                compliant_msg,
                generation,
            ),
        ],
        violations: i32::try_from(verdict.violations.len()).unwrap_or(i32::MAX),
        endpoints_served: Some(format!("{served}/{total}")),
        endpoints_compliant: i32::try_from(compliant_endpoints).unwrap_or(i32::MAX),
        endpoints_total: i32::try_from(total).unwrap_or(i32::MAX),
        coverage,
        managed_ingresses: i32::try_from(e.managed).unwrap_or(i32::MAX),
        // Owned by `mtls-gate probe` (its own field manager): carried so that an unchanged
        // world is still an unchanged status, and never written by merge_patch.
        probe: profile.status.as_ref().and_then(|s| s.probe.clone()),
        refusals: e
            .refusals
            .iter()
            .map(|r| RenderRefusal {
                ingress: r.ingress.to_string(),
                kind: r.kind.to_string(),
                object: r.ingress.to_string(),
                host: r.host.clone(),
                message: r.message.clone(),
            })
            .collect(),
    }
}

/// The `CaSecretAvailable` condition for the issues [`super::ca_access::check`] found.
pub fn ca_secret_condition(
    issues: &[super::ca_access::CaSecretIssue],
    generation: Option<i64>,
) -> Condition {
    match issues.first() {
        None => condition(
            CA_SECRET_AVAILABLE,
            true,
            "Available",
            "The CA Secret is readable wherever a managed Ingress needs it".into(),
            generation,
        ),
        // Issues sort refusals first: the louder problem names the reason.
        Some(first) => condition(
            CA_SECRET_AVAILABLE,
            false,
            first.problem.reason(),
            {
                // A bounded message: the first few, then how many more.
                const SHOWN: usize = 3;
                let mut m: Vec<String> = issues
                    .iter()
                    .take(SHOWN)
                    .map(super::ca_access::CaSecretIssue::message)
                    .collect();
                if issues.len() > SHOWN {
                    m.push(format!("and {} more namespace(s)", issues.len() - SHOWN));
                }
                m.join("; ")
            },
            generation,
        ),
    }
}

/// The status of a profile that cannot be evaluated (invalid spec, unsupported controller).
/// Counts and coverage of an earlier evaluation are kept: they are still what was observed.
pub fn not_evaluable(
    profile: &ApiProviderProfile,
    reason: &str,
    message: String,
) -> ApiProviderProfileStatus {
    let generation = profile.metadata.generation;
    let mut status = profile.status.clone().unwrap_or_default();
    status.observed_generation = generation;
    let mut compliant = condition(
        COMPLIANT,
        false,
        reason,
        "The profile cannot be evaluated; see the Ready condition".into(),
        generation,
    );
    compliant.status = "Unknown".into();
    status.conditions = vec![
        condition(READY, false, reason, message, generation),
        compliant,
    ];
    status
}

/// Keeps `lastTransitionTime` of conditions whose status did not change.
pub fn keep_transition_times(old: &[Condition], new: &mut [Condition]) {
    for c in new.iter_mut() {
        if let Some(o) = old
            .iter()
            .find(|o| o.type_ == c.type_ && o.status == c.status)
        {
            c.last_transition_time = o.last_transition_time.clone();
        }
    }
}

/// The new status for `profile`, or `None` when it equals the current one (no write).
pub fn diff(
    profile: &ApiProviderProfile,
    mut status: ApiProviderProfileStatus,
) -> Option<ApiProviderProfileStatus> {
    let current = profile.status.as_ref();
    if let Some(current) = current {
        keep_transition_times(&current.conditions, &mut status.conditions);
    }
    (current != Some(&status)).then_some(status)
}

/// `status.probe` belongs to `mtls-gate probe --write-status`: the controller neither
/// writes nor deletes it.
const PROBE_FIELD: &str = "probe";

/// A JSON merge patch `{"status": ...}` that also deletes the fields the new status leaves
/// out (merge patches only delete what they set to null).
pub fn merge_patch(
    old: Option<&ApiProviderProfileStatus>,
    new: &ApiProviderProfileStatus,
) -> Result<Value, serde_json::Error> {
    let mut new_value = serde_json::to_value(new)?;
    if let Some(obj) = new_value.as_object_mut() {
        obj.remove(PROBE_FIELD);
    }
    if let (Some(old), Some(obj)) = (old, new_value.as_object_mut())
        && let Value::Object(old) = serde_json::to_value(old)?
    {
        for key in old.keys() {
            if key != PROBE_FIELD && !obj.contains_key(key) {
                obj.insert(key.clone(), Value::Null);
            }
        }
    }
    Ok(serde_json::json!({ "status": new_value }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(status: Option<ApiProviderProfileStatus>) -> ApiProviderProfile {
        let mut p: ApiProviderProfile = serde_json::from_value(serde_json::json!({
            "apiVersion": "mtls-gate.io/v1alpha1", "kind": "ApiProviderProfile",
            "metadata": {"name": "bank", "generation": 3},
            "spec": {"issuer": "https://auth.bank.example", "apiBaseUrls": ["https://api.bank.example/v3"],
                "clientCertificate": {"caSecretName": "ca"}}
        }))
        .unwrap();
        p.status = status;
        p
    }

    #[test]
    fn unchanged_status_is_not_written_and_keeps_transition_times() {
        let verdict = Verdict {
            compliant: true,
            ..Default::default()
        };
        let e = Evaluation {
            verdict: &verdict,
            refusals: &[],
            managed: 2,
            unwritable: &BTreeMap::new(),
        };
        let first = evaluated(&profile(None), &e);
        assert_eq!(first.observed_generation, Some(3));
        assert_eq!(first.conditions[0].type_, READY);
        assert_eq!(first.conditions[0].status, "True");
        assert_eq!(first.conditions[1].reason, "NoViolations");
        let p = profile(Some(first.clone()));
        std::thread::sleep(std::time::Duration::from_millis(2));
        let again = evaluated(&p, &e);
        assert_ne!(
            again.conditions[0].last_transition_time,
            first.conditions[0].last_transition_time
        );
        assert!(diff(&p, again).is_none(), "only the time differs: no write");
        let e2 = Evaluation { managed: 3, ..e };
        let changed = diff(&p, evaluated(&p, &e2)).expect("count changed");
        assert_eq!(changed.managed_ingresses, 3);
        assert_eq!(
            changed.conditions[0].last_transition_time, first.conditions[0].last_transition_time,
            "Ready stayed True: its transition time is kept"
        );
    }

    #[test]
    fn merge_patch_nulls_dropped_fields() {
        let old = ApiProviderProfileStatus {
            refusals: vec![RenderRefusal {
                ingress: "a/b".into(),
                kind: "Ingress".into(),
                object: "a/b".into(),
                host: None,
                message: "m".into(),
            }],
            endpoints_served: Some("1/2".into()),
            ..Default::default()
        };
        let new = ApiProviderProfileStatus::default();
        let patch = merge_patch(Some(&old), &new).unwrap();
        assert_eq!(patch["status"]["refusals"], Value::Null);
        assert!(
            patch["status"]
                .as_object()
                .unwrap()
                .contains_key("refusals")
        );
        assert_eq!(patch["status"]["endpointsServed"], Value::Null);
    }

    #[test]
    fn invalid_profiles_report_the_field() {
        let s = not_evaluable(
            &profile(None),
            "InvalidProfile",
            "spec.issuer: must use https".into(),
        );
        assert_eq!(s.conditions[0].status, "False");
        assert_eq!(s.conditions[0].message, "spec.issuer: must use https");
        assert_eq!(s.conditions[1].status, "Unknown");
    }
}
