//! Long-running commands: `mtls-gate webhook` (standalone: the cluster view comes from
//! manifest files) and the shared logging and shutdown plumbing of `run`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};

use anyhow::Context;
use clap::Args;
use prometheus_client::registry::Registry;

use crate::admission::ClusterAdmission;
use crate::controller::{LogFormat, RunArgs, init_logging, run_controller};
use crate::manifest;
use crate::webhook::{self, WebhookConfig, WebhookMetrics};

/// Resolves when the process receives SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested");
}

#[derive(Debug, Args)]
pub struct WebhookArgs {
    /// HTTPS address of /validate, /mutate and /verify.
    #[arg(long, env = "MTLS_GATE_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// Plain-HTTP address of /healthz, /readyz and /metrics.
    #[arg(long, env = "MTLS_GATE_PROBE_LISTEN", default_value = "0.0.0.0:8080")]
    pub probe_listen: SocketAddr,
    /// PEM certificate chain of the HTTPS server (re-read when it changes).
    #[arg(long, env = "MTLS_GATE_TLS_CERT_FILE")]
    pub tls_cert_file: PathBuf,
    /// PEM private key of the HTTPS server (re-read when it changes).
    #[arg(long, env = "MTLS_GATE_TLS_KEY_FILE")]
    pub tls_key_file: PathBuf,
    /// Manifests (files or directories) that make up the cluster view: profiles, Ingresses,
    /// Secrets, Traefik TLSOptions and Middlewares. Absent Secrets count as missing.
    #[arg(long, required = true, num_args = 1.., value_name = "PATH")]
    pub objects: Vec<PathBuf>,
    /// Namespace for objects whose manifests name none.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Namespaces whose Ingresses are always admitted.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "kube-system,kube-node-lease"
    )]
    pub exclude_namespaces: Vec<String>,
    /// Log format.
    #[arg(long, value_enum, env = "MTLS_GATE_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    /// Connection, body and review limits of the webhook and probe servers.
    #[command(flatten)]
    pub limits: webhook::LimitArgs,
}

/// Serves the webhooks with the cluster view loaded from manifests, until SIGTERM/Ctrl-C.
pub async fn webhook(args: WebhookArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    args.limits.validate().map_err(anyhow::Error::msg)?;
    let documents = manifest::read_paths(&args.objects)?;
    let manifests = manifest::load(documents, &args.namespace, true)?;
    // Without a profile every review would be admitted: refuse, as `check` does.
    if manifests.profiles.is_empty() {
        return Err(manifest::InputError::NoProfile.into());
    }
    tracing::info!(
        profiles = manifests.profiles.len(),
        ingresses = manifests.view.ingress_count(),
        "cluster view loaded from manifests"
    );
    let view = Arc::new(RwLock::new(manifests.view));
    let ready = Arc::new(AtomicBool::new(true));
    let handler = Arc::new(ClusterAdmission::new(view, ready, args.exclude_namespaces));
    let mut registry = Registry::default();
    let metrics = Arc::new(WebhookMetrics::register(&mut registry));
    let mut config = WebhookConfig::new(
        args.listen,
        args.probe_listen,
        args.tls_cert_file,
        args.tls_key_file,
    );
    config.limits = args.limits.limits();
    let bound = webhook::bind(config)
        .await
        .context("cannot bind the webhook ports")?;
    tracing::info!(https = %bound.local_addr(), probes = %bound.probe_addr(), "listening");
    bound
        .serve(handler, metrics, Arc::new(registry), shutdown_signal())
        .await
        .context("webhook server")
}

/// `mtls-gate run`: the controller and the webhooks in one process sharing one cluster
/// view. SIGTERM stops taking new connections, drains in-flight admissions, lets running
/// reconciles finish and releases the Lease.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    args.validate().map_err(anyhow::Error::msg)?;
    let client = args
        .client()
        .await
        .context("cannot build a Kubernetes client")?;
    let view = crate::cluster::shared_view();
    let synced: crate::cluster::SyncedFlag = Arc::new(AtomicBool::new(false));

    // One signal, observed by both halves.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let mut registry = Registry::default();
    let metrics = Arc::new(WebhookMetrics::register(&mut registry));
    let controller = run_controller(
        args.clone(),
        client,
        view.clone(),
        synced.clone(),
        &mut registry,
        stopped(stop_rx.clone()),
    );
    let handler = Arc::new(ClusterAdmission::new(
        view,
        synced,
        args.exclude_namespaces.clone(),
    ));
    let mut config = WebhookConfig::new(
        args.listen,
        args.probe_listen,
        args.tls_cert_file.clone(),
        args.tls_key_file.clone(),
    );
    config.limits = args.limits.limits();
    let bound = webhook::bind(config)
        .await
        .context("cannot bind the webhook ports")?;
    tracing::info!(https = %bound.local_addr(), probes = %bound.probe_addr(), "listening");
    let server = bound.serve(handler, metrics, Arc::new(registry), stopped(stop_rx));
    let (served, controlled) = tokio::join!(server, controller);
    served.context("webhook server")?;
    controlled.context("controller")
}
