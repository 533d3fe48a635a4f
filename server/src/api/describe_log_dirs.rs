//! DescribeLogDirs (API 35): each data dir with its space and the partitions it holds, as
//! `kafka-log-dirs --describe` and AdminClient.describeLogDirs show them. An offline dir is
//! answered with KAFKA_STORAGE_ERROR and no partitions, as Kafka answers a failed log dir.
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
    // A running move shows as a future replica in its destination, as Kafka shows one.
    let moving: Vec<PartitionOnDisk> = data_dirs
        .moves()
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
            let topics = topics_in(index, &on_disk, &moving);
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

/// The partitions of dir `index` (and the moves into it, as future replicas), grouped by topic.
fn topics_in(
    index: usize,
    on_disk: &[PartitionOnDisk],
    moving: &[PartitionOnDisk],
) -> Vec<DescribeLogDirsTopic> {
    let mut by_topic: BTreeMap<&str, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    let present = on_disk.iter().map(|p| (p, false));
    let future = moving.iter().map(|p| (p, true));
    for (partition, is_future) in present.chain(future).filter(|(p, _)| p.dir_index == index) {
        by_topic.entry(&partition.topic).or_default().push(
            DescribeLogDirsPartition::default()
                .with_partition_index(partition.partition)
                .with_partition_size(partition.size_bytes as i64)
                .with_offset_lag(0)
                .with_is_future_key(is_future),
        );
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
