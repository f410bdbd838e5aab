//! Diagnosis on the local cluster (`make e2e`): the scrape-health document through the
//! aggregator, reasons in NotFound messages, Events on Nodes, and the node-proxy fallback, with
//! two injected kubelet faults:
//!
//! - **blocked port**: node `diag-blocked` lists a dead InternalIP (what our server prefers) and a
//!   Hostname where a healthy kubelet answers (what kube-apiserver prefers), so kube-apiserver
//!   reaches the kubelet and we cannot, as with a security group in front of port 10250;
//! - **no IP SAN**: node `diag-nosan` whose kubelet certificate names no address of the node,
//!   scraped with TLS verification on.
//!
//! The cluster's server runs with `--kubelet-insecure-tls` and no fallback, so a second instance
//! of our binary is started beside it with the primary's flags plus
//! `--kubelet-certificate-authority`, `--kubelet-node-proxy-fallback` and `--node-scrape-events`,
//! selecting only the `diag` nodes. Everything stays on 127.0.0.0/8.
#![allow(clippy::print_stdout)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use bytes::Bytes;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use metrics_server_e2e::https::InsecureClient;
use metrics_server_e2e::local::{self, LocalCluster};
use metrics_server_e2e::procs;
use metrics_server_e2e::runner::{self, Tally};
use metrics_server_test_support::{
    Fault, FaultyKubelet, FaultyListening, NodeSample, PodSample, TestPki, render_resource_metrics,
};
use serde_json::{Value, json};

const BLOCKED: &str = "diag-blocked";
const NOSAN: &str = "diag-nosan";
/// Dead address of the blocked node (nothing listens there).
const BLOCKED_DEAD: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 60);
/// Where the blocked node's kubelet really answers (kube-apiserver's preferred Hostname).
const BLOCKED_LIVE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 61);
const NOSAN_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 62);
const GROUP_PATH: &str = "/apis/metrics.k8s.io/v1beta1";

fn main() -> ExitCode {
    runner::main(
        "diagnosis",
        |kubeconfig| async move { run(&kubeconfig).await },
    )
}

struct Ctx {
    client: kube::Client,
    https: InsecureClient,
    cluster: PathBuf,
    resolution: Duration,
    kubelet_port: u16,
    pki: TestPki,
}

async fn run(kubeconfig: &Path) -> ExitCode {
    let mut tally = Tally::new();
    let setup = setup(kubeconfig).await;
    tally.setup(
        "context, fault kubelets and nodes diag-blocked, diag-nosan",
        &setup
            .as_ref()
            .map(|_| ())
            .map_err(|e| anyhow::anyhow!("{e:#}")),
    );
    if let Ok((ctx, kubelets)) = setup {
        cases(&ctx, &mut tally).await;
        let teardown = teardown(&ctx).await;
        drop(kubelets);
        tally.teardown("nodes deleted", &teardown);
    }
    println!("diagnosis: {}", tally.summary());
    if tally.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn setup(kubeconfig: &Path) -> Result<(Ctx, Vec<FaultyListening>)> {
    let local = LocalCluster::discover(kubeconfig).await?;
    let ctx = Ctx {
        client: local.client,
        https: local.https,
        cluster: local.dir,
        resolution: local.resolution,
        kubelet_port: local.kubelet_port,
        pki: TestPki::new()?,
    };
    let kubelets = start_kubelets(&ctx).await?;
    create_nodes(&ctx).await?;
    Ok((ctx, kubelets))
}

fn healthy_body() -> Bytes {
    let node = NodeSample {
        cpu_seconds: 100.5,
        memory_bytes: 1.5e9,
        timestamp_ms: None,
    };
    let mut pod = PodSample::single("default", "diag-pod", 10.5, 1.048_576e7, 0);
    for c in &mut pod.containers {
        c.timestamp_ms = None;
        c.start_time_seconds = 1.6e9;
    }
    Bytes::from(render_resource_metrics(&node, &[pod]))
}

async fn start_kubelets(ctx: &Ctx) -> Result<Vec<FaultyListening>> {
    let healthy =
        |ip: Ipv4Addr, sans: &[&str]| -> Result<(SocketAddr, Arc<rustls::ServerConfig>)> {
            let mut config = (*ctx.pki.server_cert(sans)?.server_config(None)?).clone();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Ok((
                SocketAddr::new(IpAddr::V4(ip), ctx.kubelet_port),
                Arc::new(config),
            ))
        };
    let live = BLOCKED_LIVE.to_string();
    let mut out = Vec::new();
    for (ip, sans) in [
        (BLOCKED_LIVE, vec![live.as_str()]),
        (NOSAN_IP, vec!["kubelet.invalid"]),
    ] {
        let (addr, config) = healthy(ip, &sans)?;
        let fault = Fault::Body {
            body: healthy_body(),
            content_type: "text/plain",
        };
        out.push(
            FaultyKubelet::start_on(addr, fault, Some(config))
                .await
                .with_context(|| format!("binding {addr}"))?,
        );
    }
    Ok(out)
}

async fn create_nodes(ctx: &Ctx) -> Result<()> {
    // Events of an earlier run must not satisfy this run's check.
    let events = Api::<Event>::namespaced(ctx.client.clone(), "default");
    for e in events.list(&ListParams::default()).await?.items {
        let about = e.regarding.as_ref().and_then(|r| r.name.as_deref());
        if matches!(about, Some(BLOCKED | NOSAN))
            && let Some(name) = e.metadata.name.as_deref()
        {
            let _ = events.delete(name, &DeleteParams::default()).await;
        }
    }
    let nodes = Api::<Node>::all(ctx.client.clone());
    let specs = [
        (
            BLOCKED,
            json!([{"type": "InternalIP", "address": BLOCKED_DEAD.to_string()},
                         {"type": "Hostname", "address": BLOCKED_LIVE.to_string()}]),
        ),
        (
            NOSAN,
            json!([{"type": "InternalIP", "address": NOSAN_IP.to_string()}]),
        ),
    ];
    for (name, addresses) in specs {
        let _ = nodes.delete(name, &DeleteParams::default()).await;
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name,
                "annotations": {"kwok.x-k8s.io/node": "fake",
                                "metrics.k8s.io/resource-metrics-path": format!("/metrics/nodes/{name}/metrics/resource")},
                "labels": {"kubernetes.io/hostname": name, "type": "kwok", "diag": "true"}},
            "status": {"addresses": addresses}
        }))?;
        create_when_gone(&nodes, &node, name).await?;
    }
    Ok(())
}

/// A deleted node can linger a moment; retry the create until it is gone.
async fn create_when_gone(nodes: &Api<Node>, node: &Node, name: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match nodes.create(&PostParams::default(), node).await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() < deadline => {
                println!("   creating node {name}: {e}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e).with_context(|| format!("creating node {name}")),
        }
    }
}

async fn teardown(ctx: &Ctx) -> Result<()> {
    let nodes = Api::<Node>::all(ctx.client.clone());
    for name in [BLOCKED, NOSAN] {
        nodes.delete(name, &DeleteParams::default()).await?;
    }
    Ok(())
}

async fn cases(ctx: &Ctx, tally: &mut Tally) {
    let result = healthy_nodes_through_the_aggregator(ctx).await;
    tally.case(
        "the scrape-health document is served through the aggregator",
        &result,
    );
    let result = blocked_port_named_by_the_primary(ctx).await;
    let result = match result {
        Ok(()) => {
            doctor_names(
                ctx,
                BLOCKED,
                "kubelet port unreachable",
                "--kubelet-node-proxy-fallback",
            )
            .await
        }
        Err(e) => Err(e),
    };
    tally.case("(5) blocked kubelet port: scrape health, the 404 and doctor name it, with the address and the fix", &result);

    let second = match SecondServer::start(ctx).await {
        Ok(s) => s,
        Err(e) => {
            tally.case(
                "a second server with TLS verification, the fallback and events",
                &Err(e),
            );
            return;
        }
    };
    let result = fallback_serves_the_blocked_node(ctx, &second).await;
    tally.case(
        "(5) the fallback scrapes the blocked node through kube-apiserver's node proxy and reports it",
        &result,
    );
    let result = missing_san_is_named(ctx, &second).await;
    let result = match result {
        Ok(()) => missing_san_named_by_doctor(ctx, &second).await,
        Err(e) => Err(e),
    };
    tally.case(
        "(6) kubelet certificate without the node's IP SAN: named in scrape health, the 404 and doctor (through the aggregator)",
        &result,
    );
    let result = events_on_the_nodes(ctx).await;
    tally.case(
        "Events on the failing Node (reason MetricsScrapeFailed)",
        &result,
    );
    second.stop().await;
}

/// GET through kube-apiserver (the aggregator), as `kubectl get --raw` does.
async fn raw(ctx: &Ctx, path: &str) -> Result<(u16, String)> {
    let req = http::Request::get(path).body(Vec::new())?;
    match ctx.client.request_text(req).await {
        Ok(body) => Ok((200, body)),
        Err(kube::Error::Api(s)) => Ok((s.code, s.message)),
        Err(e) => Err(e.into()),
    }
}

fn node_entry<'a>(doc: &'a Value, node: &str) -> Option<&'a Value> {
    doc["nodes"].as_array()?.iter().find(|n| n["node"] == node)
}

/// Polls `check` for up to three resolutions.
async fn eventually<T>(
    ctx: &Ctx,
    what: &str,
    mut check: impl AsyncFnMut() -> Result<T>,
) -> Result<T> {
    let deadline = Instant::now() + ctx.resolution * 3 + Duration::from_secs(10);
    loop {
        match check().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() > deadline => {
                return Err(e).context(format!("waiting for {what}"));
            }
            Err(_) => tokio::time::sleep(Duration::from_secs(2)).await,
        }
    }
}

async fn healthy_nodes_through_the_aggregator(ctx: &Ctx) -> Result<()> {
    let (code, body) = raw(ctx, &format!("{GROUP_PATH}/scrapehealth")).await?;
    ensure!(code == 200, "HTTP {code}: {body}");
    let doc: Value = serde_json::from_str(&body)?;
    ensure!(doc["kind"] == "ScrapeHealth", "{body}");
    let node = node_entry(&doc, "kwok-node-1").context("kwok-node-1 missing")?;
    ensure!(node["lastError"].is_null(), "kwok-node-1 failing: {node}");
    ensure!(
        node["route"] == "direct" && !node["lastSuccess"].is_null(),
        "{node}"
    );
    ensure!(
        node_entry(&doc, "kwok-node-3").is_none(),
        "the node outside --node-selector is listed"
    );
    Ok(())
}

async fn blocked_port_named_by_the_primary(ctx: &Ctx) -> Result<()> {
    let want = format!("{BLOCKED_DEAD}:{}", ctx.kubelet_port);
    let node = eventually(ctx, "diag-blocked to fail", async || {
        let (_, body) = raw(ctx, &format!("{GROUP_PATH}/scrapehealth")).await?;
        let doc: Value = serde_json::from_str(&body)?;
        let node = node_entry(&doc, BLOCKED).context("not listed yet")?.clone();
        ensure!(!node["lastError"].is_null(), "not failing yet: {node}");
        Ok(node)
    })
    .await?;
    ensure!(node["lastError"]["class"] == "connect_refused", "{node}");
    ensure!(
        node["address"] == BLOCKED_DEAD.to_string() && node["addressType"] == "InternalIP",
        "{node}"
    );
    let (code, message) = raw(ctx, &format!("{GROUP_PATH}/nodes/{BLOCKED}")).await?;
    ensure!(code == 404, "HTTP {code}: {message}");
    let prefix = format!("nodemetrics.metrics.k8s.io \"{BLOCKED}\" not found: last scrape failed ");
    ensure!(message.starts_with(&prefix), "{message}");
    ensure!(
        message.contains(&format!("connection refused by {want}")),
        "{message}"
    );
    Ok(())
}

/// Doctor (gather + analyze, as `metrics-server doctor` runs them) names `node` in a kubelet
/// finding whose message and fix contain the given texts.
async fn doctor_names(ctx: &Ctx, node: &str, message: &str, fix: &str) -> Result<()> {
    eventually(ctx, "doctor's kubelet finding", async || {
        let facts = metrics_server_doctor::gather(&ctx.client, &Default::default()).await?;
        let findings = metrics_server_doctor::analyze(&facts);
        let hit = findings
            .iter()
            .find(|f| f.check == "kubelet" && f.subject.contains(node));
        let Some(f) = hit else {
            bail!("no kubelet finding names {node}: {findings:#?}");
        };
        ensure!(
            f.severity == metrics_server_doctor::Severity::Error,
            "{f:?}"
        );
        ensure!(f.message.contains(message) && f.fix.contains(fix), "{f:?}");
        println!("   doctor: {} | {} | {}", f.subject, f.message, f.fix);
        Ok(())
    })
    .await
}

/// Points the APIService at the second server (which verifies kubelet certificates), checks
/// that doctor names the certificate fault through the aggregator, and points it back.
async fn missing_san_named_by_doctor(ctx: &Ctx, second: &SecondServer) -> Result<()> {
    let apiservices = Api::<APIService>::all(ctx.client.clone());
    let name = "v1beta1.metrics.k8s.io";
    let original = apiservices
        .get(name)
        .await?
        .spec
        .and_then(|s| s.service)
        .and_then(|s| s.port)
        .context("the APIService has no service port")?;
    let port = second
        .url
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .parse::<i32>()?;
    let patch = |port: i32| json!({"spec": {"service": {"port": port}}});
    apiservices
        .patch(name, &PatchParams::default(), &Patch::Merge(patch(port)))
        .await?;
    let result = doctor_names(ctx, NOSAN, "has no SAN", "serverTLSBootstrap").await;
    apiservices
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(patch(original)),
        )
        .await?;
    result
}

/// Our binary again, on its own port, for the diag nodes only.
struct SecondServer {
    child: tokio::process::Child,
    url: String,
    log: PathBuf,
}

impl SecondServer {
    async fn start(ctx: &Ctx) -> Result<Self> {
        let primary = procs::find("metrics-server", &ctx.cluster.to_string_lossy())?;
        let port = local::free_port()?;
        let ca = ctx.cluster.join("diag-kubelet-ca.pem");
        std::fs::write(&ca, ctx.pki.ca_pem())?;
        let extra = [
            "--node-selector=diag=true".to_owned(),
            format!("--kubelet-certificate-authority={}", ca.display()),
            "--kubelet-node-proxy-fallback".to_owned(),
            "--node-scrape-events".to_owned(),
        ];
        let args = local::sibling_args(
            &primary,
            port,
            &["--node-selector=", "--kubelet-insecure-tls"],
            &extra,
        );
        let log = ctx.cluster.join("logs/metrics-server-diag.log");
        let child = local::spawn_logged(&primary.exe, &args, &log)?;
        let server = Self {
            child,
            url: format!("https://127.0.0.1:{port}"),
            log,
        };
        server.wait_ready(ctx).await?;
        Ok(server)
    }

    async fn wait_ready(&self, ctx: &Ctx) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            // Not /readyz: none of its nodes may be servable.
            if let Ok(r) = ctx.https.get(&format!("{}/livez", self.url)).await
                && r.status == 200
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the second server did not come up (log {})",
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    async fn health(&self, ctx: &Ctx) -> Result<Value> {
        Ok(serde_json::from_str(
            &ctx.https
                .get_ok(&format!("{}/scrape-health", self.url))
                .await?,
        )?)
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The fallback must switch the node to kube-apiserver's node proxy and report what came back.
/// On this loopback-only machine kube-apiserver refuses to proxy to a node whose address is
/// loopback (`400 address not allowed`), so the data cannot come through; on a cluster with
/// routable node addresses the same case asserts that the node is served.
async fn fallback_serves_the_blocked_node(ctx: &Ctx, second: &SecondServer) -> Result<()> {
    let node = eventually(ctx, "diag-blocked on the node proxy", async || {
        let doc = second.health(ctx).await?;
        let node = node_entry(&doc, BLOCKED).context("not listed yet")?.clone();
        ensure!(
            node["route"] == "node-proxy",
            "not on the proxy yet: {node}"
        );
        Ok(node)
    })
    .await?;
    ensure!(node["directError"]["class"] == "connect_refused", "{node}");
    let proxy_path =
        format!("/api/v1/nodes/{BLOCKED}/proxy/metrics/nodes/{BLOCKED}/metrics/resource");
    ensure!(
        node["url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&proxy_path)),
        "{node}"
    );
    let url = format!("{}{GROUP_PATH}/nodes/{BLOCKED}", second.url);
    let r = ctx.https.get(&url).await?;
    if node["lastError"].is_null() {
        ensure!(
            r.status == 200,
            "served by the proxy, yet HTTP {}: {}",
            r.status,
            r.body
        );
        let item: Value = serde_json::from_str(&r.body)?;
        ensure!(item["usage"]["memory"].is_string(), "{}", r.body);
        return Ok(());
    }
    let error = &node["lastError"];
    ensure!(
        error["class"] == "http_status"
            && error["statusCode"] == 400
            && error["message"]
                .as_str()
                .is_some_and(|m| m.contains("address not allowed")),
        "the proxy failed for another reason than loopback node addresses: {node}"
    );
    ensure!(
        r.status == 404 && r.body.contains("node proxy"),
        "{}",
        r.body
    );
    println!(
        "   kube-apiserver refused the node proxy for a loopback node address ({}); the fallback was taken and reported",
        error["message"].as_str().unwrap_or_default()
    );
    Ok(())
}

async fn missing_san_is_named(ctx: &Ctx, second: &SecondServer) -> Result<()> {
    let node = eventually(ctx, "diag-nosan to fail", async || {
        let doc = second.health(ctx).await?;
        let node = node_entry(&doc, NOSAN).context("not listed yet")?.clone();
        ensure!(!node["lastError"].is_null(), "not failing yet: {node}");
        Ok(node)
    })
    .await?;
    ensure!(node["lastError"]["class"] == "tls_name_mismatch", "{node}");
    ensure!(
        node["route"] == "direct",
        "a TLS failure must not switch to the proxy: {node}"
    );
    let r = ctx
        .https
        .get(&format!("{}{GROUP_PATH}/nodes/{NOSAN}", second.url))
        .await?;
    ensure!(r.status == 404, "HTTP {}: {}", r.status, r.body);
    let status: Value = serde_json::from_str(&r.body)?;
    let message = status["message"].as_str().unwrap_or_default();
    ensure!(
        status["reason"] == "NotFound" && status["details"]["kind"] == "nodemetrics",
        "{}",
        r.body
    );
    ensure!(
        message.contains(&format!(
            "TLS: certificate not valid for the address {NOSAN_IP}:{}",
            ctx.kubelet_port
        )) && message.contains("no SAN for the scraped address"),
        "{message}"
    );
    Ok(())
}

async fn events_on_the_nodes(ctx: &Ctx) -> Result<()> {
    let events = Api::<Event>::namespaced(ctx.client.clone(), "default");
    let found = eventually(ctx, "an Event on diag-nosan", async || {
        let list = events.list(&ListParams::default()).await?;
        let hit = list.items.into_iter().find(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(NOSAN)
                && e.reason.as_deref() == Some("MetricsScrapeFailed")
        });
        hit.context("no MetricsScrapeFailed Event yet")
    })
    .await?;
    let note = found.note.unwrap_or_default();
    ensure!(
        note.contains("TLS: certificate not valid for the address"),
        "{note}"
    );
    ensure!(
        found.type_.as_deref() == Some("Warning"),
        "{:?}",
        found.type_
    );
    Ok(())
}
