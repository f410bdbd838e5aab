//! Fresh namespaces for the suites that create their own workloads.

use std::time::Duration;

use anyhow::{Context as _, Result};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, ObjectMeta, PostParams};

use crate::retry;

/// How long the controller manager gets to give a new namespace its ServiceAccount.
const ACCOUNT_DEADLINE: Duration = Duration::from_secs(60);

/// Creates namespace `name` and returns once pods can be created in it.
///
/// Admission refuses every pod of a namespace until the controller manager has given it its
/// `default` ServiceAccount, and a suite that creates pods right away can be quicker than that.
pub async fn create_ready(client: &kube::Client, name: &str) -> Result<()> {
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .with_context(|| format!("creating namespace {name}"))?;
    wait_for_default_account(client, name).await
}

/// Waits until namespace `name` has its `default` ServiceAccount.
pub async fn wait_for_default_account(client: &kube::Client, name: &str) -> Result<()> {
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), name);
    retry::eventually(ACCOUNT_DEADLINE, Duration::from_millis(250), || async {
        accounts
            .get("default")
            .await
            .map(drop)
            .map_err(anyhow::Error::from)
    })
    .await
    .with_context(|| format!("waiting for the default ServiceAccount of namespace {name}"))
}
