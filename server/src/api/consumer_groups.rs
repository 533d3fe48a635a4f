//! The next-generation consumer group protocol (KIP-848): ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe. Topic ids on the wire are resolved to names here; the coordinator
//! (`crate::group::consumer`) works with names.
#![forbid(unsafe_code)]

use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member as DescribedMember,
    TopicPartitions as DescribedTopicPartitions,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{
    Assignment as HeartbeatAssignment, TopicPartitions as HeartbeatTopicPartitions,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::groups::on_coordinator;
use super::{
    code, error_message, str_bytes, ClientInfo, Operation, RequestContext, RequestError, Resource,
    Response,
};
use crate::group::consumer::{Assignment, ConsumerGroup, HeartbeatRequest};
use crate::shard::ShardContext;

/// Partitions a heartbeat may report per topic: more than any topic can have is refused.
const OWNED_PARTITIONS_MAX: usize = 1 << 20;

fn opt_string(text: &Option<StrBytes>) -> Option<String> {
    text.as_ref().map(|text| text.to_string())
}

/// The owned partitions of a heartbeat by topic name; topics this broker does not know (deleted)
/// are left out, since nobody can be assigned them.
fn owned_by_name(
    context: &ShardContext,
    owned: &[consumer_group_heartbeat_request::TopicPartitions],
) -> Assignment {
    let mut assignment = Assignment::new();
    for topic in owned {
        if let Some(info) = context.metadata.topic_by_id(topic.topic_id) {
            let partitions = topic
                .partitions
                .iter()
                .copied()
                .filter(|partition| info.has_partition(*partition))
                .take(OWNED_PARTITIONS_MAX);
            assignment
                .entry(info.name.clone())
                .or_default()
                .extend(partitions);
        }
    }
    assignment
}

/// (topic id, topic name, partitions) of an assignment, for topics that still exist.
fn with_ids(
    context: &ShardContext,
    assignment: &Assignment,
) -> Vec<(uuid::Uuid, String, Vec<i32>)> {
    assignment
        .iter()
        .filter_map(|(name, partitions)| {
            let info = context.metadata.topic(name)?;
            Some((
                info.topic_id,
                name.clone(),
                partitions.iter().copied().collect(),
            ))
        })
        .collect()
}

pub async fn consumer_group_heartbeat(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
    client: Option<ClientInfo>,
) -> Result<Response, RequestError> {
    let beat: ConsumerGroupHeartbeatRequest = request.decode(body)?;
    let group_id = beat.group_id.to_string();
    let refuse = |error: ResponseError, message: &str| {
        request.frame(
            &ConsumerGroupHeartbeatResponse::default()
                .with_error_code(code(error))
                .with_error_message(Some(error_message(message))),
        )
    };
    if group_id.is_empty() {
        return Ok(refuse(
            ResponseError::InvalidRequest,
            "GroupId can't be empty",
        ));
    }
    if !request.allows(context, Operation::Read, Resource::group(&group_id)) {
        return Ok(refuse(
            ResponseError::GroupAuthorizationFailed,
            "not authorized",
        ));
    }
    // As Kafka: every subscribed topic name needs DESCRIBE; the refusal names the others.
    let undescribable: Vec<String> = beat
        .subscribed_topic_names
        .iter()
        .flatten()
        .map(|name| name.to_string())
        .filter(|name| !request.allows(context, Operation::Describe, Resource::topic(name)))
        .collect();
    if !undescribable.is_empty() {
        let message = format!("topics not authorized: {}", undescribable.join(", "));
        return Ok(refuse(ResponseError::TopicAuthorizationFailed, &message));
    }
    let heartbeat = HeartbeatRequest {
        member_id: beat.member_id.to_string(),
        member_epoch: beat.member_epoch,
        instance_id: opt_string(&beat.instance_id),
        rack_id: opt_string(&beat.rack_id),
        rebalance_timeout_ms: beat.rebalance_timeout_ms,
        subscribed_topic_names: beat
            .subscribed_topic_names
            .as_ref()
            .map(|names| names.iter().map(|name| name.to_string()).collect()),
        subscribed_topic_regex: opt_string(&beat.subscribed_topic_regex),
        server_assignor: opt_string(&beat.server_assignor),
        owned: beat
            .topic_partitions
            .as_ref()
            .map(|owned| owned_by_name(context, owned)),
        client_id: client
            .as_ref()
            .map(|client| client.client_id.clone())
            .unwrap_or_default(),
        client_host: client.map(|client| client.host).unwrap_or_default(),
    };
    // The member's regex matches only topics its principal may DESCRIBE (as Kafka resolves it).
    let identity = request.identity.clone();
    let acl = std::sync::Arc::clone(&context.acl);
    let answer = on_coordinator(context, move |coordinator| async move {
        let describable = |identity: &crate::acl::Identity, topic: &str| {
            acl.decide(identity, Operation::Describe, Resource::topic(topic))
        };
        // Read before any check, so a change of the ACLs during this heartbeat is seen by the
        // next one (the regex results are kept per ACL version).
        let acl_version = acl.version();
        coordinator
            .consumer_heartbeat_as(
                group_id,
                heartbeat,
                Some(identity),
                (&describable, acl_version),
            )
            .await
    })
    .await?;
    let answer = match answer {
        None => {
            return Ok(refuse(
                ResponseError::CoordinatorNotAvailable,
                "the coordinator is loading",
            ))
        }
        Some(Err(refused)) => return Ok(refuse(refused.error, &refused.message)),
        Some(Ok(answer)) => answer,
    };
    let assignment = answer.assignment.as_ref().map(|assignment| {
        let topics = with_ids(context, assignment)
            .into_iter()
            .map(|(topic_id, _, partitions)| {
                HeartbeatTopicPartitions::default()
                    .with_topic_id(topic_id)
                    .with_partitions(partitions)
            })
            .collect();
        HeartbeatAssignment::default().with_topic_partitions(topics)
    });
    let response = ConsumerGroupHeartbeatResponse::default()
        .with_member_id(Some(str_bytes(&answer.member_id)))
        .with_member_epoch(answer.member_epoch)
        .with_heartbeat_interval_ms(answer.heartbeat_interval_ms)
        .with_assignment(assignment);
    Ok(request.frame(&response))
}

fn described_assignment(context: &ShardContext, assignment: &Assignment) -> DescribedAssignment {
    let topics = with_ids(context, assignment)
        .into_iter()
        .map(|(topic_id, name, partitions)| {
            DescribedTopicPartitions::default()
                .with_topic_id(topic_id)
                .with_topic_name(TopicName(str_bytes(&name)))
                .with_partitions(partitions)
        })
        .collect();
    DescribedAssignment::default().with_topic_partitions(topics)
}

fn describe_group(context: &ShardContext, group: &ConsumerGroup, version: i16) -> DescribedGroup {
    let members = group
        .members
        .values()
        .map(|member| {
            let target = group
                .target
                .get(&member.member_id)
                .cloned()
                .unwrap_or_default();
            let described = DescribedMember::default()
                .with_member_id(str_bytes(&member.member_id))
                .with_instance_id(member.instance_id.as_deref().map(str_bytes))
                .with_rack_id(member.rack_id.as_deref().map(str_bytes))
                .with_member_epoch(member.member_epoch)
                .with_client_id(str_bytes(&member.client_id))
                .with_client_host(str_bytes(&member.client_host))
                .with_subscribed_topic_names(
                    member
                        .subscribed_topic_names
                        .iter()
                        .map(|name| TopicName(str_bytes(name)))
                        .collect(),
                )
                .with_subscribed_topic_regex(
                    member.subscribed_topic_regex.as_deref().map(str_bytes),
                )
                .with_assignment(described_assignment(context, &member.assigned))
                .with_target_assignment(described_assignment(context, &target));
            if version >= 1 {
                // KIP-1099: 1 = a member of the consumer protocol.
                described.with_member_type(1)
            } else {
                described
            }
        })
        .collect();
    DescribedGroup::default()
        .with_group_id(GroupId(str_bytes(&group.group_id)))
        .with_group_state(str_bytes(group.phase().kafka_name()))
        .with_group_epoch(group.group_epoch)
        .with_assignment_epoch(group.assignment_epoch)
        .with_assignor_name(str_bytes(group.assignor().as_str()))
        .with_members(members)
}

/// Whether a described group's assignments or target assignments name a topic the caller may
/// not DESCRIBE (Kafka's handleConsumerGroupDescribe then hides the whole group).
fn names_undescribable_topic(
    context: &ShardContext,
    request: &RequestContext,
    group: &DescribedGroup,
) -> bool {
    group
        .members
        .iter()
        .flat_map(|member| [&member.assignment, &member.target_assignment])
        .flat_map(|assignment| &assignment.topic_partitions)
        .any(|topic| {
            !request.allows(
                context,
                Operation::Describe,
                Resource::topic(topic.topic_name.as_str()),
            )
        })
}

pub async fn consumer_group_describe(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let describe: ConsumerGroupDescribeRequest = request.decode(body)?;
    let mut groups = Vec::with_capacity(describe.group_ids.len());
    for group_id in describe.group_ids {
        let id = group_id.to_string();
        if !request.allows(context, Operation::Describe, Resource::group(&id)) {
            let denied = DescribedGroup::default()
                .with_error_code(code(ResponseError::GroupAuthorizationFailed));
            groups.push(denied.with_group_id(group_id));
            continue;
        }
        let snapshot = on_coordinator(context, move |coordinator| async move {
            coordinator.consumer_group(&id)
        })
        .await?;
        let described = match snapshot {
            None => DescribedGroup::default()
                .with_group_id(group_id)
                .with_error_code(code(ResponseError::CoordinatorNotAvailable)),
            // Unknown, or a classic group: clients then fall back to DescribeGroups.
            Some(None) => DescribedGroup::default()
                .with_error_message(Some(error_message(&format!(
                    "group {} is not a consumer group",
                    group_id.as_str()
                ))))
                .with_group_id(group_id)
                .with_error_code(code(ResponseError::GroupIdNotFound)),
            Some(Some(group)) => {
                let described = describe_group(context, &group, request.version);
                if names_undescribable_topic(context, &request, &described) {
                    // As Kafka: the group is not shown to someone who may not see its topics.
                    DescribedGroup::default()
                        .with_group_id(group_id)
                        .with_error_code(code(ResponseError::TopicAuthorizationFailed))
                        .with_error_message(Some(error_message(
                            "The group has described topic(s) that the client is not \
                             authorized to describe.",
                        )))
                } else {
                    described
                }
            }
        };
        groups.push(described);
    }
    Ok(request.frame(&ConsumerGroupDescribeResponse::default().with_groups(groups)))
}
