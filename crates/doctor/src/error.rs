//! Errors at the doctor crate's boundary.

/// Why doctor could not do its job at all (findings are not errors).
#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    /// The command line is wrong.
    #[error("{0}")]
    Usage(String),
    /// No usable kubeconfig or client.
    #[error("loading the kubeconfig: {0}")]
    Config(String),
    /// kube-apiserver does not answer.
    #[error("cannot reach the cluster: {0}")]
    Unreachable(String),
    /// An answer could not be decoded.
    #[error("decoding {0}")]
    Decode(String),
}
