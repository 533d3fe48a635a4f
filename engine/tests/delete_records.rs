//! Moving the log start offset on request (DeleteRecords): reads below it fail, whole segments
//! below it go, and it survives a clean reopen and a crash-like reopen.
#![forbid(unsafe_code)]

mod common;

use common::*;
use ringtail_engine::{CleanupPolicy, DeleteRecordsError, Offset, PartitionLog, ReadError};

fn at(offset: i64) -> Offset {
    Offset::new(offset)
}

/// Appends 30 batches of 3 records (offsets 0..90) in 4 KiB segments: many segments.
async fn thirty_batches(log: &std::rc::Rc<PartitionLog>) {
    for tag in 0..30 {
        log.append(bytes_mut(&tagged_batch(tag, 3, 200, 1_000 + tag as i64)), 0)
            .await
            .unwrap();
    }
}

fn log_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|ext| ext == "log")
        })
        .count()
}

#[test]
fn the_start_moves_reads_below_fail_and_whole_segments_go() {
    // A start inside a batch keeps that batch whole (a fetch at the start returns it from its
    // base, as Kafka does); everything in segments wholly below is deleted from disk.
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), small_config(4096, 512))
            .await
            .unwrap();
        thirty_batches(&log).await;
        let segments_before = log.segment_count();
        assert!(segments_before >= 5, "{segments_before} segments");
        assert_eq!(log.delete_records_before(at(49)).await.unwrap(), at(49));
        assert_eq!(log.log_start_offset(), at(49));
        assert!(matches!(
            log.read(48, 1 << 20, true).await,
            Err(ReadError::OffsetOutOfRange {
                log_start_offset,
                ..
            }) if log_start_offset == at(49)
        ));
        let bytes = log.read_bytes(49, 1 << 20, true).await.unwrap();
        let batches = split_batches(&bytes);
        assert_eq!(
            batches[0].0.base_offset,
            at(48),
            "the batch holding 49, whole"
        );
        let first_base = log.segment_base_offsets()[0];
        assert!(first_base <= at(48), "the segment holding the start stays");
        assert!(log.segment_count() < segments_before);
        assert_eq!(log_files(dir.path()), log.segment_count());
        assert_eq!(
            log.delete_records_before(at(10)).await.unwrap(),
            at(49),
            "never moves back"
        );
        assert!(matches!(
            log.delete_records_before(at(91)).await,
            Err(DeleteRecordsError::OutOfRange {
                offset,
                high_watermark
            }) if offset == at(91) && high_watermark == at(90)
        ));
        assert_eq!(
            log.delete_records_before(at(90)).await.unwrap(),
            at(90),
            "all of it"
        );
        assert_eq!(
            log.read(at(90), 1 << 20, true).await.unwrap().total_bytes(),
            0
        );
        // Timestamp lookups never answer below the start.
        assert_eq!(log.offset_for_timestamp(0).await.unwrap(), None);
    });
}

#[test]
fn the_start_survives_a_clean_close_and_a_crash() {
    // The offset is persisted before it is answered: both a clean reopen and one without the
    // clean-shutdown marker (a crash) come back with it, and appends continue after it.
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), small_config(4096, 512))
            .await
            .unwrap();
        thirty_batches(&log).await;
        log.delete_records_before(at(31)).await.unwrap();
        log.close().await.unwrap();
        drop(log);
        let (log, _) = PartitionLog::open(dir.path(), small_config(4096, 512))
            .await
            .unwrap();
        assert_eq!(log.log_start_offset(), at(31));
        log.delete_records_before(at(61)).await.unwrap();
        drop(log); // no close: no clean-shutdown marker
        let (log, _) = PartitionLog::open(dir.path(), small_config(4096, 512))
            .await
            .unwrap();
        assert_eq!(log.log_start_offset(), at(61));
        assert_eq!(log.high_watermark(), at(90));
        let appended = log
            .append(bytes_mut(&tagged_batch(99, 2, 10, 5_000)), 0)
            .await
            .unwrap();
        assert_eq!(appended.base_offset, at(90));
    });
}

#[test]
fn a_garbled_start_file_is_ignored_and_a_compacted_log_refuses() {
    // Bad bytes on disk never keep a partition from opening; compact-only logs keep their
    // records (Kafka's POLICY_VIOLATION).
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), small_config(4096, 512))
            .await
            .unwrap();
        thirty_batches(&log).await;
        log.close().await.unwrap();
        drop(log);
        std::fs::write(
            dir.path()
                .join(ringtail_engine::log::LOG_START_OFFSET_FILE_NAME),
            b"not a number",
        )
        .unwrap();
        let mut config = small_config(4096, 512);
        config.cleanup_policy = CleanupPolicy::Compact;
        let (log, _) = PartitionLog::open(dir.path(), config).await.unwrap();
        assert_eq!(log.log_start_offset(), Offset::ZERO);
        assert!(matches!(
            log.delete_records_before(at(3)).await,
            Err(DeleteRecordsError::CompactedLog)
        ));
    });
}

#[test]
fn open_reports_the_segments_it_kept_after_deleting_those_below_the_start() {
    // A deletion whose unlinks were lost (the start file written, the segments still there):
    // open deletes them, and its report counts only the segments the log kept.
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), small_config(4096, 512))
            .await
            .unwrap();
        thirty_batches(&log).await;
        log.close().await.unwrap();
        drop(log);
        let segments_on_disk = log_files(dir.path());
        // The start file as a deletion writes it before it unlinks anything.
        std::fs::write(dir.path().join("log-start-offset"), b"61\n").unwrap();
        let (log, report) = PartitionLog::open(dir.path(), small_config(4096, 512))
            .await
            .unwrap();
        assert_eq!(log.log_start_offset(), at(61));
        assert!(
            log.segment_count() < segments_on_disk,
            "open deleted the segments below the start"
        );
        assert_eq!(report.segments, log.segment_count());
        assert_eq!(log_files(dir.path()), log.segment_count());
    });
}
