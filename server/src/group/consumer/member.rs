//! One member of a consumer (KIP-848) group and the reconciliation of its assignment towards its
//! target, as Kafka's CurrentAssignmentBuilder does it.
//!
//! # Invariants
//! - A partition is given to a member only while no other member holds it (assigned or pending
//!   revocation): the previous owner revokes first.
//! - While partitions are pending revocation the member stays at its epoch
//!   (`UnrevokedPartitions`); it reaches the target epoch only after it reported (in a heartbeat's
//!   owned partitions) that it no longer owns them.
//! - `assigned` and `revoking` never share a partition.
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

use super::assignor::Assignment;

/// Where a member is in reconciling towards its target assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberState {
    /// At the target epoch with its whole target.
    Stable,
    /// Must give partitions up first (`revoking`); stays at its epoch until it did.
    UnrevokedPartitions,
    /// At the target epoch, waiting for partitions other members still hold.
    UnreleasedPartitions,
}

/// A member as the coordinator knows it; everything but the timers is persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub rebalance_timeout_ms: i64,
    /// 0 before its first assignment; -2 after a static member's temporary leave.
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: MemberState,
    /// Partitions the member may own now (what heartbeats send it).
    pub assigned: Assignment,
    /// Partitions it must give up before it gets its next epoch.
    pub revoking: Assignment,
    /// When the session expires without a heartbeat (not persisted: restarts give a new session).
    #[serde(skip)]
    pub session_deadline_ms: i64,
    /// When a member that has not revoked partitions in time is removed.
    #[serde(skip)]
    pub rebalance_deadline_ms: Option<i64>,
    /// Who sent the member's last heartbeat: its regex matches only the topics this principal
    /// may DESCRIBE (not persisted: the member's next heartbeat after a restart sets it again).
    #[serde(skip)]
    pub identity: MemberIdentity,
}

/// The principal (and host) of a member's last heartbeat, if any since the coordinator loaded.
/// Not part of the member's state: it never makes two members differ.
#[derive(Debug, Clone, Default)]
pub struct MemberIdentity(pub Option<crate::acl::Identity>);

impl PartialEq for MemberIdentity {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for MemberIdentity {}

impl ConsumerMember {
    pub fn new(member_id: impl Into<String>) -> Self {
        Self {
            member_id: member_id.into(),
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            subscribed_topic_names: Vec::new(),
            subscribed_topic_regex: None,
            server_assignor: None,
            rebalance_timeout_ms: 0,
            member_epoch: 0,
            previous_member_epoch: 0,
            state: MemberState::Stable,
            assigned: Assignment::new(),
            revoking: Assignment::new(),
            session_deadline_ms: 0,
            rebalance_deadline_ms: None,
            identity: MemberIdentity::default(),
        }
    }

    /// Every partition this member holds (assigned or not yet revoked).
    pub fn holds(&self, topic: &str, partition: i32) -> bool {
        [&self.assigned, &self.revoking].iter().any(|assignment| {
            assignment
                .get(topic)
                .is_some_and(|partitions| partitions.contains(&partition))
        })
    }

    /// Moves the member towards `target` (of `target_epoch`). `owned` is what the member reported
    /// owning in this heartbeat (none: not reported); `held_by_other` says whether another member
    /// still holds a partition.
    pub fn reconcile(
        &mut self,
        target_epoch: i32,
        target: &Assignment,
        owned: Option<&Assignment>,
        held_by_other: &impl Fn(&str, i32) -> bool,
    ) {
        match self.state {
            MemberState::Stable if self.member_epoch == target_epoch => {}
            MemberState::UnrevokedPartitions => {
                if owned.is_some_and(|owned| !intersects(owned, &self.revoking)) {
                    self.next_assignment(target_epoch, target, held_by_other);
                }
            }
            MemberState::Stable | MemberState::UnreleasedPartitions => {
                self.next_assignment(target_epoch, target, held_by_other);
            }
        }
        debug_assert!(!intersects(&self.assigned, &self.revoking));
    }

    fn next_assignment(
        &mut self,
        target_epoch: i32,
        target: &Assignment,
        held_by_other: &impl Fn(&str, i32) -> bool,
    ) {
        let mut assigned = Assignment::new();
        let mut revoking = Assignment::new();
        let mut unreleased = false;
        let topics: std::collections::BTreeSet<&String> =
            target.keys().chain(self.assigned.keys()).collect();
        for topic in topics {
            let empty = Default::default();
            let wanted = target.get(topic).unwrap_or(&empty);
            let current = self.assigned.get(topic).unwrap_or(&empty);
            let mut keep: std::collections::BTreeSet<i32> =
                current.intersection(wanted).copied().collect();
            let give_up: std::collections::BTreeSet<i32> =
                current.difference(wanted).copied().collect();
            for &partition in wanted.difference(current) {
                if held_by_other(topic, partition) {
                    unreleased = true;
                } else {
                    keep.insert(partition);
                }
            }
            if !keep.is_empty() {
                assigned.insert(topic.clone(), keep);
            }
            if !give_up.is_empty() {
                revoking.insert(topic.clone(), give_up);
            }
        }
        self.assigned = assigned;
        if !revoking.is_empty() {
            self.revoking = revoking;
            self.state = MemberState::UnrevokedPartitions;
            return;
        }
        self.revoking.clear();
        if self.member_epoch != target_epoch {
            self.previous_member_epoch = self.member_epoch;
            self.member_epoch = target_epoch;
        }
        self.state = if unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        };
    }
}

/// Whether two assignments share a partition.
pub fn intersects(a: &Assignment, b: &Assignment) -> bool {
    a.iter().any(|(topic, partitions)| {
        b.get(topic)
            .is_some_and(|other| !partitions.is_disjoint(other))
    })
}

/// Whether every partition of `a` is in `b`.
pub fn is_subset(a: &Assignment, b: &Assignment) -> bool {
    a.iter().all(|(topic, partitions)| {
        partitions.is_empty()
            || b.get(topic)
                .is_some_and(|other| partitions.is_subset(other))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(items: &[(&str, &[i32])]) -> Assignment {
        items
            .iter()
            .map(|(topic, partitions)| (topic.to_string(), partitions.iter().copied().collect()))
            .collect()
    }

    #[test]
    fn a_member_revokes_before_it_moves_on_and_waits_for_unreleased_partitions() {
        // Target moves partition 1 away and brings 2, still held by another member: first the
        // member keeps 0 and must revoke 1 (epoch unchanged); once it reports not owning 1 it
        // reaches the new epoch but waits for 2; once 2 is free it gets it and is Stable.
        let mut member = ConsumerMember::new("m");
        member.member_epoch = 3;
        member.assigned = assignment(&[("t", &[0, 1])]);
        let target = assignment(&[("t", &[0, 2])]);
        let other_holds_2 = |_: &str, partition: i32| partition == 2;
        member.reconcile(4, &target, None, &other_holds_2);
        assert_eq!(member.state, MemberState::UnrevokedPartitions);
        assert_eq!(member.member_epoch, 3);
        assert_eq!(member.assigned, assignment(&[("t", &[0])]));
        assert_eq!(member.revoking, assignment(&[("t", &[1])]));
        // Still owning 1: nothing changes.
        let still = assignment(&[("t", &[0, 1])]);
        member.reconcile(4, &target, Some(&still), &other_holds_2);
        assert_eq!(member.state, MemberState::UnrevokedPartitions);
        let revoked = assignment(&[("t", &[0])]);
        member.reconcile(4, &target, Some(&revoked), &other_holds_2);
        assert_eq!(member.state, MemberState::UnreleasedPartitions);
        assert_eq!((member.member_epoch, member.previous_member_epoch), (4, 3));
        assert!(member.revoking.is_empty());
        member.reconcile(4, &target, Some(&revoked), &|_, _| false);
        assert_eq!(member.state, MemberState::Stable);
        assert_eq!(member.assigned, target);
    }

    #[test]
    fn subset_and_intersection() {
        // The helpers the epoch checks use.
        let a = assignment(&[("t", &[1])]);
        let b = assignment(&[("t", &[1, 2]), ("u", &[0])]);
        assert!(is_subset(&a, &b) && !is_subset(&b, &a));
        assert!(intersects(&a, &b));
        assert!(is_subset(&assignment(&[("x", &[])]), &a));
    }
}
