//! Control-plane faults on the local cluster: kube-apiserver down for 30 s, etcd restarted, and our
//! server killed with SIGKILL. Each fault is injected by killing the real process and starting it
//! again exactly as kwokctl started it (see `metrics_server_e2e::procs`).
//!
//! What must hold:
//! * kube-apiserver down: the server keeps answering directly (x509 client certificates and
//!   `system:masters` need no call to kube-apiserver), with node metrics that stay fresh because
//!   the kubelets are still scraped; `/livez` stays healthy; once kube-apiserver is back, the
//!   watches resume (a pod created afterwards gets metrics) and the server never restarted.
//! * etcd restarted: the same recovery, without a restart of the server.
//! * SIGKILL: started again, the server is ready (`/readyz` 200) within two metric resolutions.
//!
//! Runs only against the cluster named by `E2E_KUBECONFIG` (`make e2e` runs it after the suite);
//! it disturbs that cluster, so never against one of your own.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use metrics_server_e2e::https::{Identity, InsecureClient, truncate};
use metrics_server_e2e::metrics::{self, API, List, NodeMetrics};
use metrics_server_e2e::procs::{self, Process};
use metrics_server_e2e::retry::eventually;
use metrics_server_e2e::route;
use metrics_server_e2e::runner::{self, Tally};
use serde_json::json;

const NS: &str = "default";
const SKIP_LABEL: &str = "metrics-server-skip";
/// How long kube-apiserver stays down.
const APISERVER_OUTAGE: Duration = Duration::from_secs(30);
/// The longest any case may run.
const CASE_TIMEOUT: Duration = Duration::from_secs(420);

fn main() -> ExitCode {
    runner::main("control-plane", |kubeconfig| async move {
        run(&kubeconfig).await
    })
}

type CaseFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'a>>;
type CaseFn = for<'a> fn(&'a Ctx) -> CaseFuture<'a>;

fn cases() -> Vec<(&'static str, CaseFn)> {
    vec![
        (
            "kube-apiserver down for 30s: metrics stay fresh and served, /livez healthy, watches resume, no restart",
            |ctx| Box::pin(apiserver_outage(ctx)),
        ),
        (
            "etcd restarted: the API recovers and new pods get metrics without a restart of the server",
            |ctx| Box::pin(etcd_restart(ctx)),
        ),
        (
            "metrics-server killed with SIGKILL and started again: ready within two resolutions",
            |ctx| Box::pin(server_sigkill(ctx)),
        ),
    ]
}

async fn run(kubeconfig: &Path) -> ExitCode {
    let filter = std::env::var(runner::FILTER_VAR).unwrap_or_default();
    let selected = match runner::select(cases(), &filter, |c| c.0) {
        Ok(selected) => selected,
        Err(reason) => {
            println!("control-plane: FAILED: {reason}");
            return ExitCode::FAILURE;
        }
    };
    let ctx = match Ctx::discover(kubeconfig).await {
        Ok(ctx) => ctx,
        Err(err) => {
            println!("control-plane: FAILED: no usable cluster: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "control-plane: metrics-server at {}, cluster folder {}, nodes {:?}",
        ctx.server,
        ctx.cluster.display(),
        ctx.served_nodes
    );
    let mut tally = Tally::new();
    for (name, case) in &selected {
        let start = Instant::now();
        let result = tokio::time::timeout(CASE_TIMEOUT, case(&ctx))
            .await
            .unwrap_or_else(|_| Err(anyhow!("did not finish within {CASE_TIMEOUT:?}")));
        tally.case(name, &result);
        println!("   ({:.1}s)", start.elapsed().as_secs_f64());
    }
    println!("{}", tally.summary());
    if tally.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

struct Ctx {
    client: kube::Client,
    https: InsecureClient,
    server: String,
    served_nodes: Vec<String>,
    /// The cluster's folder: every process of the cluster mentions it in its arguments.
    cluster: PathBuf,
}

impl Ctx {
    async fn discover(kubeconfig: &Path) -> Result<Self> {
        let cluster = procs::cluster_dir(kubeconfig)
            .context("the kubeconfig has no parent folder")?
            .canonicalize()
            .context("resolving the cluster folder")?;
        let config = runner::load_config(kubeconfig).await?;
        let identity = Identity::from_auth_info(&config.auth_info)?;
        let https = InsecureClient::new(identity.as_ref())?;
        let client = kube::Client::try_from(config).context("building the Kubernetes client")?;
        let server = route::metrics_server_url(&client).await?;
        let mut served_nodes: Vec<String> = Api::<Node>::all(client.clone())
            .list(&ListParams::default())
            .await
            .context("listing nodes")?
            .items
            .into_iter()
            .filter(|n| {
                n.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(SKIP_LABEL))
                    .is_none_or(|v| v != "true")
            })
            .filter_map(|n| n.metadata.name)
            .collect();
        served_nodes.sort();
        ensure!(!served_nodes.is_empty(), "no node is scraped");
        Ok(Self {
            client,
            https,
            server,
            served_nodes,
            cluster,
        })
    }

    fn process(&self, name: &str) -> Result<Process> {
        procs::find(name, &self.cluster.to_string_lossy())
    }

    /// Starts `process` again and records its new pid where kwokctl keeps them, so that
    /// `kwokctl delete cluster` stops the new process.
    fn respawn(&self, name: &str, process: &Process) -> Result<()> {
        let pid = process.respawn()?;
        let pid_file = self.cluster.join("pids").join(format!("{name}.pid"));
        if pid_file.exists() {
            std::fs::write(&pid_file, pid.to_string())
                .with_context(|| format!("writing {}", pid_file.display()))?;
        }
        Ok(())
    }

    /// The components that exit by design when they lose their leader lease during an outage
    /// (kube-scheduler, kube-controller-manager); a kubelet would start them again.
    fn leader_elected(&self) -> Result<Vec<(&'static str, Process)>> {
        ["kube-scheduler", "kube-controller-manager"]
            .into_iter()
            .map(|name| Ok((name, self.process(name)?)))
            .collect()
    }

    /// Starts again, as a supervisor would, those of `components` that exited.
    fn revive_exited(&self, components: &[(&'static str, Process)]) -> Result<()> {
        for (name, process) in components {
            if !procs::is_alive(process.pid) {
                println!("   {name} exited during the outage (leader lease lost); started again");
                self.respawn(name, process)?;
            }
        }
        Ok(())
    }

    /// Node name -> sample timestamp, asked of our server directly (not through the aggregator).
    async fn direct_node_timestamps(&self) -> Result<BTreeMap<String, String>> {
        let response = self
            .https
            .get(&format!("{}{API}/nodes", self.server))
            .await?;
        ensure!(
            response.status == 200,
            "GET {API}/nodes answered {}: {}",
            response.status,
            truncate(&response.body, 300)
        );
        let list: List<NodeMetrics> =
            serde_json::from_str(&response.body).context("decoding NodeMetricsList")?;
        Ok(list
            .items
            .into_iter()
            .map(|n| (n.metadata.name, n.timestamp.unwrap_or_default()))
            .collect())
    }

    async fn livez_ok(&self) -> Result<()> {
        let response = self.https.get(&format!("{}/livez", self.server)).await?;
        ensure!(
            response.status == 200,
            "/livez answered {}",
            response.status
        );
        Ok(())
    }

    async fn readyz_ok(&self) -> Result<()> {
        let response = self.https.get(&format!("{}/readyz", self.server)).await?;
        ensure!(
            response.status == 200,
            "/readyz answered {}",
            response.status
        );
        Ok(())
    }

    /// Waits until kube-apiserver answers again.
    async fn wait_for_apiserver(&self) -> Result<()> {
        eventually(Duration::from_secs(120), Duration::from_secs(1), || async {
            self.client
                .apiserver_version()
                .await
                .context("kube-apiserver not answering")?;
            Ok(())
        })
        .await
    }

    /// Creates a pod after the fault and waits until the metrics API (through the aggregator)
    /// serves it: proof that the pod watch resumed.
    async fn new_pod_gets_metrics(&self, name: &str) -> Result<()> {
        let pods = Api::<Pod>::namespaced(self.client.clone(), NS);
        let _ = pods.delete(name, &delete_now()).await;
        eventually(Duration::from_secs(60), Duration::from_secs(2), || async {
            ensure!(
                pods.get_opt(name).await?.is_none(),
                "old {name} still there"
            );
            Ok(())
        })
        .await?;
        pods.create(&PostParams::default(), &probe_pod(name)?)
            .await
            .with_context(|| format!("creating pod {name}"))?;
        let path = format!("{API}/namespaces/{NS}/pods/{name}");
        let served = eventually(Duration::from_secs(150), Duration::from_secs(3), || async {
            metrics::get::<serde_json::Value>(&self.client, &path)
                .await
                .map_err(|e| anyhow!("GET {path}: {e}"))
        })
        .await;
        let _ = pods.delete(name, &delete_now()).await;
        served.map(|_| ())
    }
}

fn delete_now() -> DeleteParams {
    DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::background()
    }
}

fn probe_pod(name: &str) -> Result<Pod> {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {"app.kubernetes.io/part-of": "metrics-server-e2e"}},
        "spec": {
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": SKIP_LABEL, "operator": "DoesNotExist"}]}
            ]}}},
            "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}],
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "probe", "image": "registry.k8s.io/pause:3.10"}],
        }
    }))
    .context("building the probe pod")
}

/// Checks that the server never restarted: the same process is still there.
fn same_server(ctx: &Ctx, before: &Process) -> Result<()> {
    let now = ctx.process("metrics-server")?;
    ensure!(
        now.pid == before.pid,
        "metrics-server restarted (pid {} -> {})",
        before.pid,
        now.pid
    );
    Ok(())
}

async fn apiserver_outage(ctx: &Ctx) -> Result<()> {
    let server = ctx.process("metrics-server")?;
    let before = eventually(Duration::from_secs(120), Duration::from_secs(2), || async {
        let now = ctx.direct_node_timestamps().await?;
        ensure!(
            ctx.served_nodes.iter().all(|n| now.contains_key(n)),
            "not every node has metrics before the fault: {now:?}"
        );
        Ok(now)
    })
    .await?;
    let supervised = ctx.leader_elected()?;
    let apiserver = ctx.process("kube-apiserver")?;
    apiserver.kill("KILL", Duration::from_secs(10))?;
    let outage = Instant::now();
    let during = watch_outage(ctx, &before).await;
    let restarted = ctx.respawn("kube-apiserver", &apiserver);
    println!(
        "   kube-apiserver was down {:.1}s",
        outage.elapsed().as_secs_f64()
    );
    let during = during?;
    restarted?;
    ctx.wait_for_apiserver().await?;
    println!("   during the outage: {during}");
    ctx.revive_exited(&supervised)?;
    ctx.new_pod_gets_metrics("cp-after-apiserver").await?;
    same_server(ctx, &server)
}

/// Polls our server while kube-apiserver is down; fails at once on a refused request. At the
/// end every node must carry a sample newer than before the outage.
async fn watch_outage(ctx: &Ctx, before: &BTreeMap<String, String>) -> Result<String> {
    let start = Instant::now();
    let mut polls = 0;
    let mut last = before.clone();
    while start.elapsed() < APISERVER_OUTAGE {
        tokio::time::sleep(Duration::from_secs(5)).await;
        ctx.livez_ok().await.context("during the outage")?;
        last = ctx
            .direct_node_timestamps()
            .await
            .context("during the outage")?;
        polls += 1;
    }
    for node in &ctx.served_nodes {
        let (Some(old), Some(new)) = (before.get(node), last.get(node)) else {
            bail!("node {node} lost its metrics during the outage: {last:?}");
        };
        // RFC 3339 UTC timestamps of one format compare in time order as strings.
        ensure!(
            new > old,
            "node {node} went stale during the outage: {old} then {new}"
        );
    }
    Ok(format!(
        "{polls} polls served all {} nodes, samples advanced",
        ctx.served_nodes.len()
    ))
}

async fn etcd_restart(ctx: &Ctx) -> Result<()> {
    let server = ctx.process("metrics-server")?;
    let supervised = ctx.leader_elected()?;
    let etcd = ctx.process("etcd")?;
    etcd.kill("KILL", Duration::from_secs(10))?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    ctx.respawn("etcd", &etcd)?;
    ctx.wait_for_apiserver().await?;
    // kube-apiserver answering /version is not yet etcd answering; listing is.
    eventually(Duration::from_secs(120), Duration::from_secs(2), || async {
        Api::<Node>::all(ctx.client.clone())
            .list(&ListParams::default())
            .await
            .context("listing nodes")?;
        Ok(())
    })
    .await?;
    ctx.revive_exited(&supervised)?;
    ctx.livez_ok().await?;
    ctx.new_pod_gets_metrics("cp-after-etcd").await?;
    same_server(ctx, &server)
}

async fn server_sigkill(ctx: &Ctx) -> Result<()> {
    let server = ctx.process("metrics-server")?;
    let resolution = server
        .flag("metric-resolution")
        .map_or(Ok(Duration::from_secs(60)), |r| parse_seconds(&r))?;
    server.kill("KILL", Duration::from_secs(10))?;
    let started = Instant::now();
    ctx.respawn("metrics-server", &server)?;
    let budget = resolution * 2;
    eventually(budget, Duration::from_millis(500), || ctx.readyz_ok())
        .await
        .with_context(|| format!("not ready within two resolutions ({budget:?})"))?;
    println!(
        "   ready {:.1}s after the restart (resolution {resolution:?})",
        started.elapsed().as_secs_f64()
    );
    let timestamps = ctx.direct_node_timestamps().await?;
    ensure!(
        ctx.served_nodes.iter().all(|n| timestamps.contains_key(n)),
        "not every node is served after the restart: {timestamps:?}"
    );
    Ok(())
}

/// `15s`, `1m`, `1m30s` as kwokctl writes `--metric-resolution`.
fn parse_seconds(text: &str) -> Result<Duration> {
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.chars() {
        match c {
            '0'..='9' => number.push(c),
            'h' | 'm' | 's' => {
                let n: u64 = number
                    .parse()
                    .with_context(|| format!("duration {text:?}"))?;
                total += n * match c {
                    'h' => 3600,
                    'm' => 60,
                    _ => 1,
                };
                number.clear();
            }
            _ => bail!("unsupported duration {text:?}"),
        }
    }
    ensure!(
        number.is_empty() && total > 0,
        "unsupported duration {text:?}"
    );
    Ok(Duration::from_secs(total))
}
