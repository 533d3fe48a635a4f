//! Server-side assignors of consumer (KIP-848) groups, chosen by a member's `serverAssignor`
//! (`group.remote.assignor` in librdkafka): `uniform` (the default) and `range`. Both are pure
//! functions of the members' subscriptions, the topics' partition counts and (for `uniform`) the
//! previous target assignment.
//!
//! # Invariants
//! - Every partition of a topic someone subscribes to is assigned to exactly one member that
//!   subscribes to it; no partition of another topic, and none beyond the topic's count.
//! - The result depends only on the inputs (BTreeMaps, ties broken by member id): every
//!   coordinator computes the same assignment from the same state.
//! - `uniform`: members with the same subscription differ by at most one partition, and a
//!   partition stays with its previous owner unless that owner is gone, unsubscribed, or must give
//!   it up for balance.
//! - `range`: per topic, each subscriber gets one contiguous range, the first `n % m` members (by
//!   member id) one more; topics with the same partition count and subscribers get the same ranges.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};

/// Partitions by topic name.
pub type Assignment = BTreeMap<String, BTreeSet<i32>>;

/// Partitions of every topic some member may subscribe to, by name.
pub type TopicCounts = BTreeMap<String, i32>;

/// What an assignor works from.
#[derive(Debug, Clone, Copy)]
pub struct AssignmentSpec<'a> {
    /// Member id → the existing topics it subscribes to.
    pub subscriptions: &'a BTreeMap<String, BTreeSet<String>>,
    /// Partition count of each subscribed topic.
    pub topics: &'a TopicCounts,
    /// The target assignment being replaced (stickiness).
    pub previous: &'a BTreeMap<String, Assignment>,
}

/// The server-side assignors this broker has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AssignorName {
    Uniform,
    Range,
}

impl AssignorName {
    pub const DEFAULT: Self = Self::Uniform;

    /// The assignor a member names, if we have it.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "uniform" => Some(Self::Uniform),
            "range" => Some(Self::Range),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Uniform => "uniform",
            Self::Range => "range",
        }
    }

    /// Computes a target assignment: an entry for every member (empty if it gets nothing).
    pub fn assign(self, spec: AssignmentSpec<'_>) -> BTreeMap<String, Assignment> {
        let result = match self {
            Self::Uniform => uniform(spec),
            Self::Range => range(spec),
        };
        debug_assert!(check_complete(spec, &result));
        result
    }
}

/// Bound on balancing moves: each move lowers the sum of squared member loads, so it ends.
fn moves_max(partitions: usize, members: usize) -> usize {
    partitions.saturating_mul(members).saturating_add(1)
}

fn uniform(spec: AssignmentSpec<'_>) -> BTreeMap<String, Assignment> {
    let subscribed = |member: &str, topic: &str| {
        spec.subscriptions
            .get(member)
            .is_some_and(|topics| topics.contains(topic))
    };
    // owned[member] = (topic, partition) it holds, kept sorted.
    let mut owned: BTreeMap<&str, BTreeSet<(&str, i32)>> = spec
        .subscriptions
        .keys()
        .map(|member| (member.as_str(), BTreeSet::new()))
        .collect();
    let mut taken: BTreeSet<(&str, i32)> = BTreeSet::new();
    // 1. Keep what members held, where still valid.
    for (member, assignment) in spec.previous {
        let Some(held) = owned.get_mut(member.as_str()) else {
            continue;
        };
        for (topic, partitions) in assignment {
            let Some((topic, count)) = spec.topics.get_key_value(topic) else {
                continue;
            };
            if !subscribed(member, topic) {
                continue;
            }
            for &partition in partitions.range(0..*count) {
                if taken.insert((topic.as_str(), partition)) {
                    held.insert((topic.as_str(), partition));
                }
            }
        }
    }
    // 2. Free partitions go to the least loaded subscriber.
    for (topic, count) in spec.topics {
        for partition in 0..*count {
            if taken.contains(&(topic.as_str(), partition)) {
                continue;
            }
            let least = owned
                .iter()
                .filter(|(member, _)| subscribed(member, topic))
                .min_by_key(|(member, held)| (held.len(), **member))
                .map(|(member, _)| *member);
            if let Some(member) = least {
                taken.insert((topic.as_str(), partition));
                owned
                    .get_mut(member)
                    .expect("listed")
                    .insert((topic.as_str(), partition));
            }
        }
    }
    // 3. Balance: move one partition at a time from a most loaded member to a subscriber with at
    // least two fewer.
    let total = taken.len();
    for _ in 0..moves_max(total, owned.len()) {
        match find_move(&owned, &subscribed) {
            Some((from, to, partition)) => {
                owned.get_mut(from).expect("listed").remove(&partition);
                owned.get_mut(to).expect("listed").insert(partition);
            }
            None => break,
        }
    }
    owned
        .into_iter()
        .map(|(member, held)| {
            let mut assignment = Assignment::new();
            for (topic, partition) in held {
                assignment
                    .entry(topic.to_string())
                    .or_default()
                    .insert(partition);
            }
            (member.to_string(), assignment)
        })
        .collect()
}

/// One balancing move (from, to, partition), or none when no member can give to another.
fn find_move<'a>(
    owned: &BTreeMap<&'a str, BTreeSet<(&'a str, i32)>>,
    subscribed: &impl Fn(&str, &str) -> bool,
) -> Option<(&'a str, &'a str, (&'a str, i32))> {
    let mut by_load: Vec<(&str, usize)> = owned
        .iter()
        .map(|(member, held)| (*member, held.len()))
        .collect();
    // Most loaded first; ties by member id.
    by_load.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    for &(from, load) in &by_load {
        // The highest partitions move first, so low ones stay put.
        for &(topic, partition) in owned[from].iter().rev() {
            let receiver = by_load
                .iter()
                .rev()
                .filter(|(member, other)| {
                    *member != from && other + 1 < load && subscribed(member, topic)
                })
                .min_by_key(|(member, other)| (*other, *member));
            if let Some(&(to, _)) = receiver {
                return Some((from, to, (topic, partition)));
            }
        }
    }
    None
}

fn range(spec: AssignmentSpec<'_>) -> BTreeMap<String, Assignment> {
    let mut result: BTreeMap<String, Assignment> = spec
        .subscriptions
        .keys()
        .map(|member| (member.clone(), Assignment::new()))
        .collect();
    for (topic, count) in spec.topics {
        let subscribers: Vec<&String> = spec
            .subscriptions
            .iter()
            .filter(|(_, topics)| topics.contains(topic))
            .map(|(member, _)| member)
            .collect();
        if subscribers.is_empty() || *count <= 0 {
            continue;
        }
        let members = subscribers.len() as i32;
        let (per_member, extra) = (count / members, count % members);
        for (index, member) in subscribers.into_iter().enumerate() {
            let index = index as i32;
            let start = index * per_member + index.min(extra);
            let len = per_member + i32::from(index < extra);
            if len > 0 {
                result
                    .get_mut(member)
                    .expect("listed")
                    .insert(topic.clone(), (start..start + len).collect());
            }
        }
    }
    result
}

/// Whether every subscribed partition is assigned once, to a subscriber.
fn check_complete(spec: AssignmentSpec<'_>, result: &BTreeMap<String, Assignment>) -> bool {
    let mut seen: BTreeSet<(&str, i32)> = BTreeSet::new();
    for (member, assignment) in result {
        for (topic, partitions) in assignment {
            let Some(count) = spec.topics.get(topic) else {
                return false;
            };
            if !spec.subscriptions[member].contains(topic) {
                return false;
            }
            for &partition in partitions {
                if partition < 0 || partition >= *count || !seen.insert((topic, partition)) {
                    return false;
                }
            }
        }
    }
    let wanted: usize = spec
        .topics
        .iter()
        .filter(|(topic, _)| spec.subscriptions.values().any(|t| t.contains(*topic)))
        .map(|(_, count)| (*count).max(0) as usize)
        .sum();
    seen.len() == wanted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscriptions(members: &[&str], topics: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
        members
            .iter()
            .map(|member| {
                (
                    member.to_string(),
                    topics.iter().map(|topic| topic.to_string()).collect(),
                )
            })
            .collect()
    }

    fn counts(topics: &[(&str, i32)]) -> TopicCounts {
        topics
            .iter()
            .map(|(topic, count)| (topic.to_string(), *count))
            .collect()
    }

    fn sizes(result: &BTreeMap<String, Assignment>) -> Vec<usize> {
        let mut sizes: Vec<usize> = result
            .values()
            .map(|assignment| assignment.values().map(BTreeSet::len).sum())
            .collect();
        sizes.sort_unstable();
        sizes
    }

    fn run(
        assignor: AssignorName,
        subs: &BTreeMap<String, BTreeSet<String>>,
        topics: &TopicCounts,
        previous: &BTreeMap<String, Assignment>,
    ) -> BTreeMap<String, Assignment> {
        let spec = AssignmentSpec {
            subscriptions: subs,
            topics,
            previous,
        };
        let result = assignor.assign(spec);
        assert!(check_complete(spec, &result), "{result:?}");
        result
    }

    /// Partitions that changed owner between two assignments (those of members gone since aside).
    fn moved(before: &BTreeMap<String, Assignment>, after: &BTreeMap<String, Assignment>) -> usize {
        let owners = |result: &BTreeMap<String, Assignment>| -> BTreeMap<(String, i32), String> {
            result
                .iter()
                .flat_map(|(member, assignment)| {
                    assignment.iter().flat_map(move |(topic, partitions)| {
                        partitions
                            .iter()
                            .map(move |p| ((topic.clone(), *p), member.clone()))
                    })
                })
                .collect()
        };
        let (old, new) = (owners(before), owners(after));
        new.iter()
            .filter(|(tp, member)| {
                old.get(*tp)
                    .is_some_and(|was| was != *member && after.contains_key(was))
            })
            .count()
    }

    #[test]
    fn uniform_balances_and_keeps_partitions_where_they_are() {
        // Three members on six partitions get two each; a fourth takes one (the least that
        // balances); when one leaves only its partitions move.
        let topics = counts(&[("t", 6)]);
        let three = subscriptions(&["a", "b", "c"], &["t"]);
        let first = run(AssignorName::Uniform, &three, &topics, &BTreeMap::new());
        assert_eq!(sizes(&first), vec![2, 2, 2]);
        let four = subscriptions(&["a", "b", "c", "d"], &["t"]);
        let second = run(AssignorName::Uniform, &four, &topics, &first);
        assert_eq!(sizes(&second), vec![1, 1, 2, 2]);
        assert_eq!(
            moved(&first, &second),
            1,
            "only the new member's share moves"
        );
        let without_b = subscriptions(&["a", "c", "d"], &["t"]);
        let third = run(AssignorName::Uniform, &without_b, &topics, &second);
        assert_eq!(sizes(&third), vec![2, 2, 2]);
        assert_eq!(
            moved(&second, &third),
            0,
            "b's partitions were free, nobody else's moved"
        );
    }

    #[test]
    fn uniform_is_deterministic_and_takes_added_partitions() {
        // The same inputs give the same answer; partitions added to a topic are spread.
        let subs = subscriptions(&["m1", "m2"], &["x", "y"]);
        let topics = counts(&[("x", 3), ("y", 2)]);
        let once = run(AssignorName::Uniform, &subs, &topics, &BTreeMap::new());
        let again = run(AssignorName::Uniform, &subs, &topics, &BTreeMap::new());
        assert_eq!(once, again);
        assert_eq!(sizes(&once), vec![2, 3]);
        let grown = counts(&[("x", 6), ("y", 2)]);
        let after = run(AssignorName::Uniform, &subs, &grown, &once);
        assert_eq!(sizes(&after), vec![4, 4]);
        assert_eq!(moved(&once, &after), 0);
    }

    #[test]
    fn uniform_respects_different_subscriptions() {
        // A member only gets topics it subscribes to, and the shared topic balances the rest.
        let mut subs = subscriptions(&["a"], &["x", "y"]);
        subs.extend(subscriptions(&["b"], &["y"]));
        let topics = counts(&[("x", 2), ("y", 4), ("z", 5)]);
        let result = run(AssignorName::Uniform, &subs, &topics, &BTreeMap::new());
        assert!(!result["b"].contains_key("x"));
        assert_eq!(sizes(&result), vec![3, 3]);
    }

    #[test]
    fn range_gives_contiguous_aligned_ranges() {
        // Seven partitions over three members: 3, 2, 2 by member id; both topics alike.
        let subs = subscriptions(&["c", "a", "b"], &["t1", "t2"]);
        let topics = counts(&[("t1", 7), ("t2", 7)]);
        let result = run(AssignorName::Range, &subs, &topics, &BTreeMap::new());
        let set = |range: std::ops::Range<i32>| range.collect::<BTreeSet<i32>>();
        assert_eq!(result["a"]["t1"], set(0..3));
        assert_eq!(result["b"]["t1"], set(3..5));
        assert_eq!(result["c"]["t1"], set(5..7));
        for member in ["a", "b", "c"] {
            assert_eq!(result[member]["t1"], result[member]["t2"]);
        }
        let grown = counts(&[("t1", 9), ("t2", 9)]);
        let after = run(AssignorName::Range, &subs, &grown, &result);
        assert_eq!(sizes(&after), vec![6, 6, 6]);
        assert_eq!(
            after,
            run(AssignorName::Range, &subs, &grown, &BTreeMap::new())
        );
    }

    #[test]
    fn more_members_than_partitions_and_empty_inputs() {
        // Extra members get empty assignments; no members or no topics assign nothing.
        let subs = subscriptions(&["a", "b", "c"], &["t"]);
        let topics = counts(&[("t", 2)]);
        for assignor in [AssignorName::Uniform, AssignorName::Range] {
            let result = run(assignor, &subs, &topics, &BTreeMap::new());
            assert_eq!(sizes(&result), vec![0, 1, 1]);
            let none = run(assignor, &BTreeMap::new(), &topics, &BTreeMap::new());
            assert!(none.is_empty());
            let no_topics = run(assignor, &subs, &TopicCounts::new(), &result);
            assert_eq!(sizes(&no_topics), vec![0, 0, 0]);
        }
    }
}
