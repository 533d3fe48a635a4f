//! One segment of a partition log: a `.log` file of whole batches plus its two sparse indexes.
//!
//! # Byte map of `NNNNNNNNNNNNNNNNNNNN.log`
//! The name is the segment's base offset in 20 digits. The file is RecordBatch v2 batches back to
//! back (see [`crate::batch`] for a batch's bytes), exactly as they go on the wire. With
//! `preallocate` the active segment is allocated whole (`segment.bytes`) with `fallocate` before
//! it takes writes, so its file size is the *allocated* size; the *logical* end (`size_bytes`) is
//! where the last whole batch ends, and zeros follow it. A sealed segment is truncated to its
//! logical end.
//!
//! # Invariants
//! - Batches are contiguous from position 0 to `size_bytes`; base offsets strictly increase and
//!   every base offset is at least the previous batch's next offset.
//! - `next_offset` is the offset after the last batch; `size_bytes <= allocated_bytes`.
//! - Index entries point at batch starts below `size_bytes` (see [`crate::index`]).
//! - Recovery keeps exactly the longest valid prefix: every batch CRC-checked from the last index
//!   entry on, everything after the first bad batch cut off.
#![forbid(unsafe_code)]

pub mod preallocation;
pub mod recovery;
pub mod walk;

use std::path::{Path, PathBuf};

use tracing::warn;

use crate::io::disk::DiskFile;

use crate::batch::BatchHeader;
use crate::config::LogConfig;
use crate::error::OpenError;
use crate::index::{
    OffsetEntry, OffsetIndex, TimeEntry, TimeIndex, OFFSET_ENTRY_BYTES, TIME_ENTRY_BYTES,
};
use crate::io;
use crate::units::{Offset, Position};

/// File name of a segment's log for `base_offset`.
pub fn log_file_name(base_offset: Offset) -> String {
    format!("{:020}.log", base_offset.get())
}

/// The three files of a segment. Handles are cheap to clone (a shared file descriptor), so async
/// work can hold them without borrowing the segment.
#[derive(Debug, Clone)]
pub struct SegmentFiles {
    pub log: DiskFile,
    pub log_path: PathBuf,
    /// Open while the segment can still gain index entries (the active segment, a cleaned copy
    /// being written, a segment under recovery); closed once it is sealed, when its indexes live
    /// in memory only. A sealed segment so holds one descriptor, its log, as Kafka's do (Kafka
    /// maps its index files and closes them): with three per segment a broker keeping 1 MiB
    /// segments at 180 MB/s for a minute ran out of descriptors (results/soak).
    pub indexes: Option<IndexFiles>,
}

/// The handles of a segment's two index files.
#[derive(Debug, Clone)]
pub struct IndexFiles {
    pub offset: DiskFile,
    pub time: DiskFile,
}

impl SegmentFiles {
    /// The index files' handles, or an error for a sealed segment, whose indexes are closed.
    pub fn indexes(&self) -> std::io::Result<&IndexFiles> {
        self.indexes.as_ref().ok_or_else(|| {
            std::io::Error::other(format!(
                "the index files of sealed segment {} are closed",
                self.log_path.display()
            ))
        })
    }

    /// Drops the index files' handles: the segment is sealed and its indexes are written and
    /// synced. Clones held by readers keep theirs until they are done.
    pub fn close_indexes(&mut self) {
        self.indexes = None;
    }
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
    /// Whether it was allocated ahead ([`preallocation`]).
    pub preallocation: preallocation::Preallocation,
    /// Bytes from the start whose writeback has been started ([`LogConfig::writeback_bytes`]).
    pub writeback_started_bytes: u64,
    /// Bytes from the start written back and dropped from the page cache
    /// ([`LogConfig::drop_behind_bytes`]).
    pub dropped_behind_bytes: u64,
    pub next_offset: Offset,
    /// Largest batch max_timestamp in the segment; -1 when empty or untimed.
    pub max_timestamp: i64,
    bytes_since_index_entry: u64,
    pub created_ms: i64,
    /// Bumped each time the cleaner replaces the segment's files: a reader that planned positions
    /// in one generation must not use another generation's index for the file it holds.
    pub generation: u64,
    /// Aborted transactions whose ABORT marker lies in this segment, in marker order (mirrored
    /// to its `.txnindex` at seal and close: [`crate::txn::index_file`]).
    pub aborted: Vec<crate::txn::AbortedTxn>,
}

async fn open_files(dir: &Path, base_offset: Offset) -> Result<SegmentFiles, OpenError> {
    let log_path = dir.join(log_file_name(base_offset));
    let index_path = log_path.with_extension("index");
    let time_path = log_path.with_extension("timeindex");
    let log = io::disk::open_read_write(&log_path)
        .await
        .map_err(OpenError::io(&log_path))?;
    let offset_index = io::disk::open_read_write(&index_path)
        .await
        .map_err(OpenError::io(&index_path))?;
    let time_index = io::disk::open_read_write(&time_path)
        .await
        .map_err(OpenError::io(&time_path))?;
    Ok(SegmentFiles {
        log,
        log_path,
        indexes: Some(IndexFiles {
            offset: offset_index,
            time: time_index,
        }),
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
            preallocation: preallocation::Preallocation::Off,
            writeback_started_bytes: 0,
            dropped_behind_bytes: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            bytes_since_index_entry: 0,
            created_ms: now_ms,
            generation: 0,
            aborted: Vec::new(),
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
            let file = io::disk::open_read_write(&path)
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
            indexes: Some(IndexFiles {
                offset: offset_index,
                time: time_index,
            }),
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
        let mut segment = Self::open_emptied(dir, base_offset, now_ms, true).await?;
        segment.preallocate(config).await?;
        Ok(segment)
    }

    /// Opens (creating them if needed) the segment's files with its indexes emptied, and its
    /// log too when `empty_log`.
    async fn open_emptied(
        dir: &Path,
        base_offset: Offset,
        now_ms: i64,
        empty_log: bool,
    ) -> Result<Self, OpenError> {
        let files = open_files(dir, base_offset).await?;
        let segment = Self::empty(base_offset, files, now_ms);
        let indexes = segment
            .files
            .indexes()
            .map_err(OpenError::io(&segment.files.log_path))?;
        let log = empty_log.then_some(&segment.files.log);
        for file in [Some(&indexes.offset), Some(&indexes.time), log]
            .into_iter()
            .flatten()
        {
            file.set_len(0)
                .await
                .map_err(OpenError::io(&segment.files.log_path))?;
        }
        Ok(segment)
    }

    /// Makes the spare file at `spare_path` (created empty and `fallocate`d to `allocated_bytes`
    /// in the background: `log/spare.rs`) the new active segment `base_offset`: renamed
    /// into place, so the roll allocates nothing. Its contents read as zeros, which recovery
    /// treats as preallocated space if a crash leaves it under its new name.
    pub async fn create_from_spare(
        dir: &Path,
        base_offset: Offset,
        spare_path: &Path,
        allocated_bytes: u64,
        now_ms: i64,
    ) -> Result<Self, OpenError> {
        let log_path = dir.join(log_file_name(base_offset));
        io::disk::rename(spare_path, &log_path)
            .await
            .map_err(OpenError::io(&log_path))?;
        let mut segment = Self::open_emptied(dir, base_offset, now_ms, false).await?;
        let file_bytes = segment
            .files
            .log
            .metadata()
            .await
            .map_err(OpenError::io(&log_path))?
            .len();
        // The spare was allocated to exactly this size; anything else is not the spare.
        if file_bytes != allocated_bytes {
            return Err(OpenError::io(&log_path)(std::io::Error::other(format!(
                "spare segment holds {file_bytes} bytes, {allocated_bytes} were allocated"
            ))));
        }
        segment.allocated_bytes = allocated_bytes;
        segment.preallocation = preallocation::Preallocation::Whole;
        Ok(segment)
    }

    /// Allocates the segment ahead of its writes when the config asks and the file system
    /// allows it ([`preallocation`]); declined, the segment is written unallocated.
    async fn preallocate(&mut self, config: &LogConfig) -> Result<(), OpenError> {
        self.allocated_bytes = self.size_bytes;
        self.preallocation = preallocation::Preallocation::Off;
        if !config.preallocate {
            return Ok(());
        }
        let (offset, len) = (
            self.size_bytes,
            config.segment_bytes.saturating_sub(self.size_bytes),
        );
        let dir = self.files.log_path.parent().unwrap_or(Path::new("."));
        if len > 0 {
            let Some(_claim) =
                preallocation::room_for(dir, len, config.preallocate_max_used_percent).await
            else {
                self.preallocation = preallocation::Preallocation::Declined;
                return Ok(());
            };
            match self.files.log.fallocate(offset, len).await {
                Ok(()) => self.allocated_bytes = offset + len,
                Err(err) if preallocation::declined(&err) => {
                    warn!(path = %self.files.log_path.display(), %err,
                        "the segment could not be allocated ahead: it is written without");
                    // A refused fallocate may have grown the file part of the way (ext4 keeps
                    // what it allocated before it ran out): cut it back, so the segment's size is
                    // its data's, as the writes and a clean close expect of a declined segment.
                    self.files
                        .log
                        .set_len(offset)
                        .await
                        .map_err(OpenError::io(&self.files.log_path))?;
                    self.preallocation = preallocation::Preallocation::Declined;
                    return Ok(());
                }
                Err(err) => return Err(OpenError::io(&self.files.log_path)(err)),
            }
        }
        self.preallocation = preallocation::Preallocation::Whole;
        Ok(())
    }

    /// The range to `fallocate` before bytes up to `end` are written, if any: past the
    /// allocated end of a segment allocated whole, which only a batch larger than the rest of
    /// the segment reaches. Whole, not in chunks as the writes come: `fallocate` takes the
    /// inode's lock that every write to it takes, and with the file system's block bitmaps out of
    /// memory it held it, and the partition's producers, for up to a second on this machine
    /// (results/allocation-stalls/). A new segment is allocated before it is active: at the
    /// log's creation, or in the background as the spare (`log/spare.rs`). A segment whose
    /// preallocation was declined never allocates on the write path.
    pub fn allocation_needed(&self, end: u64, config: &LogConfig) -> Option<(u64, u64)> {
        if !config.preallocate
            || self.preallocation != preallocation::Preallocation::Whole
            || end <= self.allocated_bytes
        {
            return None;
        }
        let target = config.segment_bytes.max(end);
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
        let base_offset = header.base_offset;
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
        self.next_offset = header.next_offset();
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
        let indexes = files.indexes()?;
        indexes.offset.sync_all().await?;
        indexes.time.sync_all().await
    }

    /// Removes the segment's files. Open handles (a fetch in flight) stay readable.
    pub async fn delete_files(files: &SegmentFiles) -> std::io::Result<()> {
        io::disk::remove_file(&files.log_path).await?;
        io::disk::remove_file(&files.log_path.with_extension("index")).await?;
        io::disk::remove_file(&files.log_path.with_extension("timeindex")).await?;
        crate::txn::index_file::remove(&files.log_path).await
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
        let indexes = files.indexes()?;
        if !self.offset_bytes.is_empty() {
            indexes
                .offset
                .write_all_at(self.offset_bytes, self.offset_position)
                .await?;
        }
        if !self.time_bytes.is_empty() {
            indexes
                .time
                .write_all_at(self.time_bytes, self.time_position)
                .await?;
        }
        Ok(())
    }
}
