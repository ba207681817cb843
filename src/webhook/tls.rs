//! Serving certificate: PEM loading, a swappable resolver, and the file poller that
//! reloads the pair when a mounted Secret changes.
//!
//! A pair is installed only when the key matches the leaf certificate and the leaf is
//! inside its validity window now (design §8: "a certificate that is expired or not yet
//! valid is never loaded, and readiness says so"; adversarial test F8: an expired pair
//! was loaded and every handshake failed while `/readyz` stayed 200). The leaf is parsed
//! with `x509-parser` (RFC 5280 `Validity`: `notBefore`, `notAfter`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::watch;

use super::metrics::WebhookMetrics;

/// Why a certificate/key pair could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("certificate file holds no PEM certificate: {0}")]
    NoCertificate(String),
    #[error("key file holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {0}")]
    NoKey(String),
    #[error("unsupported private key: {0}")]
    UnsupportedKey(rustls::Error),
    #[error("private key does not match the certificate: {0}")]
    KeyMismatch(rustls::Error),
    #[error("leaf certificate cannot be parsed as X.509: {0}")]
    BadCertificate(String),
    #[error("leaf certificate expired at {} (notAfter)", unix_text(*.not_after))]
    Expired { not_after: i64 },
    #[error("leaf certificate not valid before {} (notBefore)", unix_text(*.not_before))]
    NotYetValid { not_before: i64 },
}

/// A Unix time as RFC 3339-like UTC text for messages, e.g. `2026-01-01 0:00:00.0 +00:00:00`.
fn unix_text(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .map(|d| d.to_string())
        .unwrap_or_else(|_| format!("Unix time {t}"))
}

/// Seconds since the Unix epoch now.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The validity window of a certificate, in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: i64,
    pub not_after: i64,
}

impl Validity {
    /// The `Validity` of a DER certificate.
    pub fn of(der: &CertificateDer<'_>) -> Result<Self, CertError> {
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
            .map_err(|e| CertError::BadCertificate(e.to_string()))?;
        let v = cert.validity();
        Ok(Self {
            not_before: v.not_before.timestamp(),
            not_after: v.not_after.timestamp(),
        })
    }

    /// Refuses a window that does not contain `now` (Unix seconds; both ends inclusive,
    /// RFC 5280 §4.1.2.5).
    pub fn check(&self, now: i64) -> Result<(), CertError> {
        if now < self.not_before {
            return Err(CertError::NotYetValid {
                not_before: self.not_before,
            });
        }
        if now > self.not_after {
            return Err(CertError::Expired {
                not_after: self.not_after,
            });
        }
        Ok(())
    }
}

/// A pair fit to serve: key matching the leaf, leaf valid now.
pub struct ServingCert {
    pub key: Arc<CertifiedKey>,
    pub validity: Validity,
}

/// [`load_certified_key`], then refuses a leaf that is not valid at `now` (Unix seconds).
pub fn load_serving_pair(
    cert_pem: &[u8],
    key_pem: &[u8],
    now: i64,
) -> Result<ServingCert, CertError> {
    let key = load_certified_key(cert_pem, key_pem)?;
    let leaf = key
        .cert
        .first()
        .ok_or_else(|| CertError::NoCertificate("no CERTIFICATE section".into()))?;
    let validity = Validity::of(leaf)?;
    validity.check(now)?;
    Ok(ServingCert {
        key: Arc::new(key),
        validity,
    })
}

/// The crypto provider used everywhere in the webhook: `ring`, explicitly.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses a PEM certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or
/// SEC1; ECDSA, RSA or Ed25519) and checks that the key belongs to the leaf certificate.
pub fn load_certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, CertError> {
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::NoCertificate(e.to_string()))?;
    if certs.is_empty() {
        return Err(CertError::NoCertificate("no CERTIFICATE section".into()));
    }
    let key =
        PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| CertError::NoKey(e.to_string()))?;
    let signing_key =
        rustls::crypto::ring::sign::any_supported_type(&key).map_err(CertError::UnsupportedKey)?;
    let certified = CertifiedKey::new(certs, signing_key);
    // Strict: an unknown consistency (no public key available) is an error too.
    certified.keys_match().map_err(CertError::KeyMismatch)?;
    Ok(certified)
}

/// A [`ResolvesServerCert`] whose certificate can be swapped at run time. Handshakes take
/// a read lock for the duration of an `Arc` clone; the reloader takes the write lock only
/// to swap the pointer.
#[derive(Default)]
pub struct CertResolver {
    current: RwLock<Option<(Arc<CertifiedKey>, Option<Validity>)>>,
}

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertResolver")
            .field("loaded", &self.is_loaded())
            .finish()
    }
}

impl CertResolver {
    /// An empty resolver: handshakes fail until [`CertResolver::set`] is called.
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs `key` for all new handshakes (its validity read from the leaf, if it
    /// parses). The reloader installs only pairs checked by [`load_serving_pair`].
    pub fn set(&self, key: Arc<CertifiedKey>) {
        let validity = key.cert.first().and_then(|c| Validity::of(c).ok());
        let mut guard = self.current.write().unwrap_or_else(|e| e.into_inner());
        *guard = Some((key, validity));
    }

    /// The certificate new handshakes get, if one is loaded.
    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(k, _)| k.clone())
    }

    /// The loaded leaf's validity window, if a certificate is loaded and parses.
    pub fn validity(&self) -> Option<Validity> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|(_, v)| *v)
    }

    /// True once a certificate is loaded.
    pub fn is_loaded(&self) -> bool {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current()
    }
}

/// A rustls server configuration (ring provider, TLS 1.3 and 1.2, no client auth,
/// certificate from `resolver`) advertising `alpn` (e.g. `h2`, `http/1.1`).
pub fn server_config(
    resolver: Arc<CertResolver>,
    alpn: &[&[u8]],
) -> Result<rustls::ServerConfig, rustls::Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(server_crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    // The server's order, not the client's: see `server_crypto_provider`.
    config.ignore_client_order = true;
    Ok(config)
}

/// The provider of [`crypto_provider`] with the SHA-256 suites first. Every suite it
/// offers stays an ECDHE AEAD suite; only the order changes. ring computes SHA-256 with the
/// CPU's SHA extensions where they exist, SHA-384 (SHA-512's compression) never: in a flood
/// of new connections (adversarial test F3, F7) the SHA-512 compression of
/// `TLS13_AES_256_GCM_SHA384`, rustls's first choice, was 8.4 % of the server's CPU
/// (`perf`, BENCHMARKS.md). Go's TLS client (the API server) puts the AES-128 suites first
/// on CPUs with AES instructions anyway.
fn server_crypto_provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    // Stable: SHA-256 suites before the others, each group in ring's order.
    provider.cipher_suites.sort_by_key(|suite| {
        let common = match suite {
            rustls::SupportedCipherSuite::Tls13(s) => &s.common,
            rustls::SupportedCipherSuite::Tls12(s) => &s.common,
        };
        common.hash_provider.algorithm() != rustls::crypto::hash::HashAlgorithm::SHA256
    });
    Arc::new(provider)
}

/// What the files held at the last attempt, so unchanged files are not re-parsed and a
/// broken pair is reported once, not at every poll.
#[derive(PartialEq, Eq)]
enum Seen {
    Content { cert: Vec<u8>, key: Vec<u8> },
    Unreadable(String),
}

/// Polls the certificate and key files and swaps a new, valid pair into the resolver.
pub struct CertReloader {
    cert_path: PathBuf,
    key_path: PathBuf,
    resolver: Arc<CertResolver>,
    metrics: Arc<WebhookMetrics>,
    last: Option<Seen>,
    /// The last pair was refused as not yet valid: look at it again from this Unix time.
    retry_at: Option<i64>,
}

impl CertReloader {
    pub fn new(
        cert_path: impl Into<PathBuf>,
        key_path: impl Into<PathBuf>,
        resolver: Arc<CertResolver>,
        metrics: Arc<WebhookMetrics>,
    ) -> Self {
        Self {
            cert_path: cert_path.into(),
            key_path: key_path.into(),
            resolver,
            metrics,
            last: None,
            retry_at: None,
        }
    }

    async fn read_pair(&self) -> Result<(Vec<u8>, Vec<u8>), CertError> {
        async fn read(path: &Path) -> Result<Vec<u8>, CertError> {
            tokio::fs::read(path)
                .await
                .map_err(|source| CertError::Read {
                    path: path.to_owned(),
                    source,
                })
        }
        let cert = read(&self.cert_path).await?;
        let key = read(&self.key_path).await?;
        Ok((cert, key))
    }

    /// Reads both files once; if they changed since the last attempt, tries to load them.
    /// Returns true when a new certificate was installed.
    pub async fn poll_once(&mut self) -> bool {
        let first = self.read_pair().await;
        let seen = match &first {
            Ok((cert, key)) => Seen::Content {
                cert: cert.clone(),
                key: key.clone(),
            },
            Err(e) => Seen::Unreadable(e.to_string()),
        };
        let due = self.retry_at.is_some_and(|t| unix_now() >= t);
        if self.last.as_ref() == Some(&seen) && !due {
            return false;
        }
        let (cert, key) = match first {
            Ok(pair) => pair,
            Err(e) => {
                // Missing files at start-up are normal (Secret not yet mounted or issued):
                // keep polling. Later, the old pair keeps serving.
                if self.resolver.is_loaded() {
                    tracing::warn!(error = %e, "serving certificate files unreadable; keeping the loaded certificate");
                } else {
                    tracing::warn!(error = %e, "serving certificate not available yet; not ready");
                }
                self.metrics.reload(false);
                self.last = Some(seen);
                return false;
            }
        };
        // The two files are read one after the other; kubelet swaps both at once, so a
        // read in the middle of a swap can pair an old certificate with a new key. Read
        // again: if the files moved under us, try again at the next poll, without
        // counting a failure.
        match self.read_pair().await {
            Ok((cert2, key2)) if cert2 == cert && key2 == key => {}
            _ => {
                tracing::debug!(
                    "certificate files changed while being read; retrying at next poll"
                );
                return false;
            }
        }
        self.last = Some(seen);
        self.retry_at = None;
        match load_serving_pair(&cert, &key, unix_now()) {
            Ok(serving) => {
                self.resolver.set(serving.key);
                self.metrics
                    .certificate_not_after
                    .set(serving.validity.not_after);
                self.metrics.reload(true);
                tracing::info!(
                    cert = %self.cert_path.display(),
                    not_after = %unix_text(serving.validity.not_after),
                    "serving certificate loaded"
                );
                true
            }
            Err(e) => {
                if let CertError::NotYetValid { not_before } = e {
                    self.retry_at = Some(not_before);
                }
                self.metrics.reload(false);
                tracing::error!(
                    error = %e,
                    cert = %self.cert_path.display(),
                    key = %self.key_path.display(),
                    kept_previous = self.resolver.is_loaded(),
                    "new serving certificate rejected"
                );
                false
            }
        }
    }

    /// Polls every `interval` until `stop` turns true (or its sender is dropped).
    pub async fn run(mut self, interval: Duration, mut stop: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(10)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => { self.poll_once().await; }
                () = async { let _ = stop.wait_for(|s| *s).await; } => return,
            }
        }
    }
}
