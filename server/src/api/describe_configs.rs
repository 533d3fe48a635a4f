//! DescribeConfigs: a topic's effective configs (our names are Kafka's), and which are overrides.
#![forbid(unsafe_code)]

use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use super::{code, str_bytes, RequestContext, RequestError, Response, RESOURCE_TYPE_TOPIC};
use crate::shard::ShardContext;

/// Kafka's ConfigSource values we report.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;

pub async fn handle(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let describe: DescribeConfigsRequest = request.decode(body)?;
    let mut results = Vec::with_capacity(describe.resources.len());
    for resource in describe.resources {
        let result = DescribeConfigsResult::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        let topic = (resource.resource_type == RESOURCE_TYPE_TOPIC)
            .then(|| context.metadata.topic(&resource.resource_name))
            .flatten();
        let Some(topic) = topic else {
            let error = if resource.resource_type == RESOURCE_TYPE_TOPIC {
                ResponseError::UnknownTopicOrPartition
            } else {
                ResponseError::InvalidRequest
            };
            results.push(
                result
                    .with_error_code(code(error))
                    .with_error_message(Some(str_bytes("only existing topics are described"))),
            );
            continue;
        };
        let configs = topic
            .config
            .get_all()
            .into_iter()
            .filter(|(name, _)| {
                resource
                    .configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|key| key.as_str() == *name))
            })
            .map(|(name, value)| {
                let source = if topic.overrides.contains_key(name) {
                    SOURCE_TOPIC
                } else {
                    SOURCE_DEFAULT
                };
                DescribeConfigsResourceResult::default()
                    .with_name(str_bytes(name))
                    .with_value(Some(str_bytes(&value)))
                    .with_config_source(source)
            })
            .collect();
        results.push(result.with_configs(configs));
    }
    Ok(request.frame(&DescribeConfigsResponse::default().with_results(results)))
}
