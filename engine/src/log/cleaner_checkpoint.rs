//! The cleaner's progress, kept across restarts: the first dirty offset (segments below it were
//! cleaned) and the earliest delete horizon (KIP-534) a pass left in the cleaned segments.
//!
//! Kafka keeps each partition's first dirty offset in its log dir's `cleaner-offset-checkpoint`;
//! without it every sealed segment of a compacted log counted as dirty after a restart, and the
//! first compaction check ran a full pass over every compacted log. The file here is per log,
//! `cleaner-checkpoint` in the partition directory: two lines of decimal text (the offset, then
//! the horizon in ms or -1 for none), written as `log-start-offset` is (temp file, fsync,
//! rename, directory fsync). Kafka keeps the horizon in memory only; keeping it here means a
//! quiet compacted topic's tombstones still go at their horizon after a restart.
//!
//! # Crash safety
//! - The offset is written only after a pass installed every segment below it (and deleted the
//!   emptied ones, directory fsynced). A crash before that write leaves the older, lower offset:
//!   those segments count as dirty again and the next pass cleans them again, which is safe.
//! - A horizon is written *before* the install of the segment that holds it, when it is earlier
//!   than the one kept: a horizon that comes too early only costs a pass that finds nothing to
//!   remove, one lost would keep tombstones until new dirty bytes call for a pass.
//! - At open the offset is capped to the log end, never raised to the log start: retention or
//!   DeleteRecords may have moved the start past it into a segment that was never cleaned, and
//!   that segment must stay dirty (an offset below every segment makes them all dirty, which is
//!   safe). An unreadable file is ignored (logged): every segment is dirty then, as before the
//!   file existed.
#![forbid(unsafe_code)]

use std::path::Path;

use tracing::warn;

use super::state::PartitionLog;
use super::types::CleanerCheckpoint;
use crate::io;
use crate::units::Offset;

/// The file that keeps the cleaner's progress.
pub const CLEANER_CHECKPOINT_FILE_NAME: &str = "cleaner-checkpoint";

impl CleanerCheckpoint {
    fn encode(&self) -> Vec<u8> {
        format!(
            "{}\n{}\n",
            self.first_dirty_offset.get(),
            self.delete_horizon_ms.unwrap_or(-1)
        )
        .into_bytes()
    }

    fn decode(text: &str) -> Option<Self> {
        let mut lines = text.lines().map(str::trim);
        let offset = lines
            .next()?
            .parse::<i64>()
            .ok()
            .filter(|&offset| offset >= 0)?;
        let horizon = lines.next()?.parse::<i64>().ok()?;
        Some(Self {
            first_dirty_offset: Offset::new(offset),
            delete_horizon_ms: (horizon >= 0).then_some(horizon),
        })
    }
}

impl PartitionLog {
    /// Keeps a finished pass's progress (the in-memory state already has it). Called after the
    /// pass's last install. A failure is logged: it only costs a pass over the same segments
    /// after a restart.
    pub(crate) async fn keep_cleaner_progress(&self) {
        let checkpoint = {
            let state = self.state.borrow();
            CleanerCheckpoint {
                first_dirty_offset: state.first_dirty_offset,
                delete_horizon_ms: state.next_delete_horizon_ms,
            }
        };
        if checkpoint == self.state.borrow().kept_cleaner_checkpoint {
            // A pass that moved nothing (a horizon that came and found nothing to remove, say).
            return;
        }
        if let Err(err) = self.write_cleaner_checkpoint(checkpoint).await {
            warn!(dir = %self.dir.display(), %err, "the cleaner's progress was not kept");
        }
    }

    /// Keeps `horizon_ms` before the install of a segment holding it, if it is earlier than the
    /// horizon kept (see the module doc). An error must stop the pass before that install.
    pub(crate) async fn keep_horizon_before_install(&self, horizon_ms: i64) -> std::io::Result<()> {
        let kept = self.state.borrow().kept_cleaner_checkpoint;
        if kept
            .delete_horizon_ms
            .is_some_and(|kept_ms| kept_ms <= horizon_ms)
        {
            return Ok(());
        }
        self.write_cleaner_checkpoint(CleanerCheckpoint {
            delete_horizon_ms: Some(horizon_ms),
            ..kept
        })
        .await
    }

    async fn write_cleaner_checkpoint(&self, checkpoint: CleanerCheckpoint) -> std::io::Result<()> {
        let path = self.dir.join(CLEANER_CHECKPOINT_FILE_NAME);
        io::disk::write_file_atomically(&path, checkpoint.encode()).await?;
        self.state.borrow_mut().kept_cleaner_checkpoint = checkpoint;
        Ok(())
    }
}

/// The progress a previous run kept, if any, capped to `next_offset` (see the module doc).
pub(super) async fn read_persisted(dir: &Path, next_offset: Offset) -> Option<CleanerCheckpoint> {
    let path = dir.join(CLEANER_CHECKPOINT_FILE_NAME);
    let bytes = io::disk::read(&path).await.ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let Some(mut checkpoint) = CleanerCheckpoint::decode(&text) else {
        warn!(path = %path.display(), content = %text.trim(), "unreadable cleaner checkpoint, ignored");
        return None;
    };
    checkpoint.first_dirty_offset = checkpoint.first_dirty_offset.min(next_offset);
    Some(checkpoint)
}

#[cfg(test)]
mod tests {
    use crate::log::types::CleanerCheckpoint;
    use crate::units::Offset;

    #[test]
    fn the_checkpoint_round_trips_and_garbage_is_refused() {
        for delete_horizon_ms in [None, Some(0), Some(1_700_000_000_000)] {
            let checkpoint = CleanerCheckpoint {
                first_dirty_offset: Offset::new(42),
                delete_horizon_ms,
            };
            let text = String::from_utf8(checkpoint.encode()).unwrap();
            assert_eq!(CleanerCheckpoint::decode(&text), Some(checkpoint));
        }
        for garbage in ["", "x\n-1\n", "-5\n-1\n", "42\n", "42\nsoon\n"] {
            assert_eq!(CleanerCheckpoint::decode(garbage), None, "{garbage:?}");
        }
    }
}
