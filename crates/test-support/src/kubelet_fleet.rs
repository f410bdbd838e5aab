//! A fleet of simulated kubelets in one process, for benchmarks at thousands of nodes.
//!
//! ```text
//! KubeletFleet::start(nodes, port, tls) ──▶ one TLS listener per node on <node ip>:<port>
//!    every GET (any path) on node i's address ──▶ node i's /metrics/resource body, rendered now:
//!    counters = rate × (now − fleet start) + a per-container offset (monotonic), memory wobbles
//!    around a per-container base, timestamps = now in ms
//! ```
//!
//! Each node answers on its own loopback address, so a metrics server opens one connection per
//! node as it would against real kubelets. Bodies are those of a real kubelet (see
//! [`render_resource_metrics`]); the requests and body bytes served are counted.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::exposition::{ContainerSample, NodeSample, PodSample, render_resource_metrics};

/// One simulated node: its address and the pods it runs.
#[derive(Debug, Clone)]
pub struct FleetNode {
    /// The node's InternalIP (a loopback address).
    pub ip: IpAddr,
    /// `(namespace, pod name)` of each pod on the node.
    pub pods: Vec<(String, String)>,
    /// Container names every pod has.
    pub containers: Vec<String>,
}

/// Requests, body bytes and connections served by the whole fleet.
#[derive(Debug, Default)]
pub struct FleetCounters {
    /// Requests answered.
    pub requests: AtomicU64,
    /// Of those, requests that came over h2.
    pub h2_requests: AtomicU64,
    /// Response body bytes sent.
    pub body_bytes: AtomicU64,
    /// Connections that completed the TLS handshake.
    pub connections: AtomicU64,
    /// Of those, handshakes that resumed an earlier session.
    pub resumed: AtomicU64,
}

/// A running fleet; dropping it closes every listener and connection.
#[derive(Debug)]
pub struct KubeletFleet {
    counters: Arc<FleetCounters>,
    tasks: JoinSet<()>,
}

impl KubeletFleet {
    /// Binds `<ip>:<port>` for every node (each ip must be loopback) and starts answering.
    pub async fn start(
        nodes: Vec<FleetNode>,
        port: u16,
        tls: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<Self> {
        let counters = Arc::new(FleetCounters::default());
        let acceptor = TlsAcceptor::from(tls);
        let started = Instant::now();
        let mut tasks = JoinSet::new();
        for (index, node) in nodes.into_iter().enumerate() {
            if !node.ip.is_loopback() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("{} is not a loopback address", node.ip),
                ));
            }
            let listener = TcpListener::bind(SocketAddr::new(node.ip, port)).await?;
            let sim = Arc::new(NodeSim {
                node,
                seed: index as u64,
                started,
                counters: Arc::clone(&counters),
            });
            tasks.spawn(accept_loop(listener, acceptor.clone(), sim));
        }
        Ok(Self { counters, tasks })
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.counters.requests.load(Ordering::Relaxed)
    }

    /// Requests answered over h2 so far.
    pub fn h2_requests(&self) -> u64 {
        self.counters.h2_requests.load(Ordering::Relaxed)
    }

    /// TLS connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.counters.connections.load(Ordering::Relaxed)
    }

    /// TLS handshakes that resumed a session so far.
    pub fn resumed_connections(&self) -> u64 {
        self.counters.resumed.load(Ordering::Relaxed)
    }

    /// Body bytes sent so far.
    pub fn body_bytes(&self) -> u64 {
        self.counters.body_bytes.load(Ordering::Relaxed)
    }

    /// How many node listeners are running.
    pub fn nodes(&self) -> usize {
        self.tasks.len()
    }
}

#[derive(Debug)]
struct NodeSim {
    node: FleetNode,
    seed: u64,
    started: Instant,
    counters: Arc<FleetCounters>,
}

/// A small deterministic mix so each container gets its own rate and memory.
fn mix(a: u64, b: u64) -> u64 {
    let mut x = a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_add(0xD1B5_4A32_D192_ED03);
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^ (x >> 29)
}

impl NodeSim {
    /// The node's body at `elapsed` seconds after the fleet started, stamped `now_ms`.
    fn body(&self, elapsed: f64, now_ms: i64) -> String {
        let start_s = (now_ms / 1000 - 3600) as f64;
        let mut node_cpu = 1000.0 + elapsed * 0.2;
        let mut node_mem = 1.5e9;
        let pods: Vec<PodSample> = self
            .node
            .pods
            .iter()
            .enumerate()
            .map(|(p, (namespace, name))| {
                let containers = self
                    .node
                    .containers
                    .iter()
                    .enumerate()
                    .map(|(c, cname)| {
                        let h = mix(self.seed, (p * 64 + c) as u64);
                        // 1 to 50 millicores, 8 to 136 MiB, wobbling by up to 1 MiB.
                        let rate = 0.001 + (h % 50) as f64 / 1000.0;
                        let cpu = (h % 10_000) as f64 + rate * elapsed;
                        let base = ((8 + (h >> 8) % 128) << 20) as f64;
                        let memory = base + ((elapsed as u64 + h) % 256 * 4096) as f64;
                        node_cpu += rate * elapsed;
                        node_mem += memory;
                        ContainerSample {
                            name: cname.clone(),
                            cpu_seconds: cpu,
                            memory_bytes: memory,
                            start_time_seconds: start_s,
                            timestamp_ms: Some(now_ms),
                        }
                    })
                    .collect();
                PodSample {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    containers,
                }
            })
            .collect();
        let node = NodeSample::new(node_cpu, node_mem, now_ms);
        render_resource_metrics(&node, &pods)
    }

    fn answer(&self, version: Version) -> Response<Full<Bytes>> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let body = Bytes::from(self.body(self.started.elapsed().as_secs_f64(), now));
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        if version == Version::HTTP_2 {
            self.counters.h2_requests.fetch_add(1, Ordering::Relaxed);
        }
        self.counters
            .body_bytes
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        let mut resp = Response::new(Full::new(body));
        resp.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        resp
    }
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, sim: Arc<NodeSim>) {
    let mut conns = JoinSet::new();
    loop {
        let Ok((tcp, _peer)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let sim = Arc::clone(&sim);
        conns.spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            sim.counters.connections.fetch_add(1, Ordering::Relaxed);
            if tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
                sim.counters.resumed.fetch_add(1, Ordering::Relaxed);
            }
            let service = service_fn(move |req: Request<Incoming>| {
                let resp = sim.answer(req.version());
                async move { Ok::<_, Infallible>(resp) }
            });
            // Errors are client hang-ups; nothing to report.
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
        while conns.try_join_next().is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim() -> NodeSim {
        NodeSim {
            node: FleetNode {
                ip: IpAddr::from([127, 0, 0, 1]),
                pods: vec![
                    ("ns".to_owned(), "a".to_owned()),
                    ("ns".to_owned(), "b".to_owned()),
                ],
                containers: vec!["app".to_owned(), "sidecar".to_owned()],
            },
            seed: 7,
            started: Instant::now(),
            counters: Arc::default(),
        }
    }

    fn value(body: &str, prefix: &str) -> f64 {
        let line = body
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line {prefix} in {body}"));
        line.split(' ').nth(1).and_then(|v| v.parse().ok()).unwrap()
    }

    #[test]
    fn counters_advance_and_every_container_is_reported() {
        let s = sim();
        let early = s.body(10.0, 1_700_000_010_000);
        let late = s.body(25.0, 1_700_000_025_000);
        for key in [
            "container_cpu_usage_seconds_total{container=\"app\",namespace=\"ns\",pod=\"a\"}",
            "container_cpu_usage_seconds_total{container=\"sidecar\",namespace=\"ns\",pod=\"b\"}",
            "node_cpu_usage_seconds_total ",
        ] {
            assert!(
                value(&late, key) > value(&early, key),
                "{key} did not advance"
            );
        }
        assert!(late.contains(" 1700000025000\n"));
        let memory = value(
            &late,
            "container_memory_working_set_bytes{container=\"app\",namespace=\"ns\",pod=\"a\"}",
        );
        assert!((8.0 * 1048576.0..140.0 * 1048576.0).contains(&memory));
    }

    #[tokio::test]
    async fn a_non_loopback_node_is_refused() {
        let pki = crate::TestPki::new().unwrap();
        let tls = pki
            .server_cert(&["127.0.0.1"])
            .unwrap()
            .server_config(None)
            .unwrap();
        let node = FleetNode {
            ip: IpAddr::from([10, 0, 0, 1]),
            pods: Vec::new(),
            containers: Vec::new(),
        };
        let err = KubeletFleet::start(vec![node], 0, tls).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    }
}
