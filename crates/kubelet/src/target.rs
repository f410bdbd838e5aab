//! Which URL a node's kubelet is scraped at (spec C.2, C.3).
//!
//! Pure functions over a [`NodeTarget`], the trimmed view of a `Node` that the cluster-index
//! layer builds. No IO, so every rule is unit-tested here.

use std::fmt;

/// The annotation that overrides the scrape path (meant for virtual kubelets).
pub const RESOURCE_METRICS_PATH_ANNOTATION: &str = "metrics.k8s.io/resource-metrics-path";

/// The path scraped when the annotation is absent or empty.
pub const DEFAULT_RESOURCE_METRICS_PATH: &str = "/metrics/resource";

/// Upstream's default `--kubelet-preferred-address-types`.
pub const DEFAULT_PREFERRED_ADDRESS_TYPES: [&str; 5] = [
    "Hostname",
    "InternalDNS",
    "InternalIP",
    "ExternalDNS",
    "ExternalIP",
];

/// Upstream's default `--kubelet-port`.
pub const DEFAULT_KUBELET_PORT: u16 = 10250;

/// What the scraper needs to know about one node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeTarget {
    /// `metadata.name`.
    pub name: String,
    /// `status.addresses` as `(type, address)`, in status order.
    pub addresses: Vec<(String, String)>,
    /// `status.daemonEndpoints.kubeletEndpoint.port`; `0` when unset.
    pub status_port: u16,
    /// The `metrics.k8s.io/resource-metrics-path` annotation, if present.
    pub metrics_path_annotation: Option<String>,
    /// Whether the `Ready` condition is `True` (only changes the failure log level).
    pub ready: bool,
}

/// How addresses and ports are chosen (`--kubelet-*` flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressConfig {
    /// `--kubelet-preferred-address-types`, highest priority first. Unknown types never match.
    pub preferred_address_types: Vec<String>,
    /// `--kubelet-port`.
    pub port: u16,
    /// `--kubelet-use-node-status-port`.
    pub use_node_status_port: bool,
}

impl Default for AddressConfig {
    fn default() -> Self {
        Self {
            preferred_address_types: DEFAULT_PREFERRED_ADDRESS_TYPES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            port: DEFAULT_KUBELET_PORT,
            use_node_status_port: false,
        }
    }
}

/// URL scheme: `https`, or `http` only with `--deprecated-kubelet-completely-insecure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// TLS to the kubelet (the default).
    Https,
    /// Plain HTTP, no credentials.
    Http,
}

impl Scheme {
    /// `"https"` or `"http"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Https => "https",
            Self::Http => "http",
        }
    }
}

/// No address of any preferred type: the node is skipped this tick.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no address matched types {}", GoList(.types))]
pub struct AddressError {
    /// The preferred types that were tried.
    pub types: Vec<String>,
}

/// Prints a slice like Go's `%v` on `[]string`: `[a b c]`.
struct GoList<'a>(&'a [String]);

impl fmt::Display for GoList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, t) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(t)?;
        }
        f.write_str("]")
    }
}

/// The first address of the first preferred type that the node lists.
pub fn node_address<'a>(
    node: &'a NodeTarget,
    cfg: &AddressConfig,
) -> Result<&'a str, AddressError> {
    cfg.preferred_address_types
        .iter()
        .find_map(|ty| {
            node.addresses
                .iter()
                .find(|(t, _)| t == ty)
                .map(|(_, addr)| addr.as_str())
        })
        .ok_or_else(|| AddressError {
            types: cfg.preferred_address_types.clone(),
        })
}

/// Where the port of a scrape came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortSource {
    /// `node.status.daemonEndpoints.kubeletEndpoint.port` (`--kubelet-use-node-status-port`).
    NodeStatus,
    /// `--kubelet-port`.
    Flag,
}

impl PortSource {
    /// `status` or `flag`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NodeStatus => "status",
            Self::Flag => "flag",
        }
    }
}

/// The address, port and path chosen for a node, and why: what an operator needs to tell a
/// blocked port from a wrong address type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeTarget {
    /// The chosen address and the `status.addresses` type it came from; `None` when no
    /// preferred type matched.
    pub address: Option<(String, String)>,
    /// The port scraped.
    pub port: u16,
    /// Where the port came from.
    pub port_source: PortSource,
    /// The path scraped (the annotation or the default).
    pub path: String,
}

impl ScrapeTarget {
    /// Describes how `node` is scraped under `cfg`.
    pub fn of(node: &NodeTarget, cfg: &AddressConfig) -> Self {
        let address = cfg.preferred_address_types.iter().find_map(|ty| {
            node.addresses
                .iter()
                .find(|(t, _)| t == ty)
                .map(|(t, a)| (t.clone(), a.clone()))
        });
        let port_source = if cfg.use_node_status_port && node.status_port != 0 {
            PortSource::NodeStatus
        } else {
            PortSource::Flag
        };
        Self {
            address,
            port: node_port(node, cfg),
            port_source,
            path: metrics_path(node).to_owned(),
        }
    }
}

/// The annotation's path, or the default when it is absent or empty.
pub fn metrics_path(node: &NodeTarget) -> &str {
    node.metrics_path_annotation
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or(DEFAULT_RESOURCE_METRICS_PATH)
}

/// The port to scrape: the node-status port only when enabled and non-zero.
pub fn node_port(node: &NodeTarget, cfg: &AddressConfig) -> u16 {
    if cfg.use_node_status_port && node.status_port != 0 {
        node.status_port
    } else {
        cfg.port
    }
}

/// Builds `<scheme>://<host>:<port><path>` for a node (Go `url.URL{...}.String()` shape).
pub fn resolve_url(
    node: &NodeTarget,
    cfg: &AddressConfig,
    scheme: Scheme,
) -> Result<String, AddressError> {
    let addr = node_address(node, cfg)?;
    let port = node_port(node, cfg);
    let path = metrics_path(node);
    let mut url = String::with_capacity(addr.len() + path.len() + 16);
    url.push_str(scheme.as_str());
    url.push_str("://");
    // net.JoinHostPort: brackets whenever the host contains a colon (IPv6).
    if addr.contains(':') {
        url.push('[');
        url.push_str(addr);
        url.push(']');
    } else {
        url.push_str(addr);
    }
    url.push(':');
    url.push_str(&port.to_string());
    // Go's URL.String adds the slash between host and a relative path.
    if !path.starts_with('/') {
        url.push('/');
    }
    escape_path_into(path, &mut url);
    Ok(url)
}

/// The path of the node's metrics through kube-apiserver's node proxy:
/// `/api/v1/nodes/<node>/proxy<metrics path>`, both parts escaped like [`resolve_url`]'s path.
pub fn node_proxy_path(node: &NodeTarget) -> String {
    let path = metrics_path(node);
    let mut out = String::with_capacity(node.name.len() + path.len() + 24);
    out.push_str("/api/v1/nodes/");
    // A node name never holds a slash, but a hostile one must not escape its segment.
    escape_into(&node.name, false, &mut out);
    out.push_str("/proxy");
    if !path.starts_with('/') {
        out.push('/');
    }
    escape_path_into(path, &mut out);
    out
}

/// Go `url.PathEscape`-style escaping for `URL.Path` (Go's `encodePath` mode): keeps
/// unreserved characters and `$&+,/:;=@`, percent-encodes everything else (including `?`).
fn escape_path_into(path: &str, out: &mut String) {
    escape_into(path, true, out);
}

/// [`escape_path_into`], optionally escaping `/` too (for a single segment).
fn escape_into(path: &str, keep_slash: bool, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in path.as_bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'_' | b'.' | b'~' | b'$' | b'&' | b'+' | b',' | b':' | b';' | b'=' | b'@'
            )
            || (keep_slash && b == b'/');
        if keep {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_proxy_path_keeps_the_annotation_and_escapes() {
        let mut n = node(&[("InternalIP", "10.0.0.1")]);
        assert_eq!(
            node_proxy_path(&n),
            "/api/v1/nodes/node1/proxy/metrics/resource"
        );
        n.metrics_path_annotation = Some("/metrics/nodes/node1/metrics/resource".into());
        assert_eq!(
            node_proxy_path(&n),
            "/api/v1/nodes/node1/proxy/metrics/nodes/node1/metrics/resource"
        );
        n.name = "a/b c".into();
        n.metrics_path_annotation = Some("x?y".into());
        assert_eq!(node_proxy_path(&n), "/api/v1/nodes/a%2Fb%20c/proxy/x%3Fy");
    }

    #[test]
    fn the_scrape_target_says_which_address_type_and_port_source_won() {
        let mut n = node(&[("InternalIP", "10.0.0.1"), ("Hostname", "n1")]);
        n.status_port = 10255;
        let mut cfg = types(&["InternalIP", "Hostname"]);
        let t = ScrapeTarget::of(&n, &cfg);
        assert_eq!(t.address, Some(("InternalIP".into(), "10.0.0.1".into())));
        assert_eq!((t.port, t.port_source), (10250, PortSource::Flag));
        cfg.use_node_status_port = true;
        let t = ScrapeTarget::of(&n, &cfg);
        assert_eq!((t.port, t.port_source), (10255, PortSource::NodeStatus));
        assert_eq!(ScrapeTarget::of(&n, &types(&["ExternalIP"])).address, None);
    }

    fn node(addresses: &[(&str, &str)]) -> NodeTarget {
        NodeTarget {
            name: "node1".into(),
            addresses: addresses
                .iter()
                .map(|(t, a)| ((*t).to_owned(), (*a).to_owned()))
                .collect(),
            ready: true,
            ..NodeTarget::default()
        }
    }

    fn types(t: &[&str]) -> AddressConfig {
        AddressConfig {
            preferred_address_types: t.iter().map(|s| (*s).to_owned()).collect(),
            ..AddressConfig::default()
        }
    }

    #[test]
    fn the_first_preferred_type_wins_over_status_order() {
        let n = node(&[
            ("InternalIP", "10.0.0.1"),
            ("Hostname", "node1"),
            ("ExternalIP", "1.2.3.4"),
        ]);
        assert_eq!(node_address(&n, &AddressConfig::default()), Ok("node1"));
        assert_eq!(
            node_address(&n, &types(&["ExternalIP", "InternalIP"])),
            Ok("1.2.3.4")
        );
    }

    #[test]
    fn the_first_address_of_a_type_wins() {
        let n = node(&[("InternalIP", "10.0.0.1"), ("InternalIP", "10.0.0.2")]);
        assert_eq!(node_address(&n, &types(&["InternalIP"])), Ok("10.0.0.1"));
    }

    #[test]
    fn no_matching_type_is_an_error_listing_the_types_like_go() {
        let n = node(&[("InternalIP", "10.0.0.1")]);
        let err = node_address(&n, &types(&["Hostname", "ExternalIP", "Bogus"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no address matched types [Hostname ExternalIP Bogus]"
        );
        assert!(resolve_url(&node(&[]), &AddressConfig::default(), Scheme::Https).is_err());
    }

    #[test]
    fn the_url_uses_the_kubelet_port_and_resource_path_by_default() {
        let n = node(&[("InternalIP", "10.0.0.1")]);
        let url = resolve_url(&n, &types(&["InternalIP"]), Scheme::Https).unwrap();
        assert_eq!(url, "https://10.0.0.1:10250/metrics/resource");
    }

    #[test]
    fn the_node_status_port_is_used_only_when_enabled_and_non_zero() {
        let mut n = node(&[("InternalIP", "10.0.0.1")]);
        n.status_port = 11250;
        let mut cfg = types(&["InternalIP"]);
        assert_eq!(
            resolve_url(&n, &cfg, Scheme::Https).unwrap(),
            "https://10.0.0.1:10250/metrics/resource"
        );
        cfg.use_node_status_port = true;
        assert_eq!(
            resolve_url(&n, &cfg, Scheme::Https).unwrap(),
            "https://10.0.0.1:11250/metrics/resource"
        );
        n.status_port = 0;
        assert_eq!(
            resolve_url(&n, &cfg, Scheme::Https).unwrap(),
            "https://10.0.0.1:10250/metrics/resource"
        );
    }

    #[test]
    fn the_path_annotation_overrides_the_path_unless_empty() {
        let mut n = node(&[("InternalIP", "10.0.0.1")]);
        let cfg = types(&["InternalIP"]);
        n.metrics_path_annotation = Some("/custom/metrics".into());
        assert_eq!(
            resolve_url(&n, &cfg, Scheme::Https).unwrap(),
            "https://10.0.0.1:10250/custom/metrics"
        );
        n.metrics_path_annotation = Some(String::new());
        assert_eq!(
            resolve_url(&n, &cfg, Scheme::Https).unwrap(),
            "https://10.0.0.1:10250/metrics/resource"
        );
        n.metrics_path_annotation = Some("relative path?x".into());
        assert_eq!(
            resolve_url(&n, &cfg, Scheme::Https).unwrap(),
            "https://10.0.0.1:10250/relative%20path%3Fx"
        );
    }

    #[test]
    fn ipv6_hosts_are_bracketed_and_http_is_used_only_when_asked() {
        let n = node(&[("InternalIP", "fd00::1")]);
        let cfg = types(&["InternalIP"]);
        assert_eq!(
            resolve_url(&n, &cfg, Scheme::Https).unwrap(),
            "https://[fd00::1]:10250/metrics/resource"
        );
        assert_eq!(
            resolve_url(&n, &cfg, Scheme::Http).unwrap(),
            "http://[fd00::1]:10250/metrics/resource"
        );
    }
}
