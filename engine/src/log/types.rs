//! The values the log hands out: append outcomes, read plans, retention outcomes, counters.
#![forbid(unsafe_code)]

use crate::io::disk::DiskFile;

use crate::error::AppendError;
use crate::segment::recovery::RecoveryReport;
use crate::segment::SegmentFiles;
use crate::units::{Offset, Position};

/// An append that has its offsets and waits for its durability point.
pub type PendingAppendOutcome =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<AppendOutcome, AppendError>>>>;

/// What an append produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    pub base_offset: Offset,
    pub last_offset: Offset,
    pub log_start_offset: Offset,
    /// The time the broker stamped on the batches (`message.timestamp.type=LogAppendTime`), or
    /// -1 under CreateTime, as Produce responses carry it.
    pub log_append_time_ms: i64,
    /// Where the time went, for the broker's per-stage latency histograms.
    pub timings: AppendTimings,
}

/// How long the group commit that carried an append took, per step. Shared by every append of
/// the group; zero for a retried batch answered without a write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppendTimings {
    /// The group's writes (and rolls) into the page cache.
    pub write: std::time::Duration,
    /// The flush policy's sync after the write (zero unless `every_batch`).
    pub flush: std::time::Duration,
}

/// A byte range of a segment file, starting and ending on batch boundaries.
#[derive(Debug, Clone)]
pub struct FileSlice {
    pub file: DiskFile,
    pub position: Position,
    pub len: u64,
    /// The same bytes, held in memory by the log's tail cache (with `write.direct`): send these
    /// instead of reading the file, which holds them too.
    pub memory: Option<Vec<bytes::Bytes>>,
}

/// Which bytes answer a fetch: the server sends the slices (zero-copy) in order.
#[derive(Debug, Clone, Default)]
pub struct ReadPlan {
    pub slices: Vec<FileSlice>,
    pub high_watermark: Offset,
    pub log_start_offset: Offset,
    /// The LSO when planned (Fetch's `last_stable_offset`).
    pub last_stable_offset: Offset,
    /// No planned batch holds an offset at or past this one (the end of the last segment the
    /// plan read, capped at its limit): the upper bound for the aborted transactions a
    /// read_committed fetch returns with it.
    pub end_offset_bound: Offset,
}

/// Which records a read may return (Kafka's fetch `isolation_level`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Isolation {
    /// Up to the high watermark (0).
    #[default]
    ReadUncommitted,
    /// Up to the last stable offset (1): no record of an open transaction.
    ReadCommitted,
}

impl ReadPlan {
    pub fn total_bytes(&self) -> u64 {
        self.slices.iter().map(|slice| slice.len).sum()
    }
}

/// What retention removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
    pub log_start_offset: Offset,
}

/// Counters of one log, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    pub appends: u64,
    pub bytes_appended: u64,
    /// Vectored writes issued (one per group and segment).
    pub writes: u64,
    pub fsyncs: u64,
    /// Times cleaning passes gave the shard thread back to its other tasks (see
    /// [`crate::compaction`]).
    pub compaction_yields: u64,
    /// Header walks read plans needed (file reads to find a batch boundary the boundary cache and
    /// the offset index could not tell): a catch-up reader's plans should need none.
    pub plan_walks: u64,
    /// Rolls that found their next segment allocated ahead (`log/spare.rs`).
    pub spare_segments_used: u64,
    /// Spares whose preparation failed (a full disk): their rolls allocated as without one.
    pub spare_segments_refused: u64,
    /// Segments and spares `preallocate` asked to allocate ahead where the file system declined
    /// (in memory, past half full, or without `fallocate`: `segment/preallocation.rs`).
    pub preallocations_declined: u64,
    /// Rolled segments sealed in the background (`flush=none`: `log/seal.rs`).
    pub background_seals: u64,
    /// Bytes of active segments written back and dropped from the page cache
    /// (`drop.behind.bytes`).
    pub dropped_behind_bytes: u64,
}

/// What opening the log found.
#[derive(Debug, Clone, Default)]
pub struct OpenReport {
    /// The segments the opened log holds (after open deleted any wholly below the log start).
    pub segments: usize,
    /// Whether the previous run closed the log cleanly.
    pub clean_shutdown: bool,
    /// Each recovered segment's base offset with what recovery found in it.
    pub recovery: Vec<(Offset, RecoveryReport)>,
}

/// What `cleaner-checkpoint` holds (`cleaner_checkpoint.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CleanerCheckpoint {
    /// Sealed segments from this offset on have not been cleaned.
    pub(crate) first_dirty_offset: Offset,
    /// The earliest delete horizon still to come in the clean segments.
    pub(crate) delete_horizon_ms: Option<i64>,
}

/// Where the spare of a log stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Spare {
    /// None, and none due yet.
    #[default]
    Absent,
    /// Being created and allocated.
    Preparing,
    /// On disk, allocated to this many bytes.
    Ready { allocated_bytes: u64 },
    /// Its preparation failed: not retried before the next roll.
    Refused,
}

/// A rolled segment whose seal has not run yet.
#[derive(Debug)]
pub(crate) struct PendingSeal {
    /// The sealed segment's base offset.
    pub(crate) base_offset: Offset,
    /// Its files, index handles still open.
    pub(crate) files: SegmentFiles,
    /// Its logical end: where the file is cut.
    pub(crate) size_bytes: u64,
    /// The next segment's base: the snapshot's offset, and what is durable once sealed.
    pub(crate) next_base: Offset,
    /// The producer table as of `next_base`, encoded at the roll.
    pub(crate) snapshot: Vec<u8>,
    /// Aborted transactions whose marker lies in the segment, for its `.txnindex`.
    pub(crate) aborted: Vec<crate::txn::AbortedTxn>,
}
