//! TLS serving and delegated authentication/authorization for metrics-server-rs, the part
//! of `k8s.io/apiserver` an aggregated API server needs (spec B.2, E.9, F.1–F.3).
//!
//! ```text
//!  TCP ──► TLS handshake (requests, never requires, a client cert;      serve()
//!          advertises client-CA ∪ request-header-CA subjects)
//!            │ PeerCertificates + RemoteAddr request extensions
//!            ▼
//!  stack::build ─ panic recovery → request info → request timeout (504)
//!            ▼
//!            ─ authenticate (first success wins; any error and no success → 401)
//!            │   1. request-header: chain ✓ request-header CA, CN ∈ allowed names,
//!            │      user/groups/extra from X-Remote-* headers
//!            │   2. x509: chain ✓ client CA, user = CN, groups = O
//!            │   3. bearer token → TokenReview (LRU cache, TTL, deadline)
//!            │   4. anonymous: system:anonymous / system:unauthenticated
//!            │   (+ system:authenticated for everyone but anonymous)
//!            ▼
//!            ─ max-in-flight (429; system:masters and long-running exempt)
//!            ▼
//!            ─ authorize
//!            │   system:masters → allow
//!            │   non-resource path ∈ --authorization-always-allow-paths → allow
//!            │   SubjectAccessReview (LRU cache: allowed / denied TTLs, deadline) → allow | 403
//!            ▼
//!  inner service (axum router) with a `User` extension; X-Remote-* and
//!  Authorization headers removed
//! ```
//!
//! Trust roots come from flags or the `kube-system/extension-apiserver-authentication`
//! ConfigMap ([`lookup`]), are re-read periodically, and are swapped atomically
//! (`ArcSwap<AuthnConfig>`); the TLS config is swapped the same way so new acceptable
//! issuers apply to new connections.
//!
//! Divergences from upstream are listed where they occur: self-signed keys are ECDSA
//! P-256 (ring cannot generate RSA), TLS 1.0/1.1 are rejected, Go-only cipher suites
//! are skipped with a warning.

mod authn;
mod authz;
mod cache;
mod error;
mod layer;
pub mod lookup;
mod review;
mod serve;
pub mod serving_certs;
pub mod stack;
mod tls;
mod user;

use std::sync::Arc;

use arc_swap::ArcSwap;

pub use authn::{Authenticator, AuthnConfig, AuthnFailure, CaBundle, RequestHeaderConfig};
pub use authz::{
    AlwaysAllowPaths, Attributes, AuthorizationOptions, Authorizer, DEFAULT_ALWAYS_ALLOW_PATHS,
    Decision, NonResourceAttributes, ResourceAttributes,
};
pub use cache::{AuthMetrics, DEFAULT_CACHE_SIZE};
pub use error::{Error, ReviewError};
pub use layer::{AuthenticationFilter, AuthorizationFilter, forbidden, unauthorized};
pub use lookup::AuthenticationOptions;
pub use review::{
    AccessReviewer, BoxFuture, CallPolicy, KubeAccessReviewer, KubeTokenReviewer, TokenReviewer,
};
pub use serve::{
    DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_HEADERS, PeerCertificates, RemoteAddr, ServeOptions,
    serve,
};
pub use serving_certs::{
    DEFAULT_CERT_RELOAD_INTERVAL, DynamicServingCerts, NamedCertKey, ServingCertFiles,
    ServingCertResolver, names_an_ip, resolver_tls_reloader,
};
pub use tls::{
    CERT_FILE_NAME, CertSource, GeneratedPair, KEY_FILE_NAME, ServingCerts, TlsOptions, TlsVersion,
    generate_self_signed, provider, server_config, server_config_with_resolver,
};
pub use user::{ANONYMOUS, AUTHENTICATED_GROUP, MASTERS_GROUP, UNAUTHENTICATED_GROUP, User};

/// Returns an `on_change` callback for [`lookup::spawn_reloader`] that rebuilds the serving
/// TLS config with the new acceptable issuers and stores it in `tls`.
pub fn tls_reloader(
    certs: ServingCerts,
    options: TlsOptions,
    tls: Arc<ArcSwap<rustls::ServerConfig>>,
) -> impl Fn(&AuthnConfig) + Send + Sync + 'static {
    move |authn| match server_config(&certs, &options, authn.acceptable_issuers()) {
        Ok(config) => tls.store(config),
        Err(error) => tracing::warn!(%error, "rebuilding TLS config failed; keeping the old one"),
    }
}
