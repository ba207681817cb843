//! `status.probe` of an ApiProviderProfile: the last live check, written with server-side
//! apply on the status subresource under its own field manager (`mtls-gate-probe`), so the
//! controller's status writes (field manager `mtls-gate`) and the probe's never own the same
//! fields.

use anyhow::Context;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};

use super::ProbeResult;
use crate::profile::{ApiProviderProfile, CompiledProfile};
pub use crate::profile::{ProbeFailure, ProbeStatus};

/// The field manager of the probe's status writes.
pub const FIELD_MANAGER: &str = "mtls-gate-probe";

/// Failing URLs listed in the status (etcd objects are capped at 1.5 MiB).
pub const MAX_FAILING: usize = 50;

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl ProbeStatus {
    /// The status of one profile from the results of a run (other profiles' rows ignored).
    pub fn of(profile: &str, results: &[ProbeResult]) -> Self {
        let mine: Vec<&ProbeResult> = results.iter().filter(|r| r.profile == profile).collect();
        let failing: Vec<&ProbeResult> = mine.iter().copied().filter(|r| !r.compliant).collect();
        Self {
            time: Time(Timestamp::now()),
            passed: count(mine.len() - failing.len()),
            failed: count(failing.len()),
            unreachable: count(
                mine.iter()
                    .filter(|r| {
                        !r.without_certificate.outcome.reached()
                            && !r.with_certificate.outcome.reached()
                    })
                    .count(),
            ),
            failing: failing
                .iter()
                .take(MAX_FAILING)
                .map(|r| ProbeFailure {
                    endpoint: r.endpoint.to_string(),
                    url: r.url.clone(),
                    reason: r.reason.clone(),
                })
                .collect(),
        }
    }
}

/// The server-side apply body: only `status.probe`, so the probe owns nothing else.
pub fn apply_body(name: &str, probe: &ProbeStatus) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "mtls-gate.io/v1alpha1",
        "kind": "ApiProviderProfile",
        "metadata": { "name": name },
        "status": { "probe": probe },
    })
}

/// Writes `status.probe` of one profile.
pub async fn write(client: &kube::Client, name: &str, probe: &ProbeStatus) -> anyhow::Result<()> {
    let api: Api<ApiProviderProfile> = Api::all(client.clone());
    // Forced: the probe is the only writer of status.probe; an earlier owner loses it.
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(name, &params, &Patch::Apply(apply_body(name, probe)))
        .await
        .with_context(|| {
            format!("server-side apply of status.probe on ApiProviderProfile {name}")
        })?;
    Ok(())
}

/// The profiles stored in the cluster (all, or those named), compiled. An invalid profile
/// is an error when named, else skipped with a warning on stderr (the controller reports
/// it in its status), so that one broken profile does not stop the others being probed.
pub async fn profiles_from_cluster(
    client: &kube::Client,
    names: &[String],
) -> anyhow::Result<Vec<CompiledProfile>> {
    let api: Api<ApiProviderProfile> = Api::all(client.clone());
    let list = api
        .list(&Default::default())
        .await
        .context("cannot list ApiProviderProfiles")?;
    let mut out = Vec::new();
    for p in list.items {
        let name = p.metadata.name.clone().unwrap_or_default();
        let named = names.contains(&name);
        if !names.is_empty() && !named {
            continue;
        }
        match p.compile() {
            Ok(compiled) => out.push(compiled),
            Err(e) if named => anyhow::bail!("ApiProviderProfile {name} is invalid: {e}"),
            Err(e) => {
                eprintln!("warning: ApiProviderProfile {name} is invalid and not probed: {e}")
            }
        }
    }
    for n in names {
        if !out.iter().any(|p| &p.name == n) {
            anyhow::bail!("ApiProviderProfile {n} not found in the cluster");
        }
    }
    if out.is_empty() {
        anyhow::bail!("no valid ApiProviderProfile found in the cluster");
    }
    Ok(out)
}
