//! Idempotent producers through the log: retries land once, across clean and crashed restarts.
#![forbid(unsafe_code)]

mod common;

use std::path::Path;

use common::*;
use ringtail_engine::batch::{encode_batch, ProducerSpec, RecordSpec};
use ringtail_engine::producer::SequenceError;
use ringtail_engine::{AppendError, FlushPolicy, LogConfig, PartitionLog};

fn producer_batch(producer_id: i64, epoch: i16, base_sequence: i32, records: usize) -> Vec<u8> {
    let value = format!("p{producer_id}s{base_sequence}");
    let specs = vec![
        RecordSpec {
            key: None,
            value: Some(value.as_bytes()),
            timestamp_delta: 0
        };
        records
    ];
    encode_batch(
        1_000,
        &specs,
        ProducerSpec {
            producer_id,
            producer_epoch: epoch,
            base_sequence,
        },
    )
}

fn config() -> LogConfig {
    LogConfig {
        flush: FlushPolicy::EveryBatch,
        ..small_config(1024, 256)
    }
}

/// Appends batches 0..count of producer 42 (3 records each), returns the end offset.
async fn append_sequence(log: &std::rc::Rc<PartitionLog>, from_batch: i32, count: i32) -> i64 {
    let mut end = 0;
    for batch in from_batch..from_batch + count {
        let outcome = log
            .append(bytes_mut(&producer_batch(42, 0, batch * 3, 3)), 0)
            .await
            .unwrap();
        end = outcome.last_offset.get() + 1;
    }
    end
}

#[test]
fn a_retried_batch_is_answered_with_its_first_offsets_and_not_written_again() {
    // The core of idempotence: the same (producer, epoch, sequence) twice is one write.
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), config()).await.unwrap();
        let first = log
            .append(bytes_mut(&producer_batch(42, 0, 0, 3)), 0)
            .await
            .unwrap();
        let retry = log
            .append(bytes_mut(&producer_batch(42, 0, 0, 3)), 0)
            .await
            .unwrap();
        // Same offsets; the timings differ (the retry was answered without a write).
        assert_eq!(
            (retry.base_offset, retry.last_offset, retry.log_start_offset),
            (first.base_offset, first.last_offset, first.log_start_offset)
        );
        assert_eq!(retry.timings, ringtail_engine::AppendTimings::default());
        assert_eq!(log.high_watermark().get(), 3);
        let gap = log
            .append(bytes_mut(&producer_batch(42, 0, 7, 1)), 0)
            .await
            .unwrap_err();
        assert!(matches!(
            gap,
            AppendError::Sequence(SequenceError::OutOfOrder {
                expected: 3,
                got: 7
            })
        ));
        let fenced = log
            .append(bytes_mut(&producer_batch(42, 1, 0, 1)), 0)
            .await
            .unwrap();
        assert_eq!(
            fenced.base_offset.get(),
            3,
            "a new epoch starts at sequence 0"
        );
        let stale = log
            .append(bytes_mut(&producer_batch(42, 0, 3, 1)), 0)
            .await
            .unwrap_err();
        assert!(matches!(
            stale,
            AppendError::Sequence(SequenceError::StaleEpoch { .. })
        ));
    });
}

fn check_retry_after_restart(dir: &Path, crash: bool) {
    let end = block_on(async {
        let (log, _) = PartitionLog::open(dir, config()).await.unwrap();
        let end = append_sequence(&log, 0, 40).await;
        assert!(
            log.segment_count() > 2,
            "the test should cross rolls (and snapshots)"
        );
        if !crash {
            log.close().await.unwrap();
        }
        end
    });
    if crash {
        // As if killed: no clean-shutdown marker (the appends above were fsynced).
        let _ = std::fs::remove_file(dir.join(ringtail_engine::log::CLEAN_SHUTDOWN_FILE_NAME));
    }
    block_on(async {
        let (log, _) = PartitionLog::open(dir, config()).await.unwrap();
        assert_eq!(log.high_watermark().get(), end);
        // Each of the 4 batches before the last (the 5 remembered span a roll's snapshot and
        // the batches replayed after it), retried after the restart: duplicates.
        for batch in 35..39 {
            let retry = log
                .append(bytes_mut(&producer_batch(42, 0, batch * 3, 3)), 0)
                .await
                .unwrap_or_else(|err| panic!("retry of batch {batch}: {err}"));
            assert_eq!(retry.base_offset.get(), i64::from(batch) * 3);
        }
        // The last batch, retried after the restart: a duplicate, not a second copy.
        let retry = log
            .append(bytes_mut(&producer_batch(42, 0, 39 * 3, 3)), 0)
            .await
            .unwrap();
        assert_eq!(retry.base_offset.get(), end - 3);
        assert_eq!(log.high_watermark().get(), end);
        // The next batch follows on.
        let next = log
            .append(bytes_mut(&producer_batch(42, 0, 40 * 3, 3)), 0)
            .await
            .unwrap();
        assert_eq!(next.base_offset.get(), end);
    });
}

#[test]
fn producer_state_survives_a_clean_restart() {
    // From the snapshot written at close.
    let dir = tempfile::tempdir().unwrap();
    check_retry_after_restart(dir.path(), false);
}

#[test]
fn producer_state_survives_a_crash() {
    // From the snapshot of the last roll plus the batches recovery scans after it.
    let dir = tempfile::tempdir().unwrap();
    check_retry_after_restart(dir.path(), true);
}

fn snapshots(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "snapshot"))
        .collect();
    found.sort();
    found
}

#[test]
fn producer_state_survives_a_crash_between_a_roll_and_its_snapshot() {
    // A roll seals the segment, creates the next one, then writes the producer snapshot. Killed
    // in between, the log reopens with the older snapshot, the just-sealed segment checked only
    // from its last index entry (it was fsynced): the producer batches before that entry were
    // never put back in the table, so a retry of one of the last 5 batches was refused as out of
    // order (or, for a producer left with none, written a second time).
    let dir = tempfile::tempdir().unwrap();
    let end = block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), config()).await.unwrap();
        let end = append_sequence(&log, 0, 40).await;
        let before = snapshots(dir.path());
        assert_eq!(before.len(), 1, "the last automatic roll's snapshot");
        let kept = std::fs::read(&before[0]).unwrap();
        assert!(log.roll_now().await.unwrap());
        // As if killed after the new segment was created, before its snapshot replaced the old.
        for snapshot in snapshots(dir.path()) {
            std::fs::remove_file(snapshot).unwrap();
        }
        std::fs::write(&before[0], kept).unwrap();
        end
    });
    let _ = std::fs::remove_file(
        dir.path()
            .join(ringtail_engine::log::CLEAN_SHUTDOWN_FILE_NAME),
    );
    block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), config()).await.unwrap();
        assert_eq!(log.high_watermark().get(), end);
        for batch in 35..40 {
            let retry = log
                .append(bytes_mut(&producer_batch(42, 0, batch * 3, 3)), 0)
                .await
                .unwrap_or_else(|err| panic!("retry of batch {batch}: {err}"));
            assert_eq!(
                retry.base_offset.get(),
                i64::from(batch) * 3,
                "batch {batch}"
            );
        }
        assert_eq!(log.high_watermark().get(), end, "no retry written again");
    });
}

/// Appends `bytes` and returns the sequence error it was refused with, if any.
async fn sequence_error(log: &std::rc::Rc<PartitionLog>, bytes: &[u8]) -> Option<SequenceError> {
    match log.append(bytes_mut(bytes), 0).await {
        Ok(_) => None,
        Err(AppendError::Sequence(error)) => Some(error),
        Err(other) => panic!("unexpected append error: {other}"),
    }
}

#[test]
fn a_marker_at_a_newer_epoch_fences_the_older_epoch_across_restarts() {
    // Kafka's ProducerAppendInfo.appendEndTxnMarker moves the partition's producer epoch to the
    // marker's: once the coordinator fenced a producer (its abort marker carries the bumped
    // epoch), a zombie's batch at the old epoch is INVALID_PRODUCER_EPOCH, transactional or not,
    // and the new epoch starts at sequence 0. The marker's epoch used to be ignored.
    use ringtail_engine::txn::encode::{control_batch, transactional_batch};
    use ringtail_engine::txn::ControlMarker;
    let dir = tempfile::tempdir().unwrap();
    let record = RecordSpec {
        key: None,
        value: Some(b"v"),
        timestamp_delta: 0,
    };
    let spec = |epoch, base_sequence| ProducerSpec {
        producer_id: 9,
        producer_epoch: epoch,
        base_sequence,
    };
    block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), config()).await.unwrap();
        let data = transactional_batch(1_000, &[record], spec(0, 0));
        assert_eq!(sequence_error(&log, &data).await, None);
        let abort = control_batch(1_000, 9, 1, ControlMarker::Abort, 0);
        assert_eq!(sequence_error(&log, &abort).await, None);
        // A marker for a producer this partition never saw also sets its epoch.
        let other = control_batch(1_000, 10, 3, ControlMarker::Commit, 0);
        assert_eq!(sequence_error(&log, &other).await, None);
        log.close().await.unwrap();
    });
    block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), config()).await.unwrap();
        assert_eq!(
            sequence_error(&log, &producer_batch(9, 0, 1, 1)).await,
            Some(SequenceError::StaleEpoch { current: 1, got: 0 }),
            "the zombie's idempotent batch after a clean restart"
        );
        assert_eq!(
            sequence_error(&log, &producer_batch(10, 2, 0, 1)).await,
            Some(SequenceError::StaleEpoch { current: 3, got: 2 })
        );
        assert_eq!(
            sequence_error(&log, &producer_batch(9, 1, 4, 1)).await,
            Some(SequenceError::OutOfOrder {
                expected: 0,
                got: 4
            }),
            "the marker's epoch starts at sequence 0"
        );
        assert_eq!(
            sequence_error(&log, &producer_batch(9, 1, 0, 1)).await,
            None
        );
    });
    // After a crash the marker is replayed from the log past the snapshot.
    block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), config()).await.unwrap();
        let abort = control_batch(1_000, 9, 2, ControlMarker::Abort, 0);
        assert_eq!(sequence_error(&log, &abort).await, None);
        // Not closed: as if killed (the marker was fsynced, no snapshot holds it).
    });
    let _ = std::fs::remove_file(
        dir.path()
            .join(ringtail_engine::log::CLEAN_SHUTDOWN_FILE_NAME),
    );
    block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), config()).await.unwrap();
        assert_eq!(
            sequence_error(&log, &producer_batch(9, 1, 1, 1)).await,
            Some(SequenceError::StaleEpoch { current: 2, got: 1 })
        );
    });
}

#[test]
fn a_non_transactional_batch_inside_the_producers_open_transaction_is_refused() {
    // Kafka's ProducerAppendInfo.appendDataBatch: while a producer's transaction is open on the
    // partition (a transactional batch, no marker yet), its non-transactional batches are
    // INVALID_TXN_STATE; the marker ends that. Also after a crash (the open transaction comes
    // back from the log).
    use ringtail_engine::txn::encode::{control_batch, transactional_batch};
    use ringtail_engine::txn::ControlMarker;
    let dir = tempfile::tempdir().unwrap();
    let record = RecordSpec {
        key: None,
        value: Some(b"v"),
        timestamp_delta: 0,
    };
    let data = transactional_batch(
        1_000,
        &[record],
        ProducerSpec {
            producer_id: 11,
            producer_epoch: 0,
            base_sequence: 0,
        },
    );
    block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), config()).await.unwrap();
        assert_eq!(sequence_error(&log, &data).await, None);
        assert_eq!(
            sequence_error(&log, &producer_batch(11, 0, 1, 1)).await,
            Some(SequenceError::TransactionOpen)
        );
        // Not closed: as if killed.
    });
    let _ = std::fs::remove_file(
        dir.path()
            .join(ringtail_engine::log::CLEAN_SHUTDOWN_FILE_NAME),
    );
    block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), config()).await.unwrap();
        assert_eq!(
            sequence_error(&log, &producer_batch(11, 0, 1, 1)).await,
            Some(SequenceError::TransactionOpen),
            "after a restart"
        );
        let commit = control_batch(1_000, 11, 0, ControlMarker::Commit, 0);
        assert_eq!(sequence_error(&log, &commit).await, None);
        assert_eq!(
            sequence_error(&log, &producer_batch(11, 0, 1, 1)).await,
            None
        );
    });
}

#[test]
fn a_marker_at_an_older_epoch_than_the_producers_is_refused_and_changes_nothing() {
    // Kafka's ProducerAppendInfo.appendEndTxnMarker checks the marker's epoch like a batch's: an
    // older one than the partition's producer epoch is refused (InvalidProducerEpochException),
    // nothing appended and the producer's state left as it was. Such a marker was appended and
    // ended the producer's transaction open at the newer epoch (its data then counted as
    // decided, and its non-transactional batches were let in).
    use ringtail_engine::txn::encode::{control_batch, transactional_batch};
    use ringtail_engine::txn::ControlMarker;
    let dir = tempfile::tempdir().unwrap();
    let record = RecordSpec {
        key: None,
        value: Some(b"v"),
        timestamp_delta: 0,
    };
    let data = transactional_batch(
        1_000,
        &[record],
        ProducerSpec {
            producer_id: 12,
            producer_epoch: 2,
            base_sequence: 0,
        },
    );
    block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), config()).await.unwrap();
        assert_eq!(sequence_error(&log, &data).await, None);
        let end = log.high_watermark();
        let stale = control_batch(1_000, 12, 1, ControlMarker::Abort, 0);
        assert_eq!(
            sequence_error(&log, &stale).await,
            Some(SequenceError::StaleEpoch { current: 2, got: 1 })
        );
        assert_eq!(log.high_watermark(), end, "nothing appended");
        assert!(
            log.open_transactions()
                .iter()
                .any(|(producer_id, _)| *producer_id == 12),
            "the transaction stays open"
        );
        assert_eq!(
            sequence_error(&log, &producer_batch(12, 2, 1, 1)).await,
            Some(SequenceError::TransactionOpen)
        );
        // The marker at the producer's epoch still ends it.
        let commit = control_batch(1_000, 12, 2, ControlMarker::Commit, 0);
        assert_eq!(sequence_error(&log, &commit).await, None);
        assert!(log.open_transactions().is_empty());
    });
}
