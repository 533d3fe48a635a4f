//! The writer task: group commit. Everything queued since its last round becomes one vectored write
//! per segment, then one sync under the flush policy; a failure fails the log.
#![forbid(unsafe_code)]

use std::rc::Rc;

use bytes::Bytes;
use futures_channel::oneshot;
use tracing::error;

use super::boundary_cache::BatchBoundary;
use super::direct::DirectOutcome;
use super::drop_behind::LARGEST_FOLIO_BYTES;
use super::state::{LogState, PartitionLog};
use super::types::{AppendOutcome, AppendTimings};
use crate::batch::BatchHeader;
use crate::clock::now_ms;
use crate::error::AppendError;
use crate::segment::{IndexDelta, SegmentFiles};
use crate::units::{Offset, Position};

/// Index entries the active segment may hold in memory only before they are written out. The
/// files are a cache (recovery rebuilds them), so writing them is kept off the acknowledgement
/// path: once per this many entries (~4 MiB of log at the default interval), and at seal and close.
pub(super) const INDEX_ENTRIES_UNPERSISTED_MAX: usize = 1024;

impl PartitionLog {
    /// The writer task: drains the queue in groups until it is empty.
    pub(crate) async fn run_writer(self: Rc<Self>) {
        loop {
            let group = {
                let mut state = self.state.borrow_mut();
                if state.pending.is_empty() || state.failure.is_some() {
                    state.writer_active = false;
                    let failure = state.failure.clone();
                    let orphans = std::mem::take(&mut state.pending);
                    drop(state);
                    if let Some(reason) = failure {
                        for pending in orphans {
                            let _ = pending.reply.send(Err(AppendError::LogFailed {
                                reason: reason.clone(),
                            }));
                        }
                    }
                    return;
                }
                std::mem::take(&mut state.pending)
            };
            let mut buffers = Vec::with_capacity(group.len());
            let mut replies = Vec::with_capacity(group.len());
            let mut headers = Vec::with_capacity(group.len());
            for pending in group {
                buffers.push(pending.records);
                headers.push(pending.headers);
                replies.push(pending.reply);
            }
            let write_started = std::time::Instant::now();
            let mut timings = AppendTimings::default();
            let result = match self.write_group(buffers, &headers).await {
                Ok(()) => {
                    timings.write = write_started.elapsed();
                    let flush_started = std::time::Instant::now();
                    let synced = self.sync_for_policy().await;
                    timings.flush = flush_started.elapsed();
                    synced
                }
                Err(err) => Err(err),
            };
            if let Err(reason) = result {
                self.fail(reason, replies);
                self.state.borrow_mut().writer_active = false;
                return;
            }
            // The writer's place is held here, so no roll is renaming the spare meanwhile.
            self.prepare_spare_if_due();
            self.seal_in_background();
            let log_start_offset = self.log_start_offset();
            for (reply, batch_headers) in replies.into_iter().zip(&headers) {
                let outcome = AppendOutcome {
                    base_offset: batch_headers
                        .first()
                        .map_or(Offset::new(-1), |header| header.base_offset),
                    last_offset: batch_headers
                        .last()
                        .map_or(Offset::new(-1), BatchHeader::last_offset),
                    log_start_offset,
                    log_append_time_ms: batch_headers
                        .iter()
                        .find(|header| header.is_log_append_time())
                        .map_or(-1, |header| header.max_timestamp),
                    timings,
                };
                // The caller may have gone away (connection closed): its data is written anyway.
                let _ = reply.send(Ok(outcome));
            }
        }
    }

    /// Marks the log failed and answers every waiting append with the failure. The writer's place
    /// stays as it is: whoever holds it (the writer, a roll) gives it back when it stops, so a
    /// close or a deletion waits for a write or roll in progress even when a background seal or an
    /// interval sync failed the log under it.
    pub(crate) fn fail(
        &self,
        reason: String,
        replies: Vec<oneshot::Sender<Result<AppendOutcome, AppendError>>>,
    ) {
        error!(dir = %self.dir.display(), %reason, "partition log failed; it takes no appends until restart");
        let pending = {
            let mut state = self.state.borrow_mut();
            state.failure = Some(reason.clone());
            std::mem::take(&mut state.pending)
        };
        let waiting = replies
            .into_iter()
            .chain(pending.into_iter().map(|pending| pending.reply));
        for reply in waiting {
            let _ = reply.send(Err(AppendError::LogFailed {
                reason: reason.clone(),
            }));
        }
    }

    /// Writes one group: runs of buffers per segment, rolling between runs when due.
    pub(crate) async fn write_group(
        &self,
        buffers: Vec<Vec<Bytes>>,
        headers: &[Vec<BatchHeader>],
    ) -> Result<(), String> {
        let mut run: Vec<Bytes> = Vec::new();
        let mut run_headers: Vec<BatchHeader> = Vec::new();
        let mut run_bytes = 0u64;
        for (buffer, batch_headers) in buffers.into_iter().zip(headers) {
            let incoming_bytes: u64 = buffer.iter().map(|iovec| iovec.len() as u64).sum();
            let incoming_last_offset = batch_headers
                .last()
                .map_or(Offset::ZERO, BatchHeader::last_offset);
            let roll = {
                let state = self.state.borrow();
                state.active().should_roll(
                    run_bytes,
                    incoming_bytes,
                    incoming_last_offset,
                    &state.config,
                    now_ms(),
                )
            };
            if roll {
                self.write_run(std::mem::take(&mut run), std::mem::take(&mut run_headers))
                    .await?;
                run_bytes = 0;
                self.roll()
                    .await
                    .map_err(|err| format!("segment roll failed: {err}"))?;
            }
            run_bytes += incoming_bytes;
            run.extend(buffer);
            run_headers.extend_from_slice(batch_headers);
        }
        self.write_run(run, run_headers).await
    }

    /// One vectored write of whole batches at the active segment's end, then the bookkeeping.
    pub(crate) async fn write_run(
        &self,
        run: Vec<Bytes>,
        run_headers: Vec<BatchHeader>,
    ) -> Result<(), String> {
        if run.is_empty() {
            return Ok(());
        }
        let run_bytes: u64 = run.iter().map(|buffer| buffer.len() as u64).sum();
        let batch_bytes: u64 = run_headers
            .iter()
            .map(|header| header.total_bytes() as u64)
            .sum();
        // Whole batches only: a run that is not exactly its batches would leave the segment's end
        // off a batch boundary, and every later read plan with it.
        assert_eq!(run_bytes, batch_bytes, "a run is exactly its batches");
        let (files, segment_base, position, write_inline, write_direct) = {
            let state = self.state.borrow();
            let active = state.active();
            (
                active.files.clone(),
                active.base_offset,
                active.end(),
                state.config.write_inline,
                state.config.write_direct,
            )
        };
        self.allocate_ahead(&files, position.advanced_by(run_bytes))
            .await?;
        let written = if write_direct {
            let cache_bytes_max = self.state.borrow().config.tail_cache_bytes;
            let keep_for_cache = run_bytes <= cache_bytes_max;
            match self
                .write_direct(&files, segment_base, &run, position, keep_for_cache)
                .await
            {
                Ok(DirectOutcome::Written(pieces)) => {
                    // Before the high watermark moves (note_run): readers it wakes find it here.
                    // A run not kept (larger than the cache) is pushed empty: the cache then
                    // starts afresh after it.
                    let pieces = pieces.unwrap_or_default();
                    let held_bytes = pieces.iter().map(|piece| piece.held_bytes).sum();
                    self.state.borrow_mut().tail_cache.push(
                        segment_base,
                        position,
                        pieces.into_iter().map(|piece| piece.bytes).collect(),
                        held_bytes,
                        cache_bytes_max,
                    );
                    Ok(true)
                }
                Ok(DirectOutcome::Refused) => write_at(&files, run, position, write_inline)
                    .await
                    .map(|()| false),
                Err(err) => Err(err),
            }
        } else {
            // `write.direct` turned off (or never on): what a direct log kept goes.
            self.state.borrow_mut().drop_direct();
            write_at(&files, run, position, write_inline)
                .await
                .map(|()| false)
        };
        let written_direct = written.map_err(|err| {
            self.note_write_error(&err);
            format!("write to {} failed: {err}", files.log_path.display())
        })?;
        if !written_direct {
            // Direct writes leave no dirty page behind to start writing back.
            self.start_writeback_if_due(&files, position.advanced_by(run_bytes));
            self.drop_behind_if_due(&files, position.advanced_by(run_bytes));
        }
        if let Some(delta) = self.note_run(&run_headers, position) {
            // The index is a cache that recovery rebuilds; its write needs no fsync.
            delta.write(&files).await.map_err(|err| {
                self.note_write_error(&err);
                format!("index write failed: {err}")
            })?;
        }
        Ok(())
    }

    /// Starts the writeback of the active segment's bytes written since the last start, once
    /// they reach `writeback.bytes`, without waiting for it: the fsync of the roll that seals
    /// the segment then finds little left to write (with the default 1 GiB segments, four
    /// partitions rolling together stalled their producers for a second at 400 MB/s). An error
    /// is not acted on here: the kernel records a failed writeback against the file and the next
    /// fsync reports it, and that fsync is what decides durability (decision 0010).
    ///
    /// The started range stays [`LARGEST_FOLIO_BYTES`] behind `end`, on a page boundary: the
    /// page-cache folio holding `end` (up to 2 MiB) is written again by the next appends, and if
    /// that happened while its first writeback was still in flight, the next start
    /// (`SYNC_FILE_RANGE_WRITE` skips folios under writeback, it does not wait for them) left it
    /// dirty until the kernel's own expiry, for the roll's fsync to find (seen under a loaded
    /// CI run: 3 pages of a started range still dirty after 20 s).
    fn start_writeback_if_due(&self, files: &SegmentFiles, end: Position) {
        let page_bytes = crate::io::page_bytes();
        let whole_pages_end =
            end.get().saturating_sub(LARGEST_FOLIO_BYTES) / page_bytes * page_bytes;
        let from = {
            let mut state = self.state.borrow_mut();
            let due_bytes = state.config.writeback_bytes;
            let active = state.active_mut();
            let from = active.writeback_started_bytes;
            if due_bytes == 0 || whole_pages_end.saturating_sub(from) < due_bytes {
                return;
            }
            active.writeback_started_bytes = whole_pages_end;
            from
        };
        let log = files.log.clone();
        compio::runtime::spawn(async move {
            let _ = log.start_writeback(from, whole_pages_end - from).await;
        })
        .detach();
    }

    /// `fallocate`s the active segment ahead of a write up to `end`, when preallocation is on.
    async fn allocate_ahead(&self, files: &SegmentFiles, end: Position) -> Result<(), String> {
        let allocation = {
            let state = self.state.borrow();
            state.active().allocation_needed(end.get(), &state.config)
        };
        if let Some((offset, len)) = allocation {
            files.log.fallocate(offset, len).await.map_err(|err| {
                self.note_write_error(&err);
                format!("fallocate of {} failed: {err}", files.log_path.display())
            })?;
            self.state.borrow_mut().active_mut().allocated_bytes = offset + len;
        }
        Ok(())
    }

    /// After a run was written at `position`: each batch noted in the active segment, the high
    /// watermark moved, waiting readers woken. Returns index entries due to be written out.
    fn note_run(&self, run_headers: &[BatchHeader], position: Position) -> Option<IndexDelta> {
        let mut state = self.state.borrow_mut();
        let config = state.config.clone();
        let active = state.active_mut();
        let mut batch_position = position;
        for header in run_headers {
            active.note_appended(header, batch_position, &config);
            batch_position = batch_position.advanced_by(header.total_bytes() as u64);
        }
        let boundary = BatchBoundary {
            segment_base: active.base_offset,
            offset: active.next_offset,
            position: active.end(),
        };
        let delta = (active.unpersisted_index_entries() >= INDEX_ENTRIES_UNPERSISTED_MAX)
            .then(|| active.take_index_delta())
            .flatten();
        note_transactions(&mut state, run_headers);
        state.stats.appends += run_headers.len() as u64;
        state.stats.bytes_appended += batch_position.bytes_since(position);
        state.stats.writes += 1;
        assert!(
            boundary.offset > state.high_watermark,
            "high watermark only moves forward: {} after {}",
            boundary.offset,
            state.high_watermark
        );
        state.high_watermark = boundary.offset;
        state.boundaries.remember(boundary);
        for waiter in state.data_waiters.drain(..) {
            let _ = waiter.send(());
        }
        delta
    }
}

/// Notes a written run's transactional batches: transactions opened, closed, and the aborted
/// ones entered in the active segment's index (the marker's segment).
fn note_transactions(state: &mut LogState, run_headers: &[BatchHeader]) {
    for header in run_headers
        .iter()
        .filter(|header| header.is_transactional())
    {
        let marker = if header.is_control() {
            let marker = state.pending_markers.remove(&header.base_offset);
            assert!(marker.is_some(), "a queued control batch has its marker");
            marker
        } else {
            None
        };
        if let Some(aborted) = state.transactions.note(header, marker) {
            state.active_mut().aborted.push(aborted);
        }
    }
}

/// Writes a run at `position`: with `write.inline`, `pwritev(2)` on the shard thread (saves the
/// io-wq hand-off ext4 and tmpfs make for buffered io_uring writes, but blocks the shard for the
/// copy); otherwise an io_uring `writev`.
async fn write_at(
    files: &SegmentFiles,
    run: Vec<Bytes>,
    position: Position,
    write_inline: bool,
) -> std::io::Result<()> {
    if write_inline {
        files
            .log
            .write_vectored_all_at_blocking(&run, position.get())
    } else {
        files
            .log
            .write_vectored_all_at(run, position.get())
            .await
            .map(drop)
    }
}
