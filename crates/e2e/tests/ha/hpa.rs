//! The HPA through a replica kill: an HPA at its maximum of 3 replicas, then the replica that owns
//! the node of one of its pods is killed and the pods' usage drops from 150m to 10m at once. The
//! HPA can only scale down to 1 once it reads the new usage of every pod, those on the killed
//! replica's nodes included, so the scale-down proves that the survivors took the nodes over; and
//! the HPA must never report that it could not get the metrics.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use metrics_server_e2e::namespace;
use metrics_server_e2e::retry::eventually;
use serde_json::json;

use super::{Ctx, LEASE, expected_owners, live, point_apiservice_at};

const HPA_NS: &str = "ha-hpa";
const NAME: &str = "ha-hpa-target";
/// The pause between polls of the cluster.
const POLL: Duration = Duration::from_secs(2);
const IMAGE: &str = "registry.k8s.io/e2e-test-images/resource-consumer:1.9";

pub(super) async fn hpa_scales_through_a_kill(ctx: &mut Ctx) -> Result<()> {
    recreate_namespace(ctx).await?;
    let result = scale_through_kill(ctx).await;
    let _ = Api::<Namespace>::all(ctx.client.clone())
        .delete(HPA_NS, &DeleteParams::default())
        .await;
    result
}

async fn scale_through_kill(ctx: &mut Ctx) -> Result<()> {
    create_workload(ctx).await?;
    let hpas = Api::<HorizontalPodAutoscaler>::namespaced(ctx.client.clone(), HPA_NS);
    eventually(Duration::from_secs(180), POLL, || async {
        let hpa = hpas.get(NAME).await?;
        let status = hpa.status.as_ref();
        let current = status.and_then(|s| s.current_replicas).unwrap_or(0);
        let desired = status.map_or(0, |s| s.desired_replicas);
        ensure!(
            current == 3 && desired == 3,
            "the HPA is not at 3 replicas: current {current}, desired {desired}"
        );
        Ok(())
    })
    .await?;
    let nodes = pod_nodes(ctx).await?;
    let victim = kill_an_owner(ctx, &nodes).await?;
    let killed = Instant::now();
    set_usage(ctx, "10m").await?;
    // Takeover, two scrapes for the new rate, an HPA sync (5 s here) and slack.
    let bound = ctx.resolution * 3 + LEASE + Duration::from_secs(30);
    loop {
        let hpa = hpas.get(NAME).await?;
        if let Some(failed) = failed_metrics(&hpa) {
            bail!(
                "{:?} after killing {victim}, the HPA reported: {failed}",
                killed.elapsed()
            );
        }
        let desired = hpa.status.as_ref().map_or(0, |s| s.desired_replicas);
        if desired == 1 {
            println!(
                "    killed {victim} (owner of a node of {nodes:?}); the HPA scaled 3 -> 1 {:?} later",
                killed.elapsed()
            );
            return Ok(());
        }
        ensure!(
            killed.elapsed() <= bound,
            "desiredReplicas still {desired} {bound:?} after killing {victim}"
        );
        // Pods created by a scale-up start from the template's usage.
        set_usage(ctx, "10m").await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn recreate_namespace(ctx: &Ctx) -> Result<()> {
    let namespaces = Api::<Namespace>::all(ctx.client.clone());
    let _ = namespaces.delete(HPA_NS, &DeleteParams::default()).await;
    eventually(Duration::from_secs(120), POLL, || async {
        ensure!(
            namespaces.get_opt(HPA_NS).await?.is_none(),
            "the old namespace {HPA_NS} is still there"
        );
        Ok(())
    })
    .await?;
    namespace::create_ready(&ctx.client, HPA_NS).await
}

async fn create_workload(ctx: &Ctx) -> Result<()> {
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": NAME, "namespace": HPA_NS},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": NAME}},
            "template": {
                "metadata": {"labels": {"app": NAME}, "annotations": {"kwok.x-k8s.io/usage-cpu": "150m"}},
                "spec": {
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "metrics-server-skip", "operator": "DoesNotExist"}]}
                    ]}}},
                    "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}],
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "app", "image": IMAGE, "resources": {"requests": {"cpu": "100m"}}}]
                }
            }
        }
    }))?;
    Api::<Deployment>::namespaced(ctx.client.clone(), HPA_NS)
        .create(&PostParams::default(), &deployment)
        .await
        .context("creating the deployment")?;
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": {"name": NAME, "namespace": HPA_NS},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": NAME},
            "minReplicas": 1,
            "maxReplicas": 3,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}],
            "behavior": {"scaleUp": {"stabilizationWindowSeconds": 0}, "scaleDown": {"stabilizationWindowSeconds": 0}}
        }
    }))?;
    Api::<HorizontalPodAutoscaler>::namespaced(ctx.client.clone(), HPA_NS)
        .create(&PostParams::default(), &hpa)
        .await
        .context("creating the HPA")?;
    Ok(())
}

async fn pods(ctx: &Ctx) -> Result<Vec<Pod>> {
    Ok(Api::<Pod>::namespaced(ctx.client.clone(), HPA_NS)
        .list(&ListParams::default().labels(&format!("app={NAME}")))
        .await?
        .items)
}

async fn pod_nodes(ctx: &Ctx) -> Result<BTreeSet<String>> {
    let nodes: BTreeSet<String> = pods(ctx)
        .await?
        .iter()
        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
        .collect();
    ensure!(!nodes.is_empty(), "no pod of {NAME} is scheduled");
    Ok(nodes)
}

/// KWOK reads the usage annotation live: the next scrapes see the new rate.
async fn set_usage(ctx: &Ctx, cpu: &str) -> Result<()> {
    let api = Api::<Pod>::namespaced(ctx.client.clone(), HPA_NS);
    let patch = json!({"metadata": {"annotations": {"kwok.x-k8s.io/usage-cpu": cpu}}});
    for pod in pods(ctx).await? {
        let Some(name) = pod.metadata.name else {
            continue;
        };
        let _ = api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await;
    }
    Ok(())
}

/// SIGKILLs the owner of one of `nodes`. When the only owners serve the APIService, the
/// APIService first moves to another replica, as a Service drops a dead endpoint.
async fn kill_an_owner(ctx: &mut Ctx, nodes: &BTreeSet<String>) -> Result<String> {
    let owners = expected_owners(ctx, nodes.iter().cloned());
    let serving = live(ctx).next().map(|r| r.id.clone()).unwrap_or_default();
    let victim = owners
        .values()
        .find(|o| **o != serving)
        .or_else(|| owners.values().next())
        .cloned()
        .context("no owner")?;
    if victim == serving {
        let other = ctx
            .replicas
            .iter()
            .position(|r| r.child.is_some() && r.id != victim)
            .context("no other live replica to serve the APIService")?;
        point_apiservice_at(ctx, other).await?;
    }
    let slot = ctx
        .replicas
        .iter_mut()
        .find(|r| r.id == victim)
        .context("victim")?;
    let mut child = slot.child.take().context("victim already stopped")?;
    child.start_kill()?;
    let _ = child.wait().await;
    Ok(victim)
}

/// The HPA's own words when it could not read the metrics.
fn failed_metrics(hpa: &HorizontalPodAutoscaler) -> Option<String> {
    hpa.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "ScalingActive" && c.status == "False")
        .map(|c| {
            format!(
                "{}: {}",
                c.reason.as_deref().unwrap_or(""),
                c.message.as_deref().unwrap_or("")
            )
        })
}
