//! Helpers shared by the integration tests: a kubelet-style exposition
//! renderer and a tiny deterministic PRNG.

#![allow(dead_code, unreachable_pub)]

use std::fmt::Write as _;

/// xorshift64*: deterministic, dependency-free randomness for generators.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Escapes a label value the way the Prometheus text format requires.
pub fn escape_label_value(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// Renders a float in one of the spellings exporters use.
pub fn render_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{v:e}")
    }
}

/// One pod of a synthetic kubelet: `(namespace, pod, [containers])`.
#[derive(Clone, Debug)]
pub struct FakePod {
    pub namespace: String,
    pub name: String,
    pub containers: Vec<FakeContainer>,
}

#[derive(Clone, Debug)]
pub struct FakeContainer {
    pub name: String,
    pub cpu_seconds: f64,
    pub memory_bytes: f64,
    pub start_seconds: f64,
    pub timestamp_ms: i64,
}

/// Renders a `/metrics/resource` body shaped like kubelet v1.36 output:
/// HELP/TYPE headers, families sorted by name, series sorted by labels,
/// container CPU/memory/start, node CPU/memory, pod totals, swap and the
/// scrape-error gauges.
pub fn render_kubelet(node_cpu: f64, node_mem: f64, node_ts_ms: i64, pods: &[FakePod]) -> String {
    let mut series: Vec<(&FakePod, &FakeContainer)> = pods
        .iter()
        .flat_map(|p| p.containers.iter().map(move |c| (p, c)))
        .collect();
    series.sort_by(|a, b| {
        (&a.1.name, &a.0.namespace, &a.0.name).cmp(&(&b.1.name, &b.0.namespace, &b.0.name))
    });
    let labels = |p: &FakePod, c: &FakeContainer| {
        format!(
            r#"container="{}",namespace="{}",pod="{}""#,
            escape_label_value(&c.name),
            escape_label_value(&p.namespace),
            escape_label_value(&p.name)
        )
    };
    let mut out = String::new();
    let header = |out: &mut String, name: &str, help: &str, kind: &str| {
        writeln!(out, "# HELP {name} [STABLE] {help}").unwrap();
        writeln!(out, "# TYPE {name} {kind}").unwrap();
    };
    header(
        &mut out,
        "container_cpu_usage_seconds_total",
        "Cumulative cpu time consumed by the container in core-seconds",
        "counter",
    );
    for (p, c) in &series {
        let l = labels(p, c);
        writeln!(
            out,
            "container_cpu_usage_seconds_total{{{l}}} {} {}",
            render_float(c.cpu_seconds),
            c.timestamp_ms
        )
        .unwrap();
    }
    header(
        &mut out,
        "container_memory_working_set_bytes",
        "Current working set of the container in bytes",
        "gauge",
    );
    for (p, c) in &series {
        let l = labels(p, c);
        writeln!(
            out,
            "container_memory_working_set_bytes{{{l}}} {} {}",
            render_float(c.memory_bytes),
            c.timestamp_ms
        )
        .unwrap();
    }
    header(
        &mut out,
        "container_start_time_seconds",
        "Start time of the container since unix epoch in seconds",
        "gauge",
    );
    for (p, c) in &series {
        let l = labels(p, c);
        writeln!(
            out,
            "container_start_time_seconds{{{l}}} {}",
            render_float(c.start_seconds)
        )
        .unwrap();
    }
    header(
        &mut out,
        "container_swap_usage_bytes",
        "Current amount of the container swap usage in bytes. Reported only on non-windows systems",
        "gauge",
    );
    for (p, c) in &series {
        let l = labels(p, c);
        writeln!(
            out,
            "container_swap_usage_bytes{{{l}}} 0 {}",
            c.timestamp_ms
        )
        .unwrap();
    }
    header(
        &mut out,
        "node_cpu_usage_seconds_total",
        "Cumulative cpu time consumed by the node in core-seconds",
        "counter",
    );
    writeln!(
        out,
        "node_cpu_usage_seconds_total {} {node_ts_ms}",
        render_float(node_cpu)
    )
    .unwrap();
    header(
        &mut out,
        "node_memory_working_set_bytes",
        "Current working set of the node in bytes",
        "gauge",
    );
    writeln!(
        out,
        "node_memory_working_set_bytes {} {node_ts_ms}",
        render_float(node_mem)
    )
    .unwrap();
    header(
        &mut out,
        "node_swap_usage_bytes",
        "Current swap usage of the node in bytes. Reported only on non-windows systems",
        "gauge",
    );
    writeln!(out, "node_swap_usage_bytes 0 {node_ts_ms}").unwrap();
    header(
        &mut out,
        "pod_cpu_usage_seconds_total",
        "Cumulative cpu time consumed by the pod in core-seconds",
        "counter",
    );
    for p in pods {
        let total: f64 = p.containers.iter().map(|c| c.cpu_seconds).sum();
        writeln!(
            out,
            r#"pod_cpu_usage_seconds_total{{namespace="{}",pod="{}"}} {} {node_ts_ms}"#,
            escape_label_value(&p.namespace),
            escape_label_value(&p.name),
            render_float(total)
        )
        .unwrap();
    }
    header(
        &mut out,
        "pod_memory_working_set_bytes",
        "Current working set of the pod in bytes",
        "gauge",
    );
    for p in pods {
        let total: f64 = p.containers.iter().map(|c| c.memory_bytes).sum();
        writeln!(
            out,
            r#"pod_memory_working_set_bytes{{namespace="{}",pod="{}"}} {} {node_ts_ms}"#,
            escape_label_value(&p.namespace),
            escape_label_value(&p.name),
            render_float(total)
        )
        .unwrap();
    }
    header(
        &mut out,
        "resource_scrape_error",
        "1 if there was an error while getting container metrics, 0 otherwise",
        "gauge",
    );
    out.push_str("resource_scrape_error 0\n");
    out.push_str("# HELP scrape_error [ALPHA] 1 if there was an error while getting container metrics, 0 otherwise\n# TYPE scrape_error gauge\nscrape_error 0\n");
    out
}

/// A realistic node: `n` pods across a few namespaces, 1-3 containers each,
/// all values non-zero.
pub fn realistic_pods(rng: &mut Rng, n: usize, now_ms: i64) -> Vec<FakePod> {
    const NAMESPACES: &[&str] = &[
        "default",
        "kube-system",
        "monitoring",
        "payments",
        "ingress-nginx",
    ];
    const APPS: &[&str] = &[
        "api",
        "web",
        "worker",
        "coredns",
        "kube-proxy",
        "fluent-bit",
        "redis",
        "postgres",
        "envoy",
        "node-exporter",
        "cert-manager",
        "metrics-server",
    ];
    const SIDECARS: &[&str] = &["istio-proxy", "log-shipper", "config-reloader"];
    (0..n)
        .map(|i| {
            let app = rng.pick(APPS);
            let hash = format!("{:010x}", rng.next_u64() & 0xff_ffff_ffff);
            let suffix = format!("{:05x}", rng.next_u64() & 0xf_ffff);
            let containers = 1 + rng.below(3) as usize;
            FakePod {
                namespace: (*rng.pick(NAMESPACES)).to_owned(),
                name: format!("{app}-{}-{}-{i}", &hash[..8], &suffix),
                containers: (0..containers)
                    .map(|c| FakeContainer {
                        name: if c == 0 {
                            (*app).to_owned()
                        } else {
                            (*SIDECARS[c - 1]).to_owned()
                        },
                        cpu_seconds: 0.001 + rng.below(5_000_000) as f64 / 1000.0,
                        memory_bytes: (1 + rng.below(2_000_000)) as f64 * 4096.0,
                        start_seconds: (now_ms / 1000 - 60 - rng.below(86_400 * 30) as i64) as f64,
                        timestamp_ms: now_ms - rng.below(15_000) as i64,
                    })
                    .collect(),
            }
        })
        .collect()
}

/// Wall time of one call of `f`, in nanoseconds.
fn time_ns(f: &mut impl FnMut()) -> u128 {
    let start = std::time::Instant::now();
    f();
    start.elapsed().as_nanos()
}

/// Asserts that one call of `large` costs at most `slack` times what
/// `ratio` calls of `small` cost together, where `large` is an input about
/// `ratio` times the size of `small`'s. Linear work gives about 1x; a
/// quadratic path gives about `ratio` x. Medians over several interleaved
/// runs, so a busy machine slows both sides alike. No absolute times.
pub fn assert_cost_scales_linearly(
    what: &str,
    ratio: usize,
    slack: u128,
    mut small: impl FnMut(),
    mut large: impl FnMut(),
) {
    const RUNS: usize = 7;
    let (mut small_ns, mut large_ns) = (Vec::new(), Vec::new());
    // One warm-up of each, then interleaved measurements.
    small();
    large();
    for _ in 0..RUNS {
        small_ns.push(time_ns(&mut || {
            for _ in 0..ratio {
                small();
            }
        }));
        large_ns.push(time_ns(&mut large));
    }
    small_ns.sort_unstable();
    large_ns.sort_unstable();
    let (s, l) = (small_ns[RUNS / 2].max(1), large_ns[RUNS / 2]);
    assert!(
        l <= s * slack,
        "{what}: one {ratio}x input took {l} ns, {ratio} small inputs took {s} ns \
         (allowed {slack}x)"
    );
}
