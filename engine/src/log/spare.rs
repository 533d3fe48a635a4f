//! The spare segment: with `preallocate`, the next segment's file is created and allocated in the
//! background while the active one fills, and the roll renames it into place.
//!
//! Why: allocating blocks takes locks every write to that file takes (`fallocate` the inode's
//! lock; ext4's delayed allocation, done by writeback, its `i_data_sem`), and when the file
//! system's block bitmaps are not in memory the allocator reads them from disk while holding
//! them. On this machine's virtual disk that held a partition's writes, and so every producer
//! whose requests touched it, for 0.3–1.3 s (results/allocation-stalls/). Allocating a file
//! nothing writes yet keeps those waits off the write path: the active segment is allocated
//! whole before it takes writes, so neither its writes nor its writeback allocate.
//!
//! The spare is prepared once the active segment is half full, so a partition that never fills
//! half a segment reserves no second one. Where preallocation is declined (a file system in
//! memory or past half full: `segment/preallocation.rs`) no spare is prepared. It lives under [`SPARE_FILE_NAME`] in the log's
//! directory; a crash leaves it there, and the next open removes it (`files.rs`), as does a
//! clean close. A spare the disk refuses (ENOSPC) is not retried before the next roll: the roll
//! then creates the segment as it would without one.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::rc::Rc;

use tracing::{debug, warn};

use super::state::PartitionLog;
pub(crate) use super::types::Spare;
use crate::io;

/// The spare's file name in the log's directory: no `.log` extension, so no listing of segments
/// takes it for one.
pub(crate) const SPARE_FILE_NAME: &str = "spare-segment.prepared";

impl PartitionLog {
    /// The spare's path.
    pub(crate) fn spare_path(&self) -> PathBuf {
        self.dir.join(SPARE_FILE_NAME)
    }

    /// Starts preparing the spare in the background once the active segment is half full, when
    /// the log preallocates and has none. Never waits: the writer calls it after each group.
    pub(crate) fn prepare_spare_if_due(self: &Rc<Self>) {
        let allocated_bytes = {
            let mut state = self.state.borrow_mut();
            let due = state.config.preallocate
                && state.spare == Spare::Absent
                && !state.closed
                && state.failure.is_none()
                && state.active().size_bytes >= state.config.segment_bytes / 2;
            if !due {
                return;
            }
            state.spare = Spare::Preparing;
            state.config.segment_bytes
        };
        // Weak, as the background seal: a log dropped without a close prepares nothing more.
        let log = Rc::downgrade(self);
        compio::runtime::spawn(async move {
            if let Some(log) = log.upgrade() {
                log.prepare_spare(allocated_bytes).await;
            }
        })
        .detach();
    }

    async fn prepare_spare(&self, allocated_bytes: u64) {
        let path = self.spare_path();
        let max_used_percent = self.state.borrow().config.preallocate_max_used_percent;
        let room =
            crate::segment::preallocation::room_for(&self.dir, allocated_bytes, max_used_percent)
                .await;
        let Some(claim) = room else {
            // Declined, not failed: the next roll creates its segment, which asks again.
            let mut state = self.state.borrow_mut();
            state.stats.preallocations_declined += 1;
            state.spare = Spare::Refused;
            return;
        };
        let prepared = async {
            let file = io::disk::create(&path).await?;
            file.fallocate(0, allocated_bytes).await?;
            file.close().await
        }
        .await;
        // Allocated (or not): the file system counts it from here.
        drop(claim);
        let closed = self.state.borrow().closed;
        let outcome = match prepared {
            Ok(()) if !closed => {
                debug!(dir = %self.dir.display(), allocated_bytes, "spare segment ready");
                Spare::Ready { allocated_bytes }
            }
            Ok(()) => {
                // Closed meanwhile: the close waits for this task (still `Preparing`), so the
                // file goes before it may finish and its directory be deleted.
                let _ = io::disk::remove_file(&path).await;
                Spare::Absent
            }
            Err(err) => {
                warn!(dir = %self.dir.display(), %err, "preparing the spare segment failed: the next roll allocates its segment itself");
                let _ = io::disk::remove_file(&path).await;
                self.state.borrow_mut().stats.spare_segments_refused += 1;
                Spare::Refused
            }
        };
        let mut state = self.state.borrow_mut();
        debug_assert_eq!(
            state.spare,
            Spare::Preparing,
            "only this task leaves Preparing"
        );
        state.spare = outcome;
    }

    /// Takes the spare for a roll: its allocated size if it is ready. Whatever the spare's state,
    /// the next segment gets a new chance at one.
    pub(crate) fn take_spare(&self) -> Option<u64> {
        let mut state = self.state.borrow_mut();
        match std::mem::take(&mut state.spare) {
            Spare::Ready { allocated_bytes } => Some(allocated_bytes),
            Spare::Preparing => {
                // Still being allocated: it stays in the works and serves the next roll.
                state.spare = Spare::Preparing;
                None
            }
            Spare::Absent | Spare::Refused => None,
        }
    }

    /// Removes a ready spare (a clean close): a closed log reserves no disk for its next segment.
    /// One still being prepared is removed by its own task.
    pub(crate) async fn remove_spare(&self) -> std::io::Result<()> {
        let ready = matches!(self.state.borrow().spare, Spare::Ready { .. });
        if !ready {
            return Ok(());
        }
        self.state.borrow_mut().spare = Spare::Absent;
        io::disk::remove_file(&self.spare_path()).await
    }

    /// Whether a spare segment is ready (tests and metrics).
    pub fn spare_ready(&self) -> bool {
        matches!(self.state.borrow().spare, Spare::Ready { .. })
    }
}
