//! What compaction deletes over time, as Kafka's cleaner does: tombstones only after a delete
//! horizon set when they were first cleaned (KIP-534: attributes bit 6, the horizon in the base
//! timestamp, record timestamps rebased so readers see them unchanged).
#![forbid(unsafe_code)]

mod common;

use common::{block_on, bytes_mut, small_config, split_batches};
use ringtail_engine::batch::{self, Compression, ProducerSpec, RecordSpec};
use ringtail_engine::cleaner;
use ringtail_engine::compression::Framing;
use ringtail_engine::{CleanupPolicy, LogConfig, PartitionLog};

const CODECS: [(Compression, Framing); 6] = [
    (Compression::None, Framing::Standard),
    (Compression::Gzip, Framing::Standard),
    (Compression::Snappy, Framing::SnappyXerial),
    (Compression::Snappy, Framing::SnappyRaw),
    (Compression::Lz4, Framing::Standard),
    (Compression::Zstd, Framing::Standard),
];

/// A producer clock far behind the broker's: the tombstone is "old" the moment it is written.
const PRODUCER_TIMESTAMP: i64 = 1_600_000_000_000;
const DELETE_RETENTION_MS: u64 = 60_000;
const ATTR_DELETE_HORIZON: i16 = 0x40;

fn compact_config() -> LogConfig {
    LogConfig {
        cleanup_policy: CleanupPolicy::Compact,
        delete_retention_ms: DELETE_RETENTION_MS,
        ..small_config(1 << 20, 256)
    }
}

/// One record as a reader decodes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    offset: i64,
    key: Vec<u8>,
    tombstone: bool,
    /// base timestamp + the record's timestamp delta: what a client reports.
    timestamp: i64,
}

/// The timestamp delta of a record, from its bytes (length, attributes, then the delta).
fn timestamp_delta(decoded: &cleaner::DecodedBatch, record: &cleaner::RawRecord) -> i64 {
    let bytes = &decoded.records_area[record.span.clone()];
    let (_, used) = batch::read_varlong(bytes).unwrap();
    batch::read_varlong(&bytes[used + 1..]).unwrap().0
}

/// Every batch header and record of the log, read as a consumer would.
async fn read_all(log: &PartitionLog) -> (Vec<batch::BatchHeader>, Vec<Seen>) {
    let bytes = log
        .read_bytes(log.log_start_offset().get(), u64::MAX / 4, true)
        .await
        .unwrap();
    let mut headers = Vec::new();
    let mut seen = Vec::new();
    for (header, bytes) in split_batches(&bytes) {
        headers.push(header);
        if header.is_control() {
            continue;
        }
        let decoded = cleaner::decode_batch(&bytes).unwrap();
        for record in &decoded.records {
            seen.push(Seen {
                offset: header.base_offset.get() + i64::from(record.offset_delta),
                key: decoded.key(record).unwrap().to_vec(),
                tombstone: record.is_tombstone,
                timestamp: header.base_timestamp + timestamp_delta(&decoded, record),
            });
        }
    }
    (headers, seen)
}

/// A record to write: key, value (`None`: a tombstone), timestamp delta.
type Written<'a> = (&'a [u8], Option<&'a [u8]>, i64);

fn keyed_batch(records: &[Written<'_>], codec: usize) -> Vec<u8> {
    let specs: Vec<RecordSpec<'_>> = records
        .iter()
        .map(|(key, value, timestamp_delta)| RecordSpec {
            key: Some(key),
            value: *value,
            timestamp_delta: *timestamp_delta,
        })
        .collect();
    let plain = batch::encode_batch(PRODUCER_TIMESTAMP, &specs, ProducerSpec::default());
    let (codec, framing) = CODECS[codec];
    cleaner::compress_batch(&plain, codec, framing).unwrap()
}

#[test]
fn a_tombstone_outlives_its_first_cleaning_by_delete_retention_ms() {
    // KIP-534: the first pass keeps the tombstone and stamps its batch with a delete horizon
    // (now + delete.retention.ms); only a pass at or after that horizon removes it, however old
    // the producer's timestamp. Consumers still see every record's own timestamp.
    for codec in 0..CODECS.len() {
        let dir = tempfile::tempdir().unwrap();
        block_on(async {
            let (log, _) = PartitionLog::open(dir.path(), compact_config())
                .await
                .unwrap();
            let first = keyed_batch(&[(b"a", Some(b"1"), 0), (b"b", Some(b"2"), 3)], codec);
            let second = keyed_batch(&[(b"b", Some(b"3"), 0), (b"a", None, 7)], codec);
            for bytes in [first, second] {
                log.append(bytes_mut(&bytes), 0).await.unwrap();
            }
            log.roll_now().await.unwrap();
            log.append(bytes_mut(&keyed_batch(&[(b"c", Some(b"4"), 0)], 0)), 0)
                .await
                .unwrap();
            let (_, before) = read_all(&log).await;

            let now = PRODUCER_TIMESTAMP + 100 * DELETE_RETENTION_MS as i64;
            let horizon = now + DELETE_RETENTION_MS as i64;
            log.compact(now).await.unwrap();
            let (headers, seen) = read_all(&log).await;
            let tombstone = before[3].clone();
            assert!(tombstone.tombstone);
            assert_eq!(
                seen,
                vec![before[2].clone(), tombstone.clone(), before[4].clone()],
                "codec {codec}: the tombstone stays through its first cleaning, timestamps unchanged"
            );
            let stamped = headers[0];
            assert_ne!(stamped.attributes & ATTR_DELETE_HORIZON, 0, "codec {codec}");
            assert_eq!(stamped.base_timestamp, horizon, "codec {codec}");
            assert_eq!(stamped.max_timestamp, PRODUCER_TIMESTAMP + 7);
            if codec == 0 {
                client_decodes_the_stamped_batch(&log, &seen).await;
            }

            let again = log.compact(horizon - 1).await.unwrap();
            assert_eq!(
                again.records_removed, 0,
                "codec {codec}: before the horizon"
            );
            assert_eq!(read_all(&log).await.1, seen);

            let last = log.compact(horizon).await.unwrap();
            assert_eq!(last.records_removed, 1, "codec {codec}: at the horizon");
            assert_eq!(
                read_all(&log).await.1,
                vec![before[2].clone(), before[4].clone()]
            );
            // The stamped batch survives a restart as it was written.
            log.close().await.unwrap();
            drop(log);
            let (log, _) = PartitionLog::open(dir.path(), compact_config())
                .await
                .unwrap();
            assert_eq!(
                read_all(&log).await.1,
                vec![before[2].clone(), before[4].clone()]
            );
            log.close().await.unwrap();
        });
    }
}

/// A Kafka client's decoder (kafka-protocol's, as the Java client does) reads the stamped batch:
/// the bit is seen and every record keeps its offset, key, null value and timestamp.
async fn client_decodes_the_stamped_batch(log: &PartitionLog, seen: &[Seen]) {
    use kafka_protocol::records::RecordBatchDecoder;
    let bytes = log
        .read_bytes(log.log_start_offset().get(), u64::MAX / 4, true)
        .await
        .unwrap();
    let mut buf = bytes::Bytes::from(bytes);
    let sets = RecordBatchDecoder::decode_all(&mut buf).unwrap();
    let records: Vec<_> = sets.iter().flat_map(|set| set.records.iter()).collect();
    assert_eq!(records.len(), seen.len());
    assert!(records[0].delete_horizon && records[1].delete_horizon);
    for (record, expected) in records.iter().zip(seen) {
        assert_eq!(record.offset, expected.offset);
        assert_eq!(record.key.as_deref(), Some(&expected.key[..]));
        assert_eq!(record.value.is_none(), expected.tombstone);
        assert_eq!(record.timestamp, expected.timestamp, "{record:?}");
    }
}

#[test]
fn a_quiet_compacted_log_is_cleaned_again_once_a_delete_horizon_passes() {
    // Nothing new is written after the pass that stamped the tombstone: no dirty bytes, so the
    // dirty ratio never calls for a pass. The horizon does (Kafka's cleaner picks logs whose
    // delete horizon passed too), else the tombstone would stay for ever.
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), compact_config())
            .await
            .unwrap();
        let batch = keyed_batch(&[(b"a", Some(b"1"), 0), (b"a", None, 1)], 0);
        log.append(bytes_mut(&batch), 0).await.unwrap();
        log.roll_now().await.unwrap();
        log.append(bytes_mut(&keyed_batch(&[(b"c", Some(b"4"), 0)], 0)), 0)
            .await
            .unwrap();
        let now = PRODUCER_TIMESTAMP + 100 * DELETE_RETENTION_MS as i64;
        let horizon = now + DELETE_RETENTION_MS as i64;
        let first = log.compact_if_due(now).await.unwrap();
        assert!(first.is_some(), "the new segment is dirty");
        assert!(read_all(&log).await.1.iter().any(|seen| seen.tombstone));
        assert!(!log.cleaning_due(), "nothing dirty is left");

        assert!(!log.delete_horizon_passed(horizon - 1));
        assert!(log.compact_if_due(horizon - 1).await.unwrap().is_none());
        assert!(log.delete_horizon_passed(horizon));
        let pass = log.compact_if_due(horizon).await.unwrap();
        assert_eq!(pass.map(|pass| pass.records_removed), Some(1));
        let (_, seen) = read_all(&log).await;
        assert!(seen.iter().all(|seen| !seen.tombstone), "{seen:?}");
        // Nothing is left to wait for: no more passes on a quiet log.
        assert!(!log.delete_horizon_passed(i64::MAX));
        assert!(log.compact_if_due(horizon + 1).await.unwrap().is_none());
        log.close().await.unwrap();
    });
}
