//! Serving certificates that follow their files (spec F.1): the default pair
//! (`--tls-cert-file`/`--tls-private-key-file`, or the pair in `--cert-dir`) and the
//! `--tls-sni-cert-key` pairs, chosen per handshake by server name and re-read from disk.
//!
//! ```text
//!  files ──poll (interval)──► bytes changed? ──parse all, check key ↔ cert──► CertSet
//!                                   │ no: nothing            │ error: log, keep serving the old set
//!                                   ▼                        ▼
//!                                                   ArcSwap<CertSet> in ServingCertResolver
//!  handshake ──SNI──► exact name ─► "*.<rest>" ─► default (first pair the client can use)
//! ```
//!
//! Selection follows the generic apiserver, which hands Go's TLS stack a name map: names come
//! from the flag, or else from the certificate (its CN when that is a DNS name and not an IP,
//! plus its DNS SANs); earlier flags win over later ones, explicit names over derived ones.
//! The server name is lower-cased, looked up exactly, then with its first label replaced by
//! `*`. A client that sends no server name (it dialled an IP) gets the pair whose flag names
//! the local address it connected to, if any ([`accept_by_local_ip`]). Otherwise the default
//! pair is served. Upstream re-reads on file events and once a minute; here a poll every few seconds
//! compares file bytes, which also catches atomic renames (cert-manager, kubelet projected
//! volumes) and needs no inotify.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;

use crate::authn::AuthnConfig;
use crate::error::Error;
use crate::tls::{ServingCerts, TlsOptions, server_config_with_resolver};

/// How often the serving files are re-read unless told otherwise.
pub const DEFAULT_CERT_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

// === --tls-sni-cert-key ===

/// One `--tls-sni-cert-key` value: `certfile,keyfile` or `certfile,keyfile:name1,name2`
/// (pflag type `namedCertKey`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NamedCertKey {
    /// PEM certificate (leaf first, chain may follow).
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
    /// Server names this pair answers; empty means "derive from the certificate".
    pub names: Vec<String>,
}

impl NamedCertKey {
    /// Parses one flag value. The error texts are the flag type's own, so that pflag's
    /// `invalid argument ... for "--tls-sni-cert-key" flag: <text>` reads as upstream's.
    pub fn parse(value: &str) -> Result<Self, String> {
        let (pair, names) = match value.split_once(':') {
            Some((pair, names)) => {
                let names = names.trim();
                if names.is_empty() {
                    return Err("empty names list is not allowed".into());
                }
                let names = names.split(',').map(|n| n.trim().to_owned()).collect();
                (pair.trim(), names)
            }
            None => (value.trim(), Vec::new()),
        };
        let mut files = pair.split(',');
        match (files.next(), files.next(), files.next()) {
            (Some(cert), Some(key), None) => Ok(Self {
                cert_file: PathBuf::from(cert.trim()),
                key_file: PathBuf::from(key.trim()),
                names,
            }),
            _ => Err("expected comma separated certificate and key file paths".into()),
        }
    }
}

impl fmt::Display for NamedCertKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{},{}",
            self.cert_file.display(),
            self.key_file.display()
        )?;
        if !self.names.is_empty() {
            write!(f, ":{}", self.names.join(","))?;
        }
        Ok(())
    }
}

/// Where the serving pairs live on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServingCertFiles {
    /// The default pair's certificate file.
    pub cert_file: PathBuf,
    /// The default pair's key file.
    pub key_file: PathBuf,
    /// `--tls-sni-cert-key`, in flag order.
    pub sni: Vec<NamedCertKey>,
}

// === Selection ===

/// One loaded generation of serving pairs.
#[derive(Debug)]
struct CertSet {
    default: Arc<CertifiedKey>,
    /// `[default, sni...]` in flag order, for clients that cannot use the default's key.
    all: Vec<Arc<CertifiedKey>>,
    by_name: HashMap<String, Arc<CertifiedKey>>,
}

impl CertSet {
    fn select(
        &self,
        server_name: Option<&str>,
        schemes: &[rustls::SignatureScheme],
    ) -> Arc<CertifiedKey> {
        if let Some(name) = server_name.filter(|n| !n.is_empty()) {
            let name = name.to_ascii_lowercase();
            if let Some(found) = self.by_name.get(&name) {
                return Arc::clone(found);
            }
            if let Some((_, rest)) = name.split_once('.') {
                if let Some(found) = self.by_name.get(&format!("*.{rest}")) {
                    return Arc::clone(found);
                }
            } else if let Some(found) = self.by_name.get("*") {
                return Arc::clone(found);
            }
        }
        self.all
            .iter()
            .find(|c| c.key.choose_scheme(schemes).is_some())
            .map_or_else(|| Arc::clone(&self.default), Arc::clone)
    }
}

/// The rustls certificate resolver: picks a pair per handshake from the current set.
#[derive(Debug)]
pub struct ServingCertResolver {
    current: ArcSwap<CertSet>,
}

impl ServingCertResolver {
    /// The pair a `--tls-sni-cert-key` name assigns to this local address. The generic
    /// apiserver serves it to clients that send no server name (they dialled an IP).
    pub fn for_local_ip(&self, ip: IpAddr) -> Option<Arc<CertifiedKey>> {
        self.current
            .load()
            .by_name
            .get(&ip.to_canonical().to_string())
            .cloned()
    }
}

/// Whether some `--tls-sni-cert-key` name is an IP address; only then does a handshake need
/// to look at the local address ([`accept_by_local_ip`]). Names derived from certificates are
/// never IPs, and the flag's names do not change on reload.
pub fn names_an_ip(sni: &[NamedCertKey]) -> bool {
    sni.iter()
        .flat_map(|s| &s.names)
        .any(|n| n.parse::<IpAddr>().is_ok())
}

/// The TLS handshake when some SNI name is an IP: a client that sends no server name gets the
/// pair named for the local address it connected to; everyone else goes through `config`.
pub async fn accept_by_local_ip(
    config: Arc<ServerConfig>,
    resolver: &ServingCertResolver,
    tcp: tokio::net::TcpStream,
) -> std::io::Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    let local = tcp.local_addr().ok().map(|a| a.ip());
    let start =
        tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp).await?;
    let by_ip = match (start.client_hello().server_name(), local) {
        (None, Some(ip)) => resolver.for_local_ip(ip),
        _ => None,
    };
    let config = match by_ip {
        Some(key) => {
            let mut fixed = (*config).clone();
            fixed.cert_resolver = Arc::new(rustls::sign::SingleCertAndKey::from(key));
            Arc::new(fixed)
        }
        None => config,
    };
    start.into_stream(config).await
}

impl ResolvesServerCert for ServingCertResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let set = self.current.load();
        Some(set.select(client_hello.server_name(), client_hello.signature_schemes()))
    }
}

// === Loading ===

/// The raw bytes of every serving file, in a fixed order, to detect changes cheaply.
type Content = Vec<Vec<u8>>;

fn read_all(files: &ServingCertFiles) -> Result<Content, Error> {
    let mut paths: Vec<&Path> = vec![&files.cert_file, &files.key_file];
    for sni in &files.sni {
        paths.push(&sni.cert_file);
        paths.push(&sni.key_file);
    }
    paths
        .into_iter()
        .map(|path| {
            fs::read(path).map_err(|source| Error::Read {
                path: path.to_owned(),
                source,
            })
        })
        .collect()
}

/// A certificate chain and key that belong together (rejects a half-rotated pair).
fn certified_key(
    cert_pem: &[u8],
    key_pem: &[u8],
    what: &str,
    provider: &CryptoProvider,
) -> Result<(Arc<CertifiedKey>, ServingCerts), Error> {
    let certs = ServingCerts::from_pem(cert_pem, key_pem, what)?;
    let key = CertifiedKey::from_der(certs.chain.clone(), certs.key().clone_key(), provider)
        .map_err(|e| Error::BadPem {
            what: what.to_owned(),
            reason: format!("certificate and private key do not form a pair: {e}"),
        })?;
    Ok((Arc::new(key), certs))
}

fn build_set(
    files: &ServingCertFiles,
    content: &Content,
    provider: &CryptoProvider,
) -> Result<CertSet, Error> {
    let pem = |i: usize| content.get(i).map_or(&[][..], Vec::as_slice);
    let what = files.cert_file.display().to_string();
    let (default, _) = certified_key(pem(0), pem(1), &what, provider)?;
    let mut all = vec![Arc::clone(&default)];
    let mut explicit = HashMap::new();
    let mut derived = HashMap::new();
    for (i, sni) in files.sni.iter().enumerate() {
        let what = format!("--tls-sni-cert-key {sni}");
        let (key, certs) = certified_key(pem(2 + 2 * i), pem(3 + 2 * i), &what, provider)?;
        // Earlier flags win: only the first pair to claim a name keeps it.
        if sni.names.is_empty() {
            let leaf = certs.chain.first().map(AsRef::as_ref).unwrap_or_default();
            for name in certificate_names(leaf) {
                derived.entry(name).or_insert_with(|| Arc::clone(&key));
            }
        } else {
            for name in &sni.names {
                explicit
                    .entry(name.clone())
                    .or_insert_with(|| Arc::clone(&key));
            }
        }
        all.push(key);
    }
    derived.extend(explicit);
    Ok(CertSet {
        default,
        all,
        by_name: derived,
    })
}

/// The names a certificate answers when the flag names none: the CN when it is a DNS name
/// (or a wildcard) and not an IP address, then every DNS SAN. IP SANs never count: SNI
/// cannot carry an IP address.
pub fn certificate_names(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    if let Some(cn) = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
    {
        let domain = cn.strip_prefix("*.").unwrap_or(cn);
        if !looks_like_ip(cn) && (cn == "*" || is_dns1123_subdomain(domain)) {
            names.push(cn.to_owned());
        }
    }
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                names.push((*dns).to_owned());
            }
        }
    }
    names
}

/// Go's sloppy IP parsing also takes IPv4 with leading zeros (`010.0.0.1`).
fn looks_like_ip(s: &str) -> bool {
    if s.parse::<IpAddr>().is_ok() {
        return true;
    }
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 3
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u16>().is_ok_and(|n| n <= 255)
        })
}

/// Kubernetes' DNS-1123 subdomain: lower-case alphanumeric labels with inner dashes, joined
/// by dots, at most 253 characters.
fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            let bytes = label.as_bytes();
            let edge =
                |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
            edge(bytes.first())
                && edge(bytes.last())
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        })
}

// === The reloading owner ===

/// Whether a [`DynamicServingCerts::sync`] changed what is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// The files hold what is already served.
    Unchanged,
    /// A new set was loaded and is served to new connections.
    Swapped,
}

/// Owns the serving files and the resolver that serves what was last loaded successfully.
#[derive(Debug)]
pub struct DynamicServingCerts {
    files: ServingCertFiles,
    provider: Arc<CryptoProvider>,
    resolver: Arc<ServingCertResolver>,
    served: Content,
    /// The last content that failed to load, so a broken file is logged once, not per poll.
    failed: Option<Content>,
}

impl DynamicServingCerts {
    /// Loads every pair once. Any error here is a startup error.
    pub fn load(files: ServingCertFiles) -> Result<Self, Error> {
        let provider = crate::tls::provider();
        let content = read_all(&files)?;
        let set = build_set(&files, &content, &provider)?;
        Ok(Self {
            files,
            provider,
            resolver: Arc::new(ServingCertResolver {
                current: ArcSwap::from_pointee(set),
            }),
            served: content,
            failed: None,
        })
    }

    /// The resolver to put into the TLS config; it follows every successful reload.
    pub fn resolver(&self) -> Arc<ServingCertResolver> {
        Arc::clone(&self.resolver)
    }

    /// Re-reads the files; swaps in the new set when they changed and all pairs are valid.
    /// On error nothing changes and the old set keeps being served.
    pub fn sync(&mut self) -> Result<Reload, Error> {
        let content = match read_all(&self.files) {
            Ok(content) => content,
            Err(error) => {
                // An empty content marks "unreadable", distinct from any real content.
                self.failed = Some(Vec::new());
                return Err(error);
            }
        };
        if content == self.served {
            self.failed = None;
            return Ok(Reload::Unchanged);
        }
        match build_set(&self.files, &content, &self.provider) {
            Ok(set) => {
                self.resolver.current.store(Arc::new(set));
                self.served = content;
                self.failed = None;
                Ok(Reload::Swapped)
            }
            Err(error) => {
                self.failed = Some(content);
                Err(error)
            }
        }
    }

    /// One poll: logs a swap at info and a new failure at error (once per broken content).
    fn poll(&mut self) {
        let before = self.failed.clone();
        match self.sync() {
            Ok(Reload::Swapped) => tracing::info!(
                cert = %self.files.cert_file.display(),
                sni = self.files.sni.len(),
                "Loaded new serving certificates"
            ),
            Ok(Reload::Unchanged) => {}
            Err(error) if before.is_none() || before != self.failed => tracing::error!(
                %error,
                "Serving certificate files are unusable; still serving the previous certificates"
            ),
            Err(_) => {}
        }
    }

    /// Polls every `interval` until `shutdown`.
    pub fn spawn(
        mut self,
        interval: Duration,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = ticker.tick() => {}
                }
                // File reads are small and local; a blocking read here is brief.
                self.poll();
            }
        })
    }
}

/// Like [`crate::tls_reloader`], for a config whose certificates come from `resolver`: when
/// the acceptable client issuers change, the TLS config is rebuilt around the same resolver.
pub fn resolver_tls_reloader(
    resolver: Arc<ServingCertResolver>,
    options: TlsOptions,
    tls: Arc<ArcSwap<ServerConfig>>,
) -> impl Fn(&AuthnConfig) + Send + Sync + 'static {
    move |authn| {
        let resolver: Arc<dyn ResolvesServerCert> = resolver.clone();
        match server_config_with_resolver(resolver, &options, authn.acceptable_issuers()) {
            Ok(config) => tls.store(config),
            Err(error) => {
                tracing::warn!(%error, "rebuilding TLS config failed; keeping the old one");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_cert_key_parses_files_and_names_like_the_flag_type() {
        assert_eq!(
            NamedCertKey::parse("a.crt,a.key"),
            Ok(NamedCertKey {
                cert_file: "a.crt".into(),
                key_file: "a.key".into(),
                names: vec![],
            })
        );
        assert_eq!(
            NamedCertKey::parse(" a.crt , a.key : foo.com, *.bar.com "),
            Ok(NamedCertKey {
                cert_file: "a.crt".into(),
                key_file: "a.key".into(),
                names: vec!["foo.com".into(), "*.bar.com".into()],
            })
        );
        // Only the first colon separates the names.
        let parsed = NamedCertKey::parse("a.crt,a.key:x:y").expect("valid");
        assert_eq!(parsed.names, vec!["x:y".to_owned()]);
        assert_eq!(parsed.to_string(), "a.crt,a.key:x:y");
    }

    #[test]
    fn named_cert_key_errors_are_the_flag_type_texts() {
        assert_eq!(
            NamedCertKey::parse("a.crt,a.key:"),
            Err("empty names list is not allowed".to_owned())
        );
        assert_eq!(
            NamedCertKey::parse("a.crt,a.key: "),
            Err("empty names list is not allowed".to_owned())
        );
        for bad in ["a.crt", "a.crt,a.key,c", "", "a.crt:foo"] {
            assert_eq!(
                NamedCertKey::parse(bad),
                Err("expected comma separated certificate and key file paths".to_owned()),
                "{bad}"
            );
        }
    }

    #[test]
    fn dns1123_and_ip_detection() {
        assert!(is_dns1123_subdomain("a.example.com"));
        assert!(is_dns1123_subdomain("x-1.y"));
        assert!(!is_dns1123_subdomain("Example.com"));
        assert!(!is_dns1123_subdomain("-a.com"));
        assert!(!is_dns1123_subdomain("a..com"));
        assert!(!is_dns1123_subdomain("my name"));
        assert!(looks_like_ip("10.0.0.1"));
        assert!(looks_like_ip("010.0.0.1"));
        assert!(looks_like_ip("::1"));
        assert!(!looks_like_ip("10.0.0"));
    }
}
