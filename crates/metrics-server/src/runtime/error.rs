//! How `Args::run` fails.

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

pub(super) fn startup(e: impl Into<anyhow::Error>) -> RunError {
    RunError::Startup(e.into())
}
