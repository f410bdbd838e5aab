//! Compares every row of the Go-generated tables in `tests/golden/` (written
//! by `hack/tools/golden`, `cd hack/tools/golden && go run .`).

use metrics_server_core::selector::{FieldSelector, LabelSelector};
use metrics_server_core::{
    Quantity, format_cpu_nanocores, format_duration, format_memory_bytes, parse_duration,
};

/// Reads a table: skips `#` comments, splits on tabs, undoes the escaping.
fn table(name: &str) -> Vec<Vec<String>> {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let rows: Vec<Vec<String>> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split('\t').map(unescape).collect())
        .collect();
    assert!(rows.len() > 10, "{name} looks truncated");
    rows
}

fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some('0') => out.push('\0'),
            other => panic!("bad escape \\{other:?} in {field:?}"),
        }
    }
    out
}

/// Runs `check` on every row and reports all mismatches at once.
fn compare(name: &str, check: impl Fn(&[String]) -> Option<String>) {
    let rows = table(name);
    let failures: Vec<String> = rows.iter().filter_map(|r| check(r)).collect();
    assert!(
        failures.is_empty(),
        "{} of {} rows of {name} differ from Go:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

#[test]
fn cpu_and_memory_quantities_match_go_for_every_row() {
    compare("quantities.tsv", |r| {
        let v: u64 = r[0].parse().unwrap();
        let (cpu, mem) = (format_cpu_nanocores(v), format_memory_bytes(v));
        (cpu != r[1] || mem != r[2])
            .then(|| format!("{v}: cpu {cpu} (go {}), memory {mem} (go {})", r[1], r[2]))
    });
}

#[test]
fn parsed_quantities_match_go_values_and_errors() {
    compare("parse_quantities.tsv", |r| {
        let got = Quantity::parse(&r[0]);
        match (r[1].as_str(), got) {
            ("ok", Ok(q)) => {
                let (value, milli) = (q.value().to_string(), q.milli_value().to_string());
                (value != r[2] || milli != r[3]).then(|| {
                    format!(
                        "{:?}: value {value} milli {milli} (go {} {})",
                        r[0], r[2], r[3]
                    )
                })
            }
            ("err", Err(e)) => {
                (e.to_string() != r[2]).then(|| format!("{:?}: error {e:?} (go {:?})", r[0], r[2]))
            }
            (_, got) => Some(format!(
                "{:?}: got {got:?}, go says {} {}",
                r[0], r[1], r[2]
            )),
        }
    });
}

#[test]
fn duration_strings_match_go_for_every_row() {
    compare("durations.tsv", |r| {
        let ns: i64 = r[0].parse().unwrap();
        let got = format_duration(ns);
        (got != r[1]).then(|| format!("{ns}: {got} (go {})", r[1]))
    });
}

#[test]
fn parsed_durations_match_go_values_and_error_texts() {
    compare("parse_durations.tsv", |r| {
        let got = parse_duration(&r[0]);
        let got_text = match &got {
            Ok(ns) => format!("ok\t{ns}"),
            Err(e) => format!("err\t{e}"),
        };
        let want = format!("{}\t{}", r[1], r[2]);
        (got_text != want).then(|| format!("{:?}: {got_text:?} (go {want:?})", r[0]))
    });
}

#[test]
fn label_selectors_parse_and_print_like_go() {
    compare("label_selectors.tsv", |r| {
        let got = match LabelSelector::parse(&r[0]) {
            Ok(s) => format!("ok\t{s}"),
            Err(e) => format!("err\t{e}"),
        };
        let want = format!("{}\t{}", r[1], r[2]);
        (got != want).then(|| format!("{:?}:\n  got  {got:?}\n  want {want:?}", r[0]))
    });
}

#[test]
fn label_selectors_match_label_sets_like_go() {
    compare("label_matches.tsv", |r| {
        let sel = LabelSelector::parse(&r[0]).unwrap();
        let pairs: Vec<(&str, &str)> = r[1]
            .split(',')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap())
            .collect();
        let got = sel.matches(pairs.as_slice()).to_string();
        (got != r[2]).then(|| format!("{:?} on {:?}: {got} (go {})", r[0], r[1], r[2]))
    });
}

#[test]
fn field_selectors_parse_validate_and_print_like_go() {
    compare("field_selectors.tsv", |r| {
        let got = match FieldSelector::parse(&r[0]) {
            Ok(s) => format!("ok\t{s}"),
            Err(e @ metrics_server_core::FieldSelectorError::Syntax(_)) => {
                format!("parse-err\t{e}")
            }
            Err(e) => format!("field-err\t{e}"),
        };
        let want = format!("{}\t{}", r[1], r[2]);
        (got != want).then(|| format!("{:?}:\n  got  {got:?}\n  want {want:?}", r[0]))
    });
}
