//! The classic consumer group state machine (JoinGroup / SyncGroup / Heartbeat / LeaveGroup), as
//! Kafka's GroupCoordinator runs it, without I/O: time comes in as `now_ms`, and answers to
//! requests that wait (JoinGroup until the rebalance completes, SyncGroup until the leader's
//! assignment arrives) come out as [`Effect`]s for the coordinator to deliver.
//!
//! # States
//! ```text
//! Empty ──join──▶ PreparingRebalance ──all joined / deadline──▶ CompletingRebalance
//!   ▲                 ▲       │ (no members left)                   │ leader's SyncGroup
//!   └─────────────────┼───────┘                                     ▼
//!                     └──── join, leave, session expiry ──────── Stable
//! Dead: deleted (DeleteGroups); a later join starts it afresh as Empty.
//! ```
//!
//! # Invariants
//! - The generation only grows; every completed join increments it.
//! - In CompletingRebalance and Stable the leader is a member and every member's protocols include
//!   the group's chosen protocol.
//! - A member answered for generation G is only accepted (sync, heartbeat, commit) with G.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

mod identity;
mod member;
mod messages;
mod pending;
mod timeouts;
use identity::MemberIdentity;
pub use member::Member;
pub use messages::{Effect, GroupPhase, JoinRequest, JoinResponse, Reply, SyncResponse};
use pending::PendingMemberIds;

/// The default wait for late joiners of a brand-new group, so members starting together share one
/// generation (Kafka's group.initial.rebalance.delay.ms, 3000 there, shortened: tests and demos
/// start fast). `--group-initial-rebalance-delay-ms` sets it; see [`Group::set_initial_delay_ms`].
pub const INITIAL_REBALANCE_DELAY_MS: i64 = 500;
/// Members one group may have: bounds the state a client can make us keep.
pub const MEMBERS_PER_GROUP_MAX: usize = 1000;

/// One consumer group.
#[derive(Debug, Clone)]
pub struct Group {
    pub group_id: String,
    pub phase: GroupPhase,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED and not yet used, with their expiry.
    pending_member_ids: PendingMemberIds,
    rebalance_deadline_ms: i64,
    initial_delay_until_ms: i64,
    /// The rebalance under way started from Empty: as Kafka's initial rebalance, it completes
    /// when its delay passed and everyone joined, without waiting for pending member ids.
    initial_rebalance: bool,
    /// How long the first join of an Empty group waits for more members (0: none).
    initial_delay_ms: i64,
    /// Kafka's InitialDelayedJoin: the delay now running, what is left of the rebalance timeout
    /// for further delays, and whether a member joined during the delay now running.
    initial_current_delay_ms: i64,
    initial_remaining_ms: i64,
    initial_member_added: bool,
    next_member_number: u64,
}

impl Group {
    pub fn new(group_id: impl Into<String>) -> Self {
        Self {
            group_id: group_id.into(),
            phase: GroupPhase::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            pending_member_ids: PendingMemberIds::default(),
            rebalance_deadline_ms: 0,
            initial_delay_until_ms: 0,
            initial_rebalance: false,
            initial_delay_ms: INITIAL_REBALANCE_DELAY_MS,
            initial_current_delay_ms: 0,
            initial_remaining_ms: 0,
            initial_member_added: false,
            next_member_number: 0,
        }
    }

    fn new_member_id(&mut self, client_id: &str) -> String {
        self.next_member_number += 1;
        format!(
            "{client_id}-{}-{}",
            self.next_member_number,
            uuid::Uuid::new_v4().simple()
        )
    }

    /// Sets the broker's group.initial.rebalance.delay.ms (negative counts as 0); it applies from
    /// the next rebalance of an Empty group.
    pub fn set_initial_delay_ms(&mut self, delay_ms: i64) {
        self.initial_delay_ms = delay_ms.max(0);
    }

    /// Handles a JoinGroup.
    pub fn join(
        &mut self,
        request: JoinRequest,
        now_ms: i64,
    ) -> (Reply<JoinResponse>, Vec<Effect>) {
        if self.phase == GroupPhase::Dead {
            let initial_delay_ms = self.initial_delay_ms;
            *self = Self::new(self.group_id.clone());
            self.initial_delay_ms = initial_delay_ms;
        }
        if request.protocols.is_empty()
            || request.protocol_type.is_empty()
            || !self.supports_protocols(&request)
        {
            return (
                Reply::Now(JoinResponse::error(
                    ResponseError::InconsistentGroupProtocol,
                    &request.member_id,
                )),
                Vec::new(),
            );
        }
        let mut effects = Vec::new();
        // The leader before a static member's replacement (`Some` only for a replacement).
        let mut replaced: Option<Option<String>> = None;
        let member_id = match self.resolve_member_id(&request, now_ms) {
            Ok(MemberIdentity::Known(member_id)) => member_id,
            Ok(MemberIdentity::ReplacedStatic { old, new }) => {
                replaced = Some(self.leader.clone());
                effects.extend(self.replace_static_member(&old, &new));
                new
            }
            Err(response) => return (Reply::Now(response), Vec::new()),
        };
        if !self.members.contains_key(&member_id) && self.members.len() >= MEMBERS_PER_GROUP_MAX {
            return (
                Reply::Now(JoinResponse::error(
                    ResponseError::GroupMaxSizeReached,
                    &member_id,
                )),
                Vec::new(),
            );
        }
        let unchanged = self
            .members
            .get(&member_id)
            .is_some_and(|member| member.protocols == request.protocols);
        let is_leader = self.leader.as_deref() == Some(member_id.as_str());
        if let (Some(leader_before), GroupPhase::Stable) = (&replaced, self.phase) {
            // A static member restarted under a new id: no rebalance unless its protocols change
            // the group's (Kafka's updateStaticMemberThenRebalanceOrCompleteJoin).
            if let Some(response) =
                self.static_rejoin_in_stable(&request, &member_id, leader_before, now_ms)
            {
                return (Reply::Now(response), effects);
            }
        }
        let keeps_generation = unchanged
            && match self.phase {
                // A leader rejoining with its id asks for a rebalance (Kafka: how it gets topic
                // changes assigned).
                GroupPhase::Stable => !is_leader && replaced.is_none(),
                // Its join answer was lost: no new rebalance for the members parked in SyncGroup
                // (a restarted static member's id is not the one the leader assigns to: one).
                GroupPhase::CompletingRebalance => replaced.is_none(),
                _ => false,
            };
        if keeps_generation {
            // A follower rejoining with the same metadata gets the current generation back.
            let member = self.members.get_mut(&member_id).expect("checked");
            member.last_heartbeat_ms = now_ms;
            return (Reply::Now(self.join_response_for(&member_id)), effects);
        }
        // Kafka extends the initial delay of a brand-new group (generation 0) for each new member.
        if self.phase == GroupPhase::PreparingRebalance
            && self.generation_id == 0
            && !self.members.contains_key(&member_id)
        {
            self.initial_member_added = true;
        }
        let member = self
            .members
            .entry(member_id.clone())
            .or_insert_with(|| Member {
                member_id: member_id.clone(),
                group_instance_id: request.group_instance_id.clone(),
                client_id: request.client_id.clone(),
                client_host: request.client_host.clone(),
                session_timeout_ms: request.session_timeout_ms,
                rebalance_timeout_ms: request.rebalance_timeout_ms,
                protocols: Vec::new(),
                assignment: Bytes::new(),
                last_heartbeat_ms: now_ms,
                awaiting_join: false,
                awaiting_sync: false,
            });
        member.protocols = request.protocols;
        member.session_timeout_ms = request.session_timeout_ms;
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        member.last_heartbeat_ms = now_ms;
        member.awaiting_join = true;
        self.protocol_type.get_or_insert(request.protocol_type);
        if self.phase != GroupPhase::PreparingRebalance {
            effects.extend(self.prepare_rebalance(now_ms));
        }
        effects.extend(self.maybe_complete_join(now_ms));
        let answered_now = effects
            .iter()
            .position(|effect| matches!(effect, Effect::Join(id, _) if *id == member_id));
        match answered_now {
            Some(index) => {
                let Effect::Join(_, response) = effects.remove(index) else {
                    unreachable!("matched a Join")
                };
                (Reply::Now(response), effects)
            }
            None => (Reply::Later(member_id), effects),
        }
    }

    /// Kafka's supportsProtocols: a join into a group with members must be of its protocol type
    /// and share a protocol with every member (else it is refused at once, rather than let in
    /// to a rebalance that would end with every member refused).
    fn supports_protocols(&self, request: &JoinRequest) -> bool {
        self.members.is_empty()
            || (self.protocol_type.as_deref() == Some(request.protocol_type.as_str())
                && request.protocols.iter().any(|(name, _)| {
                    self.members
                        .values()
                        .all(|member| member.protocols.iter().any(|(other, _)| other == name))
                }))
    }

    fn prepare_rebalance(&mut self, now_ms: i64) -> Vec<Effect> {
        let mut effects = Vec::new();
        // Members waiting for a sync of the generation being abandoned must rejoin.
        for member in self.members.values_mut() {
            if member.awaiting_sync {
                member.awaiting_sync = false;
                effects.push(Effect::Sync(
                    member.member_id.clone(),
                    SyncResponse {
                        error: Some(ResponseError::RebalanceInProgress),
                        protocol_type: None,
                        protocol_name: None,
                        assignment: Bytes::new(),
                    },
                ));
            }
        }
        let rebalance_timeout_ms = self.rebalance_timeout_ms();
        self.initial_rebalance = self.phase == GroupPhase::Empty;
        if self.initial_rebalance {
            self.initial_delay_until_ms = now_ms + self.initial_delay_ms;
            self.initial_current_delay_ms = self.initial_delay_ms;
            self.initial_remaining_ms = (rebalance_timeout_ms - self.initial_delay_ms).max(0);
            self.initial_member_added = false;
        }
        self.rebalance_deadline_ms = now_ms + rebalance_timeout_ms.max(self.initial_delay_ms);
        // As Kafka logs its rebalances: a stalled group's log then says where it stopped.
        tracing::info!(
            group = %self.group_id,
            generation = self.generation_id,
            members = self.members.len(),
            rebalance_timeout_ms,
            "preparing to rebalance"
        );
        self.phase = GroupPhase::PreparingRebalance;
        effects
    }

    /// Kafka's InitialDelayedJoin: when the initial delay ran out and a new member joined during
    /// it, waits one more delay (no longer than what is left of the rebalance timeout), so
    /// consumers starting over a few seconds still share one generation. Returns whether the
    /// join must wait on.
    fn extend_initial_delay(&mut self, now_ms: i64) -> bool {
        if !self.initial_rebalance
            || !self.initial_member_added
            || self.initial_remaining_ms == 0
            || self.initial_delay_ms == 0
        {
            return false;
        }
        self.initial_member_added = false;
        let delay_ms = self.initial_delay_ms.min(self.initial_remaining_ms);
        self.initial_remaining_ms =
            (self.initial_remaining_ms - self.initial_current_delay_ms).max(0);
        self.initial_current_delay_ms = delay_ms;
        // From when the last delay was due (Kafka's timer fires then; `tick` may come later).
        self.initial_delay_until_ms += delay_ms;
        now_ms < self.initial_delay_until_ms
    }

    /// Completes the join phase when every member has rejoined (after the initial delay; outside
    /// the initial rebalance, no member id handed out is pending either), or when the rebalance
    /// deadline passed (members that did not rejoin are dropped).
    fn maybe_complete_join(&mut self, now_ms: i64) -> Vec<Effect> {
        if self.phase != GroupPhase::PreparingRebalance {
            return Vec::new();
        }
        // Kafka's hasAllMembersJoined: a member id handed out with MEMBER_ID_REQUIRED is a
        // member on its way (its joiner comes back with it at once), waited for until it joins
        // or its session timeout expires it (`tick`).
        let all_joined = self.members.values().all(|member| member.awaiting_join)
            && (self.initial_rebalance || self.pending_member_ids.is_empty());
        let deadline_passed = now_ms >= self.rebalance_deadline_ms;
        if !(deadline_passed || (all_joined && now_ms >= self.initial_delay_until_ms)) {
            return Vec::new();
        }
        if !deadline_passed && self.extend_initial_delay(now_ms) {
            return Vec::new();
        }
        let before = self.members.len();
        self.members.retain(|_, member| member.awaiting_join);
        if self.members.len() < before {
            tracing::info!(
                group = %self.group_id,
                dropped = before - self.members.len(),
                "members that did not rejoin within the rebalance timeout were removed"
            );
        }
        self.generation_id += 1;
        if self.members.is_empty() {
            self.phase = GroupPhase::Empty;
            self.leader = None;
            self.protocol_name = None;
            return Vec::new();
        }
        self.protocol_name = self.choose_protocol();
        if self.protocol_name.is_none() {
            // No protocol every member speaks: refuse them all.
            let effects = self
                .members
                .keys()
                .map(|id| {
                    Effect::Join(
                        id.clone(),
                        JoinResponse::error(ResponseError::InconsistentGroupProtocol, id),
                    )
                })
                .collect();
            self.members.clear();
            self.phase = GroupPhase::Empty;
            return effects;
        }
        if !self
            .leader
            .as_ref()
            .is_some_and(|leader| self.members.contains_key(leader))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.phase = GroupPhase::CompletingRebalance;
        // Now the deadline of the members' SyncGroups (timeouts.rs).
        self.rebalance_deadline_ms = now_ms + self.rebalance_timeout_ms();
        tracing::info!(
            group = %self.group_id,
            generation = self.generation_id,
            members = self.members.len(),
            leader = self.leader.as_deref().unwrap_or(""),
            protocol = self.protocol_name.as_deref().unwrap_or(""),
            "joined; waiting for the leader's assignment"
        );
        let ids: Vec<String> = self.members.keys().cloned().collect();
        let mut effects = Vec::with_capacity(ids.len());
        for id in ids {
            let member = self.members.get_mut(&id).expect("listed");
            member.awaiting_join = false;
            member.last_heartbeat_ms = now_ms;
            member.assignment = Bytes::new();
            effects.push(Effect::Join(id.clone(), self.join_response_for(&id)));
        }
        effects
    }

    /// The protocol with most first-choice votes among those every member supports.
    pub(super) fn choose_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let common: Vec<&String> = first
            .protocols
            .iter()
            .map(|(name, _)| name)
            .filter(|name| {
                self.members
                    .values()
                    .all(|member| member.protocols.iter().any(|(other, _)| other == *name))
            })
            .collect();
        let mut votes: BTreeMap<&String, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some((name, _)) = member
                .protocols
                .iter()
                .find(|(name, _)| common.contains(&name))
            {
                *votes.entry(name).or_default() += 1;
            }
        }
        let best = votes.values().copied().max()?;
        // Ties go to the first member's preference order.
        common
            .into_iter()
            .find(|name| votes.get(name) == Some(&best))
            .cloned()
    }

    pub(super) fn join_response_for(&self, member_id: &str) -> JoinResponse {
        let protocol_name = self.protocol_name.clone();
        let is_leader = self.leader.as_deref() == Some(member_id);
        let members = if is_leader {
            self.members
                .values()
                .map(|member| {
                    let metadata = member
                        .protocols
                        .iter()
                        .find(|(name, _)| Some(name) == protocol_name.as_ref())
                        .map(|(_, metadata)| metadata.clone())
                        .unwrap_or_default();
                    (
                        member.member_id.clone(),
                        member.group_instance_id.clone(),
                        metadata,
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinResponse {
            error: None,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name,
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members,
            skip_assignment: false,
        }
    }

    /// INCONSISTENT_GROUP_PROTOCOL for a SyncGroup (v5+) that names another protocol type or
    /// name than the group's (Kafka compares each when both sides have one).
    pub fn check_sync_protocol(
        &self,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
    ) -> Option<ResponseError> {
        let differs = |asked: Option<&str>, group: &Option<String>| {
            asked.zip(group.as_deref()).is_some_and(|(a, b)| a != b)
        };
        (differs(protocol_type, &self.protocol_type) || differs(protocol_name, &self.protocol_name))
            .then_some(ResponseError::InconsistentGroupProtocol)
    }

    /// Handles a SyncGroup; the leader's carries everyone's assignment.
    pub fn sync(
        &mut self,
        member_id: &str,
        generation_id: i32,
        assignments: Vec<(String, Bytes)>,
        now_ms: i64,
    ) -> (Reply<SyncResponse>, Vec<Effect>) {
        let error = |error| {
            Reply::Now(SyncResponse {
                error: Some(error),
                protocol_type: None,
                protocol_name: None,
                assignment: Bytes::new(),
            })
        };
        if let Err(err) = self.check_member(member_id, generation_id) {
            return (error(err), Vec::new());
        }
        match self.phase {
            GroupPhase::PreparingRebalance => {
                (error(ResponseError::RebalanceInProgress), Vec::new())
            }
            GroupPhase::Stable => (Reply::Now(self.sync_response_for(member_id)), Vec::new()),
            GroupPhase::CompletingRebalance => {
                let member = self.members.get_mut(member_id).expect("checked");
                member.last_heartbeat_ms = now_ms;
                member.awaiting_sync = true;
                if self.leader.as_deref() != Some(member_id) {
                    return (Reply::Later(member_id.to_string()), Vec::new());
                }
                for (target, assignment) in assignments {
                    if let Some(member) = self.members.get_mut(&target) {
                        member.assignment = assignment;
                    }
                }
                self.phase = GroupPhase::Stable;
                tracing::info!(
                    group = %self.group_id,
                    generation = self.generation_id,
                    members = self.members.len(),
                    "stable: the leader's assignment handed out"
                );
                let mut reply = Reply::Later(member_id.to_string());
                let mut effects = Vec::new();
                let waiting: Vec<String> = self
                    .members
                    .values()
                    .filter(|member| member.awaiting_sync)
                    .map(|member| member.member_id.clone())
                    .collect();
                for id in waiting {
                    self.members.get_mut(&id).expect("listed").awaiting_sync = false;
                    let response = self.sync_response_for(&id);
                    if id == member_id {
                        reply = Reply::Now(response);
                    } else {
                        effects.push(Effect::Sync(id, response));
                    }
                }
                (reply, effects)
            }
            GroupPhase::Empty | GroupPhase::Dead => {
                (error(ResponseError::UnknownMemberId), Vec::new())
            }
        }
    }

    /// The generation the leader's SyncGroup completed could not be stored: as Kafka does, the
    /// assignments are dropped and the group rebalances (its members were answered an error).
    pub fn assignment_not_stored(&mut self, now_ms: i64) -> Vec<Effect> {
        for member in self.members.values_mut() {
            member.assignment = Bytes::new();
        }
        self.prepare_rebalance(now_ms)
    }

    fn sync_response_for(&self, member_id: &str) -> SyncResponse {
        SyncResponse {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment: self
                .members
                .get(member_id)
                .map(|member| member.assignment.clone())
                .unwrap_or_default(),
        }
    }

    /// Handles a Heartbeat: REBALANCE_IN_PROGRESS tells the member to rejoin.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        generation_id: i32,
        now_ms: i64,
    ) -> Option<ResponseError> {
        if let Err(err) = self.check_member(member_id, generation_id) {
            return Some(err);
        }
        self.members
            .get_mut(member_id)
            .expect("checked")
            .last_heartbeat_ms = now_ms;
        match self.phase {
            GroupPhase::PreparingRebalance => Some(ResponseError::RebalanceInProgress),
            _ => None,
        }
    }

    /// Handles a LeaveGroup for one member (by member id or static instance id).
    pub fn leave(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        now_ms: i64,
    ) -> (Option<ResponseError>, Vec<Effect>) {
        if !member_id.is_empty() && self.pending_member_ids.take(member_id) {
            // As Kafka: a member given its id with MEMBER_ID_REQUIRED may leave before joining
            // with it (a consumer closed at once); the rebalance it was holding goes on.
            return (None, self.maybe_complete_join(now_ms));
        }
        let found = match group_instance_id {
            // An instance's leave names its member id too (or none, from admin tools): another
            // id is a fenced zombie's.
            Some(instance) => match self.static_member(instance) {
                Some(member) if !member_id.is_empty() && member.member_id != member_id => {
                    return (Some(ResponseError::FencedInstanceId), Vec::new());
                }
                found => found.map(|member| member.member_id.clone()),
            },
            None => self
                .members
                .contains_key(member_id)
                .then(|| member_id.to_string()),
        };
        let Some(found) = found else {
            return (Some(ResponseError::UnknownMemberId), Vec::new());
        };
        (None, self.remove_member(&found, now_ms))
    }

    /// Drops a member and rebalances the rest.
    fn remove_member(&mut self, member_id: &str, now_ms: i64) -> Vec<Effect> {
        let Some(removed) = self.members.remove(member_id) else {
            return Vec::new();
        };
        let mut effects = Vec::new();
        if removed.awaiting_join {
            effects.push(Effect::Join(
                member_id.to_string(),
                JoinResponse::error(ResponseError::UnknownMemberId, member_id),
            ));
        }
        if removed.awaiting_sync {
            effects.push(Effect::Sync(
                member_id.to_string(),
                SyncResponse {
                    error: Some(ResponseError::UnknownMemberId),
                    protocol_type: None,
                    protocol_name: None,
                    assignment: Bytes::new(),
                },
            ));
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = None;
        }
        match self.phase {
            GroupPhase::Stable | GroupPhase::CompletingRebalance => {
                effects.extend(self.prepare_rebalance(now_ms));
                effects.extend(self.maybe_complete_join(now_ms));
            }
            GroupPhase::PreparingRebalance => effects.extend(self.maybe_complete_join(now_ms)),
            GroupPhase::Empty | GroupPhase::Dead => {}
        }
        if self.members.is_empty() && self.phase != GroupPhase::Dead {
            self.phase = GroupPhase::Empty;
        }
        effects
    }
}

#[cfg(test)]
mod static_tests;
#[cfg(test)]
mod tests;
