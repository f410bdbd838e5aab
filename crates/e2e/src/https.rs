//! A direct HTTPS client for the endpoints the suite reaches without kube-apiserver: the metrics-server
//! process (`/readyz`, `/livez`, `/metrics`) and KWOK's simulated kubelet endpoint. Like upstream's
//! port-forwarded requests it presents the kubeconfig's client certificate and skips server certificate
//! verification (both servers use self-signed or admin certificates).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use secrecy::ExposeSecret;

/// How long one request may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A PEM client certificate chain and its private key.
#[derive(Clone)]
pub struct Identity {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
}

impl Identity {
    /// Reads the client certificate and key of a kubeconfig user, whether embedded (`*-data`, base64) or
    /// given as file paths (already made absolute by kube's loader). `None` when the user has no client
    /// certificate (token auth).
    pub fn from_auth_info(auth: &kube::config::AuthInfo) -> Result<Option<Self>> {
        let cert = load(
            auth.client_certificate_data.as_deref(),
            auth.client_certificate.as_deref(),
        )
        .context("reading client-certificate")?;
        let key = load(
            auth.client_key_data
                .as_ref()
                .map(ExposeSecret::expose_secret),
            auth.client_key.as_deref(),
        )
        .context("reading client-key")?;
        match (cert, key) {
            (Some(cert_pem), Some(key_pem)) => Ok(Some(Self { cert_pem, key_pem })),
            (None, None) => Ok(None),
            _ => bail!("the kubeconfig user has a client certificate or key but not both"),
        }
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("cert_pem_len", &self.cert_pem.len())
            .finish_non_exhaustive()
    }
}

fn load(data: Option<&str>, file: Option<&str>) -> Result<Option<Vec<u8>>> {
    if let Some(data) = data {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .context("decoding base64 data")?;
        return Ok(Some(decoded));
    }
    file.map(|path| std::fs::read(path).with_context(|| format!("reading {path}")))
        .transpose()
}

/// A response: status code and body text.
#[derive(Clone, Debug)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The `Content-Type` header (empty when absent).
    pub content_type: String,
    /// The `ETag` header (empty when absent).
    pub etag: String,
    /// The body, as UTF-8 (lossy).
    pub body: String,
    /// The body as received (protobuf is not text).
    pub bytes: Vec<u8>,
}

/// The HTTPS (and plain HTTP) client.
#[derive(Clone)]
pub struct InsecureClient {
    inner: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl InsecureClient {
    /// Builds the client, presenting `identity` when a server asks for a client certificate.
    pub fn new(identity: Option<&Identity>) -> Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(provider)));
        let config = match identity {
            Some(id) => {
                let certs = CertificateDer::pem_slice_iter(&id.cert_pem)
                    .collect::<Result<Vec<_>, _>>()
                    .context("parsing the client certificate PEM")?;
                let key = PrivateKeyDer::from_pem_slice(&id.key_pem)
                    .context("parsing the client key PEM")?;
                builder
                    .with_client_auth_cert(certs, key)
                    .context("loading the client certificate")?
            }
            None => builder.with_no_client_auth(),
        };
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            inner: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// GETs `url` and returns status and body, whatever the status.
    pub async fn get(&self, url: &str) -> Result<Response> {
        self.get_with(url, &[]).await
    }

    /// GETs `url` with extra request headers (e.g. `Accept`) and returns status, body and the
    /// `Content-Type`, whatever the status.
    pub async fn get_with(&self, url: &str, headers: &[(&str, &str)]) -> Result<Response> {
        let mut builder =
            http::Request::get(url).header(http::header::USER_AGENT, "metrics-server-e2e");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(Empty::<Bytes>::new())
            .with_context(|| format!("building a request for {url}"))?;
        let fetch = async {
            let response = self.inner.request(request).await?;
            let status = response.status().as_u16();
            let header = |name: http::header::HeaderName| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            let content_type = header(http::header::CONTENT_TYPE);
            let etag = header(http::header::ETAG);
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, anyhow::Error>(Response {
                status,
                content_type,
                etag,
                body: String::from_utf8_lossy(&body).into_owned(),
                bytes: body.to_vec(),
            })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, fetch)
            .await
            .map_err(|_| anyhow!("GET {url}: no answer within {REQUEST_TIMEOUT:?}"))?
            .with_context(|| format!("GET {url}"))
    }

    /// GETs `url` and returns the body, failing unless the status is 200.
    pub async fn get_ok(&self, url: &str) -> Result<String> {
        let response = self.get(url).await?;
        if response.status != 200 {
            bail!(
                "GET {url}: HTTP {} with body {:?}",
                response.status,
                truncate(&response.body, 600)
            );
        }
        Ok(response.body)
    }
}

/// Cuts `text` to at most `max` bytes (on a character boundary) for error messages.
pub fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl std::fmt::Debug for InsecureClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InsecureClient").finish_non_exhaustive()
    }
}

/// Skips the server certificate check (like `InsecureSkipVerify`) but still checks the handshake
/// signatures, so the connection is a real TLS connection to whoever holds the presented key.
#[derive(Debug)]
struct AcceptAnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_respects_character_boundaries() {
        assert_eq!(truncate("abc", 10), "abc");
        assert_eq!(truncate("abcdef", 3), "abc");
        assert_eq!(truncate("aµb", 2), "a");
    }

    #[test]
    fn identity_loads_embedded_data_and_files() {
        let dir = std::env::temp_dir().join(format!("ms-e2e-identity-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key_path = dir.join("key.pem");
        std::fs::write(&key_path, b"KEY").unwrap();
        let auth = kube::config::AuthInfo {
            client_certificate_data: Some(base64::engine::general_purpose::STANDARD.encode("CERT")),
            client_key: Some(key_path.to_string_lossy().into_owned()),
            ..Default::default()
        };
        let id = Identity::from_auth_info(&auth).unwrap().unwrap();
        assert_eq!(id.cert_pem, b"CERT");
        assert_eq!(id.key_pem, b"KEY");
        std::fs::remove_dir_all(&dir).unwrap();

        assert!(
            Identity::from_auth_info(&kube::config::AuthInfo::default())
                .unwrap()
                .is_none()
        );
        let half = kube::config::AuthInfo {
            client_certificate_data: Some(base64::engine::general_purpose::STANDARD.encode("CERT")),
            ..Default::default()
        };
        assert!(Identity::from_auth_info(&half).is_err());
    }
}
