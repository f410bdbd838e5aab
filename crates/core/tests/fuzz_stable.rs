//! Stable-Rust stand-in for the cargo-fuzz targets in `fuzz/` (nightly is not
//! available everywhere): runs every parser over thousands of deterministic
//! pseudo-random and mutated inputs. Nothing may panic, and the decoder's
//! invariants must hold (spec J.2 D15).

mod common;

use common::{Rng, realistic_pods, render_kubelet};
use metrics_server_core::exposition::parse_exposition;
use metrics_server_core::quantity::Quantity;
use metrics_server_core::selector::{FieldSelector, LabelSelector};
use metrics_server_core::{decode_node, parse_duration};

/// Bytes that matter to the grammars under test.
const INTERESTING: &[u8] = b"{}\"\\\n,=#-+.eE09 \t\r\0!()<>mKiu_pxn\xff\xc2\xb5";

fn seeds(rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = vec![
        b"node_cpu_usage_seconds_total 357.35491 1633253809720\nnode_memory_working_set_bytes 1.616273408e+09 1633253809720\n".to_vec(),
        br#"container_cpu_usage_seconds_total{container="c",namespace="n",pod="p"} 4.7 1633253812125"#.to_vec(),
        br#"container_start_time_seconds{container="c\"x\\",namespace="n\n",pod="p",} -6.7e+09 -62135596800000"#.to_vec(),
        b"# HELP x\n# TYPE x gauge\nx{a=\"b\"} NaN\n".to_vec(),
        Vec::new(),
    ];
    for n in [1, 3, 10] {
        let pods = realistic_pods(rng, n, 1_700_000_000_000);
        out.push(render_kubelet(1.5, 2e9, 1_700_000_000_000, &pods).into_bytes());
    }
    out
}

fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = v.len() as u64;
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len) as usize;
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(len + 1) as usize;
                v.insert(i, *rng.pick(INTERESTING));
            }
            2 if len > 0 => {
                let i = rng.below(len) as usize;
                let j = (i + 1 + rng.below(16) as usize).min(v.len());
                v.drain(i..j);
            }
            3 if len > 0 => {
                let i = rng.below(len) as usize;
                let j = (i + 1 + rng.below(32) as usize).min(v.len());
                let chunk = v[i..j].to_vec();
                let at = rng.below(v.len() as u64 + 1) as usize;
                v.splice(at..at, chunk);
            }
            4 if len > 0 => v.truncate(rng.below(len) as usize),
            5 if !other.is_empty() => {
                let cut = rng.below(v.len() as u64 + 1) as usize;
                let from = rng.below(other.len() as u64) as usize;
                v.truncate(cut);
                v.extend_from_slice(&other[from..]);
            }
            _ => {
                let i = rng.below(len + 1) as usize;
                v.splice(i..i, b"-1".iter().copied());
            }
        }
    }
    v
}

#[test]
fn the_exposition_parser_survives_thousands_of_mutated_bodies() {
    let mut rng = Rng::new(0xD15);
    let corpus = seeds(&mut rng);
    let mut inputs = 0;
    for _ in 0..4000 {
        let a = rng.pick(&corpus).clone();
        let b = rng.pick(&corpus).clone();
        let input = mutate(&mut rng, &a, &b);
        inputs += 1;
        let out = parse_exposition(&input, 1_700_000_000_123_456_789);
        // Invariants of the decoded result.
        assert_eq!(
            decode_node(&input, 1_700_000_000_123_456_789).is_err(),
            !out.errors.is_empty()
        );
        if let Some(n) = out.scrape.node {
            assert!(n.cumulative_cpu_ns != 0 && n.memory_bytes != 0);
        }
        for w in out.scrape.pods.windows(2) {
            assert!((&w[0].namespace, &w[0].name) < (&w[1].namespace, &w[1].name));
        }
        for p in &out.scrape.pods {
            assert!(!p.containers.is_empty());
            assert!(p.containers.windows(2).all(|w| w[0].0 < w[1].0));
            assert!(
                p.containers
                    .iter()
                    .all(|(_, c)| c.cumulative_cpu_ns != 0 && c.memory_bytes != 0)
            );
        }
        assert!(out.errors.windows(2).all(|w| w[0].line < w[1].line));
    }
    assert_eq!(inputs, 4000);
}

#[test]
fn random_byte_strings_never_panic_any_parser() {
    let mut rng = Rng::new(42);
    for _ in 0..5000 {
        let len = rng.below(40) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                if rng.chance(70) {
                    *rng.pick(INTERESTING)
                } else {
                    rng.below(256) as u8
                }
            })
            .collect();
        let _ = parse_exposition(&bytes, 0);
        let text = String::from_utf8_lossy(&bytes);
        let _ = LabelSelector::parse(&text).map(|s| s.to_string());
        let _ = FieldSelector::parse(&text).map(|s| s.to_string());
        let _ = parse_duration(&text);
        if let Ok(q) = Quantity::parse(&text) {
            let _ = (
                q.value(),
                q.milli_value(),
                q.scaled_value(-9),
                q.scaled_value(6),
            );
        }
    }
}

#[test]
fn d15_generated_bodies_with_non_negative_timestamps_never_error() {
    let mut rng = Rng::new(0x0D15);
    for round in 0..1000 {
        let n = rng.below(12) as usize;
        let ts = 15_000 + rng.below(i64::MAX as u64 - 15_000) as i64;
        let pods = realistic_pods(&mut rng, n, ts);
        let body = render_kubelet(rng.below(1 << 40) as f64 / 7.0, 1e9, ts >> 3, &pods);
        let out = parse_exposition(body.as_bytes(), round);
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert_eq!(out.scrape.pods.len(), n);
    }
}

#[test]
fn token_soup_with_extreme_numbers_never_panics_quantity_or_duration_parsers() {
    const PIECES: &[&str] = &[
        "0",
        "1",
        "9",
        ".",
        "e",
        "E",
        "-",
        "+",
        "i",
        "Ki",
        "Ei",
        "m",
        "n",
        "u",
        "k",
        "G",
        "P",
        "ns",
        "us",
        "µs",
        "ms",
        "s",
        "h",
        "2147483647",
        "2147483648",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551616",
        "000000000000000000001",
        "99999999999999999999999999999999999999999",
    ];
    let mut rng = Rng::new(7);
    for _ in 0..20_000 {
        let s: String = (0..1 + rng.below(6)).map(|_| *rng.pick(PIECES)).collect();
        if let Ok(q) = Quantity::parse(&s) {
            for scale in [i32::MIN, -40, -9, -3, 0, 3, 40, i32::MAX] {
                let _ = q.scaled_value(scale);
            }
        }
        if let Ok(ns) = parse_duration(&s) {
            assert_eq!(
                parse_duration(&metrics_server_core::format_duration(ns)),
                Ok(ns)
            );
        }
    }
}

/// Found by libFuzzer (`make fuzz`, field_selector, 2026-12-02): Go sorts a field selector's terms
/// by their raw text, and printing writes `==` as `=`, so printing and parsing again may reorder
/// the terms. The selector must still mean the same: the same terms, in the order of their text.
#[test]
fn a_reprinted_field_selector_keeps_its_terms_though_their_order_may_change() {
    let input = "metadata.name==b,metadata.name=a";
    let parsed = FieldSelector::parse(input).expect("valid");
    let printed = parsed.to_string();
    assert_eq!(printed, "metadata.name=b,metadata.name=a");
    let again = FieldSelector::parse(&printed).expect("printed selector reparses");
    assert_eq!(again.to_string(), "metadata.name=a,metadata.name=b");
    let sorted = |s: &FieldSelector| {
        let mut terms = s.terms().to_vec();
        terms.sort_by(|a, b| (&a.field, &a.value).cmp(&(&b.field, &b.value)));
        terms
    };
    assert_eq!(sorted(&parsed), sorted(&again));
    // From then on printing is a fixed point.
    assert_eq!(
        FieldSelector::parse(&again.to_string())
            .expect("reparses")
            .to_string(),
        again.to_string()
    );
}
