//! Typed errors, one enum per operation, as the engine's callers must tell them apart
//! (the broker maps each to a Kafka error code).
#![forbid(unsafe_code)]

use std::io;
use std::path::PathBuf;

use crate::codec::Compression;
use crate::units::{Offset, Position};

/// A record batch that can't be stored. Maps to CORRUPT_MESSAGE, MESSAGE_TOO_LARGE or
/// UNSUPPORTED_VERSION at the wire.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BatchError {
    #[error("batch truncated: needs {needed_bytes} bytes, {available_bytes} available")]
    Truncated {
        needed_bytes: usize,
        available_bytes: usize,
    },
    #[error("batch length field {batch_length} is below the header size")]
    BadLength { batch_length: i32 },
    #[error("batch of {batch_bytes} bytes exceeds the limit of {batch_bytes_max}")]
    TooLarge {
        batch_bytes: usize,
        batch_bytes_max: usize,
    },
    #[error("unsupported record batch magic {magic} (only v2 is stored)")]
    UnsupportedMagic { magic: i8 },
    #[error("CRC-32C mismatch: stored {crc_stored:#010x}, computed {crc_computed:#010x}")]
    CrcMismatch { crc_stored: u32, crc_computed: u32 },
    #[error("unknown compression codec {codec}")]
    UnknownCompression { codec: u8 },
    #[error("record count {record_count} does not fit last offset delta {last_offset_delta}")]
    BadRecordCount {
        record_count: i32,
        last_offset_delta: i32,
    },
    #[error("bad timestamps: base {base_timestamp}, max {max_timestamp}")]
    BadTimestamps {
        base_timestamp: i64,
        max_timestamp: i64,
    },
    #[error("empty record set")]
    Empty,
    /// Offsets that do not fit: a negative base, or a last offset past `i64::MAX` (bytes from a
    /// damaged file or a forged one; the engine never writes such a batch).
    #[error(
        "batch offsets out of range: base {base_offset}, last offset delta {last_offset_delta}"
    )]
    OffsetOutOfRange {
        base_offset: i64,
        last_offset_delta: i32,
    },
    /// A control batch (transaction marker) whose record is not one ABORT or COMMIT marker.
    #[error("bad control batch: {reason}")]
    BadControlBatch { reason: String },
}

/// Why a producer's batch was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    /// The batch does not follow the last one (a batch in between was lost). Kafka's
    /// OUT_OF_ORDER_SEQUENCE_NUMBER.
    #[error("out of order sequence: expected {expected}, got {got}")]
    OutOfOrder { expected: i32, got: i32 },
    /// An older epoch: a newer instance of the producer exists. Kafka's INVALID_PRODUCER_EPOCH.
    #[error("producer epoch {got} is older than the current {current}")]
    StaleEpoch { current: i16, got: i16 },
    /// A non-transactional batch of a producer whose transaction is open on the partition.
    /// Kafka's INVALID_TXN_STATE.
    #[error("a non-transactional batch while the producer's transaction is open")]
    TransactionOpen,
}

/// Why an append did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("write to the log failed: {0}")]
    Io(#[from] io::Error),
    /// An earlier write or fsync failed: the page cache state is unknown, so the partition takes
    /// no more appends until the process restarts and recovers it from disk.
    #[error("partition log failed earlier and is read-only until restart: {reason}")]
    LogFailed { reason: String },
    #[error("partition log is closed")]
    Closed,
    #[error(transparent)]
    Sequence(#[from] SequenceError),
    /// Records without a key in a compacted log: compaction keeps the latest record per key, so
    /// a keyless record has no meaning there. Kafka's INVALID_RECORD; `record_indexes` are the
    /// keyless records' positions in their batch (KIP-467's batch_index).
    #[error("{} record(s) have no key, and the log is compacted (compacted topic cannot accept message without key)", record_indexes.len())]
    NullKeyInCompactedLog { record_indexes: Vec<i32> },
    /// A compacted log's batch whose records could not be read to check their keys, or a batch
    /// the log must recompress (`compression.type`) whose records could not be decompressed.
    #[error("batch records unreadable: {reason}")]
    UnreadableRecords { reason: String },
    /// A producer's batch whose records are not what its header says (their count, their
    /// structure, compressed bytes that do not decompress), or a record set decompressing to
    /// more than the log reads for one append. Kafka's INVALID_RECORD.
    #[error("invalid records: {reason}")]
    InvalidRecords { reason: String },
    /// A CreateTime timestamp outside the log's `message.timestamp.before.max.ms` /
    /// `after.max.ms` window. Kafka's INVALID_TIMESTAMP.
    #[error(
        "timestamp {timestamp_ms} is outside the accepted window [{earliest_ms}, {latest_ms}]"
    )]
    InvalidTimestamp {
        timestamp_ms: i64,
        earliest_ms: i64,
        latest_ms: i64,
    },
}

/// Why a read could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("offset {offset} out of range [{log_start_offset}, {high_watermark}]")]
    OffsetOutOfRange {
        offset: Offset,
        log_start_offset: Offset,
        high_watermark: Offset,
    },
    #[error("read from the log failed: {0}")]
    Io(#[from] io::Error),
    #[error("log data is inconsistent at {path}:{position}: {reason}")]
    Corrupt {
        path: PathBuf,
        position: Position,
        reason: String,
    },
}

/// Why a partition or the registry could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("I/O error on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("bad file name {path}: expected a 20-digit base offset")]
    BadFileName { path: PathBuf },
    #[error("registry {path} is unreadable: {reason}")]
    BadRegistry { path: PathBuf, reason: String },
    /// The partition's data dir was unreadable at start: it is not served until a restart finds
    /// the dir readable (KAFKA_STORAGE_ERROR at the wire).
    #[error("data dir {path} is offline: {reason}")]
    DataDirOffline { path: PathBuf, reason: String },
    /// No home could be chosen or recorded for a new partition.
    #[error("no data dir for the partition: {reason}")]
    Placement { reason: String },
    /// The partition's topic was deleted while the open waited its turn
    /// ([`crate::Shard::open_partition_if`]).
    #[error("partition {topic}-{partition} was deleted")]
    Deleted { topic: String, partition: i32 },
    /// The shard has closed its logs (the broker is stopping): no log opens again
    /// ([`crate::Shard::close`]).
    #[error("the shard is shut down")]
    ShardClosed,
}

impl OpenError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}

/// A configuration value that can't be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("unknown topic config {name}")]
    Unknown { name: String },
    // Kafka's ConfigException words, which clients show as they are.
    #[error("Invalid value {value} for configuration {name}: {reason}")]
    Invalid {
        name: String,
        value: String,
        reason: String,
    },
}

/// A record area that a codec could not read or write (only the cleaner decompresses).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CompressionError {
    #[error("{codec:?} record area unreadable: {reason}")]
    Decompress { codec: Compression, reason: String },
    #[error("{codec:?} compression failed: {reason}")]
    Compress { codec: Compression, reason: String },
}

/// Why a cleaning (compaction) pass stopped. The log is unchanged by a failed pass: cleaned
/// segments only replace the old ones once whole and synced.
#[derive(Debug, thiserror::Error)]
pub enum CompactionError {
    #[error("I/O error on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("log data is inconsistent at {path}:{position}: {reason}")]
    Corrupt {
        path: PathBuf,
        position: Position,
        reason: String,
    },
    #[error(transparent)]
    Compression(#[from] CompressionError),
    #[error("cleaned segment {base_offset} would exceed {bytes_max} bytes")]
    TooLarge { base_offset: Offset, bytes_max: u64 },
    /// Creating the cleaned copy failed for a reason other than I/O.
    #[error(transparent)]
    Open(OpenError),
    /// An fsync of the pass (cleaned files, directory) failed: the page cache state is unknown, so
    /// the log has been failed (no appends until restart, which recovers it from disk), as after
    /// a failed roll. Never retried.
    #[error("fsync of {path} failed during a cleaning: {source}")]
    SyncFailed { path: PathBuf, source: io::Error },
    /// A control batch whose marker cannot be read (past its CRC: not expected). The cleaner
    /// cannot tell where its producer's transaction ends, so judging that producer's later
    /// batches could delete committed records: the pass ends with the log as it was, and the
    /// log is not cleaned again until a restart (Kafka marks such a partition uncleanable).
    #[error(
        "control batch at offset {base_offset} of {path} is unreadable ({reason}): the log is \
         left uncleaned until a restart"
    )]
    UnreadableMarker {
        path: PathBuf,
        base_offset: Offset,
        reason: String,
    },
    /// The log began closing during the pass (a shutdown, a move's switch): the pass ended with
    /// the log as it was; the next open's passes clean it.
    #[error("the pass stopped: the log is closing")]
    Closing,
}

impl CompactionError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }

    pub(crate) fn sync(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::SyncFailed { path, source }
    }
}
