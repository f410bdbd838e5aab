//! Logging: klog's `-v` mapped onto tracing levels, `--logging-format=text|json`, to stderr
//! (where klog writes).
//!
//! | `--v` | our crates (`metrics_server*`) | dependencies (kube, hyper, rustls, ...) |
//! |---|---|---|
//! | 0–1 | info | warn |
//! | 2–3 | debug (upstream's V(2)/V(3) messages: storage readiness, scrape summaries) | warn |
//! | 4–5 | trace (upstream's V(4)+: per-node detail) | warn |
//! | 6–7 | trace | info |
//! | ≥ 8 | trace | debug (HTTP-level detail, like klog's request dumps at V(8)) |
//!
//! Below 6, kube-client's per-request error line is off: the watch loop reports the same
//! failure at warn with its retry context.
//!
//! `RUST_LOG`, when set, replaces the mapping entirely (an `EnvFilter` directive string).
//! Errors are reserved for conditions an operator must act on; expected situations (a
//! NotReady node failing its scrape, a watch reconnecting) log below error.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::flags::LogFormat;

/// The filter directives for a klog verbosity.
pub fn directives(v: u32) -> String {
    let ours = match v {
        0 | 1 => "info",
        2 | 3 => "debug",
        _ => "trace",
    };
    let deps = match v {
        0..=5 => "warn",
        6 | 7 => "info",
        _ => "debug",
    };
    // kube-client logs every failed request at error level from its service builder; the
    // watch loop already reports those (with retry context) at warn.
    let kube_builder = if v >= 6 { deps } else { "off" };
    format!("{deps},kube_client::client::builder={kube_builder},metrics_server={ours}")
}

/// Installs the global subscriber (once, from `main`). Fails only if one is already set.
pub fn init(v: u32, format: LogFormat) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(custom) if !custom.trim().is_empty() => EnvFilter::new(custom),
        _ => EnvFilter::new(directives(v)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_span_events(FmtSpan::NONE)
        .with_target(v >= 4);
    let result = match format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::directives;

    #[test]
    fn verbosity_maps_to_levels_as_documented() {
        let quiet = "kube_client::client::builder=off";
        assert_eq!(directives(0), format!("warn,{quiet},metrics_server=info"));
        assert_eq!(directives(1), format!("warn,{quiet},metrics_server=info"));
        assert_eq!(directives(2), format!("warn,{quiet},metrics_server=debug"));
        assert_eq!(directives(4), format!("warn,{quiet},metrics_server=trace"));
        assert_eq!(
            directives(6),
            "info,kube_client::client::builder=info,metrics_server=trace"
        );
        assert_eq!(
            directives(10),
            "debug,kube_client::client::builder=debug,metrics_server=trace"
        );
    }

    #[test]
    fn every_mapping_is_a_valid_filter() {
        for v in 0..12 {
            tracing_subscriber::EnvFilter::try_new(directives(v)).expect("valid directives");
        }
    }
}
