//! The decoder as it was before the fast rewrite (commit a3653e5), kept only
//! for tests: the differential test in `super::tests` runs it beside the new
//! one on generated and malformed bodies and requires equal outcomes. Do not
//! optimise this copy; its job is to stay the reference.

use std::borrow::Cow;
use std::collections::HashMap;

use memchr::{memchr, memchr2};

use super::{
    LineError, LineErrorKind, NodeScrape, ParseOutcome, PodScrape, RejectedContainer,
    RejectedValue, ValueProblem,
};
use crate::rate::MetricsPoint;

/// The five families metrics-server reads. Everything else is skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    ContainerCpu,
    ContainerMemory,
    ContainerStartTime,
    NodeCpu,
    NodeMemory,
}

impl Family {
    /// The family's metric name.
    fn name(self) -> &'static str {
        match self {
            Family::ContainerCpu => "container_cpu_usage_seconds_total",
            Family::ContainerMemory => "container_memory_working_set_bytes",
            Family::ContainerStartTime => "container_start_time_seconds",
            Family::NodeCpu => "node_cpu_usage_seconds_total",
            Family::NodeMemory => "node_memory_working_set_bytes",
        }
    }
}

fn family(name: &[u8]) -> Option<Family> {
    Some(match name {
        b"container_cpu_usage_seconds_total" => Family::ContainerCpu,
        b"container_memory_working_set_bytes" => Family::ContainerMemory,
        b"container_start_time_seconds" => Family::ContainerStartTime,
        b"node_cpu_usage_seconds_total" => Family::NodeCpu,
        b"node_memory_working_set_bytes" => Family::NodeMemory,
        _ => return None,
    })
}

/// Borrowed `(namespace, pod, container)` key.
type Key<'a> = (Cow<'a, str>, Cow<'a, str>, Cow<'a, str>);

/// 2^63 and 2^64 as floats: the first values whose conversion to `i64` or
/// `u64` would saturate.
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;

/// Cumulative CPU seconds as nanoseconds: `trunc(v * 1e9)` as upstream,
/// when that fits a `u64`.
fn cpu_nanos(v: f64) -> Result<u64, ValueProblem> {
    let nanos = check_sign_and_finite(v)? * 1e9;
    if nanos >= TWO_POW_64 {
        return Err(ValueProblem::CpuTooLarge);
    }
    Ok(nanos as u64)
}

/// Working-set bytes: `trunc(v)`, at most `i64::MAX` (a Quantity's range).
fn memory_bytes(v: f64) -> Result<u64, ValueProblem> {
    let bytes = check_sign_and_finite(v)?;
    if bytes >= TWO_POW_63 {
        return Err(ValueProblem::MemoryTooLarge);
    }
    Ok(bytes as u64)
}

/// Start time as unix nanoseconds. A time, not a quantity: before 1970 is
/// allowed as upstream, and a finite time beyond the `i64` range saturates
/// (it only makes the container look restarted); NaN and infinities are
/// rejected.
fn start_time_nanos(v: f64) -> Result<i64, ValueProblem> {
    if !v.is_finite() {
        return Err(ValueProblem::NotFinite);
    }
    Ok((v * 1e9) as i64)
}

fn check_sign_and_finite(v: f64) -> Result<f64, ValueProblem> {
    if !v.is_finite() {
        Err(ValueProblem::NotFinite)
    } else if v < 0.0 {
        Err(ValueProblem::Negative)
    } else {
        Ok(v)
    }
}

/// A container's sample and, per value (CPU, memory, start time), the
/// rejection in effect (index + 1 into the decoder's list, 0 for none).
#[derive(Default)]
struct Entry {
    point: MetricsPoint,
    rejected: [u32; 3],
}

/// Accumulates the samples of one body.
#[derive(Default)]
struct Decoder<'a> {
    errors: Vec<LineError>,
    node: MetricsPoint,
    node_seen: bool,
    /// Rejections in effect for node CPU and memory (index + 1, 0 for none).
    node_rejected: [u32; 2],
    containers: HashMap<Key<'a>, Entry>,
    rejections: Vec<RejectedValue>,
}

impl<'a> Decoder<'a> {
    /// Records a rejected value; returns its slot marker (index + 1).
    fn reject(&mut self, line: usize, sample: &Sample<'_>, problem: ValueProblem) -> u32 {
        let text = &sample.value_text[..sample.value_text.len().min(64)];
        self.rejections.push(RejectedValue {
            line,
            metric: sample.family.name(),
            value: String::from_utf8_lossy(text).into_owned(),
            problem,
        });
        u32::try_from(self.rejections.len()).unwrap_or(u32::MAX)
    }

    /// Stores one sample like upstream (the last line of a series wins),
    /// converting its value or recording why it cannot be stored; a
    /// rejected value is stored as 0, so the zero rule drops it too.
    fn apply(&mut self, line: usize, sample: Sample<'a>, ts: i64) {
        let v = sample.value;
        let family = sample.family;
        let start = (family == Family::ContainerStartTime).then(|| start_time_nanos(v));
        let amount = match family {
            Family::NodeCpu | Family::ContainerCpu => cpu_nanos(v),
            Family::NodeMemory | Family::ContainerMemory => memory_bytes(v),
            Family::ContainerStartTime => Ok(0),
        };
        let marker = match amount.err().or(start.and_then(Result::err)) {
            Some(problem) => self.reject(line, &sample, problem),
            None => 0,
        };
        let amount = amount.unwrap_or(0);
        match family {
            Family::NodeCpu | Family::NodeMemory => {
                if family == Family::NodeCpu {
                    self.node.cumulative_cpu_ns = amount;
                    self.node_rejected[0] = marker;
                } else {
                    self.node.memory_bytes = amount;
                    self.node_rejected[1] = marker;
                }
                self.node.timestamp_ns = ts;
                self.node_seen = true;
            }
            Family::ContainerCpu | Family::ContainerMemory | Family::ContainerStartTime => {
                let key = (sample.namespace, sample.pod, sample.container);
                let e = self.containers.entry(key).or_default();
                let c = &mut e.point;
                match family {
                    Family::ContainerCpu => {
                        c.cumulative_cpu_ns = amount;
                        c.timestamp_ns = ts;
                        e.rejected[0] = marker;
                    }
                    Family::ContainerMemory => {
                        c.memory_bytes = amount;
                        c.timestamp_ns = ts;
                        e.rejected[1] = marker;
                    }
                    _ => {
                        c.start_time_ns = start.and_then(Result::ok).unwrap_or(0);
                        e.rejected[2] = marker;
                    }
                }
            }
        }
    }

    fn rejection(&self, marker: u32) -> Option<RejectedValue> {
        let i = usize::try_from(marker).ok()?.checked_sub(1)?;
        self.rejections.get(i).cloned()
    }
}

/// Parses a kubelet exposition, collecting per-line errors instead of
/// stopping, then applies the keep/drop rules of spec C.7.10.
pub(super) fn parse_exposition(body: &[u8], request_time_ns: i64) -> ParseOutcome {
    let default_ms = request_time_ns.div_euclid(1_000_000);
    let mut d = Decoder::default();
    let mut rest = body;
    let mut line_no = 0usize;
    while !rest.is_empty() {
        line_no += 1;
        let (line, next) = match memchr(b'\n', rest) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        match parse_line(line) {
            Ok(Some(sample)) => {
                // Upstream: time.Unix(0, ms*1e6), with int64 wrap-around.
                let ts = sample
                    .timestamp_ms
                    .unwrap_or(default_ms)
                    .wrapping_mul(1_000_000);
                d.apply(line_no, sample, ts);
            }
            Ok(None) => {}
            Err(kind) => d.errors.push(LineError {
                line: line_no,
                kind,
            }),
        }
    }
    finish(d)
}

/// Applies the keep/drop rules to everything decoded.
fn finish(d: Decoder<'_>) -> ParseOutcome {
    // C.7.10: the node needs non-zero CPU and memory (a CPU or memory line
    // always sets the timestamp, so upstream's timestamp check is implied),
    // and no value that could not be stored.
    let rejected_node = d.node_rejected.iter().find_map(|&m| d.rejection(m));
    let node_complete = d.node_seen
        && rejected_node.is_none()
        && d.node.cumulative_cpu_ns != 0
        && d.node.memory_bytes != 0;

    // Group containers into pods in (namespace, pod, container) order; a pod
    // with any container lacking CPU or memory, or with a rejected value, is
    // dropped whole.
    let mut rejected_containers = Vec::new();
    let mut entries: Vec<(&Key<'_>, &Entry)> = d.containers.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut pods = Vec::new();
    let mut incomplete_pods = Vec::new();
    for group in entries.chunk_by(|a, b| a.0.0 == b.0.0 && a.0.1 == b.0.1) {
        let mut complete = true;
        for ((ns, pod, container), e) in group {
            if let Some(value) = e.rejected.iter().find_map(|&m| d.rejection(m)) {
                complete = false;
                rejected_containers.push(RejectedContainer {
                    namespace: ns.to_string(),
                    pod: pod.to_string(),
                    container: container.to_string(),
                    value,
                });
            }
            complete &= e.point.cumulative_cpu_ns != 0 && e.point.memory_bytes != 0;
        }
        let Some(((ns, pod, _), _)) = group.first() else {
            continue;
        };
        if complete {
            pods.push(PodScrape {
                namespace: ns.to_string(),
                name: pod.to_string(),
                containers: group
                    .iter()
                    .map(|(k, e)| (k.2.to_string(), e.point))
                    .collect(),
            });
        } else {
            incomplete_pods.push((ns.to_string(), pod.to_string()));
        }
    }

    ParseOutcome {
        scrape: NodeScrape {
            node: node_complete.then_some(d.node),
            pods,
        },
        errors: d.errors,
        incomplete_node: d.node_seen && !node_complete,
        incomplete_pods,
        rejected_node,
        rejected_containers,
    }
}

/// One decoded sample line of a used family.
struct Sample<'a> {
    family: Family,
    namespace: Cow<'a, str>,
    pod: Cow<'a, str>,
    container: Cow<'a, str>,
    value: f64,
    /// The value token as written, for rejection reasons.
    value_text: &'a [u8],
    timestamp_ms: Option<i64>,
}

fn is_ws(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

fn skip_ws(l: &[u8], mut i: usize) -> usize {
    while i < l.len() && is_ws(l[i]) {
        i += 1;
    }
    i
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

fn is_label_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_label_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Parses one line. `Ok(None)` for blank lines, comments and other families.
fn parse_line(l: &[u8]) -> Result<Option<Sample<'_>>, LineErrorKind> {
    let mut i = skip_ws(l, 0);
    let Some(&first) = l.get(i) else {
        return Ok(None);
    };
    if first == b'#' {
        return Ok(None);
    }
    if !is_name_start(first) {
        // `{"name",...}` is the quoted-name form of newer exporters; the
        // kubelet never uses it for the families we read.
        return if first == b'{' {
            Ok(None)
        } else {
            Err(LineErrorKind::InvalidStart)
        };
    }
    let name_start = i;
    while i < l.len() && is_name_char(l[i]) {
        i += 1;
    }
    let Some(family) = family(&l[name_start..i]) else {
        return Ok(None);
    };
    let mut sample = Sample {
        family,
        namespace: Cow::Borrowed(""),
        pod: Cow::Borrowed(""),
        container: Cow::Borrowed(""),
        value: 0.0,
        value_text: &[],
        timestamp_ms: None,
    };
    let j = skip_ws(l, i);
    if l.get(j) == Some(&b'{') {
        if j > i {
            // Upstream matches the family on the raw series text, which then
            // has a space before `{`: such a line is not one of ours.
            return Ok(None);
        }
        i = parse_labels(l, j + 1, &mut sample)?;
        i = skip_ws(l, i);
    } else {
        i = j;
    }
    // The value token runs to the next blank or `{` (textparse: [^{ \t\n]+).
    let value_start = i;
    while i < l.len() && !is_ws(l[i]) && l[i] != b'{' {
        i += 1;
    }
    if i == value_start {
        return Err(LineErrorKind::MissingValue);
    }
    sample.value_text = &l[value_start..i];
    sample.value = parse_go_float(sample.value_text).ok_or(LineErrorKind::InvalidValue)?;
    i = skip_ws(l, i);
    if i < l.len() {
        if l[i] == b'-' {
            return Err(LineErrorKind::NegativeTimestamp);
        }
        let ts_start = i;
        while i < l.len() && l[i].is_ascii_digit() {
            i += 1;
        }
        if i == ts_start {
            return Err(LineErrorKind::InvalidTimestamp);
        }
        let digits =
            std::str::from_utf8(&l[ts_start..i]).map_err(|_| LineErrorKind::InvalidTimestamp)?;
        sample.timestamp_ms = Some(
            digits
                .parse()
                .map_err(|_| LineErrorKind::InvalidTimestamp)?,
        );
        if skip_ws(l, i) != l.len() {
            return Err(LineErrorKind::TrailingData);
        }
    }
    Ok(Some(sample))
}

/// Parses `l="v", ...}` starting just after `{`; returns the index after `}`.
fn parse_labels<'a>(
    l: &'a [u8],
    mut i: usize,
    sample: &mut Sample<'a>,
) -> Result<usize, LineErrorKind> {
    let (mut have_ns, mut have_pod, mut have_container) = (false, false, false);
    loop {
        i = skip_ws(l, i);
        let Some(&c) = l.get(i) else {
            return Err(LineErrorKind::UnterminatedLabels);
        };
        if c == b'}' {
            return Ok(i + 1);
        }
        if !is_label_start(c) {
            return Err(LineErrorKind::ExpectedLabelName);
        }
        let name_start = i;
        while i < l.len() && is_label_char(l[i]) {
            i += 1;
        }
        let name = &l[name_start..i];
        i = skip_ws(l, i);
        if l.get(i) != Some(&b'=') {
            return Err(LineErrorKind::ExpectedEqual);
        }
        i = skip_ws(l, i + 1);
        if l.get(i) != Some(&b'"') {
            return Err(LineErrorKind::ExpectedLabelValue);
        }
        i += 1;
        // Find the closing quote, stepping over `\x` escape pairs.
        let value_start = i;
        let mut escaped = false;
        loop {
            let Some(off) = memchr2(b'"', b'\\', &l[i..]) else {
                return Err(LineErrorKind::UnterminatedLabels);
            };
            i += off;
            if l[i] == b'"' {
                break;
            }
            escaped = true;
            i += 2;
            if i > l.len() {
                return Err(LineErrorKind::UnterminatedLabels);
            }
        }
        let raw =
            std::str::from_utf8(&l[value_start..i]).map_err(|_| LineErrorKind::InvalidUtf8)?;
        i += 1;
        let slot = match name {
            b"namespace" if !have_ns => {
                have_ns = true;
                Some(&mut sample.namespace)
            }
            b"pod" if !have_pod => {
                have_pod = true;
                Some(&mut sample.pod)
            }
            b"container" if !have_container => {
                have_container = true;
                Some(&mut sample.container)
            }
            _ => None,
        };
        if let Some(slot) = slot {
            *slot = if escaped {
                Cow::Owned(unescape_label_value(raw))
            } else {
                Cow::Borrowed(raw)
            };
        }
        i = skip_ws(l, i);
        if l.get(i) == Some(&b',') {
            i += 1;
        }
    }
}

/// textparse's `lvalReplacer`: `\"` -> `"`, `\\` -> `\`, `\n` -> newline;
/// any other backslash is kept as is.
fn unescape_label_value(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.peek() {
                Some('"') => {
                    out.push('"');
                    chars.next();
                }
                Some('\\') => {
                    out.push('\\');
                    chars.next();
                }
                Some('n') => {
                    out.push('\n');
                    chars.next();
                }
                _ => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Go `strconv.ParseFloat(s, 64)` as textparse uses it: decimal syntax or
/// `inf`/`infinity` (any case, optional sign) or `nan` (any case, no sign);
/// `p`, `P`, `_` rejected up front; overflow to infinity is an error.
pub(super) fn parse_go_float(s: &[u8]) -> Option<f64> {
    if s.iter().any(|&c| matches!(c, b'p' | b'P' | b'_')) {
        return None;
    }
    let (sign, body) = match s.first()? {
        b'+' => (1.0, &s[1..]),
        b'-' => (-1.0, &s[1..]),
        _ => (1.0, s),
    };
    if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
        return Some(sign * f64::INFINITY);
    }
    if s.eq_ignore_ascii_case(b"nan") {
        return Some(f64::NAN);
    }
    // [digits][.digits] with at least one digit, then [eE][+-]digits.
    let mut i = 0;
    let mut digits = 0;
    while i < body.len() && body[i].is_ascii_digit() {
        i += 1;
        digits += 1;
    }
    if i < body.len() && body[i] == b'.' {
        i += 1;
        while i < body.len() && body[i].is_ascii_digit() {
            i += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return None;
    }
    if i < body.len() && (body[i] == b'e' || body[i] == b'E') {
        i += 1;
        if i < body.len() && (body[i] == b'+' || body[i] == b'-') {
            i += 1;
        }
        let exp_start = i;
        while i < body.len() && body[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return None;
        }
    }
    if i != body.len() {
        return None;
    }
    let v: f64 = std::str::from_utf8(s).ok()?.parse().ok()?;
    // Go reports ErrRange (a parse error for textparse) on overflow.
    v.is_finite().then_some(v)
}
