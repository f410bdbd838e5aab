//! Where kube-apiserver's aggregator sends `metrics.k8s.io`: the APIService's Service, which on
//! the local cluster is an ExternalName on a loopback address, and the APIService's port.

use anyhow::{Context as _, Result, ensure};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::Api;

/// `https://<loopback host>:<port>` of the server behind APIService `v1beta1.metrics.k8s.io`;
/// fails unless its Service is an ExternalName on 127.0.0.0/8 (the suites never reach further).
pub async fn metrics_server_url(client: &kube::Client) -> Result<String> {
    let apiservice = Api::<APIService>::all(client.clone())
        .get("v1beta1.metrics.k8s.io")
        .await
        .context("reading APIService v1beta1.metrics.k8s.io")?;
    let service_ref = apiservice
        .spec
        .and_then(|s| s.service)
        .context("the APIService has no service")?;
    let port = service_ref.port.unwrap_or(443);
    let svc = Api::<Service>::namespaced(
        client.clone(),
        service_ref.namespace.as_deref().unwrap_or("kube-system"),
    )
    .get(service_ref.name.as_deref().unwrap_or("metrics-server"))
    .await
    .context("reading the metrics-server Service")?;
    let host = svc
        .spec
        .and_then(|s| s.external_name)
        .context("the metrics-server Service is not an ExternalName")?;
    ensure!(
        host.starts_with("127."),
        "the metrics-server Service points at {host}, not a loopback address"
    );
    Ok(format!("https://{host}:{port}"))
}
