//! Running the real `kubectl` and reading its column output.

use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};

/// How long one kubectl invocation may take.
const KUBECTL_TIMEOUT: Duration = Duration::from_secs(60);

/// The kubectl binary (`$KUBECTL`, else `kubectl` on `PATH`) and the kubeconfig it is pointed at.
#[derive(Clone, Debug)]
pub struct Kubectl {
    binary: String,
    kubeconfig: String,
}

impl Kubectl {
    /// Uses `$KUBECTL` (default `kubectl`) with `--kubeconfig=<kubeconfig>`, so the ambient
    /// `KUBECONFIG` and `~/.kube/config` are never used.
    pub fn new(kubeconfig: &std::path::Path) -> Self {
        let binary = std::env::var("KUBECTL")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "kubectl".to_owned());
        Self {
            binary,
            kubeconfig: kubeconfig.display().to_string(),
        }
    }

    /// Uses `binary` (another kubectl, e.g. an older release) with the same kubeconfig.
    pub fn with_binary(&self, binary: &str) -> Self {
        Self {
            binary: binary.to_owned(),
            kubeconfig: self.kubeconfig.clone(),
        }
    }

    /// The binary this runs.
    pub fn binary(&self) -> &str {
        &self.binary
    }

    /// Runs `kubectl --kubeconfig=... <args>` and returns its standard output; a non-zero exit is an
    /// error carrying standard error.
    pub async fn run(&self, args: &[&str]) -> Result<String> {
        Ok(self.run_with_log(args).await?.0)
    }

    /// Like [`Kubectl::run`], also returning standard error (where `-v=6` logs each request URL).
    pub async fn run_with_log(&self, args: &[&str]) -> Result<(String, String)> {
        let mut cmd = tokio::process::Command::new(&self.binary);
        cmd.arg(format!("--kubeconfig={}", self.kubeconfig));
        cmd.args(args).kill_on_drop(true);
        let shown = format!("kubectl {}", args.join(" "));
        let output = tokio::time::timeout(KUBECTL_TIMEOUT, cmd.output())
            .await
            .map_err(|_| anyhow!("{shown}: no exit within {KUBECTL_TIMEOUT:?}"))?
            .with_context(|| format!("starting {} ({shown})", self.binary))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            bail!(
                "{shown}: {} ; stderr: {} ; stdout: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim(),
                stdout.trim()
            );
        }
        Ok((stdout, String::from_utf8_lossy(&output.stderr).into_owned()))
    }
}

/// kubectl's column output: a header row and data rows, cells split on whitespace (none of the cells the
/// suite reads contain spaces).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    /// The header cells, as printed (`NAME`, `CPU(cores)`, ...).
    pub header: Vec<String>,
    /// The data rows.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// Parses the output; blank lines are skipped, the first line is the header.
    pub fn parse(output: &str) -> Result<Self> {
        let mut lines = output
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>());
        let header = lines
            .next()
            .ok_or_else(|| anyhow!("empty kubectl output"))?;
        Ok(Self {
            header,
            rows: lines.collect(),
        })
    }

    /// The index of the header column named `name`.
    pub fn column(&self, name: &str) -> Result<usize> {
        self.header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| anyhow!("no column {name:?} in header {:?}", self.header))
    }

    /// The rows whose cell in column `column` is `value`.
    pub fn rows_where<'a>(
        &'a self,
        column: usize,
        value: &'a str,
    ) -> impl Iterator<Item = &'a Vec<String>> + 'a {
        self.rows
            .iter()
            .filter(move |row| row.get(column).is_some_and(|c| c == value))
    }
}

/// The `metrics.k8s.io` versions whose resources (`.../<version>/nodes`, `.../<version>/namespaces/...`)
/// a `kubectl -v=6` log shows requested, in order of first appearance; discovery requests of the bare
/// group-version are left out.
pub fn metrics_versions_requested(log: &str) -> Vec<String> {
    const GROUP: &str = "/apis/metrics.k8s.io/";
    let mut versions: Vec<String> = Vec::new();
    for line in log.lines() {
        let mut rest = line;
        while let Some(at) = rest.find(GROUP) {
            rest = &rest[at + GROUP.len()..];
            let end = rest
                .find(|c: char| !c.is_ascii_alphanumeric())
                .unwrap_or(rest.len());
            let (version, after) = rest.split_at(end);
            if after.starts_with('/') && !versions.iter().any(|v| v == version) {
                versions.push(version.to_owned());
            }
        }
    }
    versions
}

/// Parses a `kubectl top` CPU cell (`<n>m`) into millicores.
pub fn parse_millicores(cell: &str) -> Option<u64> {
    cell.strip_suffix('m')?.parse().ok()
}

/// Parses a `kubectl top` memory cell (`<n>Mi`) into mebibytes.
pub fn parse_mebibytes(cell: &str) -> Option<u64> {
    cell.strip_suffix("Mi")?.parse().ok()
}

/// Parses a `kubectl top` percentage cell (`<n>%`).
pub fn parse_percent(cell: &str) -> Option<u64> {
    cell.strip_suffix('%')?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requested_metrics_versions_come_from_resource_urls_only() {
        let log = r#"I0612 10:00:00.1 1 round_trippers.go:632] "Response" verb="GET" url="https://127.0.0.1:6443/apis?timeout=32s" status="200 OK" milliseconds=3
I0612 10:00:00.2 1 round_trippers.go:632] "Response" verb="GET" url="https://127.0.0.1:6443/apis/metrics.k8s.io/v1" status="200 OK" milliseconds=2
I0612 10:00:00.3 1 round_trippers.go:632] "Response" verb="GET" url="https://127.0.0.1:6443/apis/metrics.k8s.io/v1/nodes" status="200 OK" milliseconds=4
I0612 10:00:00.4 1 round_trippers.go:632] "Response" verb="GET" url="https://127.0.0.1:6443/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/p" status="404 Not Found" milliseconds=1
I0612 10:00:00.5 1 round_trippers.go:632] "Response" verb="GET" url="https://127.0.0.1:6443/apis/metrics.k8s.io/v1/nodes/n1" status="200 OK" milliseconds=4"#;
        assert_eq!(metrics_versions_requested(log), ["v1", "v1beta1"]);
        assert!(metrics_versions_requested("GET /api/v1/nodes 200 OK").is_empty());
    }

    const TOP_NODES: &str = "\
NAME          CPU(cores)   CPU(%)      MEMORY(bytes)   MEMORY(%)
kwok-node-1   25m          0%          80Mi            0%
kwok-node-2   95m          2%          146Mi           0%
kwok-node-3   <unknown>    <unknown>   <unknown>       <unknown>
";

    #[test]
    fn top_nodes_output_parses_into_header_and_rows() {
        let table = Table::parse(TOP_NODES).unwrap();
        assert_eq!(
            table.header,
            ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
        );
        assert_eq!(table.rows.len(), 3);
        let cpu = table.column("CPU(cores)").unwrap();
        let row = table.rows_where(0, "kwok-node-2").next().unwrap();
        assert_eq!(parse_millicores(&row[cpu]), Some(95));
        assert_eq!(parse_mebibytes(&row[3]), Some(146));
        assert_eq!(parse_percent(&row[2]), Some(2));
        assert!(
            table.rows_where(0, "kwok-node-3").next().unwrap()[1..]
                .iter()
                .all(|c| c == "<unknown>")
        );
        assert!(table.column("SWAP").is_err());
    }

    #[test]
    fn cells_that_are_not_top_quantities_are_rejected() {
        assert_eq!(parse_millicores("<unknown>"), None);
        assert_eq!(parse_millicores("50"), None);
        assert_eq!(parse_mebibytes("50Ki"), None);
        assert_eq!(parse_percent("5"), None);
    }

    #[test]
    fn empty_output_is_an_error() {
        assert!(Table::parse("\n\n").is_err());
    }
}
