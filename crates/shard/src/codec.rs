//! The binary exchange format: one [`Delta`] of a replica's owned node points.
//!
//! ```text
//!  "msrs" 0x01 flags(bit0 = full)  epoch since version        (varints)
//!  upserts: count, then per node: name, node point?, pods
//!     pod: namespace (0 = the previous pod's, else len + 1, bytes), name, containers
//!     container: name, point
//!     point: flags(bit0 = start time), ts, cpu, memory, [ts - start]
//!  removed: count, then names
//! ```
//!
//! Integers are LEB128 varints; signed ones are zigzag-encoded. A point's timestamp is the
//! wrapping difference from the previous point's in the message, so the points of one scrape
//! (all taken within milliseconds) cost a byte or two each. Decoding never panics and never
//! allocates more than the input can describe: every count is checked against the bytes
//! left, and values the store could not serve (memory beyond `i64::MAX`) are refused, as the
//! kubelet decoder refuses them.

use metrics_server_core::{MetricsPoint, NodeScrape, PodScrape};
use thiserror::Error;

/// The leading bytes of every message.
pub const MAGIC: &[u8; 4] = b"msrs";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// The media type of the exchange endpoint's answers.
pub const CONTENT_TYPE: &str = "application/vnd.metrics-server-rs.shard.v1";

const FLAG_FULL: u8 = 1;
const POINT_HAS_START: u8 = 1;

/// What changed in a replica's shard between two versions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delta {
    /// The sender's incarnation; versions of two incarnations do not compare.
    pub epoch: u64,
    /// The version the delta starts from (ignored when `full`).
    pub since: u64,
    /// The version after it.
    pub version: u64,
    /// A full state: the receiver forgets every node not listed.
    pub full: bool,
    /// Nodes added or changed, with their latest scrape.
    pub upserts: Vec<(String, NodeScrape)>,
    /// Nodes the sender no longer holds.
    pub removed: Vec<String>,
}

/// Why a message could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CodecError {
    /// The first bytes are not the format's.
    #[error("not a shard exchange message")]
    BadMagic,
    /// Written by a format this build does not read.
    #[error("unsupported shard exchange format version {0}")]
    UnsupportedVersion(u8),
    /// The message ends in the middle of a value.
    #[error("shard exchange message truncated")]
    Truncated,
    /// A varint runs past 64 bits.
    #[error("varint overflows 64 bits")]
    VarintOverflow,
    /// A count or length is larger than the bytes left could hold.
    #[error("count {0} exceeds the remaining message")]
    CountTooLarge(u64),
    /// A name is not UTF-8.
    #[error("name is not valid UTF-8")]
    InvalidUtf8,
    /// A memory value the store could not serve.
    #[error("memory value {0} out of range")]
    ValueOutOfRange(u64),
    /// A pod's namespace refers to a previous pod that does not exist.
    #[error("namespace back-reference without a previous pod")]
    DanglingNamespace,
    /// Bytes left after the message.
    #[error("{0} trailing bytes")]
    Trailing(usize),
}

// === encoding ===

/// Encodes a delta.
pub fn encode(delta: &Delta) -> Vec<u8> {
    let mut w = Writer {
        out: Vec::with_capacity(64 + delta.upserts.len() * 256),
        base_ts: 0,
    };
    w.out.extend_from_slice(MAGIC);
    w.out.push(FORMAT_VERSION);
    w.out.push(if delta.full { FLAG_FULL } else { 0 });
    w.varint(delta.epoch);
    w.varint(delta.since);
    w.varint(delta.version);
    w.varint(delta.upserts.len() as u64);
    for (node, scrape) in &delta.upserts {
        w.node(node, scrape);
    }
    w.varint(delta.removed.len() as u64);
    for name in &delta.removed {
        w.str(name);
    }
    w.out
}

struct Writer {
    out: Vec<u8>,
    base_ts: i64,
}

impl Writer {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.out.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.out.push(v as u8);
    }

    fn zigzag(&mut self, v: i64) {
        self.varint(((v << 1) ^ (v >> 63)) as u64);
    }

    fn str(&mut self, s: &str) {
        self.varint(s.len() as u64);
        self.out.extend_from_slice(s.as_bytes());
    }

    fn point(&mut self, p: &MetricsPoint) {
        let has_start = p.start_time_ns != 0;
        self.out.push(if has_start { POINT_HAS_START } else { 0 });
        self.zigzag(p.timestamp_ns.wrapping_sub(self.base_ts));
        self.base_ts = p.timestamp_ns;
        self.varint(p.cumulative_cpu_ns);
        self.varint(p.memory_bytes);
        if has_start {
            self.zigzag(p.timestamp_ns.wrapping_sub(p.start_time_ns));
        }
    }

    fn node(&mut self, name: &str, scrape: &NodeScrape) {
        self.str(name);
        match &scrape.node {
            Some(p) => {
                self.out.push(1);
                self.point(p);
            }
            None => self.out.push(0),
        }
        self.varint(scrape.pods.len() as u64);
        let mut prev_ns: Option<&str> = None;
        for pod in &scrape.pods {
            if prev_ns == Some(pod.namespace.as_str()) {
                self.varint(0);
            } else {
                self.varint(pod.namespace.len() as u64 + 1);
                self.out.extend_from_slice(pod.namespace.as_bytes());
            }
            prev_ns = Some(&pod.namespace);
            self.str(&pod.name);
            self.varint(pod.containers.len() as u64);
            for (c, p) in &pod.containers {
                self.str(c);
                self.point(p);
            }
        }
    }
}

// === decoding ===

/// Decodes a delta written by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<Delta, CodecError> {
    let mut r = Reader {
        buf: bytes,
        base_ts: 0,
    };
    if r.take(MAGIC.len())? != MAGIC {
        return Err(CodecError::BadMagic);
    }
    let version = r.byte()?;
    if version != FORMAT_VERSION {
        return Err(CodecError::UnsupportedVersion(version));
    }
    let flags = r.byte()?;
    let mut delta = Delta {
        full: flags & FLAG_FULL != 0,
        epoch: r.varint()?,
        since: r.varint()?,
        version: r.varint()?,
        ..Delta::default()
    };
    let n = r.count()?;
    delta.upserts.reserve(n);
    for _ in 0..n {
        delta.upserts.push(r.node()?);
    }
    let n = r.count()?;
    delta.removed.reserve(n);
    for _ in 0..n {
        delta.removed.push(r.string()?);
    }
    if !r.buf.is_empty() {
        return Err(CodecError::Trailing(r.buf.len()));
    }
    Ok(delta)
}

struct Reader<'a> {
    buf: &'a [u8],
    base_ts: i64,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if n > self.buf.len() {
            return Err(CodecError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }

    fn varint(&mut self) -> Result<u64, CodecError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(CodecError::VarintOverflow);
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(CodecError::VarintOverflow)
    }

    fn zigzag(&mut self) -> Result<i64, CodecError> {
        let v = self.varint()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    /// A count of items that take at least one byte each.
    fn count(&mut self) -> Result<usize, CodecError> {
        let n = self.varint()?;
        match usize::try_from(n) {
            Ok(u) if u <= self.buf.len() => Ok(u),
            _ => Err(CodecError::CountTooLarge(n)),
        }
    }

    fn utf8(&mut self, len: usize) -> Result<String, CodecError> {
        let raw = self.take(len)?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| CodecError::InvalidUtf8)
    }

    fn string(&mut self) -> Result<String, CodecError> {
        let len = self.count()?;
        self.utf8(len)
    }

    fn point(&mut self) -> Result<MetricsPoint, CodecError> {
        let flags = self.byte()?;
        let timestamp_ns = self.base_ts.wrapping_add(self.zigzag()?);
        self.base_ts = timestamp_ns;
        let cumulative_cpu_ns = self.varint()?;
        let memory_bytes = self.varint()?;
        if i64::try_from(memory_bytes).is_err() {
            return Err(CodecError::ValueOutOfRange(memory_bytes));
        }
        let start_time_ns = if flags & POINT_HAS_START != 0 {
            timestamp_ns.wrapping_sub(self.zigzag()?)
        } else {
            0
        };
        Ok(MetricsPoint {
            start_time_ns,
            timestamp_ns,
            cumulative_cpu_ns,
            memory_bytes,
        })
    }

    fn node(&mut self) -> Result<(String, NodeScrape), CodecError> {
        let name = self.string()?;
        let node = match self.byte()? {
            0 => None,
            _ => Some(self.point()?),
        };
        let n = self.count()?;
        let mut pods: Vec<PodScrape> = Vec::with_capacity(n);
        for _ in 0..n {
            let ns_len = self.varint()?;
            let namespace = if ns_len == 0 {
                pods.last()
                    .map(|p| p.namespace.clone())
                    .ok_or(CodecError::DanglingNamespace)?
            } else {
                let len = usize::try_from(ns_len - 1)
                    .ok()
                    .filter(|l| *l <= self.buf.len())
                    .ok_or(CodecError::CountTooLarge(ns_len))?;
                self.utf8(len)?
            };
            let name = self.string()?;
            let c = self.count()?;
            let mut containers = Vec::with_capacity(c);
            for _ in 0..c {
                containers.push((self.string()?, self.point()?));
            }
            pods.push(PodScrape {
                namespace,
                name,
                containers,
            });
        }
        Ok((name, NodeScrape { node, pods }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn point(ts: i64, start: i64, cpu: u64, mem: u64) -> MetricsPoint {
        MetricsPoint {
            start_time_ns: start,
            timestamp_ns: ts,
            cumulative_cpu_ns: cpu,
            memory_bytes: mem,
        }
    }

    fn sample() -> Delta {
        let ts = 1_700_000_000_123_000_000;
        let pod = |ns: &str, name: &str| PodScrape {
            namespace: ns.to_owned(),
            name: name.to_owned(),
            containers: vec![
                (
                    "app".to_owned(),
                    point(ts + 1_000_000, ts - 3_600_000_000_000, 12_345_678, 50 << 20),
                ),
                ("sidecar".to_owned(), point(ts, 0, 1, 1)),
            ],
        };
        Delta {
            epoch: 7,
            since: 41,
            version: 42,
            full: false,
            upserts: vec![
                (
                    "node-a".to_owned(),
                    NodeScrape {
                        node: Some(point(ts, 0, 9_000_000_000_000, 8 << 30)),
                        pods: vec![
                            pod("default", "web-1"),
                            pod("default", "web-2"),
                            pod("kube-system", "dns"),
                        ],
                    },
                ),
                ("node-b".to_owned(), NodeScrape::default()),
            ],
            removed: vec!["node-gone".to_owned()],
        }
    }

    #[test]
    fn a_delta_round_trips_and_is_compact() {
        let d = sample();
        let bytes = encode(&d);
        assert_eq!(&bytes[..5], b"msrs\x01");
        assert_eq!(decode(&bytes).unwrap(), d);
        // 6 container points, 1 node point, names: far below a JSON rendering.
        assert!(bytes.len() < 260, "{} bytes", bytes.len());
    }

    #[test]
    fn the_full_flag_and_extreme_values_survive() {
        let mut d = sample();
        d.full = true;
        d.epoch = u64::MAX;
        d.upserts[1].1.node = Some(point(i64::MIN, i64::MAX, u64::MAX, i64::MAX as u64));
        assert_eq!(decode(&encode(&d)).unwrap(), d);
    }

    #[test]
    fn malformed_messages_are_refused_with_a_reason() {
        let good = encode(&sample());
        assert_eq!(decode(b"json"), Err(CodecError::BadMagic));
        assert_eq!(
            decode(b"msrs\x02\x00"),
            Err(CodecError::UnsupportedVersion(2))
        );
        assert_eq!(decode(&good[..7]), Err(CodecError::Truncated));
        // Cut inside the last name: its length no longer fits the bytes left.
        assert_eq!(
            decode(&good[..good.len() - 1]),
            Err(CodecError::CountTooLarge(9))
        );
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(decode(&trailing), Err(CodecError::Trailing(1)));
        // A count of 2^40 upserts in a 20-byte message.
        let mut huge = b"msrs\x01\x00\x00\x00\x00".to_vec();
        huge.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x20]);
        assert_eq!(decode(&huge), Err(CodecError::CountTooLarge(1 << 40)));
        let overflow = b"msrs\x01\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f";
        assert_eq!(decode(overflow), Err(CodecError::VarintOverflow));
    }

    #[test]
    fn memory_the_store_could_not_serve_is_refused() {
        let mut d = sample();
        d.upserts[1].1.node = Some(point(1, 0, 1, u64::MAX));
        assert_eq!(
            decode(&encode(&d)),
            Err(CodecError::ValueOutOfRange(u64::MAX))
        );
    }

    fn arb_point() -> impl Strategy<Value = MetricsPoint> {
        (
            any::<i64>(),
            any::<i64>(),
            any::<u64>(),
            0..=i64::MAX as u64,
        )
            .prop_map(|(ts, st, cpu, mem)| point(ts, st, cpu, mem))
    }

    fn arb_scrape() -> impl Strategy<Value = NodeScrape> {
        let pod = (
            "[a-z]{0,3}",
            "[a-zé-]{0,8}",
            proptest::collection::vec(("[a-z]{0,6}", arb_point()), 0..4),
        )
            .prop_map(|(namespace, name, containers)| PodScrape {
                namespace,
                name,
                containers,
            });
        (
            proptest::option::of(arb_point()),
            proptest::collection::vec(pod, 0..5),
        )
            .prop_map(|(node, pods)| NodeScrape { node, pods })
    }

    proptest! {
        #[test]
        fn every_delta_round_trips(
            epoch in any::<u64>(), since in any::<u64>(), version in any::<u64>(), full in any::<bool>(),
            upserts in proptest::collection::vec(("[a-z0-9.-]{0,12}", arb_scrape()), 0..5),
            removed in proptest::collection::vec("[a-z0-9.-]{0,12}", 0..5),
        ) {
            let d = Delta { epoch, since, version, full, upserts, removed };
            prop_assert_eq!(decode(&encode(&d)).unwrap(), d);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut framed = b"msrs\x01".to_vec();
            framed.extend_from_slice(&bytes);
            let _ = decode(&framed);
            let _ = decode(&bytes);
        }

        #[test]
        fn every_truncation_of_a_good_message_is_an_error(cut in 0usize..1000) {
            let good = encode(&sample());
            let cut = cut % good.len();
            prop_assert!(decode(&good[..cut]).is_err());
        }
    }
}
