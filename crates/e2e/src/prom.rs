//! Just enough of the Prometheus text exposition format (0.0.4) for the suite: the set of metric family
//! names an endpoint exposes (upstream's e2e test J#10) and the samples of a kubelet-style
//! `/metrics/resource` answer (J#7).

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One sample line: `name{labels} value [timestamp]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The sample name (for histograms this still carries `_bucket`, `_sum` or `_count`).
    pub name: String,
    /// The label pairs, unescaped.
    pub labels: BTreeMap<String, String>,
    /// The sample value.
    pub value: f64,
}

/// The family names in an exposition, sorted: names from `# HELP` and `# TYPE` lines and from samples,
/// where the `_bucket`, `_sum` and `_count` samples of a family typed `histogram` (and `_sum`/`_count` of
/// a `summary`) belong to that family, as in Go's `expfmt.TextParser`.
pub fn family_names(text: &str) -> BTreeSet<String> {
    let mut types: HashMap<&str, &str> = HashMap::new();
    let mut names = BTreeSet::new();
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix('#') {
            let mut words = rest.split_whitespace();
            let keyword = words.next();
            if let (Some("HELP" | "TYPE"), Some(name)) = (keyword, words.next()) {
                names.insert(name.to_owned());
                if keyword == Some("TYPE")
                    && let Some(kind) = words.next()
                {
                    types.insert(name, kind);
                }
            }
        }
    }
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name = sample_name(line);
        let family = ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
            let base = name.strip_suffix(suffix)?;
            match (types.get(base).copied(), *suffix) {
                (Some("histogram" | "gaugehistogram"), _) => Some(base),
                (Some("summary"), "_sum" | "_count") => Some(base),
                _ => None,
            }
        });
        names.insert(family.unwrap_or(name).to_owned());
    }
    names
}

fn sample_name(line: &str) -> &str {
    let end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    &line[..end]
}

/// Parses every sample line; comments and blank lines are skipped. An unparsable line is an error that
/// names the line.
pub fn parse_samples(text: &str) -> Result<Vec<Sample>, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| parse_sample(line).ok_or_else(|| format!("unparsable sample line {line:?}")))
        .collect()
}

fn parse_sample(line: &str) -> Option<Sample> {
    let name = sample_name(line);
    if name.is_empty() {
        return None;
    }
    let mut rest = &line[name.len()..];
    let mut labels = BTreeMap::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        let mut chars = after_brace.char_indices().peekable();
        let consumed = loop {
            while chars
                .next_if(|(_, c)| c.is_whitespace() || *c == ',')
                .is_some()
            {}
            let (start, c) = chars.next()?;
            if c == '}' {
                break start + 1;
            }
            let mut end = start + c.len_utf8();
            while let Some((i, c)) = chars.next_if(|(_, c)| *c != '=') {
                end = i + c.len_utf8();
            }
            let key = after_brace[start..end].trim().to_owned();
            chars.next()?; // '='
            while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
            if chars.next()?.1 != '"' {
                return None;
            }
            let mut value = String::new();
            loop {
                match chars.next()?.1 {
                    '"' => break,
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    other => value.push(other),
                }
            }
            labels.insert(key, value);
        };
        rest = &after_brace[consumed..];
    }
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const METRICS_SERVER: &str = "\
# HELP metrics_server_api_metric_freshness_seconds [ALPHA] Freshness of metrics exported
# TYPE metrics_server_api_metric_freshness_seconds histogram
metrics_server_api_metric_freshness_seconds_bucket{le=\"1\"} 0
metrics_server_api_metric_freshness_seconds_bucket{le=\"+Inf\"} 3
metrics_server_api_metric_freshness_seconds_sum 12.5
metrics_server_api_metric_freshness_seconds_count 3
# HELP metrics_server_kubelet_request_total [ALPHA] Number of requests sent to kubelet API
# TYPE metrics_server_kubelet_request_total counter
metrics_server_kubelet_request_total{success=\"true\"} 10
# HELP metrics_server_storage_points [ALPHA] Number of metrics points stored.
# TYPE metrics_server_storage_points gauge
metrics_server_storage_points{type=\"container\"} 6
go_goroutines 42
";

    #[test]
    fn histogram_samples_fold_into_their_family() {
        let names: Vec<_> = family_names(METRICS_SERVER).into_iter().collect();
        assert_eq!(
            names,
            [
                "go_goroutines",
                "metrics_server_api_metric_freshness_seconds",
                "metrics_server_kubelet_request_total",
                "metrics_server_storage_points",
            ]
        );
    }

    #[test]
    fn untyped_bucket_samples_stay_separate_families() {
        let names: Vec<_> = family_names("foo_bucket 1\nfoo_count 2\n")
            .into_iter()
            .collect();
        assert_eq!(names, ["foo_bucket", "foo_count"]);
    }

    #[test]
    fn an_openmetrics_counter_shows_two_names_and_so_cannot_pass_the_exact_set_check() {
        let text = "# TYPE x_requests counter\nx_requests_total 1\n# EOF\n";
        let names: Vec<_> = family_names(text).into_iter().collect();
        assert_eq!(names, ["x_requests", "x_requests_total"]);
    }

    #[test]
    fn kubelet_samples_parse_with_labels_values_and_timestamps() {
        let text = "\
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container=\"c1\",namespace=\"default\",pod=\"p\"} 1.5 1700000000000
container_memory_working_set_bytes{container=\"c\\\"q\",namespace=\"default\", pod=\"p\",} 52428800
node_cpu_usage_seconds_total 12
";
        let samples = parse_samples(text).unwrap();
        assert_eq!(samples.len(), 3);
        assert_eq!(samples[0].name, "container_cpu_usage_seconds_total");
        assert_eq!(samples[0].labels["container"], "c1");
        assert_eq!(samples[0].labels["pod"], "p");
        assert_eq!(samples[0].value, 1.5);
        assert_eq!(samples[1].labels["container"], "c\"q");
        assert_eq!(samples[1].labels["pod"], "p");
        assert_eq!(samples[1].value, 52_428_800.0);
        assert!(samples[2].labels.is_empty());
    }

    #[test]
    fn broken_sample_lines_are_errors() {
        assert!(parse_samples("x{a=\"1\" 2\n").is_err());
        assert!(parse_samples("x{a=1} 2\n").is_err());
        assert!(parse_samples("x notanumber\n").is_err());
    }
}
