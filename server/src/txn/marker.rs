//! Transaction markers (control batches) as Kafka writes them, and the transactional batches the
//! coordinators write themselves. The read side (LSO, aborted-transaction index) knows them by
//! these bytes only.
//!
//! # Byte map of a marker (a RecordBatch v2 with one record)
//! ```text
//! header      attributes 0x30 (transactional | control), producer id and epoch of the
//!             transaction, base sequence -1, one record
//! record key  version i16 = 0, type i16 (0 ABORT, 1 COMMIT)          4 bytes
//! record value version i16 = 0, coordinator epoch i32                 6 bytes
//! ```
#![forbid(unsafe_code)]

use ringtail_engine::batch::{
    encode_batch, ProducerSpec, RecordSpec, ATTRIBUTES_OFFSET, CRC_OFFSET,
};

/// The attribute bits of a transactional batch and of a control batch (Kafka's RecordBatch).
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
pub const ATTR_CONTROL: i16 = 0x20;

/// The coordinator epoch written in markers: one broker, one coordinator, never moved.
pub const COORDINATOR_EPOCH: i32 = 0;

/// Which way a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerType {
    Abort = 0,
    Commit = 1,
}

/// A transaction's producer as markers carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnProducer {
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// Sets a batch's attributes and recomputes its CRC (which covers everything from attributes on).
fn set_attributes(batch: &mut [u8], attributes: i16) {
    batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    let crc = ringtail_engine::checksum::crc32c(&batch[ATTRIBUTES_OFFSET..]);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// The marker ending `producer`'s transaction on one partition, stamped `now_ms`.
pub fn encode_marker(producer: TxnProducer, marker: MarkerType, now_ms: i64) -> Vec<u8> {
    let mut key = [0u8; 4];
    key[2..].copy_from_slice(&(marker as i16).to_be_bytes());
    let mut value = [0u8; 6];
    value[2..].copy_from_slice(&COORDINATOR_EPOCH.to_be_bytes());
    let record = RecordSpec {
        key: Some(&key),
        value: Some(&value),
        timestamp_delta: 0,
    };
    let spec = ProducerSpec {
        producer_id: producer.producer_id,
        producer_epoch: producer.producer_epoch,
        base_sequence: -1,
    };
    let mut batch = encode_batch(now_ms, &[record], spec);
    set_attributes(&mut batch, ATTR_TRANSACTIONAL | ATTR_CONTROL);
    batch
}

/// A transactional (not control) batch of `producer`: what the group coordinator writes for
/// TxnOffsetCommit. Base sequence -1: the coordinator's own writes are not sequence-checked.
pub fn encode_transactional(
    producer: TxnProducer,
    records: &[RecordSpec<'_>],
    now_ms: i64,
) -> Vec<u8> {
    let spec = ProducerSpec {
        producer_id: producer.producer_id,
        producer_epoch: producer.producer_epoch,
        base_sequence: -1,
    };
    let mut batch = encode_batch(now_ms, records, spec);
    set_attributes(&mut batch, ATTR_TRANSACTIONAL);
    batch
}

/// The marker type of a control record's key, if it is one Kafka defines.
#[cfg(test)]
fn marker_type(key: &[u8]) -> Option<MarkerType> {
    let version = i16::from_be_bytes(key.get(0..2)?.try_into().ok()?);
    let kind = i16::from_be_bytes(key.get(2..4)?.try_into().ok()?);
    match (version, kind) {
        (0, 0) => Some(MarkerType::Abort),
        (0, 1) => Some(MarkerType::Commit),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringtail_engine::batch::{decode_records, parse_header};

    #[test]
    fn a_marker_is_a_valid_control_batch_with_kafkas_record() {
        let producer = TxnProducer {
            producer_id: 42,
            producer_epoch: 3,
        };
        let bytes = encode_marker(producer, MarkerType::Commit, 1_000);
        let header = parse_header(&bytes).unwrap();
        assert!(header.is_control());
        assert!(header.is_transactional());
        assert_eq!(header.attributes, 0x30);
        assert_eq!(header.producer_id, 42);
        assert_eq!(header.producer_epoch, 3);
        assert_eq!(header.base_sequence, -1);
        ringtail_engine::batch::validate(
            &bytes,
            1 << 20,
            ringtail_engine::batch::Strictness::Producer,
        )
        .unwrap();
        let records = decode_records(&bytes).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].key, Some(&[0u8, 0, 0, 1][..]));
        assert_eq!(records[0].value, Some(&[0u8, 0, 0, 0, 0, 0][..]));
        assert_eq!(
            marker_type(records[0].key.unwrap()),
            Some(MarkerType::Commit)
        );
        let abort = encode_marker(producer, MarkerType::Abort, 1_000);
        let records = decode_records(&abort).unwrap();
        assert_eq!(
            marker_type(records[0].key.unwrap()),
            Some(MarkerType::Abort)
        );
    }
}
