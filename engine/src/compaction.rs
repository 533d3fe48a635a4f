//! Log compaction (`cleanup.policy=compact` and `compact,delete`): the cleaner keeps the latest
//! record of every key in the sealed segments and rewrites those segments without the rest.
//!
//! # A pass
//! 1. Take the sealed segments (never the active one, as in Kafka) and mark the log `cleaning`:
//!    retention and close wait for the pass.
//! 2. Read the *dirty* ones (not cleaned since open) oldest first and note each key's latest
//!    offset ([`KeyMap`]); stop once the map holds [`KEY_MAP_BYTES_MAX`] (the rest stay dirty for
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
//! - Transactions (see [`crate::txn`]): only sealed segments wholly below the last stable
//!   offset are cleaned, so an open transaction's records are never judged. Control batches
//!   (markers) are always kept as they are and never enter the key map; records of aborted
//!   transactions (by the log's aborted-transaction index) never enter the key map, so they
//!   shadow no committed record, and are removed. The `.txnindex` files are left as they are:
//!   markers and offsets do not move, so every entry stays true.
//! - Idempotent producers' state is not touched: it lives in the producer snapshot taken at the
//!   last roll (at the active segment's base), above everything the cleaner rewrites.
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::path::Path;
use std::rc::Rc;

use tracing::{info, warn};

use crate::batch::{self, Strictness, LOG_OVERHEAD_BYTES};
use crate::cleaner::{self, DecodedBatch, KeyMap};
use crate::config::LogConfig;
use crate::error::{CompactionError, OpenError};
use crate::install::{discard_cleaned_files, install, remove_cleaned_files};
pub use crate::install::{finish_interrupted, StopPoint, CLEANED_SUFFIX, SWAP_SUFFIX};
use crate::io;
use crate::log::PartitionLog;
use crate::segment::{log_file_name, Segment, SegmentFiles};
use crate::txn::AbortedSet;
use crate::units::{Offset, Position};
use crate::yielder::Yielder;

/// Most memory the key map of one pass may hold (keys plus overhead).
pub const KEY_MAP_BYTES_MAX: usize = 128 << 20;
/// Bytes read at a time while a segment is cleaned.
const CLEAN_READ_BYTES: usize = 1 << 20;
/// Cleaned bytes buffered before a write.
const CLEAN_WRITE_BYTES: usize = 1 << 20;

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
        if !state.config.compacts() || state.segments.len() < 2 {
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

    /// Runs a pass if [`PartitionLog::cleaning_due`].
    pub async fn compact_if_due(
        self: &Rc<Self>,
        now_ms: i64,
    ) -> Result<Option<CompactionOutcome>, CompactionError> {
        if !self.cleaning_due() {
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
        let yielder = Yielder::default();
        let result = self.run_pass(now_ms, options, &yielder).await;
        self.state.borrow_mut().stats.compaction_yields += yielder.yields.get();
        if let Err(err @ CompactionError::SyncFailed { .. }) = &result {
            self.fail(err.to_string(), Vec::new());
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
        for target in &pass.targets[..cleaned_end] {
            if self.state.borrow().closed {
                return Ok(outcome);
            }
            let done = self
                .clean_one(
                    target,
                    &keys,
                    &pass.aborted,
                    now_ms,
                    &pass.config,
                    options.stop,
                    &mut outcome,
                    yielder,
                )
                .await?;
            if !done {
                return Ok(outcome);
            }
        }
        self.state.borrow_mut().first_dirty_offset = outcome.clean_end_offset;
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
        aborted: &AbortedSet,
        now_ms: i64,
        config: &LogConfig,
        stop: Option<StopPoint>,
        outcome: &mut CompactionOutcome,
        yielder: &Yielder,
    ) -> Result<bool, CompactionError> {
        outcome.bytes_before += target.size_bytes;
        let cleaned =
            clean_segment(self.dir(), target, keys, aborted, now_ms, config, yielder).await;
        if cleaned.is_err() {
            // A copy cut short (a full disk, most likely) must not keep its space.
            discard_cleaned_files(self.dir(), target.base_offset).await;
        }
        let cleaned = cleaned?;
        let Some((segment, removed)) = cleaned else {
            outcome.bytes_after += target.size_bytes;
            return Ok(true);
        };
        outcome.records_removed += removed;
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
        install(self.dir(), target.base_offset, stop).await?;
        if stop.is_some() {
            return Ok(false);
        }
        self.replace_segment(target, segment);
        outcome.segments_rewritten += 1;
        Ok(true)
    }

    /// Marks the log cleaning and returns what the pass works on, or `None` when it may not clean
    /// now.
    fn begin_cleaning(&self) -> Option<Pass> {
        let mut state = self.state.borrow_mut();
        if state.cleaning || state.closed || state.failure.is_some() || state.segments.len() < 2 {
            return None;
        }
        // Only segments wholly below the LSO: an open transaction may still abort.
        let stable = state.last_stable_offset();
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
    fn replace_segment(&self, target: &Target, mut segment: Segment) {
        let mut state = self.state.borrow_mut();
        let index = target.index_in(&state.segments);
        let old = &state.segments[index];
        assert_eq!(old.generation, target.generation, "one cleaner per log");
        segment.generation = old.generation + 1;
        // Markers and offsets stay: the aborted-transaction entries (and `.txnindex`) hold.
        segment.aborted = old.aborted.clone();
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

/// Reads a segment's batches one by one, CRC-checked.
struct BatchReader<'a> {
    files: &'a SegmentFiles,
    yielder: &'a Yielder,
    end: u64,
    position: u64,
    window: Vec<u8>,
    window_start: u64,
}

impl<'a> BatchReader<'a> {
    fn new(files: &'a SegmentFiles, end: u64, yielder: &'a Yielder) -> Self {
        Self {
            files,
            yielder,
            end,
            position: 0,
            window: Vec::new(),
            window_start: 0,
        }
    }

    /// The next whole batch, or `None` at the end.
    async fn next_batch(&mut self) -> Result<Option<&[u8]>, CompactionError> {
        if self.position >= self.end {
            return Ok(None);
        }
        self.yielder.tick().await;
        let position = self.position;
        let corrupt = |reason: String| CompactionError::Corrupt {
            path: self.files.log_path.clone(),
            position: Position::new(position),
            reason,
        };
        let total_of = |length: i32| LOG_OVERHEAD_BYTES + usize::try_from(length).unwrap_or(0);
        let in_window = |window: &[u8], at: usize| {
            batch::peek_offset_and_length(window.get(at..).unwrap_or_default())
                .map(|(_, length)| total_of(length))
                .is_some_and(|total| at + total <= window.len())
        };
        // Where the batch lies in the window, when the window holds all of it.
        let windowed = position
            .checked_sub(self.window_start)
            .and_then(|delta| usize::try_from(delta).ok())
            .filter(|at| in_window(&self.window, *at));
        let at = match windowed {
            Some(at) => at,
            None => {
                let header = self
                    .files
                    .log
                    .read_at_most(position, LOG_OVERHEAD_BYTES)
                    .await
                    .map_err(CompactionError::io(&self.files.log_path))?;
                let (_, length) = batch::peek_offset_and_length(&header)
                    .ok_or_else(|| corrupt("header past the end".into()))?;
                let left = usize::try_from(self.end - position).unwrap_or(usize::MAX);
                let len = CLEAN_READ_BYTES.max(total_of(length)).min(left);
                self.window = self
                    .files
                    .log
                    .read_at_most(position, len)
                    .await
                    .map_err(CompactionError::io(&self.files.log_path))?;
                self.window_start = position;
                0
            }
        };
        let header = batch::validate(&self.window[at..], usize::MAX, Strictness::Stored)
            .map_err(|err| corrupt(err.to_string()))?;
        let total = header.total_bytes();
        self.position += u64::try_from(total).expect("usize fits in u64");
        Ok(Some(&self.window[at..at + total]))
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

/// Writes the cleaned copy of a segment; `None` when it would lose nothing (nothing written).
/// Returns the copy (files still under their `.cleaned` names, synced) and the records removed.
async fn clean_segment(
    dir: &Path,
    target: &Target,
    keys: &KeyMap,
    aborted: &AbortedSet,
    now_ms: i64,
    config: &LogConfig,
    yielder: &Yielder,
) -> Result<Option<(Segment, u64)>, CompactionError> {
    let mut segment = None;
    let mut pending: Vec<u8> = Vec::new();
    let mut written = 0u64;
    let mut removed = 0u64;
    let mut reader = BatchReader::new(&target.files, target.size_bytes, yielder);
    let mut kept_before = 0u64;
    while let Some(bytes) = reader.next_batch().await? {
        let header = batch::parse_header(bytes).expect("validated by the reader");
        let rebuilt = match decode_for_cleaning(bytes, &target.files.log_path) {
            // An aborted transaction's batch: no read_committed consumer reads it.
            Some(_) if aborted.holds(&header) => {
                removed += u64::try_from(header.record_count).unwrap_or(0);
                None
            }
            Some(decoded) => {
                let keep = cleaner::survivors(
                    &decoded,
                    keys,
                    cleaner::tombstones_expired(&header, now_ms),
                );
                removed += keep.iter().filter(|kept| !**kept).count() as u64;
                let horizon = cleaner::new_delete_horizon(
                    &decoded,
                    &keep,
                    now_ms,
                    config.delete_retention_ms,
                );
                cleaner::rebuild(bytes, &decoded, &keep, horizon)?
            }
            None => Some(bytes.to_vec()),
        };
        let unchanged = rebuilt.as_deref() == Some(bytes);
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
        return Ok(None);
    };
    flush_if_full(&copy, &mut pending, written, true).await?;
    finish_copy(&mut copy).await?;
    Ok(Some((copy, removed)))
}

/// Notes a batch in the copy's bookkeeping and buffers its bytes; `written` bytes precede the
/// buffer in the file.
fn note_and_buffer(
    copy: &mut Segment,
    pending: &mut Vec<u8>,
    batch_bytes: &[u8],
    config: &LogConfig,
    written: u64,
) {
    let header = batch::parse_header(batch_bytes).expect("a whole batch");
    let position = Position::new(written + pending.len() as u64);
    copy.note_appended(&header, position, config);
    pending.extend_from_slice(batch_bytes);
    assert_eq!(
        copy.size_bytes,
        written + pending.len() as u64,
        "the copy is its batches"
    );
}

/// Writes the buffer out when it is full (or `force`); returns the bytes now in the file.
async fn flush_if_full(
    copy: &Segment,
    pending: &mut Vec<u8>,
    written: u64,
    force: bool,
) -> Result<u64, CompactionError> {
    if pending.is_empty() || (!force && pending.len() < CLEAN_WRITE_BYTES) {
        return Ok(written);
    }
    let bytes = std::mem::take(pending);
    let len = bytes.len() as u64;
    copy.files
        .log
        .write_all_at(bytes, written)
        .await
        .map_err(CompactionError::io(&copy.files.log_path))?;
    Ok(written + len)
}

/// Writes the copy's indexes and fsyncs its three files.
async fn finish_copy(copy: &mut Segment) -> Result<(), CompactionError> {
    let path = copy.files.log_path.clone();
    if let Some(delta) = copy.take_index_delta() {
        delta
            .write(&copy.files)
            .await
            .map_err(CompactionError::io(&path))?;
    }
    copy.allocated_bytes = copy.size_bytes;
    // Read back what the bookkeeping says was written before it can replace anything.
    let file_bytes = copy
        .files
        .log
        .metadata()
        .await
        .map_err(CompactionError::io(&path))?
        .len();
    if file_bytes != copy.size_bytes {
        return Err(CompactionError::Corrupt {
            path,
            position: Position::new(file_bytes),
            reason: format!(
                "cleaned copy holds {file_bytes} bytes, expected {}",
                copy.size_bytes
            ),
        });
    }
    let indexes = copy.files.indexes().map_err(CompactionError::io(&path))?;
    for file in [&copy.files.log, &indexes.offset, &indexes.time] {
        file.sync_all()
            .await
            .map_err(CompactionError::sync(&path))?;
    }
    // The copy replaces a sealed segment and takes no appends: its indexes live in memory.
    copy.files.close_indexes();
    copy.files.log_path = path
        .parent()
        .expect("in a directory")
        .join(log_file_name(copy.base_offset));
    Ok(())
}

fn open_to_compaction(err: OpenError) -> CompactionError {
    match err {
        OpenError::Io { path, source } => CompactionError::Io { path, source },
        other => CompactionError::Open(other),
    }
}
