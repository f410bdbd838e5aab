//! Sharded high availability for metrics-server-rs, the pure parts.
//!
//! Replicas of one group share the kubelets instead of each scraping all of them, and swap
//! what they scraped so that every replica can answer for every node and pod:
//!
//! ```text
//!  Lease records ──membership::live_members(now)──▶ [Member]  (unexpired, one per holder)
//!        │
//!        ▼
//!  hrw::Assignment ── owner(node) ──▶ each replica scrapes the nodes it owns
//!        │
//!        ▼
//!  exchange::OwnShard::update(owned scrapes) ── version++ ──▶ delta_since(epoch, v)
//!        │                                   codec::encode / codec::decode (binary, versioned)
//!        ▼
//!  exchange::PeerView::apply(delta)  (one per peer)
//!        │
//!        ▼
//!  merge::batch(own, peers) ──▶ core::Batch ──▶ core::Store::apply (rules unchanged)
//! ```
//!
//! Nothing here does IO or reads a clock: times come in as arguments, which keeps every rule
//! unit-testable. The binary owns Leases, sockets and timers.

pub mod codec;
pub mod exchange;
pub mod hrw;
pub mod membership;
pub mod merge;

pub use codec::{CodecError, Delta, FORMAT_VERSION, decode, encode};
pub use exchange::{ApplyError, OwnShard, PeerView};
pub use hrw::{Assignment, weight};
pub use membership::{LeaseRecord, Member, live_members};
pub use merge::batch;
