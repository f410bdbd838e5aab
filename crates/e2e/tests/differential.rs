//! The differential test: two metrics-servers, ours and upstream's, against the same cluster at the same
//! time. The cluster (`hack/cluster.sh`) runs one of them behind the APIService; this runner starts the
//! other one (`DIFF_OTHER_BIN`) with exactly the arguments kwokctl gave the first (read from its
//! `/proc/<pid>/cmdline`) on another port, then sends the same requests to both and compares what clients
//! depend on: discovery documents, Status errors, Table column definitions, health texts, the set of
//! self-metric families, and usage values, which must agree within one scrape.
//!
//! Output: `ok <name>` / `FAILED <name>: <reason>` per case, the setup and teardown steps apart from the
//! cases, and a closing `N passed, N failed; setup .., teardown ..` line. It acts only on the cluster named
//! by `E2E_KUBECONFIG` (never plain `KUBECONFIG`); without it it skips and passes, unless `E2E_REQUIRE=1`.
//! `E2E_FILTER=<substring>` selects cases by name; a filter that selects none fails.
#![allow(clippy::print_stdout)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{Api, ListParams};
use metrics_server_e2e::https::{Identity, InsecureClient, Response, truncate};
use metrics_server_e2e::prom;
use metrics_server_e2e::quantity::Quantity;
use metrics_server_e2e::runner::{self, Tally};
use serde_json::Value;

const METRICS: &str = "/apis/metrics.k8s.io/v1beta1";
const SKIP_LABEL: &str = "metrics-server-skip";
const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
const AGGREGATED_ACCEPT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
/// Kubelet-like clients (kubectl top, the HPA) ask for protobuf first.
const CLIENT_ACCEPT: &str = "application/vnd.kubernetes.protobuf, */*";
/// How long data-dependent comparisons retry: the two servers scrape at different moments.
const AGREE_DEADLINE: Duration = Duration::from_secs(90);

fn main() -> ExitCode {
    runner::main("differential", |kubeconfig| async move {
        run(&kubeconfig).await
    })
}

struct Ctx {
    https: InsecureClient,
    /// The server kwokctl started (behind the APIService).
    primary: String,
    /// The server this runner started.
    other: String,
    skipped_nodes: Vec<String>,
}

impl Ctx {
    /// GETs `path` from both servers.
    async fn both(&self, path: &str, headers: &[(&str, &str)]) -> Result<(Response, Response)> {
        let a = self
            .https
            .get_with(&format!("{}{path}", self.primary), headers)
            .await?;
        let b = self
            .https
            .get_with(&format!("{}{path}", self.other), headers)
            .await?;
        Ok((a, b))
    }

    /// Fails unless both servers answer `path` with the same status, content type and body.
    /// Same Status code, reason and details; our message is upstream's plus `: <why>`.
    async fn same_status_but_reason(&self, path: &str) -> Result<()> {
        let headers = [("Accept", "application/json")];
        let (ours, theirs) = self.both(path, &headers).await?;
        ensure!(
            ours.status == theirs.status && ours.content_type == theirs.content_type,
            "GET {path}: status {} vs {}",
            ours.status,
            theirs.status
        );
        let mut ours: serde_json::Value = serde_json::from_str(&ours.body)?;
        let mut theirs: serde_json::Value = serde_json::from_str(&theirs.body)?;
        let our_message = ours["message"].take();
        let their_message = theirs["message"].take();
        let (ours_text, theirs_text) = (
            our_message.as_str().unwrap_or_default(),
            their_message.as_str().unwrap_or_default(),
        );
        ensure!(
            ours_text.len() > theirs_text.len() + 2
                && ours_text.starts_with(&format!("{theirs_text}: ")),
            "GET {path}: message {ours_text:?} does not extend upstream's {theirs_text:?} with a reason"
        );
        ensure!(
            ours == theirs,
            "GET {path}: Status differs apart from the message:\n  ours:     {ours}\n  upstream: {theirs}"
        );
        Ok(())
    }

    async fn same(&self, path: &str, headers: &[(&str, &str)]) -> Result<()> {
        let (a, b) = self.both(path, headers).await?;
        ensure!(
            a.status == b.status,
            "GET {path}: status {} vs {} (bodies {:?} vs {:?})",
            a.status,
            b.status,
            truncate(&a.body, 300),
            truncate(&b.body, 300)
        );
        ensure!(
            a.content_type == b.content_type,
            "GET {path}: Content-Type {:?} vs {:?}",
            a.content_type,
            b.content_type
        );
        // Ours also lists metrics.k8s.io/v1 (upstream v0.9.0 has only v1beta1): compare the rest.
        let (a_text, a_v1) = without_v1(&a.body);
        let (b_text, b_v1) = without_v1(&b.body);
        ensure!(
            a.etag == b.etag || a_v1 || b_v1,
            "GET {path}: ETag {:?} vs {:?}",
            a.etag,
            b.etag
        );
        // Each server advertises its own address (serverAddressByClientCIDRs); that part may differ.
        let a_body = mask_server_address(&a_text);
        let b_body = mask_server_address(&b_text);
        ensure!(
            a_body == b_body,
            "GET {path}: bodies differ:\n  primary: {}\n  other:   {}",
            truncate(&a.body, 800),
            truncate(&b.body, 800)
        );
        Ok(())
    }
}

/// A discovery document without its `metrics.k8s.io/v1` entries, v1beta1 preferred, and whether
/// there were any. Other bodies come back unchanged.
fn without_v1(body: &str) -> (String, bool) {
    const LEGACY: &str = "{\"groupVersion\":\"metrics.k8s.io/v1\",\"version\":\"v1\"}";
    const BETA: &str = "{\"groupVersion\":\"metrics.k8s.io/v1beta1\",\"version\":\"v1beta1\"}";
    const AGGREGATED: &str = "{\"version\":\"v1\",";
    const AGGREGATED_BETA: &str = "{\"version\":\"v1beta1\",";
    // The preferred version first: its value is also followed by a comma.
    let mut out = body.replace(
        &format!("\"preferredVersion\":{LEGACY}"),
        &format!("\"preferredVersion\":{BETA}"),
    );
    out = out.replace(&format!("{LEGACY},"), "");
    if let Some(start) = out.find(AGGREGATED)
        && let Some(len) = out[start..].find(AGGREGATED_BETA)
    {
        out.replace_range(start..start + len, "");
    }
    let stripped = out != body;
    (out, stripped)
}

/// Replaces the value of every `"serverAddress":"…"` with `<server>`.
fn mask_server_address(body: &str) -> String {
    const KEY: &str = "\"serverAddress\":\"";
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(at) = rest.find(KEY) {
        out.push_str(&rest[..at + KEY.len()]);
        rest = &rest[at + KEY.len()..];
        let end = rest.find('"').unwrap_or(rest.len());
        out.push_str("<server>");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

const CASES: [&str; 9] = [
    "legacy discovery documents are byte-identical",
    "aggregated discovery (apidiscovery.k8s.io/v2) is byte-identical",
    "Status errors are byte-identical (404s, 400 selectors, 405 watch, unknown resource)",
    "health texts are byte-identical (verbose, plain, single checks)",
    "Table column definitions are identical for nodes and pods",
    "the same metrics_server_* families are exposed on /metrics",
    "node usage agrees within one scrape",
    "pod usage agrees within one scrape",
    "protobuf-first object and list requests get protobuf with upstream's envelope",
];

async fn run(kubeconfig: &Path) -> ExitCode {
    let filter = std::env::var(runner::FILTER_VAR).unwrap_or_default();
    let selected = match runner::select(CASES.to_vec(), &filter, |c| c) {
        Ok(selected) => selected,
        Err(reason) => {
            println!("differential: FAILED: {reason}");
            return ExitCode::FAILURE;
        }
    };
    let mut tally = Tally::new();
    const SETUP: &str = "the second metrics-server starts beside the first";
    let (ctx, mut other_process) = match setup(kubeconfig).await {
        Ok(v) => {
            tally.setup(SETUP, &Ok(()));
            v
        }
        Err(err) => {
            tally.setup(SETUP, &Err(err));
            println!("{}", tally.summary());
            return ExitCode::FAILURE;
        }
    };
    for name in selected {
        let result = run_case(&ctx, name).await;
        tally.case(name, &result);
    }
    let stopped = other_process
        .kill()
        .await
        .context("stopping the second metrics-server");
    tally.teardown("the second metrics-server is stopped", &stopped);
    println!("{}", tally.summary());
    if tally.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn run_case(ctx: &Ctx, name: &str) -> Result<()> {
    match CASES.iter().position(|c| *c == name) {
        Some(0) => discovery_is_identical(ctx).await,
        Some(1) => ctx.same("/apis", &[("Accept", AGGREGATED_ACCEPT)]).await,
        Some(2) => status_errors_are_identical(ctx).await,
        Some(3) => health_is_identical(ctx).await,
        Some(4) => eventually(|| table_columns_are_identical(ctx)).await,
        Some(5) => eventually(|| self_metrics_are_identical(ctx)).await,
        Some(6) => eventually(|| node_usage_agrees(ctx)).await,
        Some(7) => eventually(|| pod_usage_agrees(ctx)).await,
        Some(8) => protobuf_envelopes_agree(ctx).await,
        _ => Err(anyhow!("no such case: {name}")),
    }
}

/// Retries `check` every 5 s until it passes or `AGREE_DEADLINE` runs out, returning the last error.
async fn eventually<F, Fut>(mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let deadline = Instant::now() + AGREE_DEADLINE;
    loop {
        match check().await {
            Ok(()) => return Ok(()),
            Err(err) if Instant::now() >= deadline => return Err(err),
            Err(_) => tokio::time::sleep(Duration::from_secs(5)).await,
        }
    }
}

async fn setup(kubeconfig_path: &Path) -> Result<(Ctx, tokio::process::Child)> {
    let other_bin = std::env::var("DIFF_OTHER_BIN")
        .context("DIFF_OTHER_BIN must name the second metrics-server binary")?;
    let config = runner::load_config(kubeconfig_path).await?;
    let identity = Identity::from_auth_info(&config.auth_info)?;
    let https = InsecureClient::new(identity.as_ref())?;
    let client = kube::Client::try_from(config)?;

    let apiservice = Api::<APIService>::all(client.clone())
        .get("v1beta1.metrics.k8s.io")
        .await
        .context("reading APIService v1beta1.metrics.k8s.io")?;
    let port = apiservice
        .spec
        .and_then(|s| s.service)
        .and_then(|s| s.port)
        .ok_or_else(|| anyhow!("the APIService has no service port"))?;
    let primary = format!("https://127.0.0.1:{port}");

    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default().labels(&format!("{SKIP_LABEL}=true")))
        .await?;
    let skipped_nodes = nodes
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();

    // The first server's own command line is the reference: the second gets the same flags.
    let cluster_dir = kubeconfig_path
        .parent()
        .ok_or_else(|| anyhow!("E2E_KUBECONFIG has no parent folder"))?;
    let args = primary_args(cluster_dir)?;
    let other_port = free_port()?;
    let args: Vec<String> = args
        .into_iter()
        .map(|a| {
            if a.starts_with("--secure-port=") {
                format!("--secure-port={other_port}")
            } else {
                a
            }
        })
        .collect();
    let log_path = cluster_dir
        .join("logs")
        .join("metrics-server-differential.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let child = tokio::process::Command::new(&other_bin)
        .args(&args)
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {other_bin}"))?;
    let other = format!("https://127.0.0.1:{other_port}");
    println!(
        "  primary {primary}, other {other} ({other_bin}; log {})",
        log_path.display()
    );

    let ctx = Ctx {
        https,
        primary,
        other,
        skipped_nodes,
    };
    // Ready means two scrapes stored: about two resolutions.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        // Both must be ready before texts are compared: on a fresh cluster the first server needs a
        // few ticks (KWOK reports zero usage until pods run), the second may start on warm counters.
        let mut ready = true;
        for base in [&ctx.primary, &ctx.other] {
            ready &= ctx
                .https
                .get(&format!("{base}/readyz"))
                .await
                .map(|r| r.status == 200)
                .unwrap_or(false);
        }
        if ready {
            break;
        }
        if Instant::now() >= deadline {
            bail!(
                "{other_bin} did not become ready within 120 s (see {})",
                log_path.display()
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Ok((ctx, child))
}

/// The arguments of the metrics-server process kwokctl started, from its pid file.
fn primary_args(cluster_dir: &Path) -> Result<Vec<String>> {
    let pid_file = cluster_dir.join("pids").join("metrics-server.pid");
    let pid = std::fs::read_to_string(&pid_file)
        .with_context(|| format!("reading {}", pid_file.display()))?;
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", pid.trim()))
        .with_context(|| format!("reading the command line of pid {}", pid.trim()))?;
    let mut parts = cmdline
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned());
    parts.next(); // the program
    let args: Vec<String> = parts.collect();
    ensure!(
        args.iter().any(|a| a.starts_with("--secure-port=")),
        "the first server's command line has no --secure-port= ({args:?})"
    );
    Ok(args)
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

async fn discovery_is_identical(ctx: &Ctx) -> Result<()> {
    for path in ["/apis", "/apis/metrics.k8s.io", METRICS] {
        ctx.same(path, &[("Accept", "application/json")]).await?;
        // Upstream answers protobuf-first discovery requests in protobuf, ours in JSON (client-go
        // decodes by Content-Type), so only the status is compared there.
        let (a, b) = ctx.both(path, &[("Accept", CLIENT_ACCEPT)]).await?;
        ensure!(
            a.status == b.status,
            "GET {path} (protobuf-first): {} vs {}",
            a.status,
            b.status
        );
    }
    Ok(())
}

async fn status_errors_are_identical(ctx: &Ctx) -> Result<()> {
    let paths = vec![
        format!("{METRICS}/nodes/no-such-node"),
        format!("{METRICS}/namespaces/default/pods/no-such-pod"),
        format!("{METRICS}/pods?labelSelector=a%20b%20c"),
        format!("{METRICS}/nodes?fieldSelector=spec.unschedulable%3Dtrue"),
        format!("{METRICS}/pods?fieldSelector=status.phase%3DRunning"),
        format!("{METRICS}/pods?watch=true"),
        format!("{METRICS}/nodes?watch=1"),
        format!("{METRICS}/foos"),
    ];
    // On purpose, ours says why a node that exists has no metrics: the message grows by
    // ": <reason>", everything else stays upstream's.
    for node in &ctx.skipped_nodes {
        ctx.same_status_but_reason(&format!("{METRICS}/nodes/{node}"))
            .await?;
    }
    // No acceptable media type: the 406 names every serializer, YAML included.
    for accept in ["text/plain", "application/yaml;stream=watch"] {
        ctx.same(&format!("{METRICS}/nodes"), &[("Accept", accept)])
            .await?;
    }
    for path in &paths {
        // JSON, YAML, then protobuf-first (what kubectl and the HPA send): byte for byte in all.
        ctx.same(path, &[("Accept", "application/json")]).await?;
        ctx.same(path, &[("Accept", "application/yaml")]).await?;
        let (a, b) = ctx.both(path, &[("Accept", CLIENT_ACCEPT)]).await?;
        ensure!(
            a.status == b.status && a.content_type == b.content_type,
            "GET {path} (protobuf-first): {} {:?} vs {} {:?}",
            a.status,
            a.content_type,
            b.status,
            b.content_type
        );
        ensure!(
            a.bytes == b.bytes,
            "GET {path} (protobuf-first): bodies differ:\n  primary: {:02x?}\n  other:   {:02x?}",
            a.bytes,
            b.bytes
        );
    }
    Ok(())
}

async fn health_is_identical(ctx: &Ctx) -> Result<()> {
    for path in [
        "/readyz?verbose&",
        "/livez?verbose&",
        "/healthz?verbose",
        "/readyz",
        "/livez",
        "/healthz",
        "/readyz/ping",
        "/readyz/metric-storage-ready",
        "/livez/metric-collection-timely",
        "/readyz?verbose&exclude=shutdown",
        "/readyz?verbose&exclude=no-such-check",
    ] {
        ctx.same(path, &[]).await?;
    }
    Ok(())
}

/// The `k8s\0` magic and the envelope's TypeMeta, up to the `raw` field; the object bytes after
/// it carry scrape times and values, which differ between the two servers (their layout is pinned
/// by the golden bytes of crates/api/src/protobuf.rs, written by Go's codec factory).
fn envelope_prefix(body: &[u8]) -> &[u8] {
    let type_meta_len = usize::from(body.get(5).copied().unwrap_or(0));
    body.get(..6 + type_meta_len).unwrap_or(body)
}

async fn protobuf_envelopes_agree(ctx: &Ctx) -> Result<()> {
    for path in [
        format!("{METRICS}/nodes"),
        format!("{METRICS}/pods"),
        format!("{METRICS}/namespaces/kube-system/pods"),
    ] {
        let (a, b) = ctx.both(&path, &[("Accept", CLIENT_ACCEPT)]).await?;
        ensure!(
            a.status == 200 && b.status == 200 && a.content_type == b.content_type,
            "GET {path} (protobuf-first): {} {:?} vs {} {:?}",
            a.status,
            a.content_type,
            b.status,
            b.content_type
        );
        ensure!(
            a.content_type == "application/vnd.kubernetes.protobuf",
            "GET {path}: Content-Type {:?}",
            a.content_type
        );
        ensure!(
            envelope_prefix(&a.bytes) == envelope_prefix(&b.bytes),
            "GET {path}: envelopes differ: {:02x?} vs {:02x?}",
            envelope_prefix(&a.bytes),
            envelope_prefix(&b.bytes)
        );
    }
    Ok(())
}

async fn table_columns_are_identical(ctx: &Ctx) -> Result<()> {
    for path in [
        format!("{METRICS}/nodes"),
        format!("{METRICS}/namespaces/kube-system/pods"),
    ] {
        let (a, b) = ctx.both(&path, &[("Accept", TABLE_ACCEPT)]).await?;
        ensure!(
            a.status == 200 && b.status == 200,
            "GET {path}: {} vs {}",
            a.status,
            b.status
        );
        let a: Value = serde_json::from_str(&a.body)?;
        let b: Value = serde_json::from_str(&b.body)?;
        ensure!(
            !a["columnDefinitions"].is_null(),
            "GET {path}: the primary returned no rows yet"
        );
        ensure!(
            a["columnDefinitions"] == b["columnDefinitions"],
            "GET {path}: column definitions differ: {} vs {}",
            a["columnDefinitions"],
            b["columnDefinitions"]
        );
        ensure!(
            a["kind"] == b["kind"] && a["apiVersion"] == b["apiVersion"],
            "GET {path}: {} {} vs {} {}",
            a["kind"],
            a["apiVersion"],
            b["kind"],
            b["apiVersion"]
        );
        let names = |v: &Value| -> BTreeSet<String> {
            v["rows"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["cells"][0].as_str().map(str::to_owned))
                .collect()
        };
        ensure!(names(&a) == names(&b), "GET {path}: row names differ");
    }
    Ok(())
}

async fn self_metrics_are_identical(ctx: &Ctx) -> Result<()> {
    let (a, b) = ctx.both("/metrics", &[]).await?;
    ensure!(
        a.status == 200 && b.status == 200,
        "GET /metrics: {} vs {}",
        a.status,
        b.status
    );
    let ours = |text: &str| -> BTreeSet<String> {
        prom::family_names(text)
            .into_iter()
            .filter(|n| n.starts_with("metrics_server_"))
            .collect()
    };
    ensure!(
        ours(&a.body) == ours(&b.body),
        "families differ: {:?} vs {:?}",
        ours(&a.body),
        ours(&b.body)
    );
    Ok(())
}

/// usage per object: name → (cpu millicores as f64, memory bytes)
type Usage = BTreeMap<String, (f64, i128)>;

fn cpu_close(a: f64, b: f64) -> bool {
    // Both servers rate the same simulated counters over windows that start at different moments.
    (a - b).abs() <= f64::max(5.0, 0.1 * a.max(b))
}

fn parse_usage(usage: &Value) -> Result<(f64, i128)> {
    let cpu = Quantity::parse(usage["cpu"].as_str().unwrap_or_default())
        .map_err(|e| anyhow!("cpu: {e}"))?;
    let memory = Quantity::parse(usage["memory"].as_str().unwrap_or_default())
        .map_err(|e| anyhow!("memory: {e}"))?;
    // Nanocore precision matters for the comparison; milli_value rounds up.
    #[allow(clippy::cast_precision_loss)]
    let cpu_milli = cpu.milli_value() as f64;
    Ok((cpu_milli, memory.value()))
}

async fn node_usage(ctx: &Ctx, base: &str) -> Result<Usage> {
    let body = ctx.https.get_ok(&format!("{base}{METRICS}/nodes")).await?;
    let list: Value = serde_json::from_str(&body)?;
    let mut out = Usage::new();
    for item in list["items"].as_array().into_iter().flatten() {
        let name = item["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        out.insert(name, parse_usage(&item["usage"])?);
    }
    Ok(out)
}

async fn node_usage_agrees(ctx: &Ctx) -> Result<()> {
    let a = node_usage(ctx, &ctx.primary).await?;
    let b = node_usage(ctx, &ctx.other).await?;
    ensure!(!a.is_empty(), "the primary serves no nodes yet");
    compare(&a, &b)
}

async fn pod_usage(ctx: &Ctx, base: &str) -> Result<Usage> {
    let body = ctx.https.get_ok(&format!("{base}{METRICS}/pods")).await?;
    let list: Value = serde_json::from_str(&body)?;
    let mut out = Usage::new();
    for item in list["items"].as_array().into_iter().flatten() {
        let pod = format!(
            "{}/{}",
            item["metadata"]["namespace"].as_str().unwrap_or_default(),
            item["metadata"]["name"].as_str().unwrap_or_default()
        );
        for container in item["containers"].as_array().into_iter().flatten() {
            let name = container["name"].as_str().unwrap_or_default();
            out.insert(format!("{pod}/{name}"), parse_usage(&container["usage"])?);
        }
    }
    Ok(out)
}

async fn pod_usage_agrees(ctx: &Ctx) -> Result<()> {
    let a = pod_usage(ctx, &ctx.primary).await?;
    let b = pod_usage(ctx, &ctx.other).await?;
    ensure!(!a.is_empty(), "the primary serves no pods yet");
    compare(&a, &b)
}

fn compare(a: &Usage, b: &Usage) -> Result<()> {
    let a_keys: BTreeSet<_> = a.keys().collect();
    let b_keys: BTreeSet<_> = b.keys().collect();
    ensure!(
        a_keys == b_keys,
        "different objects: only primary {:?}, only other {:?}",
        a_keys.difference(&b_keys).collect::<Vec<_>>(),
        b_keys.difference(&a_keys).collect::<Vec<_>>()
    );
    for (key, (cpu_a, mem_a)) in a {
        let (cpu_b, mem_b) = b[key];
        ensure!(cpu_close(*cpu_a, cpu_b), "{key}: cpu {cpu_a}m vs {cpu_b}m");
        ensure!(*mem_a == mem_b, "{key}: memory {mem_a} vs {mem_b} bytes");
    }
    Ok(())
}
