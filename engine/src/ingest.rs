//! What a log does to a producer's batches before storing them, as its topic configs ask:
//! timestamp bounds (`message.timestamp.before.max.ms` / `after.max.ms`), broker time stamping
//! (`message.timestamp.type=LogAppendTime`) and recompression (`compression.type`).
//!
//! The default rules (CreateTime, `compression.type=producer`) keep the zero-copy append: the
//! producer's bytes are stored as they came and only their headers are read. A rule that changes
//! a batch (stamping, recompression) costs a copy of the record set, and recompression a
//! decompression and compression, as in Kafka.
//!
//! # Invariants
//! - A rewritten batch keeps its offsets delta, record count, producer id, epoch and sequence, so
//!   the sequence check and offset assignment see what the producer sent; its CRC is recomputed
//!   and it is validated again before it is stored.
//! - Control batches (transaction markers) are never rewritten: they are the broker's own.
//! - Timestamp bounds apply to CreateTime only, and only the batch's first (`base_timestamp`) and
//!   largest (`max_timestamp`) timestamps are checked: reading every record would cost a
//!   decompression of every compressed batch on the hot path.
#![forbid(unsafe_code)]

use std::fmt;
use std::str::FromStr;

use bytes::{Bytes, BytesMut};

use crate::batch::{
    self, BatchHeader, Strictness, ATTRIBUTES_OFFSET, BATCH_LENGTH_OFFSET, CRC_OFFSET,
    HEADER_BYTES, LOG_OVERHEAD_BYTES, MAX_TIMESTAMP_OFFSET,
};
use crate::codec::Compression;
use crate::compression::{self, Framing};
use crate::error::{AppendError, BatchError, ConfigError};

/// Bit 3 of a batch's attributes: its max timestamp is the broker's append time.
const ATTR_LOG_APPEND_TIME: i16 = 0x08;
const ATTR_CODEC_MASK: i16 = 0x07;

/// Which time a stored record carries (Kafka's `message.timestamp.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// The producer's timestamps, kept as sent.
    CreateTime,
    /// The broker stamps each batch's max timestamp with the time it appends it.
    LogAppendTime,
}

impl FromStr for TimestampType {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "CreateTime" => Ok(Self::CreateTime),
            "LogAppendTime" => Ok(Self::LogAppendTime),
            _ => Err(ConfigError::Invalid {
                name: "message.timestamp.type".into(),
                value: text.into(),
                reason: "expected CreateTime or LogAppendTime".into(),
            }),
        }
    }
}

impl fmt::Display for TimestampType {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Self::CreateTime => "CreateTime",
            Self::LogAppendTime => "LogAppendTime",
        })
    }
}

/// The codec a log stores (Kafka's topic `compression.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionType {
    /// Whatever the producer used.
    Producer,
    /// This codec (`Compression::None` is Kafka's `uncompressed`); other batches are recompressed.
    Fixed(Compression),
}

impl FromStr for CompressionType {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text {
            "producer" => Self::Producer,
            "uncompressed" => Self::Fixed(Compression::None),
            "gzip" => Self::Fixed(Compression::Gzip),
            "snappy" => Self::Fixed(Compression::Snappy),
            "lz4" => Self::Fixed(Compression::Lz4),
            "zstd" => Self::Fixed(Compression::Zstd),
            _ => {
                return Err(ConfigError::Invalid {
                    name: "compression.type".into(),
                    value: text.into(),
                    reason: "expected producer, uncompressed, gzip, snappy, lz4 or zstd".into(),
                })
            }
        })
    }
}

impl fmt::Display for CompressionType {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Self::Producer => "producer",
            Self::Fixed(Compression::None) => "uncompressed",
            Self::Fixed(Compression::Gzip) => "gzip",
            Self::Fixed(Compression::Snappy) => "snappy",
            Self::Fixed(Compression::Lz4) => "lz4",
            Self::Fixed(Compression::Zstd) => "zstd",
        })
    }
}

/// The rules of one log, taken from its config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestRules {
    pub timestamp_type: TimestampType,
    /// How far in the past a CreateTime timestamp may be.
    pub timestamp_before_max_ms: i64,
    /// How far in the future a CreateTime timestamp may be.
    pub timestamp_after_max_ms: i64,
    pub compression: CompressionType,
    /// Largest batch stored: a recompressed batch is checked again.
    pub batch_bytes_max: usize,
}

/// A record set ready for the log.
#[derive(Debug)]
pub struct Ingested {
    pub records: Bytes,
    pub headers: Vec<BatchHeader>,
}

/// Applies `rules` to a validated record set (`headers` are its batches, in order) at `now_ms`.
pub fn ingest(
    records: Bytes,
    headers: Vec<BatchHeader>,
    rules: &IngestRules,
    now_ms: i64,
) -> Result<Ingested, AppendError> {
    if rules.timestamp_type == TimestampType::CreateTime {
        // A batch whose header max is unfounded is checked by its records' own max, once
        // rewritten below (its header's 0 is no record's time).
        let founded =
            |header: &&BatchHeader| !header.is_control() && !max_timestamp_unfounded(header, rules);
        for header in headers.iter().filter(founded) {
            check_timestamp_bounds(header, rules, now_ms)?;
        }
    }
    if !headers.iter().any(|header| needs_rewrite(header, rules)) {
        return Ok(Ingested { records, headers });
    }
    let mut out = BytesMut::with_capacity(records.len());
    let mut position = 0usize;
    for header in &headers {
        let bytes = &records[position..position + header.total_bytes()];
        position += header.total_bytes();
        if needs_rewrite(header, rules) {
            out.extend_from_slice(&rewrite(bytes, header, rules, now_ms)?);
        } else {
            out.extend_from_slice(bytes);
        }
    }
    let records = out.freeze();
    let rewritten = batch::validate_all(&records, rules.batch_bytes_max, Strictness::Producer)?;
    for (header, before) in rewritten.iter().zip(&headers) {
        if max_timestamp_unfounded(before, rules) {
            check_timestamp_bounds(header, rules, now_ms)?;
        }
    }
    Ok(Ingested {
        records,
        headers: rewritten,
    })
}

fn check_timestamp_bounds(
    header: &BatchHeader,
    rules: &IngestRules,
    now_ms: i64,
) -> Result<(), AppendError> {
    let earliest_ms = now_ms.saturating_sub(rules.timestamp_before_max_ms);
    let latest_ms = now_ms.saturating_add(rules.timestamp_after_max_ms);
    for timestamp in [header.base_timestamp, header.max_timestamp] {
        // -1: the record has no timestamp, which no bound applies to.
        if timestamp != -1 && !(earliest_ms..=latest_ms).contains(&timestamp) {
            return Err(AppendError::InvalidTimestamp {
                timestamp_ms: timestamp,
                earliest_ms,
                latest_ms,
            });
        }
    }
    Ok(())
}

fn target_codec(header: &BatchHeader, rules: &IngestRules) -> Option<Compression> {
    match rules.compression {
        CompressionType::Fixed(codec) if !header.is_control() => {
            (header.compression().ok()? != codec).then_some(codec)
        }
        _ => None,
    }
}

fn needs_rewrite(header: &BatchHeader, rules: &IngestRules) -> bool {
    !header.is_control()
        && (rules.timestamp_type == TimestampType::LogAppendTime
            || target_codec(header, rules).is_some()
            || max_timestamp_unfounded(header, rules))
}

/// A CreateTime batch whose records have no timestamp (base -1) but whose header claims a max:
/// librdkafka leaves it at 0 for messages produced with timestamp -1. Kafka's LogValidator sets
/// the max to the records' largest timestamp; kept at 0 (1970) here, it made the segment expire
/// at once under time retention. Only such batches pay for reading their records.
fn max_timestamp_unfounded(header: &BatchHeader, rules: &IngestRules) -> bool {
    rules.timestamp_type == TimestampType::CreateTime
        && header.base_timestamp == -1
        && header.max_timestamp != -1
}

/// The largest timestamp of the batch's records (base plus delta), -1 when none has one: what
/// Kafka stores as a CreateTime batch's max timestamp.
fn records_max_timestamp(bytes: &[u8], header: &BatchHeader) -> Result<i64, AppendError> {
    let decoded =
        crate::cleaner::decode_batch(bytes).map_err(|err| AppendError::UnreadableRecords {
            reason: err.to_string(),
        })?;
    Ok(decoded
        .records
        .iter()
        .map(|record| header.base_timestamp.saturating_add(record.timestamp_delta))
        .fold(-1, i64::max))
}

/// One batch rewritten: recompressed if its codec is not the log's, stamped with `now_ms` under
/// LogAppendTime, its unfounded max timestamp replaced by its records', with length and CRC
/// recomputed.
fn rewrite(
    bytes: &[u8],
    header: &BatchHeader,
    rules: &IngestRules,
    now_ms: i64,
) -> Result<Vec<u8>, AppendError> {
    let mut attributes = header.attributes;
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&bytes[..HEADER_BYTES]);
    match target_codec(header, rules) {
        Some(codec) => {
            let (area, _) = compression::decompress(header.compression()?, &bytes[HEADER_BYTES..])
                .map_err(unreadable)?;
            // Kafka's broker writes snappy in snappy-java's xerial framing, which every client reads.
            let framing = if codec == Compression::Snappy {
                Framing::SnappyXerial
            } else {
                Framing::Standard
            };
            out.extend_from_slice(
                &compression::compress(codec, framing, &area).map_err(unreadable)?,
            );
            attributes = (attributes & !ATTR_CODEC_MASK) | codec_bits(codec);
        }
        None => out.extend_from_slice(&bytes[HEADER_BYTES..]),
    }
    if max_timestamp_unfounded(header, rules) {
        let max_timestamp = records_max_timestamp(bytes, header)?;
        out[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
            .copy_from_slice(&max_timestamp.to_be_bytes());
    }
    if rules.timestamp_type == TimestampType::LogAppendTime {
        attributes |= ATTR_LOG_APPEND_TIME;
        out[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&now_ms.to_be_bytes());
    }
    out[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    let batch_length = i32::try_from(out.len() - LOG_OVERHEAD_BYTES).map_err(|_| {
        AppendError::Batch(BatchError::TooLarge {
            batch_bytes: out.len(),
            batch_bytes_max: rules.batch_bytes_max,
        })
    })?;
    out[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4].copy_from_slice(&batch_length.to_be_bytes());
    let crc = crate::checksum::crc32c(&out[ATTRIBUTES_OFFSET..]);
    out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

fn unreadable(err: crate::error::CompressionError) -> AppendError {
    AppendError::UnreadableRecords {
        reason: err.to_string(),
    }
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

#[cfg(test)]
#[path = "ingest_tests.rs"]
mod tests;
