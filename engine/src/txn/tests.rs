//! Unit and property tests of the transaction table, the marker parser and the `.txnindex` codec.
#![forbid(unsafe_code)]

use proptest::prelude::*;

use super::encode::{control_batch, transactional_batch};
use super::index_file::{decode, encode, ENTRY_BYTES};
use super::*;
use crate::batch::{encode_batch, parse_header, set_base_offset, ProducerSpec, RecordSpec};

fn header_at(mut bytes: Vec<u8>, offset: i64) -> (BatchHeader, Vec<u8>) {
    set_base_offset(&mut bytes, Offset::new(offset));
    (parse_header(&bytes).unwrap(), bytes)
}

fn data(producer_id: i64, offset: i64) -> (BatchHeader, Vec<u8>) {
    let record = RecordSpec {
        key: Some(b"k"),
        value: Some(b"v"),
        timestamp_delta: 0,
    };
    let producer = ProducerSpec {
        producer_id,
        producer_epoch: 0,
        base_sequence: 0,
    };
    header_at(transactional_batch(0, &[record], producer), offset)
}

fn marker(producer_id: i64, marker: ControlMarker, offset: i64) -> (BatchHeader, Vec<u8>) {
    header_at(control_batch(0, producer_id, 0, marker, 3), offset)
}

#[test]
fn markers_parse_and_garbled_ones_are_refused() {
    // A coordinator's marker is read back as written; anything else is a typed error.
    for kind in [ControlMarker::Abort, ControlMarker::Commit] {
        let (header, bytes) = marker(5, kind, 10);
        assert!(header.is_control() && header.is_transactional());
        assert_eq!(header.base_sequence, -1, "markers never touch sequences");
        assert_eq!(parse_control_marker(&bytes), Ok(kind));
        assert_eq!(markers_of(&bytes, &[header]), Ok(vec![Some(kind)]));
    }
    let record = RecordSpec {
        key: Some(&[0, 0, 0, 7]),
        value: None,
        timestamp_delta: 0,
    };
    let bad_type = encode_batch(0, &[record], ProducerSpec::default());
    assert!(matches!(
        parse_control_marker(&bad_type),
        Err(BatchError::BadControlBatch { .. })
    ));
    let short = RecordSpec {
        key: Some(&[0]),
        ..RecordSpec::default()
    };
    assert!(parse_control_marker(&encode_batch(0, &[short], ProducerSpec::default())).is_err());
    let two = RecordSpec {
        key: Some(&[0, 0, 0, 1]),
        ..RecordSpec::default()
    };
    let pair = encode_batch(0, &[two.clone(), two], ProducerSpec::default());
    assert!(
        parse_control_marker(&pair).is_err(),
        "one record per marker"
    );
}

#[test]
fn an_abort_records_its_range_and_the_lso_holds_at_the_oldest_open() {
    // LSO bound and aborted entries for interleaved transactions of two producers.
    let mut open = OpenTransactions::default();
    let note = |open: &mut OpenTransactions, (header, bytes): (BatchHeader, Vec<u8>)| {
        let marker = header
            .is_control()
            .then(|| parse_control_marker(&bytes).unwrap());
        open.note(&header, marker)
    };
    assert_eq!(note(&mut open, data(1, 0)), None);
    assert_eq!(note(&mut open, data(2, 1)), None);
    assert_eq!(
        note(&mut open, data(1, 2)),
        None,
        "still the first batch's offset"
    );
    assert_eq!(open.first_unstable(), Some(Offset::new(0)));
    assert_eq!(note(&mut open, marker(1, ControlMarker::Commit, 3)), None);
    assert_eq!(open.first_unstable(), Some(Offset::new(1)));
    let aborted = note(&mut open, marker(2, ControlMarker::Abort, 4)).unwrap();
    assert_eq!(
        aborted,
        AbortedTxn {
            producer_id: 2,
            first_offset: Offset::new(1),
            last_offset: Offset::new(4),
            last_stable_offset: Offset::new(5),
        }
    );
    assert!(open.is_empty());
    // A marker without an open transaction aborts its own offset only.
    let lone = note(&mut open, marker(9, ControlMarker::Abort, 7)).unwrap();
    assert_eq!(
        (lone.first_offset, lone.last_offset),
        (Offset::new(7), Offset::new(7))
    );
    // Non-transactional batches are none of its business.
    let plain = header_at(
        encode_batch(0, &[RecordSpec::default()], ProducerSpec::default()),
        8,
    );
    assert_eq!(note(&mut open, plain), None);
    assert!(open.is_empty());
}

#[test]
fn aborted_set_knows_aborted_data_batches_only() {
    // Compaction asks it batch by batch: markers and committed data are never "aborted".
    let entry = AbortedTxn {
        producer_id: 2,
        first_offset: Offset::new(10),
        last_offset: Offset::new(20),
        last_stable_offset: Offset::new(21),
    };
    let set = AbortedSet::new([&entry]);
    assert!(set.holds(&data(2, 15).0));
    assert!(!set.holds(&data(2, 21).0));
    assert!(!set.holds(&data(3, 15).0));
    assert!(!set.holds(&marker(2, ControlMarker::Abort, 20).0));
}

#[test]
fn torn_and_garbled_index_files_are_refused() {
    // Recovery rebuilds any index this refuses; one it accepts is exactly what was written.
    let entries = vec![
        AbortedTxn {
            producer_id: 1,
            first_offset: Offset::new(100),
            last_offset: Offset::new(110),
            last_stable_offset: Offset::new(111),
        },
        AbortedTxn {
            producer_id: 2,
            first_offset: Offset::new(90),
            last_offset: Offset::new(120),
            last_stable_offset: Offset::new(121),
        },
    ];
    let bytes = encode(&entries);
    assert_eq!(bytes.len(), 2 * ENTRY_BYTES);
    let (base, next) = (Offset::new(100), Offset::new(200));
    assert_eq!(decode(&bytes, base, next), Some(entries.clone()));
    assert_eq!(decode(&bytes[..ENTRY_BYTES + 5], base, next), None, "torn");
    assert_eq!(
        decode(&bytes, Offset::new(115), next),
        None,
        "outside the segment"
    );
    let mut swapped = encode(&entries[1..]);
    swapped.extend(encode(&entries[..1]));
    assert_eq!(decode(&swapped, base, next), None, "out of order");
    let mut bad_version = bytes.clone();
    bad_version[1] = 1;
    assert_eq!(decode(&bad_version, base, next), None);
}

proptest! {
    #[test]
    fn index_decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode(&bytes, Offset::ZERO, Offset::new(i64::MAX));
    }

    #[test]
    fn marker_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_control_marker(&bytes);
    }
}
