//! A partition's log: a directory of segments, with group-committed appends and zero-copy read
//! plans.
//!
//! The log is shard-local (`Rc`, `RefCell`): one thread owns it, so the data path takes no lock.
//! No `RefCell` borrow is ever held across an `.await`.
//!
//! # How an append flows
//! [`PartitionLog::append`] validates the batches (CRC-32C), assigns offsets in place, queues them
//! and waits. One writer task per log drains the queue: everything queued since its last round
//! becomes one vectored write (group commit), followed — under `every_batch` — by one `fdatasync`
//! shared by all of them. Only then are the appends answered, so an acknowledgement means the
//! flush policy's durability point was reached.
//!
//! # Invariants
//! - `log_start_offset <= durable_offset <= high_watermark <= next_offset` (durable only under a
//!   syncing policy; otherwise it trails).
//! - Readers see only whole, written batches: a read plan never reaches past `high_watermark`.
//! - Segments are ordered by base offset and each base offset is the previous segment's end (or
//!   beyond it, once compaction removed a segment's last batches: reads skip to the next base).
//! - After a failed write or fsync the log takes no more appends (page cache state is unknown).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use compio::fs::File;
use futures_channel::oneshot;
use tracing::{error, info};

use crate::batch::{self, BatchHeader, Strictness};
use crate::config::{FlushPolicy, LogConfig};
use crate::error::{AppendError, OpenError, ReadError};
use crate::io;
use crate::producer::{ProducerStateTable, SequenceCheck};
use crate::segment::{self, RecoveryReport, RecoveryScan, Segment, SegmentFiles};

/// Marker written by a clean [`PartitionLog::close`] and removed on open: without it, the last
/// open ended in a crash and the active segment is CRC-checked from its start.
pub const CLEAN_SHUTDOWN_FILE_NAME: &str = ".clean_shutdown";

/// Index entries the active segment may hold in memory only before they are written out. The
/// files are a cache (recovery rebuilds them), so writing them is kept off the acknowledgement
/// path: once per this many entries (~4 MiB of log at the default interval), and at seal and close.
const INDEX_ENTRIES_UNPERSISTED_MAX: usize = 1024;

/// Bytes at the start of a batch that hold the broker-assigned fields (base offset, batch length,
/// partition leader epoch); the rest of the batch is written from the producer's buffer.
const PATCHED_PREFIX_BYTES: usize = batch::LEADER_EPOCH_OFFSET + 4;

/// Recent (offset, segment base, position) batch boundaries kept to answer tail fetches without I/O.
const BOUNDARY_CACHE_ENTRIES: usize = 64;

/// An append that has its offsets and waits for its durability point.
pub type PendingAppendOutcome =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<AppendOutcome, AppendError>>>>;

/// What an append produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_start_offset: i64,
}

/// A byte range of a segment file, starting and ending on batch boundaries.
#[derive(Debug, Clone)]
pub struct FileSlice {
    pub file: File,
    pub position: u64,
    pub len: u64,
}

/// Which bytes answer a fetch: the server sends the slices (zero-copy) in order.
#[derive(Debug, Clone, Default)]
pub struct ReadPlan {
    pub slices: Vec<FileSlice>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
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
    pub log_start_offset: i64,
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
}

/// What opening the log found.
#[derive(Debug, Clone, Default)]
pub struct OpenReport {
    pub segments: usize,
    /// Whether the previous run closed the log cleanly.
    pub clean_shutdown: bool,
    pub recovery: Vec<(i64, RecoveryReport)>,
}

struct PendingAppend {
    /// The record set as iovecs: per batch, its patched first bytes (offset, length, epoch), then
    /// the rest of the producer's bytes, untouched and uncopied.
    records: Vec<Bytes>,
    headers: Vec<BatchHeader>,
    reply: oneshot::Sender<Result<AppendOutcome, AppendError>>,
}

pub(crate) struct LogState {
    pub(crate) config: LogConfig,
    pub(crate) segments: VecDeque<Segment>,
    next_offset: i64,
    high_watermark: i64,
    durable_offset: i64,
    log_start_offset: i64,
    pending: Vec<PendingAppend>,
    writer_active: bool,
    pub(crate) failure: Option<String>,
    pub(crate) closed: bool,
    last_sync_ms: i64,
    pub(crate) stats: LogStats,
    /// Readers parked until the high watermark moves (long-polling fetches).
    data_waiters: Vec<oneshot::Sender<()>>,
    /// Idempotent producers' sequence state.
    producers: ProducerStateTable,
    pub(crate) boundaries: VecDeque<(i64, i64, u64)>,
    /// A cleaning pass is running: retention and close wait for it (see [`crate::compaction`]).
    pub(crate) cleaning: bool,
    /// Sealed segments from this offset on have not been cleaned since open (all at first).
    pub(crate) first_dirty_offset: i64,
}

impl LogState {
    fn active(&self) -> &Segment {
        self.segments
            .back()
            .expect("a log always has an active segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .back_mut()
            .expect("a log always has an active segment")
    }

    fn remember_boundary(&mut self, offset: i64, segment_base: i64, position: u64) {
        if self.boundaries.len() == BOUNDARY_CACHE_ENTRIES {
            self.boundaries.pop_front();
        }
        self.boundaries.push_back((offset, segment_base, position));
    }

    fn cached_position(&self, offset: i64, segment_base: i64) -> Option<u64> {
        self.boundaries
            .iter()
            .rev()
            .find(|(cached_offset, base, _)| *cached_offset == offset && *base == segment_base)
            .map(|(_, _, position)| *position)
    }

    /// Index of the segment holding `offset` (the last with base offset <= `offset`).
    fn segment_index_for(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|segment| segment.base_offset <= offset)
            .saturating_sub(1)
    }
}

/// One partition's log. Create with [`PartitionLog::open`]; shard-local.
pub struct PartitionLog {
    dir: PathBuf,
    pub(crate) state: RefCell<LogState>,
}

/// Milliseconds since the Unix epoch, the clock of timestamps and retention.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

impl PartitionLog {
    /// Opens (or creates) the log in `dir`, recovering every segment.
    pub async fn open(dir: &Path, config: LogConfig) -> Result<(Rc<Self>, OpenReport), OpenError> {
        // A cleaning interrupted by a crash is finished (if it was committed) or undone first.
        crate::install::finish_interrupted(dir).await?;
        let (base_offsets, snapshot_offsets) = list_segments(dir).await?;
        let marker = dir.join(CLEAN_SHUTDOWN_FILE_NAME);
        let clean_shutdown = compio::fs::metadata(&marker).await.is_ok();
        let now = now_ms();
        let mut segments = VecDeque::with_capacity(base_offsets.len().max(1));
        let mut report = OpenReport {
            clean_shutdown,
            ..OpenReport::default()
        };
        for (index, base_offset) in base_offsets.iter().enumerate() {
            let is_active = index + 1 == base_offsets.len();
            let scan = if is_active && !clean_shutdown {
                RecoveryScan::Full
            } else {
                RecoveryScan::FromLastIndexEntry
            };
            let (segment, recovery) =
                segment::recover(dir, *base_offset, &config, is_active, scan, now).await?;
            if recovery.truncated_bytes > 0 || recovery.index_rebuilt {
                info!(
                    dir = %dir.display(),
                    base_offset,
                    truncated_bytes = recovery.truncated_bytes,
                    index_rebuilt = recovery.index_rebuilt,
                    "recovered segment"
                );
            }
            report.recovery.push((*base_offset, recovery));
            segments.push_back(segment);
        }
        if segments.is_empty() {
            segments.push_back(Segment::create(dir, 0, &config, now).await?);
        }
        report.segments = segments.len();
        if clean_shutdown {
            // From here on a crash must lead to a full check: the removal has to be durable.
            compio::fs::remove_file(&marker)
                .await
                .map_err(OpenError::io(&marker))?;
            io::sync_dir(dir).await.map_err(OpenError::io(dir))?;
        }
        let next_offset = segments.back().map_or(0, |segment| segment.next_offset);
        let log_start_offset = segments.front().map_or(0, |segment| segment.base_offset);
        let producers = rebuild_producers(dir, &snapshot_offsets, next_offset, &report).await;
        let log = Self {
            dir: dir.to_path_buf(),
            state: RefCell::new(LogState {
                config,
                segments,
                next_offset,
                high_watermark: next_offset,
                durable_offset: next_offset,
                log_start_offset,
                pending: Vec::new(),
                writer_active: false,
                failure: None,
                closed: false,
                last_sync_ms: now,
                stats: LogStats::default(),
                data_waiters: Vec::new(),
                producers,
                boundaries: VecDeque::with_capacity(BOUNDARY_CACHE_ENTRIES),
                cleaning: false,
                first_dirty_offset: log_start_offset,
            }),
        };
        Ok((Rc::new(log), report))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> LogConfig {
        self.state.borrow().config.clone()
    }

    /// Changes the config; takes effect for the next append, roll and retention pass.
    pub fn set_config(&self, config: LogConfig) {
        self.state.borrow_mut().config = config;
    }

    /// Offset after the last readable batch (Kafka's high watermark on a single replica).
    pub fn high_watermark(&self) -> i64 {
        self.state.borrow().high_watermark
    }

    /// Resolves once the high watermark is beyond `offset` (at once if it already is): what a
    /// long-polling fetch waits on. The caller bounds the wait with its own timer.
    pub fn wait_for_data_after(
        &self,
        offset: i64,
    ) -> impl std::future::Future<Output = ()> + 'static {
        let receiver = {
            let mut state = self.state.borrow_mut();
            if state.high_watermark > offset || state.closed {
                None
            } else {
                let (sender, receiver) = oneshot::channel();
                state.data_waiters.retain(|waiter| !waiter.is_canceled());
                state.data_waiters.push(sender);
                Some(receiver)
            }
        };
        async move {
            if let Some(receiver) = receiver {
                let _ = receiver.await;
            }
        }
    }

    /// Offset after the last batch known to be on disk (fdatasync'ed).
    pub fn durable_offset(&self) -> i64 {
        self.state.borrow().durable_offset
    }

    pub fn log_start_offset(&self) -> i64 {
        self.state.borrow().log_start_offset
    }

    /// Bytes of whole batches in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.state
            .borrow()
            .segments
            .iter()
            .map(|segment| segment.size_bytes)
            .sum()
    }

    pub fn stats(&self) -> LogStats {
        self.state.borrow().stats
    }

    pub fn segment_count(&self) -> usize {
        self.state.borrow().segments.len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.state
            .borrow()
            .segments
            .iter()
            .map(|segment| segment.base_offset)
            .collect()
    }

    /// Appends a record set (one or more producer batches back to back) and returns once the flush
    /// policy's durability point is reached. Offsets and the leader epoch are written in place.
    pub async fn append(
        self: &Rc<Self>,
        records: impl Into<Bytes>,
        leader_epoch: i32,
    ) -> Result<AppendOutcome, AppendError> {
        self.begin_append(records, leader_epoch)?.await
    }

    /// The first half of [`PartitionLog::append`], done before it returns: validation, sequence
    /// check, offsets, queueing. Record sets begun in some order get offsets in that order, which
    /// is how the broker keeps a connection's pipelined produce requests in order. The returned
    /// future resolves at the durability point.
    pub fn begin_append(
        self: &Rc<Self>,
        records: impl Into<Bytes>,
        leader_epoch: i32,
    ) -> Result<PendingAppendOutcome, AppendError> {
        let records: Bytes = records.into();
        let (max_message_bytes, compacts) = {
            let state = self.state.borrow();
            (
                state.config.max_message_bytes as usize,
                state.config.compacts(),
            )
        };
        let headers = batch::validate_all(&records, max_message_bytes, Strictness::Producer)?;
        if compacts {
            // Only compacted logs pay for reading records (decompressing) on append.
            crate::cleaner::check_keys(&records, &headers)?;
        }
        let mut state = self.state.borrow_mut();
        if let Some(reason) = &state.failure {
            return Err(AppendError::LogFailed {
                reason: reason.clone(),
            });
        }
        if state.closed {
            return Err(AppendError::Closed);
        }
        if let Some(duplicate) = check_sequences(&state.producers, &headers)? {
            drop(state);
            let log = Rc::clone(self);
            return Ok(Box::pin(
                async move { log.answer_duplicate(duplicate).await },
            ));
        }
        let receiver = self.enqueue(&mut state, records, headers, leader_epoch);
        Ok(Box::pin(async move {
            receiver.await.unwrap_or(Err(AppendError::Closed))
        }))
    }

    /// Assigns offsets in place, records producer sequences and queues the record set for the
    /// writer (starting it if idle). Runs under the caller's borrow: nothing here awaits.
    fn enqueue(
        self: &Rc<Self>,
        state: &mut LogState,
        records: Bytes,
        mut headers: Vec<BatchHeader>,
        leader_epoch: i32,
    ) -> oneshot::Receiver<Result<AppendOutcome, AppendError>> {
        debug_assert!(
            !state.closed && state.failure.is_none(),
            "checked by the caller"
        );
        {
            let mut position = 0usize;
            let mut iovecs = Vec::with_capacity(headers.len() * 2);
            for header in &mut headers {
                header.base_offset = state.next_offset;
                header.partition_leader_epoch = leader_epoch;
                // The broker's two fields lie in the first bytes, outside the CRC: write them into
                // a small copy of those bytes and send the producer's rest as it is.
                let end = position + header.total_bytes();
                let mut prefix = records[position..position + PATCHED_PREFIX_BYTES].to_vec();
                batch::set_base_offset_in_prefix(&mut prefix, header.base_offset);
                batch::set_partition_leader_epoch_in_prefix(&mut prefix, leader_epoch);
                iovecs.push(Bytes::from(prefix));
                iovecs.push(records.slice(position + PATCHED_PREFIX_BYTES..end));
                state.next_offset = header.next_offset();
                state.producers.record(header);
                position = end;
            }
            let (reply, receiver) = oneshot::channel();
            state.pending.push(PendingAppend {
                records: iovecs,
                headers,
                reply,
            });
            if !state.writer_active {
                state.writer_active = true;
                compio::runtime::spawn(Rc::clone(self).run_writer()).detach();
            }
            receiver
        }
    }

    /// A retried batch that is already in the log: answer with its offsets once it is as durable
    /// as a fresh append would be.
    async fn answer_duplicate(
        &self,
        duplicate: crate::producer::ProducerBatch,
    ) -> Result<AppendOutcome, AppendError> {
        loop {
            let (reached, end) = {
                let state = self.state.borrow();
                if let Some(reason) = &state.failure {
                    return Err(AppendError::LogFailed {
                        reason: reason.clone(),
                    });
                }
                let end = match state.config.flush {
                    FlushPolicy::EveryBatch => state.durable_offset,
                    FlushPolicy::None | FlushPolicy::IntervalMs(_) => state.high_watermark,
                };
                (end > duplicate.last_offset, end)
            };
            if reached {
                return Ok(AppendOutcome {
                    base_offset: duplicate.base_offset,
                    last_offset: duplicate.last_offset,
                    log_start_offset: self.log_start_offset(),
                });
            }
            // Woken by writes and by syncs; re-check what is reached each time.
            self.wait_for_data_after(end.min(self.high_watermark()))
                .await;
        }
    }

    /// The writer task: drains the queue in groups until it is empty.
    async fn run_writer(self: Rc<Self>) {
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
            let result = match self.write_group(buffers, &headers).await {
                Ok(()) => self.sync_for_policy().await,
                Err(err) => Err(err),
            };
            if let Err(reason) = result {
                self.fail(reason, replies);
                return;
            }
            let log_start_offset = self.log_start_offset();
            for (reply, batch_headers) in replies.into_iter().zip(&headers) {
                let outcome = AppendOutcome {
                    base_offset: batch_headers
                        .first()
                        .map_or(-1, |header| header.base_offset),
                    last_offset: batch_headers.last().map_or(-1, BatchHeader::last_offset),
                    log_start_offset,
                };
                // The caller may have gone away (connection closed): its data is written anyway.
                let _ = reply.send(Ok(outcome));
            }
        }
    }

    /// Marks the log failed and answers every waiting append with the failure.
    pub(crate) fn fail(
        &self,
        reason: String,
        replies: Vec<oneshot::Sender<Result<AppendOutcome, AppendError>>>,
    ) {
        error!(dir = %self.dir.display(), %reason, "partition log failed; it takes no appends until restart");
        let pending = {
            let mut state = self.state.borrow_mut();
            state.failure = Some(reason.clone());
            state.writer_active = false;
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
    async fn write_group(
        &self,
        buffers: Vec<Vec<Bytes>>,
        headers: &[Vec<BatchHeader>],
    ) -> Result<(), String> {
        let mut run: Vec<Bytes> = Vec::new();
        let mut run_headers: Vec<BatchHeader> = Vec::new();
        let mut run_bytes = 0u64;
        for (buffer, batch_headers) in buffers.into_iter().zip(headers) {
            let incoming_bytes: u64 = buffer.iter().map(|iovec| iovec.len() as u64).sum();
            let incoming_last_offset = batch_headers.last().map_or(0, BatchHeader::last_offset);
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
    async fn write_run(
        &self,
        run: Vec<Bytes>,
        run_headers: Vec<BatchHeader>,
    ) -> Result<(), String> {
        if run.is_empty() {
            return Ok(());
        }
        let run_bytes: u64 = run.iter().map(|buffer| buffer.len() as u64).sum();
        let (files, position, allocation, write_inline) = {
            let state = self.state.borrow();
            let active = state.active();
            let allocation = active.allocation_needed(active.size_bytes + run_bytes, &state.config);
            (
                active.files.clone(),
                active.size_bytes,
                allocation,
                state.config.write_inline,
            )
        };
        if let Some((offset, len)) = allocation {
            io::fallocate(&files.log, offset, len)
                .await
                .map_err(|err| {
                    format!("fallocate of {} failed: {err}", files.log_path.display())
                })?;
            self.state.borrow_mut().active_mut().allocated_bytes = offset + len;
        }
        if write_inline {
            io::write_vectored_all_at_blocking(&files.log, &run, position)
                .map_err(|err| format!("write to {} failed: {err}", files.log_path.display()))?;
        } else {
            io::write_vectored_all_at(&files.log, run, position)
                .await
                .map_err(|err| format!("write to {} failed: {err}", files.log_path.display()))?;
        }
        let delta = {
            let mut state = self.state.borrow_mut();
            let config = state.config.clone();
            let active = state.active_mut();
            let mut batch_position = position;
            for header in &run_headers {
                active.note_appended(header, batch_position, &config);
                batch_position += header.total_bytes() as u64;
            }
            let (segment_base, next_offset, size_bytes) =
                (active.base_offset, active.next_offset, active.size_bytes);
            let delta = if active.unpersisted_index_entries() >= INDEX_ENTRIES_UNPERSISTED_MAX {
                active.take_index_delta()
            } else {
                None
            };
            state.stats.appends += run_headers.len() as u64;
            state.stats.bytes_appended += batch_position - position;
            state.stats.writes += 1;
            debug_assert!(
                next_offset > state.high_watermark,
                "high watermark only moves forward"
            );
            state.high_watermark = next_offset;
            state.remember_boundary(next_offset, segment_base, size_bytes);
            for waiter in state.data_waiters.drain(..) {
                let _ = waiter.send(());
            }
            delta
        };
        if let Some(delta) = delta {
            // The index is a cache that recovery rebuilds; its write needs no fsync.
            delta
                .write(&files)
                .await
                .map_err(|err| format!("index write failed: {err}"))?;
        }
        Ok(())
    }

    /// fdatasync under `every_batch`; one sync covers everything written so far.
    async fn sync_for_policy(&self) -> Result<(), String> {
        if self.state.borrow().config.flush != FlushPolicy::EveryBatch {
            return Ok(());
        }
        self.sync()
            .await
            .map_err(|err| format!("fdatasync failed: {err}"))
    }

    /// Makes everything written so far durable (used by `every_batch`, the interval flusher and
    /// shutdown). Sealed segments were synced when they were sealed.
    pub async fn sync(&self) -> std::io::Result<()> {
        let (file, written) = {
            let state = self.state.borrow();
            if state.durable_offset == state.high_watermark {
                return Ok(());
            }
            (state.active().files.log.clone(), state.high_watermark)
        };
        file.sync_data().await?;
        let mut state = self.state.borrow_mut();
        state.stats.fsyncs += 1;
        state.durable_offset = state.durable_offset.max(written);
        for waiter in state.data_waiters.drain(..) {
            let _ = waiter.send(());
        }
        Ok(())
    }

    /// Syncs if the `<N>ms` flush policy is due. Returns whether it synced.
    pub async fn sync_if_due(&self, now_ms: i64) -> std::io::Result<bool> {
        let due = {
            let state = self.state.borrow();
            match state.config.flush {
                FlushPolicy::IntervalMs(interval_ms) => {
                    state.durable_offset < state.high_watermark
                        && now_ms - state.last_sync_ms >= interval_ms as i64
                }
                FlushPolicy::None | FlushPolicy::EveryBatch => false,
            }
        };
        if !due {
            return Ok(false);
        }
        if let Err(err) = self.sync().await {
            self.fail(format!("interval fdatasync failed: {err}"), Vec::new());
            return Err(err);
        }
        self.state.borrow_mut().last_sync_ms = now_ms;
        Ok(true)
    }

    /// Seals the active segment (cut to its end, index written, fsynced) and starts a new one at
    /// its end. Sealing first means a sealed segment is always durable, which is what recovery
    /// assumes when it checks sealed segments only from their last index entry. The caller holds
    /// the writer's place, so nothing appends meanwhile.
    async fn roll(&self) -> Result<(), OpenError> {
        let (base_offset, config, old_files, old_size, delta) = {
            let mut state = self.state.borrow_mut();
            let config = state.config.clone();
            let old = state.active_mut();
            (
                old.next_offset,
                config,
                old.files.clone(),
                old.size_bytes,
                old.take_index_delta(),
            )
        };
        Segment::seal(old_files, old_size, delta)
            .await
            .map_err(OpenError::io(&self.dir))?;
        {
            let mut state = self.state.borrow_mut();
            state.active_mut().allocated_bytes = old_size;
            // Everything before the new segment is synced now.
            state.durable_offset = state.durable_offset.max(base_offset);
        }
        let segment = Segment::create(&self.dir, base_offset, &config, now_ms()).await?;
        self.write_producer_snapshot(base_offset)
            .await
            .map_err(OpenError::io(&self.dir))?;
        io::sync_dir(&self.dir)
            .await
            .map_err(OpenError::io(&self.dir))?;
        self.state.borrow_mut().segments.push_back(segment);
        Ok(())
    }

    /// Plans a read of up to `max_bytes` from `offset`: slices of whole batches. With
    /// `min_one_batch`, a first batch larger than `max_bytes` is still returned whole (KIP-74), so
    /// a consumer always makes progress.
    pub async fn read(
        &self,
        offset: i64,
        max_bytes: u64,
        min_one_batch: bool,
    ) -> Result<ReadPlan, ReadError> {
        let (high_watermark, log_start_offset) = {
            let state = self.state.borrow();
            (state.high_watermark, state.log_start_offset)
        };
        if offset < log_start_offset || offset > high_watermark {
            return Err(ReadError::OffsetOutOfRange {
                offset,
                log_start_offset,
                high_watermark,
            });
        }
        let mut plan = ReadPlan {
            slices: Vec::new(),
            high_watermark,
            log_start_offset,
        };
        let mut cursor = offset;
        let mut remaining = max_bytes;
        while cursor < high_watermark && remaining > 0 {
            let Some(step) = self
                .read_in_segment(cursor, remaining, min_one_batch && plan.slices.is_empty())
                .await?
            else {
                break;
            };
            if let Some(slice) = step.slice {
                remaining = remaining.saturating_sub(slice.len);
                plan.slices.push(slice);
            }
            if !step.reached_segment_end {
                break;
            }
            cursor = step.segment_next_offset;
        }
        // Later segments were looked at after awaits: the plan may hold batches appended since the
        // start, and its high watermark must cover them.
        plan.high_watermark = self.high_watermark();
        Ok(plan)
    }

    async fn read_in_segment(
        &self,
        cursor: i64,
        remaining: u64,
        min_one_batch: bool,
    ) -> Result<Option<SegmentRead>, ReadError> {
        let (files, size_bytes, (segment_base, generation), segment_next_offset, walk_from, cached) = {
            let state = self.state.borrow();
            let index = state.segment_index_for(cursor);
            let segment = &state.segments[index];
            if cursor >= segment.next_offset && index + 1 == state.segments.len() {
                return Ok(None);
            }
            // Where reading resumes after this segment: the next segment's base, which skips any
            // gap (a sealed segment cut short by recovery).
            let resume_offset = state
                .segments
                .get(index + 1)
                .map_or(segment.next_offset, |next| next.base_offset)
                .max(cursor + 1);
            (
                segment.files.clone(),
                segment.size_bytes,
                (segment.base_offset, segment.generation),
                resume_offset,
                segment.walk_start_for_offset(cursor),
                state.cached_position(cursor, segment.base_offset),
            )
        };
        let start = match cached {
            Some(position) => position,
            None => {
                segment::walk_to_offset(
                    &files.log,
                    &files.log_path,
                    walk_from.0,
                    size_bytes,
                    cursor,
                )
                .await?
            }
        };
        if start >= size_bytes {
            return Ok(Some(SegmentRead {
                slice: None,
                reached_segment_end: true,
                segment_next_offset,
            }));
        }
        let end = if size_bytes - start <= remaining {
            size_bytes
        } else {
            let limit = start + remaining;
            let walk_start = self
                .walk_start_for_position(segment_base, generation, limit)
                .max(start);
            let boundary = segment::walk_to_boundary(
                &files.log,
                &files.log_path,
                walk_start,
                size_bytes,
                limit,
            )
            .await?;
            if boundary > start {
                boundary
            } else if min_one_batch {
                segment::batch_end(&files.log, &files.log_path, start, size_bytes).await?
            } else {
                return Ok(None);
            }
        };
        Ok(Some(SegmentRead {
            slice: Some(FileSlice {
                file: files.log,
                position: start,
                len: end - start,
            }),
            reached_segment_end: end == size_bytes,
            segment_next_offset,
        }))
    }

    /// An indexed batch start at or before `position` in the segment `segment_base` (0 if the
    /// segment is gone or was replaced by the cleaner since the caller took its file handle: the
    /// walk then starts from the caller's own lower bound, in the file the caller holds).
    fn walk_start_for_position(&self, segment_base: i64, generation: u64, position: u64) -> u64 {
        let state = self.state.borrow();
        let index = state.segment_index_for(segment_base);
        match state.segments.get(index) {
            Some(segment)
                if segment.base_offset == segment_base && segment.generation == generation =>
            {
                segment.walk_start_for_position(position)
            }
            _ => 0,
        }
    }

    /// Reads into memory what [`PartitionLog::read`] would send.
    pub async fn read_bytes(
        &self,
        offset: i64,
        max_bytes: u64,
        min_one_batch: bool,
    ) -> Result<Vec<u8>, ReadError> {
        let plan = self.read(offset, max_bytes, min_one_batch).await?;
        let mut out = Vec::with_capacity(plan.total_bytes() as usize);
        for slice in &plan.slices {
            out.extend_from_slice(
                &segment::read_range(&slice.file, slice.position, slice.len as usize).await?,
            );
        }
        Ok(out)
    }

    /// The first offset whose record timestamp is at least `timestamp`, with that timestamp
    /// (ListOffsets by time). `None` when every record is older.
    pub async fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, ReadError> {
        let candidates: Vec<(SegmentFiles, u64, u64)> = {
            let state = self.state.borrow();
            state
                .segments
                .iter()
                .filter(|segment| segment.max_timestamp >= timestamp)
                .map(|segment| {
                    (
                        segment.files.clone(),
                        segment.walk_start_for_timestamp(timestamp),
                        segment.size_bytes,
                    )
                })
                .collect()
        };
        for (files, mut position, size_bytes) in candidates {
            while position < size_bytes {
                let header_bytes =
                    segment::read_range(&files.log, position, batch::HEADER_BYTES).await?;
                let header =
                    batch::parse_header(&header_bytes).map_err(|err| ReadError::Corrupt {
                        path: files.log_path.clone(),
                        position,
                        reason: err.to_string(),
                    })?;
                if header.batch_length < (batch::HEADER_BYTES - batch::LOG_OVERHEAD_BYTES) as i32 {
                    return Err(ReadError::Corrupt {
                        path: files.log_path.clone(),
                        position,
                        reason: format!("batch length {}", header.batch_length),
                    });
                }
                if header.max_timestamp >= timestamp {
                    let whole =
                        segment::read_range(&files.log, position, header.total_bytes()).await?;
                    return Ok(Some(
                        match batch::first_record_at_or_after(&whole, timestamp) {
                            Some((delta, record_timestamp)) => {
                                (header.base_offset + i64::from(delta), record_timestamp)
                            }
                            None => (header.base_offset, header.max_timestamp),
                        },
                    ));
                }
                position += header.total_bytes() as u64;
            }
        }
        Ok(None)
    }

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
        self.roll_expired_active(now_ms).await?;
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
                state
                    .boundaries
                    .retain(|(_, base, _)| *base != doomed.base_offset);
                doomed
            };
            outcome.segments_deleted += 1;
            outcome.bytes_deleted += doomed.size_bytes;
            Segment::delete_files(&doomed.files).await?;
        }
        outcome.log_start_offset = self.log_start_offset();
        if outcome.segments_deleted > 0 {
            info!(dir = %self.dir.display(), ?outcome, "retention deleted segments");
        }
        Ok(outcome)
    }

    async fn roll_expired_active(self: &Rc<Self>, now_ms: i64) -> Result<(), std::io::Error> {
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
    async fn roll_active_when(
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
        let rolled = self.roll().await;
        let restart_writer = {
            let mut state = self.state.borrow_mut();
            state.writer_active = !state.pending.is_empty();
            state.writer_active
        };
        if let Err(err) = rolled {
            // A half-done roll (seal fsync or new segment failed) leaves the log in an unknown
            // state: stop appends, exactly as a failed write would.
            self.fail(format!("segment roll failed: {err}"), Vec::new());
            return Err(std::io::Error::other(err.to_string()));
        }
        if restart_writer {
            // Appends queued while the roll held the writer's place.
            compio::runtime::spawn(Rc::clone(self).run_writer()).detach();
        }
        Ok(true)
    }

    /// Writes the producer table as of `offset` (everything appended below it) and removes older
    /// snapshots. Called at a roll (offset = new segment base) and at close (offset = end), when no
    /// append is in flight.
    async fn write_producer_snapshot(&self, offset: i64) -> std::io::Result<()> {
        let bytes = self.state.borrow().producers.encode_snapshot(offset);
        io::write_file_atomically(&self.dir.join(snapshot_file_name(offset)), bytes).await?;
        let (_, snapshots) = list_segments(&self.dir)
            .await
            .map_err(|err| std::io::Error::other(err.to_string()))?;
        for older in snapshots.into_iter().filter(|snapshot| *snapshot < offset) {
            compio::fs::remove_file(self.dir.join(snapshot_file_name(older))).await?;
        }
        Ok(())
    }

    /// Refuses further appends, waits for queued ones, writes out the index and syncs.
    pub async fn close(&self) -> std::io::Result<()> {
        self.state.borrow_mut().closed = true;
        while self.state.borrow().writer_active || self.state.borrow().cleaning {
            compio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        if let Some(reason) = self.state.borrow().failure.clone() {
            // Never retry an fsync that failed, and never call this log clean: the next open must
            // check it in full.
            return Err(std::io::Error::other(format!(
                "log failed earlier: {reason}"
            )));
        }
        let (files, delta) = {
            let mut state = self.state.borrow_mut();
            let active = state.active_mut();
            (active.files.clone(), active.take_index_delta())
        };
        if let Some(delta) = delta {
            delta.write(&files).await?;
        }
        self.sync().await?;
        self.write_producer_snapshot(self.high_watermark()).await?;
        let marker = compio::fs::File::create(self.dir.join(CLEAN_SHUTDOWN_FILE_NAME)).await?;
        marker.sync_all().await?;
        io::sync_dir(&self.dir).await
    }
}

struct SegmentRead {
    slice: Option<FileSlice>,
    reached_segment_end: bool,
    segment_next_offset: i64,
}

/// True when the oldest segment is past retention by size or by age.
fn front_is_expired(state: &LogState, now_ms: i64) -> bool {
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

fn snapshot_file_name(offset: i64) -> String {
    format!("{offset:020}.snapshot")
}

/// Checks each producer batch of a record set. `Some` when the set is one batch already in the
/// log (a retry).
fn check_sequences(
    producers: &ProducerStateTable,
    headers: &[BatchHeader],
) -> Result<Option<crate::producer::ProducerBatch>, AppendError> {
    for header in headers {
        match producers.check(header)? {
            SequenceCheck::Append => {}
            SequenceCheck::Duplicate(batch) if headers.len() == 1 => return Ok(Some(batch)),
            // Produce v3+ carries one batch per partition; a partial retry of several is refused.
            SequenceCheck::Duplicate(batch) => {
                return Err(crate::producer::SequenceError::OutOfOrder {
                    expected: batch.last_sequence.wrapping_add(1),
                    got: header.base_sequence,
                }
                .into())
            }
        }
    }
    Ok(None)
}

/// The producer table at open: the newest snapshot, then every producer batch recovery scanned
/// past it. A missing or unreadable snapshot only costs idempotence across this restart.
async fn rebuild_producers(
    dir: &Path,
    snapshot_offsets: &[i64],
    next_offset: i64,
    report: &OpenReport,
) -> ProducerStateTable {
    let mut table = ProducerStateTable::default();
    let mut covered = i64::MIN;
    if let Some(offset) = snapshot_offsets
        .iter()
        .copied()
        .filter(|offset| *offset <= next_offset)
        .max()
    {
        let bytes = compio::fs::read(dir.join(snapshot_file_name(offset)))
            .await
            .ok();
        match bytes.and_then(|bytes| ProducerStateTable::decode_snapshot(&bytes)) {
            Some((snapshot, snapshot_offset)) => {
                table = snapshot;
                covered = snapshot_offset;
            }
            None => {
                tracing::warn!(dir = %dir.display(), offset, "unreadable producer snapshot ignored")
            }
        }
    }
    for (_, recovery) in &report.recovery {
        for header in recovery
            .producer_batches
            .iter()
            .filter(|header| header.base_offset >= covered)
        {
            table.record(header);
        }
    }
    table
}

/// Base offsets of the `.log` files and offsets of the `.snapshot` files in `dir`, each sorted;
/// creates `dir` if missing.
async fn list_segments(dir: &Path) -> Result<(Vec<i64>, Vec<i64>), OpenError> {
    let owned_dir = dir.to_path_buf();
    let names = io::blocking(move || {
        std::fs::create_dir_all(&owned_dir)?;
        std::fs::read_dir(&owned_dir)?
            .map(|entry| entry.map(|entry| entry.path()))
            .collect::<std::io::Result<Vec<PathBuf>>>()
    })
    .await
    .map_err(OpenError::io(dir))?;
    let mut base_offsets = Vec::new();
    let mut snapshot_offsets = Vec::new();
    for path in names {
        let extension = path.extension().and_then(|ext| ext.to_str());
        if extension != Some("log") && extension != Some("snapshot") {
            continue;
        }
        let stem = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .unwrap_or_default();
        let offset = match stem.parse::<i64>() {
            Ok(offset) if stem.len() == 20 && offset >= 0 => offset,
            _ => return Err(OpenError::BadFileName { path }),
        };
        if extension == Some("log") {
            base_offsets.push(offset);
        } else {
            snapshot_offsets.push(offset);
        }
    }
    base_offsets.sort_unstable();
    snapshot_offsets.sort_unstable();
    Ok((base_offsets, snapshot_offsets))
}
