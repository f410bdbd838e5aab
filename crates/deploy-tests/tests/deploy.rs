//! Checks of what operators install: the kustomize manifests in `deploy/`, the Helm chart in
//! `charts/metrics-server-rs` and the container image from `hack/image.sh`.
//!
//! A small runner (no libtest) prints `ok <case>`, `FAILED <case>: <reason>` or
//! `skipped <case>: <reason>` and a closing `N passed, N failed, N skipped` line.
//! `DEPLOY_TEST_FILTER=<substring>` selects cases by name. A case skips when what it needs is absent
//! (the pinned tools in `.cluster/bin`, the upstream module in the Go module cache, the release
//! binary and its image, a cluster in `DEPLOY_TEST_KUBECONFIG`); with `DEPLOY_TEST_REQUIRE=1`, as
//! `make deploy-test` sets, a missing prerequisite is a failure instead.
//!
//! The last case prepares the RBAC-is-enough run (only with `DEPLOY_TEST_SA_DIR`, see
//! `scripts/sa-launcher.sh`): after it, `make deploy-test` runs the e2e suite against a server that
//! holds nothing but the ServiceAccount token.
#![allow(clippy::print_stdout)]

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, ensure};
use metrics_server_deploy_tests::manifest::{self, ObjectKey};
use metrics_server_deploy_tests::oci;
use metrics_server_deploy_tests::rbac;
use metrics_server_deploy_tests::tools::{self, repo_root, run, run_with_input};
use metrics_server_deploy_tests::{Skip, skip};
use serde_json::{Value, json};

/// The released manifests: file name under `deploy/`, argument of `deploy/render.sh`, and the
/// upstream v0.9.0 overlay it must match (upstream's `high-availability-1.21+.yaml` is the one with
/// `policy/v1`).
const MANIFESTS: [(&str, &str, &str); 2] = [
    ("components.yaml", "components", "release"),
    (
        "high-availability.yaml",
        "high-availability",
        "release-ha-1.21+",
    ),
];

/// Our sharded HA manifest (no upstream counterpart): file name and argument of `deploy/render.sh`.
const SHARDED: (&str, &str) = (
    "sharded-high-availability.yaml",
    "sharded-high-availability",
);

/// The manifests checked against the Deployment contract: upstream's two and our sharded one.
const CONTRACT_FILES: [&str; 3] = ["components.yaml", "high-availability.yaml", SHARDED.0];

/// Chart value sets of our own (no upstream counterpart), linted and dry-run like the others.
const OWN_CHART_CASES: [(&str, &[&str]); 1] = [(
    "sharded high availability",
    &["ci/sharded-high-availability-values.yaml"],
)];

/// The image reference in the manifests and the chart's defaults.
const IMAGE_REPOSITORY: &str = "ghcr.io/metrics-server-rs/metrics-server";

/// Helm release name and namespace used for rendering, as an operator replacing upstream would.
const RELEASE: &str = "metrics-server";
const NAMESPACE: &str = "kube-system";

/// The chart's value sets under test: name, our values files, the same settings for the upstream chart.
const CHART_CASES: [(&str, &[&str], &[&str]); 3] = [
    ("default values", &[], &[]),
    (
        "high availability",
        &["ci/high-availability-values.yaml"],
        &["-f", "ci/high-availability-values.yaml"],
    ),
    (
        "tls.type=helm",
        &["ci/tls-helm-values.yaml"],
        // Upstream renders insecureSkipTLSVerify: true next to the caBundle unless told otherwise.
        &[
            "--set",
            "tls.type=helm",
            "--set",
            "apiService.insecureSkipTLSVerify=false",
        ],
    ),
];

/// Kinds the charts render that live in a namespace.
const NAMESPACED: [&str; 10] = [
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "Service",
    "Deployment",
    "PodDisruptionBudget",
    "Role",
    "RoleBinding",
    "Certificate",
    "Issuer",
];

/// Upstream chart values this chart deliberately does not implement (rendering fails if set).
const UNSUPPORTED_VALUES: [&str; 2] = ["addonResizer.", "rbac.pspEnabled"];

#[path = "deploy/sharded.rs"]
mod sharded;
use sharded::{helm_sharded_matches_manifest, sharded_contract, sharded_rbac_on_cluster};

type CaseFn = fn() -> Result<()>;

fn cases() -> Vec<(&'static str, CaseFn)> {
    vec![
        (
            "manifests: deploy/components.yaml, high-availability.yaml and sharded-high-availability.yaml are what `make manifests` renders",
            manifests_are_fresh,
        ),
        (
            "manifests: components.yaml has upstream v0.9.0's objects, RBAC grants and specs, apart from the image",
            || parity(&MANIFESTS[0]),
        ),
        (
            "manifests: high-availability.yaml has upstream v0.9.0's (1.21+) objects, RBAC grants and specs, apart from the image",
            || parity(&MANIFESTS[1]),
        ),
        (
            "manifests: the Deployment's contract (read-only root, non-root, /tmp only, port 10250, probes) and the HA settings",
            deployment_contract,
        ),
        (
            "manifests: sharded-high-availability.yaml runs 3 replicas with --shard-by-lease, the downward-API identity, a PDB of 2 and Lease RBAC in its namespace only",
            sharded_contract,
        ),
        (
            "helm: the sharded values render what deploy/sharded-high-availability.yaml installs (args, env, Lease RBAC, PDB)",
            helm_sharded_matches_manifest,
        ),
        (
            "helm: lint passes for the default, high-availability, tls.type=helm and sharded values",
            helm_lint,
        ),
        (
            "helm: every value name of the upstream chart exists in ours (except the documented unsupported ones)",
            helm_value_names,
        ),
        (
            "helm: for the same values the chart renders the upstream chart's objects, RBAC grants and pod spec, apart from the image",
            helm_parity,
        ),
        (
            "image: target/image/oci runs /metrics-server as 65534 with no shell, carries its libraries, and the binary answers --version",
            image,
        ),
        (
            "cluster: kubectl apply --dry-run=server accepts components.yaml, high-availability.yaml and sharded-high-availability.yaml",
            manifests_dry_run,
        ),
        (
            "cluster: sharded-high-availability.yaml's RBAC lets the ServiceAccount apply, list and delete Leases in kube-system only",
            sharded_rbac_on_cluster,
        ),
        (
            "cluster: helm template | kubectl apply --dry-run=server passes for the default, high-availability, tls.type=helm and sharded values",
            helm_dry_run,
        ),
        (
            "cluster: RBAC-is-enough setup: components.yaml's RBAC and APIService applied, the server runs with only the ServiceAccount token",
            rbac_is_enough_setup,
        ),
    ]
}

fn main() -> ExitCode {
    let filter = std::env::var("DEPLOY_TEST_FILTER").unwrap_or_default();
    let require = std::env::var("DEPLOY_TEST_REQUIRE").is_ok_and(|v| v == "1");
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for (name, run) in cases() {
        if !name.contains(&filter) {
            continue;
        }
        let start = Instant::now();
        let result = run();
        let secs = start.elapsed().as_secs_f64();
        match result {
            Ok(()) => {
                passed += 1;
                println!("ok {name} ({secs:.1}s)");
            }
            Err(err) => match err.downcast_ref::<Skip>() {
                Some(reason) if !require => {
                    skipped += 1;
                    println!("skipped {name}: {reason}");
                }
                Some(reason) => {
                    failed += 1;
                    println!("FAILED {name}: {reason} (required: DEPLOY_TEST_REQUIRE=1)");
                }
                None => {
                    failed += 1;
                    println!("FAILED {name} ({secs:.1}s): {err:#}");
                }
            },
        }
    }
    println!("{passed} passed, {failed} failed, {skipped} skipped");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

// === Helpers ===

fn kubectl() -> Result<Command> {
    Ok(Command::new(tools::kubectl()?))
}

/// kubectl against the cluster in `DEPLOY_TEST_KUBECONFIG`.
fn cluster_kubectl() -> Result<Command> {
    let kubeconfig = tools::kubeconfig()?;
    let mut cmd = kubectl()?;
    cmd.arg("--kubeconfig").arg(kubeconfig);
    Ok(cmd)
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn render_ours(which: &str) -> Result<String> {
    let kubectl = tools::kubectl()?;
    run(Command::new(repo_root().join("deploy/render.sh"))
        .arg(which)
        .env("KUBECTL", kubectl))
}

fn render_upstream(overlay: &str) -> Result<Vec<Value>> {
    let dir = tools::upstream_dir()?
        .join("manifests/overlays")
        .join(overlay);
    manifest::parse_documents(&run(kubectl()?.arg("kustomize").arg(dir))?)
}

fn expected_image() -> Result<String> {
    Ok(format!(
        "{IMAGE_REPOSITORY}:v{}",
        tools::workspace_version()?
    ))
}

/// Objects ours has on purpose and upstream v0.9.0 has not: the APIService of metrics.k8s.io/v1
/// (served beside v1beta1; upstream has no release serving v1).
const OUR_ADDITIONS: &[&str] = &["APIService.apiregistration.k8s.io v1.metrics.k8s.io"];

/// Fails listing what `ours` lacks and has in excess compared with `theirs`, apart from
/// [`OUR_ADDITIONS`] (which ours must have).
fn same_keys(ours: &[Value], theirs: &[Value]) -> Result<()> {
    let ours = manifest::keys(ours)?;
    let theirs = manifest::keys(theirs)?;
    let missing: BTreeSet<ObjectKey> = theirs.difference(&ours).cloned().collect();
    let mut extra: BTreeSet<ObjectKey> = ours.difference(&theirs).cloned().collect();
    for addition in OUR_ADDITIONS {
        let before = extra.len();
        extra.retain(|k| k.to_string() != *addition);
        ensure!(
            extra.len() + 1 == before,
            "ours lacks {addition}, an object it must add to upstream's"
        );
    }
    ensure!(
        missing.is_empty() && extra.is_empty(),
        "object sets differ\nmissing (upstream has them):\n{}\nextra (upstream does not have them):\n{}",
        manifest::list(&missing),
        manifest::list(&extra)
    );
    Ok(())
}

fn same_grants(ours: &[Value], theirs: &[Value]) -> Result<()> {
    let c = rbac::compare(ours, theirs);
    let show = |s: &BTreeSet<String>| {
        s.iter()
            .map(|g| format!("  {g}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    ensure!(
        c.is_equal(),
        "RBAC grants differ\ngranted less (upstream grants it):\n{}\ngranted more (upstream does not):\n{}",
        show(&c.missing),
        show(&c.extra)
    );
    ensure!(
        !rbac::grants(ours).is_empty(),
        "no RBAC grants found at all"
    );
    Ok(())
}

fn find<'a>(objs: &'a [Value], kind: &str) -> Result<&'a Value> {
    let mut it = objs
        .iter()
        .filter(|o| o.get("kind").and_then(Value::as_str) == Some(kind));
    let first = it.next().with_context(|| format!("no {kind}"))?;
    ensure!(it.next().is_none(), "more than one {kind}");
    Ok(first)
}

// === Manifests ===

fn manifests_are_fresh() -> Result<()> {
    let mut stale = Vec::new();
    let all = MANIFESTS
        .iter()
        .map(|(file, which, _)| (*file, *which))
        .chain([SHARDED]);
    for (file, which) in all {
        let rendered = render_ours(which)?;
        let committed = read(&repo_root().join("deploy").join(file))?;
        if rendered != committed {
            let line = rendered
                .lines()
                .zip(committed.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| rendered.lines().count().min(committed.lines().count()))
                + 1;
            stale.push(format!("deploy/{file} (first difference at line {line})"));
        }
    }
    ensure!(
        stale.is_empty(),
        "stale: {}; run `make manifests` and commit the result",
        stale.join(", ")
    );
    Ok(())
}

fn parity((file, _, upstream_overlay): &(&str, &str, &str)) -> Result<()> {
    let ours = manifest::parse_documents(&read(&repo_root().join("deploy").join(file))?)?;
    let theirs = render_upstream(upstream_overlay)?;
    same_keys(&ours, &theirs)?;
    same_grants(&ours, &theirs)?;

    // Replacing upstream in place: every object is the same apart from the image.
    let image = expected_image()?;
    let deployment = find(&ours, "Deployment")?;
    ensure!(
        manifest::images(deployment) == [image.clone()],
        "the Deployment's images are {:?}, expected [{image}]",
        manifest::images(deployment)
    );
    let ours = manifest::index(&ours)?;
    let theirs = manifest::index(&theirs)?;
    let mut diffs = Vec::new();
    for (k, theirs) in &theirs {
        let ours = &ours[k];
        let d = manifest::differences(
            &manifest::with_images(ours, "IMAGE"),
            &manifest::with_images(theirs, "IMAGE"),
            10,
        );
        diffs.extend(
            d.into_iter()
                .map(|d| format!("  {k} {d} (ours vs upstream)")),
        );
    }
    ensure!(
        diffs.is_empty(),
        "objects differ from upstream's:\n{}",
        diffs.join("\n")
    );
    Ok(())
}

fn deployment_contract() -> Result<()> {
    let root = repo_root().join("deploy");
    for file in CONTRACT_FILES {
        let objs = manifest::parse_documents(&read(&root.join(file))?)?;
        let d = find(&objs, "Deployment").with_context(|| file.to_owned())?;
        let pod = &d["spec"]["template"]["spec"];
        let containers = pod["containers"].as_array().context("no containers")?;
        ensure!(containers.len() == 1, "{file}: one container expected");
        let c = &containers[0];
        let sc = &c["securityContext"];
        ensure!(
            sc["readOnlyRootFilesystem"] == json!(true)
                && sc["runAsNonRoot"] == json!(true)
                && sc["allowPrivilegeEscalation"] == json!(false)
                && sc["capabilities"]["drop"] == json!(["ALL"]),
            "{file}: securityContext {sc}"
        );
        let args: Vec<&str> = c["args"]
            .as_array()
            .context("no args")?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for want in ["--cert-dir=/tmp", "--secure-port=10250"] {
            ensure!(args.contains(&want), "{file}: {want} missing from {args:?}");
        }
        let mounts = c["volumeMounts"].as_array().context("no volumeMounts")?;
        ensure!(
            mounts.len() == 1 && mounts[0]["mountPath"] == json!("/tmp"),
            "{file}: the only writable mount must be /tmp, found {mounts:?}"
        );
        let tmp = mounts[0]["name"].as_str().unwrap_or("");
        ensure!(
            pod["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|v| v["name"] == json!(tmp) && v.get("emptyDir").is_some()),
            "{file}: /tmp is not an emptyDir"
        );
        ensure!(
            c["ports"] == json!([{"name": "https", "containerPort": 10250, "protocol": "TCP"}]),
            "{file}: ports {}",
            c["ports"]
        );
        for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/livez")] {
            let get = &c[probe]["httpGet"];
            ensure!(
                get == &json!({"path": path, "port": "https", "scheme": "HTTPS"}),
                "{file}: {probe} {get}"
            );
        }
        ensure!(
            pod["serviceAccountName"] == json!("metrics-server"),
            "{file}: serviceAccountName"
        );

        if file == "high-availability.yaml" {
            ensure!(
                d["spec"]["replicas"] == json!(2),
                "HA: replicas {}",
                d["spec"]["replicas"]
            );
            let terms = &pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
            ensure!(
                terms.as_array().is_some_and(|t| t.iter().any(|t| {
                    t["topologyKey"] == json!("kubernetes.io/hostname")
                        && t["labelSelector"]["matchLabels"] == json!({"k8s-app": "metrics-server"})
                })),
                "HA: no required anti-affinity on kubernetes.io/hostname: {terms}"
            );
            let pdb = find(&objs, "PodDisruptionBudget")?;
            ensure!(
                pdb["apiVersion"] == json!("policy/v1")
                    && pdb["spec"]["minAvailable"] == json!(1)
                    && pdb["spec"]["selector"]["matchLabels"]
                        == d["spec"]["template"]["metadata"]["labels"],
                "HA: PodDisruptionBudget {pdb}"
            );
        } else if file == "components.yaml" {
            ensure!(
                d["spec"].get("replicas").is_none() || d["spec"]["replicas"] == json!(1),
                "components.yaml: one replica expected"
            );
        }
    }
    Ok(())
}

// === Helm ===

fn chart_dir() -> PathBuf {
    repo_root().join("charts/metrics-server-rs")
}

fn helm_template(chart: &Path, args: &[&str]) -> Result<String> {
    let kube_version = tools::kubernetes_version()?;
    run(Command::new(tools::helm()?)
        .current_dir(chart)
        .args(["template", RELEASE, "."])
        .args(["--namespace", NAMESPACE, "--kube-version", &kube_version])
        .args(args))
}

fn ours_args(values: &[&'static str]) -> Vec<&'static str> {
    values.iter().flat_map(|v| ["-f", *v]).collect()
}

fn helm_lint() -> Result<()> {
    let helm = tools::helm()?;
    let kube_version = tools::kubernetes_version()?;
    let all = CHART_CASES
        .iter()
        .map(|(name, values, _)| (*name, *values))
        .chain(OWN_CHART_CASES);
    for (name, values) in all {
        run(Command::new(&helm)
            .current_dir(chart_dir())
            .args(["lint", ".", "--strict", "--namespace", NAMESPACE])
            .args(["--kube-version", &kube_version])
            .args(ours_args(values)))
        .with_context(|| format!("helm lint with {name}"))?;
    }
    Ok(())
}

/// The dotted paths of every leaf of a values tree (an empty map or list is a leaf).
fn value_paths(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                value_paths(v, &p, out);
            }
        }
        _ => {
            out.insert(prefix.to_owned());
        }
    }
}

fn values_of(chart: &Path) -> Result<BTreeSet<String>> {
    let docs = manifest::parse_documents(&read(&chart.join("values.yaml"))?)?;
    let mut out = BTreeSet::new();
    value_paths(docs.first().context("empty values.yaml")?, "", &mut out);
    Ok(out)
}

fn helm_value_names() -> Result<()> {
    let upstream = values_of(&tools::upstream_dir()?.join("charts/metrics-server"))?;
    let ours = values_of(&chart_dir())?;
    // A leaf of upstream may be a map in ours (e.g. a documented default), so accept a prefix.
    let missing: Vec<&String> = upstream
        .iter()
        .filter(|p| !UNSUPPORTED_VALUES.iter().any(|u| p.starts_with(u)))
        .filter(|p| !ours.contains(*p) && !ours.iter().any(|o| o.starts_with(&format!("{p}."))))
        .collect();
    ensure!(
        missing.is_empty(),
        "values of the upstream chart missing from ours: {missing:?}"
    );
    Ok(())
}

fn helm_parity() -> Result<()> {
    let upstream_chart = tools::upstream_dir()?.join("charts/metrics-server");
    for (name, values, upstream_args) in CHART_CASES {
        let ours = manifest::parse_documents(&helm_template(&chart_dir(), &ours_args(values))?)?;
        // The upstream chart reads our values files (same names), from our chart's folder.
        let upstream_args: Vec<String> = upstream_args
            .iter()
            .map(|a| {
                if a.starts_with("ci/") {
                    chart_dir().join(a).display().to_string()
                } else {
                    (*a).to_owned()
                }
            })
            .collect();
        let upstream_args: Vec<&str> = upstream_args.iter().map(String::as_str).collect();
        let mut theirs =
            manifest::parse_documents(&helm_template(&upstream_chart, &upstream_args)?)?;
        // Helm installs a namespaced object without metadata.namespace into the release's namespace.
        for obj in &mut theirs {
            let kind = obj["kind"].as_str().unwrap_or("");
            if NAMESPACED.contains(&kind) && obj.pointer("/metadata/namespace").is_none() {
                obj["metadata"]["namespace"] = json!(NAMESPACE);
            }
        }
        (|| -> Result<()> {
            same_keys(&ours, &theirs)?;
            same_grants(&ours, &theirs)?;
            let pod = |objs: &[Value]| -> Result<Value> {
                Ok(manifest::with_images(find(objs, "Deployment")?, "IMAGE")["spec"]["template"]["spec"].clone())
            };
            let d = manifest::differences(&pod(&ours)?, &pod(&theirs)?, 10);
            ensure!(
                d.is_empty(),
                "pod specs differ (ours vs upstream):\n  {}",
                d.join("\n  ")
            );
            let image = manifest::images(find(&ours, "Deployment")?);
            ensure!(
                image == [expected_image()?],
                "image {image:?}, expected {}",
                expected_image()?
            );
            Ok(())
        })()
        .with_context(|| format!("with {name}"))?;
    }
    Ok(())
}

// === Image ===

struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> Result<Self> {
        let dir =
            std::env::temp_dir().join(format!("msrs-deploy-tests-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        Ok(Self(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn image() -> Result<()> {
    let root = repo_root();
    let binary = root.join("target/release/metrics-server");
    if !binary.is_file() {
        return Err(skip(
            "no target/release/metrics-server (build it and the image with `make image`)",
        ));
    }
    let layout = root.join("target/image/oci");
    if !layout.join("index.json").is_file() {
        return Err(skip("no image at target/image/oci (run `make image`)"));
    }
    let img = oci::read_layout(&layout)?;

    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let config = &img.config;
    ensure!(
        config["os"] == json!("linux") && config["architecture"] == json!(arch),
        "platform {}/{}, expected linux/{arch}",
        config["os"],
        config["architecture"]
    );
    let c = &config["config"];
    ensure!(
        c["Entrypoint"] == json!(["/metrics-server"]),
        "Entrypoint {}",
        c["Entrypoint"]
    );
    ensure!(
        c.get("Cmd").is_none_or(|v| v.is_null() || v == &json!([])),
        "Cmd should be empty, is {}",
        c["Cmd"]
    );
    let user = c["User"].as_str().unwrap_or("");
    ensure!(
        user == "65534" || user == "65534:65534",
        "User {user:?}, expected 65534:65534"
    );
    ensure!(
        img.name.as_deref() == Some(expected_image()?.as_str()),
        "image name {:?}, expected {}",
        img.name,
        expected_image()?
    );

    // Each layer's uncompressed digest is the config's diff_id.
    for (i, layer) in img.layers.iter().enumerate() {
        let out = run(Command::new("sh")
            .arg("-c")
            .arg("gzip -dc \"$1\" | sha256sum")
            .arg("sh")
            .arg(layer))?;
        let got = format!("sha256:{}", out.split_whitespace().next().unwrap_or(""));
        ensure!(
            config["rootfs"]["diff_ids"][i] == json!(got),
            "layer {i}: uncompressed digest {got} is not the config's diff_id"
        );
    }

    let rootfs = TempDir::new("image")?;
    for layer in &img.layers {
        run(Command::new("tar")
            .arg("-xzf")
            .arg(layer)
            .arg("-C")
            .arg(&rootfs.0)
            .arg("--no-same-owner"))?;
    }
    let r = &rootfs.0;
    for shell in ["bin/sh", "bin/bash", "usr/bin/sh", "bin/busybox"] {
        ensure!(!r.join(shell).exists(), "the image has /{shell}");
    }
    let tmp = std::fs::metadata(r.join("tmp")).context("the image has no /tmp")?;
    ensure!(
        tmp.is_dir() && tmp.permissions().mode() & 0o7777 == 0o1777,
        "/tmp mode {:o}, expected 1777",
        tmp.permissions().mode()
    );
    let inside = r.join("metrics-server");
    if oci::sha256_hex(&inside)? != oci::sha256_hex(&binary)? {
        return Err(skip(
            "the image in target/image was built from another binary than target/release/metrics-server (run `make image`)",
        ));
    }

    // Run it from the image's own files only. As root: chroot into the extracted layer as user
    // 65534, exactly the image's view. Otherwise: through the image's dynamic loader with the
    // image's library folders (a static binary runs directly).
    let version = format!("v{}", tools::workspace_version()?);
    let is_root = run(Command::new("id").arg("-u"))?.trim() == "0";
    let out = if is_root {
        run(Command::new("chroot")
            .arg("--userspec=65534:65534")
            .arg(r)
            .args(["/metrics-server", "--version"]))?
    } else {
        let loader = ["lib64/ld-linux-x86-64.so.2", "lib/ld-linux-aarch64.so.1"]
            .iter()
            .map(|l| r.join(l))
            .find(|l| l.exists());
        match loader {
            Some(loader) => {
                let lib_dirs: Vec<String> = [
                    "lib",
                    "lib64",
                    "usr/lib",
                    "lib/x86_64-linux-gnu",
                    "lib/aarch64-linux-gnu",
                ]
                .iter()
                .map(|d| r.join(d).display().to_string())
                .collect();
                run(Command::new(loader)
                    .arg("--inhibit-cache")
                    .arg("--library-path")
                    .arg(lib_dirs.join(":"))
                    .arg(&inside)
                    .arg("--version")
                    .env_clear())?
            }
            None => run(Command::new(&inside).arg("--version").env_clear())?,
        }
    };
    ensure!(
        out.trim() == version,
        "`/metrics-server --version` printed {:?}, expected {version:?}",
        out.trim()
    );
    Ok(())
}

// === Cluster ===

fn manifests_dry_run() -> Result<()> {
    for file in CONTRACT_FILES {
        let path = repo_root().join("deploy").join(file);
        run(cluster_kubectl()?
            .args(["apply", "--dry-run=server", "-f"])
            .arg(&path))
        .with_context(|| format!("deploy/{file}"))?;
    }
    Ok(())
}

fn helm_dry_run() -> Result<()> {
    let all = CHART_CASES
        .iter()
        .map(|(name, values, _)| (*name, *values))
        .chain(OWN_CHART_CASES);
    for (name, values) in all {
        let rendered = helm_template(&chart_dir(), &ours_args(values))?;
        run_with_input(
            cluster_kubectl()?.args(["apply", "--dry-run=server", "-f", "-"]),
            Some(rendered.as_bytes()),
        )
        .with_context(|| format!("with {name}"))?;
    }
    Ok(())
}

/// Polls `check` every half second until it returns `Ok(Some(_))` or `timeout` passes.
fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    loop {
        match check() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = Some(e),
        }
        if Instant::now() >= deadline {
            return Err(match last {
                Some(e) => e.context(format!("timed out after {timeout:?} waiting for {what}")),
                None => anyhow!("timed out after {timeout:?} waiting for {what}"),
            });
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

const RBAC_KINDS: [&str; 5] = [
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
];

fn rbac_is_enough_setup() -> Result<()> {
    let Some(dir) = std::env::var_os("DEPLOY_TEST_SA_DIR").filter(|d| !d.is_empty()) else {
        return Err(skip(
            "DEPLOY_TEST_SA_DIR not set (set by `make deploy-test`, whose cluster runs the server through scripts/sa-launcher.sh)",
        ));
    };
    let dir = PathBuf::from(dir);
    tools::kubeconfig()?;
    ensure!(
        dir.join("server-binary").is_file(),
        "{} has no server-binary file: the cluster was not started for this check",
        dir.display()
    );

    // 1. components.yaml's ServiceAccount, RBAC and APIService. Server-side apply with our own field
    //    manager leaves the fields we do not set, such as the APIService's service port that kwokctl
    //    points at the local process, to their owners.
    let components =
        manifest::parse_documents(&read(&repo_root().join("deploy/components.yaml"))?)?;
    let items: Vec<Value> = components
        .iter()
        .filter(|o| {
            let kind = o["kind"].as_str().unwrap_or("");
            // Both APIServices: the local cluster routes both to the process (kwokctl sets their port).
            RBAC_KINDS.contains(&kind) || kind == "APIService"
        })
        .cloned()
        .collect();
    let kinds: BTreeMap<&str, usize> = items.iter().fold(BTreeMap::new(), |mut m, o| {
        *m.entry(o["kind"].as_str().unwrap_or("")).or_default() += 1;
        m
    });
    ensure!(
        kinds.get("APIService") == Some(&2) && kinds.get("ServiceAccount") == Some(&1),
        "components.yaml lacks the ServiceAccount or one of the two APIServices: {kinds:?}"
    );
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
    // kwokctl points the APIServices of its own manifests at the local process; an APIService it did
    // not route keeps the default port 443, where nothing listens. Route both like v1beta1.
    let port = run(cluster_kubectl()?.args([
        "get",
        "apiservice",
        "v1beta1.metrics.k8s.io",
        "-o",
        "jsonpath={.spec.service.port}",
    ]))?;
    let port: u16 = port
        .trim()
        .parse()
        .context("the v1beta1 APIService's port")?;
    run(cluster_kubectl()?.args([
        "patch",
        "apiservice",
        "v1.metrics.k8s.io",
        "--type=merge",
        "-p",
        &format!(r#"{{"spec":{{"service":{{"port":{port}}}}}}}"#),
    ]))?;

    // 2. A kubeconfig with nothing but a token of that ServiceAccount.
    let token = run(cluster_kubectl()?.args([
        "create",
        "token",
        "metrics-server",
        "--namespace",
        "kube-system",
        "--duration=3h",
    ]))?;
    let admin: Value = serde_json::from_str(&run(cluster_kubectl()?.args([
        "config",
        "view",
        "--raw",
        "--minify",
        "--flatten",
        "-o",
        "json",
    ]))?)?;
    let cluster = admin
        .pointer("/clusters/0/cluster")
        .context("no cluster in the admin kubeconfig")?;
    let sa_kubeconfig = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": {
            "server": cluster["server"],
            "certificate-authority-data": cluster["certificate-authority-data"],
        }}],
        "users": [{"name": "metrics-server", "user": {"token": token.trim()}}],
        "contexts": [{"name": "metrics-server", "context": {"cluster": "cluster", "user": "metrics-server"}}],
        "current-context": "metrics-server",
    });
    let path = dir.join("sa-kubeconfig.yaml");
    let tmp = dir.join("sa-kubeconfig.yaml.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&sa_kubeconfig)?)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;

    // The token is the ServiceAccount and can do no more than its roles allow.
    let sa = |args: &[&str]| -> Result<String> {
        let mut cmd = kubectl()?;
        cmd.arg("--kubeconfig").arg(&tmp).args(args);
        run(&mut cmd)
    };
    let whoami = sa(&[
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username}",
    ])?;
    ensure!(
        whoami == "system:serviceaccount:kube-system:metrics-server",
        "the token authenticates as {whoami:?}"
    );
    for (verb, resource) in [
        ("create", "deployments"),
        ("list", "secrets"),
        ("get", "configmaps"),
    ] {
        let answer = {
            let mut cmd = kubectl()?;
            cmd.arg("--kubeconfig").arg(&tmp).args([
                "auth",
                "can-i",
                verb,
                resource,
                "--all-namespaces",
            ]);
            // `can-i` exits 1 when the answer is no.
            let out = cmd.output()?;
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        ensure!(
            answer == "no",
            "the ServiceAccount may {verb} {resource} cluster-wide ({answer:?}): it is not restricted to components.yaml's roles"
        );
    }
    std::fs::rename(&tmp, &path)?;

    // 3. The launcher starts the real server with that kubeconfig only.
    let started = wait_for(Duration::from_secs(60), "the server to start", || {
        Ok(std::fs::read_to_string(dir.join("started")).ok())
    })?;
    let admin_kubeconfig = tools::kubeconfig()?.display().to_string();
    ensure!(
        !started.contains(&admin_kubeconfig),
        "the server was started with the admin kubeconfig: {started}"
    );
    for flag in [
        "--kubeconfig",
        "--authentication-kubeconfig",
        "--authorization-kubeconfig",
    ] {
        let want = format!("{flag}={}", path.display());
        ensure!(
            started.lines().any(|l| l == want),
            "the server's command line lacks {want}: {started}"
        );
    }

    // 4. The aggregator reaches it and it serves node metrics.
    run(cluster_kubectl()?.args([
        "wait",
        "--for=condition=Available",
        "apiservice/v1beta1.metrics.k8s.io",
        "apiservice/v1.metrics.k8s.io",
        "--timeout=120s",
    ]))
    .context("the APIService did not become Available with the ServiceAccount-only server")?;
    wait_for(Duration::from_secs(90), "node metrics", || {
        let body =
            run(cluster_kubectl()?.args(["get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes"]))?;
        let v: Value = serde_json::from_str(&body)?;
        Ok(v["items"]
            .as_array()
            .is_some_and(|i| !i.is_empty())
            .then_some(()))
    })?;
    Ok(())
}
