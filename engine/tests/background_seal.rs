//! Under `flush=none` a roll goes on at once and the old segment is sealed in the background
//! (engine/src/log/seal.rs); recovery checks such segments in full and keeps a prefix of the log.
mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use ringtail_engine::segment::log_file_name;
use ringtail_engine::{CleanupPolicy, FlushPolicy, LogConfig, PartitionLog};

const SEGMENT_BYTES: u64 = 64 << 10;

fn config(flush: FlushPolicy) -> LogConfig {
    LogConfig {
        flush,
        preallocate: true,
        preallocate_max_used_percent: 100,
        ..small_config(SEGMENT_BYTES, 4096)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Appends batches of 10 records of 1000 bytes (about 10 KB) until the log holds `segments`.
async fn fill_segments(log: &std::rc::Rc<PartitionLog>, segments: usize) {
    let mut tag = 0;
    while log.segment_count() < segments {
        log.append(bytes_mut(&tagged_batch(tag, 10, 1000, now_ms())), 0)
            .await
            .unwrap();
        tag += 1;
    }
}

/// Waits for `count` background seals. The bound only keeps a sealer that never runs from hanging
/// the test; it is no timing claim.
async fn seals_done(log: &PartitionLog, count: u64) {
    for _ in 0..1000 {
        if log.stats().background_seals >= count {
            return;
        }
        compio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "{} of {count} background seals done",
        log.stats().background_seals
    );
}

/// Base offsets of the log's segments, from its files.
fn segment_bases(dir: &Path) -> Vec<i64> {
    let mut bases: Vec<i64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    bases.sort_unstable();
    bases
}

fn file_bytes(dir: &Path, base: i64) -> u64 {
    std::fs::metadata(dir.join(log_file_name(Offset::new(base))))
        .unwrap()
        .len()
}

fn assert_dense(batches: &[(ringtail_engine::batch::BatchHeader, Vec<u8>)], end: i64) {
    let mut next = 0;
    for (header, _) in batches {
        assert_eq!(header.base_offset.get(), next, "a gap before {next}");
        next = header.base_offset.get() + i64::from(header.last_offset_delta) + 1;
    }
    assert_eq!(next, end);
}

#[test]
fn a_roll_under_flush_none_is_sealed_in_the_background() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), config(FlushPolicy::None))
            .await
            .unwrap();
        fill_segments(&log, 4).await;
        seals_done(&log, 3).await;
        let bases = segment_bases(dir.path());
        assert_eq!(bases.len(), 4);
        for pair in bases.windows(2) {
            // Cut to its batches: the next segment starts where its batches end.
            let sealed_bytes = file_bytes(dir.path(), pair[0]);
            assert!(
                sealed_bytes < SEGMENT_BYTES,
                "sealed segment {} cut",
                pair[0]
            );
        }
        assert_eq!(
            log.durable_offset().get(),
            *bases.last().unwrap(),
            "everything below the active segment is synced once its seals ran"
        );
        assert!(
            dir.path()
                .join(format!("{:020}.snapshot", bases.last().unwrap()))
                .exists(),
            "the snapshot at the newest roll is written by its seal"
        );
        assert_eq!(log.stats().fsyncs, 0, "no fsync of the active segment");
    });
}

#[test]
fn rolls_under_every_batch_seal_before_going_on() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), config(FlushPolicy::EveryBatch))
            .await
            .unwrap();
        fill_segments(&log, 3).await;
        assert_eq!(log.stats().background_seals, 0);
        assert_eq!(log.durable_offset(), log.high_watermark());
    });
}

#[test]
fn a_close_finishes_the_seals_a_roll_left_and_a_reopen_reads_the_same_log() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), config(FlushPolicy::None))
            .await
            .unwrap();
        fill_segments(&log, 5).await;
        let end = log.high_watermark().get();
        log.close().await.unwrap();
        let bases = segment_bases(dir.path());
        for base in &bases[..bases.len() - 1] {
            assert!(file_bytes(dir.path(), *base) < SEGMENT_BYTES);
        }
        drop(log);
        let (reopened, report) = PartitionLog::open(dir.path(), config(FlushPolicy::None))
            .await
            .unwrap();
        assert!(report.clean_shutdown);
        assert_eq!(reopened.high_watermark().get(), end);
        let read = reopened.read_bytes(0, u64::MAX, true).await.unwrap();
        assert_dense(&split_batches(&read), end);
    });
}

/// What a crash leaves when the seal of the segment at `bases[torn]` never ran and part of its
/// bytes never reached the disk: `lose` changes its file; the snapshots at and past its base,
/// which only its seal and later ones would have written, and the clean-shutdown marker go.
async fn crash_with_unsealed_segment(
    dir: &Path,
    config: &LogConfig,
    lose: impl FnOnce(&Path),
) -> (Vec<i64>, usize) {
    let (log, _) = PartitionLog::open(dir, config.clone()).await.unwrap();
    fill_segments(&log, 4).await;
    log.close().await.unwrap();
    drop(log);
    let bases = segment_bases(dir);
    let torn = 1;
    lose(&dir.join(log_file_name(Offset::new(bases[torn]))));
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let snapshot_at = name
            .strip_suffix(".snapshot")
            .and_then(|stem| stem.parse::<i64>().ok());
        if snapshot_at.is_some_and(|offset| offset >= bases[torn]) || name == ".clean_shutdown" {
            std::fs::remove_file(&path).unwrap();
        }
    }
    (bases, torn)
}

#[test]
fn a_rolled_segment_that_lost_its_tail_is_the_end_of_the_log_after_a_crash() {
    // Its last 3000 bytes never written (the file shorter), or written as zeros (preallocated
    // space never filled): either way the segments after it go, and the log stays dense.
    for zeros in [false, true] {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let config = config(FlushPolicy::None);
        block_on(async {
            let (bases, torn) = crash_with_unsealed_segment(dir.path(), &config, |path| {
                let len = std::fs::metadata(path).unwrap().len();
                let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
                if zeros {
                    std::os::unix::fs::FileExt::write_all_at(&file, &[0u8; 3000], len - 3000)
                        .unwrap();
                } else {
                    file.set_len(len - 3000).unwrap();
                }
            })
            .await;
            let (log, _) = PartitionLog::open(dir.path(), config.clone())
                .await
                .unwrap();
            assert_eq!(
                segment_bases(dir.path()),
                bases[..=torn].to_vec(),
                "the segments after the torn one are gone (zeros: {zeros})"
            );
            let end = log.high_watermark().get();
            assert!(end > bases[torn] && end < bases[torn + 1]);
            let read = log.read_bytes(0, u64::MAX, true).await.unwrap();
            assert_dense(&split_batches(&read), end);
            // The log goes on from there, and a later open finds it whole.
            log.append(bytes_mut(&tagged_batch(99, 1, 10, now_ms())), 0)
                .await
                .unwrap();
            let end = log.high_watermark().get();
            log.close().await.unwrap();
            drop(log);
            let (again, _) = PartitionLog::open(dir.path(), config.clone())
                .await
                .unwrap();
            assert_eq!(again.high_watermark().get(), end);
        });
    }
}

#[test]
fn a_compacted_logs_gap_below_the_newest_snapshot_is_kept_after_a_crash() {
    // The cleaner may remove a segment's last batches, leaving a gap before the next segment; it
    // cleans only segments below the newest snapshot, and recovery drops nothing for a gap there.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let config = LogConfig {
        cleanup_policy: CleanupPolicy::Compact,
        ..config(FlushPolicy::None)
    };
    block_on(async {
        // Filled as a plain log (keyless records), reopened compacted.
        let (log, _) = PartitionLog::open(dir.path(), self::config(FlushPolicy::None))
            .await
            .unwrap();
        fill_segments(&log, 4).await;
        log.close().await.unwrap();
        drop(log);
        let bases = segment_bases(dir.path());
        // As the cleaner leaves it: the last batch gone, the file cut exactly after the rest.
        let path = dir.path().join(log_file_name(Offset::new(bases[1])));
        let bytes = std::fs::read(&path).unwrap();
        let batches = split_batches(&bytes);
        let kept: usize = batches[..batches.len() - 1]
            .iter()
            .map(|(_, stored)| stored.len())
            .sum();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(kept as u64)
            .unwrap();
        std::fs::remove_file(dir.path().join(".clean_shutdown")).unwrap();
        let (log, _) = PartitionLog::open(dir.path(), config.clone())
            .await
            .unwrap();
        assert_eq!(segment_bases(dir.path()), bases, "no segment dropped");
        assert!(log.high_watermark().get() > bases[3]);
    });
}
