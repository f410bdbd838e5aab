//! A throw-away PKI minted with rcgen at test time: one CA, then server and client leaves.
//!
//! Nothing here is meant to be secure; it exists so tests never commit PEM files and can
//! produce exactly the SANs a case needs (an IP SAN for `127.0.0.1`, a deliberately wrong
//! DNS name, a client certificate with groups in `O=`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Errors from minting certificates or building TLS configs.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused the parameters (for example an invalid DNS name).
    #[error("minting certificate: {0}")]
    Mint(#[from] rcgen::Error),
    /// rustls refused the certificate, key or CA.
    #[error("building TLS config: {0}")]
    Tls(#[from] rustls::Error),
    /// The client verifier could not be built from the CA.
    #[error("building client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// Writing PEM files failed.
    #[error("writing PEM files: {0}")]
    Io(#[from] std::io::Error),
}

/// The crypto provider every config in this crate uses (the project standardises on ring).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A test certificate authority that issues server and client leaves.
pub struct TestPki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for TestPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPki").finish_non_exhaustive()
    }
}

/// A leaf certificate and its private key, in PEM and DER.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    /// The leaf certificate, PEM encoded.
    pub cert_pem: String,
    /// The leaf's PKCS#8 private key, PEM encoded.
    pub key_pem: String,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl TestPki {
    /// Mints a fresh self-signed CA (ECDSA P-256).
    pub fn new() -> Result<Self, PkiError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = dn("metrics-server-rs test CA", &[]);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        Ok(Self { ca })
    }

    /// The CA certificate, PEM encoded (what `--kubelet-certificate-authority` points at).
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// The CA certificate, DER encoded.
    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.ca.der().clone()
    }

    /// A root store that trusts only this CA.
    pub fn root_store(&self) -> Result<RootCertStore, PkiError> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der())?;
        Ok(roots)
    }

    /// Issues a serving certificate. Each SAN that parses as an IP address becomes an IP SAN,
    /// everything else a DNS SAN. The first SAN is also the CN.
    pub fn server_cert(&self, sans: &[&str]) -> Result<IssuedCert, PkiError> {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())?;
        params.distinguished_name = dn(sans.first().copied().unwrap_or("server"), &[]);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.issue(params)
    }

    /// Like [`Self::server_cert`], but valid only during 2001 (long expired).
    pub fn expired_server_cert(&self, sans: &[&str]) -> Result<IssuedCert, PkiError> {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())?;
        params.distinguished_name = dn(sans.first().copied().unwrap_or("server"), &[]);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = rcgen::date_time_ymd(2001, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 12, 31);
        self.issue(params)
    }

    /// Issues a client certificate with `CN=cn` and one `O=` per org (Kubernetes groups).
    pub fn client_cert(&self, cn: &str, orgs: &[&str]) -> Result<IssuedCert, PkiError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = dn(cn, orgs);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.issue(params)
    }

    /// Like [`Self::client_cert`], but valid only during 2001 (long expired).
    pub fn expired_client_cert(&self, cn: &str, orgs: &[&str]) -> Result<IssuedCert, PkiError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = dn(cn, orgs);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = rcgen::date_time_ymd(2001, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 12, 31);
        self.issue(params)
    }

    fn issue(&self, params: CertificateParams) -> Result<IssuedCert, PkiError> {
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.ca)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        })
    }
}

fn dn(cn: &str, orgs: &[&str]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    for org in orgs {
        dn.push(DnType::OrganizationName, *org);
    }
    dn
}

impl IssuedCert {
    /// The certificate chain to present (just the leaf; peers trust the CA directly).
    pub fn cert_chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.cert_der.clone()]
    }

    /// The private key in the form rustls wants.
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }

    /// A rustls server config presenting this certificate, offering `h2` and `http/1.1`.
    /// With `client_ca_pem`, a client certificate signed by that CA is required.
    pub fn server_config(
        &self,
        client_ca_pem: Option<&str>,
    ) -> Result<Arc<rustls::ServerConfig>, PkiError> {
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?;
        let builder = match client_ca_pem {
            None => builder.with_no_client_auth(),
            Some(pem) => {
                let roots = Arc::new(roots_from_pem(pem)?);
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(roots, provider()).build()?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(self.cert_chain(), self.private_key())?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        // Like a Go server (a kubelet): one stateless session ticket per handshake.
        config.ticketer = rustls::crypto::ring::Ticketer::new()?;
        config.send_tls13_tickets = 1;
        Ok(Arc::new(config))
    }
}

/// Parses every certificate in a PEM bundle into a root store.
pub fn roots_from_pem(pem: &str) -> Result<RootCertStore, PkiError> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| rustls::Error::General(format!("bad PEM: {e}")))?;
        roots.add(cert)?;
    }
    Ok(roots)
}

/// A temporary directory for PEM and token files; removed on drop.
#[derive(Debug)]
pub struct PemDir {
    dir: tempfile::TempDir,
}

impl PemDir {
    /// Creates an empty temporary directory.
    pub fn new() -> Result<Self, PkiError> {
        Ok(Self {
            dir: tempfile::Builder::new().prefix("ms-rs-test-").tempdir()?,
        })
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes (or overwrites) `name` with `contents` and returns its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> Result<PathBuf, PkiError> {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents)?;
        Ok(path)
    }

    /// Writes `<stem>.crt` and `<stem>.key` for an issued certificate; returns (cert, key) paths.
    pub fn write_cert(
        &self,
        stem: &str,
        cert: &IssuedCert,
    ) -> Result<(PathBuf, PathBuf), PkiError> {
        Ok((
            self.write(&format!("{stem}.crt"), &cert.cert_pem)?,
            self.write(&format!("{stem}.key"), &cert.key_pem)?,
        ))
    }
}
