//! A test CA made at test time, its leaves, and a TLS client that trusts it.

use std::net::SocketAddr;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::Site;

/// A test CA that signs leaves.
pub struct Pki {
    pub ca: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

/// A leaf certificate and its key, as PEM, and the leaf's DER to recognise it by.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
    /// notAfter, in seconds since the Unix epoch.
    pub not_after_unix: i64,
}

impl Pki {
    pub fn new() -> Pki {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "isthmus test CA");
        let ca = params.self_signed(&key).unwrap();
        Pki { ca: ca.der().clone(), issuer: Issuer::new(params, key) }
    }

    pub fn leaf(&self, names: &[&str]) -> Leaf {
        self.leaf_until(names, rcgen::date_time_ymd(4000, 1, 1))
    }

    pub fn leaf_until(&self, names: &[&str], not_after: time::OffsetDateTime) -> Leaf {
        self.sign(names, not_after, KeyPair::generate().unwrap())
    }

    /// A renewal of `leaf`: a new certificate for the same key.
    pub fn leaf_with_key(&self, names: &[&str], leaf: &Leaf) -> Leaf {
        self.sign(names, rcgen::date_time_ymd(4001, 1, 1), KeyPair::from_pem(&leaf.key_pem).unwrap())
    }

    fn sign(&self, names: &[&str], not_after: time::OffsetDateTime, key: KeyPair) -> Leaf {
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = not_after;
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
            not_after_unix: not_after.unix_timestamp(),
        }
    }

    pub fn client(&self, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        let provider = Arc::new(isthmus::tls::crypto_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

impl Site {
    /// `tls/NAME.pem` and `tls/NAME.key`, each written beside and renamed over as
    /// certificate tools do, so that a reload never reads half a file.
    pub fn write_pair(&self, name: &str, leaf: &Leaf) {
        for (ext, text) in [("pem", &leaf.cert_pem), ("key", &leaf.key_pem)] {
            let tmp = self.write(&format!("tls/.{name}.{ext}.tmp"), text);
            std::fs::rename(tmp, self.path().join(format!("tls/{name}.{ext}"))).unwrap();
        }
    }
}

pub async fn connect(addr: SocketAddr, connector: &tokio_rustls::TlsConnector, sni: &str) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    connector.connect(ServerName::try_from(sni.to_owned()).unwrap(), tcp).await.unwrap()
}

/// The leaf certificate the server presented.
pub fn presented(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().unwrap()[0].clone().into_owned()
}
