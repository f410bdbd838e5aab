//! The Vertical Pod Autoscaler's recommender (the real one, `hack/cluster.sh vpa-up`) reading our metrics:
//! a Deployment whose simulated usage is known, a VerticalPodAutoscaler in `Off` mode for it, and the
//! recommendation it writes, which must appear near that usage and follow it when the usage rises.
//!
//! The recommender lists pod metrics every `--recommender-interval` (20s here, longer than our 15s
//! resolution) and drops, with a log line, a sample whose timestamp did not advance: its log
//! (`$VPA_RECOMMENDER_LOG`) must show no such drop for the test's pods.
#![allow(clippy::print_stdout)]

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams};
use metrics_server_e2e::kubectl::Kubectl;
use metrics_server_e2e::namespace;
use metrics_server_e2e::quantity::Quantity;
use metrics_server_e2e::retry::eventually;
use metrics_server_e2e::runner::{self, Tally};
use serde_json::{Value, json};

const NS: &str = "e2e-vpa";
const NAME: &str = "vpa-target";
const IMAGE: &str = "registry.k8s.io/e2e-test-images/resource-consumer:1.9";
const SKIP_LABEL: &str = "metrics-server-skip";
/// The simulated usage of every pod: first, then after the rise.
const FIRST: (&str, &str) = ("400m", "300Mi");
const RAISED: (&str, &str) = ("1200m", "900Mi");
/// How often the recommendation is read.
const POLL: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    runner::main("vpa", |kubeconfig| async move { run(&kubeconfig).await })
}

async fn run(kubeconfig: &Path) -> ExitCode {
    let mut tally = Tally::new();
    let ctx = match Ctx::new(kubeconfig).await {
        Ok(ctx) => ctx,
        Err(err) => {
            tally.setup("the cluster and the VPA CRD are there", &Err(err));
            println!("{}", tally.summary());
            return ExitCode::FAILURE;
        }
    };
    let setup = ctx.setup().await;
    tally.setup(
        "namespace e2e-vpa, Deployment vpa-target (2 pods at 400m/300Mi), VPA in Off mode",
        &setup,
    );
    if setup.is_ok() {
        let first = ctx.recommendation_near(FIRST).await;
        tally.case(
            "the recommender writes a target within 1x to 1.5x of the simulated usage (400m, 300Mi; waits up to 4m)",
            &first,
        );
        let raised = ctx.raise_and_follow().await;
        tally.case(
            "after the usage rises to 1200m and 900Mi the target follows within 1x to 1.5x (waits up to 4m)",
            &raised,
        );
        tally.case(
            "the recommender dropped no sample of the test's pods as not advancing (its log)",
            &no_dropped_samples(),
        );
    }
    let teardown = delete_namespace(&ctx.client).await;
    tally.teardown("namespace e2e-vpa is deleted", &teardown);
    println!("{}", tally.summary());
    if tally.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

struct Ctx {
    client: kube::Client,
    kubectl: Kubectl,
    vpas: Api<DynamicObject>,
}

impl Ctx {
    async fn new(kubeconfig: &Path) -> Result<Self> {
        let config = runner::load_config(kubeconfig).await?;
        let client = kube::Client::try_from(config).context("building the Kubernetes client")?;
        let gvk = GroupVersionKind::gvk("autoscaling.k8s.io", "v1", "VerticalPodAutoscaler");
        let resource = ApiResource::from_gvk(&gvk);
        let vpas = Api::<DynamicObject>::namespaced_with(client.clone(), NS, &resource);
        Api::<DynamicObject>::all_with(client.clone(), &resource)
            .list(&Default::default())
            .await
            .context(
                "listing VerticalPodAutoscalers (is the CRD installed? hack/cluster.sh vpa-up)",
            )?;
        Ok(Self {
            client,
            kubectl: Kubectl::new(kubeconfig),
            vpas,
        })
    }

    async fn setup(&self) -> Result<()> {
        delete_namespace(&self.client).await?;
        let namespaces = Api::<Namespace>::all(self.client.clone());
        eventually(Duration::from_secs(180), Duration::from_secs(3), || async {
            ensure!(
                namespaces.get_opt(NS).await?.is_none(),
                "namespace {NS} is still terminating"
            );
            Ok(())
        })
        .await?;
        namespace::create_ready(&self.client, NS).await?;
        let deployment: Deployment = serde_json::from_value(deployment_json())?;
        Api::<Deployment>::namespaced(self.client.clone(), NS)
            .create(&PostParams::default(), &deployment)
            .await
            .context("creating the deployment")?;
        let vpa: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "autoscaling.k8s.io/v1",
            "kind": "VerticalPodAutoscaler",
            "metadata": {"name": NAME, "namespace": NS},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": NAME},
                "updatePolicy": {"updateMode": "Off"}
            }
        }))?;
        self.vpas
            .create(&PostParams::default(), &vpa)
            .await
            .context("creating the VerticalPodAutoscaler")?;
        Ok(())
    }

    /// Waits until the target of container `app` lies within 1x to 1.5x of `usage` (the recommender adds
    /// a 15% margin to a histogram percentile whose buckets are 5% wide).
    async fn recommendation_near(&self, usage: (&str, &str)) -> Result<()> {
        let (cpu, memory) = (Quantity::parse(usage.0)?, Quantity::parse(usage.1)?);
        let (cpu, memory) = (cpu.milli_value(), memory.value());
        eventually(Duration::from_secs(240), POLL, || async {
            let (got_cpu, got_memory) = self.target().await?;
            let near = |got: i128, want: i128| got >= want && got * 2 <= want * 3;
            ensure!(
                near(got_cpu.milli_value(), cpu) && near(got_memory.value(), memory),
                "target cpu {got_cpu:?} memory {got_memory:?}, want within 1x-1.5x of {usage:?}"
            );
            println!("   note: target cpu {got_cpu:?} memory {got_memory:?} for usage {usage:?}");
            Ok(())
        })
        .await
    }

    async fn raise_and_follow(&self) -> Result<()> {
        let (cpu, memory) = RAISED;
        self.kubectl
            .run(&[
                "annotate",
                "--overwrite",
                "pods",
                "-n",
                NS,
                "-l",
                &format!("app={NAME}"),
                &format!("kwok.x-k8s.io/usage-cpu={cpu}"),
                &format!("kwok.x-k8s.io/usage-memory={memory}"),
            ])
            .await?;
        self.recommendation_near(RAISED).await
    }

    /// `status.recommendation.containerRecommendations[app].target` as (cpu, memory).
    async fn target(&self) -> Result<(Quantity, Quantity)> {
        let vpa = self.vpas.get(NAME).await?;
        let recs = vpa.data["status"]["recommendation"]["containerRecommendations"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let app = recs
            .iter()
            .find(|r| r["containerName"] == "app")
            .ok_or_else(|| anyhow!("no recommendation yet; status: {}", vpa.data["status"]))?;
        let read = |name: &str| -> Result<Quantity> {
            let text = app["target"][name]
                .as_str()
                .ok_or_else(|| anyhow!("no target {name} in {app}"))?;
            Ok(Quantity::parse(text)?)
        };
        Ok((read("cpu")?, read("memory")?))
    }
}

/// Lines of the recommender's log that drop a sample of a pod in the test's namespace.
fn no_dropped_samples() -> Result<()> {
    let path = std::env::var("VPA_RECOMMENDER_LOG")
        .context("VPA_RECOMMENDER_LOG is not set (make vpa-run sets it)")?;
    let log = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let namespace = format!("\"Namespace\":\"{NS}\"");
    let dropped: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("sample discarded") && l.contains(&namespace))
        .collect();
    ensure!(
        dropped.is_empty(),
        "{} sample(s) dropped, first: {}",
        dropped.len(),
        dropped[0]
    );
    Ok(())
}

fn deployment_json() -> Value {
    json!({
        "metadata": {"name": NAME, "namespace": NS},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": NAME}},
            "template": {
                "metadata": {"labels": {"app": NAME}, "annotations": {
                    "kwok.x-k8s.io/usage-cpu": FIRST.0,
                    "kwok.x-k8s.io/usage-memory": FIRST.1
                }},
                "spec": {
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                        {"matchExpressions": [{"key": SKIP_LABEL, "operator": "DoesNotExist"}]}
                    ]}}},
                    "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}],
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "app", "image": IMAGE,
                        "resources": {"requests": {"cpu": "100m", "memory": "100Mi"}}}]
                }
            }
        }
    })
}

async fn delete_namespace(client: &kube::Client) -> Result<()> {
    match Api::<Namespace>::all(client.clone())
        .delete(NS, &DeleteParams::default())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(err) => Err(err).context("deleting the namespace"),
    }
}
