//! DeleteRecords: moves each partition's log start offset (the engine persists it and deletes the
//! segments wholly below it). Offset -1 means the high watermark.
#![forbid(unsafe_code)]

use std::rc::Rc;

use bytes::Bytes;
use futures_util::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use ringtail_engine::{DeleteRecordsError, Offset};

use super::{code, Operation, RequestContext, RequestError, Resource, Response};
use crate::shard::ShardContext;

/// The offset that asks for everything below the high watermark to go.
const HIGH_WATERMARK: i64 = -1;

pub async fn handle(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let delete: DeleteRecordsRequest = request.decode(body)?;
    let mut topics = Vec::with_capacity(delete.topics.len());
    for topic in delete.topics {
        let info = context.metadata.topic(&topic.name);
        let allowed = request.allows(context, Operation::Delete, Resource::topic(&topic.name));
        let deletions = topic.partitions.iter().map(|partition| {
            let info = info.clone();
            let (index, offset) = (partition.partition_index, partition.offset);
            async move {
                let result = DeleteRecordsPartitionResult::default()
                    .with_partition_index(index)
                    .with_low_watermark(-1);
                if !allowed {
                    return result.with_error_code(code(ResponseError::TopicAuthorizationFailed));
                }
                // As Kafka ("Cannot delete records of internal topic"): the coordinators' state.
                if info
                    .as_ref()
                    .is_some_and(|info| crate::metadata::is_internal_topic(&info.name))
                {
                    return result.with_error_code(code(ResponseError::InvalidTopicException));
                }
                let Some(info) = info.filter(|info| info.has_partition(index)) else {
                    return result.with_error_code(code(ResponseError::UnknownTopicOrPartition));
                };
                let name = info.name.clone();
                let moved = context
                    .on_owner(&name, index, move |owner| async move {
                        let log = owner
                            .partition_log(&info, index)
                            .await
                            .map_err(|_| ResponseError::KafkaStorageError)?;
                        let offset = if offset == HIGH_WATERMARK {
                            log.high_watermark()
                        } else {
                            Offset::new(offset)
                        };
                        log.delete_records_before(offset)
                            .await
                            .map_err(|err| error_for(&info.name, index, &err))
                    })
                    .await;
                match moved {
                    Ok(Ok(low_watermark)) => result.with_low_watermark(low_watermark.get()),
                    Ok(Err(error)) => result.with_error_code(code(error)),
                    Err(_) => result.with_error_code(code(ResponseError::NotLeaderOrFollower)),
                }
            }
        });
        let partitions = join_all(deletions).await;
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    Ok(request.frame(&DeleteRecordsResponse::default().with_topics(topics)))
}

/// The Kafka error code for a log start offset that could not move.
fn error_for(topic: &str, partition: i32, err: &DeleteRecordsError) -> ResponseError {
    match err {
        DeleteRecordsError::OutOfRange { .. } => ResponseError::OffsetOutOfRange,
        DeleteRecordsError::CompactedLog => ResponseError::PolicyViolation,
        DeleteRecordsError::Io(io) => {
            tracing::error!(topic, partition, %io, "persisting the log start offset failed");
            ResponseError::KafkaStorageError
        }
    }
}
