//! The command line, parsed exactly as upstream's cobra/pflag command line (spec B).
//!
//! A hand-written port of pflag's `parseArgs` rather than clap, because drop-in compatibility
//! is about the edge cases: `--flag value` for non-booleans even when the value starts with a
//! dash, `--bool false` leaving `false` as a positional argument, `-v3`/`-v=3`/`-v 3`,
//! repeatable comma lists where the first use replaces the default, `--` ending the flags,
//! and pflag's and strconv's exact error texts. Every flag upstream v0.9.0 lists in `--help`
//! is accepted; the ones that mean nothing here (audit, profiling, feature gates, emulation,
//! log buffering, ...) are listed in `IGNORED`, recorded in [`Args::ignored`], and named at
//! startup by [`Args::ignored_flags`] (a warning where security is at stake). Our own flags
//! (operational limits) come after upstream's.
//!
//! `--help` (`help.txt`) keeps upstream's flag names, shorthands, types, defaults and section
//! order, which are the contract, with descriptions of our own that say what each flag does
//! here; our flags have a section of their own at the end ([`help_doc::OWN_SECTION`]).
//!
//! Validation ([`Args::validate`]) reports the first error in upstream's order with upstream's
//! text: the kubelet client checks, then the resolution checks, then logging, then
//! `--node-selector`.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use metrics_server_api::{MetricsVersion, ServedVersions};
use metrics_server_core::{LabelSelector, format_duration, parse_duration};
use metrics_server_kubelet::client::DEFAULT_MAX_BODY_BYTES;
use metrics_server_kubelet::scraper::DEFAULT_MAX_IN_FLIGHT;

/// `--help` output: upstream's structure, our descriptions.
pub const HELP: &str = include_str!("help.txt");

/// The version printed by `--version` (`v` + the crate version).
pub const VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));

/// The value type of a flag, which decides how a value is parsed and whether the flag may
/// stand alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `--flag`, `--flag=true|false|1|0|t|f|...`.
    Bool,
    /// Any string.
    Str,
    /// Comma-separated, repeatable.
    Strings,
    /// `strconv.ParseInt(s, 0, 64)`.
    Int,
    /// Go `time.ParseDuration`.
    Duration,
    /// `net.ParseIP` (empty allowed).
    Ip,
    /// `strconv.ParseFloat`.
    Float,
    /// klog's verbosity: `strconv.ParseUint(s, 10, 32)`.
    Level,
    /// Accepted without checking (flags we ignore whose Go types we do not model).
    Raw,
    /// `namedCertKey`: `certfile,keyfile[:name,...]`, repeatable.
    CertKey,
}

/// One flag: long name, optional shorthand, value kind.
#[derive(Debug)]
struct Spec {
    name: &'static str,
    short: Option<char>,
    kind: Kind,
}

const fn f(name: &'static str, kind: Kind) -> Spec {
    Spec {
        name,
        short: None,
        kind,
    }
}

use Kind::{Bool, CertKey, Duration as Dur, Float, Int, Ip, Level, Raw, Str, Strings};

/// Every flag of upstream v0.9.0, in `--help` order, then our own flags, then cobra's `--help`.
static SPECS: &[Spec] = &[
    // Metrics server flags.
    f("kubeconfig", Str),
    f("metric-resolution", Dur),
    f("version", Bool),
    // Generic flags.
    f("advertise-address", Ip),
    f("cors-allowed-origins", Strings),
    f("emulated-version", Strings),
    f("emulation-forward-compatible", Bool),
    f("external-hostname", Str),
    f("feature-gates", Raw),
    f("goaway-chance", Float),
    f("livez-grace-period", Dur),
    f("max-mutating-requests-inflight", Int),
    f("max-requests-inflight", Int),
    f("min-compatibility-version", Strings),
    f("min-request-timeout", Int),
    f("request-timeout", Dur),
    f("runtime-config-emulation-forward-compatible", Bool),
    f("shutdown-delay-duration", Dur),
    f("shutdown-send-retry-after", Bool),
    f("shutdown-watch-termination-grace-period", Dur),
    f("storage-initialization-timeout", Dur),
    f("strict-transport-security-directives", Strings),
    // Kubelet client flags.
    f("deprecated-kubelet-completely-insecure", Bool),
    f("kubelet-certificate-authority", Str),
    f("kubelet-client-certificate", Str),
    f("kubelet-client-key", Str),
    f("kubelet-insecure-tls", Bool),
    f("kubelet-port", Int),
    f("kubelet-preferred-address-types", Strings),
    f("kubelet-request-timeout", Dur),
    f("kubelet-use-node-status-port", Bool),
    Spec {
        name: "node-selector",
        short: Some('l'),
        kind: Str,
    },
    // Apiserver secure serving flags.
    f("bind-address", Ip),
    f("cert-dir", Str),
    f("disable-http2-serving", Bool),
    f("http2-max-streams-per-connection", Int),
    f("permit-address-sharing", Bool),
    f("permit-port-sharing", Bool),
    f("secure-port", Int),
    f("tls-cert-file", Str),
    f("tls-cipher-suites", Strings),
    f("tls-curve-preferences", Raw),
    f("tls-min-version", Str),
    f("tls-private-key-file", Str),
    f("tls-sni-cert-key", CertKey),
    // Apiserver authentication flags.
    f("authentication-kubeconfig", Str),
    f("authentication-skip-lookup", Bool),
    f("authentication-token-webhook-cache-ttl", Dur),
    f("authentication-tolerate-lookup-failure", Bool),
    f("client-ca-file", Str),
    f("requestheader-allowed-names", Strings),
    f("requestheader-client-ca-file", Str),
    f("requestheader-extra-headers-prefix", Strings),
    f("requestheader-group-headers", Strings),
    f("requestheader-uid-headers", Strings),
    f("requestheader-username-headers", Strings),
    // Apiserver authorization flags.
    f("authorization-always-allow-paths", Strings),
    f("authorization-kubeconfig", Str),
    f("authorization-webhook-cache-authorized-ttl", Dur),
    f("authorization-webhook-cache-unauthorized-ttl", Dur),
    // Apiserver audit log flags (accepted, ignored).
    f("audit-log-batch-buffer-size", Int),
    f("audit-log-batch-max-size", Int),
    f("audit-log-batch-max-wait", Dur),
    f("audit-log-batch-throttle-burst", Int),
    f("audit-log-batch-throttle-enable", Bool),
    f("audit-log-batch-throttle-qps", Float),
    f("audit-log-compress", Bool),
    f("audit-log-format", Str),
    f("audit-log-maxage", Int),
    f("audit-log-maxbackup", Int),
    f("audit-log-maxsize", Int),
    f("audit-log-mode", Str),
    f("audit-log-path", Str),
    f("audit-log-truncate-enabled", Bool),
    f("audit-log-truncate-max-batch-size", Int),
    f("audit-log-truncate-max-event-size", Int),
    f("audit-log-version", Str),
    f("audit-policy-file", Str),
    f("audit-webhook-batch-buffer-size", Int),
    f("audit-webhook-batch-max-size", Int),
    f("audit-webhook-batch-max-wait", Dur),
    f("audit-webhook-batch-throttle-burst", Int),
    f("audit-webhook-batch-throttle-enable", Bool),
    f("audit-webhook-batch-throttle-qps", Float),
    f("audit-webhook-config-file", Str),
    f("audit-webhook-initial-backoff", Dur),
    f("audit-webhook-mode", Str),
    f("audit-webhook-truncate-enabled", Bool),
    f("audit-webhook-truncate-max-batch-size", Int),
    f("audit-webhook-truncate-max-event-size", Int),
    f("audit-webhook-version", Str),
    // Features flags (accepted, ignored: no pprof endpoints are served).
    f("contention-profiling", Bool),
    f("debug-socket-path", Str),
    f("enable-priority-and-fairness", Bool),
    f("profiling", Bool),
    // Logging flags.
    f("log-flush-frequency", Dur),
    f("log-json-info-buffer-size", Raw),
    f("log-json-split-stream", Bool),
    f("log-text-info-buffer-size", Raw),
    f("log-text-split-stream", Bool),
    f("logging-format", Str),
    Spec {
        name: "v",
        short: Some('v'),
        kind: Level,
    },
    f("vmodule", Raw),
    // Our own operational limits (section "metrics-server-rs flags").
    f("kubelet-max-requests-inflight", Int),
    f("kubelet-max-body-bytes", Int),
    f("authentication-token-cache-size", Int),
    f("authorization-cache-size", Int),
    // Our own kubelet connection trade-off.
    f("kubelet-keep-alive", Bool),
    // Our own diagnosis features.
    f("kubelet-node-proxy-fallback", Bool),
    f("node-scrape-events", Bool),
    // Our own API versions.
    f("served-metrics-versions", Strings),
    // Sharded high availability (crate::shard::flags).
    f("shard-by-lease", Bool),
    f("shard-group", Str),
    f("shard-namespace", Str),
    f("shard-identity", Str),
    f("shard-peer-address", Str),
    f("shard-lease-duration", Dur),
    f("shard-peer-allowed-users", Strings),
    f("shard-peer-token-file", Str),
    f("shard-peer-ca-file", Str),
    // cobra's own.
    Spec {
        name: "help",
        short: Some('h'),
        kind: Bool,
    },
];

/// How loudly startup reports a flag that was set but has no effect here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// Whoever sets it expects a security property (auditing, transport policy, no
    /// debugging endpoints) that this server does not provide: a warning.
    Warn,
    /// It tunes machinery this server does not have: an info line.
    Info,
}

use Notice::{Info, Warn};

/// Flags accepted for compatibility that change nothing here. Their values are type-checked
/// and recorded in [`Args::ignored`]. To honour one, delete its line here and give it a
/// field in [`Args`] and an arm in the matching `set_*` method (a test checks both agree).
static IGNORED: &[(&str, Notice)] = &[
    ("emulated-version", Info),
    ("emulation-forward-compatible", Info),
    ("feature-gates", Warn),
    ("goaway-chance", Info),
    ("livez-grace-period", Info),
    ("min-compatibility-version", Info),
    ("min-request-timeout", Info),
    ("runtime-config-emulation-forward-compatible", Info),
    ("shutdown-send-retry-after", Info),
    ("shutdown-watch-termination-grace-period", Info),
    ("storage-initialization-timeout", Info),
    ("tls-curve-preferences", Warn),
    ("requestheader-uid-headers", Warn),
    ("audit-log-batch-buffer-size", Warn),
    ("audit-log-batch-max-size", Warn),
    ("audit-log-batch-max-wait", Warn),
    ("audit-log-batch-throttle-burst", Warn),
    ("audit-log-batch-throttle-enable", Warn),
    ("audit-log-batch-throttle-qps", Warn),
    ("audit-log-compress", Warn),
    ("audit-log-format", Warn),
    ("audit-log-maxage", Warn),
    ("audit-log-maxbackup", Warn),
    ("audit-log-maxsize", Warn),
    ("audit-log-mode", Warn),
    ("audit-log-path", Warn),
    ("audit-log-truncate-enabled", Warn),
    ("audit-log-truncate-max-batch-size", Warn),
    ("audit-log-truncate-max-event-size", Warn),
    ("audit-log-version", Warn),
    ("audit-policy-file", Warn),
    ("audit-webhook-batch-buffer-size", Warn),
    ("audit-webhook-batch-max-size", Warn),
    ("audit-webhook-batch-max-wait", Warn),
    ("audit-webhook-batch-throttle-burst", Warn),
    ("audit-webhook-batch-throttle-enable", Warn),
    ("audit-webhook-batch-throttle-qps", Warn),
    ("audit-webhook-config-file", Warn),
    ("audit-webhook-initial-backoff", Warn),
    ("audit-webhook-mode", Warn),
    ("audit-webhook-truncate-enabled", Warn),
    ("audit-webhook-truncate-max-batch-size", Warn),
    ("audit-webhook-truncate-max-event-size", Warn),
    ("audit-webhook-version", Warn),
    ("contention-profiling", Warn),
    ("debug-socket-path", Warn),
    ("enable-priority-and-fairness", Info),
    ("profiling", Warn),
    ("log-flush-frequency", Info),
    ("log-json-info-buffer-size", Info),
    ("log-json-split-stream", Info),
    ("log-text-info-buffer-size", Info),
    ("log-text-split-stream", Info),
    ("vmodule", Info),
];

/// How startup reports `name` when it is set, if it is one of the [`IGNORED`] flags.
fn ignored_flag(name: &str) -> Option<Notice> {
    IGNORED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, notice)| *notice)
}

/// One ignored flag the operator set, for the startup notice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IgnoredFlag {
    /// Flag name without dashes.
    pub name: &'static str,
    /// Warning or info.
    pub notice: Notice,
}

impl IgnoredFlag {
    /// The line startup logs for it.
    pub fn message(&self) -> String {
        format!(
            "--{} is not supported by metrics-server-rs and is ignored",
            self.name
        )
    }
}

impl Spec {
    fn by_name(name: &str) -> Option<&'static Spec> {
        SPECS.iter().find(|s| s.name == name)
    }

    fn by_short(c: char) -> Option<&'static Spec> {
        SPECS.iter().find(|s| s.short == Some(c))
    }

    /// How pflag names the flag in `invalid argument` errors.
    fn display(&self) -> String {
        match self.short {
            Some(c) => format!("-{c}, --{}", self.name),
            None => format!("--{}", self.name),
        }
    }
}

/// A command-line error: printed as `Error: <message>` followed by the usage, exit status 2.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    /// Upstream's message text.
    pub message: String,
}

impl CliError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// Run the server.
    Run(Box<Args>),
    /// `--help` / `-h`: print [`HELP`], exit 0.
    Help,
    /// `--version`: print [`VERSION`], exit 0.
    Version,
}

/// `--logging-format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Every flag this server honours, with upstream's defaults. Durations are Go nanoseconds
/// (they may be negative until validated).
#[derive(Clone, Debug, PartialEq)]
pub struct Args {
    // --- metrics-server ---
    /// `--kubeconfig` (empty: in-cluster).
    pub kubeconfig: String,
    /// `--metric-resolution` (ns).
    pub metric_resolution: i64,
    /// `--version`.
    pub version: bool,
    // --- generic ---
    /// `--advertise-address`.
    pub advertise_address: Option<IpAddr>,
    /// `--external-hostname`.
    pub external_hostname: String,
    /// `--max-mutating-requests-inflight`.
    pub max_mutating_requests_inflight: i64,
    /// `--max-requests-inflight`.
    pub max_requests_inflight: i64,
    /// `--request-timeout` (ns).
    pub request_timeout: i64,
    /// `--cors-allowed-origins` (regular expressions; empty: no CORS).
    pub cors_allowed_origins: Vec<String>,
    /// `--strict-transport-security-directives` (empty: no HSTS header).
    pub strict_transport_security_directives: Vec<String>,
    /// `--shutdown-delay-duration` (ns).
    pub shutdown_delay_duration: i64,
    // --- kubelet client ---
    /// `--deprecated-kubelet-completely-insecure`.
    pub deprecated_kubelet_completely_insecure: bool,
    /// `--kubelet-certificate-authority`.
    pub kubelet_certificate_authority: String,
    /// `--kubelet-client-certificate`.
    pub kubelet_client_certificate: String,
    /// `--kubelet-client-key`.
    pub kubelet_client_key: String,
    /// `--kubelet-insecure-tls`.
    pub kubelet_insecure_tls: bool,
    /// `--kubelet-port`.
    pub kubelet_port: i64,
    /// `--kubelet-preferred-address-types`.
    pub kubelet_preferred_address_types: Vec<String>,
    /// `--kubelet-request-timeout` (ns).
    pub kubelet_request_timeout: i64,
    /// `--kubelet-use-node-status-port`.
    pub kubelet_use_node_status_port: bool,
    /// `-l`, `--node-selector`.
    pub node_selector: String,
    // --- secure serving ---
    /// `--bind-address` (`None` when given empty: all interfaces).
    pub bind_address: Option<IpAddr>,
    /// `--cert-dir`.
    pub cert_dir: String,
    /// `--disable-http2-serving`.
    pub disable_http2_serving: bool,
    /// `--http2-max-streams-per-connection`.
    pub http2_max_streams_per_connection: i64,
    /// `--permit-address-sharing` (SO_REUSEADDR).
    pub permit_address_sharing: bool,
    /// `--permit-port-sharing` (SO_REUSEPORT).
    pub permit_port_sharing: bool,
    /// `--secure-port` (0: do not serve).
    pub secure_port: i64,
    /// `--tls-cert-file`.
    pub tls_cert_file: String,
    /// `--tls-cipher-suites`.
    pub tls_cipher_suites: Vec<String>,
    /// `--tls-min-version`.
    pub tls_min_version: String,
    /// `--tls-private-key-file`.
    pub tls_private_key_file: String,
    /// `--tls-sni-cert-key`, in flag order.
    pub tls_sni_cert_key: Vec<metrics_server_auth::NamedCertKey>,
    // --- authentication ---
    /// `--authentication-kubeconfig` (empty: in-cluster).
    pub authentication_kubeconfig: String,
    /// `--authentication-skip-lookup`.
    pub authentication_skip_lookup: bool,
    /// `--authentication-token-webhook-cache-ttl` (ns).
    pub authentication_token_webhook_cache_ttl: i64,
    /// `--authentication-tolerate-lookup-failure`.
    pub authentication_tolerate_lookup_failure: bool,
    /// `--client-ca-file`.
    pub client_ca_file: String,
    /// `--requestheader-allowed-names`.
    pub requestheader_allowed_names: Vec<String>,
    /// `--requestheader-client-ca-file`.
    pub requestheader_client_ca_file: String,
    /// `--requestheader-extra-headers-prefix`.
    pub requestheader_extra_headers_prefix: Vec<String>,
    /// `--requestheader-group-headers`.
    pub requestheader_group_headers: Vec<String>,
    /// `--requestheader-username-headers`.
    pub requestheader_username_headers: Vec<String>,
    // --- authorization ---
    /// `--authorization-always-allow-paths`.
    pub authorization_always_allow_paths: Vec<String>,
    /// `--authorization-kubeconfig` (empty: in-cluster).
    pub authorization_kubeconfig: String,
    /// `--authorization-webhook-cache-authorized-ttl` (ns).
    pub authorization_webhook_cache_authorized_ttl: i64,
    /// `--authorization-webhook-cache-unauthorized-ttl` (ns).
    pub authorization_webhook_cache_unauthorized_ttl: i64,
    // --- our own limits ---
    /// `--kubelet-max-requests-inflight`.
    pub kubelet_max_requests_inflight: i64,
    /// `--kubelet-max-body-bytes`.
    pub kubelet_max_body_bytes: i64,
    /// `--authentication-token-cache-size`.
    pub authentication_token_cache_size: i64,
    /// `--authorization-cache-size`.
    pub authorization_cache_size: i64,
    // --- our own kubelet connection trade-off ---
    /// `--kubelet-keep-alive`: keep one connection per kubelet for the next scrape (memory),
    /// or close it after each response (a resumed TLS handshake per node and scrape).
    pub kubelet_keep_alive: bool,
    // --- our own diagnosis features ---
    /// `--kubelet-node-proxy-fallback`: scrape nodes whose kubelet port is unreachable through
    /// kube-apiserver's node proxy.
    pub kubelet_node_proxy_fallback: bool,
    /// `--node-scrape-events`: an Event on a Node when its scrape failure changes. Off by
    /// default: upstream's RBAC grants no Events.
    pub node_scrape_events: bool,
    // --- our own API versions ---
    /// `--served-metrics-versions` as given (validated later).
    pub served_metrics_versions: Vec<String>,
    /// The `--shard-*` flags (sharded high availability).
    pub shard: crate::shard::ShardFlags,
    // --- logging ---
    /// `--logging-format` as given (validated later, like upstream).
    pub logging_format: String,
    /// `-v`, `--v`.
    pub v: u32,
    // --- bookkeeping ---
    /// Accepted flags that change nothing here, as `name=value`, for a debug log line.
    pub ignored: Vec<String>,
    /// Positional arguments (upstream ignores them too).
    pub positionals: Vec<String>,
    pub(crate) changed: HashSet<&'static str>,
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

const SECOND: i64 = 1_000_000_000;

/// Default of `--authentication-token-cache-size` and `--authorization-cache-size`.
pub const DEFAULT_AUTH_CACHE_SIZE: i64 = 4096;

fn as_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Default for Args {
    fn default() -> Self {
        Self {
            kubeconfig: String::new(),
            metric_resolution: 60 * SECOND,
            version: false,
            advertise_address: None,
            external_hostname: String::new(),
            max_mutating_requests_inflight: 200,
            max_requests_inflight: 400,
            request_timeout: 60 * SECOND,
            cors_allowed_origins: Vec::new(),
            strict_transport_security_directives: Vec::new(),
            shutdown_delay_duration: 0,
            deprecated_kubelet_completely_insecure: false,
            kubelet_certificate_authority: String::new(),
            kubelet_client_certificate: String::new(),
            kubelet_client_key: String::new(),
            kubelet_insecure_tls: false,
            kubelet_port: 10250,
            kubelet_preferred_address_types: strings(&[
                "Hostname",
                "InternalDNS",
                "InternalIP",
                "ExternalDNS",
                "ExternalIP",
            ]),
            kubelet_request_timeout: 10 * SECOND,
            kubelet_use_node_status_port: false,
            node_selector: String::new(),
            bind_address: Some(IpAddr::from([0, 0, 0, 0])),
            cert_dir: "apiserver.local.config/certificates".to_owned(),
            disable_http2_serving: false,
            http2_max_streams_per_connection: 0,
            permit_address_sharing: false,
            permit_port_sharing: false,
            secure_port: 443,
            tls_cert_file: String::new(),
            tls_cipher_suites: Vec::new(),
            tls_min_version: String::new(),
            tls_private_key_file: String::new(),
            tls_sni_cert_key: Vec::new(),
            authentication_kubeconfig: String::new(),
            authentication_skip_lookup: false,
            authentication_token_webhook_cache_ttl: 10 * SECOND,
            authentication_tolerate_lookup_failure: false,
            client_ca_file: String::new(),
            requestheader_allowed_names: Vec::new(),
            requestheader_client_ca_file: String::new(),
            requestheader_extra_headers_prefix: strings(&["x-remote-extra-"]),
            requestheader_group_headers: strings(&["x-remote-group"]),
            requestheader_username_headers: strings(&["x-remote-user"]),
            authorization_always_allow_paths: strings(&["/healthz", "/readyz", "/livez"]),
            authorization_kubeconfig: String::new(),
            authorization_webhook_cache_authorized_ttl: 10 * SECOND,
            authorization_webhook_cache_unauthorized_ttl: 10 * SECOND,
            kubelet_max_requests_inflight: as_i64(DEFAULT_MAX_IN_FLIGHT),
            kubelet_max_body_bytes: as_i64(DEFAULT_MAX_BODY_BYTES),
            authentication_token_cache_size: DEFAULT_AUTH_CACHE_SIZE,
            authorization_cache_size: DEFAULT_AUTH_CACHE_SIZE,
            kubelet_keep_alive: true,
            kubelet_node_proxy_fallback: false,
            node_scrape_events: false,
            served_metrics_versions: vec!["v1".to_owned(), "v1beta1".to_owned()],
            shard: crate::shard::ShardFlags::default(),
            logging_format: "text".to_owned(),
            v: 0,
            ignored: Vec::new(),
            positionals: Vec::new(),
            changed: HashSet::new(),
        }
    }
}

/// Parses a command line (without the program name).
pub fn parse<I, S>(args: I) -> Result<Command, CliError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut out = Args::default();
    let mut help = false;
    let mut rest: std::collections::VecDeque<String> = args.into_iter().map(Into::into).collect();
    while let Some(arg) = rest.pop_front() {
        if arg.len() < 2 || !arg.starts_with('-') {
            out.positionals.push(arg);
            continue;
        }
        if let Some(long) = arg.strip_prefix("--") {
            if long.is_empty() {
                // `--` ends the flags.
                out.positionals.extend(rest.drain(..));
                break;
            }
            if long.starts_with('-') || long.starts_with('=') {
                return Err(CliError::new(format!("bad flag syntax: {arg}")));
            }
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (long, None),
            };
            let Some(spec) = Spec::by_name(name) else {
                return Err(CliError::new(format!("unknown flag: --{name}")));
            };
            let value = match inline {
                Some(v) => v,
                None if spec.kind == Bool => "true".to_owned(),
                None => rest
                    .pop_front()
                    .ok_or_else(|| CliError::new(format!("flag needs an argument: {arg}")))?,
            };
            out.set(spec, &value, &mut help)?;
        } else {
            // One or more shorthands: -v3, -v=3, -v 3, -l sel, -h.
            let mut shorts = &arg[1..];
            while let Some(c) = shorts.chars().next() {
                let after = &shorts[c.len_utf8()..];
                let Some(spec) = Spec::by_short(c) else {
                    return Err(CliError::new(format!(
                        "unknown shorthand flag: {} in -{shorts}",
                        go_quote_char(c)
                    )));
                };
                let value = if after.len() > 1 && after.starts_with('=') {
                    let v = after[1..].to_owned();
                    shorts = "";
                    v
                } else if spec.kind == Bool {
                    shorts = after;
                    "true".to_owned()
                } else if !after.is_empty() {
                    let v = after.to_owned();
                    shorts = "";
                    v
                } else {
                    let missing =
                        format!("flag needs an argument: {} in -{shorts}", go_quote_char(c));
                    shorts = "";
                    rest.pop_front().ok_or_else(|| CliError::new(missing))?
                };
                out.set(spec, &value, &mut help)?;
            }
        }
    }
    if help {
        return Ok(Command::Help);
    }
    if out.version {
        return Ok(Command::Version);
    }
    Ok(Command::Run(Box::new(out)))
}

/// Go's `%q` of a rune (ASCII is all that can reach here in practice).
fn go_quote_char(c: char) -> String {
    match c {
        '\'' => "'\\''".to_owned(),
        '\\' => "'\\\\'".to_owned(),
        c if c.is_ascii_graphic() || c == ' ' => format!("'{c}'"),
        c => format!("'{}'", c.escape_default()),
    }
}

/// `strconv.ParseBool`.
fn parse_bool(v: &str) -> Result<bool, String> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!(
            "strconv.ParseBool: parsing {}: invalid syntax",
            q(v)
        )),
    }
}

/// `strconv.ParseInt(s, 0, 64)`: optional sign, base prefixes (0x, 0o, 0b, leading 0 for
/// octal) and underscores between digits.
fn parse_int(v: &str) -> Result<i64, String> {
    let syntax = || format!("strconv.ParseInt: parsing {}: invalid syntax", q(v));
    let range = || format!("strconv.ParseInt: parsing {}: value out of range", q(v));
    let (neg, body) = match v.as_bytes().first() {
        Some(b'-') => (true, &v[1..]),
        Some(b'+') => (false, &v[1..]),
        _ => (false, v),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d.to_owned())
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d.to_owned())
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d.to_owned())
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_owned())
    } else {
        (10, lower.clone())
    };
    // Base 0 accepts Go literal underscores between digits.
    let digits = if digits.contains('_') {
        if digits.starts_with('_') || digits.ends_with('_') || digits.contains("__") {
            return Err(syntax());
        }
        digits.replace('_', "")
    } else {
        digits
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(syntax());
    }
    let magnitude = u128::from_str_radix(&digits, radix).map_err(|_| range())?;
    let signed = if neg {
        0i128.checked_sub_unsigned(magnitude)
    } else {
        i128::try_from(magnitude).ok()
    };
    signed.and_then(|n| i64::try_from(n).ok()).ok_or_else(range)
}

/// `strconv.ParseUint(s, 10, 32)` (klog's `Level.Set`).
fn parse_level(v: &str) -> Result<u32, String> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "strconv.ParseUint: parsing {}: invalid syntax",
            q(v)
        ));
    }
    v.parse::<u32>()
        .map_err(|_| format!("strconv.ParseUint: parsing {}: value out of range", q(v)))
}

/// Go `%q` of a string (enough for flag values: quotes, backslashes, control characters).
fn q(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// pflag's string-slice value: a CSV record (quotes allowed); empty means an empty list.
fn parse_csv(v: &str) -> Result<Vec<String>, String> {
    if v.is_empty() {
        return Ok(Vec::new());
    }
    if !v.contains('"') {
        return Ok(v.split(',').map(str::to_owned).collect());
    }
    let mut out = Vec::new();
    let mut field = String::new();
    let mut chars = v.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        match c {
            '"' if at_start => {
                quoted = true;
                at_start = false;
            }
            '"' if quoted => {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    quoted = false;
                    if !matches!(chars.peek(), None | Some(',')) {
                        return Err("parse error: extraneous or missing \" in quoted-field".into());
                    }
                }
            }
            '"' => return Err("parse error: bare \" in non-quoted-field".into()),
            ',' if !quoted => {
                out.push(std::mem::take(&mut field));
                at_start = true;
            }
            c => {
                field.push(c);
                at_start = false;
            }
        }
    }
    if quoted {
        return Err("parse error: extraneous or missing \" in quoted-field".into());
    }
    out.push(field);
    Ok(out)
}

/// A flag value checked against its type, before it is stored.
enum Value {
    Bool(bool),
    Str,
    Strings(Vec<String>),
    Int(i64),
    Dur(i64),
    Ip(Option<IpAddr>),
    Level(u32),
    /// Checked (floats) or unchecked (raw) values that are only ever recorded.
    Unused,
    /// A `--tls-sni-cert-key` pair.
    CertKey(metrics_server_auth::NamedCertKey),
}

/// Parses `value` as `spec`'s type with pflag's error texts.
fn check_value(spec: &Spec, value: &str) -> Result<Value, CliError> {
    let invalid = |reason: String| {
        CliError::new(format!(
            "invalid argument {} for {} flag: {reason}",
            q(value),
            q(&spec.display())
        ))
    };
    Ok(match spec.kind {
        Bool => Value::Bool(parse_bool(value).map_err(invalid)?),
        Str => Value::Str,
        Strings => Value::Strings(parse_csv(value).map_err(invalid)?),
        Int => Value::Int(parse_int(value).map_err(invalid)?),
        Dur => Value::Dur(parse_duration(value).map_err(|e| invalid(e.to_string()))?),
        Ip => {
            let trimmed = value.trim();
            if trimmed.is_empty() {
                Value::Ip(None)
            } else {
                let ip = trimmed
                    .parse::<IpAddr>()
                    .map_err(|_| invalid(format!("failed to parse IP: {}", q(value))))?;
                Value::Ip(Some(ip))
            }
        }
        Float => {
            value.parse::<f64>().map_err(|_| {
                invalid(format!(
                    "strconv.ParseFloat: parsing {}: invalid syntax",
                    q(value)
                ))
            })?;
            Value::Unused
        }
        Level => Value::Level(parse_level(value).map_err(invalid)?),
        Raw => Value::Unused,
        CertKey => {
            Value::CertKey(metrics_server_auth::NamedCertKey::parse(value).map_err(invalid)?)
        }
    })
}

impl Args {
    /// Sets one flag from one occurrence, like pflag's `Value.Set`. Values of ignored flags
    /// are still type-checked, so a malformed one fails as it would upstream.
    fn set(&mut self, spec: &'static Spec, value: &str, help: &mut bool) -> Result<(), CliError> {
        let checked = check_value(spec, value)?;
        let first = self.changed.insert(spec.name);
        if ignored_flag(spec.name).is_some() {
            self.ignore(spec.name, value);
            return Ok(());
        }
        match checked {
            Value::Bool(b) => self.set_bool(spec.name, b, help),
            Value::Str => self.set_str(spec.name, value),
            Value::Strings(items) => self.set_strings(spec.name, items, first),
            Value::Int(n) => self.set_int(spec.name, n),
            Value::Dur(d) => self.set_duration(spec.name, d),
            Value::Ip(ip) => match spec.name {
                "bind-address" => self.bind_address = ip,
                "advertise-address" => self.advertise_address = ip,
                _ => self.ignore(spec.name, value),
            },
            Value::Level(v) => self.v = v,
            Value::Unused => self.ignore(spec.name, value),
            Value::CertKey(pair) => self.tls_sni_cert_key.push(pair),
        }
        Ok(())
    }

    fn ignore(&mut self, name: &str, value: &str) {
        self.ignored.push(format!("{name}={value}"));
    }

    fn set_bool(&mut self, name: &'static str, b: bool, help: &mut bool) {
        match name {
            "version" => self.version = b,
            "help" => *help = b,
            "deprecated-kubelet-completely-insecure" => {
                self.deprecated_kubelet_completely_insecure = b;
            }
            "kubelet-insecure-tls" => self.kubelet_insecure_tls = b,
            "kubelet-use-node-status-port" => self.kubelet_use_node_status_port = b,
            "kubelet-keep-alive" => self.kubelet_keep_alive = b,
            "kubelet-node-proxy-fallback" => self.kubelet_node_proxy_fallback = b,
            "node-scrape-events" => self.node_scrape_events = b,
            "disable-http2-serving" => self.disable_http2_serving = b,
            "permit-address-sharing" => self.permit_address_sharing = b,
            "permit-port-sharing" => self.permit_port_sharing = b,
            "authentication-skip-lookup" => self.authentication_skip_lookup = b,
            "authentication-tolerate-lookup-failure" => {
                self.authentication_tolerate_lookup_failure = b;
            }
            _ if self.shard.set_bool(name, b) => {}
            _ => self.ignore(name, if b { "true" } else { "false" }),
        }
    }

    fn set_str(&mut self, name: &'static str, v: &str) {
        let v = v.to_owned();
        match name {
            "kubeconfig" => self.kubeconfig = v,
            "external-hostname" => self.external_hostname = v,
            "kubelet-certificate-authority" => self.kubelet_certificate_authority = v,
            "kubelet-client-certificate" => self.kubelet_client_certificate = v,
            "kubelet-client-key" => self.kubelet_client_key = v,
            "node-selector" => self.node_selector = v,
            "cert-dir" => self.cert_dir = v,
            "tls-cert-file" => self.tls_cert_file = v,
            "tls-min-version" => self.tls_min_version = v,
            "tls-private-key-file" => self.tls_private_key_file = v,
            "authentication-kubeconfig" => self.authentication_kubeconfig = v,
            "client-ca-file" => self.client_ca_file = v,
            "requestheader-client-ca-file" => self.requestheader_client_ca_file = v,
            "authorization-kubeconfig" => self.authorization_kubeconfig = v,
            "logging-format" => self.logging_format = v,
            _ if self.shard.set_str(name, &v) => {}
            _ => self.ignore(name, &v),
        }
    }

    fn set_strings(&mut self, name: &'static str, items: Vec<String>, first: bool) {
        let target = match name {
            "kubelet-preferred-address-types" => &mut self.kubelet_preferred_address_types,
            "tls-cipher-suites" => &mut self.tls_cipher_suites,
            "cors-allowed-origins" => &mut self.cors_allowed_origins,
            "served-metrics-versions" => &mut self.served_metrics_versions,
            "strict-transport-security-directives" => {
                &mut self.strict_transport_security_directives
            }
            "requestheader-allowed-names" => &mut self.requestheader_allowed_names,
            "requestheader-extra-headers-prefix" => &mut self.requestheader_extra_headers_prefix,
            "requestheader-group-headers" => &mut self.requestheader_group_headers,
            "requestheader-username-headers" => &mut self.requestheader_username_headers,
            "authorization-always-allow-paths" => &mut self.authorization_always_allow_paths,
            _ if name.starts_with("shard-") => {
                self.shard.set_strings(name, items, first);
                return;
            }
            _ => {
                let joined = items.join(",");
                self.ignore(name, &joined);
                return;
            }
        };
        // pflag: the first occurrence replaces the default, later ones append.
        if first {
            *target = items;
        } else {
            target.extend(items);
        }
    }

    fn set_int(&mut self, name: &'static str, n: i64) {
        match name {
            "max-mutating-requests-inflight" => self.max_mutating_requests_inflight = n,
            "max-requests-inflight" => self.max_requests_inflight = n,
            "kubelet-port" => self.kubelet_port = n,
            "http2-max-streams-per-connection" => self.http2_max_streams_per_connection = n,
            "secure-port" => self.secure_port = n,
            "kubelet-max-requests-inflight" => self.kubelet_max_requests_inflight = n,
            "kubelet-max-body-bytes" => self.kubelet_max_body_bytes = n,
            "authentication-token-cache-size" => self.authentication_token_cache_size = n,
            "authorization-cache-size" => self.authorization_cache_size = n,
            _ => self.ignore(name, &n.to_string()),
        }
    }

    fn set_duration(&mut self, name: &'static str, d: i64) {
        match name {
            "metric-resolution" => self.metric_resolution = d,
            "request-timeout" => self.request_timeout = d,
            "shutdown-delay-duration" => self.shutdown_delay_duration = d,
            "kubelet-request-timeout" => self.kubelet_request_timeout = d,
            "authentication-token-webhook-cache-ttl" => {
                self.authentication_token_webhook_cache_ttl = d;
            }
            "authorization-webhook-cache-authorized-ttl" => {
                self.authorization_webhook_cache_authorized_ttl = d;
            }
            "authorization-webhook-cache-unauthorized-ttl" => {
                self.authorization_webhook_cache_unauthorized_ttl = d;
            }
            _ if self.shard.set_duration(name, d) => {}
            _ => self.ignore(name, &format_duration(d)),
        }
    }

    /// The ignored flags given on the command line, each once, in `SPECS` order.
    pub fn ignored_flags(&self) -> Vec<IgnoredFlag> {
        SPECS
            .iter()
            .filter(|spec| self.changed.contains(spec.name))
            .filter_map(|spec| {
                ignored_flag(spec.name).map(|notice| IgnoredFlag {
                    name: spec.name,
                    notice,
                })
            })
            .collect()
    }

    /// Whether a flag was given on the command line.
    pub fn is_set(&self, name: &str) -> bool {
        self.changed.contains(name)
    }

    /// Upstream's validation, first error wins (spec B.1, O1–O3). Returns the parsed
    /// `--node-selector` and logging format.
    pub fn validate(&self) -> Result<Validated, CliError> {
        self.validate_kubelet_client()?;
        self.validate_resolution()?;
        let log_format = self.validate_log_format()?;
        let kubelet_port = u16::try_from(self.kubelet_port).map_err(|_| {
            CliError::new(format!(
                "--kubelet-port {} must be between 0 and 65535, inclusive",
                self.kubelet_port
            ))
        })?;
        let secure_port = u16::try_from(self.secure_port).map_err(|_| {
            CliError::new(format!(
                "--secure-port {} must be between 0 and 65535, inclusive. 0 for turning off secure port",
                self.secure_port
            ))
        })?;
        let node_selector =
            LabelSelector::parse(&self.node_selector).map_err(|e| CliError::new(e.to_string()))?;
        // Our own flags come last, so upstream's first-error order is unchanged.
        let limits = self.validate_limits()?;
        let served_versions = self.validate_served_versions()?;
        self.shard.validate()?;
        Ok(Validated {
            node_selector,
            log_format,
            kubelet_port,
            secure_port,
            limits,
            served_versions,
        })
    }

    /// The kubelet client flags: no contradicting TLS choices, a positive request timeout.
    fn validate_kubelet_client(&self) -> Result<(), CliError> {
        let err = |m: &str| Err(CliError::new(m));
        let ca = !self.kubelet_certificate_authority.is_empty();
        let key = !self.kubelet_client_key.is_empty();
        let cert = !self.kubelet_client_certificate.is_empty();
        let insecure = self.kubelet_insecure_tls;
        let plain = self.deprecated_kubelet_completely_insecure;
        if ca && insecure {
            return err(
                "cannot use both --kubelet-certificate-authority and --kubelet-insecure-tls",
            );
        }
        if key != cert {
            return err("need both --kubelet-client-key and --kubelet-client-certificate");
        }
        if key && plain {
            return err(
                "cannot use both --kubelet-client-key and --deprecated-kubelet-completely-insecure",
            );
        }
        if cert && plain {
            return err(
                "cannot use both --kubelet-client-certificate and --deprecated-kubelet-completely-insecure",
            );
        }
        if insecure && plain {
            return err(
                "cannot use both --kubelet-insecure-tls and --deprecated-kubelet-completely-insecure",
            );
        }
        if ca && plain {
            return err(
                "cannot use both --kubelet-certificate-authority and --deprecated-kubelet-completely-insecure",
            );
        }
        if self.kubelet_request_timeout <= 0 {
            return err("kubelet-request-timeout should be positive");
        }
        Ok(())
    }

    /// `--metric-resolution`: at least 10s, and longer than `--kubelet-request-timeout`.
    fn validate_resolution(&self) -> Result<(), CliError> {
        if self.metric_resolution < 10 * SECOND {
            return Err(CliError::new(format!(
                "metric-resolution should be a time duration at least 10s, but value {} provided",
                format_duration(self.metric_resolution)
            )));
        }
        // Go: MetricResolution*9/10 < KubeletRequestTimeout (integer nanoseconds).
        if self.metric_resolution.saturating_mul(9) / 10 < self.kubelet_request_timeout {
            return Err(CliError::new(format!(
                "metric-resolution should be larger than kubelet-request-timeout, but metric-resolution value {} kubelet-request-timeout value {} provided",
                format_duration(self.metric_resolution),
                format_duration(self.kubelet_request_timeout)
            )));
        }
        Ok(())
    }

    /// `--logging-format`: `text` (also when empty) or `json`.
    fn validate_log_format(&self) -> Result<LogFormat, CliError> {
        match self.logging_format.as_str() {
            "text" | "" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(CliError::new(format!(
                "format: Invalid value: {}: Unsupported log format",
                q(other)
            ))),
        }
    }

    fn validate_served_versions(&self) -> Result<ServedVersions, CliError> {
        let mut versions = Vec::with_capacity(self.served_metrics_versions.len());
        for name in &self.served_metrics_versions {
            let version = MetricsVersion::parse(name).ok_or_else(|| {
                CliError::new(format!(
                    "--served-metrics-versions: unknown version {name:?}; the metrics.k8s.io versions are v1 and v1beta1"
                ))
            })?;
            versions.push(version);
        }
        ServedVersions::new(&versions)
            .map_err(|e| CliError::new(format!("--served-metrics-versions: {e}")))
    }

    fn validate_limits(&self) -> Result<Limits, CliError> {
        Ok(Limits {
            kubelet_max_requests_inflight: positive(
                "kubelet-max-requests-inflight",
                self.kubelet_max_requests_inflight,
            )?,
            kubelet_max_body_bytes: positive(
                "kubelet-max-body-bytes",
                self.kubelet_max_body_bytes,
            )?,
            authentication_token_cache_size: positive(
                "authentication-token-cache-size",
                self.authentication_token_cache_size,
            )?,
            authorization_cache_size: positive(
                "authorization-cache-size",
                self.authorization_cache_size,
            )?,
        })
    }
}

/// A value of one of our limit flags as a count; zero and negatives are refused by name.
fn positive(flag: &str, n: i64) -> Result<usize, CliError> {
    usize::try_from(n)
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| CliError::new(format!("--{flag} {n} must be a positive integer")))
}

/// The operational limits of our own flags, validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `--kubelet-max-requests-inflight`.
    pub kubelet_max_requests_inflight: usize,
    /// `--kubelet-max-body-bytes`.
    pub kubelet_max_body_bytes: usize,
    /// `--authentication-token-cache-size`.
    pub authentication_token_cache_size: usize,
    /// `--authorization-cache-size`.
    pub authorization_cache_size: usize,
}

/// Values that only exist once the flags are validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Validated {
    /// `--node-selector`, parsed.
    pub node_selector: LabelSelector,
    /// `--logging-format`.
    pub log_format: LogFormat,
    /// `--kubelet-port`.
    pub kubelet_port: u16,
    /// `--secure-port` (0: do not serve).
    pub secure_port: u16,
    /// Our own limit flags.
    pub limits: Limits,
    /// `--served-metrics-versions`.
    pub served_versions: ServedVersions,
}

/// A Go duration (ns) as a std duration; negatives become zero.
pub fn std_duration(nanos: i64) -> Duration {
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(0))
}

/// The usage text cobra prints after an error: the help without its first paragraph.
pub fn usage() -> &'static str {
    HELP.find("Usage:").map_or(HELP, |i| &HELP[i..])
}

pub mod help_doc;

#[cfg(test)]
mod tests;
