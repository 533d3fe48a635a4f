//! DescribeLogDirs (API 35): each data dir with its space and the partitions it holds, as
//! `kafka-log-dirs --describe` and AdminClient.describeLogDirs show them. An offline dir is
//! answered with KAFKA_STORAGE_ERROR and no partitions, as Kafka answers a failed log dir.
//!
//! A failed move between dirs (destination full, I/O error) has no field of its own in Kafka's
//! answer (its errors are per dir, and the destination dir is fine). It shows as Kafka would
//! show it once a future replica is given up: the partition in its source dir, no future
//! replica anywhere. Its reason rides in a tagged field of the partition's entry,
//! [`MOVE_ERROR_TAG`] (v2 and later, the flexible versions): Kafka's clients skip tags they do
//! not know, `ringtail log-dirs` prints it.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use ringtail_engine::DirState;

use super::{code, str_bytes, Operation, RequestContext, RequestError, Resource, Response};
use crate::disks::PartitionOnDisk;
use crate::shard::ShardContext;

/// Tagged field (of a partition entry) carrying why the partition's last move failed, as UTF-8
/// text. Far above the tags Kafka numbers from 0 upwards, so it cannot meet one of theirs.
pub const MOVE_ERROR_TAG: i32 = 10_000;
/// Bytes of a failure reason sent at most (a reason holds paths and an OS error).
const MOVE_ERROR_BYTES_MAX: usize = 1024;

/// Why the last move of each partition failed, by partition: "to <dir>: <reason>".
type FailedMoves = BTreeMap<(String, i32), String>;

pub async fn handle(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let describe: DescribeLogDirsRequest = request.decode(body)?;
    if !request.allows(context, Operation::Describe, Resource::cluster()) {
        // Kafka answers nothing; v3+ also says why.
        let denied = DescribeLogDirsResponse::default();
        return Ok(request.frame(&if request.version >= 3 {
            denied.with_error_code(code(ResponseError::ClusterAuthorizationFailed))
        } else {
            denied
        }));
    }
    // Null topics: every partition. Otherwise only those named (a bounded set: the frame's).
    let wanted: Option<BTreeSet<(String, i32)>> = describe.topics.map(|topics| {
        topics
            .into_iter()
            .flat_map(|topic| {
                let name = topic.topic.to_string();
                topic
                    .partitions
                    .into_iter()
                    .map(move |partition| (name.clone(), partition))
            })
            .collect()
    });
    let mut on_disk = crate::disks::partitions_on_disk(context).await;
    if let Some(wanted) = &wanted {
        on_disk.retain(|p| wanted.contains(&(p.topic.clone(), p.partition)));
    }
    let data_dirs = context.engine.data_dirs();
    let moves = data_dirs.moves();
    let failed: FailedMoves = moves
        .iter()
        .filter_map(|(key, status)| {
            let reason = status.error.as_ref()?;
            let dest = data_dirs.dirs().get(status.dest_index)?.path().display();
            Some((key.clone(), format!("move to {dest} failed: {reason}")))
        })
        .collect();
    // A running move shows as a future replica in its destination, as Kafka shows one.
    let moving: Vec<PartitionOnDisk> = moves
        .into_iter()
        .filter(|(key, status)| {
            status.error.is_none() && wanted.as_ref().is_none_or(|wanted| wanted.contains(key))
        })
        .map(|((topic, partition), status)| PartitionOnDisk {
            topic,
            partition,
            dir_index: status.dest_index,
            size_bytes: 0,
        })
        .collect();
    let results = data_dirs
        .dirs()
        .iter()
        .enumerate()
        .map(|(index, dir)| {
            let result = DescribeLogDirsResult::default()
                .with_log_dir(str_bytes(&dir.path().display().to_string()));
            if dir.state() == DirState::Offline {
                return result
                    .with_error_code(code(ResponseError::KafkaStorageError))
                    .with_total_bytes(-1)
                    .with_usable_bytes(-1);
            }
            let space = dir.space();
            let topics = topics_in(index, &on_disk, &moving, &failed);
            let result = result.with_topics(topics);
            if request.version >= 4 {
                result
                    .with_total_bytes(space.total_bytes as i64)
                    .with_usable_bytes(space.free_bytes as i64)
            } else {
                result
            }
        })
        .collect();
    Ok(request.frame(&DescribeLogDirsResponse::default().with_results(results)))
}

/// `text` cut to at most [`MOVE_ERROR_BYTES_MAX`] bytes, at a character boundary.
fn bounded(text: &str) -> &str {
    let mut end = text.len().min(MOVE_ERROR_BYTES_MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The partitions of dir `index` (and the moves into it, as future replicas), grouped by topic.
fn topics_in(
    index: usize,
    on_disk: &[PartitionOnDisk],
    moving: &[PartitionOnDisk],
    failed: &FailedMoves,
) -> Vec<DescribeLogDirsTopic> {
    let mut by_topic: BTreeMap<&str, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    let present = on_disk.iter().map(|p| (p, false));
    let future = moving.iter().map(|p| (p, true));
    for (partition, is_future) in present.chain(future).filter(|(p, _)| p.dir_index == index) {
        let mut entry = DescribeLogDirsPartition::default()
            .with_partition_index(partition.partition)
            .with_partition_size(partition.size_bytes as i64)
            .with_offset_lag(0)
            .with_is_future_key(is_future);
        let key = (partition.topic.clone(), partition.partition);
        if let Some(reason) = failed.get(&key).filter(|_| !is_future) {
            entry
                .unknown_tagged_fields
                .insert(MOVE_ERROR_TAG, Bytes::from(bounded(reason).to_owned()));
        }
        by_topic.entry(&partition.topic).or_default().push(entry);
    }
    by_topic
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_by_key(|p| p.partition_index);
            DescribeLogDirsTopic::default()
                .with_name(TopicName(str_bytes(name)))
                .with_partitions(partitions)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_reason_is_cut_at_a_character_boundary() {
        // A reason longer than the bound (paths can be long) is cut, never split inside a char.
        let long = "é".repeat(MOVE_ERROR_BYTES_MAX);
        let cut = bounded(&long);
        assert!(cut.len() <= MOVE_ERROR_BYTES_MAX);
        assert!(cut.len() >= MOVE_ERROR_BYTES_MAX - 1);
        assert_eq!(bounded("short"), "short");
    }
}
