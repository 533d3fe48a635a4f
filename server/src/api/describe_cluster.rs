//! DescribeCluster (API 60): the one broker, which is also its own controller.
#![forbid(unsafe_code)]

use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::authorized_operations;
use super::{code, error_message, str_bytes, RequestContext, RequestError, Response};
use crate::shard::ShardContext;

/// Kafka's endpoint types (v1+): brokers, or the controllers of the KRaft quorum.
const ENDPOINT_TYPE_BROKER: i8 = 1;

pub async fn handle(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let describe: DescribeClusterRequest = request.decode(body)?;
    let mut response = DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(&context.settings.cluster_id))
        .with_controller_id(BrokerId(context.settings.node_id))
        .with_cluster_authorized_operations(if describe.include_cluster_authorized_operations {
            authorized_operations::cluster(context, &request)
        } else {
            authorized_operations::NOT_REQUESTED
        });
    if request.version >= 1 {
        response = response.with_endpoint_type(ENDPOINT_TYPE_BROKER);
        // A broker's listener answers for brokers only, as Kafka's do; the controller role has
        // no listener of its own here.
        if describe.endpoint_type != ENDPOINT_TYPE_BROKER {
            return Ok(request.frame(
                &response
                    .with_error_code(code(ResponseError::MismatchedEndpointType))
                    .with_error_message(Some(error_message(
                        "this listener serves the broker endpoint type (1)",
                    ))),
            ));
        }
    }
    // The address of the listener the request came in on, as Metadata answers.
    let listener = context.settings.listener(request.listener);
    let broker = DescribeClusterBroker::default()
        .with_broker_id(BrokerId(context.settings.node_id))
        .with_host(str_bytes(&listener.advertised_host))
        .with_port(listener.advertised_port);
    Ok(request.frame(&response.with_brokers(vec![broker])))
}
