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
    authorized_operations, code, offset_for_leader_epoch, str_bytes, Operation, RequestContext,
    RequestError, Resource, Response,
};
use crate::metadata::{valid_topic_name, TopicInfo};
use crate::shard::ShardContext;
use crate::topics;

pub async fn handle(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let metadata_request: MetadataRequest = request.decode(body)?;
    // v10 and v11 can ask by id with a null name, but their answer can't carry a null name;
    // Kafka refuses such a request ("Topic name can not be null for version <12").
    if request.version < 12
        && metadata_request
            .topics
            .iter()
            .flatten()
            .any(|topic| topic.name.is_none())
    {
        return Err(RequestError::Malformed {
            api: request.api,
            version: request.version,
            reason: "a topic name can not be null before version 12".to_string(),
        });
    }
    // v0 has no flag: it always auto-creates (when the broker allows it).
    let allow_auto_create = request.version < 4 || metadata_request.allow_auto_topic_creation;
    let operations = AuthorizedOperations {
        cluster: metadata_request.include_cluster_authorized_operations,
        topics: metadata_request.include_topic_authorized_operations,
    };
    let mut topics = match metadata_request.topics {
        // All topics: those the requester may not DESCRIBE are left out, unmentioned (Kafka).
        None => describe_all(context, &request),
        Some(wanted) if wanted.is_empty() && request.version == 0 => {
            describe_all(context, &request)
        }
        Some(wanted) => {
            let auto_create = allow_auto_create && context.settings.auto_create_topics;
            // Auto-creation needs CREATE on the cluster or on the topic, besides DESCRIBE.
            let create_any =
                auto_create && request.can(context, Operation::Create, Resource::cluster());
            let may_create = |name: &str| {
                create_any || request.can(context, Operation::Create, Resource::topic(name))
            };
            let mut created = std::collections::HashSet::new();
            if auto_create {
                // At most --auto-create-topics-per-request-max names, created in one registry
                // change; the others are answered UNKNOWN_TOPIC_OR_PARTITION, as Kafka answers
                // a topic its quota kept from being created.
                let missing: Vec<String> = wanted
                    .iter()
                    .filter_map(|item| item.name.as_ref())
                    .filter(|name| context.metadata.topic(name).is_none())
                    .filter(|name| request.can(context, Operation::Describe, Resource::topic(name)))
                    .filter(|name| may_create(name))
                    .take(context.settings.auto_create_topics_per_request_max as usize)
                    .map(|name| name.to_string())
                    .collect();
                created.extend(topics::auto_create(context, missing).await);
            }
            let mut described = Vec::with_capacity(wanted.len());
            for (index, mut item) in wanted.into_iter().enumerate() {
                if index % crate::shard::ITEMS_PER_YIELD == crate::shard::ITEMS_PER_YIELD - 1 {
                    crate::shard::yield_now().await;
                }
                // The Java client asks by id with an empty name, not a null one: the id is
                // what it means (Kafka looks a topic up by its id whenever one is given).
                if request.version >= 12
                    && !item.topic_id.is_nil()
                    && item.name.as_ref().is_some_and(|name| name.is_empty())
                {
                    item.name = None;
                }
                let found = match (&item.name, item.topic_id.is_nil()) {
                    (Some(name), _) => context.metadata.topic(name),
                    (None, false) => context.metadata.topic_by_id(item.topic_id),
                    (None, true) => None,
                };
                // A name Kafka could never hold is INVALID_TOPIC_EXCEPTION (and never created).
                // Asked by id alone (v10+), an unknown topic is UNKNOWN_TOPIC_ID.
                let described_name = found.as_ref().map(|t| t.name.as_str());
                let denied = match described_name.or(item.name.as_ref().map(|n| n.as_str())) {
                    Some(name) => {
                        !request.allows(context, Operation::Describe, Resource::topic(name))
                    }
                    None => false,
                };
                let missing = match &item.name {
                    _ if denied => ResponseError::TopicAuthorizationFailed,
                    Some(name) if !valid_topic_name(name) => ResponseError::InvalidTopicException,
                    Some(name) if auto_create && !may_create(name) => {
                        ResponseError::TopicAuthorizationFailed
                    }
                    None if !item.topic_id.is_nil() => ResponseError::UnknownTopicId,
                    _ => ResponseError::UnknownTopicOrPartition,
                };
                described.push(match found.filter(|_| !denied) {
                    // Created by this request: LEADER_NOT_AVAILABLE without partitions, as
                    // Kafka's auto-creation answers (its leaders are not elected yet there);
                    // clients retry and find the topic with its partitions in the next Metadata.
                    // Clients that assume a deleted topic stays gone (kafka-go's tests) rely
                    // on it.
                    Some(topic) if created.contains(&topic.name) => {
                        just_created(&topic.name, request.version)
                    }
                    Some(topic) => describe(&topic, request.version, context.settings.node_id),
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
            let name = topic.name.as_ref().map_or("", |name| name.as_str());
            topic.topic_authorized_operations =
                authorized_operations::topic(context, &request, name);
        }
    }
    let listener = context.settings.listener(request.listener);
    let broker = MetadataResponseBroker::default()
        .with_node_id(BrokerId(context.settings.node_id))
        .with_host(str_bytes(&listener.advertised_host))
        .with_port(listener.advertised_port);
    // Fields a version lacks must stay at their defaults or encoding fails.
    let mut response = MetadataResponse::default()
        .with_brokers(vec![broker])
        .with_topics(topics);
    if request.version >= 1 {
        response = response.with_controller_id(BrokerId(context.settings.node_id));
    }
    if request.version >= 2 {
        response = response.with_cluster_id(Some(str_bytes(&context.settings.cluster_id)));
    }
    if (8..=10).contains(&request.version) && operations.cluster {
        let cluster = authorized_operations::cluster(context, &request);
        response = response.with_cluster_authorized_operations(cluster);
    }
    Ok(request.frame(&response))
}

/// Every topic the requester may DESCRIBE.
fn describe_all(context: &ShardContext, request: &RequestContext) -> Vec<MetadataResponseTopic> {
    context
        .metadata
        .topics()
        .iter()
        .filter(|topic| request.can(context, Operation::Describe, Resource::topic(&topic.name)))
        .map(|topic| describe(topic, request.version, context.settings.node_id))
        .collect()
}

/// A topic this Metadata request auto-created, as Kafka's AutoTopicCreationManager answers it.
fn just_created(name: &str, version: i16) -> MetadataResponseTopic {
    let described = MetadataResponseTopic::default()
        .with_error_code(code(ResponseError::LeaderNotAvailable))
        .with_name(Some(TopicName(str_bytes(name))));
    if version >= 1 {
        described.with_is_internal(name.starts_with("__"))
    } else {
        described
    }
}

/// Which authorized-operations fields (KIP-430) the request asks for.
struct AuthorizedOperations {
    cluster: bool,
    topics: bool,
}

/// One topic as Metadata shows it: this broker leads every partition, the only replica.
fn describe(topic: &TopicInfo, version: i16, node_id: i32) -> MetadataResponseTopic {
    let partitions = (0..topic.partitions)
        .map(|partition| {
            let described = MetadataResponsePartition::default()
                .with_partition_index(partition)
                .with_leader_id(BrokerId(node_id))
                .with_replica_nodes(vec![BrokerId(node_id)])
                .with_isr_nodes(vec![BrokerId(node_id)]);
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
