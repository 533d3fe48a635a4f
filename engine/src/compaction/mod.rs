//! Log compaction (`cleanup.policy=compact` and `compact,delete`): the cleaner keeps the latest
//! record of every key in the sealed segments and rewrites those segments without the rest.
//!
//! # A pass
//! 1. Take the sealed segments (never the active one, as in Kafka) and mark the log `cleaning`:
//!    retention and close wait for the pass.
//! 2. Read the *dirty* ones (not cleaned yet: the progress outlives restarts,
//!    `log/cleaner_checkpoint.rs`) oldest first and note each key's latest offset ([`KeyMap`]); stop once the map holds [`KEY_MAP_BYTES_MAX`] (the rest stay dirty for
//!    the next pass). Segments cleaned earlier need no mapping: each of their keys occurs there
//!    once, and a newer record of it, if any, is in a dirty segment (as in Kafka's cleaner).
//! 3. For each segment up to the last mapped one, oldest first: read its batches, keep the
//!    records that are their key's latest and not an expired tombstone (see below), and write the
//!    survivors to `<base>.log.cleaned` with fresh `.index.cleaned`/`.timeindex.cleaned`. A
//!    segment that loses nothing is left alone. Then install the copy (crash-safe, below) and put
//!    a new [`Segment`] with the next `generation` in the log's place.
//!
//! A pass runs on the shard thread beside appends and fetches (the shard starts it as its own
//! task, never awaited by the interval flushes) and yields to them every 64 batches or 1 ms of
//! work (`yielder.rs`). An fsync that fails during a pass fails the log, as a failed
//! roll does ([`CompactionError::SyncFailed`]); other errors leave the log as it was.
//!
//! # Tombstones (KIP-534)
//! A tombstone (null value) that is its key's latest record survives the first pass that cleans
//! it, which stamps its batch with a delete horizon, `now + delete.retention.ms` (attributes bit
//! 6, the horizon in the base timestamp, record timestamp deltas rebased). A later pass at or
//! after the horizon removes it (older records of its key went in the same or an earlier pass,
//! since segments are cleaned oldest first). So consumers that read a compacted topic from the
//! start get `delete.retention.ms` from the first cleaning to see the tombstone, however old
//! the producer's timestamps are, as in Kafka.
//!
//! # Crash safety (the install)
//! a. The three `.cleaned` files are written and fsynced.
//! b. `<base>.log.cleaned` is renamed to `<base>.log.swap` and the directory fsynced: the commit.
//! c. The index files are renamed over the old ones, then `<base>.log.swap` over `<base>.log`, and
//!    the directory fsynced.
//!
//! At open, [`finish_interrupted`] completes every committed install (a `.log.swap` exists: rename
//! what is left, in the same order) and removes every other `.cleaned` file (a pass cut short
//! before its commit). A segment the pass emptied is deleted (its `.log` first), unless it is the
//! first segment, which stays as an empty file so the log start offset survives a restart.
//!
//! # Invariants
//! - Offsets never move: surviving records keep their offsets, batches their base offset and last
//!   offset delta; the log end offset, high watermark and log start offset are unchanged.
//! - The old files are never written: a reader holding their handles (a planned zero-copy fetch)
//!   keeps reading whole, consistent batches from the old inode. Positions planned in one
//!   generation of a segment are never combined with another generation's index.
//! - Transactions (see [`crate::txn`]), as Kafka's cleaner: only sealed segments wholly below
//!   the last stable offset are cleaned, so an open transaction's records are never judged.
//!   Records of aborted transactions never enter the key map, so they shadow no committed
//!   record, and are removed. A control batch (marker) never enters the key map; it is kept as
//!   it is while a record of its transaction is left before it, then stamped with a delete
//!   horizon and removed by a pass at or after it ([`crate::txn::cleaning`]). An ABORT marker's
//!   `.txnindex` entry goes (rewritten before the install) once no record of its transaction is
//!   left, so every entry left still has its marker: a read_committed consumer never takes an
//!   aborted record for committed, nor a later committed one for aborted. A marker the pass
//!   cannot read stops it, the log as it was, and marks the log uncleanable until a restart
//!   (`markers.rs`).
//! - Idempotent producers' state is not touched: it lives in the producer snapshot taken at the
//!   last roll (at the active segment's base), above everything the cleaner rewrites.
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::path::Path;
use std::rc::Rc;

use tracing::{error, info, warn};

use crate::batch;
use crate::cleaner::{self, DecodedBatch, KeyMap};
use crate::config::LogConfig;
use crate::error::{CompactionError, OpenError};
use crate::install::{discard_cleaned_files, install, remove_cleaned_files};
pub use crate::install::{finish_interrupted, StopPoint, CLEANED_SUFFIX, SWAP_SUFFIX};
use crate::io;
use crate::log::PartitionLog;
use crate::segment::{Segment, SegmentFiles};
use crate::txn::cleaning::TxnCleaning;
use crate::txn::{AbortedSet, AbortedTxn};
use crate::units::Offset;
use crate::yielder::Yielder;
use copy::{finish_copy, flush_if_full, note_and_buffer};
use markers::judge_marker;
use reader::BatchReader;

mod copy;
mod markers;
mod reader;

/// Most memory the key map of one pass may hold (keys plus overhead).
pub const KEY_MAP_BYTES_MAX: usize = 128 << 20;

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionOutcome {
    /// Sealed segments read into the key map (and so checked).
    pub segments_mapped: usize,
    /// Segments rewritten because they lost records.
    pub segments_rewritten: usize,
    /// Emptied segments deleted.
    pub segments_deleted: usize,
    pub records_removed: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Segments below this offset are clean.
    pub clean_end_offset: Offset,
}

/// Knobs of a pass, for tests.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct PassOptions {
    pub stop: Option<StopPoint>,
    pub key_map_bytes_max: usize,
}

impl Default for PassOptions {
    fn default() -> Self {
        Self {
            stop: None,
            key_map_bytes_max: KEY_MAP_BYTES_MAX,
        }
    }
}

/// What a pass works on, as the log was when it started.
struct Pass {
    /// Every sealed segment.
    targets: Vec<Target>,
    /// Index of the first target not cleaned since open: mapping starts there.
    dirty_from: usize,
    /// The first segment the pass may not clean (the active one, or one reaching past the last
    /// stable offset): a roll during the pass must not count as cleaned.
    active_base_offset: Offset,
    config: LogConfig,
    /// The aborted transactions of the whole log: their records are neither mapped nor kept.
    aborted: AbortedSet,
    /// The same entries, for the markers' fate during the cleaning ([`TxnCleaning`]).
    aborted_entries: Vec<AbortedTxn>,
}

/// A sealed segment as the pass saw it when it started.
struct Target {
    base_offset: Offset,
    generation: u64,
    files: SegmentFiles,
    size_bytes: u64,
    created_ms: i64,
}

impl Target {
    /// Where the segment is in the log now (retention and close wait while the log is
    /// cleaning, so it is still there).
    fn index_in(&self, segments: &VecDeque<Segment>) -> usize {
        segments
            .iter()
            .position(|existing| existing.base_offset == self.base_offset)
            .expect("retention and close wait while the log is cleaning")
    }
}

/// Clears the log's `cleaning` mark however the pass ends (error, early return, cancellation).
struct CleaningMark<'a>(&'a PartitionLog);

impl Drop for CleaningMark<'_> {
    fn drop(&mut self) {
        self.0.state.borrow_mut().cleaning = false;
    }
}

impl PartitionLog {
    /// Whether the log is compacted and its sealed segments not yet cleaned make up at least
    /// `min.cleanable.dirty.ratio` of the sealed bytes.
    pub fn cleaning_due(&self) -> bool {
        let state = self.state.borrow();
        if !state.config.compacts() || state.uncleanable || state.segments.len() < 2 {
            return false;
        }
        let sealed = state.segments.iter().take(state.segments.len() - 1);
        let (mut dirty_bytes, mut total_bytes) = (0u128, 0u128);
        for segment in sealed {
            total_bytes += u128::from(segment.size_bytes);
            if segment.base_offset >= state.first_dirty_offset {
                dirty_bytes += u128::from(segment.size_bytes);
            }
        }
        dirty_bytes > 0
            && dirty_bytes * 1_000_000
                >= total_bytes * u128::from(state.config.min_cleanable_dirty_ratio_ppm)
    }

    /// Whether the log is compacted and a delete horizon a pass left in it has come: tombstones
    /// or markers are due to go although nothing new is dirty (a quiet compacted topic).
    pub fn delete_horizon_passed(&self, now_ms: i64) -> bool {
        let state = self.state.borrow();
        state.config.compacts()
            && !state.uncleanable
            && state
                .next_delete_horizon_ms
                .is_some_and(|horizon| horizon <= now_ms)
    }

    /// Runs a pass if [`PartitionLog::cleaning_due`] or [`PartitionLog::delete_horizon_passed`].
    pub async fn compact_if_due(
        self: &Rc<Self>,
        now_ms: i64,
    ) -> Result<Option<CompactionOutcome>, CompactionError> {
        if !self.cleaning_due() && !self.delete_horizon_passed(now_ms) {
            return Ok(None);
        }
        self.compact(now_ms).await.map(Some)
    }

    /// One cleaning pass over the sealed segments (see the module doc), whatever the dirty ratio.
    pub async fn compact(
        self: &Rc<Self>,
        now_ms: i64,
    ) -> Result<CompactionOutcome, CompactionError> {
        self.compact_with(now_ms, PassOptions::default()).await
    }

    /// A failed fsync fails the log (as a failed roll does): it takes no more appends and no more
    /// passes until a restart recovers it from disk. Other errors leave the log as it was, and the
    /// next pass tries again.
    #[doc(hidden)]
    pub async fn compact_with(
        self: &Rc<Self>,
        now_ms: i64,
        options: PassOptions,
    ) -> Result<CompactionOutcome, CompactionError> {
        // Segments rolled under `flush=none` are sealed first: the cleaner takes only synced
        // segments (`log/seal.rs`). Those rolled before the pass, not any the writer rolls
        // while it waits.
        let active_base = self.state.borrow().active().base_offset;
        self.finish_seals_below(Some(active_base)).await;
        self.seal_in_background();
        let log = Rc::clone(self);
        let yielder = Yielder::stopping_when(move || log.state.borrow().closed);
        let result = self.run_pass(now_ms, options, &yielder).await;
        self.state.borrow_mut().stats.compaction_yields += yielder.yields.get();
        match &result {
            Err(CompactionError::Closing) => {
                info!(dir = %self.dir().display(), "compaction pass stopped: the log is closing");
                return Ok(CompactionOutcome::default());
            }
            Err(err @ CompactionError::SyncFailed { .. }) => self.fail(err.to_string(), Vec::new()),
            Err(err @ CompactionError::UnreadableMarker { .. }) => {
                error!(dir = %self.dir().display(), %err, "compaction stopped for this log");
                self.state.borrow_mut().uncleanable = true;
            }
            _ => {}
        }
        result
    }

    async fn run_pass(
        self: &Rc<Self>,
        now_ms: i64,
        options: PassOptions,
        yielder: &Yielder,
    ) -> Result<CompactionOutcome, CompactionError> {
        let Some(pass) = self.begin_cleaning() else {
            return Ok(CompactionOutcome::default());
        };
        let _mark = CleaningMark(self);
        let mut outcome = CompactionOutcome::default();
        let mut keys = KeyMap::default();
        let cleaned_end = map_dirty(&pass, &mut keys, options.key_map_bytes_max, yielder).await?;
        outcome.segments_mapped = cleaned_end - pass.dirty_from;
        outcome.clean_end_offset = pass
            .targets
            .get(cleaned_end)
            .map_or(pass.active_base_offset, |next| next.base_offset);
        // Fed every batch from the log start, in order (the targets start at the first segment).
        let mut txn = TxnCleaning::new(&pass.aborted_entries);
        let mut next_horizon_ms: Option<i64> = None;
        for target in &pass.targets[..cleaned_end] {
            if self.state.borrow().closed {
                return Ok(outcome);
            }
            let done = self
                .clean_one(
                    target,
                    &keys,
                    &mut txn,
                    now_ms,
                    &pass.config,
                    options.stop,
                    &mut outcome,
                    &mut next_horizon_ms,
                    yielder,
                )
                .await?;
            if !done {
                return Ok(outcome);
            }
        }
        {
            let mut state = self.state.borrow_mut();
            state.first_dirty_offset = outcome.clean_end_offset;
            state.next_delete_horizon_ms = next_horizon_ms;
        }
        // After every install: a crash before this write only makes the segments dirty again.
        self.keep_cleaner_progress().await;
        if outcome.records_removed > 0 {
            info!(dir = %self.dir().display(), ?outcome, "compacted");
        }
        Ok(outcome)
    }

    /// Cleans one segment and puts the copy in its place (or deletes it if emptied). Returns false
    /// when `stop` ended the pass.
    #[allow(clippy::too_many_arguments)] // the pass's state, threaded through its steps
    async fn clean_one(
        &self,
        target: &Target,
        keys: &KeyMap,
        txn: &mut TxnCleaning,
        now_ms: i64,
        config: &LogConfig,
        stop: Option<StopPoint>,
        outcome: &mut CompactionOutcome,
        next_horizon_ms: &mut Option<i64>,
        yielder: &Yielder,
    ) -> Result<bool, CompactionError> {
        outcome.bytes_before += target.size_bytes;
        let cleaned = clean_segment(self.dir(), target, keys, txn, now_ms, config, yielder).await;
        if cleaned.is_err() {
            // A copy cut short (a full disk, most likely) must not keep its space.
            discard_cleaned_files(self.dir(), target.base_offset).await;
        }
        let cleaned = cleaned?;
        if let Some(horizon) = cleaned.next_horizon_ms {
            note_earliest(next_horizon_ms, horizon);
        }
        let entries = self
            .store_entries_left(target, &cleaned.dropped_entries)
            .await?;
        let Some(segment) = cleaned.copy else {
            outcome.bytes_after += target.size_bytes;
            return Ok(true);
        };
        outcome.records_removed += cleaned.removed;
        outcome.bytes_after += segment.size_bytes;
        if segment.size_bytes == 0 && !self.is_front(target.base_offset) {
            remove_cleaned_files(self.dir(), target.base_offset).await?;
            self.delete_emptied(target).await?;
            outcome.segments_deleted += 1;
            return Ok(true);
        }
        if stop == Some(StopPoint::CleanedWritten) {
            return Ok(false);
        }
        if let Some(horizon) = cleaned.next_horizon_ms {
            self.keep_horizon_before_install(horizon)
                .await
                .map_err(CompactionError::io(self.dir()))?;
        }
        install(self.dir(), target.base_offset, stop).await?;
        if stop.is_some() {
            return Ok(false);
        }
        self.replace_segment(target, segment, entries);
        outcome.segments_rewritten += 1;
        Ok(true)
    }

    /// The segment's aborted-transaction entries without those of ABORT markers whose
    /// transaction has no record left (`dropped`, by marker offset); when that changes them, the
    /// `.txnindex` is rewritten (durably) and the log's entries replaced *before* the cleaned
    /// copy is installed. That order is safe at every crash point: the pass saw no record of a
    /// dropped entry in the files it read, so the old log needs the entry no more than the new
    /// one. The other order could leave an entry whose marker is gone, which would hide the
    /// producer's later committed records from read_committed consumers.
    async fn store_entries_left(
        &self,
        target: &Target,
        dropped: &[Offset],
    ) -> Result<Vec<AbortedTxn>, CompactionError> {
        let entries = {
            let state = self.state.borrow();
            state.segments[target.index_in(&state.segments)]
                .aborted
                .clone()
        };
        if dropped.is_empty() {
            return Ok(entries);
        }
        let left: Vec<AbortedTxn> = entries
            .iter()
            .filter(|entry| !dropped.contains(&entry.last_offset))
            .copied()
            .collect();
        if left.len() != entries.len() {
            // A failure leaves the old index (or, past its rename, the new one) beside the old
            // log: both are right for it, so the pass just ends with an error.
            crate::txn::index_file::store(&target.files.log_path, &left)
                .await
                .map_err(CompactionError::io(&target.files.log_path))?;
            let mut state = self.state.borrow_mut();
            let index = target.index_in(&state.segments);
            state.segments[index].aborted = left.clone();
        }
        Ok(left)
    }

    /// Marks the log cleaning and returns what the pass works on, or `None` when it may not clean
    /// now.
    fn begin_cleaning(&self) -> Option<Pass> {
        let mut state = self.state.borrow_mut();
        if state.cleaning
            || state.closed
            || state.uncleanable
            || state.failure.is_some()
            || state.segments.len() < 2
        {
            return None;
        }
        // Only segments wholly below the LSO (an open transaction may still abort) and below the
        // newest snapshot, so synced: recovery takes a gap above it for lost data (`log/seal.rs`).
        let stable = state.last_stable_offset().min(state.snapshot_offset);
        let sealed = state
            .segments
            .iter()
            .take(state.segments.len() - 1)
            .take_while(|segment| segment.next_offset <= stable)
            .count();
        if sealed == 0 {
            return None;
        }
        state.cleaning = true;
        let targets: Vec<Target> = state
            .segments
            .iter()
            .take(sealed)
            .map(|segment| Target {
                base_offset: segment.base_offset,
                generation: segment.generation,
                files: segment.files.clone(),
                size_bytes: segment.size_bytes,
                created_ms: segment.created_ms,
            })
            .collect();
        let dirty_from = targets
            .iter()
            .position(|target| target.base_offset >= state.first_dirty_offset)
            .unwrap_or(targets.len());
        Some(Pass {
            targets,
            dirty_from,
            active_base_offset: state.segments[sealed].base_offset,
            config: state.config.clone(),
            aborted: AbortedSet::new(state.segments.iter().flat_map(|segment| &segment.aborted)),
            aborted_entries: state
                .segments
                .iter()
                .flat_map(|segment| segment.aborted.iter().copied())
                .collect(),
        })
    }

    /// Whether `base_offset` is the first segment's (which keeps the log start offset).
    fn is_front(&self, base_offset: Offset) -> bool {
        let state = self.state.borrow();
        state
            .segments
            .front()
            .is_some_and(|front| front.base_offset == base_offset)
    }

    /// Puts the cleaned copy in the place of the segment the pass read.
    fn replace_segment(&self, target: &Target, mut segment: Segment, aborted: Vec<AbortedTxn>) {
        let mut state = self.state.borrow_mut();
        let index = target.index_in(&state.segments);
        let old = &state.segments[index];
        assert_eq!(old.generation, target.generation, "one cleaner per log");
        segment.generation = old.generation + 1;
        // Offsets stay, and so do the entries of the markers kept (`.txnindex` already holds
        // them: `store_entries_left`).
        segment.aborted = aborted;
        state.segments[index] = segment;
        // Cached positions are of the old file.
        state.boundaries.forget_segment(target.base_offset);
    }

    /// Drops a segment that lost every record: out of the log first, then its files.
    async fn delete_emptied(&self, target: &Target) -> Result<(), CompactionError> {
        {
            let mut state = self.state.borrow_mut();
            let index = target.index_in(&state.segments);
            assert!(index + 1 < state.segments.len(), "never the active segment");
            state.segments.remove(index);
            state.boundaries.forget_segment(target.base_offset);
        }
        Segment::delete_files(&target.files)
            .await
            .map_err(CompactionError::io(&target.files.log_path))?;
        io::disk::sync_dir(self.dir())
            .await
            .map_err(CompactionError::sync(self.dir()))
    }
}

/// Maps the keys of the dirty segments, oldest first, until the map is full (at least one segment).
/// Returns the end (exclusive index into the targets) of the segments the pass may clean: every
/// segment before it has its newer records of each key in the map, or was cleaned before.
async fn map_dirty(
    pass: &Pass,
    keys: &mut KeyMap,
    key_map_bytes_max: usize,
    yielder: &Yielder,
) -> Result<usize, CompactionError> {
    let mut end = pass.dirty_from;
    for target in &pass.targets[pass.dirty_from..] {
        if end > pass.dirty_from && keys.bytes() >= key_map_bytes_max {
            break;
        }
        map_segment(target, keys, &pass.aborted, yielder).await?;
        end += 1;
    }
    Ok(end)
}

/// Notes every key of a segment in `keys`.
async fn map_segment(
    target: &Target,
    keys: &mut KeyMap,
    aborted: &AbortedSet,
    yielder: &Yielder,
) -> Result<(), CompactionError> {
    let mut reader = BatchReader::new(&target.files, target.size_bytes, yielder);
    while let Some(bytes) = reader.next_batch().await? {
        let aborted_batch = batch::parse_header(bytes).is_ok_and(|header| aborted.holds(&header));
        if aborted_batch {
            continue;
        }
        if let Some(decoded) = decode_for_cleaning(bytes, &target.files.log_path) {
            keys.observe_batch(&decoded);
        }
    }
    Ok(())
}

/// The batch's records, or `None` for batches the cleaner leaves as they are: control batches
/// (transaction markers) and batches whose records can't be read (logged).
fn decode_for_cleaning(bytes: &[u8], path: &Path) -> Option<DecodedBatch> {
    let header = batch::parse_header(bytes).ok()?;
    if header.is_control() {
        return None;
    }
    match cleaner::decode_batch(bytes) {
        Ok(decoded) => Some(decoded),
        Err(err) => {
            warn!(path = %path.display(), base_offset = %header.base_offset, %err, "batch kept uncleaned");
            None
        }
    }
}

/// What cleaning one segment produced.
struct Cleaned {
    /// The copy (files still under their `.cleaned` names, synced); `None` when it would lose
    /// nothing (nothing written).
    copy: Option<Segment>,
    /// Records removed (data and markers).
    removed: u64,
    /// Offsets of the segment's ABORT markers whose transaction has no record left: their
    /// aborted entries go from the index.
    dropped_entries: Vec<Offset>,
    /// The earliest delete horizon after `now_ms` among the batches kept (stamped by this pass
    /// or an earlier one): when a pass is due again for their tombstones and markers.
    next_horizon_ms: Option<i64>,
}

/// Writes the cleaned copy of a segment.
async fn clean_segment(
    dir: &Path,
    target: &Target,
    keys: &KeyMap,
    txn: &mut TxnCleaning,
    now_ms: i64,
    config: &LogConfig,
    yielder: &Yielder,
) -> Result<Cleaned, CompactionError> {
    let mut segment = None;
    let mut pending: Vec<u8> = Vec::new();
    let mut written = 0u64;
    let mut removed = 0u64;
    let mut dropped_entries = Vec::new();
    let mut reader = BatchReader::new(&target.files, target.size_bytes, yielder);
    let mut kept_before = 0u64;
    let mut next_horizon_ms: Option<i64> = None;
    while let Some(bytes) = reader.next_batch().await? {
        let header = batch::parse_header(bytes).expect("validated by the reader");
        let rebuilt = if header.is_control() {
            let (rebuilt, entry_dropped) =
                judge_marker(bytes, &header, &target.files.log_path, txn, now_ms, config)?;
            if entry_dropped {
                dropped_entries.push(header.base_offset);
            }
            rebuilt
        } else {
            let aborted = txn.on_data_batch(&header);
            match decode_for_cleaning(bytes, &target.files.log_path) {
                // An aborted transaction's batch: no read_committed consumer reads it.
                Some(_) if aborted => None,
                Some(decoded) => {
                    let keep = cleaner::survivors(
                        &decoded,
                        keys,
                        cleaner::tombstones_expired(&header, now_ms),
                    );
                    let horizon = cleaner::new_delete_horizon(
                        &decoded,
                        &keep,
                        now_ms,
                        config.delete_retention_ms,
                    );
                    cleaner::rebuild(bytes, &decoded, &keep, horizon)?
                }
                None => Some(bytes.to_vec()),
            }
        };
        removed += removed_records(&header, rebuilt.as_deref());
        let unchanged = rebuilt.as_deref() == Some(bytes);
        let kept_horizon = match rebuilt.as_deref() {
            Some(_) if unchanged => header.delete_horizon_ms(),
            Some(kept) => batch::parse_header(kept)
                .ok()
                .and_then(|kept| kept.delete_horizon_ms()),
            None => None,
        };
        // Only horizons still to come: one passed was acted on by this pass (a batch a client
        // stamped with a past horizon must not make every check a pass).
        if let Some(horizon) = kept_horizon.filter(|&horizon| horizon > now_ms) {
            note_earliest(&mut next_horizon_ms, horizon);
        }
        if segment.is_none() {
            if unchanged {
                // Nothing lost so far: only start a copy once something is.
                kept_before += bytes.len() as u64;
                continue;
            }
            let mut copy = Segment::create_with_suffix(
                dir,
                target.base_offset,
                CLEANED_SUFFIX,
                target.created_ms,
            )
            .await
            .map_err(open_to_compaction)?;
            // Copy the unchanged prefix, batch by batch, to note each in the new indexes.
            let mut prefix = BatchReader::new(&target.files, kept_before, yielder);
            while let Some(kept) = prefix.next_batch().await? {
                note_and_buffer(&mut copy, &mut pending, kept, config, written);
                written = flush_if_full(&copy, &mut pending, written, false).await?;
            }
            segment = Some(copy);
        }
        let copy = segment.as_mut().expect("created above");
        if let Some(batch_bytes) = rebuilt {
            note_and_buffer(copy, &mut pending, &batch_bytes, config, written);
            written = flush_if_full(copy, &mut pending, written, false).await?;
        }
        if written + pending.len() as u64 > u64::from(u32::MAX) {
            return Err(CompactionError::TooLarge {
                base_offset: target.base_offset,
                bytes_max: u64::from(u32::MAX),
            });
        }
    }
    let Some(mut copy) = segment else {
        return Ok(Cleaned {
            copy: None,
            removed,
            dropped_entries,
            next_horizon_ms,
        });
    };
    flush_if_full(&copy, &mut pending, written, true).await?;
    finish_copy(&mut copy).await?;
    Ok(Cleaned {
        copy: Some(copy),
        removed,
        dropped_entries,
        next_horizon_ms,
    })
}

/// Keeps in `earliest` the earliest of the delete horizons noted so far.
fn note_earliest(earliest: &mut Option<i64>, horizon: i64) {
    *earliest = Some(earliest.map_or(horizon, |known| known.min(horizon)));
}

/// Records a batch lost: all of them when it is dropped, the difference when it was rebuilt.
fn removed_records(header: &batch::BatchHeader, rebuilt: Option<&[u8]>) -> u64 {
    let before = u64::try_from(header.record_count).unwrap_or(0);
    let after = rebuilt
        .and_then(|bytes| batch::parse_header(bytes).ok())
        .map_or(0, |kept| u64::try_from(kept.record_count).unwrap_or(0));
    before.saturating_sub(after)
}

fn open_to_compaction(err: OpenError) -> CompactionError {
    match err {
        OpenError::Io { path, source } => CompactionError::Io { path, source },
        other => CompactionError::Open(other),
    }
}
