//! CreateTopics: topics with a partition count and topic-level configs (Kafka names).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use super::{
    code, error_message, str_bytes, Operation, RequestContext, RequestError, Resource, Response,
};
use crate::configs;
use crate::shard::ShardContext;
use crate::topics;

pub async fn handle(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let create: CreateTopicsRequest = request.decode(body)?;
    let mut results = Vec::with_capacity(create.topics.len());
    // CREATE on the cluster covers every topic; else each topic needs its own (Kafka).
    let create_any = request.can(context, Operation::Create, Resource::cluster());
    // A name given twice is created under neither entry: Kafka answers it once, INVALID_REQUEST
    // "Duplicate topic name." (ControllerApis.createTopics), and creates the others.
    let mut occurrences: BTreeMap<String, usize> = BTreeMap::new();
    for topic in &create.topics {
        *occurrences.entry(topic.name.to_string()).or_default() += 1;
    }
    let mut answered_duplicates: Vec<String> = Vec::new();
    for topic in create.topics {
        let name = topic.name.to_string();
        let mut result = CreatableTopicResult::default().with_name(topic.name.clone());
        if occurrences.get(&name).is_some_and(|count| *count > 1) {
            if !answered_duplicates.contains(&name) {
                results.push(with_error(
                    result,
                    ResponseError::InvalidRequest,
                    "Duplicate topic name.",
                    request.version,
                ));
                answered_duplicates.push(name);
            }
            continue;
        }
        if !create_any && !request.allows(context, Operation::Create, Resource::topic(&name)) {
            let denied = ResponseError::TopicAuthorizationFailed;
            results.push(with_error(
                result,
                denied,
                "not authorized",
                request.version,
            ));
            continue;
        }
        let partitions = match checked_layout(&topic, context.settings.node_id) {
            Ok(partitions) => partitions,
            Err((error, message)) => {
                results.push(with_error(result, error, &message, request.version));
                continue;
            }
        };
        if let Some(null) = topic.configs.iter().find(|config| config.value.is_none()) {
            let message = format!("Null value not supported for topic configs: {}", null.name);
            let error = ResponseError::InvalidConfig;
            results.push(with_error(result, error, &message, request.version));
            continue;
        }
        let configs: BTreeMap<String, String> = topic
            .configs
            .iter()
            .filter_map(|config| {
                config
                    .value
                    .as_ref()
                    .map(|value| (config.name.to_string(), value.to_string()))
            })
            .collect();
        result =
            match topics::create_topic(context, name, partitions, configs, create.validate_only)
                .await
            {
                Ok(info)
                    if request.version >= 5
                        && !request.can(
                            context,
                            Operation::DescribeConfigs,
                            Resource::topic(&info.name),
                        ) =>
                {
                    // As Kafka: created, but its configs are not shown to whom may not see them.
                    let result = result
                        .with_num_partitions(info.partitions)
                        .with_replication_factor(1)
                        .with_configs(None)
                        .with_topic_config_error_code(code(
                            ResponseError::TopicAuthorizationFailed,
                        ));
                    if request.version >= 7 {
                        result.with_topic_id(info.topic_id)
                    } else {
                        result
                    }
                }
                Ok(info) if request.version >= 5 => {
                    let configs = configs::topic::describe(
                        &info.config,
                        &info.overrides,
                        &context.metadata.broker_defaults(),
                        &context.settings.explicit_flags,
                    )
                    .into_iter()
                    .map(|config| {
                        CreatableTopicConfigs::default()
                            .with_name(str_bytes(&config.name))
                            .with_value(config.value.as_deref().map(str_bytes))
                            .with_read_only(config.read_only)
                            .with_config_source(config.source as i8)
                            .with_is_sensitive(config.sensitive)
                    })
                    .collect();
                    let result = result
                        .with_num_partitions(info.partitions)
                        .with_replication_factor(1)
                        .with_configs(Some(configs));
                    if request.version >= 7 {
                        result.with_topic_id(info.topic_id)
                    } else {
                        result
                    }
                }
                Ok(_) => result,
                Err(err) => with_error(result, err.error, &err.message, request.version),
            };
        results.push(result);
    }
    Ok(request.frame(&CreateTopicsResponse::default().with_topics(results)))
}

/// The partition count a topic's layout asks for, checked as Kafka's controller checks it
/// (ReplicationControlManager): either a count and a replication factor, or manual assignments,
/// each a replica list of registered brokers; here the one broker is this node.
fn checked_layout(topic: &CreatableTopic, node_id: i32) -> Result<i32, (ResponseError, String)> {
    if topic.assignments.is_empty() {
        return match topic.replication_factor {
            -1 | 1 => Ok(topic.num_partitions),
            factor if factor <= 0 => Err((
                ResponseError::InvalidReplicationFactor,
                "Replication factor must be larger than 0, or -1 to use the default value."
                    .to_string(),
            )),
            factor => Err((
                ResponseError::InvalidReplicationFactor,
                format!("Unable to replicate the partition {factor} time(s): this broker is a single node, so the replication factor must be 1 or -1."),
            )),
        };
    }
    if topic.num_partitions != -1 || topic.replication_factor != -1 {
        return Err((
            ResponseError::InvalidRequest,
            "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".to_string(),
        ));
    }
    let mut indexes: Vec<i32> = topic
        .assignments
        .iter()
        .map(|assignment| assignment.partition_index)
        .collect();
    indexes.sort_unstable();
    if indexes
        .iter()
        .enumerate()
        .any(|(at, index)| *index != at as i32)
    {
        return Err((
            ResponseError::InvalidReplicaAssignment,
            "partitions should be a consecutive 0-based integer sequence".to_string(),
        ));
    }
    for assignment in &topic.assignments {
        let replicas: Vec<i32> = assignment.broker_ids.iter().map(|id| id.0).collect();
        check_replicas(&replicas, node_id)?;
    }
    Ok(indexes.len() as i32)
}

/// One partition's manual replica list, as Kafka's controller checks it: not empty, no broker
/// twice, every broker registered.
pub(crate) fn check_replicas(
    replicas: &[i32],
    node_id: i32,
) -> Result<(), (ResponseError, String)> {
    let invalid = |message: String| Err((ResponseError::InvalidReplicaAssignment, message));
    if replicas.is_empty() {
        return invalid("The manual partition assignment includes an empty replica list.".into());
    }
    for (at, replica) in replicas.iter().enumerate() {
        if replicas[..at].contains(replica) {
            return invalid(format!(
                "The manual partition assignment includes the broker {replica} more than once."
            ));
        }
        if *replica != node_id {
            return invalid(format!(
                "The manual partition assignment includes broker {replica}, but no such broker is registered."
            ));
        }
    }
    Ok(())
}

/// A failed topic's result; fields a version lacks must stay at their defaults.
fn with_error(
    result: CreatableTopicResult,
    error: ResponseError,
    message: &str,
    version: i16,
) -> CreatableTopicResult {
    let mut result = result.with_error_code(code(error));
    if version >= 1 {
        result = result.with_error_message(Some(error_message(message)));
    }
    if version >= 5 {
        result = result.with_num_partitions(-1).with_replication_factor(-1);
    }
    result
}
