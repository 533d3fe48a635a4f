//! DescribeClientQuotas: Ringtail has no client quotas, so every filter matches nothing.
//!
//! Answered (rather than refused) because `kafka-configs --describe --entity-type users` asks for
//! quotas beside the SCRAM credentials, and would fail on an unsupported API.
#![forbid(unsafe_code)]

use bytes::Bytes;
use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};

use super::{code, Operation, RequestContext, RequestError, Resource, Response};
use crate::shard::ShardContext;

pub fn describe(
    context: &ShardContext,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let _: DescribeClientQuotasRequest = request.decode(body)?;
    if !request.allows(context, Operation::DescribeConfigs, Resource::cluster()) {
        let denied = code(kafka_protocol::error::ResponseError::ClusterAuthorizationFailed);
        let response = DescribeClientQuotasResponse::default().with_error_code(denied);
        return Ok(request.frame(&response));
    }
    let response = DescribeClientQuotasResponse::default().with_entries(Some(Vec::new()));
    Ok(request.frame(&response))
}
