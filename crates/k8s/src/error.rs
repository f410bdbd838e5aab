//! Errors at the crate boundary. Watch errors are never surfaced: they are logged and retried.

use std::path::PathBuf;

/// A client configuration could not be built. Fatal at startup.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No kubeconfig was given and the process does not run in a pod (client-go's text).
    #[error(
        "unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined"
    )]
    NotInCluster,
    /// The in-cluster files (CA, namespace) could not be read.
    #[error("unable to load in-cluster configuration: {0}")]
    InCluster(#[source] Box<kube::config::InClusterError>),
    /// The kubeconfig could not be read or has no usable current context.
    #[error("invalid kubeconfig {}: {source}", path.display())]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// What kube-rs reported.
        #[source]
        source: Box<kube::config::KubeconfigError>,
    },
    /// kube-rs rejected the configuration (TLS material, URL).
    #[error("unable to create a Kubernetes client: {0}")]
    Client(#[source] Box<kube::Error>),
    /// A kubeconfig `*-data` field is not base64.
    #[error("kubeconfig {field}: {reason}")]
    Base64 {
        /// The field.
        field: &'static str,
        /// The decoder's message.
        reason: String,
    },
    /// Kubelet certificates must be verified but there is no CA anywhere.
    #[error(
        "no CA to verify kubelet serving certificates: the kubeconfig has none and no system bundle exists; set --kubelet-certificate-authority or --kubelet-insecure-tls"
    )]
    NoKubeletCa,
}
