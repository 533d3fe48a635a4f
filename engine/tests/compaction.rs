//! Log compaction against a model: after a pass, reading the log gives exactly the latest record
//! of every key below the active segment (tombstones until their delete horizon), every
//! record at its original offset, with the log's offsets, indexes and recovery intact.
#![forbid(unsafe_code)]

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;

use common::{block_on, bytes_mut, small_config, split_batches};
use proptest::prelude::*;
use ringtail_engine::batch::{self, Compression, ProducerSpec, RecordSpec};
use ringtail_engine::cleaner;
use ringtail_engine::compaction::{PassOptions, StopPoint};
use ringtail_engine::compression::Framing;
use ringtail_engine::{AppendError, CleanupPolicy, LogConfig, PartitionLog};

const CODECS: [(Compression, Framing); 6] = [
    (Compression::None, Framing::Standard),
    (Compression::Gzip, Framing::Standard),
    (Compression::Snappy, Framing::SnappyXerial),
    (Compression::Snappy, Framing::SnappyRaw),
    (Compression::Lz4, Framing::Standard),
    (Compression::Zstd, Framing::Standard),
];

const TIMESTAMP_BASE: i64 = 1_700_000_000_000;
const DELETE_RETENTION_MS: u64 = 1_000;

fn compact_config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        cleanup_policy: CleanupPolicy::Compact,
        delete_retention_ms: DELETE_RETENTION_MS,
        ..small_config(segment_bytes, 256)
    }
}

/// One record as the model and the log see it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    offset: i64,
    key: Vec<u8>,
    value: Option<Vec<u8>>,
    /// The max timestamp of the batch it was appended in.
    batch_max_timestamp: i64,
    /// The record's own timestamp (base + delta), unchanged by any rebuild of its batch.
    timestamp: i64,
}

/// A batch to append: (key, value) pairs, a codec, a timestamp.
#[derive(Debug, Clone)]
struct Append {
    records: Vec<(u8, Option<u16>)>,
    codec: usize,
    timestamp: i64,
}

fn encode(append: &Append, producer: ProducerSpec) -> Vec<u8> {
    let keys: Vec<Vec<u8>> = append
        .records
        .iter()
        .map(|(key, _)| format!("key-{key}").into_bytes())
        .collect();
    let values: Vec<Option<Vec<u8>>> = append
        .records
        .iter()
        .map(|(key, value)| value.map(|value| format!("value-{key}-{value}-padding").into_bytes()))
        .collect();
    let specs: Vec<RecordSpec<'_>> = keys
        .iter()
        .zip(&values)
        .map(|(key, value)| RecordSpec {
            key: Some(key),
            value: value.as_deref(),
            timestamp_delta: 0,
        })
        .collect();
    let plain = batch::encode_batch(append.timestamp, &specs, producer);
    let (codec, framing) = CODECS[append.codec];
    cleaner::compress_batch(&plain, codec, framing).unwrap()
}

/// Every record in the log, decoded (decompressing), in log order.
async fn read_all(log: &PartitionLog) -> Vec<Record> {
    let bytes = log
        .read_bytes(log.log_start_offset().get(), u64::MAX, true)
        .await
        .unwrap();
    let mut out = Vec::new();
    for (header, bytes) in split_batches(&bytes) {
        let decoded = cleaner::decode_batch(&bytes).unwrap();
        for record in &decoded.records {
            out.push(Record {
                offset: header.base_offset.get() + i64::from(record.offset_delta),
                key: decoded.key(record).unwrap().to_vec(),
                value: (!record.is_tombstone).then(|| value_of(&decoded, record)),
                batch_max_timestamp: header.max_timestamp,
                timestamp: header.base_timestamp + record.timestamp_delta,
            });
        }
    }
    out
}

/// The value bytes of a record (the cleaner only tracks whether it is null).
fn value_of(decoded: &cleaner::DecodedBatch, record: &cleaner::RawRecord) -> Vec<u8> {
    let bytes = &decoded.records_area[record.span.clone()];
    let (_, used) = batch::read_varlong(bytes).unwrap();
    let body = &bytes[used..];
    let mut at = 1;
    for _ in 0..2 {
        at += batch::read_varlong(&body[at..]).unwrap().1;
    }
    let (key_length, used) = batch::read_varlong(&body[at..]).unwrap();
    at += used + key_length.max(0) as usize;
    let (value_length, used) = batch::read_varlong(&body[at..]).unwrap();
    at += used;
    body[at..at + value_length as usize].to_vec()
}

/// What passes must leave: below `clean_end`, each key's latest record, its tombstones only while
/// their delete horizon (set by the first pass, KIP-534) has not passed; from `clean_end` on,
/// everything.
fn model_after(records: &[Record], clean_end: i64, tombstones_expired: bool) -> Vec<Record> {
    let mut latest: HashMap<&[u8], i64> = HashMap::new();
    for record in records.iter().filter(|record| record.offset < clean_end) {
        latest.insert(&record.key, record.offset);
    }
    records
        .iter()
        .filter(|record| {
            record.offset >= clean_end
                || (latest[&record.key[..]] == record.offset
                    && !(record.value.is_none() && tombstones_expired))
        })
        .cloned()
        .collect()
}

async fn append_all(log: &Rc<PartitionLog>, appends: &[Append]) {
    for append in appends {
        log.append(bytes_mut(&encode(append, ProducerSpec::default())), 0)
            .await
            .unwrap();
    }
}

/// Checks that a read at every offset in `[start, end)` starts with the batch holding that offset
/// or, for a removed offset, with the next surviving batch; and that time lookups land in the
/// first batch whose max timestamp reaches the target.
async fn check_lookups(log: &PartitionLog, survivors: &[Record]) {
    let end = log.high_watermark().get();
    for offset in log.log_start_offset().get()..end {
        let bytes = log.read_bytes(offset, 1, true).await.unwrap();
        let next_survivor = survivors.iter().find(|record| record.offset >= offset);
        match (split_batches(&bytes).first(), next_survivor) {
            (Some((header, _)), Some(survivor)) => {
                assert!(
                    header.last_offset().get() >= offset,
                    "batch before {offset}"
                );
                // Nothing between the offset asked for and the batch returned was skipped (the batch
                // may hold only records below the offset: the consumer skips those, as in Kafka).
                assert!(
                    header.base_offset.get() <= survivor.offset,
                    "skipped {survivor:?}"
                );
            }
            (Some((header, _)), None) => {
                // Only a batch whose survivors lie below the offset may come back.
                assert!(header.base_offset.get() < offset && offset <= header.last_offset().get());
            }
            (None, None) => {}
            (first, survivor) => panic!("read at {offset}: {first:?} vs {survivor:?}"),
        }
    }
    let bytes = log
        .read_bytes(log.log_start_offset().get(), u64::MAX, true)
        .await
        .unwrap();
    let batches = split_batches(&bytes);
    for (header, _) in &batches {
        let found = log
            .offset_for_timestamp(header.max_timestamp)
            .await
            .unwrap();
        let first = batches
            .iter()
            .find(|(candidate, _)| candidate.max_timestamp >= header.max_timestamp)
            .unwrap();
        let (offset, _) = found.expect("a batch has this timestamp");
        assert!(first.0.base_offset <= offset && offset <= first.0.last_offset());
    }
}

fn append_strategy() -> impl Strategy<Value = Append> {
    (
        proptest::collection::vec((0u8..8, proptest::option::weighted(0.8, 0u16..1000)), 1..6),
        0usize..CODECS.len(),
        0i64..4_000,
    )
        .prop_map(|(records, codec, delta)| Append {
            records,
            codec,
            timestamp: TIMESTAMP_BASE + delta,
        })
}

fn run_model_case(appends: &[Append], tail: &[Append], now_delta: i64) {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), compact_config(2048))
            .await
            .unwrap();
        append_all(&log, appends).await;
        log.roll_now().await.unwrap();
        append_all(&log, tail).await;
        let before = read_all(&log).await;
        let (high_watermark, start) = (log.high_watermark().get(), log.log_start_offset().get());
        let clean_end = log.segment_base_offsets().last().unwrap().get();
        let now = TIMESTAMP_BASE + now_delta;
        let outcome = log.compact(now).await.unwrap();
        assert_eq!(outcome.clean_end_offset.get(), clean_end);
        let first = model_after(&before, clean_end, false);
        let after = read_all(&log).await;
        assert_eq!(after, first);
        assert!(after.windows(2).all(|pair| pair[0].offset < pair[1].offset));
        assert_eq!(log.high_watermark().get(), high_watermark);
        assert_eq!(log.log_start_offset().get(), start);
        check_lookups(&log, &after).await;
        // A second pass before the tombstones' horizon finds nothing more to do.
        let again = log.compact(now).await.unwrap();
        assert_eq!(again.records_removed, 0);
        assert_eq!(read_all(&log).await, first);
        // One at the horizon removes them.
        log.compact(now + DELETE_RETENTION_MS as i64).await.unwrap();
        let expected = model_after(&before, clean_end, true);
        assert_eq!(read_all(&log).await, expected);
        check_lookups(&log, &expected).await;
        log.close().await.unwrap();
        drop(log);
        let (log, _) = PartitionLog::open(dir.path(), compact_config(2048))
            .await
            .unwrap();
        assert_eq!(read_all(&log).await, expected, "after reopen");
        assert_eq!(log.high_watermark().get(), high_watermark);
        assert_eq!(log.log_start_offset().get(), start);
        check_lookups(&log, &expected).await;
        log.close().await.unwrap();
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn compaction_matches_the_model(
        appends in proptest::collection::vec(append_strategy(), 1..60),
        tail in proptest::collection::vec(append_strategy(), 0..4),
        now_delta in 0i64..6_000,
    ) {
        // The whole contract at once, over random keys, tombstones, codecs and segment rolls.
        run_model_case(&appends, &tail, now_delta);
    }
}

fn fixed_appends() -> Vec<Append> {
    (0..40)
        .map(|index| Append {
            records: vec![(
                index % 5,
                if index % 7 == 3 {
                    None
                } else {
                    Some(index.into())
                },
            )],
            codec: usize::from(index) % CODECS.len(),
            timestamp: TIMESTAMP_BASE + i64::from(index),
        })
        .collect()
}

#[test]
fn every_codec_is_cleaned_and_re_encoded_with_its_own_codec() {
    // Each codec on its own: batches lose records and keep their codec and framing.
    for (codec, expected) in CODECS.iter().enumerate() {
        let appends: Vec<Append> = (0..30)
            .map(|index| Append {
                records: (0..4)
                    .map(|record| ((index + record) % 6, Some(u16::from(index))))
                    .collect(),
                codec,
                timestamp: TIMESTAMP_BASE,
            })
            .collect();
        run_model_case(&appends, &[], 0);
        let dir = tempfile::tempdir().unwrap();
        block_on(async {
            let (log, _) = PartitionLog::open(dir.path(), compact_config(1 << 20))
                .await
                .unwrap();
            append_all(&log, &appends).await;
            log.roll_now().await.unwrap();
            log.compact(TIMESTAMP_BASE).await.unwrap();
            let bytes = log.read_bytes(0, u64::MAX, true).await.unwrap();
            for (_, bytes) in split_batches(&bytes) {
                let decoded = cleaner::decode_batch(&bytes).unwrap();
                assert_eq!((decoded.codec, decoded.framing), *expected);
            }
        });
    }
}

#[test]
fn a_planned_read_still_sees_the_old_segment() {
    // A zero-copy fetch planned before a cleaning holds the old file: it must read whole,
    // unchanged batches after the swap.
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), compact_config(4096))
            .await
            .unwrap();
        append_all(&log, &fixed_appends()).await;
        log.roll_now().await.unwrap();
        let before = log.read_bytes(0, u64::MAX, true).await.unwrap();
        let plan = log.read(0, u64::MAX, true).await.unwrap();
        let outcome = log.compact(TIMESTAMP_BASE).await.unwrap();
        assert!(outcome.records_removed > 0);
        let mut held = Vec::new();
        for slice in &plan.slices {
            held.extend_from_slice(
                &ringtail_engine::segment::walk::read_range(
                    &slice.file,
                    slice.position,
                    slice.len as usize,
                )
                .await
                .unwrap(),
            );
        }
        assert_eq!(held, before);
        assert!(log.read_bytes(0, u64::MAX, true).await.unwrap().len() < before.len());
    });
}

#[test]
fn idempotent_producers_survive_compaction_of_their_batches() {
    // Emptied batches are dropped; retries must still be recognised (the producer state lives in
    // the snapshot at the active segment's base, which the cleaner never touches).
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), compact_config(1 << 20))
            .await
            .unwrap();
        let producer = |sequence| ProducerSpec {
            producer_id: 42,
            producer_epoch: 0,
            base_sequence: sequence,
        };
        let batch = |sequence: i32| Append {
            records: vec![(1, Some(sequence as u16))],
            codec: 0,
            timestamp: TIMESTAMP_BASE,
        };
        for sequence in 0..5 {
            log.append(bytes_mut(&encode(&batch(sequence), producer(sequence))), 0)
                .await
                .unwrap();
        }
        log.roll_now().await.unwrap();
        let outcome = log.compact(TIMESTAMP_BASE).await.unwrap();
        assert_eq!(outcome.records_removed, 4);
        assert_eq!(read_all(&log).await.len(), 1);
        let retry = log
            .append(bytes_mut(&encode(&batch(3), producer(3))), 0)
            .await
            .unwrap();
        assert_eq!(
            retry.base_offset.get(),
            3,
            "a retry is answered with its first offset"
        );
        assert_eq!(log.high_watermark().get(), 5, "and not written again");
        log.close().await.unwrap();
        drop(log);
        let (log, _) = PartitionLog::open(dir.path(), compact_config(1 << 20))
            .await
            .unwrap();
        let retry = log
            .append(bytes_mut(&encode(&batch(4), producer(4))), 0)
            .await
            .unwrap();
        assert_eq!(
            (retry.base_offset.get(), log.high_watermark().get()),
            (4, 5)
        );
        let next = log
            .append(bytes_mut(&encode(&batch(5), producer(5))), 0)
            .await
            .unwrap();
        assert_eq!(next.base_offset.get(), 5, "the sequence goes on");
        assert!(matches!(
            log.append(bytes_mut(&encode(&batch(9), producer(9))), 0)
                .await,
            Err(AppendError::Sequence(_))
        ));
        log.close().await.unwrap();
    });
}

#[test]
fn keyless_records_are_refused_by_a_compacted_log_only() {
    // Kafka answers INVALID_RECORD for a null key in a compacted topic; a delete topic takes it.
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let keyless = batch::encode_uniform_batch(TIMESTAMP_BASE, 2, 10);
        let (log, _) = PartitionLog::open(&dir.path().join("c"), compact_config(4096))
            .await
            .unwrap();
        assert!(matches!(
            log.append(bytes_mut(&keyless), 0).await,
            Err(AppendError::NullKeyInCompactedLog { record_indexes }) if record_indexes == [0, 1]
        ));
        assert_eq!(log.high_watermark().get(), 0);
        let (plain, _) = PartitionLog::open(&dir.path().join("d"), small_config(4096, 256))
            .await
            .unwrap();
        plain.append(bytes_mut(&keyless), 0).await.unwrap();
    });
}

#[test]
fn retention_applies_to_compact_delete_only() {
    // compact,delete keeps both behaviours; compact alone never deletes by age.
    for (policy, deleted) in [
        (CleanupPolicy::Compact, false),
        (CleanupPolicy::CompactDelete, true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        block_on(async {
            let config = LogConfig {
                cleanup_policy: policy,
                retention_ms: Some(10),
                ..compact_config(1024)
            };
            let (log, _) = PartitionLog::open(dir.path(), config).await.unwrap();
            append_all(&log, &fixed_appends()).await;
            let segments = log.segment_count();
            let outcome = log
                .enforce_retention(TIMESTAMP_BASE + 100_000)
                .await
                .unwrap();
            assert_eq!(outcome.segments_deleted > 0, deleted, "{policy}");
            if !deleted {
                assert_eq!(log.segment_count(), segments);
            }
            let compacted = log.compact(TIMESTAMP_BASE).await.unwrap();
            let remaining = read_all(&log).await;
            let keys: std::collections::HashSet<_> = remaining.iter().map(|r| &r.key).collect();
            assert!(
                keys.len() == remaining.len()
                    || compacted.clean_end_offset.get() < log.high_watermark().get(),
                "{policy}: at most one record per key below the active segment"
            );
        });
    }
}

#[test]
fn cleaning_is_due_by_dirty_ratio_and_segment_ms_rolls_quiet_logs() {
    // Scheduling: a pass runs only when enough sealed bytes are dirty; a quiet log's active
    // segment is rolled after segment.ms so its records become cleanable.
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let config = compact_config(1 << 20);
        let shard =
            Rc::new(ringtail_engine::Shard::new(ringtail_engine::ShardId(0), dir.path()).unwrap());
        let log = shard
            .open_partition(ringtail_engine::TopicPartition::new("t", 0), config.clone())
            .await
            .unwrap();
        assert!(!log.cleaning_due());
        append_all(&log, &fixed_appends()).await;
        let before = read_all(&log).await.len();
        log.set_config(LogConfig {
            segment_ms: 1,
            ..config.clone()
        });
        compio::time::sleep(std::time::Duration::from_millis(5)).await;
        shard.compact_due().await;
        assert_eq!(log.segment_count(), 2, "rolled by segment.ms");
        assert!(read_all(&log).await.len() < before, "and compacted");
        assert!(!log.cleaning_due(), "clean after the pass");
        log.set_config(config);
        append_all(&log, &fixed_appends()[..2]).await;
        log.roll_now().await.unwrap();
        assert!(!log.cleaning_due(), "a little dirt is below the ratio");
        append_all(&log, &fixed_appends()).await;
        log.roll_now().await.unwrap();
        assert!(log.cleaning_due());
    });
}

fn leftover_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".cleaned") || name.ends_with(".swap"))
        .collect()
}

#[test]
fn a_crash_at_any_step_of_a_cleaning_recovers_to_old_or_new() {
    // Before the commit rename a crash leaves the old segment; after it, recovery completes the
    // install. Either way no leftovers, and the log reads, indexes and appends as before.
    for stop in [
        StopPoint::CleanedWritten,
        StopPoint::Committed,
        StopPoint::IndexesInstalled,
    ] {
        let dir = tempfile::tempdir().unwrap();
        block_on(async {
            let (log, _) = PartitionLog::open(dir.path(), compact_config(1 << 20))
                .await
                .unwrap();
            append_all(&log, &fixed_appends()).await;
            log.roll_now().await.unwrap();
            let before = read_all(&log).await;
            let high_watermark = log.high_watermark().get();
            let clean_end = log.segment_base_offsets().last().unwrap().get();
            let options = PassOptions {
                stop: Some(stop),
                ..PassOptions::default()
            };
            log.compact_with(TIMESTAMP_BASE, options).await.unwrap();
            assert!(
                !leftover_files(dir.path()).is_empty(),
                "{stop:?} leaves files"
            );
            drop(log); // a crash: no close
            let (log, _) = PartitionLog::open(dir.path(), compact_config(1 << 20))
                .await
                .unwrap();
            assert_eq!(leftover_files(dir.path()), Vec::<String>::new(), "{stop:?}");
            let after = read_all(&log).await;
            let expected = match stop {
                StopPoint::CleanedWritten => before.clone(),
                _ => model_after(&before, clean_end, false),
            };
            assert_eq!(after, expected, "{stop:?}");
            assert_eq!(log.high_watermark().get(), high_watermark);
            check_lookups(&log, &after).await;
            log.compact(TIMESTAMP_BASE).await.unwrap();
            assert_eq!(read_all(&log).await, model_after(&before, clean_end, false));
            log.close().await.unwrap();
        });
    }
}

#[test]
fn a_half_written_cleaned_file_is_removed_at_open() {
    // A crash while writing the copy leaves garbage under .cleaned names: never read, removed.
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), compact_config(1 << 20))
            .await
            .unwrap();
        append_all(&log, &fixed_appends()).await;
        log.roll_now().await.unwrap();
        let before = read_all(&log).await;
        log.close().await.unwrap();
        drop(log);
        let name = ringtail_engine::segment::log_file_name(ringtail_engine::Offset::ZERO);
        std::fs::write(dir.path().join(format!("{name}.cleaned")), vec![7u8; 100]).unwrap();
        std::fs::write(
            dir.path().join("00000000000000000000.index.cleaned"),
            [1u8; 8],
        )
        .unwrap();
        let (log, _) = PartitionLog::open(dir.path(), compact_config(1 << 20))
            .await
            .unwrap();
        assert!(leftover_files(dir.path()).is_empty());
        assert_eq!(read_all(&log).await, before);
    });
}

#[test]
fn a_key_map_too_small_for_the_log_converges_over_several_passes() {
    // With room for one segment's keys per pass, each pass maps the next dirty segment and
    // cleans everything up to it; the passes together reach what one full pass gives.
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), compact_config(1024))
            .await
            .unwrap();
        append_all(&log, &fixed_appends()).await;
        log.roll_now().await.unwrap();
        let sealed = log.segment_count() - 1;
        assert!(sealed > 3, "several segments: {sealed}");
        let before = read_all(&log).await;
        let clean_end = log.segment_base_offsets().last().unwrap().get();
        let options = PassOptions {
            key_map_bytes_max: 1,
            ..PassOptions::default()
        };
        let mut passes = 0;
        loop {
            let outcome = log.compact_with(TIMESTAMP_BASE, options).await.unwrap();
            passes += 1;
            assert!(passes <= sealed + 1, "no progress");
            if outcome.segments_mapped == 0 {
                break;
            }
            assert_eq!(outcome.segments_mapped, 1);
        }
        assert_eq!(read_all(&log).await, model_after(&before, clean_end, false));
        assert!(!log.cleaning_due());
    });
}

#[test]
fn appends_rolls_and_reads_during_a_pass_see_whole_batches() {
    // The pass runs on the shard beside appends (which roll segments) and fetches: reads in
    // between see whole, CRC-valid batches in offset order, and the end state is the model's.
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), compact_config(1024))
            .await
            .unwrap();
        append_all(&log, &fixed_appends()).await;
        log.roll_now().await.unwrap();
        let before = read_all(&log).await;
        let clean_end = log.segment_base_offsets().last().unwrap().get();
        let pass = compio::runtime::spawn({
            let log = Rc::clone(&log);
            async move { log.compact(TIMESTAMP_BASE).await.unwrap() }
        });
        let more = fixed_appends();
        for append in &more {
            log.append(bytes_mut(&encode(append, ProducerSpec::default())), 0)
                .await
                .unwrap();
            let seen = read_all(&log).await;
            assert!(seen.windows(2).all(|pair| pair[0].offset < pair[1].offset));
        }
        let outcome = pass.await.unwrap();
        assert_eq!(outcome.clean_end_offset.get(), clean_end);
        let mut expected = model_after(&before, clean_end, false);
        expected.extend(
            read_all(&log)
                .await
                .into_iter()
                .filter(|record| record.offset >= clean_end),
        );
        assert_eq!(read_all(&log).await, expected);
        assert_eq!(
            expected
                .iter()
                .filter(|record| record.offset >= clean_end)
                .count(),
            more.len() + before.iter().filter(|r| r.offset >= clean_end).count()
        );
        check_lookups(&log, &expected).await;
    });
}
