//! DescribeClientQuotas: Ringtail has no client quotas, so every filter matches nothing.
//!
//! Answered (rather than refused) because `kafka-configs --describe --entity-type users` asks for
//! quotas beside the SCRAM credentials, and would fail on an unsupported API.
#![forbid(unsafe_code)]

use bytes::Bytes;
use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};

use super::{RequestContext, RequestError, Response};

pub fn describe(request: RequestContext, body: &mut Bytes) -> Result<Response, RequestError> {
    let _: DescribeClientQuotasRequest = request.decode(body)?;
    let response = DescribeClientQuotasResponse::default().with_entries(Some(Vec::new()));
    Ok(request.frame(&response))
}
