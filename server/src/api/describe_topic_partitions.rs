//! DescribeTopicPartitions (API 75, KIP-966): topics and their partitions, paged. The Java
//! AdminClient 3.8+ describes topics with it. Topics are answered in name order from the cursor
//! on, at most `response_partition_limit` partitions per response (capped at
//! [`PARTITIONS_PER_RESPONSE_MAX`], Kafka's `max.request.partition.size.limit` default); when the
//! limit cuts the answer, `next_cursor` names the first partition not sent.
#![forbid(unsafe_code)]

use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};

use super::authorized_operations;
use super::{code, str_bytes, Operation, RequestContext, RequestError, Resource, Response};
use crate::metadata::TopicInfo;
use crate::shard::ShardContext;

/// Most partitions one response describes, whatever the client asks.
pub const PARTITIONS_PER_RESPONSE_MAX: i32 = 2000;

/// A requested topic: found, or only its name.
enum Wanted {
    Found(Arc<TopicInfo>),
    Unknown(String),
    /// Named, but the requester may not DESCRIBE it.
    Denied(String),
}

impl Wanted {
    fn name(&self) -> &str {
        match self {
            Self::Found(info) => &info.name,
            Self::Unknown(name) | Self::Denied(name) => name,
        }
    }
}

pub async fn handle(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let describe: DescribeTopicPartitionsRequest = request.decode(body)?;
    let mut wanted = requested_topics(context, &request, &describe);
    let first_partition = match &describe.cursor {
        Some(cursor) => {
            // Kafka requires the cursor's topic to be among the ones asked for.
            let first = cursor.topic_name.as_str();
            let Some(position) = wanted.iter().position(|topic| topic.name() == first) else {
                let refused = DescribeTopicPartitionsResponseTopic::default()
                    .with_name(Some(cursor.topic_name.clone()))
                    .with_error_code(code(ResponseError::InvalidRequest));
                return Ok(request.frame(
                    &DescribeTopicPartitionsResponse::default().with_topics(vec![refused]),
                ));
            };
            wanted.drain(..position);
            cursor.partition_index.max(0)
        }
        None => 0,
    };
    let limit = describe
        .response_partition_limit
        .clamp(1, PARTITIONS_PER_RESPONSE_MAX);
    let (mut topics, next_cursor) = page(&wanted, first_partition, limit, context.settings.node_id);
    for topic in topics.iter_mut().filter(|topic| topic.error_code == 0) {
        let name = topic.name.as_ref().map_or("", |name| name.as_str());
        topic.topic_authorized_operations = authorized_operations::topic(context, &request, name);
    }
    let response = DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor);
    Ok(request.frame(&response))
}

/// The topics asked for (all when none are named), by name, each once.
fn requested_topics(
    context: &ShardContext,
    request: &RequestContext,
    describe: &DescribeTopicPartitionsRequest,
) -> Vec<Wanted> {
    let mut wanted: Vec<Wanted> = if describe.topics.is_empty() {
        context
            .metadata
            .topics()
            .into_iter()
            .filter(|info| request.can(context, Operation::Describe, Resource::topic(&info.name)))
            .map(Wanted::Found)
            .collect()
    } else {
        describe
            .topics
            .iter()
            .map(|topic| match context.metadata.topic(&topic.name) {
                _ if !request.allows(
                    context,
                    Operation::Describe,
                    Resource::topic(&topic.name),
                ) =>
                {
                    Wanted::Denied(topic.name.to_string())
                }
                Some(info) => Wanted::Found(info),
                None => Wanted::Unknown(topic.name.to_string()),
            })
            .collect()
    };
    wanted.sort_by(|a, b| a.name().cmp(b.name()));
    wanted.dedup_by(|a, b| a.name() == b.name());
    wanted
}

/// One page: from `first_partition` of the first topic on, at most `limit` partitions, and the
/// cursor of the first partition left out (if any).
fn page(
    wanted: &[Wanted],
    mut first_partition: i32,
    limit: i32,
    node_id: i32,
) -> (Vec<DescribeTopicPartitionsResponseTopic>, Option<Cursor>) {
    let mut budget = limit;
    let mut topics = Vec::new();
    for topic in wanted {
        let info = match topic {
            Wanted::Unknown(name) => {
                topics.push(
                    DescribeTopicPartitionsResponseTopic::default()
                        .with_name(Some(TopicName(str_bytes(name))))
                        .with_error_code(code(ResponseError::UnknownTopicOrPartition)),
                );
                continue;
            }
            Wanted::Denied(name) => {
                topics.push(
                    DescribeTopicPartitionsResponseTopic::default()
                        .with_name(Some(TopicName(str_bytes(name))))
                        .with_error_code(code(ResponseError::TopicAuthorizationFailed)),
                );
                continue;
            }
            Wanted::Found(info) => info,
        };
        if budget == 0 {
            return (topics, Some(cursor(&info.name, 0)));
        }
        let end = info.partitions.min(first_partition.saturating_add(budget));
        let partitions: Vec<_> = (first_partition..end)
            .map(|index| partition(index, node_id))
            .collect();
        budget -= partitions.len() as i32;
        topics.push(describe_topic(info, partitions));
        if end < info.partitions {
            return (topics, Some(cursor(&info.name, end)));
        }
        first_partition = 0;
    }
    (topics, None)
}

fn cursor(topic: &str, partition_index: i32) -> Cursor {
    Cursor::default()
        .with_topic_name(TopicName(str_bytes(topic)))
        .with_partition_index(partition_index)
}

fn describe_topic(
    info: &TopicInfo,
    partitions: Vec<DescribeTopicPartitionsResponsePartition>,
) -> DescribeTopicPartitionsResponseTopic {
    DescribeTopicPartitionsResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(&info.name))))
        .with_topic_id(info.topic_id)
        .with_is_internal(info.name.starts_with("__"))
        .with_partitions(partitions)
        .with_topic_authorized_operations(authorized_operations::NOT_REQUESTED)
}

/// One partition: this broker leads it and is its only replica, always in sync.
fn partition(index: i32, node_id: i32) -> DescribeTopicPartitionsResponsePartition {
    DescribeTopicPartitionsResponsePartition::default()
        .with_partition_index(index)
        .with_leader_id(BrokerId(node_id))
        .with_leader_epoch(0)
        .with_replica_nodes(vec![BrokerId(node_id)])
        .with_isr_nodes(vec![BrokerId(node_id)])
        .with_eligible_leader_replicas(Some(Vec::new()))
        .with_last_known_elr(Some(Vec::new()))
}
