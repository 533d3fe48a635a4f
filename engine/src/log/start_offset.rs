//! Moving the log start offset on request (Kafka's DeleteRecords) or by retention, persisted
//! across restarts.
//!
//! Records below the log start offset are gone for readers at once: a read below it is
//! `OffsetOutOfRange`, and timestamp lookups never answer below it. Segments wholly below it are
//! deleted now (or by the next retention pass while a cleaning owns them); the segment holding the
//! new start keeps its earlier batches on disk, and a fetch at the start gets that segment's batch
//! whole, as Kafka sends it (clients skip the records below their fetch offset).
//!
//! The offset is kept in `log-start-offset` in the partition directory (decimal text, written
//! atomically: temp file, fsync, rename, directory fsync), written before the move is visible,
//! so an answered DeleteRecords survives a crash. Retention writes it the same way before it
//! deletes segments: their unlinks may be lost to a crash, or fail, and the start a client saw
//! must not go back. At open the log start is the larger of the first segment's base offset and
//! that file's value, capped at the log end, and segments wholly below it are deleted.
//!
//! # Invariants
//! - The log start offset only grows, and never passes the high watermark.
//! - The file never holds an offset the in-memory log start has not reached or will not reach
//!   (it is written first, under `start_offset_lock`, with the largest requested value).
#![forbid(unsafe_code)]

use std::path::Path;
use std::rc::Rc;

use tracing::{info, warn};

use super::state::PartitionLog;
use crate::io;
use crate::segment::Segment;
use crate::units::Offset;

/// The file that keeps a log start offset moved by [`PartitionLog::delete_records_before`].
pub const LOG_START_OFFSET_FILE_NAME: &str = "log-start-offset";

/// Why the log start offset could not move.
#[derive(Debug, thiserror::Error)]
pub enum DeleteRecordsError {
    /// Negative or beyond the high watermark (Kafka's OFFSET_OUT_OF_RANGE).
    #[error("offset {offset} is outside [0, high watermark {high_watermark}]")]
    OutOfRange {
        offset: Offset,
        high_watermark: Offset,
    },
    /// A compact-only log keeps its records (Kafka's POLICY_VIOLATION).
    #[error("records of a compacted log (cleanup.policy=compact) cannot be deleted")]
    CompactedLog,
    #[error("persisting the log start offset failed: {0}")]
    Io(#[from] std::io::Error),
}

impl PartitionLog {
    /// Moves the log start offset to `offset` (or leaves it, when already past), deletes the
    /// segments wholly below it, and returns the log start offset (DeleteRecords' low watermark).
    pub async fn delete_records_before(
        self: &Rc<Self>,
        offset: Offset,
    ) -> Result<Offset, DeleteRecordsError> {
        let _serialised = self.start_offset_lock.lock().await;
        let target = {
            let state = self.state.borrow();
            if !state.config.deletes() {
                return Err(DeleteRecordsError::CompactedLog);
            }
            let high_watermark = state.high_watermark;
            if offset > high_watermark || offset < Offset::ZERO {
                return Err(DeleteRecordsError::OutOfRange {
                    offset,
                    high_watermark,
                });
            }
            if offset <= state.log_start_offset {
                return Ok(state.log_start_offset);
            }
            offset
        };
        self.persist_start(target).await?;
        let (deleted, _) = self.delete_segments_below_start().await?;
        info!(dir = %self.dir.display(), log_start_offset = target.get(), deleted, "records deleted");
        Ok(self.log_start_offset())
    }

    /// Moves the log start offset to `target` if that is further (retention's whole segments),
    /// persisted before it is visible. Deletes nothing: see [`Self::delete_segments_below_start`].
    pub(crate) async fn advance_log_start(&self, target: Offset) -> std::io::Result<()> {
        let _serialised = self.start_offset_lock.lock().await;
        if target > self.log_start_offset() {
            self.persist_start(target).await?;
        }
        Ok(())
    }

    /// Moves the log start offset to `target` if that is further, without the file: for
    /// retention on a full disk only, where the file cannot be written and the space is needed.
    pub(crate) async fn advance_log_start_in_memory(&self, target: Offset) {
        let _serialised = self.start_offset_lock.lock().await;
        let temp = self.dir.join(format!("{LOG_START_OFFSET_FILE_NAME}.tmp"));
        // A temp file the failed write left holds space a full disk needs.
        let _ = io::disk::remove_file(&temp).await;
        let mut state = self.state.borrow_mut();
        state.log_start_offset = state.log_start_offset.max(target);
    }

    /// Writes `target` to the start file (durably), then makes it the log start offset. The
    /// caller holds `start_offset_lock` and checked that `target` is past the current start.
    async fn persist_start(&self, target: Offset) -> std::io::Result<()> {
        let path = self.dir.join(LOG_START_OFFSET_FILE_NAME);
        io::disk::write_file_atomically(&path, format!("{}\n", target.get()).into_bytes()).await?;
        let mut state = self.state.borrow_mut();
        state.log_start_offset = state.log_start_offset.max(target);
        Ok(())
    }

    /// Deletes sealed segments whose records all lie below the log start offset; the active
    /// segment stays. A running cleaning owns the sealed segments: retention catches up later.
    /// Returns how many segments and bytes went.
    pub(crate) async fn delete_segments_below_start(&self) -> std::io::Result<(usize, u64)> {
        let (mut deleted, mut bytes_deleted) = (0, 0);
        // A segment whose seal is pending (`seal.rs`) is sealed before it goes: its seal writes
        // its `.txnindex`, which would outlive it.
        let start = self.state.borrow().log_start_offset;
        self.finish_seals_below(Some(start)).await;
        loop {
            let doomed = {
                let mut state = self.state.borrow_mut();
                let wholly_below = state.segments.len() >= 2
                    && state.segments[1].base_offset <= state.log_start_offset;
                let seal_pending = state
                    .seals_pending
                    .iter()
                    .any(|seal| seal.base_offset == state.segments[0].base_offset);
                if state.cleaning || !wholly_below || seal_pending {
                    break;
                }
                let doomed = state.segments.pop_front().expect("checked length");
                state.boundaries.forget_segment(doomed.base_offset);
                doomed
            };
            Segment::delete_files(&doomed.files).await?;
            deleted += 1;
            bytes_deleted += doomed.size_bytes;
        }
        Ok((deleted, bytes_deleted))
    }
}

/// The log start offset kept by an earlier DeleteRecords, if any. An unreadable file is logged
/// and ignored (the first segment's base offset then answers): a bad file must not keep the
/// partition from opening.
pub(super) async fn read_persisted(dir: &Path) -> Option<Offset> {
    let path = dir.join(LOG_START_OFFSET_FILE_NAME);
    let bytes = io::disk::read(&path).await.ok()?;
    let text = String::from_utf8_lossy(&bytes);
    match text.trim().parse::<i64>() {
        Ok(offset) if offset >= 0 => Some(Offset::new(offset)),
        _ => {
            warn!(path = %path.display(), content = %text.trim(), "unreadable log start offset, ignored");
            None
        }
    }
}
