//! `deploy/sharded-high-availability.yaml` and the chart's sharded values: the objects a replica
//! needs to share the kubelets (`--shard-by-lease`), which upstream has no counterpart for.

use anyhow::{Context as _, Result, ensure};
use metrics_server_deploy_tests::manifest;
use metrics_server_deploy_tests::rbac;
use metrics_server_deploy_tests::tools::{repo_root, run, run_with_input};
use serde_json::{Value, json};

use super::{
    NAMESPACE, OWN_CHART_CASES, RBAC_KINDS, SHARDED, chart_dir, cluster_kubectl, find,
    helm_template, ours_args, read,
};

/// What the Lease code sends: server-side apply (patch), list and delete, in its namespace.
const LEASE_VERBS: [&str; 3] = ["patch", "list", "delete"];
const SERVICE_ACCOUNT: &str = "system:serviceaccount:kube-system:metrics-server";

fn sharded_objects() -> Result<Vec<Value>> {
    manifest::parse_documents(&read(&repo_root().join("deploy").join(SHARDED.0))?)
}

fn container(objs: &[Value]) -> Result<&Value> {
    find(objs, "Deployment")?["spec"]["template"]["spec"]["containers"]
        .get(0)
        .context("no container")
}

/// The downward-API variables the `--shard-*` flags default from.
fn downward_env(c: &Value) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = c["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_owned(),
                e["valueFrom"]["fieldRef"]["fieldPath"].as_str()?.to_owned(),
            ))
        })
        .collect();
    env.sort();
    env
}

/// The grants on Leases, each with its subject and scope.
fn lease_grants(objs: &[Value]) -> Vec<String> {
    rbac::grants(objs)
        .into_iter()
        .filter(|g| g.contains("coordination.k8s.io/leases"))
        .collect()
}

pub(super) fn sharded_contract() -> Result<()> {
    let objs = sharded_objects()?;
    let d = find(&objs, "Deployment")?;
    ensure!(
        d["spec"]["replicas"] == json!(3),
        "replicas {}",
        d["spec"]["replicas"]
    );
    ensure!(
        d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == json!(1),
        "strategy {}",
        d["spec"]["strategy"]
    );
    let c = container(&objs)?;
    let args: Vec<&str> = c["args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    ensure!(
        args.contains(&"--shard-by-lease"),
        "--shard-by-lease missing from {args:?}"
    );
    let env = downward_env(c);
    for (name, path) in [
        ("POD_IP", "status.podIP"),
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        ensure!(
            env.iter().any(|(n, p)| n == name && p == path),
            "env {name} from {path} missing: {env:?}"
        );
    }
    let pdb = find(&objs, "PodDisruptionBudget")?;
    ensure!(
        pdb["apiVersion"] == json!("policy/v1")
            && pdb["spec"]["minAvailable"] == json!(2)
            && pdb["spec"]["selector"]["matchLabels"]
                == d["spec"]["template"]["metadata"]["labels"],
        "PodDisruptionBudget {pdb}"
    );
    let grants = lease_grants(&objs);
    for verb in LEASE_VERBS {
        ensure!(
            grants.iter().any(
                |g| g.contains(&format!("{verb} coordination.k8s.io/leases"))
                    && g.contains("in namespace kube-system")
                    && g.contains("metrics-server")
            ),
            "no grant to {verb} Leases in kube-system for the ServiceAccount: {grants:?}"
        );
    }
    ensure!(
        grants
            .iter()
            .all(|g| g.contains("in namespace kube-system")),
        "Leases granted beyond kube-system: {grants:?}"
    );
    Ok(())
}

pub(super) fn helm_sharded_matches_manifest() -> Result<()> {
    let manifest_objs = sharded_objects()?;
    let (_, values) = OWN_CHART_CASES[0];
    let rendered = helm_template(&chart_dir(), &ours_args(values))?;
    let chart_objs = manifest::parse_documents(&rendered)?;
    let (ours, theirs) = (container(&chart_objs)?, container(&manifest_objs)?);
    let has_flag = |c: &Value| {
        c["args"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "--shard-by-lease"))
    };
    ensure!(
        has_flag(ours),
        "the chart's args lack --shard-by-lease: {}",
        ours["args"]
    );
    ensure!(
        downward_env(ours) == downward_env(theirs),
        "downward-API env: chart {:?}, manifest {:?}",
        downward_env(ours),
        downward_env(theirs)
    );
    ensure!(
        lease_grants(&chart_objs) == lease_grants(&manifest_objs),
        "Lease grants: chart {:?}, manifest {:?}",
        lease_grants(&chart_objs),
        lease_grants(&manifest_objs)
    );
    let replicas = |objs: &[Value]| find(objs, "Deployment").map(|d| d["spec"]["replicas"].clone());
    ensure!(
        replicas(&chart_objs)? == replicas(&manifest_objs)?,
        "replicas: chart {}, manifest {}",
        replicas(&chart_objs)?,
        replicas(&manifest_objs)?
    );
    let min_available = |objs: &[Value]| {
        find(objs, "PodDisruptionBudget").map(|p| p["spec"]["minAvailable"].clone())
    };
    ensure!(
        min_available(&chart_objs)? == min_available(&manifest_objs)?,
        "PDB minAvailable: chart {}, manifest {}",
        min_available(&chart_objs)?,
        min_available(&manifest_objs)?
    );
    Ok(())
}

/// Applies the manifest's RBAC for real and asks kube-apiserver what the ServiceAccount may do.
pub(super) fn sharded_rbac_on_cluster() -> Result<()> {
    let objs = sharded_objects()?;
    let items: Vec<Value> = objs
        .iter()
        .filter(|o| RBAC_KINDS.contains(&o["kind"].as_str().unwrap_or("")))
        .cloned()
        .collect();
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
    run_with_input(
        cluster_kubectl()?.args([
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=metrics-server-rs-deploy-test",
            "-f",
            "-",
        ]),
        Some(list.to_string().as_bytes()),
    )?;
    let result = check_lease_permissions();
    let _ = run(cluster_kubectl()?.args([
        "delete",
        "-n",
        NAMESPACE,
        "--ignore-not-found",
        "role/metrics-server:shard-leases",
        "rolebinding/metrics-server:shard-leases",
    ]));
    result
}

fn can_i(verb: &str, resource: &str, namespace: &str) -> Result<bool> {
    // `auth can-i` exits 1 for "no": read the answer, not the status.
    let out = cluster_kubectl()?
        .args([
            "auth",
            "can-i",
            verb,
            resource,
            "-n",
            namespace,
            "--as",
            SERVICE_ACCOUNT,
        ])
        .output()
        .context("kubectl auth can-i")?;
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    ensure!(
        answer == "yes" || answer == "no",
        "kubectl auth can-i {verb} {resource}: {answer:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(answer == "yes")
}

fn check_lease_permissions() -> Result<()> {
    for verb in LEASE_VERBS {
        ensure!(
            can_i(verb, "leases.coordination.k8s.io", NAMESPACE)?,
            "the ServiceAccount cannot {verb} Leases in {NAMESPACE}"
        );
        ensure!(
            !can_i(verb, "leases.coordination.k8s.io", "default")?,
            "the ServiceAccount may {verb} Leases in default: the grant is wider than its namespace"
        );
    }
    // Peers' tokens are checked with TokenReview (system:auth-delegator).
    ensure!(
        can_i("create", "tokenreviews.authentication.k8s.io", NAMESPACE)?,
        "the ServiceAccount cannot create TokenReviews"
    );
    Ok(())
}
