//! Segment rolls (by size and by age) and retention (by bytes and by age).
#![forbid(unsafe_code)]

mod common;

use common::*;
use ringtail_engine::log::now_ms;
use ringtail_engine::{PartitionLog, ReadError};

#[test]
fn segments_roll_by_size_with_contiguous_base_offsets() {
    // Each segment starts where the previous one ended, and none grows past segment.bytes
    // (unless a single batch is larger).
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), small_config(4096, 512))
            .await
            .unwrap();
        let mut ends = Vec::new();
        for tag in 0..60 {
            let outcome = log
                .append(bytes_mut(&tagged_batch(tag, 3, 200, 0)), 0)
                .await
                .unwrap();
            ends.push(outcome.last_offset.plus(1));
        }
        let bases = log.segment_base_offsets();
        assert!(
            bases.len() >= 10,
            "60 batches of ~700 bytes in 4 KiB segments: {bases:?}"
        );
        assert_eq!(bases[0], Offset::ZERO);
        for base in &bases[1..] {
            assert!(
                ends.contains(base),
                "segment base {base} is a batch boundary"
            );
        }
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let is_active = path.file_stem().unwrap().to_str().unwrap()
                == format!("{:020}", bases.last().unwrap());
            if path.extension().is_some_and(|ext| ext == "log") && !is_active {
                assert!(
                    std::fs::metadata(&path).unwrap().len() <= 4096,
                    "sealed segment cut to its end"
                );
            }
        }
    });
}

#[test]
fn segments_roll_by_age() {
    // segment.ms: an old active segment is closed on the next append even when not full.
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let mut config = small_config(1 << 20, 512);
        config.segment_ms = 30;
        let (log, _) = PartitionLog::open(dir.path(), config).await.unwrap();
        log.append(bytes_mut(&tagged_batch(0, 1, 10, 0)), 0)
            .await
            .unwrap();
        log.append(bytes_mut(&tagged_batch(1, 1, 10, 0)), 0)
            .await
            .unwrap();
        assert_eq!(log.segment_count(), 1);
        compio::time::sleep(std::time::Duration::from_millis(40)).await;
        log.append(bytes_mut(&tagged_batch(2, 1, 10, 0)), 0)
            .await
            .unwrap();
        assert_eq!(
            log.segment_base_offsets(),
            vec![Offset::ZERO, Offset::new(2)]
        );
    });
}

#[test]
fn retention_by_bytes_deletes_oldest_segments_and_advances_log_start() {
    // retention.bytes keeps the newest data within the limit; reads below the start are refused.
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let mut config = small_config(4096, 512);
        config.retention_bytes = Some(10_000);
        let (log, _) = PartitionLog::open(dir.path(), config).await.unwrap();
        for tag in 0..100 {
            log.append(bytes_mut(&tagged_batch(tag, 3, 200, now_ms())), 0)
                .await
                .unwrap();
        }
        let before = log.size_bytes();
        let outcome = log.enforce_retention(now_ms()).await.unwrap();
        assert!(outcome.segments_deleted > 0);
        assert!(
            log.size_bytes() <= 10_000 + 4096,
            "within the limit plus one segment"
        );
        assert!(log.size_bytes() >= 10_000 - 4096 || log.segment_count() == 1);
        assert_eq!(before - log.size_bytes(), outcome.bytes_deleted);
        let start = log.log_start_offset();
        assert_eq!(start, log.segment_base_offsets()[0]);
        assert_eq!(outcome.log_start_offset, start);
        assert!(matches!(
            log.read(start.plus(-1), 100, true).await,
            Err(ReadError::OffsetOutOfRange { .. })
        ));
        let first = split_batches(&log.read_bytes(start, 1 << 20, true).await.unwrap());
        assert_eq!(first[0].0.base_offset, start);
        let files = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "log")
            })
            .count();
        assert_eq!(
            files,
            log.segment_count(),
            "deleted segments' files are gone"
        );
    });
}

#[test]
fn retention_by_age_deletes_expired_segments_including_an_idle_active_one() {
    // retention.ms goes by the newest timestamp in a segment; an expired active segment is rolled
    // so that a quiet topic's data still expires.
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let mut config = small_config(4096, 512);
        config.retention_ms = Some(60_000);
        let (log, _) = PartitionLog::open(dir.path(), config).await.unwrap();
        let old = now_ms() - 3_600_000;
        for tag in 0..30 {
            log.append(bytes_mut(&tagged_batch(tag, 3, 200, old)), 0)
                .await
                .unwrap();
        }
        let fresh_from = log.high_watermark();
        let kept = log.enforce_retention(now_ms()).await.unwrap();
        assert_eq!(
            log.log_start_offset(),
            fresh_from,
            "all old data expired: {kept:?}"
        );
        assert_eq!(log.size_bytes(), 0);
        // New data is kept and the log keeps working.
        let outcome = log
            .append(bytes_mut(&tagged_batch(99, 2, 10, now_ms())), 0)
            .await
            .unwrap();
        assert_eq!(outcome.base_offset, fresh_from);
        let none = log.enforce_retention(now_ms()).await.unwrap();
        assert_eq!(none.segments_deleted, 0);
        assert_eq!(log.high_watermark(), fresh_from.plus(2));
    });
}

#[test]
fn interval_flush_syncs_only_when_due() {
    // flush=<N>ms: data becomes durable at the next due tick, not at every append.
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let mut config = small_config(1 << 20, 512);
        config.flush = ringtail_engine::FlushPolicy::IntervalMs(50);
        let (log, _) = PartitionLog::open(dir.path(), config).await.unwrap();
        log.append(bytes_mut(&tagged_batch(0, 2, 10, 0)), 0)
            .await
            .unwrap();
        assert_eq!(log.durable_offset().get(), 0);
        let start = now_ms();
        assert!(!log.sync_if_due(start).await.unwrap() || log.durable_offset().get() == 2);
        assert!(log.sync_if_due(start + 1_000).await.unwrap());
        assert_eq!(log.durable_offset().get(), 2);
        assert!(
            !log.sync_if_due(start + 2_000).await.unwrap(),
            "nothing new to sync"
        );
    });
}

/// Descriptors this process holds on files in `dir`, by file extension.
fn open_files_in(dir: &std::path::Path) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for fd in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(target) = std::fs::read_link(fd.path()) else {
            continue; // closed meanwhile (another test's thread)
        };
        if target.parent() == Some(dir) {
            let extension = target
                .extension()
                .map_or(String::new(), |e| e.to_string_lossy().into_owned());
            *counts.entry(extension).or_insert(0) += 1;
        }
    }
    counts
}

#[test]
fn sealed_segments_hold_one_descriptor_each_and_still_answer_lookups() {
    // A sealed segment's indexes live in memory: only its log stays open, so a broker's
    // descriptors grow by one per segment, not three (the soak ran out at three). Only the
    // active segment keeps its index files open; lookups by offset and timestamp in sealed
    // segments still work, before and after a reopen.
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().canonicalize().unwrap();
    block_on(async {
        let (log, _) = PartitionLog::open(&dir_path, small_config(4096, 512))
            .await
            .unwrap();
        for tag in 0..60 {
            log.append(bytes_mut(&tagged_batch(tag, 3, 200, 1_000 + tag as i64)), 0)
                .await
                .unwrap();
        }
        let segments = log.segment_count();
        assert!(segments >= 10, "{segments} segments");
        // Sealed (in the background under flush=none: a pending seal holds its index files).
        log.sync().await.unwrap();
        let check = |when: &str| {
            let open = open_files_in(&dir_path);
            assert_eq!(open.get("log").copied(), Some(segments), "{when}: {open:?}");
            assert_eq!(open.get("index").copied(), Some(1), "{when}: {open:?}");
            assert_eq!(open.get("timeindex").copied(), Some(1), "{when}: {open:?}");
        };
        check("after the rolls");
        let plan = log.read(Offset::new(30), 1 << 20, true).await.unwrap();
        assert!(!plan.slices.is_empty(), "a read in a sealed segment");
        drop(plan); // its slices hold the segments' log files open
        let found = log.offset_for_timestamp(1_010).await.unwrap();
        let (offset, timestamp) = found.expect("a record at or after 1010");
        assert!(timestamp >= 1_010, "{found:?}");
        let active_base = *log.segment_base_offsets().last().unwrap();
        assert!(offset < active_base, "found in a sealed segment: {found:?}");
        log.close().await.unwrap();
        drop(log);
        // compio closes a dropped file through the ring: wait until the old handles are gone.
        for _ in 0..500 {
            if open_files_in(&dir_path).is_empty() {
                break;
            }
            compio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(
            open_files_in(&dir_path),
            Default::default(),
            "a closed log keeps no file open"
        );
        let (log, _) = PartitionLog::open(&dir_path, small_config(4096, 512))
            .await
            .unwrap();
        check("after a reopen");
        assert_eq!(log.offset_for_timestamp(1_010).await.unwrap(), found);
        // Appends go on (the active segment's indexes are open) and roll again.
        for tag in 60..80 {
            log.append(bytes_mut(&tagged_batch(tag, 3, 200, 1_000 + tag as i64)), 0)
                .await
                .unwrap();
        }
        let segments_now = log.segment_count();
        assert!(segments_now > segments);
        log.sync().await.unwrap();
        let open = open_files_in(&dir_path);
        assert_eq!(open.get("log").copied(), Some(segments_now), "{open:?}");
        assert_eq!(open.get("index").copied(), Some(1), "{open:?}");
        log.close().await.unwrap();
    });
}
