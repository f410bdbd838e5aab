//! Ours and upstream v0.9.0 side by side at scale (`make bench-compare SCALE=<nodes>x<pods>`).
//!
//! On a local cluster whose APIService routes to our server, this harness
//! 1. starts a kubelet fleet (test-support) with one TLS listener per simulated node on
//!    127.1.x.y at KWOK's kubelet port, and creates the nodes (KWOK keeps them Ready) and their
//!    pods (`spec.nodeName` set, status written directly: no scheduler, no KWOK pod stages);
//! 2. starts upstream's binary (`DIFF_OTHER_BIN`; another build of ours to compare two builds, or
//!    `none` for ours alone) with our server's exact flags on another port;
//! 3. waits until both serve every pod, then for `BENCH_SECONDS` sends both the same load,
//!    alternating which goes first: an HPA-like label-selector list every 15 s for each of 100
//!    workloads, a `kubectl top pods -A`-like list of all pods every 2 s, a VPA-like list of all
//!    pods every minute and a get-node every second, all JSON, plus a list of all pods in
//!    protobuf every 10 s (what client-go's typed clients ask for);
//! 4. prints one table (RSS, CPU, tick duration, latencies, freshness, bytes, ratio
//!    upstream/ours), the other components' own cost, and with `--json` (or `BENCH_JSON=<file>`)
//!    the same as JSON. `BENCH_REUSE=1` skips creating nodes and pods (a kept cluster).
//!
//! The cases judged are about our server only: it serves every pod, answers every request, and
//! its samples stay fresh.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, anyhow, bail};
use fleet::{Fleet, FleetSpec};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use metrics_server_e2e::bench::{self, Figure};
use metrics_server_e2e::https::InsecureClient;
use metrics_server_e2e::local::{self, LocalCluster};
use metrics_server_e2e::metrics::API;
use metrics_server_e2e::namespace as e2e_namespace;
use metrics_server_e2e::runner::{self, Tally};
use metrics_server_e2e::{procs, prom, route};
use serde_json::json;
use tokio::task::JoinSet;

const WORKLOADS: usize = 100;
const NAMESPACES: usize = 10;
const CONTAINERS: [&str; 2] = ["app", "sidecar"];
const FLEET_LABEL: &str = "bench-fleet";

#[path = "bench_compare/fleet.rs"]
mod fleet;

fn main() -> ExitCode {
    if let Ok(role) = std::env::var(fleet::CHILD_ROLE) {
        return fleet::child_main(&role);
    }
    runner::main("bench-compare", |kubeconfig| async move {
        let mut tally = Tally::new();
        if let Err(err) = bench(&kubeconfig, &mut tally).await {
            tally.case("the benchmark ran to its end", &Err(anyhow!("{err:#}")));
        }
        println!("{}", tally.summary());
        if tally.success() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    })
}

struct Settings {
    /// The server beside ours: upstream unless the run compares another binary; `None` runs
    /// ours alone (`DIFF_OTHER_BIN=none`), for sizes where upstream does not fit beside it.
    other: Option<Other>,
    nodes: usize,
    pods_per_node: usize,
    seconds: u64,
    json_stdout: bool,
    json_file: Option<PathBuf>,
}

impl Settings {
    fn from_env() -> Result<Self> {
        let (nodes, pods_per_node) =
            bench::parse_scale(&std::env::var("BENCH_SCALE").unwrap_or_else(|_| "10x5".into()))?;
        let seconds = std::env::var("BENCH_SECONDS")
            .ok()
            .map(|s| s.parse())
            .transpose()
            .context("BENCH_SECONDS")?
            .unwrap_or(300);
        let other = match std::env::var("DIFF_OTHER_BIN") {
            Ok(bin) if bin == "none" => None,
            Ok(bin) => Some(Other {
                bin: PathBuf::from(bin),
                name: std::env::var("BENCH_OTHER_NAME")
                    .unwrap_or_else(|_| "upstream v0.9.0".into()),
            }),
            Err(_) => bail!("DIFF_OTHER_BIN must name upstream's binary (or be `none`)"),
        };
        Ok(Self {
            other,
            nodes,
            pods_per_node,
            seconds,
            json_stdout: std::env::args().any(|a| a == "--json"),
            json_file: std::env::var_os("BENCH_JSON").map(PathBuf::from),
        })
    }

    fn pods(&self) -> usize {
        self.nodes * self.pods_per_node
    }
}

struct Other {
    bin: PathBuf,
    name: String,
}

struct Ctx {
    client: kube::Client,
    https: InsecureClient,
    cluster: PathBuf,
    kwok_port: u16,
    resolution: Duration,
}

fn node_name(i: usize) -> String {
    format!("bench-node-{i}")
}

fn node_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250 + 1) as u8)
}

fn workload(i: usize, j: usize, pods_per_node: usize) -> usize {
    (i * pods_per_node + j) % WORKLOADS
}

fn namespace(workload: usize) -> String {
    format!("bench-{}", workload % NAMESPACES)
}

/// `(namespace, name)` of pod `j` on node `i`.
fn pod_id(i: usize, j: usize, pods_per_node: usize) -> (String, String) {
    let w = workload(i, j, pods_per_node);
    (namespace(w), format!("w{w}-n{i}-p{j}"))
}

async fn bench(kubeconfig: &Path, tally: &mut Tally) -> Result<()> {
    let settings = Settings::from_env()?;
    let ctx = discover(kubeconfig).await?;
    let ours = procs::find("metrics-server", &ctx.cluster.to_string_lossy())?;
    let ours_url = route::metrics_server_url(&ctx.client).await?;
    println!(
        "bench-compare: {} nodes x {} pods ({} pods, {} containers), {} s of load",
        settings.nodes,
        settings.pods_per_node,
        settings.pods(),
        settings.pods() * CONTAINERS.len(),
        settings.seconds
    );
    let setup = Instant::now();
    let spec = FleetSpec {
        nodes: settings.nodes,
        pods_per_node: settings.pods_per_node,
        port: ctx.kwok_port,
    };
    let fleet = Fleet::start(spec, 1 + usize::from(settings.other.is_some())).await?;
    // BENCH_REUSE=1: the nodes and pods of an earlier run at the same scale are still there (a
    // second run on a kept cluster, e.g. to profile a server while the fleet answers).
    if std::env::var("BENCH_REUSE").is_ok_and(|v| v == "1") {
        println!("bench-compare: reusing the nodes and pods already in the cluster");
    } else {
        prepare_cluster(&ctx, &settings).await?;
    }
    let setup_s = setup.elapsed().as_secs_f64();
    println!("bench-compare: nodes and pods created in {setup_s:.0} s");
    let mut servers = vec![Target::new("ours", ours_url, ours.pid)];
    let mut other = match &settings.other {
        Some(o) => Some(start_other(&ctx, &ours, &o.bin)?),
        None => None,
    };
    if let Some(o) = &other {
        servers.push(Target::new(
            "the other server",
            format!("https://127.0.0.1:{}", o.port),
            o.child.id().context("the other server exited at once")?,
        ));
    }
    let peak = Arc::new(Sampler::new(&servers));
    let sampling = tokio::spawn(Arc::clone(&peak).run_until_dropped());
    let coverage = wait_covered(&ctx, &servers, settings.pods()).await;
    let report = measure(&ctx, &servers, &settings, &peak, &fleet.child_pids()).await;
    sampling.abort();
    if let Some(o) = &mut other {
        let _ = o.child.kill().await;
    }
    let mut report = report?;
    report.setup_s = setup_s;
    (report.fleet_requests, report.fleet_bytes) = fleet.finish()?;
    report.coverage_s = coverage.iter().map(|c| c.as_ref().ok().copied()).collect();
    publish(&settings, &report)?;
    judge(tally, &settings, &report, &coverage);
    Ok(())
}

async fn discover(kubeconfig: &Path) -> Result<Ctx> {
    let local = LocalCluster::discover(kubeconfig).await?;
    Ok(Ctx {
        client: local.client,
        https: local.https,
        cluster: local.dir,
        kwok_port: local.kubelet_port,
        resolution: local.resolution,
    })
}

/// Runs `job(0..count)` on `workers` concurrent tasks; the first error stops the rest.
async fn in_parallel<F, Fut>(count: usize, workers: usize, job: F) -> Result<()>
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let mut set: JoinSet<Result<()>> = JoinSet::new();
    for _ in 0..workers {
        let next = Arc::clone(&next);
        let job = job.clone();
        set.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok(());
                }
                job(i).await?;
            }
        });
    }
    while let Some(done) = set.join_next().await {
        done??;
    }
    Ok(())
}

async fn prepare_cluster(ctx: &Ctx, s: &Settings) -> Result<()> {
    // The per-node baseline DaemonSet stays on the KWOK nodes: the fleet's bodies list only
    // the benchmark's pods.
    let patch = json!({"spec": {"template": {"spec": {"nodeSelector": {"type": "kwok"}}}}});
    Api::<DaemonSet>::namespaced(ctx.client.clone(), "kube-system")
        .patch(
            "node-baseline",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .context("keeping node-baseline off the fleet")?;
    for n in 0..NAMESPACES {
        e2e_namespace::create_ready(&ctx.client, &namespace(n)).await?;
    }
    let client = ctx.client.clone();
    in_parallel(s.nodes, 16, move |i| create_node(client.clone(), i))
        .await
        .context("creating nodes")?;
    let client = ctx.client.clone();
    let ppn = s.pods_per_node;
    in_parallel(s.pods(), 48, move |k| {
        create_pod(client.clone(), k / ppn, k % ppn, ppn)
    })
    .await
    .context("creating pods")
}

async fn create_node(client: kube::Client, i: usize) -> Result<()> {
    let name = node_name(i);
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": FLEET_LABEL}},
        "status": {
            "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"},
            "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"},
            "addresses": [{"type": "InternalIP", "address": node_ip(i).to_string()}]}
    }))?;
    Api::<Node>::all(client)
        .create(&PostParams::default(), &node)
        .await
        .with_context(|| format!("creating node {name}"))?;
    Ok(())
}

async fn create_pod(client: kube::Client, i: usize, j: usize, ppn: usize) -> Result<()> {
    let (ns, name) = pod_id(i, j, ppn);
    let w = workload(i, j, ppn);
    let containers: Vec<_> = CONTAINERS
        .iter()
        .map(|c| {
            json!({"name": c, "image": "registry.k8s.io/pause:3.10",
            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}}})
        })
        .collect();
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns, "labels": {"app": format!("w{w}"), "bench": "fleet"}},
        "spec": {"nodeName": node_name(i), "containers": containers,
                 "tolerations": [{"operator": "Exists"}]}
    }))?;
    let pods = Api::<Pod>::namespaced(client, &ns);
    pods.create(&PostParams::default(), &pod)
        .await
        .with_context(|| format!("creating pod {ns}/{name}"))?;
    pods.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(running_status(i)),
    )
    .await
    .with_context(|| format!("writing the status of pod {ns}/{name}"))?;
    Ok(())
}

/// A Running, Ready status as a kubelet would write it (the pod IP is the node's: host network).
fn running_status(i: usize) -> serde_json::Value {
    let ip = node_ip(i).to_string();
    let now = chrono_like_now();
    let cond = |t: &str| json!({"type": t, "status": "True", "lastTransitionTime": now});
    let statuses: Vec<_> = CONTAINERS
        .iter()
        .map(|c| {
            json!({"name": c, "ready": true, "started": true, "restartCount": 0,
            "image": "registry.k8s.io/pause:3.10", "imageID": "",
            "state": {"running": {"startedAt": now}}})
        })
        .collect();
    json!({"status": {"phase": "Running", "hostIP": ip, "podIP": ip, "podIPs": [{"ip": ip}],
        "startTime": now, "containerStatuses": statuses,
        "conditions": [cond("PodScheduled"), cond("Initialized"), cond("ContainersReady"), cond("Ready")]}})
}

fn epoch_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Now as RFC 3339 in UTC, whole seconds.
fn chrono_like_now() -> String {
    let secs = epoch_seconds() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days (the inverse of bench::rfc3339_seconds' algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

struct OtherServer {
    child: tokio::process::Child,
    port: u16,
}

/// Starts the other server with our exact flags on a free port.
fn start_other(ctx: &Ctx, ours: &procs::Process, bin: &Path) -> Result<OtherServer> {
    let port = local::free_port()?;
    let child = local::spawn_logged(
        bin,
        &local::sibling_args(ours, port, &[], &[]),
        &ctx.cluster.join("logs/metrics-server-upstream-bench.log"),
    )?;
    Ok(OtherServer { child, port })
}

#[derive(Clone)]
struct Target {
    name: &'static str,
    url: String,
    pid: u32,
}

impl Target {
    fn new(name: &'static str, url: String, pid: u32) -> Self {
        Self { name, url, pid }
    }
}

/// Seconds until `server` lists every pod (it must be ready first).
async fn covered(ctx: &Ctx, server: &Target, pods: usize, limit: Duration) -> Result<f64> {
    let start = Instant::now();
    let mut seen = 0;
    while start.elapsed() < limit {
        if let Ok(r) = ctx.https.get(&format!("{}{API}/pods", server.url)).await
            && r.status == 200
        {
            seen = bench::item_timestamps(&r.body).len();
            if seen >= pods {
                return Ok(start.elapsed().as_secs_f64());
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    bail!(
        "{} listed {seen} of {pods} pods after {limit:?}",
        server.name
    )
}

async fn wait_covered(ctx: &Ctx, servers: &[Target], pods: usize) -> Vec<Result<f64>> {
    // Pods of the KWOK node (its baseline pod) are listed too.
    let limit = ctx.resolution * 4 + Duration::from_secs(120 + (pods / 200) as u64);
    futures::future::join_all(servers.iter().map(|s| covered(ctx, s, pods, limit))).await
}

/// RSS samples of the servers, once a second.
struct Sampler {
    pids: Vec<u32>,
    rss_kib: Mutex<Vec<Vec<u64>>>,
}

impl Sampler {
    fn new(servers: &[Target]) -> Self {
        Self {
            pids: servers.iter().map(|s| s.pid).collect(),
            rss_kib: Mutex::new(vec![Vec::new(); servers.len()]),
        }
    }

    async fn run_until_dropped(self: Arc<Self>) {
        loop {
            for (i, pid) in self.pids.iter().enumerate() {
                if let Some(kib) = read_rss(*pid)
                    && let Ok(mut s) = self.rss_kib.lock()
                {
                    s[i].push(kib);
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Samples taken so far, per server.
    fn samples(&self) -> Vec<Vec<u64>> {
        self.rss_kib.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

fn read_rss(pid: u32) -> Option<u64> {
    bench::rss_kib(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

fn read_cpu_ticks(pid: u32) -> Option<u64> {
    bench::cpu_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    ListAll,
    ByLabel,
    GetNode,
    ListAllProtobuf,
}

impl Kind {
    fn accept(self) -> &'static str {
        match self {
            Kind::ListAllProtobuf => "application/vnd.kubernetes.protobuf",
            _ => "application/json",
        }
    }
}

#[derive(Default)]
struct KindStats {
    latency_ms: Vec<f64>,
    bytes: Vec<f64>,
    errors: usize,
    freshness_mean_s: Vec<f64>,
    freshness_max_s: f64,
    last_items: usize,
}

/// Per (server, kind) request figures.
#[derive(Default)]
struct Recorder {
    stats: Mutex<BTreeMap<(usize, Kind), KindStats>>,
}

impl Recorder {
    fn record(&self, server: usize, kind: Kind, f: impl FnOnce(&mut KindStats)) {
        if let Ok(mut stats) = self.stats.lock() {
            f(stats.entry((server, kind)).or_default());
        }
    }
}

/// Sends `path` to every server, alternating which is first, and records each answer.
async fn ask_each(
    https: &InsecureClient,
    servers: &[Target],
    rec: &Recorder,
    kind: Kind,
    path: &str,
    round: usize,
) {
    for k in 0..servers.len() {
        let s = (k + round) % servers.len();
        let url = format!("{}{path}", servers[s].url);
        let start = Instant::now();
        let answer = https.get_with(&url, &[("Accept", kind.accept())]).await;
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        match answer {
            Ok(r) if r.status == 200 => {
                let stamps = (kind == Kind::ListAll).then(|| bench::item_timestamps(&r.body));
                let now = epoch_seconds();
                rec.record(s, kind, |st| {
                    st.latency_ms.push(ms);
                    st.bytes.push(r.bytes.len() as f64);
                    if let Some(stamps) = stamps.filter(|t| !t.is_empty()) {
                        let ages: Vec<f64> = stamps.iter().map(|t| now - t).collect();
                        st.freshness_mean_s
                            .push(ages.iter().sum::<f64>() / ages.len() as f64);
                        st.freshness_max_s =
                            ages.iter().copied().fold(st.freshness_max_s, f64::max);
                        st.last_items = stamps.len();
                    }
                });
            }
            _ => rec.record(s, kind, |st| st.errors += 1),
        }
    }
}

/// One load stream: `path(round)` every `period` until `end`.
async fn stream(
    https: InsecureClient,
    servers: Vec<Target>,
    rec: Arc<Recorder>,
    kind: Kind,
    period: Duration,
    end: Instant,
    path: impl Fn(usize) -> String + Send,
) {
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut round = 0;
    loop {
        ticker.tick().await;
        if Instant::now() >= end {
            return;
        }
        ask_each(&https, &servers, &rec, kind, &path(round), round).await;
        round += 1;
    }
}

fn run_load(ctx: &Ctx, servers: &[Target], s: &Settings, rec: &Arc<Recorder>) -> JoinSet<()> {
    let end = Instant::now() + Duration::from_secs(s.seconds);
    let mut set = JoinSet::new();
    let spawn = |set: &mut JoinSet<()>, kind, period, path: Box<dyn Fn(usize) -> String + Send>| {
        set.spawn(stream(
            ctx.https.clone(),
            servers.to_vec(),
            Arc::clone(rec),
            kind,
            period,
            end,
            path,
        ));
    };
    // kubectl top pods -A every 2 s, and the VPA recommender's list once a minute.
    spawn(
        &mut set,
        Kind::ListAll,
        Duration::from_secs(2),
        Box::new(|_| format!("{API}/pods")),
    );
    spawn(
        &mut set,
        Kind::ListAll,
        Duration::from_secs(60),
        Box::new(|_| format!("{API}/pods")),
    );
    // 100 HPAs, each every 15 s: one label-selector list every 150 ms, cycling through them.
    spawn(
        &mut set,
        Kind::ByLabel,
        Duration::from_millis(15_000 / WORKLOADS as u64),
        Box::new(|r| {
            let w = r % WORKLOADS;
            format!(
                "{API}/namespaces/{}/pods?labelSelector=app%3Dw{w}",
                namespace(w)
            )
        }),
    );
    spawn(
        &mut set,
        Kind::ListAllProtobuf,
        Duration::from_secs(10),
        Box::new(|_| format!("{API}/pods")),
    );
    let nodes = s.nodes;
    spawn(
        &mut set,
        Kind::GetNode,
        Duration::from_secs(1),
        Box::new(move |r| format!("{API}/nodes/{}", node_name(r % nodes))),
    );
    set
}

/// `sum` and `count` of the tick-duration histogram in a `/metrics` text.
async fn tick_totals(ctx: &Ctx, server: &Target) -> Option<(f64, f64)> {
    let r = ctx
        .https
        .get(&format!("{}/metrics", server.url))
        .await
        .ok()?;
    let samples = prom::parse_samples(&r.body).ok()?;
    let get = |name: &str| samples.iter().find(|s| s.name == name).map(|s| s.value);
    Some((
        get("metrics_server_manager_tick_duration_seconds_sum")?,
        get("metrics_server_manager_tick_duration_seconds_count")?,
    ))
}

/// A component of the cluster whose own cost is reported.
struct Component {
    name: String,
    pid: u32,
    ticks_start: u64,
}

fn components(ctx: &Ctx, fleet_children: &[u32]) -> Vec<Component> {
    let marker = ctx.cluster.to_string_lossy().into_owned();
    let mut out: Vec<(String, u32)> = [
        "kube-apiserver",
        "etcd",
        "kwok-controller",
        "kube-controller-manager",
        "kube-scheduler",
    ]
    .iter()
    .filter_map(|n| Some(((*n).to_owned(), procs::find(n, &marker).ok()?.pid)))
    .collect();
    out.push((
        "harness (load + kubelet fleet)".to_owned(),
        std::process::id(),
    ));
    for (k, pid) in fleet_children.iter().enumerate() {
        out.push((format!("kubelet fleet, child {}", k + 1), *pid));
    }
    out.into_iter()
        .map(|(name, pid)| Component {
            name,
            pid,
            ticks_start: read_cpu_ticks(pid).unwrap_or(0),
        })
        .collect()
}

#[derive(Default)]
struct Report {
    figures: Vec<Figure>,
    components: Vec<(String, Option<f64>, Option<f64>)>,
    ours_errors: usize,
    ours_items: usize,
    ours_freshness_max_s: f64,
    setup_s: f64,
    coverage_s: Vec<Option<f64>>,
    fleet_requests: u64,
    fleet_bytes: u64,
    seconds: u64,
    resolution_s: f64,
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

async fn measure(
    ctx: &Ctx,
    servers: &[Target],
    s: &Settings,
    sampler: &Sampler,
    fleet_children: &[u32],
) -> Result<Report> {
    let hz = clock_ticks_per_second();
    let rss_before: Vec<usize> = sampler.samples().iter().map(Vec::len).collect();
    let ticks0: Vec<_> = servers.iter().map(|t| read_cpu_ticks(t.pid)).collect();
    let tick0 = futures::future::join_all(servers.iter().map(|t| tick_totals(ctx, t))).await;
    let comps = components(ctx, fleet_children);
    let start = Instant::now();
    let rec = Arc::new(Recorder::default());
    let mut load = run_load(ctx, servers, s, &rec);
    while load.join_next().await.is_some() {}
    let minutes = start.elapsed().as_secs_f64() / 60.0;
    let ticks1: Vec<_> = servers.iter().map(|t| read_cpu_ticks(t.pid)).collect();
    let tick1 = futures::future::join_all(servers.iter().map(|t| tick_totals(ctx, t))).await;
    let cpu = |i: usize| {
        Some((ticks1.get(i)?.as_ref()? - ticks0.get(i)?.as_ref()?) as f64 / hz / minutes)
    };
    let tick_mean = |i: usize| {
        let ((s0, c0), (s1, c1)) = ((*tick0.get(i)?)?, (*tick1.get(i)?)?);
        (c1 > c0).then(|| (s1 - s0) / (c1 - c0))
    };
    let rss = sampler.samples();
    let steady = |i: usize| {
        let window: Vec<f64> = rss
            .get(i)?
            .get(*rss_before.get(i)?..)?
            .iter()
            .map(|k| *k as f64 / 1024.0)
            .collect();
        bench::percentile(&window, 50.0)
    };
    let peak = |i: usize| rss.get(i)?.iter().max().map(|k| *k as f64 / 1024.0);
    let mut figures = vec![
        Figure::new("RSS steady (median)", "MiB", steady(0), steady(1)),
        Figure::new("RSS peak", "MiB", peak(0), peak(1)),
        Figure::new("CPU", "s/min", cpu(0), cpu(1)),
        Figure::new(
            "scrape tick duration (mean)",
            "s",
            tick_mean(0),
            tick_mean(1),
        ),
    ];
    let stats = rec.stats.lock().map_err(|_| anyhow!("recorder poisoned"))?;
    figures.extend(request_figures(&stats));
    let component_costs = comps
        .iter()
        .map(|c| {
            let cpu = read_cpu_ticks(c.pid).map(|t| (t - c.ticks_start) as f64 / hz / minutes);
            (
                c.name.clone(),
                cpu,
                read_rss(c.pid).map(|k| k as f64 / 1024.0),
            )
        })
        .collect();
    let ours_list = stats.get(&(0, Kind::ListAll));
    Ok(Report {
        figures,
        components: component_costs,
        ours_errors: stats
            .iter()
            .filter(|((s, _), _)| *s == 0)
            .map(|(_, st)| st.errors)
            .sum(),
        ours_items: ours_list.map_or(0, |st| st.last_items),
        ours_freshness_max_s: ours_list.map_or(f64::INFINITY, |st| st.freshness_max_s),
        seconds: s.seconds,
        resolution_s: ctx.resolution.as_secs_f64(),
        ..Report::default()
    })
}

fn request_figures(stats: &BTreeMap<(usize, Kind), KindStats>) -> Vec<Figure> {
    let pick = |kind: Kind, f: &dyn Fn(&KindStats) -> Option<f64>| {
        [0, 1].map(|s| stats.get(&(s, kind)).and_then(f))
    };
    let row = |name: &str, unit, kind, f: &dyn Fn(&KindStats) -> Option<f64>| {
        let [o, u] = pick(kind, f);
        Figure::new(name, unit, o, u)
    };
    let p = |q: f64| move |st: &KindStats| bench::percentile(&st.latency_ms, q);
    vec![
        row("list all pods p50", "ms", Kind::ListAll, &p(50.0)),
        row("list all pods p99", "ms", Kind::ListAll, &p(99.0)),
        row("list pods by label p50", "ms", Kind::ByLabel, &p(50.0)),
        row("list pods by label p99", "ms", Kind::ByLabel, &p(99.0)),
        row(
            "list all pods, protobuf p50",
            "ms",
            Kind::ListAllProtobuf,
            &p(50.0),
        ),
        row(
            "list all pods, protobuf p99",
            "ms",
            Kind::ListAllProtobuf,
            &p(99.0),
        ),
        row("get node p50", "ms", Kind::GetNode, &p(50.0)),
        row("get node p99", "ms", Kind::GetNode, &p(99.0)),
        row("list all pods response", "KiB", Kind::ListAll, &|st| {
            bench::percentile(&st.bytes, 50.0).map(|b| b / 1024.0)
        }),
        row(
            "list all pods response, protobuf",
            "KiB",
            Kind::ListAllProtobuf,
            &|st| bench::percentile(&st.bytes, 50.0).map(|b| b / 1024.0),
        ),
        row("list by label response", "KiB", Kind::ByLabel, &|st| {
            bench::percentile(&st.bytes, 50.0).map(|b| b / 1024.0)
        }),
        row(
            "freshness mean (now - timestamp)",
            "s",
            Kind::ListAll,
            &|st| bench::percentile(&st.freshness_mean_s, 50.0),
        ),
        row("freshness worst", "s", Kind::ListAll, &|st| {
            st.freshness_max_s.is_finite().then_some(st.freshness_max_s)
        }),
        row("pods in the last list", "pods", Kind::ListAll, &|st| {
            Some(st.last_items as f64)
        }),
        row("failed list-all requests", "count", Kind::ListAll, &|st| {
            Some(st.errors as f64)
        }),
    ]
}

fn publish(s: &Settings, r: &Report) -> Result<()> {
    let other = s.other.as_ref().map(|o| o.name.as_str());
    let mut text = bench::table(&r.figures, other);
    text.push_str("\n| component | CPU s/min | RSS MiB |\n|---|---|---|\n");
    for (name, cpu, rss) in &r.components {
        let f = |v: &Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.1}"));
        text.push_str(&format!("| {name} | {} | {} |\n", f(cpu), f(rss)));
    }
    let cov = |i: usize| {
        r.coverage_s
            .get(i)
            .copied()
            .flatten()
            .map_or("never".to_owned(), |c| format!("{c:.0} s"))
    };
    let others = other.map_or(String::new(), |name| format!(", {name} {}", cov(1)));
    text.push_str(&format!(
        "\nsetup (nodes + pods) {:.0} s; every pod served after ours {}{others}; fleet answered {} scrapes, {:.1} MiB\n",
        r.setup_s,
        cov(0),
        r.fleet_requests,
        r.fleet_bytes as f64 / 1048576.0
    ));
    println!("\n{text}");
    let doc = json!({
        "scale": {"nodes": s.nodes, "pods_per_node": s.pods_per_node, "pods": s.pods(),
                  "containers_per_pod": CONTAINERS.len()},
        "load_seconds": r.seconds,
        "encoding": "application/json, and application/vnd.kubernetes.protobuf for the protobuf rows",
        "figures": r.figures,
        "components": r.components.iter().map(|(n, c, m)| json!({"name": n, "cpu_s_per_min": c, "rss_mib": m})).collect::<Vec<_>>(),
        "setup_seconds": r.setup_s,
        "other_server": other,
        "full_coverage_seconds": {"ours": r.coverage_s.first(), "other": r.coverage_s.get(1)},
        "fleet": {"scrapes": r.fleet_requests, "bytes": r.fleet_bytes},
    });
    let doc = serde_json::to_string_pretty(&doc)?;
    if s.json_stdout {
        println!("{doc}");
    }
    if let Some(path) = &s.json_file {
        std::fs::write(path, &doc).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn judge(tally: &mut Tally, s: &Settings, r: &Report, coverage: &[Result<f64>]) {
    let check = |ok: bool, why: String| if ok { Ok(()) } else { Err(anyhow!(why)) };
    tally.case(
        "ours serves every fleet pod",
        &match coverage.first() {
            Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(anyhow!("{e:#}")),
            None => Err(anyhow!("ours was not asked")),
        },
    );
    tally.case(
        "ours lists every pod at the end of the load",
        &check(
            r.ours_items >= s.pods(),
            format!("{} of {} pods", r.ours_items, s.pods()),
        ),
    );
    tally.case(
        "ours answers every request of the load",
        &check(
            r.ours_errors == 0,
            format!("{} failed requests", r.ours_errors),
        ),
    );
    tally.case(
        "the kubelet fleet was scraped (not KWOK)",
        &check(
            r.fleet_requests >= s.nodes as u64,
            format!("{} scrapes for {} nodes", r.fleet_requests, s.nodes),
        ),
    );
    tally.case(
        "ours keeps samples fresh (worst age under 3 resolutions + 15 s)",
        &check(
            r.ours_freshness_max_s < 3.0 * r.resolution_s + 15.0,
            format!("worst age {:.0} s", r.ours_freshness_max_s),
        ),
    );
}
