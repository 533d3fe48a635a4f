//! The ingest rules against hand-built batches: each rule alone, the untouched fast path, and
//! the errors.
use super::*;
use crate::batch::{encode_uniform_batch, validate_all};
use crate::cleaner::{compress_batch, decode_batch};

const NOW_MS: i64 = 1_700_000_000_000;

fn rules() -> IngestRules {
    IngestRules {
        timestamp_type: TimestampType::CreateTime,
        timestamp_before_max_ms: i64::MAX,
        timestamp_after_max_ms: 3_600_000,
        compression: CompressionType::Producer,
        batch_bytes_max: 1 << 20,
    }
}

fn record_set(batches: &[Vec<u8>]) -> (Bytes, Vec<BatchHeader>) {
    let bytes = Bytes::from(batches.concat());
    let headers = validate_all(&bytes, 1 << 20, Strictness::Producer).unwrap();
    (bytes, headers)
}

#[test]
fn default_rules_keep_the_producer_bytes_untouched() {
    // The zero-copy append must stay zero-copy: the same buffer comes back, not a copy.
    let (records, headers) = record_set(&[encode_uniform_batch(NOW_MS, 3, 10)]);
    let ingested = ingest(records.clone(), headers.clone(), &rules(), NOW_MS).unwrap();
    assert_eq!(ingested.records.as_ptr(), records.as_ptr());
    assert_eq!(ingested.headers, headers);
}

#[test]
fn log_append_time_stamps_the_max_timestamp_and_the_attribute() {
    // Consumers take the batch's max timestamp as every record's time when bit 3 is set.
    let (records, headers) = record_set(&[
        encode_uniform_batch(12, 2, 10),
        encode_uniform_batch(34, 1, 10),
    ]);
    let rules = IngestRules {
        timestamp_type: TimestampType::LogAppendTime,
        ..rules()
    };
    let ingested = ingest(records, headers.clone(), &rules, NOW_MS).unwrap();
    assert_eq!(ingested.headers.len(), 2);
    for (stamped, original) in ingested.headers.iter().zip(&headers) {
        assert!(stamped.is_log_append_time());
        assert_eq!(stamped.max_timestamp, NOW_MS);
        assert_eq!(stamped.base_timestamp, original.base_timestamp);
        assert_eq!(stamped.record_count, original.record_count);
    }
}

#[test]
fn timestamps_outside_the_window_are_refused_under_create_time_only() {
    // Kafka's INVALID_TIMESTAMP: too far in the future (after.max.ms) or past (before.max.ms).
    let future = NOW_MS + 3_600_001;
    let (records, headers) = record_set(&[encode_uniform_batch(future, 1, 10)]);
    let err = ingest(records.clone(), headers.clone(), &rules(), NOW_MS).unwrap_err();
    assert!(
        matches!(err, AppendError::InvalidTimestamp { timestamp_ms, .. } if timestamp_ms == future)
    );
    let log_append = IngestRules {
        timestamp_type: TimestampType::LogAppendTime,
        ..rules()
    };
    assert!(ingest(records, headers, &log_append, NOW_MS).is_ok());
    let old = rules();
    let old = IngestRules {
        timestamp_before_max_ms: 1000,
        ..old
    };
    let (records, headers) = record_set(&[encode_uniform_batch(NOW_MS - 1001, 1, 10)]);
    assert!(ingest(records, headers, &old, NOW_MS).is_err());
    let (records, headers) = record_set(&[encode_uniform_batch(-1, 1, 10)]);
    assert!(
        ingest(records, headers, &old, NOW_MS).is_ok(),
        "no timestamp, no bound"
    );
}

#[test]
fn batches_are_recompressed_to_the_log_codec_with_their_records_kept() {
    // compression.type=gzip stores gzip whatever the producer sent; the records read back equal.
    let plain = encode_uniform_batch(NOW_MS, 5, 100);
    let lz4 = compress_batch(&plain, Compression::Lz4, Framing::Standard).unwrap();
    let (records, headers) = record_set(&[lz4, plain.clone()]);
    for target in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Zstd,
        Compression::None,
    ] {
        let rules = IngestRules {
            compression: CompressionType::Fixed(target),
            ..rules()
        };
        let ingested = ingest(records.clone(), headers.clone(), &rules, NOW_MS).unwrap();
        let mut position = 0;
        for header in &ingested.headers {
            assert_eq!(header.compression().unwrap(), target);
            let bytes = &ingested.records[position..position + header.total_bytes()];
            let decoded = decode_batch(bytes).unwrap();
            let original = decode_batch(&plain).unwrap();
            assert_eq!(decoded.records_area, original.records_area, "{target:?}");
            position += header.total_bytes();
        }
    }
}

#[test]
fn a_recompressed_batch_over_the_size_limit_is_refused() {
    // Recompression can grow a batch (uncompressed from gzip): it is checked again.
    let plain = encode_uniform_batch(NOW_MS, 50, 200);
    let gzip = compress_batch(&plain, Compression::Gzip, Framing::Standard).unwrap();
    let (records, headers) = record_set(std::slice::from_ref(&gzip));
    let rules = IngestRules {
        compression: CompressionType::Fixed(Compression::None),
        batch_bytes_max: gzip.len() + 1,
        ..rules()
    };
    let err = ingest(records, headers, &rules, NOW_MS).unwrap_err();
    assert!(
        matches!(err, AppendError::Batch(BatchError::TooLarge { .. })),
        "{err}"
    );
}

#[test]
fn config_names_parse_and_print_back() {
    for text in ["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"] {
        assert_eq!(text.parse::<CompressionType>().unwrap().to_string(), text);
    }
    assert!("brotli".parse::<CompressionType>().is_err());
    for text in ["CreateTime", "LogAppendTime"] {
        assert_eq!(text.parse::<TimestampType>().unwrap().to_string(), text);
    }
    assert!("createtime".parse::<TimestampType>().is_err());
}

/// A batch as librdkafka writes one whose messages carry no timestamp (-1): base timestamp -1,
/// every delta 0, and a max timestamp left at its initial 0, i.e. 1970.
fn timestampless_batch_claiming_max_zero() -> Vec<u8> {
    base_minus_one_batch_claiming_max_zero(0)
}

/// Base timestamp -1, a header max of 0, and two records whose deltas are 0 and `last_delta`.
fn base_minus_one_batch_claiming_max_zero(last_delta: i64) -> Vec<u8> {
    let record = |timestamp_delta| crate::batch::RecordSpec {
        key: Some(b"k"),
        value: Some(b"v"),
        timestamp_delta,
    };
    let mut bytes = crate::batch::encode_batch(
        -1,
        &[record(0), record(last_delta)],
        crate::batch::ProducerSpec::default(),
    );
    bytes[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&0i64.to_be_bytes());
    let crc = crc32c::crc32c(&bytes[ATTRIBUTES_OFFSET..]);
    bytes[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    bytes
}

#[test]
fn a_create_time_max_timestamp_is_the_records_own() {
    // Kafka sets a CreateTime batch's max timestamp to the largest of its records' (LogValidator),
    // whatever the producer wrote. librdkafka sends max 0 with records of no timestamp (-1):
    // kept as is, the segment looked 56 years old and retention deleted it at its next check
    // (librdkafka's 0053_stats consumed nothing).
    let (records, headers) = record_set(&[timestampless_batch_claiming_max_zero()]);
    assert_eq!(headers[0].max_timestamp, 0);
    let ingested = ingest(records, headers, &rules(), NOW_MS).unwrap();
    assert_eq!(ingested.headers[0].max_timestamp, -1);
    assert_eq!(ingested.headers[0].base_timestamp, -1);
    let decoded = decode_batch(&ingested.records).unwrap();
    assert_eq!(decoded.records.len(), 2);
}

#[test]
fn a_batch_with_an_unfounded_max_is_bounded_by_its_records_timestamps() {
    // Its header's max (0, 1970) is no record's time: the bounds apply to the records' own max,
    // as Kafka checks each record. Records without a timestamp pass a before.max.ms bound; a
    // record a month ahead is refused by after.max.ms although the header claims 1970.
    let week_ms = 7 * 24 * 3_600_000;
    let strict_past = IngestRules {
        timestamp_before_max_ms: week_ms,
        ..rules()
    };
    let (records, headers) = record_set(&[timestampless_batch_claiming_max_zero()]);
    let ingested = ingest(records, headers, &strict_past, NOW_MS).unwrap();
    assert_eq!(ingested.headers[0].max_timestamp, -1);

    let month_ahead = NOW_MS + 30 * 24 * 3_600_000;
    let (records, headers) = record_set(&[base_minus_one_batch_claiming_max_zero(month_ahead + 1)]);
    let err = ingest(records, headers, &rules(), NOW_MS).unwrap_err();
    assert!(
        matches!(err, AppendError::InvalidTimestamp { timestamp_ms, .. } if timestamp_ms == month_ahead),
        "{err}"
    );
}
