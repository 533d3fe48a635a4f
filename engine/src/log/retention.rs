//! Retention: whole segments deleted from the oldest by size and age.
#![forbid(unsafe_code)]

use std::rc::Rc;

use tracing::info;

use super::state::{LogState, PartitionLog};
use super::types::RetentionOutcome;
use crate::segment::Segment;

impl PartitionLog {
    /// Deletes whole segments beyond `retention.bytes` or older than `retention.ms` and advances
    /// the log start offset. An expired active segment is rolled first so it can go too.
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
        loop {
            let doomed = {
                let mut state = self.state.borrow_mut();
                if state.segments.len() < 2 || state.cleaning || !front_is_expired(&state, now_ms) {
                    break;
                }
                let doomed = state.segments.pop_front().expect("checked length");
                let new_start = state
                    .segments
                    .front()
                    .map_or(doomed.next_offset, |segment| segment.base_offset);
                state.log_start_offset = state.log_start_offset.max(new_start);
                state.boundaries.forget_segment(doomed.base_offset);
                doomed
            };
            outcome.segments_deleted += 1;
            outcome.bytes_deleted += doomed.size_bytes;
            Segment::delete_files(&doomed.files).await?;
        }
        // Segments a DeleteRecords left wholly below the start while a cleaning owned them.
        let (segments_deleted, bytes_deleted) = self.delete_segments_below_start().await?;
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

/// True when the oldest segment is past retention by size or by age.
pub(super) fn front_is_expired(state: &LogState, now_ms: i64) -> bool {
    let front = state.segments.front().expect("log has segments");
    let total_bytes: u64 = state
        .segments
        .iter()
        .map(|segment| segment.size_bytes)
        .sum();
    let too_big = state
        .config
        .retention_bytes
        .is_some_and(|retention_bytes| total_bytes - front.size_bytes >= retention_bytes);
    let newest_ms = if front.max_timestamp >= 0 {
        front.max_timestamp
    } else {
        front.created_ms
    };
    let too_old = state
        .config
        .retention_ms
        .is_some_and(|retention_ms| now_ms - newest_ms > retention_ms as i64);
    too_big || too_old
}
