//! One certificate chain and its key, read from PEM files and checked against each
//! other, with what the gateway needs to know of the leaf: its names (for SNI) and
//! its validity period.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::TlsError;

pub struct Certificate {
    pub key: Arc<CertifiedKey>,
    /// DNS names of the leaf (subjectAltName; the subject's CN when it has none),
    /// lowercase; wildcards as `*.example.com`.
    pub names: Vec<String>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    pub cert_file: PathBuf,
}

impl Certificate {
    /// Parse and check a pair read from `cert_file` and `key_file`: the key must be the leaf's.
    pub fn from_pem(
        cert_pem: &[u8],
        key_pem: &[u8],
        cert_file: &Path,
        key_file: &Path,
        provider: &CryptoProvider,
    ) -> Result<Certificate, TlsError> {
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::file(cert_file, format!("not a PEM certificate chain: {e}")))?;
        let Some(leaf) = chain.first() else {
            return Err(TlsError::file(cert_file, "holds no CERTIFICATE block".into()));
        };
        let (names, not_before, not_after) = leaf_info(leaf).map_err(|m| TlsError::file(cert_file, m))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| TlsError::file(key_file, format!("no PEM private key (PKCS#8, PKCS#1 or SEC1): {e}")))?;
        let signing_key = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| TlsError::file(key_file, format!("unusable private key: {e}")))?;
        let key = CertifiedKey::new(chain, signing_key);
        if let Err(e) = key.keys_match() {
            return Err(TlsError::Mismatch {
                cert: cert_file.to_owned(),
                key: key_file.to_owned(),
                reason: e.to_string(),
            });
        }
        Ok(Certificate { key: Arc::new(key), names, not_before, not_after, cert_file: cert_file.to_owned() })
    }

    /// What metrics call it: its first DNS name, else its file's name (bounded by the config).
    pub fn label(&self) -> &str {
        self.names
            .first()
            .map(String::as_str)
            .or_else(|| self.cert_file.file_name().and_then(|n| n.to_str()))
            .unwrap_or("")
    }

    /// What is wrong with its dates at `now`, if anything: expired, not valid yet, or
    /// (`Ok(Some)`) expiring within `warn_within`.
    pub fn validity(&self, now: SystemTime, warn_within: Duration) -> Result<Option<String>, String> {
        let subject = format!("{} ({})", self.cert_file.display(), self.names.join(", "));
        if now >= self.not_after {
            return Err(format!("{subject} expired on {}", httpdate::fmt_http_date(self.not_after)));
        }
        if now < self.not_before {
            return Err(format!("{subject} is not valid before {}", httpdate::fmt_http_date(self.not_before)));
        }
        let left = self.not_after.duration_since(now).unwrap_or_default();
        Ok((left < warn_within).then(|| {
            format!(
                "{subject} expires in {} days, on {}",
                left.as_secs() / 86_400,
                httpdate::fmt_http_date(self.not_after)
            )
        }))
    }
}

fn leaf_info(leaf: &CertificateDer<'_>) -> Result<(Vec<String>, SystemTime, SystemTime), String> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) =
        x509_parser::parse_x509_certificate(leaf).map_err(|e| format!("unreadable leaf certificate: {e}"))?;
    let mut names: Vec<String> = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        Ok(None) => Vec::new(),
        Err(e) => return Err(format!("unreadable subjectAltName: {e}")),
    };
    if names.is_empty() {
        names.extend(cert.subject().iter_common_name().filter_map(|cn| cn.as_str().ok()).map(str::to_ascii_lowercase));
    }
    let time = |t: x509_parser::time::ASN1Time| {
        let secs = t.timestamp();
        if secs >= 0 {
            SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64)
        } else {
            SystemTime::UNIX_EPOCH
        }
    };
    Ok((names, time(cert.validity().not_before), time(cert.validity().not_after)))
}
