//! `drop.behind.bytes`: the pages further than that behind the log's end (in the active segment
//! and the rolled ones before it) are written back and dropped from the page cache by a detached
//! task, so later writes reuse the memory (decision 0033), except what a live reader has yet to read, up to
//! `drop.behind.max.bytes` behind the end (decision 0034). Residency is read with cachestat(2);
//! the data dir is on the target dir's disk, not a tmpfs (whose pages cannot be dropped).
#![forbid(unsafe_code)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use ringtail_engine::{io, LogConfig, PartitionLog};

const MIB: u64 = 1 << 20;
/// 64 records of 4 KiB: a batch of about 256 KiB.
const BATCHES_PER_MIB: u64 = 4;

/// Appends `mib` MiB in 256 KiB batches to a fresh log under `config`, then (the log still
/// open: a close syncs it) waits until none of `[0, checked_bytes)` of its segment is cached or
/// `deadline` passes. Returns the cached pages left there, the log's count of bytes dropped,
/// and whether every batch reads back as written.
fn after_appends(
    config: LogConfig,
    mib: u64,
    checked_bytes: u64,
    deadline: Duration,
) -> (u64, u64, bool) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), config).await.unwrap();
        let mut written = Vec::new();
        for tag in 0..mib * BATCHES_PER_MIB {
            append_tagged(&log, tag, &mut written).await;
        }
        let path = dir.path().join("00000000000000000000.log");
        let file = compio::fs::File::open(&path).await.unwrap();
        let until = Instant::now() + deadline;
        let cached = loop {
            let cached = io::range_residency(&file, 0, checked_bytes)
                .unwrap()
                .cached_pages;
            if cached == 0 || Instant::now() >= until {
                break cached;
            }
            // Lets the detached drops run on this ring.
            compio::time::sleep(Duration::from_millis(50)).await;
        };
        let dropped = log.stats().dropped_behind_bytes;
        (cached, dropped, read_back_and_close(log, &written).await)
    })
}

/// Appends a 256 KiB batch tagged `tag`, and what the log stores of it to `written`.
async fn append_tagged(log: &std::rc::Rc<PartitionLog>, tag: u64, written: &mut Vec<u8>) {
    let batch = tagged_batch(tag, 64, 4096, 0);
    let offset = log.append(bytes_mut(&batch), 0).await.unwrap();
    written.extend(as_stored(&batch, offset.base_offset.get(), 0));
}

/// Whether the whole log reads back as `written`; closes it.
async fn read_back_and_close(log: std::rc::Rc<PartitionLog>, written: &[u8]) -> bool {
    let plan = log.read(0, u64::MAX, true).await.unwrap();
    let read_back = log.read_plan_bytes(&plan).await.unwrap();
    log.close().await.unwrap();
    read_back[..] == written[..]
}

#[test]
fn pages_further_behind_than_drop_behind_bytes_leave_the_page_cache() {
    let keep_bytes = 4 * MIB;
    let config = LogConfig {
        drop_behind_bytes: keep_bytes,
        ..small_config(1 << 30, 4096)
    };
    // 24 MiB written: the drops reach to the last 2 MiB boundary at least 4 MiB behind the end
    // (a folio across a dropped range's end would stay cached), taken 8 MiB at a time, one
    // running at once: the first 12 MiB are dropped whatever the order the drops ran in.
    // The deadline is a liveness bound for the detached drops, not a timing.
    let (cached, dropped, intact) = after_appends(config, 24, 12 * MIB, Duration::from_secs(20));
    assert_eq!(cached, 0, "pages of the first 12 MiB still cached");
    assert!(
        (12 * MIB..=24 * MIB - keep_bytes).contains(&dropped),
        "{dropped} bytes dropped: at least the first 12 MiB, never the newest 4 MiB"
    );
    assert!(intact, "the log reads back what was written");
}

#[test]
fn a_rolled_segment_leaves_the_page_cache_once_behind_the_window() {
    // Segments of 16 MiB, 40 MiB written, 4 MiB kept: the window lies in the third segment, so
    // the first is dropped to its end, as the second was entering the window (before, a roll
    // left the last 4 MiB of each rolled segment cached for good, and the new segment's first
    // 4 MiB were written with nothing dropped: results/drop-behind-rolls/).
    let config = LogConfig {
        drop_behind_bytes: 4 * MIB,
        ..small_config(16 * MIB, 4096)
    };
    let (cached, dropped, intact) = after_appends(config, 40, 16 * MIB, Duration::from_secs(20));
    assert_eq!(cached, 0, "pages of the rolled first segment still cached");
    assert!(
        dropped >= 16 * MIB,
        "{dropped} bytes dropped: at least the first segment"
    );
    assert!(intact, "the log reads back what was written");
}

#[test]
fn drop_behind_is_a_topic_config_and_zero_turns_it_off() {
    assert_eq!(LogConfig::default().drop_behind_bytes, 256 * MIB);
    let config = LogConfig {
        drop_behind_bytes: 0,
        ..small_config(1 << 30, 4096)
    };
    let on = config
        .with_overrides(&[("drop.behind.bytes".to_string(), "1048576".to_string())].into())
        .unwrap();
    assert_eq!(on.drop_behind_bytes, MIB);
    assert_eq!(on.get("drop.behind.bytes").as_deref(), Some("1048576"));
    assert!(config
        .with_overrides(&[("drop.behind.bytes".to_string(), "-1".to_string())].into())
        .is_err());
    // Off, nothing is dropped (whether pages stay cached is then the kernel's business).
    let (_, dropped, intact) = after_appends(config, 8, MIB, Duration::ZERO);
    assert_eq!(dropped, 0);
    assert!(intact);
}

/// Appends `mib` MiB in 256 KiB batches to a fresh log under `config`. A reader reads one batch
/// from offset 0 once the first `reader_from_mib` MiB are written, and again after every append
/// (a consumer that fetches but does not move on); `None`: nobody reads. Returns the bytes the
/// log chose to drop behind (counted when a drop is started), after checking that every batch
/// reads back as written.
fn dropped_with_a_reader_at_zero(config: LogConfig, mib: u64, reader_from_mib: Option<u64>) -> u64 {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), config).await.unwrap();
        let mut written = Vec::new();
        for tag in 0..mib * BATCHES_PER_MIB {
            append_tagged(&log, tag, &mut written).await;
            if reader_from_mib.is_some_and(|from| tag + 1 >= from * BATCHES_PER_MIB) {
                let plan = log.read(0, 1, true).await.unwrap();
                assert_eq!(
                    plan.slices[0].position.get(),
                    0,
                    "the reader reads from the start"
                );
            }
        }
        let dropped = log.stats().dropped_behind_bytes;
        assert!(
            read_back_and_close(log, &written).await,
            "the log reads back what was written"
        );
        dropped
    })
}

/// A 4 MiB window waiting up to `max_mib` MiB for readers, in segments of `segment_mib` MiB.
fn held_config(max_mib: u64, segment_mib: u64) -> LogConfig {
    LogConfig {
        drop_behind_bytes: 4 * MIB,
        drop_behind_max_bytes: max_mib * MIB,
        ..small_config(segment_mib * MIB, 4096)
    }
}

/// `mib` MiB written under `config`: without a reader the first drop is always taken; with a
/// reader at offset 0 from the 4th MiB on, within `config`'s hold, none is.
fn assert_held_for_a_reader(config: LogConfig, mib: u64, what: &str) {
    let dropped = dropped_with_a_reader_at_zero(config.clone(), mib, None);
    assert!(
        dropped >= 8 * MIB,
        "{dropped} bytes dropped without a reader"
    );
    let dropped = dropped_with_a_reader_at_zero(config, mib, Some(4));
    assert_eq!(dropped, 0, "{what}");
}

#[test]
fn a_live_reader_within_drop_behind_max_bytes_keeps_what_it_has_yet_to_read() {
    // 32 MiB written: the reader is at most 32 MiB behind the end, within the 64 MiB waited for.
    assert_held_for_a_reader(
        held_config(64, 1024),
        32,
        "pages a live reader may still need were dropped",
    );
}

#[test]
fn a_reader_still_in_the_segment_before_keeps_the_active_one() {
    // Segments of 24 MiB, 48 MiB written: a reader at offset 0 of the first segment has yet to
    // read all of the second, within the 64 MiB waited for (a roll must not strand the reader).
    assert_held_for_a_reader(
        held_config(64, 24),
        48,
        "the second segment's pages were dropped under a reader of the first",
    );
}

#[test]
fn a_reader_is_waited_for_no_further_than_drop_behind_max_bytes() {
    // The reader stays at 0 while 32 MiB are written: drops reach at most 12 MiB behind the end
    // (to 20 MiB), where without the reader they would reach 4 MiB behind it; the first one (at
    // 20 MiB written, of the first 8 MiB) is always taken.
    let dropped = dropped_with_a_reader_at_zero(held_config(12, 1024), 32, Some(4));
    assert!(
        (8 * MIB..=20 * MIB).contains(&dropped),
        "{dropped} bytes dropped: from 8 MiB to 12 MiB behind the end of 32"
    );
    // At or below drop.behind.bytes no reader is waited for.
    let dropped = dropped_with_a_reader_at_zero(held_config(4, 1024), 32, Some(4));
    assert!(
        dropped >= 8 * MIB,
        "{dropped} bytes dropped with the hold off"
    );
}

#[test]
fn drop_behind_max_bytes_is_a_topic_config() {
    assert_eq!(
        LogConfig::default().drop_behind_max_bytes,
        0,
        "off by default"
    );
    let config = small_config(1 << 30, 4096)
        .with_overrides(&[("drop.behind.max.bytes".to_string(), "0".to_string())].into())
        .unwrap();
    assert_eq!(config.drop_behind_max_bytes, 0);
    assert_eq!(config.get("drop.behind.max.bytes").as_deref(), Some("0"));
    assert!(small_config(1 << 30, 4096)
        .with_overrides(&[("drop.behind.max.bytes".to_string(), "-1".to_string())].into())
        .is_err());
}
