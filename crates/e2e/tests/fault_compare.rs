//! Our server and upstream v0.9.0 side by side against the same misbehaving kubelets
//! (`make fault-compare`): the measurement behind the upstream column of `RELIABILITY.md`.
//!
//! On a local cluster whose APIService routes to our server, upstream's binary (`DIFF_OTHER_BIN`)
//! is started beside it with the same flags. Each fault gets a simulated node of its own whose
//! InternalIP is a distinct loopback address (127.0.0.20 and up) and whose kubelet port is KWOK's,
//! where a `FaultyKubelet` answers over TLS. Both servers scrape the faulty nodes next to the
//! healthy KWOK nodes for a few resolutions; then each is asked for every node directly, and its
//! peak RSS, its log lines naming each faulty node and any panic are recorded.
//!
//! Printed as a Markdown table (and written to `COMPARE_OUT` when set). The assertions are on our
//! server only: no faulty node served, healthy nodes fresh, no panic, peak RSS bounded.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, ensure};
use bytes::Bytes;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams, PostParams};
use metrics_server_e2e::https::InsecureClient;
use metrics_server_e2e::local::{self, LocalCluster};
use metrics_server_e2e::metrics::{API, NodeMetrics};
use metrics_server_e2e::procs;
use metrics_server_e2e::retry::eventually;
use metrics_server_e2e::route;
use metrics_server_e2e::runner::{self, Tally};
use metrics_server_test_support::{
    Fault, FaultyKubelet, FaultyListening, NodeSample, PodSample, TestPki, render_resource_metrics,
};
use serde_json::json;

/// Upstream is stopped if it grows past this (it is recorded, not fatal).
const UPSTREAM_RSS_GUARD_KIB: u64 = 8 * 1024 * 1024;
/// Our server must stay below this while every fault runs.
const OURS_RSS_LIMIT_KIB: u64 = 256 * 1024;

#[path = "fault_compare/certs.rs"]
mod certs;
#[path = "fault_compare/series.rs"]
mod series;

fn main() -> ExitCode {
    runner::main("fault-compare", |kubeconfig| async move {
        run(&kubeconfig).await
    })
}

/// One fault: its node name suffix, what it does, and how.
struct Case {
    slug: &'static str,
    what: &'static str,
    fault: Fault,
    /// Well-formed but unusual data that a correct server stores and serves.
    servable: bool,
}

fn body_with_node_memory(memory: f64) -> Bytes {
    let node = NodeSample {
        cpu_seconds: 100.5,
        memory_bytes: memory,
        timestamp_ms: None,
    };
    let mut pod = PodSample::single("default", "faulty-pod", 10.5, 1.048_576e7, 0);
    for c in &mut pod.containers {
        c.timestamp_ms = None;
        c.start_time_seconds = 1.6e9;
    }
    Bytes::from(render_resource_metrics(&node, &[pod]))
}

/// A node and pod whose counters advance 1.5 CPU-seconds per 15 s step, stamped from `start_ms`:
/// one body per request, so each server sees timestamps that advance.
fn timestamped_series(start_ms: i64) -> Fault {
    let bodies: Vec<Bytes> = (0..64)
        .map(|i| {
            let ts = start_ms + i * 15_000;
            let step = i as f64 * 1.5;
            let node = NodeSample {
                cpu_seconds: 100.0 + step,
                memory_bytes: 1.5e9,
                timestamp_ms: Some(ts),
            };
            let mut pod = PodSample::single("default", "faulty-pod", 10.0 + step, 1.048_576e7, ts);
            for c in &mut pod.containers {
                c.start_time_seconds = 1.6e9;
            }
            Bytes::from(render_resource_metrics(&node, &[pod]))
        })
        .collect();
    Fault::Sequence(bodies.into())
}

/// 5,000 pods of 10 containers on one node, without timestamps.
fn fifty_thousand_containers() -> Bytes {
    let pods: Vec<PodSample> = (0..5_000)
        .map(|p| {
            let mut pod = PodSample::single("big", &format!("pod-{p}"), 1.5, 1e7, 0);
            let template = pod.containers[0].clone();
            pod.containers = (0..10)
                .map(|c| {
                    let mut container = template.clone();
                    container.name = format!("c{c}");
                    container.cpu_seconds = 1.5 + f64::from(c);
                    container.timestamp_ms = None;
                    container.start_time_seconds = 1.6e9;
                    container
                })
                .collect();
            pod
        })
        .collect();
    let node = NodeSample {
        cpu_seconds: 5000.0,
        memory_bytes: 6.4e10,
        timestamp_ms: None,
    };
    Bytes::from(render_resource_metrics(&node, &pods))
}

/// The healthy body, then every series again with other values.
fn duplicated_series() -> Bytes {
    let first = body_with_node_memory(1e9);
    let second = body_with_node_memory(3e9);
    let mut both = first.to_vec();
    both.extend_from_slice(&second);
    Bytes::from(both)
}

fn unusual_cases() -> Vec<Case> {
    let text = |body: Bytes| Fault::Body {
        body,
        content_type: "text/plain",
    };
    let servable = |slug, what, fault| Case {
        slug,
        what,
        fault,
        servable: true,
    };
    vec![
        servable(
            "duplicates",
            "Duplicate series (every line twice, other values)",
            text(duplicated_series()),
        ),
        servable(
            "no-timestamps",
            "No per-line timestamps",
            text(body_with_node_memory(1e9)),
        ),
        servable(
            "ts-future",
            "Timestamps far in the future (year 2191)",
            timestamped_series(7_000_000_000_000),
        ),
        servable(
            "ts-past",
            "Timestamps far in the past (1970)",
            timestamped_series(1_000_000),
        ),
        servable(
            "ts-beyond",
            "Timestamps beyond the int64 nanosecond range (year 3000)",
            timestamped_series(32_503_680_000_000),
        ),
        servable(
            "fifty-thousand",
            "50,000 containers on one node",
            text(fifty_thousand_containers()),
        ),
    ]
}

fn cases(kwok_port: u16) -> Vec<Case> {
    let text = |body: Bytes| Fault::Body {
        body,
        content_type: "text/plain",
    };
    vec![
        Case {
            slug: "hang",
            what: "Hang: accepts, reads the request, never answers",
            fault: Fault::Hang,
            servable: false,
        },
        Case {
            slug: "trickle",
            what: "Trickle: `200` headers, then one byte per second",
            fault: Fault::Trickle {
                body: body_with_node_memory(1e9),
                interval: Duration::from_secs(1),
            },
            servable: false,
        },
        Case {
            slug: "reset",
            what: "Connection reset in the middle of the body",
            fault: Fault::ResetMidBody {
                body: body_with_node_memory(1e9),
            },
            servable: false,
        },
        Case {
            slug: "status-500",
            what: "`500 Internal Server Error`",
            fault: Fault::Status(500),
            servable: false,
        },
        Case {
            slug: "status-401",
            what: "`401 Unauthorized`",
            fault: Fault::Status(401),
            servable: false,
        },
        Case {
            slug: "redirect",
            what: "`302` redirect to a healthy node's kubelet",
            fault: Fault::Redirect {
                location: format!(
                    "https://127.0.0.1:{kwok_port}/metrics/nodes/kwok-node-1/metrics/resource"
                ),
            },
            servable: false,
        },
        Case {
            slug: "huge-chunked",
            what: "1 GiB chunked body",
            fault: Fault::Huge {
                total: 1 << 30,
                declare_length: false,
            },
            servable: false,
        },
        Case {
            slug: "huge-declared",
            what: "1 GiB body with its `Content-Length`",
            fault: Fault::Huge {
                total: 1 << 30,
                declare_length: true,
            },
            servable: false,
        },
        Case {
            slug: "random",
            what: "Random bytes as a `200` body",
            fault: text(Bytes::from(
                (0..4096u32)
                    .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                    .collect::<Vec<u8>>(),
            )),
            servable: false,
        },
        Case {
            slug: "html",
            what: "An HTML page as a `200` body",
            fault: Fault::Body {
                body: Bytes::from_static(b"<html><body>Sign in</body></html>\n"),
                content_type: "text/html",
            },
            servable: false,
        },
        Case {
            slug: "garbage",
            what: "Bytes that are not HTTP",
            fault: Fault::Garbage(Bytes::from_static(b"\x00\x01SSH-2.0-nope\r\n")),
            servable: false,
        },
        Case {
            slug: "nan",
            what: "Node memory `NaN`",
            fault: text(body_with_node_memory(f64::NAN)),
            servable: false,
        },
        Case {
            slug: "negative",
            what: "Node memory negative",
            fault: text(body_with_node_memory(-1.048_576e7)),
            servable: false,
        },
        Case {
            slug: "inf",
            what: "Node memory `+Inf`",
            fault: text(body_with_node_memory(f64::INFINITY)),
            servable: false,
        },
        Case {
            slug: "status-403",
            what: "`403 Forbidden`",
            fault: Fault::Status(403),
            servable: false,
        },
        Case {
            slug: "minus-inf",
            what: "Node memory `-Inf`",
            fault: text(body_with_node_memory(f64::NEG_INFINITY)),
            servable: false,
        },
        Case {
            slug: "huge-value",
            what: "Node memory `1e300`",
            fault: text(body_with_node_memory(1e300)),
            servable: false,
        },
    ]
}

struct Server {
    name: &'static str,
    url: String,
    pid: u32,
    log: PathBuf,
    log_start: u64,
    peak_rss_kib: u64,
    stopped: Option<String>,
}

struct Ctx {
    client: kube::Client,
    https: InsecureClient,
    cluster: PathBuf,
    resolution: Duration,
    kwok_port: u16,
}

async fn run(kubeconfig: &Path) -> ExitCode {
    let mut tally = Tally::new();
    let result = compare(kubeconfig, &mut tally).await;
    if let Err(err) = &result {
        tally.case("the comparison ran to its end", &Err(anyhow!("{err:#}")));
    }
    println!("{}", tally.summary());
    if tally.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn compare(kubeconfig: &Path, tally: &mut Tally) -> Result<()> {
    let ctx = discover(kubeconfig).await?;
    let ours_process = procs::find("metrics-server", &ctx.cluster.to_string_lossy())?;
    let ours_url = route::metrics_server_url(&ctx.client).await?;
    let (mut child, upstream_port, upstream_log) = start_upstream(&ctx, &ours_process)?;
    let mut servers = [
        server(
            "ours",
            ours_url,
            ours_process.pid,
            ctx.cluster.join("logs/metrics-server.log"),
        ),
        server(
            "upstream",
            format!("https://127.0.0.1:{upstream_port}"),
            child.id().context("upstream exited")?,
            upstream_log,
        ),
    ];
    for s in &servers {
        wait_ready(&ctx, s).await?;
    }
    let mut cases = cases(ctx.kwok_port);
    cases.extend(unusual_cases());
    let kubelets = start_faulty_kubelets(&ctx, &cases).await?;
    for s in &mut servers {
        s.log_start = std::fs::metadata(&s.log).map(|m| m.len()).unwrap_or(0);
    }
    create_nodes(&ctx, &cases).await?;
    let observe = ctx.resolution * 4 + Duration::from_secs(15);
    println!(
        "fault-compare: {} faulty nodes, observing for {observe:?}",
        cases.len()
    );
    watch_rss(&mut servers, observe, &mut child).await;
    let report = measure(&ctx, &servers, &cases).await;
    delete_nodes(&ctx, &cases).await;
    drop(kubelets);
    let _ = child.kill().await;
    let mut report = report?;
    let upstream = PathBuf::from(upstream_bin()?);
    let timeline = series::compare(&ctx, &ours_process, &upstream).await?;
    report.table.push_str(&timeline.table());
    let certs = certs::compare(&ctx, &ours_process, &upstream).await?;
    report.table.push_str(&certs.table);
    println!("{}", report.table);
    if let Some(out) = std::env::var_os("COMPARE_OUT") {
        std::fs::write(&out, &report.table)?;
    }
    judge_ours(tally, &report, &servers[0]);
    judge_one_tick_faults(tally, &timeline);
    tally.case(
        "ours serves the valid certificate's node and none of the bad ones",
        &if certs.ours_wrong.is_empty() {
            Ok(())
        } else {
            Err(anyhow!("wrong: {:?}", certs.ours_wrong))
        },
    );
    Ok(())
}

/// Ours and upstream started beside the cluster's server for one phase, with the primary's flags
/// changed by `extra` (the primary's `--node-selector` is dropped: each phase names its nodes).
struct Pair {
    /// (name, child, base URL, log)
    servers: Vec<(&'static str, tokio::process::Child, String, PathBuf)>,
}

impl Pair {
    async fn start(
        ctx: &Ctx,
        primary: &procs::Process,
        upstream_bin: &Path,
        phase: &str,
        extra: &[String],
    ) -> Result<Self> {
        let drop = ["--node-selector=", "--kubelet-insecure-tls"];
        let mut servers = Vec::new();
        for (name, bin) in [("ours", primary.exe.as_path()), ("upstream", upstream_bin)] {
            let port = local::free_port()?;
            let log = ctx
                .cluster
                .join(format!("logs/metrics-server-{name}-{phase}.log"));
            let mut args = local::sibling_args(primary, port, &drop, extra);
            if !extra
                .iter()
                .any(|a| a.starts_with("--kubelet-certificate-authority="))
            {
                args.push("--kubelet-insecure-tls".to_owned());
            }
            let child = local::spawn_logged(bin, &args, &log)?;
            servers.push((name, child, format!("https://127.0.0.1:{port}"), log));
        }
        let pair = Self { servers };
        for (name, url, log) in pair.servers() {
            wait_live(ctx, name, url, log).await?;
        }
        Ok(pair)
    }

    fn servers(&self) -> impl Iterator<Item = (&'static str, &str, &Path)> {
        self.servers
            .iter()
            .map(|(name, _, url, log)| (*name, url.as_str(), log.as_path()))
    }

    async fn stop(self) {
        for (_, mut child, _, _) in self.servers {
            let _ = child.kill().await;
        }
    }
}

/// `/livez`, not `/readyz`: a phase's nodes may all be unservable.
async fn wait_live(ctx: &Ctx, name: &str, url: &str, log: &Path) -> Result<()> {
    answers_ok(ctx, name, url, "/livez", log, Duration::from_secs(120)).await
}

fn upstream_bin() -> Result<String> {
    std::env::var("DIFF_OTHER_BIN").context("DIFF_OTHER_BIN must name upstream's binary")
}

fn judge_one_tick_faults(tally: &mut Tally, timeline: &series::Timeline) {
    let wrong = timeline.wrong_rates_of_ours();
    tally.case(
        "ours serves no rate across a counter reset or a restart",
        &if wrong.is_empty() {
            Ok(())
        } else {
            Err(anyhow!("served: {wrong:?}"))
        },
    );
    tally.case(
        "ours serves the exact rate again after a counter reset and a restart",
        &if timeline.ours_recovered() {
            Ok(())
        } else {
            Err(anyhow!("{}", timeline.table()))
        },
    );
}

fn server(name: &'static str, url: String, pid: u32, log: PathBuf) -> Server {
    Server {
        name,
        url,
        pid,
        log,
        log_start: 0,
        peak_rss_kib: 0,
        stopped: None,
    }
}

async fn discover(kubeconfig: &Path) -> Result<Ctx> {
    let local = LocalCluster::discover(kubeconfig).await?;
    Ok(Ctx {
        client: local.client,
        https: local.https,
        cluster: local.dir,
        resolution: local.resolution,
        kwok_port: local.kubelet_port,
    })
}

fn start_upstream(
    ctx: &Ctx,
    ours: &procs::Process,
) -> Result<(tokio::process::Child, u16, PathBuf)> {
    let bin = upstream_bin()?;
    let port = local::free_port()?;
    let log = ctx.cluster.join("logs/metrics-server-upstream-faults.log");
    let child = local::spawn_logged(
        Path::new(&bin),
        &local::sibling_args(ours, port, &[], &[]),
        &log,
    )?;
    Ok((child, port, log))
}

async fn wait_ready(ctx: &Ctx, s: &Server) -> Result<()> {
    answers_ok(
        ctx,
        s.name,
        &s.url,
        "/readyz",
        &s.log,
        Duration::from_secs(180),
    )
    .await
}

/// Polls `url` + `path` every 2 s until it answers 200, for at most `within`.
async fn answers_ok(
    ctx: &Ctx,
    name: &str,
    url: &str,
    path: &str,
    log: &Path,
    within: Duration,
) -> Result<()> {
    eventually(within, Duration::from_secs(2), || async {
        let r = ctx.https.get(&format!("{url}{path}")).await?;
        ensure!(r.status == 200, "{path} answered {}", r.status);
        Ok(())
    })
    .await
    .with_context(|| format!("{name} did not answer {path} (log {})", log.display()))
}

/// Creates an object, retrying for up to 30 s while a deleted one of the same name lingers.
async fn create_retrying<K>(api: &Api<K>, object: &K, name: &str) -> Result<()>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    eventually(Duration::from_secs(30), Duration::from_secs(1), || async {
        api.create(&PostParams::default(), object).await?;
        Ok(())
    })
    .await
    .with_context(|| format!("creating {name}"))
}

fn node_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 20 + u8::try_from(i).unwrap_or(200))
}

async fn start_faulty_kubelets(ctx: &Ctx, cases: &[Case]) -> Result<Vec<FaultyListening>> {
    let pki = TestPki::new()?;
    let ips: Vec<String> = (0..cases.len()).map(|i| node_ip(i).to_string()).collect();
    let names: Vec<&str> = ips.iter().map(String::as_str).collect();
    let cert = pki.server_cert(&names)?;
    let mut config = (*cert.server_config(None)?).clone();
    // The fault is written as HTTP/1.1 by hand: never let a client pick h2.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = Arc::new(config);
    let mut listening = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let addr = SocketAddr::new(IpAddr::V4(node_ip(i)), ctx.kwok_port);
        listening.push(
            FaultyKubelet::start_on(addr, case.fault.clone(), Some(Arc::clone(&config)))
                .await
                .with_context(|| format!("binding {addr}"))?,
        );
    }
    Ok(listening)
}

fn node_name(case: &Case) -> String {
    format!("fault-{}", case.slug)
}

async fn create_nodes(ctx: &Ctx, cases: &[Case]) -> Result<()> {
    let nodes = Api::<Node>::all(ctx.client.clone());
    for (i, case) in cases.iter().enumerate() {
        let name = node_name(case);
        let _ = nodes.delete(&name, &DeleteParams::default()).await;
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name,
                "annotations": {"kwok.x-k8s.io/node": "fake",
                                "metrics.k8s.io/resource-metrics-path": format!("/metrics/nodes/{name}/metrics/resource")},
                "labels": {"kubernetes.io/hostname": name, "type": "kwok"}},
            "status": {"addresses": [{"type": "InternalIP", "address": node_ip(i).to_string()}]}
        }))?;
        nodes
            .create(&PostParams::default(), &node)
            .await
            .with_context(|| format!("creating node {name}"))?;
    }
    Ok(())
}

async fn delete_nodes(ctx: &Ctx, cases: &[Case]) {
    let nodes = Api::<Node>::all(ctx.client.clone());
    for case in cases {
        let _ = nodes
            .delete(&node_name(case), &DeleteParams::default())
            .await;
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Samples both servers' RSS for `observe`; stops upstream if it passes the guard.
async fn watch_rss(
    servers: &mut [Server; 2],
    observe: Duration,
    upstream: &mut tokio::process::Child,
) {
    let end = Instant::now() + observe;
    while Instant::now() < end {
        for s in servers.iter_mut() {
            if let Some(kib) = rss_kib(s.pid) {
                s.peak_rss_kib = s.peak_rss_kib.max(kib);
            }
        }
        if servers[1].stopped.is_none() && servers[1].peak_rss_kib > UPSTREAM_RSS_GUARD_KIB {
            let _ = upstream.kill().await;
            servers[1].stopped = Some(format!(
                "stopped by the harness above {} GiB RSS",
                UPSTREAM_RSS_GUARD_KIB >> 20
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

struct Report {
    table: String,
    /// (server, fault slug) -> what a direct GET of the node answered.
    answers: BTreeMap<(&'static str, &'static str), String>,
    healthy_fresh: BTreeMap<&'static str, bool>,
    panics: BTreeMap<&'static str, usize>,
    /// Slugs of the cases a correct server serves.
    servable: Vec<&'static str>,
}

async fn node_answer(ctx: &Ctx, s: &Server, node: &str) -> String {
    if s.stopped.is_some() {
        return "(stopped)".to_owned();
    }
    match ctx.https.get(&format!("{}{API}/nodes/{node}", s.url)).await {
        Ok(r) if r.status == 200 => match serde_json::from_str::<NodeMetrics>(&r.body) {
            Ok(m) => format!(
                "served: cpu {}, memory {}",
                m.usage.get("cpu").map_or("?", String::as_str),
                m.usage.get("memory").map_or("?", String::as_str)
            ),
            Err(_) => "served (undecodable)".to_owned(),
        },
        Ok(r) => format!("not served ({})", r.status),
        Err(err) => format!("no answer ({err})"),
    }
}

/// Lines of `log` written since `start` that contain `needle`.
fn log_lines(log: &Path, start: u64, needle: &str) -> usize {
    let bytes = std::fs::read(log).unwrap_or_default();
    let from = usize::try_from(start).unwrap_or(0).min(bytes.len());
    String::from_utf8_lossy(&bytes[from..])
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

async fn healthy_is_fresh(ctx: &Ctx, s: &Server) -> bool {
    let stamp = |body: String| {
        serde_json::from_str::<NodeMetrics>(&body)
            .ok()
            .and_then(|m| m.timestamp)
    };
    let url = format!("{}{API}/nodes/kwok-node-1", s.url);
    let Ok(first) = ctx.https.get(&url).await else {
        return false;
    };
    tokio::time::sleep(ctx.resolution + Duration::from_secs(2)).await;
    let Ok(second) = ctx.https.get(&url).await else {
        return false;
    };
    first.status == 200 && second.status == 200 && stamp(first.body) != stamp(second.body)
}

async fn measure(ctx: &Ctx, servers: &[Server; 2], cases: &[Case]) -> Result<Report> {
    let mut answers = BTreeMap::new();
    let mut table = String::from(
        "| fault | ours: answer, log lines | upstream v0.9.0: answer, log lines |\n|---|---|---|\n",
    );
    for case in cases {
        let node = node_name(case);
        let mut cells = Vec::new();
        for s in servers {
            let answer = node_answer(ctx, s, &node).await;
            let lines = log_lines(&s.log, s.log_start, &node);
            cells.push(format!("{answer}; {lines} log lines"));
            answers.insert((s.name, case.slug), answer);
        }
        table.push_str(&format!(
            "| {} | {} | {} |\n",
            case.what, cells[0], cells[1]
        ));
    }
    let mut healthy_fresh = BTreeMap::new();
    let mut panics = BTreeMap::new();
    for s in servers {
        healthy_fresh.insert(
            s.name,
            s.stopped.is_none() && healthy_is_fresh(ctx, s).await,
        );
        panics.insert(s.name, log_lines(&s.log, s.log_start, "panic"));
    }
    for s in servers {
        table.push_str(&format!(
            "\n{}: peak RSS {} MiB{}; healthy node samples advancing: {}; log lines with \"panic\": {}",
            s.name,
            s.peak_rss_kib / 1024,
            s.stopped.as_deref().map(|w| format!(" ({w})")).unwrap_or_default(),
            healthy_fresh[s.name],
            panics[s.name],
        ));
    }
    table.push('\n');
    Ok(Report {
        table,
        answers,
        healthy_fresh,
        panics,
        servable: cases
            .iter()
            .filter(|c| c.servable)
            .map(|c| c.slug)
            .collect(),
    })
}

fn judge_ours(tally: &mut Tally, report: &Report, ours: &Server) {
    let served: Vec<&str> = report
        .answers
        .iter()
        .filter(|((server, slug), answer)| {
            *server == "ours" && answer.starts_with("served") && !report.servable.contains(slug)
        })
        .map(|((_, slug), _)| *slug)
        .collect();
    let unserved: Vec<&str> = report
        .servable
        .iter()
        .filter(|slug| !report.answers[&("ours", **slug)].starts_with("served"))
        .copied()
        .collect();
    let check = |ok: bool, why: String| if ok { Ok(()) } else { Err(anyhow!(why)) };
    tally.case(
        "ours serves no faulty node",
        &check(served.is_empty(), format!("served: {served:?}")),
    );
    tally.case(
        "ours serves every node with well-formed unusual data",
        &check(unserved.is_empty(), format!("not served: {unserved:?}")),
    );
    tally.case(
        "ours keeps the healthy nodes fresh next to the faulty ones",
        &check(
            report.healthy_fresh["ours"],
            "kwok-node-1's sample did not advance".to_owned(),
        ),
    );
    tally.case(
        "ours logs no panic",
        &check(
            report.panics["ours"] == 0,
            format!("{} panic lines", report.panics["ours"]),
        ),
    );
    tally.case(
        "ours stays under 256 MiB RSS with every fault at once",
        &check(
            ours.peak_rss_kib < OURS_RSS_LIMIT_KIB,
            format!("peak {} MiB", ours.peak_rss_kib / 1024),
        ),
    );
}
