//! Helpers for the end-to-end suite of metrics-server-rs (`tests/e2e.rs`).
//!
//! The suite drives a live local cluster made by `hack/cluster.sh`: a real kube-apiserver (with the
//! aggregation layer), kube-controller-manager, kube-scheduler and etcd, KWOK simulating the nodes and
//! their kubelets, and one metrics-server process (ours or upstream's). It ports upstream's
//! `test/e2e_test.go` and adds kubectl, APIService, HPA and loopback checks.
//!
//! ```text
//!   tests/e2e.rs ──kube::Client──▶ kube-apiserver ──aggregator──▶ metrics-server ──▶ KWOK "kubelets"
//!        │  └──────kubectl─────────────▲                              ▲                   ▲
//!        └──https (client cert, no verify): /readyz /livez /metrics ──┘                   │
//!        └──https (client cert, no verify): simulated /metrics/resource ──────────────────┘
//! ```
//!
//! Run it with `E2E_KUBECONFIG=<admin kubeconfig> KUBECTL=<kubectl> cargo test -p metrics-server-e2e --test e2e`
//! (`make e2e-run KUBECONFIG=<file>` does that); `E2E_FILTER=<substring>` selects cases by name. Plain
//! `KUBECONFIG` is ignored; without `E2E_KUBECONFIG` the suites skip, or fail under `E2E_REQUIRE=1`
//! (see [`runner`]).
//!
//! The modules here are pure or thin, and unit-tested in the ordinary unit run.

pub mod bench;
pub mod discovery_view;
pub mod https;
pub mod kubectl;
pub mod local;
pub mod metrics;
pub mod namespace;
pub mod procs;
pub mod prom;
pub mod quantity;
pub mod retry;
pub mod route;
pub mod runner;
pub mod ss;
pub mod wire;
