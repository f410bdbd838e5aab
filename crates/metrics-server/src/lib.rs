//! metrics-server-rs: the wiring of a drop-in replacement for the Kubernetes metrics-server
//! v0.9.0 (same flags, same API, same probes, same self-metrics).
//!
//! ```text
//!  argv ─► flags::parse (pflag rules, upstream texts) ─► Args::validate ─► logging::init
//!       ─► Args::run (runtime.rs)
//!            kube clients (k8s::config) ──► node/pod watches (k8s::watch) ─► Cluster
//!            kubelet client (kubelet) ───► ScrapeLoop (scrape.rs) ─► core::Store ─► SharedSnapshot
//!            auth (TLS, authn, authz) ──► serve(auth::stack::build(.., api::router(ApiState)))
//! ```
//!
//! Architecture invariants: `main` stays thin; `run` names every flag (`Args` is destructured
//! into the groups its steps consume, so a new flag cannot be silently dropped); there are no
//! globals (one explicit metrics registry); a bad scrape never fails a tick; a dead critical
//! task ends the process non-zero.

pub mod diagnosis;
pub mod flags;
pub mod logging;
pub mod metrics;
pub mod runtime;
pub mod scrape;
pub mod shard;

use std::io::Write as _;

use flags::{Command, HELP, VERSION};

/// Exit status for bad flags and failed startup (upstream panics, which exits 2).
pub const EXIT_USAGE: u8 = 2;
/// Exit status when a critical task dies after startup.
pub const EXIT_CRASHED: u8 = 1;

/// Runs the command line `args` (without the program name) and returns the exit status.
/// `doctor` as the first argument runs the diagnosis subcommand instead of the server (its own
/// flags; the server's flags and `--help` are untouched).
pub fn main_with_args(args: impl IntoIterator<Item = String>) -> u8 {
    let mut args = args.into_iter().peekable();
    if args.peek().is_some_and(|first| first == "doctor") {
        return metrics_server_doctor::main_with_args(args.skip(1));
    }
    let args = match flags::parse(args) {
        Ok(Command::Help) => {
            let _ = std::io::stdout().lock().write_all(HELP.as_bytes());
            return 0;
        }
        Ok(Command::Version) => {
            let _ = writeln!(std::io::stdout().lock(), "{VERSION}");
            return 0;
        }
        Ok(Command::Run(args)) => args,
        Err(e) => return usage_error(&e.message),
    };
    let validated = match args.validate() {
        Ok(v) => v,
        Err(e) => return usage_error(&e.message),
    };
    if let Err(e) = logging::init(args.v, validated.log_format) {
        let _ = writeln!(std::io::stderr().lock(), "Error: {e}");
        return EXIT_USAGE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("metrics-server")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(std::io::stderr().lock(), "Error: {e}");
            return EXIT_USAGE;
        }
    };
    let result = runtime.block_on(args.run(validated));
    // Do not wait for stray blocking work (DNS lookups, file reads) once the server is done.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(()) => 0,
        Err(runtime::RunError::Startup(e)) => {
            tracing::error!(error = %format!("{e:#}"), "Startup failed");
            let _ = writeln!(std::io::stderr().lock(), "Error: {e:#}");
            EXIT_USAGE
        }
        Err(runtime::RunError::Crashed(e)) => {
            tracing::error!(error = %format!("{e:#}"), "A critical task died; exiting");
            EXIT_CRASHED
        }
    }
}

/// cobra's output for a flag or validation error: `Error: <msg>` then the usage, on stderr.
fn usage_error(message: &str) -> u8 {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "Error: {message}");
    let _ = err.write_all(flags::usage().as_bytes());
    let _ = writeln!(err);
    EXIT_USAGE
}

#[cfg(test)]
mod tests {
    #[test]
    fn doctor_as_first_argument_runs_the_subcommand() {
        // The server's parser rejects a positional argument; doctor's --help succeeds.
        assert_eq!(
            super::main_with_args(["doctor".to_owned(), "--help".to_owned()]),
            0
        );
        assert_eq!(
            super::main_with_args(["doctor".to_owned(), "--output=yaml".to_owned()]),
            metrics_server_doctor::cli::EXIT_UNUSABLE
        );
    }
}
