//! A clean close: queued appends written, index written out, synced, the marker left for the next
//! open.
#![forbid(unsafe_code)]

use tracing::warn;

use super::files::CLEAN_SHUTDOWN_FILE_NAME;
use super::state::PartitionLog;
use crate::io;

/// How often a close still waiting for the writer or a compaction pass says so in the log.
const CLOSE_WAIT_WARN_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

impl PartitionLog {
    /// Refuses further appends, waits for queued ones, writes out the index and syncs.
    pub async fn close(&self) -> std::io::Result<()> {
        self.stop(true).await;
        let failure = self.state.borrow().failure.clone();
        if let Some(reason) = failure {
            // Never retry an fsync that failed, and never call this log clean: the next open must
            // check it in full. Its spare goes all the same: a segment's worth of disk reserved
            // for a log that rolls no more (the next open would remove it, but only then).
            if let Err(err) = self.remove_spare().await {
                warn!(dir = %self.dir.display(), %err, "the failed log's spare segment stays");
            }
            return Err(std::io::Error::other(format!(
                "log failed earlier: {reason}"
            )));
        }
        let (files, delta, aborted, allocated_past_end) = {
            let mut state = self.state.borrow_mut();
            let active = state.active_mut();
            (
                active.files.clone(),
                active.take_index_delta(),
                active.aborted.clone(),
                (active.allocated_bytes > active.size_bytes).then_some(active.size_bytes),
            )
        };
        if let Some(delta) = delta {
            delta.write(&files).await?;
        }
        if let Some(size_bytes) = allocated_past_end {
            // Space allocated ahead goes back with a clean close, as Kafka trims its preallocated
            // segments: a stopped broker reserves no disk, a moved log copies no zeros, and the
            // next open allocates the active segment again.
            files.log.set_len(size_bytes).await?;
            self.state.borrow_mut().active_mut().allocated_bytes = size_bytes;
        }
        crate::txn::index_file::store(&files.log_path, &aborted).await?;
        self.remove_spare().await?;
        self.sync().await?;
        let end = self.state.borrow().high_watermark;
        self.write_producer_snapshot(end).await?;
        let marker = io::disk::create(&self.dir.join(CLEAN_SHUTDOWN_FILE_NAME)).await?;
        marker.sync_all().await?;
        io::disk::sync_dir(&self.dir).await
    }

    /// Refuses further appends and waits for queued ones and a compaction pass in progress to
    /// end, without making anything durable: for a log whose directory is deleted next
    /// (DeleteTopics). The index writes and fsyncs of [`Self::close`] would only delay the
    /// delete, by seconds on a busy disk, for bytes no one reads again.
    pub async fn close_for_delete(&self) {
        self.stop(false).await;
    }

    /// Stops the log's tasks (its writer, a compaction pass, its spare's preparation, a seal in
    /// progress; pending seals are dropped) without making anything durable: for a log a reopen
    /// replaces (the shard's after ENOSPC, a test's crash), whose recovery checks what it left.
    /// Without it a task of the old log could still write in the directory the new one opened.
    pub async fn close_abandoned(&self) {
        self.stop(false).await;
    }

    /// `finish_seals`: whether the seals rolls left pending run (a close) or are dropped (a
    /// deletion: the files go).
    async fn stop(&self, finish_seals: bool) {
        self.state.borrow_mut().closed = true;
        let started = std::time::Instant::now();
        let mut warned_after = std::time::Duration::ZERO;
        loop {
            // A spare being prepared is waited for too: its task creates a file in the directory,
            // which a deletion must find gone or finished, not half made.
            let (writing, cleaning, preparing) = {
                let state = self.state.borrow();
                (
                    state.writer_active,
                    state.cleaning,
                    state.spare == super::types::Spare::Preparing,
                )
            };
            if !writing && !cleaning && !preparing {
                // Closed with its writer done: no roll queues another seal.
                if !finish_seals {
                    self.state.borrow_mut().seals_pending.clear();
                }
                self.finish_seals().await;
                return;
            }
            // A close that waits this long is a hang in the making: say what it waits for.
            if started.elapsed() >= warned_after + CLOSE_WAIT_WARN_EVERY {
                warned_after += CLOSE_WAIT_WARN_EVERY;
                warn!(dir = %self.dir.display(), writing, cleaning, preparing, waited_s = warned_after.as_secs(),
                    "closing the log still waits for its writer, its compaction pass or its spare segment");
            }
            compio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
}
