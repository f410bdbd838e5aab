//! The HTTPS server: prepared first (step 1 of `Args::run`, so that bad TLS settings and
//! certificates fail startup before anything else), started last (step 8, once the caches
//! synced).
//!
//! ```text
//! serve(TLS ─► HSTS ─► CORS ─► stack(panic recovery, timeout, authn, max-in-flight, authz)
//!   ─► router, with the shard exchange route when sharding)
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use arc_swap::ArcSwap;
use http::{Method, Uri};
use metrics_server_api::{
    AllowedOrigins, ApiConfig, ApiState, ClusterView, Cors, CorsLayer, Hsts, HstsLayer,
    MetricsSource, VersionInfo,
};
use metrics_server_auth::stack::{Stack, StackOptions};
use metrics_server_auth::{
    AuthenticationOptions, Authenticator, AuthnConfig, Authorizer, DEFAULT_CERT_RELOAD_INTERVAL,
    DynamicServingCerts, NamedCertKey, ServeOptions, ServingCertFiles, ServingCertResolver,
    ServingCerts, TlsOptions,
};
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::Layer as _;

use super::error::{RunError, startup};
use super::run_flags::{RequestFlags, ServingFlags, TlsFlags, non_empty};
use super::shared::{SelfMetrics, Shared};
use crate::diagnosis::KubeletDiagnosis;
use crate::flags::{VERSION, Validated, std_duration};

/// What the HTTPS server is built from, checked at startup before anything else.
pub(super) struct Https {
    tls_options: TlsOptions,
    /// `None` with `--secure-port=0`.
    certs: Option<DynamicServingCerts>,
    /// Whether a `--tls-sni-cert-key` name is an IP (see `ServeOptions::certs_by_local_ip`).
    sni_names_an_ip: bool,
    /// Outer HTTP filters (HSTS ⊃ CORS ⊃ authentication), refused at startup when invalid.
    cors: AllowedOrigins,
    hsts: HstsLayer,
    listener: ServingFlags,
    secure_port: u16,
}

impl Https {
    /// Step 1: the TLS options, the serving certificates when serving, the outer filters.
    pub(super) fn prepare(
        tls: TlsFlags,
        listener: ServingFlags,
        requests: &RequestFlags,
        secure_port: u16,
    ) -> Result<Self, RunError> {
        let bind_ip = listener
            .bind_address
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let tls_options =
            TlsOptions::from_flags(&tls.min_version, &tls.cipher_suites, listener.disable_http2)
                .map_err(startup)?;
        let sni_names_an_ip = metrics_server_auth::names_an_ip(&tls.sni_cert_key);
        let certs = if secure_port != 0 {
            Some(serving_certs(tls, bind_ip)?)
        } else {
            None
        };
        let cors = AllowedOrigins::parse(&requests.cors_allowed_origins).map_err(startup)?;
        let hsts = HstsLayer::from_directives(&requests.strict_transport_security_directives)
            .map_err(startup)?;
        Ok(Self {
            tls_options,
            certs,
            sni_names_an_ip,
            cors,
            hsts,
            listener,
            secure_port,
        })
    }

    /// The API's own settings.
    pub(super) fn api_config(&self, requests: &RequestFlags, validated: Validated) -> ApiConfig {
        let server_address = server_address(
            self.listener.advertise_address,
            &self.listener.external_hostname,
            self.listener.bind_address,
            self.secure_port,
        );
        ApiConfig {
            node_selector: validated.node_selector,
            max_requests_inflight: usize::try_from(requests.max_requests_inflight).unwrap_or(0),
            max_mutating_requests_inflight: usize::try_from(
                requests.max_mutating_requests_inflight,
            )
            .unwrap_or(0),
            request_timeout: std_duration(requests.request_timeout),
            version: version_info(),
            server_address,
            openmetrics: false,
            served_versions: validated.served_versions,
        }
    }
}

/// The serving pair (generated into `--cert-dir` unless given), loaded with the SNI pairs.
fn serving_certs(tls: TlsFlags, bind_ip: IpAddr) -> Result<DynamicServingCerts, RunError> {
    let certs = ServingCerts::from_flags(
        non_empty(&tls.cert_file),
        non_empty(&tls.private_key_file),
        Path::new(&tls.cert_dir),
        bind_ip,
    )
    .map_err(|e| startup(anyhow!("error creating self-signed certificates: {e}")))?;
    if let metrics_server_auth::CertSource::Generated(dir) = &certs.source {
        tracing::info!(dir = %dir.display(), "Generated self-signed cert");
    }
    // The pair is re-read from wherever it lives (flags or cert dir), with the SNI pairs.
    let files = serving_cert_files(
        &tls.cert_file,
        &tls.private_key_file,
        Path::new(&tls.cert_dir),
        tls.sni_cert_key,
    );
    DynamicServingCerts::load(files)
        .map_err(|e| startup(anyhow!("unable to load serving certificates: {e}")))
}

/// The files the serving pair is re-read from: the flags' pair, else the one in the cert dir.
fn serving_cert_files(
    tls_cert_file: &str,
    tls_private_key_file: &str,
    cert_dir: &Path,
    sni: Vec<NamedCertKey>,
) -> ServingCertFiles {
    let (cert_file, key_file) = match (non_empty(tls_cert_file), non_empty(tls_private_key_file)) {
        (Some(cert), Some(key)) => (cert.to_owned(), key.to_owned()),
        _ => (
            cert_dir.join(metrics_server_auth::CERT_FILE_NAME),
            cert_dir.join(metrics_server_auth::KEY_FILE_NAME),
        ),
    };
    ServingCertFiles {
        cert_file,
        key_file,
        sni,
    }
}

/// Who a request is and what it may do, when serving (step 5).
pub(super) struct RequestAuth {
    pub(super) trust: Trust,
    pub(super) authenticator: Authenticator,
    pub(super) authorizer: Authorizer,
}

/// The authentication trust (client CAs, request-header settings) and what keeps it current.
pub(super) struct Trust {
    /// What it is read from: the flags, and the ConfigMap through `client`.
    pub(super) options: AuthenticationOptions,
    /// The delegated authentication client.
    pub(super) client: kube::Client,
    /// As last read; the reloader swaps it.
    pub(super) config: Arc<ArcSwap<AuthnConfig>>,
}

/// The handler inside TLS: the outer filters, the generic apiserver's stack, the router.
type HttpsService = Hsts<Cors<Stack<axum::Router>>>;

/// Step 8: serves the API over TLS until `shutdown`; with `--secure-port=0`, a task that only
/// waits for `shutdown`.
pub(super) fn start(
    https: Https,
    auth: Option<RequestAuth>,
    api: ApiConfig,
    shared: Shared,
    metrics: &SelfMetrics,
    shutdown: &CancellationToken,
) -> Result<JoinHandle<()>, RunError> {
    let (Some(certs), Some(auth)) = (https.certs, auth) else {
        tracing::info!("--secure-port is 0: not serving HTTPS");
        let token = shutdown.clone();
        return Ok(tokio::spawn(async move { token.cancelled().await }));
    };
    let (router, stack_options) = api_router(api, shared, metrics);
    let stack = metrics_server_auth::stack::build(
        stack_options,
        auth.authenticator,
        auth.authorizer,
        request_attributes,
        router,
    );
    // --- outer filters, outside authentication as in the generic apiserver ---
    let service: HttpsService = https.hsts.layer(CorsLayer::new(https.cors).layer(stack));
    // --- end of outer filters ---
    let (tls, resolver) = reloading_tls(certs, https.tls_options, auth.trust, shutdown)?;
    let certs_by_local_ip = https.sni_names_an_ip.then_some(resolver);
    listen_and_serve(
        &https.listener,
        https.secure_port,
        tls,
        certs_by_local_ip,
        service,
        shutdown,
    )
}

/// The API's router (with the shard exchange route when sharding), and the settings of the
/// stack around it.
fn api_router(
    config: ApiConfig,
    shared: Shared,
    metrics: &SelfMetrics,
) -> (axum::Router, StackOptions) {
    let state = ApiState::new(
        config,
        Arc::new(shared.cluster) as Arc<dyn ClusterView>,
        shared.published as Arc<dyn MetricsSource>,
        shared.health,
        Arc::clone(&metrics.registry),
        metrics.api.clone(),
    )
    .with_diagnosis(Arc::new(KubeletDiagnosis::new(shared.scrape_health)));
    let stack_options = StackOptions::from_api_config(state.config(), metrics.rejections.clone());
    let router = metrics_server_api::router(state);
    let router = match &shared.shard {
        Some(shard) => crate::shard::with_exchange_route(router, Arc::clone(shard)),
        None => router,
    };
    (router, stack_options)
}

/// The TLS config around the serving certificates' resolver, kept current: the certificate
/// files are re-read, and a change of the client CAs rebuilds the config with the new
/// acceptable issuers. Also returns the resolver.
fn reloading_tls(
    certs: DynamicServingCerts,
    options: TlsOptions,
    trust: Trust,
    shutdown: &CancellationToken,
) -> Result<(Arc<ArcSwap<ServerConfig>>, Arc<ServingCertResolver>), RunError> {
    let resolver = certs.resolver();
    let local_ip_certs = Arc::clone(&resolver);
    let tls = metrics_server_auth::server_config_with_resolver(
        resolver.clone(),
        &options,
        trust.config.load().acceptable_issuers(),
    )
    .map_err(startup)?;
    let tls = Arc::new(ArcSwap::new(tls));
    certs.spawn(DEFAULT_CERT_RELOAD_INTERVAL, shutdown.child_token());
    let reloader = metrics_server_auth::resolver_tls_reloader(resolver, options, Arc::clone(&tls));
    metrics_server_auth::lookup::spawn_reloader(
        trust.options,
        Some(trust.client),
        trust.config,
        reloader,
        shutdown.child_token(),
    );
    Ok((tls, local_ip_certs))
}

/// Opens the secure port and serves `service` on it until `shutdown`.
fn listen_and_serve(
    listener: &ServingFlags,
    secure_port: u16,
    tls: Arc<ArcSwap<ServerConfig>>,
    certs_by_local_ip: Option<Arc<ServingCertResolver>>,
    service: HttpsService,
    shutdown: &CancellationToken,
) -> Result<JoinHandle<()>, RunError> {
    let tcp = listen(
        listener.bind_address,
        secure_port,
        listener.permit_port_sharing,
    )
    .map_err(startup)?;
    let local = tcp.local_addr().map_err(startup)?;
    tracing::info!(address = %local, "Serving securely");
    let options = ServeOptions {
        http2_max_streams_per_connection: u32::try_from(listener.http2_max_streams_per_connection)
            .unwrap_or(0),
        disable_http2: listener.disable_http2,
        certs_by_local_ip,
        ..ServeOptions::default()
    };
    Ok(tokio::spawn(metrics_server_auth::serve(
        tcp,
        tls,
        service,
        options,
        shutdown.clone(),
    )))
}

/// `/version` contents.
pub fn version_info() -> VersionInfo {
    let mut parts = env!("CARGO_PKG_VERSION").split('.');
    VersionInfo {
        major: parts.next().unwrap_or_default().to_owned(),
        minor: parts.next().unwrap_or_default().to_owned(),
        git_version: VERSION.to_owned(),
        git_commit: option_env!("METRICS_SERVER_GIT_COMMIT")
            .unwrap_or_default()
            .to_owned(),
        ..VersionInfo::default()
    }
}

/// The address the generic apiserver advertises in discovery: `--external-hostname`, else
/// `--advertise-address` or a specific `--bind-address`, with the port.
fn server_address(
    advertise: Option<IpAddr>,
    external_hostname: &str,
    bind: Option<IpAddr>,
    port: u16,
) -> Option<String> {
    if !external_hostname.is_empty() {
        return Some(external_hostname.to_owned());
    }
    let ip = advertise.or(bind.filter(|b| !b.is_unspecified()))?;
    Some(SocketAddr::new(ip, port).to_string())
}

/// The E.9 attributes of a request, as the api crate derives them from its routes.
pub fn request_attributes(method: &Method, uri: &Uri) -> metrics_server_auth::Attributes {
    metrics_server_api::request_attributes(method.as_str(), uri.path(), uri.query().unwrap_or(""))
}

/// Binds the secure port. An unspecified address (0.0.0.0, `::` or empty) listens on all
/// interfaces and both IP families, like Go's `net.Listen`. SO_REUSEADDR is always set, as Go
/// does for every listener, so `--permit-address-sharing` adds nothing; `reuse_port` is
/// `--permit-port-sharing`.
pub fn listen(bind: Option<IpAddr>, port: u16, reuse_port: bool) -> anyhow::Result<TcpListener> {
    let bind_one = |addr: SocketAddr, dual_stack: bool| -> std::io::Result<TcpListener> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        if dual_stack {
            socket.set_only_v6(false)?;
        }
        // Go sets SO_REUSEADDR on every listener; --permit-address-sharing changes nothing more.
        socket.set_reuse_address(true)?;
        if reuse_port {
            socket.set_reuse_port(true)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        TcpListener::from_std(socket.into())
    };
    let unspecified = bind.is_none_or(|ip| ip.is_unspecified());
    let result = if unspecified {
        bind_one(
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
            true,
        )
        .or_else(|_| {
            bind_one(
                SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
                false,
            )
        })
    } else {
        bind_one(
            SocketAddr::new(bind.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), port),
            false,
        )
    };
    let shown = bind.map_or_else(|| "0.0.0.0".to_owned(), |ip| ip.to_string());
    result.with_context(|| format!("failed to create listener: failed to listen on {shown}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_advertised_address_prefers_hostname_then_advertise_then_a_specific_bind() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(
            server_address(ip("10.0.0.1"), "ms.example", ip("127.0.0.1"), 443).as_deref(),
            Some("ms.example")
        );
        assert_eq!(
            server_address(ip("10.0.0.1"), "", ip("127.0.0.1"), 443).as_deref(),
            Some("10.0.0.1:443")
        );
        assert_eq!(
            server_address(None, "", ip("::1"), 10250).as_deref(),
            Some("[::1]:10250")
        );
        assert_eq!(server_address(None, "", ip("0.0.0.0"), 443), None);
        assert_eq!(server_address(None, "", None, 443), None);
    }

    #[tokio::test]
    async fn listening_on_a_specific_or_unspecified_address_works() {
        let l = listen(Some(IpAddr::from([127, 0, 0, 1])), 0, false).unwrap();
        assert!(l.local_addr().unwrap().ip().is_loopback());
        let all = listen(None, 0, true).unwrap();
        assert!(all.local_addr().unwrap().ip().is_unspecified());
        let port = l.local_addr().unwrap().port();
        let err = listen(Some(IpAddr::from([127, 0, 0, 1])), port, false).unwrap_err();
        assert!(
            format!("{err:#}").starts_with(&format!(
                "failed to create listener: failed to listen on 127.0.0.1:{port}"
            )),
            "{err:#}"
        );
    }
}
