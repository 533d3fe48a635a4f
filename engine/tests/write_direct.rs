//! Appends written with `O_DIRECT` (`write.direct`): the same bytes as buffered writes, in groups
//! larger than one direct write, across rolls, reopens after a clean close and after a crash
//! (the partial last block read back), and none of it left in the page cache. The data dir is on
//! the target dir's disk, not a tmpfs (whose pages are the file). Crash and fault cases with
//! direct writes run in the simulated-disk tests, whose configs draw `write_direct`.
#![forbid(unsafe_code)]

mod common;

use std::path::Path;
use std::rc::Rc;

use common::*;
use ringtail_engine::{io, LogConfig, PartitionLog};

/// Batches of sizes that start and end anywhere in a block, some larger than a block.
fn batch_for(tag: u64) -> Vec<u8> {
    let records = 1 + (tag * 7 % 13) as usize;
    let value_bytes = [1, 100, 1000, 4096, 9000][(tag % 5) as usize];
    tagged_batch(tag, records, value_bytes, 1_700_000_000_000 + tag as i64)
}

fn config(write_direct: bool) -> LogConfig {
    let mut config = small_config(3 << 20, 4096);
    config.write_direct = write_direct;
    config
}

/// Appends batches `tags` in one group (all queued before the writer runs), so a run can be
/// larger than one direct write.
async fn append_group(log: &Rc<PartitionLog>, tags: std::ops::Range<u64>) -> Vec<Vec<u8>> {
    let mut pending = Vec::new();
    let mut originals = Vec::new();
    for tag in tags {
        let batch = batch_for(tag);
        pending.push(log.begin_append(bytes_mut(&batch), 0).unwrap());
        originals.push(batch);
    }
    for outcome in pending {
        outcome.await.unwrap();
    }
    originals
}

/// What the log should hold: each batch with its offset written in.
fn expected(originals: &[Vec<u8>]) -> Vec<u8> {
    let mut offset = 0i64;
    let mut out = Vec::new();
    for original in originals {
        out.extend(as_stored(original, offset, 0));
        offset += split_batches(original)[0].0.record_count as i64;
    }
    out
}

async fn read_all(log: &PartitionLog) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = 0i64;
    while offset < log.high_watermark().get() {
        let bytes = log.read_bytes(offset, 1 << 30, true).await.unwrap();
        let batches = split_batches(&bytes);
        offset = batches.last().unwrap().0.last_offset().get() + 1;
        out.extend(bytes);
    }
    out
}

async fn segment_pages_cached(dir: &Path) -> (u64, u64) {
    let mut pages = 0;
    let mut cached = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "log") {
            let len = std::fs::metadata(&path).unwrap().len();
            let file = compio::fs::File::open(&path).await.unwrap();
            let residency = io::range_residency(&file, 0, len).unwrap();
            pages += residency.pages;
            cached += residency.cached_pages;
        }
    }
    (pages, cached)
}

#[test]
fn direct_writes_hold_the_same_bytes_across_groups_rolls_and_reopens() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    block_on(async {
        let mut originals = Vec::new();
        let (log, _) = PartitionLog::open(dir.path(), config(true)).await.unwrap();
        // One batch at a time, then a group of several MiB (several direct writes).
        for tag in 0..40 {
            originals.extend(append_group(&log, tag..tag + 1).await);
        }
        originals.extend(append_group(&log, 40..800).await);
        assert!(log.segment_count() > 1, "the appends rolled segments");
        assert_eq!(read_all(&log).await, expected(&originals));
        log.close().await.unwrap();
        drop(log);

        // After a clean close: the partial last block is read back and written on.
        let (log, _) = PartitionLog::open(dir.path(), config(true)).await.unwrap();
        originals.extend(append_group(&log, 800..900).await);
        assert_eq!(read_all(&log).await, expected(&originals));
        drop(log); // no close: a crash, as far as the files can tell

        let (log, report) = PartitionLog::open(dir.path(), config(true)).await.unwrap();
        assert!(!report.clean_shutdown);
        for (base_offset, recovery) in &report.recovery {
            assert_eq!(
                recovery.truncated_bytes, 0,
                "segment {base_offset}: the zeros after the last batch are dropped, not torn"
            );
        }
        originals.extend(append_group(&log, 900..1000).await);
        assert_eq!(read_all(&log).await, expected(&originals));
        log.close().await.unwrap();
        drop(log);

        // Buffered again over the same files: the formats do not differ.
        let (log, _) = PartitionLog::open(dir.path(), config(false)).await.unwrap();
        originals.extend(append_group(&log, 1000..1010).await);
        assert_eq!(read_all(&log).await, expected(&originals));
        log.close().await.unwrap();
    });
}

#[test]
fn direct_writes_leave_the_page_cache_alone_and_buffered_ones_fill_it() {
    for write_direct in [true, false] {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        block_on(async {
            let (log, _) = PartitionLog::open(dir.path(), config(write_direct))
                .await
                .unwrap();
            for tag in 0..200 {
                append_group(&log, tag..tag + 1).await;
            }
            let (pages, cached) = segment_pages_cached(dir.path()).await;
            assert!(pages > 100, "{pages} pages written");
            if write_direct {
                // A seal cuts the padding off the segment's last block, and the kernel reads
                // that block into the page cache to zero what follows the new size.
                let seals = log.segment_count() as u64 - 1;
                assert!(seals >= 1);
                assert!(
                    cached <= seals,
                    "direct writes cached {cached} of {pages} pages ({seals} seals)"
                );
            } else {
                // Every page written (the active segment's preallocated rest is not).
                assert!(
                    cached * 4096 >= log.size_bytes(),
                    "buffered writes left {cached} pages in the page cache for {} bytes",
                    log.size_bytes()
                );
            }
            log.close().await.unwrap();
        });
    }
}

#[test]
fn where_o_direct_is_refused_the_log_writes_through_the_page_cache() {
    let disk = ringtail_engine::io::sim::SimDisk::new(7);
    disk.refuse_direct_io();
    disk.create_dir_all_durable(Path::new("/data/refusing-0"));
    let _installed = io::disk::install_sim(&disk);
    block_on(async {
        let (log, _) = PartitionLog::open(Path::new("/data/refusing-0"), config(true))
            .await
            .unwrap();
        let mut originals = Vec::new();
        for tag in 0..20 {
            originals.extend(append_group(&log, tag..tag + 1).await);
        }
        originals.extend(append_group(&log, 20..400).await);
        assert!(!log.is_failed());
        assert_eq!(read_all(&log).await, expected(&originals));
        log.close().await.unwrap();
    });
}

#[test]
fn a_failed_direct_open_falls_back_to_buffered_writes() {
    // Not only EINVAL: with no `/proc` to reopen the segment through (ENOENT), or a permission
    // refused, the log writes buffered instead of failing every append until restart (and again
    // after it), as cold reads fall back for any failed direct open.
    for code in [libc::ENOENT, libc::EACCES] {
        let disk = ringtail_engine::io::sim::SimDisk::new(7);
        disk.fail_direct_opens(code);
        disk.create_dir_all_durable(Path::new("/data/no-proc-0"));
        let _installed = io::disk::install_sim(&disk);
        block_on(async {
            let (log, _) = PartitionLog::open(Path::new("/data/no-proc-0"), config(true))
                .await
                .unwrap();
            let mut originals = Vec::new();
            for tag in 0..20 {
                originals.extend(append_group(&log, tag..tag + 1).await);
            }
            assert!(!log.is_failed());
            assert_eq!(read_all(&log).await, expected(&originals));
            log.close().await.unwrap();
        });
    }
}

#[test]
fn reads_of_the_latest_direct_writes_are_planned_from_memory() {
    for tail_cache_bytes in [1 << 20, 0] {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        block_on(async {
            let mut config = config(true);
            config.tail_cache_bytes = tail_cache_bytes;
            let (log, _) = PartitionLog::open(dir.path(), config).await.unwrap();
            let mut originals = Vec::new();
            for tag in 0..300 {
                originals.extend(append_group(&log, tag..tag + 1).await);
            }
            let stored = expected(&originals);
            let end = log.high_watermark().get();
            let mut from_memory = 0u64;
            let mut offset = 0i64;
            while offset < end {
                let plan = log.read(offset, 64 << 10, true).await.unwrap();
                for slice in &plan.slices {
                    let file_bytes = log
                        .read_plan_bytes(&ringtail_engine::ReadPlan {
                            slices: vec![slice.clone()],
                            ..Default::default()
                        })
                        .await
                        .unwrap();
                    if let Some(memory) = &slice.memory {
                        assert_eq!(memory.concat(), file_bytes, "memory and file agree");
                        from_memory += slice.len;
                    }
                }
                let bytes = log.read_plan_bytes(&plan).await.unwrap();
                offset = split_batches(&bytes).last().unwrap().0.last_offset().get() + 1;
            }
            if tail_cache_bytes == 0 {
                assert_eq!(from_memory, 0);
            } else {
                // The active segment's last MiB, give or take a run.
                assert!(
                    from_memory > (tail_cache_bytes / 2) && from_memory <= tail_cache_bytes,
                    "{from_memory} bytes planned from memory"
                );
            }
            assert_eq!(read_all(&log).await, stored);
            log.close().await.unwrap();
        });
    }
}

#[test]
fn the_tail_cache_holds_its_write_buffers_not_the_producers_buffers() {
    // A cached slice of a producer's request would keep the whole request alive, however little
    // of it is this partition's: the cache holds the buffers the bytes were written from, and
    // counts what they hold.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), config(true)).await.unwrap();
        let mut producer_buffers = Vec::new();
        for tag in 0..50 {
            let batch = bytes::Bytes::from(batch_for(tag));
            let range = batch.as_ptr() as usize..batch.as_ptr() as usize + batch.len();
            producer_buffers.push((range, batch.clone()));
            log.append(batch, 0).await.unwrap();
        }
        let plan = log.read(0, 1 << 30, true).await.unwrap();
        let memory: Vec<&bytes::Bytes> = plan
            .slices
            .iter()
            .filter_map(|slice| slice.memory.as_ref())
            .flatten()
            .collect();
        assert!(!memory.is_empty(), "the tail is planned from memory");
        for piece in memory {
            let address = piece.as_ptr() as usize;
            assert!(
                producer_buffers
                    .iter()
                    .all(|(range, _)| !range.contains(&address)),
                "a cached piece points into a producer's buffer"
            );
        }
        // One segment, all of it cached; counted with the buffers' alignment (at most two
        // blocks a write, one write an append here).
        let held = ringtail_engine::log::tail_cache::shard_tail_cache_bytes();
        assert!(
            held >= log.size_bytes() && held <= log.size_bytes() + 50 * 8192,
            "{held} bytes held for {}",
            log.size_bytes()
        );
        log.close().await.unwrap();
        drop(log);
        assert_eq!(
            ringtail_engine::log::tail_cache::shard_tail_cache_bytes(),
            0
        );
    });
}

#[test]
fn turning_write_direct_off_or_the_cache_down_frees_an_idle_logs_cache() {
    // An operator lowers tail.cache.bytes (or turns write.direct off) to give memory back: an
    // idle partition, taking no more appends, must not keep holding it until its next write.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), config(true)).await.unwrap();
        let held = ringtail_engine::log::tail_cache::shard_tail_cache_bytes;
        for tag in 0..50 {
            append_group(&log, tag..tag + 1).await;
        }
        assert!(held() > 100 << 10, "{} bytes held", held());
        let mut smaller = config(true);
        smaller.tail_cache_bytes = 64 << 10;
        log.set_config(smaller);
        assert!(
            held() <= 64 << 10,
            "{} bytes held past the new bound",
            held()
        );
        let plan = log.read(0, 1 << 30, true).await.unwrap();
        log.read_plan_bytes(&plan).await.unwrap();
        log.set_config(config(false));
        assert_eq!(held(), 0, "write.direct off drops the cache");
        let plan = log.read(0, 1 << 30, true).await.unwrap();
        assert!(plan.slices.iter().all(|slice| slice.memory.is_none()));
        log.close().await.unwrap();
    });
}
