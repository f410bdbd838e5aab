//! Kubelet scraper of metrics-server-rs (spec C.2–C.5, E.13).
//!
//! ```text
//!  NodeTarget (trimmed Node, from the cluster index)
//!      │  target::resolve_url  (preferred address type, port, path annotation, IPv6)
//!      ▼
//!  Scraper::scrape_tick ──► one task per node: jitter → permit → KubeletClient::get
//!      │                       (pooled hyper + rustls, bearer token, deadline, body cap)
//!      │                    → core::parse_exposition → NodeOutcome
//!      │                    → tracing log, KubeletMetrics, NodeHealth
//!      ▼
//!  TickResult ──into_batch──► metrics_server_core::Batch ──► Store::apply
//!  (or scrape_tick_with: each NodeOutcome to a sink as it finishes, e.g. a core TickBuilder)
//! ```
//!
//! Architecture invariants:
//! - A node's failure (address, network, TLS, status, body, decode) affects only that node.
//! - Every request is bounded by min(tick deadline, start + request timeout).
//! - No globals: metrics are registered on a caller's registry; health is owned by the scraper.

pub mod client;
pub mod error;
pub mod health;
mod http1;
pub mod metrics;
mod negotiate;
pub mod scraper;
pub mod target;
pub mod tls;
pub mod token;

pub use client::{
    ClientBuildError, Fetched, HttpVersion, KubeletClient, KubeletClientConfig, Transport,
};
pub use error::{ErrorClass, ScrapeError, TlsFailure};
pub use health::{NodeHealth, NodeHealthRecord, Route};
pub use metrics::KubeletMetrics;
pub use scraper::{NodeOutcome, NodeProxy, ProxyFuture, Scraper, ScraperConfig, TickResult};
pub use target::{
    AddressConfig, AddressError, NodeTarget, PortSource, Scheme, ScrapeTarget, node_proxy_path,
    resolve_url,
};
pub use tls::{ClientCert, PemSource, ServerVerification, TlsConfigError, TlsSettings};
pub use token::{TokenError, TokenSource};
