//! Client configuration: kube-apiserver clients from `--kubeconfig` (or in-cluster), the
//! delegated-auth clients, and kubelet credentials taken from the same kubeconfig (spec B.1,
//! C.4).
//!
//! Bearer-token rotation: for in-cluster configs kube-rs sets `token_file` and its auth layer
//! re-reads the file when the cached copy is older than about 50 s (kube-client
//! `client/auth`: 60 s expiry, refreshed 10 s early), like client-go. The kubelet client gets
//! the same file as [`TokenSource::File`] and re-reads it every minute.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use kube::config::{KubeConfigOptions, Kubeconfig};
use metrics_server_kubelet::client::KubeletClientConfig;
use metrics_server_kubelet::token::DEFAULT_TOKEN_REFRESH;
use metrics_server_kubelet::{
    ClientCert, PemSource, ServerVerification, TlsSettings, TokenSource, Transport,
};

use crate::error::ConfigError;

/// Go's `crypto/x509` system bundle locations on Linux, in its search order.
const SYSTEM_CA_FILES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Loads a client configuration: the kubeconfig at `path` (only that file, its current
/// context, like client-go's `ExplicitPath`), or the in-cluster config when `None`.
pub async fn load_config(path: Option<&Path>) -> Result<kube::Config, ConfigError> {
    match path {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path).map_err(|e| ConfigError::Kubeconfig {
                path: path.to_owned(),
                source: Box::new(e),
            })?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|e| ConfigError::Kubeconfig {
                    path: path.to_owned(),
                    source: Box::new(e),
                })
        }
        None => in_cluster(),
    }
}

/// The in-cluster config, with client-go's message when not running in a pod.
pub fn in_cluster() -> Result<kube::Config, ConfigError> {
    let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    if !set("KUBERNETES_SERVICE_HOST") || !set("KUBERNETES_SERVICE_PORT") {
        return Err(ConfigError::NotInCluster);
    }
    kube::Config::incluster().map_err(|e| ConfigError::InCluster(Box::new(e)))
}

/// Builds a client from a config.
pub fn client(config: kube::Config) -> Result<kube::Client, ConfigError> {
    kube::Client::try_from(config).map_err(|e| ConfigError::Client(Box::new(e)))
}

/// The `--kubelet-*` flags that change kubelet TLS and credentials.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KubeletCredentialFlags {
    /// `--kubelet-insecure-tls`.
    pub insecure_tls: bool,
    /// `--kubelet-certificate-authority`.
    pub certificate_authority: Option<PathBuf>,
    /// `--kubelet-client-certificate`.
    pub client_certificate: Option<PathBuf>,
    /// `--kubelet-client-key`.
    pub client_key: Option<PathBuf>,
    /// `--deprecated-kubelet-completely-insecure`.
    pub completely_insecure: bool,
}

/// The kubelet client configuration upstream derives from the rest config (`kubeletConfig`):
/// the kubeconfig's bearer token (or token file), client certificate and CA, then the flags
/// on top. The caller sets the User-Agent and request timeout.
pub fn kubelet_client_config(
    config: &kube::Config,
    flags: &KubeletCredentialFlags,
) -> Result<KubeletClientConfig, ConfigError> {
    if flags.completely_insecure {
        // Plain HTTP, anonymous: never leak credentials to an unencrypted endpoint.
        return Ok(KubeletClientConfig::new(Transport::Http));
    }
    let auth = &config.auth_info;
    let verification = if flags.insecure_tls {
        ServerVerification::Insecure
    } else if let Some(ca) = &flags.certificate_authority {
        ServerVerification::Ca(PemSource::File(ca.clone()))
    } else if config.accept_invalid_certs {
        // `insecure-skip-tls-verify: true` in the kubeconfig applies to kubelets too.
        ServerVerification::Insecure
    } else if let Some(file) = &config.root_cert_file {
        ServerVerification::Ca(PemSource::File(file.clone()))
    } else if let Some(ders) = config.root_cert.as_ref().filter(|c| !c.is_empty()) {
        ServerVerification::Ca(PemSource::Inline(ders_to_pem(ders)))
    } else {
        ServerVerification::Ca(PemSource::File(system_ca_file()?))
    };

    let cert = match &flags.client_certificate {
        Some(path) => Some(PemSource::File(path.clone())),
        None => inline_or_file(
            auth.client_certificate_data.as_deref(),
            auth.client_certificate.as_deref(),
            "client-certificate-data",
        )?,
    };
    let key = match &flags.client_key {
        Some(path) => Some(PemSource::File(path.clone())),
        None => inline_or_file(
            auth.client_key_data
                .as_ref()
                .map(secrecy::ExposeSecret::expose_secret),
            auth.client_key.as_deref(),
            "client-key-data",
        )?,
    };
    let client_cert = match (cert, key) {
        (Some(cert), Some(key)) => Some(ClientCert { cert, key }),
        (None, None) => None,
        _ => {
            tracing::warn!(
                "The kubeconfig has a client certificate without a key (or a key without a certificate); kubelet requests will not present one"
            );
            None
        }
    };

    let token = {
        use secrecy::ExposeSecret as _;
        match (&auth.token, &auth.token_file) {
            (Some(token), _) => TokenSource::Static(token.expose_secret().to_owned()),
            (None, Some(file)) => TokenSource::File {
                path: PathBuf::from(file),
                refresh: DEFAULT_TOKEN_REFRESH,
            },
            (None, None) => {
                if auth.exec.is_some() || auth.auth_provider.is_some() {
                    tracing::warn!(
                        "The kubeconfig user authenticates through an exec or auth-provider plugin; kubelet requests carry no bearer token"
                    );
                }
                TokenSource::None
            }
        }
    };

    let mut out = KubeletClientConfig::new(Transport::Https(TlsSettings {
        verification,
        client_cert,
    }));
    out.token = token;
    Ok(out)
}

/// Kubeconfig `*-data` (base64 PEM) wins over the file path, as in client-go.
fn inline_or_file(
    data: Option<&str>,
    file: Option<&str>,
    what: &'static str,
) -> Result<Option<PemSource>, ConfigError> {
    if let Some(data) = data.filter(|d| !d.trim().is_empty()) {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| ConfigError::Base64 {
                field: what,
                reason: e.to_string(),
            })?;
        return Ok(Some(PemSource::Inline(pem)));
    }
    Ok(file
        .filter(|f| !f.is_empty())
        .map(|f| PemSource::File(PathBuf::from(f))))
}

/// Re-encodes DER certificates (as kube-rs keeps the kubeconfig CA) as one PEM bundle.
pub fn ders_to_pem(ders: &[Vec<u8>]) -> Vec<u8> {
    let mut out = String::new();
    for der in ders {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(chunk));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out.into_bytes()
}

/// The first system CA bundle that exists (Go's system roots when no CA is configured).
fn system_ca_file() -> Result<PathBuf, ConfigError> {
    SYSTEM_CA_FILES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or(ConfigError::NoKubeletCa)
}
