//! The records the coordinator keeps in `__consumer_offsets`: their keys, and how a write's records
//! become the batches of one append. (The values: committed offsets here as JSON, classic groups in
//! `classic_record.rs`, consumer groups in `consumer/record.rs`.)
//!
//! # Byte map of a `__consumer_offsets` record (uncompressed batches written by the coordinator)
//! ```text
//! key   "offset\0<group>\0<topic>\0<partition>"   value JSON {"offset","leader_epoch","metadata","commit_ms"}
//! key   "group\0<group>"                           value JSON: a classic group, classic_record.rs
//! key   "cgroup\0<group>", "cmember\0<group>\0<member>"  consumer (KIP-848) groups: consumer/record.rs
//! a null value (tombstone) deletes the key
//! ```
#![forbid(unsafe_code)]

use bytes::BytesMut;
use ringtail_engine::batch::{encode_batch, ProducerSpec, RecordSpec, HEADER_BYTES};

use super::consumer::record::Record;

pub(crate) fn offset_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    format!("offset\0{group}\0{topic}\0{partition}").into_bytes()
}

pub(crate) fn group_key(group: &str) -> Vec<u8> {
    format!("group\0{group}").into_bytes()
}

/// Whether an id (group, member, topic) can be part of a record key: keys separate their parts
/// with NUL bytes, so an id containing one would make a key that replay does not recognise.
pub(crate) fn fits_in_key(id: &str) -> bool {
    !id.contains('\0')
}

/// A record's bytes besides its key and value, at most (length, attributes, timestamp and offset
/// deltas, key and value lengths, header count as varints).
const RECORD_OVERHEAD: usize = 32;

/// Splits records into runs whose batches stay within `max_batch_bytes` (a single record larger
/// than that is a run of its own, which the log refuses).
fn batch_chunks(records: &[Record], max_batch_bytes: usize) -> Vec<&[Record]> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut size = HEADER_BYTES;
    for (index, (key, value)) in records.iter().enumerate() {
        let record = RECORD_OVERHEAD + key.len() + value.as_ref().map_or(0, Vec::len);
        if index > start && size + record > max_batch_bytes {
            chunks.push(&records[start..index]);
            start = index;
            size = HEADER_BYTES;
        }
        size += record;
    }
    chunks.push(&records[start..]);
    chunks
}

/// The records of one write as one append: as many batches as `max_batch_bytes` needs, each
/// stamped `now_ms`. The log takes them together or not at all.
pub(crate) fn encode_records(records: &[Record], max_batch_bytes: usize, now_ms: i64) -> BytesMut {
    let mut record_set = BytesMut::new();
    for chunk in batch_chunks(records, max_batch_bytes) {
        let specs: Vec<RecordSpec<'_>> = chunk
            .iter()
            .map(|(key, value)| RecordSpec {
                key: Some(key),
                value: value.as_deref(),
                timestamp_delta: 0,
            })
            .collect();
        record_set.extend_from_slice(&encode_batch(now_ms, &specs, ProducerSpec::default()));
    }
    record_set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_split_into_batches_under_the_limit() {
        let records: Vec<Record> = (0..100)
            .map(|i| (format!("key{i}").into_bytes(), Some(vec![b'v'; 1000])))
            .collect();
        let chunks = batch_chunks(&records, 10_000);
        assert!(chunks.len() > 1);
        assert_eq!(chunks.iter().map(|chunk| chunk.len()).sum::<usize>(), 100);
        let record_set = encode_records(&records, 10_000, 0);
        let mut position = 0;
        let mut batches = 0;
        while position < record_set.len() {
            let header = ringtail_engine::batch::parse_header(&record_set[position..]).unwrap();
            assert!(
                header.total_bytes() <= 10_000,
                "{} bytes",
                header.total_bytes()
            );
            position += header.total_bytes();
            batches += 1;
        }
        assert_eq!(batches, chunks.len());
        assert_eq!(batch_chunks(&records[..1], 10).len(), 1);
    }
}
