//! Kafka RecordBatch v2 (magic 2): header parsing, validation and in-place offset assignment.
//!
//! The log stores batches exactly as producers send them, so a fetch can move them from file to
//! socket untouched. Only two header fields are written by the broker: the base offset and the
//! partition leader epoch. Both lie before the CRC'd region, so assigning them never recomputes
//! the checksum.
//!
//! # Byte map (big-endian, as on the wire)
//! ```text
//! offset  size  field                  CRC'd
//!      0     8  base_offset            no   (assigned by the broker)
//!      8     4  batch_length           no   (bytes after this field)
//!     12     4  partition_leader_epoch no   (assigned by the broker)
//!     16     1  magic (= 2)            no
//!     17     4  crc (CRC-32C, Castagnoli, of bytes 21..end)
//!     21     2  attributes             yes  (bits 0-2 codec, 3 timestamp type, 4 transactional, 5 control,
//!                                            6 delete horizon: base_timestamp holds it, KIP-534)
//!     23     4  last_offset_delta      yes
//!     27     8  base_timestamp         yes
//!     35     8  max_timestamp          yes
//!     43     8  producer_id            yes
//!     51     2  producer_epoch         yes
//!     53     4  base_sequence          yes
//!     57     4  record_count           yes
//!     61     …  records (possibly compressed)
//! ```
//!
//! # Invariants
//! - A batch that passed [`validate`] has `12 + batch_length` bytes, magic 2, a matching CRC-32C,
//!   a known codec and `0 <= record_count <= last_offset_delta + 1`.
//! - Nothing in this module panics on bytes from outside: every malformed input is a [`BatchError`].
#![forbid(unsafe_code)]

pub use crate::codec::Compression;
use crate::error::BatchError;
use crate::units::Offset;

/// Size of the fixed RecordBatch v2 header; records start here.
pub const HEADER_BYTES: usize = 61;
/// Bytes before `batch_length`'s coverage starts: `base_offset` + `batch_length` itself.
pub const LOG_OVERHEAD_BYTES: usize = 12;
/// The smallest valid `batchLength`: a header without records (the field counts the bytes after
/// the offset and length fields).
pub const BATCH_LENGTH_MIN: i32 = 49;
const _: () = assert!(HEADER_BYTES - LOG_OVERHEAD_BYTES == BATCH_LENGTH_MIN as usize);

pub const BASE_OFFSET_OFFSET: usize = 0;
pub const BATCH_LENGTH_OFFSET: usize = 8;
pub const LEADER_EPOCH_OFFSET: usize = 12;
pub const MAGIC_OFFSET: usize = 16;
pub const CRC_OFFSET: usize = 17;
pub const ATTRIBUTES_OFFSET: usize = 21;
pub const LAST_OFFSET_DELTA_OFFSET: usize = 23;
pub const BASE_TIMESTAMP_OFFSET: usize = 27;
pub const MAX_TIMESTAMP_OFFSET: usize = 35;
pub const PRODUCER_ID_OFFSET: usize = 43;
pub const PRODUCER_EPOCH_OFFSET: usize = 51;
pub const BASE_SEQUENCE_OFFSET: usize = 53;
pub const RECORD_COUNT_OFFSET: usize = 57;

// The byte map above must add up to the header size.
const _: () = assert!(RECORD_COUNT_OFFSET + 4 == HEADER_BYTES);
const _: () = assert!(CRC_OFFSET + 4 == ATTRIBUTES_OFFSET);

/// The only record batch format this engine stores.
pub const MAGIC_V2: i8 = 2;

const ATTR_TIMESTAMP_TYPE: i16 = 0x08;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;
/// KIP-534: the cleaner set a delete horizon, kept in `base_timestamp` (record timestamps are
/// deltas from it, so readers see them unchanged).
pub const ATTR_DELETE_HORIZON: i16 = 0x40;

/// The decoded fixed header of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: Offset,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Total bytes of the batch on disk and on the wire.
    ///
    /// A negative (corrupt) length counts as 0: [`validate`] refuses it, and callers of
    /// [`parse_header`] check the total against the bytes they hold before slicing.
    pub fn total_bytes(&self) -> usize {
        LOG_OVERHEAD_BYTES + usize::try_from(self.batch_length).unwrap_or(0)
    }

    /// Offset of the last record the batch covers (records may have been compacted away).
    pub fn last_offset(&self) -> Offset {
        self.base_offset.plus(i64::from(self.last_offset_delta))
    }

    /// Offset that follows this batch.
    pub fn next_offset(&self) -> Offset {
        self.last_offset().plus(1)
    }

    /// [`BatchHeader::next_offset`] for a header read from bytes that were not checked (a
    /// replay of an internal log): offsets that do not fit are an error, not an overflow.
    pub fn checked_next_offset(&self) -> Result<Offset, BatchError> {
        let base_offset = self.base_offset.get();
        let next = (base_offset >= 0)
            .then(|| {
                base_offset
                    .checked_add(i64::from(self.last_offset_delta))?
                    .checked_add(1)
            })
            .flatten();
        next.map(Offset::new).ok_or(BatchError::OffsetOutOfRange {
            base_offset,
            last_offset_delta: self.last_offset_delta,
        })
    }

    pub fn compression(&self) -> Result<Compression, BatchError> {
        Compression::from_attributes(self.attributes)
            .map_err(|codec| BatchError::UnknownCompression { codec })
    }

    /// True when the broker set the timestamps (LogAppendTime).
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTR_TIMESTAMP_TYPE != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// When the cleaner may remove this batch's tombstones (and, for a control batch, the batch):
    /// the horizon it set when it first cleaned them (KIP-534), `None` before that.
    pub fn delete_horizon_ms(&self) -> Option<i64> {
        (self.attributes & ATTR_DELETE_HORIZON != 0).then_some(self.base_timestamp)
    }

    /// True when the producer is idempotent or transactional (it numbers its batches).
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
}

fn read_i8(bytes: &[u8], at: usize) -> i8 {
    bytes[at] as i8
}

fn read_i16(bytes: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([bytes[at], bytes[at + 1]])
}

fn read_i32(bytes: &[u8], at: usize) -> i32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&bytes[at..at + 4]);
    i32::from_be_bytes(raw)
}

fn read_i64(bytes: &[u8], at: usize) -> i64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[at..at + 8]);
    i64::from_be_bytes(raw)
}

/// Reads `base_offset` and `batch_length`: all that is needed to walk from batch to batch.
/// Returns `None` when fewer than [`LOG_OVERHEAD_BYTES`] are available.
pub fn peek_offset_and_length(bytes: &[u8]) -> Option<(Offset, i32)> {
    if bytes.len() < LOG_OVERHEAD_BYTES {
        return None;
    }
    Some((
        Offset::new(read_i64(bytes, BASE_OFFSET_OFFSET)),
        read_i32(bytes, BATCH_LENGTH_OFFSET),
    ))
}

/// Decodes the fixed header without checking the CRC or the record area.
pub fn parse_header(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    if bytes.len() < HEADER_BYTES {
        return Err(BatchError::Truncated {
            needed_bytes: HEADER_BYTES,
            available_bytes: bytes.len(),
        });
    }
    Ok(BatchHeader {
        base_offset: Offset::new(read_i64(bytes, BASE_OFFSET_OFFSET)),
        batch_length: read_i32(bytes, BATCH_LENGTH_OFFSET),
        partition_leader_epoch: read_i32(bytes, LEADER_EPOCH_OFFSET),
        magic: read_i8(bytes, MAGIC_OFFSET),
        crc: u32::from_be_bytes(read_i32(bytes, CRC_OFFSET).to_be_bytes()),
        attributes: read_i16(bytes, ATTRIBUTES_OFFSET),
        last_offset_delta: read_i32(bytes, LAST_OFFSET_DELTA_OFFSET),
        base_timestamp: read_i64(bytes, BASE_TIMESTAMP_OFFSET),
        max_timestamp: read_i64(bytes, MAX_TIMESTAMP_OFFSET),
        producer_id: read_i64(bytes, PRODUCER_ID_OFFSET),
        producer_epoch: read_i16(bytes, PRODUCER_EPOCH_OFFSET),
        base_sequence: read_i32(bytes, BASE_SEQUENCE_OFFSET),
        record_count: read_i32(bytes, RECORD_COUNT_OFFSET),
    })
}

/// How strictly [`validate`] judges a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    /// A batch from a producer: at least one record and exactly `last_offset_delta + 1` of them.
    Producer,
    /// A batch already in the log (recovery, replication): compaction may have removed records.
    Stored,
}

/// Validates the batch at the start of `bytes` and returns its header.
///
/// `bytes` may hold more than one batch; only the first is checked. The batch must fit in
/// `batch_bytes_max` and lie wholly inside `bytes`.
pub fn validate(
    bytes: &[u8],
    batch_bytes_max: usize,
    strictness: Strictness,
) -> Result<BatchHeader, BatchError> {
    let header = parse_header(bytes)?;
    if header.batch_length < BATCH_LENGTH_MIN {
        return Err(BatchError::BadLength {
            batch_length: header.batch_length,
        });
    }
    let total_bytes = header.total_bytes();
    if total_bytes > batch_bytes_max {
        return Err(BatchError::TooLarge {
            batch_bytes: total_bytes,
            batch_bytes_max,
        });
    }
    if total_bytes > bytes.len() {
        return Err(BatchError::Truncated {
            needed_bytes: total_bytes,
            available_bytes: bytes.len(),
        });
    }
    if header.magic != MAGIC_V2 {
        return Err(BatchError::UnsupportedMagic {
            magic: header.magic,
        });
    }
    let crc_computed = crate::checksum::crc32c(&bytes[ATTRIBUTES_OFFSET..total_bytes]);
    if crc_computed != header.crc {
        return Err(BatchError::CrcMismatch {
            crc_stored: header.crc,
            crc_computed,
        });
    }
    header.compression()?;
    validate_counts(&header, strictness)?;
    validate_timestamps(&header)?;
    Ok(header)
}

fn validate_counts(header: &BatchHeader, strictness: Strictness) -> Result<(), BatchError> {
    let count_ok = match strictness {
        Strictness::Producer => {
            header.record_count > 0
                && i64::from(header.record_count) == i64::from(header.last_offset_delta) + 1
        }
        Strictness::Stored => {
            header.record_count >= 0
                && header.last_offset_delta >= 0
                && i64::from(header.record_count) <= i64::from(header.last_offset_delta) + 1
        }
    };
    if !count_ok {
        return Err(BatchError::BadRecordCount {
            record_count: header.record_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    Ok(())
}

fn validate_timestamps(header: &BatchHeader) -> Result<(), BatchError> {
    // -1 means "no timestamp"; anything below that is garbage, and the max can't precede the base
    // — unless the broker stamped the max with its append time (LogAppendTime), which a producer
    // clock running ahead leaves below the producer's base, or the base is a cleaner's delete
    // horizon (KIP-534), later than the records.
    let base_is_horizon = header.delete_horizon_ms().is_some();
    if header.base_timestamp < -1
        || header.max_timestamp < -1
        || (header.max_timestamp < header.base_timestamp
            && !header.is_log_append_time()
            && !base_is_horizon)
    {
        return Err(BatchError::BadTimestamps {
            base_timestamp: header.base_timestamp,
            max_timestamp: header.max_timestamp,
        });
    }
    Ok(())
}

/// Splits a concatenation of batches (a produce request's record set) and validates each one.
/// Returns the headers in order; the whole input must be whole batches.
pub fn validate_all(
    bytes: &[u8],
    batch_bytes_max: usize,
    strictness: Strictness,
) -> Result<Vec<BatchHeader>, BatchError> {
    let mut headers = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let header = validate(&bytes[position..], batch_bytes_max, strictness)?;
        position += header.total_bytes();
        headers.push(header);
    }
    if headers.is_empty() {
        return Err(BatchError::Empty);
    }
    Ok(headers)
}

/// Writes the broker-assigned base offset into a batch. Outside the CRC'd region.
pub fn set_base_offset(batch: &mut [u8], base_offset: Offset) {
    assert!(batch.len() >= HEADER_BYTES, "not a batch header");
    set_base_offset_in_prefix(batch, base_offset);
}

/// Writes the partition leader epoch into a batch. Outside the CRC'd region.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    assert!(batch.len() >= HEADER_BYTES, "not a batch header");
    set_partition_leader_epoch_in_prefix(batch, epoch);
}

/// [`set_base_offset`] on just the first bytes of a batch (at least through the leader epoch),
/// for writers that send the rest of the batch from the producer's buffer untouched.
pub fn set_base_offset_in_prefix(prefix: &mut [u8], base_offset: Offset) {
    assert!(prefix.len() >= LEADER_EPOCH_OFFSET + 4, "prefix too short");
    prefix[BASE_OFFSET_OFFSET..BASE_OFFSET_OFFSET + 8]
        .copy_from_slice(&base_offset.get().to_be_bytes());
}

/// [`set_partition_leader_epoch`] on just the first bytes of a batch.
pub fn set_partition_leader_epoch_in_prefix(prefix: &mut [u8], epoch: i32) {
    assert!(prefix.len() >= LEADER_EPOCH_OFFSET + 4, "prefix too short");
    prefix[LEADER_EPOCH_OFFSET..LEADER_EPOCH_OFFSET + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Reads a zig-zag varint (Kafka's `varint`/`varlong`) and returns it with its length in bytes.
pub fn read_varlong(bytes: &[u8]) -> Option<(i64, usize)> {
    let mut raw: u64 = 0;
    for (index, byte) in bytes.iter().take(10).enumerate() {
        raw |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            let value = (raw >> 1) as i64 ^ -((raw & 1) as i64);
            return Some((value, index + 1));
        }
    }
    None
}

/// Appends a zig-zag varint.
pub fn write_varlong(out: &mut Vec<u8>, value: i64) {
    let mut raw = ((value << 1) ^ (value >> 63)) as u64;
    while raw >= 0x80 {
        out.push((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

/// Offset delta and timestamp of the first record whose timestamp is at least
/// `target_timestamp`, for an uncompressed batch. `None` when no record qualifies or the batch is
/// compressed or malformed.
pub fn first_record_at_or_after(batch: &[u8], target_timestamp: i64) -> Option<(i32, i64)> {
    let header = parse_header(batch).ok()?;
    if header.compression().ok()? != Compression::None || header.total_bytes() > batch.len() {
        return None;
    }
    // `get`: a header from the network or disk may claim a length below its own size.
    let area = batch.get(HEADER_BYTES..header.total_bytes())?;
    first_record_in_area(area, &header, target_timestamp)
}

/// The same search over a batch's record area already decompressed (`area`), with the batch's
/// `header`: its offset delta and timestamp. `None` when no record qualifies or the area is
/// malformed.
pub fn first_record_in_area(
    area: &[u8],
    header: &BatchHeader,
    target_timestamp: i64,
) -> Option<(i32, i64)> {
    let mut position = 0;
    for _ in 0..header.record_count {
        let rest = area.get(position..)?;
        let (record_length, length_bytes) = read_varlong(rest)?;
        let body = rest.get(length_bytes..length_bytes + usize::try_from(record_length).ok()?)?;
        // body: attributes (i8), timestampDelta (varlong), offsetDelta (varint), …
        let (timestamp_delta, delta_bytes) = read_varlong(body.get(1..)?)?;
        let (offset_delta, _) = read_varlong(body.get(1 + delta_bytes..)?)?;
        let timestamp = header.base_timestamp.saturating_add(timestamp_delta);
        if timestamp >= target_timestamp {
            // The offset delta comes from the producer: keep it inside the batch.
            let offset_delta = i32::try_from(offset_delta).ok()?;
            return (0..=header.last_offset_delta)
                .contains(&offset_delta)
                .then_some((offset_delta, timestamp));
        }
        position += length_bytes + body.len();
    }
    None
}

/// One decoded record of an uncompressed batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub offset_delta: i64,
    pub timestamp_delta: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// The records of an uncompressed batch, or `None` if it is compressed or malformed. For the
/// broker's own internal topics (it writes them uncompressed) and tools; clients' batches are
/// never decoded on the data path.
pub fn decode_records(batch: &[u8]) -> Option<Vec<RecordView<'_>>> {
    let header = parse_header(batch).ok()?;
    if header.compression().ok()? != Compression::None || header.total_bytes() > batch.len() {
        return None;
    }
    let body = batch.get(HEADER_BYTES..header.total_bytes())?;
    // The count comes from the batch: a record takes at least one byte, so the body bounds it.
    let mut records = Vec::with_capacity(
        usize::try_from(header.record_count).map_or(0, |count| count.min(body.len())),
    );
    let mut position = 0usize;
    for _ in 0..header.record_count {
        let (record_length, length_bytes) = read_varlong(body.get(position..)?)?;
        let record = body.get(
            position + length_bytes
                ..position + length_bytes + usize::try_from(record_length).ok()?,
        )?;
        let mut at = 1; // attributes
        let (timestamp_delta, used) = read_varlong(record.get(at..)?)?;
        at += used;
        let (offset_delta, used) = read_varlong(record.get(at..)?)?;
        at += used;
        let (key, used) = read_optional_bytes(record.get(at..)?)?;
        at += used;
        let (value, _) = read_optional_bytes(record.get(at..)?)?;
        records.push(RecordView {
            offset_delta,
            timestamp_delta,
            key,
            value,
        });
        position += length_bytes + record.len();
    }
    Some(records)
}

fn read_optional_bytes(bytes: &[u8]) -> Option<(Option<&[u8]>, usize)> {
    let (length, used) = read_varlong(bytes)?;
    if length < 0 {
        return Some((None, used));
    }
    let end = used + usize::try_from(length).ok()?;
    Some((Some(bytes.get(used..end)?), end))
}

/// One record for [`encode_batch`].
#[derive(Debug, Clone, Default)]
pub struct RecordSpec<'a> {
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub timestamp_delta: i64,
}

/// Producer identity for [`encode_batch`]; the defaults mean "not idempotent".
#[derive(Debug, Clone, Copy)]
pub struct ProducerSpec {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl Default for ProducerSpec {
    fn default() -> Self {
        Self {
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
        }
    }
}

/// Encodes an uncompressed RecordBatch v2 with base offset 0, for tests, benchmarks and tools
/// (the broker never encodes batches: it stores the producers' bytes).
pub fn encode_batch(
    base_timestamp: i64,
    records: &[RecordSpec<'_>],
    producer: ProducerSpec,
) -> Vec<u8> {
    assert!(!records.is_empty(), "a batch holds at least one record");
    let mut out = vec![0u8; HEADER_BYTES];
    let mut max_timestamp = base_timestamp;
    for (offset_delta, record) in records.iter().enumerate() {
        max_timestamp = max_timestamp.max(base_timestamp + record.timestamp_delta);
        let mut body = vec![0u8]; // attributes
        write_varlong(&mut body, record.timestamp_delta);
        write_varlong(&mut body, offset_delta as i64);
        write_optional_bytes(&mut body, record.key);
        write_optional_bytes(&mut body, record.value);
        write_varlong(&mut body, 0); // header count
        write_varlong(&mut out, body.len() as i64);
        out.extend_from_slice(&body);
    }
    // Encoded batches are the broker's own (internal topics) and tests': far below 2 GiB, and
    // with at most i32::MAX records.
    let batch_length =
        i32::try_from(out.len() - LOG_OVERHEAD_BYTES).expect("an encoded batch stays below 2 GiB");
    let record_count = i32::try_from(records.len()).expect("an encoded batch's record count");
    out[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4].copy_from_slice(&batch_length.to_be_bytes());
    out[LEADER_EPOCH_OFFSET..LEADER_EPOCH_OFFSET + 4].copy_from_slice(&(-1i32).to_be_bytes());
    out[MAGIC_OFFSET] = MAGIC_V2.to_be_bytes()[0];
    let last_offset_delta = record_count - 1;
    out[LAST_OFFSET_DELTA_OFFSET..LAST_OFFSET_DELTA_OFFSET + 4]
        .copy_from_slice(&last_offset_delta.to_be_bytes());
    out[BASE_TIMESTAMP_OFFSET..BASE_TIMESTAMP_OFFSET + 8]
        .copy_from_slice(&base_timestamp.to_be_bytes());
    out[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
        .copy_from_slice(&max_timestamp.to_be_bytes());
    out[PRODUCER_ID_OFFSET..PRODUCER_ID_OFFSET + 8]
        .copy_from_slice(&producer.producer_id.to_be_bytes());
    out[PRODUCER_EPOCH_OFFSET..PRODUCER_EPOCH_OFFSET + 2]
        .copy_from_slice(&producer.producer_epoch.to_be_bytes());
    out[BASE_SEQUENCE_OFFSET..BASE_SEQUENCE_OFFSET + 4]
        .copy_from_slice(&producer.base_sequence.to_be_bytes());
    out[RECORD_COUNT_OFFSET..RECORD_COUNT_OFFSET + 4].copy_from_slice(&record_count.to_be_bytes());
    let crc = crate::checksum::crc32c(&out[ATTRIBUTES_OFFSET..]);
    out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    out
}

fn write_optional_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => write_varlong(out, -1),
        Some(bytes) => {
            write_varlong(out, bytes.len() as i64);
            out.extend_from_slice(bytes);
        }
    }
}

/// A batch of `record_count` records of `value_bytes` each: the benchmarks' and tests' workhorse.
pub fn encode_uniform_batch(
    base_timestamp: i64,
    record_count: usize,
    value_bytes: usize,
) -> Vec<u8> {
    let value = vec![b'x'; value_bytes];
    let records: Vec<RecordSpec<'_>> = (0..record_count)
        .map(|_| RecordSpec {
            key: None,
            value: Some(&value),
            timestamp_delta: 0,
        })
        .collect();
    encode_batch(base_timestamp, &records, ProducerSpec::default())
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
