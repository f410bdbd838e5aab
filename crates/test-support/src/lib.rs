//! Test fixtures shared by metrics-server-rs crates. Loopback only, never used in production.
//!
//! - [`pki`]: an rcgen-minted CA with server (IP/DNS SANs) and client (CN/O) leaves, PEM
//!   files in a temp dir, and rustls server configs.
//! - [`fake_kubelet`]: an HTTPS/HTTP server on `127.0.0.1:0` with canned routes, latency,
//!   bearer-token and client-certificate requirements, and connection/request counters.
//! - [`faulty_kubelet`]: a hand-written HTTP/1.1 kubelet that hangs, trickles, resets, redirects,
//!   streams 1 GiB or answers garbage, with connection, request and body-byte counters.
//! - [`exposition`]: renders realistic kubelet `/metrics/resource` bodies.
//! - [`kubelet_fleet`]: thousands of simulated kubelets in one process, one TLS listener per
//!   node address, with bodies whose counters advance with time.

pub mod exposition;
pub mod fake_kubelet;
pub mod faulty_kubelet;
pub mod kubelet_fleet;
pub mod pki;

pub use exposition::{
    ContainerSample, NodeSample, PodSample, UPSTREAM_FIXTURE, format_go_float,
    render_resource_metrics,
};
pub use fake_kubelet::{
    FakeKubelet, FakeKubeletError, Listening, RESOURCE_METRICS_PATH, Route, SeenRequest,
};
pub use faulty_kubelet::{Fault, FaultyKubelet, FaultyListening};
pub use kubelet_fleet::{FleetCounters, FleetNode, KubeletFleet};
pub use pki::{IssuedCert, PemDir, PkiError, TestPki};
