//! Who a classic JoinGroup (and the requests after it) is from: a known member, a new one (with
//! the MEMBER_ID_REQUIRED handshake of v4+), or a static instance restarted under a new member id
//! (KIP-345).
#![forbid(unsafe_code)]

use kafka_protocol::error::ResponseError;

use super::{Effect, Group, JoinRequest, JoinResponse, Member, SyncResponse};

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

    /// FENCED_INSTANCE_ID for a request naming a static instance whose member id is another one
    /// (the instance was restarted and replaced this member).
    pub fn check_instance(&self, member_id: &str, instance: Option<&str>) -> Option<ResponseError> {
        let known = self.static_member(instance?)?;
        (known.member_id != member_id).then_some(ResponseError::FencedInstanceId)
    }
}
