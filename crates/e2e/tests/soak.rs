//! The soak run (`make soak`): our server on the local cluster for a bounded time (default one hour)
//! under node and pod churn and a steady API load, sampling its resident memory, open file
//! descriptors and CPU time. After a warm-up, resident memory and descriptors must not drift by
//! more than 5 %, the process must never restart, and almost every API request must succeed.
//! The anonymous part of RSS (the heap) is reported on its own: most of a small server's RSS is
//! the binary's file-backed pages, so heap growth is easier to see there.
//!
//! Churn: a Deployment scaled through 10, 30, 5, 20 replicas every 15 s, and a simulated node added
//! and another removed every minute. Load: about five requests a second, alternating pod and node
//! lists through the aggregator and `/metrics` and node lists sent to the server directly.
//!
//! Variables: `SOAK_SECONDS` (default 3600), `SOAK_WARMUP_SECONDS` (600), `SOAK_SAMPLE_SECONDS` (30),
//! `SOAK_OUT` (folder for `samples.csv`). Runs only against the cluster named by `E2E_KUBECONFIG`.
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use metrics_server_e2e::https::{Identity, InsecureClient};
use metrics_server_e2e::metrics::{self, API};
use metrics_server_e2e::namespace;
use metrics_server_e2e::procs;
use metrics_server_e2e::route;
use metrics_server_e2e::runner::{self, Tally};
use serde_json::json;

const NS: &str = "soak";
const DEPLOYMENT: &str = "soak-churn";
const REPLICA_STEPS: [i32; 4] = [10, 30, 5, 20];
const CHURN_INTERVAL: Duration = Duration::from_secs(15);
const LOAD_INTERVAL: Duration = Duration::from_millis(200);
/// Allowed growth of memory and descriptors after the warm-up.
const MAX_DRIFT: f64 = 0.05;

fn env_secs(name: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

fn main() -> ExitCode {
    runner::main("soak", |kubeconfig| async move { run(&kubeconfig).await })
}

struct Ctx {
    client: kube::Client,
    https: InsecureClient,
    server: String,
    cluster: PathBuf,
}

/// Request counters of the load loop.
#[derive(Default)]
struct Load {
    ok: AtomicU64,
    failed: AtomicU64,
    churn_errors: AtomicU64,
}

/// One sample of the server process.
#[derive(Clone, Copy, Debug)]
struct Sample {
    at: Duration,
    rss_kib: u64,
    anon_kib: u64,
    fds: u64,
    cpu_ticks: u64,
}

async fn run(kubeconfig: &Path) -> ExitCode {
    let duration = env_secs("SOAK_SECONDS", 3600);
    let warmup = env_secs("SOAK_WARMUP_SECONDS", 600).min(duration / 2);
    let every = env_secs("SOAK_SAMPLE_SECONDS", 30).max(Duration::from_secs(1));
    let out = std::env::var_os("SOAK_OUT")
        .map_or_else(|| std::env::temp_dir().join("msrs-soak"), PathBuf::from);
    let ctx = match Ctx::discover(kubeconfig).await {
        Ok(ctx) => Arc::new(ctx),
        Err(err) => {
            println!("soak: FAILED: no usable cluster: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    let mut tally = Tally::new();
    let setup = setup(&ctx).await;
    tally.setup("namespace soak and Deployment soak-churn created", &setup);
    if setup.is_err() {
        println!("{}", tally.summary());
        return ExitCode::FAILURE;
    }
    println!(
        "soak: {}s with {}s warm-up, a sample every {}s; samples in {}",
        duration.as_secs(),
        warmup.as_secs(),
        every.as_secs(),
        out.display()
    );
    let result = soak(&ctx, duration, every, &out).await;
    tally.teardown("soak objects deleted", &teardown(&ctx).await);
    match result {
        Ok((samples, pid_changed, load)) => {
            judge(&mut tally, &samples, warmup, pid_changed, &load);
        }
        Err(err) => tally.case("the soak ran to its end", &Err(err)),
    }
    println!("{}", tally.summary());
    if tally.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

impl Ctx {
    async fn discover(kubeconfig: &Path) -> Result<Self> {
        let cluster = kubeconfig
            .parent()
            .context("the kubeconfig has no folder")?
            .canonicalize()?;
        let config = runner::load_config(kubeconfig).await?;
        let https = InsecureClient::new(Identity::from_auth_info(&config.auth_info)?.as_ref())?;
        let client = kube::Client::try_from(config)?;
        let server = route::metrics_server_url(&client).await?;
        Ok(Self {
            client,
            https,
            server,
            cluster,
        })
    }

    fn server_pid(&self) -> Result<u32> {
        Ok(procs::find("metrics-server", &self.cluster.to_string_lossy())?.pid)
    }
}

async fn setup(ctx: &Ctx) -> Result<()> {
    let namespaces = Api::<Namespace>::all(ctx.client.clone());
    if namespaces.get_opt(NS).await?.is_none() {
        namespace::create_ready(&ctx.client, NS).await?;
    }
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": DEPLOYMENT, "namespace": NS},
        "spec": {
            "replicas": REPLICA_STEPS[0],
            "selector": {"matchLabels": {"app": DEPLOYMENT}},
            "template": {
                "metadata": {"labels": {"app": DEPLOYMENT},
                             "annotations": {"kwok.x-k8s.io/usage-cpu": "20m", "kwok.x-k8s.io/usage-memory": "32Mi"}},
                "spec": {
                    "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}],
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"},
                                   {"name": "sidecar", "image": "registry.k8s.io/pause:3.10"}]
                }
            }
        }
    }))?;
    let deployments = Api::<Deployment>::namespaced(ctx.client.clone(), NS);
    if deployments.get_opt(DEPLOYMENT).await?.is_none() {
        deployments
            .create(&PostParams::default(), &deployment)
            .await?;
    }
    Ok(())
}

async fn teardown(ctx: &Ctx) -> Result<()> {
    let nodes = Api::<Node>::all(ctx.client.clone());
    for node in nodes.list(&Default::default()).await?.items {
        if let Some(name) = node.metadata.name.filter(|n| n.starts_with("soak-node-")) {
            nodes.delete(&name, &DeleteParams::default()).await?;
        }
    }
    Api::<Namespace>::all(ctx.client.clone())
        .delete(NS, &DeleteParams::default())
        .await?;
    Ok(())
}

fn soak_node(name: &str) -> Result<Node> {
    Ok(serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0",
                            "metrics.k8s.io/resource-metrics-path": format!("/metrics/nodes/{name}/metrics/resource")},
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": "kwok"}
        },
        "status": {
            "allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"},
            "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": "localhost"}]
        }
    }))?)
}

/// One churn step: scale the Deployment; every fourth step also add a node and drop the previous one.
async fn churn_step(ctx: &Ctx, step: usize) -> Result<()> {
    let replicas = REPLICA_STEPS[step % REPLICA_STEPS.len()];
    Api::<Deployment>::namespaced(ctx.client.clone(), NS)
        .patch(
            DEPLOYMENT,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": replicas}})),
        )
        .await?;
    if step.is_multiple_of(4) {
        let nodes = Api::<Node>::all(ctx.client.clone());
        let cycle = step / 4;
        nodes
            .create(
                &PostParams::default(),
                &soak_node(&format!("soak-node-{cycle}"))?,
            )
            .await?;
        if cycle > 0 {
            nodes
                .delete(
                    &format!("soak-node-{}", cycle - 1),
                    &DeleteParams::default(),
                )
                .await?;
        }
    }
    Ok(())
}

async fn load_request(ctx: &Ctx, n: u64) -> Result<()> {
    match n % 4 {
        0 => metrics::get::<serde_json::Value>(&ctx.client, &format!("{API}/pods"))
            .await
            .map(|_| ())
            .context("list pods"),
        1 => metrics::get::<serde_json::Value>(&ctx.client, &format!("{API}/nodes"))
            .await
            .map(|_| ())
            .context("list nodes"),
        2 => {
            let r = ctx.https.get(&format!("{}/metrics", ctx.server)).await?;
            ensure!(r.status == 200, "/metrics {}", r.status);
            Ok(())
        }
        _ => {
            let r = ctx.https.get(&format!("{}{API}/nodes", ctx.server)).await?;
            ensure!(r.status == 200, "nodes {}", r.status);
            Ok(())
        }
    }
}

fn sample(pid: u32, at: Duration) -> Result<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .with_context(|| format!("no {name} in /proc/{pid}/status"))
    };
    let (rss_kib, anon_kib) = (field("VmRSS:")?, field("RssAnon:")?);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command name.
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(Sample {
        at,
        rss_kib,
        anon_kib,
        fds,
        cpu_ticks: tick(11) + tick(12),
    })
}

type SoakOutcome = (Vec<Sample>, bool, Arc<Load>);

async fn soak(
    ctx: &Arc<Ctx>,
    duration: Duration,
    every: Duration,
    out: &Path,
) -> Result<SoakOutcome> {
    std::fs::create_dir_all(out)?;
    let csv_path = out.join("samples.csv");
    let mut csv = String::from("seconds,rss_kib,anon_kib,open_fds,cpu_ticks\n");
    let pid = ctx.server_pid()?;
    let load = Arc::new(Load::default());
    let start = Instant::now();
    let deadline = start + duration;

    let churn = {
        let (ctx, load) = (Arc::clone(ctx), Arc::clone(&load));
        tokio::spawn(async move {
            let mut step = 0;
            while Instant::now() + CHURN_INTERVAL < deadline {
                tokio::time::sleep(CHURN_INTERVAL).await;
                if let Err(err) = churn_step(&ctx, step).await {
                    load.churn_errors.fetch_add(1, Ordering::Relaxed);
                    println!("   churn step {step}: {err:#}");
                }
                step += 1;
            }
        })
    };
    let traffic = {
        let (ctx, load) = (Arc::clone(ctx), Arc::clone(&load));
        tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                let counter = match load_request(&ctx, n).await {
                    Ok(()) => &load.ok,
                    Err(_) => &load.failed,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                n += 1;
                tokio::time::sleep(LOAD_INTERVAL).await;
            }
        })
    };

    let mut samples = Vec::new();
    let mut pid_changed = false;
    while Instant::now() < deadline {
        tokio::time::sleep(every.min(deadline.saturating_duration_since(Instant::now()))).await;
        if !procs::is_alive(pid) {
            pid_changed = true;
            break;
        }
        let s = sample(pid, start.elapsed())?;
        csv.push_str(&format!(
            "{},{},{},{}\n",
            s.at.as_secs(),
            s.rss_kib,
            s.fds,
            s.cpu_ticks
        ));
        std::fs::write(&csv_path, &csv)?;
        if samples.len().is_multiple_of(10) {
            println!(
                "   {:>5}s rss {} KiB (anonymous {} KiB), {} fds, {} requests ok, {} failed",
                s.at.as_secs(),
                s.rss_kib,
                s.anon_kib,
                s.fds,
                load.ok.load(Ordering::Relaxed),
                load.failed.load(Ordering::Relaxed)
            );
        }
        samples.push(s);
    }
    churn.abort();
    traffic.abort();
    Ok((samples, pid_changed, load))
}

fn mean(values: impl Iterator<Item = u64>) -> f64 {
    let (sum, n) = values.fold((0u64, 0u64), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { sum as f64 / n as f64 }
}

/// Growth from the first third to the last third of the samples after the warm-up.
fn drift(samples: &[Sample], warmup: Duration, field: fn(&Sample) -> u64) -> Option<(f64, f64)> {
    let steady: Vec<&Sample> = samples.iter().filter(|s| s.at >= warmup).collect();
    let third = steady.len() / 3;
    if third == 0 {
        return None;
    }
    let first = mean(steady[..third].iter().map(|s| field(s)));
    let last = mean(steady[steady.len() - third..].iter().map(|s| field(s)));
    Some((first, last))
}

fn judge(tally: &mut Tally, samples: &[Sample], warmup: Duration, pid_changed: bool, load: &Load) {
    tally.case(
        "the server process never restarted",
        &if pid_changed {
            Err(anyhow::anyhow!("the metrics-server process went away"))
        } else {
            Ok(())
        },
    );
    if let Some((first, last)) = drift(samples, warmup, |s| s.anon_kib) {
        println!(
            "   anonymous RSS (reported, not judged): {first:.0} then {last:.0} KiB after the warm-up ({:+.1} %)",
            (last - first) / first.max(1.0) * 100.0
        );
    }
    for (what, field, slack) in [
        (
            "resident memory",
            (|s: &Sample| s.rss_kib) as fn(&Sample) -> u64,
            0.0,
        ),
        ("open file descriptors", |s: &Sample| s.fds, 2.0),
    ] {
        let result = match drift(samples, warmup, field) {
            None => Err(anyhow::anyhow!("too few samples after the warm-up")),
            Some((first, last)) => {
                let growth = if first > 0.0 {
                    (last - first) / first
                } else {
                    0.0
                };
                println!(
                    "   {what}: {first:.0} then {last:.0} after the warm-up ({:+.1} %)",
                    growth * 100.0
                );
                if growth <= MAX_DRIFT || last - first <= slack {
                    Ok(())
                } else {
                    Err(anyhow::anyhow!(
                        "{what} grew {:.1} % (limit 5 %)",
                        growth * 100.0
                    ))
                }
            }
        };
        tally.case(
            &format!("{what} drifts at most 5 % after the warm-up"),
            &result,
        );
    }
    let (ok, failed) = (
        load.ok.load(Ordering::Relaxed),
        load.failed.load(Ordering::Relaxed),
    );
    println!(
        "   requests: {ok} ok, {failed} failed; churn errors: {}",
        load.churn_errors.load(Ordering::Relaxed)
    );
    let answered = if ok > 0 && failed * 100 <= ok {
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "{failed} of {} requests failed",
            ok + failed
        ))
    };
    tally.case("at most 1 % of API requests fail", &answered);
    if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
        let secs = (last.at - first.at).as_secs_f64().max(1.0);
        // Linux reports CPU time in ticks of 1/100 s.
        let cpu = last.cpu_ticks.saturating_sub(first.cpu_ticks) as f64 / 100.0;
        println!("   CPU: {:.2} s per minute of soak", cpu / secs * 60.0);
    }
}
