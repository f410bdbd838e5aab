//! Selector parsing and matching cost stays linear (or n log n) in the size
//! of the selector, whatever its shape: each shape is checked with a 64 KB
//! input against 64 runs of the same shape at 1 KB (issue 7, selector bomb).

mod common;

use common::assert_cost_scales_linearly;
use metrics_server_core::selector::{FieldSelector, FieldSelectorError, LabelSelector};

const SMALL: usize = 1024;
const LARGE: usize = 64 * 1024;
const RATIO: usize = LARGE / SMALL;
/// Generous: linear work measures about 1x, quadratic about 64x.
const SLACK: u128 = 8;

/// Joins `term(i)` with `sep` until the text is at least `bytes` long.
fn repeat_terms(bytes: usize, sep: &str, term: impl Fn(usize) -> String) -> String {
    let mut out = String::with_capacity(bytes + 64);
    let mut i = 0;
    while out.len() < bytes {
        if i > 0 {
            out.push_str(sep);
        }
        out.push_str(&term(i));
        i += 1;
    }
    out
}

/// `prefix` + the terms + `suffix`, at about `bytes` in total.
fn wrapped(
    bytes: usize,
    prefix: &str,
    sep: &str,
    suffix: &str,
    term: fn(usize) -> String,
) -> String {
    format!("{prefix}{}{suffix}", repeat_terms(bytes, sep, term))
}

fn check_label_shape(what: &str, make: impl Fn(usize) -> String, ok: bool) {
    let (small, large) = (make(SMALL), make(LARGE));
    assert!(large.len() >= LARGE && large.len() < LARGE + 1024, "{what}");
    assert_eq!(LabelSelector::parse(&small).is_ok(), ok, "{what}: {small}");
    assert_eq!(LabelSelector::parse(&large).is_ok(), ok, "{what}");
    assert_eq!(LabelSelector::is_valid(&large), ok, "{what}");
    assert_cost_scales_linearly(
        what,
        RATIO,
        SLACK,
        || {
            std::hint::black_box(LabelSelector::is_valid(std::hint::black_box(&small)));
        },
        || {
            std::hint::black_box(LabelSelector::is_valid(std::hint::black_box(&large)));
        },
    );
    assert_cost_scales_linearly(
        what,
        RATIO,
        SLACK,
        || {
            let _ = std::hint::black_box(LabelSelector::parse(std::hint::black_box(&small)));
        },
        || {
            let _ = std::hint::black_box(LabelSelector::parse(std::hint::black_box(&large)));
        },
    );
}

#[test]
fn many_label_terms_parse_in_linear_time() {
    check_label_shape(
        "k<i>=v terms",
        |n| repeat_terms(n, ",", |i| format!("k{i}=v{i}")),
        true,
    );
    check_label_shape(
        "mixed operators",
        |n| {
            repeat_terms(n, ",", |i| match i % 5 {
                0 => format!("!k{i}"),
                1 => format!("k{i}"),
                2 => format!("k{i}!=v"),
                3 => format!("k{i} notin (a,b)"),
                _ => format!("k{i}>{i}"),
            })
        },
        true,
    );
    check_label_shape(
        "the same key again and again",
        |n| repeat_terms(n, ",", |_| "app=web".to_owned()),
        true,
    );
}

#[test]
fn deep_in_lists_parse_in_linear_time() {
    check_label_shape(
        "k in (v0,v1,...)",
        |n| wrapped(n, "k in (", ",", ")", |i| format!("v{i}")),
        true,
    );
    check_label_shape(
        "k in (,,,,...)",
        |n| wrapped(n, "k in (", ",", ")", |_| String::new()),
        true,
    );
    check_label_shape(
        "nested parentheses",
        |n| repeat_terms(n, "", |_| "(".to_owned()),
        false,
    );
}

#[test]
fn thousands_of_invalid_values_give_one_error_in_linear_time() {
    // Every value is distinct and invalid, so every one adds an error to the
    // aggregate; de-duplicating them must not compare all pairs.
    check_label_shape(
        "k in (-0,-1,...)",
        |n| wrapped(n, "k in (", ",", ")", |i| format!("-{i}")),
        false,
    );
    let err = LabelSelector::parse("k in (-1,-2,-1)")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("unable to parse requirement: [values[0][k]: Invalid value: \"-1\""),
        "{err}"
    );
    assert_eq!(err.matches("Invalid value").count(), 2, "{err}");
}

#[test]
fn long_keys_and_values_parse_in_linear_time() {
    check_label_shape("one long key", |n| "k".repeat(n), false);
    check_label_shape("one long value", |n| format!("k={}", "v".repeat(n)), false);
    check_label_shape(
        "one long prefix",
        |n| format!("{}/name", "a".repeat(n)),
        false,
    );
    check_label_shape("only operators", |n| "!=".repeat(n / 2), false);
    check_label_shape("only whitespace", |n| " \t".repeat(n / 2), true);
}

fn check_field_shape(what: &str, make: impl Fn(usize) -> String, validated_ok: bool) {
    let (small, large) = (make(SMALL), make(LARGE));
    assert!(large.len() >= LARGE && large.len() < LARGE + 1024, "{what}");
    assert_eq!(
        FieldSelector::parse(&small).is_ok(),
        validated_ok,
        "{what}: {small}"
    );
    assert_eq!(FieldSelector::parse(&large).is_ok(), validated_ok, "{what}");
    for parse in [FieldSelector::parse, FieldSelector::parse_syntax] {
        assert_cost_scales_linearly(
            what,
            RATIO,
            SLACK,
            || {
                let _ = std::hint::black_box(parse(std::hint::black_box(&small)));
            },
            || {
                let _ = std::hint::black_box(parse(std::hint::black_box(&large)));
            },
        );
    }
}

#[test]
fn field_selector_bombs_parse_in_linear_time() {
    check_field_shape(
        "f<i>=v terms",
        |n| repeat_terms(n, ",", |i| format!("f{i}=v")),
        false,
    );
    check_field_shape(
        "metadata.name!=<i> terms",
        |n| repeat_terms(n, ",", |i| format!("metadata.name!={i}")),
        true,
    );
    check_field_shape(
        "escaped values",
        |n| repeat_terms(n, ",", |i| format!("metadata.name=a\\,b\\=c\\\\{i}")),
        true,
    );
    check_field_shape(
        "one long escaped value",
        |n| format!("metadata.name={}", "\\,".repeat(n / 2)),
        true,
    );
    check_field_shape("one long field without operator", |n| "f".repeat(n), false);
    check_field_shape("only commas", |n| ",".repeat(n), true);
}

#[test]
fn the_syntax_only_parse_accepts_any_field_and_keeps_go_errors() {
    let sel = FieldSelector::parse_syntax("spec.nodeName=n1,metadata.name==p,b!=x").unwrap();
    assert_eq!(sel.to_string(), "b!=x,metadata.name=p,spec.nodeName=n1");
    assert_eq!(sel.requires_exact_match("metadata.name"), Some("p"));
    assert_eq!(sel.requires_exact_match("spec.nodeName"), Some("n1"));
    assert_eq!(sel.requires_exact_match("b"), None);
    // The validated parse still rejects the first unknown field in term order.
    assert_eq!(
        FieldSelector::parse("spec.nodeName=n1,metadata.name==p,b!=x")
            .unwrap_err()
            .to_string(),
        r#""b" is not a known field selector: only "metadata.name", "metadata.namespace""#
    );
    for (input, err) in [
        ("a", "invalid selector: 'a'; can't understand 'a'"),
        (
            "a=b=c",
            "invalid field selector: unescaped character in value: 61",
        ),
        (
            "a=b\\x",
            "invalid field selector: invalid escape sequence: \\x",
        ),
    ] {
        assert_eq!(
            FieldSelector::parse_syntax(input),
            Err(FieldSelectorError::Syntax(err.to_owned())),
            "{input}"
        );
    }
}

#[test]
fn matching_huge_selectors_is_linear() {
    let make = |n| repeat_terms(n, ",", |i| format!("metadata.name!=n{i}"));
    let (small, large) = (
        FieldSelector::parse(&make(SMALL)).unwrap(),
        FieldSelector::parse(&make(LARGE)).unwrap(),
    );
    let fields = [
        ("metadata.name", "node-1"),
        ("metadata.namespace", "default"),
    ];
    assert!(large.matches(&fields));
    assert_eq!(large.requires_exact_match("metadata.name"), None);
    assert_cost_scales_linearly(
        "FieldSelector::matches + requires_exact_match",
        RATIO,
        SLACK,
        || {
            std::hint::black_box(small.matches(&fields));
            std::hint::black_box(small.requires_exact_match("metadata.name"));
        },
        || {
            std::hint::black_box(large.matches(&fields));
            std::hint::black_box(large.requires_exact_match("metadata.name"));
        },
    );

    let make = |n| wrapped(n, "k in (", ",", ")", |i| format!("v{i}"));
    let (small, large) = (
        LabelSelector::parse(&make(SMALL)).unwrap(),
        LabelSelector::parse(&make(LARGE)).unwrap(),
    );
    let labels = [("k", "v77"), ("other", "x")];
    assert!(small.matches(&labels) && large.matches(&labels));
    assert!(!large.matches(&[("k", "w")]));
    assert_cost_scales_linearly(
        "LabelSelector::matches on a deep in list",
        RATIO,
        SLACK,
        || {
            std::hint::black_box(small.matches(std::hint::black_box(&labels)));
        },
        || {
            std::hint::black_box(large.matches(std::hint::black_box(&labels)));
        },
    );
}

#[test]
fn the_validity_check_agrees_with_the_parser() {
    const PIECES: &[&str] = &[
        "a", "b", "k8s.io/x", "-", "_x", "=", "==", "!=", "!", ",", " ", "in", "notin", "(", ")",
        ">", "<", "1", "-1", "1.5", "x/y/z", "\t", "é", "\u{0}", "v_", "A.b",
    ];
    let mut seed: u64 = 0x5e1e_c7ed;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    for _ in 0..20_000 {
        let s: String = (0..next(10)).map(|_| PIECES[next(PIECES.len())]).collect();
        assert_eq!(
            LabelSelector::is_valid(&s),
            LabelSelector::parse(&s).is_ok(),
            "{s:?}"
        );
    }
}
