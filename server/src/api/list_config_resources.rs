//! ListConfigResources (API 74; v0 was ListClientMetricsResources): the resources that have
//! configs. v1 filters by resource type: topics (every topic), brokers (this one), groups (those
//! with configs set, KIP-848 GROUP resources) and client-metrics subscriptions (Ringtail has none).
//! v0 asks for client-metrics subscriptions only: none.
#![forbid(unsafe_code)]

use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_config_resources_response::ConfigResource;
use kafka_protocol::messages::{ListConfigResourcesRequest, ListConfigResourcesResponse};

use super::{
    code, str_bytes, Operation, RequestContext, RequestError, Resource, Response,
    RESOURCE_TYPE_BROKER, RESOURCE_TYPE_GROUP, RESOURCE_TYPE_TOPIC,
};
use crate::shard::ShardContext;

const RESOURCE_TYPE_CLIENT_METRICS: i8 = 16;
const LISTED: [i8; 4] = [
    RESOURCE_TYPE_TOPIC,
    RESOURCE_TYPE_BROKER,
    RESOURCE_TYPE_CLIENT_METRICS,
    RESOURCE_TYPE_GROUP,
];

pub async fn handle(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let list: ListConfigResourcesRequest = request.decode(body)?;
    let response = ListConfigResourcesResponse::default();
    if !request.allows(context, Operation::DescribeConfigs, Resource::cluster()) {
        let denied = code(ResponseError::ClusterAuthorizationFailed);
        return Ok(request.frame(&response.with_error_code(denied)));
    }
    if request.version == 0 {
        return Ok(request.frame(&response));
    }
    if list
        .resource_types
        .iter()
        .any(|kind| !LISTED.contains(kind))
    {
        return Ok(
            request.frame(&response.with_error_code(code(ResponseError::UnsupportedVersion)))
        );
    }
    let wants = |kind: i8| list.resource_types.is_empty() || list.resource_types.contains(&kind);
    let mut resources = Vec::new();
    if wants(RESOURCE_TYPE_TOPIC) {
        resources.extend(context.metadata.topics().iter().map(|topic| {
            ConfigResource::default()
                .with_resource_name(str_bytes(&topic.name))
                .with_resource_type(RESOURCE_TYPE_TOPIC)
        }));
    }
    if wants(RESOURCE_TYPE_BROKER) {
        resources.push(
            ConfigResource::default()
                .with_resource_name(str_bytes(&context.settings.node_id.to_string()))
                .with_resource_type(RESOURCE_TYPE_BROKER),
        );
    }
    if wants(RESOURCE_TYPE_GROUP) {
        resources.extend(context.metadata.all_group_configs().keys().map(|group| {
            ConfigResource::default()
                .with_resource_name(str_bytes(group))
                .with_resource_type(RESOURCE_TYPE_GROUP)
        }));
    }
    Ok(request.frame(&response.with_config_resources(resources)))
}
