//! Flags of `mtls-gate run` (controller and webhook side), each with an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, with the span fields (profile, ingress) flattened in.
    Json,
    /// Human-readable text.
    Text,
}

/// `mtls-gate run`: the operator (controller, admission webhooks and the per-path gate).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Operator")]
pub struct RunArgs {
    /// Kubeconfig file(s) to reach the API server (several joined with ':' are merged).
    /// Unset: the in-cluster service account, else ~/.kube/config.
    #[arg(long, env = "KUBECONFIG", value_name = "FILE")]
    pub kubeconfig: Option<String>,

    /// Namespaces whose changes the admission webhooks let through unreviewed
    /// (comma-separated). Their Ingresses still count for status, Events and metrics: the
    /// ingress controllers serve them and merge them into the same hosts.
    #[arg(
        long,
        env = "MTLS_GATE_EXCLUDE_NAMESPACES",
        value_delimiter = ',',
        default_value = "kube-system,kube-node-lease",
        value_name = "NS,..."
    )]
    pub exclude_namespaces: Vec<String>,

    /// Ingress controllers whose own kinds (Traefik CRDs, Gateway API objects, CA
    /// ConfigMaps) are watched (comma-separated). The kinds of the others are never listed
    /// and count as unknown, so their profiles cannot be proven compliant. The chart lists
    /// the controllers whose RBAC it grants (`traefik.enabled`, `gatewayApi.enabled`).
    #[arg(
        long,
        env = "MTLS_GATE_WATCH_CONTROLLERS",
        value_delimiter = ',',
        default_value = "ingress-nginx,traefik,haproxy-ingress,gateway-api",
        value_parser = ["ingress-nginx", "traefik", "haproxy-ingress", "gateway-api"],
        value_name = "CONTROLLER,..."
    )]
    pub watch_controllers: Vec<String>,

    /// Name of the coordination.k8s.io Lease that elects the one replica that writes.
    #[arg(
        long,
        env = "MTLS_GATE_LEADER_ELECTION_LEASE_NAME",
        default_value = "mtls-gate-leader",
        value_name = "NAME"
    )]
    pub leader_election_lease_name: String,

    /// Namespace of the leader-election Lease (and of the self-managed certificate Secret).
    #[arg(
        long,
        env = "POD_NAMESPACE",
        default_value = "mtls-gate",
        value_name = "NS"
    )]
    pub leader_election_namespace: String,

    /// How long a Lease stays valid without renewal; other replicas take over after it.
    #[arg(long, env = "MTLS_GATE_LEADER_ELECTION_LEASE_DURATION", default_value = "15s", value_parser = parse_duration, value_name = "DURATION")]
    pub leader_election_lease_duration: Duration,

    /// How long the leader keeps trying to renew before it stops writing (< lease duration).
    #[arg(long, env = "MTLS_GATE_LEADER_ELECTION_RENEW_DEADLINE", default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub leader_election_renew_deadline: Duration,

    /// How often the leader renews and the other replicas try to acquire the Lease.
    #[arg(long, env = "MTLS_GATE_LEADER_ELECTION_RETRY_PERIOD", default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    pub leader_election_retry_period: Duration,

    /// Identity of this replica in the Lease and in Events. Default: the host name.
    #[arg(long, env = "POD_NAME", value_name = "NAME")]
    pub pod_name: Option<String>,

    /// Log format. The filter comes from RUST_LOG (default "info").
    #[arg(long, env = "MTLS_GATE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,

    /// After SIGTERM: how long in-flight admissions and reconciles may take before exit.
    #[arg(long, env = "MTLS_GATE_SHUTDOWN_GRACE_PERIOD", default_value = "20s", value_parser = parse_duration, value_name = "DURATION")]
    pub shutdown_grace_period: Duration,

    /// Periodic full resync of every profile, on top of the watch-driven reconciles.
    #[arg(long, env = "MTLS_GATE_REQUEUE_INTERVAL", default_value = "5m", value_parser = parse_duration, value_name = "DURATION")]
    pub requeue_interval: Duration,

    /// HTTPS address of the admission webhooks and the /verify gate.
    #[arg(
        long,
        env = "MTLS_GATE_LISTEN",
        default_value = "0.0.0.0:8443",
        value_name = "ADDR"
    )]
    pub listen: SocketAddr,

    /// Plain-HTTP address of /healthz, /readyz and /metrics.
    #[arg(
        long,
        env = "MTLS_GATE_PROBE_LISTEN",
        default_value = "0.0.0.0:8080",
        value_name = "ADDR"
    )]
    pub probe_listen: SocketAddr,

    /// PEM serving certificate (chain) of the HTTPS server; reloaded when it changes.
    #[arg(
        long,
        env = "MTLS_GATE_TLS_CERT_FILE",
        default_value = "/var/run/mtls-gate/tls/tls.crt",
        value_name = "FILE"
    )]
    pub tls_cert_file: PathBuf,

    /// PEM private key of the serving certificate; reloaded when it changes.
    #[arg(
        long,
        env = "MTLS_GATE_TLS_KEY_FILE",
        default_value = "/var/run/mtls-gate/tls/tls.key",
        value_name = "FILE"
    )]
    pub tls_key_file: PathBuf,

    /// The leader creates and rotates the webhook CA and serving certificate in the Secret
    /// --cert-secret-name and keeps caBundle of the webhook configurations in sync.
    #[arg(long, env = "MTLS_GATE_SELF_MANAGED_CERTS")]
    pub self_managed_certs: bool,

    /// Secret (in the leader-election namespace) holding the self-managed certificates.
    #[arg(
        long,
        env = "MTLS_GATE_CERT_SECRET_NAME",
        default_value = "mtls-gate-webhook-tls",
        value_name = "NAME"
    )]
    pub cert_secret_name: String,

    /// Further names for the self-managed serving certificate, DNS names or IP addresses
    /// (comma-separated or repeated): the host of the webhooks' `clientConfig.url` when the
    /// API server calls them by URL instead of through the Service.
    #[arg(
        long = "cert-extra-san",
        env = "MTLS_GATE_CERT_EXTRA_SANS",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub cert_extra_sans: Vec<String>,

    /// How often the leader checks the self-managed certificates (and caBundles) between
    /// leadership changes; a certificate is renewed once a third of its validity remains.
    #[arg(long, env = "MTLS_GATE_CERT_CHECK_INTERVAL", default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
    pub cert_check_interval: Duration,

    /// Service in front of the webhooks; the serving certificate names <service>.<ns>.svc.
    #[arg(
        long,
        env = "MTLS_GATE_WEBHOOK_SERVICE_NAME",
        default_value = "mtls-gate",
        value_name = "NAME"
    )]
    pub webhook_service_name: String,

    /// Cluster DNS domain for the serving certificate's <service>.<ns>.svc.<domain> name.
    #[arg(
        long,
        env = "MTLS_GATE_CLUSTER_DOMAIN",
        default_value = "cluster.local",
        value_name = "DOMAIN"
    )]
    pub cluster_domain: String,

    /// ValidatingWebhookConfiguration whose caBundle the leader keeps in sync.
    #[arg(
        long,
        env = "MTLS_GATE_VALIDATING_WEBHOOK_NAME",
        default_value = "mtls-gate",
        value_name = "NAME"
    )]
    pub validating_webhook_name: String,

    /// MutatingWebhookConfiguration whose caBundle the leader keeps in sync.
    #[arg(
        long,
        env = "MTLS_GATE_MUTATING_WEBHOOK_NAME",
        default_value = "mtls-gate",
        value_name = "NAME"
    )]
    pub mutating_webhook_name: String,

    /// Write each profile's results as wgpolicyk8s.io/v1alpha2 PolicyReports (per namespace)
    /// and a ClusterPolicyReport, for policy-report dashboards; needs those CRDs installed.
    #[arg(long, env = "MTLS_GATE_POLICY_REPORTS")]
    pub policy_reports: bool,

    /// Connection, body and review limits of the webhook and probe servers.
    #[command(flatten)]
    pub limits: crate::webhook::LimitArgs,
}

impl RunArgs {
    /// This replica's identity: `--pod-name`, else the host name, else "mtls-gate".
    pub fn identity(&self) -> String {
        self.pod_name
            .clone()
            .filter(|n| !n.is_empty())
            .or_else(|| hostname::get().ok().and_then(|h| h.into_string().ok()))
            .unwrap_or_else(|| "mtls-gate".to_string())
    }

    /// Checks relations between flags that clap cannot express.
    pub fn validate(&self) -> Result<(), String> {
        let (d, r, p) = (
            self.leader_election_lease_duration,
            self.leader_election_renew_deadline,
            self.leader_election_retry_period,
        );
        if p.is_zero() || r.is_zero() || d.is_zero() {
            return Err("leader-election durations must be positive".into());
        }
        if r >= d {
            return Err(format!(
                "--leader-election-renew-deadline ({r:?}) must be shorter than --leader-election-lease-duration ({d:?}), or two replicas could write at once"
            ));
        }
        if p >= r {
            return Err(format!(
                "--leader-election-retry-period ({p:?}) must be shorter than --leader-election-renew-deadline ({r:?})"
            ));
        }
        if self.requeue_interval < Duration::from_secs(1) {
            return Err("--requeue-interval must be at least 1s".into());
        }
        if self.cert_check_interval < Duration::from_secs(1) {
            return Err("--cert-check-interval must be at least 1s".into());
        }
        if let Some(bad) = self.cert_extra_sans.iter().find(|n| {
            n.parse::<std::net::IpAddr>().is_err() && !crate::profile::is_dns1123_subdomain(n)
        }) {
            return Err(format!(
                "--cert-extra-san {bad:?} is neither an IP address nor a DNS name"
            ));
        }
        self.limits.validate()
    }

    /// Builds the API client from `--kubeconfig`, else in-cluster, else ~/.kube/config.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        use anyhow::Context as _;
        use kube::config::{KubeConfigOptions, Kubeconfig};
        let config = match self.kubeconfig.as_deref().filter(|k| !k.is_empty()) {
            Some(paths) => {
                let mut merged: Option<Kubeconfig> = None;
                for path in std::env::split_paths(paths) {
                    let kc = Kubeconfig::read_from(&path)
                        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
                    merged = Some(match merged {
                        None => kc,
                        Some(m) => m.merge(kc)?,
                    });
                }
                let kc = merged.context("--kubeconfig names no file")?;
                kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?
            }
            None => kube::Config::infer()
                .await
                .context("no --kubeconfig, no in-cluster service account and no ~/.kube/config")?,
        };
        Ok(kube::Client::try_from(config)?)
    }
}

/// Parses a duration flag with jiff's "friendly" format (`15s`, `500ms`, `5m`, `1h30m`,
/// `1.5s`, `1h 30m`; also ISO 8601 `PT15S`), see
/// <https://docs.rs/jiff/0.2/jiff/fmt/friendly/index.html>. A bare number counts as seconds,
/// as it always has for these flags. Negative durations are refused.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let signed: jiff::SignedDuration = s.parse().map_err(|e| format!("{text:?}: {e}"))?;
    Duration::try_from(signed).map_err(|_| format!("{text:?}: a duration must not be negative"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("20"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("PT15S"), Ok(Duration::from_secs(15)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("5s ago").is_err());
    }

    #[test]
    fn defaults_and_chart_flags_parse() {
        let cli = Cli::try_parse_from(["x"]).unwrap();
        let a = cli.run;
        assert_eq!(a.exclude_namespaces, ["kube-system", "kube-node-lease"]);
        assert_eq!(a.leader_election_lease_name, "mtls-gate-leader");
        assert_eq!(a.leader_election_lease_duration, Duration::from_secs(15));
        assert_eq!(a.leader_election_renew_deadline, Duration::from_secs(10));
        assert_eq!(a.leader_election_retry_period, Duration::from_secs(2));
        assert_eq!(a.requeue_interval, Duration::from_secs(300));
        assert_eq!(a.shutdown_grace_period, Duration::from_secs(20));
        assert_eq!(a.log_format, LogFormat::Json);
        assert_eq!(a.listen.to_string(), "0.0.0.0:8443");
        assert_eq!(a.cert_secret_name, "mtls-gate-webhook-tls");
        assert!(!a.self_managed_certs);
        assert!(a.validate().is_ok());

        // The arguments the Helm chart passes.
        let cli = Cli::try_parse_from([
            "x",
            "--listen=0.0.0.0:8443",
            "--probe-listen=0.0.0.0:8080",
            "--tls-cert-file=/var/run/mtls-gate/tls/tls.crt",
            "--tls-key-file=/var/run/mtls-gate/tls/tls.key",
            "--log-format=text",
            "--exclude-namespaces=kube-system,kube-node-lease,mtls-gate",
            "--leader-election-lease-name=mtls-gate-leader",
            "--leader-election-lease-duration=15s",
            "--leader-election-renew-deadline=10s",
            "--leader-election-retry-period=2s",
            "--shutdown-grace-period=20s",
            "--self-managed-certs",
            "--cert-secret-name=mtls-gate-webhook-tls",
            "--webhook-service-name=mtls-gate",
            "--validating-webhook-name=mtls-gate",
            "--mutating-webhook-name=mtls-gate",
        ])
        .unwrap();
        assert_eq!(cli.run.exclude_namespaces.len(), 3);
        assert!(cli.run.self_managed_certs);
        assert_eq!(cli.run.log_format, LogFormat::Text);
    }

    #[test]
    fn help_documents_every_flag_and_its_environment_variable() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        for (flag, env) in [
            ("--kubeconfig", "KUBECONFIG"),
            ("--exclude-namespaces", "MTLS_GATE_EXCLUDE_NAMESPACES"),
            (
                "--leader-election-lease-name",
                "MTLS_GATE_LEADER_ELECTION_LEASE_NAME",
            ),
            ("--leader-election-namespace", "POD_NAMESPACE"),
            (
                "--leader-election-lease-duration",
                "MTLS_GATE_LEADER_ELECTION_LEASE_DURATION",
            ),
            (
                "--leader-election-renew-deadline",
                "MTLS_GATE_LEADER_ELECTION_RENEW_DEADLINE",
            ),
            (
                "--leader-election-retry-period",
                "MTLS_GATE_LEADER_ELECTION_RETRY_PERIOD",
            ),
            ("--pod-name", "POD_NAME"),
            ("--log-format", "MTLS_GATE_LOG_FORMAT"),
            ("--shutdown-grace-period", "MTLS_GATE_SHUTDOWN_GRACE_PERIOD"),
            ("--requeue-interval", "MTLS_GATE_REQUEUE_INTERVAL"),
            ("--listen", "MTLS_GATE_LISTEN"),
            ("--probe-listen", "MTLS_GATE_PROBE_LISTEN"),
            ("--tls-cert-file", "MTLS_GATE_TLS_CERT_FILE"),
            ("--tls-key-file", "MTLS_GATE_TLS_KEY_FILE"),
            ("--self-managed-certs", "MTLS_GATE_SELF_MANAGED_CERTS"),
            ("--cert-secret-name", "MTLS_GATE_CERT_SECRET_NAME"),
            ("--webhook-service-name", "MTLS_GATE_WEBHOOK_SERVICE_NAME"),
            ("--cluster-domain", "MTLS_GATE_CLUSTER_DOMAIN"),
            (
                "--validating-webhook-name",
                "MTLS_GATE_VALIDATING_WEBHOOK_NAME",
            ),
            ("--mutating-webhook-name", "MTLS_GATE_MUTATING_WEBHOOK_NAME"),
        ] {
            assert!(help.contains(flag), "{flag} missing from --help");
            assert!(
                help.contains(&format!("env: {env}")),
                "{env} missing from --help"
            );
        }
        for arg in Cli::command().get_arguments() {
            if arg.get_id() != "help" {
                assert!(
                    arg.get_help().is_some() || arg.get_long_help().is_some(),
                    "{} has no help",
                    arg.get_id()
                );
            }
        }
    }

    #[test]
    fn inconsistent_leader_timings_are_rejected() {
        let cli = Cli::try_parse_from([
            "x",
            "--leader-election-lease-duration=10s",
            "--leader-election-renew-deadline=10s",
        ])
        .unwrap();
        assert!(cli.run.validate().unwrap_err().contains("renew-deadline"));
    }
}
