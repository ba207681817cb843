//! Serving certificate: PEM loading, a swappable resolver, and the file poller that
//! reloads the pair when a mounted Secret changes.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

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
    current: RwLock<Option<Arc<CertifiedKey>>>,
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

    /// Installs `key` for all new handshakes.
    pub fn set(&self, key: Arc<CertifiedKey>) {
        let mut guard = self.current.write().unwrap_or_else(|e| e.into_inner());
        *guard = Some(key);
    }

    /// The certificate new handshakes get, if one is loaded.
    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
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
    let mut config = rustls::ServerConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
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
        if self.last.as_ref() == Some(&seen) {
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
        match load_certified_key(&cert, &key) {
            Ok(certified) => {
                self.resolver.set(Arc::new(certified));
                self.metrics.reload(true);
                tracing::info!(cert = %self.cert_path.display(), "serving certificate loaded");
                true
            }
            Err(e) => {
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
