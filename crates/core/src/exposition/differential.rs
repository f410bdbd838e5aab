//! Differential test: the decoder against [`super::oracle`] (the decoder
//! before the fast rewrite) on generated, kubelet-rendered and mutated bodies.
//! Outcomes must be equal in every field: scrape, line errors, incomplete
//! pods, rejected values.

use metrics_server_test_support::{
    ContainerSample, NodeSample, PodSample, format_go_float, render_resource_metrics,
};

use super::{ParseOutcome, oracle, parse_exposition, parse_go_float};

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const FAMILIES: &[&str] = &[
    "container_cpu_usage_seconds_total",
    "container_memory_working_set_bytes",
    "container_start_time_seconds",
    "node_cpu_usage_seconds_total",
    "node_memory_working_set_bytes",
];

/// Names that must be skipped, some of them one byte away from ours.
const OTHER_NAMES: &[&str] = &[
    "container_swap_usage_bytes",
    "pod_cpu_usage_seconds_total",
    "pod_memory_working_set_bytes",
    "node_swap_usage_bytes",
    "resource_scrape_error",
    "scrape_error",
    "container_cpu_usage_seconds_totals",
    "container_cpu_usage_seconds_tota",
    "container_memory_working_set_bytes:x",
    "node_cpu_usage_seconds_total_",
    "node_memory_working_set_byte",
    "node_",
    "container_",
    "container",
    "Container_cpu_usage_seconds_total",
    "_node_cpu_usage_seconds_total",
    ":container_start_time_seconds",
    "n",
];

const LABEL_NAMES: &[&str] = &[
    "namespace",
    "pod",
    "container",
    "namespace",
    "pod",
    "container",
    "image",
    "_x",
    "pod_",
    "Pod",
    "namespac",
    "1bad",
    "",
];

/// Label values: a small pool, so series collide and repeat.
const LABEL_VALUES: &[&[u8]] = &[
    b"",
    b"a",
    b"b",
    b"kube-system",
    b"coredns-558bd4d5db-4dpjz",
    b"ns-1",
    b"app",
    br#"a\"b"#,
    br"a\\b",
    br"a\nb",
    br"a\tb",
    br"\\",
    b"\\",
    br"x\",
    b"\xc2\xb5s",
    b"\xff",
    b"a\xc2",
    b"}",
    b",",
    b"=",
    b"# not a comment",
    b" spaced ",
    b"\t",
];

/// Sample values as exporters spell them, and near misses.
const VALUES: &[&str] = &[
    "0",
    "1",
    "-0",
    "+0",
    "-1",
    "1.5",
    "4.710169",
    "1.253376e+07",
    "1.633252712e+09",
    "1.616273408e+09",
    "357.35491",
    "1e22",
    "1e23",
    "1e-22",
    "1e-23",
    "9007199254740992",
    "9007199254740993",
    "9007199254740993e-3",
    "18446744073.709551615",
    "18446744073.709551616",
    "18446744073709551615e-9",
    "9223372036854775807",
    "9223372036854775808",
    "9.223372036854775807e18",
    "1e308",
    "1.7976931348623157e308",
    "1.7976931348623159e308",
    "1e309",
    "1e-400",
    "4.9e-324",
    "2.2250738585072014e-308",
    "0.1",
    "0.30000000000000004",
    "123456789012345678901234567890",
    "0000000000000000000000000000012.5",
    "1.0000000000000000000000000001",
    "NaN",
    "nan",
    "NAN",
    "+NaN",
    "-NaN",
    "+Inf",
    "-Inf",
    "inf",
    "Infinity",
    "-infinity",
    "infin",
    "0x10",
    "0x1p3",
    "1_0",
    "1p3",
    ".5",
    "5.",
    ".",
    "e5",
    "1e",
    "1e+",
    "1e-",
    "1E5",
    "1e+0000000000000000000000000000000000000005",
    "1e99999999999999999999",
    "-",
    "+",
    "++1",
    "1.2.3",
    "1e5.5",
    "1\r",
    "1,5",
    "١",
    "",
];

const TIMESTAMPS: &[&str] = &[
    "0",
    "1633253812125",
    "-1",
    "-62135596800000",
    "9223372036854775807",
    "9223372036854775808",
    "99999999999999999999999",
    "00001",
    "12a",
    "1.5",
    "+1",
    "1e3",
];

const SPACES: &[&str] = &["", " ", " ", " ", "\t", "  ", " \t "];

fn push_label_set(rng: &mut Rng, out: &mut Vec<u8>) {
    out.push(b'{');
    for k in 0..rng.below(5) {
        if k > 0 {
            out.extend_from_slice(if rng.chance(90) { b"," } else { b" " });
        }
        out.extend_from_slice(rng.pick(SPACES).as_bytes());
        out.extend_from_slice(rng.pick(LABEL_NAMES).as_bytes());
        out.extend_from_slice(rng.pick(SPACES).as_bytes());
        if rng.chance(97) {
            out.push(b'=');
        }
        out.extend_from_slice(rng.pick(SPACES).as_bytes());
        if rng.chance(97) {
            out.push(b'"');
        }
        if rng.chance(3) {
            // Huge values, escaped or not.
            let unit: &[u8] = rng.pick::<&[u8]>(LABEL_VALUES);
            for _ in 0..rng.below(5000) {
                out.extend_from_slice(unit);
            }
        } else {
            out.extend_from_slice(rng.pick::<&[u8]>(LABEL_VALUES));
        }
        if rng.chance(97) {
            out.push(b'"');
        }
        out.extend_from_slice(rng.pick(SPACES).as_bytes());
    }
    if rng.chance(10) {
        out.push(b',');
    }
    if rng.chance(95) {
        out.push(b'}');
    }
}

fn push_value(rng: &mut Rng, out: &mut Vec<u8>) {
    match rng.below(10) {
        0 => {
            let v = f64::from_bits(rng.next_u64());
            out.extend_from_slice(format!("{v:e}").as_bytes());
        }
        1 => {
            let v = rng.next_u64() as f64 / (1u64 << rng.below(64)) as f64;
            out.extend_from_slice(format_go_float(v).as_bytes());
        }
        2 => {
            let digits = rng.next_u64() >> rng.below(64);
            let exp = rng.below(700) as i64 - 350;
            let text = match rng.below(3) {
                0 => format!("{digits}e{exp}"),
                1 => format!("{digits}.{}e{exp:+}", rng.below(1000)),
                _ => format!("-{digits}E{exp}"),
            };
            out.extend_from_slice(text.as_bytes());
        }
        _ => out.extend_from_slice(rng.pick(VALUES).as_bytes()),
    }
}

/// One line of any kind (without its line ending).
fn push_line(rng: &mut Rng, out: &mut Vec<u8>) {
    if rng.chance(5) {
        out.extend_from_slice(rng.pick(SPACES).as_bytes());
    }
    match rng.below(20) {
        0 => out.extend_from_slice(b"# HELP container_cpu_usage_seconds_total [STABLE] x"),
        1 => out.extend_from_slice(b"# TYPE node_cpu_usage_seconds_total counter"),
        2 => {}
        3 => out.extend_from_slice(br#"{"container_cpu_usage_seconds_total",pod="p"} 1"#),
        4 => out.extend_from_slice(b"\xff\x00 1"),
        _ => {
            let name = if rng.chance(75) {
                rng.pick(FAMILIES)
            } else {
                rng.pick(OTHER_NAMES)
            };
            out.extend_from_slice(name.as_bytes());
            if rng.chance(5) {
                out.extend_from_slice(rng.pick(SPACES).as_bytes());
            }
            if rng.chance(85) {
                push_label_set(rng, out);
            }
            out.extend_from_slice(rng.pick(SPACES).as_bytes());
            if rng.chance(97) {
                push_value(rng, out);
            }
            if rng.chance(70) {
                out.extend_from_slice(rng.pick(&SPACES[1..]).as_bytes());
                out.extend_from_slice(rng.pick(TIMESTAMPS).as_bytes());
            }
            if rng.chance(10) {
                out.extend_from_slice(
                    rng.pick(&["", " ", "\t", "\r", " x", " 1", "{}"])
                        .as_bytes(),
                );
            }
        }
    }
}

/// A well-formed series line of ours, over a small pool of names so that
/// series repeat and pods get complete.
fn push_clean_line(rng: &mut Rng, out: &mut Vec<u8>) {
    let name = rng.pick(FAMILIES);
    out.extend_from_slice(name.as_bytes());
    if name.starts_with("container") {
        let [c, n, p] = [0; 3].map(|_| *rng.pick(&["a", "b", "app", r"x\y"]));
        out.extend_from_slice(
            format!(r#"{{container="{c}",namespace="{n}",pod="{p}"}}"#).as_bytes(),
        );
    }
    out.push(b' ');
    let v = (1 + rng.below(1 << 40)) as f64 / (1u64 << rng.below(20)) as f64;
    out.extend_from_slice(format_go_float(v).as_bytes());
    if rng.chance(70) {
        out.extend_from_slice(format!(" {}", rng.next_u64() >> 20).as_bytes());
    }
}

fn generated_body(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    let crlf = rng.chance(10);
    let clean = rng.chance(90);
    for _ in 0..rng.below(40) {
        if clean && rng.chance(90) {
            push_clean_line(rng, &mut out);
        } else {
            push_line(rng, &mut out);
        }
        out.extend_from_slice(if crlf || rng.chance(2) {
            b"\r\n"
        } else {
            b"\n"
        });
    }
    if rng.chance(50) {
        push_line(rng, &mut out);
    }
    out
}

/// A kubelet body as rendered for the benchmarks and the fleet.
fn kubelet_body(rng: &mut Rng) -> Vec<u8> {
    let ts = 1_700_000_000_000 + rng.below(1 << 30) as i64;
    let names = ["app", "istio-proxy", "a\"b", "µ", "x\\y"];
    let pods: Vec<PodSample> = (0..rng.below(30))
        .map(|i| PodSample {
            namespace: format!("ns-{}", rng.below(4)),
            name: format!("deploy-{}-{:x}", i % 7, rng.next_u64() & 0xffff),
            containers: (0..1 + rng.below(3))
                .map(|_| ContainerSample {
                    name: (*rng.pick(&names)).to_owned(),
                    cpu_seconds: rng.below(1 << 40) as f64 / 1e6,
                    memory_bytes: (rng.below(1 << 20) * 4096) as f64,
                    start_time_seconds: if rng.chance(90) {
                        (ts / 1000 - rng.below(1 << 20) as i64) as f64
                    } else {
                        0.0
                    },
                    timestamp_ms: rng.chance(80).then(|| ts - rng.below(15_000) as i64),
                })
                .collect(),
        })
        .collect();
    let node = NodeSample {
        cpu_seconds: rng.below(1 << 40) as f64 / 7.0,
        memory_bytes: (rng.below(1 << 30) * 4096) as f64,
        timestamp_ms: rng.chance(80).then_some(ts),
    };
    render_resource_metrics(&node, &pods).into_bytes()
}

fn mutate(rng: &mut Rng, v: &mut Vec<u8>, other: &[u8]) {
    const INTERESTING: &[u8] = b"{}\"\\\n,=#-+.eE09 \t\r\0_:xX\xff\xc2";
    for _ in 0..1 + rng.below(4) {
        let len = v.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(len + 1);
                v.insert(i, *rng.pick(INTERESTING));
            }
            2 if len > 0 => {
                let i = rng.below(len);
                let j = (i + 1 + rng.below(16)).min(len);
                v.drain(i..j);
            }
            3 if len > 0 => {
                // Duplicate a chunk (often whole series: duplicates and reordering).
                let i = rng.below(len);
                let j = (i + 1 + rng.below(400)).min(len);
                let chunk = v[i..j].to_vec();
                let at = rng.below(v.len() + 1);
                v.splice(at..at, chunk);
            }
            4 if len > 0 => v.truncate(rng.below(len)),
            5 if !other.is_empty() => {
                let cut = rng.below(len + 1);
                let from = rng.below(other.len());
                v.truncate(cut);
                v.extend_from_slice(&other[from..]);
            }
            6 => {
                // Reorder lines: breaks the kubelet's series order.
                let mut lines: Vec<&[u8]> = v.split(|&c| c == b'\n').collect();
                for k in (1..lines.len()).rev() {
                    if rng.chance(30) {
                        lines.swap(k, rng.below(k + 1));
                    }
                }
                *v = lines.join(&b'\n');
            }
            7 => {
                let crlf: Vec<u8> = v
                    .iter()
                    .flat_map(|&c| {
                        if c == b'\n' {
                            vec![b'\r', b'\n']
                        } else {
                            vec![c]
                        }
                    })
                    .collect();
                *v = crlf;
            }
            _ => {
                let i = rng.below(len + 1);
                let piece = rng.pick(&["-1", " ", "\t", "e+07", "\\", "NaN", "9999999999"]);
                v.splice(i..i, piece.bytes());
            }
        }
    }
}

fn request_time(rng: &mut Rng) -> i64 {
    let random = rng.next_u64() as i64;
    *rng.pick(&[
        0,
        1_700_000_000_123_456_789,
        -1,
        -1_500_000,
        i64::MIN,
        i64::MAX,
        random,
    ])
}

fn assert_same(body: &[u8], request_ns: i64) -> ParseOutcome {
    let new = parse_exposition(body, request_ns);
    let old = oracle::parse_exposition(body, request_ns);
    assert_eq!(
        new,
        old,
        "body {:?} at {request_ns}",
        String::from_utf8_lossy(body)
    );
    new
}

/// How many outcomes had pods, errors and rejected values: the generators
/// must reach all three, or the comparison proves little.
#[derive(Default)]
struct Coverage {
    pods: usize,
    errors: usize,
    rejected: usize,
}

impl Coverage {
    fn add(&mut self, o: &ParseOutcome) {
        self.pods += usize::from(!o.scrape.pods.is_empty());
        self.errors += usize::from(!o.errors.is_empty());
        self.rejected +=
            usize::from(o.rejected_node.is_some() || !o.rejected_containers.is_empty());
    }

    fn assert_at_least(&self, n: usize) {
        assert!(
            self.pods >= n && self.errors >= n && self.rejected >= n,
            "pods {} errors {} rejected {}",
            self.pods,
            self.errors,
            self.rejected
        );
    }
}

#[test]
fn the_decoder_agrees_with_the_reference_on_generated_bodies() {
    let mut rng = Rng::new(0xD1FF);
    let mut seen = Coverage::default();
    for _ in 0..4000 {
        let body = generated_body(&mut rng);
        let t = request_time(&mut rng);
        seen.add(&assert_same(&body, t));
    }
    seen.assert_at_least(100);
}

#[test]
fn the_decoder_agrees_with_the_reference_on_mutated_kubelet_bodies() {
    let mut rng = Rng::new(0xB0D1E5);
    let mut corpus: Vec<Vec<u8>> = (0..8).map(|_| kubelet_body(&mut rng)).collect();
    corpus.push(
        metrics_server_test_support::UPSTREAM_FIXTURE
            .as_bytes()
            .to_vec(),
    );
    for body in &corpus {
        assert_same(body, 1_700_000_000_123_456_789);
    }
    let mut seen = Coverage::default();
    for round in 0..2500 {
        let mut body = if round % 10 == 0 {
            kubelet_body(&mut rng)
        } else {
            rng.pick(&corpus).clone()
        };
        let other = if rng.chance(50) {
            rng.pick(&corpus).clone()
        } else {
            generated_body(&mut rng)
        };
        mutate(&mut rng, &mut body, &other);
        let t = request_time(&mut rng);
        seen.add(&assert_same(&body, t));
    }
    seen.assert_at_least(100);
}

#[test]
fn the_decoder_agrees_with_the_reference_on_random_bytes_and_long_lines() {
    let mut rng = Rng::new(7);
    for _ in 0..3000 {
        let len = rng.below(64);
        let body: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        assert_same(&body, 0);
    }
    // Very long lines: a long value token, a long name, a long comment, and
    // a label value of a megabyte, escaped and not.
    let long_value = format!(
        "node_cpu_usage_seconds_total {}1 5\nnode_memory_working_set_bytes 1{} 5\n",
        "0".repeat(100_000),
        "0".repeat(400)
    );
    let long_name = format!("container_{} 1\n", "x".repeat(100_000));
    let long_comment = format!(
        "# {}\nnode_cpu_usage_seconds_total 1\n",
        "#".repeat(100_000)
    );
    let big = "v".repeat(1 << 20);
    let big_escaped = "\\\"".repeat(1 << 19);
    let long_labels = format!(
        "container_cpu_usage_seconds_total{{container=\"{big}\",namespace=\"n\",pod=\"{big_escaped}\"}} 1\n\
         container_memory_working_set_bytes{{container=\"{big}\",namespace=\"n\",pod=\"{big_escaped}\"}} 1\n"
    );
    for body in [long_value, long_name, long_comment, long_labels] {
        assert_same(body.as_bytes(), 0);
        assert_same(&body.as_bytes()[..body.len() / 2], 0);
    }
}

#[test]
fn the_decoder_agrees_with_the_reference_on_series_order_and_duplicates() {
    let mut rng = Rng::new(99);
    let names: Vec<Vec<u8>> = (0..6).map(|i| format!("c{i}").into_bytes()).collect();
    let mut seen = Coverage::default();
    for _ in 0..1500 {
        let mut body = Vec::new();
        for _ in 0..rng.below(150) {
            let family = rng.pick(&FAMILIES[..3]);
            body.extend_from_slice(family.as_bytes());
            body.extend_from_slice(b"{container=\"");
            body.extend_from_slice(rng.pick::<Vec<u8>>(&names[..3]));
            body.extend_from_slice(b"\",namespace=\"");
            body.extend_from_slice(rng.pick::<Vec<u8>>(&names[3..]));
            body.extend_from_slice(b"\",pod=\"");
            body.extend_from_slice(rng.pick::<Vec<u8>>(&names[..2]));
            body.extend_from_slice(b"\"} ");
            if rng.chance(98) {
                body.extend_from_slice(format_go_float(1.0 + rng.below(1000) as f64).as_bytes());
            } else {
                push_value(&mut rng, &mut body);
            }
            body.push(b'\n');
        }
        seen.add(&assert_same(&body, 5_000_000));
    }
    seen.assert_at_least(100);
}

#[test]
fn go_float_parsing_agrees_with_the_reference_bit_for_bit() {
    let same = |s: &[u8]| {
        assert_eq!(
            parse_go_float(s).map(f64::to_bits),
            oracle::parse_go_float(s).map(f64::to_bits),
            "{:?}",
            String::from_utf8_lossy(s)
        );
    };
    for v in VALUES {
        same(v.as_bytes());
    }
    let mut rng = Rng::new(3);
    let mut buf = Vec::new();
    for _ in 0..40_000 {
        buf.clear();
        push_value(&mut rng, &mut buf);
        same(&buf);
        // Token soup around the fast path's limits (19 digits, 2^53, 10^22).
        buf.clear();
        for _ in 0..1 + rng.below(8) {
            let piece = rng.pick(&[
                "0",
                "1",
                "9",
                "5",
                ".",
                "e",
                "E",
                "-",
                "+",
                "22",
                "23",
                "308",
                "9007199254740993",
                "4503599627370497",
                "1234567890",
                "00000",
                "p",
                "_",
                "x",
                "inf",
                "nan",
            ]);
            buf.extend_from_slice(piece.as_bytes());
        }
        same(&buf);
        let v = f64::from_bits(rng.next_u64());
        same(format!("{v}").as_bytes());
        same(format!("{v:e}").as_bytes());
        same(format!("{:.*}", rng.below(25), v).as_bytes());
    }
}
