//! Serving TLS (spec F.1): the serving certificate, the `--tls-*` flags and the handshake's
//! client-certificate policy.

use std::fs;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ResolvesServerCert, WantsServerCert};
use rustls::{
    CipherSuite, ConfigBuilder, DigitallySignedStruct, DistinguishedName, ServerConfig,
    SignatureScheme, SupportedCipherSuite, SupportedProtocolVersion,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

use crate::error::{Error, flag_error};

/// The crypto provider used everywhere in this crate (the project standardises on ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

// === TLS flags ===

/// Lowest TLS version accepted (`--tls-min-version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVersion {
    /// TLS 1.2 (the default, as in Go).
    #[default]
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

impl TlsVersion {
    /// Parses a Go `--tls-min-version` value. Empty means the default (TLS 1.2).
    ///
    /// `VersionTLS10` and `VersionTLS11` are rejected rather than silently raised to 1.2:
    /// rustls cannot speak them, and an operator who asked for them should find out at start.
    pub fn parse(value: &str) -> Result<Self, Error> {
        match value {
            "" | "VersionTLS12" => Ok(Self::Tls12),
            "VersionTLS13" => Ok(Self::Tls13),
            "VersionTLS10" | "VersionTLS11" => Err(flag_error(
                "tls-min-version",
                value,
                "TLS 1.0 and 1.1 are not supported by this server (rustls); use VersionTLS12 or VersionTLS13",
            )),
            _ => Err(flag_error(
                "tls-min-version",
                value,
                format!("unknown tls version {value:?}"),
            )),
        }
    }

    fn protocol_versions(self) -> &'static [&'static SupportedProtocolVersion] {
        static BOTH: [&SupportedProtocolVersion; 2] =
            [&rustls::version::TLS13, &rustls::version::TLS12];
        static ONLY13: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        match self {
            Self::Tls12 => &BOTH,
            Self::Tls13 => &ONLY13,
        }
    }
}

/// Go cipher-suite names that rustls does not implement (CBC, RSA key exchange, 3DES, RC4).
/// They are accepted with a warning so that hardening-guide flag lists keep working.
const GO_ONLY_SUITES: &[&str] = &[
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_RSA_WITH_RC4_128_SHA",
];

/// Maps a Go/IANA TLS 1.2 suite name to the rustls suite id.
fn tls12_suite_id(name: &str) -> Option<CipherSuite> {
    Some(match name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => {
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        }
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => {
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        }
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305"
        | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => {
            CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => {
            CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        }
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => {
            CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
        }
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => {
            CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        _ => return None,
    })
}

/// TLS 1.3 suites cannot be configured in Go either; naming them is accepted and changes nothing.
const TLS13_NAMES: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// The `--tls-*` and HTTP/2 serving options, validated.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    min_version: TlsVersion,
    /// `None` keeps the provider's defaults; `Some` is the TLS 1.2 allow-list in flag order.
    tls12_suites: Option<Vec<CipherSuite>>,
    http2: bool,
}

impl Default for TlsOptions {
    fn default() -> Self {
        Self {
            min_version: TlsVersion::Tls12,
            tls12_suites: None,
            http2: true,
        }
    }
}

impl TlsOptions {
    /// Validates `--tls-min-version`, `--tls-cipher-suites` and `--disable-http2-serving`.
    ///
    /// Unknown suite names are an error naming the flag (Go: `Cipher suite X not supported or
    /// doesn't exist`). Suites Go knows but rustls lacks are skipped with a warning.
    pub fn from_flags(
        min_version: &str,
        cipher_suites: &[String],
        disable_http2: bool,
    ) -> Result<Self, Error> {
        let min_version = TlsVersion::parse(min_version)?;
        let tls12_suites = if cipher_suites.is_empty() {
            None
        } else {
            let mut ids = Vec::new();
            for name in cipher_suites {
                let name = name.trim();
                if let Some(id) = tls12_suite_id(name) {
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                } else if TLS13_NAMES.contains(&name) {
                    // Always enabled, as in Go.
                } else if GO_ONLY_SUITES.contains(&name) {
                    tracing::warn!(
                        suite = name,
                        "--tls-cipher-suites: suite is not implemented by rustls and is skipped"
                    );
                } else {
                    return Err(flag_error(
                        "tls-cipher-suites",
                        &cipher_suites.join(","),
                        format!("Cipher suite {name} not supported or doesn't exist"),
                    ));
                }
            }
            if ids.is_empty() && min_version == TlsVersion::Tls12 {
                tracing::warn!(
                    "--tls-cipher-suites names no TLS 1.2 suite rustls supports; only TLS 1.3 will be negotiated"
                );
            }
            Some(ids)
        };
        Ok(Self {
            min_version,
            tls12_suites,
            http2: !disable_http2,
        })
    }

    /// The minimum TLS version.
    pub fn min_version(&self) -> TlsVersion {
        self.min_version
    }

    /// Whether `h2` is offered through ALPN.
    pub fn http2(&self) -> bool {
        self.http2
    }

    /// The ALPN protocols offered, most preferred first.
    pub fn alpn_protocols(&self) -> Vec<Vec<u8>> {
        if self.http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        }
    }

    /// The crypto provider restricted to the configured suites.
    fn crypto_provider(&self) -> CryptoProvider {
        let mut p = rustls::crypto::ring::default_provider();
        if let Some(allowed) = &self.tls12_suites {
            let tls13: Vec<SupportedCipherSuite> = p
                .cipher_suites
                .iter()
                .filter(|s| matches!(s, SupportedCipherSuite::Tls13(_)))
                .copied()
                .collect();
            let tls12 = allowed.iter().filter_map(|id| {
                p.cipher_suites
                    .iter()
                    .find(|s| s.suite() == *id && matches!(s, SupportedCipherSuite::Tls12(_)))
                    .copied()
            });
            p.cipher_suites = tls13.into_iter().chain(tls12).collect();
        }
        p
    }
}

// === Serving certificate ===

/// Where the serving certificate came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// `--tls-cert-file` / `--tls-private-key-file`.
    Files,
    /// `<cert-dir>/apiserver.{crt,key}` existed and was reused.
    Reused(PathBuf),
    /// A self-signed pair was generated and written into the cert dir.
    Generated(PathBuf),
}

/// The serving certificate chain (leaf first) and its private key.
#[derive(Debug)]
pub struct ServingCerts {
    /// Leaf first, then any appended chain certificates.
    pub chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// Where it came from.
    pub source: CertSource,
}

impl Clone for ServingCerts {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            source: self.source.clone(),
        }
    }
}

/// File names used in `--cert-dir`, as upstream (`PairName = "apiserver"`).
pub const CERT_FILE_NAME: &str = "apiserver.crt";
/// See [`CERT_FILE_NAME`].
pub const KEY_FILE_NAME: &str = "apiserver.key";

impl ServingCerts {
    /// Applies the upstream precedence: explicit files, else `<cert-dir>/apiserver.*` reused,
    /// else generated there. `bind` is `--bind-address`; a specific address becomes an IP SAN.
    pub fn from_flags(
        tls_cert_file: Option<&Path>,
        tls_private_key_file: Option<&Path>,
        cert_dir: &Path,
        bind: IpAddr,
    ) -> Result<Self, Error> {
        match (tls_cert_file, tls_private_key_file) {
            (Some(c), Some(k)) => Self::from_files(c, k),
            (Some(_), None) => Err(Error::Pair(
                "missing filename for serving key: --tls-private-key-file is required with --tls-cert-file".into(),
            )),
            (None, Some(_)) => Err(Error::Pair(
                "missing filename for serving cert: --tls-cert-file is required with --tls-private-key-file".into(),
            )),
            (None, None) => Self::load_or_generate(cert_dir, bind),
        }
    }

    /// Loads a PEM certificate file (leaf plus optional chain) and a PEM key file
    /// (PKCS#1, PKCS#8 or SEC1).
    pub fn from_files(cert_file: &Path, key_file: &Path) -> Result<Self, Error> {
        let cert_pem = read(cert_file)?;
        let key_pem = read(key_file)?;
        let mut certs = Self::from_pem(&cert_pem, &key_pem, &cert_file.display().to_string())?;
        certs.source = CertSource::Files;
        Ok(certs)
    }

    /// Parses PEM bytes. `what` names the source in errors.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8], what: &str) -> Result<Self, Error> {
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::BadPem {
                what: what.to_owned(),
                reason: e.to_string(),
            })?;
        if chain.is_empty() {
            return Err(Error::BadPem {
                what: what.to_owned(),
                reason: "no certificate found".into(),
            });
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| Error::BadPem {
            what: format!("private key for {what}"),
            reason: e.to_string(),
        })?;
        Ok(Self {
            chain,
            key,
            source: CertSource::Files,
        })
    }

    /// Reuses `<cert_dir>/apiserver.{crt,key}` if both are readable, else generates a
    /// self-signed pair and writes it there (creating the directory).
    pub fn load_or_generate(cert_dir: &Path, bind: IpAddr) -> Result<Self, Error> {
        let cert_path = cert_dir.join(CERT_FILE_NAME);
        let key_path = cert_dir.join(KEY_FILE_NAME);
        let cert_ok = fs::File::open(&cert_path).is_ok();
        let key_ok = fs::File::open(&key_path).is_ok();
        match (cert_ok, key_ok) {
            (true, true) => {
                let mut certs = Self::from_files(&cert_path, &key_path)?;
                certs.source = CertSource::Reused(cert_dir.to_owned());
                return Ok(certs);
            }
            (true, false) | (false, true) => {
                let missing = if cert_ok { &key_path } else { &cert_path };
                return Err(Error::Pair(format!(
                    "error reading {}, certificate and key must be supplied as a pair",
                    missing.display()
                )));
            }
            (false, false) => {}
        }

        // Upstream: an unspecified bind address adds DNS "localhost", a specific one its IP.
        let mut alt_ips = vec![IpAddr::from([127, 0, 0, 1])];
        if !bind.is_unspecified() && !alt_ips.contains(&bind) {
            alt_ips.push(bind);
        }
        let generated = generate_self_signed("localhost", &alt_ips, &[])?;
        fs::create_dir_all(cert_dir).map_err(|source| Error::Write {
            path: cert_dir.to_owned(),
            source,
        })?;
        write_file(&cert_path, generated.cert_pem.as_bytes(), 0o644)?;
        write_file(&key_path, generated.key_pem.as_bytes(), 0o600)?;
        tracing::info!(
            cert = %cert_path.display(),
            key = %key_path.display(),
            "Generated self-signed cert"
        );
        let mut certs = Self::from_pem(
            generated.cert_pem.as_bytes(),
            generated.key_pem.as_bytes(),
            "generated certificate",
        )?;
        certs.source = CertSource::Generated(cert_dir.to_owned());
        Ok(certs)
    }

    /// The private key.
    pub fn key(&self) -> &PrivateKeyDer<'static> {
        &self.key
    }
}

/// A generated self-signed pair, PEM encoded.
#[derive(Debug, Clone)]
pub struct GeneratedPair {
    /// Leaf certificate followed by its CA.
    pub cert_pem: String,
    /// The leaf's private key (PKCS#8).
    pub key_pem: String,
}

/// Mirrors client-go's `GenerateSelfSignedCertKeyWithFixtures`: a CA `<host>-ca@<unix>` and a
/// serving leaf `<host>@<unix>`, both valid from one hour ago for one year, cert file = leaf
/// then CA. Keys are ECDSA P-256 rather than RSA-2048 because ring cannot generate RSA keys;
/// the aggregator does not verify this certificate (`insecureSkipTLSVerify`).
pub fn generate_self_signed(
    host: &str,
    alternate_ips: &[IpAddr],
    alternate_dns: &[&str],
) -> Result<GeneratedPair, Error> {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose, SanType,
    };

    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let valid_from = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let valid_to = valid_from + time::Duration::days(365);

    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("{host}-ca@{unix}"));
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
    ];
    ca_params.not_before = valid_from;
    ca_params.not_after = valid_to;
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

    let mut leaf = CertificateParams::default();
    leaf.distinguished_name
        .push(DnType::CommonName, format!("{host}@{unix}"));
    leaf.key_usages = vec![
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::DigitalSignature,
    ];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = valid_from;
    leaf.not_after = valid_to;
    let mut sans = Vec::new();
    match host.parse::<IpAddr>() {
        Ok(ip) => sans.push(SanType::IpAddress(ip)),
        Err(_) => sans.push(SanType::DnsName(host.try_into()?)),
    }
    sans.extend(alternate_ips.iter().map(|ip| SanType::IpAddress(*ip)));
    for dns in alternate_dns {
        sans.push(SanType::DnsName((*dns).try_into()?));
    }
    leaf.subject_alt_names = sans;
    let leaf_key = KeyPair::generate()?;
    let leaf_cert = leaf.signed_by(&leaf_key, &ca)?;

    Ok(GeneratedPair {
        cert_pem: format!("{}{}", leaf_cert.pem(), ca.pem()),
        key_pem: leaf_key.serialize_pem(),
    })
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), Error> {
    let err = |source| Error::Write {
        path: path.to_owned(),
        source,
    };
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(path).map_err(err)?;
    f.write_all(contents).map_err(err)?;
    Ok(())
}

// === ServerConfig ===

/// Builds the rustls server config: serving chain, min version, suites, ALPN, and a handshake
/// that requests (never requires) a client certificate, advertising `acceptable_issuers`
/// (the subjects of the client CA and request-header CA bundles).
pub fn server_config(
    certs: &ServingCerts,
    options: &TlsOptions,
    acceptable_issuers: Vec<DistinguishedName>,
) -> Result<Arc<ServerConfig>, Error> {
    let mut config = config_builder(options, acceptable_issuers)?
        .with_single_cert(certs.chain.clone(), certs.key.clone_key())?;
    config.alpn_protocols = options.alpn_protocols();
    Ok(Arc::new(config))
}

/// As [`server_config`], but the certificate is chosen per handshake by `resolver` (SNI and
/// hot-reloaded files, see [`crate::serving_certs`]).
pub fn server_config_with_resolver(
    resolver: Arc<dyn ResolvesServerCert>,
    options: &TlsOptions,
    acceptable_issuers: Vec<DistinguishedName>,
) -> Result<Arc<ServerConfig>, Error> {
    let mut config = config_builder(options, acceptable_issuers)?.with_cert_resolver(resolver);
    config.alpn_protocols = options.alpn_protocols();
    Ok(Arc::new(config))
}

fn config_builder(
    options: &TlsOptions,
    acceptable_issuers: Vec<DistinguishedName>,
) -> Result<ConfigBuilder<ServerConfig, WantsServerCert>, Error> {
    let provider = Arc::new(options.crypto_provider());
    let verifier = Arc::new(RequestClientCert::new(&provider, acceptable_issuers));
    Ok(ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(options.min_version.protocol_versions())?
        .with_client_cert_verifier(verifier))
}

/// Go's `tls.RequestClientCert`: ask for a certificate, accept any chain, but still check the
/// handshake signature so a presented certificate proves possession of its key. Chains are
/// verified per request by the authenticators, because the request-header CA and the client
/// CA are different trust roots.
#[derive(Debug)]
struct RequestClientCert {
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl RequestClientCert {
    fn new(provider: &CryptoProvider, hints: Vec<DistinguishedName>) -> Self {
        Self {
            hints,
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ClientCertVerifier for RequestClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_version_accepts_go_names_and_defaults_to_tls12() {
        assert_eq!(TlsVersion::parse("").ok(), Some(TlsVersion::Tls12));
        assert_eq!(
            TlsVersion::parse("VersionTLS12").ok(),
            Some(TlsVersion::Tls12)
        );
        assert_eq!(
            TlsVersion::parse("VersionTLS13").ok(),
            Some(TlsVersion::Tls13)
        );
    }

    #[test]
    fn min_version_below_tls12_is_rejected_naming_the_flag() {
        for v in ["VersionTLS10", "VersionTLS11"] {
            let err = TlsVersion::parse(v).map(|_| ()).unwrap_err().to_string();
            assert!(err.contains("--tls-min-version"), "{err}");
            assert!(err.contains("not supported"), "{err}");
        }
        let err = TlsVersion::parse("TLS1.2")
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--tls-min-version") && err.contains("unknown tls version"),
            "{err}"
        );
    }

    #[test]
    fn unknown_cipher_suite_is_an_error_naming_the_flag_and_the_suite() {
        let err = TlsOptions::from_flags("", &["TLS_BOGUS".into()], false)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(err.contains("--tls-cipher-suites"), "{err}");
        assert!(
            err.contains("Cipher suite TLS_BOGUS not supported or doesn't exist"),
            "{err}"
        );
    }

    #[test]
    fn cipher_suites_restrict_tls12_and_keep_all_tls13_suites() {
        let opts = TlsOptions::from_flags(
            "VersionTLS12",
            &[
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into(),
                "TLS_RSA_WITH_AES_128_CBC_SHA".into(), // Go-only: skipped with a warning
                "TLS_AES_128_GCM_SHA256".into(),       // TLS 1.3: no-op
            ],
            false,
        )
        .expect("valid flags");
        let p = opts.crypto_provider();
        let tls12: Vec<_> = p
            .cipher_suites
            .iter()
            .filter(|s| matches!(s, SupportedCipherSuite::Tls12(_)))
            .map(SupportedCipherSuite::suite)
            .collect();
        assert_eq!(
            tls12,
            vec![CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]
        );
        let tls13 = p
            .cipher_suites
            .iter()
            .filter(|s| matches!(s, SupportedCipherSuite::Tls13(_)))
            .count();
        assert_eq!(tls13, 3);
    }

    #[test]
    fn disabling_http2_drops_h2_from_alpn() {
        let on = TlsOptions::from_flags("", &[], false).expect("valid");
        assert_eq!(
            on.alpn_protocols(),
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        let off = TlsOptions::from_flags("", &[], true).expect("valid");
        assert_eq!(off.alpn_protocols(), vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn only_one_of_cert_and_key_flags_is_an_error() {
        let dir = Path::new("/nonexistent");
        let bind = IpAddr::from([0, 0, 0, 0]);
        let err = ServingCerts::from_flags(Some(Path::new("/x.crt")), None, dir, bind)
            .map(|_| ())
            .unwrap_err();
        assert!(matches!(err, Error::Pair(_)));
    }
}
