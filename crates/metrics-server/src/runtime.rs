//! `Args::run`: turns validated flags into a running server, in upstream's order.
//!
//! ```text
//! serving cert + TLS options ─► delegated authn/authz clients ─► lister client + kubelet client
//!   ─► registry (kubelet, api, manager families) ─► authn trust (ConfigMap lookup, retried)
//!   ─► node + pod watches ─► wait for both to sync ─► scrape loop (first tick now)
//!   ─► HTTPS listener: serve(TLS ─► stack(panic recovery, timeout, authn, max-in-flight,
//!      authz) ─► router)
//!   ─► select! { signal, any critical task ending }
//! shutdown: /readyz fails ─► --shutdown-delay-duration ─► cancel: stop accepting, drain,
//!           stop the scrape loop and the reloader ─► exit 0
//! ```

use crate::diagnosis::{
    ApiServerNodeProxy, DiagnosisMetrics, KubeletDiagnosis, NodeEvents, node_proxy,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use arc_swap::ArcSwap;
use http::{Method, Uri};
use metrics_server_api::{
    AllowedOrigins, ApiConfig, ApiMetrics, ApiState, ClusterView, CorsLayer, HealthState,
    HstsLayer, MetricsSource, VersionInfo,
};
use metrics_server_auth::stack::StackOptions;
use metrics_server_auth::{
    AccessReviewer, AuthMetrics, AuthenticationOptions, Authenticator, AuthorizationOptions,
    Authorizer, DEFAULT_CERT_RELOAD_INTERVAL, DynamicServingCerts, NamedCertKey, ServeOptions,
    ServingCertFiles, ServingCerts, TlsOptions, TokenReviewer,
};
use metrics_server_core::SharedSnapshot;
use metrics_server_k8s::{Cluster, KubeletCredentialFlags, Synced};
use metrics_server_kubelet::{
    AddressConfig, KubeletClient, KubeletMetrics, Scraper, ScraperConfig,
};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::Layer as _;

use crate::flags::{Args, IgnoredFlag, Notice, VERSION, Validated, std_duration};
use crate::metrics::ManagerMetrics;
use crate::scrape::ScrapeLoop;

/// Why `run` returned with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Configuration or startup failed before serving (upstream exits 2 for these).
    #[error("{0:#}")]
    Startup(anyhow::Error),
    /// A critical task ended while serving.
    #[error("{0:#}")]
    Crashed(anyhow::Error),
}

/// How long startup waits between attempts to read the authentication ConfigMap while
/// kube-apiserver is unreachable (doubling up to [`LOOKUP_RETRY_MAX`]).
const LOOKUP_RETRY_START: Duration = Duration::from_millis(500);
const LOOKUP_RETRY_MAX: Duration = Duration::from_secs(30);

fn startup(e: impl Into<anyhow::Error>) -> RunError {
    RunError::Startup(e.into())
}

fn non_empty(s: &str) -> Option<&Path> {
    (!s.is_empty()).then(|| Path::new(s))
}

impl Args {
    /// Runs the server until SIGTERM/SIGINT (Ok) or until a critical task dies (Err).
    pub async fn run(self, validated: Validated) -> Result<(), RunError> {
        let Validated {
            node_selector,
            log_format: _,
            kubelet_port,
            secure_port,
            limits,
            served_versions,
        } = validated;
        let ignored_flags = self.ignored_flags();
        let Args {
            kubeconfig,
            metric_resolution,
            version: _,
            advertise_address,
            external_hostname,
            max_mutating_requests_inflight,
            max_requests_inflight,
            request_timeout,
            cors_allowed_origins,
            strict_transport_security_directives,
            shutdown_delay_duration,
            deprecated_kubelet_completely_insecure,
            kubelet_certificate_authority,
            kubelet_client_certificate,
            kubelet_client_key,
            kubelet_insecure_tls,
            kubelet_port: _,
            kubelet_preferred_address_types,
            kubelet_request_timeout,
            kubelet_use_node_status_port,
            node_selector: _,
            bind_address,
            cert_dir,
            disable_http2_serving,
            http2_max_streams_per_connection,
            permit_address_sharing,
            permit_port_sharing,
            secure_port: _,
            tls_cert_file,
            tls_cipher_suites,
            tls_min_version,
            tls_private_key_file,
            tls_sni_cert_key,
            authentication_kubeconfig,
            authentication_skip_lookup,
            authentication_token_webhook_cache_ttl,
            authentication_tolerate_lookup_failure,
            client_ca_file,
            requestheader_allowed_names,
            requestheader_client_ca_file,
            requestheader_extra_headers_prefix,
            requestheader_group_headers,
            requestheader_username_headers,
            authorization_always_allow_paths,
            authorization_kubeconfig,
            authorization_webhook_cache_authorized_ttl,
            authorization_webhook_cache_unauthorized_ttl,
            // The four limits are used as validated, from `limits`.
            kubelet_max_requests_inflight: _,
            kubelet_max_body_bytes: _,
            authentication_token_cache_size: _,
            authorization_cache_size: _,
            kubelet_node_proxy_fallback,
            node_scrape_events,
            served_metrics_versions: _,
            shard: shard_flags,
            logging_format: _,
            v: _,
            ignored,
            positionals,
            changed: _,
        } = self;

        tracing::info!(version = VERSION, "Starting metrics-server");
        log_ignored_flags(&ignored_flags);
        if !ignored.is_empty() {
            tracing::debug!(flags = ?ignored, "Values of the ignored flags");
        }
        if !positionals.is_empty() {
            tracing::debug!(args = ?positionals, "Ignoring positional arguments");
        }
        let resolution = std_duration(metric_resolution);
        let serving = secure_port != 0;
        let shard_settings = shard_flags
            .resolve(
                secure_port,
                |k| std::env::var(k).ok(),
                |f| std::fs::read_to_string(f).ok(),
            )
            .map_err(|e| startup(anyhow!(e)))?;
        let mut authorization_always_allow_paths = authorization_always_allow_paths;
        if shard_settings.is_some() {
            // The exchange handler authorizes its peers itself.
            authorization_always_allow_paths.push(crate::shard::exchange::PATH.to_owned());
        }

        // 1. Serving certificate and TLS options (upstream generates the pair first).
        let bind_ip = bind_address.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let tls_options =
            TlsOptions::from_flags(&tls_min_version, &tls_cipher_suites, disable_http2_serving)
                .map_err(startup)?;
        let sni_names_an_ip = metrics_server_auth::names_an_ip(&tls_sni_cert_key);
        let certs = if serving {
            let certs = ServingCerts::from_flags(
                non_empty(&tls_cert_file),
                non_empty(&tls_private_key_file),
                Path::new(&cert_dir),
                bind_ip,
            )
            .map_err(|e| startup(anyhow!("error creating self-signed certificates: {e}")))?;
            if let metrics_server_auth::CertSource::Generated(dir) = &certs.source {
                tracing::info!(dir = %dir.display(), "Generated self-signed cert");
            }
            // The pair is re-read from wherever it lives (flags or cert dir), with the SNI pairs.
            let files = serving_cert_files(
                &tls_cert_file,
                &tls_private_key_file,
                Path::new(&cert_dir),
                tls_sni_cert_key,
            );
            let certs = DynamicServingCerts::load(files)
                .map_err(|e| startup(anyhow!("unable to load serving certificates: {e}")))?;
            Some(certs)
        } else {
            None
        };
        // Outer HTTP filters (HSTS ⊃ CORS ⊃ authentication), refused at startup when invalid.
        let cors = AllowedOrigins::parse(&cors_allowed_origins).map_err(startup)?;
        let hsts =
            HstsLayer::from_directives(&strict_transport_security_directives).map_err(startup)?;

        // 2. Delegated authentication / authorization clients (empty flag: in-cluster). Like
        //    upstream, a missing in-cluster config is fatal.
        let (authn_client, authz_client) = if serving {
            let authn = delegated_client(&authentication_kubeconfig)
                .await
                .map_err(|e| {
                    startup(anyhow!(
                        "failed to get delegated authentication kubeconfig: failed to get delegated authentication kubeconfig: {e}"
                    ))
                })?;
            let authz = delegated_client(&authorization_kubeconfig)
                .await
                .map_err(|e| {
                    startup(anyhow!(
                        "failed to get delegated authorization kubeconfig: {e}"
                    ))
                })?;
            (Some(authn), Some(authz))
        } else {
            (None, None)
        };

        // 3. The lister client and the kubelet client built from the same kubeconfig.
        let kube_config = metrics_server_k8s::load_config(non_empty(&kubeconfig))
            .await
            .map_err(|e| startup(anyhow!("unable to construct lister client config: {e}")))?;
        let mut kubelet_config = metrics_server_k8s::kubelet_client_config(
            &kube_config,
            &KubeletCredentialFlags {
                insecure_tls: kubelet_insecure_tls,
                certificate_authority: non_empty(&kubelet_certificate_authority)
                    .map(Path::to_owned),
                client_certificate: non_empty(&kubelet_client_certificate).map(Path::to_owned),
                client_key: non_empty(&kubelet_client_key).map(Path::to_owned),
                completely_insecure: deprecated_kubelet_completely_insecure,
            },
        )
        .map_err(startup)?;
        kubelet_config.user_agent = user_agent();
        kubelet_config.request_timeout = std_duration(kubelet_request_timeout);
        kubelet_config.max_body_bytes = limits.kubelet_max_body_bytes;
        kubelet_config.pool_idle_timeout = kubelet_config
            .pool_idle_timeout
            .max(resolution + Duration::from_secs(30));
        let kubelet_client = KubeletClient::new(&kubelet_config)
            .map_err(|e| startup(anyhow!("unable to create the kubelet client: {e}")))?;
        let cluster_url = kube_config.cluster_url.to_string();
        let client = metrics_server_k8s::client(kube_config).map_err(startup)?;

        // 4. One explicit registry: the six metrics_server_* families of E.13.
        let mut registry = Registry::default();
        let kubelet_metrics = KubeletMetrics::register(&mut registry);
        let api_metrics = ApiMetrics::register(&mut registry);
        let manager_metrics = ManagerMetrics::register(&mut registry, resolution);
        let auth_metrics = AuthMetrics::register(&mut registry);
        let rejections = metrics_server_auth::stack::Rejections::register(&mut registry);
        let shard =
            shard_settings.map(|settings| crate::shard::start(settings, resolution, &mut registry));
        let diagnosis_metrics = DiagnosisMetrics::register(&mut registry);
        let registry = Arc::new(registry);

        let scraper = Scraper::new(
            kubelet_client,
            ScraperConfig {
                address: AddressConfig {
                    preferred_address_types: kubelet_preferred_address_types,
                    port: kubelet_port,
                    use_node_status_port: kubelet_use_node_status_port,
                },
                max_in_flight: limits.kubelet_max_requests_inflight,
                ..ScraperConfig::default()
            },
            Some(kubelet_metrics),
        );
        let scraper = if kubelet_node_proxy_fallback {
            tracing::info!(
                "Nodes whose kubelet port is unreachable are scraped through kube-apiserver's node proxy"
            );
            let proxy = ApiServerNodeProxy::new(
                client.clone(),
                &cluster_url,
                limits.kubelet_max_body_bytes,
            );
            scraper.with_node_proxy(node_proxy(proxy)).0
        } else {
            scraper
        };
        let scrape_health = scraper.health();

        // 5. Authentication trust (flags + ConfigMap) and the authorizer.
        let shutdown = CancellationToken::new();
        let authn_options = AuthenticationOptions {
            client_ca_file: non_empty(&client_ca_file).map(Path::to_owned),
            requestheader_client_ca_file: non_empty(&requestheader_client_ca_file)
                .map(Path::to_owned),
            requestheader_allowed_names,
            requestheader_username_headers,
            requestheader_group_headers,
            requestheader_extra_headers_prefix,
            skip_lookup: authentication_skip_lookup,
            tolerate_lookup_failure: authentication_tolerate_lookup_failure,
            token_webhook_cache_ttl: std_duration(authentication_token_webhook_cache_ttl),
            token_cache_size: limits.authentication_token_cache_size,
            ..AuthenticationOptions::default()
        };
        let auth = match (&authn_client, &authz_client) {
            (Some(authn_client), Some(authz_client)) => {
                let authn_config = load_authn_with_retry(&authn_options, authn_client).await?;
                let authn_config = Arc::new(ArcSwap::from_pointee(authn_config));
                let tokens: Arc<dyn TokenReviewer> = Arc::new(
                    metrics_server_auth::KubeTokenReviewer::new(authn_client.clone()),
                );
                let authenticator = Authenticator::from_options(
                    Arc::clone(&authn_config),
                    Some(tokens),
                    &authn_options,
                    &auth_metrics,
                );
                let reviewer: Arc<dyn AccessReviewer> = Arc::new(
                    metrics_server_auth::KubeAccessReviewer::new(authz_client.clone()),
                );
                let authorizer = Authorizer::with_metrics(
                    &AuthorizationOptions {
                        always_allow_paths: authorization_always_allow_paths,
                        authorized_ttl: std_duration(authorization_webhook_cache_authorized_ttl),
                        unauthorized_ttl: std_duration(
                            authorization_webhook_cache_unauthorized_ttl,
                        ),
                        cache_size: limits.authorization_cache_size,
                        ..AuthorizationOptions::default()
                    },
                    Some(reviewer),
                    &auth_metrics,
                )
                .map_err(startup)?;
                Some((authn_config, authenticator, authorizer))
            }
            _ => None,
        };

        // 6. Watches; the listener opens only once both caches are complete (E.11).
        let cluster = Cluster::new();
        let health = Arc::new(HealthState::new(resolution));
        let (node_watch, node_synced) =
            metrics_server_k8s::node_watch(client.clone(), Arc::clone(cluster.nodes()));
        let (pod_watch, pod_synced) =
            metrics_server_k8s::pod_watch(client.clone(), Arc::clone(cluster.pods()));
        let mut node_task = tokio::spawn(tracing::Instrument::instrument(
            node_watch,
            tracing::info_span!("nodes"),
        ));
        let mut pod_task = tokio::spawn(tracing::Instrument::instrument(
            pod_watch,
            tracing::info_span!("pods"),
        ));
        let mut signals = Signals::new().map_err(startup)?;
        tokio::select! {
            r = wait_for_sync(node_synced, pod_synced) => r.map_err(RunError::Crashed)?,
            () = signals.recv() => {
                tracing::info!("Shutdown requested before the caches synced");
                return Ok(());
            }
            r = &mut node_task => return Err(RunError::Crashed(ended("node watch", r))),
            r = &mut pod_task => return Err(RunError::Crashed(ended("pod watch", r))),
        }
        health.set_node_informer_synced(true);
        health.set_pod_informer_synced(true);

        // 7. The scrape loop: first tick now.
        let published = Arc::new(SharedSnapshot::new());
        let scrape_loop = ScrapeLoop::new(
            scraper,
            cluster.clone(),
            node_selector.clone(),
            Arc::clone(&published),
            Arc::clone(&health),
            manager_metrics,
            resolution,
        );
        let scrape_loop = match &shard {
            Some(shard) => scrape_loop.with_shard(Arc::clone(shard)),
            None => scrape_loop,
        };
        let shard_stop = CancellationToken::new();
        let shard_tasks = shard.as_ref().map(|shard| {
            health.set_shard_check(crate::shard::readiness(Arc::clone(shard)));
            crate::shard::spawn(Arc::clone(shard), client.clone(), user_agent(), &shard_stop)
        });
        let shard_tasks = shard_tasks.transpose().map_err(startup)?;
        let mut scrape_task = tokio::spawn(tracing::Instrument::instrument(
            scrape_loop.run(shutdown.child_token()),
            tracing::info_span!("scraper"),
        ));

        // Diagnosis: gauges always, Node events unless turned off (never critical).
        tokio::spawn(
            NodeEvents::new(
                scrape_health.clone(),
                diagnosis_metrics,
                node_scrape_events.then(|| client.clone()),
                resolution,
            )
            .run(shutdown.child_token()),
        );

        // 8. Serve.
        let mut serve_task: JoinHandle<()> = match (certs, auth) {
            (Some(certs), Some((authn_config, authenticator, authorizer))) => {
                let server_address = server_address(
                    advertise_address,
                    &external_hostname,
                    bind_address,
                    secure_port,
                );
                let state = ApiState::new(
                    ApiConfig {
                        node_selector,
                        max_requests_inflight: usize::try_from(max_requests_inflight).unwrap_or(0),
                        max_mutating_requests_inflight: usize::try_from(
                            max_mutating_requests_inflight,
                        )
                        .unwrap_or(0),
                        request_timeout: std_duration(request_timeout),
                        version: version_info(),
                        server_address,
                        openmetrics: false,
                        served_versions,
                    },
                    Arc::new(cluster) as Arc<dyn ClusterView>,
                    published as Arc<dyn MetricsSource>,
                    Arc::clone(&health),
                    registry,
                    api_metrics,
                )
                .with_diagnosis(Arc::new(KubeletDiagnosis::new(scrape_health)));
                let stack_options = StackOptions::from_api_config(state.config(), rejections);
                let router = metrics_server_api::router(state);
                let router = match &shard {
                    Some(shard) => crate::shard::with_exchange_route(router, Arc::clone(shard)),
                    None => router,
                };
                let stack = metrics_server_auth::stack::build(
                    stack_options,
                    authenticator,
                    authorizer,
                    request_attributes,
                    router,
                );
                // --- outer filters, outside authentication as in the generic apiserver ---
                let service = hsts.layer(CorsLayer::new(cors).layer(stack));
                // --- end of outer filters ---
                let resolver = certs.resolver();
                let local_ip_certs = Arc::clone(&resolver);
                let tls = metrics_server_auth::server_config_with_resolver(
                    resolver.clone(),
                    &tls_options,
                    authn_config.load().acceptable_issuers(),
                )
                .map_err(startup)?;
                let tls = Arc::new(ArcSwap::new(tls));
                certs.spawn(DEFAULT_CERT_RELOAD_INTERVAL, shutdown.child_token());
                let reloader = metrics_server_auth::resolver_tls_reloader(
                    resolver,
                    tls_options,
                    Arc::clone(&tls),
                );
                metrics_server_auth::lookup::spawn_reloader(
                    authn_options,
                    authn_client,
                    authn_config,
                    reloader,
                    shutdown.child_token(),
                );
                // SO_REUSEADDR is always on (as in Go), so address sharing needs nothing more.
                let _ = permit_address_sharing;
                let listener =
                    listen(bind_address, secure_port, permit_port_sharing).map_err(startup)?;
                let local = listener.local_addr().map_err(startup)?;
                tracing::info!(address = %local, "Serving securely");
                let options = ServeOptions {
                    http2_max_streams_per_connection: u32::try_from(
                        http2_max_streams_per_connection,
                    )
                    .unwrap_or(0),
                    disable_http2: disable_http2_serving,
                    certs_by_local_ip: sni_names_an_ip.then_some(local_ip_certs),
                    ..ServeOptions::default()
                };
                tokio::spawn(metrics_server_auth::serve(
                    listener,
                    tls,
                    service,
                    options,
                    shutdown.clone(),
                ))
            }
            _ => {
                tracing::info!("--secure-port is 0: not serving HTTPS");
                let token = shutdown.clone();
                tokio::spawn(async move { token.cancelled().await })
            }
        };

        // 9. Run until a signal or a critical task ends.
        let crashed = tokio::select! {
            () = signals.recv() => None,
            r = &mut node_task => Some(ended("node watch", r)),
            r = &mut pod_task => Some(ended("pod watch", r)),
            r = &mut scrape_task => Some(ended("scrape loop", r)),
            r = &mut serve_task => Some(ended("HTTPS server", r)),
        };
        if let Some(error) = crashed {
            shutdown.cancel();
            return Err(RunError::Crashed(error));
        }

        // 10. Graceful shutdown. The shard Lease is released first, so peers take the nodes over.
        health.begin_shutdown();
        shard_stop.cancel();
        if let Some(tasks) = shard_tasks {
            let _ = tokio::time::timeout(Duration::from_secs(6), tasks).await;
        }
        signals.exit_on_second_signal();
        let delay = std_duration(shutdown_delay_duration);
        if !delay.is_zero() {
            tracing::info!(delay = ?delay, "Shutdown requested; /readyz now fails, still serving");
            tokio::time::sleep(delay).await;
        }
        tracing::info!("Shutting down: draining in-flight requests");
        shutdown.cancel();
        node_task.abort();
        pod_task.abort();
        let drain =
            std_duration(request_timeout).max(Duration::from_secs(1)) + Duration::from_secs(5);
        if tokio::time::timeout(drain, &mut serve_task).await.is_err() {
            tracing::warn!("In-flight requests did not finish in time");
            serve_task.abort();
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), scrape_task).await;
        tracing::info!("Stopped");
        Ok(())
    }
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

/// One line per ignored flag the operator set: a warning where a security property is at
/// stake, info otherwise.
fn log_ignored_flags(flags: &[IgnoredFlag]) {
    for flag in flags {
        match flag.notice {
            Notice::Warn => tracing::warn!("{}", flag.message()),
            Notice::Info => tracing::info!("{}", flag.message()),
        }
    }
}

/// Upstream's agent string: `metrics-server/<ver> (<os>/<arch>) kubernetes/<commit>`.
pub fn user_agent() -> String {
    format!(
        "metrics-server/{VERSION} ({}/{}) kubernetes/{}",
        std::env::consts::OS,
        go_arch(),
        git_commit_short()
    )
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn git_commit_short() -> &'static str {
    let full = option_env!("METRICS_SERVER_GIT_COMMIT").unwrap_or("unknown");
    full.get(..7).unwrap_or(full)
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

/// A client for delegated authn/authz: the given kubeconfig, else in-cluster.
async fn delegated_client(path: &str) -> anyhow::Result<kube::Client> {
    let config = metrics_server_k8s::load_config(non_empty(path)).await?;
    Ok(metrics_server_k8s::client(config)?)
}

/// Whether a kube error means "kube-apiserver is not there yet" rather than a definite answer.
fn is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        _ => false,
    }
}

/// The startup ConfigMap lookup. Upstream panics when kube-apiserver is unreachable; here a
/// transport failure (connection refused, timeout, 5xx, 429) is retried with backoff and a
/// clear log line, because it says nothing about the lookup itself. A definite failure (403,
/// 401, bad data) keeps upstream's semantics: fatal unless
/// `--authentication-tolerate-lookup-failure`.
async fn load_authn_with_retry(
    options: &AuthenticationOptions,
    client: &kube::Client,
) -> Result<metrics_server_auth::AuthnConfig, RunError> {
    let mut delay = LOOKUP_RETRY_START;
    let mut attempt: u32 = 0;
    loop {
        // Tolerance is applied here, not in `load`, so that transient failures are retried
        // even when they would be tolerated.
        let strict = AuthenticationOptions {
            tolerate_lookup_failure: false,
            ..options.clone()
        };
        match metrics_server_auth::lookup::load(&strict, Some(client)).await {
            Ok(config) => return Ok(config),
            Err(metrics_server_auth::Error::Lookup(e)) if is_transient(&e) => {
                attempt += 1;
                tracing::warn!(
                    error = %e,
                    attempt,
                    retry_in = ?delay,
                    "kube-apiserver is not reachable yet; retrying the authentication configuration lookup"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(LOOKUP_RETRY_MAX);
            }
            Err(metrics_server_auth::Error::Lookup(e)) if options.tolerate_lookup_failure => {
                tracing::warn!(
                    error = %e,
                    "Error looking up in-cluster authentication configuration; continuing without it"
                );
                return metrics_server_auth::lookup::resolve(options, None).map_err(startup);
            }
            Err(e) => return Err(startup(e)),
        }
    }
}

/// Waits for both caches, logging progress every 10 s.
async fn wait_for_sync(mut nodes: Synced, mut pods: Synced) -> anyhow::Result<()> {
    tracing::info!("Waiting for the node and pod caches to sync");
    let (nodes_probe, pods_probe) = (nodes.clone(), pods.clone());
    let wait = async {
        let (n, p) = tokio::join!(nodes.wait(), pods.wait());
        n && p
    };
    let mut wait = std::pin::pin!(wait);
    let mut progress = tokio::time::interval(Duration::from_secs(10));
    progress.tick().await;
    loop {
        tokio::select! {
            ok = &mut wait => {
                return if ok {
                    tracing::info!("Caches synced");
                    Ok(())
                } else {
                    Err(anyhow!("a watch ended before its cache synced"))
                };
            }
            _ = progress.tick() => {
                tracing::info!(
                    nodes_synced = nodes_probe.is_synced(),
                    pods_synced = pods_probe.is_synced(),
                    "Still waiting for the caches to sync"
                );
            }
        }
    }
}

fn ended(what: &str, r: Result<(), tokio::task::JoinError>) -> anyhow::Error {
    match r {
        Ok(()) => anyhow!("{what} ended unexpectedly"),
        Err(e) if e.is_panic() => anyhow!("{what} panicked"),
        Err(e) => anyhow!("{what} was cancelled: {e}"),
    }
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

/// SIGTERM and SIGINT.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => tracing::info!(signal = "SIGTERM", "Received termination signal"),
            _ = self.int.recv() => tracing::info!(signal = "SIGINT", "Received termination signal"),
        }
    }

    /// A second signal during shutdown exits at once, like the Go apiserver.
    fn exit_on_second_signal(self) {
        let mut signals = self;
        tokio::spawn(async move {
            signals.recv().await;
            tracing::warn!("Second termination signal; exiting immediately");
            std::process::exit(1);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(
            kube::core::Status::failure("x", "y").with_code(code),
        ))
    }

    #[test]
    fn only_unreachable_or_overloaded_apiservers_are_retried() {
        assert!(is_transient(&api_error(503)));
        assert!(is_transient(&api_error(500)));
        assert!(is_transient(&api_error(429)));
        assert!(!is_transient(&api_error(403)));
        assert!(!is_transient(&api_error(401)));
        assert!(is_transient(&kube::Error::Service(
            "connection refused".into()
        )));
        assert!(!is_transient(&kube::Error::TlsRequired));
    }

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

    #[test]
    fn the_user_agent_reads_like_upstreams() {
        let ua = user_agent();
        assert!(
            ua.starts_with(&format!("metrics-server/{VERSION} (")),
            "{ua}"
        );
        assert!(ua.contains(") kubernetes/"), "{ua}");
        assert_eq!(version_info().git_version, VERSION);
    }
}
