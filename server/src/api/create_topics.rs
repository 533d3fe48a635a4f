//! CreateTopics: topics with a partition count and topic-level configs (Kafka names).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use super::{code, str_bytes, RequestContext, RequestError, Response};
use crate::shard::ShardContext;
use crate::topics;

pub async fn handle(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let create: CreateTopicsRequest = request.decode(body)?;
    let mut results = Vec::with_capacity(create.topics.len());
    for topic in create.topics {
        let name = topic.name.to_string();
        let mut result = CreatableTopicResult::default().with_name(topic.name.clone());
        if topic.replication_factor > 1 {
            results.push(
                result
                    .with_error_code(code(ResponseError::InvalidReplicationFactor))
                    .with_error_message(Some(str_bytes(
                        "this broker is a single node: replication factor must be 1 or -1",
                    ))),
            );
            continue;
        }
        let partitions = if topic.assignments.is_empty() {
            topic.num_partitions
        } else {
            topic.assignments.len() as i32
        };
        let mut configs: BTreeMap<String, String> = topic
            .configs
            .iter()
            .filter_map(|config| {
                config
                    .value
                    .as_ref()
                    .map(|value| (config.name.to_string(), value.to_string()))
            })
            .collect();
        if let Err(message) = strip_fixed_configs(&mut configs) {
            results.push(with_error(
                result,
                ResponseError::InvalidConfig,
                &message,
                request.version,
            ));
            continue;
        }
        result =
            match topics::create_topic(context, name, partitions, configs, create.validate_only)
                .await
            {
                Ok(info) if request.version >= 5 => {
                    let configs = info
                        .config
                        .get_all()
                        .into_iter()
                        .map(|(name, value)| {
                            let source = if info.overrides.contains_key(name) {
                                1
                            } else {
                                5
                            };
                            CreatableTopicConfigs::default()
                                .with_name(str_bytes(name))
                                .with_value(Some(str_bytes(&value)))
                                .with_config_source(source)
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

/// Configs whose only value Ringtail has, accepted when asked for that value and dropped before
/// the engine sees them. Kafka Streams creates its repartition and changelog topics with
/// `message.timestamp.type=CreateTime` (Kafka's default, and the only kind Ringtail stores: it
/// keeps the producer's timestamps), so refusing the name would stop every stateful Streams app.
/// Any other value (LogAppendTime) is refused with INVALID_CONFIG, as not implemented.
fn strip_fixed_configs(configs: &mut BTreeMap<String, String>) -> Result<(), String> {
    const TIMESTAMP_TYPE: &str = "message.timestamp.type";
    match configs.remove(TIMESTAMP_TYPE).as_deref() {
        None | Some("CreateTime") => Ok(()),
        Some(other) => Err(format!(
            "{TIMESTAMP_TYPE}={other} is not supported: Ringtail keeps producer timestamps (CreateTime)"
        )),
    }
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
        result = result.with_error_message(Some(str_bytes(message)));
    }
    if version >= 5 {
        result = result.with_num_partitions(-1).with_replication_factor(-1);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_time_is_accepted_and_log_append_time_refused() {
        let mut configs = BTreeMap::from([
            (
                "message.timestamp.type".to_string(),
                "CreateTime".to_string(),
            ),
            ("cleanup.policy".to_string(), "compact".to_string()),
        ]);
        assert_eq!(strip_fixed_configs(&mut configs), Ok(()));
        assert_eq!(configs.keys().collect::<Vec<_>>(), ["cleanup.policy"]);
        let mut configs = BTreeMap::from([(
            "message.timestamp.type".to_string(),
            "LogAppendTime".to_string(),
        )]);
        assert!(strip_fixed_configs(&mut configs)
            .unwrap_err()
            .contains("LogAppendTime"));
    }
}
