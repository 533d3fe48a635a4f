//! InitProducerId: a producer id for idempotent producers; for transactional ones the
//! transaction coordinator's (txn/coordinator.rs), with the epoch that fences older producers.
//!
//! Ids must never repeat across restarts (a reused id would inherit another producer's sequence
//! numbers), so they start from the wall clock in microseconds and count up.
#![forbid(unsafe_code)]

use std::rc::Rc;
use std::sync::atomic::{AtomicI64, Ordering};

use bytes::Bytes;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use kafka_protocol::error::ResponseError;

use super::transactions::on_txn_coordinator;
use super::{code, Operation, RequestContext, RequestError, Resource, Response};
use crate::acl::ResourceType;
use crate::shard::ShardContext;
use crate::txn::marker::TxnProducer;

/// Kafka's check: a transactional id needs WRITE on it; an idempotent producer needs
/// IDEMPOTENT_WRITE on the cluster or WRITE on some topic (KIP-679).
fn denied(
    context: &crate::shard::ShardContext,
    request: &RequestContext,
    transactional_id: Option<&str>,
) -> Option<ResponseError> {
    // An empty transactional id is checked as one (as Kafka), then refused (see `handle`).
    match transactional_id {
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

pub(crate) fn allocate_producer_id() -> i64 {
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

pub async fn handle(
    context: &Rc<ShardContext>,
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
    // Kafka: no id (null) is an idempotent producer, an empty one INVALID_REQUEST
    // (TransactionCoordinator.handleInitProducerId, as the Java client refuses it too).
    if init
        .transactional_id
        .as_ref()
        .is_some_and(|id| id.is_empty())
    {
        let response = InitProducerIdResponse::default()
            .with_error_code(code(ResponseError::InvalidRequest))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        return Ok(request.frame(&response));
    }
    if let Some(transactional_id) = init.transactional_id.as_ref() {
        let transactional_id = transactional_id.to_string();
        let timeout_ms = init.transaction_timeout_ms;
        // KIP-360 (v3+): a producer passes the id and epoch it has, to have its epoch bumped.
        let current =
            (init.producer_id.0 >= 0 && init.producer_epoch >= 0).then_some(TxnProducer {
                producer_id: init.producer_id.0,
                producer_epoch: init.producer_epoch,
            });
        let answer = on_txn_coordinator(context, move |coordinator| async move {
            coordinator
                .init_producer_id(&transactional_id, timeout_ms, current)
                .await
        })
        .await?
        .unwrap_or(Err(ResponseError::CoordinatorNotAvailable));
        let response = match answer {
            Ok(producer) => InitProducerIdResponse::default()
                .with_producer_id(ProducerId(producer.producer_id))
                .with_producer_epoch(producer.producer_epoch),
            Err(error) => InitProducerIdResponse::default()
                .with_error_code(code(fenced_for_version(error, request.version)))
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        };
        return Ok(request.frame(&response));
    }
    // Without a transactional id Kafka always grants a new id at epoch 0, whatever id and epoch
    // the request names (TransactionCoordinator.handleInitProducerId): nothing proves the
    // caller holds the named id, and bumping its epoch would fence another client's producer.
    // An idempotent producer that must bump its epoch does it itself (KIP-360).
    let (producer_id, producer_epoch) = (allocate_producer_id(), 0);
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(producer_epoch);
    Ok(request.frame(&response))
}

/// PRODUCER_FENCED exists from InitProducerId v4 (Kafka 2.7, KIP-588); older clients know
/// INVALID_PRODUCER_EPOCH, which Kafka answers them instead.
fn fenced_for_version(error: ResponseError, version: i16) -> ResponseError {
    if error == ResponseError::ProducerFenced && version < 4 {
        ResponseError::InvalidProducerEpoch
    } else {
        error
    }
}
