//! Who a classic JoinGroup (and the requests after it) is from: a known member, a new one (with
//! the MEMBER_ID_REQUIRED handshake of v4+), or a static instance restarted under a new member id
//! (KIP-345).
#![forbid(unsafe_code)]

use kafka_protocol::error::ResponseError;

use super::{Effect, Group, GroupPhase, JoinRequest, JoinResponse, Member, SyncResponse};

/// Who a JoinGroup is from.
pub(super) enum MemberIdentity {
    /// A member of the group, or a new one.
    Known(String),
    /// A static member restarted: `new` replaces `old`.
    ReplacedStatic { old: String, new: String },
}

impl Group {
    /// Finds or makes the member id of a join; a new dynamic member of v4+ must come back with it.
    #[allow(clippy::result_large_err)] // the error is the whole answer to send; it is built once
    pub(super) fn resolve_member_id(
        &mut self,
        request: &JoinRequest,
        now_ms: i64,
    ) -> Result<MemberIdentity, JoinResponse> {
        if let Some(instance) = &request.group_instance_id {
            // Static membership: the instance id names the member across restarts. A join with
            // no member id is the instance restarted: it gets a new member id that replaces the
            // old one, which is fenced (Kafka's static member replacement, KIP-345). A join
            // with another member id than the instance's is a zombie: fenced.
            if let Some(known) = self.static_member(instance) {
                let known = known.member_id.clone();
                if request.member_id.is_empty() {
                    let new = self.new_member_id(&request.client_id);
                    return Ok(MemberIdentity::ReplacedStatic { old: known, new });
                }
                if request.member_id != known {
                    return Err(JoinResponse::error(
                        ResponseError::FencedInstanceId,
                        &request.member_id,
                    ));
                }
                return Ok(MemberIdentity::Known(known));
            }
            if request.member_id.is_empty() {
                return Ok(MemberIdentity::Known(
                    self.new_member_id(&request.client_id),
                ));
            }
        }
        if request.member_id.is_empty() {
            let member_id = self.new_member_id(&request.client_id);
            if request.require_known_member_id {
                self.pending_member_ids
                    .insert(member_id.clone(), now_ms + request.session_timeout_ms);
                return Err(JoinResponse::error(
                    ResponseError::MemberIdRequired,
                    &member_id,
                ));
            }
            return Ok(MemberIdentity::Known(member_id));
        }
        if self.members.contains_key(&request.member_id)
            || self.pending_member_ids.take(&request.member_id)
        {
            return Ok(MemberIdentity::Known(request.member_id.clone()));
        }
        Err(JoinResponse::error(
            ResponseError::UnknownMemberId,
            &request.member_id,
        ))
    }

    pub(super) fn static_member(&self, instance: &str) -> Option<&Member> {
        self.members
            .values()
            .find(|member| member.group_instance_id.as_deref() == Some(instance))
    }

    /// Moves a static member to its new member id (keeping its assignment and its place as
    /// leader); whatever the old id was waiting for is answered FENCED_INSTANCE_ID.
    pub(super) fn replace_static_member(&mut self, old: &str, new: &str) -> Vec<Effect> {
        let Some(mut member) = self.members.remove(old) else {
            return Vec::new();
        };
        let mut effects = Vec::new();
        if member.awaiting_join {
            effects.push(Effect::Join(
                old.to_string(),
                JoinResponse::error(ResponseError::FencedInstanceId, old),
            ));
        }
        if member.awaiting_sync {
            member.awaiting_sync = false;
            effects.push(Effect::Sync(
                old.to_string(),
                SyncResponse::error(ResponseError::FencedInstanceId),
            ));
        }
        tracing::info!(group = %self.group_id, old, new, "static member replaced");
        member.member_id = new.to_string();
        if self.leader.as_deref() == Some(old) {
            self.leader = Some(new.to_string());
        }
        self.members.insert(new.to_string(), member);
        effects
    }

    /// A static member restarted under `member_id` (already replacing its old id) in a Stable
    /// group: its protocols and timeouts are the join's; if the group's protocol stays, it is
    /// answered the current generation without a rebalance (None: the protocol changes, the
    /// group must rebalance). As Kafka (KIP-814): a leader asking JoinGroup v9+ is told to skip
    /// the assignment (its SyncGroup gets the one it had) and is sent the members, whose
    /// subscriptions it may watch; before v9 it is answered the leader before the replacement
    /// (its old id) and no members, so it does not take itself for the leader either.
    pub(super) fn static_rejoin_in_stable(
        &mut self,
        request: &JoinRequest,
        member_id: &str,
        leader_before: &Option<String>,
        now_ms: i64,
    ) -> Option<JoinResponse> {
        let member = self.members.get_mut(member_id)?;
        member.protocols.clone_from(&request.protocols);
        member.session_timeout_ms = request.session_timeout_ms;
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        member.last_heartbeat_ms = now_ms;
        if self.choose_protocol() != self.protocol_name {
            return None;
        }
        let mut response = self.join_response_for(member_id);
        let is_leader = self.leader.as_deref() == Some(member_id);
        if request.supports_skip_assignment {
            response.skip_assignment = is_leader;
        } else {
            response.leader = leader_before.clone().unwrap_or_default();
            response.members.clear();
        }
        Some(response)
    }

    /// FENCED_INSTANCE_ID for a request naming a static instance whose member id is another one
    /// (the instance was restarted and replaced this member).
    pub fn check_instance(&self, member_id: &str, instance: Option<&str>) -> Option<ResponseError> {
        let known = self.static_member(instance?)?;
        (known.member_id != member_id).then_some(ResponseError::FencedInstanceId)
    }

    /// Checks that a request comes from a current member of this generation.
    pub(crate) fn check_member(
        &self,
        member_id: &str,
        generation_id: i32,
    ) -> Result<(), ResponseError> {
        if !self.members.contains_key(member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        if generation_id != self.generation_id {
            return Err(ResponseError::IllegalGeneration);
        }
        Ok(())
    }

    /// Whether an OffsetCommit (or, `transactional`, a TxnOffsetCommit) from (`member_id`,
    /// `instance`, `generation_id`) may be stored, checked in the order of Kafka's
    /// ClassicGroup.validateOffsetCommit.
    pub fn check_commit(
        &self,
        (member_id, instance, generation_id): (&str, Option<&str>, i32),
        transactional: bool,
    ) -> Option<ResponseError> {
        if generation_id < 0 && self.members.is_empty() {
            // An admin or a consumer outside group management (KAFKA-14201: one with a
            // group.instance.id using assign() names it and its member id too) may commit while
            // the group has no members, whatever member it names.
            return None;
        }
        if generation_id >= 0 || !member_id.is_empty() || instance.is_some() {
            // A named member is checked even with generation -1 (then ILLEGAL_GENERATION, -1
            // not being the group's generation).
            if let Some(instance) = instance {
                match self.static_member(instance) {
                    None => return Some(ResponseError::UnknownMemberId),
                    Some(known) if known.member_id != member_id => {
                        return Some(ResponseError::FencedInstanceId)
                    }
                    Some(_) => {}
                }
            }
            if let Err(err) = self.check_member(member_id, generation_id) {
                return Some(err);
            }
        } else if !transactional {
            // Nobody named while the group has members: UNKNOWN_MEMBER_ID (librdkafka's
            // 0081_admin expects it of AlterConsumerGroupOffsets). A TxnOffsetCommit may name
            // nobody (its versions before 3 can't), and is accepted.
            return Some(ResponseError::UnknownMemberId);
        }
        // As in Kafka: a member of the current generation may commit while the group prepares a
        // rebalance (its commit on revocation is what lets the next owner resume exactly there);
        // only while assignments are being handed out is it told to finish the rebalance first.
        // A transactional commit does not wait for the group's state.
        (!transactional && self.phase == GroupPhase::CompletingRebalance)
            .then_some(ResponseError::RebalanceInProgress)
    }
}
