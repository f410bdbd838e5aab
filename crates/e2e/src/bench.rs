//! The figures of `make bench-compare` (`tests/bench_compare.rs`): the scale argument, latency
//! percentiles, item timestamps scanned out of a list response, `/proc` CPU and memory readings,
//! and the side-by-side table (Markdown for people, JSON for machines).

use std::fmt::Write as _;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

/// `<nodes>x<pods-per-node>`, e.g. `1000x30`.
pub fn parse_scale(text: &str) -> Result<(usize, usize)> {
    let (nodes, pods) = text
        .trim()
        .split_once(['x', 'X'])
        .with_context(|| format!("scale {text:?} is not <nodes>x<pods-per-node>"))?;
    let nodes: usize = nodes.parse().context("the node count")?;
    let pods: usize = pods.parse().context("the pods per node")?;
    if nodes == 0 || nodes > 64_000 || pods > 250 {
        bail!("scale {text:?}: between 1 and 64000 nodes and at most 250 pods per node");
    }
    Ok((nodes, pods))
}

/// The `p`-th percentile (0..=100) by nearest rank; `None` for no samples.
pub fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Seconds since the epoch of an RFC 3339 UTC time as the metrics API writes it
/// (`2026-12-03T07:30:00Z`, optionally with a fraction).
pub fn rfc3339_seconds(text: &str) -> Option<f64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[10] != b'T' || !text.ends_with('Z') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let fraction: f64 = match text.get(19..text.len() - 1) {
        Some("") => 0.0,
        Some(f) if f.starts_with('.') => format!("0{f}").parse().ok()?,
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm, proleptic Gregorian).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + mi * 60 + s) as f64 + fraction)
}

/// Every item `"timestamp":"..."` of a metrics list, as seconds since the epoch (without
/// decoding the whole document: the harness must stay cheap next to the servers it measures).
pub fn item_timestamps(body: &str) -> Vec<f64> {
    const KEY: &str = "\"timestamp\":\"";
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(at) = rest.find(KEY) {
        rest = &rest[at + KEY.len()..];
        let Some(end) = rest.find('"') else { break };
        if let Some(t) = rfc3339_seconds(&rest[..end]) {
            out.push(t);
        }
        rest = &rest[end..];
    }
    out
}

/// `utime + stime` in clock ticks from a `/proc/<pid>/stat` line.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(") ")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3, utime 14 and stime 15 (1-based in proc(5)).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// `VmRSS` in KiB from a `/proc/<pid>/status` text.
pub fn rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// One row of the side-by-side table.
#[derive(Clone, Debug, Serialize)]
pub struct Figure {
    /// What is measured.
    pub name: String,
    /// Its unit.
    pub unit: &'static str,
    /// Our server's value.
    pub ours: Option<f64>,
    /// Upstream's value.
    pub upstream: Option<f64>,
    /// Upstream divided by ours.
    pub ratio: Option<f64>,
}

impl Figure {
    /// A row with its ratio computed.
    pub fn new(name: &str, unit: &'static str, ours: Option<f64>, upstream: Option<f64>) -> Self {
        let ratio = match (ours, upstream) {
            (Some(o), Some(u)) if o > 0.0 => Some(u / o),
            _ => None,
        };
        Self {
            name: name.to_owned(),
            unit,
            ours,
            upstream,
            ratio,
        }
    }
}

fn cell(v: Option<f64>) -> String {
    match v {
        None => "–".to_owned(),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

/// The Markdown table: figure, unit, ours, `other` (upstream v0.9.0 unless the run compares
/// another binary), other/ours. Without another server only ours is shown.
pub fn table(figures: &[Figure], other: Option<&str>) -> String {
    let mut out = match other {
        Some(name) => format!(
            "| figure | unit | ours | {name} | {}/ours |\n|---|---|---|---|---|\n",
            name.split_whitespace().next().unwrap_or(name)
        ),
        None => String::from("| figure | unit | ours |\n|---|---|---|\n"),
    };
    for f in figures {
        let _ = write!(out, "| {} | {} | {} |", f.name, f.unit, cell(f.ours));
        if other.is_some() {
            let _ = write!(out, " {} | {} |", cell(f.upstream), cell(f.ratio));
        }
        out.push('\n');
    }
    out
}

/// The soft limit on open files from a `/proc/<pid>/limits` text.
pub fn open_files_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_parse_and_absurd_ones_do_not() {
        assert_eq!(parse_scale("1000x30").unwrap(), (1000, 30));
        assert_eq!(parse_scale("10X5").unwrap(), (10, 5));
        assert!(parse_scale("1000").is_err());
        assert!(parse_scale("0x30").is_err());
        assert!(parse_scale("100x999").is_err());
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let samples: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentile(&samples, 50.0), Some(50.0));
        assert_eq!(percentile(&samples, 99.0), Some(99.0));
        assert_eq!(percentile(&samples, 100.0), Some(100.0));
        assert_eq!(percentile(&[3.0], 1.0), Some(3.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn rfc3339_times_convert_to_epoch_seconds() {
        assert_eq!(rfc3339_seconds("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(rfc3339_seconds("2000-03-01T00:00:01Z"), Some(951_868_801.0));
        assert_eq!(
            rfc3339_seconds("2026-12-03T07:30:00.5Z"),
            Some(1_796_283_000.5)
        );
        assert_eq!(rfc3339_seconds("2026-12-03 07:30:00Z"), None);
        assert_eq!(rfc3339_seconds("2026-12-03T07:30:00+01:00"), None);
    }

    #[test]
    fn item_timestamps_are_scanned_from_a_list() {
        let body = r#"{"items":[{"timestamp":"1970-01-01T00:00:10Z","window":"10s"},
            {"metadata":{},"timestamp":"1970-01-01T00:01:00Z"},{"timestamp":"garbage"}]}"#;
        assert_eq!(item_timestamps(body), vec![10.0, 60.0]);
        assert!(item_timestamps("{\"timestamp\":\"").is_empty());
    }

    #[test]
    fn proc_readings_parse() {
        let stat = "42 (metrics server) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0";
        assert_eq!(cpu_ticks(stat), Some(300));
        assert_eq!(cpu_ticks("garbage"), None);
        assert_eq!(rss_kib("Name:\tx\nVmRSS:\t  12345 kB\n"), Some(12345));
        assert_eq!(rss_kib("Name:\tx\n"), None);
    }

    #[test]
    fn the_table_carries_ratios_and_gaps() {
        let rows = [
            Figure::new("RSS", "MiB", Some(20.0), Some(110.0)),
            Figure::new("errors", "count", Some(0.0), Some(2.0)),
            Figure::new("tick", "s", None, Some(0.5)),
        ];
        assert_eq!(rows[0].ratio, Some(5.5));
        assert_eq!(rows[1].ratio, None);
        let t = table(&rows, Some("upstream v0.9.0"));
        assert!(t.starts_with("| figure | unit | ours | upstream v0.9.0 | upstream/ours |\n"));
        assert!(t.contains("| RSS | MiB | 20.0 | 110 | 5.50 |"), "{t}");
        assert!(t.contains("| tick | s | – | 0.50 | – |"), "{t}");
        let alone = table(&rows, None);
        assert!(
            alone.starts_with("| figure | unit | ours |\n|---|---|---|\n"),
            "{alone}"
        );
        assert!(alone.contains("| RSS | MiB | 20.0 |\n"), "{alone}");
    }

    #[test]
    fn the_open_files_limit_is_the_soft_one() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max processes             95000                95000                processes\n\
                      Max open files            20000                65536                files\n";
        assert_eq!(open_files_limit(limits), Some(20000));
        assert_eq!(
            open_files_limit("Max open files unlimited unlimited files"),
            None
        );
    }
}
