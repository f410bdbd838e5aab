//! Decoder for the kubelet's `/metrics/resource` Prometheus text exposition
//! (spec C.6, C.7).
//!
//! Hand written over bytes: lines are split with `memchr`, comments and every
//! family other than the five used ones are skipped after a prefix compare,
//! label values are borrowed (copied only when they contain a `\`), and
//! samples are keyed by borrowed `(namespace, pod, container)` until the
//! result is built. The kubelet lists the same containers in the same order
//! in every family, so a series is first matched against the container
//! after the previous one by the text of its label set; only a miss decodes
//! the labels, and hashing starts only if series arrive out of order. The
//! common float spellings are converted exactly without `str::parse`. The
//! decoder before these shortcuts is kept as a test oracle
//! (`exposition/oracle.rs`), and a differential test requires equal outcomes.
//!
//! Parsing never stops at a bad line: [`parse_exposition`] returns what it
//! decoded together with every line error ([`ParseOutcome`]). Upstream fails
//! the whole node on any syntax error; [`ParseOutcome::into_result`] and
//! [`decode_node`] apply that rule.
//!
//! Syntax follows Prometheus' `textparse` lexer for the lines it checks:
//! whitespace between tokens, `name{l="v",...} value [timestamp]`, optional
//! trailing comma in label sets, Go float syntax for values (`NaN`, `+Inf`,
//! `1.253376e+07`; no hex, no `_`, overflow is an error), and a timestamp of
//! ASCII digits only (so `-62135596800000` is an error).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;

use memchr::{memchr, memchr2};
use thiserror::Error;

use crate::rate::MetricsPoint;

#[cfg(test)]
mod differential;
#[cfg(test)]
mod oracle;

/// What one kubelet scrape contributes to a batch, after the keep/drop rules
/// of spec C.7.10.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeScrape {
    /// The node sample, kept only if CPU and memory are both non-zero.
    pub node: Option<MetricsPoint>,
    /// Pods sorted by (namespace, name); containers sorted by name.
    pub pods: Vec<PodScrape>,
}

/// The containers of one pod from one scrape.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodScrape {
    /// Pod namespace (`namespace` label).
    pub namespace: String,
    /// Pod name (`pod` label).
    pub name: String,
    /// `(container name, sample)`, sorted by name, names unique.
    pub containers: Vec<(String, MetricsPoint)>,
}

/// Result of [`parse_exposition`]: the decoded scrape plus everything that
/// went wrong, so the caller chooses how strict to be.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParseOutcome {
    /// Decoded data (lines with errors contribute nothing).
    pub scrape: NodeScrape,
    /// Syntax errors, in line order.
    pub errors: Vec<LineError>,
    /// Node lines were present but CPU or memory was zero, missing or
    /// rejected (upstream logs `Failed getting complete node metric` at V(1)).
    pub incomplete_node: bool,
    /// `(namespace, pod)` of pods dropped because a container had zero,
    /// missing or rejected CPU or memory, or a rejected start time (upstream:
    /// `Failed getting complete Pod metric`).
    pub incomplete_pods: Vec<(String, String)>,
    /// Why the node point was dropped when a value could not be stored
    /// (NaN, infinite, negative or too large); see [`RejectedValue`].
    pub rejected_node: Option<RejectedValue>,
    /// The containers whose values could not be stored; each one's pod is
    /// also in `incomplete_pods`.
    pub rejected_containers: Vec<RejectedContainer>,
}

/// A sample value that cannot be stored. Like a zero value, it drops the
/// node point (node families) or the whole pod (container families) for
/// this scrape; it is not a syntax error, so the rest of the node is kept.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RejectedValue {
    /// 1-based line number.
    pub line: usize,
    /// The family name, e.g. `node_memory_working_set_bytes`.
    pub metric: &'static str,
    /// The value as the kubelet wrote it (at most 64 bytes of it).
    pub value: String,
    /// What is wrong with it.
    pub problem: ValueProblem,
}

impl fmt::Display for RejectedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}: {} value {} {}",
            self.line, self.metric, self.value, self.problem
        )
    }
}

/// Why a value cannot be stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Error)]
pub enum ValueProblem {
    /// NaN or an infinity.
    #[error("is not a finite number")]
    NotFinite,
    /// CPU time and memory cannot be negative.
    #[error("is negative")]
    Negative,
    /// CPU seconds whose nanoseconds exceed `u64::MAX`.
    #[error(
        "exceeds the largest CPU counter that can be stored (18446744073.709551615 core-seconds)"
    )]
    CpuTooLarge,
    /// Memory bytes above `i64::MAX`, the largest quantity Kubernetes has.
    #[error("exceeds the largest memory quantity (9223372036854775807 bytes)")]
    MemoryTooLarge,
}

/// A container whose values could not be stored.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RejectedContainer {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Container name.
    pub container: String,
    /// The first rejected value still in effect for it.
    pub value: RejectedValue,
}

impl fmt::Display for RejectedContainer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "container {}/{}/{}: {}",
            self.namespace, self.pod, self.container, self.value
        )
    }
}

impl ParseOutcome {
    /// Applies upstream's rule: any syntax error fails the whole node.
    pub fn into_result(self) -> Result<NodeScrape, DecodeError> {
        match self.errors.first() {
            None => Ok(self.scrape),
            Some(first) => Err(DecodeError {
                first: *first,
                count: self.errors.len(),
            }),
        }
    }
}

/// A syntax error on one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LineError {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub kind: LineErrorKind,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.kind)
    }
}

/// The kinds of syntax error the decoder reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Error)]
pub enum LineErrorKind {
    /// The line starts with something that is not a metric name or comment.
    #[error("expected a valid start token")]
    InvalidStart,
    /// A label set is not `name="value"` pairs separated by commas.
    #[error("expected label name")]
    ExpectedLabelName,
    /// A label name is not followed by `=`.
    #[error("expected equal")]
    ExpectedEqual,
    /// `=` is not followed by a quoted value.
    #[error("expected label value")]
    ExpectedLabelValue,
    /// A label value or the label set is not closed on the line.
    #[error("unterminated label set")]
    UnterminatedLabels,
    /// A label value is not valid UTF-8.
    #[error("invalid UTF-8 label value")]
    InvalidUtf8,
    /// No value after the metric name or labels.
    #[error("expected value after metric")]
    MissingValue,
    /// The value is not a Go float (or overflows float64).
    #[error("invalid sample value")]
    InvalidValue,
    /// The timestamp starts with `-`.
    #[error("negative timestamp")]
    NegativeTimestamp,
    /// The timestamp is not ASCII digits or overflows int64.
    #[error("expected timestamp or new record")]
    InvalidTimestamp,
    /// Something follows the timestamp.
    #[error("expected next entry after timestamp")]
    TrailingData,
}

/// The node's exposition could not be decoded (upstream: `failed parsing
/// metrics`), so the node contributes nothing this tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[error("failed parsing metrics: {first} ({count} error(s))")]
pub struct DecodeError {
    /// The first error.
    pub first: LineError,
    /// How many lines had errors.
    pub count: usize,
}

/// Parses one kubelet response body with upstream's all-or-nothing rule.
///
/// `request_time_ns` (unix ns, taken just before sending the request) stamps
/// samples without a timestamp; like upstream it is truncated to milliseconds.
pub fn decode_node(body: &[u8], request_time_ns: i64) -> Result<NodeScrape, DecodeError> {
    parse_exposition(body, request_time_ns).into_result()
}

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
    fn is_container(self) -> bool {
        matches!(
            self,
            Family::ContainerCpu | Family::ContainerMemory | Family::ContainerStartTime
        )
    }

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

/// The family whose name starts `s`, and the name's length. A metric name
/// is the longest run of name characters, so it is ours exactly when `s`
/// starts with our name and the next byte is not a name character; one or
/// two byte tests pick the only candidate, so other families cost a short
/// compare and no scan of their name.
fn family_at(s: &[u8]) -> Option<(Family, usize)> {
    let family = if s.starts_with(b"container_") {
        match s.get(10)? {
            b'c' => Family::ContainerCpu,
            b'm' => Family::ContainerMemory,
            b's' => Family::ContainerStartTime,
            _ => return None,
        }
    } else if s.starts_with(b"node_") {
        match s.get(5)? {
            b'c' => Family::NodeCpu,
            b'm' => Family::NodeMemory,
            _ => return None,
        }
    } else {
        return None;
    };
    // One call per family, so each compare has a constant length and is
    // inlined instead of calling memcmp.
    let matched = match family {
        Family::ContainerCpu => named(s, "container_cpu_usage_seconds_total"),
        Family::ContainerMemory => named(s, "container_memory_working_set_bytes"),
        Family::ContainerStartTime => named(s, "container_start_time_seconds"),
        Family::NodeCpu => named(s, "node_cpu_usage_seconds_total"),
        Family::NodeMemory => named(s, "node_memory_working_set_bytes"),
    };
    matched.map(|len| (family, len))
}

/// The length of `name` if `s` starts with exactly that metric name.
#[inline(always)]
fn named(s: &[u8], name: &'static str) -> Option<usize> {
    let n = name.len();
    (s.starts_with(name.as_bytes()) && !s.get(n).is_some_and(|&c| is_name_char(c))).then_some(n)
}

/// `(namespace, pod, container)`, borrowed from the body unless a value had
/// escapes. Bytes, not `str`: values are checked to be UTF-8 when read, and
/// converted only for the names that end up in the result.
type Key<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>, Cow<'a, [u8]>);

/// The kubelet's series order within a family: label values in label-name
/// order (container, namespace, pod).
fn kubelet_order(a: &Key<'_>, b: &Key<'_>) -> Ordering {
    a.2.cmp(&b.2)
        .then_with(|| a.0.cmp(&b.0))
        .then_with(|| a.1.cmp(&b.1))
}

/// A name read from the body; it was checked to be UTF-8 then, so the lossy
/// fallback never runs (it only avoids a panic path).
fn owned_str(b: &[u8]) -> String {
    std::str::from_utf8(b).map_or_else(|_| String::from_utf8_lossy(b).into_owned(), str::to_owned)
}

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

/// One container seen in the body.
struct Container<'a> {
    key: Key<'a>,
    /// The label set (`{` to `}`) of its first line: a later line with the
    /// same text has the same key, whatever the text holds.
    labels: &'a [u8],
    entry: Entry,
}

/// Accumulates the samples of one body.
#[derive(Default)]
struct Decoder<'a> {
    errors: Vec<LineError>,
    node: MetricsPoint,
    node_seen: bool,
    /// Rejections in effect for node CPU and memory (index + 1, 0 for none).
    node_rejected: [u32; 2],
    /// Every container seen, keys unique, in first-seen order.
    containers: Vec<Container<'a>>,
    /// Key -> position in `containers`, built only once `containers` stops
    /// being ascending in [`kubelet_order`]; until then (always, for a
    /// kubelet's own output) a new key is one beyond the last and any other
    /// is found by binary search, with no hashing.
    index: Option<HashMap<Key<'a>, usize>>,
    /// Where the next series probably is: each family lists the same
    /// containers in the same order, so after the first line of a family
    /// a line's label set is usually the text of the container here, and
    /// one comparison replaces decoding it.
    cursor: usize,
    rejections: Vec<RejectedValue>,
}

impl<'a> Decoder<'a> {
    /// Records a rejected value; returns its slot marker (index + 1).
    fn reject(&mut self, line: usize, sample: &Sample<'_>, problem: ValueProblem) -> u32 {
        let text = sample.value_text.get(..64).unwrap_or(sample.value_text);
        self.rejections.push(RejectedValue {
            line,
            metric: sample.family.name(),
            value: String::from_utf8_lossy(text).into_owned(),
            problem,
        });
        u32::try_from(self.rejections.len()).unwrap_or(u32::MAX)
    }

    /// The label set of the container at the cursor, if any.
    fn hint(&self) -> &'a [u8] {
        self.containers.get(self.cursor).map_or(&[], |c| c.labels)
    }

    /// The position of `key` in `containers`, adding it if new.
    fn position(&mut self, key: Key<'a>, labels: &'a [u8]) -> usize {
        if self
            .containers
            .get(self.cursor)
            .is_some_and(|c| c.key == key)
        {
            return self.cursor;
        }
        let n = self.containers.len();
        let new = |key| Container {
            key,
            labels,
            entry: Entry::default(),
        };
        if self.index.is_none() {
            let found = match self.containers.last() {
                Some(last) if kubelet_order(&last.key, &key) != Ordering::Less => self
                    .containers
                    .binary_search_by(|c| kubelet_order(&c.key, &key)),
                _ => Err(n),
            };
            match found {
                Ok(i) => return i,
                Err(i) if i == n => {
                    self.containers.push(new(key));
                    return n;
                }
                // Out of order: from now on, hash.
                Err(_) => {
                    let index = self
                        .containers
                        .iter()
                        .enumerate()
                        .map(|(i, c)| (c.key.clone(), i))
                        .collect();
                    self.index = Some(index);
                }
            }
        }
        let index = self.index.get_or_insert_default();
        if let Some(&i) = index.get(&key) {
            return i;
        }
        index.insert(key.clone(), n);
        self.containers.push(new(key));
        n
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
                let i = if sample.at_cursor {
                    self.cursor
                } else {
                    let key = (sample.namespace, sample.pod, sample.container);
                    self.position(key, sample.labels)
                };
                self.cursor = i + 1;
                let Some(Container { entry: e, .. }) = self.containers.get_mut(i) else {
                    return;
                };
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
pub fn parse_exposition(body: &[u8], request_time_ns: i64) -> ParseOutcome {
    let default_ms = request_time_ns.div_euclid(1_000_000);
    // A kubelet writes about 600 bytes per container (four series and its
    // share of the pod series); sizing for that saves the growth copies.
    let mut d = Decoder {
        containers: Vec::with_capacity((body.len() / 512).min(1 << 16)),
        ..Decoder::default()
    };
    let mut line_no = 0usize;
    for line in Lines(body) {
        line_no += 1;
        match parse_line(line, d.hint()) {
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

/// The body's lines without their `\n`; no empty last line after a final
/// `\n`.
struct Lines<'a>(&'a [u8]);

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.0.is_empty() {
            return None;
        }
        let (line, rest) = match memchr(b'\n', self.0) {
            Some(i) => (self.0.get(..i)?, self.0.get(i + 1..)?),
            None => (self.0, &[][..]),
        };
        self.0 = rest;
        Some(line)
    }
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
    let mut entries: Vec<(&Key<'_>, &Entry)> =
        d.containers.iter().map(|c| (&c.key, &c.entry)).collect();
    if d.index.is_none() {
        // Still in kubelet order (container, namespace, pod): one ascending
        // run per container name, which a stable sort on (namespace, pod)
        // merges in linear time, leaving containers in name order.
        entries.sort_by(|a, b| (&a.0.0, &a.0.1).cmp(&(&b.0.0, &b.0.1)));
    } else {
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    }
    let same_pod =
        |a: &(&Key<'_>, &Entry), b: &(&Key<'_>, &Entry)| a.0.0 == b.0.0 && a.0.1 == b.0.1;
    let mut pods = Vec::with_capacity(entries.chunk_by(same_pod).count());
    let mut incomplete_pods = Vec::new();
    for group in entries.chunk_by(same_pod) {
        let mut complete = true;
        for &((ns, pod, container), e) in group {
            if let Some(value) = e.rejected.iter().find_map(|&m| d.rejection(m)) {
                complete = false;
                rejected_containers.push(RejectedContainer {
                    namespace: owned_str(ns),
                    pod: owned_str(pod),
                    container: owned_str(container),
                    value,
                });
            }
            complete &= e.point.cumulative_cpu_ns != 0 && e.point.memory_bytes != 0;
        }
        let Some(&((ns, pod, _), _)) = group.first() else {
            continue;
        };
        if complete {
            pods.push(PodScrape {
                namespace: owned_str(ns),
                name: owned_str(pod),
                containers: group
                    .iter()
                    .map(|(k, e)| (owned_str(&k.2), e.point))
                    .collect(),
            });
        } else {
            incomplete_pods.push((owned_str(ns), owned_str(pod)));
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
    namespace: Cow<'a, [u8]>,
    pod: Cow<'a, [u8]>,
    container: Cow<'a, [u8]>,
    /// The label set as written (`{` to `}`), empty without one.
    labels: &'a [u8],
    /// The label set is the cursor container's: the key was not decoded.
    at_cursor: bool,
    value: f64,
    /// The value token as written, for rejection reasons.
    value_text: &'a [u8],
    timestamp_ms: Option<i64>,
}

/// Byte classes, one table lookup per byte in the scanning loops.
const NAME_START: u8 = 1;
const NAME: u8 = 2;
const LABEL_START: u8 = 4;
const LABEL: u8 = 8;
/// Ends a value token (textparse: `[^{ \t\n]+`; `\n` never reaches a line).
const VALUE_END: u8 = 16;

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let alpha = b.is_ascii_alphabetic() || b == b'_';
        let digit = b.is_ascii_digit();
        let mut k = 0;
        if alpha || b == b':' {
            k |= NAME_START | NAME;
        }
        if digit {
            k |= NAME | LABEL;
        }
        if alpha {
            k |= LABEL_START | LABEL;
        }
        if b == b' ' || b == b'\t' || b == b'{' {
            k |= VALUE_END;
        }
        t[c] = k;
        c += 1;
    }
    t
};

fn class(c: u8) -> u8 {
    CLASS[usize::from(c)]
}

fn is_ws(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

fn skip_ws(l: &[u8], mut i: usize) -> usize {
    while l.get(i).is_some_and(|&c| is_ws(c)) {
        i += 1;
    }
    i
}

fn is_name_char(c: u8) -> bool {
    class(c) & NAME != 0
}

/// Parses one line. `Ok(None)` for blank lines, comments and other families.
/// `hint` is the label set of the container the line probably belongs to.
fn parse_line<'a>(l: &'a [u8], hint: &[u8]) -> Result<Option<Sample<'a>>, LineErrorKind> {
    let mut i = skip_ws(l, 0);
    let Some(&first) = l.get(i) else {
        return Ok(None);
    };
    if first == b'#' {
        return Ok(None);
    }
    if class(first) & NAME_START == 0 {
        // `{"name",...}` is the quoted-name form of newer exporters; the
        // kubelet never uses it for the families we read.
        return if first == b'{' {
            Ok(None)
        } else {
            Err(LineErrorKind::InvalidStart)
        };
    }
    let Some((family, name_len)) = family_at(l.get(i..).unwrap_or_default()) else {
        return Ok(None);
    };
    i += name_len;
    let mut sample = Sample {
        family,
        namespace: Cow::Borrowed(&[]),
        pod: Cow::Borrowed(&[]),
        container: Cow::Borrowed(&[]),
        labels: &[],
        at_cursor: false,
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
        let rest = l.get(j..).unwrap_or_default();
        // Same text, same outcome: decoding a label set reads nothing after
        // its `}`.
        if !hint.is_empty() && rest.starts_with(hint) && family.is_container() {
            sample.at_cursor = true;
            i = j + hint.len();
        } else {
            i = parse_labels(l, j + 1, &mut sample)?;
        }
        sample.labels = l.get(j..i).unwrap_or_default();
        i = skip_ws(l, i);
    } else {
        i = j;
    }
    let value_start = i;
    while l.get(i).is_some_and(|&c| class(c) & VALUE_END == 0) {
        i += 1;
    }
    if i == value_start {
        return Err(LineErrorKind::MissingValue);
    }
    sample.value_text = l.get(value_start..i).unwrap_or_default();
    sample.value = parse_go_float(sample.value_text).ok_or(LineErrorKind::InvalidValue)?;
    i = skip_ws(l, i);
    let Some(&c) = l.get(i) else {
        return Ok(Some(sample));
    };
    if c == b'-' {
        return Err(LineErrorKind::NegativeTimestamp);
    }
    // ASCII digits as an int64 (strconv.ParseInt: overflow is an error).
    let ts_start = i;
    let mut ts: Option<i64> = Some(0);
    while let Some(d) = l.get(i).and_then(|&c| ascii_digit(c)) {
        ts = ts
            .and_then(|t| t.checked_mul(10))
            .and_then(|t| t.checked_add(i64::from(d)));
        i += 1;
    }
    if i == ts_start {
        return Err(LineErrorKind::InvalidTimestamp);
    }
    sample.timestamp_ms = Some(ts.ok_or(LineErrorKind::InvalidTimestamp)?);
    if skip_ws(l, i) != l.len() {
        return Err(LineErrorKind::TrailingData);
    }
    Ok(Some(sample))
}

fn ascii_digit(c: u8) -> Option<u8> {
    let d = c.wrapping_sub(b'0');
    (d < 10).then_some(d)
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
        if class(c) & LABEL_START == 0 {
            return Err(LineErrorKind::ExpectedLabelName);
        }
        let name_start = i;
        while l.get(i).is_some_and(|&c| class(c) & LABEL != 0) {
            i += 1;
        }
        let name = l.get(name_start..i).unwrap_or_default();
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
            let Some(off) = l.get(i..).and_then(|rest| memchr2(b'"', b'\\', rest)) else {
                return Err(LineErrorKind::UnterminatedLabels);
            };
            i += off;
            if l.get(i) == Some(&b'"') {
                break;
            }
            escaped = true;
            i += 2;
        }
        let raw = l.get(value_start..i).unwrap_or_default();
        // Every value must be UTF-8, used or not; ASCII (the usual case) is
        // checked a word at a time.
        if !raw.is_ascii() && std::str::from_utf8(raw).is_err() {
            return Err(LineErrorKind::InvalidUtf8);
        }
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
                let text = std::str::from_utf8(raw).map_err(|_| LineErrorKind::InvalidUtf8)?;
                Cow::Owned(unescape_label_value(text).into_bytes())
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

/// Powers of ten that are exact in an f64.
const EXACT_POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// The common spellings (`4.710169`, `1.253376e+07`, `0`): at most 19
/// significant digits forming an integer of at most 2^53, scaled by 10^-22
/// to 10^22. Both factors are exact, so one multiplication or division
/// rounds once, correctly, giving the very bits of a full parse. `None` for
/// anything else, which the full parser then decides.
fn parse_simple_float(s: &[u8]) -> Option<f64> {
    let (negative, mut i) = match s.first()? {
        b'-' => (true, 1),
        b'+' => (false, 1),
        _ => (false, 0),
    };
    let mut mantissa: u64 = 0;
    let mut digits = 0usize;
    while let Some(d) = s.get(i).and_then(|&c| ascii_digit(c)) {
        mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d));
        digits += 1;
        i += 1;
    }
    let mut exp: i32 = 0;
    if s.get(i) == Some(&b'.') {
        i += 1;
        while let Some(d) = s.get(i).and_then(|&c| ascii_digit(c)) {
            // Stop early, so `exp` stays small on any input.
            if digits == 19 {
                return None;
            }
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d));
            digits += 1;
            exp -= 1;
            i += 1;
        }
    }
    // 19 digits cannot overflow a u64.
    if digits == 0 || digits > 19 || mantissa > 1 << 53 {
        return None;
    }
    if let Some(b'e' | b'E') = s.get(i) {
        i += 1;
        let negative_exp = match s.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        let mut e: i32 = 0;
        while let Some(d) = s.get(i).and_then(|&c| ascii_digit(c)) {
            // Four digits are plenty for the fast range; longer is rare.
            if i - start == 4 {
                return None;
            }
            e = e * 10 + i32::from(d);
            i += 1;
        }
        if i == start {
            return None;
        }
        exp += if negative_exp { -e } else { e };
    }
    if i != s.len() {
        return None;
    }
    let m = mantissa as f64;
    let v = match usize::try_from(exp.unsigned_abs()).ok()? {
        0 => m,
        k if exp > 0 => m * *EXACT_POW10.get(k)?,
        k => m / *EXACT_POW10.get(k)?,
    };
    Some(if negative { -v } else { v })
}

/// Go `strconv.ParseFloat(s, 64)` as textparse uses it: decimal syntax or
/// `inf`/`infinity` (any case, optional sign) or `nan` (any case, no sign);
/// `p`, `P`, `_` rejected up front; overflow to infinity is an error.
pub fn parse_go_float(s: &[u8]) -> Option<f64> {
    if let Some(v) = parse_simple_float(s) {
        return Some(v);
    }
    if s.iter().any(|&c| matches!(c, b'p' | b'P' | b'_')) {
        return None;
    }
    let (sign, body) = match s.first()? {
        b'+' => (1.0, s.get(1..)?),
        b'-' => (-1.0, s.get(1..)?),
        _ => (1.0, s),
    };
    if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
        return Some(sign * f64::INFINITY);
    }
    if s.eq_ignore_ascii_case(b"nan") {
        return Some(f64::NAN);
    }
    // [digits][.digits] with at least one digit, then [eE][+-]digits.
    let digit_at = |i: usize| body.get(i).is_some_and(u8::is_ascii_digit);
    let mut i = 0;
    let mut digits = 0;
    while digit_at(i) {
        i += 1;
        digits += 1;
    }
    if body.get(i) == Some(&b'.') {
        i += 1;
        while digit_at(i) {
            i += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return None;
    }
    if let Some(b'e' | b'E') = body.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = body.get(i) {
            i += 1;
        }
        let exp_start = i;
        while digit_at(i) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_float_syntax_is_enforced() {
        let ok = |s: &str| parse_go_float(s.as_bytes());
        assert_eq!(ok("1.253376e+07"), Some(12_533_760.0));
        assert_eq!(ok("+Inf"), Some(f64::INFINITY));
        assert_eq!(ok("-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(ok("Infinity"), Some(f64::INFINITY));
        assert!(ok("NaN").unwrap().is_nan());
        assert_eq!(ok("+NaN"), None);
        assert_eq!(ok("infin"), None);
        assert_eq!(ok("0x10"), None);
        assert_eq!(ok("1_0"), None);
        assert_eq!(ok("1e400"), None);
        assert_eq!(ok("1e-400"), Some(0.0));
        assert_eq!(ok("."), None);
        assert_eq!(ok("1."), Some(1.0));
        assert_eq!(ok(".5"), Some(0.5));
        assert_eq!(ok("1e"), None);
        assert_eq!(ok(""), None);
        assert_eq!(ok("1\r"), None);
    }

    #[test]
    fn label_values_unescape_like_textparse() {
        assert_eq!(unescape_label_value(r#"a\"b"#), "a\"b");
        assert_eq!(unescape_label_value(r"a\\b"), "a\\b");
        assert_eq!(unescape_label_value(r"a\nb"), "a\nb");
        assert_eq!(unescape_label_value(r"a\tb"), "a\\tb");
        assert_eq!(unescape_label_value(r"a\\nb"), "a\\nb");
    }
}
