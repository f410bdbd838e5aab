//! TLS settings for talking to kubelets (spec C.4, B.1 `--kubelet-*` flags).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

/// PEM material, from a file (flags, in-cluster `ca.crt`) or inline (kubeconfig `*-data`).
/// `Debug` never prints inline bytes (they may be a private key).
#[derive(Clone, PartialEq, Eq)]
pub enum PemSource {
    /// A PEM file, read when the client is built.
    File(PathBuf),
    /// PEM bytes.
    Inline(Vec<u8>),
}

impl std::fmt::Debug for PemSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
            Self::Inline(bytes) => write!(f, "Inline(<{} bytes>)", bytes.len()),
        }
    }
}

impl PemSource {
    fn read(&self) -> Result<Vec<u8>, TlsConfigError> {
        match self {
            Self::File(path) => std::fs::read(path).map_err(|source| TlsConfigError::Read {
                path: path.clone(),
                source,
            }),
            Self::Inline(bytes) => Ok(bytes.clone()),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::File(path) => path.display().to_string(),
            Self::Inline(_) => "inline PEM".to_owned(),
        }
    }
}

/// How the kubelet's serving certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerVerification {
    /// Verify the chain against these CAs and the URL host (DNS name or IP SAN).
    Ca(PemSource),
    /// `--kubelet-insecure-tls`: accept any certificate (handshake signatures are still checked).
    Insecure,
}

/// A client certificate and its key (`--kubelet-client-certificate`/`--kubelet-client-key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// Certificate chain, leaf first.
    pub cert: PemSource,
    /// PKCS#8, PKCS#1 or SEC1 private key.
    pub key: PemSource,
}

/// TLS settings for the HTTPS transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// Server certificate verification.
    pub verification: ServerVerification,
    /// Optional client certificate.
    pub client_cert: Option<ClientCert>,
}

/// Errors building the kubelet TLS config. Fatal at startup.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// A PEM file could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The PEM did not contain what was expected.
    #[error("{what} in {source_name}: {detail}")]
    Pem {
        /// What was being read ("CA certificate", "client key", ...).
        what: &'static str,
        /// File path or "inline PEM".
        source_name: String,
        /// What went wrong.
        detail: String,
    },
    /// rustls rejected the material.
    #[error("TLS config: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The crypto provider used for kubelet TLS (the project standardises on ring).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Kubelets whose TLS sessions are remembered for resumption (about 2.5 KiB of heap each,
/// measured by conn_memory without keep-alive; only once a kubelet was connected).
const RESUMPTION_SERVERS: usize = 20_000;

/// Builds the rustls client config. ALPN is left to hyper-rustls (`h2`, `http/1.1`).
pub(crate) fn client_config(
    settings: &TlsSettings,
) -> Result<rustls::ClientConfig, TlsConfigError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let builder = match &settings.verification {
        ServerVerification::Ca(source) => builder.with_root_certificates(root_store(source)?),
        ServerVerification::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert { provider })),
    };
    let mut config = match &settings.client_cert {
        None => builder.with_no_client_auth(),
        Some(cc) => {
            let (chain, key) = client_identity(cc)?;
            builder.with_client_auth_cert(chain, key)?
        }
    };
    // One remembered session per kubelet: a reconnect (idle timeout, kubelet restart, or
    // connections not kept) resumes instead of repeating the full handshake. rustls' default
    // remembers 256 servers, too few for a large cluster.
    config.resumption = rustls::client::Resumption::in_memory_sessions(RESUMPTION_SERVERS);
    Ok(config)
}

fn root_store(source: &PemSource) -> Result<RootCertStore, TlsConfigError> {
    let pem = source.read()?;
    let pem_err = |detail: String| TlsConfigError::Pem {
        what: "CA certificate",
        source_name: source.describe(),
        detail,
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| pem_err(e.to_string()))?;
        roots.add(cert)?;
    }
    if roots.is_empty() {
        return Err(pem_err("no certificates found".to_owned()));
    }
    Ok(roots)
}

fn client_identity(
    cc: &ClientCert,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsConfigError> {
    let cert_pem = cc.cert.read()?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsConfigError::Pem {
            what: "client certificate",
            source_name: cc.cert.describe(),
            detail: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsConfigError::Pem {
            what: "client certificate",
            source_name: cc.cert.describe(),
            detail: "no certificates found".to_owned(),
        });
    }
    let key_pem = cc.key.read()?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsConfigError::Pem {
        what: "client key",
        source_name: cc.key.describe(),
        detail: e.to_string(),
    })?;
    Ok((chain, key))
}

/// `--kubelet-insecure-tls`: trusts any certificate, like Go's `InsecureSkipVerify`, but still
/// checks that the peer owns the key it presented (handshake signatures).
#[derive(Debug)]
struct AcceptAnyServerCert {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
