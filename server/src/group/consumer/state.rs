//! The consumer (KIP-848) group state machine: ConsumerGroupHeartbeat, leaves, session and
//! rebalance timeouts, commit checks — as Kafka's GroupMetadataManager runs it, without I/O: time
//! comes in as `now_ms`, topics as a map of partition counts, and changes come out as dirty
//! records for the coordinator to persist (`record.rs`).
//!
//! # Epochs
//! - The *group epoch* grows when membership or subscriptions change (a member joins, leaves,
//!   times out, changes its subscription, or a subscribed topic gains partitions).
//! - The *assignment epoch* is the group epoch the target assignment was computed for; a heartbeat
//!   that finds it behind the group epoch computes a new target with the group's assignor.
//! - A *member epoch* is the assignment epoch the member has reconciled to (see `member.rs`).
//!
//! # Invariants
//! - `assignment_epoch <= group_epoch`; every member's epoch is `<= assignment_epoch` (or -2).
//! - A partition is held by at most one member (assigned or pending revocation).
//! - Every member has a target entry once the target is computed after it joined.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;

use super::assignor::{Assignment, AssignmentSpec, AssignorName, TopicCounts};
use super::group_config::{self, ConsumerBounds};
use super::heartbeat::{check_epoch, refuse, update_member, validate};
pub use super::heartbeat::{
    HeartbeatError, HeartbeatRequest, HeartbeatResponse, LEAVE_EPOCH, STATIC_LEAVE_EPOCH,
};
use super::member::{ConsumerMember, MemberIdentity, MemberState};
use super::subscription::{resolve, RegexCache, TopicView, ViewVersion};
use crate::group::state::MEMBERS_PER_GROUP_MAX;

/// The rebalance timeout of a member that joins without one (Kafka's max.poll.interval.ms
/// default).
pub const REBALANCE_TIMEOUT_MS_DEFAULT: i64 = 300_000;

/// Broker settings of groups: consumer (KIP-848) groups' timing (Kafka's `group.consumer.*`),
/// and the session timeouts classic members may ask for (Kafka's
/// `group.min.session.timeout.ms`, `group.max.session.timeout.ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerGroupConfig {
    pub session_timeout_ms: i64,
    pub heartbeat_interval_ms: i64,
    pub classic_min_session_timeout_ms: i64,
    pub classic_max_session_timeout_ms: i64,
    /// A new classic group's wait for more members (`--group-initial-rebalance-delay-ms`).
    pub classic_initial_rebalance_delay_ms: i64,
    /// The bounds of the session timeout and heartbeat interval, the broker's and each group's.
    pub bounds: ConsumerBounds,
}

impl ConsumerGroupConfig {
    /// This config with a group's own `consumer.session.timeout.ms` and
    /// `consumer.heartbeat.interval.ms` (its GROUP config resource) over the broker's, as Kafka's
    /// GroupMetadataManager reads them at each heartbeat (so a change applies at the member's
    /// next heartbeat: the interval it is told and the session timer started then).
    pub fn for_group(&self, overrides: Option<&BTreeMap<String, String>>) -> Self {
        let (session_timeout_ms, heartbeat_interval_ms) = group_config::effective(
            overrides,
            self.session_timeout_ms,
            self.heartbeat_interval_ms,
        );
        Self {
            session_timeout_ms,
            heartbeat_interval_ms,
            ..*self
        }
    }
}

impl Default for ConsumerGroupConfig {
    fn default() -> Self {
        Self {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            classic_min_session_timeout_ms: crate::group::SESSION_TIMEOUT_MS_MIN,
            classic_max_session_timeout_ms: crate::group::SESSION_TIMEOUT_MS_MAX,
            classic_initial_rebalance_delay_ms: crate::group::state::INITIAL_REBALANCE_DELAY_MS,
            bounds: ConsumerBounds::KAFKA,
        }
    }
}

/// The state Kafka's ConsumerGroupDescribe and ListGroups show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConsumerGroupPhase {
    Empty,
    Assigning,
    Reconciling,
    Stable,
}

impl ConsumerGroupPhase {
    pub fn kafka_name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::Assigning => "Assigning",
            Self::Reconciling => "Reconciling",
            Self::Stable => "Stable",
        }
    }
}

/// What changed since the coordinator last persisted the group.
#[derive(Debug, Clone, Default)]
pub struct Dirty {
    pub group: bool,
    /// Members added, changed or removed (a removed one is no longer in `members`).
    pub members: BTreeSet<String>,
    /// The id was an empty classic group's: its classic group record is to be deleted.
    pub classic_tombstone: bool,
}

impl Dirty {
    /// Adds `other`'s changes (records taken for a write that failed are due again).
    pub fn merge(&mut self, other: Dirty) {
        self.group |= other.group;
        self.members.extend(other.members);
        self.classic_tombstone |= other.classic_tombstone;
    }
}

/// One consumer group.
#[derive(Debug, Clone)]
pub struct ConsumerGroup {
    pub group_id: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    /// The target assignment of `assignment_epoch`, by member.
    pub target: BTreeMap<String, Assignment>,
    /// Partition counts of the subscribed topics as of the last group epoch.
    pub subscribed_topics: TopicCounts,
    pub dirty: Dirty,
    /// Members' regexes compiled and resolved, until the topics or the ACLs change.
    pub regex_cache: RegexCache,
    /// The view version `subscribed_topics` was computed at, while no member joined, left, or
    /// changed its subscription or principal since (None: to compute at the next heartbeat). A
    /// heartbeat then does not walk every member's subscription again.
    pub(super) subscribed_as_of: Option<ViewVersion>,
    /// Walks over every member's subscription, for tests.
    #[cfg(test)]
    pub(super) subscribed_walks: u64,
}

/// Whether two members are equal in everything persisted (timers aside).
fn same_persisted(a: &ConsumerMember, b: &ConsumerMember) -> bool {
    let strip = |member: &ConsumerMember| ConsumerMember {
        session_deadline_ms: 0,
        rebalance_deadline_ms: None,
        ..member.clone()
    };
    strip(a) == strip(b)
}

impl ConsumerGroup {
    pub fn new(group_id: impl Into<String>) -> Self {
        Self {
            group_id: group_id.into(),
            group_epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            subscribed_topics: TopicCounts::new(),
            dirty: Dirty::default(),
            regex_cache: RegexCache::default(),
            subscribed_as_of: None,
            #[cfg(test)]
            subscribed_walks: 0,
        }
    }

    pub fn phase(&self) -> ConsumerGroupPhase {
        if self.members.is_empty() {
            ConsumerGroupPhase::Empty
        } else if self.group_epoch > self.assignment_epoch {
            ConsumerGroupPhase::Assigning
        } else if self.members.values().any(|member| {
            member.member_epoch != self.assignment_epoch || member.state != MemberState::Stable
        }) {
            ConsumerGroupPhase::Reconciling
        } else {
            ConsumerGroupPhase::Stable
        }
    }

    /// The assignor most members ask for (ties: by name); uniform if none asks.
    pub fn assignor(&self) -> AssignorName {
        let mut votes: BTreeMap<AssignorName, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some(name) = member
                .server_assignor
                .as_deref()
                .and_then(AssignorName::parse)
            {
                *votes.entry(name).or_default() += 1;
            }
        }
        let best = votes.values().copied().max().unwrap_or(0);
        votes
            .into_iter()
            .find(|(_, count)| *count == best)
            .map_or(AssignorName::DEFAULT, |(name, _)| name)
    }

    /// Restarts every member's session (after a restart: nobody has heartbeated yet).
    pub fn start_sessions(&mut self, config: &ConsumerGroupConfig, now_ms: i64) {
        for member in self.members.values_mut() {
            member.session_deadline_ms = now_ms + config.session_timeout_ms;
            member.rebalance_deadline_ms = None;
        }
    }

    fn bump_group_epoch(&mut self) {
        self.group_epoch += 1;
        self.dirty.group = true;
    }

    /// Handles a ConsumerGroupHeartbeat of no particular principal (every topic describable).
    #[cfg(test)]
    pub fn heartbeat(
        &mut self,
        request: &HeartbeatRequest,
        topics: &TopicCounts,
        config: &ConsumerGroupConfig,
        now_ms: i64,
    ) -> Result<HeartbeatResponse, HeartbeatError> {
        let view = TopicView {
            counts: topics,
            describable: &|_, _| true,
            version: None,
        };
        self.heartbeat_as(request, None, &view, config, now_ms)
    }

    /// Handles a ConsumerGroupHeartbeat sent by `identity`: each member's regex matches only
    /// the topics of `view` that the principal of its own last heartbeat may see.
    pub fn heartbeat_as(
        &mut self,
        request: &HeartbeatRequest,
        identity: Option<crate::acl::Identity>,
        view: &TopicView<'_>,
        config: &ConsumerGroupConfig,
        now_ms: i64,
    ) -> Result<HeartbeatResponse, HeartbeatError> {
        validate(request)?;
        if let Some(pattern) = request.subscribed_topic_regex.as_deref() {
            if !pattern.is_empty() {
                self.regex_cache.compiled(pattern).map_err(|err| {
                    refuse(
                        ResponseError::InvalidRegularExpression,
                        format!("subscription regex {pattern:?}: {err}"),
                    )
                })?;
            }
        }
        if request.member_epoch == LEAVE_EPOCH || request.member_epoch == STATIC_LEAVE_EPOCH {
            return self.leave(request, config);
        }
        let (mut member, before) = self.resolve_member(request)?;
        let member_id = member.member_id.clone();
        let subscription_changed = update_member(&mut member, request);
        // A regex matches what its member's principal may see: another principal, other topics.
        let principal_changed =
            identity.as_ref().is_some_and(|new| {
                member.identity.0.as_ref().is_none_or(|old| {
                    (old.principal(), old.host()) != (new.principal(), new.host())
                })
            });
        if identity.is_some() {
            member.identity = MemberIdentity(identity);
        }
        let mut bump = before.is_none() || subscription_changed;
        if bump || (principal_changed && member.subscribed_topic_regex.is_some()) {
            self.subscribed_as_of = None;
        }
        self.members.insert(member_id.clone(), member);
        if view.version.is_none() || self.subscribed_as_of != view.version {
            let subscribed = self.subscribed_topic_counts(view);
            if subscribed != self.subscribed_topics {
                self.subscribed_topics = subscribed;
                bump = true;
            }
            self.subscribed_as_of = view.version;
        }
        if bump {
            self.bump_group_epoch();
        }
        if self.group_epoch > self.assignment_epoch {
            self.compute_target(view);
        }
        let mut member = self.members.remove(&member_id).expect("inserted above");
        let target = self.target.get(&member_id).cloned().unwrap_or_default();
        let others = &self.members;
        member.reconcile(
            self.assignment_epoch,
            &target,
            request.owned.as_ref(),
            &|topic, partition| others.values().any(|other| other.holds(topic, partition)),
        );
        member.session_deadline_ms = now_ms + config.session_timeout_ms;
        member.rebalance_deadline_ms = match member.state {
            MemberState::UnrevokedPartitions => Some(
                member
                    .rebalance_deadline_ms
                    .unwrap_or(now_ms + member.rebalance_timeout_ms),
            ),
            _ => None,
        };
        let assignment_changed = before
            .as_ref()
            .is_none_or(|before| before.assigned != member.assigned);
        if before
            .as_ref()
            .is_none_or(|before| !same_persisted(before, &member))
        {
            self.dirty.members.insert(member_id.clone());
        }
        let response = HeartbeatResponse {
            member_id: member_id.clone(),
            member_epoch: member.member_epoch,
            heartbeat_interval_ms: i32::try_from(config.heartbeat_interval_ms).unwrap_or(i32::MAX),
            assignment: (request.owned.is_some()
                || request.member_epoch == 0
                || assignment_changed)
                .then(|| member.assigned.clone()),
        };
        self.members.insert(member_id, member);
        Ok(response)
    }

    /// Finds the member a heartbeat comes from, or makes it (epoch 0). Returns the member to
    /// update (out of the map) and how it was before (None: new).
    fn resolve_member(
        &mut self,
        request: &HeartbeatRequest,
    ) -> Result<(ConsumerMember, Option<ConsumerMember>), HeartbeatError> {
        let static_id = request.instance_id.as_deref().and_then(|instance| {
            self.members
                .values()
                .find(|member| member.instance_id.as_deref() == Some(instance))
                .map(|member| member.member_id.clone())
        });
        let known_id = match (&request.instance_id, static_id) {
            (Some(_), Some(id)) if id != request.member_id => {
                if request.member_epoch != 0 {
                    return Err(refuse(
                        ResponseError::FencedInstanceId,
                        format!("instance id is owned by member {id}"),
                    ));
                }
                if self.members[&id].member_epoch != STATIC_LEAVE_EPOCH {
                    return Err(refuse(
                        ResponseError::UnreleasedInstanceId,
                        format!("instance id is still used by member {id}, which must leave first"),
                    ));
                }
                return Ok(self.replace_static_member(&id, request));
            }
            (Some(_), found) => found,
            (None, _) => self
                .members
                .contains_key(&request.member_id)
                .then(|| request.member_id.clone()),
        };
        if request.member_epoch == 0 {
            return Ok(match known_id {
                // A member rejoining (after being fenced, or a lost join response) has released
                // everything it owned.
                Some(id) => {
                    let before = self.members.remove(&id).expect("known");
                    let mut member = before.clone();
                    member.member_epoch = 0;
                    member.previous_member_epoch = 0;
                    member.state = MemberState::Stable;
                    member.assigned.clear();
                    member.revoking.clear();
                    (member, Some(before))
                }
                None => {
                    if self.members.len() >= MEMBERS_PER_GROUP_MAX {
                        return Err(refuse(
                            ResponseError::GroupMaxSizeReached,
                            format!("the group has {MEMBERS_PER_GROUP_MAX} members"),
                        ));
                    }
                    let id = if request.member_id.is_empty() {
                        uuid::Uuid::new_v4().simple().to_string()
                    } else {
                        request.member_id.clone()
                    };
                    let mut member = ConsumerMember::new(id);
                    member.rebalance_timeout_ms = REBALANCE_TIMEOUT_MS_DEFAULT;
                    (member, None)
                }
            });
        }
        let Some(id) = known_id else {
            return Err(refuse(
                ResponseError::UnknownMemberId,
                format!("member {} is not in the group", request.member_id),
            ));
        };
        let member = &self.members[&id];
        check_epoch(member, request)?;
        let before = self.members.remove(&id).expect("known");
        Ok((before.clone(), Some(before)))
    }

    /// A static member comes back under a new member id after its temporary leave: it takes over
    /// the previous member's partitions and target.
    fn replace_static_member(
        &mut self,
        old_id: &str,
        request: &HeartbeatRequest,
    ) -> (ConsumerMember, Option<ConsumerMember>) {
        let old = self.members.remove(old_id).expect("known");
        self.dirty.members.insert(old_id.to_string());
        let new_id = if request.member_id.is_empty() {
            uuid::Uuid::new_v4().simple().to_string()
        } else {
            request.member_id.clone()
        };
        if let Some(target) = self.target.remove(old_id) {
            self.target.insert(new_id.clone(), target);
        }
        let mut member = ConsumerMember {
            member_id: new_id,
            member_epoch: 0,
            previous_member_epoch: 0,
            state: MemberState::Stable,
            revoking: Assignment::new(),
            ..old.clone()
        };
        member.assigned = old.assigned.clone();
        // "before" is the old incarnation: unchanged subscriptions do not bump the group epoch.
        let before = ConsumerMember {
            member_id: member.member_id.clone(),
            ..old
        };
        (member, Some(before))
    }

    /// Topic partition counts of everything the members subscribe to.
    pub(super) fn subscribed_topic_counts(&mut self, view: &TopicView<'_>) -> TopicCounts {
        #[cfg(test)]
        {
            self.subscribed_walks += 1;
        }
        let mut counts = TopicCounts::new();
        for member in self.members.values() {
            let subscribed = resolve(member, view, &mut self.regex_cache);
            for topic in subscribed.topics(view.counts) {
                if let (false, Some(count)) = (counts.contains_key(topic), view.counts.get(topic)) {
                    counts.insert(topic.clone(), *count);
                }
            }
        }
        counts
    }

    /// Computes the target assignment of the current group epoch.
    fn compute_target(&mut self, view: &TopicView<'_>) {
        let subscriptions: BTreeMap<String, BTreeSet<String>> = self
            .members
            .iter()
            .map(|(id, member)| {
                let subscribed = resolve(member, view, &mut self.regex_cache);
                let resolved = subscribed.topics(view.counts).cloned().collect();
                (id.clone(), resolved)
            })
            .collect();
        let spec = AssignmentSpec {
            subscriptions: &subscriptions,
            topics: &self.subscribed_topics,
            previous: &self.target,
        };
        self.target = self.assignor().assign(spec);
        self.assignment_epoch = self.group_epoch;
        self.dirty.group = true;
        self.dirty.members.extend(self.members.keys().cloned());
    }

    /// A member leaves (epoch -1) or a static member leaves for now (epoch -2).
    fn leave(
        &mut self,
        request: &HeartbeatRequest,
        config: &ConsumerGroupConfig,
    ) -> Result<HeartbeatResponse, HeartbeatError> {
        let found = match request.instance_id.as_deref() {
            Some(instance) => self
                .members
                .values()
                .find(|member| member.instance_id.as_deref() == Some(instance))
                .map(|member| member.member_id.clone()),
            None => self
                .members
                .contains_key(&request.member_id)
                .then(|| request.member_id.clone()),
        };
        let Some(member_id) = found else {
            return Err(refuse(
                ResponseError::UnknownMemberId,
                format!("member {} is not in the group", request.member_id),
            ));
        };
        if request.instance_id.is_some() && member_id != request.member_id {
            return Err(refuse(
                ResponseError::FencedInstanceId,
                format!("instance id is owned by member {member_id}"),
            ));
        }
        if request.member_epoch == STATIC_LEAVE_EPOCH {
            let member = self.members.get_mut(&member_id).expect("found");
            member.member_epoch = STATIC_LEAVE_EPOCH;
            self.dirty.members.insert(member_id.clone());
        } else {
            self.remove_member(&member_id);
        }
        Ok(HeartbeatResponse {
            member_id,
            member_epoch: request.member_epoch,
            heartbeat_interval_ms: i32::try_from(config.heartbeat_interval_ms).unwrap_or(i32::MAX),
            assignment: None,
        })
    }

    /// Drops a member: its partitions are free, the next heartbeat computes a new target.
    pub fn remove_member(&mut self, member_id: &str) {
        if self.members.remove(member_id).is_some() {
            self.subscribed_as_of = None;
            self.target.remove(member_id);
            self.dirty.members.insert(member_id.to_string());
            self.bump_group_epoch();
        }
    }

    /// Removes members whose session ran out, or who did not revoke partitions within their
    /// rebalance timeout. Returns the removed member ids.
    pub fn tick(&mut self, now_ms: i64) -> Vec<String> {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|member| {
                member.session_deadline_ms <= now_ms
                    || member
                        .rebalance_deadline_ms
                        .is_some_and(|deadline| deadline <= now_ms)
            })
            .map(|member| member.member_id.clone())
            .collect();
        for member_id in &expired {
            self.remove_member(member_id);
        }
        expired
    }

    /// Checks an OffsetCommit of `version` (or, `transactional`, a TxnOffsetCommit) from
    /// (`member_id`, `instance`, `epoch`), as Kafka's ConsumerGroup.validateOffsetCommit: the
    /// member must exist with this epoch; a negative epoch is accepted while the group has no
    /// members, and a TxnOffsetCommit naming nobody (-1, no member id, no instance id) always.
    pub fn check_commit(
        &self,
        (member_id, instance, epoch): (&str, Option<&str>, i32),
        version: i16,
        transactional: bool,
    ) -> Option<ResponseError> {
        if epoch < 0 && self.members.is_empty() {
            return None;
        }
        if transactional && epoch == -1 && member_id.is_empty() && instance.is_none() {
            // KAFKA-18060: TxnOffsetCommit's older versions carry no member, and a producer
            // without its consumer's group metadata sends none.
            return None;
        }
        let Some(member) = self.members.get(member_id) else {
            return Some(ResponseError::UnknownMemberId);
        };
        if !transactional && version < 9 {
            // A KIP-848 member commits with OffsetCommit v9+ (its epoch is not a generation).
            return Some(ResponseError::UnsupportedVersion);
        }
        // TxnOffsetCommit has no STALE_MEMBER_EPOCH: Kafka answers ILLEGAL_GENERATION instead.
        (epoch != member.member_epoch).then_some(if transactional {
            ResponseError::IllegalGeneration
        } else {
            ResponseError::StaleMemberEpoch
        })
    }

    /// Checks an OffsetFetch v9+: no member id and a negative epoch (admin tools) always pass.
    pub fn check_fetch(&self, member_id: Option<&str>, epoch: i32) -> Option<ResponseError> {
        let member_id = member_id.filter(|id| !id.is_empty());
        let Some(member_id) = member_id else {
            return (epoch >= 0).then_some(ResponseError::UnknownMemberId);
        };
        let Some(member) = self.members.get(member_id) else {
            return Some(ResponseError::UnknownMemberId);
        };
        (epoch != member.member_epoch).then_some(ResponseError::StaleMemberEpoch)
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
