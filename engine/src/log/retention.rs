//! Retention: whole segments deleted from the oldest by size and age.
#![forbid(unsafe_code)]

use std::rc::Rc;

use tracing::{info, warn};

use super::out_of_space::is_out_of_space;
use super::state::{LogState, PartitionLog};
use super::types::RetentionOutcome;
use crate::config::LogConfig;
use crate::io;
use crate::segment::Segment;
use crate::units::Offset;

impl PartitionLog {
    /// Deletes whole segments beyond `retention.bytes` or older than `retention.ms` and advances
    /// the log start offset (persisted first, as DeleteRecords does). An expired active segment
    /// is rolled first so it can go too.
    pub async fn enforce_retention(
        self: &Rc<Self>,
        now_ms: i64,
    ) -> Result<RetentionOutcome, std::io::Error> {
        let mut outcome = RetentionOutcome::default();
        {
            let state = self.state.borrow();
            // A compact-only log keeps its data (the cleaner shrinks it); a running cleaning owns
            // the sealed segments until it is done.
            if !state.config.deletes() || state.cleaning {
                outcome.log_start_offset = state.log_start_offset;
                return Ok(outcome);
            }
        }
        // A roll refused (for space, most likely) must not keep the sealed segments already
        // expired: deleting them is what a full disk needs. Its error is returned after.
        let rolled = self.roll_expired_active(now_ms).await;
        let expired_end = {
            let state = self.state.borrow();
            (!state.cleaning)
                .then(|| expired_prefix_end(&state, now_ms))
                .flatten()
        };
        let mut start_unpersisted = false;
        if let Some(new_start) = expired_end {
            // The new start is made durable before it is visible and before any file goes: an
            // unlink is durable only with its directory's fsync, and a failed one leaves the
            // file, so without it a crash could bring the segments back and move the start a
            // client was told backwards (Kafka checkpoints log start offsets for the same
            // reason). Open deletes the segments wholly below a persisted start.
            match self.advance_log_start(new_start).await {
                Ok(()) => {}
                // A full disk needs these deletions most: they go without the file, and their
                // unlinks are made durable right after (only a crash in between, on a full
                // disk, can bring them back).
                Err(err) if is_out_of_space(&err) => {
                    warn!(dir = %self.dir.display(), %err, "log start offset not persisted: no space; deleting anyway");
                    self.advance_log_start_in_memory(new_start).await;
                    start_unpersisted = true;
                }
                Err(err) => return Err(err),
            }
        }
        // The expired segments, and those a DeleteRecords left wholly below the start while a
        // cleaning owned them.
        let (segments_deleted, bytes_deleted) = self.delete_segments_below_start().await?;
        if start_unpersisted && segments_deleted > 0 {
            io::disk::sync_dir(&self.dir).await?;
        }
        outcome.segments_deleted += segments_deleted;
        outcome.bytes_deleted += bytes_deleted;
        outcome.log_start_offset = self.log_start_offset();
        if outcome.segments_deleted > 0 {
            info!(dir = %self.dir.display(), ?outcome, "retention deleted segments");
        }
        rolled.map(|()| outcome)
    }

    pub(crate) async fn roll_expired_active(
        self: &Rc<Self>,
        now_ms: i64,
    ) -> Result<(), std::io::Error> {
        self.roll_active_when(|state| {
            let active = state.active();
            state.config.retention_ms.is_some_and(|retention_ms| {
                active.size_bytes > 0
                    && active.max_timestamp >= 0
                    && now_ms - active.max_timestamp > retention_ms as i64
            })
        })
        .await
        .map(|_| ())
    }
}

/// Where the log would start once every expired segment from the oldest on is gone: the base of
/// the first segment that stays, if that is past the current start. The active segment always
/// stays (an expired one was rolled first).
pub(super) fn expired_prefix_end(state: &LogState, now_ms: i64) -> Option<Offset> {
    let mut remaining_bytes: u64 = state
        .segments
        .iter()
        .map(|segment| segment.size_bytes)
        .sum();
    let mut end = None;
    for (oldest, next) in state.segments.iter().zip(state.segments.iter().skip(1)) {
        remaining_bytes -= oldest.size_bytes;
        if !is_expired(&state.config, oldest, remaining_bytes, now_ms) {
            break;
        }
        end = Some(next.base_offset);
    }
    end.filter(|end| *end > state.log_start_offset)
}

/// True when `segment`, the oldest left, is past retention by size (the segments after it still
/// hold `bytes_after` bytes) or by age.
fn is_expired(config: &LogConfig, segment: &Segment, bytes_after: u64, now_ms: i64) -> bool {
    let too_big = config
        .retention_bytes
        .is_some_and(|retention_bytes| bytes_after >= retention_bytes);
    let newest_ms = if segment.max_timestamp >= 0 {
        segment.max_timestamp
    } else {
        segment.created_ms
    };
    let too_old = config
        .retention_ms
        .is_some_and(|retention_ms| now_ms - newest_ms > retention_ms as i64);
    too_big || too_old
}
