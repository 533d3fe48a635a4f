//! Metadata: this broker, and the topics asked for (all of them when the list is null).
#![forbid(unsafe_code)]

use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};

use super::{
    authorized_operations, code, offset_for_leader_epoch, str_bytes, RequestContext, RequestError,
    Response,
};
use crate::metadata::{valid_topic_name, TopicInfo};
use crate::settings::NODE_ID;
use crate::shard::ShardContext;
use crate::topics;

pub async fn handle(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let metadata_request: MetadataRequest = request.decode(body)?;
    // v0 has no flag: it always auto-creates (when the broker allows it).
    let allow_auto_create = request.version < 4 || metadata_request.allow_auto_topic_creation;
    let operations = AuthorizedOperations {
        cluster: metadata_request.include_cluster_authorized_operations,
        topics: metadata_request.include_topic_authorized_operations,
    };
    let mut topics = match metadata_request.topics {
        None => context
            .metadata
            .topics()
            .iter()
            .map(|topic| describe(topic, request.version))
            .collect(),
        Some(wanted) if wanted.is_empty() && request.version == 0 => context
            .metadata
            .topics()
            .iter()
            .map(|topic| describe(topic, request.version))
            .collect(),
        Some(wanted) => {
            if allow_auto_create && context.settings.auto_create_topics {
                // At most --auto-create-topics-per-request-max names, created in one registry
                // change; the others are answered UNKNOWN_TOPIC_OR_PARTITION, as Kafka answers
                // a topic its quota kept from being created.
                let missing: Vec<String> = wanted
                    .iter()
                    .filter_map(|item| item.name.as_ref())
                    .filter(|name| context.metadata.topic(name).is_none())
                    .take(context.settings.auto_create_topics_per_request_max as usize)
                    .map(|name| name.to_string())
                    .collect();
                topics::auto_create(context, missing).await;
            }
            let mut described = Vec::with_capacity(wanted.len());
            for (index, item) in wanted.into_iter().enumerate() {
                if index % crate::shard::ITEMS_PER_YIELD == crate::shard::ITEMS_PER_YIELD - 1 {
                    crate::shard::yield_now().await;
                }
                let found = match (&item.name, item.topic_id.is_nil()) {
                    (Some(name), _) => context.metadata.topic(name),
                    (None, false) => context.metadata.topic_by_id(item.topic_id),
                    (None, true) => None,
                };
                // A name Kafka could never hold is INVALID_TOPIC_EXCEPTION (and never created).
                // Asked by id alone (v10+), an unknown topic is UNKNOWN_TOPIC_ID.
                let missing = match &item.name {
                    Some(name) if !valid_topic_name(name) => ResponseError::InvalidTopicException,
                    None if !item.topic_id.is_nil() => ResponseError::UnknownTopicId,
                    _ => ResponseError::UnknownTopicOrPartition,
                };
                described.push(match found {
                    Some(topic) => describe(&topic, request.version),
                    None => MetadataResponseTopic::default()
                        .with_error_code(code(missing))
                        .with_name(item.name.clone())
                        .with_topic_id(if request.version >= 10 {
                            item.topic_id
                        } else {
                            uuid::Uuid::nil()
                        }),
                });
            }
            described
        }
    };
    if request.version >= 8 && operations.topics {
        for topic in topics.iter_mut().filter(|topic| topic.error_code == 0) {
            topic.topic_authorized_operations = authorized_operations::TOPIC;
        }
    }
    let listener = context.settings.listener(request.listener);
    let broker = MetadataResponseBroker::default()
        .with_node_id(BrokerId(NODE_ID))
        .with_host(str_bytes(&listener.advertised_host))
        .with_port(listener.advertised_port);
    // Fields a version lacks must stay at their defaults or encoding fails.
    let mut response = MetadataResponse::default()
        .with_brokers(vec![broker])
        .with_topics(topics);
    if request.version >= 1 {
        response = response.with_controller_id(BrokerId(NODE_ID));
    }
    if request.version >= 2 {
        response = response.with_cluster_id(Some(str_bytes(&context.settings.cluster_id)));
    }
    if (8..=10).contains(&request.version) && operations.cluster {
        response = response.with_cluster_authorized_operations(authorized_operations::CLUSTER);
    }
    Ok(request.frame(&response))
}

/// Which authorized-operations fields (KIP-430) the request asks for; no ACLs, so all allowed.
struct AuthorizedOperations {
    cluster: bool,
    topics: bool,
}

/// One topic as Metadata shows it: this broker leads every partition, the only replica.
fn describe(topic: &TopicInfo, version: i16) -> MetadataResponseTopic {
    let partitions = (0..topic.partitions)
        .map(|partition| {
            let described = MetadataResponsePartition::default()
                .with_partition_index(partition)
                .with_leader_id(BrokerId(NODE_ID))
                .with_replica_nodes(vec![BrokerId(NODE_ID)])
                .with_isr_nodes(vec![BrokerId(NODE_ID)]);
            // The leader epoch lets consumers validate positions (OffsetForLeaderEpoch, v7+).
            if version >= 7 {
                described.with_leader_epoch(offset_for_leader_epoch::LEADER_EPOCH)
            } else {
                described
            }
        })
        .collect();
    let mut described = MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(&topic.name))))
        .with_partitions(partitions);
    if version >= 1 {
        described = described.with_is_internal(topic.name.starts_with("__"));
    }
    if version >= 10 {
        described = described.with_topic_id(topic.topic_id);
    }
    described
}
