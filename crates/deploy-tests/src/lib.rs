//! Helpers for the deploy checks (`tests/deploy.rs`): finding the tools and the upstream module,
//! reading multi-document YAML into JSON values, comparing Kubernetes objects, normalizing RBAC into
//! the set of permissions it grants, and reading an OCI image layout.
//!
//! Everything here is pure or runs local commands; the checks that need a cluster get its kubeconfig
//! from `DEPLOY_TEST_KUBECONFIG`. A missing prerequisite is reported as [`Skip`], which the runner turns into a
//! skipped case (or a failure under `DEPLOY_TEST_REQUIRE=1`).

pub mod manifest;
pub mod oci;
pub mod rbac;
pub mod tools;

use std::fmt;

/// Why a check could not run: a tool, the upstream module, a cluster or an artefact is missing.
/// Returned inside an [`anyhow::Error`]; the runner looks for it with `downcast_ref`.
#[derive(Debug)]
pub struct Skip(pub String);

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Skip {}

/// Returns an error that makes the current check skip with `reason`.
pub fn skip(reason: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Skip(reason.into()))
}
