//! ApiVersions: which APIs and versions this broker serves.
//!
//! A client that asks with a version we don't know gets the version-0 answer with
//! UNSUPPORTED_VERSION and our ranges, so it can retry with one we do (KIP-511).
#![forbid(unsafe_code)]

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};

use super::{code, supported_range, RequestContext, RequestError, Response, SUPPORTED_APIS};

fn api_keys() -> Vec<ApiVersion> {
    SUPPORTED_APIS
        .iter()
        .map(|(key, min, max)| {
            ApiVersion::default()
                .with_api_key(*key as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect()
}

pub fn handle(request: RequestContext, body: &mut Bytes) -> Result<Response, RequestError> {
    let (_, max) = supported_range(ApiKey::ApiVersions).expect("ApiVersions is supported");
    if request.version > max {
        return Ok(unsupported_version_answer(request.correlation_id));
    }
    let _: ApiVersionsRequest = request.decode(body)?;
    let response = ApiVersionsResponse::default()
        .with_error_code(0)
        .with_api_keys(api_keys());
    Ok(request.frame(&response))
}

/// The version-0 answer to an ApiVersions request of a version we don't know.
pub fn unsupported_version_answer(correlation_id: i32) -> Response {
    let v0 = RequestContext {
        api: ApiKey::ApiVersions,
        version: 0,
        correlation_id,
        listener: Default::default(),
    };
    let response = ApiVersionsResponse::default()
        .with_error_code(code(ResponseError::UnsupportedVersion))
        .with_api_keys(api_keys());
    v0.frame(&response)
}
