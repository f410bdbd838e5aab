//! Sharded high availability on the local cluster (`make e2e`): three replicas of our binary as
//! processes on loopback ports, started with the primary's flags plus `--shard-by-lease`, the
//! APIService pointed at the first of them for the duration of the suite.
//!
//! The replicas authenticate to each other with a ServiceAccount token (checked by TokenReview
//! at the receiving replica). Scrapes are counted with each replica's own per-node request
//! histogram (`metrics_server_kubelet_request_duration_seconds_count{node}`); owners are checked
//! against the rendezvous assignment the replicas must compute. Everything stays on 127.0.0.0/8.
#![allow(clippy::print_stdout)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use metrics_server_e2e::https::{Identity, InsecureClient};
use metrics_server_e2e::prom;
use metrics_server_e2e::runner::{self, Tally};
use metrics_server_shard::Assignment;
use serde_json::{Value, json};

const GROUP: &str = "ha-e2e";
const NAMESPACE: &str = "kube-system";
const SERVICE_ACCOUNT: &str = "metrics-server-ha-e2e";
const LEASE: Duration = Duration::from_secs(6);
const APISERVICE: &str = "v1beta1.metrics.k8s.io";
const NODES_PATH: &str = "/apis/metrics.k8s.io/v1beta1/nodes";

#[path = "ha/hpa.rs"]
mod hpa;

fn main() -> ExitCode {
    runner::main("ha", |kubeconfig| async move { run(&kubeconfig).await })
}

struct Replica {
    id: String,
    port: u16,
    child: Option<tokio::process::Child>,
}

impl Replica {
    fn base(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

struct Ctx {
    client: kube::Client,
    https: InsecureClient,
    cluster: PathBuf,
    args: Vec<String>,
    token_file: PathBuf,
    resolution: Duration,
    replicas: Vec<Replica>,
    apiservice_port: Option<i32>,
}

async fn run(kubeconfig: &Path) -> ExitCode {
    let mut tally = Tally::new();
    let mut ctx = match setup(kubeconfig).await {
        Ok(ctx) => {
            tally.setup("three sharded replicas start and become ready", &Ok(()));
            ctx
        }
        Err(err) => {
            tally.setup("three sharded replicas start and become ready", &Err(err));
            println!("{}", tally.summary());
            return ExitCode::FAILURE;
        }
    };
    let filter = std::env::var(runner::FILTER_VAR).unwrap_or_default();
    let cases = [
        "every node is scraped once per tick across the group",
        "every replica answers every node and pod alike",
        "a killed replica's nodes are fresh again within resolution + lease",
        "an added replica takes its rendezvous share",
        "the HPA scales down through a replica kill, never missing a metric",
        "SIGTERM releases the Lease and exits cleanly",
    ];
    for (i, name) in cases.iter().enumerate() {
        if !name.contains(filter.as_str()) {
            continue;
        }
        let result = match i {
            0 => scraped_once_per_tick(&ctx).await.map(|_| ()),
            1 => answers_alike(&ctx).await,
            2 => killed_replica_taken_over(&mut ctx).await,
            3 => added_replica_rebalances(&mut ctx).await,
            4 => hpa::hpa_scales_through_a_kill(&mut ctx).await,
            _ => terminated_replica_releases_its_lease(&mut ctx).await,
        };
        tally.case(name, &result);
    }
    let down = teardown(&mut ctx).await;
    tally.teardown(
        "replicas stopped, Leases and the APIService restored",
        &down,
    );
    println!("{}", tally.summary());
    if tally.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

// === setup ===

async fn setup(kubeconfig: &Path) -> Result<Ctx> {
    let config = runner::load_config(kubeconfig).await?;
    let identity = Identity::from_auth_info(&config.auth_info)?;
    let https = InsecureClient::new(identity.as_ref())?;
    let client = kube::Client::try_from(config)?;
    let cluster = kubeconfig
        .parent()
        .ok_or_else(|| anyhow!("E2E_KUBECONFIG has no parent folder"))?
        .to_owned();
    let args = primary_args(&cluster)?;
    let resolution = args
        .iter()
        .find_map(|a| a.strip_prefix("--metric-resolution="))
        .map_or(Ok(Duration::from_secs(60)), parse_seconds)?;
    let token_file = cluster.join("ha-e2e-token");
    std::fs::write(&token_file, service_account_token(&client).await?)?;
    let mut ctx = Ctx {
        client,
        https,
        cluster,
        args,
        token_file,
        resolution,
        replicas: Vec::new(),
        apiservice_port: None,
    };
    for id in ["ha-0", "ha-1", "ha-2"] {
        start_replica(&mut ctx, id)?;
    }
    for i in 0..ctx.replicas.len() {
        wait_ready(&ctx, i, ctx.resolution * 4 + Duration::from_secs(30)).await?;
    }
    point_apiservice_at(&mut ctx, 0).await?;
    Ok(ctx)
}

fn parse_seconds(v: &str) -> Result<Duration> {
    let secs = v
        .strip_suffix('s')
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| anyhow!("--metric-resolution={v}: only whole seconds are supported here"))?;
    Ok(Duration::from_secs(secs))
}

/// The arguments of the metrics-server process kwokctl started, from its pid file.
fn primary_args(cluster: &Path) -> Result<Vec<String>> {
    let pid_file = cluster.join("pids").join("metrics-server.pid");
    let pid = std::fs::read_to_string(&pid_file)
        .with_context(|| format!("reading {}", pid_file.display()))?;
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", pid.trim()))?;
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .skip(1)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    ensure!(
        args.iter().any(|a| a.starts_with("--secure-port=")),
        "the primary's command line has no --secure-port= ({args:?})"
    );
    Ok(args)
}

async fn service_account_token(client: &kube::Client) -> Result<String> {
    let api = Api::<ServiceAccount>::namespaced(client.clone(), NAMESPACE);
    let sa = ServiceAccount {
        metadata: kube::api::ObjectMeta {
            name: Some(SERVICE_ACCOUNT.to_owned()),
            ..Default::default()
        },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &sa).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(e).context("creating the replicas' ServiceAccount"),
    }
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(7200),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = api
        .create_token_request(SERVICE_ACCOUNT, &PostParams::default(), &request)
        .await
        .context("requesting a ServiceAccount token")?;
    answer
        .status
        .map(|s| s.token)
        .ok_or_else(|| anyhow!("the TokenRequest has no status"))
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn start_replica(ctx: &mut Ctx, id: &str) -> Result<()> {
    let bin = std::fs::read_link(format!(
        "/proc/{}/exe",
        std::fs::read_to_string(ctx.cluster.join("pids/metrics-server.pid"))?.trim()
    ))?;
    let port = free_port()?;
    let mut args: Vec<String> = ctx
        .args
        .iter()
        .map(|a| {
            if a.starts_with("--secure-port=") {
                format!("--secure-port={port}")
            } else {
                a.clone()
            }
        })
        .collect();
    args.extend([
        "--shard-by-lease".to_owned(),
        format!("--shard-group={GROUP}"),
        format!("--shard-namespace={NAMESPACE}"),
        format!("--shard-identity={id}"),
        format!("--shard-peer-address=127.0.0.1:{port}"),
        format!("--shard-lease-duration={}s", LEASE.as_secs()),
        format!("--shard-peer-token-file={}", ctx.token_file.display()),
        format!("--shard-peer-allowed-users=system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"),
    ]);
    let log_path = ctx
        .cluster
        .join("logs")
        .join(format!("metrics-server-{id}.log"));
    let log = std::fs::File::create(&log_path)?;
    let child = tokio::process::Command::new(&bin)
        .args(&args)
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    println!(
        "  {id}: https://127.0.0.1:{port} (log {})",
        log_path.display()
    );
    ctx.replicas.push(Replica {
        id: id.to_owned(),
        port,
        child: Some(child),
    });
    Ok(())
}

async fn wait_ready(ctx: &Ctx, i: usize, within: Duration) -> Result<()> {
    let r = &ctx.replicas[i];
    let deadline = Instant::now() + within;
    loop {
        let answer = ctx.https.get(&format!("{}/readyz?verbose", r.base())).await;
        match answer {
            Ok(a) if a.status == 200 => {
                ensure!(
                    a.body.contains("[+]shard-complete ok"),
                    "{}: {}",
                    r.id,
                    a.body
                );
                return Ok(());
            }
            Ok(a) if Instant::now() >= deadline => bail!("{} not ready: {}", r.id, a.body),
            Err(e) if Instant::now() >= deadline => return Err(e),
            _ => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

async fn point_apiservice_at(ctx: &mut Ctx, i: usize) -> Result<()> {
    let api = Api::<APIService>::all(ctx.client.clone());
    let current = api.get(APISERVICE).await?;
    let port = current.spec.and_then(|s| s.service).and_then(|s| s.port);
    if ctx.apiservice_port.is_none() {
        ctx.apiservice_port = port;
    }
    let patch = json!({"spec": {"service": {"port": ctx.replicas[i].port}}});
    api.patch(APISERVICE, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

async fn teardown(ctx: &mut Ctx) -> Result<()> {
    if let Some(port) = ctx.apiservice_port {
        let patch = json!({"spec": {"service": {"port": port}}});
        Api::<APIService>::all(ctx.client.clone())
            .patch(APISERVICE, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    for r in &mut ctx.replicas {
        if let Some(mut child) = r.child.take() {
            let _ = child.kill().await;
        }
    }
    let leases = Api::<Lease>::namespaced(ctx.client.clone(), NAMESPACE);
    let _ = leases
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels(&format!("metrics-server-rs.io/shard-group={GROUP}")),
        )
        .await;
    let _ = std::fs::remove_file(&ctx.token_file);
    Ok(())
}

// === observations ===

fn live(ctx: &Ctx) -> impl Iterator<Item = &Replica> {
    ctx.replicas.iter().filter(|r| r.child.is_some())
}

/// Per node, the kubelet requests a replica has sent so far.
async fn request_counts(ctx: &Ctx, r: &Replica) -> Result<BTreeMap<String, f64>> {
    let text = ctx.https.get_ok(&format!("{}/metrics", r.base())).await?;
    let samples = prom::parse_samples(&text).map_err(|e| anyhow!("{}: {e}", r.id))?;
    let mut out = BTreeMap::new();
    for s in samples
        .into_iter()
        .filter(|s| s.name == "metrics_server_kubelet_request_duration_seconds_count")
    {
        if let Some(node) = s.labels.get("node") {
            *out.entry(node.clone()).or_insert(0.0) += s.value;
        }
    }
    Ok(out)
}

/// CPU seconds (user + system) and resident KiB of a process, from /proc.
fn cpu_and_rss(pid: u32) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split(' ').collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches(" kB")
        .parse()
        .ok()?;
    Some((ticks / 100.0, rss))
}

/// Requests per node and replica over `window`; prints each replica's CPU and RSS over it.
async fn scrapes_over(
    ctx: &Ctx,
    window: Duration,
) -> Result<BTreeMap<String, BTreeMap<String, u64>>> {
    let mut before = BTreeMap::new();
    let mut cpu_before = BTreeMap::new();
    for r in live(ctx) {
        before.insert(r.id.clone(), request_counts(ctx, r).await?);
        if let Some(c) = r
            .child
            .as_ref()
            .and_then(tokio::process::Child::id)
            .and_then(cpu_and_rss)
        {
            cpu_before.insert(r.id.clone(), c.0);
        }
    }
    tokio::time::sleep(window).await;
    for r in live(ctx) {
        if let (Some(start), Some((cpu, rss))) = (
            cpu_before.get(&r.id),
            r.child
                .as_ref()
                .and_then(tokio::process::Child::id)
                .and_then(cpu_and_rss),
        ) {
            println!(
                "    {}: {:.2} % of a core, RSS {:.1} MiB",
                r.id,
                (cpu - start) * 100.0 / window.as_secs_f64(),
                rss as f64 / 1024.0
            );
        }
    }
    let mut per_node: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for r in live(ctx) {
        let after = request_counts(ctx, r).await?;
        for (node, n) in after {
            let was = before[&r.id].get(&node).copied().unwrap_or(0.0);
            let delta = (n - was).round() as u64;
            if delta > 0 {
                per_node
                    .entry(node)
                    .or_default()
                    .insert(r.id.clone(), delta);
            }
        }
    }
    Ok(per_node)
}

/// Node name → (timestamp seconds, cpu, memory) as one replica serves them.
async fn node_metrics(ctx: &Ctx, r: &Replica) -> Result<BTreeMap<String, (i64, String, String)>> {
    let body = ctx
        .https
        .get_ok(&format!("{}{NODES_PATH}", r.base()))
        .await?;
    let v: Value = serde_json::from_str(&body)?;
    let mut out = BTreeMap::new();
    for item in v["items"].as_array().into_iter().flatten() {
        let name = item["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let ts: k8s_openapi::jiff::Timestamp = item["timestamp"]
            .as_str()
            .unwrap_or_default()
            .parse()
            .with_context(|| format!("{}: timestamp of {name}", r.id))?;
        out.insert(
            name,
            (
                ts.as_second(),
                item["usage"]["cpu"].as_str().unwrap_or_default().to_owned(),
                item["usage"]["memory"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ),
        );
    }
    Ok(out)
}

/// `namespace/name` of every pod a replica serves.
async fn pod_names(ctx: &Ctx, r: &Replica) -> Result<BTreeSet<String>> {
    let body = ctx
        .https
        .get_ok(&format!("{}/apis/metrics.k8s.io/v1beta1/pods", r.base()))
        .await?;
    let v: Value = serde_json::from_str(&body)?;
    Ok(v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            format!(
                "{}/{}",
                i["metadata"]["namespace"].as_str().unwrap_or_default(),
                i["metadata"]["name"].as_str().unwrap_or_default()
            )
        })
        .collect())
}

fn expected_owners(ctx: &Ctx, nodes: impl Iterator<Item = String>) -> BTreeMap<String, String> {
    let a = Assignment::new(live(ctx).map(|r| r.id.clone()));
    nodes
        .map(|n| {
            let owner = a.owner(&n).unwrap_or_default().to_owned();
            (n, owner)
        })
        .collect()
}

// === cases ===

/// Over four resolutions each node is requested by exactly its rendezvous owner, 3 to 5 times.
async fn scraped_once_per_tick(ctx: &Ctx) -> Result<BTreeMap<String, String>> {
    // Let membership settle after any change.
    tokio::time::sleep(ctx.resolution + LEASE).await;
    let ticks = 4;
    let per_node = scrapes_over(ctx, ctx.resolution * ticks).await?;
    let served = node_metrics(ctx, &ctx.replicas[0]).await?;
    ensure!(!served.is_empty(), "no node metrics served");
    let owners = expected_owners(ctx, served.keys().cloned());
    let mut total = 0;
    for (node, owner) in &owners {
        let by = per_node.get(node).cloned().unwrap_or_default();
        ensure!(
            by.len() == 1 && by.contains_key(owner),
            "node {node}: requests per replica {by:?}, expected only its owner {owner}"
        );
        let n = by[owner];
        ensure!(
            (u64::from(ticks) - 1..=u64::from(ticks) + 1).contains(&n),
            "node {node}: {n} requests in {ticks} resolutions"
        );
        total += n;
    }
    println!(
        "    {} nodes, {} replicas, {total} kubelet requests in {ticks} resolutions ({:.2} per node per tick)",
        owners.len(),
        live(ctx).count(),
        total as f64 / (owners.len() as f64 * f64::from(ticks))
    );
    Ok(owners)
}

/// Every replica serves the same nodes and pods, node values equal within one resolution.
async fn answers_alike(ctx: &Ctx) -> Result<()> {
    let mut views = Vec::new();
    let mut pods = Vec::new();
    for r in live(ctx) {
        views.push((r.id.clone(), node_metrics(ctx, r).await?));
        pods.push((r.id.clone(), pod_names(ctx, r).await?));
    }
    let (first_id, first) = &views[0];
    let res = i64::try_from(ctx.resolution.as_secs())?;
    for (id, view) in &views[1..] {
        ensure!(
            view.keys().eq(first.keys()),
            "{id} serves nodes {:?}, {first_id} {:?}",
            view.keys().collect::<Vec<_>>(),
            first.keys().collect::<Vec<_>>()
        );
        for (node, (ts, cpu, mem)) in view {
            let (ts0, cpu0, mem0) = &first[node];
            ensure!(
                (ts - ts0).abs() <= res,
                "{node}: {id} at {ts}, {first_id} at {ts0}"
            );
            if ts == ts0 {
                ensure!(
                    (cpu, mem) == (cpu0, mem0),
                    "{node} at {ts}: {id} {cpu}/{mem}, {first_id} {cpu0}/{mem0}"
                );
            }
        }
    }
    for (id, p) in &pods[1..] {
        ensure!(p == &pods[0].1, "{id} serves other pods than {}", pods[0].0);
    }
    ensure!(!pods[0].1.is_empty(), "no pod metrics served");
    // Through the aggregator (the APIService points at the first replica).
    let via: Value = ctx
        .client
        .request(http::Request::get(NODES_PATH).body(Vec::new())?)
        .await?;
    let n = via["items"].as_array().map_or(0, Vec::len);
    ensure!(
        n == first.len(),
        "the aggregator lists {n} nodes, the replicas {}",
        first.len()
    );
    Ok(())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// SIGKILL of a replica that owns nodes: at every survivor, every node is fresh (a sample taken
/// after the kill) within resolution + lease duration + one renew period, and never missing.
async fn killed_replica_taken_over(ctx: &mut Ctx) -> Result<()> {
    let served = node_metrics(ctx, &ctx.replicas[0]).await?;
    let owners = expected_owners(ctx, served.keys().cloned());
    let victim = live(ctx)
        .skip(1)
        .map(|r| r.id.clone())
        .find(|id| owners.values().any(|o| o == id))
        .ok_or_else(|| anyhow!("no replica but the first owns a node: {owners:?}"))?;
    let orphaned: Vec<&String> = owners
        .iter()
        .filter(|(_, o)| **o == victim)
        .map(|(n, _)| n)
        .collect();
    let slot = ctx
        .replicas
        .iter_mut()
        .find(|r| r.id == victim)
        .context("victim")?;
    let mut child = slot.child.take().context("victim already stopped")?;
    child.start_kill()?;
    let _ = child.wait().await;
    let killed_at = unix_now();
    let started = Instant::now();
    let bound = ctx.resolution + LEASE + LEASE / 3 + Duration::from_secs(5);
    println!("    killed {victim} (owner of {orphaned:?}); bound {bound:?}");
    let mut fresh_after: BTreeMap<(String, String), Duration> = BTreeMap::new();
    loop {
        let elapsed = started.elapsed();
        for r in live(ctx) {
            let view = node_metrics(ctx, r).await?;
            for node in served.keys() {
                let Some((ts, _, _)) = view.get(node) else {
                    bail!("{} lost node {node} {elapsed:?} after the kill", r.id);
                };
                if *ts > killed_at {
                    fresh_after
                        .entry((r.id.clone(), node.clone()))
                        .or_insert(elapsed);
                }
            }
        }
        let want = live(ctx).count() * served.len();
        if fresh_after.len() == want {
            break;
        }
        ensure!(
            elapsed <= bound,
            "after {elapsed:?} only {}/{want} (replica, node) pairs are fresh: {fresh_after:?}",
            fresh_after.len()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let slowest = fresh_after.values().max().copied().unwrap_or_default();
    println!("    every node fresh at every survivor {slowest:?} after the kill");
    Ok(())
}

/// A replica joins: it becomes ready, and ownership follows the new rendezvous assignment, with
/// only the newcomer's share moving.
async fn added_replica_rebalances(ctx: &mut Ctx) -> Result<()> {
    let before = scraped_once_per_tick(ctx).await?;
    start_replica(ctx, "ha-3")?;
    let last = ctx.replicas.len() - 1;
    wait_ready(ctx, last, ctx.resolution * 4 + Duration::from_secs(30)).await?;
    let after = scraped_once_per_tick(ctx).await?;
    let moved: Vec<&String> = after
        .iter()
        .filter(|(n, o)| before.get(*n) != Some(*o))
        .map(|(n, _)| n)
        .collect();
    for n in &moved {
        ensure!(
            after[*n] == "ha-3",
            "node {n} moved to {} rather than to the newcomer",
            after[*n]
        );
    }
    println!(
        "    {} of {} nodes moved to the newcomer (a fair share is {:.1})",
        moved.len(),
        after.len(),
        after.len() as f64 / live(ctx).count() as f64
    );
    answers_alike(ctx).await
}

/// SIGTERM to the last replica: it deletes its Lease before exiting 0, so the others see it gone
/// at their next listing instead of after expiry.
async fn terminated_replica_releases_its_lease(ctx: &mut Ctx) -> Result<()> {
    let r = ctx
        .replicas
        .iter_mut()
        .rev()
        .find(|r| r.child.is_some())
        .context("no replica")?;
    let lease_name = format!("{GROUP}-{}", r.id);
    let leases = Api::<Lease>::namespaced(ctx.client.clone(), NAMESPACE);
    ensure!(
        leases.get_opt(&lease_name).await?.is_some(),
        "{lease_name} missing before SIGTERM"
    );
    let mut child = r.child.take().context("stopped")?;
    let pid = child.id().context("no pid")?;
    let status = tokio::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await?;
    ensure!(status.success(), "kill -TERM {pid} failed");
    let exit = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .context("no exit within 30 s of SIGTERM")??;
    ensure!(exit.success(), "{} exited with {exit}", r.id);
    ensure!(
        leases.get_opt(&lease_name).await?.is_none(),
        "{lease_name} still exists after a clean exit"
    );
    Ok(())
}
