//! The cleaner's pure part: the records of one batch (decompressed when needed), which of them a
//! compacted log keeps, and the batch rebuilt from the survivors. The file work is in
//! [`crate::compaction`].
//!
//! # Byte map of a record inside a batch's (decompressed) record area
//! ```text
//! length varint (bytes that follow)   attributes i8   timestamp_delta varlong   offset_delta varint
//! key_length varint (-1 = null)  key   value_length varint (-1 = null: a tombstone)  value
//! header_count varint  headers …
//! ```
//!
//! # Invariants
//! - A rebuilt batch keeps every header field of the original (base offset, last offset delta,
//!   attributes and codec, base timestamp, producer id, epoch and base sequence, leader epoch)
//!   except batch length, record count and CRC, which are recomputed, and the max timestamp,
//!   which becomes the largest of the kept records' (as Kafka's cleaner does; under
//!   LogAppendTime it stays); surviving records are copied byte for byte, so their offset and
//!   timestamp deltas still hold. The one exception is a delete horizon set on the batch
//!   (KIP-534): attributes bit 6, the horizon as base timestamp, and each record's timestamp
//!   delta rebased so that its timestamp (base + delta) is unchanged.
//! - Records decode only if they exactly fill the record area, match the record count, and carry
//!   strictly increasing offset deltas within the batch's last offset delta.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::ops::Range;

use crate::batch::{
    self, read_varlong, BatchHeader, Compression, ATTRIBUTES_OFFSET, BASE_TIMESTAMP_OFFSET,
    BATCH_LENGTH_OFFSET, CRC_OFFSET, HEADER_BYTES, LOG_OVERHEAD_BYTES, MAX_TIMESTAMP_OFFSET,
    RECORD_COUNT_OFFSET,
};
use crate::compression::{self, Framing};
use crate::error::{AppendError, CompressionError};
use crate::units::Offset;

/// Why a batch's records could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordsError {
    #[error(transparent)]
    Compression(#[from] CompressionError),
    #[error("malformed records: {reason}")]
    Malformed { reason: &'static str },
    #[error(transparent)]
    Batch(#[from] crate::error::BatchError),
}

/// One record of a decoded batch, as ranges into [`DecodedBatch::records_area`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    pub offset_delta: i32,
    pub key: Option<Range<usize>>,
    /// A null value: a tombstone, which deletes its key.
    pub is_tombstone: bool,
    /// The whole record, length prefix included.
    pub span: Range<usize>,
    /// The record's timestamp is the batch's base timestamp plus this.
    pub timestamp_delta: i64,
    /// Where the timestamp delta's varlong lies (after the attributes byte).
    pub timestamp_delta_span: Range<usize>,
}

/// A batch with its record area decompressed and its records located.
#[derive(Debug, Clone)]
pub struct DecodedBatch {
    pub header: BatchHeader,
    pub codec: Compression,
    pub framing: Framing,
    pub records_area: Vec<u8>,
    pub records: Vec<RawRecord>,
}

impl DecodedBatch {
    pub fn key(&self, record: &RawRecord) -> Option<&[u8]> {
        record.key.clone().map(|range| &self.records_area[range])
    }
}

/// Decodes the records of a batch that starts at `bytes[0]` (its header already validated).
pub fn decode_batch(bytes: &[u8]) -> Result<DecodedBatch, RecordsError> {
    let header = batch::parse_header(bytes)?;
    let total = header.total_bytes();
    let area = bytes
        .get(HEADER_BYTES..total)
        .ok_or(RecordsError::Malformed {
            reason: "batch shorter than its length",
        })?;
    let codec = header.compression()?;
    let (records_area, framing) = compression::decompress(codec, area)?;
    let records = locate_records(&records_area, &header)?;
    Ok(DecodedBatch {
        header,
        codec,
        framing,
        records_area,
        records,
    })
}

fn locate_records(area: &[u8], header: &BatchHeader) -> Result<Vec<RawRecord>, RecordsError> {
    let count = usize::try_from(header.record_count).unwrap_or(0);
    // Each record takes at least 7 bytes: never trust the count for an allocation beyond that.
    let mut records = Vec::with_capacity(count.min(area.len() / 7 + 1));
    walk_records(area, header, Exactness::Lenient, |record| {
        records.push(record)
    })?;
    Ok(records)
}

/// Checks that a producer's batch at the start of `bytes` (its header already validated) holds
/// what its header says: exactly `record_count` well-formed records, filling its record area,
/// with increasing offset deltas within its last offset delta, decompressed first if need be.
/// Kafka's log validator refuses such batches too; stored unread, a batch that lies about its
/// count took 2^31 offsets (a new segment each time), and one of garbage cut every consumer
/// off at it. Returns the bytes of its decompressed record area (0 for an uncompressed batch,
/// which is walked in place).
pub fn check_records(bytes: &[u8], header: &BatchHeader) -> Result<usize, RecordsError> {
    let area = bytes
        .get(HEADER_BYTES..header.total_bytes())
        .ok_or(RecordsError::Malformed {
            reason: "batch shorter than its length",
        })?;
    match header.compression()? {
        Compression::None => {
            walk_records(area, header, Exactness::Exact, |_| ())?;
            Ok(0)
        }
        codec => DECOMPRESSED.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let checked = compression::decompress_into(codec, area, &mut scratch)
                .map_err(RecordsError::from)
                .and_then(|_| walk_records(&scratch, header, Exactness::Exact, |_| ()))
                .map(|()| scratch.len());
            if scratch.capacity() > SCRATCH_KEPT_BYTES_MAX {
                *scratch = Vec::new();
            }
            checked
        }),
    }
}

thread_local! {
    /// A shard thread's buffer for [`check_records`]' decompressed record areas, reused so that
    /// each batch does not land in fresh pages (results/append-record-check/).
    static DECOMPRESSED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The most [`DECOMPRESSED`] keeps between batches: producers' batches are at most 1 MiB
/// compressed by default, a few times that decompressed; a rare larger one is freed after.
const SCRATCH_KEPT_BYTES_MAX: usize = 16 << 20;

/// How much of each record [`walk_records`] reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Exactness {
    /// Up to its value: what the cleaner needs, from batches already in the log.
    Lenient,
    /// Its headers too, and its fields must fill its length exactly (Kafka's "Invalid record
    /// size"): a producer's batch.
    Exact,
}

/// Reads the records of a (decompressed) record area in order, handing each to `each`, and
/// checks the invariants of this module's doc.
fn walk_records(
    area: &[u8],
    header: &BatchHeader,
    exactness: Exactness,
    mut each: impl FnMut(RawRecord),
) -> Result<(), RecordsError> {
    let malformed = |reason| RecordsError::Malformed { reason };
    let count = usize::try_from(header.record_count).map_err(|_| malformed("negative count"))?;
    let mut position = 0usize;
    let mut previous_delta = -1i64;
    for _ in 0..count {
        let (length, used) =
            read_varlong(&area[position..]).ok_or_else(|| malformed("record length"))?;
        let length = usize::try_from(length).map_err(|_| malformed("negative record length"))?;
        let body_start = position + used;
        let end = body_start
            .checked_add(length)
            .filter(|end| *end <= area.len())
            .ok_or_else(|| malformed("record past the record area"))?;
        let body = &area[body_start..end];
        let mut at = 1usize; // attributes
        let (timestamp_delta, used) = read_varlong(body.get(at..).unwrap_or_default())
            .ok_or_else(|| malformed("timestamp delta"))?;
        let timestamp_delta_span = body_start + at..body_start + at + used;
        at += used;
        let (offset_delta, used) = read_varlong(body.get(at..).unwrap_or_default())
            .ok_or_else(|| malformed("offset delta"))?;
        at += used;
        if offset_delta <= previous_delta || offset_delta > i64::from(header.last_offset_delta) {
            return Err(malformed("offset delta out of order or past the batch"));
        }
        previous_delta = offset_delta;
        let (key, used) = optional_range(body, at).ok_or_else(|| malformed("key"))?;
        at += used;
        let (value, used) = optional_range(body, at).ok_or_else(|| malformed("value"))?;
        if exactness == Exactness::Exact {
            at += used;
            let (header_count, used) = read_varlong(body.get(at..).unwrap_or_default())
                .filter(|(count, _)| *count >= 0)
                .ok_or_else(|| malformed("header count"))?;
            at += used;
            for _ in 0..header_count {
                let (key, used) = optional_range(body, at)
                    .filter(|(key, _)| key.is_some())
                    .ok_or_else(|| malformed("header key"))?;
                debug_assert!(key.is_some());
                at += used;
                let (_, used) =
                    optional_range(body, at).ok_or_else(|| malformed("header value"))?;
                at += used;
            }
            if at != body.len() {
                return Err(malformed("record fields do not fill its length"));
            }
        }
        each(RawRecord {
            offset_delta: i32::try_from(offset_delta)
                .expect("checked above: within [0, last_offset_delta]"),
            key: key.map(|range| body_start + range.start..body_start + range.end),
            is_tombstone: value.is_none(),
            span: position..end,
            timestamp_delta,
            timestamp_delta_span,
        });
        position = end;
    }
    if position != area.len() {
        return Err(malformed("bytes after the last record"));
    }
    Ok(())
}

/// A varint length then that many bytes (or none for -1), at `at` in `body`: the range of the
/// bytes relative to `body`, and the bytes used.
fn optional_range(body: &[u8], at: usize) -> Option<(Option<Range<usize>>, usize)> {
    let (length, used) = read_varlong(body.get(at..)?)?;
    if length < 0 {
        return Some((None, used));
    }
    let start = at + used;
    let end = start.checked_add(usize::try_from(length).ok()?)?;
    (end <= body.len()).then_some((Some(start..end), used + end - start))
}

/// The latest offset of every key in the part of the log being cleaned.
#[derive(Debug, Default)]
pub struct KeyMap {
    latest: HashMap<Box<[u8]>, Offset>,
    key_bytes: usize,
}

impl KeyMap {
    /// Notes that `key` occurs at `offset` (offsets come in log order; the largest wins).
    pub fn observe(&mut self, key: &[u8], offset: Offset) {
        match self.latest.get_mut(key) {
            Some(latest) => *latest = (*latest).max(offset),
            None => {
                self.key_bytes += key.len();
                self.latest.insert(key.into(), offset);
            }
        }
    }

    pub fn latest(&self, key: &[u8]) -> Option<Offset> {
        self.latest.get(key).copied()
    }

    pub fn len(&self) -> usize {
        self.latest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    /// Memory the map holds, roughly: key bytes plus per-entry overhead.
    pub fn bytes(&self) -> usize {
        self.key_bytes + self.latest.len() * 48
    }

    /// Notes every keyed record of a decoded batch.
    pub fn observe_batch(&mut self, decoded: &DecodedBatch) {
        for record in &decoded.records {
            if let Some(key) = decoded.key(record) {
                self.observe(
                    key,
                    decoded
                        .header
                        .base_offset
                        .plus(i64::from(record.offset_delta)),
                );
            }
        }
    }
}

/// Which records of a batch survive: the latest of their key, and not an expired tombstone.
/// Records without a key are removed, as Kafka's cleaner does (a compacted log refuses them on
/// produce; they can only come from before the topic became compacted).
pub fn survivors(decoded: &DecodedBatch, keys: &KeyMap, tombstones_expired: bool) -> Vec<bool> {
    decoded
        .records
        .iter()
        .map(|record| {
            let Some(key) = decoded.key(record) else {
                return false;
            };
            let offset = decoded
                .header
                .base_offset
                .plus(i64::from(record.offset_delta));
            let is_latest = keys.latest(key).is_none_or(|latest| latest <= offset);
            is_latest && !(record.is_tombstone && tombstones_expired)
        })
        .collect()
}

/// Whether a batch's tombstones may go: its delete horizon, set when a pass first kept them, has
/// passed (KIP-534; Kafka keeps them while `now < horizon`). A batch without one keeps them.
pub fn tombstones_expired(header: &BatchHeader, now_ms: i64) -> bool {
    header
        .delete_horizon_ms()
        .is_some_and(|horizon| now_ms >= horizon)
}

/// The delete horizon to set on a batch a pass keeps tombstones of, if it has none yet:
/// `now + delete.retention.ms`, so consumers get that long from the first cleaning to see them,
/// whatever the producer's timestamps say (KIP-534).
pub fn new_delete_horizon(
    decoded: &DecodedBatch,
    keep: &[bool],
    now_ms: i64,
    delete_retention_ms: u64,
) -> Option<i64> {
    let keeps_tombstone = decoded
        .records
        .iter()
        .zip(keep)
        .any(|(record, kept)| *kept && record.is_tombstone);
    let retention_ms = i64::try_from(delete_retention_ms).unwrap_or(i64::MAX);
    (keeps_tombstone && decoded.header.delete_horizon_ms().is_none())
        .then(|| now_ms.saturating_add(retention_ms))
}

/// The batch with only the records marked in `keep`: `None` when none remain, the original bytes
/// when all do and no horizon is to be set, otherwise a new batch (see the module's invariants).
///
/// `delete_horizon_ms` sets a delete horizon (KIP-534) on a batch without one: attributes bit 6,
/// the horizon as base timestamp, and every kept record's timestamp delta rebased on it, so each
/// record's timestamp (base + delta) stays what it was. Kafka's clients read the bit; a reader
/// that ignores it still computes the same record timestamps.
pub fn rebuild(
    original: &[u8],
    decoded: &DecodedBatch,
    keep: &[bool],
    delete_horizon_ms: Option<i64>,
) -> Result<Option<Vec<u8>>, CompressionError> {
    assert_eq!(keep.len(), decoded.records.len(), "one flag per record");
    let kept = keep.iter().filter(|kept| **kept).count();
    if kept == 0 {
        return Ok(None);
    }
    let total = decoded.header.total_bytes();
    if kept == decoded.records.len() && delete_horizon_ms.is_none() {
        return Ok(Some(original[..total].to_vec()));
    }
    let mut area = Vec::with_capacity(decoded.records_area.len());
    for (record, _) in decoded.records.iter().zip(keep).filter(|(_, kept)| **kept) {
        match delete_horizon_ms {
            None => area.extend_from_slice(&decoded.records_area[record.span.clone()]),
            Some(horizon) => {
                let timestamp = decoded
                    .header
                    .base_timestamp
                    .saturating_add(record.timestamp_delta);
                push_rebased(
                    &mut area,
                    decoded,
                    record,
                    timestamp.saturating_sub(horizon),
                );
            }
        }
    }
    let packed = compression::compress(decoded.codec, decoded.framing, &area)?;
    let kept = i32::try_from(kept).expect("at most the batch's record count, an i32");
    let mut header = original[..HEADER_BYTES].to_vec();
    if !decoded.header.is_log_append_time() {
        // The largest timestamp of the records kept, as Kafka's cleaner rebuilds a batch
        // (MemoryRecords.filterTo): a removed record's would make max-timestamp lookups and the
        // cleaned segment's time index answer a timestamp no record has. Under LogAppendTime
        // the batch's max timestamp is the append time of every record and stays.
        let max_timestamp = decoded
            .records
            .iter()
            .zip(keep)
            .filter(|(_, kept)| **kept)
            .map(|(record, _)| {
                decoded
                    .header
                    .base_timestamp
                    .saturating_add(record.timestamp_delta)
            })
            .max()
            .expect("at least one record is kept");
        header[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
            .copy_from_slice(&max_timestamp.to_be_bytes());
    }
    if let Some(horizon) = delete_horizon_ms {
        let attributes = decoded.header.attributes | batch::ATTR_DELETE_HORIZON;
        header[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
        header[BASE_TIMESTAMP_OFFSET..BASE_TIMESTAMP_OFFSET + 8]
            .copy_from_slice(&horizon.to_be_bytes());
    }
    assemble(&header, &packed, kept, decoded.codec).map(Some)
}

/// Appends `record` to `area` with `timestamp_delta` in place of its own: a new length prefix,
/// its attributes byte, the new delta, then the rest of its bytes unchanged.
fn push_rebased(
    area: &mut Vec<u8>,
    decoded: &DecodedBatch,
    record: &RawRecord,
    timestamp_delta: i64,
) {
    let bytes = &decoded.records_area;
    let attributes_at = record.timestamp_delta_span.start - 1;
    let mut body = Vec::with_capacity(record.span.len() + 8);
    body.push(bytes[attributes_at]);
    batch::write_varlong(&mut body, timestamp_delta);
    body.extend_from_slice(&bytes[record.timestamp_delta_span.end..record.span.end]);
    batch::write_varlong(
        area,
        i64::try_from(body.len()).expect("a record fits an i64"),
    );
    area.extend_from_slice(&body);
}

/// A batch from an original header and a new record area: length, count and CRC recomputed.
/// Refused when the batch length no longer fits its `int32` field (a recompressed area can be a
/// little larger than the original).
fn assemble(
    header_bytes: &[u8],
    records_area: &[u8],
    record_count: i32,
    codec: Compression,
) -> Result<Vec<u8>, CompressionError> {
    let batch_length = i32::try_from(HEADER_BYTES - LOG_OVERHEAD_BYTES + records_area.len())
        .map_err(|_| CompressionError::Compress {
            codec,
            reason: "batch length past 2 GiB".to_string(),
        })?;
    let mut out = Vec::with_capacity(HEADER_BYTES + records_area.len());
    out.extend_from_slice(&header_bytes[..HEADER_BYTES]);
    out.extend_from_slice(records_area);
    out[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4].copy_from_slice(&batch_length.to_be_bytes());
    out[RECORD_COUNT_OFFSET..RECORD_COUNT_OFFSET + 4].copy_from_slice(&record_count.to_be_bytes());
    let crc = crate::checksum::crc32c(&out[ATTRIBUTES_OFFSET..]);
    out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// Re-encodes an uncompressed batch with `codec` (tests, benchmarks and tools: producers send
/// their own compressed batches).
pub fn compress_batch(
    batch: &[u8],
    codec: Compression,
    framing: Framing,
) -> Result<Vec<u8>, RecordsError> {
    let decoded = decode_batch(batch)?;
    if decoded.codec != Compression::None {
        return Err(RecordsError::Malformed {
            reason: "batch is already compressed",
        });
    }
    let packed = compression::compress(codec, framing, &decoded.records_area)?;
    let mut header = batch[..HEADER_BYTES].to_vec();
    let attributes =
        (i16::from_be_bytes([header[ATTRIBUTES_OFFSET], header[ATTRIBUTES_OFFSET + 1]]) & !0x07)
            | codec_bits(codec);
    header[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    Ok(assemble(
        &header,
        &packed,
        decoded.header.record_count,
        codec,
    )?)
}

fn codec_bits(codec: Compression) -> i16 {
    match codec {
        Compression::None => 0,
        Compression::Gzip => 1,
        Compression::Snappy => 2,
        Compression::Lz4 => 3,
        Compression::Zstd => 4,
    }
}

/// Checks that every record of a (validated) record set has a key: what a compacted log requires
/// of a produce. Control batches (transaction markers) are the broker's and are not checked.
pub fn check_keys(records: &[u8], headers: &[BatchHeader]) -> Result<(), AppendError> {
    let mut position = 0usize;
    for header in headers {
        let bytes = &records[position..position + header.total_bytes()];
        position += header.total_bytes();
        if header.is_control() {
            continue;
        }
        let decoded = decode_batch(bytes).map_err(|err| AppendError::UnreadableRecords {
            reason: err.to_string(),
        })?;
        // Every keyless record is named, as Kafka's KIP-467 record errors do: a client then fails
        // only those and may resend the rest of the batch.
        let keyless: Vec<i32> = decoded
            .records
            .iter()
            .enumerate()
            .filter(|(_, record)| record.key.is_none())
            .filter_map(|(index, _)| i32::try_from(index).ok())
            .collect();
        if !keyless.is_empty() {
            return Err(AppendError::NullKeyInCompactedLog {
                record_indexes: keyless,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{encode_batch, validate, ProducerSpec, RecordSpec, Strictness};

    const CODECS: [(Compression, Framing); 6] = [
        (Compression::None, Framing::Standard),
        (Compression::Gzip, Framing::Standard),
        (Compression::Snappy, Framing::SnappyXerial),
        (Compression::Snappy, Framing::SnappyRaw),
        (Compression::Lz4, Framing::Standard),
        (Compression::Zstd, Framing::Standard),
    ];

    fn sample(codec: Compression, framing: Framing) -> Vec<u8> {
        let records = [
            RecordSpec {
                key: Some(b"a"),
                value: Some(b"1"),
                timestamp_delta: 0,
            },
            RecordSpec {
                key: Some(b"b"),
                value: Some(b"2"),
                timestamp_delta: 3,
            },
            RecordSpec {
                key: Some(b"a"),
                value: None,
                timestamp_delta: 7,
            },
        ];
        let producer = ProducerSpec {
            producer_id: 9,
            producer_epoch: 2,
            base_sequence: 40,
        };
        let mut batch = encode_batch(1_000, &records, producer);
        batch::set_base_offset(&mut batch, Offset::new(100));
        batch::set_partition_leader_epoch(&mut batch, 5);
        compress_batch(&batch, codec, framing).unwrap()
    }

    #[test]
    fn a_partly_cleaned_batch_keeps_its_header_and_offsets() {
        // The contract of a rebuilt batch: same offsets, producer fields and timestamps; only the
        // survivors; same codec; a valid CRC.
        for (codec, framing) in CODECS {
            let original = sample(codec, framing);
            let decoded = decode_batch(&original).unwrap();
            assert_eq!(decoded.records.len(), 3);
            let mut keys = KeyMap::default();
            keys.observe_batch(&decoded);
            assert_eq!(keys.latest(b"a"), Some(Offset::new(102)));
            let keep = survivors(&decoded, &keys, false);
            assert_eq!(keep, vec![false, true, true]);
            let rebuilt = rebuild(&original, &decoded, &keep, None).unwrap().unwrap();
            let header = validate(&rebuilt, 1 << 20, Strictness::Stored).unwrap();
            let before = decoded.header;
            assert_eq!(header.record_count, 2);
            assert_eq!(header.base_offset, before.base_offset);
            assert_eq!(header.last_offset_delta, before.last_offset_delta);
            assert_eq!(header.attributes, before.attributes);
            assert_eq!(header.base_timestamp, before.base_timestamp);
            assert_eq!(header.max_timestamp, before.max_timestamp);
            assert_eq!(header.producer_id, 9);
            assert_eq!(header.producer_epoch, 2);
            assert_eq!(header.base_sequence, 40);
            assert_eq!(header.partition_leader_epoch, 5);
            let again = decode_batch(&rebuilt).unwrap();
            assert_eq!(again.framing, framing, "{codec:?}");
            let deltas: Vec<i32> = again.records.iter().map(|r| r.offset_delta).collect();
            assert_eq!(deltas, vec![1, 2]);
            assert_eq!(again.key(&again.records[0]), Some(&b"b"[..]));
            assert!(again.records[1].is_tombstone);
        }
    }

    #[test]
    fn expired_tombstones_go_and_an_emptied_batch_is_dropped() {
        // With the tombstone past delete.retention.ms, "a" disappears entirely.
        let original = sample(Compression::Lz4, Framing::Standard);
        let decoded = decode_batch(&original).unwrap();
        let mut keys = KeyMap::default();
        keys.observe_batch(&decoded);
        assert_eq!(survivors(&decoded, &keys, true), vec![false, true, false]);
        keys.observe(b"b", Offset::new(500));
        let keep = survivors(&decoded, &keys, true);
        assert_eq!(rebuild(&original, &decoded, &keep, None).unwrap(), None);
        let all = vec![true; 3];
        assert_eq!(
            rebuild(&original, &decoded, &all, None).unwrap().unwrap(),
            original
        );
    }

    #[test]
    fn a_rebuilt_batch_takes_the_max_timestamp_of_the_records_it_keeps() {
        // Kafka's cleaner (MemoryRecords.filterTo) rebuilds with the kept records' largest
        // timestamp; under LogAppendTime the append time stays, as every record reads it.
        let original = sample(Compression::None, Framing::Standard);
        let decoded = decode_batch(&original).unwrap();
        assert_eq!(decoded.header.max_timestamp, 1_007);
        let keep = [true, true, false];
        let rebuilt = rebuild(&original, &decoded, &keep, None).unwrap().unwrap();
        let header = validate(&rebuilt, 1 << 20, Strictness::Stored).unwrap();
        assert_eq!(header.max_timestamp, 1_003);
        assert_eq!(header.base_timestamp, 1_000);

        let mut appended = original.clone();
        let attributes = decoded.header.attributes | 0x08; // LogAppendTime
        appended[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2]
            .copy_from_slice(&attributes.to_be_bytes());
        appended[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
            .copy_from_slice(&5_000i64.to_be_bytes());
        let crc = crate::checksum::crc32c(&appended[ATTRIBUTES_OFFSET..]);
        appended[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        let decoded = decode_batch(&appended).unwrap();
        let rebuilt = rebuild(&appended, &decoded, &keep, None).unwrap().unwrap();
        let header = validate(&rebuilt, 1 << 20, Strictness::Stored).unwrap();
        assert!(header.is_log_append_time());
        assert_eq!(header.max_timestamp, 5_000);
    }

    #[test]
    fn keyless_records_are_refused_for_compacted_logs() {
        // Produce into a compacted topic must reject a null key, even inside a compressed batch.
        let keyless = encode_batch(
            0,
            &[RecordSpec {
                key: None,
                value: Some(b"v"),
                timestamp_delta: 0,
            }],
            ProducerSpec::default(),
        );
        let packed = compress_batch(&keyless, Compression::Zstd, Framing::Standard).unwrap();
        let header = validate(&packed, 1 << 20, Strictness::Producer).unwrap();
        assert!(matches!(
            check_keys(&packed, &[header]),
            Err(AppendError::NullKeyInCompactedLog { record_indexes }) if record_indexes == [0]
        ));
        let keyed = sample(Compression::Gzip, Framing::Standard);
        let header = validate(&keyed, 1 << 20, Strictness::Producer).unwrap();
        assert!(check_keys(&keyed, &[header]).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn garbage_records_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), count in 0i32..20) {
            // The record decoder reads bytes from disk and from producers: errors, never panics.
            let original = sample(Compression::None, Framing::Standard);
            let mut batch = original[..HEADER_BYTES].to_vec();
            batch.extend_from_slice(&bytes);
            let length = i32::try_from(batch.len() - LOG_OVERHEAD_BYTES).unwrap();
            batch[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4].copy_from_slice(&length.to_be_bytes());
            batch[RECORD_COUNT_OFFSET..RECORD_COUNT_OFFSET + 4].copy_from_slice(&count.to_be_bytes());
            let _ = decode_batch(&batch);
            if let Ok(header) = batch::parse_header(&batch) {
                let _ = check_records(&batch, &header);
            }
        }
    }

    /// `batch` with its count fields set and its CRC made right again.
    fn with_count(mut batch: Vec<u8>, record_count: i32) -> Vec<u8> {
        batch[RECORD_COUNT_OFFSET..RECORD_COUNT_OFFSET + 4]
            .copy_from_slice(&record_count.to_be_bytes());
        let last = batch::LAST_OFFSET_DELTA_OFFSET;
        batch[last..last + 4].copy_from_slice(&(record_count - 1).to_be_bytes());
        let crc = crate::checksum::crc32c(&batch[ATTRIBUTES_OFFSET..]);
        batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        batch
    }

    #[test]
    fn a_producer_batch_must_hold_the_records_its_header_counts() {
        for (codec, framing) in CODECS {
            let good = sample(codec, framing);
            let header = validate(&good, 1 << 20, Strictness::Producer).unwrap();
            let decompressed = check_records(&good, &header).unwrap();
            assert_eq!(decompressed == 0, codec == Compression::None, "{codec:?}");
            // The header passes on its own: counts agree with each other and the CRC is right.
            for count in [2, 4, i32::MAX] {
                let lying = with_count(good.clone(), count);
                let header = validate(&lying, 1 << 20, Strictness::Producer).unwrap();
                assert!(
                    matches!(
                        check_records(&lying, &header),
                        Err(RecordsError::Malformed { .. })
                    ),
                    "{codec:?} claiming {count} records"
                );
            }
        }
    }

    #[test]
    fn compressed_garbage_with_a_right_crc_is_refused() {
        let good = sample(Compression::Zstd, Framing::Standard);
        let mut garbage = good[..HEADER_BYTES].to_vec();
        garbage.extend((0..200u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
        let length = i32::try_from(garbage.len() - LOG_OVERHEAD_BYTES).unwrap();
        garbage[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4]
            .copy_from_slice(&length.to_be_bytes());
        let garbage = with_count(garbage, 3);
        let header = validate(&garbage, 1 << 20, Strictness::Producer).unwrap();
        assert!(check_records(&garbage, &header).is_err());
    }
}
