//! What the suite runners share: which cluster they may touch, case selection, and the tally that
//! decides the exit code.
//!
//! The suites delete and create objects, so they never act on whatever cluster happens to be current:
//! only a kubeconfig named by `E2E_KUBECONFIG` (the Makefile sets it for the clusters it creates, or
//! maps `make e2e-run KUBECONFIG=...` to it) is used; plain `KUBECONFIG` is ignored. Without it a suite
//! skips and passes, unless `E2E_REQUIRE=1`, which turns the skip into a failure.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

/// The variable that names the cluster a suite may act on.
pub const KUBECONFIG_VAR: &str = "E2E_KUBECONFIG";
/// Set to `1` when a run without a reachable cluster must fail instead of skipping.
pub const REQUIRE_VAR: &str = "E2E_REQUIRE";
/// Selects cases whose name contains this substring.
pub const FILTER_VAR: &str = "E2E_FILTER";

/// Whether a suite runs, and against which kubeconfig.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Run against this kubeconfig file.
    Run(PathBuf),
    /// Do not run; pass, saying why.
    Skip(String),
    /// Do not run; fail, saying why.
    Fail(String),
}

/// Decides from the two variables' values; `require` is true when `E2E_REQUIRE=1`.
pub fn gate(kubeconfig: Option<OsString>, require: bool) -> Gate {
    match kubeconfig.filter(|v| !v.is_empty()) {
        Some(path) => Gate::Run(PathBuf::from(path)),
        None if require => Gate::Fail(format!(
            "{REQUIRE_VAR}=1 but {KUBECONFIG_VAR} names no cluster (KUBECONFIG is ignored on purpose)"
        )),
        None => Gate::Skip(format!(
            "{KUBECONFIG_VAR} not set (KUBECONFIG is ignored on purpose: the suite deletes and creates \
             objects); `make e2e` or `make e2e-run KUBECONFIG=<file>` run it"
        )),
    }
}

/// [`gate`] on the process environment.
pub fn gate_from_env() -> Gate {
    gate(std::env::var_os(KUBECONFIG_VAR), require_from_env())
}

/// Whether `E2E_REQUIRE=1` is set.
pub fn require_from_env() -> bool {
    std::env::var(REQUIRE_VAR).is_ok_and(|v| v == "1")
}

/// The `main` of every suite binary: decides from the environment whether `suite` runs (printing
/// why not), installs the one TLS provider of the whole tree, and runs it on a multi-threaded
/// runtime with the kubeconfig it may act on.
#[allow(clippy::print_stdout)]
pub fn main<F, Fut>(suite: &str, run: F) -> std::process::ExitCode
where
    F: FnOnce(PathBuf) -> Fut,
    Fut: std::future::Future<Output = std::process::ExitCode>,
{
    let kubeconfig = match gate_from_env() {
        Gate::Run(path) => path,
        Gate::Skip(reason) => {
            println!("{suite}: skipped: {reason}");
            return std::process::ExitCode::SUCCESS;
        }
        Gate::Fail(reason) => {
            println!("{suite}: FAILED: {reason}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run(kubeconfig)),
        Err(err) => {
            println!("{suite}: FAILED starting the tokio runtime: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Loads exactly the kubeconfig file at `path` (never `KUBECONFIG` or `~/.kube/config`).
pub async fn load_config(path: &Path) -> Result<kube::Config> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("reading the kubeconfig {}", path.display()))?;
    kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading the kubeconfig {}", path.display()))
}

/// Keeps the items whose name contains `filter`; a non-empty filter that keeps none is an error, so a
/// typo cannot turn into a green run of nothing.
pub fn select<T>(items: Vec<T>, filter: &str, name: impl Fn(&T) -> &str) -> Result<Vec<T>, String> {
    let selected: Vec<T> = items
        .into_iter()
        .filter(|item| name(item).contains(filter))
        .collect();
    if selected.is_empty() {
        return Err(format!("{FILTER_VAR}={filter:?} matches no case"));
    }
    Ok(selected)
}

/// Outcome of a setup or teardown step (reported, but not counted as a case).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    NotRun,
    Ok,
    Failed,
}

/// Counts cases and remembers setup and teardown apart from them.
#[derive(Debug)]
pub struct Tally {
    pub passed: usize,
    pub failed: usize,
    pub setup: Step,
    pub teardown: Step,
}

impl Default for Tally {
    fn default() -> Self {
        Self::new()
    }
}

impl Tally {
    pub fn new() -> Self {
        Self {
            passed: 0,
            failed: 0,
            setup: Step::NotRun,
            teardown: Step::NotRun,
        }
    }

    /// Records a case and prints `ok <name>` or `FAILED <name>: <reason>`.
    pub fn case(&mut self, name: &str, result: &Result<()>) {
        match result {
            Ok(()) => self.passed += 1,
            Err(_) => self.failed += 1,
        }
        print_result("", name, result);
    }

    /// Records the setup step and prints `setup ok ...` or `setup FAILED ...`.
    pub fn setup(&mut self, name: &str, result: &Result<()>) {
        self.setup = step_of(result);
        print_result("setup ", name, result);
    }

    /// Records the teardown step and prints `teardown ok ...` or `teardown FAILED ...`.
    pub fn teardown(&mut self, name: &str, result: &Result<()>) {
        self.teardown = step_of(result);
        print_result("teardown ", name, result);
    }

    /// The run passes when at least one case ran, none failed, and neither setup nor teardown failed.
    pub fn success(&self) -> bool {
        self.failed == 0
            && self.passed > 0
            && self.setup != Step::Failed
            && self.teardown != Step::Failed
    }

    /// The closing line, e.g. `3 passed, 0 failed; setup ok, teardown ok`.
    pub fn summary(&self) -> String {
        let step = |s: Step| match s {
            Step::NotRun => "not run",
            Step::Ok => "ok",
            Step::Failed => "FAILED",
        };
        format!(
            "{} passed, {} failed; setup {}, teardown {}",
            self.passed,
            self.failed,
            step(self.setup),
            step(self.teardown)
        )
    }
}

fn step_of(result: &Result<()>) -> Step {
    if result.is_ok() {
        Step::Ok
    } else {
        Step::Failed
    }
}

#[allow(clippy::print_stdout)]
fn print_result(prefix: &str, name: &str, result: &Result<()>) {
    match result {
        Ok(()) => println!("{prefix}ok {name}"),
        Err(err) => println!("{prefix}FAILED {name}: {err:#}"),
    }
}

#[cfg(test)]
mod tests {
    use anyhow::anyhow;

    use super::*;

    #[test]
    fn without_the_variable_a_suite_skips_unless_required() {
        assert!(matches!(gate(None, false), Gate::Skip(r) if r.contains(KUBECONFIG_VAR)));
        assert!(matches!(gate(Some(OsString::new()), false), Gate::Skip(_)));
        assert!(matches!(gate(None, true), Gate::Fail(r) if r.contains(REQUIRE_VAR)));
        assert_eq!(
            gate(Some("/tmp/kc.yaml".into()), false),
            Gate::Run(PathBuf::from("/tmp/kc.yaml"))
        );
    }

    #[test]
    fn a_filter_matching_nothing_is_an_error() {
        let names = vec!["J#1 pods", "J#2 nodes"];
        assert_eq!(select(names.clone(), "J#2", |n| n), Ok(vec!["J#2 nodes"]));
        assert_eq!(select(names.clone(), "", |n| n).map(|v| v.len()), Ok(2));
        let err = select(names, "J#99", |n| n).unwrap_err();
        assert!(err.contains("matches no case"), "{err}");
    }

    #[test]
    fn setup_and_teardown_are_not_cases_but_fail_the_run() {
        let mut tally = Tally::new();
        tally.setup("create pods", &Ok(()));
        tally.case("a", &Ok(()));
        tally.teardown("delete pods", &Ok(()));
        assert_eq!((tally.passed, tally.failed), (1, 0));
        assert!(tally.success());
        assert_eq!(tally.summary(), "1 passed, 0 failed; setup ok, teardown ok");

        let mut tally = Tally::new();
        tally.setup("create pods", &Err(anyhow!("boom")));
        tally.case("a", &Ok(()));
        assert_eq!((tally.passed, tally.failed), (1, 0));
        assert!(!tally.success());

        let mut tally = Tally::new();
        tally.case("a", &Ok(()));
        tally.teardown("delete pods", &Err(anyhow!("boom")));
        assert!(!tally.success());
    }

    #[test]
    fn a_run_of_no_case_does_not_pass() {
        assert!(!Tally::new().success());
    }
}
