//! The end-to-end suite: a port of upstream metrics-server's `test/e2e_test.go` (J#1–#11) plus kubectl,
//! APIService, HPA and loopback checks, run against a live local cluster (see `src/lib.rs`).
//!
//! A small runner (no libtest): a setup step, then each case in order, printing `ok <name>` or
//! `FAILED <name>: <reason>`, a teardown step, and a closing `N passed, N failed; setup .., teardown ..`
//! line (setup and teardown are not cases, but a failing one fails the run). `E2E_FILTER=<substring>`
//! selects cases by name; a filter that selects none fails. It acts only on the cluster named by
//! `E2E_KUBECONFIG` (never plain `KUBECONFIG`); without it it skips and passes, unless `E2E_REQUIRE=1`.
#![allow(clippy::print_stdout)]

use std::collections::BTreeSet;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PostParams,
};
use metrics_server_e2e::https::{Identity, InsecureClient, truncate};
use metrics_server_e2e::kubectl::metrics_versions_requested;
use metrics_server_e2e::kubectl::{
    Kubectl, Table, parse_mebibytes, parse_millicores, parse_percent,
};
use metrics_server_e2e::metrics::{self, API, List, NodeMetrics, PodMetrics, VERSIONS};
use metrics_server_e2e::namespace;
use metrics_server_e2e::prom;
use metrics_server_e2e::retry::{GET_DEADLINE, POLL_INTERVAL, eventually};
use metrics_server_e2e::runner::{self, Step, Tally};
use metrics_server_e2e::ss;
use metrics_server_e2e::wire;
use serde_json::{Value, json};

/// Where the consumer pods live (as upstream).
const NS: &str = "default";
/// Any image: KWOK never pulls it.
const IMAGE: &str = "registry.k8s.io/e2e-test-images/resource-consumer:1.9";
/// The label metrics-server's `--node-selector=metrics-server-skip!=true` excludes.
const SKIP_LABEL: &str = "metrics-server-skip";
const CPU_CONSUMER: &str = "cpu-consumer";
const MEMORY_CONSUMER: &str = "memory-consumer";
const INIT_CONSUMER: &str = "cmwithinitcontainer-consumer";
const SIDECAR_CONSUMER: &str = "sidecarpod-consumer";
const INIT_SIDECAR_CONSUMER: &str = "initsidecarpod-consumer";
const CONSUMERS: [&str; 5] = [
    CPU_CONSUMER,
    MEMORY_CONSUMER,
    INIT_CONSUMER,
    SIDECAR_CONSUMER,
    INIT_SIDECAR_CONSUMER,
];
/// The consumers whose usage is set exactly by a KWOK `ResourceUsage` named like the pod.
const RESOURCE_USAGES: [(&str, &str, &str); 2] = [
    (CPU_CONSUMER, "50m", "20Mi"),
    (MEMORY_CONSUMER, "10m", "50Mi"),
];
/// The longest any single case may run, as a backstop against a hung request.
const CASE_TIMEOUT: Duration = Duration::from_secs(600);

/// E.11: the exact verbose probe bodies.
const READYZ_VERBOSE: &str = "[+]ping ok\n[+]log ok\n[+]poststarthook/max-in-flight-filter ok\n\
[+]poststarthook/storage-object-count-tracker-hook ok\n[+]metric-storage-ready ok\n\
[+]metric-informer-sync ok\n[+]metadata-informer-sync ok\n[+]shutdown ok\nreadyz check passed\n";
const LIVEZ_VERBOSE: &str = "[+]ping ok\n[+]log ok\n[+]poststarthook/max-in-flight-filter ok\n\
[+]poststarthook/storage-object-count-tracker-hook ok\n[+]metric-collection-timely ok\n\
[+]metadata-informer-sync ok\nlivez check passed\n";
/// E.13: the exact set of `metrics_server_*` families.
const SELF_METRICS: [&str; 6] = [
    "metrics_server_api_metric_freshness_seconds",
    "metrics_server_kubelet_last_request_time_seconds",
    "metrics_server_kubelet_request_duration_seconds",
    "metrics_server_kubelet_request_total",
    "metrics_server_manager_tick_duration_seconds",
    "metrics_server_storage_points",
];

/// The older kubectl (1.36, metrics.k8s.io/v1beta1 only); `make e2e-run` points it at kubectl-1.36.
const KUBECTL_OLD_VAR: &str = "KUBECTL_OLD";
/// What kubectl and most client-go programs send.
const PROTOBUF_FIRST: &str = "application/vnd.kubernetes.protobuf, */*";
const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

const HPA_NS: &str = "e2e-hpa";
const HPA_NAME: &str = "hpa-target";

fn main() -> ExitCode {
    runner::main("e2e", |kubeconfig| async move { run(&kubeconfig).await })
}

// === Runner ===

type CaseFuture<'a> = Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;
type CaseFn = for<'a> fn(&'a Ctx) -> CaseFuture<'a>;

struct Case {
    name: &'static str,
    /// Whether the case reads the consumer pods made by the setup step.
    needs_consumers: bool,
    run: CaseFn,
}

const SETUP: &str = "the consumer pods are created in namespace default and become ready (waits up to 5m), and so does metrics-server (/readyz, up to 3m)";
const TEARDOWN: &str = "the consumer pods and their ResourceUsages are deleted";

fn cases() -> Vec<Case> {
    let case = |name, needs_consumers, run| Case {
        name,
        needs_consumers,
        run,
    };
    vec![
        case(
            "J#1 the metrics API lists at least one pod in the cluster, in v1 and v1beta1 (retries up to 60s)",
            false,
            pods_are_listed,
        ),
        case(
            "J#2 the metrics API serves every node that --node-selector keeps, in v1 and v1beta1 (retries up to 60s)",
            false,
            served_nodes_have_metrics,
        ),
        case(
            "J#3 cpu-consumer reports exactly one container using 50m ± 10m CPU (retries up to 60s)",
            true,
            cpu_is_accurate,
        ),
        case(
            "J#4 memory-consumer reports exactly one container using 50Mi ± 5Mi memory (retries up to 60s)",
            true,
            memory_is_accurate,
        ),
        case(
            "J#5 a pod with a completed init container reports only its main container, non-zero (retries up to 60s)",
            true,
            init_container_is_not_reported,
        ),
        case(
            "J#6 a pod with two regular containers reports both, non-zero (retries up to 60s)",
            true,
            sidecar_pod_reports_both,
        ),
        case(
            "J#7 a pod with a native sidecar reports exactly the containers its kubelet exposes, main container non-zero (retries up to 60s)",
            true,
            init_sidecar_matches_kubelet,
        ),
        case(
            "J#8 /readyz?verbose& answers upstream's exact check list (retries up to 60s)",
            false,
            readyz_is_exact,
        ),
        case(
            "J#9 /livez?verbose& answers upstream's exact check list (retries up to 60s)",
            false,
            livez_is_exact,
        ),
        case(
            "J#10 /metrics exposes exactly upstream's six metrics_server_ families (retries up to 60s)",
            false,
            self_metrics_are_exact,
        ),
        case(
            "J#11 nodes excluded by --node-selector answer 404, in v1 and v1beta1 (retries up to 60s)",
            false,
            skipped_nodes_are_not_found,
        ),
        case(
            "kubectl top nodes (kubectl 1.37, reads metrics.k8s.io/v1) shows every kept node with usage and the skipped node as <unknown> (retries up to 60s)",
            false,
            kubectl_top_nodes,
        ),
        case(
            "kubectl-1.36 top nodes (reads metrics.k8s.io/v1beta1) shows every kept node with usage and the skipped node as <unknown> (retries up to 60s)",
            false,
            kubectl_old_top_nodes,
        ),
        case(
            "kubectl top pods -A (kubectl 1.37, v1) shows default/cpu-consumer at 40m to 60m CPU (retries up to 60s)",
            true,
            kubectl_top_pods_all,
        ),
        case(
            "kubectl-1.36 top pods -A (v1beta1) shows default/cpu-consumer at 40m to 60m CPU (retries up to 60s)",
            true,
            kubectl_old_top_pods_all,
        ),
        case(
            "kubectl top pod cpu-consumer --containers shows its one container (retries up to 60s)",
            true,
            kubectl_top_pod_containers,
        ),
        case(
            "kubectl get nodemetrics lists every kept node under NAME CPU MEMORY WINDOW (retries up to 60s)",
            false,
            kubectl_get_nodemetrics,
        ),
        case(
            "kubectl get podmetrics -n default lists every consumer pod (retries up to 60s)",
            true,
            kubectl_get_podmetrics,
        ),
        case(
            "the APIServices v1.metrics.k8s.io and v1beta1.metrics.k8s.io are Available=True (retries up to 60s)",
            false,
            apiservice_is_available,
        ),
        case(
            "v1 and v1beta1 serve the same objects for nodes, a node, pods and a pod: JSON and YAML equal but apiVersion, protobuf envelopes naming their version around equal bytes (retries up to 60s)",
            true,
            versions_agree_in_json_and_protobuf,
        ),
        case(
            "under 20 anonymous selector-bomb attackers and 1,000 stalled connections, /livez p95 stays under 100ms and every attack gets 403",
            false,
            livez_stays_fast_under_attack,
        ),
        case(
            "the HPA scales hpa-target above 1 replica at 150% CPU and back to 1 at 10% (waits up to 3m, then 4m)",
            false,
            hpa_scales_up_and_down,
        ),
        case(
            "every established TCP connection of the cluster's processes has a loopback peer",
            false,
            connections_stay_on_loopback,
        ),
    ]
}

async fn run(kubeconfig: &Path) -> ExitCode {
    let filter = std::env::var(runner::FILTER_VAR).unwrap_or_default();
    let selected = match runner::select(cases(), &filter, |c| c.name) {
        Ok(selected) => selected,
        Err(reason) => {
            println!("e2e: FAILED: {reason}");
            return ExitCode::FAILURE;
        }
    };
    let ctx = match Ctx::discover(kubeconfig).await {
        Ok(ctx) => ctx,
        Err(err) => {
            println!(
                "e2e: FAILED: no usable cluster and metrics-server behind {} ({}): {err:#}",
                runner::KUBECONFIG_VAR,
                kubeconfig.display()
            );
            return ExitCode::FAILURE;
        }
    };
    println!(
        "e2e: metrics-server at {}; nodes kept: {:?}; skipped: {:?}; {} case(s) selected{}",
        ctx.server,
        ctx.served_nodes,
        ctx.skipped_nodes,
        selected.len(),
        if filter.is_empty() {
            String::new()
        } else {
            format!(" by E2E_FILTER={filter:?}")
        }
    );

    let mut tally = Tally::new();
    let with_consumers = selected.iter().any(|c| c.needs_consumers);
    if with_consumers {
        let start = Instant::now();
        let result = timed(setup_consumers(&ctx)).await;
        tally.setup(SETUP, &result);
        print_elapsed(start);
    }
    for case in &selected {
        let start = Instant::now();
        let result = if case.needs_consumers && tally.setup != Step::Ok {
            Err(anyhow!("not run: the setup step failed"))
        } else {
            timed((case.run)(&ctx)).await
        };
        tally.case(case.name, &result);
        print_elapsed(start);
    }
    if with_consumers {
        let start = Instant::now();
        let result = timed(teardown_consumers(&ctx)).await;
        tally.teardown(TEARDOWN, &result);
        print_elapsed(start);
    }

    println!("{}", tally.summary());
    if tally.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_elapsed(start: Instant) {
    println!("   ({:.1}s)", start.elapsed().as_secs_f64());
}

async fn timed(fut: impl Future<Output = Result<()>>) -> Result<()> {
    tokio::time::timeout(CASE_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| Err(anyhow!("did not finish within {CASE_TIMEOUT:?}")))
}

/// Retries a "get" check every 5 s for up to 60 s, like upstream's `Eventually`.
async fn eventually_get<T, F, Fut>(attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    eventually(GET_DEADLINE, POLL_INTERVAL, attempt).await
}

// === Context ===

struct Ctx {
    client: kube::Client,
    /// Direct HTTPS to metrics-server and KWOK, with the kubeconfig's client certificate.
    https: InsecureClient,
    /// `https://<host>:<port>` of the metrics-server process.
    server: String,
    kubectl: Kubectl,
    /// kubectl 1.36 (`$KUBECTL_OLD`), the client that knows only v1beta1.
    kubectl_old: Option<Kubectl>,
    /// `https://<host>:<port>` of kube-apiserver, for requests whose raw bytes matter.
    apiserver: String,
    /// Nodes metrics-server scrapes (no `metrics-server-skip=true`), sorted.
    served_nodes: Vec<String>,
    /// Nodes labelled `metrics-server-skip=true`, sorted.
    skipped_nodes: Vec<String>,
}

impl Ctx {
    async fn discover(kubeconfig: &Path) -> Result<Self> {
        let config = runner::load_config(kubeconfig).await?;
        let identity = Identity::from_auth_info(&config.auth_info)?;
        let https = InsecureClient::new(identity.as_ref())?;
        let apiserver = config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_owned();
        let client = kube::Client::try_from(config).context("building the Kubernetes client")?;

        // The process listens where the APIService routes: its Service is an ExternalName (127.0.0.1) and
        // the APIService carries the port.
        let apiservice = Api::<APIService>::all(client.clone())
            .get("v1beta1.metrics.k8s.io")
            .await
            .context("reading APIService v1beta1.metrics.k8s.io")?;
        let service_ref = apiservice
            .spec
            .and_then(|s| s.service)
            .context("APIService v1beta1.metrics.k8s.io has no spec.service")?;
        let port = service_ref.port.unwrap_or(443);
        let svc_ns = service_ref
            .namespace
            .unwrap_or_else(|| "kube-system".to_owned());
        let svc_name = service_ref
            .name
            .unwrap_or_else(|| "metrics-server".to_owned());
        let host = match Api::<Service>::namespaced(client.clone(), &svc_ns)
            .get(&svc_name)
            .await
        {
            Ok(svc) => svc
                .spec
                .filter(|s| s.type_.as_deref() == Some("ExternalName"))
                .and_then(|s| s.external_name)
                .unwrap_or_else(|| "127.0.0.1".to_owned()),
            Err(_) => "127.0.0.1".to_owned(),
        };
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };

        let nodes = Api::<Node>::all(client.clone())
            .list(&ListParams::default())
            .await
            .context("listing nodes")?;
        let (mut skipped_nodes, mut served_nodes) = (Vec::new(), Vec::new());
        for node in nodes.items {
            let name = node.metadata.name.clone().unwrap_or_default();
            let skipped = node
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SKIP_LABEL))
                .is_some_and(|v| v == "true");
            if skipped {
                skipped_nodes.push(name)
            } else {
                served_nodes.push(name)
            }
        }
        served_nodes.sort();
        skipped_nodes.sort();
        ensure!(
            !served_nodes.is_empty(),
            "the cluster has no node that metrics-server scrapes"
        );

        Ok(Self {
            client,
            https,
            server: format!("https://{host}:{port}"),
            kubectl: Kubectl::new(kubeconfig),
            kubectl_old: std::env::var(KUBECTL_OLD_VAR)
                .ok()
                .filter(|b| !b.is_empty())
                .map(|b| Kubectl::new(kubeconfig).with_binary(&b)),
            apiserver,
            served_nodes,
            skipped_nodes,
        })
    }

    /// The pod's metrics in v1, after checking v1beta1 serves the same containers.
    async fn pod_metrics(&self, name: &str) -> Result<PodMetrics> {
        let mut served = Vec::new();
        for version in VERSIONS {
            let path = format!("{}/namespaces/{NS}/pods/{name}", metrics::api(version));
            let pod: PodMetrics = metrics::get(&self.client, &path)
                .await
                .with_context(|| format!("GET {path}"))?;
            served.push(pod);
        }
        let (v1, v1beta1) = (&served[0], &served[1]);
        ensure!(
            container_names(v1) == container_names(v1beta1),
            "v1 serves containers {:?}, v1beta1 {:?}",
            container_names(v1),
            container_names(v1beta1)
        );
        Ok(served.swap_remove(0))
    }

    /// kubectl 1.36, or why the case cannot run.
    fn old_kubectl(&self) -> Result<&Kubectl> {
        self.kubectl_old.as_ref().ok_or_else(|| {
            anyhow!(
                "{KUBECTL_OLD_VAR} is not set (make e2e-run points it at .cluster/bin/kubectl-1.36)"
            )
        })
    }

    /// GETs `path` from kube-apiserver with `Accept: accept` and returns the raw response.
    async fn raw(&self, path: &str, accept: &str) -> Result<metrics_server_e2e::https::Response> {
        self.https
            .get_with(&format!("{}{path}", self.apiserver), &[("Accept", accept)])
            .await
            .with_context(|| format!("GET {path} (Accept: {accept})"))
    }
}

// === Setup and teardown ===

fn resource_usage_api(client: &kube::Client) -> (Api<DynamicObject>, ApiResource) {
    let gvk = GroupVersionKind::gvk("kwok.x-k8s.io", "v1alpha1", "ResourceUsage");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "resourceusages");
    (
        Api::namespaced_with(client.clone(), NS, &resource),
        resource,
    )
}

fn container(name: &str) -> Value {
    json!({"name": name, "image": IMAGE, "resources": {"requests": {"cpu": "100m", "memory": "100Mi"}}})
}

/// Upstream's consumers: same names and container layout, scheduled away from the skipped node.
fn consumer_pod(name: &str) -> Result<Pod> {
    let (init_containers, containers) = match name {
        INIT_CONSUMER => (
            json!([{"name": "init", "image": IMAGE, "command": ["sleep", "10"]}]),
            json!([container(INIT_CONSUMER)]),
        ),
        SIDECAR_CONSUMER => (
            json!([]),
            json!([container(SIDECAR_CONSUMER), container("sidecar-container")]),
        ),
        INIT_SIDECAR_CONSUMER => (
            json!([{"name": "initsidecar-container", "image": IMAGE, "restartPolicy": "Always",
                    "resources": {"requests": {"cpu": "100m", "memory": "100Mi"}}}]),
            json!([container(INIT_SIDECAR_CONSUMER)]),
        ),
        _ => (json!([]), json!([container(name)])),
    };
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {"app.kubernetes.io/part-of": "metrics-server-e2e"}},
        "spec": {
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": SKIP_LABEL, "operator": "DoesNotExist"}]}
            ]}}},
            "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}],
            "terminationGracePeriodSeconds": 0,
            "initContainers": init_containers,
            "containers": containers,
        }
    });
    serde_json::from_value(pod).with_context(|| format!("building pod {name}"))
}

fn delete_now() -> DeleteParams {
    DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::background()
    }
}

/// Deletes an object, treating "already gone" as success.
async fn delete_ignoring_absent<K>(api: &Api<K>, name: &str) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &delete_now()).await {
        Ok(_) => Ok(()),
        Err(err) if metrics::not_found(&err) => Ok(()),
        Err(err) => Err(err).with_context(|| format!("deleting {name}")),
    }
}

async fn delete_consumers(ctx: &Ctx) -> Result<()> {
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), NS);
    let (usages, _) = resource_usage_api(&ctx.client);
    for name in CONSUMERS {
        delete_ignoring_absent(&pods, name).await?;
    }
    for (name, _, _) in RESOURCE_USAGES {
        delete_ignoring_absent(&usages, name).await?;
    }
    Ok(())
}

async fn setup_consumers(ctx: &Ctx) -> Result<()> {
    delete_consumers(ctx).await.context("deleting leftovers")?;
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), NS);
    eventually(Duration::from_secs(120), Duration::from_secs(2), || async {
        for name in CONSUMERS {
            if pods.get_opt(name).await?.is_some() {
                bail!("leftover pod {name} is still there");
            }
        }
        Ok(())
    })
    .await?;

    // Usage objects first, so the very first samples already carry the intended usage.
    let (usages, resource) = resource_usage_api(&ctx.client);
    for (name, cpu, memory) in RESOURCE_USAGES {
        let object = DynamicObject::new(name, &resource).within(NS).data(json!({
            "spec": {"usages": [{"usage": {"cpu": {"value": cpu}, "memory": {"value": memory}}}]}
        }));
        usages
            .create(&PostParams::default(), &object)
            .await
            .with_context(|| format!("creating ResourceUsage {name}"))?;
    }
    for name in CONSUMERS {
        pods.create(&PostParams::default(), &consumer_pod(name)?)
            .await
            .with_context(|| format!("creating pod {name}"))?;
    }

    eventually(Duration::from_secs(300), Duration::from_secs(2), || async {
        let mut waiting = Vec::new();
        for name in CONSUMERS {
            let pod = pods
                .get(name)
                .await
                .with_context(|| format!("reading pod {name}"))?;
            if let Err(why) = pod_is_ready(&pod) {
                waiting.push(format!("{name}: {why}"));
            }
        }
        ensure!(waiting.is_empty(), "pods not ready: {}", waiting.join("; "));
        Ok(())
    })
    .await?;

    // Upstream's suite runs once the metrics-server Deployment is rolled out, i.e. its readiness probe
    // (/readyz: two stored scrapes) passes; on a fresh cluster that takes about a minute here.
    eventually(Duration::from_secs(180), Duration::from_secs(2), || async {
        let response = ctx.https.get(&format!("{}/readyz", ctx.server)).await?;
        ensure!(
            response.status == 200,
            "/readyz answers {}",
            response.status
        );
        Ok(())
    })
    .await
    .context("waiting for the metrics server to become ready")
}

/// Running with every container status ready (upstream waits for all container statuses to be ready).
fn pod_is_ready(pod: &Pod) -> Result<(), String> {
    let status = pod.status.as_ref().ok_or("no status yet")?;
    let phase = status.phase.as_deref().unwrap_or("<none>");
    if phase != "Running" {
        return Err(format!("phase {phase}"));
    }
    let statuses = status.container_statuses.as_deref().unwrap_or_default();
    if statuses.is_empty() {
        return Err("no container statuses".to_owned());
    }
    let unready: Vec<&str> = statuses
        .iter()
        .filter(|s| !s.ready)
        .map(|s| s.name.as_str())
        .collect();
    if unready.is_empty() {
        Ok(())
    } else {
        Err(format!("containers not ready: {unready:?}"))
    }
}

async fn teardown_consumers(ctx: &Ctx) -> Result<()> {
    delete_consumers(ctx).await
}

// === Upstream's cases (J) ===

fn pods_are_listed(ctx: &Ctx) -> CaseFuture<'_> {
    Box::pin(eventually_get(|| async {
        for version in VERSIONS {
            let path = format!("{}/pods", metrics::api(version));
            let list: List<PodMetrics> = metrics::get(&ctx.client, &path)
                .await
                .with_context(|| format!("GET {path}"))?;
            ensure!(!list.items.is_empty(), "GET {path} returned no items");
        }
        Ok(())
    }))
}

fn served_nodes_have_metrics(ctx: &Ctx) -> CaseFuture<'_> {
    Box::pin(eventually_get(|| async {
        for (version, node) in &by_version(&ctx.served_nodes) {
            let path = format!("{}/nodes/{node}", metrics::api(version));
            let metrics: NodeMetrics = metrics::get(&ctx.client, &path)
                .await
                .with_context(|| format!("GET {path}"))?;
            ensure!(
                metrics.metadata.name == *node,
                "GET {path} returned node {:?}",
                metrics.metadata.name
            );
            metrics::usage(&metrics.usage, "cpu")?;
            metrics::usage(&metrics.usage, "memory")?;
        }
        Ok(())
    }))
}

/// Every (version, node) pair, to ask each version about each node.
fn by_version(nodes: &[String]) -> Vec<(&'static str, String)> {
    VERSIONS
        .iter()
        .flat_map(|v| nodes.iter().map(move |n| (*v, n.clone())))
        .collect()
}

fn cpu_is_accurate(ctx: &Ctx) -> CaseFuture<'_> {
    Box::pin(eventually_get(|| async {
        let pod = ctx.pod_metrics(CPU_CONSUMER).await?;
        ensure!(
            pod.containers.len() == 1,
            "want 1 container, got {:?}",
            container_names(&pod)
        );
        let cpu = pod.containers[0].cpu_millis()?;
        ensure!(
            (40..=60).contains(&cpu),
            "cpu-consumer uses {cpu}m CPU, want 50m ± 10m"
        );
        Ok(())
    }))
}

fn memory_is_accurate(ctx: &Ctx) -> CaseFuture<'_> {
    Box::pin(eventually_get(|| async {
        let pod = ctx.pod_metrics(MEMORY_CONSUMER).await?;
        ensure!(
            pod.containers.len() == 1,
            "want 1 container, got {:?}",
            container_names(&pod)
        );
        let mem = pod.containers[0].memory_mebibytes()?;
        ensure!(
            (45..=55).contains(&mem),
            "memory-consumer uses {mem}Mi memory, want 50Mi ± 5Mi"
        );
        Ok(())
    }))
}

fn init_container_is_not_reported(ctx: &Ctx) -> CaseFuture<'_> {
    Box::pin(eventually_get(|| async {
        let pod = ctx.pod_metrics(INIT_CONSUMER).await?;
        ensure!(
            container_names(&pod) == [INIT_CONSUMER],
            "want exactly container {INIT_CONSUMER}, got {:?}",
            container_names(&pod)
        );
        ensure_non_zero(&pod)
    }))
}

fn sidecar_pod_reports_both(ctx: &Ctx) -> CaseFuture<'_> {
    Box::pin(eventually_get(|| async {
        let pod = ctx.pod_metrics(SIDECAR_CONSUMER).await?;
        ensure!(
            pod.containers.len() == 2,
            "want 2 containers, got {:?}",
            container_names(&pod)
        );
        ensure_non_zero(&pod)
    }))
}

/// Upstream wants exactly 2 containers (main + native sidecar), but KWOK's simulated kubelet never
/// reports init containers, restartable ones included. So: what metrics-server serves must be exactly what
/// the (simulated) kubelet exposes for the pod, and the main container must be there and non-zero. On a
/// real kubelet (which exposes the sidecar) this is upstream's assertion.
fn init_sidecar_matches_kubelet(ctx: &Ctx) -> CaseFuture<'_> {
    Box::pin(async move {
        let kubelet_containers =
            eventually_get(|| kubelet_containers_of(ctx, INIT_SIDECAR_CONSUMER)).await?;
        let sidecar_exposed = kubelet_containers.contains("initsidecar-container");
        eventually_get(|| async {
            let pod = ctx.pod_metrics(INIT_SIDECAR_CONSUMER).await?;
            let served: BTreeSet<String> = container_names(&pod).into_iter().collect();
            ensure!(
                served == kubelet_containers,
                "metrics-server reports containers {served:?}, the kubelet exposes {kubelet_containers:?}"
            );
            let main = pod
                .containers
                .iter()
                .find(|c| c.name == INIT_SIDECAR_CONSUMER)
                .ok_or_else(|| anyhow!("main container {INIT_SIDECAR_CONSUMER} missing"))?;
            ensure!(
                main.cpu_millis()? != 0 && main.memory_mebibytes()? != 0,
                "main container has zero usage: {:?}",
                main.usage
            );
            Ok(())
        })
        .await?;
        if !sidecar_exposed {
            println!(
                "   note: KWOK's simulated kubelet does not expose init containers, native sidecars included \
                 (a KWOK limitation), so upstream's \"exactly 2 containers\" half of J#7 cannot be checked here; \
                 the kubelet exposes {kubelet_containers:?}"
            );
        }
        Ok(())
    })
}

/// The containers the node's kubelet endpoint (KWOK's, found through the node's
/// `metrics.k8s.io/resource-metrics-path` annotation and kubelet port) reports for `default/<pod>`.
async fn kubelet_containers_of(ctx: &Ctx, pod_name: &str) -> Result<BTreeSet<String>> {
    let pod = Api::<Pod>::namespaced(ctx.client.clone(), NS)
        .get(pod_name)
        .await?;
    let node_name = pod
        .spec
        .and_then(|s| s.node_name)
        .ok_or_else(|| anyhow!("pod {pod_name} is not scheduled"))?;
    let node = Api::<Node>::all(ctx.client.clone()).get(&node_name).await?;
    let path = node
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("metrics.k8s.io/resource-metrics-path"))
        .cloned()
        .unwrap_or_else(|| "/metrics/resource".to_owned());
    let status = node.status.unwrap_or_default();
    let port = status
        .daemon_endpoints
        .and_then(|d| d.kubelet_endpoint)
        .map_or(10250, |e| e.port);
    let host = status
        .addresses
        .unwrap_or_default()
        .into_iter()
        .find(|a| a.type_ == "InternalIP")
        .map_or_else(|| "127.0.0.1".to_owned(), |a| a.address);
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };

    let https_url = format!("https://{host}:{port}{path}");
    let body = match ctx.https.get_ok(&https_url).await {
        Ok(body) => body,
        // A kubelet endpoint served over plain HTTP is tried too before giving up.
        Err(https_err) => ctx
            .https
            .get_ok(&format!("http://{host}:{port}{path}"))
            .await
            .map_err(|http_err| anyhow!("{https_err:#}; over plain HTTP: {http_err:#}"))?,
    };
    let samples = prom::parse_samples(&body).map_err(|e| anyhow!("parsing {https_url}: {e}"))?;
    let containers: BTreeSet<String> = samples
        .iter()
        .filter(|s| {
            s.name == "container_cpu_usage_seconds_total"
                || s.name == "container_memory_working_set_bytes"
        })
        .filter(|s| {
            s.labels.get("namespace").map(String::as_str) == Some(NS)
                && s.labels.get("pod").map(String::as_str) == Some(pod_name)
        })
        .filter_map(|s| s.labels.get("container").cloned())
        .collect();
    ensure!(
        !containers.is_empty(),
        "{https_url} reports no container of {NS}/{pod_name}"
    );
    Ok(containers)
}

fn container_names(pod: &PodMetrics) -> Vec<String> {
    pod.containers.iter().map(|c| c.name.clone()).collect()
}

fn ensure_non_zero(pod: &PodMetrics) -> Result<()> {
    for c in &pod.containers {
        ensure!(
            c.cpu_millis()? != 0,
            "container {} has zero CPU: {:?}",
            c.name,
            c.usage
        );
        ensure!(
            c.memory_mebibytes()? != 0,
            "container {} has zero memory: {:?}",
            c.name,
            c.usage
        );
    }
    Ok(())
}

fn readyz_is_exact(ctx: &Ctx) -> CaseFuture<'_> {
    Box::pin(probe_is_exact(ctx, "/readyz", READYZ_VERBOSE))
}

fn livez_is_exact(ctx: &Ctx) -> CaseFuture<'_> {
    Box::pin(probe_is_exact(ctx, "/livez", LIVEZ_VERBOSE))
}

async fn probe_is_exact(ctx: &Ctx, path: &str, want: &str) -> Result<()> {
    eventually_get(|| async {
        let url = format!("{}{path}?verbose&", ctx.server);
        let response = ctx.https.get(&url).await?;
        ensure!(
            response.status == 200 && response.body == want,
            "GET {url}: HTTP {}, body {:?}, want HTTP 200 and body {want:?}",
            response.status,
            truncate(&response.body, 1000)
        );
        Ok(())
    })
    .await
}

fn self_metrics_are_exact(ctx: &Ctx) -> CaseFuture<'_> {
    Box::pin(eventually_get(|| async {
        let url = format!("{}/metrics", ctx.server);
        let body = ctx.https.get_ok(&url).await?;
        let ours: Vec<String> = prom::family_names(&body)
            .into_iter()
            .filter(|n| n.starts_with("metrics_server_"))
            .collect();
        ensure!(
            ours == SELF_METRICS,
            "GET {url}: metrics_server_ families {ours:?}, want {SELF_METRICS:?}"
        );
        Ok(())
    }))
}

fn skipped_nodes_are_not_found(ctx: &Ctx) -> CaseFuture<'_> {
    Box::pin(async move {
        ensure!(
            !ctx.skipped_nodes.is_empty(),
            "no node is labelled {SKIP_LABEL}=true, so the node-selector cannot be checked"
        );
        eventually_get(|| async {
            for (version, node) in &by_version(&ctx.skipped_nodes) {
                let path = format!("{}/nodes/{node}", metrics::api(version));
                match metrics::get::<NodeMetrics>(&ctx.client, &path).await {
                    Ok(_) => {
                        bail!("GET {path} returned metrics for a node excluded by --node-selector")
                    }
                    Err(err) if metrics::not_found(&err) => {}
                    Err(err) => bail!("GET {path}: want 404, got {err}"),
                }
            }
            Ok(())
        })
        .await
    })
}

// === kubectl ===

/// Runs `kubectl top <args>` with request logging and checks it read metrics.k8s.io `version` only.
async fn top(kubectl: &Kubectl, args: &[&str], version: &str) -> Result<Table> {
    let args: Vec<&str> = ["top"]
        .iter()
        .chain(args)
        .chain(&["-v=6"])
        .copied()
        .collect();
    let (out, log) = kubectl.run_with_log(&args).await?;
    let requested = metrics_versions_requested(&log);
    ensure!(
        requested == [version],
        "{} {args:?} read metrics.k8s.io versions {requested:?}, want only {version}",
        kubectl.binary()
    );
    Table::parse(&out)
}

fn kubectl_top_nodes(ctx: &Ctx) -> CaseFuture<'_> {
    Box::pin(eventually_get(|| top_nodes(ctx, &ctx.kubectl, "v1")))
}

fn kubectl_old_top_nodes(ctx: &Ctx) -> CaseFuture<'_> {
    Box::pin(async move {
        let kubectl = ctx.old_kubectl()?;
        eventually_get(|| top_nodes(ctx, kubectl, "v1beta1")).await
    })
}

async fn top_nodes(ctx: &Ctx, kubectl: &Kubectl, version: &str) -> Result<()> {
    let table = top(kubectl, &["nodes"], version).await?;
    ensure!(
        table.header.first().map(String::as_str) == Some("NAME"),
        "header {:?}",
        table.header
    );
    let cpu = table.column("CPU(cores)")?;
    let mem = table.column("MEMORY(bytes)")?;
    let cpu_pct = table.column("CPU(%)").or_else(|_| table.column("CPU%"))?;
    let mem_pct = table
        .column("MEMORY(%)")
        .or_else(|_| table.column("MEMORY%"))?;
    for node in &ctx.served_nodes {
        let row = table
            .rows_where(0, node)
            .next()
            .ok_or_else(|| anyhow!("no row for node {node} in {:?}", table.rows))?;
        let cell = |i: usize| row.get(i).map(String::as_str).unwrap_or_default();
        ensure!(
            parse_millicores(cell(cpu)).is_some_and(|m| m > 0)
                && parse_mebibytes(cell(mem)).is_some_and(|m| m > 0)
                && parse_percent(cell(cpu_pct)).is_some()
                && parse_percent(cell(mem_pct)).is_some(),
            "row for {node} is not usage: {row:?}"
        );
    }
    for node in &ctx.skipped_nodes {
        let row = table.rows_where(0, node).next().ok_or_else(|| {
            anyhow!(
                "no <unknown> row for skipped node {node} in {:?}",
                table.rows
            )
        })?;
        ensure!(
            row.len() > 1 && row[1..].iter().all(|c| c == "<unknown>"),
            "skipped node {node} should show <unknown>: {row:?}"
        );
    }
    Ok(())
}

fn kubectl_top_pods_all(ctx: &Ctx) -> CaseFuture<'_> {
    Box::pin(eventually_get(|| top_pods_all(&ctx.kubectl, "v1")))
}

fn kubectl_old_top_pods_all(ctx: &Ctx) -> CaseFuture<'_> {
    Box::pin(async move {
        let kubectl = ctx.old_kubectl()?;
        eventually_get(|| top_pods_all(kubectl, "v1beta1")).await
    })
}

async fn top_pods_all(kubectl: &Kubectl, version: &str) -> Result<()> {
    let table = top(kubectl, &["pods", "-A"], version).await?;
    let (ns, name, cpu) = (
        table.column("NAMESPACE")?,
        table.column("NAME")?,
        table.column("CPU(cores)")?,
    );
    table.column("MEMORY(bytes)")?;
    let row = table
        .rows
        .iter()
        .find(|r| {
            r.get(ns).map(String::as_str) == Some(NS)
                && r.get(name).map(String::as_str) == Some(CPU_CONSUMER)
        })
        .ok_or_else(|| {
            anyhow!(
                "no row for {NS}/{CPU_CONSUMER} among {} rows",
                table.rows.len()
            )
        })?;
    let millis = row.get(cpu).and_then(|c| parse_millicores(c));
    ensure!(
        millis.is_some_and(|m| (40..=60).contains(&m)),
        "{NS}/{CPU_CONSUMER} CPU cell {:?}, want 40m to 60m",
        row.get(cpu)
    );
    Ok(())
}

fn kubectl_top_pod_containers(ctx: &Ctx) -> CaseFuture<'_> {
    Box::pin(eventually_get(|| async {
        let out = ctx
            .kubectl
            .run(&["top", "pod", CPU_CONSUMER, "--containers", "-n", NS])
            .await?;
        let table = Table::parse(&out)?;
        ensure!(
            table.header == ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"],
            "header {:?}",
            table.header
        );
        ensure!(
            table.rows.len() == 1,
            "want one container row, got {:?}",
            table.rows
        );
        let row = &table.rows[0];
        ensure!(
            row.len() == 4
                && row[0] == CPU_CONSUMER
                && row[1] == CPU_CONSUMER
                && parse_millicores(&row[2]).is_some_and(|m| (40..=60).contains(&m))
                && parse_mebibytes(&row[3]).is_some(),
            "row {row:?}, want [{CPU_CONSUMER}, {CPU_CONSUMER}, 40m-60m, <n>Mi]"
        );
        Ok(())
    }))
}

fn kubectl_get_nodemetrics(ctx: &Ctx) -> CaseFuture<'_> {
    Box::pin(eventually_get(|| async {
        let table = Table::parse(&ctx.kubectl.run(&["get", "nodemetrics"]).await?)?;
        ensure!(
            table.header == ["NAME", "CPU", "MEMORY", "WINDOW"],
            "header {:?}",
            table.header
        );
        let names: Vec<&str> = table
            .rows
            .iter()
            .filter_map(|r| r.first().map(String::as_str))
            .collect();
        ensure!(
            names == ctx.served_nodes,
            "rows {names:?}, want the kept nodes {:?}",
            ctx.served_nodes
        );
        for row in &table.rows {
            ensure!(
                row.len() == 4
                    && row[1]
                        .parse::<metrics_server_e2e::quantity::Quantity>()
                        .is_ok()
                    && row[2]
                        .parse::<metrics_server_e2e::quantity::Quantity>()
                        .is_ok()
                    && row[3].ends_with('s'),
                "row {row:?} is not NAME CPU MEMORY WINDOW"
            );
        }
        Ok(())
    }))
}

fn kubectl_get_podmetrics(ctx: &Ctx) -> CaseFuture<'_> {
    Box::pin(eventually_get(|| async {
        let table = Table::parse(&ctx.kubectl.run(&["get", "podmetrics", "-n", NS]).await?)?;
        ensure!(
            table.header == ["NAME", "CPU", "MEMORY", "WINDOW"],
            "header {:?}",
            table.header
        );
        let names: BTreeSet<&str> = table
            .rows
            .iter()
            .filter_map(|r| r.first().map(String::as_str))
            .collect();
        let missing: Vec<&str> = CONSUMERS
            .iter()
            .copied()
            .filter(|c| !names.contains(c))
            .collect();
        ensure!(
            missing.is_empty(),
            "no rows for {missing:?}; rows: {names:?}"
        );
        Ok(())
    }))
}

// === APIService, HPA, loopback ===

fn apiservice_is_available(ctx: &Ctx) -> CaseFuture<'_> {
    Box::pin(eventually_get(|| async {
        for version in VERSIONS {
            apiservice_available(ctx, &format!("{version}.metrics.k8s.io")).await?;
        }
        Ok(())
    }))
}

async fn apiservice_available(ctx: &Ctx, name: &str) -> Result<()> {
    let apiservice = Api::<APIService>::all(ctx.client.clone())
        .get(name)
        .await
        .with_context(|| format!("reading APIService {name}"))?;
    let conditions = apiservice
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default();
    let available = conditions
        .iter()
        .find(|c| c.type_ == "Available")
        .ok_or_else(|| anyhow!("no Available condition"))?;
    ensure!(
        available.status == "True",
        "{name}: Available={} reason={:?} message={:?}",
        available.status,
        available.reason,
        available.message
    );
    Ok(())
}

// === Versions and wire formats ===

/// The paths (below `/apis/metrics.k8s.io/<version>`) and kinds compared across versions.
fn version_paths(ctx: &Ctx) -> Vec<(String, &'static str)> {
    vec![
        ("/nodes".to_owned(), "NodeMetricsList"),
        (format!("/nodes/{}", ctx.served_nodes[0]), "NodeMetrics"),
        (format!("/namespaces/{NS}/pods"), "PodMetricsList"),
        (
            format!("/namespaces/{NS}/pods/{CPU_CONSUMER}"),
            "PodMetrics",
        ),
    ]
}

fn versions_agree_in_json_and_protobuf(ctx: &Ctx) -> CaseFuture<'_> {
    Box::pin(eventually_get(|| async {
        for (path, kind) in version_paths(ctx) {
            // Two back-to-back rounds may straddle a scrape; the retry covers that.
            json_agrees(ctx, &path, kind).await?;
            yaml_agrees(ctx, &path, kind).await?;
            protobuf_agrees(ctx, &path, kind).await?;
        }
        Ok(())
    }))
}

/// v1's JSON is v1beta1's byte for byte once its `apiVersion` is renamed, and names `kind`.
async fn json_agrees(ctx: &Ctx, path: &str, kind: &str) -> Result<()> {
    let mut bodies = Vec::new();
    for version in VERSIONS {
        let full = format!("{}{path}", metrics::api(version));
        let got = ctx.raw(&full, "application/json").await?;
        ensure!(
            got.status == 200 && got.content_type == "application/json",
            "GET {full}: {} {:?}: {}",
            got.status,
            got.content_type,
            truncate(&got.body, 300)
        );
        let value: Value =
            serde_json::from_str(&got.body).with_context(|| format!("GET {full}"))?;
        ensure!(
            value["apiVersion"] == format!("metrics.k8s.io/{version}") && value["kind"] == kind,
            "GET {full}: apiVersion {} kind {}, want metrics.k8s.io/{version} {kind}",
            value["apiVersion"],
            value["kind"]
        );
        bodies.push(got.body);
    }
    let renamed = bodies[0].replace(
        "\"apiVersion\":\"metrics.k8s.io/v1\"",
        "\"apiVersion\":\"metrics.k8s.io/v1beta1\"",
    );
    ensure!(
        renamed == bodies[1],
        "{path} in JSON: v1 and v1beta1 differ beyond apiVersion:\n  v1:      {}\n  v1beta1: {}",
        truncate(&bodies[0], 400),
        truncate(&bodies[1], 400)
    );
    Ok(())
}

/// `Accept: application/yaml` gets YAML in both versions (go-yaml's sorted keys put `apiVersion`
/// on the first line), equal but for that line.
async fn yaml_agrees(ctx: &Ctx, path: &str, kind: &str) -> Result<()> {
    let mut bodies = Vec::new();
    for version in VERSIONS {
        let full = format!("{}{path}", metrics::api(version));
        let got = ctx.raw(&full, "application/yaml").await?;
        ensure!(
            got.status == 200 && got.content_type == "application/yaml",
            "GET {full} (YAML): {} {:?}: {}",
            got.status,
            got.content_type,
            truncate(&got.body, 300)
        );
        let first = format!("apiVersion: metrics.k8s.io/{version}\n");
        ensure!(
            got.body.starts_with(&first) && got.body.contains(&format!("\nkind: {kind}\n")),
            "GET {full} (YAML) does not start with {first:?} or lacks kind {kind}: {}",
            truncate(&got.body, 300)
        );
        bodies.push(got.body[first.len()..].to_owned());
    }
    ensure!(
        bodies[0] == bodies[1],
        "{path} in YAML: v1 and v1beta1 differ beyond apiVersion"
    );
    Ok(())
}

/// Protobuf-first requests get protobuf in both versions: the envelope names the version and `kind`,
/// and the object bytes inside are identical.
async fn protobuf_agrees(ctx: &Ctx, path: &str, kind: &str) -> Result<()> {
    let mut raws = Vec::new();
    for version in VERSIONS {
        let full = format!("{}{path}", metrics::api(version));
        let got = ctx.raw(&full, PROTOBUF_FIRST).await?;
        ensure!(
            got.status == 200 && got.content_type == PROTOBUF,
            "GET {full} (protobuf-first): {} {:?}",
            got.status,
            got.content_type
        );
        let envelope = wire::parse(&got.bytes).with_context(|| format!("GET {full}"))?;
        ensure!(
            envelope.api_version == format!("metrics.k8s.io/{version}") && envelope.kind == kind,
            "GET {full}: envelope names {} {}, want metrics.k8s.io/{version} {kind}",
            envelope.api_version,
            envelope.kind
        );
        raws.push(envelope.raw);
    }
    ensure!(
        raws[0] == raws[1],
        "{path} in protobuf: the v1 and v1beta1 objects differ ({} and {} bytes)",
        raws[0].len(),
        raws[1].len()
    );
    Ok(())
}

fn hpa_scales_up_and_down(ctx: &Ctx) -> CaseFuture<'_> {
    Box::pin(async move {
        let namespaces = Api::<Namespace>::all(ctx.client.clone());
        delete_ignoring_absent(&namespaces, HPA_NS).await?;
        eventually(Duration::from_secs(180), Duration::from_secs(3), || async {
            ensure!(
                namespaces.get_opt(HPA_NS).await?.is_none(),
                "leftover namespace {HPA_NS} is still terminating"
            );
            Ok(())
        })
        .await?;
        let result = hpa_round_trip(ctx).await;
        // Always clean up; a failure to do so is only worth a note.
        if let Err(err) = delete_ignoring_absent(&namespaces, HPA_NS).await {
            println!("   note: could not delete namespace {HPA_NS}: {err:#}");
        }
        result
    })
}

async fn hpa_round_trip(ctx: &Ctx) -> Result<()> {
    namespace::create_ready(&ctx.client, HPA_NS).await?;
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": HPA_NAME, "namespace": HPA_NS},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": HPA_NAME}},
            "template": {
                "metadata": {"labels": {"app": HPA_NAME}, "annotations": {"kwok.x-k8s.io/usage-cpu": "150m"}},
                "spec": {
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                        {"matchExpressions": [{"key": SKIP_LABEL, "operator": "DoesNotExist"}]}
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
        "metadata": {"name": HPA_NAME, "namespace": HPA_NS},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": HPA_NAME},
            "minReplicas": 1,
            "maxReplicas": 5,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}],
            "behavior": {"scaleUp": {"stabilizationWindowSeconds": 0}, "scaleDown": {"stabilizationWindowSeconds": 0}}
        }
    }))?;
    let hpas = Api::<HorizontalPodAutoscaler>::namespaced(ctx.client.clone(), HPA_NS);
    hpas.create(&PostParams::default(), &hpa)
        .await
        .context("creating the HPA")?;

    let peak = eventually(Duration::from_secs(180), POLL_INTERVAL, || async {
        let hpa = hpas.get(HPA_NAME).await?;
        let desired = hpa.status.as_ref().map_or(0, |s| s.desired_replicas);
        ensure!(
            desired > 1,
            "scale-up: desiredReplicas {desired}; {}",
            hpa_summary(&hpa)
        );
        Ok(desired)
    })
    .await?;
    println!("   note: the HPA scaled up to {peak} replicas");

    let selector = format!("app={HPA_NAME}");
    eventually(Duration::from_secs(240), POLL_INTERVAL, || async {
        // Pod annotations are read live by KWOK; new pods start from the template's 150m, so re-annotate
        // on every poll.
        ctx.kubectl
            .run(&[
                "annotate",
                "--overwrite",
                "pods",
                "-n",
                HPA_NS,
                "-l",
                &selector,
                "kwok.x-k8s.io/usage-cpu=10m",
            ])
            .await?;
        let hpa = hpas.get(HPA_NAME).await?;
        let desired = hpa.status.as_ref().map_or(0, |s| s.desired_replicas);
        ensure!(
            desired == 1,
            "scale-down: desiredReplicas {desired}; {}",
            hpa_summary(&hpa)
        );
        Ok(())
    })
    .await
}

fn hpa_summary(hpa: &HorizontalPodAutoscaler) -> String {
    let Some(status) = &hpa.status else {
        return "no status yet".to_owned();
    };
    let metrics = serde_json::to_string(&status.current_metrics).unwrap_or_default();
    let conditions: Vec<String> = status
        .conditions
        .iter()
        .flatten()
        .map(|c| {
            format!(
                "{}={} ({}: {})",
                c.type_,
                c.status,
                c.reason.as_deref().unwrap_or(""),
                c.message.as_deref().unwrap_or("")
            )
        })
        .collect();
    format!(
        "currentReplicas {:?}, currentMetrics {metrics}, conditions [{}]",
        status.current_replicas,
        conditions.join("; ")
    )
}

fn connections_stay_on_loopback(_ctx: &Ctx) -> CaseFuture<'_> {
    Box::pin(async move {
        let output = tokio::process::Command::new("ss")
            .args(["-tnpH", "state", "established"])
            .output()
            .await
            .context("running ss (iproute2)")?;
        ensure!(
            output.status.success(),
            "ss -tnpH state established: {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
        let connections = ss::parse_ss(&String::from_utf8_lossy(&output.stdout));
        let report = ss::check_loopback(&connections, ss::CLUSTER_PROCESSES);
        ensure!(
            report.matched > 0,
            "ss shows no established connection of {:?} ({} connections in all); the check could not run \
             (is ss allowed to see other processes' sockets?)",
            ss::CLUSTER_PROCESSES,
            connections.len()
        );
        ensure!(
            report.violations.is_empty(),
            "{} of {} connections leave loopback: {}",
            report.violations.len(),
            report.matched,
            report.violations.join(", ")
        );
        println!(
            "   note: {} connection(s) of the cluster's processes checked, all on loopback",
            report.matched
        );
        Ok(())
    })
}

// === Hostile clients ===

/// An anonymous list with a label selector of about 60 KB (just under the 64 KiB query bound),
/// varied per request so that no authorization cache entry can answer it.
fn selector_bomb(n: usize) -> String {
    let mut selector = format!("bomb{n}");
    let mut i = 0;
    while selector.len() < 60_000 {
        selector.push_str(&format!(",k{i}"));
        i += 1;
    }
    format!("{API}/pods?labelSelector={selector}")
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let i = (sorted.len() * p).div_ceil(100).saturating_sub(1);
    sorted.get(i).copied().unwrap_or_default()
}

fn livez_stays_fast_under_attack(ctx: &Ctx) -> CaseFuture<'_> {
    Box::pin(async move {
        let addr = ctx
            .server
            .strip_prefix("https://")
            .context("server URL")?
            .to_owned();
        // Connections that never start their TLS handshake (the server drops them after 10 s).
        let mut stalled = Vec::with_capacity(1000);
        for _ in 0..1000 {
            stalled.push(tokio::net::TcpStream::connect(&addr).await?);
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut attackers = Vec::new();
        for a in 0..20 {
            let (stop, server) = (stop.clone(), ctx.server.clone());
            let client = InsecureClient::new(None)?;
            attackers.push(tokio::spawn(async move {
                let mut statuses = Vec::new();
                let mut n = a * 1_000_000;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let status = client
                        .get(&format!("{server}{}", selector_bomb(n)))
                        .await
                        .map_or(0, |r| r.status);
                    statuses.push(status);
                    n += 1;
                }
                statuses
            }));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut latencies = Vec::new();
        for _ in 0..100 {
            let start = Instant::now();
            let response = ctx.https.get(&format!("{}/livez", ctx.server)).await?;
            latencies.push(start.elapsed());
            ensure!(
                response.status == 200,
                "/livez answered {}",
                response.status
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut statuses = Vec::new();
        for attacker in attackers {
            statuses.extend(attacker.await?);
        }
        drop(stalled);
        latencies.sort();
        let (p50, p95) = (percentile(&latencies, 50), percentile(&latencies, 95));
        let forbidden = statuses.iter().filter(|s| **s == 403).count();
        println!(
            "   /livez p50 {p50:?}, p95 {p95:?}; {} attack requests, {forbidden} answered 403",
            statuses.len()
        );
        ensure!(!statuses.is_empty(), "no attack request finished");
        ensure!(
            forbidden == statuses.len(),
            "attack answers other than 403: {:?}",
            statuses
                .iter()
                .filter(|s| **s != 403)
                .take(10)
                .collect::<Vec<_>>()
        );
        ensure!(
            p95 < Duration::from_millis(100),
            "/livez p95 {p95:?} is over 100ms"
        );
        Ok(())
    })
}
