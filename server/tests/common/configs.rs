//! Config requests shared by the config tests.
#![forbid(unsafe_code)]

use kafka_protocol::messages::*;

use crate::common::client::{str_bytes, Client};

/// The legacy AlterConfigs of one resource (v2): its error code.
pub fn legacy_alter(
    client: &mut Client,
    resource_type: i8,
    resource: &str,
    configs: &[(&str, &str)],
) -> i16 {
    let configs = configs
        .iter()
        .map(|(key, value)| {
            alter_configs_request::AlterableConfig::default()
                .with_name(str_bytes(key))
                .with_value(Some(str_bytes(value)))
        })
        .collect();
    let request = AlterConfigsRequest::default().with_resources(vec![
        alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(str_bytes(resource))
            .with_configs(configs),
    ]);
    let response: AlterConfigsResponse = client.call(ApiKey::AlterConfigs, 2, &request);
    response.responses[0].error_code
}

/// IncrementalAlterConfigs (v1) of one resource with (name, operation, value) changes: the
/// resource's answer.
pub fn incremental_alter(
    client: &mut Client,
    resource_type: i8,
    resource: &str,
    changes: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> incremental_alter_configs_response::AlterConfigsResourceResponse {
    let configs = changes
        .iter()
        .map(|(key, operation, value)| {
            incremental_alter_configs_request::AlterableConfig::default()
                .with_name(str_bytes(key))
                .with_config_operation(*operation)
                .with_value(value.map(str_bytes))
        })
        .collect();
    let request = IncrementalAlterConfigsRequest::default()
        .with_validate_only(validate_only)
        .with_resources(vec![
            incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(str_bytes(resource))
                .with_configs(configs),
        ]);
    let response: IncrementalAlterConfigsResponse =
        client.call(ApiKey::IncrementalAlterConfigs, 1, &request);
    response.responses[0].clone()
}
