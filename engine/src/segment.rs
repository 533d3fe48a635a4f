//! One segment of a partition log: a `.log` file of whole batches plus its two sparse indexes.
//!
//! # Byte map of `NNNNNNNNNNNNNNNNNNNN.log`
//! The name is the segment's base offset in 20 digits. The file is RecordBatch v2 batches back to
//! back (see [`crate::batch`] for a batch's bytes), exactly as they go on the wire. The active
//! segment is preallocated with `fallocate` in chunks ahead of its writes, so its file size is the
//! *allocated* size; the
//! *logical* end (`size_bytes`) is where the last whole batch ends, and zeros follow it. A sealed
//! segment is truncated to its logical end.
//!
//! # Invariants
//! - Batches are contiguous from position 0 to `size_bytes`; base offsets strictly increase and
//!   every base offset is at least the previous batch's next offset.
//! - `next_offset` is the offset after the last batch; `size_bytes <= allocated_bytes`.
//! - Index entries point at batch starts below `size_bytes` (see [`crate::index`]).
//! - Recovery keeps exactly the longest valid prefix: every batch CRC-checked from the last index
//!   entry on, everything after the first bad batch cut off.

use std::path::{Path, PathBuf};

use compio::fs::File;
use tracing::{debug, warn};

use crate::batch::{self, BatchHeader, Strictness, LOG_OVERHEAD_BYTES};
use crate::config::LogConfig;
use crate::error::{OpenError, ReadError};
use crate::index::{
    OffsetEntry, OffsetIndex, TimeEntry, TimeIndex, OFFSET_ENTRY_BYTES, TIME_ENTRY_BYTES,
};
use crate::io;
use crate::units::{Offset, Position};

/// How far ahead of its writes the active segment is allocated: large enough that `fallocate` is
/// rare (once per 64 MiB written), small enough that thousands of mostly idle partitions do not
/// each reserve a whole segment of disk.
pub const PREALLOCATE_CHUNK_BYTES: u64 = 64 << 20;

/// Bytes read at a time when recovery scans a segment.
const RECOVERY_READ_BYTES: usize = 1 << 20;
/// Bytes read at a time when a lookup walks batch headers from an index entry.
const WALK_READ_BYTES: usize = 16 << 10;
/// Header bytes a walk needs to know where a batch ends and which offsets it holds.
const WALK_HEADER_BYTES: usize = batch::LAST_OFFSET_DELTA_OFFSET + 4;

/// File name of a segment's log for `base_offset`.
pub fn log_file_name(base_offset: Offset) -> String {
    format!("{:020}.log", base_offset.get())
}

/// The three files of a segment. Handles are cheap to clone (a shared file descriptor), so async
/// work can hold them without borrowing the segment.
#[derive(Debug, Clone)]
pub struct SegmentFiles {
    pub log: File,
    pub log_path: PathBuf,
    pub offset_index: File,
    pub time_index: File,
}

/// What recovery found in one segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub batches_scanned: u64,
    /// Headers of scanned batches with a producer id, in log order, to rebuild producer state.
    pub producer_batches: Vec<BatchHeader>,
    /// Bytes cut off after the last valid batch, excluding preallocated zeros.
    pub truncated_bytes: u64,
    pub index_rebuilt: bool,
}

#[derive(Debug)]
pub struct Segment {
    pub base_offset: Offset,
    pub files: SegmentFiles,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    offset_entries_persisted: usize,
    time_entries_persisted: usize,
    /// Logical end: bytes of whole, written batches.
    pub size_bytes: u64,
    pub allocated_bytes: u64,
    pub next_offset: Offset,
    /// Largest batch max_timestamp in the segment; -1 when empty or untimed.
    pub max_timestamp: i64,
    bytes_since_index_entry: u64,
    pub created_ms: i64,
    /// Bumped each time the cleaner replaces the segment's files: a reader that planned positions
    /// in one generation must not use another generation's index for the file it holds.
    pub generation: u64,
}

async fn open_files(dir: &Path, base_offset: Offset) -> Result<SegmentFiles, OpenError> {
    let log_path = dir.join(log_file_name(base_offset));
    let index_path = log_path.with_extension("index");
    let time_path = log_path.with_extension("timeindex");
    let log = io::open_read_write(&log_path)
        .await
        .map_err(OpenError::io(&log_path))?;
    let offset_index = io::open_read_write(&index_path)
        .await
        .map_err(OpenError::io(&index_path))?;
    let time_index = io::open_read_write(&time_path)
        .await
        .map_err(OpenError::io(&time_path))?;
    Ok(SegmentFiles {
        log,
        log_path,
        offset_index,
        time_index,
    })
}

impl Segment {
    fn empty(base_offset: Offset, files: SegmentFiles, now_ms: i64) -> Self {
        Self {
            base_offset,
            files,
            offset_index: OffsetIndex::new(base_offset),
            time_index: TimeIndex::new(base_offset),
            offset_entries_persisted: 0,
            time_entries_persisted: 0,
            size_bytes: 0,
            allocated_bytes: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            bytes_since_index_entry: 0,
            created_ms: now_ms,
            generation: 0,
        }
    }

    /// Creates the three files of a cleaned copy of segment `base_offset`, each named with
    /// `suffix` after its usual name (`….log.cleaned`), empty and not preallocated. The handles
    /// stay valid when the cleaner renames the files into place.
    pub async fn create_with_suffix(
        dir: &Path,
        base_offset: Offset,
        suffix: &str,
        created_ms: i64,
    ) -> Result<Self, OpenError> {
        let log_path = dir.join(format!("{}.{suffix}", log_file_name(base_offset)));
        let with_suffix = |extension: &str| {
            dir.join(format!(
                "{}.{suffix}",
                Path::new(&log_file_name(base_offset))
                    .with_extension(extension)
                    .display()
            ))
        };
        let mut files = Vec::with_capacity(3);
        for path in [
            log_path.clone(),
            with_suffix("index"),
            with_suffix("timeindex"),
        ] {
            let file = io::open_read_write(&path)
                .await
                .map_err(OpenError::io(&path))?;
            file.set_len(0).await.map_err(OpenError::io(&path))?;
            files.push(file);
        }
        let time_index = files.pop().expect("three files");
        let offset_index = files.pop().expect("three files");
        let log = files.pop().expect("three files");
        let files = SegmentFiles {
            log,
            log_path,
            offset_index,
            time_index,
        };
        Ok(Self::empty(base_offset, files, created_ms))
    }

    /// Creates a new, empty active segment, preallocated when the config asks.
    pub async fn create(
        dir: &Path,
        base_offset: Offset,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<Self, OpenError> {
        let files = open_files(dir, base_offset).await?;
        let mut segment = Self::empty(base_offset, files, now_ms);
        for file in [
            &segment.files.log,
            &segment.files.offset_index,
            &segment.files.time_index,
        ] {
            file.set_len(0)
                .await
                .map_err(OpenError::io(&segment.files.log_path))?;
        }
        segment.preallocate(config).await?;
        Ok(segment)
    }

    /// Allocates the first chunk ahead of the writes (when the config asks for preallocation).
    async fn preallocate(&mut self, config: &LogConfig) -> Result<(), OpenError> {
        self.allocated_bytes = self.size_bytes;
        if let Some((offset, len)) = self.allocation_needed(self.size_bytes + 1, config) {
            io::fallocate(&self.files.log, offset, len)
                .await
                .map_err(OpenError::io(&self.files.log_path))?;
            self.allocated_bytes = offset + len;
        }
        Ok(())
    }

    /// The range to `fallocate` before bytes up to `end` are written, if any: the allocation grows
    /// in [`PREALLOCATE_CHUNK_BYTES`] steps, never past `segment.bytes` unless one batch is larger.
    pub fn allocation_needed(&self, end: u64, config: &LogConfig) -> Option<(u64, u64)> {
        if !config.preallocate || end <= self.allocated_bytes {
            return None;
        }
        let target = end
            .div_ceil(PREALLOCATE_CHUNK_BYTES)
            .saturating_mul(PREALLOCATE_CHUNK_BYTES)
            .min(config.segment_bytes.max(end));
        Some((self.allocated_bytes, target - self.allocated_bytes))
    }

    /// True when an append of `incoming_bytes` should go to a new segment.
    /// `unnoted_bytes` are bytes already headed for this segment but not yet noted.
    pub fn should_roll(
        &self,
        unnoted_bytes: u64,
        incoming_bytes: u64,
        incoming_last_offset: Offset,
        config: &LogConfig,
        now_ms: i64,
    ) -> bool {
        let size_bytes = self.size_bytes + unnoted_bytes;
        if size_bytes == 0 {
            return false;
        }
        let full = size_bytes + incoming_bytes > config.segment_bytes;
        let old = now_ms.saturating_sub(self.created_ms) >= config.segment_ms as i64;
        // Relative offsets are u32 in the index files.
        let offsets_exhausted =
            incoming_last_offset.since(self.base_offset) > i64::from(u32::MAX - 1);
        full || old || offsets_exhausted
    }

    /// Records a batch that now lies whole at `position` (after its write completed).
    ///
    /// # Panics
    /// When the batch does not start at the segment's end or its offsets do not follow the last
    /// batch's: the writer and recovery both guarantee it, and a violation would corrupt lookups,
    /// so release builds check it too (two comparisons per batch).
    pub fn note_appended(&mut self, header: &BatchHeader, position: Position, config: &LogConfig) {
        let base_offset = Offset::new(header.base_offset);
        assert_eq!(position, self.end(), "batches are contiguous");
        assert!(
            base_offset >= self.next_offset,
            "offsets increase: batch at {base_offset} after next offset {}",
            self.next_offset
        );
        // Recovery replays from the last index entry: that batch is indexed already (with
        // `index.interval.bytes=0` it would otherwise be pushed twice).
        let indexed = self
            .offset_index
            .last()
            .is_some_and(|last| last.offset >= base_offset);
        if self.bytes_since_index_entry >= u64::from(config.index_interval_bytes)
            && position > Position::START
            && !indexed
        {
            self.offset_index.push(OffsetEntry {
                offset: base_offset,
                position,
            });
            // Every batch before this one is at most `max_timestamp` old: a time lookup for
            // anything newer may start here.
            self.time_index.push_if_newer(TimeEntry {
                timestamp: self.max_timestamp,
                offset: base_offset,
            });
            self.bytes_since_index_entry = 0;
        }
        let total = header.total_bytes() as u64;
        self.bytes_since_index_entry += total;
        self.size_bytes = position.advanced_by(total).get();
        self.next_offset = Offset::new(header.next_offset());
        self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
    }

    /// Index entries noted but not yet written to the index files.
    pub fn unpersisted_index_entries(&self) -> usize {
        (self.offset_index.len() - self.offset_entries_persisted)
            + (self.time_index.len() - self.time_entries_persisted)
    }

    /// Index bytes written since the last call, to append to the index files.
    pub fn take_index_delta(&mut self) -> Option<IndexDelta> {
        let offset_from = self.offset_entries_persisted;
        let time_from = self.time_entries_persisted;
        if offset_from == self.offset_index.len() && time_from == self.time_index.len() {
            return None;
        }
        self.offset_entries_persisted = self.offset_index.len();
        self.time_entries_persisted = self.time_index.len();
        Some(IndexDelta {
            offset_bytes: self.offset_index.encode_from(offset_from),
            offset_position: (offset_from * OFFSET_ENTRY_BYTES) as u64,
            time_bytes: self.time_index.encode_from(time_from),
            time_position: (time_from * TIME_ENTRY_BYTES) as u64,
        })
    }

    /// Where the batch holding `offset` starts: a position to begin walking from.
    pub fn walk_start_for_offset(&self, offset: Offset) -> (Position, Offset) {
        match self.offset_index.floor_by_offset(offset) {
            Some(entry) => (entry.position, entry.offset),
            None => (Position::START, self.base_offset),
        }
    }

    /// The logical end: where the next batch goes.
    pub fn end(&self) -> Position {
        Position::new(self.size_bytes)
    }

    /// A batch start at or before `position`, to walk forward from.
    pub fn walk_start_for_position(&self, position: Position) -> Position {
        self.offset_index
            .floor_by_position(position)
            .map_or(Position::START, |entry| entry.position)
    }

    /// Where a search for the first batch with timestamp >= `timestamp` may start.
    pub fn walk_start_for_timestamp(&self, timestamp: i64) -> Position {
        match self.time_index.last_before(timestamp) {
            Some(entry) => self.walk_start_for_offset(entry.offset).0,
            None => Position::START,
        }
    }

    /// Truncates the log to its logical end and writes out its indexes: it takes no more appends.
    pub async fn seal(
        files: SegmentFiles,
        size_bytes: u64,
        delta: Option<IndexDelta>,
    ) -> std::io::Result<()> {
        files.log.set_len(size_bytes).await?;
        if let Some(delta) = delta {
            delta.write(&files).await?;
        }
        files.log.sync_all().await?;
        files.offset_index.sync_all().await?;
        files.time_index.sync_all().await
    }

    /// Removes the segment's files. Open handles (a fetch in flight) stay readable.
    pub async fn delete_files(files: &SegmentFiles) -> std::io::Result<()> {
        compio::fs::remove_file(&files.log_path).await?;
        compio::fs::remove_file(files.log_path.with_extension("index")).await?;
        compio::fs::remove_file(files.log_path.with_extension("timeindex")).await
    }
}

/// New index entries to append to the index files.
#[derive(Debug)]
pub struct IndexDelta {
    offset_bytes: Vec<u8>,
    offset_position: u64,
    time_bytes: Vec<u8>,
    time_position: u64,
}

impl IndexDelta {
    pub async fn write(self, files: &SegmentFiles) -> std::io::Result<()> {
        if !self.offset_bytes.is_empty() {
            io::write_all_at(&files.offset_index, self.offset_bytes, self.offset_position).await?;
        }
        if !self.time_bytes.is_empty() {
            io::write_all_at(&files.time_index, self.time_bytes, self.time_position).await?;
        }
        Ok(())
    }
}

/// Walks batch headers from `position` (a batch start) and returns the start of the batch that
/// holds `target_offset`, or `end` when no batch before `end` does.
pub async fn walk_to_offset(
    file: &File,
    path: &Path,
    mut position: Position,
    end: Position,
    target_offset: Offset,
) -> Result<Position, ReadError> {
    let mut walker = HeaderWalker::new(file, path, end);
    while position < end {
        let (next_offset, total) = walker.header_at(position).await?;
        if next_offset > target_offset {
            return Ok(position);
        }
        position = position.advanced_by(total);
    }
    Ok(end)
}

/// Walks batch headers from `position` (a batch start) and returns the last batch boundary at or
/// before `limit` (which may be `position` itself).
pub async fn walk_to_boundary(
    file: &File,
    path: &Path,
    mut position: Position,
    end: Position,
    limit: Position,
) -> Result<Position, ReadError> {
    let mut walker = HeaderWalker::new(file, path, end);
    while position < end.min(limit) {
        let (_, total) = walker.header_at(position).await?;
        if position.advanced_by(total) > limit {
            break;
        }
        position = position.advanced_by(total);
    }
    Ok(position)
}

/// Reads windows of a segment and decodes the few header bytes a lookup needs.
struct HeaderWalker<'a> {
    file: &'a File,
    path: &'a Path,
    end: Position,
    window: Vec<u8>,
    window_start: Position,
}

impl<'a> HeaderWalker<'a> {
    fn new(file: &'a File, path: &'a Path, end: Position) -> Self {
        Self {
            file,
            path,
            end,
            window: Vec::new(),
            window_start: Position::START,
        }
    }

    /// Returns (next offset, total bytes) of the batch starting at `position`.
    async fn header_at(&mut self, position: Position) -> Result<(Offset, u64), ReadError> {
        let window_end = self.window_start.advanced_by(self.window.len() as u64);
        if position < self.window_start
            || position.advanced_by(WALK_HEADER_BYTES as u64) > window_end
        {
            let len = usize::try_from(self.end.bytes_since(position))
                .unwrap_or(usize::MAX)
                .clamp(WALK_HEADER_BYTES, WALK_READ_BYTES);
            self.window = io::read_at_most(self.file, position.get(), len).await?;
            self.window_start = position;
        }
        let at = usize::try_from(position.bytes_since(self.window_start))
            .expect("inside the window, which is in memory");
        let corrupt = |reason: &str| ReadError::Corrupt {
            path: self.path.to_path_buf(),
            position: position.get(),
            reason: reason.to_string(),
        };
        let bytes = self
            .window
            .get(at..at + WALK_HEADER_BYTES)
            .ok_or_else(|| corrupt("header past end of file"))?;
        let (base_offset, batch_length) =
            batch::peek_offset_and_length(bytes).ok_or_else(|| corrupt("short header"))?;
        if batch_length < (batch::HEADER_BYTES - LOG_OVERHEAD_BYTES) as i32 {
            return Err(corrupt("batch length below header size"));
        }
        let mut raw_delta = [0u8; 4];
        raw_delta.copy_from_slice(&bytes[batch::LAST_OFFSET_DELTA_OFFSET..WALK_HEADER_BYTES]);
        let last_offset_delta = i32::from_be_bytes(raw_delta);
        let total = LOG_OVERHEAD_BYTES as u64 + u64::try_from(batch_length).expect("checked above");
        let next_offset = Offset::new(base_offset).plus(i64::from(last_offset_delta) + 1);
        Ok((next_offset, total))
    }
}

/// End position of the batch that starts at `position`.
pub async fn batch_end(
    file: &File,
    path: &Path,
    position: Position,
    end: Position,
) -> Result<Position, ReadError> {
    let (_, total) = HeaderWalker::new(file, path, end)
        .header_at(position)
        .await?;
    Ok(position.advanced_by(total))
}

/// Reads `len` bytes of a batch range into memory (for callers that need the bytes).
pub async fn read_range(file: &File, position: Position, len: usize) -> std::io::Result<Vec<u8>> {
    io::read_at_most(file, position.get(), len).await
}

/// How much of a segment recovery CRC-checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryScan {
    /// From the last index entry on: after a clean shutdown, or for sealed (synced) segments.
    FromLastIndexEntry,
    /// Every batch: the active segment after a crash, where anything not yet synced may be torn.
    Full,
}

/// Opens an existing segment and recovers it: indexes checked (rebuilt if they disagree with the
/// log), batches CRC-checked as `scan` says, the file cut after the last valid batch, and — for
/// the active segment — preallocated again.
pub async fn recover(
    dir: &Path,
    base_offset: Offset,
    config: &LogConfig,
    is_active: bool,
    scan: RecoveryScan,
    now_ms: i64,
) -> Result<(Segment, RecoveryReport), OpenError> {
    let files = open_files(dir, base_offset).await?;
    let path = files.log_path.clone();
    let file_bytes = files
        .log
        .metadata()
        .await
        .map_err(OpenError::io(&path))?
        .len();
    let mut report = RecoveryReport::default();
    let mut segment = Segment::empty(base_offset, files, now_ms);
    load_indexes(&mut segment, file_bytes, &mut report).await?;
    if scan == RecoveryScan::Full {
        segment.offset_index = OffsetIndex::new(base_offset);
        segment.time_index = TimeIndex::new(base_offset);
        segment.offset_entries_persisted = 0;
        segment.time_entries_persisted = 0;
    }

    // Replay the tail from the last index entry through the same bookkeeping appends use.
    let (start_position, start_offset) = match segment.offset_index.last() {
        Some(entry) => (entry.position, entry.offset),
        None => (Position::START, base_offset),
    };
    segment.size_bytes = start_position.get();
    segment.next_offset = start_offset;
    segment.max_timestamp = segment
        .time_index
        .last()
        .map_or(-1, |entry| entry.timestamp);
    let valid_end = scan_tail(&mut segment, file_bytes, config, &mut report).await?;
    if valid_end < file_bytes {
        let tail = io::read_at_most(&segment.files.log, valid_end, LOG_OVERHEAD_BYTES)
            .await
            .map_err(OpenError::io(&path))?;
        if tail.iter().any(|byte| *byte != 0) {
            report.truncated_bytes = file_bytes - valid_end;
            warn!(path = %path.display(), valid_end, file_bytes, "truncated a torn or corrupt log tail");
        } else {
            debug!(path = %path.display(), valid_end, "dropped preallocated space");
        }
        segment
            .files
            .log
            .set_len(valid_end)
            .await
            .map_err(OpenError::io(&path))?;
    }
    if is_active {
        segment.preallocate(config).await?;
    } else {
        segment.allocated_bytes = segment.size_bytes;
    }
    rewrite_indexes(&mut segment, &report)
        .await
        .map_err(OpenError::io(&path))?;
    Ok((segment, report))
}

/// Loads both index files, keeping only what agrees with the log; clears them when the last
/// offset entry does not point at a batch with that base offset.
async fn load_indexes(
    segment: &mut Segment,
    file_bytes: u64,
    report: &mut RecoveryReport,
) -> Result<(), OpenError> {
    let index_len = segment
        .files
        .offset_index
        .metadata()
        .await
        .map_err(OpenError::io(&segment.files.log_path))?
        .len();
    let time_len = segment
        .files
        .time_index
        .metadata()
        .await
        .map_err(OpenError::io(&segment.files.log_path))?
        .len();
    let offset_bytes = io::read_at_most(&segment.files.offset_index, 0, whole_file(index_len))
        .await
        .map_err(OpenError::io(&segment.files.log_path))?;
    let time_bytes = io::read_at_most(&segment.files.time_index, 0, whole_file(time_len))
        .await
        .map_err(OpenError::io(&segment.files.log_path))?;
    let (mut offset_index, offset_valid) = OffsetIndex::decode(
        segment.base_offset,
        &offset_bytes,
        Position::new(file_bytes),
    );
    let mut consistent = offset_valid;
    if let Some(last) = offset_index.last() {
        let header = io::read_at_most(&segment.files.log, last.position.get(), LOG_OVERHEAD_BYTES)
            .await
            .map_err(OpenError::io(&segment.files.log_path))?;
        if batch::peek_offset_and_length(&header).map(|(offset, _)| offset)
            != Some(last.offset.get())
        {
            offset_index = OffsetIndex::new(segment.base_offset);
            consistent = false;
        }
    }
    let covered_offset = offset_index
        .last()
        .map_or(segment.base_offset, |entry| entry.offset.plus(1));
    let (mut time_index, time_valid) =
        TimeIndex::decode(segment.base_offset, &time_bytes, covered_offset);
    if !consistent {
        time_index = TimeIndex::new(segment.base_offset);
    }
    // Both indexes are written together; a time index past the offset index is stale.
    let fresh_files = offset_bytes.is_empty() && time_bytes.is_empty();
    report.index_rebuilt = !((consistent && time_valid) || fresh_files);
    segment.offset_entries_persisted = offset_index.len();
    segment.time_entries_persisted = time_index.len();
    segment.offset_index = offset_index;
    segment.time_index = time_index;
    Ok(())
}

/// CRC-checks batches from `segment.size_bytes` on and notes each valid one; returns the end of
/// the last valid batch.
async fn scan_tail(
    segment: &mut Segment,
    file_bytes: u64,
    config: &LogConfig,
    report: &mut RecoveryReport,
) -> Result<u64, OpenError> {
    // A single batch may be larger than segment.bytes (it then fills a segment alone).
    let batch_bytes_max = i32::MAX as usize;
    let mut window: Vec<u8> = Vec::new();
    let mut window_start = segment.size_bytes;
    loop {
        let position = segment.size_bytes;
        if position + batch::HEADER_BYTES as u64 > file_bytes {
            return Ok(position);
        }
        let at = (position - window_start) as usize;
        let have_header = window.len() >= at + LOG_OVERHEAD_BYTES;
        let needed = if have_header {
            batch::peek_offset_and_length(&window[at..])
                .map_or(0, |(_, length)| LOG_OVERHEAD_BYTES + length.max(0) as usize)
        } else {
            batch::HEADER_BYTES
        };
        if !have_header || window.len() < at + needed {
            let len = RECOVERY_READ_BYTES
                .max(needed)
                .min((file_bytes - position) as usize);
            window = io::read_at_most(&segment.files.log, position, len)
                .await
                .map_err(OpenError::io(&segment.files.log_path))?;
            window_start = position;
            if window.len() < needed {
                return Ok(position);
            }
            continue;
        }
        let Ok(header) = batch::validate(&window[at..], batch_bytes_max, Strictness::Stored) else {
            return Ok(position);
        };
        // Offsets only increase, and the index stores them relative to the segment as u32.
        let relative_last = Offset::new(header.last_offset()).since(segment.base_offset);
        let base_offset = Offset::new(header.base_offset);
        if base_offset < segment.next_offset || relative_last > i64::from(u32::MAX) {
            return Ok(position);
        }
        segment.note_appended(&header, Position::new(position), config);
        report.batches_scanned += 1;
        if header.has_producer_id() {
            report.producer_batches.push(header);
        }
    }
}

/// The length of a whole file to read into memory.
fn whole_file(file_bytes: u64) -> usize {
    usize::try_from(file_bytes).expect("an index file fits in memory")
}

/// Writes the index entries recovery produced; cuts the files to what is valid first.
async fn rewrite_indexes(segment: &mut Segment, report: &RecoveryReport) -> std::io::Result<()> {
    if report.index_rebuilt {
        segment.offset_entries_persisted = 0;
        segment.time_entries_persisted = 0;
    }
    let offset_len = (segment.offset_entries_persisted * OFFSET_ENTRY_BYTES) as u64;
    let time_len = (segment.time_entries_persisted * TIME_ENTRY_BYTES) as u64;
    segment.files.offset_index.set_len(offset_len).await?;
    segment.files.time_index.set_len(time_len).await?;
    if let Some(delta) = segment.take_index_delta() {
        delta.write(&segment.files).await?;
    }
    Ok(())
}
