//! Lease-based leader election (`coordination.k8s.io/v1`), as client-go's leaderelection:
//!
//! - a candidate takes the Lease when it is free (no holder) or when the record has not
//!   changed for `leaseDurationSeconds` *as observed on the local clock* (no trust in the
//!   other replica's clock);
//! - the holder renews every retry period; every write carries the `resourceVersion` it
//!   read, so two candidates never both succeed;
//! - a holder that has not renewed for the renew deadline (< lease duration) stops acting
//!   as leader on its own, before anyone else may take over;
//! - on shutdown the holder clears `holderIdentity`, so a successor takes over at once.
//!
//! Hand-written on purpose; the crates were evaluated (2026-11-30, issue #8 item 6):
//!
//! - kubert's `lease` (linkerd's): its newest crates.io release, 0.25.0, requires kube 1.1
//!   and k8s-openapi 0.25 (its `Cargo.toml`); this crate is on kube 5 / k8s-openapi 0.29.
//! - `kube-lease-manager` 0.13.1 has the right versions (kube 5, k8s-openapi 0.29) but not
//!   the guarantees above, read in its source (`src/manager.rs`, `src/state.rs`):
//!   - a holder whose renewals fail keeps reporting leadership: `watch()` logs the error
//!     and backs off (up to 30 s) without ever publishing `false`. Against a mock API
//!     (lease 3 s, grace 1 s, every request failing from 1.5 s on) its channel still said
//!     "leader" at 12 s, while another replica may take over at 3 s. Here the leader stops
//!     at the renew deadline (test `a_leader_that_cannot_renew_steps_down_at_the_renew_deadline`);
//!   - expiry is the holder's `renewTime` plus the duration, compared with the local wall
//!     clock, so a clock skew beyond `grace` lets two replicas lead at once;
//!   - renewals, and the clearing of an expired holder before a takeover, are
//!     strategic-merge patches without `resourceVersion`: a stale holder's renewal can land
//!     on a Lease another replica has just taken;
//!   - `LeaseParams::new` panics when grace ≥ duration; durations are whole seconds.
//!
//! Revisit when kube-runtime ships an elector (kube-rs/kube#843 was the last attempt) or
//! kubert's releases catch up with kube.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::watch;
use tokio::time::Instant;

/// Whether this replica may write. Cheap to clone and to query.
#[derive(Clone)]
pub struct Leadership {
    inner: Arc<LeadershipInner>,
}

struct LeadershipInner {
    leader: AtomicBool,
    /// Last successful acquire or renew.
    renewed_at: Mutex<Option<Instant>>,
    /// `None`: fixed leadership (tests, single replica), never expires.
    renew_deadline: Option<Duration>,
    changes: watch::Sender<bool>,
    gauge: Option<Gauge>,
}

impl Leadership {
    fn new(renew_deadline: Option<Duration>, gauge: Option<Gauge>) -> Self {
        let (changes, _) = watch::channel(false);
        Self {
            inner: Arc::new(LeadershipInner {
                leader: AtomicBool::new(false),
                renewed_at: Mutex::new(None),
                renew_deadline,
                changes,
                gauge,
            }),
        }
    }

    /// Leadership that does not come from a Lease: always (or never) the leader.
    pub fn fixed(leader: bool) -> Self {
        let l = Self::new(None, None);
        l.set(leader, None);
        l
    }

    /// True while this replica holds the Lease and renewed it within the renew deadline.
    pub fn is_leader(&self) -> bool {
        if !self.inner.leader.load(Ordering::Acquire) {
            return false;
        }
        match self.inner.renew_deadline {
            None => true,
            Some(deadline) => self
                .inner
                .renewed_at
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some_and(|at| at.elapsed() < deadline),
        }
    }

    /// Notified on every change of leadership (true: acquired, false: lost).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.inner.changes.subscribe()
    }

    fn set(&self, leader: bool, renewed_at: Option<Instant>) {
        if let Some(at) = renewed_at {
            *self
                .inner
                .renewed_at
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(at);
        }
        let was = self.inner.leader.swap(leader, Ordering::AcqRel);
        if let Some(g) = &self.inner.gauge {
            g.set(i64::from(leader));
        }
        if was != leader {
            self.inner.changes.send_replace(leader);
        }
    }

    fn renewed_at(&self) -> Option<Instant> {
        *self
            .inner
            .renewed_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

/// Leader-election settings.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub lease_name: String,
    pub namespace: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

/// What was last seen of the Lease record, and when (local clock).
#[derive(Debug, Clone)]
struct Observed {
    resource_version: Option<String>,
    holder: Option<String>,
    at: Instant,
}

/// Runs the election for one replica.
pub struct LeaseElector {
    api: Api<Lease>,
    config: LeaseConfig,
    leadership: Leadership,
    observed: Option<Observed>,
}

fn now_micro() -> MicroTime {
    MicroTime(Timestamp::now())
}

fn secs(d: Duration) -> i32 {
    i32::try_from(d.as_secs().max(1)).unwrap_or(i32::MAX)
}

impl LeaseElector {
    pub fn new(client: kube::Client, config: LeaseConfig, gauge: Option<Gauge>) -> Self {
        let api = Api::namespaced(client, &config.namespace);
        let leadership = Leadership::new(Some(config.renew_deadline), gauge);
        Self {
            api,
            config,
            leadership,
            observed: None,
        }
    }

    pub fn leadership(&self) -> Leadership {
        self.leadership.clone()
    }

    /// One election round at `now`: creates, takes over or renews the Lease. Ok(true): this
    /// replica holds it now. Ok(false): another replica does (or won a race). Updates the
    /// shared [`Leadership`].
    pub async fn try_acquire_or_renew(&mut self, now: Instant) -> Result<bool, kube::Error> {
        let won = self.round(now).await?;
        if won {
            self.leadership.set(true, Some(now));
        } else {
            self.leadership.set(false, None);
        }
        Ok(won)
    }

    async fn round(&mut self, now: Instant) -> Result<bool, kube::Error> {
        let me = self.config.identity.clone();
        let Some(mut lease) = self.api.get_opt(&self.config.lease_name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.lease_name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me),
                    lease_duration_seconds: Some(secs(self.config.lease_duration)),
                    acquire_time: Some(now_micro()),
                    renew_time: Some(now_micro()),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(&created, now);
                    tracing::info!(lease = %self.config.lease_name, "created the leader Lease; this replica leads");
                    Ok(true)
                }
                Err(kube::Error::Api(s)) if s.is_already_exists() || s.is_conflict() => Ok(false),
                Err(e) => Err(e),
            };
        };
        self.observe(&lease, now);
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let mine = holder.as_deref() == Some(me.as_str());
        let duration = spec
            .lease_duration_seconds
            .filter(|s| *s > 0)
            .map_or(self.config.lease_duration, |s| {
                Duration::from_secs(s.unsigned_abs().into())
            });
        if let Some(other) = holder.as_deref()
            && !mine
        {
            let observed_at = self.observed.as_ref().map_or(now, |o| o.at);
            if now < observed_at + duration {
                return Ok(false);
            }
            tracing::info!(lease = %self.config.lease_name, previous = other, "the leader Lease expired; taking over");
        }
        let mut new_spec = spec.clone();
        new_spec.holder_identity = Some(me);
        new_spec.lease_duration_seconds = Some(secs(self.config.lease_duration));
        new_spec.renew_time = Some(now_micro());
        if !mine {
            new_spec.acquire_time = Some(now_micro());
            new_spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        lease.spec = Some(new_spec);
        // `lease.metadata.resourceVersion` is the one just read: a concurrent writer makes
        // this fail with 409 instead of both succeeding.
        match self
            .api
            .replace(&self.config.lease_name, &PostParams::default(), &lease)
            .await
        {
            Ok(updated) => {
                self.observe(&updated, now);
                if !mine {
                    tracing::info!(lease = %self.config.lease_name, "acquired the leader Lease");
                }
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.is_conflict() => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn observe(&mut self, lease: &Lease, now: Instant) {
        let rv = lease.metadata.resource_version.clone();
        let holder = lease.spec.as_ref().and_then(|s| s.holder_identity.clone());
        let changed = self
            .observed
            .as_ref()
            .is_none_or(|o| o.resource_version != rv || o.holder != holder);
        if changed {
            self.observed = Some(Observed {
                resource_version: rv,
                holder,
                at: now,
            });
        }
    }

    /// Gives the Lease up if this replica holds it: clears `holderIdentity` (with the
    /// `resourceVersion` read, so a Lease someone else took meanwhile is left alone).
    pub async fn release(&mut self) -> Result<bool, kube::Error> {
        self.leadership.set(false, None);
        let Some(mut lease) = self.api.get_opt(&self.config.lease_name).await? else {
            return Ok(false);
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(false);
        }
        spec.holder_identity = None;
        spec.renew_time = Some(now_micro());
        lease.spec = Some(spec);
        match self
            .api
            .replace(&self.config.lease_name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                tracing::info!(lease = %self.config.lease_name, "released the leader Lease");
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.is_conflict() || s.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Runs election rounds every retry period until `shutdown`, then releases the Lease.
    pub async fn run(mut self, shutdown: impl Future<Output = ()> + Send) {
        tokio::pin!(shutdown);
        let period = self.config.retry_period;
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_error_logged: Option<Instant> = None;
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                _ = ticker.tick() => {}
            }
            let now = Instant::now();
            // A round never outlives the renew deadline: a hung request must not keep a
            // stale leader believing it leads.
            let budget = self.config.renew_deadline.min(period * 2);
            let result = tokio::select! {
                biased;
                () = &mut shutdown => break,
                r = tokio::time::timeout(budget, self.try_acquire_or_renew(now)) => r,
            };
            let err = match result {
                Ok(Ok(_)) => {
                    last_error_logged = None;
                    continue;
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {budget:?}"),
            };
            // Keep leading until the renew deadline passes without a successful renew.
            let expired = self
                .leadership
                .renewed_at()
                .is_none_or(|at| now.duration_since(at) >= self.config.renew_deadline);
            if self.leadership.inner.leader.load(Ordering::Acquire) && expired {
                tracing::warn!(lease = %self.config.lease_name, error = %err, "could not renew the leader Lease within the renew deadline; no longer leading");
                self.leadership.set(false, None);
            }
            if last_error_logged.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(60)) {
                tracing::warn!(lease = %self.config.lease_name, error = %err, "leader election round failed");
                last_error_logged = Some(now);
            }
        }
        let was_leader = self.leadership.inner.leader.load(Ordering::Acquire);
        if was_leader {
            match tokio::time::timeout(Duration::from_secs(5), self.release()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(lease = %self.config.lease_name, error = %e, "could not release the leader Lease; it expires by itself")
                }
                Err(_) => {
                    tracing::warn!(lease = %self.config.lease_name, "releasing the leader Lease timed out; it expires by itself")
                }
            }
        }
        self.leadership.set(false, None);
    }
}
