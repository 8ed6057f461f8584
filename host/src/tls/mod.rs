//! TLS on the public listener: rustls on ring, TLS 1.3 and 1.2, ALPN `h2` and
//! `http/1.1`, a certificate chosen by the client's SNI among `[listen.tls]`'s pairs,
//! and those pairs reloaded from their files (`crate::reload`: file change, SIGHUP)
//! without touching open connections. A bad new set keeps the old one serving.

mod certificate;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

pub use self::certificate::Certificate;
use crate::config;
use crate::limits;
use crate::metrics::Metrics;
use crate::reload::Reload;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    #[error("the key {} does not belong to the certificate {}: {reason}", key.display(), cert.display())]
    Mismatch { cert: PathBuf, key: PathBuf, reason: String },
}

impl TlsError {
    fn file(path: &Path, message: String) -> TlsError {
        TlsError::File { path: path.to_owned(), message }
    }
}

/// rustls on `ring`, which builds with no cmake or C toolchain beyond the machine's.
/// rustls 0.23.48 deprecates it because ring has no post-quantum key exchange
/// (X25519MLKEM768 needs the aws-lc-rs provider, and aws-lc-rs needs cmake here): the
/// classical groups (X25519, P-256, P-384) are what it offers.
#[allow(deprecated)]
pub fn crypto_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The listener's TLS settings; the certificates inside can be swapped while serving.
pub struct Tls {
    server_config: Arc<rustls::ServerConfig>,
    certificates: Arc<Certificates>,
}

impl Tls {
    /// Read and check every pair of `[listen.tls]`; each load and reload sets the
    /// certificates' expiry in `metrics`.
    pub fn new(config: &config::Tls, metrics: &Arc<Metrics>) -> Result<Tls, TlsError> {
        let provider = Arc::new(crypto_provider());
        let pairs: Vec<(PathBuf, PathBuf)> = config.pairs().map(|(c, k)| (c.to_owned(), k.to_owned())).collect();
        let (set, digest) = CertificateSet::read(&pairs, &provider)?;
        set.loaded("TLS certificate loaded", metrics);
        let certificates = Arc::new(Certificates {
            pairs,
            provider: provider.clone(),
            current: ArcSwap::from_pointee((set, digest)),
            reload_lock: Mutex::new(()),
            metrics: metrics.clone(),
        });
        let mut server_config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::file(&config.cert, format!("TLS set-up: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(certificates.clone());
        server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        // Resumption by ticket spares returning clients the key exchange.
        server_config.ticketer = rustls::crypto::ring::Ticketer::new()
            .map_err(|e| TlsError::file(&config.cert, format!("TLS session tickets: {e}")))?;
        Ok(Tls { server_config: Arc::new(server_config), certificates })
    }

    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.server_config.clone())
    }

    /// The certificates serving now, the default first.
    pub fn certificates(&self) -> Vec<Arc<Certificate>> {
        self.certificates.current.load().0.all.clone()
    }

    /// What reloads the certificates (`crate::reload`).
    pub fn reloadable(&self) -> Arc<dyn Reload> {
        self.certificates.clone()
    }
}

/// The pairs' files and the set last read from them; rustls asks it for a
/// certificate on every handshake.
struct Certificates {
    pairs: Vec<(PathBuf, PathBuf)>,
    provider: Arc<CryptoProvider>,
    /// The set, and the SHA-256 of the files it was read from.
    current: ArcSwap<(CertificateSet, [u8; 32])>,
    reload_lock: Mutex<()>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificates").field("pairs", &self.pairs).finish_non_exhaustive()
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let current = self.current.load();
        Some(current.0.choose(hello.server_name()).clone())
    }
}

impl Reload for Certificates {
    fn files(&self) -> Vec<PathBuf> {
        self.pairs.iter().flat_map(|(c, k)| [c.clone(), k.clone()]).collect()
    }

    fn refresh(&self, only_if_changed: bool) {
        let _serial = self.reload_lock.lock().unwrap_or_else(|e| e.into_inner());
        match CertificateSet::read(&self.pairs, &self.provider) {
            Ok((_, digest)) if only_if_changed && digest == self.current.load().1 => {}
            Ok((set, digest)) => {
                set.loaded("TLS certificate reloaded", &self.metrics);
                self.current.store(Arc::new((set, digest)));
            }
            Err(e) => tracing::error!(error = %e, "TLS certificates not reloaded; the previous ones keep serving"),
        }
    }
}

/// Certificates by the names they serve.
struct CertificateSet {
    all: Vec<Arc<Certificate>>,
    /// Exact names and `*.`-wildcards of every pair; the first pair to claim a name has it.
    by_name: HashMap<String, Arc<CertifiedKey>>,
}

impl CertificateSet {
    fn read(pairs: &[(PathBuf, PathBuf)], provider: &CryptoProvider) -> Result<(CertificateSet, [u8; 32]), TlsError> {
        let read = |path: &Path| std::fs::read(path).map_err(|e| TlsError::file(path, format!("cannot read: {e}")));
        let mut digest = Sha256::new();
        let mut all = Vec::with_capacity(pairs.len());
        let mut by_name = HashMap::new();
        for (cert_file, key_file) in pairs {
            let (cert_pem, key_pem) = (read(cert_file)?, read(key_file)?);
            digest.update(&cert_pem);
            digest.update(&key_pem);
            let certificate = Arc::new(Certificate::from_pem(&cert_pem, &key_pem, cert_file, key_file, provider)?);
            for name in &certificate.names {
                by_name.entry(name.clone()).or_insert_with(|| certificate.key.clone());
            }
            all.push(certificate);
        }
        Ok((CertificateSet { all, by_name }, digest.finalize().into()))
    }

    /// The pair for a client's SNI: an exact name, else a wildcard one label up, else
    /// the default (also for clients sending no SNI, or an IP address).
    fn choose(&self, sni: Option<&str>) -> &Arc<CertifiedKey> {
        let found = sni.and_then(|name| {
            let name = name.to_ascii_lowercase();
            self.by_name.get(&name).or_else(|| {
                let (_, parent) = name.split_once('.')?;
                self.by_name.get(&format!("*.{parent}"))
            })
        });
        found.unwrap_or(&self.all[0].key)
    }

    /// Logs each certificate's names and expiry (a warning when it is near, an error
    /// when it is past) and sets its expiry gauge.
    fn loaded(&self, what: &str, metrics: &Metrics) {
        let now = SystemTime::now();
        for c in &self.all {
            let expiry = c.not_after.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
            metrics.tls_certificate_expiry(c.label(), expiry);
            let names = c.names.join(", ");
            match c.validity(now, limits::TLS_EXPIRY_WARNING) {
                Ok(None) => {
                    tracing::info!(file = %c.cert_file.display(), names, expires = %httpdate::fmt_http_date(c.not_after), "{what}")
                }
                Ok(Some(soon)) => tracing::warn!(names, "{what}: {soon}"),
                Err(bad) => tracing::error!(names, "{what}: {bad}; clients will refuse it"),
            }
        }
    }
}
