//! Transactional and control batches built by hand, for tests and tools (the coordinator in the
//! broker builds its own markers; the engine only reads them).
#![forbid(unsafe_code)]

use super::ControlMarker;
use crate::batch::{self, ProducerSpec, RecordSpec};

const ATTRIBUTES_AT: usize = batch::ATTRIBUTES_OFFSET;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;

/// Sets a batch's attributes and recomputes its CRC (attributes lie inside it).
fn set_attributes(bytes: &mut [u8], attributes: i16) {
    bytes[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    let crc = crate::checksum::crc32c(&bytes[ATTRIBUTES_AT..]);
    bytes[batch::CRC_OFFSET..batch::CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// An uncompressed transactional data batch of `producer` with `records`.
pub fn transactional_batch(
    base_timestamp: i64,
    records: &[RecordSpec<'_>],
    producer: ProducerSpec,
) -> Vec<u8> {
    let mut bytes = batch::encode_batch(base_timestamp, records, producer);
    set_attributes(&mut bytes, ATTR_TRANSACTIONAL);
    bytes
}

/// A control batch (COMMIT or ABORT marker) of `producer_id` at `producer_epoch`, as Kafka's
/// coordinator writes it: base sequence -1, one record, key (version 0, type), value (version 0,
/// coordinator epoch).
pub fn control_batch(
    timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    marker: ControlMarker,
    coordinator_epoch: i32,
) -> Vec<u8> {
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&marker.type_code().to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    let record = RecordSpec {
        key: Some(&key),
        value: Some(&value),
        timestamp_delta: 0,
    };
    let producer = ProducerSpec {
        producer_id,
        producer_epoch,
        base_sequence: -1,
    };
    let mut bytes = batch::encode_batch(timestamp, &[record], producer);
    set_attributes(&mut bytes, ATTR_TRANSACTIONAL | ATTR_CONTROL);
    bytes
}
