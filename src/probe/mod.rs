//! `mtls-gate probe` (design.md §5 and §11, a fixed contract): checks what the deployed
//! endpoints really do. For every endpoint URL of a profile it opens two fresh TLS
//! connections, one without and one with the client certificate, sends one `GET` without
//! body or credentials on each, and judges the pair by the pass rules of §11.
//!
//! Not to be confused with [`crate::webhook`]'s health port (`/healthz`, `/readyz`).

pub mod client;
pub mod status;

use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use futures::StreamExt;
use rustls::client::Resumption;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Serialize;
use tokio::time::Instant;
use url::Url;

use crate::catalog::Scheme;
use crate::cli::{Outcome as ExitOutcome, Output};
use crate::manifest;
use crate::profile::CompiledProfile;

pub use client::{Attempt, Outcome};

/// The value templated segments (`{AccountId}`) are filled with: harmless, never a real id.
pub const PLACEHOLDER: &str = "mtls-gate-probe";

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// An ApiProviderProfile manifest (in addition to profiles found in PATH).
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Files or directories holding profiles; other objects are ignored.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Read the profiles from the cluster (kubeconfig or in-cluster service account)
    /// instead of files; `--name` narrows them.
    #[arg(long, env = "MTLS_GATE_PROBE_FROM_CLUSTER")]
    pub from_cluster: bool,
    /// With `--from-cluster`: only the profile of this name (repeatable).
    #[arg(long = "name", value_name = "PROFILE")]
    pub names: Vec<String>,
    /// Record the result in each profile's `status.probe` (server-side apply, field manager
    /// `mtls-gate-probe`). Needs a cluster connection.
    #[arg(long, env = "MTLS_GATE_PROBE_WRITE_STATUS")]
    pub write_status: bool,
    /// PEM certificate chain of the client certificate.
    #[arg(long, env = "MTLS_GATE_PROBE_CLIENT_CERT", value_name = "FILE")]
    pub client_cert: PathBuf,
    /// PEM private key of the client certificate.
    #[arg(long, env = "MTLS_GATE_PROBE_CLIENT_KEY", value_name = "FILE")]
    pub client_key: PathBuf,
    /// PEM trust anchors for the servers' certificates, instead of the system's (like
    /// curl's --cacert).
    #[arg(long, env = "MTLS_GATE_PROBE_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Connect to ADDRESS for HOST:PORT instead of resolving HOST, like curl's --resolve
    /// (repeatable; the port is not remapped).
    #[arg(long, value_name = "HOST:PORT:ADDRESS", value_parser = parse_resolve)]
    pub resolve: Vec<Resolve>,
    /// Report format.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: Output,
    /// Time allowed for each request (connect, handshake, response), in seconds.
    #[arg(long, default_value = "10", value_parser = parse_seconds)]
    pub timeout: Duration,
    /// Maximum requests per second to one host.
    #[arg(long, default_value = "10", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_rate: u32,
}

/// One `--resolve HOST:PORT:ADDRESS` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolve {
    pub host: String,
    pub port: u16,
    pub address: IpAddr,
}

/// Parses curl's `--resolve` syntax; IPv6 addresses may be written with or without `[]`.
pub fn parse_resolve(s: &str) -> Result<Resolve, String> {
    let (host, rest) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not HOST:PORT:ADDRESS"))?;
    let (port, address) = rest
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not HOST:PORT:ADDRESS"))?;
    if host.is_empty() {
        return Err(format!("{s:?}: HOST is empty"));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{s:?}: {port:?} is not a port"))?;
    let address = address.trim_start_matches('[').trim_end_matches(']');
    let address: IpAddr = address
        .parse()
        .map_err(|_| format!("{s:?}: {address:?} is not an IP address"))?;
    Ok(Resolve {
        host: host.to_ascii_lowercase(),
        port,
        address,
    })
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(0.05..=300.0).contains(&secs) {
        return Err(format!("{s} s is outside 0.05..300"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// One URL to probe.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    pub profile: String,
    /// The endpoint as the table writes it.
    pub endpoint: &'static str,
    pub scheme: Scheme,
    /// The URL probed (placeholders filled).
    pub url: Url,
    pub host: String,
    pub port: u16,
    /// The issuer-default URL of an endpoint the profile moved elsewhere.
    pub default_alias: bool,
}

/// Fills every `{Param}` path segment of a table URL with [`PLACEHOLDER`].
fn fill_placeholders(url: &str) -> String {
    let (head, path) = match url.find("://").map(|i| i + 3) {
        Some(start) => match url[start..].find('/') {
            Some(slash) => url.split_at(start + slash),
            None => (url, ""),
        },
        None => (url, ""),
    };
    let path: Vec<&str> = path
        .split('/')
        .map(|seg| {
            if seg.len() > 2 && seg.starts_with('{') && seg.ends_with('}') {
                PLACEHOLDER
            } else {
                seg
            }
        })
        .collect();
    format!("{head}{}", path.join("/"))
}

/// Every endpoint URL of the profile, in table order, issuer-default aliases included.
pub fn targets(profile: &CompiledProfile) -> anyhow::Result<Vec<ProbeTarget>> {
    profile
        .endpoints
        .iter()
        .map(|e| {
            let filled = fill_placeholders(&e.url);
            let url = Url::parse(&filled)
                .with_context(|| format!("profile {}: endpoint URL {filled:?}", profile.name))?;
            let host = url
                .host_str()
                .with_context(|| format!("profile {}: {filled:?} has no host", profile.name))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase();
            let port = url.port_or_known_default().unwrap_or(443);
            Ok(ProbeTarget {
                profile: profile.name.clone(),
                endpoint: e.row.endpoint,
                scheme: e.row.scheme,
                url,
                host,
                port,
                default_alias: e.default_alias,
            })
        })
        .collect()
}

/// The probe's finding on one URL.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeResult {
    pub profile: String,
    pub endpoint: &'static str,
    pub url: String,
    pub scheme: Scheme,
    /// The issuer-default URL of a moved endpoint (an extra row of §11).
    pub default_alias: bool,
    pub without_certificate: Attempt,
    pub with_certificate: Attempt,
    pub compliant: bool,
    pub reason: String,
}

fn describe(a: &Attempt) -> String {
    match a.status {
        Some(s) if a.outcome == Outcome::Response => format!("HTTP {s}"),
        _ => format!("{} ({})", a.outcome.as_str(), a.detail),
    }
}

/// The pass rules of design.md §11. A TLS endpoint must answer without a certificate (a
/// non-answer proves nothing and fails); an MTLS endpoint must refuse a client without a
/// certificate for certificate reasons, or answer it 401/403 while answering the same
/// request with the certificate differently, and must answer the request with the
/// certificate.
pub fn judge(
    scheme: Scheme,
    default_alias: bool,
    without: &Attempt,
    with: &Attempt,
) -> (bool, String) {
    if default_alias && without.outcome == Outcome::Response && without.status == Some(404) {
        return (
            true,
            "issuer-default URL of a moved endpoint: not served (HTTP 404)".into(),
        );
    }
    match scheme {
        Scheme::Tls => match without.outcome {
            Outcome::Response => (
                true,
                format!(
                    "accepts clients without a certificate ({})",
                    describe(without)
                ),
            ),
            Outcome::RefusedCertificate => (
                false,
                format!(
                    "TLS endpoint refuses clients without a certificate: {}",
                    without.detail
                ),
            ),
            _ => (
                false,
                format!("no answer without a certificate: {}", describe(without)),
            ),
        },
        Scheme::Mtls => {
            let without_ok = match without.outcome {
                Outcome::RefusedCertificate => Ok(format!(
                    "refused without a certificate ({})",
                    without.detail
                )),
                Outcome::Response => match without.status {
                    Some(s @ (401 | 403))
                        if with.outcome == Outcome::Response && with.status != Some(s) =>
                    {
                        Ok(format!(
                            "HTTP {s} without a certificate, {} with it",
                            describe(with)
                        ))
                    }
                    Some(s @ (401 | 403)) => Err(format!(
                        "HTTP {s} without a certificate, but {} with it: the certificate makes no difference",
                        describe(with)
                    )),
                    _ => Err(format!(
                        "MTLS endpoint answers without a client certificate ({})",
                        describe(without)
                    )),
                },
                _ => Err(format!(
                    "no answer without a certificate: {}",
                    describe(without)
                )),
            };
            let with_ok = match with.outcome {
                Outcome::Response => Ok(()),
                Outcome::RefusedCertificate => {
                    Err(format!("refuses the client certificate: {}", with.detail))
                }
                _ => Err(format!(
                    "no answer with the certificate: {}",
                    describe(with)
                )),
            };
            match (without_ok, with_ok) {
                (Ok(why), Ok(())) => (true, format!("{why}; {} with it", describe(with))),
                (Err(why), _) | (Ok(_), Err(why)) => (false, why),
            }
        }
    }
}

/// TLS client settings and pacing shared by every attempt.
pub struct ProbeClient {
    without_certificate: Arc<ClientConfig>,
    with_certificate: Arc<ClientConfig>,
    resolve: Vec<Resolve>,
    timeout: Duration,
    interval: Duration,
    /// Per host: the earliest time of its next request.
    next_slot: Mutex<HashMap<String, Instant>>,
}

/// Requests in flight at once (over all hosts; pacing still limits each host).
const CONCURRENCY: usize = 8;

impl ProbeClient {
    /// `roots` verify the servers; the client certificate is sent only by the second
    /// connection of each pair. Session resumption is off: every connection is a full
    /// handshake.
    pub fn new(
        roots: RootCertStore,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        resolve: Vec<Resolve>,
        timeout: Duration,
        max_rate: u32,
    ) -> anyhow::Result<Self> {
        let roots = Arc::new(roots);
        let builder = || {
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                .map(|b| b.with_root_certificates(roots.clone()))
        };
        let finish = |mut c: ClientConfig| {
            c.resumption = Resumption::disabled();
            c.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(c)
        };
        let without = builder()?.with_no_client_auth();
        let with = builder()?
            .with_client_auth_cert(chain, key)
            .context("the client certificate and key do not form a usable pair")?;
        Ok(Self {
            without_certificate: finish(without),
            with_certificate: finish(with),
            resolve,
            timeout,
            interval: Duration::from_secs(1) / max_rate.max(1),
            next_slot: Mutex::new(HashMap::new()),
        })
    }

    /// Waits for the host's next request slot.
    async fn pace(&self, host: &str) {
        let at = {
            let mut slots = self
                .next_slot
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = Instant::now();
            let slot = slots.get(host).copied().filter(|t| *t > now).unwrap_or(now);
            slots.insert(host.to_string(), slot + self.interval);
            slot
        };
        tokio::time::sleep_until(at).await;
    }

    async fn request(&self, target: &ProbeTarget, with_certificate: bool) -> Attempt {
        self.pace(&target.host).await;
        let address = self
            .resolve
            .iter()
            .find(|r| r.host == target.host && r.port == target.port)
            .map(|r| r.address);
        let path = target.url.path();
        let req = client::Request {
            host: &target.host,
            port: target.port,
            path,
            address,
        };
        let config = if with_certificate {
            &self.with_certificate
        } else {
            &self.without_certificate
        };
        client::attempt(config.clone(), &req, self.timeout).await
    }

    /// Probes one URL: without, then with the certificate.
    pub async fn probe(&self, target: &ProbeTarget) -> ProbeResult {
        let without = self.request(target, false).await;
        let with = self.request(target, true).await;
        let (compliant, reason) = judge(target.scheme, target.default_alias, &without, &with);
        ProbeResult {
            profile: target.profile.clone(),
            endpoint: target.endpoint,
            url: target.url.to_string(),
            scheme: target.scheme,
            default_alias: target.default_alias,
            without_certificate: without,
            with_certificate: with,
            compliant,
            reason,
        }
    }

    /// Probes every target, results in target order.
    pub async fn probe_all(&self, targets: &[ProbeTarget]) -> Vec<ProbeResult> {
        futures::stream::iter(targets)
            .map(|t| self.probe(t))
            .buffered(CONCURRENCY)
            .collect()
            .await
    }
}

/// The whole report, as `--output json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    pub compliant: bool,
    pub results: Vec<ProbeResult>,
}

impl ProbeReport {
    pub fn new(results: Vec<ProbeResult>) -> Self {
        Self {
            compliant: results.iter().all(|r| r.compliant),
            results,
        }
    }

    /// Some server answered at all (exit 2 otherwise).
    pub fn anything_reached(&self) -> bool {
        self.results.iter().any(|r| {
            r.without_certificate.outcome.reached() || r.with_certificate.outcome.reached()
        })
    }

    pub fn exit(&self) -> ExitOutcome {
        if !self.anything_reached() {
            ExitOutcome::UnusableInput
        } else if self.compliant {
            ExitOutcome::Compliant
        } else {
            ExitOutcome::Violations
        }
    }

    pub fn write_json(&self, out: &mut dyn Write) -> std::io::Result<()> {
        serde_json::to_writer_pretty(&mut *out, self)?;
        writeln!(out)
    }

    pub fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        for r in &self.results {
            writeln!(
                out,
                "{} {:<4} {}{}",
                if r.compliant { "PASS" } else { "FAIL" },
                r.scheme.as_str(),
                r.url,
                if r.default_alias {
                    " (issuer-default URL of a moved endpoint)"
                } else {
                    ""
                }
            )?;
            writeln!(
                out,
                "     {} [{}]: without certificate: {}; with certificate: {}",
                r.endpoint,
                r.profile,
                describe(&r.without_certificate),
                describe(&r.with_certificate)
            )?;
            if !r.compliant {
                writeln!(out, "     {}", r.reason)?;
            }
        }
        let passed = self.results.iter().filter(|r| r.compliant).count();
        writeln!(
            out,
            "{passed} of {} endpoint URLs behave as the table demands{}",
            self.results.len(),
            if self.anything_reached() {
                ""
            } else {
                "; no server could be reached"
            }
        )
    }
}

fn read_pem(path: &PathBuf, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{what} {}: cannot read", path.display()))
}

/// Builds the client from the command-line files.
pub fn client_from_args(args: &ProbeArgs) -> anyhow::Result<ProbeClient> {
    let cert_pem = read_pem(&args.client_cert, "--client-cert")?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("--client-cert {}", args.client_cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!(
            "--client-cert {}: no PEM certificate found",
            args.client_cert.display()
        );
    }
    let key_pem = read_pem(&args.client_key, "--client-key")?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).with_context(|| {
        format!(
            "--client-key {}: no PEM private key",
            args.client_key.display()
        )
    })?;
    let roots = match &args.ca_file {
        Some(path) => {
            let pem = read_pem(path, "--ca-file")?;
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.with_context(|| format!("--ca-file {}", path.display()))?;
                roots
                    .add(cert)
                    .with_context(|| format!("--ca-file {}", path.display()))?;
            }
            if roots.is_empty() {
                anyhow::bail!("--ca-file {}: no PEM certificate found", path.display());
            }
            roots
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                anyhow::bail!(
                    "no system trust anchors found ({} error(s)); pass --ca-file",
                    found.errors.len()
                );
            }
            roots
        }
    };
    ProbeClient::new(
        roots,
        chain,
        key,
        args.resolve.clone(),
        args.timeout,
        args.max_rate,
    )
}

/// Reads the profiles from `--profile` and PATH (every other kind is ignored).
pub fn profiles_from_files(args: &ProbeArgs) -> anyhow::Result<Vec<CompiledProfile>> {
    let mut paths = Vec::new();
    paths.extend(args.profile.iter().cloned());
    paths.extend(args.paths.iter().cloned());
    if paths.is_empty() {
        anyhow::bail!("no profile: pass --profile FILE, PATH, or --from-cluster");
    }
    let documents: Vec<_> = manifest::read_paths(&paths)?
        .into_iter()
        .filter(|d| d.kind() == "ApiProviderProfile")
        .collect();
    let loaded = manifest::load(documents, "default", false)?;
    if loaded.profiles.is_empty() {
        return Err(manifest::InputError::NoProfile.into());
    }
    Ok(loaded.profiles.into_iter().map(|(_, p)| p).collect())
}

/// `mtls-gate probe`: 0 every URL behaves as the table demands, 1 some do not, 2 unusable
/// input or nothing reachable.
pub async fn run(args: ProbeArgs, out: &mut dyn Write, err: &mut dyn Write) -> ExitOutcome {
    match run_inner(&args, out, err).await {
        Ok(outcome) => outcome,
        Err(e) => {
            let _ = writeln!(err, "error: {e:#}");
            ExitOutcome::UnusableInput
        }
    }
}

async fn run_inner(
    args: &ProbeArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<ExitOutcome> {
    if (args.from_cluster || args.write_status)
        && rustls::crypto::CryptoProvider::get_default().is_none()
    {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let kube_client = if args.from_cluster || args.write_status {
        Some(
            kube::Client::try_default()
                .await
                .context("cannot build a Kubernetes client")?,
        )
    } else {
        None
    };
    let profiles = match (&kube_client, args.from_cluster) {
        (Some(client), true) => status::profiles_from_cluster(client, &args.names).await?,
        _ => profiles_from_files(args)?,
    };
    let client = client_from_args(args)?;
    let mut targets_all = Vec::new();
    for p in &profiles {
        targets_all.extend(targets(p)?);
    }
    let results = client.probe_all(&targets_all).await;
    let report = ProbeReport::new(results);
    match args.output {
        Output::Json => report.write_json(out),
        Output::Text => report.write_text(out),
    }
    .context("cannot write the report")?;
    if let (Some(kube_client), true) = (&kube_client, args.write_status) {
        for p in &profiles {
            let probe_status = status::ProbeStatus::of(&p.name, &report.results);
            if let Err(e) = status::write(kube_client, &p.name, &probe_status).await {
                let _ = writeln!(
                    err,
                    "error: profile {}: cannot write status.probe: {e:#}",
                    p.name
                );
                return Ok(ExitOutcome::UnusableInput);
            }
        }
    }
    Ok(report.exit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(outcome: Outcome, status: Option<u16>) -> Attempt {
        Attempt {
            outcome,
            status,
            detail: "d".into(),
        }
    }

    #[test]
    fn pass_rules_of_section_11() {
        use Outcome::*;
        let r = |s| a(Response, Some(s));
        let cert = a(RefusedCertificate, None);
        let nginx400 = a(RefusedCertificate, Some(400));
        // (scheme, default alias, without, with, passes)
        let table = [
            (Scheme::Tls, false, r(200), r(200), true),
            (Scheme::Tls, false, r(404), cert.clone(), true),
            (Scheme::Tls, false, r(302), r(302), true),
            (Scheme::Tls, false, cert.clone(), r(200), false),
            (Scheme::Tls, false, nginx400.clone(), r(200), false),
            (Scheme::Tls, false, a(Unreachable, None), r(200), false),
            (Scheme::Tls, false, a(RefusedOther, None), r(200), false),
            (Scheme::Mtls, false, cert.clone(), r(200), true),
            (Scheme::Mtls, false, nginx400.clone(), r(404), true),
            (Scheme::Mtls, false, r(403), r(200), true),
            (Scheme::Mtls, false, r(401), r(404), true),
            (Scheme::Mtls, false, r(403), r(403), false),
            (Scheme::Mtls, false, r(200), r(200), false),
            (Scheme::Mtls, false, r(404), r(404), false),
            (Scheme::Mtls, false, cert.clone(), cert.clone(), false),
            (Scheme::Mtls, false, cert.clone(), a(Timeout, None), false),
            (Scheme::Mtls, false, a(RefusedOther, None), r(200), false),
            (Scheme::Mtls, false, a(Timeout, None), r(200), false),
            (Scheme::Mtls, true, r(404), r(404), true),
            (Scheme::Mtls, true, r(200), r(200), false),
            (Scheme::Tls, true, r(404), r(404), true),
        ];
        for (scheme, alias, without, with, want) in table {
            let (got, reason) = judge(scheme, alias, &without, &with);
            assert_eq!(
                got, want,
                "{scheme} alias={alias} {without:?} {with:?}: {reason}"
            );
        }
    }

    fn client(max_rate: u32) -> ProbeClient {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["client".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let key = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(cert.der().clone()).unwrap();
        ProbeClient::new(
            roots,
            vec![cert.der().clone()],
            key,
            Vec::new(),
            Duration::from_secs(1),
            max_rate,
        )
        .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn requests_to_one_host_are_paced_and_hosts_are_independent() {
        let client = client(4);
        let start = Instant::now();
        let mut at = Vec::new();
        for host in ["a", "a", "b", "a", "b"] {
            client.pace(host).await;
            at.push((host, Instant::now() - start));
        }
        let ms = |h: &str| -> Vec<u128> {
            at.iter()
                .filter(|(x, _)| *x == h)
                .map(|(_, d)| d.as_millis())
                .collect()
        };
        // 4 a second: 250 ms apart per host; host b is not slowed by host a.
        assert_eq!(ms("a"), vec![0, 250, 500]);
        assert_eq!(ms("b"), vec![250, 500]);
    }

    #[test]
    fn resolve_syntax_is_curls() {
        assert_eq!(
            parse_resolve("api.bank.example:443:127.0.0.1").unwrap(),
            Resolve {
                host: "api.bank.example".into(),
                port: 443,
                address: "127.0.0.1".parse().unwrap()
            }
        );
        assert_eq!(
            parse_resolve("h:8443:[::1]").unwrap().address,
            "::1".parse::<IpAddr>().unwrap()
        );
        for bad in [
            "h",
            "h:443",
            ":443:127.0.0.1",
            "h:x:127.0.0.1",
            "h:443:nope",
        ] {
            assert!(parse_resolve(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn templated_segments_get_the_placeholder() {
        assert_eq!(
            fill_placeholders("https://h:8443/open-banking-nz/v3.0/accounts/{AccountId}/balances"),
            "https://h:8443/open-banking-nz/v3.0/accounts/mtls-gate-probe/balances"
        );
        assert_eq!(fill_placeholders("https://h/token"), "https://h/token");
        assert_eq!(fill_placeholders("https://h"), "https://h");
    }
}
