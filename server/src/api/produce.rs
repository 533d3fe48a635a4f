//! Produce: validate (CRC-32C) and append each partition's record set on its owner shard, then
//! answer once the flush policy's durability point is reached (acks=1 and acks=-1 alike: with one
//! replica the leader's durability point is the only one there is). acks=0 gets no answer.
#![forbid(unsafe_code)]

use std::rc::Rc;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_channel::oneshot;
use futures_util::future::{join, join_all};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use ringtail_engine::producer::SequenceError;
use ringtail_engine::{AppendError, BatchError};

use super::{
    code, error_message, Operation, ProduceOrder, RequestContext, RequestError, Resource, Response,
};
use crate::metadata::TopicInfo;
use crate::produce_stages::{self, Stage};
use crate::quotas::{Bandwidth, Charge};
use crate::shard::ShardContext;
use crate::txn::registry::has_transactional_records;

/// Produce names topics by id instead of by name from this version (KIP-516, Kafka 4.1).
const FIRST_TOPIC_ID_VERSION: i16 = 13;

/// A produce request may decompress this many bytes per byte of itself to check its records
/// (at least `RECORD_SET_DECOMPRESSED_BYTES_MAX`): more than real data's ratios, far less than a
/// batch of zeros'.
const DECOMPRESSED_PER_REQUEST_BYTE: u64 = 64;

pub async fn handle(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
    order: Option<ProduceOrder>,
    quota: Option<&Charge>,
) -> Result<Response, RequestError> {
    let decode_started = Instant::now();
    // What checking this request's compressed batches may decompress, all partitions together
    // (engine: `begin_append_within`): a small request of batches of zeros must not cost the
    // shards more than this.
    let decompressed_bytes_left = Arc::new(AtomicU64::new(
        (body.len() as u64 * DECOMPRESSED_PER_REQUEST_BYTE)
            .max(ringtail_engine::log::RECORD_SET_DECOMPRESSED_BYTES_MAX as u64),
    ));
    let produce: ProduceRequest = request.decode(body)?;
    produce_stages::record(Stage::Decode, decode_started.elapsed());
    let acks = produce.acks;
    let (previous_queued, queued) = match order {
        Some(order) => (order.previous_queued, Some(order.queued)),
        None => (None, None),
    };
    if let Some(previous) = previous_queued {
        let order_started = Instant::now();
        // Cancelled (the previous handler failed before queueing) counts as done.
        let _ = previous.await;
        produce_stages::record(Stage::OrderWait, order_started.elapsed());
    }
    // Transactional records need WRITE on their transactional id too (Kafka's KafkaApis), so a
    // Produce holding them must name one: without, the whole request is refused, as Kafka does.
    let transactional_records = produce.topic_data.iter().any(|topic| {
        topic.partition_data.iter().any(|partition| {
            partition
                .records
                .as_ref()
                .is_some_and(|records| has_transactional_records(records))
        })
    });
    let transactional_id = produce.transactional_id.as_ref().map(|id| id.to_string());
    let transaction_denied = match &transactional_id {
        None if transactional_records => Some(ResponseError::TransactionalIdAuthorizationFailed),
        None => None,
        Some(id) => {
            let resource = Resource::transactional_id(id);
            (!request.allows(context, Operation::Write, resource))
                .then_some(ResponseError::TransactionalIdAuthorizationFailed)
        }
    };
    let mut names = Vec::with_capacity(produce.topic_data.len());
    let mut appends = Vec::new();
    let mut queued_signals = Vec::new();
    for topic in produce.topic_data {
        // Kafka creates topics on Metadata, not on Produce: an unknown topic is an error here.
        // From v13 the topic is named by its id (KIP-516), and an unknown id is UNKNOWN_TOPIC_ID.
        let (info, unknown) = if request.version >= FIRST_TOPIC_ID_VERSION {
            let info = context.metadata.topic_by_id(topic.topic_id);
            (info, ResponseError::UnknownTopicId)
        } else {
            let info = context.metadata.topic(&topic.name);
            (info, ResponseError::UnknownTopicOrPartition)
        };
        let name = info
            .as_ref()
            .map_or(topic.name.as_str(), |info| info.name.as_str());
        let info = match transaction_denied {
            Some(denied) => Err(denied),
            None if !request.allows(context, Operation::Write, Resource::topic(name)) => {
                Err(ResponseError::TopicAuthorizationFailed)
            }
            // As Kafka ("Cannot append to internal topic"): the coordinators own these topics
            // and replay them at start; a client's records there would be taken as theirs.
            None if crate::metadata::is_internal_topic(name) => {
                Err(ResponseError::InvalidTopicException)
            }
            None => info.ok_or(unknown),
        };
        names.push((topic.name, topic.topic_id, topic.partition_data.len()));
        for partition in topic.partition_data {
            let (signal, signalled) = oneshot::channel();
            queued_signals.push(signalled);
            appends.push(append_partition(
                context,
                (info.clone(), partition.index),
                (partition.records, Arc::clone(&decompressed_bytes_left)),
                (request.version, transactional_id.clone()),
                signal,
            ));
        }
    }
    let all_queued = async move {
        for signalled in queued_signals {
            let _ = signalled.await;
        }
        if let Some(queued) = queued {
            let _ = queued.send(());
        }
    };
    let (mut partitions, ()) = join(join_all(appends), all_queued).await;
    let mut topics = Vec::with_capacity(names.len());
    for (name, topic_id, count) in names {
        let rest = partitions.split_off(count);
        let these = std::mem::replace(&mut partitions, rest);
        // Each version carries either the name (up to v12) or the id (v13+), echoed as asked.
        topics.push(
            TopicProduceResponse::default()
                .with_name(name)
                .with_topic_id(topic_id)
                .with_partition_responses(these),
        );
    }
    // Charged after the appends, as Kafka does; acks=0 gets no answer but the mute still applies.
    let throttle_time_ms = quota.map_or(0, |quota| quota.charge_request(Bandwidth::Produce));
    if acks == 0 {
        // No answer can carry a refusal: as Kafka does, close the connection instead, so the
        // client learns that something it sent was not written (its next send fails).
        let refused = topics
            .iter()
            .flat_map(|topic| &topic.partition_responses)
            .find(|partition| partition.error_code != 0);
        if let Some(partition) = refused {
            tracing::info!(
                error_code = partition.error_code,
                "closing the connection: a produce with acks=0 was refused (as Kafka does)"
            );
            return Err(RequestError::RefusedWithoutAcks {
                error_code: partition.error_code,
            });
        }
        return Ok(Response::Nothing);
    }
    let response = ProduceResponse::default()
        .with_responses(topics)
        .with_throttle_time_ms(throttle_time_ms);
    Ok(request.frame(&response))
}

async fn append_partition(
    context: &Rc<ShardContext>,
    (topic, partition): (Result<Arc<TopicInfo>, ResponseError>, i32),
    (records, decompressed_bytes_left): (Option<Bytes>, Arc<AtomicU64>),
    (version, transactional_id): (i16, Option<String>),
    queued: oneshot::Sender<()>,
) -> PartitionProduceResponse {
    let response = PartitionProduceResponse::default()
        .with_index(partition)
        .with_base_offset(-1)
        .with_log_append_time_ms(-1);
    let topic = match topic {
        Ok(topic) if topic.has_partition(partition) => topic,
        Ok(_) => return response.with_error_code(code(ResponseError::UnknownTopicOrPartition)),
        Err(unknown) => return response.with_error_code(code(unknown)),
    };
    let Some(records) = records.filter(|records| !records.is_empty()) else {
        return response.with_error_code(code(ResponseError::CorruptMessage));
    };
    // The engine writes the record set from these bytes (a slice of the request frame), with only
    // each batch's first 16 bytes copied to carry the assigned offset: no copy of the payload.
    let name = topic.name.clone();
    let hop_started = Instant::now();
    let appended = context
        .on_owner(&name, partition, move |owner| async move {
            produce_stages::record(Stage::Hop, hop_started.elapsed());
            let log = owner
                .partition_log(&topic, partition)
                .await
                .map_err(|err| match err {
                    ringtail_engine::OpenError::Deleted { .. } => Refusal::Deleted,
                    err => Refusal::Storage(err.to_string()),
                })?;
            if let Some(reason) = dir_refuses_produce(&owner, &topic.name, partition) {
                return Err(Refusal::Storage(reason));
            }
            // Checked here, with no await before the append is queued: a transaction marker
            // (appended through this same shard) can't slip between the check and the append.
            owner
                .transactions
                .check_records(
                    &records,
                    (&topic.name, partition),
                    transactional_id.as_deref(),
                )
                .map_err(Refusal::Transaction)?;
            let append_started = Instant::now();
            let pending = log.begin_append_within(records, 0, &decompressed_bytes_left);
            produce_stages::record(Stage::Append, append_started.elapsed());
            let _ = queued.send(());
            let committed_started = Instant::now();
            let appended = pending.map_err(Refusal::Append)?.await;
            if appended.is_err() && log.failed_for_space() {
                note_out_of_space(&owner, &topic.name, partition);
            }
            let outcome = appended.map_err(Refusal::Append)?;
            let committed = committed_started.elapsed();
            let timings = outcome.timings;
            let group_wait = committed.saturating_sub(timings.write + timings.flush);
            produce_stages::record(Stage::GroupWait, group_wait);
            produce_stages::record(Stage::Write, timings.write);
            produce_stages::record(Stage::Flush, timings.flush);
            Ok(outcome)
        })
        .await;
    match appended {
        Ok(Ok(outcome)) if version >= 5 => response
            .with_base_offset(outcome.base_offset.get())
            .with_log_append_time_ms(outcome.log_append_time_ms)
            .with_log_start_offset(outcome.log_start_offset.get()),
        Ok(Ok(outcome)) if version >= 2 => response
            .with_base_offset(outcome.base_offset.get())
            .with_log_append_time_ms(outcome.log_append_time_ms),
        Ok(Ok(outcome)) => response.with_base_offset(outcome.base_offset.get()),
        Ok(Err(err)) => {
            tracing::debug!(topic = %name, partition, %err, "produce refused");
            let error = match &err {
                Refusal::Append(err) => error_for(err),
                Refusal::Storage(_) => ResponseError::KafkaStorageError,
                Refusal::Deleted => ResponseError::UnknownTopicOrPartition,
                Refusal::Transaction(error) => *error,
            };
            let response = response.with_error_code(code(error));
            // Fields a version lacks must stay at their defaults or encoding fails.
            if version >= 8 {
                response
                    .with_record_errors(record_errors(&err, &name, partition))
                    .with_error_message(Some(error_message(&err.to_string())))
            } else {
                response
            }
        }
        Err(_) => response.with_error_code(code(ResponseError::NotLeaderOrFollower)),
    }
}

/// KIP-467's per-record errors (Produce v8+): the keyless records of a batch refused by a
/// compacted log, each by its index in the batch, as Kafka lists them. A client fails those
/// records with INVALID_RECORD and the batch's others with a retriable error of their own.
fn record_errors(err: &Refusal, topic: &str, partition: i32) -> Vec<BatchIndexAndErrorMessage> {
    let Refusal::Append(AppendError::NullKeyInCompactedLog { record_indexes }) = err else {
        return Vec::new();
    };
    let message = format!(
        "Compacted topic cannot accept message without key in topic partition {topic}-{partition}."
    );
    record_indexes
        .iter()
        .map(|&index| {
            BatchIndexAndErrorMessage::default()
                .with_batch_index(index)
                .with_batch_index_error_message(Some(error_message(&message)))
        })
        .collect()
}

/// Why a partition's append did not happen.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error(transparent)]
    Append(AppendError),
    /// The partition's data dir is offline or above its hard watermark: KAFKA_STORAGE_ERROR,
    /// which clients retry (librdkafka and the Java producer alike, until their delivery timeout)
    /// after a metadata refresh, so producing resumes by itself once space is back.
    #[error("{0}")]
    Storage(String),
    /// The topic was deleted after the request looked it up: UNKNOWN_TOPIC_OR_PARTITION, as
    /// Kafka answers for a partition it no longer has.
    #[error("the topic was deleted")]
    Deleted,
    /// A transactional batch outside its producer's ongoing transaction, an old epoch, or a
    /// client's control batch (txn/registry.rs).
    #[error("transaction check: {0:?}")]
    Transaction(ResponseError),
}

/// Why the data dir holding a partition refuses produce now, if it does. Internal writers (the
/// group coordinator's commits) do not ask: they are small and keep consumers working.
fn dir_refuses_produce(owner: &ShardContext, topic: &str, partition: i32) -> Option<String> {
    let data_dirs = owner.engine.data_dirs();
    let index = data_dirs.home_index(topic, partition)?;
    if data_dirs.accepts_produce(index) {
        return None;
    }
    let dir = &data_dirs.dirs()[index];
    Some(format!(
        "data dir {} is {}: {}",
        dir.path().display(),
        dir.state().name(),
        dir.reason().unwrap_or_default()
    ))
}

/// A write of the partition found its disk full: its dir refuses produce from now until the disk
/// monitor sees space again (rather than until the next check).
fn note_out_of_space(owner: &ShardContext, topic: &str, partition: i32) {
    let data_dirs = owner.engine.data_dirs();
    if let Some(index) = data_dirs.home_index(topic, partition) {
        data_dirs.note_out_of_space(
            index,
            &format!("a write to {topic}-{partition} found no space"),
        );
    }
}

/// The Kafka error code for an append failure.
pub fn error_for(err: &AppendError) -> ResponseError {
    match err {
        AppendError::Batch(BatchError::TooLarge { .. }) => ResponseError::MessageTooLarge,
        AppendError::Batch(BatchError::UnsupportedMagic { .. }) => {
            ResponseError::UnsupportedForMessageFormat
        }
        AppendError::Batch(_) | AppendError::UnreadableRecords { .. } => {
            ResponseError::CorruptMessage
        }
        AppendError::NullKeyInCompactedLog { .. } | AppendError::InvalidRecords { .. } => {
            ResponseError::InvalidRecord
        }
        AppendError::InvalidTimestamp { .. } => ResponseError::InvalidTimestamp,
        AppendError::Io(_) | AppendError::LogFailed { .. } => ResponseError::KafkaStorageError,
        AppendError::Closed => ResponseError::NotLeaderOrFollower,
        AppendError::Sequence(SequenceError::OutOfOrder { .. }) => {
            ResponseError::OutOfOrderSequenceNumber
        }
        AppendError::Sequence(SequenceError::StaleEpoch { .. }) => {
            ResponseError::InvalidProducerEpoch
        }
        AppendError::Sequence(SequenceError::TransactionOpen) => ResponseError::InvalidTxnState,
    }
}
