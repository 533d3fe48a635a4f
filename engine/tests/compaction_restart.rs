//! The cleaner's progress across restarts: segments cleaned before a restart stay clean (Kafka
//! keeps each partition's first dirty offset in its log dir's `cleaner-offset-checkpoint`), and a
//! delete horizon a pass left is still due after it.
#![forbid(unsafe_code)]

mod common;

use common::{block_on, bytes_mut, small_config};
use ringtail_engine::batch::{self, ProducerSpec, RecordSpec};
use ringtail_engine::compaction::{PassOptions, StopPoint};
use ringtail_engine::{CleanupPolicy, LogConfig, PartitionLog};

const DELETE_RETENTION_MS: u64 = 60_000;
const NOW_MS: i64 = 1_700_000_000_000;

fn compact_config() -> LogConfig {
    LogConfig {
        cleanup_policy: CleanupPolicy::Compact,
        delete_retention_ms: DELETE_RETENTION_MS,
        ..small_config(1 << 20, 256)
    }
}

/// A batch of `keys` records, each key `k<n>` with `value` (a tombstone for `None`).
fn keyed_batch(keys: std::ops::Range<u32>, value: Option<&[u8]>) -> Vec<u8> {
    let names: Vec<Vec<u8>> = keys.map(|key| format!("k{key}").into_bytes()).collect();
    let specs: Vec<RecordSpec<'_>> = names
        .iter()
        .map(|key| RecordSpec {
            key: Some(key),
            value,
            timestamp_delta: 0,
        })
        .collect();
    batch::encode_batch(NOW_MS, &specs, ProducerSpec::default())
}

/// Writes `batch` and seals it in a segment of its own.
async fn append_sealed(log: &std::rc::Rc<PartitionLog>, batch: &[u8]) {
    log.append(bytes_mut(batch), 0).await.unwrap();
    log.roll_now().await.unwrap();
}

/// Two segments of the same 100 keys, then an active segment: half the sealed bytes are dirty.
async fn cleaned_log(dir: &std::path::Path) -> std::rc::Rc<PartitionLog> {
    let (log, _) = PartitionLog::open(dir, compact_config()).await.unwrap();
    append_sealed(&log, &keyed_batch(0..100, Some(b"old"))).await;
    append_sealed(&log, &keyed_batch(0..100, Some(b"new"))).await;
    assert!(log.cleaning_due());
    let pass = log.compact_if_due(NOW_MS).await.unwrap().expect("due");
    assert_eq!(pass.records_removed, 100);
    assert!(!log.cleaning_due(), "everything sealed is clean");
    log
}

#[test]
fn a_restart_does_not_make_cleaned_segments_dirty_again() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let log = cleaned_log(dir.path()).await;
        log.close().await.unwrap();
        drop(log);
        let (log, _) = PartitionLog::open(dir.path(), compact_config())
            .await
            .unwrap();
        assert!(
            !log.cleaning_due(),
            "the segments were cleaned before the restart"
        );
        assert!(log.compact_if_due(NOW_MS).await.unwrap().is_none());
        log.close().await.unwrap();
    });
}

#[test]
fn after_a_restart_new_dirty_bytes_past_the_ratio_are_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let log = cleaned_log(dir.path()).await;
        log.close().await.unwrap();
        drop(log);
        let (log, _) = PartitionLog::open(dir.path(), compact_config())
            .await
            .unwrap();
        // The clean segment holds 100 records; 10 new ones are far below half the sealed bytes.
        append_sealed(&log, &keyed_batch(0..10, Some(b"newer"))).await;
        assert!(!log.cleaning_due(), "below min.cleanable.dirty.ratio");
        append_sealed(&log, &keyed_batch(0..100, Some(b"newest"))).await;
        assert!(log.cleaning_due());
        let pass = log.compact_if_due(NOW_MS).await.unwrap().expect("due");
        assert_eq!(pass.segments_mapped, 2, "only the segments written since");
        assert_eq!(pass.records_removed, 110);
        assert!(!log.cleaning_due());
        log.close().await.unwrap();
    });
}

#[test]
fn a_delete_horizon_left_by_a_pass_is_still_due_after_a_restart() {
    // Nothing is written after the pass that stamped the tombstones: without the horizon kept,
    // they would stay until new dirty bytes called for a pass.
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), compact_config())
            .await
            .unwrap();
        append_sealed(&log, &keyed_batch(0..100, Some(b"value"))).await;
        append_sealed(&log, &keyed_batch(0..100, None)).await;
        assert!(log.compact_if_due(NOW_MS).await.unwrap().is_some());
        let horizon = NOW_MS + DELETE_RETENTION_MS as i64;
        assert!(log.delete_horizon_passed(horizon));
        log.close().await.unwrap();
        drop(log);
        let (log, _) = PartitionLog::open(dir.path(), compact_config())
            .await
            .unwrap();
        assert!(!log.cleaning_due());
        assert!(!log.delete_horizon_passed(horizon - 1));
        assert!(log.delete_horizon_passed(horizon));
        let pass = log.compact_if_due(horizon).await.unwrap().expect("due");
        assert_eq!(pass.records_removed, 100, "the tombstones went");
        assert!(!log.delete_horizon_passed(i64::MAX));
        log.close().await.unwrap();
        drop(log);
        let (log, _) = PartitionLog::open(dir.path(), compact_config())
            .await
            .unwrap();
        assert!(
            !log.delete_horizon_passed(i64::MAX),
            "nothing left to wait for"
        );
        assert!(log.compact_if_due(i64::MAX).await.unwrap().is_none());
        log.close().await.unwrap();
    });
}

#[test]
fn a_crash_before_the_progress_is_kept_leaves_the_segments_dirty() {
    // The pass stops after its install's commit (a crash there): open finishes the install, but
    // the progress was not kept, so the segments count as dirty and the next pass cleans them
    // again, which is safe (the records kept are the same).
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), compact_config())
            .await
            .unwrap();
        append_sealed(&log, &keyed_batch(0..100, Some(b"old"))).await;
        append_sealed(&log, &keyed_batch(0..100, Some(b"new"))).await;
        let options = PassOptions {
            stop: Some(StopPoint::Committed),
            ..PassOptions::default()
        };
        log.compact_with(NOW_MS, options).await.unwrap();
        drop(log); // a crash: no close
        let (log, _) = PartitionLog::open(dir.path(), compact_config())
            .await
            .unwrap();
        assert!(log.cleaning_due(), "the progress was not kept");
        let pass = log.compact_if_due(NOW_MS).await.unwrap().expect("due");
        assert_eq!(
            pass.records_removed, 0,
            "the first pass's install was finished at open"
        );
        assert!(!log.cleaning_due());
        log.close().await.unwrap();
        drop(log);
        let (log, _) = PartitionLog::open(dir.path(), compact_config())
            .await
            .unwrap();
        assert!(!log.cleaning_due(), "this time the progress was kept");
        log.close().await.unwrap();
    });
}

#[test]
fn a_horizon_is_kept_before_the_install_that_stamps_it() {
    // A crash after the install of a segment whose tombstones the pass stamped, before the pass
    // ends: the horizon was kept first, so it is not lost with the pass's memory.
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), compact_config())
            .await
            .unwrap();
        append_sealed(&log, &keyed_batch(0..100, None)).await;
        append_sealed(&log, &keyed_batch(100..200, Some(b"value"))).await;
        let options = PassOptions {
            stop: Some(StopPoint::Committed),
            ..PassOptions::default()
        };
        log.compact_with(NOW_MS, options).await.unwrap();
        drop(log); // a crash: no close
        let (log, _) = PartitionLog::open(dir.path(), compact_config())
            .await
            .unwrap();
        let horizon = NOW_MS + DELETE_RETENTION_MS as i64;
        assert!(!log.delete_horizon_passed(horizon - 1));
        assert!(log.delete_horizon_passed(horizon));
        log.close().await.unwrap();
    });
}
