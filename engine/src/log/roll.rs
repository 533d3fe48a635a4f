//! Rolls: the active segment sealed (cut, index written, fsynced) and a new one started.
#![forbid(unsafe_code)]

use std::rc::Rc;

use tracing::warn;

use super::state::{LogState, PartitionLog};
use super::types::PendingSeal;
use crate::clock::now_ms;
use crate::config::FlushPolicy;
use crate::error::OpenError;
use crate::io;
use crate::segment::Segment;

/// Seals a partition's rolls may leave queued under `flush=none` before the next roll waits for
/// them.
pub(crate) const SEALS_PENDING_MAX: usize = 4;

impl PartitionLog {
    /// Seals the active segment (cut to its end, index written, fsynced) and starts a new one at
    /// its end. Under `every_batch` and `<N>ms` it seals first, so a sealed segment is durable,
    /// which recovery assumes when it checks sealed segments only from their last index entry.
    /// Under `flush=none` the seal runs after the roll, in the background (`seal.rs`: the caller
    /// starts it with `seal_in_background`), and recovery checks such segments in full. The
    /// caller holds the writer's place, so nothing appends meanwhile.
    pub(crate) async fn roll(&self) -> Result<(), OpenError> {
        let (base_offset, config, old_files, old_size, delta, aborted, old_base) = {
            let mut state = self.state.borrow_mut();
            let config = state.config.clone();
            let old = state.active_mut();
            (
                old.next_offset,
                config,
                old.files.clone(),
                old.size_bytes,
                old.take_index_delta(),
                old.aborted.clone(),
                old.base_offset,
            )
        };
        let in_background = config.flush == FlushPolicy::None;
        let log_path = old_files.log_path.clone();
        if let Some(delta) = delta {
            // A write call: refused for space, it leaves the log recoverable (see below).
            delta
                .write(&old_files)
                .await
                .inspect_err(|err| self.note_write_error(err))
                .map_err(OpenError::io(&self.dir))?;
        }
        if in_background && self.state.borrow().seals_pending.len() >= SEALS_PENDING_MAX {
            // Rolls outpacing their seals (small segments, a disk slow to flush): each queued seal
            // holds its index descriptors and a producer snapshot, and lengthens the scan after a
            // crash. The roll waits for them, as every roll waits for its own seal under the
            // other flush policies.
            self.finish_seals().await;
            if let Some(reason) = self.state.borrow().failure.clone() {
                return Err(OpenError::io(&self.dir)(std::io::Error::other(reason)));
            }
        }
        if !in_background {
            // Segments rolled while the log was `flush=none` first: the snapshot this roll writes
            // tells recovery everything below it is synced.
            self.finish_seals().await;
            if let Some(reason) = self.state.borrow().failure.clone() {
                return Err(OpenError::io(&self.dir)(std::io::Error::other(reason)));
            }
            // Its fsyncs are not: an fsync error keeps the log failed until restart (decision
            // 0010).
            Segment::seal(old_files.clone(), old_size, None)
                .await
                .map_err(OpenError::io(&self.dir))?;
            // A write call too (a temporary file renamed into place).
            crate::txn::index_file::store(&log_path, &aborted)
                .await
                .inspect_err(|err| self.note_write_error(err))
                .map_err(OpenError::io(&log_path))?;
        }
        {
            let mut state = self.state.borrow_mut();
            // The direct handle was the sealed segment's: the next write opens the new one's.
            state.drop_direct();
            let sealed = state.active_mut();
            sealed.allocated_bytes = old_size;
            // Sealed: its indexes live in memory from now on (one descriptor kept; a seal in the
            // background holds its own handles until it is done).
            sealed.files.close_indexes();
            if !in_background {
                // Everything before the new segment is synced now.
                state.durable_offset = state.durable_offset.max(base_offset);
            }
        }
        // The new segment's creation and the snapshot are write calls: refused for space, they
        // leave the sealed segments durable and the log recoverable by a reopen (decision 0011),
        // as a data write refused for space does.
        let segment = match self.take_spare() {
            Some(allocated_bytes) => {
                let spare_path = self.spare_path();
                let created = Segment::create_from_spare(
                    &self.dir,
                    base_offset,
                    &spare_path,
                    allocated_bytes,
                    now_ms(),
                )
                .await;
                match created {
                    Ok(segment) => {
                        self.state.borrow_mut().stats.spare_segments_used += 1;
                        Ok(segment)
                    }
                    Err(err) => {
                        // The spare is only a head start: the roll goes on without it (a file
                        // renamed before the failure is opened again and cut to empty).
                        warn!(dir = %self.dir.display(), %err, "the spare segment could not be used");
                        let _ = io::disk::remove_file(&spare_path).await;
                        Segment::create(&self.dir, base_offset, &config, now_ms()).await
                    }
                }
            }
            None => Segment::create(&self.dir, base_offset, &config, now_ms()).await,
        }
        .inspect_err(|err| {
            if let OpenError::Io { source, .. } = err {
                self.note_write_error(source);
            }
        })?;
        if segment.preallocation == crate::segment::preallocation::Preallocation::Declined {
            self.state.borrow_mut().stats.preallocations_declined += 1;
        }
        if in_background {
            let snapshot = self.encode_producer_snapshot(base_offset);
            let mut state = self.state.borrow_mut();
            state.seals_pending.push_back(PendingSeal {
                base_offset: old_base,
                files: old_files,
                size_bytes: old_size,
                next_base: base_offset,
                snapshot,
                aborted,
            });
            state.segments.push_back(segment);
            return Ok(());
        }
        self.write_producer_snapshot(base_offset)
            .await
            .inspect_err(|err| self.note_write_error(err))
            .map_err(OpenError::io(&self.dir))?;
        io::disk::sync_dir(&self.dir)
            .await
            .map_err(OpenError::io(&self.dir))?;
        self.state.borrow_mut().segments.push_back(segment);
        Ok(())
    }

    /// Rolls the active segment once it is older than `segment.ms` and holds data, so a quiet
    /// compacted log's last records become cleanable. Returns whether it rolled.
    pub async fn roll_if_due(self: &Rc<Self>, now_ms: i64) -> Result<bool, std::io::Error> {
        self.roll_active_when(|state| {
            let active = state.active();
            active.size_bytes > 0
                && now_ms.saturating_sub(active.created_ms) >= state.config.segment_ms as i64
        })
        .await
    }

    /// Rolls the active segment now if it holds data (tests and tools). Returns whether it rolled.
    pub async fn roll_now(self: &Rc<Self>) -> Result<bool, std::io::Error> {
        self.roll_active_when(|state| state.active().size_bytes > 0)
            .await
    }

    /// Rolls the active segment if `due` says so, taking the writer's place meanwhile.
    pub(crate) async fn roll_active_when(
        self: &Rc<Self>,
        due: impl FnOnce(&LogState) -> bool,
    ) -> Result<bool, std::io::Error> {
        {
            let mut state = self.state.borrow_mut();
            let expired = due(&state);
            // The roll acts as the writer: no append may write to the old active meanwhile.
            if !expired || state.writer_active || state.failure.is_some() || state.closed {
                return Ok(false);
            }
            state.writer_active = true;
        }
        let mut cancelled = RollCancelled(Some(self));
        let rolled = self.roll().await;
        cancelled.0 = None;
        let restart_writer = {
            let mut state = self.state.borrow_mut();
            state.writer_active = !state.pending.is_empty();
            state.writer_active
        };
        if let Err(err) = rolled {
            // A half-done roll (seal fsync or new segment failed) leaves the log in an unknown
            // state: stop appends, exactly as a failed write would. The appends queued meanwhile
            // are answered by the failure, and no writer starts.
            self.fail(format!("segment roll failed: {err}"), Vec::new());
            self.state.borrow_mut().writer_active = false;
            return Err(std::io::Error::other(err.to_string()));
        }
        self.seal_in_background();
        if restart_writer {
            // Appends queued while the roll held the writer's place.
            compio::runtime::spawn(Rc::clone(self).run_writer()).detach();
        }
        Ok(true)
    }
}

/// Fails the log if a roll's future is dropped half-way (its task cancelled): the roll holds the
/// writer's place, which nothing else would give back, so appends and the log's close would wait
/// for ever; and a half-done roll leaves the files in an unknown state, which only a recovery
/// checks. Failing says so loudly: the partition answers KAFKA_STORAGE_ERROR until restart, and
/// its close leaves no clean-shutdown marker. Nothing drops a roll today (the maintenance task is
/// stopped between steps, never cancelled); this keeps a future caller from hanging the log.
struct RollCancelled<'a>(Option<&'a PartitionLog>);

impl Drop for RollCancelled<'_> {
    fn drop(&mut self) {
        if let Some(log) = self.0 {
            log.fail(
                "a segment roll was cancelled half-way".to_string(),
                Vec::new(),
            );
            log.state.borrow_mut().writer_active = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::task::Context;

    use super::*;
    use crate::config::LogConfig;

    #[compio::test]
    async fn a_roll_dropped_half_way_fails_the_log_instead_of_holding_its_writer_place() {
        // A roll cancelled at one of its awaits left the writer's place taken: every later append
        // queued behind it and the log's close waited for ever (a SIGTERM that never ended).
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = PartitionLog::open(dir.path(), LogConfig::default())
            .await
            .unwrap();
        let batch = crate::batch::encode_uniform_batch(0, 3, 10);
        log.append(bytes::BytesMut::from(&batch[..]), 0)
            .await
            .unwrap();
        {
            let mut roll = std::pin::pin!(log.roll_now());
            let mut context = Context::from_waker(std::task::Waker::noop());
            assert!(
                roll.as_mut().poll(&mut context).is_pending(),
                "the roll waits for its first write or fsync"
            );
        }
        assert!(log.is_failed(), "the dropped roll failed the log");
        assert!(!log.state.borrow().writer_active);
        let refused = log.append(bytes::BytesMut::from(&batch[..]), 0).await;
        assert!(refused.is_err(), "a failed log takes no appends");
        assert!(log.close().await.is_err(), "closed, but not cleanly");
        let (reopened, _) = PartitionLog::open(dir.path(), LogConfig::default())
            .await
            .unwrap();
        assert_eq!(
            reopened.high_watermark().get(),
            3,
            "nothing acknowledged lost"
        );
    }
    #[compio::test]
    async fn rolls_outpacing_their_seals_wait_for_them_past_the_bound() {
        // Under flush=none each roll queued its seal with no bound: rolls faster than a slow
        // disk's fsyncs held descriptors and snapshots without end. A sealer that makes no
        // progress (marked running, never sealing) must stop the roll past the bound.
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            flush: FlushPolicy::None,
            ..LogConfig::default()
        };
        let (log, _) = PartitionLog::open(dir.path(), config).await.unwrap();
        log.state.borrow_mut().sealer_active = true;
        let batch = crate::batch::encode_uniform_batch(0, 3, 10);
        for _ in 0..SEALS_PENDING_MAX {
            log.append(bytes::BytesMut::from(&batch[..]), 0)
                .await
                .unwrap();
            assert!(log.roll_now().await.unwrap());
        }
        assert_eq!(log.state.borrow().seals_pending.len(), SEALS_PENDING_MAX);
        log.append(bytes::BytesMut::from(&batch[..]), 0)
            .await
            .unwrap();
        let rolled = Rc::new(std::cell::Cell::new(false));
        let roll = compio::runtime::spawn({
            let (log, rolled) = (Rc::clone(&log), Rc::clone(&rolled));
            async move {
                let result = log.roll_now().await;
                rolled.set(true);
                result
            }
        });
        compio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(
            !rolled.get(),
            "the roll waits while the sealer makes no progress"
        );
        assert_eq!(log.state.borrow().seals_pending.len(), SEALS_PENDING_MAX);
        // The sealer gives its place back: the roll seals the queue itself and goes on.
        log.state.borrow_mut().sealer_active = false;
        assert!(roll.await.unwrap().unwrap());
        assert_eq!(
            log.state.borrow().seals_pending.len(),
            1,
            "only its own seal queued"
        );
        log.close().await.unwrap();
        let (reopened, _) = PartitionLog::open(dir.path(), LogConfig::default())
            .await
            .unwrap();
        assert_eq!(
            reopened.high_watermark().get(),
            3 * (SEALS_PENDING_MAX as i64 + 1)
        );
    }
}
