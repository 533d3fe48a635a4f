//! OffsetForLeaderEpoch: where a leader epoch ends, so a consumer can validate its position after
//! a leader change (KIP-320). One broker, one leader for life: every partition is at epoch 0, and
//! epoch 0 ends at the high watermark. A current epoch above 0 is one this leader does not know
//! (UNKNOWN_LEADER_EPOCH), one below 0 other than -1 (none given) is fenced (FENCED_LEADER_EPOCH),
//! as Kafka answers them; an epoch above 0 ends nowhere (epoch and offset -1).
#![forbid(unsafe_code)]

use std::rc::Rc;

use bytes::Bytes;
use futures_util::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::{code, Operation, RequestContext, RequestError, Resource, Response};
use crate::shard::ShardContext;

/// The only leader epoch a partition of this broker ever has.
pub const LEADER_EPOCH: i32 = 0;

/// "No current leader epoch given": the client does not fence on it.
const NO_EPOCH: i32 = -1;

/// Kafka's check of a request's current leader epoch (Fetch, ListOffsets, OffsetForLeaderEpoch):
/// -1 skips it; a newer epoch than the leader's is UNKNOWN_LEADER_EPOCH (the client saw metadata
/// this broker has not), an older one FENCED_LEADER_EPOCH.
pub fn check_current_epoch(current_leader_epoch: i32) -> Option<ResponseError> {
    match current_leader_epoch {
        NO_EPOCH | LEADER_EPOCH => None,
        newer if newer > LEADER_EPOCH => Some(ResponseError::UnknownLeaderEpoch),
        _ => Some(ResponseError::FencedLeaderEpoch),
    }
}

pub async fn handle(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let epochs: OffsetForLeaderEpochRequest = request.decode(body)?;
    let mut topics = Vec::with_capacity(epochs.topics.len());
    for topic in epochs.topics {
        let info = context.metadata.topic(&topic.topic);
        let allowed = request.allows(context, Operation::Describe, Resource::topic(&topic.topic));
        let lookups = topic.partitions.iter().map(|partition| {
            let info = info.clone();
            let index = partition.partition;
            let (current, asked) = (partition.current_leader_epoch, partition.leader_epoch);
            async move {
                let result = EpochEndOffset::default()
                    .with_partition(index)
                    .with_leader_epoch(-1)
                    .with_end_offset(-1);
                if !allowed {
                    return result.with_error_code(code(ResponseError::TopicAuthorizationFailed));
                }
                let Some(info) = info.filter(|info| info.has_partition(index)) else {
                    return result.with_error_code(code(ResponseError::UnknownTopicOrPartition));
                };
                if let Some(error) = check_current_epoch(current) {
                    return result.with_error_code(code(error));
                }
                if asked > LEADER_EPOCH {
                    // An epoch this log never had ends nowhere (Kafka: UNDEFINED epoch/offset).
                    return result;
                }
                let name = info.name.clone();
                let end = context
                    .on_owner(&name, index, move |owner| async move {
                        let log = owner
                            .partition_log(&info, index)
                            .await
                            .map_err(|_| ResponseError::KafkaStorageError)?;
                        Ok::<i64, ResponseError>(log.high_watermark().get())
                    })
                    .await;
                match end {
                    Ok(Ok(end_offset)) => result
                        .with_leader_epoch(LEADER_EPOCH)
                        .with_end_offset(end_offset),
                    Ok(Err(error)) => result.with_error_code(code(error)),
                    Err(_) => result.with_error_code(code(ResponseError::NotLeaderOrFollower)),
                }
            }
        });
        let partitions = join_all(lookups).await;
        topics.push(
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions),
        );
    }
    Ok(request.frame(&OffsetForLeaderEpochResponse::default().with_topics(topics)))
}
