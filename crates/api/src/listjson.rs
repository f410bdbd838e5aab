//! Compact `NodeMetricsList` / `PodMetricsList` JSON without the general
//! writer: the hot path of `kubectl top`, the HPA and the VPA.
//!
//! The bytes are exactly those of [`crate::objects::encode_object_list`]
//! with `pretty = false` (tests compare the two on awkward inputs). Speed
//! comes from three things: key and punctuation runs are constant byte
//! strings; numbers, quantities, timestamps and windows are formatted
//! without `fmt` (timestamps and windows repeat across items, so they are
//! formatted once each); strings are copied in one piece unless a byte needs
//! escaping. One pass only: item metadata is scattered over the heap, and
//! reading it twice (to measure, then to write) cost more than it saved.

use metrics_server_core::{
    Bytes, DURATION_TEXT_LEN, GoDuration, Nanocores, QUANTITY_TEXT_LEN, RFC3339_TEXT_LEN,
    ResourceUsage, Rfc3339Seconds,
};

use crate::cluster::LabelMap;
use crate::discovery::MetricsVersion;
use crate::json::write_go_string;
use crate::objects::{Item, NodeItem, PodItem};

/// Whether Go's encoder (HTML escaping on) leaves `s` as it is: no control
/// bytes, `"`, `\`, `<`, `>`, `&`, and no 0xE2, the lead byte of U+2028 /
/// U+2029 (a string with another E2 sequence just takes the general path).
fn is_plain(s: &str) -> bool {
    plain_bytes(s.as_bytes())
}

/// A branch-free OR over all bytes, so the compiler vectorizes it (an
/// eight-bytes-per-word version measured no faster: names are short).
fn plain_bytes(s: &[u8]) -> bool {
    !s.iter().fold(false, |bad, &b| {
        bad | (b < 0x20)
            | (b == b'"')
            | (b == b'\\')
            | (b == b'<')
            | (b == b'>')
            | (b == b'&')
            | (b == 0xe2)
    })
}

/// Per-list state: the output and the memo of formatted timestamps and
/// windows.
pub(crate) struct Out {
    buf: Vec<u8>,
    times: Memo<RFC3339_TEXT_LEN>,
    windows: Memo<DURATION_TEXT_LEN>,
}

/// A small direct-mapped memo `i64 -> text`. Timestamps are truncated to the
/// second, so a tick's items share a handful of values; windows repeat per
/// node. A miss just formats again.
struct Memo<const N: usize> {
    keys: Vec<Option<i64>>,
    texts: Vec<([u8; N], u8)>,
}

/// Slots per memo.
const MEMO_SLOTS: usize = 256;

impl<const N: usize> Memo<N> {
    fn new() -> Self {
        Self {
            keys: vec![None; MEMO_SLOTS],
            texts: vec![([0; N], 0); MEMO_SLOTS],
        }
    }

    /// The text for `key`, formatted by `format` on a miss. `format` writes
    /// right-aligned into the array and returns the text's length.
    fn get(&mut self, key: i64, format: impl FnOnce(&mut [u8; N]) -> usize) -> &[u8] {
        // Fibonacci hashing: the top eight bits of key * 2^64/phi.
        let slot = ((key as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as usize % MEMO_SLOTS;
        let (text, len) = &mut self.texts[slot];
        if self.keys[slot] != Some(key) {
            *len = u8::try_from(format(text)).unwrap_or(0);
            self.keys[slot] = Some(key);
        }
        &text[N - usize::from(*len)..]
    }
}

impl Out {
    fn new(capacity: usize) -> Self {
        Self {
            buf: Vec::with_capacity(capacity),
            times: Memo::new(),
            windows: Memo::new(),
        }
    }

    fn raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// `s` as a JSON string in the form Go writes it.
    fn string(&mut self, s: &str) {
        if is_plain(s) {
            self.buf.reserve(s.len() + 2);
            self.buf.push(b'"');
            self.buf.extend_from_slice(s.as_bytes());
            self.buf.push(b'"');
        } else {
            write_go_string(&mut self.buf, s);
        }
    }

    /// `"timestamp":...,"window":"..."` of an item.
    fn time_and_window(&mut self, timestamp_ns: i64, window_ns: i64) {
        if timestamp_ns == 0 {
            self.buf
                .extend_from_slice(b"\"timestamp\":null,\"window\":\"");
        } else {
            self.buf.extend_from_slice(b"\"timestamp\":\"");
            let secs = timestamp_ns.div_euclid(1_000_000_000);
            let text = self.times.get(secs, |buf| {
                Rfc3339Seconds(timestamp_ns).format_into(buf).len()
            });
            self.buf.extend_from_slice(text);
            self.buf.extend_from_slice(b"\",\"window\":\"");
        }
        let text = self.windows.get(window_ns, |buf| {
            GoDuration(window_ns).format_into(buf).len()
        });
        self.buf.extend_from_slice(text);
        self.buf.push(b'"');
    }

    /// `"usage":{"cpu":"...","memory":"..."}`.
    fn usage(&mut self, u: &ResourceUsage) {
        let mut q = [0u8; QUANTITY_TEXT_LEN];
        self.raw(b"\"usage\":{\"cpu\":\"");
        self.raw(Nanocores(u.cpu_nanocores).format_into(&mut q));
        self.raw(b"\",\"memory\":\"");
        self.raw(Bytes(u.memory_bytes).format_into(&mut q));
        self.raw(b"\"}");
    }

    /// `{"metadata":{"name":...,"namespace":...,"creationTimestamp":...,
    /// "labels":{...}},` of an item; `created` is already quoted.
    fn metadata(&mut self, name: &str, namespace: Option<&str>, created: &[u8], labels: &LabelMap) {
        self.raw(b"{\"metadata\":{\"name\":");
        self.string(name);
        // Go's omitempty.
        if let Some(ns) = namespace.filter(|ns| !ns.is_empty()) {
            self.raw(b",\"namespace\":");
            self.string(ns);
        }
        self.raw(b",\"creationTimestamp\":");
        self.raw(created);
        if !labels.is_empty() {
            self.raw(b",\"labels\":{");
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.buf.push(b',');
                }
                self.string(k);
                self.buf.push(b':');
                self.string(v);
            }
            self.buf.push(b'}');
        }
        self.raw(b"},");
    }
}

/// Items the compact list encoder knows how to write (every [`Item`]).
pub(crate) trait CompactItem {
    /// Bytes a typical item takes, to size the output up front.
    const TYPICAL_LEN: usize;
    /// Appends the whole item object.
    fn compact(&self, out: &mut Out, created: &[u8]);
    /// Reads the first byte of every string the item will write, so that a
    /// batch of items is pulled into the cache with many loads in flight at
    /// once instead of one miss after the other while writing.
    fn touch(&self) -> u8;
}

fn first_byte(s: &str) -> u8 {
    s.as_bytes().first().copied().unwrap_or(0)
}

fn touch_labels(labels: &LabelMap) -> u8 {
    labels
        .iter()
        .fold(0, |acc, (k, v)| acc ^ first_byte(k) ^ first_byte(v))
}

impl CompactItem for NodeItem {
    // 513 bytes with eight cloud-node labels.
    const TYPICAL_LEN: usize = 560;
    fn compact(&self, out: &mut Out, created: &[u8]) {
        let u = &self.usage;
        out.metadata(&self.meta.name, None, created, &self.meta.labels);
        out.time_and_window(u.timestamp_ns, u.window_ns);
        out.buf.push(b',');
        out.usage(u);
        out.buf.push(b'}');
    }
    fn touch(&self) -> u8 {
        first_byte(&self.meta.name) ^ touch_labels(&self.meta.labels)
    }
}

impl CompactItem for PodItem {
    // 393 bytes for a Deployment's pod with two containers.
    const TYPICAL_LEN: usize = 440;
    fn compact(&self, out: &mut Out, created: &[u8]) {
        let u = &self.usage;
        let m = &self.meta;
        out.metadata(&m.name, Some(&m.namespace), created, &m.labels);
        out.time_and_window(u.timestamp_ns, u.window_ns);
        out.raw(b",\"containers\":[");
        for (i, c) in u.containers.iter().enumerate() {
            if i > 0 {
                out.buf.push(b',');
            }
            out.raw(b"{\"name\":");
            out.string(&c.name);
            out.buf.push(b',');
            out.usage(&c.usage);
            out.buf.push(b'}');
        }
        out.raw(b"]}");
    }
    fn touch(&self) -> u8 {
        let m = &self.meta;
        let names = self
            .usage
            .containers
            .iter()
            .fold(0, |acc, c| acc ^ first_byte(&c.name));
        first_byte(&m.name) ^ first_byte(&m.namespace) ^ touch_labels(&m.labels) ^ names
    }
}

/// Items touched ahead of writing (see [`CompactItem::touch`]).
const TOUCH_AHEAD: usize = 8;

/// Writes a compact list front to back, in pieces if asked: the state
/// between pieces is the next item and the memos.
struct ListWriter<I> {
    items: I,
    created: Vec<u8>,
    /// The list's opening up to `"items":[`; taken by the first piece.
    head: Option<Vec<u8>>,
    /// Items written so far (a comma goes before all but the first).
    written: usize,
    finished: bool,
}

impl<T: Item, I: std::ops::Deref<Target = [T]>> ListWriter<I> {
    fn new(items: I, created: &str, version: MetricsVersion) -> Self {
        let mut created_json = Vec::with_capacity(created.len() + 2);
        write_go_string(&mut created_json, created);
        let mut head = Vec::with_capacity(96);
        head.extend_from_slice(b"{\"kind\":");
        write_go_string(&mut head, T::LIST_KIND);
        head.extend_from_slice(b",\"apiVersion\":");
        write_go_string(&mut head, version.group_version());
        head.extend_from_slice(b",\"metadata\":{},\"items\":[");
        Self {
            items,
            created: created_json,
            head: Some(head),
            written: 0,
            finished: false,
        }
    }

    /// Appends to `out` until it holds at least `limit` bytes (finishing a
    /// batch of items) or the list ends with `]}` and the newline.
    fn fill(&mut self, out: &mut Out, limit: usize) {
        if let Some(head) = self.head.take() {
            out.raw(&head);
        }
        let items = &*self.items;
        let mut touched = 0u8;
        while out.buf.len() < limit && self.written < items.len() {
            let end = items.len().min(self.written + TOUCH_AHEAD);
            let batch = &items[self.written..end];
            touched ^= batch.iter().fold(0, |acc, item| acc ^ item.touch());
            for item in batch {
                if self.written > 0 {
                    out.buf.push(b',');
                }
                item.compact(out, &self.created);
                self.written += 1;
            }
        }
        // Keeps the touching loads from being optimized away.
        std::hint::black_box(touched);
        if self.written == items.len() && !self.finished {
            out.raw(b"]}\n");
            self.finished = true;
        }
    }
}

/// The compact list with its trailing newline, in one pass. The buffer is
/// sized for typical items up front (more than the list needs in the usual
/// case, growing if not) and trimmed at the end; glibc shortens such an
/// allocation in place, so the trim copies nothing.
pub(crate) fn encode_compact_list<T: Item>(
    items: &[T],
    created: &str,
    version: MetricsVersion,
) -> Vec<u8> {
    let estimate = items
        .len()
        .saturating_mul(T::TYPICAL_LEN)
        .saturating_add(128);
    let mut out = Out::new(estimate);
    ListWriter::new(items, created, version).fill(&mut out, usize::MAX);
    out.buf.shrink_to_fit();
    out.buf
}

/// Size of the pieces a streamed list is sent in.
pub(crate) const STREAM_CHUNK: usize = 64 * 1024;

/// The compact list as an HTTP body rendered piece by piece while it is
/// sent: the same bytes as [`encode_compact_list`], but a request holds one
/// piece of about [`STREAM_CHUNK`] bytes (plus at most a batch of items)
/// instead of the whole list. The body has no known length, so HTTP/1.1
/// sends it chunked, as Go's apiserver does for large lists.
pub(crate) struct CompactListBody<I> {
    writer: ListWriter<I>,
    out: Out,
}

impl<T: Item, I: std::ops::Deref<Target = [T]>> CompactListBody<I> {
    /// The list of `items` (a `Vec` to own them, a slice to borrow them).
    pub(crate) fn new(items: I, created: &str, version: MetricsVersion) -> Self {
        Self {
            writer: ListWriter::new(items, created, version),
            out: Out::new(0),
        }
    }

    /// The next piece, `None` after the last.
    pub(crate) fn next_piece(&mut self) -> Option<Vec<u8>> {
        if self.writer.finished {
            return None;
        }
        // Room for the piece and the batch that crosses the limit.
        self.out.buf = Vec::with_capacity(STREAM_CHUNK + TOUCH_AHEAD * T::TYPICAL_LEN);
        self.writer.fill(&mut self.out, STREAM_CHUNK);
        Some(std::mem::take(&mut self.out.buf))
    }
}

impl<T: Item, I: std::ops::Deref<Target = [T]> + Unpin> http_body::Body for CompactListBody<I> {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let piece = self.get_mut().next_piece();
        std::task::Poll::Ready(piece.map(|p| Ok(http_body::Frame::data(bytes::Bytes::from(p)))))
    }

    fn is_end_stream(&self) -> bool {
        self.writer.finished
    }
}

impl<I> std::fmt::Debug for CompactListBody<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompactListBody")
            .field("written", &self.writer.written)
            .field("finished", &self.writer.finished)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use metrics_server_core::{ContainerUsage, PodUsage};

    use super::*;
    use crate::cluster::{NodeMeta, PodMeta};
    use crate::objects::{encode_object_list, encode_object_list_general};

    /// Pieces that exercise every escaping rule, alone and together, plus
    /// plain and non-ASCII text and an E2 sequence that is not U+2028/9.
    const AWKWARD: &[&str] = &[
        "",
        "<",
        ">",
        "&",
        "\"",
        "\\",
        "\u{0}",
        "\n",
        "\u{1f}",
        " ",
        "\u{2028}",
        "\u{2029}",
        "web-7d4b9c",
        "a<b>c&d",
        "line\u{2028}sep\u{2029}",
        "\u{2026}ellipsis",
        "quote\"back\\slash",
        "ctl\u{0}\u{1}\u{8}\u{c}\n\r\t\u{1f}\u{7f}",
        "héllo wörld µs 日本",
        "emoji \u{1f600}",
        "kubernetes.io/hostname",
    ];

    /// xorshift64*: deterministic without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn text(&mut self) -> String {
            let parts = 1 + self.below(3);
            (0..parts)
                .map(|_| AWKWARD[self.below(AWKWARD.len())])
                .collect()
        }
        /// Values around the formatting edges as well as ordinary ones.
        fn quantity(&mut self) -> u64 {
            match self.below(8) {
                0 => 0,
                1 => u64::MAX - self.next() % 1000,
                2 => (i64::MAX as u64)
                    .wrapping_add(self.next() % 3)
                    .wrapping_sub(1),
                3 => (1 + self.next() % 1000) * 1024u64.pow(1 + self.below(5) as u32),
                4 => (1 + self.next() % 1000) * 10u64.pow(self.below(12) as u32),
                5 => self.next() % 1100,
                _ => self.next() % 10_000_000_000,
            }
        }
        fn time(&mut self) -> i64 {
            match self.below(6) {
                0 => 0,
                1 => -((self.next() % 1_000_000_000_000_000_000) as i64),
                2 => i64::MAX - (self.next() % 1000) as i64,
                _ => 1_785_000_000_000_000_000 + (self.next() % 60_000_000_000) as i64,
            }
        }
        fn window(&mut self) -> i64 {
            match self.below(6) {
                0 => 0,
                1 => i64::MIN + (self.next() % 1000) as i64,
                2 => (self.next() % 2_000_000) as i64,
                _ => 15_000_000_000 + (self.next() % 50_000_000) as i64,
            }
        }
        fn usage(&mut self) -> ResourceUsage {
            ResourceUsage {
                timestamp_ns: self.time(),
                window_ns: self.window(),
                cpu_nanocores: self.quantity(),
                memory_bytes: self.quantity(),
            }
        }
        fn labels(&mut self) -> LabelMap {
            (0..self.below(4))
                .map(|_| (self.text(), self.text()))
                .collect()
        }
    }

    fn pods(rng: &mut Rng, n: usize) -> Vec<PodItem> {
        (0..n)
            .map(|_| {
                let containers = (0..rng.below(4))
                    .map(|_| ContainerUsage {
                        name: Arc::from(rng.text()),
                        usage: rng.usage(),
                    })
                    .collect();
                PodItem {
                    meta: Arc::new(PodMeta {
                        namespace: rng.text(),
                        name: rng.text(),
                        labels: rng.labels(),
                        created: None,
                    }),
                    usage: PodUsage {
                        timestamp_ns: rng.time(),
                        window_ns: rng.window(),
                        containers,
                        skipped: Vec::new(),
                    },
                }
            })
            .collect()
    }

    fn nodes(rng: &mut Rng, n: usize) -> Vec<NodeItem> {
        (0..n)
            .map(|_| NodeItem {
                meta: Arc::new(NodeMeta {
                    name: rng.text(),
                    labels: rng.labels(),
                }),
                usage: rng.usage(),
            })
            .collect()
    }

    fn assert_same<T: Item>(items: &[T], created: &str) {
        for version in [MetricsVersion::V1beta1, MetricsVersion::V1] {
            let fast = encode_compact_list(items, created, version);
            let general = encode_object_list_general(items, created, version, false);
            assert_eq!(
                String::from_utf8_lossy(&fast),
                String::from_utf8_lossy(&general)
            );
            assert_eq!(fast.len(), fast.capacity(), "buffer sized exactly");
            // The public entry point picks the general writer for pretty.
            assert_eq!(
                encode_object_list(items, created, version, true),
                encode_object_list_general(items, created, version, true)
            );
        }
    }

    #[test]
    fn compact_lists_match_the_general_writer_on_awkward_input() {
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        for round in 0..200 {
            let n = rng.below(12);
            let created = if round % 7 == 0 {
                rng.text()
            } else {
                "2026-08-04T10:00:05Z".to_owned()
            };
            assert_same(&pods(&mut rng, n), &created);
            assert_same(&nodes(&mut rng, n), &created);
        }
    }

    #[test]
    fn empty_lists_and_pods_without_containers() {
        assert_same::<PodItem>(&[], "2026-08-04T10:00:05Z");
        assert_same::<NodeItem>(&[], "2026-08-04T10:00:05Z");
        let bare = PodItem {
            meta: Arc::new(PodMeta::default()),
            usage: PodUsage::default(),
        };
        assert_same(&[bare.clone(), bare], "");
        let fast = encode_compact_list(
            &[PodItem {
                meta: Arc::new(PodMeta {
                    namespace: "ns".to_owned(),
                    name: "p".to_owned(),
                    ..PodMeta::default()
                }),
                usage: PodUsage::default(),
            }],
            "2026-08-04T10:00:05Z",
            MetricsVersion::V1beta1,
        );
        assert_eq!(
            String::from_utf8_lossy(&fast),
            "{\"kind\":\"PodMetricsList\",\"apiVersion\":\"metrics.k8s.io/v1beta1\",\"metadata\":{},\"items\":[{\"metadata\":{\"name\":\"p\",\"namespace\":\"ns\",\"creationTimestamp\":\"2026-08-04T10:00:05Z\"},\"timestamp\":null,\"window\":\"0s\",\"containers\":[]}]}\n"
        );
    }

    #[test]
    fn plain_scan_flags_exactly_the_escaped_bytes() {
        let escaped = |b: u8| b < 0x20 || matches!(b, b'"' | b'\\' | b'<' | b'>' | b'&' | 0xe2);
        for len in 1..=17 {
            for at in 0..len {
                for b in 0..=255u8 {
                    for filler in [b'a', 0x7f, 0xff, 0x20, 0x80] {
                        let mut s = vec![filler; len];
                        s[at] = b;
                        assert_eq!(
                            plain_bytes(&s),
                            !escaped(b),
                            "byte {b:#x} at {at} of {len}, filler {filler:#x}"
                        );
                    }
                }
            }
        }
        assert!(plain_bytes(b""));
    }

    #[test]
    fn streamed_pieces_join_to_the_one_buffer_list() {
        let mut rng = Rng(0xfeed_beef_0000_0042);
        for n in [0, 1, 7, 8, 9, 200, 1_500] {
            let items = pods(&mut rng, n);
            let whole = encode_compact_list(&items, "2026-08-04T10:00:05Z", MetricsVersion::V1);
            let mut body = CompactListBody::new(items, "2026-08-04T10:00:05Z", MetricsVersion::V1);
            let mut joined = Vec::new();
            let mut pieces = 0;
            while let Some(piece) = body.next_piece() {
                // A piece stops at the first batch boundary past the limit.
                assert!(!piece.is_empty());
                assert!(piece.len() < STREAM_CHUNK + TOUCH_AHEAD * 8 * 1024);
                joined.extend_from_slice(&piece);
                pieces += 1;
            }
            assert!(body.next_piece().is_none());
            assert_eq!(joined, whole, "{n} items");
            // Every piece but the last holds at least STREAM_CHUNK bytes.
            assert!(pieces <= whole.len() / STREAM_CHUNK + 1, "{n} items");
            if whole.len() > 2 * STREAM_CHUNK {
                assert!(pieces > 1, "{n} items");
            }
        }
    }

    #[test]
    fn memo_serves_every_key_correctly_under_collisions() {
        let mut memo: Memo<DURATION_TEXT_LEN> = Memo::new();
        let mut rng = Rng(7);
        for _ in 0..10_000 {
            // Few distinct keys, so hits and evictions both happen.
            let key = (rng.below(600) as i64) * 1_000_003;
            let got = memo.get(key, |b| GoDuration(key).format_into(b).len());
            assert_eq!(got, GoDuration(key).to_string().as_bytes());
        }
    }
}
