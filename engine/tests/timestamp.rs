//! Timestamp lookups (ListOffsets by time and max-timestamp) answer a record's own offset, inside
//! compressed batches too, as Kafka does.
#![forbid(unsafe_code)]

mod common;

use common::*;
use ringtail_engine::batch::{self, Compression, ProducerSpec, RecordSpec};
use ringtail_engine::cleaner;
use ringtail_engine::compression::Framing;
use ringtail_engine::{Offset, PartitionLog};

/// Five records at 1000 + (0, 40, 10, 30, 20): the newest is the second, not the last.
fn unordered_batch(codec: Compression, framing: Framing) -> Vec<u8> {
    let deltas = [0i64, 40, 10, 30, 20];
    let specs: Vec<RecordSpec<'_>> = deltas
        .iter()
        .map(|&timestamp_delta| RecordSpec {
            key: None,
            value: Some(b"value"),
            timestamp_delta,
        })
        .collect();
    let plain = batch::encode_batch(1_000, &specs, ProducerSpec::default());
    if codec == Compression::None {
        plain
    } else {
        cleaner::compress_batch(&plain, codec, framing).unwrap()
    }
}

#[test]
fn lookups_find_the_record_inside_plain_and_compressed_batches() {
    // The batch at offsets 3..8 follows a plain one at 0..3; answers are record offsets.
    for (codec, framing) in [
        (Compression::None, Framing::Standard),
        (Compression::Gzip, Framing::Standard),
        (Compression::Zstd, Framing::Standard),
        (Compression::Snappy, Framing::SnappyXerial),
        (Compression::Lz4, Framing::Standard),
    ] {
        let dir = tempfile::tempdir().unwrap();
        block_on(async {
            let (log, _) = PartitionLog::open(dir.path(), small_config(1 << 20, 512))
                .await
                .unwrap();
            log.append(bytes_mut(&tagged_batch(0, 3, 10, 500)), 0)
                .await
                .unwrap();
            log.append(bytes_mut(&unordered_batch(codec, framing)), 0)
                .await
                .unwrap();
            assert_eq!(
                log.max_timestamp_offset().await.unwrap(),
                Some((Offset::new(4), 1_040)),
                "{codec:?}"
            );
            assert_eq!(
                log.offset_for_timestamp(1_025).await.unwrap(),
                Some((Offset::new(4), 1_040)),
                "{codec:?}: first record at or after, in offset order"
            );
            assert_eq!(
                log.offset_for_timestamp(1_005).await.unwrap(),
                Some((Offset::new(4), 1_040)),
                "{codec:?}"
            );
            assert_eq!(
                log.offset_for_timestamp(1_000).await.unwrap(),
                Some((Offset::new(3), 1_000))
            );
            assert_eq!(log.offset_for_timestamp(1_041).await.unwrap(), None);
        });
    }
}

/// A keyed batch of records at `base` + their deltas.
fn keyed(base: i64, records: &[(&[u8], i64)]) -> Vec<u8> {
    let specs: Vec<RecordSpec<'_>> = records
        .iter()
        .map(|&(key, timestamp_delta)| RecordSpec {
            key: Some(key),
            value: Some(b"value"),
            timestamp_delta,
        })
        .collect();
    batch::encode_batch(base, &specs, ProducerSpec::default())
}

#[test]
fn compaction_removing_the_newest_record_lowers_the_max_timestamp() {
    // Kafka's cleaner rebuilds a partly kept batch with the largest timestamp of the records it
    // keeps (MemoryRecords.filterTo), and indexes the cleaned segment by it: max-timestamp
    // lookups answer a record that exists, never a removed one's timestamp.
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let config = ringtail_engine::LogConfig {
            cleanup_policy: ringtail_engine::CleanupPolicy::Compact,
            ..small_config(1 << 20, 64)
        };
        let (log, _) = PartitionLog::open(dir.path(), config.clone())
            .await
            .unwrap();
        // Offsets 0 (a @1000) and 1 (b @1050, the newest), then 2 (b @1010) replaces b.
        log.append(bytes_mut(&keyed(1_000, &[(b"a", 0), (b"b", 50)])), 0)
            .await
            .unwrap();
        log.append(bytes_mut(&keyed(1_010, &[(b"b", 0)])), 0)
            .await
            .unwrap();
        log.roll_now().await.unwrap();
        log.append(bytes_mut(&keyed(1_005, &[(b"c", 0)])), 0)
            .await
            .unwrap();
        assert_eq!(
            log.max_timestamp_offset().await.unwrap(),
            Some((Offset::new(1), 1_050))
        );
        let pass = log.compact(2_000).await.unwrap();
        assert_eq!(pass.records_removed, 1);
        let bytes = log.read_bytes(0, u64::MAX / 4, true).await.unwrap();
        let headers: Vec<_> = split_batches(&bytes).into_iter().map(|(h, _)| h).collect();
        assert_eq!(headers[0].base_timestamp, 1_000);
        assert_eq!(headers[0].max_timestamp, 1_000, "the kept record's");
        let expected = Some((Offset::new(2), 1_010));
        assert_eq!(log.max_timestamp_offset().await.unwrap(), expected);
        assert_eq!(log.offset_for_timestamp(1_001).await.unwrap(), expected);
        assert_eq!(log.offset_for_timestamp(1_011).await.unwrap(), None);
        // The same after a restart, from the cleaned segment's time index.
        log.close().await.unwrap();
        drop(log);
        let (log, _) = PartitionLog::open(dir.path(), config).await.unwrap();
        assert_eq!(log.max_timestamp_offset().await.unwrap(), expected);
        assert_eq!(log.offset_for_timestamp(1_011).await.unwrap(), None);
    });
}
