//! OffsetCommit and OffsetFetch: committed offsets of consumer groups, with generation and member
//! checks, stored by the coordinator in `__consumer_offsets`.
//!
//! v10 of both names topics by id (Kafka 4.1): `offsets_by_id.rs` turns it into the v9 form this
//! code serves, and an id no topic has is answered UNKNOWN_TOPIC_ID, as Kafka does.
#![forbid(unsafe_code)]

use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use ringtail_engine::log::now_ms;

use super::groups::on_coordinator;
use super::offsets_by_id::{
    by_topic_id, decode_offset_commit, decode_offset_fetch, resolve_commit_topics,
    resolve_fetch_topics, with_topic_ids,
};
use super::{code, str_bytes, Operation, RequestContext, RequestError, Resource, Response};
use crate::group::CommittedOffset;
use crate::protocol::offsets_v10::{OffsetCommitResponseV10, OffsetFetchResponseV10};
use crate::shard::ShardContext;
use std::collections::{BTreeMap, BTreeSet};

/// What one topic of a commit gets before the coordinator answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TopicCheck {
    /// Handed to the coordinator (its partitions that exist).
    Committable,
    /// No READ on the topic: TOPIC_AUTHORIZATION_FAILED.
    Denied,
    /// v10: no topic has this id: UNKNOWN_TOPIC_ID.
    UnknownId,
}

pub async fn offset_commit(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let mut commit = decode_offset_commit(&request, body)?;
    let known_ids = match by_topic_id(&request) {
        true => resolve_commit_topics(context, &mut commit.topics),
        false => vec![true; commit.topics.len()],
    };
    let group_id = commit.group_id.to_string();
    let member_id = commit.member_id.to_string();
    let instance_id = commit
        .group_instance_id
        .as_ref()
        .map(|instance| instance.to_string());
    let generation_id = commit.generation_id_or_member_epoch;
    let commit_ms = now_ms();
    let version = request.version;
    // READ on the group, then READ on each topic committed to (Kafka), by name once resolved.
    let group_denied = !request.allows(context, Operation::Read, Resource::group(&group_id));
    let checks: Vec<TopicCheck> = commit
        .topics
        .iter()
        .zip(known_ids)
        .map(|(t, known)| {
            if !known {
                TopicCheck::UnknownId
            } else if !group_denied
                && !request.allows(context, Operation::Read, Resource::topic(&t.name))
            {
                TopicCheck::Denied
            } else {
                TopicCheck::Committable
            }
        })
        .collect();
    let mut entries = Vec::new();
    for (topic, _) in commit
        .topics
        .iter()
        .zip(&checks)
        .filter(|(_, check)| **check == TopicCheck::Committable)
    {
        let info = context.metadata.topic(&topic.name);
        for partition in &topic.partitions {
            // Kafka refuses commits for partitions that do not exist (librdkafka's 0030, 0081),
            // and metadata over offset.metadata.max.bytes (answered per partition below).
            if !info
                .as_ref()
                .is_some_and(|info| info.has_partition(partition.partition_index))
                || metadata_too_large(partition)
            {
                continue;
            }
            entries.push((
                topic.name.to_string(),
                partition.partition_index,
                CommittedOffset {
                    offset: partition.committed_offset,
                    leader_epoch: partition.committed_leader_epoch,
                    metadata: partition.committed_metadata.as_ref().map(|m| m.to_string()),
                    commit_ms,
                },
            ));
        }
    }
    let answer = on_coordinator(context, move |coordinator| async move {
        if group_denied {
            return Err(ResponseError::GroupAuthorizationFailed);
        }
        coordinator
            .commit(
                &group_id,
                (&member_id, instance_id.as_deref(), generation_id),
                version,
                entries,
            )
            .await
    })
    .await?;
    let error = match answer {
        None => Some(ResponseError::CoordinatorNotAvailable),
        Some(result) => result.err(),
    };
    let topics = commit_response_topics(context, commit.topics, &checks, group_denied, error);
    let response = OffsetCommitResponse::default().with_topics(topics);
    Ok(match by_topic_id(&request) {
        true => request.frame(&OffsetCommitResponseV10(response)),
        false => request.frame(&response),
    })
}

/// Kafka's `offset.metadata.max.bytes` default. Metadata is kept with the offset in memory and in
/// `__consumer_offsets` (and, for TxnOffsetCommit, held until its transaction ends), so its size
/// needs a bound; longer metadata is refused for that partition with OFFSET_METADATA_TOO_LARGE,
/// the others committed.
pub const OFFSET_METADATA_MAX_BYTES: usize = 4096;

/// Whether a commit's metadata (OffsetCommit's or TxnOffsetCommit's) is over
/// [`OFFSET_METADATA_MAX_BYTES`].
pub fn metadata_exceeds_limit(metadata: Option<&StrBytes>) -> bool {
    metadata.is_some_and(|metadata| metadata.len() > OFFSET_METADATA_MAX_BYTES)
}

fn metadata_too_large(partition: &OffsetCommitRequestPartition) -> bool {
    metadata_exceeds_limit(partition.committed_metadata.as_ref())
}

/// Each committed partition's answer: the coordinator's `error` unless the topic was refused
/// before it (a denied group answers GROUP_AUTHORIZATION_FAILED everywhere, as Kafka).
fn commit_response_topics(
    context: &ShardContext,
    topics: Vec<OffsetCommitRequestTopic>,
    checks: &[TopicCheck],
    group_denied: bool,
    error: Option<ResponseError>,
) -> Vec<OffsetCommitResponseTopic> {
    topics
        .into_iter()
        .zip(checks)
        .map(|(topic, check)| {
            let info = context.metadata.topic(&topic.name);
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    let exists = info
                        .as_ref()
                        .is_some_and(|info| info.has_partition(partition.partition_index));
                    let error = match check {
                        TopicCheck::Denied => Some(ResponseError::TopicAuthorizationFailed),
                        _ if group_denied => error,
                        TopicCheck::UnknownId => Some(ResponseError::UnknownTopicId),
                        // The group's own error (generation, member) first, as Kafka checks it
                        // before each partition's metadata.
                        TopicCheck::Committable if exists && error.is_none() => {
                            metadata_too_large(partition)
                                .then_some(ResponseError::OffsetMetadataTooLarge)
                        }
                        TopicCheck::Committable if exists => error,
                        TopicCheck::Committable => Some(ResponseError::UnknownTopicOrPartition),
                    };
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(partition.partition_index)
                        .with_error_code(error.map_or(0, code))
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(topic.name)
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions)
        })
        .collect()
}

/// What OffsetFetch answers for one partition: its committed offset (none: nothing committed),
/// or the partition's error (TOPIC_AUTHORIZATION_FAILED, UNSTABLE_OFFSET_COMMIT).
type PartitionAnswer = Result<Option<CommittedOffset>, ResponseError>;

/// Answers as (topic, partition, answer).
type OffsetRows = Vec<(String, i32, PartitionAnswer)>;

/// What one group's fetch asks the coordinator.
struct GroupFetch {
    group_id: String,
    /// The partitions named (none: every committed one).
    wanted: Option<WantedTopics>,
    /// (member id, member epoch), checked for consumer groups (v9).
    member: (Option<String>, i32),
    /// KIP-447 (v7+): a partition with a transactional offset not yet committed or aborted is
    /// answered UNSTABLE_OFFSET_COMMIT instead of its last committed offset.
    require_stable: bool,
}

/// One group's committed offsets, as the coordinator answers them.
async fn fetch_group(
    context: &Rc<ShardContext>,
    fetch: GroupFetch,
) -> Result<Option<Result<OffsetRows, ResponseError>>, RequestError> {
    on_coordinator(context, move |coordinator| async move {
        let (member_id, member_epoch) = fetch.member;
        let group_id = fetch.group_id;
        if let Some(error) =
            coordinator.check_offset_fetch(&group_id, member_id.as_deref(), member_epoch)
        {
            return Err(error);
        }
        let unstable = match fetch.require_stable {
            true => coordinator.pending_txn_partitions(&group_id),
            false => BTreeSet::new(),
        };
        let rows = coordinator
            .fetch_offsets(&group_id, fetch.wanted)
            .into_iter()
            .map(|(topic, partition, committed)| {
                let answer = match unstable.contains(&(topic.clone(), partition)) {
                    true => Err(ResponseError::UnstableOffsetCommit),
                    false => Ok(committed),
                };
                (topic, partition, answer)
            })
            .collect();
        Ok(rows)
    })
    .await
}

/// (offset, leader epoch, metadata, error code) of a partition's answer; Kafka answers -1, -1 and
/// "" when there is no committed offset, or an error.
fn answer_fields(answer: PartitionAnswer) -> (i64, i32, Option<String>, i16) {
    match answer {
        Ok(Some(committed)) => (
            committed.offset,
            committed.leader_epoch,
            committed.metadata,
            0,
        ),
        Ok(None) => (-1, -1, Some(String::new()), 0),
        Err(error) => (-1, -1, Some(String::new()), code(error)),
    }
}

/// A topic's partitions with their answers.
type TopicOffsets = (String, Vec<(i32, PartitionAnswer)>);

/// Groups (topic, partition, answer) rows by topic, in first-seen order.
fn by_topic(rows: OffsetRows) -> Vec<TopicOffsets> {
    let mut topics: Vec<TopicOffsets> = Vec::new();
    for (topic, partition, answer) in rows {
        match topics.iter_mut().find(|(name, _)| *name == topic) {
            Some((_, partitions)) => partitions.push((partition, answer)),
            None => topics.push((topic, vec![(partition, answer)])),
        }
    }
    topics
}

pub async fn offset_fetch(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let fetch = decode_offset_fetch(&request, body)?;
    let response = if request.version >= 8 {
        let mut groups = Vec::with_capacity(fetch.groups.len());
        for group in fetch.groups {
            groups.push(fetch_one_of_groups(context, &request, group, fetch.require_stable).await?);
        }
        OffsetFetchResponse::default().with_groups(groups)
    } else {
        fetch_single_group(context, &request, fetch).await?
    };
    Ok(match by_topic_id(&request) {
        true => request.frame(&OffsetFetchResponseV10(response)),
        false => request.frame(&response),
    })
}

/// The partitions a request names (none: every committed one).
fn wanted_partitions<'a>(
    topics: Option<impl IntoIterator<Item = (&'a TopicName, &'a Vec<i32>)>>,
) -> Option<Vec<(String, Vec<i32>)>> {
    topics.map(|topics| {
        topics
            .into_iter()
            .map(|(name, partitions)| (name.to_string(), partitions.clone()))
            .collect()
    })
}

/// One group of an OffsetFetch v8+ (which asks for several at once, each with its own error).
async fn fetch_one_of_groups(
    context: &Rc<ShardContext>,
    request: &RequestContext,
    mut group: OffsetFetchRequestGroup,
    require_stable: bool,
) -> Result<OffsetFetchResponseGroup, RequestError> {
    let unknown_ids = match by_topic_id(request) {
        true => resolve_fetch_topics(context, &mut group),
        false => Vec::new(),
    };
    let wanted = wanted_partitions(
        group
            .topics
            .as_ref()
            .map(|topics| topics.iter().map(|t| (&t.name, &t.partition_indexes))),
    );
    if !request.allows(
        context,
        Operation::Describe,
        Resource::group(&group.group_id),
    ) {
        let denied = OffsetFetchResponseGroup::default().with_group_id(group.group_id);
        return Ok(denied.with_error_code(code(ResponseError::GroupAuthorizationFailed)));
    }
    let (wanted, denied) = describable(context, request, wanted);
    let member = (
        group.member_id.as_ref().map(|id| id.to_string()),
        group.member_epoch,
    );
    let fetch = GroupFetch {
        group_id: group.group_id.to_string(),
        wanted,
        member,
        require_stable,
    };
    let answer = fetch_group(context, fetch).await?;
    let response = OffsetFetchResponseGroup::default().with_group_id(group.group_id);
    let rows = match answer {
        None => return Ok(response.with_error_code(code(ResponseError::CoordinatorNotAvailable))),
        Some(Err(error)) => return Ok(response.with_error_code(code(error))),
        Some(Ok(rows)) => rows,
    };
    let topics = by_topic(visible(context, request, rows, &denied))
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(partition, answer)| {
                    let (offset, epoch, metadata, error_code) = answer_fields(answer);
                    OffsetFetchResponsePartitions::default()
                        .with_error_code(error_code)
                        .with_partition_index(partition)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(epoch)
                        .with_metadata(metadata.as_deref().map(str_bytes))
                })
                .collect();
            OffsetFetchResponseTopics::default()
                .with_name(TopicName(str_bytes(&name)))
                .with_partitions(partitions)
        })
        .collect();
    Ok(response.with_topics(match by_topic_id(request) {
        true => with_topic_ids(context, topics, unknown_ids),
        false => topics,
    }))
}

/// OffsetFetch v0–7: one group, its partitions at the top level.
async fn fetch_single_group(
    context: &Rc<ShardContext>,
    request: &RequestContext,
    fetch: OffsetFetchRequest,
) -> Result<OffsetFetchResponse, RequestError> {
    let version = request.version;
    let wanted = wanted_partitions(
        fetch
            .topics
            .as_ref()
            .map(|topics| topics.iter().map(|t| (&t.name, &t.partition_indexes))),
    );
    let group_denied = !request.allows(
        context,
        Operation::Describe,
        Resource::group(&fetch.group_id),
    );
    let (wanted, denied) = describable(context, request, wanted);
    let rows = match group_denied {
        true => Some(Err(ResponseError::GroupAuthorizationFailed)),
        false => {
            let group = GroupFetch {
                group_id: fetch.group_id.to_string(),
                wanted,
                member: (None, -1),
                // Sent from v7; below it decodes as false.
                require_stable: fetch.require_stable,
            };
            fetch_group(context, group).await?
        }
    };
    let rows = match rows {
        Some(Ok(rows)) => rows,
        failed => {
            let error = match failed {
                Some(Err(error)) => error,
                _ => ResponseError::CoordinatorNotAvailable,
            };
            let response = OffsetFetchResponse::default();
            return Ok(if version >= 2 {
                response.with_error_code(code(error))
            } else {
                response
            });
        }
    };
    let topics = by_topic(visible(context, request, rows, &denied))
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(partition, answer)| {
                    let (offset, epoch, metadata, error_code) = answer_fields(answer);
                    let response = OffsetFetchResponsePartition::default()
                        .with_error_code(error_code)
                        .with_partition_index(partition)
                        .with_committed_offset(offset)
                        .with_metadata(metadata.as_deref().map(str_bytes));
                    if version >= 5 {
                        response.with_committed_leader_epoch(epoch)
                    } else {
                        response
                    }
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(str_bytes(&name)))
                .with_partitions(partitions)
        })
        .collect();
    Ok(OffsetFetchResponse::default().with_topics(topics))
}

/// Topics and their partitions, as an OffsetFetch names them.
type WantedTopics = Vec<(String, Vec<i32>)>;

/// Topics named in an OffsetFetch split into those the sender may DESCRIBE (asked of the
/// coordinator) and the others (answered TOPIC_AUTHORIZATION_FAILED per partition, as Kafka).
fn describable(
    context: &ShardContext,
    request: &RequestContext,
    wanted: Option<WantedTopics>,
) -> (Option<WantedTopics>, BTreeMap<String, Vec<i32>>) {
    let Some(wanted) = wanted else {
        return (None, BTreeMap::new());
    };
    let (allowed, denied): (Vec<_>, Vec<_>) = wanted.into_iter().partition(|(topic, _)| {
        request.allows(context, Operation::Describe, Resource::topic(topic))
    });
    (Some(allowed), denied.into_iter().collect())
}

/// The committed rows the sender may see (all topics asked: undescribable ones are left out),
/// followed by the denied topics' partitions.
fn visible(
    context: &ShardContext,
    request: &RequestContext,
    rows: OffsetRows,
    denied: &BTreeMap<String, Vec<i32>>,
) -> OffsetRows {
    let mut rows: OffsetRows = rows
        .into_iter()
        .filter(|(topic, _, _)| request.can(context, Operation::Describe, Resource::topic(topic)))
        .collect();
    for (topic, partitions) in denied {
        let denied = || Err(ResponseError::TopicAuthorizationFailed);
        rows.extend(partitions.iter().map(|p| (topic.clone(), *p, denied())));
    }
    rows
}

pub async fn offset_delete(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    use kafka_protocol::messages::offset_delete_response::{
        OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
    };
    let delete: OffsetDeleteRequest = request.decode(body)?;
    if !request.allows(
        context,
        Operation::Delete,
        Resource::group(&delete.group_id),
    ) {
        let denied = code(ResponseError::GroupAuthorizationFailed);
        return Ok(request.frame(&OffsetDeleteResponse::default().with_error_code(denied)));
    }
    let group_id = delete.group_id.to_string();
    // As Kafka: a topic without READ keeps its offsets and answers TOPIC_AUTHORIZATION_FAILED.
    let denied_topics: std::collections::HashSet<String> = delete
        .topics
        .iter()
        .map(|topic| topic.name.to_string())
        .filter(|topic| !request.allows(context, Operation::Read, Resource::topic(topic)))
        .collect();
    let partitions: Vec<(String, i32)> = delete
        .topics
        .iter()
        .filter(|topic| !denied_topics.contains(topic.name.as_str()))
        .flat_map(|topic| {
            topic
                .partitions
                .iter()
                .map(move |partition| (topic.name.to_string(), partition.partition_index))
        })
        .collect();
    let answer = on_coordinator(context, move |coordinator| async move {
        coordinator.delete_offsets(&group_id, partitions).await
    })
    .await?;
    let answers = match answer {
        None => {
            return Ok(request.frame(
                &OffsetDeleteResponse::default()
                    .with_error_code(code(ResponseError::CoordinatorNotAvailable)),
            ))
        }
        Some(Err(error)) => {
            return Ok(request.frame(&OffsetDeleteResponse::default().with_error_code(code(error))))
        }
        Some(Ok(answers)) => answers,
    };
    let mut answers = answers.into_iter();
    let topics = delete
        .topics
        .into_iter()
        .map(|topic| {
            let denied = denied_topics.contains(topic.name.as_str());
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    let error = if denied {
                        Some(ResponseError::TopicAuthorizationFailed)
                    } else {
                        answers.next().flatten()
                    };
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(partition.partition_index)
                        .with_error_code(error.map_or(0, code))
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    Ok(request.frame(&OffsetDeleteResponse::default().with_topics(topics)))
}
