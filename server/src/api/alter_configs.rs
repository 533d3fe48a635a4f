//! AlterConfigs (the legacy, non-incremental API 33): the configs given replace all of a topic's
//! overrides, or all of a BROKER resource's dynamic configs; a config left out returns to the
//! broker default (a broker config to its start-up value), as in Kafka. A GROUP resource's set
//! is replaced likewise (`group_configs.rs`).
#![forbid(unsafe_code)]

use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_request::AlterableConfig;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};

use super::incremental_alter_configs::refusal_of_resource;
use super::{
    code, config_denied, error_message, Operation, RequestContext, RequestError, Response,
    RESOURCE_TYPE_BROKER, RESOURCE_TYPE_GROUP,
};
use crate::shard::ShardContext;
use crate::topics::{self, ConfigChange};
use crate::{broker_configs, group_configs};

pub async fn handle(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let alter: AlterConfigsRequest = request.decode(body)?;
    let mut responses = Vec::with_capacity(alter.resources.len());
    for resource in alter.resources {
        let response = AlterConfigsResourceResponse::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        let (kind, name) = (resource.resource_type, resource.resource_name.as_str());
        let denied = config_denied(context, &request, Operation::AlterConfigs, kind, name)
            .map(|error| (error, "not authorized".to_string()));
        let result = match denied.or_else(|| refusal_of_resource(resource.resource_type)) {
            Some(refused) => Err(refused),
            None if kind == RESOURCE_TYPE_BROKER => match null_values(&resource.configs) {
                // Kafka refuses null values for a broker (its preprocessing step).
                Some(names) => Err((
                    ResponseError::InvalidRequest,
                    format!("Null value not supported for : {names}"),
                )),
                None => {
                    let changes = replace_all(&resource.configs);
                    broker_configs::alter(
                        context,
                        resource.resource_name.to_string(),
                        changes,
                        alter.validate_only,
                    )
                    .await
                    .map_err(|err| (err.error, err.message))
                }
            },
            None if kind == RESOURCE_TYPE_GROUP => {
                alter_group(context, &resource, alter.validate_only)
                    .await
                    .map_err(|err| (err.error, err.message))
            }
            None => {
                // A null value is Kafka's "not set": the config falls back to its default.
                let changes = std::iter::once(ConfigChange::Clear)
                    .chain(resource.configs.iter().filter_map(|config| {
                        config.value.as_ref().map(|value| {
                            ConfigChange::Set(config.name.to_string(), value.to_string())
                        })
                    }))
                    .collect();
                topics::alter_configs(
                    context,
                    resource.resource_name.to_string(),
                    changes,
                    alter.validate_only,
                )
                .await
                .map_err(|err| (err.error, err.message))
            }
        };
        responses.push(match result {
            Ok(()) => response,
            Err((error, message)) => response
                .with_error_code(code(error))
                .with_error_message(Some(error_message(&message))),
        });
    }
    Ok(request.frame(&AlterConfigsResponse::default().with_responses(responses)))
}

/// The names given a null value, comma-separated, if any.
/// The legacy API's meaning: the configs given replace the whole set (a null value, where a
/// caller lets it through, sets the empty string).
fn replace_all(configs: &[AlterableConfig]) -> Vec<ConfigChange> {
    std::iter::once(ConfigChange::Clear)
        .chain(configs.iter().map(|config| {
            ConfigChange::Set(
                config.name.to_string(),
                config.value.as_deref().unwrap_or_default().to_string(),
            )
        }))
        .collect()
}

fn null_values(configs: &[AlterableConfig]) -> Option<String> {
    let names: Vec<&str> = configs
        .iter()
        .filter(|config| config.value.is_none())
        .map(|config| config.name.as_str())
        .collect();
    (!names.is_empty()).then(|| names.join(", "))
}

/// A GROUP resource's new set, as Kafka's controller takes it (legacyAlterConfigResource, then
/// ControllerConfigurationValidator): the name checked, a null value refused (INVALID_CONFIG),
/// then the set replaced.
async fn alter_group(
    context: &Rc<ShardContext>,
    resource: &kafka_protocol::messages::alter_configs_request::AlterConfigsResource,
    validate_only: bool,
) -> Result<(), topics::AdminError> {
    group_configs::check_name(&resource.resource_name)?;
    if let Some(names) = null_values(&resource.configs) {
        return Err(topics::AdminError::new(
            ResponseError::InvalidConfig,
            format!(
                "Null value not supported for group configs: {}",
                names.replace(", ", ",")
            ),
        ));
    }
    let changes = replace_all(&resource.configs);
    group_configs::alter(
        context,
        resource.resource_name.to_string(),
        changes,
        validate_only,
    )
    .await
}
