//! The flags `Args::run` consumes, sorted into one group per concern, values as parsed.
//!
//! Values that exist only once validated (the ports, `--node-selector`, the limits, the
//! served versions) are taken from `Validated` instead.

use std::net::IpAddr;
use std::path::Path;

use metrics_server_auth::NamedCertKey;

use crate::flags::Args;
use crate::shard::ShardFlags;

/// Every flag `run` honours, grouped by the startup step that consumes it.
#[derive(Debug, Default)]
pub(super) struct RunFlags {
    /// `--kubeconfig` (empty: in-cluster): the lister client and the kubelet client's base.
    pub(super) kubeconfig: String,
    /// `--metric-resolution` (ns).
    pub(super) metric_resolution: i64,
    pub(super) tls: TlsFlags,
    pub(super) serving: ServingFlags,
    pub(super) requests: RequestFlags,
    pub(super) authn: AuthnFlags,
    pub(super) authz: AuthzFlags,
    pub(super) kubelet: KubeletFlags,
    /// The `--shard-*` flags.
    pub(super) shard: ShardFlags,
    /// `--node-scrape-events`.
    pub(super) node_scrape_events: bool,
    /// `--shutdown-delay-duration` (ns).
    pub(super) shutdown_delay_duration: i64,
    /// Accepted flags that change nothing here, as `name=value`, for a debug line.
    pub(super) ignored: Vec<String>,
    /// Positional arguments, for a debug line.
    pub(super) positionals: Vec<String>,
}

/// The serving certificate and the TLS handshake.
#[derive(Debug, Default)]
pub(super) struct TlsFlags {
    /// `--cert-dir`.
    pub(super) cert_dir: String,
    /// `--tls-cert-file`.
    pub(super) cert_file: String,
    /// `--tls-private-key-file`.
    pub(super) private_key_file: String,
    /// `--tls-sni-cert-key`, in flag order.
    pub(super) sni_cert_key: Vec<NamedCertKey>,
    /// `--tls-cipher-suites`.
    pub(super) cipher_suites: Vec<String>,
    /// `--tls-min-version`.
    pub(super) min_version: String,
}

/// The listener and the address advertised in discovery.
#[derive(Debug, Default)]
pub(super) struct ServingFlags {
    /// `--bind-address` (`None`: all interfaces).
    pub(super) bind_address: Option<IpAddr>,
    /// `--advertise-address`.
    pub(super) advertise_address: Option<IpAddr>,
    /// `--external-hostname`.
    pub(super) external_hostname: String,
    /// `--permit-port-sharing` (SO_REUSEPORT).
    pub(super) permit_port_sharing: bool,
    /// `--disable-http2-serving`.
    pub(super) disable_http2: bool,
    /// `--http2-max-streams-per-connection`.
    pub(super) http2_max_streams_per_connection: i64,
}

/// How requests are handled: in-flight limits, timeout, and the outer HTTP filters.
#[derive(Debug, Default)]
pub(super) struct RequestFlags {
    /// `--max-requests-inflight`.
    pub(super) max_requests_inflight: i64,
    /// `--max-mutating-requests-inflight`.
    pub(super) max_mutating_requests_inflight: i64,
    /// `--request-timeout` (ns).
    pub(super) request_timeout: i64,
    /// `--cors-allowed-origins`.
    pub(super) cors_allowed_origins: Vec<String>,
    /// `--strict-transport-security-directives`.
    pub(super) strict_transport_security_directives: Vec<String>,
}

/// Delegated authentication: its kubeconfig and the trust it reads.
#[derive(Debug, Default)]
pub(super) struct AuthnFlags {
    /// `--authentication-kubeconfig` (empty: in-cluster).
    pub(super) kubeconfig: String,
    /// `--authentication-skip-lookup`.
    pub(super) skip_lookup: bool,
    /// `--authentication-token-webhook-cache-ttl` (ns).
    pub(super) token_webhook_cache_ttl: i64,
    /// `--authentication-tolerate-lookup-failure`.
    pub(super) tolerate_lookup_failure: bool,
    /// `--client-ca-file`.
    pub(super) client_ca_file: String,
    /// `--requestheader-allowed-names`.
    pub(super) requestheader_allowed_names: Vec<String>,
    /// `--requestheader-client-ca-file`.
    pub(super) requestheader_client_ca_file: String,
    /// `--requestheader-extra-headers-prefix`.
    pub(super) requestheader_extra_headers_prefix: Vec<String>,
    /// `--requestheader-group-headers`.
    pub(super) requestheader_group_headers: Vec<String>,
    /// `--requestheader-username-headers`.
    pub(super) requestheader_username_headers: Vec<String>,
}

/// Delegated authorization.
#[derive(Debug, Default)]
pub(super) struct AuthzFlags {
    /// `--authorization-kubeconfig` (empty: in-cluster).
    pub(super) kubeconfig: String,
    /// `--authorization-always-allow-paths`.
    pub(super) always_allow_paths: Vec<String>,
    /// `--authorization-webhook-cache-authorized-ttl` (ns).
    pub(super) authorized_ttl: i64,
    /// `--authorization-webhook-cache-unauthorized-ttl` (ns).
    pub(super) unauthorized_ttl: i64,
}

/// The kubelet client and how nodes are reached.
#[derive(Debug, Default)]
pub(super) struct KubeletFlags {
    /// `--kubelet-insecure-tls`.
    pub(super) insecure_tls: bool,
    /// `--kubelet-certificate-authority`.
    pub(super) certificate_authority: String,
    /// `--kubelet-client-certificate`.
    pub(super) client_certificate: String,
    /// `--kubelet-client-key`.
    pub(super) client_key: String,
    /// `--deprecated-kubelet-completely-insecure`.
    pub(super) completely_insecure: bool,
    /// `--kubelet-request-timeout` (ns).
    pub(super) request_timeout: i64,
    /// `--kubelet-preferred-address-types`.
    pub(super) preferred_address_types: Vec<String>,
    /// `--kubelet-use-node-status-port`.
    pub(super) use_node_status_port: bool,
    /// `--kubelet-node-proxy-fallback`.
    pub(super) node_proxy_fallback: bool,
    /// `--kubelet-keep-alive`.
    pub(super) keep_alive: bool,
}

impl RunFlags {
    /// Sorts the flags of `args` into their groups. The assignment names every field of
    /// `Args`, so a new flag does not compile until it is routed to the step that honours it,
    /// or dropped here (`_`) with the reason.
    pub(super) fn from_args(args: Args) -> Self {
        let mut flags = Self::default();
        Args {
            kubeconfig: flags.kubeconfig,
            metric_resolution: flags.metric_resolution,
            advertise_address: flags.serving.advertise_address,
            external_hostname: flags.serving.external_hostname,
            max_mutating_requests_inflight: flags.requests.max_mutating_requests_inflight,
            max_requests_inflight: flags.requests.max_requests_inflight,
            request_timeout: flags.requests.request_timeout,
            cors_allowed_origins: flags.requests.cors_allowed_origins,
            strict_transport_security_directives: flags
                .requests
                .strict_transport_security_directives,
            shutdown_delay_duration: flags.shutdown_delay_duration,
            deprecated_kubelet_completely_insecure: flags.kubelet.completely_insecure,
            kubelet_certificate_authority: flags.kubelet.certificate_authority,
            kubelet_client_certificate: flags.kubelet.client_certificate,
            kubelet_client_key: flags.kubelet.client_key,
            kubelet_insecure_tls: flags.kubelet.insecure_tls,
            kubelet_preferred_address_types: flags.kubelet.preferred_address_types,
            kubelet_request_timeout: flags.kubelet.request_timeout,
            kubelet_use_node_status_port: flags.kubelet.use_node_status_port,
            bind_address: flags.serving.bind_address,
            cert_dir: flags.tls.cert_dir,
            disable_http2_serving: flags.serving.disable_http2,
            http2_max_streams_per_connection: flags.serving.http2_max_streams_per_connection,
            permit_port_sharing: flags.serving.permit_port_sharing,
            tls_cert_file: flags.tls.cert_file,
            tls_cipher_suites: flags.tls.cipher_suites,
            tls_min_version: flags.tls.min_version,
            tls_private_key_file: flags.tls.private_key_file,
            tls_sni_cert_key: flags.tls.sni_cert_key,
            authentication_kubeconfig: flags.authn.kubeconfig,
            authentication_skip_lookup: flags.authn.skip_lookup,
            authentication_token_webhook_cache_ttl: flags.authn.token_webhook_cache_ttl,
            authentication_tolerate_lookup_failure: flags.authn.tolerate_lookup_failure,
            client_ca_file: flags.authn.client_ca_file,
            requestheader_allowed_names: flags.authn.requestheader_allowed_names,
            requestheader_client_ca_file: flags.authn.requestheader_client_ca_file,
            requestheader_extra_headers_prefix: flags.authn.requestheader_extra_headers_prefix,
            requestheader_group_headers: flags.authn.requestheader_group_headers,
            requestheader_username_headers: flags.authn.requestheader_username_headers,
            authorization_always_allow_paths: flags.authz.always_allow_paths,
            authorization_kubeconfig: flags.authz.kubeconfig,
            authorization_webhook_cache_authorized_ttl: flags.authz.authorized_ttl,
            authorization_webhook_cache_unauthorized_ttl: flags.authz.unauthorized_ttl,
            kubelet_node_proxy_fallback: flags.kubelet.node_proxy_fallback,
            kubelet_keep_alive: flags.kubelet.keep_alive,
            node_scrape_events: flags.node_scrape_events,
            shard: flags.shard,
            ignored: flags.ignored,
            positionals: flags.positionals,
            // Deliberately not consumed:
            // `parse` answers `--version` itself.
            version: _,
            // SO_REUSEADDR is always on (as in Go), so address sharing needs nothing more.
            permit_address_sharing: _,
            // Used as validated, from `Validated` (the four limits too).
            kubelet_port: _,
            node_selector: _,
            secure_port: _,
            served_metrics_versions: _,
            kubelet_max_requests_inflight: _,
            kubelet_max_body_bytes: _,
            authentication_token_cache_size: _,
            authorization_cache_size: _,
            // Read by `logging::init` before `run`.
            logging_format: _,
            v: _,
            // Bookkeeping behind `Args::ignored_flags`, read before this.
            changed: _,
        } = args;
        flags
    }
}

/// A path flag: empty means not given.
pub(super) fn non_empty(s: &str) -> Option<&Path> {
    (!s.is_empty()).then(|| Path::new(s))
}
