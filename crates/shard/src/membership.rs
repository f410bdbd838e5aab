//! Membership of a replica group from `coordination.k8s.io/v1` Lease records.
//!
//! Each replica holds a Lease of its own; the live members are the holders of the group's
//! unexpired Leases. A Lease is expired once `renewTime + leaseDurationSeconds` has passed;
//! one without a holder, a renew time or a positive duration counts as released. There is no
//! consensus here: every replica reads the same Leases and computes the same list, give or
//! take one watch event.

use std::collections::BTreeMap;

/// The fields of a Lease that membership needs, taken from the object by the caller.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseRecord {
    /// `spec.holderIdentity`; empty or absent means released.
    pub holder: Option<String>,
    /// `spec.renewTime` as unix nanoseconds.
    pub renew_time_ns: Option<i64>,
    /// `spec.leaseDurationSeconds`.
    pub duration_seconds: Option<i32>,
    /// The peer address annotation (`host:port` of the holder's secure port).
    pub peer_address: Option<String>,
}

impl LeaseRecord {
    /// When the Lease expires (unix ns), or `None` when it is released or malformed.
    pub fn expires_ns(&self) -> Option<i64> {
        let holder = self.holder.as_deref()?;
        if holder.is_empty() {
            return None;
        }
        let renew = self.renew_time_ns?;
        let secs = self.duration_seconds.filter(|d| *d > 0)?;
        Some(renew.saturating_add(i64::from(secs).saturating_mul(1_000_000_000)))
    }

    /// Whether the Lease is held and unexpired at `now_ns`.
    pub fn is_live(&self, now_ns: i64) -> bool {
        self.expires_ns().is_some_and(|e| e > now_ns)
    }
}

/// A live member of the group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The holder identity (the pod name).
    pub id: String,
    /// Where its exchange endpoint listens, when announced.
    pub peer_address: Option<String>,
    /// When its Lease expires (unix ns).
    pub expires_ns: i64,
}

/// The live members at `now_ns`, sorted by id. When two Leases name the same holder (a
/// renamed Lease, say), the one expiring last speaks for it.
pub fn live_members<'a, I>(records: I, now_ns: i64) -> Vec<Member>
where
    I: IntoIterator<Item = &'a LeaseRecord>,
{
    let mut by_id: BTreeMap<&str, Member> = BTreeMap::new();
    for r in records {
        let Some(expires_ns) = r.expires_ns().filter(|e| *e > now_ns) else {
            continue;
        };
        let Some(id) = r.holder.as_deref() else {
            continue;
        };
        let member = Member {
            id: id.to_owned(),
            peer_address: r.peer_address.clone().filter(|a| !a.is_empty()),
            expires_ns,
        };
        match by_id.get(id) {
            Some(m) if m.expires_ns >= expires_ns => {}
            _ => {
                by_id.insert(id, member);
            }
        }
    }
    by_id.into_values().collect()
}

/// The soonest time after `now_ns` at which the live list may change without any Lease being
/// written (the next expiry), so a caller knows when to recompute.
pub fn next_expiry(members: &[Member], now_ns: i64) -> Option<i64> {
    members
        .iter()
        .map(|m| m.expires_ns)
        .filter(|e| *e > now_ns)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn lease(holder: &str, renew_s: i64, dur: i32) -> LeaseRecord {
        LeaseRecord {
            holder: Some(holder.to_owned()),
            renew_time_ns: Some(renew_s * S),
            duration_seconds: Some(dur),
            peer_address: Some(format!("{holder}:443")),
        }
    }

    #[test]
    fn a_lease_lives_until_renew_time_plus_duration() {
        let l = lease("a", 100, 15);
        assert_eq!(l.expires_ns(), Some(115 * S));
        assert!(l.is_live(114 * S));
        assert!(!l.is_live(115 * S));
    }

    #[test]
    fn released_or_malformed_leases_are_not_members() {
        let released = LeaseRecord {
            holder: Some(String::new()),
            ..lease("x", 100, 15)
        };
        let no_holder = LeaseRecord {
            holder: None,
            ..lease("x", 100, 15)
        };
        let no_renew = LeaseRecord {
            renew_time_ns: None,
            ..lease("x", 100, 15)
        };
        let zero = lease("x", 100, 0);
        let negative = lease("x", 100, -5);
        for l in [released, no_holder, no_renew, zero, negative] {
            assert_eq!(l.expires_ns(), None, "{l:?}");
            assert!(live_members([&l], 100 * S).is_empty());
        }
    }

    #[test]
    fn live_members_are_sorted_unexpired_and_one_per_holder() {
        let records = [
            lease("c", 100, 15),
            lease("a", 100, 15),
            lease("b", 80, 15), // expired at 95
            lease("a", 105, 15),
        ];
        let live = live_members(&records, 100 * S);
        let ids: Vec<&str> = live.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["a", "c"]);
        assert_eq!(live[0].expires_ns, 120 * S);
        assert_eq!(live[0].peer_address.as_deref(), Some("a:443"));
        assert_eq!(next_expiry(&live, 100 * S), Some(115 * S));
    }

    #[test]
    fn far_future_times_saturate_instead_of_overflowing() {
        let l = LeaseRecord {
            renew_time_ns: Some(i64::MAX - 1),
            ..lease("a", 0, i32::MAX)
        };
        assert_eq!(l.expires_ns(), Some(i64::MAX));
    }
}
