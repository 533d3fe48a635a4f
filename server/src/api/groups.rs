//! Consumer group membership APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! ListGroups, DescribeGroups, DeleteGroups. Each runs on the coordinator's shard
//! (see `crate::group`). Fields a version lacks stay at their defaults, or encoding fails.
#![forbid(unsafe_code)]

use std::future::Future;
use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator as CoordinatorEntry;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{code, str_bytes, Operation, RequestContext, RequestError, Resource, Response};
use crate::group::state::JoinRequest;
use crate::group::{Coordinator, OFFSETS_TOPIC};
use crate::shard::ShardContext;

/// Runs `job` on the group coordinator; `None` while it is not loaded (COORDINATOR_NOT_AVAILABLE).
pub async fn on_coordinator<R, F, Fut>(
    context: &Rc<ShardContext>,
    job: F,
) -> Result<Option<R>, RequestError>
where
    R: Send + 'static,
    F: FnOnce(Rc<Coordinator>) -> Fut + Send + 'static,
    Fut: Future<Output = R> + 'static,
{
    run_to_completion_on_owner(
        context,
        OFFSETS_TOPIC,
        |owner| owner.coordinator.borrow().clone(),
        job,
    )
    .await
}

/// Runs `job` with the service `pick` finds on the shard owning partition 0 of `topic` (a
/// coordinator); `None` while that service is not loaded.
///
/// The job runs to completion in a task of its own, even if the request that started it is
/// dropped: a connection that closes cancels its requests' futures, and a coordinator operation
/// cut at an await (a leader's SyncGroup between completing the generation and answering the
/// followers, a commit between writing and applying, an EndTxn between its markers) would leave
/// others waiting.
pub async fn run_to_completion_on_owner<S, R, F, Fut>(
    context: &Rc<ShardContext>,
    topic: &'static str,
    pick: fn(&ShardContext) -> Option<Rc<S>>,
    job: F,
) -> Result<Option<R>, RequestError>
where
    S: 'static,
    R: Send + 'static,
    F: FnOnce(Rc<S>) -> Fut + Send + 'static,
    Fut: Future<Output = R> + 'static,
{
    Ok(context
        .on_owner(topic, 0, move |owner| async move {
            let service = pick(&owner)?;
            let (answer, answered) = futures_channel::oneshot::channel();
            compio::runtime::spawn(async move {
                let _ = answer.send(job(service).await);
            })
            .detach();
            answered.await.ok()
        })
        .await?)
}

fn opt_str(text: &Option<StrBytes>) -> Option<String> {
    text.as_ref().map(|text| text.to_string())
}

pub async fn find_coordinator(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let find: FindCoordinatorRequest = request.decode(body)?;
    let listener = context.settings.listener(request.listener);
    let host = str_bytes(&listener.advertised_host);
    let port = listener.advertised_port;
    let response = if request.version >= 4 {
        let coordinators = find
            .coordinator_keys
            .iter()
            .map(|key| {
                let entry = CoordinatorEntry::default().with_key(key.clone());
                match coordinator_denied(context, &request, find.key_type, key) {
                    Some(denied) => entry
                        .with_error_code(code(denied))
                        .with_node_id(BrokerId(-1)),
                    None => entry
                        .with_node_id(BrokerId(context.settings.node_id))
                        .with_host(host.clone())
                        .with_port(port),
                }
            })
            .collect();
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else if let Some(denied) = coordinator_denied(context, &request, find.key_type, &find.key) {
        FindCoordinatorResponse::default()
            .with_error_code(code(denied))
            .with_node_id(BrokerId(-1))
    } else {
        FindCoordinatorResponse::default()
            .with_node_id(BrokerId(context.settings.node_id))
            .with_host(host)
            .with_port(port)
    };
    Ok(request.frame(&response))
}

/// FindCoordinator's check: DESCRIBE on the group, or on the transactional id (key type 1).
fn coordinator_denied(
    context: &ShardContext,
    request: &RequestContext,
    key_type: i8,
    key: &str,
) -> Option<ResponseError> {
    let (resource, error) = match key_type {
        KEY_TYPE_TRANSACTION => (
            Resource::transactional_id(key),
            ResponseError::TransactionalIdAuthorizationFailed,
        ),
        _ => (
            Resource::group(key),
            ResponseError::GroupAuthorizationFailed,
        ),
    };
    (!request.allows(context, Operation::Describe, resource)).then_some(error)
}

/// Kafka's FindCoordinator key type of a transactional id.
const KEY_TYPE_TRANSACTION: i8 = 1;

/// Whether the sender may READ `group`, which every membership API needs (Kafka).
fn may_read_group(context: &ShardContext, request: &RequestContext, group: &str) -> bool {
    request.allows(context, Operation::Read, Resource::group(group))
}

const GROUP_DENIED: ResponseError = ResponseError::GroupAuthorizationFailed;

pub async fn join_group(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
    client: Option<super::ClientInfo>,
) -> Result<Response, RequestError> {
    let join: JoinGroupRequest = request.decode(body)?;
    if !may_read_group(context, &request, &join.group_id) {
        let denied = JoinGroupResponse::default().with_error_code(code(GROUP_DENIED));
        return Ok(request.frame(&denied.with_generation_id(-1)));
    }
    let group_id = join.group_id.to_string();
    let join_request = JoinRequest {
        member_id: join.member_id.to_string(),
        group_instance_id: opt_str(&join.group_instance_id),
        client_id: client
            .as_ref()
            .map(|client| client.client_id.clone())
            .unwrap_or_default(),
        client_host: client.map(|client| client.host).unwrap_or_default(),
        session_timeout_ms: i64::from(join.session_timeout_ms),
        rebalance_timeout_ms: i64::from(if request.version >= 1 {
            join.rebalance_timeout_ms
        } else {
            join.session_timeout_ms
        }),
        protocol_type: join.protocol_type.to_string(),
        protocols: join
            .protocols
            .iter()
            .map(|protocol| (protocol.name.to_string(), protocol.metadata.clone()))
            .collect(),
        require_known_member_id: request.version >= 4,
        supports_skip_assignment: request.version >= 9,
    };
    let answer = on_coordinator(context, move |coordinator| async move {
        coordinator.join(group_id, join_request).await
    })
    .await?;
    let version = request.version;
    let response = match answer {
        None => JoinGroupResponse::default()
            .with_error_code(code(ResponseError::CoordinatorNotAvailable))
            .with_generation_id(-1),
        Some(answer) => {
            let members = answer
                .members
                .into_iter()
                .map(|(member_id, instance_id, metadata)| {
                    let member = JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(&member_id))
                        .with_metadata(metadata);
                    if version >= 5 {
                        member.with_group_instance_id(instance_id.as_deref().map(str_bytes))
                    } else {
                        member
                    }
                })
                .collect();
            let mut response = JoinGroupResponse::default()
                .with_error_code(answer.error.map_or(0, code))
                .with_generation_id(answer.generation_id)
                .with_leader(str_bytes(&answer.leader))
                .with_member_id(str_bytes(&answer.member_id))
                .with_members(members);
            if version >= 9 {
                response = response.with_skip_assignment(answer.skip_assignment);
            }
            if version >= 7 {
                response = response
                    .with_protocol_type(answer.protocol_type.as_deref().map(str_bytes))
                    .with_protocol_name(answer.protocol_name.as_deref().map(str_bytes));
            } else {
                response = response.with_protocol_name(Some(str_bytes(
                    answer.protocol_name.as_deref().unwrap_or(""),
                )));
            }
            response
        }
    };
    Ok(request.frame(&response))
}

pub async fn sync_group(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let sync: SyncGroupRequest = request.decode(body)?;
    if !may_read_group(context, &request, &sync.group_id) {
        return Ok(request.frame(&SyncGroupResponse::default().with_error_code(code(GROUP_DENIED))));
    }
    let group_id = sync.group_id.to_string();
    let member = (sync.member_id.to_string(), opt_str(&sync.group_instance_id));
    let generation_id = sync.generation_id;
    // v5+ names the protocol the member joined with (None before, and when unknown).
    let protocol = (opt_str(&sync.protocol_type), opt_str(&sync.protocol_name));
    let assignments: Vec<(String, Bytes)> = sync
        .assignments
        .iter()
        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
        .collect();
    let answer = on_coordinator(context, move |coordinator| async move {
        coordinator
            .sync(group_id, member, generation_id, protocol, assignments)
            .await
    })
    .await?;
    let response = match answer {
        None => SyncGroupResponse::default()
            .with_error_code(code(ResponseError::CoordinatorNotAvailable)),
        Some(answer) => {
            let response = SyncGroupResponse::default()
                .with_error_code(answer.error.map_or(0, code))
                .with_assignment(answer.assignment);
            if request.version >= 5 {
                response
                    .with_protocol_type(answer.protocol_type.as_deref().map(str_bytes))
                    .with_protocol_name(answer.protocol_name.as_deref().map(str_bytes))
            } else {
                response
            }
        }
    };
    Ok(request.frame(&response))
}

pub async fn heartbeat(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let beat: HeartbeatRequest = request.decode(body)?;
    if !may_read_group(context, &request, &beat.group_id) {
        return Ok(request.frame(&HeartbeatResponse::default().with_error_code(code(GROUP_DENIED))));
    }
    let (group_id, member_id, instance_id, generation_id) = (
        beat.group_id.to_string(),
        beat.member_id.to_string(),
        opt_str(&beat.group_instance_id),
        beat.generation_id,
    );
    let answer = on_coordinator(context, move |coordinator| async move {
        coordinator.heartbeat(
            &group_id,
            (&member_id, instance_id.as_deref()),
            generation_id,
        )
    })
    .await?;
    let error = match answer {
        None => Some(ResponseError::CoordinatorNotAvailable),
        Some(error) => error,
    };
    Ok(request.frame(&HeartbeatResponse::default().with_error_code(error.map_or(0, code))))
}

pub async fn leave_group(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let leave: LeaveGroupRequest = request.decode(body)?;
    if !may_read_group(context, &request, &leave.group_id) {
        let denied = LeaveGroupResponse::default().with_error_code(code(GROUP_DENIED));
        return Ok(request.frame(&denied));
    }
    let group_id = leave.group_id.to_string();
    let members: Vec<(String, Option<String>)> = if request.version >= 3 {
        leave
            .members
            .iter()
            .map(|member| {
                (
                    member.member_id.to_string(),
                    opt_str(&member.group_instance_id),
                )
            })
            .collect()
    } else {
        vec![(leave.member_id.to_string(), None)]
    };
    let asked = members.clone();
    let answer = on_coordinator(context, move |coordinator| async move {
        coordinator.leave(&group_id, members).await
    })
    .await?;
    let response = match answer {
        None => LeaveGroupResponse::default()
            .with_error_code(code(ResponseError::CoordinatorNotAvailable)),
        Some(errors) if request.version >= 3 => {
            let members = asked
                .iter()
                .zip(&errors)
                .map(|((member_id, instance_id), error)| {
                    MemberResponse::default()
                        .with_member_id(str_bytes(member_id))
                        .with_group_instance_id(instance_id.as_deref().map(str_bytes))
                        .with_error_code(error.map_or(0, code))
                })
                .collect();
            LeaveGroupResponse::default().with_members(members)
        }
        Some(errors) => LeaveGroupResponse::default()
            .with_error_code(errors.first().copied().flatten().map_or(0, code)),
    };
    Ok(request.frame(&response))
}

pub async fn list_groups(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let list: ListGroupsRequest = request.decode(body)?;
    let answer = on_coordinator(context, |coordinator| async move { coordinator.list() }).await?;
    let Some(groups) = answer else {
        return Ok(request.frame(
            &ListGroupsResponse::default()
                .with_error_code(code(ResponseError::CoordinatorNotAvailable)),
        ));
    };
    let wanted = |filter: &[StrBytes], value: &str| {
        filter.is_empty() || filter.iter().any(|want| want.eq_ignore_ascii_case(value))
    };
    // DESCRIBE on the cluster lists every group; else only those the sender may DESCRIBE.
    let all = request.can(context, Operation::Describe, Resource::cluster());
    let listed = groups
        .into_iter()
        .filter(|g| all || request.can(context, Operation::Describe, Resource::group(&g.group_id)))
        .filter(|group| wanted(&list.states_filter, group.state))
        .filter(|group| wanted(&list.types_filter, group.group_type))
        .map(|group| {
            let mut listed = ListedGroup::default()
                .with_group_id(GroupId(str_bytes(&group.group_id)))
                .with_protocol_type(str_bytes(&group.protocol_type));
            if request.version >= 4 {
                listed = listed.with_group_state(str_bytes(group.state));
            }
            if request.version >= 5 {
                listed = listed.with_group_type(str_bytes(group.group_type));
            }
            listed
        })
        .collect();
    Ok(request.frame(&ListGroupsResponse::default().with_groups(listed)))
}

pub async fn describe_groups(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let describe: DescribeGroupsRequest = request.decode(body)?;
    let mut groups = Vec::with_capacity(describe.groups.len());
    for group_id in describe.groups {
        let id = group_id.to_string();
        if !request.allows(context, Operation::Describe, Resource::group(&id)) {
            let denied = DescribedGroup::default().with_error_code(code(GROUP_DENIED));
            groups.push(denied.with_group_id(group_id));
            continue;
        }
        let operations = match describe.include_authorized_operations {
            true => super::authorized_operations::group(context, &request, &id),
            false => super::authorized_operations::NOT_REQUESTED,
        };
        let snapshot = on_coordinator(context, move |coordinator| async move {
            (coordinator.describe(&id), coordinator.consumer_group(&id))
        })
        .await?;
        let described = match snapshot {
            Some((_, Some(consumer))) => {
                describe_consumer_group(group_id, &consumer, request.version)
            }
            None => DescribedGroup::default()
                .with_group_id(group_id)
                .with_error_code(code(ResponseError::CoordinatorNotAvailable)),
            Some((None, None)) => DescribedGroup::default()
                .with_group_id(group_id)
                .with_group_state(str_bytes("Dead")),
            Some((Some(group), None)) => {
                let protocol_name = group.protocol_name.clone().unwrap_or_default();
                let members = group
                    .members
                    .values()
                    .map(|member| {
                        let metadata = member
                            .protocols
                            .iter()
                            .find(|(name, _)| *name == protocol_name)
                            .map(|(_, m)| m.clone())
                            .unwrap_or_default();
                        let described = DescribedGroupMember::default()
                            .with_member_id(str_bytes(&member.member_id))
                            .with_client_id(str_bytes(&member.client_id))
                            .with_client_host(str_bytes(&member.client_host))
                            .with_member_metadata(metadata)
                            .with_member_assignment(member.assignment.clone());
                        if request.version >= 4 {
                            described.with_group_instance_id(
                                member.group_instance_id.as_deref().map(str_bytes),
                            )
                        } else {
                            described
                        }
                    })
                    .collect();
                DescribedGroup::default()
                    .with_group_id(group_id)
                    .with_group_state(str_bytes(group.phase.kafka_name()))
                    .with_protocol_type(str_bytes(group.protocol_type.as_deref().unwrap_or("")))
                    .with_protocol_data(str_bytes(&protocol_name))
                    .with_members(members)
            }
        };
        groups.push(if request.version >= 3 {
            described.with_authorized_operations(operations)
        } else {
            described
        });
    }
    Ok(request.frame(&DescribeGroupsResponse::default().with_groups(groups)))
}

pub async fn delete_groups(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let delete: DeleteGroupsRequest = request.decode(body)?;
    let mut results = Vec::with_capacity(delete.groups_names.len());
    for group_id in delete.groups_names {
        let id = group_id.to_string();
        if !request.allows(context, Operation::Delete, Resource::group(&id)) {
            let denied = DeletableGroupResult::default().with_error_code(code(GROUP_DENIED));
            results.push(denied.with_group_id(group_id));
            continue;
        }
        let answer = on_coordinator(context, move |coordinator| async move {
            coordinator.delete(&id).await
        })
        .await?;
        let error = match answer {
            None => Some(ResponseError::CoordinatorNotAvailable),
            Some(result) => result.err(),
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(group_id)
                .with_error_code(error.map_or(0, code)),
        );
    }
    Ok(request.frame(&DeleteGroupsResponse::default().with_results(results)))
}

/// A consumer (KIP-848) group as DescribeGroups shows it to tools that only know that API:
/// protocol type "consumer", the assignor as protocol, and each member's assignment encoded as
/// the classic consumer protocol's assignment (version 0).
fn describe_consumer_group(
    group_id: GroupId,
    group: &crate::group::consumer::ConsumerGroup,
    version: i16,
) -> DescribedGroup {
    let members = group
        .members
        .values()
        .map(|member| {
            let described = DescribedGroupMember::default()
                .with_member_id(str_bytes(&member.member_id))
                .with_client_id(str_bytes(&member.client_id))
                .with_client_host(str_bytes(&member.client_host))
                .with_member_assignment(classic_assignment(&member.assigned));
            if version >= 4 {
                described.with_group_instance_id(member.instance_id.as_deref().map(str_bytes))
            } else {
                described
            }
        })
        .collect();
    DescribedGroup::default()
        .with_group_id(group_id)
        .with_group_state(str_bytes(group.phase().kafka_name()))
        .with_protocol_type(str_bytes("consumer"))
        .with_protocol_data(str_bytes(group.assignor().as_str()))
        .with_members(members)
}

/// An assignment as the classic consumer protocol's bytes: version 0, then the
/// ConsumerProtocolAssignment body.
fn classic_assignment(assignment: &crate::group::consumer::Assignment) -> Bytes {
    use bytes::BufMut;
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::protocol::Encodable;
    let topics = assignment
        .iter()
        .map(|(topic, partitions)| {
            TopicPartition::default()
                .with_topic(TopicName(str_bytes(topic)))
                .with_partitions(partitions.iter().copied().collect())
        })
        .collect();
    let body = ConsumerProtocolAssignment::default().with_assigned_partitions(topics);
    let mut bytes = bytes::BytesMut::new();
    bytes.put_i16(0);
    match body.encode(&mut bytes, 0) {
        Ok(()) => bytes.freeze(),
        Err(_) => Bytes::new(),
    }
}
