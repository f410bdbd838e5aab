//! Rendezvous (highest-random-weight) assignment of node names to members.
//!
//! Every member computes the same owner for a node from the same member list, with no
//! coordination: the member with the highest `weight(member, node)` owns it. When a member
//! joins it takes about `1/members` of the nodes, each from whichever member held it; when one
//! leaves only its nodes move. The hash is fixed here (FNV-1a, then a 64-bit finalizer) so
//! that replicas built from different compilers or versions agree.

/// The weight of `node` for `member`: a stable 64-bit hash of both names.
pub fn weight(member: &str, node: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for b in member.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(PRIME);
    }
    // A separator no name contains keeps ("ab", "c") apart from ("a", "bc").
    h = (h ^ 0xff).wrapping_mul(PRIME);
    for b in node.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(PRIME);
    }
    finalize(h)
}

/// A 64-bit avalanche finalizer (the one of SplitMix64), so that names differing in their
/// last byte get unrelated weights.
fn finalize(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The members nodes are assigned to, sorted and unique.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assignment {
    members: Vec<String>,
}

impl Assignment {
    /// An assignment over `members` (order and repeats do not matter).
    pub fn new<I, S>(members: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut members: Vec<String> = members.into_iter().map(Into::into).collect();
        members.sort();
        members.dedup();
        Self { members }
    }

    /// The members, sorted.
    pub fn members(&self) -> &[String] {
        &self.members
    }

    /// The member that owns `node`; `None` only when there are no members. Equal weights
    /// (vanishingly rare) go to the smaller member name.
    pub fn owner(&self, node: &str) -> Option<&str> {
        let mut best: Option<(u64, &str)> = None;
        for m in &self.members {
            let w = weight(m, node);
            if best.is_none_or(|(bw, _)| w > bw) {
                best = Some((w, m));
            }
        }
        best.map(|(_, m)| m)
    }

    /// Whether `member` owns `node`.
    pub fn owns(&self, member: &str, node: &str) -> bool {
        self.owner(node) == Some(member)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nodes(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node-{i:05}")).collect()
    }

    const PINNED: [u64; 2] = [0xc812111b00a0af18, 0x6d10f178de78e851];

    #[test]
    fn weights_are_fixed_across_builds() {
        // Pinned values: a change here would make replicas of two versions disagree.
        assert_ne!(weight("ms-0", "node-1"), weight("ms-1", "node-1"));
        assert_ne!(weight("ab", "c"), weight("a", "bc"));
        assert_eq!(weight("ms-0", "node-1"), PINNED[0]);
        assert_eq!(
            weight("metrics-server-7d9f-abcde", "kwok-node-42"),
            PINNED[1]
        );
    }

    #[test]
    fn no_members_own_nothing_and_one_member_owns_everything() {
        assert_eq!(Assignment::new(Vec::<String>::new()).owner("n"), None);
        let one = Assignment::new(["a"]);
        assert!(nodes(100).iter().all(|n| one.owns("a", n)));
    }

    #[test]
    fn shares_are_about_even() {
        let a = Assignment::new(["ms-a", "ms-b", "ms-c"]);
        let all = nodes(3000);
        for m in a.members() {
            let share = all.iter().filter(|n| a.owns(m, n)).count();
            assert!((850..=1150).contains(&share), "{m} owns {share} of 3000");
        }
    }

    proptest! {
        #[test]
        fn order_and_repeats_of_members_do_not_matter(
            mut members in proptest::collection::vec("[a-z0-9-]{1,12}", 1..8),
            node in "[a-z0-9.-]{1,30}",
        ) {
            let a = Assignment::new(members.clone());
            members.reverse();
            members.push(members[0].clone());
            let b = Assignment::new(members);
            prop_assert_eq!(a.owner(&node), b.owner(&node));
        }

        #[test]
        fn a_join_moves_only_nodes_to_the_newcomer_and_about_a_fair_share(
            members in proptest::collection::btree_set("[a-z0-9-]{1,12}", 1..6),
            newcomer in "[A-Z]{1,12}",
        ) {
            let before = Assignment::new(members.iter().cloned());
            let after = Assignment::new(members.iter().cloned().chain([newcomer.clone()]));
            let all = nodes(2000);
            let mut moved = 0usize;
            for n in &all {
                let (b, a) = (before.owner(n), after.owner(n));
                if b != a {
                    prop_assert_eq!(a, Some(newcomer.as_str()));
                    moved += 1;
                }
            }
            // Expected 2000 / (k + 1); allow a wide band for hash noise.
            let k = members.len() + 1;
            let expected = all.len() / k;
            prop_assert!(moved * 10 >= expected * 7 && moved * 10 <= expected * 13,
                "moved {moved}, expected about {expected}");
        }

        #[test]
        fn a_leave_moves_only_the_leavers_nodes(
            members in proptest::collection::btree_set("[a-z0-9-]{1,12}", 2..6),
            which in 0usize..6,
        ) {
            let members: Vec<String> = members.into_iter().collect();
            let leaver = members[which % members.len()].clone();
            let before = Assignment::new(members.clone());
            let after = Assignment::new(members.iter().filter(|m| **m != leaver).cloned());
            for n in nodes(500) {
                if before.owner(&n) != Some(leaver.as_str()) {
                    prop_assert_eq!(before.owner(&n), after.owner(&n));
                } else {
                    prop_assert_ne!(after.owner(&n), Some(leaver.as_str()));
                }
            }
        }
    }
}
