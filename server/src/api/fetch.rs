//! Fetch: read plans from each partition's owner shard, long-polling until min(`min_bytes`,
//! `max_bytes`) arrive (Kafka's fetchMinBytes) or `max_wait_ms` passes, answered with a
//! hand-framed response whose record bytes go from the segment files to the socket by splice
//! (see `fetch_response.rs` and `zero_copy.rs`).
//!
//! Between planning and sending is where a page-cache residency check belongs (a later issue):
//! the plan names each file range before any byte moves, so a cold range can be read ahead
//! off the shard before the splice, instead of blocking the shard in it (KAFKA-7504).
#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_channel::oneshot;
use futures_util::future::{select, select_all, Either};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::FetchRequest;
use ringtail_engine::{FileSlice, Isolation, Offset, ReadError, ReadPlan};

use super::fetch_response::{
    encode_fetch_response, FetchPartitionOut, FetchResponseOut, FetchTopicOut,
};
use super::offset_for_leader_epoch::check_current_epoch;
use super::{code, FetchFrame, Operation, RequestContext, RequestError, Resource, Response};
use crate::metadata::TopicInfo;
use crate::quotas::{Bandwidth, Charge};
use crate::shard::ShardContext;

/// Fetch names topics by id instead of by name from this version (KIP-516).
const FIRST_TOPIC_ID_VERSION: i16 = 13;

/// Kafka's "no offset" (-1), in a failed partition's high watermark and log start offset.
const NO_OFFSET: Offset = Offset::new(-1);

/// Longest long-poll we honour, whatever the client asks.
const MAX_WAIT_MS_CAP: u64 = 60_000;

/// One partition a fetch asks for.
struct Wanted {
    topic_index: usize,
    /// The error for a topic that does not exist (by name or by id, as the version asks).
    unknown: ResponseError,
    info: Option<Arc<TopicInfo>>,
    partition: i32,
    current_leader_epoch: i32,
    fetch_offset: i64,
    partition_max_bytes: u64,
}

/// What one partition's read produced.
struct PartitionRead {
    error: Option<ResponseError>,
    plan: ReadPlan,
    /// Aborted transactions of the planned range, (producer id, first offset): read_committed.
    aborted: Vec<(i64, i64)>,
}

/// Fetch's `isolation_level`: 1 is read_committed (stop at the LSO, name the aborted
/// transactions); anything else reads up to the high watermark, as Kafka treats it.
fn isolation_of(level: i8) -> Isolation {
    if level == 1 {
        Isolation::ReadCommitted
    } else {
        Isolation::ReadUncommitted
    }
}

pub async fn handle(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
    quota: Option<&Charge>,
) -> Result<Response, RequestError> {
    let fetch: FetchRequest = request.decode(body)?;
    let max_wait = Duration::from_millis((fetch.max_wait_ms.max(0) as u64).min(MAX_WAIT_MS_CAP));
    let deadline = Instant::now() + max_wait;
    let min_bytes = fetch.min_bytes.max(0) as u64;
    let max_bytes = response_bytes_max(fetch.max_bytes, context.settings.fetch_max_bytes);
    let isolation = isolation_of(fetch.isolation_level);
    let mut topic_names = Vec::with_capacity(fetch.topics.len());
    let mut wanted = Vec::new();
    // Kafka keeps one entry per partition of a Fetch (its request is a map): a partition named
    // again is answered once. Each copy was planned on its own, and under read_committed listed
    // every aborted transaction of its segment again: a request of kilobytes made a response of
    // tens of megabytes.
    let mut named: HashSet<(uuid::Uuid, &str, i32)> = HashSet::new();
    for (topic_index, topic) in fetch.topics.iter().enumerate() {
        // From v13 topics are named by id (KIP-516); the response echoes the id asked for, and an
        // unknown one is UNKNOWN_TOPIC_ID.
        let (info, unknown) = if request.version >= FIRST_TOPIC_ID_VERSION {
            let info = context.metadata.topic_by_id(topic.topic_id);
            (info, ResponseError::UnknownTopicId)
        } else {
            let info = context.metadata.topic(&topic.topic);
            (info, ResponseError::UnknownTopicOrPartition)
        };
        let name = info
            .as_ref()
            .map_or(topic.topic.as_str(), |info| info.name.as_str());
        let (info, unknown) = if request.allows(context, Operation::Read, Resource::topic(name)) {
            (info, unknown)
        } else {
            (None, ResponseError::TopicAuthorizationFailed)
        };
        let topic_id = match &info {
            Some(info) => *info.topic_id.as_bytes(),
            None => *topic.topic_id.as_bytes(),
        };
        topic_names.push((topic.topic.to_string(), topic_id));
        for partition in &topic.partitions {
            if !named.insert((topic.topic_id, topic.topic.as_str(), partition.partition)) {
                continue;
            }
            wanted.push(Wanted {
                topic_index,
                unknown,
                info: info.clone(),
                partition: partition.partition,
                current_leader_epoch: partition.current_leader_epoch,
                fetch_offset: partition.fetch_offset,
                partition_max_bytes: partition.partition_max_bytes.max(0) as u64,
            });
        }
    }
    let reads = loop {
        let reads = read_all(context, &wanted, max_bytes, isolation).await;
        let total: u64 = reads.iter().map(|read| read.plan.total_bytes()).sum();
        let any_error = reads.iter().any(|read| read.error.is_some());
        // Kafka's fetchMinBytes = min(min_bytes, max_bytes): a min_bytes of 0 (or less) and a
        // max_bytes of 0 (or less) both answer at once, with the data there is (the one batch
        // KIP-74 gives, for max_bytes 0) or empty. A client polling so spins there in Kafka too.
        // A fetch naming no partition has nothing to wait for: answered at once, as in Kafka.
        if total >= min_bytes.min(max_bytes)
            || wanted.is_empty()
            || any_error
            || Instant::now() >= deadline
            || context.shutting_down()
        {
            break reads;
        }
        // Wait for data beyond what this read already saw, so a partition with a little data
        // (less than min_bytes) parks instead of spinning. Under read_committed too: the LSO
        // moves only with a write, and every write moves the high watermark.
        let seen: Vec<i64> = wanted
            .iter()
            .zip(&reads)
            .map(|(item, read)| item.fetch_offset.max(read.plan.high_watermark.get()))
            .collect();
        wait_for_any(context, &wanted, &seen, deadline).await;
        refresh_topics(context, &mut wanted, request.version);
    };
    if let Some(quota) = quota {
        // KIP-219: a fetch over the consumer quota is answered empty, with the throttle time.
        let bytes = reads.iter().map(|read| read.plan.total_bytes()).sum();
        let throttle_time_ms = quota.charge(Bandwidth::Fetch, bytes);
        if throttle_time_ms > 0 {
            return Ok(respond_throttled(request, throttle_time_ms));
        }
    }
    Ok(respond(request, topic_names, &wanted, reads))
}

/// The empty answer to a throttled fetch: no topics, the throttle time (Kafka's
/// `getThrottledResponse`).
fn respond_throttled(request: RequestContext, throttle_time_ms: i32) -> Response {
    let response = FetchResponseOut {
        throttle_time_ms,
        error_code: 0,
        session_id: 0,
        topics: Vec::new(),
    };
    let parts = encode_fetch_response(request.version, request.correlation_id, &response);
    Response::Fetch(FetchFrame {
        parts,
        records: Vec::new(),
    })
}

/// The record bytes a Fetch may answer with: the client's `max_bytes` within the broker's
/// `--fetch-max-bytes`, so the response can never outgrow the i32 frame size the encoder insists
/// on. Zero allows no bytes beyond the first partition's first batch (KIP-74), as Kafka's
/// `fetchMaxBytes` of 0 does; a negative value (which Kafka's log read rejects) is taken as 0.
fn response_bytes_max(client_max_bytes: i32, broker_max_bytes: u32) -> u64 {
    (client_max_bytes.max(0) as u64).min(u64::from(broker_max_bytes))
}

/// Plans every partition's read in request order, within the request's byte budget. The first
/// partition with data gets at least one whole batch even past the budget (KIP-74).
async fn read_all(
    context: &Rc<ShardContext>,
    wanted: &[Wanted],
    max_bytes: u64,
    isolation: Isolation,
) -> Vec<PartitionRead> {
    let mut reads = Vec::with_capacity(wanted.len());
    let mut budget = max_bytes;
    let mut any_data = false;
    for (index, item) in wanted.iter().enumerate() {
        if index % crate::shard::ITEMS_PER_YIELD == crate::shard::ITEMS_PER_YIELD - 1 {
            crate::shard::yield_now().await;
        }
        let limit = item.partition_max_bytes.min(budget);
        let read = read_partition(context, item, limit, !any_data, isolation).await;
        let bytes = read.plan.total_bytes();
        budget = budget.saturating_sub(bytes);
        any_data |= bytes > 0;
        reads.push(read);
    }
    reads
}

async fn read_partition(
    context: &Rc<ShardContext>,
    item: &Wanted,
    limit: u64,
    min_one_batch: bool,
    isolation: Isolation,
) -> PartitionRead {
    let failed = |error| PartitionRead {
        error: Some(error),
        plan: ReadPlan {
            high_watermark: NO_OFFSET,
            log_start_offset: NO_OFFSET,
            last_stable_offset: NO_OFFSET,
            ..ReadPlan::default()
        },
        aborted: Vec::new(),
    };
    let Some(info) = item
        .info
        .clone()
        .filter(|info| info.has_partition(item.partition))
    else {
        let error = if item.info.is_some() {
            ResponseError::UnknownTopicOrPartition
        } else {
            item.unknown
        };
        return failed(error);
    };
    if let Some(error) = check_current_epoch(item.current_leader_epoch) {
        return failed(error);
    }
    let (partition, offset) = (item.partition, item.fetch_offset);
    let name = info.name.clone();
    let result = context
        .on_owner(&name, partition, move |owner| async move {
            let log = match owner.partition_log(&info, partition).await {
                Ok(log) => log,
                // Deleted since the request looked it up: gone, not a failing disk.
                Err(_)
                    if owner
                        .metadata
                        .topic(&info.name)
                        .is_none_or(|current| current.topic_id != info.topic_id) =>
                {
                    return Err((ResponseError::UnknownTopicOrPartition, NO_OFFSET, NO_OFFSET))
                }
                Err(_) => return Err((ResponseError::KafkaStorageError, NO_OFFSET, NO_OFFSET)),
            };
            // A partition max bytes of 0 still gives the first partition with data its first
            // batch, as Kafka's `minOneMessage` does (its log read widens any limit to it).
            match log
                .read_isolated(offset, limit, min_one_batch, isolation)
                .await
            {
                Ok(plan) => {
                    let aborted = aborted_in(&log, &plan, offset, isolation);
                    Ok((plan, aborted))
                }
                Err(ReadError::OffsetOutOfRange {
                    log_start_offset,
                    high_watermark,
                    ..
                }) => Err((
                    ResponseError::OffsetOutOfRange,
                    log_start_offset,
                    high_watermark,
                )),
                Err(err) => {
                    tracing::error!(topic = %info.name, partition, %err, "read failed");
                    Err((ResponseError::KafkaStorageError, NO_OFFSET, NO_OFFSET))
                }
            }
        })
        .await;
    match result {
        Ok(Ok((plan, aborted))) => PartitionRead {
            error: None,
            plan,
            aborted,
        },
        Ok(Err((error, log_start_offset, high_watermark))) => PartitionRead {
            error: Some(error),
            plan: ReadPlan {
                high_watermark,
                log_start_offset,
                last_stable_offset: NO_OFFSET,
                ..ReadPlan::default()
            },
            aborted: Vec::new(),
        },
        Err(_) => failed(ResponseError::NotLeaderOrFollower),
    }
}

/// The aborted transactions a read_committed consumer needs to drop records of the planned
/// range (none for an empty plan or read_uncommitted).
fn aborted_in(
    log: &ringtail_engine::PartitionLog,
    plan: &ReadPlan,
    offset: i64,
    isolation: Isolation,
) -> Vec<(i64, i64)> {
    if isolation != Isolation::ReadCommitted || plan.slices.is_empty() {
        return Vec::new();
    }
    log.aborted_transactions(Offset::new(offset), plan.end_offset_bound)
        .into_iter()
        .map(|entry| (entry.producer_id, entry.first_offset.get()))
        .collect()
}

/// After a wait, reads the topics as they are now: one deleted meanwhile is answered unknown,
/// and one created again under its name is read from its new log when the fetch names topics by
/// name (before v13), as Kafka's delayed fetch reads the partition by name again. The topic seen
/// before the wait has no log left: reading it was a KAFKA_STORAGE_ERROR (kafka-go's TestReader
/// "topic being recreated will return an error").
fn refresh_topics(context: &ShardContext, wanted: &mut [Wanted], version: i16) {
    for item in wanted.iter_mut() {
        // A topic unknown or unauthorized at first stays answered as it was.
        let Some(info) = &item.info else { continue };
        let current = if version >= FIRST_TOPIC_ID_VERSION {
            context.metadata.topic_by_id(info.topic_id)
        } else {
            context.metadata.topic(&info.name)
        };
        if current
            .as_ref()
            .is_none_or(|current| current.topic_id != info.topic_id)
        {
            item.info = current;
        }
    }
}

/// Waits until any wanted partition's high watermark passes what was `seen` of it, or the
/// deadline. The waiters parked on other shards end with this wait: when one partition wakes the
/// fetch, or the fetch is answered, the others are told to stop, so a fetch that wakes again and
/// again does not leave a waiter per partition and wake behind on the owners until its deadline.
async fn wait_for_any(
    context: &Rc<ShardContext>,
    wanted: &[Wanted],
    seen: &[i64],
    deadline: Instant,
) {
    let remaining = deadline.saturating_duration_since(Instant::now());
    let waits: Vec<_> = wanted
        .iter()
        .zip(seen)
        .filter_map(|(item, seen)| {
            let info = item.info.clone()?;
            let (partition, offset) = (item.partition, *seen);
            let name = info.name.clone();
            let context = Rc::clone(context);
            // Dropped with this wait, which ends the owner's waiter.
            let (stay, stop) = oneshot::channel::<()>();
            Some(Box::pin(async move {
                let _stay = stay;
                // Bounded on the owner by the fetch's own deadline (max_wait_ms, at most 60 s).
                let _ = context
                    .on_owner(&name, partition, move |owner| async move {
                        // A lookup, never an open: this wait is dropped when another partition
                        // wakes the fetch, and an open cut half-way could leave a new partition's
                        // directory unsynced. The fetch opened it before waiting; one gone since
                        // (deleted, or moved) ends the wait and the fetch reads again.
                        let topic_partition =
                            ringtail_engine::TopicPartition::new(&info.name, partition);
                        let Some(log) = owner.engine.partition(&topic_partition) else {
                            return;
                        };
                        let data = std::pin::pin!(log.wait_for_data_after(offset));
                        let timeout = std::pin::pin!(compio::time::sleep(remaining));
                        let _ = select(data, select(timeout, stop)).await;
                    })
                    .await;
            }))
        })
        .collect();
    // A shutdown answers the fetch now with what it has, as a deadline would.
    let stopping = std::pin::pin!(context.stop.wait());
    let timeout = std::pin::pin!(compio::time::sleep(remaining));
    let ends = select(timeout, stopping);
    if waits.is_empty() {
        ends.await;
        return;
    }
    let all = select_all(waits);
    if let Either::Left(_) = select(all, ends).await {}
}

fn respond(
    request: RequestContext,
    topic_names: Vec<(String, [u8; 16])>,
    wanted: &[Wanted],
    reads: Vec<PartitionRead>,
) -> Response {
    let mut topics: Vec<FetchTopicOut> = topic_names
        .into_iter()
        .map(|(name, topic_id)| FetchTopicOut {
            name,
            topic_id,
            partitions: Vec::new(),
        })
        .collect();
    let mut records: Vec<Vec<Vec<FileSlice>>> = topics.iter().map(|_| Vec::new()).collect();
    for (item, read) in wanted.iter().zip(reads) {
        let plan = read.plan;
        topics[item.topic_index].partitions.push(FetchPartitionOut {
            partition_index: item.partition,
            error_code: read.error.map_or(0, code),
            high_watermark: plan.high_watermark.get(),
            last_stable_offset: plan.last_stable_offset.get(),
            log_start_offset: plan.log_start_offset.get(),
            aborted_transactions: read.aborted,
            records_bytes: plan.total_bytes(),
        });
        records[item.topic_index].push(plan.slices);
    }
    let response = FetchResponseOut {
        throttle_time_ms: 0,
        error_code: 0,
        session_id: 0,
        topics,
    };
    let parts = encode_fetch_response(request.version, request.correlation_id, &response);
    Response::Fetch(FetchFrame { parts, records })
}

#[cfg(test)]
mod tests {
    use super::response_bytes_max;

    #[test]
    fn the_broker_caps_what_a_client_may_ask() {
        assert_eq!(response_bytes_max(1_000, 52_428_800), 1_000);
        assert_eq!(response_bytes_max(i32::MAX, 52_428_800), 52_428_800);
        // No room asked is no room: the first batch comes from KIP-74, not from the cap.
        assert_eq!(response_bytes_max(0, 52_428_800), 0);
        assert_eq!(response_bytes_max(-1, 52_428_800), 0);
        assert_eq!(response_bytes_max(i32::MIN, 1), 0);
    }
}
