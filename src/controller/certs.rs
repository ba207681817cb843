//! Self-managed webhook certificates (`--self-managed-certs`).
//!
//! The leader keeps the Secret `--cert-secret-name` (in its namespace) holding a CA
//! (`ca.crt`, `ca.key`) and a serving certificate for `<service>.<ns>.svc` and
//! `<service>.<ns>.svc.<cluster domain>` (`tls.crt`, `tls.key`), all ECDSA P-256 made with
//! rcgen (ring). The CA is valid 5 years and the serving certificate 1 year; each is
//! replaced once less than a third of its validity remains. A new CA is published next to
//! the previous one in `ca.crt` while the previous one is valid, so API servers trust both
//! the pods that still serve the old certificate and those that reloaded the new one.
//! `caBundle` of every webhook in the ValidatingWebhookConfiguration and
//! MutatingWebhookConfiguration is set to `ca.crt` when it differs.
//!
//! Every write carries the `resourceVersion` read just before, so two replicas that both
//! believe they lead never overwrite each other: the loser gets 409 and retries later.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::{Api, Client};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::{PemObject, SectionKind};

use super::leader::Leadership;
use super::metrics::ControllerMetrics;

pub const CA_VALIDITY: Duration = Duration::from_secs(5 * 365 * 24 * 3600);
pub const SERVING_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// Annotation on the Secret: the DNS names the serving certificate was issued for.
pub const SERVING_NAMES: &str = "mtls-gate.io/serving-names";
/// Backdating of `notBefore`, for clocks slightly behind.
const BACKDATE: Duration = Duration::from_secs(3600);

/// Where the certificates live and whom they serve.
#[derive(Debug, Clone)]
pub struct CertConfig {
    pub namespace: String,
    pub secret_name: String,
    pub service_name: String,
    pub cluster_domain: String,
    pub validating_webhook: String,
    pub mutating_webhook: String,
    /// Further names (DNS names or IP addresses) the serving certificate is issued for: the
    /// host of a webhook `clientConfig.url`, when the API server calls the webhooks by URL
    /// rather than through the Service (`--cert-extra-san`).
    pub extra_sans: Vec<String>,
}

impl CertConfig {
    /// Names of the serving certificate: the Service's DNS names, then the extra SANs.
    pub fn dns_names(&self) -> Vec<String> {
        let base = format!("{}.{}.svc", self.service_name, self.namespace);
        let mut names = vec![base.clone()];
        if !self.cluster_domain.is_empty() {
            names.push(format!("{base}.{}", self.cluster_domain.trim_matches('.')));
        }
        for extra in &self.extra_sans {
            if !names.contains(extra) {
                names.push(extra.clone());
            }
        }
        names
    }
}

/// A subjectAltName entry: an IP address SAN for an address (TLS clients match IP hosts
/// only against those, RFC 6125 §1.7.2 / Go's crypto/x509), else a DNS name.
fn san(name: &str) -> Result<SanType, rcgen::Error> {
    match name.parse::<std::net::IpAddr>() {
        Ok(ip) => Ok(SanType::IpAddress(ip)),
        Err(_) => Ok(SanType::DnsName(name.to_string().try_into()?)),
    }
}

/// Validity of an X.509 certificate, in Unix seconds, read with `x509-parser` (the same
/// reading the webhook applies to the pair it serves).
pub use crate::webhook::tls::Validity;

impl Validity {
    /// Less than a third of the validity period remains at `now` (or it is not valid yet
    /// by more than the backdating, or already expired).
    pub fn needs_rotation(&self, now: i64) -> bool {
        let total = self.not_after - self.not_before;
        if total <= 0
            || now >= self.not_after
            || now + (BACKDATE.as_secs() as i64) < self.not_before
        {
            return true;
        }
        (self.not_after - now) * 3 < total
    }
}

/// The validity of a DER certificate, `None` if it is not a readable X.509 certificate.
pub fn validity_of_der(der: &[u8]) -> Option<Validity> {
    Validity::of(&CertificateDer::from(der)).ok()
}

/// The DER certificates of a PEM bundle, in order.
pub fn pem_certificates(pem: &[u8]) -> Vec<Vec<u8>> {
    <(SectionKind, Vec<u8>)>::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .filter(|(k, _)| *k == SectionKind::Certificate)
        .map(|(_, der)| der)
        .collect()
}

fn first_validity(pem: &[u8]) -> Option<Validity> {
    pem_certificates(pem)
        .first()
        .and_then(|d| validity_of_der(d))
}

// ---- Decisions --------------------------------------------------------------------------

/// What the Secret needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertAction {
    Keep,
    /// New serving certificate from the current CA.
    IssueServing(String),
    /// New CA and serving certificate.
    IssueAll(String),
}

fn data_bytes<'a>(data: &'a BTreeMap<String, ByteString>, key: &str) -> Option<&'a [u8]> {
    data.get(key)
        .map(|b| b.0.as_slice())
        .filter(|b| !b.is_empty())
}

/// Decides whether the Secret's certificates must be (re)issued at `now` (Unix seconds).
pub fn decide(secret: Option<&Secret>, names: &[String], now: i64) -> CertAction {
    let Some(secret) = secret else {
        return CertAction::IssueAll("the Secret does not exist".into());
    };
    let empty = BTreeMap::new();
    let data = secret.data.as_ref().unwrap_or(&empty);
    let (Some(ca), Some(ca_key)) = (data_bytes(data, "ca.crt"), data_bytes(data, "ca.key")) else {
        return CertAction::IssueAll("ca.crt or ca.key is missing".into());
    };
    let Some(ca_validity) = first_validity(ca) else {
        return CertAction::IssueAll("ca.crt holds no readable certificate".into());
    };
    if std::str::from_utf8(ca_key)
        .ok()
        .and_then(|k| KeyPair::from_pem(k).ok())
        .is_none()
    {
        return CertAction::IssueAll("ca.key is not a readable private key".into());
    }
    if ca_validity.needs_rotation(now) {
        return CertAction::IssueAll("less than a third of the CA's validity remains".into());
    }
    let (Some(crt), Some(_)) = (data_bytes(data, "tls.crt"), data_bytes(data, "tls.key")) else {
        return CertAction::IssueServing("tls.crt or tls.key is missing".into());
    };
    let Some(v) = first_validity(crt) else {
        return CertAction::IssueServing("tls.crt holds no readable certificate".into());
    };
    if v.needs_rotation(now) {
        return CertAction::IssueServing(
            "less than a third of the serving certificate's validity remains".into(),
        );
    }
    if v.not_after > ca_validity.not_after {
        return CertAction::IssueServing("the serving certificate outlives its CA".into());
    }
    let issued_for = secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SERVING_NAMES));
    if issued_for.map(String::as_str) != Some(names.join(",").as_str()) {
        return CertAction::IssueServing("the service DNS names changed".into());
    }
    CertAction::Keep
}

/// Whether a webhook's caBundle must be set to `bundle`.
pub fn ca_bundle_differs(current: Option<&ByteString>, bundle: &[u8]) -> bool {
    current.map(|b| b.0.as_slice()) != Some(bundle)
}

// ---- Issuing ----------------------------------------------------------------------------

fn offset(unix: i64) -> Result<time::OffsetDateTime, rcgen::Error> {
    time::OffsetDateTime::from_unix_timestamp(unix).map_err(|_| rcgen::Error::Time)
}

fn ca_params(not_before: i64) -> Result<CertificateParams, rcgen::Error> {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(DnType::OrganizationName, "mtls-gate");
    // The start time makes every CA's name unique: the old and the new CA sit side by side
    // in `ca.crt` during a rotation.
    p.distinguished_name.push(
        DnType::CommonName,
        format!("mtls-gate webhook CA {not_before}"),
    );
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = offset(not_before)?;
    p.not_after = offset(not_before + CA_VALIDITY.as_secs() as i64)?;
    Ok(p)
}

fn serving_params(
    names: &[String],
    now: i64,
    ca_not_after: i64,
) -> Result<CertificateParams, rcgen::Error> {
    let mut p = CertificateParams::new(names.to_vec())?;
    p.subject_alt_names = names.iter().map(|n| san(n)).collect::<Result<_, _>>()?;
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(
        DnType::CommonName,
        names.first().cloned().unwrap_or_default(),
    );
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.use_authority_key_identifier_extension = true;
    let not_before = now - BACKDATE.as_secs() as i64;
    p.not_before = offset(not_before)?;
    p.not_after = offset((not_before + SERVING_VALIDITY.as_secs() as i64).min(ca_not_after))?;
    Ok(p)
}

/// Builds the Secret data for `action` from the current data.
pub fn issue(
    action: &CertAction,
    current: Option<&BTreeMap<String, ByteString>>,
    names: &[String],
    now: i64,
) -> Result<BTreeMap<String, ByteString>, rcgen::Error> {
    let empty = BTreeMap::new();
    let current = current.unwrap_or(&empty);
    let (ca_pem_bundle, issuer, ca_validity) = match action {
        CertAction::Keep => return Ok(current.clone()),
        CertAction::IssueAll(_) => {
            let nb = now - BACKDATE.as_secs() as i64;
            let params = ca_params(nb)?;
            let key = KeyPair::generate()?;
            let cert = params.self_signed(&key)?;
            let mut bundle = cert.pem();
            // Keep the previous CA while it is valid: pods that have not reloaded yet still
            // serve certificates it issued.
            if let Some(old) = data_bytes(current, "ca.crt")
                && let Some(der) = pem_certificates(old).into_iter().next()
                && validity_of_der(&der).is_some_and(|v| v.not_after > now)
            {
                bundle.push_str(&pem_encode(&der));
            }
            let validity = Validity {
                not_before: nb,
                not_after: nb + CA_VALIDITY.as_secs() as i64,
            };
            (bundle, Issuer::new(params, key), validity)
        }
        CertAction::IssueServing(_) => {
            let bundle = data_bytes(current, "ca.crt")
                .and_then(|b| std::str::from_utf8(b).ok())
                .ok_or(rcgen::Error::CouldNotParseCertificate)?
                .to_string();
            let ca_der = pem_certificates(bundle.as_bytes())
                .into_iter()
                .next()
                .map(CertificateDer::from)
                .ok_or(rcgen::Error::CouldNotParseCertificate)?;
            let validity =
                Validity::of(&ca_der).map_err(|_| rcgen::Error::CouldNotParseCertificate)?;
            let key = data_bytes(current, "ca.key")
                .and_then(|b| std::str::from_utf8(b).ok())
                .ok_or(rcgen::Error::CouldNotParseKeyPair)
                .and_then(KeyPair::from_pem)?;
            // The issuer's name and key identifier come from the CA certificate itself.
            (bundle, Issuer::from_ca_cert_der(&ca_der, key)?, validity)
        }
    };
    let ca_key_pem = issuer.key().serialize_pem();
    let leaf_key = KeyPair::generate()?;
    let leaf = serving_params(names, now, ca_validity.not_after)?.signed_by(&leaf_key, &issuer)?;
    let mut data = BTreeMap::new();
    data.insert("ca.crt".into(), ByteString(ca_pem_bundle.into_bytes()));
    data.insert("ca.key".into(), ByteString(ca_key_pem.into_bytes()));
    data.insert("tls.crt".into(), ByteString(leaf.pem().into_bytes()));
    data.insert(
        "tls.key".into(),
        ByteString(leaf_key.serialize_pem().into_bytes()),
    );
    Ok(data)
}

/// A DER certificate as PEM text, with `\n` line ends as rcgen writes them.
fn pem_encode(der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new("CERTIFICATE", der), config)
}

// ---- Kubernetes -------------------------------------------------------------------------

/// What one [`ensure`] round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnsureOutcome {
    pub secret_written: bool,
    pub webhooks_patched: Vec<String>,
    /// Another replica wrote first (409); the next round picks its result up.
    pub lost_race: bool,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_conflict() || s.is_already_exists())
}

/// One round: Secret first, then the caBundles. Only call it as the leader.
pub async fn ensure(
    client: &Client,
    cfg: &CertConfig,
    now: i64,
    metrics: Option<&ControllerMetrics>,
) -> anyhow::Result<EnsureOutcome> {
    let mut outcome = EnsureOutcome::default();
    let names = cfg.dns_names();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &cfg.namespace);
    let existing = secrets.get_opt(&cfg.secret_name).await?;
    let action = decide(existing.as_ref(), &names, now);
    let data = match &action {
        CertAction::Keep => existing
            .as_ref()
            .and_then(|s| s.data.clone())
            .unwrap_or_default(),
        CertAction::IssueAll(why) | CertAction::IssueServing(why) => {
            tracing::info!(secret = %cfg.secret_name, reason = %why, all = matches!(action, CertAction::IssueAll(_)), "issuing webhook certificates");
            let data = issue(
                &action,
                existing.as_ref().and_then(|s| s.data.as_ref()),
                &names,
                now,
            )?;
            let mut annotations = existing
                .as_ref()
                .and_then(|s| s.metadata.annotations.clone())
                .unwrap_or_default();
            annotations.insert(SERVING_NAMES.into(), names.join(","));
            let result = match existing.clone() {
                None => {
                    let secret = Secret {
                        metadata: ObjectMeta {
                            name: Some(cfg.secret_name.clone()),
                            namespace: Some(cfg.namespace.clone()),
                            annotations: Some(annotations),
                            labels: Some(
                                [(
                                    "app.kubernetes.io/managed-by".to_string(),
                                    "mtls-gate".to_string(),
                                )]
                                .into(),
                            ),
                            ..Default::default()
                        },
                        type_: Some("kubernetes.io/tls".into()),
                        data: Some(data.clone()),
                        ..Default::default()
                    };
                    secrets
                        .create(&PostParams::default(), &secret)
                        .await
                        .map(|_| "create")
                }
                Some(mut secret) => {
                    // resourceVersion from the read above: optimistic concurrency.
                    secret.metadata.annotations = Some(annotations);
                    secret.metadata.managed_fields = None;
                    secret.data = Some(data.clone());
                    secret.string_data = None;
                    secrets
                        .replace(&cfg.secret_name, &PostParams::default(), &secret)
                        .await
                        .map(|_| "update")
                }
            };
            match result {
                Ok(verb) => {
                    outcome.secret_written = true;
                    if let Some(m) = metrics {
                        m.write("Secret", verb);
                    }
                }
                Err(e) if conflict(&e) => {
                    outcome.lost_race = true;
                    return Ok(outcome);
                }
                Err(e) => return Err(e.into()),
            }
            data
        }
    };
    let Some(bundle) = data.get("ca.crt").map(|b| b.0.clone()) else {
        return Ok(outcome);
    };

    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    sync_ca_bundle(
        validating,
        "ValidatingWebhookConfiguration",
        &cfg.validating_webhook,
        &bundle,
        &mut outcome,
        metrics,
        |c| {
            c.webhooks
                .iter_mut()
                .flatten()
                .map(|w| &mut w.client_config)
                .collect()
        },
    )
    .await?;
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    sync_ca_bundle(
        mutating,
        "MutatingWebhookConfiguration",
        &cfg.mutating_webhook,
        &bundle,
        &mut outcome,
        metrics,
        |c| {
            c.webhooks
                .iter_mut()
                .flatten()
                .map(|w| &mut w.client_config)
                .collect()
        },
    )
    .await?;
    if !outcome.webhooks_patched.is_empty() {
        tracing::info!(updated = ?outcome.webhooks_patched, "webhook caBundle updated");
    }
    Ok(outcome)
}

/// Writes `bundle` into every webhook's `caBundle` of the named configuration (Validating or
/// Mutating) where it differs. A 409 means another replica wrote first: noted, not an error.
async fn sync_ca_bundle<K>(
    api: Api<K>,
    kind: &'static str,
    name: &str,
    bundle: &[u8],
    outcome: &mut EnsureOutcome,
    metrics: Option<&ControllerMetrics>,
    client_configs: impl Fn(&mut K) -> Vec<&mut WebhookClientConfig>,
) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
{
    let Some(mut obj) = api.get_opt(name).await? else {
        tracing::debug!(name = %name, kind = %kind, "webhook configuration not found");
        return Ok(());
    };
    let mut changed = false;
    for config in client_configs(&mut obj) {
        if ca_bundle_differs(config.ca_bundle.as_ref(), bundle) {
            config.ca_bundle = Some(ByteString(bundle.to_vec()));
            changed = true;
        }
    }
    if !changed {
        return Ok(());
    }
    obj.meta_mut().managed_fields = None;
    match api.replace(name, &PostParams::default(), &obj).await {
        Ok(_) => {
            outcome.webhooks_patched.push(format!("{kind}/{name}"));
            if let Some(m) = metrics {
                m.write(kind, "update");
            }
            Ok(())
        }
        Err(e) if conflict(&e) => {
            outcome.lost_race = true;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// While leading: a round at once, then every `period` (30 s after a failure).
pub async fn run(
    client: Client,
    cfg: CertConfig,
    leadership: Leadership,
    metrics: std::sync::Arc<ControllerMetrics>,
    period: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    tokio::pin!(shutdown);
    let mut changes = leadership.subscribe();
    let mut wait = Duration::ZERO;
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => return,
            _ = changes.changed() => {}
            () = tokio::time::sleep(wait) => {}
        }
        if !leadership.is_leader() {
            wait = period;
            continue;
        }
        wait = match ensure(&client, &cfg, unix_now(), Some(&metrics)).await {
            Ok(o) if o.lost_race => Duration::from_secs(5),
            Ok(_) => period,
            Err(e) => {
                tracing::warn!(secret = %cfg.secret_name, error = %e, "could not ensure the webhook certificates");
                Duration::from_secs(30)
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    fn cfg() -> CertConfig {
        CertConfig {
            namespace: "mtls-gate".into(),
            secret_name: "mtls-gate-webhook-tls".into(),
            service_name: "mtls-gate".into(),
            cluster_domain: "cluster.local".into(),
            validating_webhook: "mtls-gate".into(),
            mutating_webhook: "mtls-gate".into(),
            extra_sans: Vec::new(),
        }
    }

    fn secret_with(data: BTreeMap<String, ByteString>, names: &[String]) -> Secret {
        Secret {
            metadata: ObjectMeta {
                annotations: Some([(SERVING_NAMES.to_string(), names.join(","))].into()),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        }
    }

    #[test]
    fn dns_names() {
        assert_eq!(
            cfg().dns_names(),
            [
                "mtls-gate.mtls-gate.svc",
                "mtls-gate.mtls-gate.svc.cluster.local"
            ]
        );
    }

    #[test]
    fn extra_sans_are_issued_as_ip_or_dns_names() {
        let with_extras = CertConfig {
            extra_sans: vec![
                "127.0.0.1".into(),
                "webhook.bank.example".into(),
                "mtls-gate.mtls-gate.svc".into(),
                "::1".into(),
            ],
            ..cfg()
        };
        let names = with_extras.dns_names();
        assert_eq!(
            names,
            [
                "mtls-gate.mtls-gate.svc",
                "mtls-gate.mtls-gate.svc.cluster.local",
                "127.0.0.1",
                "webhook.bank.example",
                "::1"
            ]
        );
        let data = issue(
            &CertAction::IssueAll("new".into()),
            None,
            &names,
            1_800_000_000,
        )
        .unwrap();
        let der = &pem_certificates(&data["tls.crt"].0)[0];
        let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
        let sans: Vec<String> = cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(d) => format!("DNS:{d}"),
                x509_parser::extensions::GeneralName::IPAddress(ip) => format!("IP:{ip:?}"),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            sans,
            [
                "DNS:mtls-gate.mtls-gate.svc",
                "DNS:mtls-gate.mtls-gate.svc.cluster.local",
                "IP:[127, 0, 0, 1]",
                "DNS:webhook.bank.example",
                "IP:[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]"
            ]
        );
        // A changed list of extra names is a changed list of names: reissued.
        let secret = secret_with(data, &names);
        assert!(matches!(
            decide(Some(&secret), &cfg().dns_names(), 1_800_000_000),
            CertAction::IssueServing(_)
        ));
    }

    #[test]
    fn rotation_thresholds() {
        let v = Validity {
            not_before: 0,
            not_after: 300,
        };
        assert!(!v.needs_rotation(0));
        assert!(!v.needs_rotation(199));
        assert!(v.needs_rotation(201));
        assert!(v.needs_rotation(300));
        assert!(v.needs_rotation(-10_000), "not valid yet");
    }

    #[test]
    fn issue_decide_and_rotate() {
        let names = cfg().dns_names();
        let now = 1_800_000_000;
        assert!(matches!(decide(None, &names, now), CertAction::IssueAll(_)));
        let data = issue(&CertAction::IssueAll("new".into()), None, &names, now).unwrap();
        let ca = validity_of_der(&pem_certificates(&data["ca.crt"].0)[0]).unwrap();
        assert_eq!(ca.not_after - ca.not_before, CA_VALIDITY.as_secs() as i64);
        let leaf = validity_of_der(&pem_certificates(&data["tls.crt"].0)[0]).unwrap();
        assert_eq!(
            leaf.not_after - leaf.not_before,
            SERVING_VALIDITY.as_secs() as i64
        );
        let secret = secret_with(data.clone(), &names);
        assert_eq!(decide(Some(&secret), &names, now), CertAction::Keep);
        // Names changed.
        let other = vec!["x.y.svc".to_string()];
        assert!(matches!(
            decide(Some(&secret), &other, now),
            CertAction::IssueServing(_)
        ));
        // Serving certificate near its end (2/3 of a year later).
        let later = now + 250 * DAY;
        assert!(matches!(
            decide(Some(&secret), &names, later),
            CertAction::IssueServing(_)
        ));
        let renewed = issue(
            &CertAction::IssueServing("old".into()),
            Some(&data),
            &names,
            later,
        )
        .unwrap();
        assert_eq!(renewed["ca.crt"], data["ca.crt"], "same CA");
        assert_eq!(renewed["ca.key"], data["ca.key"]);
        assert_ne!(renewed["tls.crt"], data["tls.crt"]);
        verify_chain(&renewed, later);
        // CA near its end: new CA, the old one stays in the bundle while valid.
        let much_later = now + 4 * 365 * DAY;
        let s2 = secret_with(renewed.clone(), &names);
        assert!(matches!(
            decide(Some(&s2), &names, much_later),
            CertAction::IssueAll(_)
        ));
        let rotated = issue(
            &CertAction::IssueAll("ca".into()),
            Some(&renewed),
            &names,
            much_later,
        )
        .unwrap();
        let cas = pem_certificates(&rotated["ca.crt"].0);
        assert_eq!(cas.len(), 2);
        assert_eq!(cas[1], pem_certificates(&data["ca.crt"].0)[0]);
        verify_chain(&rotated, much_later);
        // Broken data: everything again.
        let mut broken = data.clone();
        broken.insert("ca.key".into(), ByteString(b"nope".to_vec()));
        assert!(matches!(
            decide(Some(&secret_with(broken, &names)), &names, now),
            CertAction::IssueAll(_)
        ));
    }

    /// A CA the operator did not make (another name, no start time in it) still issues the
    /// serving certificate: the issuer is rebuilt from the stored CA certificate.
    #[test]
    fn serving_certificate_from_a_ca_made_elsewhere() {
        let names = cfg().dns_names();
        let now = 1_800_000_000;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "Bank Platform Webhook CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        params.not_before = offset(now - DAY).unwrap();
        params.not_after = offset(now + 3 * 365 * DAY).unwrap();
        let key = KeyPair::generate().unwrap();
        let ca = params.self_signed(&key).unwrap();
        let data = BTreeMap::from([
            ("ca.crt".to_string(), ByteString(ca.pem().into_bytes())),
            (
                "ca.key".to_string(),
                ByteString(key.serialize_pem().into_bytes()),
            ),
        ]);
        let action = decide(Some(&secret_with(data.clone(), &names)), &names, now);
        assert!(matches!(action, CertAction::IssueServing(_)), "{action:?}");
        let issued = issue(&action, Some(&data), &names, now).unwrap();
        assert_eq!(issued["ca.crt"], data["ca.crt"], "the CA is kept");
        verify_chain(&issued, now);
    }

    /// The serving certificate chains to the first CA of the bundle, for the service name.
    fn verify_chain(data: &BTreeMap<String, ByteString>, now: i64) {
        let ca_der =
            rustls_pki_types::CertificateDer::from(pem_certificates(&data["ca.crt"].0)[0].clone());
        let anchor = webpki::anchor_from_trusted_cert(&ca_der).unwrap();
        let leaf_der =
            rustls_pki_types::CertificateDer::from(pem_certificates(&data["tls.crt"].0)[0].clone());
        let leaf = webpki::EndEntityCert::try_from(&leaf_der).unwrap();
        let time = rustls_pki_types::UnixTime::since_unix_epoch(Duration::from_secs(now as u64));
        leaf.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &[anchor],
            &[],
            time,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .unwrap();
        let name = rustls_pki_types::ServerName::try_from("mtls-gate.mtls-gate.svc").unwrap();
        leaf.verify_is_valid_for_subject_name(&name).unwrap();
    }

    #[test]
    fn ca_bundle_comparison() {
        assert!(ca_bundle_differs(None, b"x"));
        assert!(ca_bundle_differs(Some(&ByteString(b"y".to_vec())), b"x"));
        assert!(!ca_bundle_differs(Some(&ByteString(b"x".to_vec())), b"x"));
    }
}
