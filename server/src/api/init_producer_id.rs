//! InitProducerId: a producer id for idempotent producers; transactional ones are refused.
//!
//! Ids must never repeat across restarts (a reused id would inherit another producer's sequence
//! numbers), so they start from the wall clock in microseconds and count up.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicI64, Ordering};

use bytes::Bytes;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use kafka_protocol::error::ResponseError;

use super::{code, Operation, RequestContext, RequestError, Resource, Response};
use crate::acl::ResourceType;

/// Kafka's check: a transactional id needs WRITE on it; an idempotent producer needs
/// IDEMPOTENT_WRITE on the cluster or WRITE on some topic (KIP-679).
fn denied(
    context: &crate::shard::ShardContext,
    request: &RequestContext,
    transactional_id: Option<&str>,
) -> Option<ResponseError> {
    match transactional_id.filter(|id| !id.is_empty()) {
        Some(id) => (!request.allows(context, Operation::Write, Resource::transactional_id(id)))
            .then_some(ResponseError::TransactionalIdAuthorizationFailed),
        None => {
            let allowed = request.can(context, Operation::IdempotentWrite, Resource::cluster())
                || context
                    .acl
                    .allows_any(&request.identity, Operation::Write, ResourceType::Topic);
            (!allowed).then_some(ResponseError::ClusterAuthorizationFailed)
        }
    }
}

static NEXT_PRODUCER_ID: AtomicI64 = AtomicI64::new(0);

fn allocate_producer_id() -> i64 {
    let floor = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |elapsed| elapsed.as_micros() as i64);
    let previous = NEXT_PRODUCER_ID
        .fetch_max(floor, Ordering::Relaxed)
        .max(floor);
    NEXT_PRODUCER_ID
        .fetch_add(1, Ordering::Relaxed)
        .max(previous)
        + 1
}

pub fn handle(
    context: &crate::shard::ShardContext,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let init: InitProducerIdRequest = request.decode(body)?;
    if let Some(denied) = denied(
        context,
        &request,
        init.transactional_id.as_ref().map(|id| id.as_str()),
    ) {
        let response = InitProducerIdResponse::default()
            .with_error_code(code(denied))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        return Ok(request.frame(&response));
    }
    // Kafka treats an empty id as no id at all.
    if init
        .transactional_id
        .as_ref()
        .is_some_and(|id| !id.is_empty())
    {
        // No transactions yet (AddPartitionsToTxn, EndTxn, … are not served). Kafka answers
        // COORDINATOR_NOT_AVAILABLE while its transaction log cannot be made, which clients
        // retry until their own timeout (librdkafka's init_transactions sat 30-60 s);
        // TRANSACTIONAL_ID_AUTHORIZATION_FAILED is what Kafka answers a producer that may not
        // use transactions, and librdkafka and the Java client stop on it at once (fatal).
        let response = InitProducerIdResponse::default()
            .with_error_code(code(ResponseError::TransactionalIdAuthorizationFailed))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        return Ok(request.frame(&response));
    }
    // A producer that already has an id (KIP-360 v3+) keeps it with a bumped epoch.
    let (producer_id, producer_epoch) =
        if init.producer_id.0 >= 0 && init.producer_epoch >= 0 && init.producer_epoch < i16::MAX {
            (init.producer_id.0, init.producer_epoch + 1)
        } else {
            (allocate_producer_id(), 0)
        };
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(producer_epoch);
    Ok(request.frame(&response))
}
