//! Unit and property tests of `batch.rs`.
use super::*;

const MAX: usize = 1 << 20;

fn sample() -> Vec<u8> {
    let records = [
        RecordSpec {
            key: Some(b"k1"),
            value: Some(b"v1"),
            timestamp_delta: 0,
        },
        RecordSpec {
            key: None,
            value: Some(b"value-two"),
            timestamp_delta: 5,
        },
        RecordSpec {
            key: Some(b"k3"),
            value: None,
            timestamp_delta: 9,
        },
    ];
    encode_batch(1_000, &records, ProducerSpec::default())
}

#[test]
fn encoded_batch_validates_with_its_fields() {
    // Guards the builder and the parser against each other on a known batch.
    let batch = sample();
    let header = validate(&batch, MAX, Strictness::Producer).unwrap();
    assert_eq!(header.record_count, 3);
    assert_eq!(header.last_offset_delta, 2);
    assert_eq!(header.base_timestamp, 1_000);
    assert_eq!(header.max_timestamp, 1_009);
    assert_eq!(header.total_bytes(), batch.len());
    assert_eq!(header.compression().unwrap(), Compression::None);
}

#[test]
fn offset_and_epoch_assignment_keeps_crc_valid() {
    // The broker's only writes must not invalidate the producer's checksum.
    let mut batch = sample();
    set_base_offset(&mut batch, Offset::new(4242));
    set_partition_leader_epoch(&mut batch, 7);
    let header = validate(&batch, MAX, Strictness::Producer).unwrap();
    assert_eq!(header.base_offset, Offset::new(4242));
    assert_eq!(header.partition_leader_epoch, 7);
    assert_eq!(header.last_offset(), Offset::new(4244));
}

#[test]
fn crc_is_castagnoli_not_ieee() {
    // Known CRC-32C check value: "123456789" -> 0xE3069283 (IEEE would be 0xCBF43926).
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
}

#[test]
fn each_error_kind_is_reported() {
    // One malformed input per error variant, none of them panics.
    let batch = sample();
    assert!(matches!(
        validate(&batch[..30], MAX, Strictness::Producer),
        Err(BatchError::Truncated { .. })
    ));
    assert!(matches!(
        validate(&batch, 10, Strictness::Producer),
        Err(BatchError::TooLarge { .. })
    ));
    let mut bad = batch.clone();
    bad[MAGIC_OFFSET] = 1;
    assert!(matches!(
        validate(&bad, MAX, Strictness::Producer),
        Err(BatchError::UnsupportedMagic { magic: 1 })
    ));
    let mut bad = batch.clone();
    *bad.last_mut().unwrap() ^= 0xff;
    assert!(matches!(
        validate(&bad, MAX, Strictness::Producer),
        Err(BatchError::CrcMismatch { .. })
    ));
    let mut bad = batch.clone();
    bad[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4].copy_from_slice(&5i32.to_be_bytes());
    assert!(matches!(
        validate(&bad, MAX, Strictness::Producer),
        Err(BatchError::BadLength { .. })
    ));
    assert!(matches!(
        validate_all(&[], MAX, Strictness::Producer),
        Err(BatchError::Empty)
    ));
}

#[test]
fn validate_all_walks_concatenated_batches() {
    // A produce request may carry several batches back to back for one partition.
    let mut set = sample();
    set.extend_from_slice(&encode_uniform_batch(5, 10, 100));
    let headers = validate_all(&set, MAX, Strictness::Producer).unwrap();
    assert_eq!(headers.len(), 2);
    assert_eq!(headers[1].record_count, 10);
    let torn = &set[..set.len() - 1];
    assert!(validate_all(torn, MAX, Strictness::Producer).is_err());
}

#[test]
fn finds_first_record_by_timestamp() {
    // ListOffsets by timestamp resolves to a record, not just a batch.
    let batch = sample();
    assert_eq!(first_record_at_or_after(&batch, 0), Some((0, 1_000)));
    assert_eq!(first_record_at_or_after(&batch, 1_001), Some((1, 1_005)));
    assert_eq!(first_record_at_or_after(&batch, 1_009), Some((2, 1_009)));
    assert_eq!(first_record_at_or_after(&batch, 1_010), None);
}

proptest::proptest! {
    #[test]
    fn any_corrupted_header_byte_is_caught_or_harmless(at in 0usize..HEADER_BYTES, flip in 1u8..=255, records in 1usize..8) {
        // Flip one byte of each header field in turn: inside the CRC'd region, or in the
        // length or magic, validation fails with a typed error; in base offset or leader
        // epoch (outside the CRC, written by the broker) the batch stays valid.
        let mut batch = encode_uniform_batch(1_000, records, 20);
        batch[at] ^= flip;
        let result = validate(&batch, MAX, Strictness::Producer);
        let outside_crc = at < BATCH_LENGTH_OFFSET || (LEADER_EPOCH_OFFSET..MAGIC_OFFSET).contains(&at);
        proptest::prop_assert_eq!(result.is_ok(), outside_crc, "byte {} -> {:?}", at, result);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
        // The decoder faces the network: garbage gets an error, never a panic.
        let _ = validate_all(&bytes, MAX, Strictness::Producer);
        let _ = validate(&bytes, MAX, Strictness::Stored);
        let _ = first_record_at_or_after(&bytes, 0);
    }
}

#[test]
fn records_decode_back_to_what_was_encoded() {
    // The broker's internal topics are read back through this decoder.
    let batch = sample();
    let records = decode_records(&batch).unwrap();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0].key, Some(&b"k1"[..]));
    assert_eq!(records[1].value, Some(&b"value-two"[..]));
    assert_eq!(records[2].value, None);
    assert_eq!(records[2].offset_delta, 2);
    assert_eq!(records[1].timestamp_delta, 5);
    assert!(decode_records(&batch[..40]).is_none());
}

#[test]
fn varlong_round_trips_edges() {
    for value in [
        0i64,
        1,
        -1,
        63,
        -64,
        64,
        i32::MAX as i64,
        i64::MIN,
        i64::MAX,
    ] {
        let mut out = Vec::new();
        write_varlong(&mut out, value);
        assert_eq!(read_varlong(&out), Some((value, out.len())));
    }
}

#[test]
fn checked_next_offset_refuses_offsets_that_do_not_fit() {
    // Found by fuzzing the offsets-log replay: a forged base offset near i64::MAX overflowed.
    let mut header = parse_header(&sample()).unwrap();
    header.base_offset = Offset::new(10);
    assert_eq!(
        header.checked_next_offset(),
        Ok(Offset::new(11 + i64::from(header.last_offset_delta)))
    );
    for base_offset in [i64::MAX - i64::from(header.last_offset_delta), -1] {
        header.base_offset = Offset::new(base_offset);
        assert!(
            matches!(
                header.checked_next_offset(),
                Err(BatchError::OffsetOutOfRange { .. })
            ),
            "base {base_offset}"
        );
    }
}
