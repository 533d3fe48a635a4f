//! DescribeProducers (API 61): the producers each partition remembers (the engine's producer
//! state, one known only by a transaction marker included, last sequence -1), as
//! `kafka-transactions --describe-producers` lists them, with the first offset of a transaction
//! open on the partition and the last batch's or marker's timestamp (-1 when unknown, as a
//! snapshot from before that field leaves it until the next expiry pass). `coordinator_epoch` is
//! -1.
#![forbid(unsafe_code)]

use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use super::{code, Operation, RequestContext, RequestError, Resource, Response};
use crate::shard::ShardContext;

pub async fn handle(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let describe: DescribeProducersRequest = request.decode(body)?;
    let mut topics = Vec::with_capacity(describe.topics.len());
    for topic in describe.topics {
        let info = context.metadata.topic(&topic.name);
        let allowed = request.allows(context, Operation::Read, Resource::topic(&topic.name));
        let mut partitions = Vec::with_capacity(topic.partition_indexes.len());
        for partition in topic.partition_indexes {
            let response = PartitionResponse::default().with_partition_index(partition);
            if !allowed {
                let denied = code(ResponseError::TopicAuthorizationFailed);
                partitions.push(response.with_error_code(denied));
                continue;
            }
            let Some(info) = info.clone().filter(|info| info.has_partition(partition)) else {
                partitions
                    .push(response.with_error_code(code(ResponseError::UnknownTopicOrPartition)));
                continue;
            };
            let name = info.name.clone();
            let active = context
                .on_owner(&name, partition, move |owner| async move {
                    let log = owner.partition_log(&info, partition).await.ok()?;
                    Some(log.active_producers())
                })
                .await;
            partitions.push(match active {
                Ok(Some(active)) => response.with_active_producers(
                    active
                        .into_iter()
                        .map(|producer| {
                            ProducerState::default()
                                .with_producer_id(ProducerId(producer.producer_id))
                                .with_producer_epoch(i32::from(producer.epoch))
                                .with_last_sequence(producer.last_sequence)
                                .with_last_timestamp(producer.last_timestamp_ms.unwrap_or(-1))
                                .with_coordinator_epoch(-1)
                                .with_current_txn_start_offset(
                                    producer
                                        .current_txn_first_offset
                                        .map_or(-1, |offset| offset.get()),
                                )
                        })
                        .collect(),
                ),
                Ok(None) => response.with_error_code(code(ResponseError::KafkaStorageError)),
                Err(_) => response.with_error_code(code(ResponseError::NotLeaderOrFollower)),
            });
        }
        topics.push(
            TopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    Ok(request.frame(&DescribeProducersResponse::default().with_topics(topics)))
}
