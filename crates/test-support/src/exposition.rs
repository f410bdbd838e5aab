//! Renders kubelet-style `/metrics/resource` bodies (Prometheus text format 0.0.4).
//!
//! The output mimics `kubelet/metrics/collectors/resource_metrics.go` as served through the
//! Go registry: families sorted by name, `[STABLE]` HELP prefixes, series sorted by label
//! values, Go `%g`-style floats and millisecond timestamps. It also emits the families the
//! scraper must ignore (`pod_*`, swap, `resource_scrape_error`, `scrape_error`).

use std::fmt::Write as _;

/// The abridged kubelet exposition from the upstream spec (section C.6), byte for byte.
pub const UPSTREAM_FIXTURE: &str = include_str!("upstream_fixture.txt");

/// Node-level values.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSample {
    /// Cumulative CPU core-seconds.
    pub cpu_seconds: f64,
    /// Working set in bytes.
    pub memory_bytes: f64,
    /// Explicit sample timestamp in ms since the epoch; `None` omits it.
    pub timestamp_ms: Option<i64>,
}

/// One container of a pod.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSample {
    /// Container name (`container` label).
    pub name: String,
    /// Cumulative CPU core-seconds.
    pub cpu_seconds: f64,
    /// Working set in bytes.
    pub memory_bytes: f64,
    /// Start time in seconds since the epoch; `0` omits the series, like the kubelet.
    pub start_time_seconds: f64,
    /// Explicit sample timestamp in ms since the epoch; `None` omits it.
    pub timestamp_ms: Option<i64>,
}

/// A pod and its containers.
#[derive(Debug, Clone, PartialEq)]
pub struct PodSample {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Containers reported by the kubelet.
    pub containers: Vec<ContainerSample>,
}

impl NodeSample {
    /// A node with the given values, stamped at `timestamp_ms`.
    pub fn new(cpu_seconds: f64, memory_bytes: f64, timestamp_ms: i64) -> Self {
        Self {
            cpu_seconds,
            memory_bytes,
            timestamp_ms: Some(timestamp_ms),
        }
    }
}

impl PodSample {
    /// A pod with one container named like the pod, stamped at `timestamp_ms`.
    pub fn single(
        namespace: &str,
        name: &str,
        cpu_seconds: f64,
        memory_bytes: f64,
        timestamp_ms: i64,
    ) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            containers: vec![ContainerSample {
                name: name.to_owned(),
                cpu_seconds,
                memory_bytes,
                start_time_seconds: (timestamp_ms / 1000 - 3600) as f64,
                timestamp_ms: Some(timestamp_ms),
            }],
        }
    }
}

/// Renders a full `/metrics/resource` body for one node and its pods.
pub fn render_resource_metrics(node: &NodeSample, pods: &[PodSample]) -> String {
    // (container, namespace, pod) is the Go registry's sort key: label values in name order.
    let mut containers: Vec<(&str, &str, &str, &ContainerSample)> = pods
        .iter()
        .flat_map(|p| {
            p.containers
                .iter()
                .map(move |c| (c.name.as_str(), p.namespace.as_str(), p.name.as_str(), c))
        })
        .collect();
    containers.sort_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
    let mut sorted_pods: Vec<&PodSample> = pods.iter().collect();
    sorted_pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));

    let mut out = String::with_capacity(512 + 400 * containers.len());
    let container_family = |out: &mut String,
                            name: &str,
                            help: &str,
                            kind: &str,
                            value: &dyn Fn(&ContainerSample) -> Option<f64>,
                            with_ts: bool| {
        header(out, name, help, kind);
        for (cname, ns, pod, c) in &containers {
            if let Some(v) = value(c) {
                let labels = format!("container=\"{cname}\",namespace=\"{ns}\",pod=\"{pod}\"");
                series(
                    out,
                    name,
                    &labels,
                    v,
                    if with_ts { c.timestamp_ms } else { None },
                );
            }
        }
    };
    container_family(
        &mut out,
        "container_cpu_usage_seconds_total",
        "Cumulative cpu time consumed by the container in core-seconds",
        "counter",
        &|c| Some(c.cpu_seconds),
        true,
    );
    container_family(
        &mut out,
        "container_memory_working_set_bytes",
        "Current working set of the container in bytes",
        "gauge",
        &|c| Some(c.memory_bytes),
        true,
    );
    container_family(
        &mut out,
        "container_start_time_seconds",
        "Start time of the container since unix epoch in seconds",
        "gauge",
        &|c| (c.start_time_seconds > 0.0).then_some(c.start_time_seconds),
        false,
    );
    container_family(
        &mut out,
        "container_swap_usage_bytes",
        "Current amount of the container swap usage in bytes. Reported only on non-windows systems",
        "gauge",
        &|_| Some(0.0),
        true,
    );

    header(
        &mut out,
        "node_cpu_usage_seconds_total",
        "Cumulative cpu time consumed by the node in core-seconds",
        "counter",
    );
    series(
        &mut out,
        "node_cpu_usage_seconds_total",
        "",
        node.cpu_seconds,
        node.timestamp_ms,
    );
    header(
        &mut out,
        "node_memory_working_set_bytes",
        "Current working set of the node in bytes",
        "gauge",
    );
    series(
        &mut out,
        "node_memory_working_set_bytes",
        "",
        node.memory_bytes,
        node.timestamp_ms,
    );
    header(
        &mut out,
        "node_swap_usage_bytes",
        "Current swap usage of the node in bytes. Reported only on non-windows systems",
        "gauge",
    );
    series(
        &mut out,
        "node_swap_usage_bytes",
        "",
        0.0,
        node.timestamp_ms,
    );

    // Pod totals exist in real output but the scraper must ignore them (it sums containers).
    let pod_family = |out: &mut String,
                      name: &str,
                      help: &str,
                      kind: &str,
                      f: &dyn Fn(&ContainerSample) -> f64| {
        header(out, name, help, kind);
        for p in &sorted_pods {
            let total: f64 = p.containers.iter().map(f).sum();
            let ts = p.containers.iter().filter_map(|c| c.timestamp_ms).max();
            let labels = format!("namespace=\"{}\",pod=\"{}\"", p.namespace, p.name);
            series(out, name, &labels, total, ts);
        }
    };
    pod_family(
        &mut out,
        "pod_cpu_usage_seconds_total",
        "Cumulative cpu time consumed by the pod in core-seconds",
        "counter",
        &|c| c.cpu_seconds,
    );
    pod_family(
        &mut out,
        "pod_memory_working_set_bytes",
        "Current working set of the pod in bytes",
        "gauge",
        &|c| c.memory_bytes,
    );

    header(
        &mut out,
        "resource_scrape_error",
        "1 if there was an error while getting container metrics, 0 otherwise",
        "gauge",
    );
    series(&mut out, "resource_scrape_error", "", 0.0, None);
    // The deprecated family keeps its ALPHA marker in real kubelets.
    let _ = writeln!(
        out,
        "# HELP scrape_error [ALPHA] 1 if there was an error while getting container metrics, 0 otherwise"
    );
    let _ = writeln!(out, "# TYPE scrape_error gauge");
    series(&mut out, "scrape_error", "", 0.0, None);
    out
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} [STABLE] {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn series(out: &mut String, name: &str, labels: &str, value: f64, ts_ms: Option<i64>) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        out.push_str(labels);
        out.push('}');
    }
    out.push(' ');
    out.push_str(&format_go_float(value));
    if let Some(ts) = ts_ms {
        let _ = write!(out, " {ts}");
    }
    out.push('\n');
}

/// Formats like Go's `strconv.FormatFloat(v, 'g', -1, 64)`, which Prometheus' text encoder
/// uses: shortest round-trip digits, exponent form when exp < -4 or exp >= 6 (`1.253376e+07`).
pub fn format_go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_owned();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if v != 0.0 && !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_float_formatting_matches_strconv_g() {
        let cases = [
            (1.253376e7, "1.253376e+07"),
            (1.633252712e9, "1.633252712e+09"),
            (357.35491, "357.35491"),
            (4.710169, "4.710169"),
            (0.0, "0"),
            (100000.0, "100000"),
            (1e6, "1e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e-7, "-2.5e-07"),
            (1e100, "1e+100"),
            (f64::INFINITY, "+Inf"),
            (f64::NAN, "NaN"),
        ];
        for (v, want) in cases {
            assert_eq!(format_go_float(v), want, "{v}");
        }
    }

    #[test]
    fn rendered_body_has_the_kubelet_shape() {
        let node = NodeSample::new(357.35491, 1.616273408e9, 1_633_253_809_720);
        let pods = [PodSample::single(
            "kube-system",
            "coredns",
            4.710169,
            1.253376e7,
            1_633_253_812_125,
        )];
        let body = render_resource_metrics(&node, &pods);
        assert!(body.contains(
            "container_cpu_usage_seconds_total{container=\"coredns\",namespace=\"kube-system\",pod=\"coredns\"} 4.710169 1633253812125\n"
        ));
        assert!(body.contains("node_memory_working_set_bytes 1.616273408e+09 1633253809720\n"));
        assert!(body.contains("# HELP node_cpu_usage_seconds_total [STABLE] "));
        assert!(body.contains(
            "pod_cpu_usage_seconds_total{namespace=\"kube-system\",pod=\"coredns\"} 4.710169"
        ));
        assert!(body.ends_with("scrape_error 0\n"));
        // Families appear sorted by name, like the Go registry emits them.
        let families: Vec<&str> = body
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        let mut sorted = families.clone();
        sorted.sort_unstable();
        assert_eq!(families, sorted);
    }

    #[test]
    fn start_time_is_omitted_when_zero() {
        let mut pod = PodSample::single("ns", "p", 1.0, 2.0, 1000);
        pod.containers[0].start_time_seconds = 0.0;
        let body = render_resource_metrics(&NodeSample::new(1.0, 1.0, 1000), &[pod]);
        assert!(!body.contains("container_start_time_seconds{"));
    }
}
