//! `/metrics` (spec E.13): the API's own metric and the rendering of a
//! prometheus-client [`Registry`] as Prometheus text format 0.0.4, the way
//! Go's `promhttp` writes it.
//!
//! prometheus-client only emits OpenMetrics. [`render_text`] converts that
//! output: counters get their `_total` name back in `HELP`/`TYPE`, `# UNIT`,
//! `_created` and `# EOF` go, histogram samples are reordered (buckets, sum,
//! count), numbers are printed like Go's `strconv.FormatFloat(v, 'g', -1, 64)`,
//! families are sorted by name and children by label values, and families
//! without samples are dropped (Go never prints them).
//!
//! Registering: give names and help texts exactly as upstream, e.g. register
//! the counter `metrics_server_kubelet_request` (prometheus-client appends
//! `_total`) with help `[ALPHA] Number of requests sent to Kubelet API`.
//! prometheus-client appends a `.` to every help text; the renderer removes it.

use std::collections::HashMap;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// `ExponentialBuckets(start, factor, count)`, computed iteratively like Go
/// so the bucket bounds print identically.
pub fn exponential_buckets(start: f64, factor: f64, count: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(count);
    let mut v = start;
    for _ in 0..count {
        out.push(v);
        v *= factor;
    }
    out
}

/// The API's own metrics.
#[derive(Clone, Debug)]
pub struct ApiMetrics {
    freshness: Histogram,
}

impl ApiMetrics {
    /// Creates and registers `metrics_server_api_metric_freshness_seconds`.
    pub fn register(registry: &mut Registry) -> Self {
        let freshness = Histogram::new(exponential_buckets(1.0, 1.364, 20));
        registry.register(
            "metrics_server_api_metric_freshness_seconds",
            "[ALPHA] Freshness of metrics exported",
            freshness.clone(),
        );
        Self { freshness }
    }

    /// Unregistered metrics (tests, tools).
    pub fn unregistered() -> Self {
        Self {
            freshness: Histogram::new(exponential_buckets(1.0, 1.364, 20)),
        }
    }

    /// Observes the age of one returned item, in seconds.
    pub(crate) fn observe_freshness(&self, seconds: f64) {
        self.freshness.observe(seconds);
    }
}

/// The registry as OpenMetrics text (prometheus-client's native output).
pub fn render_openmetrics(registry: &Registry) -> String {
    let mut out = String::with_capacity(4096);
    if encode(&mut out, registry).is_err() {
        out.clear();
        out.push_str("# EOF\n");
    }
    out
}

/// The registry as Prometheus text exposition format 0.0.4.
pub fn render_text(registry: &Registry) -> String {
    openmetrics_to_text(&render_openmetrics(registry))
}

#[derive(Debug, Default)]
struct Family {
    name: String,
    help: Option<String>,
    kind: String,
    samples: Vec<Sample>,
}

/// One child of a family: its labels and its samples.
type Child = (Vec<(String, String)>, Vec<Sample>);

#[derive(Debug)]
struct Sample {
    name: String,
    /// `(name, raw escaped value)` without `le`/`quantile`.
    labels: Vec<(String, String)>,
    /// `le` or `quantile` value (raw).
    extra: Option<(String, String)>,
    value: String,
}

/// Converts OpenMetrics text (as prometheus-client writes it) to the
/// Prometheus 0.0.4 text format as Go's `expfmt` writes it.
pub fn openmetrics_to_text(input: &str) -> String {
    let mut families: Vec<Family> = Vec::new();
    for line in input.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            let help = help.strip_suffix('.').unwrap_or(help);
            families.push(Family {
                name: name.to_owned(),
                help: Some(help.to_owned()),
                kind: "untyped".to_owned(),
                samples: Vec::new(),
            });
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let kind = match kind {
                "counter" | "gauge" | "histogram" | "summary" => kind,
                "gaugehistogram" => "histogram",
                _ => "untyped",
            };
            match families.last_mut() {
                Some(f) if f.name == name => f.kind = kind.to_owned(),
                _ => families.push(Family {
                    name: name.to_owned(),
                    help: None,
                    kind: kind.to_owned(),
                    samples: Vec::new(),
                }),
            }
        } else if line.starts_with('#') || line.is_empty() {
            continue;
        } else if let (Some(f), Some(s)) = (families.last_mut(), parse_sample(line)) {
            if s.name.ends_with("_created") && f.kind == "counter" {
                continue;
            }
            f.samples.push(s);
        }
    }
    for f in &mut families {
        if f.kind == "counter" && !f.name.ends_with("_total") {
            f.name.push_str("_total");
        }
    }
    families.retain(|f| !f.samples.is_empty());
    families.sort_by(|a, b| a.name.cmp(&b.name));

    let mut out = String::with_capacity(input.len() + 256);
    for f in families {
        write_family(&mut out, f);
    }
    out
}

fn write_family(out: &mut String, f: Family) {
    if let Some(help) = &f.help {
        out.push_str("# HELP ");
        out.push_str(&f.name);
        out.push(' ');
        out.push_str(help);
        out.push('\n');
    }
    out.push_str("# TYPE ");
    out.push_str(&f.name);
    out.push(' ');
    out.push_str(&f.kind);
    out.push('\n');

    // Group samples into children (same labels), keeping first-seen order;
    // the index makes grouping linear in the number of samples.
    let mut children: Vec<Child> = Vec::new();
    let mut index: HashMap<Vec<(String, String)>, usize> = HashMap::new();
    for mut s in f.samples {
        s.labels.sort_by(|a, b| a.0.cmp(&b.0));
        match index.get(&s.labels).and_then(|&i| children.get_mut(i)) {
            Some((_, samples)) => samples.push(s),
            None => {
                index.insert(s.labels.clone(), children.len());
                children.push((s.labels.clone(), vec![s]));
            }
        }
    }
    // Go's MetricSorter: fewer labels first, then label values in order.
    children.sort_by(|(a, _), (b, _)| {
        a.len()
            .cmp(&b.len())
            .then_with(|| a.iter().map(|(_, v)| v).cmp(b.iter().map(|(_, v)| v)))
    });
    for (_, samples) in children {
        let rank = |s: &Sample| -> u8 {
            if s.name.ends_with("_bucket") || s.extra.is_some() {
                0
            } else if s.name.ends_with("_sum") {
                1
            } else if s.name.ends_with("_count") {
                2
            } else {
                0
            }
        };
        let mut samples = samples;
        if f.kind == "histogram" || f.kind == "summary" {
            samples.sort_by_key(rank);
        }
        for s in samples {
            out.push_str(&s.name);
            if !s.labels.is_empty() || s.extra.is_some() {
                out.push('{');
                let mut first = true;
                for (k, v) in s.labels.iter().chain(s.extra.iter()) {
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    out.push_str(k);
                    out.push_str("=\"");
                    if s.extra.as_ref().is_some_and(|(ek, _)| ek == k) {
                        out.push_str(&reformat_number(v));
                    } else {
                        out.push_str(v);
                    }
                    out.push('"');
                }
                out.push('}');
            }
            out.push(' ');
            out.push_str(&reformat_number(&s.value));
            out.push('\n');
        }
    }
}

/// Parses `name{k="v",...} value [timestamp] [# exemplar]`.
fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    let mut extra = None;
    if let Some(r) = rest.strip_prefix('{') {
        let bytes = r.as_bytes();
        let mut i = 0;
        loop {
            while i < bytes.len() && (bytes[i] == b',' || bytes[i] == b' ') {
                i += 1;
            }
            if i >= bytes.len() {
                return None;
            }
            if bytes[i] == b'}' {
                i += 1;
                break;
            }
            let eq = i + r[i..].find('=')?;
            let key = &r[i..eq];
            if bytes.get(eq + 1) != Some(&b'"') {
                return None;
            }
            let mut j = eq + 2;
            while j < bytes.len() && bytes[j] != b'"' {
                if bytes[j] == b'\\' {
                    j += 1;
                }
                j += 1;
            }
            if j >= bytes.len() {
                return None;
            }
            let value = &r[eq + 2..j];
            if key == "le" || key == "quantile" {
                extra = Some((key.to_owned(), value.to_owned()));
            } else {
                labels.push((key.to_owned(), value.to_owned()));
            }
            i = j + 1;
        }
        rest = &r[i..];
    }
    let rest = rest.trim_start();
    let rest = rest.split(" # ").next().unwrap_or(rest);
    let value = rest.split(' ').next()?.to_owned();
    Some(Sample {
        name: name.to_owned(),
        labels,
        extra,
        value,
    })
}

fn reformat_number(s: &str) -> String {
    match s {
        "+Inf" | "Inf" => return "+Inf".to_owned(),
        "-Inf" => return "-Inf".to_owned(),
        "NaN" => return "NaN".to_owned(),
        _ => {}
    }
    match s.parse::<f64>() {
        Ok(v) => format_go_float(v),
        Err(_) => s.to_owned(),
    }
}

/// Go's `expfmt` `writeFloat`: `strconv.FormatFloat(v, 'g', -1, 64)` with
/// `+Inf`, `-Inf` and `NaN`.
pub fn format_go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_owned();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    // Shortest round-trip digits, as `d.ddde<exp>`.
    let sci = format!("{:e}", v.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let nd = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    let mut out = String::with_capacity(24);
    if v < 0.0 {
        out.push('-');
    }
    // Go: %e when exp < -4 || exp >= eprec, and eprec is 6 for shortest.
    if !(-4..6).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push('0');
        }
        out.push_str(&e.to_string());
        return out;
    }
    // %f with exactly the significant digits.
    let dp = exp + 1; // digits before the decimal point
    if dp <= 0 {
        out.push_str("0.");
        for _ in 0..(-dp) {
            out.push('0');
        }
        out.push_str(&digits);
    } else if dp >= nd {
        out.push_str(&digits);
        for _ in 0..(dp - nd) {
            out.push('0');
        }
    } else {
        let split = usize::try_from(dp).unwrap_or(0);
        out.push_str(&digits[..split]);
        out.push('.');
        out.push_str(&digits[split..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_go_strconv_g() {
        for (v, want) in [
            (1.0, "1"),
            (0.0, "0"),
            (-1.0, "-1"),
            (1.364, "1.364"),
            (1.860496, "1.860496"),
            (0.005, "0.005"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (1e6, "1e+06"),
            (1.7e9, "1.7e+09"),
            (2.5, "2.5"),
            (12.5, "12.5"),
            (f64::INFINITY, "+Inf"),
        ] {
            assert_eq!(format_go_float(v), want, "{v}");
        }
    }

    #[test]
    fn go_exponential_buckets_are_iterative() {
        let b = exponential_buckets(1.0, 1.364, 20);
        assert_eq!(b.len(), 20);
        assert_eq!(format_go_float(b[1]), "1.364");
        // Same IEEE products as Go's `start *= factor`.
        assert_eq!(format_go_float(b[2]), "1.8604960000000004");
        assert_eq!(format_go_float(b[19]), "364.31163045936864");
    }

    #[test]
    fn interleaved_children_group_in_first_seen_order_then_sort() {
        let om = "# HELP c Requests.\n\
                  # TYPE c counter\n\
                  c_total{code=\"200\",method=\"get\"} 1\n\
                  c_created{code=\"200\",method=\"get\"} 1.7e9\n\
                  c_total{method=\"get\",code=\"500\"} 2\n\
                  c_total{code=\"200\",method=\"post\"} 3\n\
                  c_total{method=\"get\",code=\"200\"} 4\n\
                  c_total 5\n\
                  # EOF\n";
        assert_eq!(
            openmetrics_to_text(om),
            "# HELP c_total Requests\n# TYPE c_total counter\n\
             c_total 5\n\
             c_total{code=\"200\",method=\"get\"} 1\n\
             c_total{code=\"200\",method=\"get\"} 4\n\
             c_total{code=\"200\",method=\"post\"} 3\n\
             c_total{code=\"500\",method=\"get\"} 2\n"
        );
    }

    #[test]
    fn labelled_histograms_and_gauges_convert_to_go_order() {
        let om = "# HELP x_seconds Some help.\n\
                  # TYPE x_seconds histogram\n\
                  x_seconds_sum{node=\"b\"} 0.5\n\
                  x_seconds_count{node=\"b\"} 1\n\
                  x_seconds_bucket{le=\"0.005\",node=\"b\"} 0\n\
                  x_seconds_bucket{le=\"+Inf\",node=\"b\"} 1\n\
                  x_seconds_sum{node=\"a\"} 1.0\n\
                  x_seconds_count{node=\"a\"} 1\n\
                  x_seconds_bucket{node=\"a\",le=\"0.005\"} 0\n\
                  x_seconds_bucket{node=\"a\",le=\"+Inf\"} 1\n\
                  # HELP g Last time.\n\
                  # TYPE g gauge\n\
                  g{node=\"a\"} 1785837605.0\n\
                  # HELP c Requests.\n\
                  # TYPE c counter\n\
                  # UNIT c requests\n\
                  # HELP empty Nothing.\n\
                  # TYPE empty gauge\n\
                  # EOF\n";
        assert_eq!(
            openmetrics_to_text(om),
            "# HELP g Last time\n# TYPE g gauge\ng{node=\"a\"} 1.785837605e+09\n\
             # HELP x_seconds Some help\n# TYPE x_seconds histogram\n\
             x_seconds_bucket{node=\"a\",le=\"0.005\"} 0\n\
             x_seconds_bucket{node=\"a\",le=\"+Inf\"} 1\n\
             x_seconds_sum{node=\"a\"} 1\n\
             x_seconds_count{node=\"a\"} 1\n\
             x_seconds_bucket{node=\"b\",le=\"0.005\"} 0\n\
             x_seconds_bucket{node=\"b\",le=\"+Inf\"} 1\n\
             x_seconds_sum{node=\"b\"} 0.5\n\
             x_seconds_count{node=\"b\"} 1\n"
        );
    }
}
