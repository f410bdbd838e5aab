//! `metrics-server doctor`: why the metrics API does not work, and what to run to fix it.
//!
//! ```text
//!   cli::main_with_args ─► gather(kube::Client) ─► Facts ─► analyze (pure) ─► Vec<Finding> ─► table | json
//! ```
//!
//! [`gather`] reads the cluster (APIServices of `metrics.k8s.io`, their Service, EndpointSlices and
//! pods, SubjectAccessReviews for the server's ServiceAccount, the
//! `extension-apiserver-authentication` ConfigMap, the server's scrape-health document through the
//! aggregator, HPAs at `<unknown>` and their pods) into plain [`Facts`]; [`analyze`] turns facts into
//! [`Finding`]s and never does IO, so its rules are unit-tested on hand-built facts.

pub mod analyze;
pub mod cli;
pub mod error;
pub mod facts;
pub mod finding;
pub mod gather;
pub mod scrape_health;

pub use analyze::analyze;
pub use cli::main_with_args;
pub use error::DoctorError;
pub use facts::Facts;
pub use finding::{Finding, Severity};
pub use gather::{Options, gather};
