//! What a ConsumerGroupHeartbeat (KIP-848) carries and is answered, the checks it must pass
//! before anything changes (Kafka's request validation and epoch check), and how it updates the
//! member it comes from. The group's state machine that uses them is `state.rs`.
#![forbid(unsafe_code)]

use kafka_protocol::error::ResponseError;

use super::assignor::{Assignment, AssignorName};
use super::member::{is_subset, ConsumerMember};

/// The member epoch a heartbeat sends to leave the group.
pub const LEAVE_EPOCH: i32 = -1;
/// The member epoch a static member sends to leave for now (it keeps its partitions until its
/// session ends or it rejoins).
pub const STATIC_LEAVE_EPOCH: i32 = -2;
/// Longest subscription regex accepted (bounds the compile cost a client can cause).
pub const REGEX_BYTES_MAX: usize = 1024;
/// Topic names one member may subscribe to (bounds the state and records a client can cause).
pub const SUBSCRIBED_TOPICS_MAX: usize = 10_000;

/// A ConsumerGroupHeartbeat, decoded (topic ids already resolved to names).
#[derive(Debug, Clone, Default)]
pub struct HeartbeatRequest {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1: unchanged.
    pub rebalance_timeout_ms: i32,
    /// None: unchanged.
    pub subscribed_topic_names: Option<Vec<String>>,
    /// None: unchanged; empty: no regex.
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// The partitions the member owns; None: unchanged since the last heartbeat.
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

/// A successful heartbeat's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatResponse {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's assignment, when it changed or the member asked (None: keep yours).
    pub assignment: Option<Assignment>,
}

/// A refused heartbeat: the Kafka error and a message for the client's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatError {
    pub error: ResponseError,
    pub message: String,
}

pub(super) fn refuse(error: ResponseError, message: impl Into<String>) -> HeartbeatError {
    HeartbeatError {
        error,
        message: message.into(),
    }
}

/// Checks what a heartbeat must carry, before anything changes.
pub(super) fn validate(request: &HeartbeatRequest) -> Result<(), HeartbeatError> {
    let epoch = request.member_epoch;
    if epoch < STATIC_LEAVE_EPOCH {
        return Err(refuse(
            ResponseError::InvalidRequest,
            format!("member epoch {epoch} is invalid"),
        ));
    }
    if epoch == STATIC_LEAVE_EPOCH && request.instance_id.is_none() {
        return Err(refuse(
            ResponseError::InvalidRequest,
            "member epoch -2 (static leave) needs an instance id",
        ));
    }
    if epoch == 0
        && request.subscribed_topic_names.is_none()
        && request.subscribed_topic_regex.is_none()
    {
        return Err(refuse(
            ResponseError::InvalidRequest,
            "SubscribedTopicNames or SubscribedTopicRegex must be set when joining",
        ));
    }
    if request
        .subscribed_topic_names
        .as_ref()
        .is_some_and(|names| names.len() > SUBSCRIBED_TOPICS_MAX)
    {
        return Err(refuse(
            ResponseError::InvalidRequest,
            format!("at most {SUBSCRIBED_TOPICS_MAX} subscribed topics"),
        ));
    }
    if epoch != 0 && request.member_id.is_empty() {
        return Err(refuse(
            ResponseError::UnknownMemberId,
            "a member id is needed after joining",
        ));
    }
    if let Some(name) = request.server_assignor.as_deref() {
        if !name.is_empty() && AssignorName::parse(name).is_none() {
            return Err(refuse(
                ResponseError::UnsupportedAssignor,
                format!("server assignor {name:?} is not supported (uniform, range)"),
            ));
        }
    }
    if let Some(pattern) = request.subscribed_topic_regex.as_deref() {
        if pattern.len() > REGEX_BYTES_MAX {
            return Err(refuse(
                ResponseError::InvalidRegularExpression,
                "subscription regex too long",
            ));
        }
    }
    Ok(())
}

/// Kafka's epoch check: a member may send its current epoch, or its previous one while it owns
/// only partitions it still has (the answer with the new epoch was lost).
pub(super) fn check_epoch(
    member: &ConsumerMember,
    request: &HeartbeatRequest,
) -> Result<(), HeartbeatError> {
    let received = request.member_epoch;
    let fenced = || {
        refuse(
            ResponseError::FencedMemberEpoch,
            format!(
                "member epoch {received} does not match the coordinator's {}; rejoin",
                member.member_epoch
            ),
        )
    };
    if received > member.member_epoch {
        return Err(fenced());
    }
    if received < member.member_epoch
        && (received != member.previous_member_epoch
            || !request
                .owned
                .as_ref()
                .is_some_and(|owned| is_subset(owned, &member.assigned)))
    {
        return Err(fenced());
    }
    Ok(())
}

/// Applies what a heartbeat carries; returns whether the subscription changed.
pub(super) fn update_member(member: &mut ConsumerMember, request: &HeartbeatRequest) -> bool {
    if request.rebalance_timeout_ms >= 0 {
        member.rebalance_timeout_ms = i64::from(request.rebalance_timeout_ms);
    }
    if request.instance_id.is_some() {
        member.instance_id = request.instance_id.clone();
    }
    if request.rack_id.is_some() {
        member.rack_id = request.rack_id.clone();
    }
    if let Some(assignor) = &request.server_assignor {
        member.server_assignor = (!assignor.is_empty()).then(|| assignor.clone());
    }
    member.client_id = request.client_id.clone();
    member.client_host = request.client_host.clone();
    let mut changed = false;
    if let Some(names) = &request.subscribed_topic_names {
        let mut names = names.clone();
        names.sort();
        names.dedup();
        if names != member.subscribed_topic_names {
            member.subscribed_topic_names = names;
            changed = true;
        }
    }
    if let Some(regex) = &request.subscribed_topic_regex {
        let regex = (!regex.is_empty()).then(|| regex.clone());
        if regex != member.subscribed_topic_regex {
            member.subscribed_topic_regex = regex;
            changed = true;
        }
    }
    changed
}
