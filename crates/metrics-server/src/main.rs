//! The `metrics-server` binary: install the crypto provider, parse, run, map to exit codes
//! (0 ok, 2 bad flags or failed startup as upstream, 1 a critical task died).

use std::process::ExitCode;

fn main() -> ExitCode {
    // Every rustls config in the process uses ring; install it before anything builds one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let code = metrics_server::main_with_args(std::env::args().skip(1));
    ExitCode::from(code)
}
