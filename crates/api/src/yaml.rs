//! `application/yaml` bodies as the generic apiserver writes them: the JSON
//! encoding turned into YAML the way sigs.k8s.io/yaml's `JSONToYAML` does
//! (go-yaml v2 underneath): block mappings with keys in go-yaml's natural
//! order (digit runs compared as numbers), indentless sequences, `{}` and
//! `[]` for empty collections, and each string in the first style that
//! reads back as the same string: plain, single-quoted, double-quoted.
//! Long plain and quoted strings fold at a space past column 80.
//!
//! Not reproduced: go-yaml writes a string containing a line feed as a
//! literal block (`|-`); here it is double-quoted with `\n` escapes, which
//! reads back the same. No field this server writes contains one.

use std::cmp::Ordering;

use serde_json::{Map, Value};

/// The media type.
pub(crate) const YAML: &str = "application/yaml";

/// go-yaml's line width: plain and quoted strings fold at a space past it.
const BEST_WIDTH: usize = 80;
/// go-yaml's indentation step.
const INDENT: usize = 2;
/// Longest key (in bytes) written as `key: value`; longer ones use `? key`.
const MAX_SIMPLE_KEY: usize = 128;

/// Converts a JSON document (as this server writes it) into YAML; `None`
/// when the bytes are not JSON.
pub(crate) fn from_json(json: &[u8]) -> Option<Vec<u8>> {
    let value: Value = serde_json::from_slice(json).ok()?;
    let mut w = Writer::default();
    w.root(&value);
    Some(w.out.into_bytes())
}

#[derive(Default)]
struct Writer {
    out: String,
    /// Characters on the current line.
    column: usize,
}

impl Writer {
    fn put(&mut self, s: &str) {
        self.out.push_str(s);
        self.column += s.chars().count();
    }

    fn put_char(&mut self, c: char) {
        self.out.push(c);
        self.column += 1;
    }

    /// A line break, then spaces up to `indent`.
    fn newline(&mut self, indent: usize) {
        self.out.push('\n');
        self.column = 0;
        self.pad(indent);
    }

    fn pad(&mut self, indent: usize) {
        while self.column < indent {
            self.put_char(' ');
        }
    }

    fn root(&mut self, value: &Value) {
        match value {
            Value::Object(map) if !map.is_empty() => self.mapping(map, 0),
            Value::Array(items) if !items.is_empty() => self.sequence(items, 0),
            other => self.flow_or_scalar(other, 0),
        }
        self.out.push('\n');
    }

    /// A block mapping whose first key goes where the cursor is.
    fn mapping(&mut self, map: &Map<String, Value>, indent: usize) {
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort_by(|a, b| natural_order(a, b));
        for (i, key) in keys.into_iter().enumerate() {
            if i > 0 {
                self.newline(indent);
            }
            let simple = key.len() <= MAX_SIMPLE_KEY;
            if simple {
                self.string(key, indent + INDENT, false);
                self.put_char(':');
            } else {
                self.put_char('?');
                self.string(key, indent + INDENT, true);
                self.newline(indent);
                self.put_char(':');
            }
            self.value(&map[key.as_str()], indent);
        }
    }

    /// The value after `key:`, at mapping indentation `indent`.
    fn value(&mut self, value: &Value, indent: usize) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                self.newline(indent + INDENT);
                self.mapping(map, indent + INDENT);
            }
            // Sequences in a mapping are not indented.
            Value::Array(items) if !items.is_empty() => {
                self.newline(indent);
                self.sequence(items, indent);
            }
            other => self.flow_or_scalar(other, indent + INDENT),
        }
    }

    /// A block sequence whose first `- ` goes where the cursor is.
    fn sequence(&mut self, items: &[Value], indent: usize) {
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.newline(indent);
            }
            self.put_char('-');
            match item {
                Value::Object(map) if !map.is_empty() => {
                    self.put_char(' ');
                    self.mapping(map, indent + INDENT);
                }
                Value::Array(inner) if !inner.is_empty() => {
                    self.put_char(' ');
                    self.sequence(inner, indent + INDENT);
                }
                other => self.flow_or_scalar(other, indent + INDENT),
            }
        }
    }

    /// An empty collection or a scalar, after a space.
    fn flow_or_scalar(&mut self, value: &Value, indent: usize) {
        match value {
            Value::Object(_) => self.put(" {}"),
            Value::Array(_) => self.put(" []"),
            Value::Null => self.put(" null"),
            Value::Bool(b) => self.put(if *b { " true" } else { " false" }),
            Value::Number(n) => {
                self.put_char(' ');
                self.put(&number(n));
            }
            Value::String(s) => self.string(s, indent, true),
        }
    }

    /// A string, after a space unless the cursor starts a line; folding is
    /// allowed except for keys (go-yaml's simple-key context).
    fn string(&mut self, s: &str, indent: usize, fold: bool) {
        if self.column > 0 && !self.out.ends_with(' ') {
            self.put_char(' ');
        }
        let style = style(s, !fold);
        let breaks = fold.then_some(indent);
        match style {
            Style::Plain => self.plain(s, breaks),
            Style::Single => self.single(s, breaks),
            Style::Double => self.double(s, breaks),
        }
    }

    /// Whether to fold at the space at byte `i` of `s` (go-yaml: past the
    /// width, after a non-space, before a non-space).
    fn folds(&self, s: &str, i: usize, spaces: bool, breaks: Option<usize>) -> bool {
        breaks.is_some()
            && !spaces
            && self.column > BEST_WIDTH
            && s.as_bytes().get(i + 1) != Some(&b' ')
    }

    fn plain(&mut self, s: &str, breaks: Option<usize>) {
        let mut spaces = false;
        for (i, c) in s.char_indices() {
            if c == ' ' {
                match breaks {
                    Some(indent) if self.folds(s, i, spaces, breaks) => self.newline(indent),
                    _ => self.put_char(' '),
                }
                spaces = true;
            } else {
                self.put_char(c);
                spaces = false;
            }
        }
    }

    fn single(&mut self, s: &str, breaks: Option<usize>) {
        self.put_char('\'');
        let mut spaces = false;
        for (i, c) in s.char_indices() {
            if c == ' ' {
                let inner = i != 0 && i != s.len() - 1;
                match breaks {
                    Some(indent) if inner && self.folds(s, i, spaces, breaks) => {
                        self.newline(indent)
                    }
                    _ => self.put_char(' '),
                }
                spaces = true;
            } else {
                if c == '\'' {
                    self.put_char('\'');
                }
                self.put_char(c);
                spaces = false;
            }
        }
        self.put_char('\'');
    }

    fn double(&mut self, s: &str, breaks: Option<usize>) {
        self.put_char('"');
        let mut spaces = false;
        for (i, c) in s.char_indices() {
            if !printable(c) || c == '\u{feff}' || is_break(c) || c == '"' || c == '\\' {
                self.put(&escape(c));
                spaces = false;
            } else if c == ' ' {
                let inner = i > 0 && i < s.len() - 1;
                match breaks {
                    Some(indent) if inner && !spaces && self.column > BEST_WIDTH => {
                        self.newline(indent);
                        if s.as_bytes().get(i + 1) == Some(&b' ') {
                            self.put_char('\\');
                        }
                    }
                    _ => self.put_char(' '),
                }
                spaces = true;
            } else {
                self.put_char(c);
                spaces = false;
            }
        }
        self.put_char('"');
    }
}

/// A JSON number as go-yaml writes what it read: integers as they are,
/// other numbers in Go's shortest `%g` form.
fn number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    if f.is_finite() && f == f.trunc() && f.abs() < 1e21 {
        // Go's 'g' with the shortest precision prints whole floats without
        // a fraction or exponent below 1e21.
        format!("{f:.0}")
    } else {
        format!("{f}")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Style {
    Plain,
    Single,
    Double,
}

/// go-yaml's choice: plain unless the plain text would read back as
/// another type; then, when the emitter's analysis forbids plain,
/// single-quoted, or double-quoted when that is not allowed either.
fn style(s: &str, simple_key: bool) -> Style {
    if s.contains('\n') || resolves_to_non_string(s) || is_base60_float(s) {
        return Style::Double;
    }
    let a = analyze(s);
    if simple_key && a.multiline {
        return Style::Double;
    }
    if a.block_plain_allowed {
        Style::Plain
    } else if a.single_quoted_allowed {
        Style::Single
    } else {
        Style::Double
    }
}

struct Analysis {
    multiline: bool,
    block_plain_allowed: bool,
    single_quoted_allowed: bool,
}

/// go-yaml's scalar analysis, reduced to block context.
fn analyze(s: &str) -> Analysis {
    let chars: Vec<char> = s.chars().collect();
    let mut block_indicators = s.starts_with("---") || s.starts_with("...");
    let (mut line_breaks, mut special) = (false, false);
    let (mut leading, mut trailing) = (false, false);
    let (mut break_space, mut space_break) = (false, false);
    let (mut previous_space, mut previous_break) = (false, false);
    let mut preceded_by_whitespace = true;
    for (i, &c) in chars.iter().enumerate() {
        let next = chars.get(i + 1).copied();
        let followed_by_whitespace = next.is_none_or(|n| n == ' ' || n == '\t' || is_break(n));
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => block_indicators = true,
                '?' | ':' | '-' if followed_by_whitespace => block_indicators = true,
                _ => {}
            }
        } else {
            match c {
                ':' if followed_by_whitespace => block_indicators = true,
                '#' if preceded_by_whitespace => block_indicators = true,
                _ => {}
            }
        }
        if !printable(c) {
            special = true;
        }
        let last = i + 1 == chars.len();
        if c == ' ' {
            leading |= i == 0;
            trailing |= last;
            break_space |= previous_break;
            (previous_space, previous_break) = (true, false);
        } else if is_break(c) {
            line_breaks = true;
            leading |= i == 0;
            trailing |= last;
            space_break |= previous_space;
            (previous_space, previous_break) = (false, true);
        } else {
            (previous_space, previous_break) = (false, false);
        }
        preceded_by_whitespace = c == ' ' || c == '\t' || is_break(c) || c == '\0';
    }
    let plain_forbidden = leading
        || trailing
        || break_space
        || space_break
        || special
        || line_breaks
        || block_indicators;
    Analysis {
        multiline: line_breaks,
        block_plain_allowed: !plain_forbidden,
        single_quoted_allowed: !(break_space || space_break || special),
    }
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// The characters go-yaml writes as they are (in unicode mode).
fn printable(c: char) -> bool {
    let v = u32::from(c);
    v == 0x0a
        || (0x20..=0x7e).contains(&v)
        || (0xa0..=0xd7ff).contains(&v)
        || ((0xe000..=0xfffd).contains(&v) && v != 0xfeff)
}

fn escape(c: char) -> String {
    let short = match c {
        '\0' => '0',
        '\u{7}' => 'a',
        '\u{8}' => 'b',
        '\t' => 't',
        '\n' => 'n',
        '\u{b}' => 'v',
        '\u{c}' => 'f',
        '\r' => 'r',
        '\u{1b}' => 'e',
        '"' => '"',
        '\\' => '\\',
        '\u{85}' => 'N',
        '\u{a0}' => '_',
        '\u{2028}' => 'L',
        '\u{2029}' => 'P',
        _ => {
            let v = u32::from(c);
            return match v {
                0..=0xff => format!("\\x{v:02X}"),
                0x100..=0xffff => format!("\\u{v:04X}"),
                _ => format!("\\U{v:08X}"),
            };
        }
    };
    format!("\\{short}")
}

/// Whether go-yaml would read the plain text as something other than a
/// string (null, bool, number, timestamp, merge key).
fn resolves_to_non_string(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON", "n", "N", "no",
        "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF", "", "~", "null", "Null",
        "NULL", ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf",
        "-.Inf", "-.INF", "<<",
    ];
    if WORDS.contains(&s) {
        return true;
    }
    match s.as_bytes().first() {
        Some(b'.') => go_float(s),
        Some(b'0'..=b'9' | b'+' | b'-') => {
            is_timestamp(s) || {
                let plain = s.replace('_', "");
                go_int(&plain)
                    || (yaml_float_syntax(&plain) && go_float(&plain))
                    || binary_int(&plain)
            }
        }
        _ => false,
    }
}

/// `strconv.ParseInt(s, 0, 64)` or `ParseUint` succeeding.
fn go_int(s: &str) -> bool {
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let lower = digits.to_ascii_lowercase();
    let (radix, body) = if let Some(r) = lower.strip_prefix("0x") {
        (16, r)
    } else if let Some(r) = lower.strip_prefix("0b") {
        (2, r)
    } else if let Some(r) = lower.strip_prefix("0o") {
        (8, r)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if body.is_empty() {
        return false;
    }
    let Ok(magnitude) = u64::from_str_radix(body, radix) else {
        return false;
    };
    // ParseUint has no sign; ParseInt takes magnitudes up to 2^63.
    !negative || magnitude <= 1 << 63
}

/// `0b`-prefixed binary after a sign, as go-yaml's own fallback reads it.
fn binary_int(s: &str) -> bool {
    let body = s.strip_prefix("-0b").or_else(|| s.strip_prefix("0b"));
    body.is_some_and(|b| !b.is_empty() && u64::from_str_radix(b, 2).is_ok())
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn yaml_float_syntax(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => digits(frac),
        Some((int, frac)) => digits(int) && (frac.is_empty() || digits(frac)),
        None => digits(mantissa),
    };
    mantissa_ok && exponent.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)))
}

/// `strconv.ParseFloat(s, 64)` succeeding (finite results only: Go
/// reports overflow as an error).
fn go_float(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    if ["inf", "infinity", "nan"].contains(&body) {
        return lower.len() - body.len() <= 1;
    }
    s.parse::<f64>().is_ok_and(f64::is_finite)
}

/// go-yaml's `isBase60Float`: `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`.
fn is_base60_float(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let s = match s.split_once('.') {
        Some((head, frac)) if frac.bytes().all(|b| b.is_ascii_digit() || b == b'_') => head,
        Some(_) => return false,
        None => s,
    };
    let mut parts = s.split(':');
    let head = parts.next().unwrap_or("");
    let head_ok = head.as_bytes().first().is_some_and(u8::is_ascii_digit)
        && head.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    let mut sexagesimal = 0;
    for part in parts {
        let b = part.as_bytes();
        let ok = match b {
            [d] => d.is_ascii_digit(),
            [t, d] => (b'0'..=b'5').contains(t) && d.is_ascii_digit(),
            _ => false,
        };
        if !ok {
            return false;
        }
        sexagesimal += 1;
    }
    head_ok && sexagesimal > 0
}

/// go-yaml's timestamp forms: `2006-1-2T15:4:5.999999999Z07:00` (also with
/// `t`), `2006-1-2 15:4:5.999999999` and `2006-1-2`, with valid fields.
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 5 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return false;
    }
    let mut p = Parser { s: b, at: 5 };
    let year: u32 = s[..4].parse().unwrap_or(0);
    let (Some(month), true) = (p.number(), p.eat(b'-')) else {
        return false;
    };
    let Some(day) = p.number() else { return false };
    if !(1..=12).contains(&month) || day < 1 || day > days_in(year, month) {
        return false;
    }
    if p.done() {
        return true;
    }
    let zoned = match p.next() {
        Some(b'T' | b't') => true,
        Some(b' ') => false,
        _ => return false,
    };
    let clock = p.number().filter(|h| *h < 24).is_some()
        && p.eat(b':')
        && p.number().filter(|m| *m < 60).is_some()
        && p.eat(b':')
        && p.number().filter(|s| *s < 60).is_some();
    if !clock {
        return false;
    }
    if p.eat(b'.') && !p.digits() {
        return false;
    }
    if !zoned {
        return p.done();
    }
    match p.next() {
        Some(b'Z') => p.done(),
        Some(b'+' | b'-') => p.two_digits() && p.eat(b':') && p.two_digits() && p.done(),
        _ => false,
    }
}

fn days_in(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn done(&self) -> bool {
        self.at == self.s.len()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.s.get(self.at).copied();
        self.at += 1;
        c
    }

    fn eat(&mut self, c: u8) -> bool {
        let hit = self.s.get(self.at) == Some(&c);
        self.at += usize::from(hit);
        hit
    }

    /// One or two digits (Go's `1`, `2`, `15`, `4`, `5` layout fields).
    fn number(&mut self) -> Option<u32> {
        let start = self.at;
        while self.at < self.s.len() && self.at - start < 2 && self.s[self.at].is_ascii_digit() {
            self.at += 1;
        }
        std::str::from_utf8(&self.s[start..self.at])
            .ok()?
            .parse()
            .ok()
    }

    fn two_digits(&mut self) -> bool {
        let ok = self.s.len() >= self.at + 2
            && self.s[self.at..self.at + 2].iter().all(u8::is_ascii_digit);
        self.at += 2;
        ok
    }

    fn digits(&mut self) -> bool {
        let start = self.at;
        while self.at < self.s.len() && self.s[self.at].is_ascii_digit() {
            self.at += 1;
        }
        self.at > start
    }
}

/// go-yaml's key order: letters by code point, a non-letter before a
/// letter, digit runs by numeric value, then by length.
fn natural_order(a: &str, b: &str) -> Ordering {
    if natural_less(a, b) {
        Ordering::Less
    } else if natural_less(b, a) {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

fn natural_less(a: &str, b: &str) -> bool {
    let (ar, br): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    for i in 0..ar.len().min(br.len()) {
        if ar[i] == br[i] {
            continue;
        }
        let (al, bl) = (ar[i].is_alphabetic(), br[i].is_alphabetic());
        if al && bl {
            return ar[i] < br[i];
        }
        if al || bl {
            return bl;
        }
        let (mut an, mut bn) = (0i64, 0i64);
        if ar[i] == '0' || br[i] == '0' {
            let nonzero_before = ar[..i]
                .iter()
                .rev()
                .take_while(|c| c.is_ascii_digit())
                .any(|&c| c != '0');
            if nonzero_before {
                (an, bn) = (1, 1);
            }
        }
        let run = |r: &[char], n: &mut i64| {
            let mut end = i;
            while let Some(d) = r.get(end).and_then(|c| c.to_digit(10)) {
                *n = n.wrapping_mul(10).wrapping_add(i64::from(d));
                end += 1;
            }
            end
        };
        let (ai, bi) = (run(&ar, &mut an), run(&br, &mut bn));
        if an != bn {
            return an < bn;
        }
        if ai != bi {
            return ai < bi;
        }
        return ar[i] < br[i];
    }
    ar.len() < br.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by `hack/golden/yaml` (the codec factory of k8s.io/apimachinery
    /// v0.36.3, sigs.k8s.io/yaml over go-yaml v2): for each case the JSON body
    /// and the YAML body of the same object.
    const GOLDEN: &str = include_str!("yaml_golden.txt");

    fn golden(case: &str) -> Vec<u8> {
        let hex = GOLDEN
            .lines()
            .find_map(|l| l.strip_prefix(case)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no golden case {case}"));
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    fn check(case: &str) {
        let json = golden(&format!("{case}.json"));
        let want = String::from_utf8(golden(&format!("{case}.yaml"))).unwrap();
        let got = String::from_utf8(from_json(&json).unwrap()).unwrap();
        assert_eq!(got, want, "case {case}");
    }

    #[test]
    fn metrics_objects_match_go() {
        for case in ["pod", "pod_list", "empty_list"] {
            check(case);
        }
    }

    #[test]
    fn labels_of_every_scalar_rule_and_key_order_match_go() {
        check("node_list");
    }

    #[test]
    fn status_errors_fold_like_go() {
        for case in ["not_found", "forbidden", "bad_request"] {
            check(case);
        }
    }

    #[test]
    fn plain_text_that_reads_as_another_type_is_quoted() {
        for s in [
            "true",
            "Off",
            "~",
            "12",
            "0x1F",
            "1_000",
            "-5",
            "1e3",
            ".5",
            "2024-01-02",
        ] {
            assert_eq!(style(s, false), Style::Double, "{s}");
        }
        for s in [
            "1e400",
            "2024-02-30",
            "web-0",
            "15.004s",
            "7338891n",
            "12240Ki",
            "inf",
        ] {
            assert_eq!(style(s, false), Style::Plain, "{s}");
        }
        assert_eq!(style("a: b", false), Style::Single);
        assert_eq!(style("a\tb", false), Style::Double);
    }

    #[test]
    fn keys_sort_with_digit_runs_as_numbers() {
        let mut keys = vec!["a10", "a9", "b", "B", "a09", "_x", "9", "10"];
        keys.sort_by(|a, b| natural_order(a, b));
        // As go-yaml orders the golden labels _u, 9x, 10x, B2, a9, a09, a10, b1.
        assert_eq!(keys, ["_x", "9", "10", "B", "a9", "a09", "a10", "b"]);
    }

    #[test]
    fn not_json_is_none() {
        assert!(from_json(b"{").is_none());
    }
}
