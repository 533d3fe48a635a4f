//! DescribeConfigs: a topic's configs (every topic config of Kafka 4.x, with types, sources,
//! synonyms and documentation) and the broker's (its settings under Kafka's names, with the
//! dynamic broker configs over them; the empty name: the cluster-wide dynamic defaults), and a
//! consumer group's (KIP-848 GROUP resources: its own over the broker's, `configs/group.rs`).
#![forbid(unsafe_code)]

use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use super::{
    code, config_denied, error_message, str_bytes, Operation, RequestContext, RequestError,
    Response, RESOURCE_TYPE_BROKER, RESOURCE_TYPE_GROUP, RESOURCE_TYPE_TOPIC,
};
use crate::configs::{self, Described};
use crate::shard::ShardContext;

/// What the request asks to see of each config.
#[derive(Clone, Copy)]
struct Detail {
    synonyms: bool,
    documentation: bool,
    version: i16,
}

pub async fn handle(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let describe: DescribeConfigsRequest = request.decode(body)?;
    let detail = Detail {
        synonyms: describe.include_synonyms,
        documentation: describe.include_documentation,
        version: request.version,
    };
    let results = describe
        .resources
        .into_iter()
        .map(|resource| describe_resource(context, &request, resource, detail))
        .collect();
    Ok(request.frame(&DescribeConfigsResponse::default().with_results(results)))
}

fn describe_resource(
    context: &ShardContext,
    request: &RequestContext,
    resource: DescribeConfigsResource,
    detail: Detail,
) -> DescribeConfigsResult {
    let result = DescribeConfigsResult::default()
        .with_resource_type(resource.resource_type)
        .with_resource_name(resource.resource_name.clone());
    let (kind, name) = (resource.resource_type, resource.resource_name.as_str());
    if let Some(denied) = config_denied(context, request, Operation::DescribeConfigs, kind, name) {
        return result.with_error_code(code(denied));
    }
    let described = match resource.resource_type {
        RESOURCE_TYPE_TOPIC => match context.metadata.topic(&resource.resource_name) {
            Some(topic) => Ok(configs::topic::describe(
                &topic.config,
                &topic.overrides,
                &context.metadata.broker_defaults(),
                &context.settings.explicit_flags,
            )),
            None => Err((
                ResponseError::UnknownTopicOrPartition,
                "no such topic".to_string(),
            )),
        },
        RESOURCE_TYPE_BROKER => match resource.resource_name.as_str() {
            // The empty name asks for the cluster-wide dynamic defaults only.
            "" => Ok(configs::dynamic::describe_default(
                &context.metadata.broker_defaults().dynamic,
            )),
            name if name == context.settings.node_id.to_string() => {
                Ok(configs::dynamic::describe_node(
                    &context.settings.broker_configs,
                    &context.metadata.broker_defaults().dynamic,
                ))
            }
            name => Err((
                ResponseError::InvalidRequest,
                format!(
                    "unexpected broker id {name}: this broker is {}",
                    context.settings.node_id
                ),
            )),
        },
        // As Kafka's ConfigHelper: any group may be described, with or without configs.
        RESOURCE_TYPE_GROUP if resource.resource_name.is_empty() => Err((
            ResponseError::InvalidRequest,
            "Group name must not be empty".to_string(),
        )),
        RESOURCE_TYPE_GROUP => {
            let config = &context.settings.consumer_group;
            Ok(configs::group::describe(
                context
                    .metadata
                    .group_configs(&resource.resource_name)
                    .as_ref(),
                config.session_timeout_ms,
                config.heartbeat_interval_ms,
            ))
        }
        other => Err((
            ResponseError::InvalidRequest,
            format!("resource type {other} is not described (topics, brokers and groups are)"),
        )),
    };
    match described {
        Ok(described) => {
            // Null or empty asks for every config, as in Kafka.
            let keys = resource
                .configuration_keys
                .as_ref()
                .filter(|keys| !keys.is_empty());
            result.with_configs(
                described
                    .iter()
                    .filter(|config| {
                        keys.is_none_or(|keys| keys.iter().any(|key| key.as_str() == config.name))
                    })
                    .map(|config| encode(config, detail))
                    .collect(),
            )
        }
        Err((error, message)) => result
            .with_error_code(code(error))
            .with_error_message(Some(error_message(&message))),
    }
}

/// One config in the shape of the request's version; fields a version lacks stay at defaults.
fn encode(config: &Described, detail: Detail) -> DescribeConfigsResourceResult {
    let mut result = DescribeConfigsResourceResult::default()
        .with_name(str_bytes(&config.name))
        .with_value(config.value.as_deref().map(str_bytes))
        .with_read_only(config.read_only)
        .with_config_source(config.source as i8)
        .with_is_sensitive(config.sensitive);
    if detail.synonyms {
        result = result.with_synonyms(
            config
                .synonyms
                .iter()
                .map(|synonym| {
                    DescribeConfigsSynonym::default()
                        .with_name(str_bytes(&synonym.name))
                        .with_value(synonym.value.as_deref().map(str_bytes))
                        .with_source(synonym.source as i8)
                })
                .collect(),
        );
    }
    if detail.version >= 3 {
        result = result.with_config_type(config.kind as i8);
        if detail.documentation {
            result = result.with_documentation(Some(str_bytes(config.documentation)));
        }
    }
    result
}
