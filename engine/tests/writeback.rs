//! The active segment's writeback is started every `writeback.bytes` (sync_file_range, not waited
//! for), so the fsync of a roll finds little left dirty; `writeback.bytes = 0` starts none. Dirty
//! pages are read with cachestat(2); the data dir is on the target dir's disk, not a tmpfs (whose
//! pages have no writeback).
#![forbid(unsafe_code)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use ringtail_engine::{io, LogConfig, PartitionLog};

const MIB: u64 = 1 << 20;

/// Appends `batches` batches of about 256 KiB to a fresh log under `config`, then, with the log
/// still open (a close syncs it), waits until `[0, checked_bytes)` of its segment has no dirty
/// page or `deadline` passes; returns the dirty pages left.
fn dirty_pages_after_appends(
    config: LogConfig,
    batches: u64,
    checked_bytes: u64,
    deadline: Duration,
) -> u64 {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), config).await.unwrap();
        for tag in 0..batches {
            log.append(bytes_mut(&tagged_batch(tag, 64, 4096, 0)), 0)
                .await
                .unwrap();
        }
        let file = std::fs::File::open(dir.path().join("00000000000000000000.log")).unwrap();
        let until = Instant::now() + deadline;
        let dirty = loop {
            let dirty = io::range_dirty_pages(&file, 0, checked_bytes).unwrap();
            if dirty == 0 || Instant::now() >= until {
                break dirty;
            }
            // Lets the detached writeback submissions run on this ring.
            compio::time::sleep(Duration::from_millis(50)).await;
        };
        log.close().await.unwrap();
        dirty
    })
}

#[test]
fn writeback_of_the_active_segment_is_started_every_writeback_bytes() {
    let config = LogConfig {
        writeback_bytes: MIB,
        ..small_config(1 << 30, 4096)
    };
    // 64 batches of 256 KiB: 16 MiB. Writeback stays 2 MiB behind the end (the largest folio,
    // which the next appends would dirty again) and starts every MiB, so it was started for at
    // least the first 12 MiB, whole folios no append touches again. Started writeback completes
    // on its own; under flush=none nothing else would write this range back within the 30 s of
    // the kernel's dirty expiry (unless its flusher runs for memory pressure). The deadline is a
    // liveness bound, not a timing.
    let dirty = dirty_pages_after_appends(config, 64, 12 * MIB, Duration::from_secs(20));
    assert_eq!(dirty, 0, "pages of the first 12 MiB still dirty");
}

#[test]
fn writeback_bytes_is_a_topic_config_and_zero_turns_it_off() {
    let config = small_config(1 << 30, 4096);
    let off = config
        .with_overrides(&[("writeback.bytes".to_string(), "0".to_string())].into())
        .unwrap();
    assert_eq!(off.writeback_bytes, 0);
    assert_eq!(off.get("writeback.bytes").as_deref(), Some("0"));
    assert_eq!(LogConfig::default().writeback_bytes, 8 * MIB);
    assert!(config
        .with_overrides(&[("writeback.bytes".to_string(), "-1".to_string())].into())
        .is_err());
    // Off, appends work as before and nothing is asked of the kernel (whether the pages are
    // still dirty then is the kernel's business: its flusher may run at any time).
    dirty_pages_after_appends(off, 8, MIB, Duration::ZERO);
}
