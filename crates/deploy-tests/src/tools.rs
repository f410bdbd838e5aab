//! Where things are: the repository, the pinned tool binaries, the upstream metrics-server module;
//! and running commands with their stderr kept for the error message.

use std::ffi::OsStr;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};

use crate::skip;

/// The repository root (this crate lives in `crates/deploy-tests`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// A tool built by `hack/build-tools.sh`: `$<ENV>` if set, else `.cluster/bin/<name>`.
pub fn tool(name: &str, env: &str) -> Result<PathBuf> {
    let path = match std::env::var_os(env) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => repo_root().join(".cluster/bin").join(name),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(skip(format!(
            "{name} not found at {} (build it with: hack/build-tools.sh {})",
            path.display(),
            build_tools_module(name)
        )))
    }
}

/// The `hack/tools/<module>` that builds `name`.
fn build_tools_module(name: &str) -> &'static str {
    match name {
        "kubectl" => "kubernetes",
        "helm" => "helm",
        "crane" => "crane",
        _ => "<tool>",
    }
}

pub fn kubectl() -> Result<PathBuf> {
    tool("kubectl", "KUBECTL")
}

pub fn helm() -> Result<PathBuf> {
    tool("helm", "HELM")
}

/// The admin kubeconfig of the cluster to validate against: `DEPLOY_TEST_KUBECONFIG`, set by
/// `make deploy-test` (not `KUBECONFIG`, so that a plain `cargo test` never touches a cluster of yours).
pub fn kubeconfig() -> Result<PathBuf> {
    match std::env::var_os("DEPLOY_TEST_KUBECONFIG") {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        _ => Err(skip(
            "DEPLOY_TEST_KUBECONFIG not set (the cluster checks run under `make deploy-test`)",
        )),
    }
}

/// The upstream metrics-server version pinned in `hack/tools/metrics-server/go.mod`.
pub fn upstream_version() -> Result<String> {
    first_value(
        &repo_root().join("hack/tools/metrics-server/go.mod"),
        "sigs.k8s.io/metrics-server",
    )
}

/// The upstream module's source tree (kustomize manifests under `manifests/`, the Helm chart under
/// `charts/metrics-server`): `$UPSTREAM_METRICS_SERVER_DIR`, else the module in the Go module cache.
/// `go mod download` puts it there if it is missing (the tool module `hack/tools/metrics-server`
/// pins it, so this is the same download `hack/build-tools.sh metrics-server` does).
pub fn upstream_dir() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("UPSTREAM_METRICS_SERVER_DIR").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let module = format!("sigs.k8s.io/metrics-server@{}", upstream_version()?);
    let out = Command::new("go")
        .args(["mod", "download", "-json", &module])
        .current_dir(repo_root().join("hack/tools/metrics-server"))
        .stdin(Stdio::null())
        .output();
    let out = match out {
        Ok(out) if out.status.success() => out,
        Ok(out) => {
            return Err(skip(format!(
                "`go mod download {module}` failed: {}{}",
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim()
            )));
        }
        Err(e) => return Err(skip(format!("cannot run go ({e}): is Go installed?"))),
    };
    let info: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("parsing `go mod download -json {module}`"))?;
    let dir = PathBuf::from(info["Dir"].as_str().unwrap_or_default());
    if dir.join("manifests").is_dir() {
        Ok(dir)
    } else {
        Err(skip(format!(
            "upstream module {module} has no manifests folder at {}",
            dir.display()
        )))
    }
}

/// Runs `cmd`, returning its stdout; a failure carries the command line, status and stderr.
pub fn run(cmd: &mut Command) -> Result<String> {
    run_with_input(cmd, None)
}

/// Like [`run`], with `input` written to the command's stdin.
pub fn run_with_input(cmd: &mut Command, input: Option<&[u8]>) -> Result<String> {
    let line = describe(cmd);
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("starting {line}"))?;
    if let Some(data) = input {
        let mut stdin = child.stdin.take().context("stdin")?;
        // A command that fails early closes its stdin; its stderr says why.
        let _ = stdin.write_all(data);
    }
    let out = child
        .wait_with_output()
        .with_context(|| format!("waiting for {line}"))?;
    if !out.status.success() {
        bail!(
            "{line} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            tail(&String::from_utf8_lossy(&out.stdout))
        );
    }
    String::from_utf8(out.stdout).with_context(|| format!("{line}: output is not UTF-8"))
}

fn tail(stdout: &str) -> String {
    let s = stdout.trim();
    if s.is_empty() {
        String::new()
    } else {
        let start = s.len().saturating_sub(2000);
        let start = (start..s.len())
            .find(|i| s.is_char_boundary(*i))
            .unwrap_or(0);
        format!("\nstdout: {}", &s[start..])
    }
}

fn describe(cmd: &Command) -> String {
    let prog = Path::new(cmd.get_program())
        .file_name()
        .unwrap_or_else(|| OsStr::new("?"))
        .to_string_lossy()
        .into_owned();
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    format!("`{prog} {}`", args.join(" "))
}

/// The first whitespace-separated word after `key` on a line of `file` that starts with `key`
/// (for go.mod requirements and Cargo.toml's `version = "..."`).
fn first_value(file: &Path, key: &str) -> Result<String> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    text.lines()
        .map(str::trim)
        .find_map(|l| {
            let rest = l.strip_prefix(key)?;
            rest.starts_with([' ', '\t', '='])
                .then(|| {
                    rest.trim_start_matches([' ', '\t', '='])
                        .split_whitespace()
                        .next()
                })
                .flatten()
                .map(|w| w.trim_matches('"').to_owned())
        })
        .with_context(|| format!("no {key} in {}", file.display()))
}

/// The workspace version (`[workspace.package] version` in Cargo.toml), without a leading `v`.
pub fn workspace_version() -> Result<String> {
    first_value(&repo_root().join("Cargo.toml"), "version")
}

/// The Kubernetes version the tools are built from (`k8s.io/kubernetes` in its go.mod), e.g. `v1.36.3`.
pub fn kubernetes_version() -> Result<String> {
    first_value(
        &repo_root().join("hack/tools/kubernetes/go.mod"),
        "k8s.io/kubernetes",
    )
}
