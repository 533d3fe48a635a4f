//! TxnOffsetCommit (KIP-98, KIP-447): a transactional producer's offsets, pending in the group
//! coordinator until the transaction's marker (group/txn_offsets.rs). The transaction coordinator
//! first confirms the producer is current and its transaction added the group (AddOffsetsToTxn).
#![forbid(unsafe_code)]

use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::txn_offset_commit_request::TxnOffsetCommitRequestPartition;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use ringtail_engine::log::now_ms;

use super::groups::on_coordinator;
use super::offsets::metadata_exceeds_limit;
use super::transactions::on_txn_coordinator;
use super::{code, Operation, RequestContext, RequestError, Resource, Response};
use crate::group::CommittedOffset;
use crate::shard::ShardContext;
use crate::txn::marker::TxnProducer;

fn metadata_too_large(partition: &TxnOffsetCommitRequestPartition) -> bool {
    metadata_exceeds_limit(partition.committed_metadata.as_ref())
}

pub async fn handle(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let commit: TxnOffsetCommitRequest = request.decode(body)?;
    let producer = TxnProducer {
        producer_id: commit.producer_id.0,
        producer_epoch: commit.producer_epoch,
    };
    let transactional_id = commit.transactional_id.to_string();
    let group_id = commit.group_id.to_string();
    let asked_group = group_id.clone();
    // Kafka's checks: WRITE on the transactional id and READ on the group refuse the whole
    // request; a topic without READ refuses only its partitions.
    let denied_topics: std::collections::HashSet<String> = commit
        .topics
        .iter()
        .map(|topic| topic.name.to_string())
        .filter(|topic| !request.allows(context, Operation::Read, Resource::topic(topic)))
        .collect();
    // Kafka answers a topic or partition its metadata lacks UNKNOWN_TOPIC_OR_PARTITION and stores
    // only the others: an offset of a deleted topic, committed late, would otherwise be given
    // to a topic made again under its name when the transaction commits.
    // Read once, so the answer says what was stored.
    let unknown: std::collections::HashSet<(String, i32)> = (commit.topics.iter())
        .flat_map(|topic| {
            let info = context.metadata.topic(&topic.name);
            (topic.partitions.iter())
                .filter(move |p| {
                    !info
                        .as_ref()
                        .is_some_and(|i| i.has_partition(p.partition_index))
                })
                .map(|p| (topic.name.to_string(), p.partition_index))
        })
        .collect();
    let known = |topic: &str, partition: i32| !unknown.contains(&(topic.to_string(), partition));
    let commits: Vec<(String, i32, CommittedOffset)> = commit
        .topics
        .iter()
        .filter(|topic| !denied_topics.contains(topic.name.as_str()))
        .flat_map(|topic| {
            let valid = (topic.partitions.iter())
                .filter(|p| known(&topic.name, p.partition_index) && !metadata_too_large(p));
            valid.map(|partition| {
                (
                    topic.name.to_string(),
                    partition.partition_index,
                    CommittedOffset {
                        offset: partition.committed_offset,
                        leader_epoch: partition.committed_leader_epoch,
                        metadata: partition
                            .committed_metadata
                            .as_ref()
                            .map(|text| text.to_string()),
                        commit_ms: now_ms(),
                    },
                )
            })
        })
        .collect();
    let member_id = commit.member_id.to_string();
    // v3+ (KIP-447); null before.
    let instance_id = commit.group_instance_id.as_ref().map(|id| id.to_string());
    let generation_id = if request.version >= 3 {
        commit.generation_id
    } else {
        -1
    };
    // Outer: the checks (the caller's rights, the producer's transaction); inner: the store.
    let checked: Result<Result<(), ResponseError>, ResponseError> = if !request.allows(
        context,
        Operation::Write,
        Resource::transactional_id(&transactional_id),
    ) {
        Err(ResponseError::TransactionalIdAuthorizationFailed)
    } else if !request.allows(context, Operation::Read, Resource::group(&group_id)) {
        Err(ResponseError::GroupAuthorizationFailed)
    } else {
        // Checked and stored under the transactional id's claim: an EndTxn meanwhile waits
        // (CONCURRENT_TRANSACTIONS, retried), so the offsets are in the transaction it ends.
        on_txn_coordinator(context, move |coordinator| async move {
            coordinator
                .commit_offsets(
                    &transactional_id,
                    producer,
                    &asked_group,
                    |shard| async move {
                        on_coordinator(&shard, move |groups| async move {
                            groups
                                .txn_commit(
                                    &group_id,
                                    producer,
                                    (&member_id, instance_id.as_deref(), generation_id),
                                    commits,
                                )
                                .await
                        })
                        .await
                        .ok()
                        .flatten()
                        .unwrap_or(Err(ResponseError::CoordinatorNotAvailable))
                    },
                )
                .await
        })
        .await?
        .unwrap_or(Err(ResponseError::CoordinatorNotAvailable))
    };
    let error = match checked {
        Err(error) | Ok(Err(error)) => Some(error),
        Ok(Ok(())) => None,
    };
    let error_code = error.map_or(0, code);
    let topics = commit
        .topics
        .iter()
        .map(|topic| {
            let error_code = if error.is_none() && denied_topics.contains(topic.name.as_str()) {
                code(ResponseError::TopicAuthorizationFailed)
            } else {
                error_code
            };
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    let denied = denied_topics.contains(topic.name.as_str());
                    let error_code = if !denied && !known(&topic.name, partition.partition_index) {
                        code(ResponseError::UnknownTopicOrPartition)
                    } else if checked.is_ok() && !denied && metadata_too_large(partition) {
                        code(ResponseError::OffsetMetadataTooLarge)
                    } else {
                        error_code
                    };
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(partition.partition_index)
                        .with_error_code(error_code)
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    Ok(request.frame(&TxnOffsetCommitResponse::default().with_topics(topics)))
}
