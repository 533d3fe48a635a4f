//! The partition log checked against a `Vec` model: random appends, random reads, reopen.
#![forbid(unsafe_code)]

mod common;

use common::*;
use proptest::prelude::*;
use ringtail_engine::{PartitionLog, ReadError};

/// Appends `sizes` (records, value bytes) and returns the model: (base offset, stored bytes).
async fn append_all(
    log: &std::rc::Rc<PartitionLog>,
    sizes: &[(usize, usize)],
    first_tag: u64,
) -> Vec<(i64, Vec<u8>)> {
    let mut model = Vec::new();
    for (index, (records, value_bytes)) in sizes.iter().enumerate() {
        let original = tagged_batch(
            first_tag + index as u64,
            *records,
            *value_bytes,
            1_000 + index as i64,
        );
        let outcome = log.append(bytes_mut(&original), 3).await.unwrap();
        assert_eq!(
            outcome.last_offset.since(outcome.base_offset) + 1,
            *records as i64
        );
        model.push((
            outcome.base_offset.get(),
            as_stored(&original, outcome.base_offset.get(), 3),
        ));
    }
    model
}

/// Checks a read against the model: starts at the batch holding `offset`, whole batches, in order,
/// within `max_bytes` unless a single batch is larger, and short of it by less than one index
/// interval (a plan may end at an indexed batch start instead of walking to the last one).
async fn check_read(
    log: &PartitionLog,
    model: &[(i64, Vec<u8>)],
    offset: i64,
    max_bytes: u64,
    index_interval_bytes: u32,
) {
    let bytes = log.read_bytes(offset, max_bytes, true).await.unwrap();
    let got = split_batches(&bytes);
    let first = model.iter().position(|(base, stored)| {
        let header = ringtail_engine::batch::parse_header(stored).unwrap();
        *base <= offset && offset <= header.last_offset().get()
    });
    let Some(first) = first else {
        assert!(got.is_empty(), "read at the end returns nothing");
        return;
    };
    assert!(
        !got.is_empty(),
        "a read inside the log returns at least one batch"
    );
    assert!(
        got.len() == 1 || bytes.len() as u64 <= max_bytes,
        "max_bytes respected"
    );
    for (index, (_, stored)) in got.iter().enumerate() {
        assert_eq!(
            stored,
            &model[first + index].1,
            "batch {} differs",
            first + index
        );
    }
    // The plan stops when the next batch would not fit, or within one index interval of where
    // it would: the batches left out that would have fitted are fewer bytes than the interval.
    let mut left_out = 0;
    for (_, next) in &model[first + got.len()..] {
        if bytes.len() + left_out + next.len() > max_bytes as usize {
            break;
        }
        left_out += next.len();
    }
    assert!(
        left_out == 0 || left_out < index_interval_bytes as usize,
        "read stopped {left_out} bytes early (index interval {index_interval_bytes})"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn reads_match_the_model_across_rolls_and_reopen(
        sizes in proptest::collection::vec((1usize..20, 1usize..400), 1..60),
        probes in proptest::collection::vec((any::<prop::sample::Index>(), 1u64..20_000), 1..20),
        segment_bytes in 1024u64..16_384,
        index_interval_bytes in 0u32..2048,
        write_inline in any::<bool>(),
        writeback in any::<bool>(),
    ) {
        // Guards offsets, segment rolls, index lookups and read boundaries, before and after restart.
        let dir = tempfile::tempdir().unwrap();
        block_on(async {
            let mut config = small_config(segment_bytes, index_interval_bytes);
            config.write_inline = write_inline;
            // Writeback started every 4 KiB (or never): submissions racing the rolls that close
            // the files they name.
            config.writeback_bytes = if writeback { 4096 } else { 0 };
            let (log, _) = PartitionLog::open(dir.path(), config.clone()).await.unwrap();
            let model = append_all(&log, &sizes, 0).await;
            let end = model.last().map(|(base, stored)| base + ringtail_engine::batch::parse_header(stored).unwrap().last_offset_delta as i64 + 1).unwrap();
            assert_eq!(log.high_watermark().get(), end);
            for (index, max_bytes) in &probes {
                check_read(&log, &model, index.index(end as usize + 1) as i64, *max_bytes, index_interval_bytes).await;
                // No room at all still gives the first batch whole (Kafka's minOneMessage).
                check_read(&log, &model, index.index(end as usize + 1) as i64, 0, index_interval_bytes).await;
            }
            assert!(matches!(log.read(end + 1, 100, true).await, Err(ReadError::OffsetOutOfRange { .. })));
            log.close().await.unwrap();
            drop(log);

            let (reopened, report) = PartitionLog::open(dir.path(), config).await.unwrap();
            assert!(report.recovery.iter().all(|(_, recovery)| recovery.truncated_bytes == 0));
            assert_eq!(reopened.high_watermark().get(), end);
            assert_eq!(reopened.segment_count(), log_segments(dir.path()));
            for (index, max_bytes) in &probes {
                check_read(&reopened, &model, index.index(end as usize + 1) as i64, *max_bytes, index_interval_bytes).await;
            }
            let more = append_all(&reopened, &sizes[..1], 1_000).await;
            assert_eq!(more[0].0, end, "appends continue at the recovered end");
        });
    }
}

/// A catch-up reader's plans need no header walk: each ends at an indexed batch start (or a
/// segment's end), and the next begins at that entry (or a segment's start), so cold data costs
/// no disk read before its bytes are sent. After a reopen, with the boundary cache of recent
/// writes empty.
#[test]
fn a_catch_up_readers_plans_need_no_header_walk_once_started() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let config = small_config(1 << 20, 4096);
        let (log, _) = PartitionLog::open(dir.path(), config.clone())
            .await
            .unwrap();
        // 600 batches of about 3 KiB over several 1 MiB segments.
        let sizes = vec![(3, 1_000); 600];
        let model = append_all(&log, &sizes, 0).await;
        let end = log.high_watermark().get();
        log.close().await.unwrap();
        drop(log);

        let (log, _) = PartitionLog::open(dir.path(), config).await.unwrap();
        let walks_before = log.stats().plan_walks;
        let (mut offset, mut reads, mut read_bytes) = (0i64, 0, 0);
        while offset < end {
            let bytes = log.read_bytes(offset, 100_000, true).await.unwrap();
            let batches = split_batches(&bytes);
            let (last, _) = batches
                .last()
                .expect("a read inside the log returns batches");
            offset = last.next_offset().get();
            reads += 1;
            read_bytes += bytes.len();
        }
        let walks = log.stats().plan_walks - walks_before;
        let stored: usize = model.iter().map(|(_, stored)| stored.len()).sum();
        assert_eq!(read_bytes, stored, "every batch read once");
        assert!(reads > 10, "many plans: {reads}");
        assert_eq!(walks, 0, "header walks over {reads} catch-up plans");
    });
}

fn log_segments(dir: &std::path::Path) -> usize {
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
fn concurrent_appends_get_contiguous_offsets_and_share_fsyncs() {
    // Group commit: appends waiting together become one write and one fdatasync, in order.
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let mut config = small_config(1 << 20, 4096);
        config.flush = ringtail_engine::FlushPolicy::EveryBatch;
        let (log, _) = PartitionLog::open(dir.path(), config).await.unwrap();
        let tasks: Vec<_> = (0..50)
            .map(|tag| {
                let log = log.clone();
                compio::runtime::spawn(async move {
                    log.append(bytes_mut(&tagged_batch(tag, 2, 50, 0)), 0)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap());
        }
        outcomes.sort_by_key(|outcome| outcome.base_offset);
        for (index, outcome) in outcomes.iter().enumerate() {
            assert_eq!(outcome.base_offset.get(), index as i64 * 2);
        }
        assert_eq!(
            log.durable_offset().get(),
            100,
            "every_batch acknowledges only durable data"
        );
        let syncs = log.stats().fsyncs;
        assert!(
            syncs < 50,
            "50 concurrent appends took {syncs} fsyncs: no group commit"
        );
    });
}

#[test]
fn bad_batches_are_refused_with_typed_errors() {
    // A corrupt or oversized batch never reaches the log and never panics.
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let mut config = small_config(1 << 20, 4096);
        config.max_message_bytes = 500;
        let (log, _) = PartitionLog::open(dir.path(), config).await.unwrap();
        let mut corrupt = tagged_batch(0, 2, 10, 0);
        *corrupt.last_mut().unwrap() ^= 1;
        let err = log.append(bytes_mut(&corrupt), 0).await.unwrap_err();
        assert!(matches!(
            err,
            ringtail_engine::AppendError::Batch(ringtail_engine::BatchError::CrcMismatch { .. })
        ));
        let err = log
            .append(bytes_mut(&tagged_batch(0, 2, 400, 0)), 0)
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            ringtail_engine::AppendError::Batch(ringtail_engine::BatchError::TooLarge { .. })
        ));
        assert_eq!(log.high_watermark().get(), 0);
    });
}

#[test]
fn lookup_by_timestamp_finds_the_first_record_at_or_after() {
    // ListOffsets by time: the first record whose timestamp reaches the target, across segments.
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), small_config(2048, 256))
            .await
            .unwrap();
        // Batch i holds 4 records stamped 10*i .. 10*i+3.
        for tag in 0..40u64 {
            let batch = tagged_batch(tag, 4, 60, tag as i64 * 10);
            log.append(bytes_mut(&batch), 0).await.unwrap();
        }
        assert!(log.segment_count() > 3);
        assert_eq!(
            log.offset_for_timestamp(0).await.unwrap(),
            Some((Offset::ZERO, 0))
        );
        assert_eq!(
            log.offset_for_timestamp(122).await.unwrap(),
            Some((Offset::new(50), 122))
        );
        assert_eq!(
            log.offset_for_timestamp(125).await.unwrap(),
            Some((Offset::new(52), 130))
        );
        assert_eq!(
            log.offset_for_timestamp(393).await.unwrap(),
            Some((Offset::new(159), 393))
        );
        assert_eq!(log.offset_for_timestamp(394).await.unwrap(), None);
    });
}
