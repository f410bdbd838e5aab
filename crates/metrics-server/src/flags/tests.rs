//! Flag table tests: every argument list our deployments pass, pflag edge cases, and
//! upstream's validation messages (each checked against the upstream v0.9.0 binary).

use std::net::IpAddr;

use super::*;

fn run(args: &[&str]) -> Args {
    match parse(args.iter().copied()) {
        Ok(Command::Run(a)) => *a,
        other => panic!("{args:?}: expected Run, got {other:?}"),
    }
}

fn parse_err(args: &[&str]) -> String {
    match parse(args.iter().copied()) {
        Err(e) => e.message,
        Ok(other) => panic!("{args:?}: expected an error, got {other:?}"),
    }
}

fn validate_err(args: &[&str]) -> String {
    match run(args).validate() {
        Err(e) => e.message,
        Ok(v) => panic!("{args:?}: expected a validation error, got {v:?}"),
    }
}

const SEC: i64 = 1_000_000_000;

// === Argument lists used in the field ===

#[test]
fn every_argument_kwokctl_passes_is_accepted() {
    // local-cluster-notes.md, plus the node-selector patch of hack/cluster.sh.
    let args = run(&[
        "--kubelet-preferred-address-types=Hostname,InternalIP,ExternalIP",
        "--kubelet-use-node-status-port",
        "--kubelet-insecure-tls",
        "--metric-resolution=15s",
        "--kubeconfig=/root/.kwok/clusters/msrs/kubeconfig",
        "--authentication-kubeconfig=/root/.kwok/clusters/msrs/kubeconfig",
        "--authorization-kubeconfig=/root/.kwok/clusters/msrs/kubeconfig",
        "--tls-cert-file=/root/.kwok/clusters/msrs/pki/admin.crt",
        "--tls-private-key-file=/root/.kwok/clusters/msrs/pki/admin.key",
        "--bind-address=127.0.0.1",
        "--secure-port=32415",
        "--v=4",
        "--node-selector=metrics-server-skip!=true",
    ]);
    assert_eq!(
        args.kubelet_preferred_address_types,
        ["Hostname", "InternalIP", "ExternalIP"]
    );
    assert!(args.kubelet_use_node_status_port);
    assert!(args.kubelet_insecure_tls);
    assert_eq!(args.metric_resolution, 15 * SEC);
    assert_eq!(args.kubeconfig, "/root/.kwok/clusters/msrs/kubeconfig");
    assert_eq!(args.authentication_kubeconfig, args.kubeconfig);
    assert_eq!(args.authorization_kubeconfig, args.kubeconfig);
    assert_eq!(
        args.tls_cert_file,
        "/root/.kwok/clusters/msrs/pki/admin.crt"
    );
    assert_eq!(
        args.tls_private_key_file,
        "/root/.kwok/clusters/msrs/pki/admin.key"
    );
    assert_eq!(args.bind_address, Some(IpAddr::from([127, 0, 0, 1])));
    assert_eq!(args.secure_port, 32415);
    assert_eq!(args.v, 4);
    assert_eq!(args.node_selector, "metrics-server-skip!=true");
    let v = args.validate().expect("valid");
    assert_eq!(v.secure_port, 32415);
    assert!(!v.node_selector.is_empty());
}

#[test]
fn the_official_manifest_arguments_are_accepted() {
    // B.3: components.yaml, the test overlay and the Helm chart defaults.
    let args = run(&[
        "--cert-dir=/tmp",
        "--secure-port=10250",
        "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
        "--kubelet-use-node-status-port",
        "--metric-resolution=15s",
        "--kubelet-insecure-tls",
        "--v=4",
        "--node-selector=metrics-server-skip!=true",
        "--authorization-always-allow-paths=/metrics",
        "--tls-cert-file=/tmp/tls-certs/tls.crt",
        "--tls-private-key-file=/tmp/tls-certs/tls.key",
    ]);
    assert_eq!(args.cert_dir, "/tmp");
    assert_eq!(args.secure_port, 10250);
    assert_eq!(args.authorization_always_allow_paths, ["/metrics"]);
    args.validate().expect("valid");
}

#[test]
fn defaults_match_upstream() {
    let args = run(&[]);
    assert_eq!(args.metric_resolution, 60 * SEC);
    assert_eq!(args.kubelet_request_timeout, 10 * SEC);
    assert_eq!(args.kubelet_port, 10250);
    assert_eq!(
        args.kubelet_preferred_address_types,
        [
            "Hostname",
            "InternalDNS",
            "InternalIP",
            "ExternalDNS",
            "ExternalIP"
        ]
    );
    assert_eq!(args.secure_port, 443);
    assert_eq!(args.bind_address, Some(IpAddr::from([0, 0, 0, 0])));
    assert_eq!(args.cert_dir, "apiserver.local.config/certificates");
    assert_eq!(
        args.authorization_always_allow_paths,
        ["/healthz", "/readyz", "/livez"]
    );
    assert_eq!(args.requestheader_username_headers, ["x-remote-user"]);
    assert_eq!(args.max_requests_inflight, 400);
    assert_eq!(args.max_mutating_requests_inflight, 200);
    assert_eq!(args.request_timeout, 60 * SEC);
    assert_eq!(args.logging_format, "text");
    assert_eq!(args.v, 0);
    args.validate().expect("defaults are valid");
}

// === pflag syntax ===

#[test]
fn values_may_follow_an_equals_sign_or_come_as_the_next_argument() {
    let a = run(&["--metric-resolution", "30s", "--kubelet-port", "11250"]);
    assert_eq!(a.metric_resolution, 30 * SEC);
    assert_eq!(a.kubelet_port, 11250);
    // A non-boolean takes the next argument even when it looks like a flag, like pflag.
    let a = run(&["--kubeconfig", "--weird-name"]);
    assert_eq!(a.kubeconfig, "--weird-name");
}

#[test]
fn booleans_stand_alone_or_take_an_explicit_value() {
    assert!(run(&["--kubelet-insecure-tls"]).kubelet_insecure_tls);
    for t in ["true", "1", "t", "T", "TRUE", "True"] {
        assert!(run(&[&format!("--kubelet-insecure-tls={t}")]).kubelet_insecure_tls);
    }
    for f in ["false", "0", "f", "F", "FALSE", "False"] {
        assert!(!run(&[&format!("--kubelet-insecure-tls={f}")]).kubelet_insecure_tls);
    }
    // `--bool false` sets true and leaves `false` as a positional argument.
    let a = run(&["--kubelet-insecure-tls", "false"]);
    assert!(a.kubelet_insecure_tls);
    assert_eq!(a.positionals, ["false"]);
}

#[test]
fn verbosity_accepts_every_klog_spelling() {
    for args in [
        &["-v", "3"][..],
        &["-v=3"],
        &["-v3"],
        &["--v=3"],
        &["--v", "3"],
    ] {
        assert_eq!(run(args).v, 3, "{args:?}");
    }
}

#[test]
fn the_node_selector_has_the_l_shorthand() {
    for args in [
        &["-l", "a=b"][..],
        &["-la=b"],
        &["-l=a=b"],
        &["--node-selector", "a=b"],
    ] {
        assert_eq!(run(args).node_selector, "a=b", "{args:?}");
    }
}

#[test]
fn comma_lists_split_and_repeat_with_the_first_use_replacing_the_default() {
    let a = run(&[
        "--kubelet-preferred-address-types",
        "InternalIP",
        "--kubelet-preferred-address-types=ExternalIP,Hostname",
    ]);
    assert_eq!(
        a.kubelet_preferred_address_types,
        ["InternalIP", "ExternalIP", "Hostname"]
    );
    let a = run(&["--authorization-always-allow-paths="]);
    assert!(a.authorization_always_allow_paths.is_empty());
    let a = run(&["--requestheader-allowed-names=\"a,b\",c"]);
    assert_eq!(a.requestheader_allowed_names, ["a,b", "c"]);
}

#[test]
fn a_double_dash_ends_the_flags() {
    let a = run(&["--v=2", "--", "--unknown", "-x"]);
    assert_eq!(a.v, 2);
    assert_eq!(a.positionals, ["--unknown", "-x"]);
}

#[test]
fn generic_apiserver_flags_are_accepted_and_recorded_as_ignored() {
    let a = run(&[
        "--audit-log-path=-",
        "--audit-log-maxage=3",
        "--feature-gates=kube:Foo=true",
        "--emulated-version=kube=1.31",
        "--cors-allowed-origins=a,b",
        "--goaway-chance=0.01",
        "--livez-grace-period=10s",
        "--strict-transport-security-directives=max-age=1",
        "--storage-initialization-timeout=1m",
        "--shutdown-send-retry-after",
        "--shutdown-watch-termination-grace-period=5s",
        "--profiling=false",
        "--contention-profiling",
        "--enable-priority-and-fairness=false",
        "--vmodule=foo=3",
        "--log-flush-frequency=1s",
        "--log-json-split-stream",
        "--log-text-info-buffer-size=1Ki",
        "--permit-port-sharing",
        "--permit-address-sharing",
        "--tls-sni-cert-key=a.crt,a.key",
        "--tls-curve-preferences=23",
        "--min-request-timeout=100",
        "--external-hostname=ms.example",
        "--advertise-address=10.0.0.1",
    ]);
    assert!(a.ignored.contains(&"audit-log-path=-".to_owned()));
    assert!(a.ignored.contains(&"profiling=false".to_owned()));
    assert!(
        a.ignored
            .contains(&"feature-gates=kube:Foo=true".to_owned())
    );
    assert!(a.permit_port_sharing && a.permit_address_sharing);
    assert_eq!(a.advertise_address, Some(IpAddr::from([10, 0, 0, 1])));
    a.validate().expect("valid");
}

#[test]
fn an_empty_bind_address_means_all_interfaces() {
    assert_eq!(run(&["--bind-address="]).bind_address, None);
    assert_eq!(
        run(&["--bind-address=::"]).bind_address,
        Some("::".parse().unwrap())
    );
}

#[test]
fn integers_use_go_base_prefixes() {
    assert_eq!(
        run(&["--max-requests-inflight=0x10"]).max_requests_inflight,
        16
    );
    assert_eq!(
        run(&["--max-requests-inflight=010"]).max_requests_inflight,
        8
    );
    assert_eq!(
        run(&["--max-requests-inflight=0b11"]).max_requests_inflight,
        3
    );
    assert_eq!(
        run(&["--max-requests-inflight=-5"]).max_requests_inflight,
        -5
    );
    assert_eq!(
        run(&["--max-requests-inflight=1_0"]).max_requests_inflight,
        10
    );
}

// === Errors: each text is upstream's ===

#[test]
fn unknown_flags_are_rejected_by_name() {
    assert_eq!(parse_err(&["--foo"]), "unknown flag: --foo");
    assert_eq!(parse_err(&["--foo=1"]), "unknown flag: --foo");
    assert_eq!(parse_err(&["--v=2", "--x=1"]), "unknown flag: --x");
    assert_eq!(
        parse_err(&["--kubelet_insecure_tls"]),
        "unknown flag: --kubelet_insecure_tls"
    );
    assert_eq!(parse_err(&["-x"]), "unknown shorthand flag: 'x' in -x");
    assert_eq!(parse_err(&["---foo"]), "bad flag syntax: ---foo");
    assert_eq!(parse_err(&["--=x"]), "bad flag syntax: --=x");
}

#[test]
fn a_flag_without_its_value_is_rejected() {
    assert_eq!(
        parse_err(&["--metric-resolution"]),
        "flag needs an argument: --metric-resolution"
    );
    assert_eq!(parse_err(&["-v"]), "flag needs an argument: 'v' in -v");
}

#[test]
fn bad_values_name_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--metric-resolution=abc"],
            r#"invalid argument "abc" for "--metric-resolution" flag: time: invalid duration "abc""#,
        ),
        (
            &["--metric-resolution=15"],
            r#"invalid argument "15" for "--metric-resolution" flag: time: missing unit in duration "15""#,
        ),
        (
            &["--kubelet-port=abc"],
            r#"invalid argument "abc" for "--kubelet-port" flag: strconv.ParseInt: parsing "abc": invalid syntax"#,
        ),
        (
            &["--kubelet-port=99999999999999999999"],
            r#"invalid argument "99999999999999999999" for "--kubelet-port" flag: strconv.ParseInt: parsing "99999999999999999999": value out of range"#,
        ),
        (
            &["--kubelet-insecure-tls=maybe"],
            r#"invalid argument "maybe" for "--kubelet-insecure-tls" flag: strconv.ParseBool: parsing "maybe": invalid syntax"#,
        ),
        (
            &["--v=abc"],
            r#"invalid argument "abc" for "-v, --v" flag: strconv.ParseUint: parsing "abc": invalid syntax"#,
        ),
        (
            &["--v=-1"],
            r#"invalid argument "-1" for "-v, --v" flag: strconv.ParseUint: parsing "-1": invalid syntax"#,
        ),
        (
            &["--v=99999999999"],
            r#"invalid argument "99999999999" for "-v, --v" flag: strconv.ParseUint: parsing "99999999999": value out of range"#,
        ),
        (
            &["-vh"],
            r#"invalid argument "h" for "-v, --v" flag: strconv.ParseUint: parsing "h": invalid syntax"#,
        ),
        (
            &["-v="],
            r#"invalid argument "=" for "-v, --v" flag: strconv.ParseUint: parsing "=": invalid syntax"#,
        ),
        (
            &["--bind-address=abc"],
            r#"invalid argument "abc" for "--bind-address" flag: failed to parse IP: "abc""#,
        ),
        (
            &["--metric-resolution", "--kubeconfig=/x"],
            r#"invalid argument "--kubeconfig=/x" for "--metric-resolution" flag: time: invalid duration "--kubeconfig=/x""#,
        ),
    ];
    for (args, want) in cases {
        assert_eq!(parse_err(args), *want, "{args:?}");
    }
}

#[test]
fn errors_are_reported_in_argument_order() {
    assert_eq!(
        parse_err(&["--kubelet-port=abc", "--foo"]),
        r#"invalid argument "abc" for "--kubelet-port" flag: strconv.ParseInt: parsing "abc": invalid syntax"#
    );
    assert_eq!(
        parse_err(&["--foo", "--kubelet-port=abc"]),
        "unknown flag: --foo"
    );
}

// === Help and version ===

#[test]
fn help_wins_over_validation_but_not_over_parse_errors() {
    assert!(matches!(parse(["--help"]), Ok(Command::Help)));
    assert!(matches!(parse(["-h"]), Ok(Command::Help)));
    assert!(matches!(
        parse(["--metric-resolution=5s", "--help"]),
        Ok(Command::Help)
    ));
    assert!(matches!(parse(["--version", "--help"]), Ok(Command::Help)));
    assert_eq!(parse_err(&["--help", "--foo"]), "unknown flag: --foo");
    assert!(matches!(parse(["--help=false"]), Ok(Command::Run(_))));
}

#[test]
fn version_wins_over_validation() {
    assert!(matches!(
        parse(["--version", "--metric-resolution=5s"]),
        Ok(Command::Version)
    ));
    assert!(matches!(parse(["--version=false"]), Ok(Command::Run(_))));
    assert!(VERSION.starts_with('v'));
    assert_eq!(VERSION.matches('.').count(), 2);
}

// === The help text against the flags we parse ===

/// The pflag type names a kind may be listed with.
fn help_types(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Bool => &[""],
        Kind::Str => &["string"],
        Kind::Strings => &["strings"],
        Kind::Int => &["int"],
        Kind::Duration => &["duration"],
        Kind::Ip => &["ip"],
        Kind::Float => &["float", "float32"],
        Kind::Level => &["Level"],
        Kind::CertKey => &["namedCertKey"],
        // Go value types we accept without modelling them.
        Kind::Raw => &[
            "colonSeparatedMultimapStringString",
            "int32Slice",
            "quantity",
            "pattern=N,...",
        ],
    }
}

/// A help default as a command-line value: `"text"` → `text`, `[a,b]` → `a,b`.
fn default_as_argument(default: &str) -> String {
    if let Some(inner) = default.strip_prefix('"').and_then(|d| d.strip_suffix('"')) {
        return inner.to_owned();
    }
    if let Some(inner) = default.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        return inner.to_owned();
    }
    default.to_owned()
}

/// The zero value pflag omits from the help, as a command-line value.
fn zero_argument(kind: Kind) -> &'static str {
    match kind {
        Kind::Bool => "false",
        Kind::Int | Kind::Float | Kind::Level => "0",
        Kind::Duration => "0s",
        Kind::Str | Kind::Strings | Kind::Ip | Kind::Raw | Kind::CertKey => "",
    }
}

/// What a command line sets, without the bookkeeping of which flags were seen.
fn settings(mut args: Args) -> Args {
    args.changed.clear();
    args.ignored.clear();
    args
}

#[test]
fn every_flag_we_parse_is_in_the_help_once_with_its_type() {
    let listed = help_doc::flags(HELP);
    for spec in SPECS.iter().filter(|s| s.name != "help") {
        let entries: Vec<_> = listed.iter().filter(|f| f.name == spec.name).collect();
        assert_eq!(
            entries.len(),
            1,
            "--{} listed {} times",
            spec.name,
            entries.len()
        );
        let entry = entries[0];
        assert_eq!(entry.short, spec.short, "--{} shorthand", spec.name);
        assert!(
            help_types(spec.kind).contains(&entry.type_name.as_str()),
            "--{} is listed as {:?}, parsed as {:?}",
            spec.name,
            entry.type_name,
            spec.kind
        );
        assert!(
            !entry.description.is_empty(),
            "--{} has no description",
            spec.name
        );
    }
    assert_eq!(
        listed.len(),
        SPECS.len() - 1,
        "the help lists a flag we do not parse"
    );
}

#[test]
fn setting_a_flag_to_the_default_its_help_shows_changes_nothing() {
    // Catches a help default that differs from the default we actually use.
    let defaults = settings(run(&[]));
    for entry in help_doc::flags(HELP) {
        let spec = Spec::by_name(&entry.name).expect("listed flags are parsed");
        // A namedCertKey list has no textual form of its empty default: each use adds a pair.
        if matches!(spec.name, "version" | "v" | "tls-sni-cert-key") {
            continue;
        }
        let value = entry
            .default
            .as_deref()
            .map_or_else(|| zero_argument(spec.kind).to_owned(), default_as_argument);
        let arg = format!("--{}={value}", entry.name);
        assert_eq!(settings(run(&[&arg])), defaults, "{arg} is not the default");
    }
}

#[test]
fn the_help_keeps_upstreams_sections_in_order_and_ours_last() {
    assert!(HELP.starts_with("Launch metrics-server\n\nUsage:\n   [flags]\n\n"));
    assert!(usage().starts_with("Usage:\n"));
    assert_eq!(
        help_doc::sections(HELP),
        [
            "Metrics server flags:",
            "Generic flags:",
            "Kubelet client flags:",
            "Apiserver secure serving flags:",
            "Apiserver authentication flags:",
            "Apiserver authorization flags:",
            "Apiserver audit log flags:",
            "Features flags:",
            "Logging flags:",
            help_doc::OWN_SECTION,
        ]
    );
    let ours: Vec<String> = help_doc::flags(HELP)
        .into_iter()
        .filter(|f| f.section == help_doc::OWN_SECTION)
        .map(|f| f.name)
        .collect();
    assert_eq!(
        ours,
        [
            "kubelet-max-requests-inflight",
            "kubelet-max-body-bytes",
            "authentication-token-cache-size",
            "authorization-cache-size",
            "kubelet-keep-alive",
            "kubelet-node-proxy-fallback",
            "node-scrape-events",
            "served-metrics-versions",
            "shard-by-lease",
            "shard-group",
            "shard-namespace",
            "shard-identity",
            "shard-peer-address",
            "shard-lease-duration",
            "shard-peer-allowed-users",
            "shard-peer-token-file",
            "shard-peer-ca-file",
        ]
    );
}

/// For a flag line: where its names end and where its text starts.
fn columns(line: &str) -> Option<(usize, usize)> {
    if !(line.starts_with("      --") || line.starts_with("  -")) {
        return None;
    }
    let names_end = 6 + line[6..].find("   ")?;
    let text_start = names_end + line[names_end..].find(|c| c != ' ')?;
    Some((names_end, text_start))
}

#[test]
fn the_help_uses_pflags_columns_and_wraps_its_text() {
    for block in HELP.split("\n\n") {
        let flag_lines: Vec<(usize, usize)> = block.lines().filter_map(columns).collect();
        let Some(longest) = flag_lines.iter().map(|(end, _)| *end).max() else {
            continue;
        };
        // pflag: the text starts three columns after the longest names of the section, and
        // continuation lines are indented to that column.
        let column = longest + 3;
        assert!(
            flag_lines.iter().all(|(_, start)| *start == column),
            "{block}"
        );
        for line in block.lines().filter(|l| columns(l).is_none()) {
            let indent = line.len() - line.trim_start().len();
            assert_eq!(indent, column, "continuation misaligned: {line:?}");
        }
    }
    for line in HELP.lines() {
        assert!(line.len() <= 124, "not wrapped: {line:?}");
        assert_eq!(line, line.trim_end(), "trailing spaces: {line:?}");
    }
}

// === Flags that have no effect ===

/// A value of the right type for any flag.
fn sample_value(kind: Kind) -> &'static str {
    match kind {
        Kind::Bool => "true",
        Kind::Str | Kind::Raw => "sample",
        Kind::Strings => "a,b",
        Kind::Int => "7",
        Kind::Duration => "3s",
        Kind::Ip => "10.1.2.3",
        Kind::Float => "0.5",
        Kind::Level => "3",
        Kind::CertKey => "a.crt,a.key",
    }
}

#[test]
fn ignored_flags_are_only_recorded_and_every_other_flag_is_stored() {
    // Keeps IGNORED and the `set_*` arms in agreement: a flag is either in the table or
    // reaches a field of Args, never both or neither.
    let defaults = settings(run(&[]));
    for spec in SPECS
        .iter()
        .filter(|s| !matches!(s.name, "help" | "version"))
    {
        let arg = format!("--{}={}", spec.name, sample_value(spec.kind));
        let args = run(&[&arg]);
        if ignored_flag(spec.name).is_some() {
            assert_eq!(args.ignored.len(), 1, "{arg} should be recorded as ignored");
            assert_eq!(
                settings(args),
                defaults,
                "{arg} is ignored but changed a setting"
            );
        } else {
            assert!(args.ignored.is_empty(), "{arg} fell through to ignored");
            let mut changed = settings(args) != defaults;
            if !changed && matches!(spec.kind, Kind::Bool) {
                // A switch that defaults to on is tested by turning it off.
                changed = settings(run(&[&format!("--{}=false", spec.name)])) != defaults;
            }
            assert!(changed, "{arg} changed nothing");
        }
    }
    for (name, _) in IGNORED {
        assert!(Spec::by_name(name).is_some(), "--{name} is not a flag");
    }
}

#[test]
fn served_metrics_versions_are_validated_and_default_to_both() {
    let served = |args: &[&str]| run(args).validate().map(|v| v.served_versions);
    let both: Vec<MetricsVersion> = served(&[]).map(|s| s.iter().collect()).unwrap_or_default();
    assert_eq!(both, [MetricsVersion::V1, MetricsVersion::V1beta1]);
    let beta: Vec<MetricsVersion> = served(&["--served-metrics-versions=v1beta1"])
        .map(|s| s.iter().collect())
        .unwrap_or_default();
    assert_eq!(beta, [MetricsVersion::V1beta1]);
    let err = served(&["--served-metrics-versions=v1,v2"])
        .err()
        .map(|e| e.to_string());
    assert!(
        err.as_deref().is_some_and(|e| e.contains("\"v2\"")),
        "{err:?}"
    );
    assert!(served(&["--served-metrics-versions="]).is_err());
}

#[test]
fn ignored_values_are_still_type_checked() {
    assert!(parse_err(&["--audit-log-maxage=soon"]).contains("--audit-log-maxage"));
    assert!(parse_err(&["--profiling=maybe"]).contains("strconv.ParseBool"));
    assert!(parse_err(&["--goaway-chance=lots"]).contains("strconv.ParseFloat"));
}

#[test]
fn the_startup_notice_names_exactly_the_ignored_flags_that_were_set() {
    let args = run(&[
        "--vmodule=x=2",
        "--audit-log-path=/var/log/audit.log",
        "--kubelet-insecure-tls",
        "--profiling=false",
        "--audit-log-path=/again",
        "--tls-sni-cert-key=a.crt,a.key", // honoured: never named
        "--metric-resolution=15s",
        "--goaway-chance=0.01",
        "--requestheader-uid-headers=X-Remote-Uid",
    ]);
    let got: Vec<(&str, Notice)> = args
        .ignored_flags()
        .iter()
        .map(|f| (f.name, f.notice))
        .collect();
    assert_eq!(
        got,
        [
            ("goaway-chance", Notice::Info),
            ("requestheader-uid-headers", Notice::Warn),
            ("audit-log-path", Notice::Warn),
            ("profiling", Notice::Warn),
            ("vmodule", Notice::Info),
        ]
    );
    assert_eq!(
        args.ignored_flags()[2].message(),
        "--audit-log-path is not supported by metrics-server-rs and is ignored"
    );
    assert!(
        run(&["--kubelet-insecure-tls", "--v=4"])
            .ignored_flags()
            .is_empty()
    );
}

#[test]
fn security_relevant_ignored_flags_warn() {
    for (name, notice) in IGNORED {
        let security = name.starts_with("audit-")
            || matches!(
                *name,
                "profiling"
                    | "contention-profiling"
                    | "debug-socket-path"
                    | "cors-allowed-origins"
                    | "strict-transport-security-directives"
                    | "tls-sni-cert-key"
                    | "tls-curve-preferences"
            );
        if security {
            assert_eq!(*notice, Notice::Warn, "--{name}");
        }
    }
    assert_eq!(
        IGNORED
            .iter()
            .filter(|(n, _)| n.starts_with("audit-"))
            .count(),
        31
    );
}

// === Our own limit flags ===

#[test]
fn limit_flags_default_to_the_built_in_limits_and_are_passed_on() {
    let limits = run(&[]).validate().unwrap().limits;
    assert_eq!(
        limits,
        Limits {
            kubelet_max_requests_inflight: 256,
            kubelet_max_body_bytes: 64 * 1024 * 1024,
            authentication_token_cache_size: 4096,
            authorization_cache_size: 4096,
        }
    );
    let limits = run(&[
        "--kubelet-max-requests-inflight=32",
        "--kubelet-max-body-bytes=1048576",
        "--authentication-token-cache-size=10",
        "--authorization-cache-size=0x20",
    ])
    .validate()
    .unwrap()
    .limits;
    assert_eq!(
        limits,
        Limits {
            kubelet_max_requests_inflight: 32,
            kubelet_max_body_bytes: 1 << 20,
            authentication_token_cache_size: 10,
            authorization_cache_size: 32,
        }
    );
}

#[test]
fn limit_flags_must_be_positive_and_errors_name_the_flag() {
    for flag in [
        "kubelet-max-requests-inflight",
        "kubelet-max-body-bytes",
        "authentication-token-cache-size",
        "authorization-cache-size",
    ] {
        for bad in ["0", "-1"] {
            assert_eq!(
                validate_err(&[&format!("--{flag}={bad}")]),
                format!("--{flag} {bad} must be a positive integer")
            );
        }
        assert_eq!(
            parse_err(&[&format!("--{flag}=many")]),
            format!(
                "invalid argument \"many\" for \"--{flag}\" flag: strconv.ParseInt: parsing \"many\": invalid syntax"
            )
        );
    }
    // Upstream's checks still come first.
    assert!(
        validate_err(&["--kubelet-max-body-bytes=0", "--metric-resolution=1s"])
            .starts_with("metric-resolution should be")
    );
}

// === Our own kubelet connection switch ===

#[test]
fn kubelet_keep_alive_defaults_to_on_and_parses_as_a_bool() {
    assert!(run(&[]).kubelet_keep_alive);
    assert!(run(&["--kubelet-keep-alive"]).kubelet_keep_alive);
    assert!(!run(&["--kubelet-keep-alive=false"]).kubelet_keep_alive);
    assert!(!run(&["--kubelet-keep-alive=0"]).kubelet_keep_alive);
    // Like any pflag bool, a separate `false` is a positional argument, not the value.
    let a = run(&["--kubelet-keep-alive", "false"]);
    assert!(a.kubelet_keep_alive);
    assert_eq!(a.positionals, ["false"]);
    assert_eq!(
        parse_err(&["--kubelet-keep-alive=sometimes"]),
        r#"invalid argument "sometimes" for "--kubelet-keep-alive" flag: strconv.ParseBool: parsing "sometimes": invalid syntax"#
    );
    // An honoured flag: never reported as ignored.
    assert!(
        run(&["--kubelet-keep-alive=false"])
            .ignored_flags()
            .is_empty()
    );
}

// === Validation (O1–O3) ===

#[test]
fn the_metric_resolution_must_be_at_least_ten_seconds() {
    assert_eq!(
        validate_err(&["--metric-resolution=5s"]),
        "metric-resolution should be a time duration at least 10s, but value 5s provided"
    );
    assert_eq!(
        validate_err(&["--metric-resolution=9.5s", "--kubelet-request-timeout=1s"]),
        "metric-resolution should be a time duration at least 10s, but value 9.5s provided"
    );
    run(&["--metric-resolution=10s", "--kubelet-request-timeout=9s"])
        .validate()
        .expect("10s with a 9s timeout passes");
}

#[test]
fn ninety_percent_of_the_resolution_must_cover_the_kubelet_timeout() {
    assert_eq!(
        validate_err(&["--metric-resolution=10s"]),
        "metric-resolution should be larger than kubelet-request-timeout, but metric-resolution value 10s kubelet-request-timeout value 10s provided"
    );
    assert_eq!(
        validate_err(&["--metric-resolution=11s"]),
        "metric-resolution should be larger than kubelet-request-timeout, but metric-resolution value 11s kubelet-request-timeout value 10s provided"
    );
    assert_eq!(
        validate_err(&[
            "--metric-resolution=1m",
            "--kubelet-request-timeout=54001ms"
        ]),
        "metric-resolution should be larger than kubelet-request-timeout, but metric-resolution value 1m0s kubelet-request-timeout value 54.001s provided"
    );
    run(&["--metric-resolution=1m", "--kubelet-request-timeout=54s"])
        .validate()
        .expect("exactly 90% passes");
}

#[test]
fn the_kubelet_timeout_must_be_positive_and_is_checked_first() {
    for t in ["0s", "-1s"] {
        assert_eq!(
            validate_err(&[&format!("--kubelet-request-timeout={t}")]),
            "kubelet-request-timeout should be positive"
        );
    }
    assert_eq!(
        validate_err(&["--metric-resolution=5s", "--kubelet-request-timeout=0s"]),
        "kubelet-request-timeout should be positive"
    );
}

#[test]
fn kubelet_client_certificate_and_key_come_together() {
    for args in [
        &["--kubelet-client-key=k"][..],
        &["--kubelet-client-certificate=c"],
        &["--metric-resolution=5s", "--kubelet-client-key=k"],
        &[
            "--deprecated-kubelet-completely-insecure",
            "--kubelet-client-certificate=c",
        ],
    ] {
        assert_eq!(
            validate_err(args),
            "need both --kubelet-client-key and --kubelet-client-certificate",
            "{args:?}"
        );
    }
    run(&["--kubelet-client-key=k", "--kubelet-client-certificate=c"])
        .validate()
        .expect("both is fine");
}

#[test]
fn mutually_exclusive_kubelet_flags_name_both_flags() {
    const PLAIN: &str = "--deprecated-kubelet-completely-insecure";
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "--kubelet-certificate-authority=ca",
                "--kubelet-insecure-tls",
            ],
            "cannot use both --kubelet-certificate-authority and --kubelet-insecure-tls",
        ),
        (
            &[
                PLAIN,
                "--kubelet-client-key=k",
                "--kubelet-client-certificate=c",
            ],
            "cannot use both --kubelet-client-key and --deprecated-kubelet-completely-insecure",
        ),
        (
            &[PLAIN, "--kubelet-insecure-tls"],
            "cannot use both --kubelet-insecure-tls and --deprecated-kubelet-completely-insecure",
        ),
        (
            &[PLAIN, "--kubelet-certificate-authority=ca"],
            "cannot use both --kubelet-certificate-authority and --deprecated-kubelet-completely-insecure",
        ),
        (
            &[
                "--kubelet-request-timeout=0s",
                "--kubelet-client-key=x",
                PLAIN,
                "--kubelet-insecure-tls",
            ],
            "need both --kubelet-client-key and --kubelet-client-certificate",
        ),
    ];
    for (args, want) in cases {
        assert_eq!(validate_err(args), *want, "{args:?}");
    }
}

#[test]
fn an_unknown_logging_format_is_rejected_after_the_resolution_checks() {
    assert_eq!(
        validate_err(&["--logging-format=foo"]),
        r#"format: Invalid value: "foo": Unsupported log format"#
    );
    assert_eq!(
        validate_err(&["--metric-resolution=5s", "--logging-format=foo"]),
        "metric-resolution should be a time duration at least 10s, but value 5s provided"
    );
    let v = run(&["--logging-format=json"]).validate().unwrap();
    assert_eq!(v.log_format, LogFormat::Json);
}

#[test]
fn a_bad_node_selector_is_fatal_with_the_go_parser_message() {
    assert_eq!(
        validate_err(&["--node-selector=a=("]),
        "unable to parse requirement: found '(', expected: identifier"
    );
}

#[test]
fn ports_out_of_range_are_rejected() {
    assert!(validate_err(&["--secure-port=70000"]).contains("--secure-port 70000"));
    assert!(validate_err(&["--kubelet-port=-1"]).contains("--kubelet-port -1"));
    assert_eq!(run(&["--secure-port=0"]).validate().unwrap().secure_port, 0);
}

#[test]
fn security_flags_are_real_fields() {
    let a = run(&[
        "--cors-allowed-origins=//a\\.test(:|$),^https://b\\.test$",
        "--cors-allowed-origins=//c\\.test$",
        "--strict-transport-security-directives=max-age=31536000,includeSubDomains",
        "--strict-transport-security-directives=preload",
        "--tls-sni-cert-key=a.crt,a.key",
        "--tls-sni-cert-key",
        "b.crt,b.key:b.test,*.b.test",
    ]);
    assert_eq!(
        a.cors_allowed_origins,
        ["//a\\.test(:|$)", "^https://b\\.test$", "//c\\.test$"]
    );
    assert_eq!(
        a.strict_transport_security_directives,
        ["max-age=31536000", "includeSubDomains", "preload"]
    );
    let sni: Vec<String> = a.tls_sni_cert_key.iter().map(ToString::to_string).collect();
    assert_eq!(sni, ["a.crt,a.key", "b.crt,b.key:b.test,*.b.test"]);
    assert!(
        a.ignored.iter().all(|i| !i.starts_with("cors-")
            && !i.starts_with("strict-transport")
            && !i.starts_with("tls-sni")),
        "{:?}",
        a.ignored
    );
}

#[test]
fn a_bad_sni_cert_key_names_the_flag_with_the_flag_type_error() {
    assert_eq!(
        parse_err(&["--tls-sni-cert-key=only.crt"]),
        r#"invalid argument "only.crt" for "--tls-sni-cert-key" flag: expected comma separated certificate and key file paths"#
    );
    assert_eq!(
        parse_err(&["--tls-sni-cert-key=a.crt,a.key:"]),
        r#"invalid argument "a.crt,a.key:" for "--tls-sni-cert-key" flag: empty names list is not allowed"#
    );
}
