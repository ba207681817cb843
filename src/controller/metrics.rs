//! Controller metrics (prometheus-client), registered into a caller-supplied registry under
//! their full names (`mtls_gate_...`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::profile::ProbeStatus;
use crate::violation::ViolationCode;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProfileLabel {
    pub profile: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    pub profile: String,
    /// `ok`, `error`, `not_leader` (evaluated for metrics only) or `not_synced`.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub profile: String,
    /// See [`super::Error::reason`].
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    /// `Ingress`, `TLSOption`, `Middleware`, `ApiProviderProfile`, `Event`, `Lease`,
    /// `Secret`, `ValidatingWebhookConfiguration`, `MutatingWebhookConfiguration`.
    pub kind: &'static str,
    /// `apply`, `patch`, `patch_status`, `create`, `update`, `delete`.
    pub verb: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeLabels {
    pub profile: String,
    /// `passed` or `failed` (unreachable endpoint URLs count as failed).
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ViolationLabels {
    pub profile: String,
    pub code: &'static str,
}

type HistogramCtor = fn() -> Histogram;

fn duration_histogram() -> Histogram {
    // 1 ms .. ~65 s
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Every metric of the controller side of `mtls-gate run`.
#[derive(Clone)]
pub struct ControllerMetrics {
    /// `mtls_gate_reconciles_total{profile,result}`.
    pub reconciles: Family<ReconcileLabels, Counter>,
    /// `mtls_gate_reconcile_errors_total{profile,reason}`.
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    /// `mtls_gate_reconcile_duration_seconds{profile}`.
    pub reconcile_duration: Family<ProfileLabel, Histogram, HistogramCtor>,
    /// `mtls_gate_api_writes_total{kind,verb}`: successful writes to the API server.
    pub api_writes: Family<WriteLabels, Counter>,
    /// `mtls_gate_profile_compliant{profile}`: 1 compliant, 0 not (or not evaluable).
    pub profile_compliant: Family<ProfileLabel, Gauge>,
    /// `mtls_gate_profile_violations{profile,code}`.
    pub profile_violations: Family<ViolationLabels, Gauge>,
    /// `mtls_gate_probe_endpoints{profile,result}`: endpoint URLs of the last live check
    /// (`status.probe`, written by `mtls-gate probe --write-status`) that passed or failed.
    pub probe_endpoints: Family<ProbeLabels, Gauge>,
    /// `mtls_gate_probe_unreachable_endpoints{profile}`: of the failed ones, those where
    /// neither request reached a server.
    pub probe_unreachable: Family<ProfileLabel, Gauge>,
    /// `mtls_gate_probe_last_run_timestamp_seconds{profile}`: `status.probe.time`.
    pub probe_last_run: Family<ProfileLabel, Gauge>,
    /// `mtls_gate_leader`: 1 while this replica holds the Lease.
    pub leader: Gauge,
}

impl ControllerMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::unregistered();
        registry.register(
            "mtls_gate_reconciles",
            "Profile reconciles, by profile and result",
            m.reconciles.clone(),
        );
        registry.register(
            "mtls_gate_reconcile_errors",
            "Failed profile reconciles, by profile and reason",
            m.reconcile_errors.clone(),
        );
        registry.register(
            "mtls_gate_reconcile_duration_seconds",
            "Time of one profile reconcile (render, evaluate, writes)",
            m.reconcile_duration.clone(),
        );
        registry.register(
            "mtls_gate_api_writes",
            "Writes to the Kubernetes API, by kind and verb",
            m.api_writes.clone(),
        );
        registry.register(
            "mtls_gate_profile_compliant",
            "1 when the profile's last evaluation found no violation",
            m.profile_compliant.clone(),
        );
        registry.register(
            "mtls_gate_profile_violations",
            "Violations of the profile's last evaluation, by code",
            m.profile_violations.clone(),
        );
        registry.register(
            "mtls_gate_probe_endpoints",
            "Endpoint URLs of the profile's last live check (status.probe) that passed or failed",
            m.probe_endpoints.clone(),
        );
        registry.register(
            "mtls_gate_probe_unreachable_endpoints",
            "Endpoint URLs of the profile's last live check that no request reached (counted as failed too)",
            m.probe_unreachable.clone(),
        );
        registry.register(
            "mtls_gate_probe_last_run_timestamp_seconds",
            "When the profile's last live check (status.probe) ran, in seconds since the epoch",
            m.probe_last_run.clone(),
        );
        registry.register(
            "mtls_gate_leader",
            "1 while this replica holds the leader-election Lease (and writes)",
            m.leader.clone(),
        );
        m
    }

    /// Metrics registered nowhere (tests).
    pub fn unregistered() -> Self {
        Self {
            reconciles: Family::default(),
            reconcile_errors: Family::default(),
            reconcile_duration: Family::new_with_constructor(duration_histogram as HistogramCtor),
            api_writes: Family::default(),
            profile_compliant: Family::default(),
            profile_violations: Family::default(),
            probe_endpoints: Family::default(),
            probe_unreachable: Family::default(),
            probe_last_run: Family::default(),
            leader: Gauge::default(),
        }
    }

    pub fn write(&self, kind: &'static str, verb: &'static str) {
        self.api_writes
            .get_or_create(&WriteLabels { kind, verb })
            .inc();
    }

    pub fn writes(&self, kind: &'static str, verb: &'static str) -> u64 {
        self.api_writes
            .get_or_create(&WriteLabels { kind, verb })
            .get()
    }

    pub fn reconciled(&self, profile: &str, result: &'static str) {
        self.reconciles
            .get_or_create(&ReconcileLabels {
                profile: profile.to_string(),
                result,
            })
            .inc();
    }

    pub fn failed(&self, profile: &str, reason: &'static str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabels {
                profile: profile.to_string(),
                reason,
            })
            .inc();
    }

    /// Sets the compliance gauges of a profile; `None`: not evaluable (invalid profile).
    pub fn compliance(&self, profile: &str, violations: Option<&[crate::violation::Violation]>) {
        let label = ProfileLabel {
            profile: profile.to_string(),
        };
        self.profile_compliant
            .get_or_create(&label)
            .set(i64::from(violations.is_some_and(<[_]>::is_empty)));
        for code in ViolationCode::ALL {
            let n = violations.map_or(0, |v| v.iter().filter(|v| v.code == code).count());
            self.profile_violations
                .get_or_create(&ViolationLabels {
                    profile: profile.to_string(),
                    code: code.as_str(),
                })
                .set(n as i64);
        }
    }

    /// Sets the probe gauges from the profile's `status.probe`; `None` (never probed, or
    /// the field was removed) drops them, so a dashboard never shows a stale check as current.
    pub fn probe(&self, profile: &str, probe: Option<&ProbeStatus>) {
        let label = ProfileLabel {
            profile: profile.to_string(),
        };
        let Some(probe) = probe else {
            self.forget_probe(&label);
            return;
        };
        for (result, n) in [("passed", probe.passed), ("failed", probe.failed)] {
            self.probe_endpoints
                .get_or_create(&ProbeLabels {
                    profile: profile.to_string(),
                    result,
                })
                .set(i64::from(n));
        }
        self.probe_unreachable
            .get_or_create(&label)
            .set(i64::from(probe.unreachable));
        self.probe_last_run
            .get_or_create(&label)
            .set(probe.time.0.as_second());
    }

    fn forget_probe(&self, label: &ProfileLabel) {
        for result in ["passed", "failed"] {
            self.probe_endpoints.remove(&ProbeLabels {
                profile: label.profile.clone(),
                result,
            });
        }
        self.probe_unreachable.remove(label);
        self.probe_last_run.remove(label);
    }

    /// Drops the per-profile series of a deleted profile.
    pub fn forget_profile(&self, profile: &str) {
        let label = ProfileLabel {
            profile: profile.to_string(),
        };
        self.forget_probe(&label);
        self.profile_compliant.remove(&label);
        self.reconcile_duration.remove(&label);
        for code in ViolationCode::ALL {
            self.profile_violations.remove(&ViolationLabels {
                profile: profile.to_string(),
                code: code.as_str(),
            });
        }
    }
}
