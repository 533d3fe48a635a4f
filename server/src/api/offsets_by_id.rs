//! OffsetCommit and OffsetFetch v10 (Kafka 4.1) name topics by id: the request decoded by the
//! hand-written codec (`crate::protocol::offsets_v10`), its ids resolved to names before the v9
//! code path of `offsets.rs` serves it (ACLs, the coordinator and the offsets log go by name), and
//! the answer's topics given their ids back.
#![forbid(unsafe_code)]

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartitions, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetFetchRequest, TopicName};
use uuid::Uuid;

use super::{code, str_bytes, RequestContext, RequestError};
use crate::protocol::offsets_v10::{self, OffsetCommitRequestV10, OffsetFetchRequestV10};
use crate::shard::ShardContext;

/// Decodes an OffsetCommit request of any served version (v10 by the hand-written codec).
pub fn decode_offset_commit(
    request: &RequestContext,
    body: &mut Bytes,
) -> Result<OffsetCommitRequest, RequestError> {
    if request.version >= offsets_v10::VERSION {
        Ok(request.decode::<OffsetCommitRequestV10>(body)?.0)
    } else {
        request.decode(body)
    }
}

/// Decodes an OffsetFetch request of any served version (v10 by the hand-written codec).
pub fn decode_offset_fetch(
    request: &RequestContext,
    body: &mut Bytes,
) -> Result<OffsetFetchRequest, RequestError> {
    if request.version >= offsets_v10::VERSION {
        Ok(request.decode::<OffsetFetchRequestV10>(body)?.0)
    } else {
        request.decode(body)
    }
}

/// Whether topics are named by id (v10+) rather than by name.
pub fn by_topic_id(request: &RequestContext) -> bool {
    request.version >= offsets_v10::VERSION
}

/// Names a v10 commit's topics from their ids; which ids no topic has.
pub fn resolve_commit_topics(
    context: &ShardContext,
    topics: &mut [OffsetCommitRequestTopic],
) -> Vec<bool> {
    topics
        .iter_mut()
        .map(|topic| match context.metadata.topic_by_id(topic.topic_id) {
            Some(info) => {
                topic.name = TopicName(str_bytes(&info.name));
                true
            }
            None => false,
        })
        .collect()
}

/// The topics of a v10 group whose ids no topic has, with their partitions; the others are
/// named from their ids (ACLs and the coordinator go by name) and stay in the request.
pub fn resolve_fetch_topics(
    context: &ShardContext,
    group: &mut OffsetFetchRequestGroup,
) -> Vec<(Uuid, Vec<i32>)> {
    let Some(topics) = group.topics.as_mut() else {
        return Vec::new();
    };
    let mut unknown = Vec::new();
    topics.retain_mut(|topic| match context.metadata.topic_by_id(topic.topic_id) {
        Some(info) => {
            topic.name = TopicName(str_bytes(&info.name));
            true
        }
        None => {
            unknown.push((topic.topic_id, std::mem::take(&mut topic.partition_indexes)));
            false
        }
    });
    unknown
}

/// A v10 answer's topics: each named topic gets its id (one deleted since its offsets were
/// committed has none and is left out, as Kafka does), then the unknown ids follow, each of their
/// partitions UNKNOWN_TOPIC_ID (offset -1, leader epoch -1, metadata "", as Kafka answers).
pub fn with_topic_ids(
    context: &ShardContext,
    topics: Vec<OffsetFetchResponseTopics>,
    unknown_ids: Vec<(Uuid, Vec<i32>)>,
) -> Vec<OffsetFetchResponseTopics> {
    let named = topics.into_iter().filter_map(|topic| {
        let info = context.metadata.topic(topic.name.as_str())?;
        Some(topic.with_topic_id(info.topic_id))
    });
    let unknown = unknown_ids.into_iter().map(|(topic_id, partitions)| {
        let partitions = partitions
            .into_iter()
            .map(|partition| {
                OffsetFetchResponsePartitions::default()
                    .with_partition_index(partition)
                    .with_committed_offset(-1)
                    .with_committed_leader_epoch(-1)
                    .with_metadata(Some(str_bytes("")))
                    .with_error_code(code(ResponseError::UnknownTopicId))
            })
            .collect();
        OffsetFetchResponseTopics::default()
            .with_topic_id(topic_id)
            .with_partitions(partitions)
    });
    named.chain(unknown).collect()
}
