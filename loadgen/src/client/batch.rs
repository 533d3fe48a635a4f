//! RecordBatch v2, encoded and walked by hand: the loadgen's hot path. Producing 1 GB/s of 1 KB
//! messages means a million records a second on a core shared with the broker, and the
//! `kafka-protocol` record codec allocates a `Record` with its own key and value buffers per
//! record; here a record is a few varints and one copy of its value into the batch. Compression
//! uses the crate's codecs (that cost is the codec's, not the framing's).
//!
//! Every value the loadgen writes starts with an 8-byte stamp: a marker byte and the intended
//! send time in microseconds since the Unix epoch, which consumers turn into end-to-end latency.
#![forbid(unsafe_code)]

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Decompressor, Gzip, Lz4, Snappy, Zstd};

use super::ClientError;
use crate::workload::Compression;

/// CRC-32C, as a batch's `crc` field holds it. `crc-fast` rather than the `crc32c` crate: about
/// 4x its speed on cached batches here (decision 0036), and the loadgen computes one for every
/// batch it sends and checks one for every batch it reads, on cores it shares with the broker.
fn batch_crc(bytes: &[u8]) -> u32 {
    let crc = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, bytes);
    u32::try_from(crc).expect("a 32-bit CRC")
}

/// Bytes before the records: base offset … record count.
pub const BATCH_HEADER_BYTES: usize = 61;
/// Offset of the CRC-covered part (attributes onwards).
const CRC_START: usize = 21;
const MAGIC: i8 = 2;
/// Attributes: bits 0–2 codec, bit 5 control batch.
const CODEC_MASK: i16 = 0x07;
const CONTROL_FLAG: i16 = 0x20;

/// Size of the stamp at the start of each value.
pub const STAMP_BYTES: usize = 8;
/// Marker in the stamp's top byte: values without it were not written by the loadgen.
const STAMP_MARKER: u64 = 0xA5 << 56;
const STAMP_TIME_MASK: u64 = (1 << 56) - 1;

/// The 8-byte stamp for a message intended to be sent at `send_us`.
pub fn stamp(send_us: u64) -> [u8; STAMP_BYTES] {
    (STAMP_MARKER | (send_us & STAMP_TIME_MASK)).to_be_bytes()
}

/// The intended send time of a loadgen value, or `None` for a value without a stamp.
pub fn read_stamp(value: &[u8]) -> Option<u64> {
    let bytes: [u8; STAMP_BYTES] = value.get(..STAMP_BYTES)?.try_into().ok()?;
    let word = u64::from_be_bytes(bytes);
    (word & !STAMP_TIME_MASK == STAMP_MARKER).then_some(word & STAMP_TIME_MASK)
}

/// Builds one batch for one partition.
///
/// The batch is built in place: `batch` starts with room for the header, records are appended
/// after it, and [`BatchBuilder::finish`] fills the header in and hands the bytes out without
/// copying them. Once the request that carried them is written and dropped, the next batch
/// reuses the same memory (`BytesMut` takes it back when nothing else refers to it): fresh
/// memory costs a page fault per 4 KiB, which on VMs that hand idle memory back to the host is
/// dearer than the copy, and was most of the loadgen's page faults.
#[derive(Debug)]
pub struct BatchBuilder {
    /// The header's room and the records (uncompressed) of the open batch.
    batch: BytesMut,
    /// A compressed batch being made (header and compressed records), kept for the next one.
    compressed: BytesMut,
    count: i32,
    base_timestamp_ms: i64,
    max_timestamp_ms: i64,
    value_bytes: u64,
}

impl BatchBuilder {
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            batch: BytesMut::with_capacity(BATCH_HEADER_BYTES + bytes),
            compressed: BytesMut::new(),
            count: 0,
            base_timestamp_ms: 0,
            max_timestamp_ms: 0,
            value_bytes: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn record_count(&self) -> i32 {
        self.count
    }

    /// Bytes of encoded records so far (the batch is this plus the header).
    pub fn encoded_bytes(&self) -> usize {
        self.batch.len().saturating_sub(BATCH_HEADER_BYTES)
    }

    /// Bytes of values so far (what throughput counts).
    pub fn value_bytes(&self) -> u64 {
        self.value_bytes
    }

    /// Appends a record whose value is `value_head` followed by `value_tail`.
    pub fn push(
        &mut self,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value_head: &[u8],
        value_tail: &[u8],
    ) {
        if self.count == 0 {
            self.base_timestamp_ms = timestamp_ms;
            self.max_timestamp_ms = timestamp_ms;
            self.batch.clear();
            self.batch.put_bytes(0, BATCH_HEADER_BYTES);
        }
        self.max_timestamp_ms = self.max_timestamp_ms.max(timestamp_ms);
        let value_len = value_head.len() + value_tail.len();
        let key_len = key.map_or(-1, |key| key.len() as i64);
        let timestamp_delta = timestamp_ms - self.base_timestamp_ms;
        let body_len = 1
            + varint_len(timestamp_delta)
            + varint_len(i64::from(self.count))
            + varint_len(key_len)
            + key.map_or(0, <[u8]>::len)
            + varint_len(value_len as i64)
            + value_len
            + 1;
        let records = &mut self.batch;
        records.reserve(body_len + 5);
        put_varint(records, body_len as i64);
        records.put_u8(0);
        put_varint(records, timestamp_delta);
        put_varint(records, i64::from(self.count));
        put_varint(records, key_len);
        if let Some(key) = key {
            records.put_slice(key);
        }
        put_varint(records, value_len as i64);
        records.put_slice(value_head);
        records.put_slice(value_tail);
        records.put_u8(0);
        self.count += 1;
        self.value_bytes += value_len as u64;
    }

    /// The finished batch, ready for a Produce request; the builder is empty again after it.
    pub fn finish(&mut self, compression: Compression) -> Result<Bytes, ClientError> {
        debug_assert!(self.count > 0, "a batch has records");
        let codec = match compression {
            Compression::None => 0,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        };
        let header = BatchHeader {
            codec,
            count: self.count,
            base_timestamp_ms: self.base_timestamp_ms,
            max_timestamp_ms: self.max_timestamp_ms,
        };
        self.count = 0;
        self.value_bytes = 0;
        let finished = match compression {
            Compression::None => &mut self.batch,
            Compression::Lz4 | Compression::Zstd => {
                let records = &self.batch[BATCH_HEADER_BYTES..];
                let copy = |tmp: &mut BytesMut| {
                    tmp.extend_from_slice(records);
                    Ok(())
                };
                let compressed = &mut self.compressed;
                compressed.clear();
                compressed.reserve(BATCH_HEADER_BYTES + records.len());
                compressed.put_bytes(0, BATCH_HEADER_BYTES);
                match compression {
                    Compression::Lz4 => Lz4::compress(compressed, copy),
                    _ => Zstd::compress(compressed, copy),
                }
                .map_err(ClientError::codec)?;
                self.batch.clear();
                compressed
            }
        };
        header.write(finished)?;
        Ok(finished.split().freeze())
    }
}

/// The header fields a producer sets (the rest are fixed: no producer id, offsets assigned by
/// the broker).
struct BatchHeader {
    codec: i16,
    count: i32,
    base_timestamp_ms: i64,
    max_timestamp_ms: i64,
}

impl BatchHeader {
    /// Fills in the header at the start of `batch` (whose records follow it), then its length
    /// and CRC-32C.
    fn write(&self, batch: &mut BytesMut) -> Result<(), ClientError> {
        let batch_length =
            i32::try_from(batch.len() - 12).map_err(|_| ClientError::FrameTooLarge)?;
        let mut header = &mut batch[..BATCH_HEADER_BYTES];
        header.put_i64(0); // base offset: the broker assigns offsets
        header.put_i32(batch_length);
        header.put_i32(-1); // partition leader epoch
        header.put_i8(MAGIC);
        header.put_u32(0); // CRC, patched below
        header.put_i16(self.codec);
        header.put_i32(self.count - 1);
        header.put_i64(self.base_timestamp_ms);
        header.put_i64(self.max_timestamp_ms);
        header.put_i64(-1); // producer id: not idempotent
        header.put_i16(-1);
        header.put_i32(-1);
        header.put_i32(self.count);
        debug_assert!(header.is_empty(), "the header fills its room");
        let crc = batch_crc(&batch[CRC_START..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        Ok(())
    }
}

/// What a consumer needs from one fetched batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSummary {
    /// The offset after the batch (where the next fetch starts).
    pub next_offset: i64,
    /// Records that are data (0 for control batches).
    pub records: u64,
    /// Value bytes of those records.
    pub value_bytes: u64,
}

/// A batch's whole length (its length field counts from after itself), from the first 12 bytes
/// of `header`; an error for a length shorter than a batch header.
fn whole_batch_bytes(header: &[u8]) -> Result<usize, ClientError> {
    let batch_length = i32::from_be_bytes(header[8..12].try_into().expect("4 bytes"));
    usize::try_from(batch_length)
        .ok()
        .and_then(|length| length.checked_add(12))
        .filter(|total| *total >= BATCH_HEADER_BYTES)
        .ok_or_else(|| ClientError::Protocol(format!("batch length {batch_length}")))
}

/// Where the next fetch starts after `records`, from the batch headers alone (no CRC, no record
/// walked): the offset after the last whole batch, or `position` if none ends past it. What
/// [`walk_batches`] would leave the position at, for a record set it accepts.
pub fn next_position(records: &[u8], position: i64) -> i64 {
    let mut next = position;
    let mut at = 0usize;
    while let Some(header) = records.get(at..at + BATCH_HEADER_BYTES) {
        let base_offset = i64::from_be_bytes(header[0..8].try_into().expect("8 bytes"));
        let last_offset_delta = i32::from_be_bytes(header[23..27].try_into().expect("4 bytes"));
        let Some(total) = whole_batch_bytes(header)
            .ok()
            .filter(|total| at + *total <= records.len())
        else {
            break;
        };
        let batch_next = base_offset.saturating_add(i64::from(last_offset_delta) + 1);
        next = next.max(batch_next);
        at += total;
    }
    next
}

/// Walks the batches of a fetch response's record set, checking each batch's CRC-32C (as Kafka
/// consumers do by default) and calling `on_stamp` with the intended send time of every stamped
/// value (with the value's length). Batches that end before `position` (a fetch may return them)
/// are skipped whole. A batch cut short by the fetch size limit ends the walk.
pub fn walk_batches(
    mut records: Bytes,
    position: i64,
    mut on_stamp: impl FnMut(u64, usize),
) -> Result<Vec<BatchSummary>, ClientError> {
    let mut summaries = Vec::new();
    while records.len() >= BATCH_HEADER_BYTES {
        let base_offset = i64::from_be_bytes(records[0..8].try_into().expect("8 bytes"));
        let total = whole_batch_bytes(&records)?;
        if records.len() < total {
            break;
        }
        let mut batch = records.split_to(total);
        // A background consumer offers its core between batches (see `background`).
        super::background::worked(total);
        let crc = u32::from_be_bytes(batch[17..21].try_into().expect("4 bytes"));
        if batch_crc(&batch[CRC_START..]) != crc {
            return Err(ClientError::Protocol(format!(
                "record batch at offset {base_offset} fails its CRC-32C"
            )));
        }
        if batch[16] as i8 != MAGIC {
            return Err(ClientError::Protocol(format!(
                "record batch magic {} (only v2 is read)",
                batch[16]
            )));
        }
        let attributes = i16::from_be_bytes([batch[21], batch[22]]);
        let last_offset_delta = i32::from_be_bytes(batch[23..27].try_into().expect("4 bytes"));
        let record_count = i32::from_be_bytes(batch[57..61].try_into().expect("4 bytes"));
        let mut summary = BatchSummary {
            next_offset: base_offset
                .checked_add(i64::from(last_offset_delta) + 1)
                .filter(|next| *next > base_offset)
                .ok_or_else(|| {
                    ClientError::Protocol(format!(
                        "batch at {base_offset} with last offset delta {last_offset_delta}"
                    ))
                })?,
            records: 0,
            value_bytes: 0,
        };
        if summary.next_offset <= position {
            continue;
        }
        if attributes & CONTROL_FLAG == 0 {
            batch.advance(BATCH_HEADER_BYTES);
            let mut walk =
                |body: &mut Bytes| walk_records(body, record_count, &mut summary, &mut on_stamp);
            match attributes & CODEC_MASK {
                0 => walk(&mut batch),
                1 => Gzip::decompress(&mut batch, |body| Ok(walk(body)))
                    .map_err(ClientError::codec)?,
                2 => Snappy::decompress(&mut batch, |body| Ok(walk(body)))
                    .map_err(ClientError::codec)?,
                3 => Lz4::decompress(&mut batch, |body| Ok(walk(body)))
                    .map_err(ClientError::codec)?,
                4 => Zstd::decompress(&mut batch, |body| Ok(walk(body)))
                    .map_err(ClientError::codec)?,
                codec => Err(ClientError::Protocol(format!("compression codec {codec}"))),
            }?;
        }
        summaries.push(summary);
    }
    Ok(summaries)
}

fn walk_records(
    body: &mut Bytes,
    record_count: i32,
    summary: &mut BatchSummary,
    on_stamp: &mut impl FnMut(u64, usize),
) -> Result<(), ClientError> {
    let malformed = || ClientError::Protocol("malformed record".to_string());
    for _ in 0..record_count {
        let length = usize::try_from(get_varint(body)?).map_err(|_| malformed())?;
        if length == 0 || body.len() < length {
            return Err(malformed());
        }
        let mut record = body.split_to(length);
        record.advance(1); // attributes
        get_varint(&mut record)?; // timestamp delta
        get_varint(&mut record)?; // offset delta
        let key_len = get_varint(&mut record)?;
        if key_len > 0 {
            let key_len = usize::try_from(key_len).map_err(|_| malformed())?;
            if record.len() < key_len {
                return Err(malformed());
            }
            record.advance(key_len);
        }
        let value_len = get_varint(&mut record)?;
        summary.records += 1;
        if value_len > 0 {
            let value_len = usize::try_from(value_len).map_err(|_| malformed())?;
            let value = record.get(..value_len).ok_or_else(malformed)?;
            summary.value_bytes += value_len as u64;
            if let Some(send_us) = read_stamp(value) {
                on_stamp(send_us, value_len);
            }
        }
    }
    Ok(())
}

fn varint_len(value: i64) -> usize {
    let zigzag = ((value << 1) ^ (value >> 63)) as u64;
    (64 - (zigzag | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_varint(buf: &mut BytesMut, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        buf.put_u8((zigzag as u8) | 0x80);
        zigzag >>= 7;
    }
    buf.put_u8(zigzag as u8);
}

fn get_varint(buf: &mut Bytes) -> Result<i64, ClientError> {
    let mut zigzag: u64 = 0;
    for shift in (0..70).step_by(7) {
        if !buf.has_remaining() {
            break;
        }
        let byte = buf.get_u8();
        zigzag |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64));
        }
    }
    Err(ClientError::Protocol("malformed varint".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;

    fn build(compression: Compression, count: usize) -> Bytes {
        let mut builder = BatchBuilder::with_capacity(1 << 16);
        for index in 0..count {
            let key = format!("key-{index}");
            builder.push(
                1_700_000_000_000 + index as i64,
                (index % 2 == 0).then_some(key.as_bytes()),
                &stamp(1_000_000 + index as u64),
                &vec![index as u8; 100 + index],
            );
        }
        builder.finish(compression).unwrap()
    }

    /// A batch of 10 records (offsets 0-9, `first` compressed) and one of 5 numbered after it
    /// (10-14, `second` compressed), as the broker would number them.
    fn two_batches(first: Compression, second: Compression) -> BytesMut {
        let mut records = BytesMut::from(&build(first, 10)[..]);
        let mut next = BytesMut::from(&build(second, 5)[..]);
        next[0..8].copy_from_slice(&10i64.to_be_bytes());
        records.extend_from_slice(&next);
        records
    }

    fn fill(builder: &mut BatchBuilder, count: usize, value_byte: u8) {
        for index in 0..count {
            builder.push(
                1_700_000_000_000 + index as i64,
                None,
                &stamp(index as u64),
                &[value_byte; 1000],
            );
        }
    }

    fn values(batch: &Bytes) -> Vec<Vec<u8>> {
        let mut records = batch.clone();
        RecordBatchDecoder::decode(&mut records)
            .unwrap()
            .records
            .into_iter()
            .map(|record| record.value.unwrap().to_vec())
            .collect()
    }

    #[test]
    fn a_batch_reuses_the_memory_of_the_one_before_once_it_is_dropped() {
        for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let mut builder = BatchBuilder::with_capacity(64 << 10);
            fill(&mut builder, 40, 1);
            let first = builder.finish(compression).unwrap();
            let first_address = first.as_ptr();
            assert_eq!(values(&first).len(), 40);
            drop(first);
            fill(&mut builder, 40, 2);
            let second = builder.finish(compression).unwrap();
            assert_eq!(
                second.as_ptr(),
                first_address,
                "{compression:?}: the first batch's memory is reused"
            );
            // While a batch is held, the next one is built elsewhere and both stay intact.
            fill(&mut builder, 40, 3);
            let third = builder.finish(compression).unwrap();
            assert_ne!(third.as_ptr(), second.as_ptr());
            assert!(values(&second).iter().all(|value| value[8..] == [2; 1000]));
            assert!(values(&third).iter().all(|value| value[8..] == [3; 1000]));
        }
    }

    #[test]
    fn a_batch_has_its_own_max_timestamp() {
        let mut builder = BatchBuilder::with_capacity(1 << 16);
        builder.push(2_000, None, &stamp(0), b"later");
        builder.finish(Compression::None).unwrap();
        builder.push(1_000, None, &stamp(0), b"earlier");
        let batch = builder.finish(Compression::None).unwrap();
        let max_timestamp_ms = i64::from_be_bytes(batch[35..43].try_into().unwrap());
        assert_eq!(max_timestamp_ms, 1_000, "not the batch before's 2,000");
    }

    #[test]
    fn batches_decode_with_the_crates_decoder() {
        for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let mut batch = build(compression, 50);
            let set = RecordBatchDecoder::decode(&mut batch).unwrap();
            assert_eq!(set.records.len(), 50, "{compression:?}");
            for (index, record) in set.records.iter().enumerate() {
                assert_eq!(record.offset, index as i64);
                assert_eq!(record.timestamp, 1_700_000_000_000 + index as i64);
                let expected_key = format!("key-{index}");
                assert_eq!(
                    record.key.as_deref(),
                    (index % 2 == 0).then_some(expected_key.as_bytes())
                );
                let value = record.value.as_ref().unwrap();
                assert_eq!(value.len(), STAMP_BYTES + 100 + index);
                assert_eq!(read_stamp(value), Some(1_000_000 + index as u64));
            }
        }
    }

    #[test]
    fn walking_counts_records_bytes_and_stamps() {
        for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let mut records = two_batches(compression, compression);
            let cut = records[..30].to_vec();
            records.extend_from_slice(&cut); // a batch cut by the fetch size limit
            let mut stamps = Vec::new();
            let summaries =
                walk_batches(records.freeze(), 0, |send_us, _| stamps.push(send_us)).unwrap();
            assert_eq!(summaries.len(), 2);
            assert_eq!(summaries[0].next_offset, 10);
            assert_eq!(summaries[1].next_offset, 15);
            assert_eq!(summaries[0].records, 10);
            assert_eq!(
                summaries[0].value_bytes,
                (0..10)
                    .map(|index| (STAMP_BYTES + 100 + index) as u64)
                    .sum::<u64>()
            );
            assert_eq!(stamps.len(), 15);
            assert_eq!(stamps[0], 1_000_000);
        }
    }

    #[test]
    fn batches_before_the_position_are_skipped() {
        let records = two_batches(Compression::None, Compression::None);
        let mut stamps = 0;
        let summaries = walk_batches(records.freeze(), 10, |_, _| stamps += 1).unwrap();
        assert_eq!(summaries.len(), 1);
        assert_eq!(summaries[0].next_offset, 15);
        assert_eq!(stamps, 5);
    }

    #[test]
    fn the_headers_give_the_position_the_walk_leaves() {
        // A fetch ahead is sent from the headers alone, before the walk: it must ask where the
        // walk will have left the position, or every fetch ahead is dropped as stale.
        let whole = two_batches(Compression::None, Compression::Lz4).freeze();
        for (cut, position) in [(0, 0), (0, 10), (0, 15), (1, 0), (1, 10), (whole.len(), 3)] {
            let set = whole.slice(..whole.len() - cut);
            let walked = walk_batches(set.clone(), position, |_, _| {})
                .unwrap()
                .last()
                .map_or(position, |batch| batch.next_offset);
            assert_eq!(
                next_position(&set, position),
                walked,
                "cut {cut}, at {position}"
            );
        }
        assert_eq!(next_position(&whole, 0), 15);
        assert_eq!(
            next_position(&whole.slice(..whole.len() - 1), 0),
            10,
            "a cut batch"
        );
        assert_eq!(next_position(&[], 7), 7);
        assert_eq!(next_position(&[0u8; 30], 7), 7, "less than a header");
    }

    #[test]
    fn a_corrupted_batch_is_an_error() {
        let mut batch = BytesMut::from(&build(Compression::None, 3)[..]);
        let last = batch.len() - 1;
        batch[last] ^= 1;
        assert!(walk_batches(batch.freeze(), 0, |_, _| {}).is_err());
    }

    #[test]
    fn batch_crcs_agree_with_the_crc32c_crate() {
        assert_eq!(batch_crc(b"123456789"), 0xE306_9283);
        let batch = build(Compression::None, 100);
        for start in 0..8 {
            let bytes = &batch[start..];
            assert_eq!(batch_crc(bytes), crc32c::crc32c(bytes));
        }
    }

    #[test]
    fn malformed_batches_are_errors_not_panics() {
        // A zero-length record with a valid CRC, then a batch whose offsets overflow.
        let mut batch = BytesMut::from(&build(Compression::None, 1)[..]);
        batch.truncate(BATCH_HEADER_BYTES);
        batch.put_u8(0); // record length 0
        let length = (batch.len() - 12) as i32;
        batch[8..12].copy_from_slice(&length.to_be_bytes());
        let crc = crc32c::crc32c(&batch[CRC_START..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(walk_batches(batch.clone().freeze(), 0, |_, _| {}).is_err());
        batch[0..8].copy_from_slice(&i64::MAX.to_be_bytes());
        assert!(walk_batches(batch.freeze(), 0, |_, _| {}).is_err());
    }

    #[test]
    fn varints_round_trip() {
        for value in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            300,
            -300,
            i64::from(i32::MAX),
            i64::MIN / 2,
        ] {
            let mut buf = BytesMut::new();
            put_varint(&mut buf, value);
            assert_eq!(buf.len(), varint_len(value), "{value}");
            assert_eq!(get_varint(&mut buf.freeze()).unwrap(), value);
        }
    }

    #[test]
    fn values_without_the_marker_have_no_stamp() {
        assert_eq!(read_stamp(b"hello world!"), None);
        assert_eq!(read_stamp(&[0xA5]), None);
        assert_eq!(read_stamp(&stamp(42)), Some(42));
    }
}
