//! The loopback rule: every established TCP connection of the cluster's processes must have its peer on
//! this machine's loopback range. Input is the output of `ss -tnpH state established`.

use std::net::IpAddr;

/// The processes the rule applies to: the control plane, KWOK, and either metrics-server.
pub const CLUSTER_PROCESSES: &[&str] = &[
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "etcd",
    "kwok",
    "metrics-server",
    "metrics-server-upstream",
];

/// The longest process name (`comm`) the kernel keeps; `ss` prints names cut to this length.
const COMM_MAX: usize = 15;

/// One line of `ss -tnpH state established`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    /// Local `address:port` as printed.
    pub local: String,
    /// Peer `address:port` as printed.
    pub peer: String,
    /// The names of the processes holding the socket (empty when `ss` could not tell).
    pub processes: Vec<String>,
}

/// The outcome of applying the rule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoopbackReport {
    /// How many connections belonged to one of the watched processes.
    pub matched: usize,
    /// One description per connection whose peer is not on loopback.
    pub violations: Vec<String>,
}

/// Parses the whole output; lines that are not connections are skipped.
pub fn parse_ss(output: &str) -> Vec<Connection> {
    output.lines().filter_map(parse_ss_line).collect()
}

/// Parses one line: `Recv-Q Send-Q Local:Port Peer:Port [users:(("name",pid=1,fd=3),...)]`. The `State`
/// column, present without a state filter, is tolerated: the two address columns are the last two
/// columns before the process column.
pub fn parse_ss_line(line: &str) -> Option<Connection> {
    let users_at = line.find("users:(");
    let head = &line[..users_at.unwrap_or(line.len())];
    let columns: Vec<&str> = head.split_whitespace().collect();
    if columns.len() < 4 {
        return None;
    }
    let peer = columns[columns.len() - 1];
    let local = columns[columns.len() - 2];
    split_host_port(local)?;
    split_host_port(peer)?;
    let processes = users_at
        .map(|at| process_names(&line[at..]))
        .unwrap_or_default();
    Some(Connection {
        local: local.to_owned(),
        peer: peer.to_owned(),
        processes,
    })
}

/// Extracts the quoted names from `users:(("name",pid=1,fd=3),("other",pid=2,fd=4))`.
fn process_names(users: &str) -> Vec<String> {
    users
        .split("(\"")
        .skip(1)
        .filter_map(|part| part.split_once("\",").map(|(name, _)| name.to_owned()))
        .collect()
}

/// Splits `127.0.0.1:80`, `[::1]:443`, `[::ffff:127.0.0.1]:6443`, `127.0.0.53%lo:53` or `*:22` into host
/// (without brackets or `%interface`) and port.
pub fn split_host_port(address: &str) -> Option<(&str, &str)> {
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':')?)
    } else {
        address.rsplit_once(':')?
    };
    if host.is_empty() || port.is_empty() {
        return None;
    }
    let host = host.split_once('%').map_or(host, |(h, _)| h);
    Some((host, port))
}

/// Whether a host printed by `ss -n` is in 127.0.0.0/8, is `::1`, or is an IPv4-mapped loopback
/// address (`::ffff:127.x.y.z`).
pub fn is_loopback_host(host: &str) -> bool {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(IpAddr::V6(v6)) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

/// Whether the process name `ss` printed is `watched`, allowing for the kernel's 15-character cut
/// (`kube-controller-manager` shows as `kube-controller`).
pub fn process_matches(printed: &str, watched: &str) -> bool {
    printed == watched || (printed.len() == COMM_MAX && watched.starts_with(printed))
}

/// Applies the rule to every connection held by one of `watched`.
pub fn check_loopback(connections: &[Connection], watched: &[&str]) -> LoopbackReport {
    let mut report = LoopbackReport::default();
    for conn in connections {
        let Some(process) = conn
            .processes
            .iter()
            .find(|p| watched.iter().any(|w| process_matches(p, w)))
        else {
            continue;
        };
        report.matched += 1;
        let peer_ok = split_host_port(&conn.peer).is_some_and(|(host, _)| is_loopback_host(host));
        if !peer_ok {
            report
                .violations
                .push(format!("{process}: {} -> {}", conn.local, conn.peer));
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses_are_recognised_in_every_spelling() {
        for host in [
            "127.0.0.1",
            "127.1.2.3",
            "127.255.255.254",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:127.9.8.7",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn other_addresses_are_not_loopback() {
        for host in [
            "10.0.0.1",
            "192.168.1.10",
            "172.17.0.2",
            "8.8.8.8",
            "128.0.0.1",
            "0.0.0.0",
            "::",
            "::ffff:10.0.0.1",
            "fe80::1",
            "2001:db8::1",
            "*",
            "localhost",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn host_and_port_split_for_ipv4_ipv6_and_interfaces() {
        assert_eq!(
            split_host_port("127.0.0.1:6443"),
            Some(("127.0.0.1", "6443"))
        );
        assert_eq!(split_host_port("[::1]:443"), Some(("::1", "443")));
        assert_eq!(
            split_host_port("[::ffff:127.0.0.1]:2379"),
            Some(("::ffff:127.0.0.1", "2379"))
        );
        assert_eq!(
            split_host_port("127.0.0.53%lo:53"),
            Some(("127.0.0.53", "53"))
        );
        assert_eq!(
            split_host_port("[fe80::1%eth0]:22"),
            Some(("fe80::1", "22"))
        );
        assert_eq!(split_host_port("*:22"), Some(("*", "22")));
        assert_eq!(split_host_port("nonsense"), None);
        assert_eq!(split_host_port("[::1]"), None);
    }

    #[test]
    fn truncated_process_names_still_match() {
        assert!(process_matches(
            "kube-controller",
            "kube-controller-manager"
        ));
        assert!(process_matches(
            "metrics-server-",
            "metrics-server-upstream"
        ));
        assert!(process_matches("etcd", "etcd"));
        assert!(!process_matches("etcdctl", "etcd"));
        assert!(!process_matches("kube", "kube-apiserver"));
        assert!(!process_matches("kwokctl", "kwok"));
    }

    const SS: &str = "\
0      0      127.0.0.1:2379     127.0.0.1:50512    users:((\"etcd\",pid=100,fd=12))
0      0      127.0.0.1:50512    127.0.0.1:2379     users:((\"kube-apiserver\",pid=200,fd=9))
0      0      [::1]:6443         [::1]:40000        users:((\"kube-apiserver\",pid=200,fd=10))
0      0      [::ffff:127.0.0.1]:6443 [::ffff:127.0.0.1]:40002 users:((\"kube-controller\",pid=300,fd=7))
0      36     10.1.2.3:22        203.0.113.9:51000  users:((\"sshd\",pid=1,fd=4),(\"sshd\",pid=2,fd=4))
0      0      127.0.0.1:41000    127.0.0.1:8080
";

    #[test]
    fn ss_lines_parse_into_addresses_and_process_names() {
        let conns = parse_ss(SS);
        assert_eq!(conns.len(), 6);
        assert_eq!(conns[0].local, "127.0.0.1:2379");
        assert_eq!(conns[0].peer, "127.0.0.1:50512");
        assert_eq!(conns[0].processes, ["etcd"]);
        assert_eq!(conns[3].peer, "[::ffff:127.0.0.1]:40002");
        assert_eq!(conns[4].processes, ["sshd", "sshd"]);
        assert!(conns[5].processes.is_empty());
    }

    #[test]
    fn a_state_column_is_tolerated() {
        let line = "ESTAB 0 0 127.0.0.1:1 127.0.0.2:2 users:((\"kwok\",pid=5,fd=6))";
        let conn = parse_ss_line(line).unwrap();
        assert_eq!(
            (conn.local.as_str(), conn.peer.as_str()),
            ("127.0.0.1:1", "127.0.0.2:2")
        );
        assert_eq!(conn.processes, ["kwok"]);
    }

    #[test]
    fn loopback_only_connections_pass_and_unwatched_processes_are_ignored() {
        let report = check_loopback(&parse_ss(SS), CLUSTER_PROCESSES);
        assert_eq!(report.matched, 4);
        assert!(report.violations.is_empty(), "{:?}", report.violations);
    }

    #[test]
    fn a_watched_process_talking_off_loopback_is_a_violation() {
        let text = "\
0 0 127.0.0.1:10250 10.0.0.7:33000 users:((\"metrics-server\",pid=9,fd=3))
0 0 127.0.0.1:5000 [::ffff:192.168.0.4]:443 users:((\"metrics-server-\",pid=9,fd=4))
0 0 127.0.0.1:5001 127.0.0.1:443 users:((\"metrics-server\",pid=9,fd=5))
";
        let report = check_loopback(&parse_ss(text), CLUSTER_PROCESSES);
        assert_eq!(report.matched, 3);
        assert_eq!(
            report.violations,
            [
                "metrics-server: 127.0.0.1:10250 -> 10.0.0.7:33000",
                "metrics-server-: 127.0.0.1:5000 -> [::ffff:192.168.0.4]:443",
            ]
        );
    }

    #[test]
    fn no_watched_connection_at_all_is_reported_as_zero_matches() {
        let report = check_loopback(
            &parse_ss("0 0 1.2.3.4:1 5.6.7.8:2 users:((\"curl\",pid=1,fd=1))\n"),
            CLUSTER_PROCESSES,
        );
        assert_eq!(report, LoopbackReport::default());
    }
}
