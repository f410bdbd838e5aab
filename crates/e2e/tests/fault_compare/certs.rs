//! The certificate faults, with verification on. The comparison cluster runs both servers with
//! `--kubelet-insecure-tls`, where no certificate is checked, so this phase starts one more
//! instance of each, for these nodes only (`--node-selector=faultcert=true`), trusting a CA of the
//! harness (`--kubelet-certificate-authority`). One node has a good certificate from that CA, as
//! the control that verification works; three have a bad one.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams};
use metrics_server_e2e::metrics::API;
use metrics_server_e2e::procs;
use metrics_server_test_support::{Fault, FaultyKubelet, FaultyListening, IssuedCert, TestPki};
use serde_json::json;

use super::{Ctx, Pair, body_with_node_memory, create_retrying, log_lines};

struct CertCase {
    slug: &'static str,
    what: &'static str,
    /// Whether a verifying server must serve the node.
    valid: bool,
}

const CASES: [CertCase; 4] = [
    CertCase {
        slug: "valid",
        what: "Control: a valid certificate for the node's address",
        valid: true,
    },
    CertCase {
        slug: "nosan",
        what: "A serving certificate without the node's address",
        valid: false,
    },
    CertCase {
        slug: "expired",
        what: "An expired serving certificate",
        valid: false,
    },
    CertCase {
        slug: "otherca",
        what: "A serving certificate from another CA",
        valid: false,
    },
];

fn node_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 60 + u8::try_from(i).unwrap_or(100))
}

fn node_name(case: &CertCase) -> String {
    format!("faultcert-{}", case.slug)
}

/// The outcome: a Markdown table and what ours got wrong (empty when right).
pub(super) struct CertReport {
    pub(super) table: String,
    pub(super) ours_wrong: Vec<String>,
}

pub(super) async fn compare(
    ctx: &Ctx,
    primary: &procs::Process,
    upstream_bin: &Path,
) -> Result<CertReport> {
    let pki = TestPki::new()?;
    let kubelets = start_kubelets(ctx, &pki).await?;
    create_nodes(ctx).await?;
    let ca = ctx.cluster.join("faultcert-ca.pem");
    std::fs::write(&ca, pki.ca_pem())?;
    let result = run_servers(ctx, primary, upstream_bin, &ca).await;
    delete_nodes(ctx).await;
    drop(kubelets);
    result
}

async fn run_servers(
    ctx: &Ctx,
    primary: &procs::Process,
    upstream_bin: &Path,
    ca: &Path,
) -> Result<CertReport> {
    let extra = [
        "--node-selector=faultcert=true".to_owned(),
        format!("--kubelet-certificate-authority={}", ca.display()),
    ];
    let pair = Pair::start(ctx, primary, upstream_bin, "certs", &extra).await?;
    tokio::time::sleep(ctx.resolution * 3 + Duration::from_secs(5)).await;
    let mut table = String::from(
        "\n| certificate fault (verification on) | ours: answer; log lines | upstream v0.9.0: answer; log lines |\n|---|---|---|\n",
    );
    let mut ours_wrong = Vec::new();
    for case in &CASES {
        let node = node_name(case);
        let mut cells = Vec::new();
        for (name, url, log) in pair.servers() {
            let (served, answer) = answer(ctx, url, &node).await;
            let lines = log_lines(log, 0, &node);
            let first = first_log_line(log, &node);
            cells.push(format!("{answer}; {lines} log lines{first}"));
            if name == "ours" && served != case.valid {
                ours_wrong.push(format!("{node}: {answer}"));
            }
        }
        table.push_str(&format!(
            "| {} | {} | {} |\n",
            case.what, cells[0], cells[1]
        ));
    }
    pair.stop().await;
    Ok(CertReport { table, ours_wrong })
}

/// Whether the node is served, and a short description: the CPU and memory, or the status and
/// the start of the Status message.
async fn answer(ctx: &Ctx, url: &str, node: &str) -> (bool, String) {
    match ctx.https.get(&format!("{url}{API}/nodes/{node}")).await {
        Ok(r) if r.status == 200 => (true, "served".to_owned()),
        Ok(r) => {
            let message = serde_json::from_str::<serde_json::Value>(&r.body)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_owned))
                .unwrap_or_default();
            (
                false,
                format!("not served ({}: `{}`)", r.status, clip(&message, 160)),
            )
        }
        Err(err) => (false, format!("no answer ({err})")),
    }
}

/// The error part of the first log line naming `node`, as ` (first: "...")`.
fn first_log_line(log: &Path, node: &str) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .find(|l| l.contains(node))
        .map(|l| {
            let tail = l.find("err").map_or(l, |i| &l[i..]);
            format!(" (first: `{}`)", clip(tail, 200).replace('`', "'"))
        })
        .unwrap_or_default()
}

fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

async fn start_kubelets(ctx: &Ctx, pki: &TestPki) -> Result<Vec<FaultyListening>> {
    let other = TestPki::new()?;
    let mut out = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        let ip = node_ip(i).to_string();
        let cert: IssuedCert = match case.slug {
            "nosan" => pki.server_cert(&["kubelet.invalid"])?,
            "expired" => pki.expired_server_cert(&[&ip])?,
            "otherca" => other.server_cert(&[&ip])?,
            _ => pki.server_cert(&[&ip])?,
        };
        let mut config = (*cert.server_config(None)?).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let addr = SocketAddr::new(IpAddr::V4(node_ip(i)), ctx.kwok_port);
        let fault = Fault::Body {
            body: body_with_node_memory(1e9),
            content_type: "text/plain",
        };
        out.push(
            FaultyKubelet::start_on(addr, fault, Some(Arc::new(config)))
                .await
                .with_context(|| format!("binding {addr}"))?,
        );
    }
    Ok(out)
}

async fn create_nodes(ctx: &Ctx) -> Result<()> {
    let nodes = Api::<Node>::all(ctx.client.clone());
    for (i, case) in CASES.iter().enumerate() {
        let name = node_name(case);
        let _ = nodes.delete(&name, &DeleteParams::default()).await;
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name,
                "annotations": {"kwok.x-k8s.io/node": "fake"},
                "labels": {"kubernetes.io/hostname": name, "type": "kwok", "faultcert": "true"}},
            "status": {"addresses": [{"type": "InternalIP", "address": node_ip(i).to_string()}]}
        }))?;
        create_retrying(&nodes, &node, &name).await?;
    }
    Ok(())
}

async fn delete_nodes(ctx: &Ctx) {
    let nodes = Api::<Node>::all(ctx.client.clone());
    for case in &CASES {
        let _ = nodes
            .delete(&node_name(case), &DeleteParams::default())
            .await;
    }
}
