//! Pods: the server's own (readiness) and an HPA target's (requests, PodMetrics).

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use super::{Failure, lookup, timed};
use crate::facts::{ContainerRequests, Lookup, PodFacts, TargetPod};

/// Pods of `namespace` matching `selector`.
pub(super) async fn list(
    client: &kube::Client,
    namespace: &str,
    selector: &str,
    t: Duration,
) -> Result<Vec<Pod>, Failure> {
    let api = Api::<Pod>::namespaced(client.clone(), namespace);
    let mut pods = timed(t, api.list(&ListParams::default().labels(selector)))
        .await?
        .items;
    pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    Ok(pods)
}

pub(super) async fn service_pods(
    client: &kube::Client,
    namespace: &str,
    selector: &str,
    t: Duration,
) -> Lookup<Vec<PodFacts>> {
    lookup(list(client, namespace, selector, t).await)
        .map_found(|pods| pods.iter().map(pod_facts).collect())
}

/// Name, phase, readiness and why not, restarts, container ports.
pub(super) fn pod_facts(pod: &Pod) -> PodFacts {
    let status = pod.status.clone().unwrap_or_default();
    let ready_cond = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready");
    let ready = ready_cond.is_some_and(|c| c.status == "True");
    let statuses = status.container_statuses.unwrap_or_default();
    let waiting = statuses.iter().find_map(|c| {
        let w = c.state.as_ref()?.waiting.as_ref()?;
        Some(format!(
            "container {} {}",
            c.name,
            w.reason.as_deref().unwrap_or("waiting")
        ))
    });
    let not_ready_reason = if ready {
        None
    } else {
        waiting.or_else(|| ready_cond.and_then(|c| c.message.clone()))
    };
    let container_ports = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .map(|p| (p.name.clone(), p.container_port))
        .collect();
    PodFacts {
        name: pod.metadata.name.clone().unwrap_or_default(),
        phase: status.phase.unwrap_or_default(),
        ready,
        not_ready_reason,
        restarts: statuses.iter().map(|c| c.restart_count).sum(),
        container_ports,
    }
}

/// An HPA target's pod: each container's requested resources and its PodMetrics.
pub(super) async fn target_pod(client: &kube::Client, pod: &Pod, t: Duration) -> TargetPod {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let containers = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .map(|c| ContainerRequests {
            name: c.name.clone(),
            requests: c
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .map(|r| r.keys().cloned().collect())
                .unwrap_or_default(),
        })
        .collect();
    let path = format!("/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods/{name}");
    let metrics = match http::Request::get(path).body(Vec::new()) {
        Ok(req) => lookup(timed(t, client.request_text(req)).await).map_found(|_| ()),
        Err(e) => Lookup::Failed(e.to_string()),
    };
    TargetPod {
        name,
        phase: pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default(),
        containers,
        metrics,
    }
}
