//! `mtls-gate run`, the controller side: caches, leader election, profile reconciles,
//! status, Events, metrics and self-managed webhook certificates.
//!
//! A thin shell around the engine. Wiring (the webhook server is started next to it and reads
//! the same [`SharedView`] and [`SyncedFlag`]):
//!
//! ```no_run
//! # async fn example(args: mtls_gate::controller::RunArgs) -> anyhow::Result<()> {
//! use mtls_gate::cluster::{shared_view, SyncedFlag};
//! let client = args.client().await?;
//! let view = shared_view();
//! let synced = SyncedFlag::default();
//! let mut registry = prometheus_client::registry::Registry::default();
//! let (tx, rx) = tokio::sync::oneshot::channel::<()>();
//! let controller = mtls_gate::controller::run_controller(
//!     args, client, view.clone(), synced.clone(), &mut registry, async { let _ = rx.await; },
//! );
//! // ... register the webhook metrics, wrap `registry` in an Arc, start the webhook server
//! // with `view` and `synced`, and send on `tx` at SIGTERM ...
//! # drop(tx);
//! controller.await
//! # }
//! ```

pub mod args;
pub mod ca_access;
pub mod caches;
pub mod certs;
pub mod events;
pub mod leader;
pub mod metrics;
pub mod policy_report;
pub mod reconcile;
pub mod status;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, ResourceExt};
use prometheus_client::registry::Registry;
use tokio::sync::watch;

pub use args::{LogFormat, RunArgs};
pub use caches::{CacheContext, RENDERED_BY, Triggers};
pub use leader::{Leadership, LeaseConfig, LeaseElector};
pub use metrics::ControllerMetrics;
pub use reconcile::{Context, FIELD_MANAGER, FINALIZER, error_policy, reconcile};

pub use crate::cluster::{SharedView, SyncedFlag};
use crate::profile::ApiProviderProfile;

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} {kind} {name}: {source}")]
    Kube {
        action: &'static str,
        kind: &'static str,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    /// Leadership was lost during the reconcile; the new leader takes over.
    #[error("not the leader")]
    NotLeader,
    #[error("finalizer: {0}")]
    Finalizer(String),
    #[error("serializing: {0}")]
    Serialize(#[from] serde_json::Error),
}

impl Error {
    /// Label of `mtls_gate_reconcile_errors_total{reason}`.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube { source, .. } => match source.as_ref() {
                kube::Error::Api(s) if s.is_conflict() => "conflict",
                kube::Error::Api(s) if s.is_forbidden() => "forbidden",
                kube::Error::Api(s) if s.is_not_found() => "not_found",
                kube::Error::Api(s) if s.is_invalid() => "invalid",
                kube::Error::Api(_) => "api",
                _ => "transport",
            },
            Error::NotLeader => "not_leader",
            Error::Finalizer(_) => "finalizer",
            Error::Serialize(_) => "serialize",
        }
    }

    /// An admission webhook (mtls-gate's own, or another) rejected the write.
    pub fn is_admission_denial(&self) -> bool {
        matches!(self, Error::Kube { source, .. }
            if matches!(source.as_ref(), kube::Error::Api(s) if s.message.contains("denied the request")))
    }

    fn from_finalizer(e: kube::runtime::finalizer::Error<Error>) -> Self {
        use kube::runtime::finalizer::Error as F;
        match e {
            F::ApplyFailed(e) | F::CleanupFailed(e) => e,
            F::AddFinalizer(e) => Error::Kube {
                action: "add finalizer to",
                kind: "ApiProviderProfile",
                name: String::new(),
                source: Box::new(e),
            },
            F::RemoveFinalizer(e) => Error::Kube {
                action: "remove finalizer from",
                kind: "ApiProviderProfile",
                name: String::new(),
                source: Box::new(e),
            },
            other => Error::Finalizer(other.to_string()),
        }
    }
}

/// Installs the global tracing subscriber: JSON (span fields such as `profile` and `ingress`
/// on every line) or text; the filter comes from `RUST_LOG`, default `info`.
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Logs go to stderr, so that stdout stays free for command output; colour only when
    // stderr is a terminal (never into files or log shippers) and NO_COLOR is unset.
    let colour =
        crate::cli::terminal_wants_colour(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    let _ = result;
}

/// A shutdown signal that can be awaited any number of times, from `Send + Sync` futures.
#[derive(Clone)]
struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    fn new(trigger: impl Future<Output = ()> + Send + 'static) -> Self {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            trigger.await;
            let _ = tx.send(true);
            // Keep the sender alive so receivers see `true` rather than a closed channel.
            futures::future::pending::<()>().await;
        });
        Self(rx)
    }

    /// A future that resolves at shutdown (`Send + Sync`, as the Controller requires).
    fn signal(&self) -> impl Future<Output = ()> + Send + Sync + 'static {
        let (tx, rx) = futures::channel::oneshot::channel::<()>();
        let mut watch = self.0.clone();
        tokio::spawn(async move {
            let _ = watch.wait_for(|v| *v).await;
            let _ = tx.send(());
        });
        rx.map(|_| ())
    }
}

/// Strips what the profile store does not need (profiles are few; this is tidiness).
fn strip_profile(p: &mut ApiProviderProfile) {
    p.managed_fields_mut().clear();
    p.annotations_mut()
        .remove("kubectl.kubernetes.io/last-applied-configuration");
}

/// Starts the controller side of `mtls-gate run` and returns the future that runs it.
///
/// Registers the controller metrics into `registry` right away (so the caller can hand the
/// registry to the metrics endpoint before awaiting). The future starts the caches (filling
/// `view`, setting `synced` once everything is listed), the Lease elector, the profile
/// Controller and, with `--self-managed-certs`, the certificate keeper. When `shutdown`
/// resolves it stops taking new reconciles, lets running ones finish (at most
/// `--shutdown-grace-period`), releases the Lease and returns.
pub fn run_controller(
    args: RunArgs,
    client: Client,
    view: SharedView,
    synced: SyncedFlag,
    registry: &mut Registry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = anyhow::Result<()>> + Send + 'static {
    let metrics = Arc::new(ControllerMetrics::register(registry));
    async move {
        args.validate().map_err(anyhow::Error::msg)?;
        policy_report::enable(args.policy_reports);
        let identity = args.identity();
        let shutdown = Shutdown::new(shutdown);
        tracing::info!(identity = %identity, lease = %args.leader_election_lease_name, namespace = %args.leader_election_namespace, "starting the controller");

        // Triggers from the caches to the Controller.
        let (one_tx, one_rx) = futures::channel::mpsc::unbounded();
        let (all_tx, all_rx) = futures::channel::mpsc::unbounded();
        let caches = Arc::new(CacheContext::new(
            view,
            synced,
            Triggers {
                one: one_tx,
                all: all_tx.clone(),
            },
        ));
        let mut background = vec![
            tokio::spawn(caches::run_ingress_watch(client.clone(), caches.clone())),
            tokio::spawn(caches::run_ingress_class_watch(
                client.clone(),
                caches.clone(),
            )),
            tokio::spawn(caches::run_secret_watches(client.clone(), caches.clone())),
            tokio::spawn(caches::run_dialect_watches(
                client.clone(),
                caches.clone(),
                args.watch_controllers.clone(),
            )),
        ];

        // Leader election; becoming leader re-reconciles every profile.
        let elector = LeaseElector::new(
            client.clone(),
            LeaseConfig {
                lease_name: args.leader_election_lease_name.clone(),
                namespace: args.leader_election_namespace.clone(),
                identity: identity.clone(),
                lease_duration: args.leader_election_lease_duration,
                renew_deadline: args.leader_election_renew_deadline,
                retry_period: args.leader_election_retry_period,
            },
            Some(metrics.leader.clone()),
        );
        let leadership = elector.leadership();
        // The Lease is released only after the Controller has stopped: in-flight reconciles
        // still write as leader, and no other replica may start writing before they end.
        let (release_lease, lease_released) = futures::channel::oneshot::channel::<()>();
        let elector_task = tokio::spawn(elector.run(async move {
            let _ = lease_released.await;
        }));
        {
            let mut changes = leadership.subscribe();
            let all_tx = all_tx.clone();
            background.push(tokio::spawn(async move {
                while changes.changed().await.is_ok() {
                    let leading = *changes.borrow_and_update();
                    tracing::info!(leader = leading, "leadership changed");
                    if leading {
                        let _ = all_tx.unbounded_send(());
                    }
                }
            }));
        }
        if args.self_managed_certs {
            background.push(tokio::spawn(certs::run(
                client.clone(),
                certs::CertConfig {
                    namespace: args.leader_election_namespace.clone(),
                    secret_name: args.cert_secret_name.clone(),
                    service_name: args.webhook_service_name.clone(),
                    cluster_domain: args.cluster_domain.clone(),
                    validating_webhook: args.validating_webhook_name.clone(),
                    mutating_webhook: args.mutating_webhook_name.clone(),
                    extra_sans: args.cert_extra_sans.clone(),
                },
                leadership.clone(),
                metrics.clone(),
                args.cert_check_interval,
                shutdown.signal(),
            )));
        }

        // The profile watch feeds the Controller's store and the shared view.
        let (reader, writer) = reflector::store::<ApiProviderProfile>();
        let profile_api: Api<ApiProviderProfile> = Api::all(client.clone());
        let cache_ctx = caches.clone();
        let profile_metrics = metrics.clone();
        let profiles = watcher::watcher(profile_api, watcher::Config::default().any_semantic())
            .default_backoff()
            .modify(strip_profile)
            .reflect(writer)
            .inspect(move |event| {
                if let Ok(event) = event {
                    cache_ctx.on_profile_event(event);
                    // Every replica drops a deleted profile's series (only the leader runs
                    // the finalizer's cleanup).
                    if let watcher::Event::Delete(p) = event {
                        profile_metrics.forget_profile(&p.name_any());
                    }
                }
            })
            .applied_objects();

        let ctx = Arc::new(Context::new(
            client.clone(),
            caches.clone(),
            leadership.clone(),
            metrics.clone(),
            &identity,
            args.requeue_interval,
        ));
        let grace = args.shutdown_grace_period;
        let forced = {
            let signal = shutdown.signal();
            async move {
                signal.await;
                tokio::time::sleep(grace).await;
                tracing::warn!("shutdown grace period over; abandoning running reconciles");
            }
        };
        Controller::for_stream(profiles, reader)
            .with_config(
                ControllerConfig::default()
                    .concurrency(4)
                    .debounce(Duration::from_millis(500)),
            )
            .reconcile_on(one_rx)
            .reconcile_all_on(all_rx)
            .graceful_shutdown_on(shutdown.signal())
            .run(reconcile, error_policy, ctx)
            .take_until(Box::pin(forced))
            .for_each(|result| async move {
                match result {
                    Ok((obj, _)) => tracing::debug!(profile = %obj.name, "reconciled"),
                    Err(kube::runtime::controller::Error::ObjectNotFound(obj)) => {
                        tracing::debug!(profile = %obj.name, "profile gone before its reconcile")
                    }
                    Err(kube::runtime::controller::Error::ReconcilerFailed(_, _)) => {}
                    Err(e) => tracing::warn!(error = %e, "controller error"),
                }
            })
            .await;
        tracing::info!("controller stopped; releasing the Lease");
        let _ = release_lease.send(());
        let _ = elector_task.await;
        for task in background {
            task.abort();
        }
        Ok(())
    }
}
