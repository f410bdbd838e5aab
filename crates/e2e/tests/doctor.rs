//! `metrics-server doctor` against injected faults on the local cluster (issue 8, part 5): each case
//! breaks one thing, checks that doctor names it with a fix, and puts it back; the last case checks
//! that doctor finds the cluster healthy again.
//!
//! Faults: (1) the server's ClusterRoleBinding removed; (2) the APIService pointing at a wrong port;
//! (3) the Service without endpoints; (4) the server hung (SIGSTOP); (7) a front-proxy CA mismatch
//! between kube-apiserver and the server; (8) an HPA whose target pods request no CPU; and a node
//! advertising a kubelet port that refuses (doctor's reading of the scrape-health document).
//!
//! The local cluster runs the server as a process with admin credentials, so the setup creates the
//! ServiceAccount and RBAC of deploy/base (when absent) for doctor's SubjectAccessReviews to judge,
//! and the teardown deletes what it created.
//!
//! Fault (7): a CA swapped into `extension-apiserver-authentication` does not stay alone there:
//! kube-apiserver's cluster-authentication-trust controller merges its own CAs back on its periodic
//! resync (measured on the local cluster: another CA alone for under a minute, then both), so the
//! mismatch would be a race with the server's 30 s reload. It is injected where it persists, on the
//! server: it is started again with `--requestheader-client-ca-file` naming another CA.
//!
//! Runs only against the cluster named by `E2E_KUBECONFIG` (`make e2e` runs it after the suite).
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Namespace, Node, Service, ServiceAccount};
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use metrics_server_doctor::{Finding, Severity};
use metrics_server_e2e::kubectl::Kubectl;
use metrics_server_e2e::namespace;
use metrics_server_e2e::procs::{self, Process};
use metrics_server_e2e::retry::eventually;
use metrics_server_e2e::runner::{self, Tally};
use serde_json::json;

const APISERVICE: &str = "v1beta1.metrics.k8s.io";
const SERVER_NS: &str = "kube-system";
const SERVER_SVC: &str = "metrics-server";
const HPA_NS: &str = "doctor-e2e-hpa";
const HPA_NAME: &str = "web";
const IMAGE: &str = "registry.k8s.io/e2e-test-images/resource-consumer:1.9";
const SKIP_LABEL: &str = "metrics-server-skip";
/// How long kube-apiserver's aggregator may take to notice a change of the route.
const CONDITION_DEADLINE: Duration = Duration::from_secs(150);
const CASE_TIMEOUT: Duration = Duration::from_secs(420);

fn main() -> ExitCode {
    runner::main("doctor", |kubeconfig| async move { run(&kubeconfig).await })
}

type CaseFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'a>>;
type CaseFn = for<'a> fn(&'a Ctx) -> CaseFuture<'a>;

fn cases() -> Vec<(&'static str, CaseFn)> {
    vec![
        (
            "healthy: doctor finds nothing wrong and `metrics-server doctor -o json` exits 0",
            |ctx| Box::pin(healthy(ctx)),
        ),
        (
            "(1) ClusterRoleBinding system:metrics-server deleted: doctor names the denied permissions and the binding to create; the binary exits 1",
            |ctx| Box::pin(rbac_binding_removed(ctx)),
        ),
        (
            "(2) APIService pointing at a wrong port: doctor says nothing listens there and how to patch the port",
            |ctx| Box::pin(apiservice_wrong_port(ctx)),
        ),
        (
            "(3) Service without endpoints: doctor says its selector matches no pod",
            |ctx| Box::pin(service_without_endpoints(ctx)),
        ),
        (
            "(4) server hung (SIGSTOP): doctor says discovery timed out, the process is hung",
            |ctx| Box::pin(server_hung(ctx)),
        ),
        (
            "(7) front-proxy CA mismatch between kube-apiserver and the server: doctor names it",
            |ctx| Box::pin(front_proxy_mismatch(ctx)),
        ),
        (
            "a node whose advertised kubelet port refuses: doctor names the node's kubelet port unreachable and the node-proxy fallback (from the scrape-health document)",
            |ctx| Box::pin(kubelet_port_refused(ctx)),
        ),
        (
            "(8) HPA whose target pods request no CPU: doctor names the container and the kubectl set resources fix",
            |ctx| Box::pin(hpa_without_cpu_request(ctx)),
        ),
        (
            "every fault restored: doctor finds nothing wrong again",
            |ctx| Box::pin(healthy_again(ctx)),
        ),
    ]
}

async fn run(kubeconfig: &Path) -> ExitCode {
    let filter = std::env::var(runner::FILTER_VAR).unwrap_or_default();
    let selected = match runner::select(cases(), &filter, |c| c.0) {
        Ok(selected) => selected,
        Err(reason) => {
            println!("doctor: FAILED: {reason}");
            return ExitCode::FAILURE;
        }
    };
    let mut ctx = match Ctx::discover(kubeconfig).await {
        Ok(ctx) => ctx,
        Err(err) => {
            println!("doctor: FAILED: no usable cluster: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    let mut tally = Tally::new();
    let setup = ctx.setup().await;
    tally.setup(
        "the server's ServiceAccount and RBAC exist (created from deploy/base when absent) and the APIService is Available",
        &setup,
    );
    if setup.is_ok() {
        for (name, case) in &selected {
            let start = Instant::now();
            let result = tokio::time::timeout(CASE_TIMEOUT, case(&ctx))
                .await
                .unwrap_or_else(|_| Err(anyhow!("did not finish within {CASE_TIMEOUT:?}")));
            tally.case(name, &result);
            println!("   ({:.1}s)", start.elapsed().as_secs_f64());
        }
    }
    let teardown = ctx.teardown().await;
    tally.teardown("what the setup created is deleted", &teardown);
    println!("{}", tally.summary());
    if tally.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

struct Ctx {
    client: kube::Client,
    kubectl: Kubectl,
    kubeconfig: PathBuf,
    /// The cluster's folder: every process of the cluster mentions it in its arguments.
    cluster: PathBuf,
    /// deploy/base of this repository.
    deploy: PathBuf,
    /// Whether the setup created the ServiceAccount and RBAC (and the teardown deletes them).
    created_rbac: bool,
}

impl Ctx {
    async fn discover(kubeconfig: &Path) -> Result<Self> {
        let cluster = procs::cluster_dir(kubeconfig)
            .context("the kubeconfig has no parent folder")?
            .canonicalize()
            .context("resolving the cluster folder")?;
        let config = runner::load_config(kubeconfig).await?;
        let client = kube::Client::try_from(config).context("building the Kubernetes client")?;
        Ok(Self {
            client,
            kubectl: Kubectl::new(kubeconfig),
            kubeconfig: kubeconfig.to_owned(),
            cluster,
            deploy: Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/base"),
            created_rbac: false,
        })
    }

    fn manifest(&self, name: &str) -> String {
        self.deploy.join(name).display().to_string()
    }

    async fn setup(&mut self) -> Result<()> {
        let sa = Api::<ServiceAccount>::namespaced(self.client.clone(), SERVER_NS);
        if sa.get_opt("metrics-server").await?.is_none() {
            self.created_rbac = true;
            println!("   creating the ServiceAccount and RBAC of deploy/base");
        }
        self.apply_rbac().await?;
        wait_available(self, true).await
    }

    async fn apply_rbac(&self) -> Result<()> {
        for file in ["serviceaccount.yaml", "rbac.yaml"] {
            self.kubectl
                .run(&["apply", "-f", &self.manifest(file)])
                .await?;
        }
        Ok(())
    }

    async fn teardown(&self) -> Result<()> {
        let namespaces = Api::<Namespace>::all(self.client.clone());
        // The HPA case deletes its namespace itself; it may finish terminating between the two calls.
        if namespaces.get_opt(HPA_NS).await?.is_some() {
            match namespaces.delete(HPA_NS, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        if self.created_rbac {
            for file in ["rbac.yaml", "serviceaccount.yaml"] {
                self.kubectl
                    .run(&["delete", "--ignore-not-found", "-f", &self.manifest(file)])
                    .await?;
            }
        }
        Ok(())
    }

    /// Runs doctor's gather and analyze, printing its table.
    async fn doctor(&self) -> Result<Vec<Finding>> {
        let facts = metrics_server_doctor::gather(&self.client, &Default::default())
            .await
            .context("doctor could not gather")?;
        let findings = metrics_server_doctor::analyze(&facts);
        for line in metrics_server_doctor::finding::render_table(&findings).lines() {
            println!("   | {line}");
        }
        Ok(findings)
    }

    /// Runs doctor until `check` accepts its findings (the aggregator's conditions settle in steps),
    /// for up to a minute.
    async fn doctor_until(&self, check: impl Fn(&[Finding]) -> Result<()>) -> Result<()> {
        eventually(Duration::from_secs(60), Duration::from_secs(5), || async {
            check(&self.doctor().await?)
        })
        .await
    }

    /// The server process (`procs` already names a rebuilt binary by its path).
    fn server(&self) -> Result<Process> {
        procs::find("metrics-server", &self.cluster.to_string_lossy())
    }

    /// Starts `process` again and records its pid where kwokctl keeps it.
    fn respawn(&self, process: &Process) -> Result<()> {
        let pid = process.respawn()?;
        let pid_file = self.cluster.join("pids").join("metrics-server.pid");
        if pid_file.exists() {
            std::fs::write(&pid_file, pid.to_string())
                .with_context(|| format!("writing {}", pid_file.display()))?;
        }
        Ok(())
    }
}

/// The Available condition of the APIService as `(status, reason, message)`.
async fn availability(ctx: &Ctx) -> Result<(String, String, String)> {
    let api = Api::<APIService>::all(ctx.client.clone())
        .get(APISERVICE)
        .await?;
    let cond = api
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Available")
        .context("no Available condition")?;
    Ok((
        cond.status,
        cond.reason.unwrap_or_default(),
        cond.message.unwrap_or_default(),
    ))
}

async fn wait_available(ctx: &Ctx, want: bool) -> Result<()> {
    let want_status = if want { "True" } else { "False" };
    eventually(CONDITION_DEADLINE, Duration::from_secs(2), || async {
        let (status, reason, message) = availability(ctx).await?;
        ensure!(
            status == want_status,
            "APIService Available={status} ({reason}: {message}), waiting for {want_status}"
        );
        Ok(())
    })
    .await
    .with_context(|| format!("APIService {APISERVICE} never became Available={want_status}"))
}

/// The Error finding of `check` whose message contains every one of `message`, and whose fix
/// contains every one of `fix`.
fn expect_error(findings: &[Finding], check: &str, message: &[&str], fix: &[&str]) -> Result<()> {
    let found = findings.iter().find(|f| {
        f.severity == Severity::Error
            && f.check == check
            && message.iter().all(|m| f.message.contains(m))
    });
    let Some(f) = found else {
        bail!("doctor named no {check} error with {message:?}");
    };
    for part in fix {
        ensure!(f.fix.contains(part), "the fix {:?} lacks {part:?}", f.fix);
    }
    Ok(())
}

fn no_problem(findings: &[Finding]) -> Result<()> {
    let problems: Vec<String> = findings
        .iter()
        .filter(|f| f.severity != Severity::Info)
        .map(|f| format!("{:?} {} {}: {}", f.severity, f.check, f.subject, f.message))
        .collect();
    ensure!(problems.is_empty(), "doctor reports {problems:#?}");
    Ok(())
}

/// Runs the server's own binary as `metrics-server doctor -o json` and returns its exit code and
/// findings.
async fn doctor_binary(ctx: &Ctx) -> Result<(i32, serde_json::Value)> {
    let exe = ctx.server()?.exe;
    let kubeconfig = ctx.kubeconfig.display().to_string();
    let output = tokio::process::Command::new(&exe)
        .args(["doctor", "--kubeconfig", &kubeconfig, "-o", "json"])
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running {} doctor", exe.display()))?;
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "doctor -o json printed no JSON; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    Ok((output.status.code().unwrap_or(-1), report))
}

async fn healthy(ctx: &Ctx) -> Result<()> {
    // On a fresh cluster the first scrapes may be incomplete until KWOK's pods run.
    ctx.doctor_until(no_problem).await?;
    let (code, report) = doctor_binary(ctx).await?;
    ensure!(code == 0, "metrics-server doctor exited {code}: {report}");
    ensure!(report["summary"]["errors"] == 0, "{report}");
    Ok(())
}

async fn healthy_again(ctx: &Ctx) -> Result<()> {
    wait_available(ctx, true).await?;
    // The HPA of case (8) goes with its namespace; give it and the aggregator a moment.
    ctx.doctor_until(no_problem).await
}

async fn rbac_binding_removed(ctx: &Ctx) -> Result<()> {
    ctx.kubectl
        .run(&["delete", "clusterrolebinding", "system:metrics-server"])
        .await?;
    let result = async {
        let fix = "kubectl create clusterrolebinding system:metrics-server \
            --clusterrole=system:metrics-server --serviceaccount=kube-system:metrics-server";
        ctx.doctor_until(|findings| {
            let needed = ["get nodes/metrics", "list nodes", "watch pods"];
            expect_error(findings, "rbac", &needed, &[fix])
        })
        .await?;
        let (code, report) = doctor_binary(ctx).await?;
        ensure!(code == 1, "metrics-server doctor exited {code}, not 1");
        ensure!(report["summary"]["errors"].as_u64() >= Some(1), "{report}");
        Ok(())
    }
    .await;
    let restored = ctx.apply_rbac().await;
    result.and(restored)
}

/// A loopback port nothing listens on (bound, then released).
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

async fn patch_apiservice_port(ctx: &Ctx, port: i32) -> Result<()> {
    Api::<APIService>::all(ctx.client.clone())
        .patch(
            APISERVICE,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"service": {"port": port}}})),
        )
        .await
        .with_context(|| format!("patching the APIService's port to {port}"))?;
    Ok(())
}

async fn apiservice_port(ctx: &Ctx) -> Result<i32> {
    let api = Api::<APIService>::all(ctx.client.clone())
        .get(APISERVICE)
        .await?;
    Ok(api
        .spec
        .and_then(|s| s.service)
        .and_then(|s| s.port)
        .unwrap_or(443))
}

async fn apiservice_wrong_port(ctx: &Ctx) -> Result<()> {
    let original = apiservice_port(ctx).await?;
    let wrong = i32::from(free_port()?);
    patch_apiservice_port(ctx, wrong).await?;
    let result = async {
        wait_available(ctx, false).await?;
        ctx.doctor_until(|findings| {
            expect_error(
                findings,
                "apiservice",
                &[
                    &format!("nothing listens at 127.0.0.1:{wrong}"),
                    &format!("port ({wrong})"),
                ],
                &["kubectl patch apiservice v1beta1.metrics.k8s.io"],
            )
        })
        .await
    }
    .await;
    let restored = async {
        patch_apiservice_port(ctx, original).await?;
        wait_available(ctx, true).await
    }
    .await;
    result.and(restored)
}

/// The Service as it can be created again (no server-set fields).
fn recreatable(mut svc: Service) -> Service {
    let meta = &mut svc.metadata;
    meta.resource_version = None;
    meta.uid = None;
    meta.creation_timestamp = None;
    meta.managed_fields = None;
    svc.status = None;
    if let Some(spec) = &mut svc.spec {
        spec.cluster_ip = None;
        spec.cluster_ips = None;
    }
    svc
}

async fn replace_service(ctx: &Ctx, svc: &Service) -> Result<()> {
    let api = Api::<Service>::namespaced(ctx.client.clone(), SERVER_NS);
    api.delete(SERVER_SVC, &DeleteParams::default()).await?;
    eventually(
        Duration::from_secs(30),
        Duration::from_millis(500),
        || async {
            ensure!(api.get_opt(SERVER_SVC).await?.is_none(), "still there");
            Ok(())
        },
    )
    .await?;
    api.create(&PostParams::default(), svc).await?;
    Ok(())
}

async fn service_without_endpoints(ctx: &Ctx) -> Result<()> {
    let api = Api::<Service>::namespaced(ctx.client.clone(), SERVER_NS);
    let original = recreatable(api.get(SERVER_SVC).await?);
    let port = apiservice_port(ctx).await?;
    // Headless, so nothing ever routes to a cluster IP; the selector matches no pod.
    let broken: Service = serde_json::from_value(json!({
        "metadata": {"name": SERVER_SVC, "namespace": SERVER_NS},
        "spec": {
            "clusterIP": "None",
            "selector": {"k8s-app": "doctor-e2e-matches-nothing"},
            "ports": [{"name": "https", "port": port, "targetPort": port}]
        }
    }))?;
    replace_service(ctx, &broken).await?;
    let result = async {
        wait_available(ctx, false).await?;
        ctx.doctor_until(|findings| {
            // MissingEndpoints, or EndpointsNotFound before the EndpointSlice controller made a slice.
            expect_error(findings, "apiservice", &["has no ready endpoints"], &[])?;
            expect_error(
                findings,
                "endpoints",
                &[
                    "no ready endpoints",
                    "selector k8s-app=doctor-e2e-matches-nothing matches no pod",
                ],
                &["get pods --show-labels"],
            )
        })
        .await
    }
    .await;
    let restored = async {
        replace_service(ctx, &original).await?;
        wait_available(ctx, true).await
    }
    .await;
    result.and(restored)
}

fn signal(pid: u32, sig: &str) -> Result<()> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()?;
    ensure!(status.success(), "kill -{sig} {pid}: {status}");
    Ok(())
}

/// Sends SIGCONT when dropped, so a case cut short by its timeout never leaves the server stopped.
struct Resume(u32);

impl Drop for Resume {
    fn drop(&mut self) {
        let _ = signal(self.0, "CONT");
    }
}

async fn server_hung(ctx: &Ctx) -> Result<()> {
    let server = ctx.server()?;
    let resume = Resume(server.pid);
    signal(server.pid, "STOP")?;
    let result = async {
        wait_available(ctx, false).await?;
        ctx.doctor_until(|findings| {
            expect_error(
                findings,
                "apiservice",
                &["FailedDiscoveryCheck", "did not answer in time", "hung"],
                &["rollout restart"],
            )
        })
        .await
    }
    .await;
    let resumed = signal(server.pid, "CONT");
    drop(resume);
    let restored = async {
        resumed?;
        wait_available(ctx, true).await
    }
    .await;
    result.and(restored)
}

async fn front_proxy_mismatch(ctx: &Ctx) -> Result<()> {
    let server = ctx.server()?;
    let pki = metrics_server_test_support::pki::TestPki::new()?;
    let other_ca = ctx.cluster.join("doctor-e2e-other-front-proxy-ca.crt");
    std::fs::write(&other_ca, pki.ca_pem())?;
    let mut mismatched = server.clone();
    mismatched
        .argv
        .push(format!("--requestheader-client-ca-file={}", other_ca.display()).into());
    server.kill("TERM", Duration::from_secs(20))?;
    let result = async {
        ctx.respawn(&mismatched)?;
        wait_available(ctx, false).await?;
        ctx.doctor_until(|findings| {
            expect_error(
                findings,
                "apiservice",
                &["front-proxy CA mismatch"],
                &[
                    "extension-apiserver-authentication",
                    "--requestheader-client-ca-file",
                ],
            )
        })
        .await
    }
    .await;
    let restored = async {
        if let Ok(running) = ctx.server() {
            running.kill("TERM", Duration::from_secs(20))?;
        }
        ctx.respawn(&server)?;
        wait_available(ctx, true).await
    }
    .await;
    let _ = std::fs::remove_file(&other_ca);
    result.and(restored)
}

/// The last node the server scrapes (not labelled to be skipped).
async fn scraped_node(ctx: &Ctx) -> Result<Node> {
    let mut nodes: Vec<Node> = Api::<Node>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|n| {
            n.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SKIP_LABEL))
                .is_none_or(|v| v != "true")
        })
        .collect();
    nodes.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    nodes.pop().context("no node is scraped")
}

async fn set_kubelet_port(ctx: &Ctx, node: &str, port: i32) -> Result<()> {
    Api::<Node>::all(ctx.client.clone())
        .patch_status(
            node,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}),
            ),
        )
        .await
        .with_context(|| format!("setting node {node}'s kubelet port to {port}"))?;
    Ok(())
}

/// Not one of the faults of issue 8 (the lead's (5) blocks a port and checks the fallback): the
/// node advertises a loopback port nothing listens on, so doctor's per-node finding is checked end
/// to end through the server's real scrape-health document.
async fn kubelet_port_refused(ctx: &Ctx) -> Result<()> {
    let node = scraped_node(ctx).await?;
    let name = node.metadata.name.clone().unwrap_or_default();
    let original = node
        .status
        .and_then(|s| s.daemon_endpoints)
        .and_then(|d| d.kubelet_endpoint)
        .map(|e| e.port)
        .context("the node advertises no kubelet port")?;
    let closed = i32::from(free_port()?);
    set_kubelet_port(ctx, &name, closed).await?;
    let result = ctx
        .doctor_until(|findings| {
            expect_error(
                findings,
                "kubelet",
                &[
                    "kubelet port unreachable from metrics-server",
                    &format!("127.0.0.1:{closed}"),
                ],
                &[
                    "--kubelet-node-proxy-fallback",
                    "nodes/proxy",
                    &format!("allow TCP {closed}"),
                ],
            )?;
            let subject = format!("node/{name}");
            ensure!(
                findings
                    .iter()
                    .any(|f| f.check == "kubelet" && f.subject == subject),
                "no kubelet finding about {subject}"
            );
            Ok(())
        })
        .await;
    let restored = async {
        set_kubelet_port(ctx, &name, original).await?;
        ctx.doctor_until(|findings| {
            let failing = findings
                .iter()
                .any(|f| f.check == "kubelet" && f.severity == Severity::Error);
            ensure!(!failing, "a node still fails its scrapes");
            Ok(())
        })
        .await
    }
    .await;
    result.and(restored)
}

async fn hpa_without_cpu_request(ctx: &Ctx) -> Result<()> {
    let namespaces = Api::<Namespace>::all(ctx.client.clone());
    namespace::create_ready(&ctx.client, HPA_NS).await?;
    let result = hpa_case(ctx).await;
    let restored = namespaces
        .delete(HPA_NS, &DeleteParams::default())
        .await
        .map(|_| ())
        .map_err(anyhow::Error::from);
    result.and(restored)
}

async fn hpa_case(ctx: &Ctx) -> Result<()> {
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": HPA_NAME, "namespace": HPA_NS},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": HPA_NAME}},
            "template": {
                "metadata": {"labels": {"app": HPA_NAME}, "annotations": {"kwok.x-k8s.io/usage-cpu": "50m"}},
                "spec": {
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                        {"matchExpressions": [{"key": SKIP_LABEL, "operator": "DoesNotExist"}]}
                    ]}}},
                    "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}],
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "app", "image": IMAGE, "resources": {"requests": {"memory": "64Mi"}}}]
                }
            }
        }
    });
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": {"name": HPA_NAME, "namespace": HPA_NS},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": HPA_NAME},
            "minReplicas": 1,
            "maxReplicas": 3,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]
        }
    }))?;
    let manifest = std::env::temp_dir().join(format!("doctor-e2e-{}.json", std::process::id()));
    std::fs::write(&manifest, deployment.to_string())?;
    let applied = ctx
        .kubectl
        .run(&["apply", "-f", &manifest.display().to_string()])
        .await;
    let _ = std::fs::remove_file(&manifest);
    applied?;
    let hpas = Api::<HorizontalPodAutoscaler>::namespaced(ctx.client.clone(), HPA_NS);
    hpas.create(&PostParams::default(), &hpa).await?;
    // The HPA controller must have tried (and failed) to compute utilization, and a pod must run.
    eventually(Duration::from_secs(120), Duration::from_secs(5), || async {
        let hpa = hpas.get(HPA_NAME).await?;
        let failing = hpa
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .into_iter()
            .any(|c| c.type_ == "ScalingActive" && c.status == "False");
        ensure!(failing, "the HPA has not reported its failure yet");
        Ok(())
    })
    .await?;
    ctx.doctor_until(|findings| {
        expect_error(
            findings,
            "hpa",
            &[
                "cpu shows <unknown>",
                "container(s) app of pod web-",
                "request no cpu",
            ],
            &["kubectl -n doctor-e2e-hpa set resources deployment/web -c app --requests=cpu="],
        )
    })
    .await
}
