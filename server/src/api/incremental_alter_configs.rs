//! IncrementalAlterConfigs: set, delete, append to or subtract from topic configs (Kafka names;
//! APPEND and SUBTRACT on LIST configs such as `cleanup.policy`). The change is saved in the
//! registry and applied to the topic's open partition logs at once. A BROKER resource (this
//! node's id, or "" for the cluster-wide default) takes Kafka's dynamic broker configs
//! (`broker_configs.rs`); a GROUP resource (KIP-848) its consumer group's configs
//! (`group_configs.rs`).
#![forbid(unsafe_code)]

use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::{
    code, config_denied, error_message, Operation, RequestContext, RequestError, Response,
    RESOURCE_TYPE_BROKER, RESOURCE_TYPE_GROUP, RESOURCE_TYPE_TOPIC,
};
use crate::shard::ShardContext;
use crate::topics::{self, ConfigChange};
use crate::{broker_configs, group_configs};

const OPERATION_SET: i8 = 0;
const OPERATION_DELETE: i8 = 1;
const OPERATION_APPEND: i8 = 2;
const OPERATION_SUBTRACT: i8 = 3;

pub async fn handle(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let alter: IncrementalAlterConfigsRequest = request.decode(body)?;
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
            None => match changes_of(&resource.configs) {
                Ok(changes) if resource.resource_type == RESOURCE_TYPE_BROKER => {
                    broker_configs::alter(
                        context,
                        resource.resource_name.to_string(),
                        changes,
                        alter.validate_only,
                    )
                    .await
                    .map_err(|err| (err.error, err.message))
                }
                Ok(changes) if resource.resource_type == RESOURCE_TYPE_GROUP => {
                    group_configs::alter(
                        context,
                        resource.resource_name.to_string(),
                        changes,
                        alter.validate_only,
                    )
                    .await
                    .map_err(|err| (err.error, err.message))
                }
                Ok(changes) => match broker_configs::check_duplicates(&changes) {
                    // A key named twice in one change is refused, as for brokers and groups.
                    Err(err) => Err((err.error, err.message)),
                    Ok(()) => topics::alter_configs(
                        context,
                        resource.resource_name.to_string(),
                        changes,
                        alter.validate_only,
                    )
                    .await
                    .map_err(|err| (err.error, err.message)),
                },
                Err(message) => Err((ResponseError::InvalidRequest, message)),
            },
        };
        responses.push(match result {
            Ok(()) => response,
            Err((error, message)) => response
                .with_error_code(code(error))
                .with_error_message(Some(error_message(&message))),
        });
    }
    Ok(request.frame(&IncrementalAlterConfigsResponse::default().with_responses(responses)))
}

/// The request's operations as changes, or why one is malformed.
fn changes_of(configs: &[AlterableConfig]) -> Result<Vec<ConfigChange>, String> {
    configs
        .iter()
        .map(|config| {
            let name = config.name.to_string();
            let value = config.value.as_ref().map(|value| value.to_string());
            match (config.config_operation, value) {
                (OPERATION_SET, Some(value)) => Ok(ConfigChange::Set(name, value)),
                (OPERATION_DELETE, _) => Ok(ConfigChange::Delete(name)),
                (OPERATION_APPEND, Some(value)) => Ok(ConfigChange::Append(name, value)),
                (OPERATION_SUBTRACT, Some(value)) => Ok(ConfigChange::Subtract(name, value)),
                (operation, _) => Err(format!(
                    "operation {operation} on {name} is not valid (SET, APPEND and SUBTRACT need a value)"
                )),
            }
        })
        .collect()
}

/// Why a resource's configs can't be altered, if they can't: topics', brokers' and groups' can.
pub fn refusal_of_resource(resource_type: i8) -> Option<(ResponseError, String)> {
    match resource_type {
        RESOURCE_TYPE_TOPIC | RESOURCE_TYPE_BROKER | RESOURCE_TYPE_GROUP => None,
        other => Some((
            ResponseError::InvalidRequest,
            format!(
                "resource type {other} has no configs to alter (topics, brokers and groups do)"
            ),
        )),
    }
}
