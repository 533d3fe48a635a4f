//! AlterReplicaLogDirs (API 34): move partitions to another data dir of this broker, as
//! `kafka-reassign-partitions` with `log_dirs` and AdminClient.alterReplicaLogDirs ask. Each move
//! runs in the background on the partition's owner shard ([`ringtail_engine::partition_move`]);
//! the answer says it was started, and DescribeLogDirs shows it (the copy as a future replica in
//! the destination) until the partition lives there.
#![forbid(unsafe_code)]

use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_replica_log_dirs_response::{
    AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult,
};
use kafka_protocol::messages::{AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse};
use ringtail_engine::{DirState, TopicPartition};

use super::{code, Operation, RequestContext, RequestError, Resource, Response};
use crate::shard::{ShardContext, ITEMS_PER_YIELD};

pub async fn handle(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let alter: AlterReplicaLogDirsRequest = request.decode(body)?;
    let mut results = Vec::new();
    let mut handled = 0usize;
    let allowed = request.allows(context, Operation::Alter, Resource::cluster());
    for dir in alter.dirs {
        let dest_index = context
            .engine
            .data_dirs()
            .index_of(std::path::Path::new(dir.path.as_str()));
        for topic in dir.topics {
            let mut partitions = Vec::with_capacity(topic.partitions.len());
            for partition in topic.partitions {
                let error = match allowed {
                    true => start_move(context, &topic.name, partition, dest_index),
                    false => Some(ResponseError::ClusterAuthorizationFailed),
                };
                partitions.push(
                    AlterReplicaLogDirPartitionResult::default()
                        .with_partition_index(partition)
                        .with_error_code(error.map_or(0, code)),
                );
                handled += 1;
                if handled.is_multiple_of(ITEMS_PER_YIELD) {
                    crate::shard::yield_now().await;
                }
            }
            results.push(
                AlterReplicaLogDirTopicResult::default()
                    .with_topic_name(topic.name)
                    .with_partitions(partitions),
            );
        }
    }
    Ok(request.frame(&AlterReplicaLogDirsResponse::default().with_results(results)))
}

/// The group and transaction coordinators write to the internal log they hold (partition 0 of
/// `__consumer_offsets`, of `__transaction_state`); a move (done, or failed after the switch
/// began) closed that log and opened another. Points the coordinator at the one the engine serves
/// now. Writes that met the closed log were answered COORDINATOR_NOT_AVAILABLE, which clients
/// retry; without the swap they failed so until restart.
async fn follow_internal_log(owner: &Rc<ShardContext>, topic_partition: &TopicPartition) {
    // The coordinators hold partition 0 only.
    if topic_partition.partition.get() != 0 {
        return;
    }
    let topic = topic_partition.topic.as_ref();
    let is_offsets = topic == crate::group::OFFSETS_TOPIC;
    if !is_offsets && topic != crate::txn::TRANSACTION_STATE_TOPIC {
        return;
    }
    let Some(info) = owner.metadata.topic(topic) else {
        return;
    };
    let group = owner.coordinator.borrow().clone().filter(|_| is_offsets);
    let txn = owner
        .txn_coordinator
        .borrow()
        .clone()
        .filter(|_| !is_offsets);
    if group.is_none() && txn.is_none() {
        return;
    }
    match owner.partition_log(&info, 0).await {
        Ok(log) => {
            if let Some(group) = group {
                group.replace_log(log);
            } else if let Some(txn) = txn {
                txn.replace_log(log);
            }
        }
        Err(err) => {
            tracing::error!(topic, %err, "an internal log could not be reopened after a move: its coordinator's writes fail until restart")
        }
    }
}

/// Checks one partition's move and starts it on its owner shard; the error to answer, if any.
fn start_move(
    context: &Rc<ShardContext>,
    topic: &str,
    partition: i32,
    dest_index: Option<usize>,
) -> Option<ResponseError> {
    let Some(dest_index) = dest_index else {
        return Some(ResponseError::LogDirNotFound);
    };
    let data_dirs = context.engine.data_dirs();
    if data_dirs.dirs()[dest_index].state() != DirState::Online {
        return Some(ResponseError::KafkaStorageError);
    }
    let Some(info) = context.metadata.topic(topic) else {
        return Some(ResponseError::UnknownTopicOrPartition);
    };
    if !info.has_partition(partition) {
        return Some(ResponseError::UnknownTopicOrPartition);
    }
    if data_dirs.home_index(topic, partition) == Some(dest_index) {
        return None;
    }
    if !data_dirs.begin_move(topic, partition, dest_index) {
        return None; // already moving: Kafka accepts the repeat too
    }
    let bytes_per_sec = context.settings.move_bytes_per_sec;
    let (name, context) = (topic.to_string(), Rc::clone(context));
    compio::runtime::spawn(async move {
        let topic_name = name.clone();
        let moved = context
            .on_owner(&name, partition, move |owner| async move {
                // Opened first: the move copies an open log.
                if let Some(info) = owner.metadata.topic(&topic_name) {
                    owner
                        .partition_log(&info, partition)
                        .await
                        .map_err(|err| err.to_string())?;
                }
                let topic_partition = TopicPartition::new(&topic_name, partition);
                let moved = owner
                    .engine
                    .move_partition(&topic_partition, dest_index, bytes_per_sec)
                    .await
                    .map(drop)
                    .map_err(|err| err.to_string());
                follow_internal_log(&owner, &topic_partition).await;
                moved
            })
            .await
            .unwrap_or_else(|_| Err("shard stopped".to_string()));
        if let Err(reason) = &moved {
            tracing::error!(topic = %name, partition, %reason, "partition move failed; it serves from its old data dir");
            crate::metrics::record_move_failed();
        }
        context.engine.data_dirs().end_move(&name, partition, moved);
    })
    .detach();
    None
}
