//! `metrics-server doctor [flags]`: parse, connect, gather, analyze, print, exit 0 (nothing wrong),
//! 1 (an Error or Warning finding), 2 (usage error, or the cluster cannot be reached at all).

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::DoctorError;
use crate::finding::{self, Finding};
use crate::gather::{Options, gather};

/// Exit status for a usage error or an unreachable cluster.
pub const EXIT_UNUSABLE: u8 = 2;

/// `doctor --help`.
pub const HELP: &str = "\
Checks why the metrics API (kubectl top, HPAs on cpu/memory) does not work, and prints each
finding with a fix, most severe first.

Checks: the metrics.k8s.io APIServices and their conditions; the Service they point at, its
port, EndpointSlices and pods; the server ServiceAccount's RBAC (SubjectAccessReview); the
kube-system/extension-apiserver-authentication CAs; per-node kubelet scrapes (the server's
scrape-health document, through the aggregator); HPAs showing <unknown> and their root cause.

Usage:
  metrics-server doctor [flags]

Flags:
      --context string           kubeconfig context to use (default: the current context)
  -h, --help                     help for doctor
      --kubeconfig string        kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then in-cluster)
  -n, --namespace string         namespace the server runs in (default \"kube-system\")
  -o, --output string            table or json (default \"table\")
      --service-account string   ServiceAccount the server runs as (default \"metrics-server\")
      --timeout duration         deadline of each request to kube-apiserver, in seconds or with an s
                                 suffix (default 10s)

Exit status: 0 nothing wrong (Info findings only), 1 an Error or Warning finding, 2 usage error or
the cluster cannot be reached.
";

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

/// The parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cli {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub output: Output,
    pub namespace: String,
    pub service_account: String,
    pub timeout: Duration,
    pub help: bool,
}

impl Default for Cli {
    fn default() -> Self {
        let opts = Options::default();
        Self {
            kubeconfig: None,
            context: None,
            output: Output::Table,
            namespace: opts.namespace,
            service_account: opts.service_account,
            timeout: opts.request_timeout,
            help: false,
        }
    }
}

/// Parses `doctor`'s arguments (without `doctor`): `--flag value` and `--flag=value`.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Cli, DoctorError> {
    let mut cli = Cli::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            cli.help = true;
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with('-') => (n.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let known = [
            "--kubeconfig",
            "--context",
            "-o",
            "--output",
            "-n",
            "--namespace",
            "--service-account",
            "--timeout",
        ];
        if !known.contains(&name.as_str()) {
            return Err(DoctorError::Usage(format!(
                "unknown flag or argument: {arg}"
            )));
        }
        let value = match inline.or_else(|| args.next()) {
            Some(v) if !v.is_empty() => v,
            _ => return Err(DoctorError::Usage(format!("flag needs a value: {name}"))),
        };
        set(&mut cli, &name, value)?;
    }
    Ok(cli)
}

fn set(cli: &mut Cli, name: &str, value: String) -> Result<(), DoctorError> {
    match name {
        "--kubeconfig" => cli.kubeconfig = Some(PathBuf::from(value)),
        "--context" => cli.context = Some(value),
        "-n" | "--namespace" => cli.namespace = value,
        "--service-account" => cli.service_account = value,
        "-o" | "--output" => {
            cli.output = match value.as_str() {
                "table" => Output::Table,
                "json" => Output::Json,
                other => {
                    return Err(DoctorError::Usage(format!(
                        "--output must be table or json, not {other:?}"
                    )));
                }
            }
        }
        _ => {
            let secs = value.strip_suffix('s').unwrap_or(&value);
            cli.timeout = secs
                .parse::<u64>()
                .ok()
                .filter(|s| *s > 0)
                .map(Duration::from_secs)
                .ok_or_else(|| {
                    DoctorError::Usage(format!(
                        "--timeout must be whole seconds (e.g. 10s), not {value:?}"
                    ))
                })?;
        }
    }
    Ok(())
}

/// Loads the kubeconfig the flags name.
async fn client(cli: &Cli) -> Result<kube::Client, DoctorError> {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let options = KubeConfigOptions {
        context: cli.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config_err = |e: &dyn std::fmt::Display| DoctorError::Config(e.to_string());
    let mut config = match &cli.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|e| config_err(&e))?;
            kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| config_err(&e))?
        }
        None => match Kubeconfig::read() {
            Ok(kc) => kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| config_err(&e))?,
            Err(_) if cli.context.is_none() => {
                kube::Config::incluster().map_err(|e| config_err(&e))?
            }
            Err(e) => return Err(config_err(&e)),
        },
    };
    config.connect_timeout = Some(cli.timeout.min(Duration::from_secs(5)));
    config.read_timeout = Some(cli.timeout);
    kube::Client::try_from(config).map_err(|e| config_err(&e))
}

/// Connects, gathers and analyzes.
pub async fn run(cli: &Cli) -> Result<Vec<Finding>, DoctorError> {
    let client = client(cli).await?;
    let options = Options {
        namespace: cli.namespace.clone(),
        service_account: cli.service_account.clone(),
        request_timeout: cli.timeout,
        ..Options::default()
    };
    let facts = gather(&client, &options).await?;
    Ok(crate::analyze(&facts))
}

/// The whole subcommand: `args` are the arguments after `doctor`; returns the exit status.
pub fn main_with_args(args: impl IntoIterator<Item = String>) -> u8 {
    let cli = match parse(args) {
        Ok(cli) if cli.help => {
            let _ = std::io::stdout().lock().write_all(HELP.as_bytes());
            return 0;
        }
        Ok(cli) => cli,
        Err(e) => {
            let _ = writeln!(std::io::stderr().lock(), "Error: {e}\n\n{HELP}");
            return EXIT_UNUSABLE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(std::io::stderr().lock(), "Error: {e}");
            return EXIT_UNUSABLE;
        }
    };
    let findings = match runtime.block_on(run(&cli)) {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(std::io::stderr().lock(), "Error: {e}");
            return EXIT_UNUSABLE;
        }
    };
    let text = match cli.output {
        Output::Table => finding::render_table(&findings),
        Output::Json => finding::render_json(&findings),
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    finding::exit_code(&findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn flags_take_separate_or_inline_values() {
        let cli = parse(args(&[
            "--kubeconfig",
            "/k.yaml",
            "--context=dev",
            "-o",
            "json",
            "-n=monitoring",
            "--service-account",
            "ms",
            "--timeout=3s",
        ]))
        .unwrap();
        assert_eq!(cli.kubeconfig, Some(PathBuf::from("/k.yaml")));
        assert_eq!(cli.context.as_deref(), Some("dev"));
        assert_eq!(cli.output, Output::Json);
        assert_eq!(cli.namespace, "monitoring");
        assert_eq!(cli.service_account, "ms");
        assert_eq!(cli.timeout, Duration::from_secs(3));
    }

    #[test]
    fn defaults_match_the_install_manifests() {
        let cli = parse(Vec::new()).unwrap();
        assert_eq!(
            (cli.namespace.as_str(), cli.service_account.as_str()),
            ("kube-system", "metrics-server")
        );
        assert_eq!(cli.output, Output::Table);
        assert!(parse(args(&["--help"])).unwrap().help);
    }

    #[test]
    fn bad_usage_is_an_error() {
        for bad in [
            &["--output", "yaml"][..],
            &["--kubeconfig"],
            &["--bogus"],
            &["extra"],
            &["--timeout=0s"],
            &["--timeout", "1m"],
        ] {
            assert!(
                matches!(parse(args(bad)), Err(DoctorError::Usage(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn bad_usage_exits_2() {
        assert_eq!(main_with_args(args(&["--output=yaml"])), EXIT_UNUSABLE);
    }
}
