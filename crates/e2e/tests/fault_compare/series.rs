//! The two faults that last one tick: a CPU counter that falls back and a container that restarts.
//! A single read after four resolutions cannot see them, so this phase starts one more instance of
//! each server for these nodes only (`--node-selector=faultseries=true`; the cluster's server skips
//! them through `metrics-server-skip=true`), asks both every two seconds while the scripted series
//! runs, and records every change of answer in order.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use bytes::Bytes;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams};
use metrics_server_e2e::metrics::{API, NodeMetrics, PodMetrics};
use metrics_server_e2e::procs;
use metrics_server_test_support::{
    Fault, FaultyKubelet, FaultyListening, NodeSample, PodSample, TestPki, render_resource_metrics,
};
use serde_json::json;

use super::{Ctx, Pair, create_retrying};

/// The request (counted over both servers) from which the fault is in the bodies: each server
/// sees about three samples before it.
const FAULT_AT: i64 = 6;
/// Every step adds this many CPU-seconds over 15 s of timestamps: 100m exactly.
const STEP_CPU: f64 = 1.5;
const START_MS: i64 = 1_700_000_000_000;

/// What the series case does at `FAULT_AT`.
#[derive(Clone, Copy)]
enum Change {
    /// Node and container counters fall back to 0.5 and advance again; start time unchanged.
    CounterReset,
    /// The container starts again 5 s before the sample (after the stored one): a new start
    /// time and a counter from 0.5.
    Restart,
}

struct SeriesCase {
    slug: &'static str,
    what: &'static str,
    change: Change,
}

const CASES: [SeriesCase; 2] = [
    SeriesCase {
        slug: "counter-reset",
        what: "CPU counter reset (node and container fall back, start time unchanged)",
        change: Change::CounterReset,
    },
    SeriesCase {
        slug: "restart",
        what: "Container restart (new start time after the last sample, counter starts again)",
        change: Change::Restart,
    },
];

fn node_name(case: &SeriesCase) -> String {
    format!("faultseries-{}", case.slug)
}

fn pod_name(case: &SeriesCase) -> String {
    format!("{}-pod", node_name(case))
}

fn node_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 50 + u8::try_from(i).unwrap_or(5))
}

/// One body per request: timestamps advance 15 s a request, counters 1.5 CPU-seconds a request.
fn series(change: Change, pod: &str) -> Fault {
    let fault_ts_s = (START_MS + FAULT_AT * 15_000) as f64 / 1000.0;
    let bodies: Vec<Bytes> = (0..64)
        .map(|i| {
            let ts = START_MS + i * 15_000;
            let steady = 100.0 + i as f64 * STEP_CPU;
            let after = 0.5 + (i - FAULT_AT) as f64 * STEP_CPU;
            let faulted = i >= FAULT_AT;
            let node_cpu = match change {
                Change::CounterReset if faulted => after,
                _ => steady,
            };
            let node = NodeSample {
                cpu_seconds: node_cpu,
                memory_bytes: 1.5e9,
                timestamp_ms: Some(ts),
            };
            let container_cpu = if faulted { after } else { steady - 90.0 };
            let mut sample = PodSample::single("default", pod, container_cpu, 1.048_576e7, ts);
            for c in &mut sample.containers {
                c.start_time_seconds = match change {
                    Change::Restart if faulted => fault_ts_s - 5.0,
                    _ => 1.6e9,
                };
            }
            Bytes::from(render_resource_metrics(&node, &[sample]))
        })
        .collect();
    Fault::Sequence(bodies.into())
}

/// Runs the phase: kubelets, nodes and pods, a fresh pair of servers, sampling, cleanup.
pub(super) async fn compare(
    ctx: &Ctx,
    primary: &procs::Process,
    upstream_bin: &Path,
) -> Result<Timeline> {
    let kubelets = start_kubelets(ctx).await?;
    create_nodes_and_pods(ctx).await?;
    let extra = ["--node-selector=faultseries=true".to_owned()];
    let result = match Pair::start(ctx, primary, upstream_bin, "series", &extra).await {
        Ok(pair) => {
            let servers: Vec<(&'static str, String)> =
                pair.servers().map(|(n, u, _)| (n, u.to_owned())).collect();
            let timeline = sample(ctx, &servers, ctx.resolution * 8).await;
            pair.stop().await;
            Ok(timeline)
        }
        Err(e) => Err(e),
    };
    delete_nodes_and_pods(ctx).await;
    drop(kubelets);
    result
}

async fn start_kubelets(ctx: &Ctx) -> Result<Vec<FaultyListening>> {
    let pki = TestPki::new()?;
    let mut out = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        let ip = node_ip(i).to_string();
        let mut config = (*pki.server_cert(&[&ip])?.server_config(None)?).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let addr = SocketAddr::new(IpAddr::V4(node_ip(i)), ctx.kwok_port);
        let fault = series(case.change, &pod_name(case));
        out.push(
            FaultyKubelet::start_on(addr, fault, Some(std::sync::Arc::new(config)))
                .await
                .with_context(|| format!("binding {addr}"))?,
        );
    }
    Ok(out)
}

async fn create_nodes_and_pods(ctx: &Ctx) -> Result<()> {
    let nodes = Api::<Node>::all(ctx.client.clone());
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), "default");
    for (i, case) in CASES.iter().enumerate() {
        let name = node_name(case);
        let _ = nodes.delete(&name, &DeleteParams::default()).await;
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name,
                "annotations": {"kwok.x-k8s.io/node": "fake"},
                "labels": {"kubernetes.io/hostname": name, "type": "kwok",
                           "faultseries": "true", "metrics-server-skip": "true"}},
            "status": {"addresses": [{"type": "InternalIP", "address": node_ip(i).to_string()}]}
        }))?;
        create_retrying(&nodes, &node, &name).await?;
        let pod_name = pod_name(case);
        let _ = pods
            .delete(&pod_name, &DeleteParams::default().grace_period(0))
            .await;
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": pod_name},
            "spec": {"nodeName": name, "automountServiceAccountToken": false,
                     "tolerations": [{"operator": "Exists"}],
                     "containers": [{"name": pod_name, "image": "fake"}]}
        }))?;
        create_retrying(&pods, &pod, &pod_name).await?;
    }
    Ok(())
}

async fn delete_nodes_and_pods(ctx: &Ctx) {
    let nodes = Api::<Node>::all(ctx.client.clone());
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), "default");
    for case in &CASES {
        let _ = pods
            .delete(&pod_name(case), &DeleteParams::default().grace_period(0))
            .await;
        let _ = nodes
            .delete(&node_name(case), &DeleteParams::default())
            .await;
    }
}

/// Every change of answer, per (server, case, "node" | "pod").
pub(super) struct Timeline {
    pub(super) rows: Vec<Row>,
}

pub(super) struct Row {
    pub(super) server: &'static str,
    pub(super) slug: &'static str,
    pub(super) what: &'static str,
    pub(super) object: &'static str,
    pub(super) answers: Vec<String>,
}

/// Asks each server (name, base URL) for each case's node and pod every two seconds.
async fn sample(ctx: &Ctx, servers: &[(&'static str, String)], observe: Duration) -> Timeline {
    let mut rows = Vec::new();
    for (server, _) in servers {
        for case in &CASES {
            for object in ["node", "pod"] {
                rows.push(Row {
                    server,
                    slug: case.slug,
                    what: case.what,
                    object,
                    answers: Vec::new(),
                });
            }
        }
    }
    let end = Instant::now() + observe;
    while Instant::now() < end {
        for row in &mut rows {
            let Some((_, url)) = servers.iter().find(|(s, _)| *s == row.server) else {
                continue;
            };
            let node = format!("faultseries-{}", row.slug);
            let answer = if row.object == "node" {
                node_cpu(ctx, &format!("{url}{API}/nodes/{node}")).await
            } else {
                pod_cpu(
                    ctx,
                    &format!("{url}{API}/namespaces/default/pods/{node}-pod"),
                )
                .await
            };
            if row.answers.last() != Some(&answer) {
                row.answers.push(answer);
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Timeline { rows }
}

async fn node_cpu(ctx: &Ctx, url: &str) -> String {
    match ctx.https.get(url).await {
        Ok(r) if r.status == 200 => serde_json::from_str::<NodeMetrics>(&r.body).map_or_else(
            |_| "undecodable".to_owned(),
            |m| format!("cpu {}", m.usage.get("cpu").map_or("?", String::as_str)),
        ),
        Ok(r) => format!("not served ({})", r.status),
        Err(_) => "no answer".to_owned(),
    }
}

async fn pod_cpu(ctx: &Ctx, url: &str) -> String {
    match ctx.https.get(url).await {
        Ok(r) if r.status == 200 => match serde_json::from_str::<PodMetrics>(&r.body) {
            Ok(m) if m.containers.is_empty() => "served, no containers".to_owned(),
            Ok(m) => m
                .containers
                .iter()
                .map(|c| format!("cpu {}", c.usage.get("cpu").map_or("?", String::as_str)))
                .collect::<Vec<_>>()
                .join(", "),
            Err(_) => "undecodable".to_owned(),
        },
        Ok(r) => format!("not served ({})", r.status),
        Err(_) => "no answer".to_owned(),
    }
}

impl Timeline {
    /// A Markdown table: one line per case and object, each server's answers in order.
    pub(super) fn table(&self) -> String {
        let mut out = String::from(
            "\n| one-tick fault | asked for | ours: answers in order (every 2 s) | upstream v0.9.0: answers in order |\n|---|---|---|---|\n",
        );
        for ours in self.rows.iter().filter(|r| r.server == "ours") {
            let upstream = self
                .rows
                .iter()
                .find(|r| r.server == "upstream" && r.slug == ours.slug && r.object == ours.object)
                .map_or_else(String::new, |r| r.answers.join(" → "));
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                ours.what,
                ours.object,
                ours.answers.join(" → "),
                upstream
            ));
        }
        out
    }

    /// Served CPU values of ours other than the exact rate (an absurd rate across the fault).
    pub(super) fn wrong_rates_of_ours(&self) -> Vec<String> {
        self.rows
            .iter()
            .filter(|r| r.server == "ours")
            .flat_map(|r| {
                r.answers
                    .iter()
                    .filter(|a| a.starts_with("cpu ") && a.as_str() != "cpu 100m")
                    .map(move |a| format!("{} {}: {a}", r.slug, r.object))
            })
            .collect()
    }

    /// Whether ours served the exact rate again after the fault for every case and object.
    pub(super) fn ours_recovered(&self) -> bool {
        self.rows
            .iter()
            .filter(|r| r.server == "ours")
            .all(|r| r.answers.last().map(String::as_str) == Some("cpu 100m"))
    }
}
