//! The kubelet fleet, split over processes when one cannot hold its sockets.
//!
//! Every simulated node needs a listener, plus one accepted connection per server that scrapes
//! it. At 10,000 nodes that passes a 20,000 open-file limit that cannot be raised without
//! `CAP_SYS_RESOURCE`, so the first share of nodes is served in the harness and each further
//! share by a copy of this binary started with [`CHILD_ROLE`] set. A child prints `ready` once
//! its listeners are bound, serves until its stdin closes, then prints `<requests> <bytes>`.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::IpAddr;
use std::ops::Range;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};

use anyhow::{Context as _, Result, anyhow, bail};
use metrics_server_e2e::bench;
use metrics_server_test_support::{FleetNode, KubeletFleet, TestPki};

use crate::{CONTAINERS, node_ip, pod_id};

/// Set in a child's environment: `<first node>,<end>,<pods per node>,<port>`.
pub(crate) const CHILD_ROLE: &str = "BENCH_FLEET_CHILD";

/// Open files a process keeps for everything but the fleet (logs, clients, the runtime).
const RESERVED_FILES: usize = 1024;

/// What the fleet simulates.
#[derive(Clone, Copy)]
pub(crate) struct FleetSpec {
    pub(crate) nodes: usize,
    pub(crate) pods_per_node: usize,
    pub(crate) port: u16,
}

/// The fleet of the harness process and its children.
pub(crate) struct Fleet {
    local: KubeletFleet,
    children: Vec<FleetChild>,
}

struct FleetChild {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Fleet {
    /// Starts the fleet for `spec.nodes` nodes scraped by `servers` servers.
    pub(crate) async fn start(spec: FleetSpec, servers: usize) -> Result<Self> {
        let share = nodes_per_process(servers)?;
        let local_end = spec.nodes.min(share);
        let local = start_range(spec, 0..local_end).await?;
        let mut children = Vec::new();
        let mut first = local_end;
        while first < spec.nodes {
            let end = spec.nodes.min(first + share);
            children.push(FleetChild::start(spec, first..end)?);
            first = end;
        }
        Ok(Self { local, children })
    }

    /// Process ids of the child fleets (their cost is reported beside the harness's).
    pub(crate) fn child_pids(&self) -> Vec<u32> {
        self.children.iter().map(|c| c.child.id()).collect()
    }

    /// Stops the children and returns the scrapes and body bytes the whole fleet answered.
    pub(crate) fn finish(self) -> Result<(u64, u64)> {
        let (mut requests, mut bytes) = (self.local.requests(), self.local.body_bytes());
        for child in self.children {
            let (r, b) = child.finish()?;
            requests += r;
            bytes += b;
        }
        Ok((requests, bytes))
    }
}

/// How many nodes one process can serve under its open-file limit.
fn nodes_per_process(servers: usize) -> Result<usize> {
    let limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| bench::open_files_limit(&l))
        .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
    let share = limit.saturating_sub(RESERVED_FILES) / (1 + servers);
    if share == 0 {
        bail!("an open-file limit of {limit} leaves no room for the kubelet fleet");
    }
    Ok(share)
}

async fn start_range(spec: FleetSpec, range: Range<usize>) -> Result<KubeletFleet> {
    let pki = TestPki::new()?;
    // The servers run with --kubelet-insecure-tls (as kwokctl starts them): the handshake is real,
    // the name in the certificate is not checked.
    let tls = pki
        .server_cert(&["127.1.0.1", "localhost"])?
        .server_config(None)?;
    let nodes = range
        .map(|i| FleetNode {
            ip: IpAddr::V4(node_ip(i)),
            pods: (0..spec.pods_per_node)
                .map(|j| pod_id(i, j, spec.pods_per_node))
                .collect(),
            containers: CONTAINERS.iter().map(|c| (*c).to_owned()).collect(),
        })
        .collect();
    KubeletFleet::start(nodes, spec.port, tls)
        .await
        .context("starting the kubelet fleet")
}

impl FleetChild {
    fn start(spec: FleetSpec, range: Range<usize>) -> Result<Self> {
        let role = format!(
            "{},{},{},{}",
            range.start, range.end, spec.pods_per_node, spec.port
        );
        let mut child = Command::new(std::env::current_exe()?)
            .env(CHILD_ROLE, role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting a kubelet fleet child")?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().context("no child stdout")?);
        let mut me = Self {
            child,
            stdin,
            stdout,
        };
        let line = me.read_line()?;
        if line != "ready" {
            let _ = me.child.kill();
            bail!("fleet child for nodes {range:?}: {line}");
        }
        Ok(me)
    }

    fn read_line(&mut self) -> Result<String> {
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        Ok(line.trim().to_owned())
    }

    fn finish(mut self) -> Result<(u64, u64)> {
        drop(self.stdin.take());
        let line = self.read_line()?;
        let _ = self.child.wait();
        let mut fields = line.split(' ').map(str::parse::<u64>);
        match (fields.next(), fields.next()) {
            (Some(Ok(r)), Some(Ok(b))) => Ok((r, b)),
            _ => Err(anyhow!("fleet child ended with {line:?}")),
        }
    }
}

/// The child's whole life: serve nodes `first..end` until stdin closes.
pub(crate) fn child_main(role: &str) -> ExitCode {
    let report = |line: &str| {
        let mut out = std::io::stdout();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    let Some((spec, range)) = parse_role(role) else {
        report(&format!("bad {CHILD_ROLE}={role:?}"));
        return ExitCode::FAILURE;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            report(&format!("starting the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let fleet = match start_range(spec, range).await {
            Ok(f) => f,
            Err(e) => {
                report(&format!("{e:#}"));
                return ExitCode::FAILURE;
            }
        };
        report("ready");
        // Serve until the parent closes our stdin (or dies).
        let _ = tokio::task::spawn_blocking(|| {
            std::io::copy(&mut std::io::stdin(), &mut std::io::sink())
        })
        .await;
        report(&format!("{} {}", fleet.requests(), fleet.body_bytes()));
        ExitCode::SUCCESS
    })
}

fn parse_role(role: &str) -> Option<(FleetSpec, Range<usize>)> {
    let mut parts = role.split(',');
    let mut next = || parts.next()?.parse::<usize>().ok();
    let (first, end, pods_per_node, port) = (next()?, next()?, next()?, next()?);
    let spec = FleetSpec {
        nodes: end,
        pods_per_node,
        port: u16::try_from(port).ok()?,
    };
    Some((spec, first..end))
}
