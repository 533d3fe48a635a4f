//! IncrementalAlterConfigs: set or delete topic-level configs (Kafka names). The change is saved in
//! the registry and applied to the topic's open partition logs at once.
#![forbid(unsafe_code)]

use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::{code, str_bytes, RequestContext, RequestError, Response, RESOURCE_TYPE_TOPIC};
use crate::shard::ShardContext;
use crate::topics::{self, ConfigChange};

const OPERATION_SET: i8 = 0;
const OPERATION_DELETE: i8 = 1;

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
        if resource.resource_type != RESOURCE_TYPE_TOPIC {
            responses.push(
                response
                    .with_error_code(code(ResponseError::InvalidRequest))
                    .with_error_message(Some(str_bytes("only topic configs can be altered"))),
            );
            continue;
        }
        let mut changes = Vec::with_capacity(resource.configs.len());
        let mut refused = None;
        for config in &resource.configs {
            match (config.config_operation, &config.value) {
                (OPERATION_SET, Some(value)) => changes.push(ConfigChange::Set(
                    config.name.to_string(),
                    value.to_string(),
                )),
                (OPERATION_DELETE, _) => {
                    changes.push(ConfigChange::Delete(config.name.to_string()))
                }
                _ => {
                    refused = Some(format!(
                        "operation {} on {} is not supported (SET with a value, or DELETE)",
                        config.config_operation,
                        config.name.as_str()
                    ))
                }
            }
        }
        let result = match refused {
            Some(message) => Err((ResponseError::InvalidRequest, message)),
            None => topics::alter_configs(
                context,
                resource.resource_name.to_string(),
                changes,
                alter.validate_only,
            )
            .await
            .map_err(|err| (err.error, err.message)),
        };
        responses.push(match result {
            Ok(()) => response,
            Err((error, message)) => response
                .with_error_code(code(error))
                .with_error_message(Some(str_bytes(&message))),
        });
    }
    Ok(request.frame(&IncrementalAlterConfigsResponse::default().with_responses(responses)))
}
