//! The differential test: two metrics-servers, ours and upstream's, against the same cluster at the same
//! time. The cluster (`hack/cluster.sh`) runs one of them behind the APIService; this runner starts the
//! other one (`DIFF_OTHER_BIN`) with exactly the arguments kwokctl gave the first (read from its
//! `/proc/<pid>/cmdline`) on another port, then sends the same requests to both and compares what clients
//! depend on: discovery documents (JSON, protobuf, YAML: byte for byte once ours drops its v1 entries),
//! Status errors, Table column definitions, health texts, the set of self-metric families, usage values,
//! which must agree within one scrape, and protobuf objects and lists field by field but for the values
//! of the scrape.
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
use metrics_server_e2e::discovery_view;
use metrics_server_e2e::https::{Identity, InsecureClient, Response, truncate};
use metrics_server_e2e::prom;
use metrics_server_e2e::quantity::Quantity;
use metrics_server_e2e::runner::{self, Tally};
use metrics_server_e2e::wire;
use serde_json::Value;

const METRICS: &str = "/apis/metrics.k8s.io/v1beta1";
const SKIP_LABEL: &str = "metrics-server-skip";
const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
const AGGREGATED_ACCEPT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
/// Kubelet-like clients (kubectl top, the HPA) ask for protobuf first.
const CLIENT_ACCEPT: &str = "application/vnd.kubernetes.protobuf, */*";
const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
const AGGREGATED_PROTOBUF_ACCEPT: &str = "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
const AGGREGATED_YAML_ACCEPT: &str =
    "application/yaml;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
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

    /// Fails unless both servers answer `path` with the same status, Content-Type and body, byte
    /// for byte in every format once discovery documents are normalized (ours also lists
    /// `metrics.k8s.io/v1`; each server advertises its own address); the same ETag too, unless a v1
    /// entry was removed (it hashes the document).
    async fn same(&self, path: &str, headers: &[(&str, &str)]) -> Result<()> {
        let (a, b) = self.both(path, headers).await?;
        ensure!(
            a.status == b.status,
            "GET {path} {headers:?}: status {} vs {} (bodies {:?} vs {:?})",
            a.status,
            b.status,
            truncate(&a.body, 300),
            truncate(&b.body, 300)
        );
        ensure!(
            a.content_type == b.content_type,
            "GET {path} {headers:?}: Content-Type {:?} vs {:?}",
            a.content_type,
            b.content_type
        );
        let (a_body, a_v1) = discovery_view::normalize(&a.bytes, &a.content_type)?;
        let (b_body, b_v1) = discovery_view::normalize(&b.bytes, &b.content_type)?;
        ensure!(
            a.etag == b.etag || a_v1 || b_v1,
            "GET {path} {headers:?}: ETag {:?} vs {:?}",
            a.etag,
            b.etag
        );
        ensure!(
            a_body == b_body,
            "GET {path} {headers:?}: bodies differ: {}",
            describe_difference(&a_body, &b_body, &a.content_type)
        );
        Ok(())
    }
}

/// Where two bodies differ: the first differing field of protobuf bodies, both texts otherwise.
fn describe_difference(a: &[u8], b: &[u8], content_type: &str) -> String {
    if content_type.starts_with("application/vnd.kubernetes.protobuf")
        && let (Ok(ta), Ok(tb)) = (wire::decode_body(a), wire::decode_body(b))
    {
        return match wire::difference(&ta, &tb) {
            Some(d) => format!("first at {d}"),
            None => format!("equal fields, other bytes: {a:02x?} vs {b:02x?}"),
        };
    }
    format!(
        "\n  primary: {}\n  other:   {}",
        truncate(&String::from_utf8_lossy(a), 800),
        truncate(&String::from_utf8_lossy(b), 800)
    )
}

const CASES: [&str; 9] = [
    "legacy discovery documents are byte-identical in JSON, protobuf and YAML, and so are their 406s",
    "aggregated discovery (apidiscovery.k8s.io/v2) is byte-identical in JSON, protobuf and YAML",
    "Status errors are byte-identical (404s, 400 selectors, 405 watch, unknown resource)",
    "health texts are byte-identical (verbose, plain, single checks)",
    "Table column definitions are identical for nodes and pods",
    "the same metrics_server_* families are exposed on /metrics",
    "node usage agrees within one scrape",
    "pod usage agrees within one scrape",
    "protobuf-first object and list answers agree field by field but for scrape times, windows and usage",
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
        Some(1) => aggregated_discovery_is_identical(ctx).await,
        Some(2) => status_errors_are_identical(ctx).await,
        Some(3) => health_is_identical(ctx).await,
        Some(4) => eventually(|| table_columns_are_identical(ctx)).await,
        Some(5) => eventually(|| self_metrics_are_identical(ctx)).await,
        Some(6) => eventually(|| node_usage_agrees(ctx)).await,
        Some(7) => eventually(|| pod_usage_agrees(ctx)).await,
        Some(8) => eventually(|| protobuf_objects_agree(ctx)).await,
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
        for accept in [
            "application/json",
            // What client-go and kube-controller-manager send, and protobuf alone.
            CLIENT_ACCEPT,
            PROTOBUF,
            "application/yaml",
            // go-restful's 406, then the handler's (past the route, no serializer for the clause).
            "text/plain",
            "application/json;stream=other",
        ] {
            ctx.same(path, &[("Accept", accept)]).await?;
        }
    }
    Ok(())
}

async fn aggregated_discovery_is_identical(ctx: &Ctx) -> Result<()> {
    for accept in [
        AGGREGATED_ACCEPT,
        AGGREGATED_PROTOBUF_ACCEPT,
        AGGREGATED_YAML_ACCEPT,
    ] {
        ctx.same("/apis", &[("Accept", accept)]).await?;
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

/// The namespace (empty for a node) and name of the first item of a JSON list of the primary's.
async fn first_item(ctx: &Ctx, path: &str) -> Result<(String, String)> {
    let body = ctx.https.get_ok(&format!("{}{path}", ctx.primary)).await?;
    let list: Value = serde_json::from_str(&body)?;
    let meta = &list["items"][0]["metadata"];
    let name = meta["name"]
        .as_str()
        .ok_or_else(|| anyhow!("GET {path}: no items yet"))?;
    let namespace = meta["namespace"].as_str().unwrap_or_default();
    Ok((namespace.to_owned(), name.to_owned()))
}

/// Protobuf-first lists and objects: the same tree of fields, tags and wire types, names,
/// namespaces, labels, creation times, item, container and usage-key order, everything but the
/// sample times, windows and usage quantities (placeholders, see `wire::layout`).
async fn protobuf_objects_agree(ctx: &Ctx) -> Result<()> {
    let (_, node) = first_item(ctx, &format!("{METRICS}/nodes")).await?;
    let (namespace, pod) = first_item(ctx, &format!("{METRICS}/pods")).await?;
    for path in [
        format!("{METRICS}/nodes"),
        format!("{METRICS}/pods"),
        format!("{METRICS}/namespaces/{namespace}/pods"),
        format!("{METRICS}/namespaces/kube-system/pods"),
        format!("{METRICS}/nodes/{node}"),
        format!("{METRICS}/namespaces/{namespace}/pods/{pod}"),
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
            a.content_type == PROTOBUF,
            "GET {path}: Content-Type {:?}",
            a.content_type
        );
        let ours = wire::decode_body(&a.bytes).with_context(|| format!("GET {path} (primary)"))?;
        let theirs = wire::decode_body(&b.bytes).with_context(|| format!("GET {path} (other)"))?;
        if let Some(d) = wire::difference(&ours, &theirs) {
            bail!("GET {path} (protobuf-first): first difference at {d}");
        }
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
