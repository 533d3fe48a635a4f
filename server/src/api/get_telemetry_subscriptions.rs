//! GetTelemetrySubscriptions (API 71, KIP-714): Ringtail collects no client metrics, so it answers
//! with an empty subscription (no metric requested). A client then never pushes (PushTelemetry is
//! not served) and asks again after the push interval. Like Kafka without a client-telemetry
//! receiver, ApiVersions does not advertise the API (see api_versions.rs for why): only a client
//! that asks anyway gets this answer.
#![forbid(unsafe_code)]

use bytes::Bytes;
use kafka_protocol::messages::{
    GetTelemetrySubscriptionsRequest, GetTelemetrySubscriptionsResponse,
};
use uuid::Uuid;

use super::{RequestContext, RequestError, Response};

/// How often a client asks again: Kafka's default `telemetry.push.interval.ms` (5 minutes).
const PUSH_INTERVAL_MS: i32 = 300_000;
/// Kafka's default `telemetry.max.bytes`.
const TELEMETRY_MAX_BYTES: i32 = 1024 * 1024;

pub fn handle(request: RequestContext, body: &mut Bytes) -> Result<Response, RequestError> {
    let subscribe: GetTelemetrySubscriptionsRequest = request.decode(body)?;
    // A client without an instance id yet gets one (KIP-714: the broker assigns it).
    let client_instance_id = if subscribe.client_instance_id.is_nil() {
        Uuid::new_v4()
    } else {
        subscribe.client_instance_id
    };
    let response = GetTelemetrySubscriptionsResponse::default()
        .with_client_instance_id(client_instance_id)
        .with_push_interval_ms(PUSH_INTERVAL_MS)
        .with_telemetry_max_bytes(TELEMETRY_MAX_BYTES)
        .with_delta_temporality(true);
    Ok(request.frame(&response))
}
