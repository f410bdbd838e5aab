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
//!
//! `run` reads as the list of these steps. The flags come sorted by concern (`run_flags`);
//! the HTTPS server is prepared and started in `serve`; the watches, the wait for a signal
//! and the shutdown are in `lifecycle`; what the steps share is in `shared`.

mod error;
mod lifecycle;
mod run_flags;
mod serve;
mod shared;

pub use error::RunError;
pub use serve::{listen, request_attributes, version_info};

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use arc_swap::ArcSwap;
use metrics_server_auth::{
    AccessReviewer, AuthenticationOptions, Authenticator, AuthorizationOptions, Authorizer,
    TokenReviewer,
};
use metrics_server_k8s::KubeletCredentialFlags;
use metrics_server_kubelet::{
    AddressConfig, KubeletClient, KubeletClientConfig, Scraper, ScraperConfig,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::diagnosis::{ApiServerNodeProxy, NodeEvents, node_proxy};
use crate::flags::{Args, IgnoredFlag, Limits, Notice, VERSION, Validated, std_duration};
use crate::scrape::ScrapeLoop;
use crate::shard::ShardSettings;
use error::startup;
use lifecycle::{CacheWait, Running, Sharding, Signals, Watches};
use run_flags::{AuthnFlags, AuthzFlags, KubeletFlags, RunFlags, non_empty};
use serve::{Https, RequestAuth, Trust};
use shared::{SelfMetrics, Shared};

/// How long startup waits between attempts to read the authentication ConfigMap while
/// kube-apiserver is unreachable (doubling up to [`LOOKUP_RETRY_MAX`]).
const LOOKUP_RETRY_START: Duration = Duration::from_millis(500);
const LOOKUP_RETRY_MAX: Duration = Duration::from_secs(30);

impl Args {
    /// Runs the server until SIGTERM/SIGINT (Ok) or until a critical task dies (Err).
    pub async fn run(self, validated: Validated) -> Result<(), RunError> {
        let ignored_flags = self.ignored_flags();
        let mut flags = RunFlags::from_args(self);
        log_start(&ignored_flags, &flags);
        let resolution = std_duration(flags.metric_resolution);
        let secure_port = validated.secure_port;
        let shard_settings = resolve_shard(&mut flags, secure_port)?;

        // 1. Serving certificate and TLS options (upstream generates the pair first).
        let https = Https::prepare(flags.tls, flags.serving, &flags.requests, secure_port)?;

        // 2. Delegated authentication / authorization clients (empty flag: in-cluster). Like
        //    upstream, a missing in-cluster config is fatal.
        let delegated = delegated_clients(&flags.authn, &flags.authz, secure_port).await?;

        // 3. The lister client and the kubelet client built from the same kubeconfig.
        let (apiserver, kubelet) =
            cluster_clients(&flags.kubeconfig, &flags.kubelet, &validated, resolution).await?;

        // 4. One explicit registry: the six metrics_server_* families of E.13.
        let (metrics, shard) = SelfMetrics::register(resolution, shard_settings);
        let scraper = kubelet_scraper(kubelet, flags.kubelet, &validated, &metrics, &apiserver);
        let scrape_health = scraper.health();

        // 5. Authentication trust (flags + ConfigMap) and the authorizer.
        let shutdown = CancellationToken::new();
        let auth = request_auth(delegated, flags.authn, flags.authz, &validated, &metrics).await?;

        // 6. Watches; the listener opens only once both caches are complete (E.11).
        let shared = Shared::new(resolution, shard, scrape_health);
        let (mut watches, synced) = Watches::start(&apiserver.client, &shared.cluster);
        let mut signals = Signals::new().map_err(startup)?;
        let caches = watches.wait_for_caches(synced, &mut signals, &shared.health);
        if caches.await? == CacheWait::ShutdownRequested {
            return Ok(());
        }

        // 7. The scrape loop: first tick now.
        let (scrape_loop, sharding) = start_scrape_loop(
            scraper, &shared, &validated, &metrics, &apiserver, &shutdown,
        )?;
        let events = flags.node_scrape_events.then(|| apiserver.client.clone());
        spawn_node_events(&shared, &metrics, events, &shutdown);

        // 8. Serve.
        let health = Arc::clone(&shared.health);
        let api = https.api_config(&flags.requests, validated);
        let server = serve::start(https, auth, api, shared, &metrics, &shutdown)?;

        // 9. Run until a signal or a critical task ends.
        let mut running = Running {
            signals,
            watches,
            scrape_loop,
            server,
            sharding,
            health,
            shutdown,
        };
        running.wait_for_exit().await?;

        // 10. Graceful shutdown. The shard Lease is released first, so peers take the nodes over.
        let request_timeout = flags.requests.request_timeout;
        running
            .graceful_shutdown(flags.shutdown_delay_duration, request_timeout)
            .await;
        Ok(())
    }
}

/// The startup lines: the version, each ignored flag the operator set, and at debug level the
/// ignored flags' values and the positional arguments.
fn log_start(ignored_flags: &[IgnoredFlag], flags: &RunFlags) {
    tracing::info!(version = VERSION, "Starting metrics-server");
    log_ignored_flags(ignored_flags);
    if !flags.ignored.is_empty() {
        tracing::debug!(flags = ?flags.ignored, "Values of the ignored flags");
    }
    if !flags.positionals.is_empty() {
        tracing::debug!(args = ?flags.positionals, "Ignoring positional arguments");
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

/// The shard settings from the `--shard-*` flags and the environment (`None` unless
/// `--shard-by-lease`).
fn resolve_shard(
    flags: &mut RunFlags,
    secure_port: u16,
) -> Result<Option<ShardSettings>, RunError> {
    let settings = flags
        .shard
        .resolve(
            secure_port,
            |k| std::env::var(k).ok(),
            |f| std::fs::read_to_string(f).ok(),
        )
        .map_err(|e| startup(anyhow!(e)))?;
    if settings.is_some() {
        // The exchange handler authorizes its peers itself.
        flags
            .authz
            .always_allow_paths
            .push(crate::shard::exchange::PATH.to_owned());
    }
    Ok(settings)
}

/// The clients for delegated authentication and authorization.
struct DelegatedClients {
    authn: kube::Client,
    authz: kube::Client,
}

/// Step 2: when serving (`secure_port` set), the delegated clients.
async fn delegated_clients(
    authn: &AuthnFlags,
    authz: &AuthzFlags,
    secure_port: u16,
) -> Result<Option<DelegatedClients>, RunError> {
    if secure_port == 0 {
        return Ok(None);
    }
    let authn = delegated_client(&authn.kubeconfig)
        .await
        .map_err(|e| {
            startup(anyhow!(
                "failed to get delegated authentication kubeconfig: failed to get delegated authentication kubeconfig: {e}"
            ))
        })?;
    let authz = delegated_client(&authz.kubeconfig).await.map_err(|e| {
        startup(anyhow!(
            "failed to get delegated authorization kubeconfig: {e}"
        ))
    })?;
    Ok(Some(DelegatedClients { authn, authz }))
}

/// A client for delegated authn/authz: the given kubeconfig, else in-cluster.
async fn delegated_client(path: &str) -> anyhow::Result<kube::Client> {
    let config = metrics_server_k8s::load_config(non_empty(path)).await?;
    Ok(metrics_server_k8s::client(config)?)
}

/// The lister client, and kube-apiserver's URL for its node proxy.
struct ApiServer {
    client: kube::Client,
    url: String,
}

/// Step 3: the lister client and the kubelet client, both from `--kubeconfig`.
async fn cluster_clients(
    kubeconfig: &str,
    kubelet: &KubeletFlags,
    validated: &Validated,
    resolution: Duration,
) -> Result<(ApiServer, KubeletClient), RunError> {
    let kube_config = metrics_server_k8s::load_config(non_empty(kubeconfig))
        .await
        .map_err(|e| startup(anyhow!("unable to construct lister client config: {e}")))?;
    let mut kubelet_config = metrics_server_k8s::kubelet_client_config(
        &kube_config,
        &KubeletCredentialFlags {
            insecure_tls: kubelet.insecure_tls,
            certificate_authority: non_empty(&kubelet.certificate_authority).map(Path::to_owned),
            client_certificate: non_empty(&kubelet.client_certificate).map(Path::to_owned),
            client_key: non_empty(&kubelet.client_key).map(Path::to_owned),
            completely_insecure: kubelet.completely_insecure,
        },
    )
    .map_err(startup)?;
    apply_kubelet_flags(&mut kubelet_config, kubelet, validated, resolution);
    let kubelet_client = KubeletClient::new(&kubelet_config)
        .map_err(|e| startup(anyhow!("unable to create the kubelet client: {e}")))?;
    let url = kube_config.cluster_url.to_string();
    let client = metrics_server_k8s::client(kube_config).map_err(startup)?;
    Ok((ApiServer { client, url }, kubelet_client))
}

/// What the flags set on the kubelet client, over the kubeconfig's credentials. Kept apart from
/// `cluster_clients` so a test can check it without a kubeconfig.
fn apply_kubelet_flags(
    config: &mut KubeletClientConfig,
    kubelet: &KubeletFlags,
    validated: &Validated,
    resolution: Duration,
) {
    config.user_agent = user_agent();
    config.request_timeout = std_duration(kubelet.request_timeout);
    config.max_body_bytes = validated.limits.kubelet_max_body_bytes;
    config.pool_idle_timeout = config
        .pool_idle_timeout
        .max(resolution + Duration::from_secs(30));
    config.keep_alive = kubelet.keep_alive;
    if !kubelet.keep_alive {
        // Unusual enough to say once: it trades CPU on both ends for memory here.
        tracing::info!(
            "Kubelet connections are closed after each response (--kubelet-keep-alive=false)"
        );
    }
}

/// The scraper of the kubelets; with `--kubelet-node-proxy-fallback`, nodes whose kubelet
/// port is unreachable go through kube-apiserver's node proxy.
fn kubelet_scraper(
    kubelet_client: KubeletClient,
    flags: KubeletFlags,
    validated: &Validated,
    metrics: &SelfMetrics,
    apiserver: &ApiServer,
) -> Scraper {
    let limits = &validated.limits;
    let scraper = Scraper::new(
        kubelet_client,
        ScraperConfig {
            address: AddressConfig {
                preferred_address_types: flags.preferred_address_types,
                port: validated.kubelet_port,
                use_node_status_port: flags.use_node_status_port,
            },
            max_in_flight: limits.kubelet_max_requests_inflight,
            ..ScraperConfig::default()
        },
        Some(metrics.kubelet.clone()),
    );
    if flags.node_proxy_fallback {
        tracing::info!(
            "Nodes whose kubelet port is unreachable are scraped through kube-apiserver's node proxy"
        );
        let proxy = ApiServerNodeProxy::new(
            apiserver.client.clone(),
            &apiserver.url,
            limits.kubelet_max_body_bytes,
        );
        scraper.with_node_proxy(node_proxy(proxy)).0
    } else {
        scraper
    }
}

/// Step 5: when serving, the authentication trust, the authenticator and the authorizer.
async fn request_auth(
    delegated: Option<DelegatedClients>,
    authn: AuthnFlags,
    authz: AuthzFlags,
    validated: &Validated,
    metrics: &SelfMetrics,
) -> Result<Option<RequestAuth>, RunError> {
    let options = authentication_options(authn, &validated.limits);
    let Some(clients) = delegated else {
        return Ok(None);
    };
    let config = load_authn_with_retry(&options, &clients.authn).await?;
    let config = Arc::new(ArcSwap::from_pointee(config));
    let tokens: Arc<dyn TokenReviewer> = Arc::new(metrics_server_auth::KubeTokenReviewer::new(
        clients.authn.clone(),
    ));
    let authenticator =
        Authenticator::from_options(Arc::clone(&config), Some(tokens), &options, &metrics.auth);
    let reviewer: Arc<dyn AccessReviewer> = Arc::new(metrics_server_auth::KubeAccessReviewer::new(
        clients.authz.clone(),
    ));
    let authorizer = Authorizer::with_metrics(
        &authorization_options(authz, &validated.limits),
        Some(reviewer),
        &metrics.auth,
    )
    .map_err(startup)?;
    let trust = Trust {
        options,
        client: clients.authn,
        config,
    };
    Ok(Some(RequestAuth {
        trust,
        authenticator,
        authorizer,
    }))
}

fn authentication_options(authn: AuthnFlags, limits: &Limits) -> AuthenticationOptions {
    AuthenticationOptions {
        client_ca_file: non_empty(&authn.client_ca_file).map(Path::to_owned),
        requestheader_client_ca_file: non_empty(&authn.requestheader_client_ca_file)
            .map(Path::to_owned),
        requestheader_allowed_names: authn.requestheader_allowed_names,
        requestheader_username_headers: authn.requestheader_username_headers,
        requestheader_group_headers: authn.requestheader_group_headers,
        requestheader_extra_headers_prefix: authn.requestheader_extra_headers_prefix,
        skip_lookup: authn.skip_lookup,
        tolerate_lookup_failure: authn.tolerate_lookup_failure,
        token_webhook_cache_ttl: std_duration(authn.token_webhook_cache_ttl),
        token_cache_size: limits.authentication_token_cache_size,
        ..AuthenticationOptions::default()
    }
}

fn authorization_options(authz: AuthzFlags, limits: &Limits) -> AuthorizationOptions {
    AuthorizationOptions {
        always_allow_paths: authz.always_allow_paths,
        authorized_ttl: std_duration(authz.authorized_ttl),
        unauthorized_ttl: std_duration(authz.unauthorized_ttl),
        cache_size: limits.authorization_cache_size,
        ..AuthorizationOptions::default()
    }
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

/// Step 7: the scrape loop, and with sharding the Lease loop and the exchange pollers.
fn start_scrape_loop(
    scraper: Scraper,
    shared: &Shared,
    validated: &Validated,
    metrics: &SelfMetrics,
    apiserver: &ApiServer,
    shutdown: &CancellationToken,
) -> Result<(JoinHandle<()>, Sharding), RunError> {
    let scrape_loop = ScrapeLoop::new(
        scraper,
        shared.cluster.clone(),
        validated.node_selector.clone(),
        Arc::clone(&shared.published),
        Arc::clone(&shared.health),
        metrics.manager.clone(),
        shared.resolution,
    );
    let scrape_loop = match &shared.shard {
        Some(shard) => scrape_loop.with_shard(Arc::clone(shard)),
        None => scrape_loop,
    };
    let stop = CancellationToken::new();
    let tasks = shared.shard.as_ref().map(|shard| {
        shared
            .health
            .set_shard_check(crate::shard::readiness(Arc::clone(shard)));
        let client = apiserver.client.clone();
        crate::shard::spawn(Arc::clone(shard), client, user_agent(), &stop)
    });
    let tasks = tasks.transpose().map_err(startup)?;
    let scrape_task = tokio::spawn(tracing::Instrument::instrument(
        scrape_loop.run(shutdown.child_token()),
        tracing::info_span!("scraper"),
    ));
    Ok((scrape_task, Sharding { stop, tasks }))
}

/// Diagnosis: gauges always, Node events unless turned off (never critical).
fn spawn_node_events(
    shared: &Shared,
    metrics: &SelfMetrics,
    events: Option<kube::Client>,
    shutdown: &CancellationToken,
) {
    let node_events = NodeEvents::new(
        shared.scrape_health.clone(),
        metrics.diagnosis.clone(),
        events,
        shared.resolution,
    );
    tokio::spawn(node_events.run(shutdown.child_token()));
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

    /// The kubelet client config `run` builds from a command line, on a plain base.
    fn kubelet_config_for(args: &[&str]) -> KubeletClientConfig {
        let Ok(crate::flags::Command::Run(args)) = crate::flags::parse(args.iter().copied()) else {
            panic!("{args:?} should parse");
        };
        let validated = args.validate().expect("valid flags");
        let flags = RunFlags::from_args(*args);
        let resolution = std_duration(flags.metric_resolution);
        let mut config = KubeletClientConfig::new(metrics_server_kubelet::Transport::Http);
        apply_kubelet_flags(&mut config, &flags.kubelet, &validated, resolution);
        config
    }

    #[test]
    fn kubelet_keep_alive_reaches_the_kubelet_client_config() {
        assert!(kubelet_config_for(&[]).keep_alive);
        assert!(kubelet_config_for(&["--kubelet-keep-alive=true"]).keep_alive);
        let closing = kubelet_config_for(&["--kubelet-keep-alive=false"]);
        assert!(!closing.keep_alive);
        // The other kubelet settings are unchanged by it.
        let kept = kubelet_config_for(&[]);
        assert_eq!(
            KubeletClientConfig {
                keep_alive: true,
                ..closing
            },
            kept
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
