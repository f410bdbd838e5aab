//! Delegated authentication (spec F.2): request-header, x509 client certificate, bearer token
//! through TokenReview, then anonymous.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::HeaderMap;
use k8s_openapi::api::authentication::v1::{TokenReviewSpec, TokenReviewStatus};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::{DistinguishedName, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::cache::{AuthMetrics, TtlCache};
use crate::error::{Error, ReviewError};
use crate::lookup::AuthenticationOptions;
use crate::review::{CallPolicy, TokenReviewer, review_bounded};
use crate::serve::PeerCertificates;
use crate::tls::provider;
use crate::user::User;

// === CA bundles ===

/// A trust root for client certificates: the PEM it came from and a webpki verifier that
/// checks the chain and the clientAuth EKU.
#[derive(Clone)]
pub struct CaBundle {
    pem: Arc<[u8]>,
    verifier: Arc<dyn ClientCertVerifier>,
    subjects: Vec<DistinguishedName>,
}

impl fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaBundle")
            .field("subjects", &self.subjects.len())
            .finish_non_exhaustive()
    }
}

impl PartialEq for CaBundle {
    fn eq(&self, other: &Self) -> bool {
        self.pem == other.pem
    }
}

impl CaBundle {
    /// Parses a PEM bundle. Unparsable certificates are skipped (as Go's
    /// `AppendCertsFromPEM`); a bundle with none usable is an error. `what` names the source.
    pub fn from_pem(pem: &[u8], what: &str) -> Result<Self, Error> {
        let err = |reason: String| Error::ClientCa {
            what: what.to_owned(),
            reason,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
            .filter_map(Result::ok)
            .collect();
        let mut roots = RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(err("no valid certificate found".into()));
        }
        let subjects = roots.subjects();
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| err(e.to_string()))?;
        Ok(Self {
            pem: pem.into(),
            verifier,
            subjects,
        })
    }

    /// Reads and parses a PEM file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, Error> {
        let pem = std::fs::read(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_pem(&pem, &path.display().to_string())
    }

    /// Verifies the peer chain against this bundle for client authentication.
    pub fn verify(&self, peer: &PeerCertificates) -> Result<(), String> {
        let Some(leaf) = peer.leaf() else {
            return Err("no client certificate".into());
        };
        self.verifier
            .verify_client_cert(leaf, peer.intermediates(), UnixTime::now())
            .map(|_| ())
            .map_err(|e| format!("x509: {e}"))
    }

    /// The CA subjects, advertised as acceptable issuers during the handshake.
    pub fn subjects(&self) -> &[DistinguishedName] {
        &self.subjects
    }
}

// === Resolved configuration ===

/// Front-proxy (request-header) settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestHeaderConfig {
    /// `requestheader-client-ca-file`.
    pub ca: CaBundle,
    /// `requestheader-allowed-names`; empty means any CN signed by the CA.
    pub allowed_names: Vec<String>,
    /// `requestheader-username-headers`, lower-case.
    pub username_headers: Vec<String>,
    /// `requestheader-group-headers`, lower-case.
    pub group_headers: Vec<String>,
    /// `requestheader-extra-headers-prefix`, lower-case.
    pub extra_headers_prefix: Vec<String>,
}

/// The authentication trust configuration in force; swapped atomically on reload.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuthnConfig {
    /// `client-ca-file`: x509 client-certificate authentication.
    pub client_ca: Option<CaBundle>,
    /// Front-proxy authentication.
    pub request_header: Option<RequestHeaderConfig>,
}

impl AuthnConfig {
    /// Whether a request carries a front-proxy username header: a 401 for it almost always
    /// means kube-apiserver's proxy client certificate is not trusted here.
    pub fn has_front_proxy_headers(&self, headers: &HeaderMap) -> bool {
        let names: &[String] = match &self.request_header {
            Some(rh) => &rh.username_headers,
            None => &[],
        };
        let default = ["x-remote-user".to_owned()];
        let names = if names.is_empty() {
            &default[..]
        } else {
            names
        };
        names.iter().any(|h| headers.contains_key(h.as_str()))
    }

    /// Union of both CA bundles' subjects, for the TLS CertificateRequest.
    pub fn acceptable_issuers(&self) -> Vec<DistinguishedName> {
        let mut out: Vec<DistinguishedName> = Vec::new();
        let bundles = self
            .client_ca
            .iter()
            .chain(self.request_header.as_ref().map(|r| &r.ca));
        for s in bundles.flat_map(CaBundle::subjects) {
            if !out.iter().any(|o| o.as_ref() == s.as_ref()) {
                out.push(s.clone());
            }
        }
        out
    }

    /// Header names that must never reach the handlers unverified.
    pub(crate) fn strip_headers(&self, headers: &mut HeaderMap) {
        if let Some(rh) = &self.request_header {
            for name in rh.username_headers.iter().chain(&rh.group_headers) {
                headers.remove(name.as_str());
            }
            if !rh.extra_headers_prefix.is_empty() {
                let doomed: Vec<_> = headers
                    .keys()
                    .filter(|k| {
                        rh.extra_headers_prefix
                            .iter()
                            .any(|p| k.as_str().starts_with(p.as_str()))
                    })
                    .cloned()
                    .collect();
                for k in doomed {
                    headers.remove(k);
                }
            }
        }
    }
}

// === The authenticator chain ===

/// Why a request was rejected with 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthnFailure(pub Vec<String>);

impl fmt::Display for AuthnFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(", "))
    }
}

/// Runs the chain: request-header → x509 → bearer token → anonymous. The first success wins;
/// if none succeeds and any of them errored (bad chain, rejected token), the request is
/// rejected rather than treated as anonymous (Go's `unionauth.NewFailOnError`).
#[derive(Clone)]
pub struct Authenticator {
    config: Arc<ArcSwap<AuthnConfig>>,
    tokens: Option<Arc<dyn TokenReviewer>>,
    token_cache: Arc<TtlCache<[u8; 32], Option<User>>>,
    token_ttl: Duration,
    call_policy: CallPolicy,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("config", &self.config.load())
            .field("tokens", &self.tokens)
            .field("token_ttl", &self.token_ttl)
            .field("token_cache", &self.token_cache)
            .field("call_policy", &self.call_policy)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// `config` is shared with the reloader; `tokens` is `None` when there is no kube client
    /// (bearer tokens are then ignored, as upstream); `token_ttl` is
    /// `--authentication-token-webhook-cache-ttl`. The cache holds [`DEFAULT_CACHE_SIZE`]
    /// entries and TokenReviews get the default [`CallPolicy`]; see [`Self::from_options`].
    pub fn new(
        config: Arc<ArcSwap<AuthnConfig>>,
        tokens: Option<Arc<dyn TokenReviewer>>,
        token_ttl: Duration,
    ) -> Self {
        let options = AuthenticationOptions {
            token_webhook_cache_ttl: token_ttl,
            ..AuthenticationOptions::default()
        };
        Self::from_options(config, tokens, &options, &AuthMetrics::unregistered())
    }

    /// Like [`Self::new`], with the cache TTL and size, and the TokenReview deadline, taken
    /// from `options`; cache evictions are counted in `metrics`.
    pub fn from_options(
        config: Arc<ArcSwap<AuthnConfig>>,
        tokens: Option<Arc<dyn TokenReviewer>>,
        options: &AuthenticationOptions,
        metrics: &AuthMetrics,
    ) -> Self {
        Self {
            config,
            tokens,
            token_cache: Arc::new(TtlCache::new("token", options.token_cache_size, metrics)),
            token_ttl: options.token_webhook_cache_ttl,
            call_policy: options.call_policy,
        }
    }

    /// The shared configuration handle.
    pub fn config(&self) -> &Arc<ArcSwap<AuthnConfig>> {
        &self.config
    }

    /// Authenticates a request from its headers and the TLS peer chain.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        peer: Option<&PeerCertificates>,
    ) -> Result<User, AuthnFailure> {
        let config = self.config.load_full();
        let mut errors = Vec::new();

        if let Some(peer) = peer.filter(|p| p.leaf().is_some()) {
            if let Some(rh) = &config.request_header {
                match request_header_user(rh, peer, headers) {
                    Ok(Some(user)) => return Ok(user.with_authenticated_group()),
                    Ok(None) => {}
                    Err(e) => errors.push(e),
                }
            }
            if let Some(ca) = &config.client_ca {
                match ca.verify(peer) {
                    Ok(()) => {
                        if let Some(user) = peer.leaf().and_then(|c| cert_user(c)) {
                            return Ok(user.with_authenticated_group());
                        }
                    }
                    Err(e) => errors.push(e),
                }
            }
        }

        if let (Some(reviewer), Some(token)) = (&self.tokens, bearer_token(headers)) {
            match self.review_token(reviewer.as_ref(), token).await {
                Ok(user) => return Ok(user.with_authenticated_group()),
                Err(e) => errors.push(e),
            }
        }

        if errors.is_empty() {
            Ok(User::anonymous())
        } else {
            Err(AuthnFailure(errors))
        }
    }

    async fn review_token(
        &self,
        reviewer: &dyn TokenReviewer,
        token: &str,
    ) -> Result<User, String> {
        // Key by digest so raw tokens are never kept in memory longer than the request.
        let mut key = [0u8; 32];
        key.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref());
        let cached = match self.token_cache.get(&key) {
            Some(hit) => hit,
            None => {
                let spec = TokenReviewSpec {
                    token: Some(token.to_owned()),
                    audiences: None,
                };
                let call = || reviewer.review(spec.clone());
                let status =
                    review_bounded(self.call_policy, call)
                        .await
                        .map_err(|e: ReviewError| {
                            tracing::debug!(error = %e, "TokenReview failed");
                            e.to_string()
                        })?;
                match token_status_user(status) {
                    Ok(outcome) => {
                        self.token_cache
                            .insert(key, outcome.clone(), self.token_ttl);
                        outcome
                    }
                    // A review that reports an error is not cached (Go: cacheErrs=false).
                    Err(e) => return Err(e),
                }
            }
        };
        cached.ok_or_else(|| "invalid bearer token".to_owned())
    }
}

fn token_status_user(status: TokenReviewStatus) -> Result<Option<User>, String> {
    if status.authenticated != Some(true) {
        return match status.error.filter(|e| !e.is_empty()) {
            Some(e) => Err(e),
            None => Ok(None),
        };
    }
    let info = status.user.unwrap_or_default();
    Ok(Some(User {
        name: info.username.unwrap_or_default(),
        uid: info.uid.unwrap_or_default(),
        groups: info.groups.unwrap_or_default(),
        extra: info.extra.unwrap_or_default(),
    }))
}

/// Go's bearertoken authenticator: `Authorization: Bearer <token>`, scheme case-insensitive.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let auth = headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let mut parts = auth.splitn(3, ' ');
    let scheme = parts.next()?;
    let token = parts.next()?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// `Ok(None)` when the proxy certificate is valid but names no user (Go: no opinion).
fn request_header_user(
    rh: &RequestHeaderConfig,
    peer: &PeerCertificates,
    headers: &HeaderMap,
) -> Result<Option<User>, String> {
    rh.ca.verify(peer)?;
    if !rh.allowed_names.is_empty() {
        let cn = peer
            .leaf()
            .and_then(|c| subject_names(c).map(|(cn, _)| cn))
            .unwrap_or_default();
        if !rh.allowed_names.contains(&cn) {
            return Err(format!(
                "x509: subject with cn={cn} is not in the allowed list"
            ));
        }
    }
    let Some(name) = rh
        .username_headers
        .iter()
        .flat_map(|h| headers.get(h.as_str()))
        .filter_map(|v| v.to_str().ok())
        .find(|v| !v.is_empty())
    else {
        return Ok(None);
    };
    let groups = rh
        .group_headers
        .iter()
        .flat_map(|h| headers.get_all(h.as_str()))
        .filter_map(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect();
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in headers {
        for prefix in &rh.extra_headers_prefix {
            if let Some(suffix) = k.as_str().strip_prefix(prefix.as_str()) {
                let Ok(v) = v.to_str() else { continue };
                extra
                    .entry(unescape_extra_key(&suffix.to_ascii_lowercase()))
                    .or_default()
                    .push(v.to_owned());
            }
        }
    }
    Ok(Some(User {
        name: name.to_owned(),
        uid: String::new(),
        groups,
        extra,
    }))
}

/// Go's `url.PathUnescape`; an invalid escape leaves the key as it was.
fn unescape_extra_key(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                None => return key.to_owned(),
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| key.to_owned())
}

/// x509 user: CN is the name, O values the groups. An empty CN is "no opinion".
fn cert_user(cert: &CertificateDer<'_>) -> Option<User> {
    let (cn, orgs) = subject_names(cert)?;
    (!cn.is_empty()).then(|| User {
        name: cn,
        groups: orgs,
        ..User::default()
    })
}

/// (CN, O values) of a certificate's subject.
pub(crate) fn subject_names(cert: &CertificateDer<'_>) -> Option<(String, Vec<String>)> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let subject = parsed.subject();
    let cn = subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .unwrap_or_default()
        .to_owned();
    let orgs = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok())
        .map(str::to_owned)
        .collect();
    Some((cn, orgs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_header_suffixes_are_lowercased_then_unescaped() {
        assert_eq!(unescape_extra_key("scopes"), "scopes");
        assert_eq!(unescape_extra_key("example.com%2fkey"), "example.com/key");
        assert_eq!(unescape_extra_key("bad%zz"), "bad%zz");
    }

    #[test]
    fn only_bearer_authorization_yields_a_token() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer abc".parse().expect("header"));
        assert_eq!(bearer_token(&h), Some("abc"));
        h.insert("authorization", "bearer  ".parse().expect("header"));
        assert_eq!(bearer_token(&h), None);
        h.insert(
            "authorization",
            "Basic Zm9vOmJhcg==".parse().expect("header"),
        );
        assert_eq!(bearer_token(&h), None);
    }

    #[test]
    fn an_unauthenticated_review_without_error_means_invalid_token() {
        let status = TokenReviewStatus {
            authenticated: Some(false),
            ..TokenReviewStatus::default()
        };
        assert_eq!(token_status_user(status), Ok(None));
        let status = TokenReviewStatus {
            authenticated: Some(false),
            error: Some("expired".into()),
            ..TokenReviewStatus::default()
        };
        assert_eq!(token_status_user(status), Err("expired".into()));
    }
}

#[cfg(test)]
mod front_proxy_hint_tests {
    use super::*;

    #[test]
    fn front_proxy_headers_are_recognised_with_or_without_a_request_header_config() {
        let mut headers = HeaderMap::new();
        let none = AuthnConfig::default();
        assert!(!none.has_front_proxy_headers(&headers));
        headers.insert("x-remote-user", "system:admin".parse().unwrap());
        assert!(
            none.has_front_proxy_headers(&headers),
            "upstream's default header"
        );
        headers.clear();
        headers.insert("x-proxy-user", "bob".parse().unwrap());
        assert!(!none.has_front_proxy_headers(&headers));
    }
}
