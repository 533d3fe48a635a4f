//! `preallocate`: each segment allocated whole before it takes writes, the next one prepared in the
//! background as the spare and renamed into place by the roll (engine/src/log/spare.rs).
mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use ringtail_engine::segment::log_file_name;
use ringtail_engine::{LogConfig, PartitionLog};

const SEGMENT_BYTES: u64 = 1 << 20;
const SPARE: &str = "spare-segment.prepared";

fn preallocating() -> LogConfig {
    LogConfig {
        preallocate: true,
        max_message_bytes: 8 << 20,
        ..small_config(SEGMENT_BYTES, 4096)
    }
}

async fn open_log(dir: &Path) -> std::rc::Rc<PartitionLog> {
    PartitionLog::open(dir, preallocating()).await.unwrap().0
}

fn file_bytes(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// Waits for the spare's background preparation (a create and an `fallocate`). Not a timing
/// claim: the bound only keeps a preparation that never ends from hanging the test.
async fn spare_prepared(log: &PartitionLog) {
    for _ in 0..1000 {
        if log.spare_ready() {
            return;
        }
        compio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the spare segment was never prepared");
}

/// A batch of `records` records of 1000-byte values (about `records` KB), stamped now: a reopened
/// log dates its active segment by its first batch, and one from 1970 would roll at once.
fn batch_of(tag: u64, records: usize) -> bytes::BytesMut {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    bytes_mut(&tagged_batch(tag, records, 1000, now_ms))
}

#[test]
fn segments_are_allocated_whole_before_their_writes_the_next_one_as_a_spare() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let log = open_log(dir.path()).await;
        let first = dir.path().join(log_file_name(Offset::ZERO));
        assert_eq!(
            file_bytes(&first),
            SEGMENT_BYTES,
            "a new log's segment is allocated whole when created, before any write"
        );
        log.append(batch_of(0, 100), 0).await.unwrap();
        assert!(
            !log.spare_ready() && !dir.path().join(SPARE).exists(),
            "no spare for a segment under half full"
        );
        // Past half the segment: the writer starts the spare's preparation.
        log.append(batch_of(1, 500), 0).await.unwrap();
        spare_prepared(&log).await;
        assert_eq!(file_bytes(&dir.path().join(SPARE)), SEGMENT_BYTES);
        assert_eq!(log.segment_count(), 1);

        // The next batch does not fit: the roll takes the spare.
        let third = log.append(batch_of(2, 500), 0).await.unwrap();
        assert_eq!(log.segment_count(), 2);
        assert_eq!(log.stats().spare_segments_used, 1);
        assert!(!dir.path().join(SPARE).exists(), "renamed into place");
        let second = dir.path().join(log_file_name(third.base_offset));
        assert_eq!(
            file_bytes(&second),
            SEGMENT_BYTES,
            "the new segment was allocated before its first write"
        );
        // Sealed in the background (flush=none: engine/src/log/seal.rs), then cut to its batches.
        for _ in 0..1000 {
            if log.stats().background_seals == 1 {
                break;
            }
            compio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            file_bytes(&first) < SEGMENT_BYTES,
            "the sealed segment is cut to its batches"
        );

        // A batch larger than a segment still gets room.
        let large = log.append(batch_of(3, 1500), 0).await.unwrap();
        let large_path = dir.path().join(log_file_name(large.base_offset));
        assert!(file_bytes(&large_path) >= 1500 * 1000);

        let read = log.read_bytes(0, u64::MAX, true).await.unwrap();
        let records: Vec<i32> = split_batches(&read)
            .iter()
            .map(|(header, _)| header.last_offset_delta + 1)
            .collect();
        assert_eq!(records, vec![100, 500, 500, 1500]);

        // A clean close reserves no disk for a next segment.
        if !log.spare_ready() {
            log.append(batch_of(4, 1), 0).await.unwrap();
        }
        log.close().await.unwrap();
        assert!(
            !dir.path().join(SPARE).exists(),
            "a clean close removes the spare"
        );
        let reopened = open_log(dir.path()).await;
        assert_eq!(reopened.high_watermark(), log.high_watermark());
    });
}

#[test]
fn a_spare_a_crash_left_is_removed_at_open_and_the_log_is_intact() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let log = open_log(dir.path()).await;
        log.append(batch_of(0, 600), 0).await.unwrap();
        spare_prepared(&log).await;
        let end = log.high_watermark();
        // No close: as a crash leaves it, with the spare on disk.
        drop(log);
        assert!(dir.path().join(SPARE).exists());
        let reopened = open_log(dir.path()).await;
        assert!(!dir.path().join(SPARE).exists(), "the stray spare went");
        assert_eq!(reopened.high_watermark(), end);
        // The log goes on and prepares a spare again.
        reopened.append(batch_of(1, 10), 0).await.unwrap();
        spare_prepared(&reopened).await;
        let next = reopened.append(batch_of(2, 600), 0).await.unwrap();
        assert_eq!(reopened.segment_count(), 2);
        assert_eq!(reopened.stats().spare_segments_used, 1);
        assert_eq!(next.base_offset.get(), end.get() + 10);
    });
}

#[test]
fn an_allocated_empty_active_segment_left_by_a_crash_is_not_corruption() {
    // What a crash right after a roll leaves (the spare renamed into place, or the new segment
    // allocated whole): a segment of zeros, which recovery takes for preallocated space.
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let log = open_log(dir.path()).await;
        log.append(batch_of(0, 600), 0).await.unwrap();
        log.roll_now().await.unwrap();
        let end = log.high_watermark();
        drop(log);
        let active = dir.path().join(log_file_name(end));
        assert_eq!(file_bytes(&active), SEGMENT_BYTES);
        let (reopened, report) = PartitionLog::open(dir.path(), preallocating())
            .await
            .unwrap();
        assert!(
            report
                .recovery
                .iter()
                .all(|(_, recovery)| recovery.truncated_bytes == 0),
            "zeros are not a torn tail: {:?}",
            report.recovery
        );
        assert_eq!(reopened.high_watermark(), end);
        assert_eq!(
            split_batches(&reopened.read_bytes(0, u64::MAX, true).await.unwrap()).len(),
            1
        );
    });
}

#[test]
fn a_spare_that_cannot_be_prepared_leaves_rolls_as_they_were() {
    // A directory in the spare's place: its creation fails (as a full disk's `fallocate` would),
    // the log says so once per segment and rolls by creating its segments itself.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(SPARE)).unwrap();
    block_on(async {
        let log = open_log(dir.path()).await;
        for tag in 0..4 {
            log.append(batch_of(tag, 600), 0).await.unwrap();
            compio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(log.segment_count(), 4);
        assert_eq!(log.stats().spare_segments_used, 0);
        assert!(!log.spare_ready());
        let read = log.read_bytes(0, u64::MAX, true).await.unwrap();
        assert_eq!(split_batches(&read).len(), 4);
        log.close().await.unwrap();
    });
}
