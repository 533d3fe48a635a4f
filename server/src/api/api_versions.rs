//! ApiVersions: which APIs and versions this broker serves.
//!
//! A client that asks with a version we don't know gets the version-0 answer with
//! UNSUPPORTED_VERSION and our ranges, so it can retry with one we do (KIP-511).
#![forbid(unsafe_code)]

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};

use super::{
    code, str_bytes, supported_range, RequestContext, RequestError, Response, SUPPORTED_APIS,
};

/// Served but not advertised, as Kafka does without a client-telemetry receiver: a client told
/// of GetTelemetrySubscriptions asks at once on every connection, and an acks=0 producer that
/// closes right after its last send then has an answer arriving at a closed socket, whose reset
/// makes the client's own kernel drop the produce bytes it had not yet sent.
const SERVED_UNADVERTISED: &[ApiKey] = &[ApiKey::GetTelemetrySubscriptions];

fn api_keys() -> Vec<ApiVersion> {
    SUPPORTED_APIS
        .iter()
        .filter(|(key, _, _)| !SERVED_UNADVERTISED.contains(key))
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
    let mut response = ApiVersionsResponse::default()
        .with_error_code(0)
        .with_api_keys(api_keys());
    if request.version >= 3 {
        response = with_features(response);
    }
    Ok(request.frame(&response))
}

/// Feature flags (KIP-584) a single Kafka 4.1 node in KRaft mode reports, limited to what
/// Ringtail serves: `metadata.version` 4.1-IV1 (level 27), `group.version` 1 (KIP-848 consumer
/// groups). `transaction.version` stays at 0, or the Java producer would use the transaction
/// protocol of KIP-890 that Ringtail does not serve. Levels at 0 are not finalized, as in Kafka.
const FEATURES: &[(&str, i16, i16, i16)] = &[
    // (name, lowest supported, highest supported, finalized level)
    ("metadata.version", 7, 27, 27),
    ("kraft.version", 0, 0, 0),
    ("group.version", 0, 1, 1),
    ("transaction.version", 0, 0, 0),
];

/// The epoch of the finalized features: they never change while the broker runs.
const FINALIZED_FEATURES_EPOCH: i64 = 1;

fn with_features(response: ApiVersionsResponse) -> ApiVersionsResponse {
    let supported = FEATURES
        .iter()
        .map(|(name, min, max, _)| {
            SupportedFeatureKey::default()
                .with_name(str_bytes(name))
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect();
    let finalized = FEATURES
        .iter()
        .filter(|(_, _, _, level)| *level > 0)
        .map(|(name, _, _, level)| {
            FinalizedFeatureKey::default()
                .with_name(str_bytes(name))
                .with_min_version_level(*level)
                .with_max_version_level(*level)
        })
        .collect();
    response
        .with_supported_features(supported)
        .with_finalized_features_epoch(FINALIZED_FEATURES_EPOCH)
        .with_finalized_features(finalized)
}

/// The version-0 answer to an ApiVersions request of a version we don't know.
pub fn unsupported_version_answer(correlation_id: i32) -> Response {
    let v0 = RequestContext {
        api: ApiKey::ApiVersions,
        version: 0,
        correlation_id,
        listener: Default::default(),
        identity: crate::acl::Identity::anonymous(std::net::Ipv4Addr::UNSPECIFIED.into()),
    };
    let response = ApiVersionsResponse::default()
        .with_error_code(code(ResponseError::UnsupportedVersion))
        .with_api_keys(api_keys());
    v0.frame(&response)
}
