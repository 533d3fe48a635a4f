//! Seals in the background: under `flush=none` a roll starts the next segment at once and the old
//! segment's seal (cut to its end, indexes and log fsynced, the producer snapshot at the new base,
//! the directory synced) runs after it, in roll order, as Kafka flushes a rolled segment in the
//! background.
//!
//! Why: the seal's fsync ends in the disk's cache flush, which on this machine's virtual disk took
//! 0.4–1.2 s, and a roll holds the writer's place: every append of the partition, and every
//! produce request touching it, waited (results/allocation-stalls/, 256 MiB segments). Under
//! `flush=none` nothing acknowledged was promised to be on disk, so the appends need not wait.
//! Under `every_batch` and `<N>ms` the roll still seals before it goes on: `durable_offset` and the
//! flush policy's syncs of the active segment assume every sealed segment is durable.
//!
//! # What recovery relies on
//! - Seals complete in roll order, and the producer snapshot at a new segment's base is written
//!   only after the segments below it are synced. So after a crash every segment whose seal may
//!   not have finished lies at or above the newest snapshot, and recovery checks those in full
//!   (`open.rs`), like the active segment.
//! - A sealed segment that recovery finds short of the next segment's base lost data: recovery
//!   drops every later segment, so what survives is a prefix of the log (`open.rs`). Compaction,
//!   which may leave such a gap on purpose, never cleans a segment whose seal is pending
//!   (`compaction/mod.rs`).
//! - The open seals what a crash left unsealed (synced by `segment::recovery`, `.txnindex`
//!   written by `open.rs`) before the log takes appends, so a later seal's snapshot never covers
//!   a segment that is not durable or whose aborted-transaction index is stale.
#![forbid(unsafe_code)]

use std::rc::Rc;

use super::state::PartitionLog;
use crate::segment::Segment;
use crate::units::Offset;

impl PartitionLog {
    /// Starts the background sealer if seals are queued and none runs. The writer calls it after
    /// each group, a roll outside the writer after it rolled.
    pub(crate) fn seal_in_background(self: &Rc<Self>) {
        {
            let mut state = self.state.borrow_mut();
            if state.sealer_active || state.seals_pending.is_empty() {
                return;
            }
            state.sealer_active = true;
        }
        // Weak: a log dropped without a close (a crash in the simulated-disk tests, a reopen
        // after ENOSPC) is not sealed behind its back; its next open checks the segments.
        let log = Rc::downgrade(self);
        compio::runtime::spawn(async move {
            if let Some(log) = log.upgrade() {
                log.run_seals().await;
            }
        })
        .detach();
    }

    /// Returns once every queued seal is done (or dropped by a failure): run here if no sealer
    /// runs, waited for if one does. `sync` calls it (what it makes durable includes the sealed
    /// segments), and a close.
    pub(crate) async fn finish_seals(&self) {
        self.finish_seals_below(None).await;
    }

    /// Returns once no seal of a segment below `below` is pending (`None`: no seal at all, and no
    /// sealer running). Run here, it seals every queued segment, not only those below: a writer
    /// that rolled meanwhile found this sealer running and started none, so a seal left queued
    /// would wait for the partition's next append.
    pub(crate) async fn finish_seals_below(&self, below: Option<Offset>) {
        loop {
            let run_here = {
                let mut state = self.state.borrow_mut();
                let done_below = state
                    .seals_pending
                    .front()
                    .is_none_or(|seal| below.is_some_and(|below| seal.base_offset >= below));
                if done_below && (below.is_some() || !state.sealer_active) {
                    return;
                }
                let run_here = !state.sealer_active;
                state.sealer_active = true;
                run_here
            };
            if run_here {
                self.run_seals().await;
            } else {
                compio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
    }

    /// Seals the queued segments, oldest first; the caller has
    /// set `sealer_active`, which this clears when it returns. A failed seal fails the log: an
    /// fsync error is never retried (decision 0010), and recovery checks the unsealed segments at
    /// the next open.
    pub(crate) async fn run_seals(&self) {
        loop {
            let next = {
                let mut state = self.state.borrow_mut();
                if state.failure.is_some() {
                    state.seals_pending.clear();
                }
                match state.seals_pending.front() {
                    Some(seal) => (
                        seal.files.clone(),
                        seal.size_bytes,
                        seal.next_base,
                        seal.snapshot.clone(),
                        seal.aborted.clone(),
                    ),
                    None => {
                        state.sealer_active = false;
                        return;
                    }
                }
            };
            let (files, size_bytes, next_base, snapshot, aborted) = next;
            let sealed = async {
                let log_path = files.log_path.clone();
                Segment::seal(files, size_bytes, None).await?;
                // Not for a segment retention deleted meanwhile: the index would outlive it.
                let kept = self
                    .state
                    .borrow()
                    .segments
                    .iter()
                    .any(|segment| segment.files.log_path == log_path);
                if kept {
                    crate::txn::index_file::store(&log_path, &aborted).await?;
                }
                self.store_producer_snapshot(next_base, snapshot).await?;
                crate::io::disk::sync_dir(&self.dir).await
            }
            .await;
            if let Err(err) = sealed {
                self.note_write_error(&err);
                self.fail(
                    format!("sealing a rolled segment in the background failed: {err}"),
                    Vec::new(),
                );
                continue;
            }
            let mut state = self.state.borrow_mut();
            state.seals_pending.pop_front();
            state.durable_offset = state.durable_offset.max(next_base);
            state.stats.background_seals += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use crate::config::{FlushPolicy, LogConfig};
    use crate::log::state::PartitionLog;

    async fn log_under_flush_none(dir: &std::path::Path) -> Rc<PartitionLog> {
        let config = LogConfig {
            flush: FlushPolicy::None,
            ..LogConfig::default()
        };
        PartitionLog::open(dir, config).await.unwrap().0
    }

    async fn append_and_roll(log: &Rc<PartitionLog>) {
        let batch = crate::batch::encode_uniform_batch(0, 3, 10);
        log.append(bytes::BytesMut::from(&batch[..]), 0)
            .await
            .unwrap();
        assert!(log.roll_now().await.unwrap());
    }

    #[compio::test]
    async fn seals_run_for_a_caller_leave_none_queued_without_a_sealer() {
        // DeleteRecords finished the seals below its start here; the writer that rolled meanwhile
        // found a sealer running and started none, and the seals above were left queued with no
        // task to run them until the next append.
        let dir = tempfile::tempdir().unwrap();
        let log = log_under_flush_none(dir.path()).await;
        log.state.borrow_mut().sealer_active = true;
        append_and_roll(&log).await;
        append_and_roll(&log).await;
        let second_base = log.state.borrow().seals_pending[1].base_offset;
        log.state.borrow_mut().sealer_active = false;
        log.finish_seals_below(Some(second_base)).await;
        let state = log.state.borrow();
        assert!(state.seals_pending.is_empty(), "every queued seal ran");
        assert!(!state.sealer_active);
        assert_eq!(state.stats.background_seals, 2);
    }

    #[compio::test]
    async fn a_failure_outside_the_writer_leaves_its_place_taken_until_it_stops() {
        // A failed background seal gave the writer's place back while a write or roll still held
        // it: a close (or a deletion) went on while that write could still create files.
        let dir = tempfile::tempdir().unwrap();
        let log = log_under_flush_none(dir.path()).await;
        log.state.borrow_mut().writer_active = true;
        log.fail("a seal's fsync failed".to_string(), Vec::new());
        assert!(
            log.state.borrow().writer_active,
            "the writer still holds it"
        );
        let closed = Rc::new(std::cell::Cell::new(false));
        let close = compio::runtime::spawn({
            let (log, closed) = (Rc::clone(&log), Rc::clone(&closed));
            async move {
                let result = log.close().await;
                closed.set(true);
                result
            }
        });
        compio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!closed.get(), "the close waits for the writer");
        log.state.borrow_mut().writer_active = false;
        assert!(
            close.await.unwrap().is_err(),
            "a failed log never closes clean"
        );
    }
}
