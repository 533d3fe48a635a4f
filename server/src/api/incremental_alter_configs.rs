//! IncrementalAlterConfigs: set, delete, append to or subtract from topic configs (Kafka names;
//! APPEND and SUBTRACT on LIST configs such as `cleanup.policy`). The change is saved in the
//! registry and applied to the topic's open partition logs at once. Broker configs are flags,
//! fixed at start: altering them is refused, except deleting the dynamic replication throttles
//! (see [`only_throttle_deletes`]).
#![forbid(unsafe_code)]

use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::{
    code, config_denied, str_bytes, Operation, RequestContext, RequestError, Response,
    RESOURCE_TYPE_BROKER, RESOURCE_TYPE_TOPIC,
};
use crate::shard::ShardContext;
use crate::topics::{self, ConfigChange};

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
        let authorized = denied.is_none();
        let result = match denied.or_else(|| refusal_of_resource(resource.resource_type)) {
            // Kafka's tools delete replication throttles on the broker (kafka-reassign-partitions
            // --verify); Ringtail never holds them, so that is done.
            Some(_)
                if authorized
                    && resource.resource_type == RESOURCE_TYPE_BROKER
                    && only_throttle_deletes(&resource.configs) =>
            {
                Ok(())
            }
            Some(refused) => Err(refused),
            None => match changes_of(&resource.configs) {
                Ok(changes) => topics::alter_configs(
                    context,
                    resource.resource_name.to_string(),
                    changes,
                    alter.validate_only,
                )
                .await
                .map_err(|err| (err.error, err.message)),
                Err(message) => Err((ResponseError::InvalidRequest, message)),
            },
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

/// Kafka's dynamic broker configs for replication throttles; `kafka-reassign-partitions --verify`
/// deletes them on every broker once a reassignment is done.
const THROTTLE_CONFIGS: [&str; 3] = [
    "leader.replication.throttled.rate",
    "follower.replication.throttled.rate",
    "replica.alter.log.dirs.io.max.bytes.per.second",
];

/// Whether every operation deletes a replication throttle: a dynamic override Ringtail never
/// holds, so deleting it leaves the broker as it is (the start-up value, e.g.
/// `--move-bytes-per-sec`), which is what the tool asks. Answered as done, as Kafka answers.
fn only_throttle_deletes(configs: &[AlterableConfig]) -> bool {
    !configs.is_empty()
        && configs.iter().all(|config| {
            config.config_operation == OPERATION_DELETE
                && THROTTLE_CONFIGS.contains(&config.name.as_str())
        })
}

/// Why a resource's configs can't be altered, if they can't: only topics' can.
pub fn refusal_of_resource(resource_type: i8) -> Option<(ResponseError, String)> {
    match resource_type {
        RESOURCE_TYPE_TOPIC => None,
        RESOURCE_TYPE_BROKER => Some((
            ResponseError::InvalidConfig,
            "broker configs are read-only: Ringtail's are flags, set at start".to_string(),
        )),
        other => Some((
            ResponseError::InvalidRequest,
            format!("resource type {other} has no configs to alter (topics do)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(name: &str, operation: i8) -> AlterableConfig {
        AlterableConfig::default()
            .with_name(str_bytes(name))
            .with_config_operation(operation)
    }

    #[test]
    fn only_deleting_throttles_passes_on_a_broker() {
        // What kafka-reassign-partitions --verify sends passes; any other broker change, or a
        // throttle set rather than deleted, is still refused.
        let verify: Vec<_> = THROTTLE_CONFIGS
            .iter()
            .map(|name| op(name, OPERATION_DELETE))
            .collect();
        assert!(only_throttle_deletes(&verify));
        assert!(!only_throttle_deletes(&[]));
        assert!(!only_throttle_deletes(&[op(
            "leader.replication.throttled.rate",
            OPERATION_SET
        )]));
        assert!(!only_throttle_deletes(&[
            op("leader.replication.throttled.rate", OPERATION_DELETE),
            op("log.retention.ms", OPERATION_DELETE),
        ]));
    }
}
