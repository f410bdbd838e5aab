//! The built binary: `--version`, `--help`, bad flags and startup failures (exit codes and
//! messages as upstream v0.9.0, minus the Go panic trace).

use std::process::{Command, Output};

fn bin(args: &[&str]) -> Output {
    let cwd = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_metrics-server"))
        .args(args)
        .current_dir(cwd.path())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn version_prints_a_semver_tag_and_exits_zero() {
    let out = bin(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    let v = stdout.trim_end();
    assert_eq!(stdout, format!("{v}\n"));
    // kwokctl parses it with a semver regex.
    let parts: Vec<&str> = v.strip_prefix('v').unwrap().split('.').collect();
    assert_eq!(parts.len(), 3, "{v}");
    assert!(parts.iter().all(|p| p.parse::<u32>().is_ok()), "{v}");
    assert!(out.stderr.is_empty());
}

#[test]
fn help_prints_upstreams_flag_names_and_types_and_exits_zero() {
    let out = bin(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("Launch metrics-server\n\nUsage:\n   [flags]\n"));
    for flag in [
        "--kubelet-insecure-tls",
        "--metric-resolution duration",
        "-l, --node-selector string",
        "--secure-port int",
        "-v, --v Level",
        "--kubelet-max-requests-inflight int",
    ] {
        assert!(stdout.contains(flag), "{flag} missing");
    }
    assert_eq!(bin(&["-h"]).stdout, out.stdout);
}

#[test]
fn an_unknown_flag_exits_two_naming_it_followed_by_the_usage() {
    let out = bin(&["--kubelet-insecure-tls", "--foo"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("Error: unknown flag: --foo\nUsage:\n   [flags]\n"),
        "{stderr}"
    );
    assert!(stderr.ends_with("\n\n"));
}

#[test]
fn a_validation_error_exits_two_with_upstreams_message() {
    let out = bin(&["--metric-resolution=5s"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(
            "Error: metric-resolution should be a time duration at least 10s, but value 5s provided\n"
        ),
        "{stderr}"
    );
    let out = bin(&["--kubelet-port=abc"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with(
        "Error: invalid argument \"abc\" for \"--kubelet-port\" flag: strconv.ParseInt: parsing \"abc\": invalid syntax\n"
    ));
}

#[test]
fn outside_a_cluster_without_kubeconfigs_startup_fails_like_upstream() {
    let out = bin(&["--cert-dir=certs"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "Error: failed to get delegated authentication kubeconfig: failed to get delegated authentication kubeconfig: unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined"
        ),
        "{stderr}"
    );
}

#[test]
fn a_missing_kubeconfig_fails_startup_naming_the_file() {
    let out = bin(&["--secure-port=0", "--kubeconfig=/nonexistent/kubeconfig"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("Error: unable to construct lister client config:")
            && stderr.contains("/nonexistent/kubeconfig"),
        "{stderr}"
    );
}

#[test]
fn invalid_security_flags_stop_startup_before_any_network_call() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--cert-dir=certs", "--cors-allowed-origins=example\\.com"],
            "Error: --cors-allowed-origins has an invalid regular expression: regular expression does not pin to start/end of host in the origin header",
        ),
        (
            &["--cert-dir=certs", "--cors-allowed-origins=^(https://x$"],
            "Error: --cors-allowed-origins has an invalid regular expression: ",
        ),
        (
            &[
                "--cert-dir=certs",
                "--strict-transport-security-directives=max-age=1,fakevalue",
            ],
            "Error: --strict-transport-security-directives invalid, allowed values: max-age=expireTime, includeSubDomains, preload.",
        ),
        (
            &[
                "--cert-dir=certs",
                "--tls-sni-cert-key=absent.crt,absent.key:a.test",
            ],
            "Error: unable to load serving certificates: reading absent.crt:",
        ),
    ];
    for (args, want) in cases {
        let out = bin(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
}

#[test]
fn ignored_flags_that_were_set_are_named_at_the_default_verbosity() {
    // Startup fails right after the notices (no kubeconfig), which is all this needs.
    let out = bin(&[
        "--secure-port=0",
        "--kubeconfig=/nonexistent/kubeconfig",
        "--audit-log-path=/var/log/audit.log",
        "--audit-policy-file=/etc/audit.yaml",
        "--profiling=false",
        "--log-flush-frequency=1s",
        "--audit-log-path=/twice",
        "--kubelet-insecure-tls",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    let notices: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("is not supported by metrics-server-rs"))
        .collect();
    let expected = [
        ("WARN", "--audit-log-path"),
        ("WARN", "--audit-policy-file"),
        ("WARN", "--profiling"),
        ("INFO", "--log-flush-frequency"),
    ];
    assert_eq!(notices.len(), expected.len(), "{stderr}");
    for (line, (level, flag)) in notices.iter().zip(expected) {
        assert!(
            line.contains(level)
                && line.contains(&format!(
                    "{flag} is not supported by metrics-server-rs and is ignored"
                )),
            "{line:?} should be a {level} line for {flag}"
        );
    }
}

#[test]
fn a_bad_limit_flag_exits_two_naming_it() {
    let out = bin(&["--kubelet-max-body-bytes=0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr)
            .starts_with("Error: --kubelet-max-body-bytes 0 must be a positive integer\nUsage:\n")
    );
}
