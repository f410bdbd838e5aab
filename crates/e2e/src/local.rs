//! A local cluster made by `hack/cluster.sh`, as the suites that run servers beside the cluster's own
//! see it (fault-compare, bench-compare, diagnosis): clients, the cluster's folder, the resolution
//! the server runs at, KWOK's kubelet port, and how to start another server with the primary's flags.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, Result};
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;

use crate::https::{Identity, InsecureClient};
use crate::procs::{self, Process};
use crate::runner;

/// The cluster, its admin clients and the facts the suites read from it.
pub struct LocalCluster {
    /// kube-rs client with the admin kubeconfig.
    pub client: kube::Client,
    /// HTTPS client with the admin identity, for talking to servers directly.
    pub https: InsecureClient,
    /// The cluster's folder (`.../clusters/<name>`).
    pub dir: PathBuf,
    /// The primary server's `--metric-resolution` (60 s, upstream's default, when unset).
    pub resolution: Duration,
    /// The kubelet port KWOK serves simulated nodes on (from `kwok-node-1`'s status).
    pub kubelet_port: u16,
}

impl std::fmt::Debug for LocalCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCluster")
            .field("dir", &self.dir)
            .field("resolution", &self.resolution)
            .field("kubelet_port", &self.kubelet_port)
            .finish_non_exhaustive()
    }
}

impl LocalCluster {
    /// Reads the cluster behind `kubeconfig` and its running server.
    pub async fn discover(kubeconfig: &Path) -> Result<Self> {
        let dir = kubeconfig
            .parent()
            .context("kubeconfig folder")?
            .canonicalize()?;
        let config = runner::load_config(kubeconfig).await?;
        let https = InsecureClient::new(Identity::from_auth_info(&config.auth_info)?.as_ref())?;
        let client = kube::Client::try_from(config)?;
        let node = Api::<Node>::all(client.clone()).get("kwok-node-1").await?;
        let kubelet_port = node
            .status
            .and_then(|s| s.daemon_endpoints)
            .and_then(|d| d.kubelet_endpoint)
            .map(|e| e.port)
            .context("kwok-node-1 has no kubelet endpoint port")?;
        let resolution = primary_server(&dir)?
            .flag("metric-resolution")
            .and_then(|r| r.strip_suffix('s')?.parse().ok())
            .map_or(Duration::from_secs(60), Duration::from_secs);
        Ok(Self {
            client,
            https,
            dir,
            resolution,
            kubelet_port: u16::try_from(kubelet_port)?,
        })
    }

    /// The cluster's own metrics-server process.
    pub fn primary(&self) -> Result<Process> {
        primary_server(&self.dir)
    }
}

fn primary_server(dir: &Path) -> Result<Process> {
    procs::find("metrics-server", &dir.to_string_lossy())
}

/// A free TCP port on 127.0.0.1 (for a server started beside the primary).
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The primary's arguments for a server beside it: `--secure-port=<port>`, without the arguments
/// that start with one of `drop`, then `extra`.
pub fn sibling_args(primary: &Process, port: u16, drop: &[&str], extra: &[String]) -> Vec<String> {
    let mut args: Vec<String> = primary
        .argv
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .filter(|a| !a.starts_with("--secure-port=") && !drop.iter().any(|d| a.starts_with(d)))
        .collect();
    args.push(format!("--secure-port={port}"));
    args.extend(extra.iter().cloned());
    args
}

/// Starts `bin` with `args`, stdout and stderr to `log`; killed when the handle is dropped.
pub fn spawn_logged(bin: &Path, args: &[String], log: &Path) -> Result<tokio::process::Child> {
    let file = std::fs::File::create(log)?;
    tokio::process::Command::new(bin)
        .args(args)
        .stdout(Stdio::from(file.try_clone()?))
        .stderr(Stdio::from(file))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    #[test]
    fn sibling_args_replace_the_port_drop_and_append() {
        let primary = Process {
            pid: 1,
            exe: PathBuf::from("/bin/metrics-server"),
            argv: [
                "metrics-server",
                "--kubelet-insecure-tls",
                "--secure-port=443",
                "--node-selector=a!=b",
                "--metric-resolution=15s",
            ]
            .iter()
            .map(OsString::from)
            .collect(),
            env: Vec::new(),
            cwd: PathBuf::from("/"),
            log: None,
        };
        assert_eq!(
            sibling_args(
                &primary,
                9,
                &["--node-selector=", "--kubelet-insecure-tls"],
                &["--x".to_owned()]
            ),
            ["--metric-resolution=15s", "--secure-port=9", "--x"]
        );
        assert_eq!(
            sibling_args(&primary, 9, &[], &[]),
            [
                "--kubelet-insecure-tls",
                "--node-selector=a!=b",
                "--metric-resolution=15s",
                "--secure-port=9"
            ]
        );
    }
}
