//! ListOffsets: earliest (-2), latest (-1), the first offset at or after a timestamp, the record
//! with the largest timestamp (-3, v7+, KIP-734), earliest local (-4, v8+, KIP-405: with no tiered
//! storage the earliest) and latest tiered (-5, v9+: with no tiered storage no offset, -1).
//! Under read_committed, latest is the last stable offset, and a lookup by time (or -3) answers
//! only below it, as Kafka does (below the high watermark under read_uncommitted).
#![forbid(unsafe_code)]

use std::rc::Rc;

use bytes::Bytes;
use futures_util::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use ringtail_engine::Offset;

use super::offset_for_leader_epoch::check_current_epoch;
use super::{code, Operation, RequestContext, RequestError, Resource, Response};
use crate::shard::ShardContext;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

pub async fn handle(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let list: ListOffsetsRequest = request.decode(body)?;
    // Under read_committed (isolation_level 1, v2+) the latest offset is the LSO.
    let read_committed = list.isolation_level == 1;
    let mut topics = Vec::with_capacity(list.topics.len());
    for topic in list.topics {
        let info = context.metadata.topic(&topic.name);
        let allowed = request.allows(context, Operation::Describe, Resource::topic(&topic.name));
        let version = request.version;
        let lookups = topic.partitions.iter().map(|partition| {
            let info = info.clone();
            let (index, timestamp) = (partition.partition_index, partition.timestamp);
            let current_leader_epoch = partition.current_leader_epoch;
            async move {
                let response = ListOffsetsPartitionResponse::default()
                    .with_partition_index(index)
                    .with_timestamp(-1)
                    .with_offset(-1);
                if !allowed {
                    return response.with_error_code(code(ResponseError::TopicAuthorizationFailed));
                }
                let Some(info) = info.filter(|info| info.has_partition(index)) else {
                    return response.with_error_code(code(ResponseError::UnknownTopicOrPartition));
                };
                if let Some(error) = check_current_epoch(current_leader_epoch) {
                    return response.with_error_code(code(error));
                }
                let name = info.name.clone();
                let found = context
                    .on_owner(&name, index, move |owner| async move {
                        let log = owner
                            .partition_log(&info, index)
                            .await
                            .map_err(|_| ResponseError::KafkaStorageError)?;
                        // What the asking consumer may fetch up to: a lookup by time answers
                        // only below it, as Kafka's (an offset inside an open transaction is
                        // no answer for read_committed: no offset, -1).
                        let fetchable_end = if read_committed {
                            log.last_stable_offset()
                        } else {
                            log.high_watermark()
                        };
                        let fetchable = |found: Option<(Offset, i64)>| {
                            found.filter(|(offset, _)| *offset < fetchable_end)
                        };
                        match timestamp {
                            LATEST => Ok(Some((fetchable_end, -1))),
                            EARLIEST | EARLIEST_LOCAL => Ok(Some((log.log_start_offset(), -1))),
                            LATEST_TIERED => Ok(None),
                            MAX_TIMESTAMP => log
                                .max_timestamp_offset()
                                .await
                                .map(fetchable)
                                .map_err(|_| ResponseError::KafkaStorageError),
                            at if at >= 0 => log
                                .offset_for_timestamp(at)
                                .await
                                .map(fetchable)
                                .map_err(|_| ResponseError::KafkaStorageError),
                            _ => Err(ResponseError::InvalidRequest),
                        }
                    })
                    .await;
                match found {
                    Ok(Ok(Some((offset, timestamp)))) => {
                        let response = response.with_offset(offset.get()).with_timestamp(timestamp);
                        // Fields a version lacks must stay at their defaults or encoding fails.
                        if version >= 4 {
                            response.with_leader_epoch(0)
                        } else {
                            response
                        }
                    }
                    // No record that new: Kafka answers offset -1 (v1+), timestamp -1.
                    Ok(Ok(None)) => response,
                    Ok(Err(error)) => response.with_error_code(code(error)),
                    Err(_) => response.with_error_code(code(ResponseError::NotLeaderOrFollower)),
                }
            }
        });
        let partitions = join_all(lookups).await;
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    Ok(request.frame(&ListOffsetsResponse::default().with_topics(topics)))
}
