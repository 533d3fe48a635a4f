//! The first half of an append: validation, the sequence check, offsets assigned in place, the
//! record set queued for the writer.
#![forbid(unsafe_code)]

use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_channel::oneshot;

use super::state::{LogState, PartitionLog, PendingAppend};
use super::types::{AppendOutcome, AppendTimings, PendingAppendOutcome};
use crate::batch::{self, BatchHeader, Strictness};
use crate::config::FlushPolicy;
use crate::error::AppendError;
use crate::ingest::{ingest, Ingested};
use crate::producer::{ProducerBatch, ProducerStateTable, SequenceCheck, SequenceError};
use crate::txn::ControlMarker;

/// Bytes at the start of a batch that hold the broker-assigned fields (base offset, batch length,
/// partition leader epoch); the rest of the batch is written from the producer's buffer.
pub(super) const PATCHED_PREFIX_BYTES: usize = batch::LEADER_EPOCH_OFFSET + 4;

impl PartitionLog {
    /// Appends a record set (one or more producer batches back to back) and returns once the flush
    /// policy's durability point is reached. Offsets and the leader epoch are written in place.
    pub async fn append(
        self: &Rc<Self>,
        records: impl Into<Bytes>,
        leader_epoch: i32,
    ) -> Result<AppendOutcome, AppendError> {
        self.begin_append(records, leader_epoch)?.await
    }

    /// The first half of [`PartitionLog::append`], done before it returns: validation, sequence
    /// check, offsets, queueing. Record sets begun in some order get offsets in that order, which
    /// is how the broker keeps a connection's pipelined produce requests in order. The returned
    /// future resolves at the durability point.
    pub fn begin_append(
        self: &Rc<Self>,
        records: impl Into<Bytes>,
        leader_epoch: i32,
    ) -> Result<PendingAppendOutcome, AppendError> {
        self.begin_append_within(records, leader_epoch, &AtomicU64::new(u64::MAX))
    }

    /// [`Self::begin_append`], the record check decompressing at most what
    /// `decompressed_bytes_left` allows, which it counts down: several appends (a produce
    /// request's partitions, on several shards) may share one allowance.
    pub fn begin_append_within(
        self: &Rc<Self>,
        records: impl Into<Bytes>,
        leader_epoch: i32,
        decompressed_bytes_left: &AtomicU64,
    ) -> Result<PendingAppendOutcome, AppendError> {
        let records: Bytes = records.into();
        let (rules, compacts) = {
            let state = self.state.borrow();
            (state.config.ingest_rules(), state.config.compacts())
        };
        let headers = batch::validate_all(&records, rules.batch_bytes_max, Strictness::Producer)?;
        check_records(&records, &headers, decompressed_bytes_left)?;
        // Timestamp bounds, LogAppendTime stamping, recompression: a no-op under the defaults.
        let Ingested { records, headers } =
            ingest(records, headers, &rules, crate::clock::now_ms())?;
        if compacts {
            // Only compacted logs pay for reading records (decompressing) on append.
            crate::cleaner::check_keys(&records, &headers)?;
        }
        // Transaction markers are read now, so a garbled one is refused before it gets offsets.
        let markers = crate::txn::markers_of(&records, &headers)?;
        let mut state = self.state.borrow_mut();
        if let Some(reason) = &state.failure {
            return Err(AppendError::LogFailed {
                reason: reason.clone(),
            });
        }
        if state.closed {
            return Err(AppendError::Closed);
        }
        if let Some(duplicate) = check_sequences(&state.producers, &headers)? {
            drop(state);
            let log = Rc::clone(self);
            return Ok(Box::pin(
                async move { log.answer_duplicate(duplicate).await },
            ));
        }
        let receiver = self.enqueue(&mut state, records, headers, &markers, leader_epoch);
        Ok(Box::pin(async move {
            receiver.await.unwrap_or(Err(AppendError::Closed))
        }))
    }

    /// Assigns offsets in place, records producer sequences and queues the record set for the
    /// writer (starting it if idle). Runs under the caller's borrow: nothing here awaits.
    pub(crate) fn enqueue(
        self: &Rc<Self>,
        state: &mut LogState,
        records: Bytes,
        mut headers: Vec<BatchHeader>,
        markers: &[Option<ControlMarker>],
        leader_epoch: i32,
    ) -> oneshot::Receiver<Result<AppendOutcome, AppendError>> {
        assert!(
            !state.closed && state.failure.is_none(),
            "checked by the caller"
        );
        {
            let mut position = 0usize;
            let mut iovecs = Vec::with_capacity(headers.len() * 2);
            assert_eq!(markers.len(), headers.len(), "one marker slot per batch");
            for (header, marker) in headers.iter_mut().zip(markers) {
                header.base_offset = state.next_offset;
                if let Some(marker) = marker {
                    state.pending_markers.insert(header.base_offset, *marker);
                }
                header.partition_leader_epoch = leader_epoch;
                // The broker's two fields lie in the first bytes, outside the CRC: write them into
                // a small copy of those bytes and send the producer's rest as it is.
                let end = position + header.total_bytes();
                let mut prefix = records[position..position + PATCHED_PREFIX_BYTES].to_vec();
                batch::set_base_offset_in_prefix(&mut prefix, header.base_offset);
                batch::set_partition_leader_epoch_in_prefix(&mut prefix, leader_epoch);
                iovecs.push(Bytes::from(prefix));
                iovecs.push(records.slice(position + PATCHED_PREFIX_BYTES..end));
                state.next_offset = header.next_offset();
                state.producers.record(header);
                position = end;
            }
            let (reply, receiver) = oneshot::channel();
            state.pending.push(PendingAppend {
                records: iovecs,
                headers,
                reply,
            });
            if !state.writer_active {
                state.writer_active = true;
                compio::runtime::spawn(Rc::clone(self).run_writer()).detach();
            }
            receiver
        }
    }

    /// A retried batch that is already in the log: answer with its offsets once it is as durable
    /// as a fresh append would be.
    pub(crate) async fn answer_duplicate(
        &self,
        duplicate: ProducerBatch,
    ) -> Result<AppendOutcome, AppendError> {
        loop {
            let (reached, end) = {
                let state = self.state.borrow();
                if let Some(reason) = &state.failure {
                    return Err(AppendError::LogFailed {
                        reason: reason.clone(),
                    });
                }
                let end = match state.config.flush {
                    FlushPolicy::EveryBatch => state.durable_offset,
                    FlushPolicy::None | FlushPolicy::IntervalMs(_) => state.high_watermark,
                };
                (end > duplicate.last_offset, end)
            };
            if reached {
                return Ok(AppendOutcome {
                    base_offset: duplicate.base_offset,
                    last_offset: duplicate.last_offset,
                    log_start_offset: self.log_start_offset(),
                    // A retry's answer: the stamp of the original is not kept (Kafka's is -1 too
                    // when it answers a duplicate from its producer state).
                    log_append_time_ms: -1,
                    timings: AppendTimings::default(),
                });
            }
            // Woken by writes and by syncs; re-check what is reached each time.
            self.wait_for_data_after(end.min(self.high_watermark()))
                .await;
        }
    }
}

/// Checks each producer batch of a record set. `Some` when the set is one batch already in the
/// log (a retry).
pub(super) fn check_sequences(
    producers: &ProducerStateTable,
    headers: &[BatchHeader],
) -> Result<Option<ProducerBatch>, AppendError> {
    for header in headers {
        match producers.check(header)? {
            SequenceCheck::Append => {}
            SequenceCheck::Duplicate(batch) if headers.len() == 1 => return Ok(Some(batch)),
            // Produce v3+ carries one batch per partition; a partial retry of several is refused.
            SequenceCheck::Duplicate(batch) => {
                return Err(SequenceError::OutOfOrder {
                    expected: batch.last_sequence.wrapping_add(1),
                    got: header.base_sequence,
                }
                .into())
            }
        }
    }
    Ok(None)
}

/// Decompressed bytes one record set may make an append read ([`check_records`]): four batches
/// of the largest a batch may decompress to. The check runs on the shard thread, before the
/// append is queued; this bounds what one partition of one request can make it do (a batch of
/// zeros compresses some thousandfold, so a small request could otherwise hold the shard for
/// seconds). Kafka's producers send at most 1 MiB per request by default.
pub const RECORD_SET_DECOMPRESSED_BYTES_MAX: usize = 4 * crate::compression::DECOMPRESSED_BYTES_MAX;

/// Every batch of a producer's record set holds what its header says (`cleaner::check_records`),
/// decompressing at most [`RECORD_SET_DECOMPRESSED_BYTES_MAX`] and what `decompressed_bytes_left`
/// allows (counted down).
fn check_records(
    records: &[u8],
    headers: &[batch::BatchHeader],
    decompressed_bytes_left: &AtomicU64,
) -> Result<(), AppendError> {
    let mut position = 0usize;
    let mut decompressed_bytes = 0usize;
    for header in headers {
        let bytes = &records[position..position + header.total_bytes()];
        position += header.total_bytes();
        let batch_bytes = crate::cleaner::check_records(bytes, header).map_err(|err| {
            AppendError::InvalidRecords {
                reason: err.to_string(),
            }
        })?;
        decompressed_bytes += batch_bytes;
        if decompressed_bytes_left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(batch_bytes as u64)
            })
            .is_err()
        {
            return Err(AppendError::InvalidRecords {
                reason: "the request's record sets decompress to more than it may".to_string(),
            });
        }
        if decompressed_bytes > RECORD_SET_DECOMPRESSED_BYTES_MAX {
            return Err(AppendError::InvalidRecords {
                reason: format!(
                    "the record set decompresses to more than {RECORD_SET_DECOMPRESSED_BYTES_MAX} bytes"
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Compression;
    use crate::batch::{encode_batch, ProducerSpec, RecordSpec};
    use crate::compression::Framing;

    #[test]
    fn a_record_set_may_decompress_to_a_bounded_size() {
        // One record of 60 MiB of zeros: a few KiB compressed.
        let zeros = vec![0u8; 60 << 20];
        let record = RecordSpec {
            key: None,
            value: Some(&zeros),
            timestamp_delta: 0,
        };
        let plain = encode_batch(1_000, &[record], ProducerSpec::default());
        let bomb =
            crate::cleaner::compress_batch(&plain, Compression::Zstd, Framing::Standard).unwrap();
        assert!(bomb.len() < 64 << 10, "{}", bomb.len());
        let fits = RECORD_SET_DECOMPRESSED_BYTES_MAX / (60 << 20);
        let record_set = |batches: usize| bomb.repeat(batches);
        let headers = |records: &[u8]| {
            batch::validate_all(records, 1 << 20, batch::Strictness::Producer).unwrap()
        };
        let within = record_set(fits);
        let unlimited = AtomicU64::new(u64::MAX);
        check_records(&within, &headers(&within), &unlimited).unwrap();
        let over = record_set(fits + 1);
        assert!(matches!(
            check_records(&over, &headers(&over), &unlimited),
            Err(AppendError::InvalidRecords { .. })
        ));
        // Record sets sharing an allowance (a request's partitions) count it down together.
        let one = record_set(1);
        let shared = AtomicU64::new(2 * (61 << 20));
        check_records(&one, &headers(&one), &shared).unwrap();
        check_records(&one, &headers(&one), &shared).unwrap();
        assert!(matches!(
            check_records(&one, &headers(&one), &shared),
            Err(AppendError::InvalidRecords { .. })
        ));
    }
}
