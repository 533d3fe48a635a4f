//! Recovery of one segment at open: indexes checked against the log (rebuilt if they disagree),
//! batches CRC-checked from the last index entry (or from the start, after a crash), the file cut
//! after the last valid batch.
#![forbid(unsafe_code)]

use std::path::Path;

use tracing::{debug, warn};

use super::{open_files, Segment};
use crate::batch::{self, BatchHeader, Strictness, LOG_OVERHEAD_BYTES};
use crate::config::LogConfig;
use crate::error::OpenError;
use crate::index::{OffsetIndex, TimeIndex, OFFSET_ENTRY_BYTES, TIME_ENTRY_BYTES};
use crate::units::{Offset, Position};

/// Bytes read at a time when recovery scans a segment.
const RECOVERY_READ_BYTES: usize = 1 << 20;

/// What recovery found in one segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub batches_scanned: u64,
    /// Headers of scanned batches with a producer id, in log order, to rebuild producer state.
    pub producer_batches: Vec<BatchHeader>,
    /// Bytes cut off after the last valid batch, excluding preallocated zeros.
    pub truncated_bytes: u64,
    /// Every byte cut off after the last valid batch, zeros included.
    pub cut_bytes: u64,
    pub index_rebuilt: bool,
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
        report.cut_bytes = file_bytes - valid_end;
        let tail = segment
            .files
            .log
            .read_at_most(valid_end, LOG_OVERHEAD_BYTES)
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
        segment.created_ms = began_ms(&segment, now_ms).await;
        segment.preallocate(config).await?;
        if scan == RecoveryScan::Full {
            // After a crash of the process alone, what recovery read may sit in the page cache
            // only, and the log opens with everything it holds counted durable: a `sync` finding
            // nothing new to sync would otherwise promise it while a power cut could still take
            // it (found by tests/sim_disk.rs: a process crash, a sync, then a power loss).
            segment
                .files
                .log
                .sync_all()
                .await
                .map_err(OpenError::io(&path))?;
        }
    } else {
        segment.allocated_bytes = segment.size_bytes;
    }
    rewrite_indexes(&mut segment, &report)
        .await
        .map_err(OpenError::io(&path))?;
    if !is_active && scan == RecoveryScan::Full {
        // A rolled segment scanned whole: the newest producer snapshot does not cover it, so its
        // seal may never have run (a crash under `flush=none`) and what was read may sit in the
        // page cache only. Sealed here, before a later seal's snapshot claims it durable.
        Segment::seal(segment.files.clone(), segment.size_bytes, None)
            .await
            .map_err(OpenError::io(&path))?;
    }
    if !is_active {
        // Written and cut to what is valid; a sealed segment's indexes live in memory.
        segment.files.close_indexes();
    }
    Ok((segment, report))
}

/// When the recovered active segment began, for `segment.ms`: its first batch's timestamp when
/// older than `now_ms` (as Kafka counts a segment's age), else `now_ms`. Counting from the open
/// instead made every restart start the age again: a broker restarted more often than
/// `segment.ms` never rolled a quiet log's active segment, so a compacted log never cleaned it.
async fn began_ms(segment: &Segment, now_ms: i64) -> i64 {
    if segment.size_bytes == 0 {
        return now_ms;
    }
    let first_batch_max_timestamp = segment
        .files
        .log
        .read_at_most(0, batch::HEADER_BYTES)
        .await
        .ok()
        .and_then(|bytes| batch::parse_header(&bytes).ok())
        .map_or(-1, |header| header.max_timestamp);
    if first_batch_max_timestamp >= 0 {
        now_ms.min(first_batch_max_timestamp)
    } else {
        now_ms
    }
}

/// Loads both index files, keeping only what agrees with the log; clears them when the last
/// offset entry does not point at a batch with that base offset.
async fn load_indexes(
    segment: &mut Segment,
    file_bytes: u64,
    report: &mut RecoveryReport,
) -> Result<(), OpenError> {
    let path = &segment.files.log_path;
    let indexes = segment.files.indexes().map_err(OpenError::io(path))?;
    let index_len = indexes
        .offset
        .metadata()
        .await
        .map_err(OpenError::io(path))?
        .len();
    let time_len = indexes
        .time
        .metadata()
        .await
        .map_err(OpenError::io(path))?
        .len();
    let offset_bytes = indexes
        .offset
        .read_at_most(0, whole_file(index_len))
        .await
        .map_err(OpenError::io(path))?;
    let time_bytes = indexes
        .time
        .read_at_most(0, whole_file(time_len))
        .await
        .map_err(OpenError::io(path))?;
    let (mut offset_index, offset_valid) = OffsetIndex::decode(
        segment.base_offset,
        &offset_bytes,
        Position::new(file_bytes),
    );
    let mut consistent = offset_valid;
    if let Some(last) = offset_index.last() {
        let header = segment
            .files
            .log
            .read_at_most(last.position.get(), LOG_OVERHEAD_BYTES)
            .await
            .map_err(OpenError::io(&segment.files.log_path))?;
        if batch::peek_offset_and_length(&header).map(|(offset, _)| offset) != Some(last.offset) {
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
        let at = usize::try_from(position - window_start).expect("inside the window, in memory");
        let have_header = window.len() >= at + LOG_OVERHEAD_BYTES;
        let needed = if have_header {
            batch::peek_offset_and_length(&window[at..]).map_or(0, |(_, length)| {
                LOG_OVERHEAD_BYTES + usize::try_from(length).unwrap_or(0)
            })
        } else {
            batch::HEADER_BYTES
        };
        if !have_header || window.len() < at + needed {
            let len = RECOVERY_READ_BYTES
                .max(needed)
                .min(usize::try_from(file_bytes - position).unwrap_or(usize::MAX));
            window = segment
                .files
                .log
                .read_at_most(position, len)
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
        let relative_last = header.last_offset().since(segment.base_offset);
        let base_offset = header.base_offset;
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
    let indexes = segment.files.indexes()?;
    indexes.offset.set_len(offset_len).await?;
    indexes.time.set_len(time_len).await?;
    if let Some(delta) = segment.take_index_delta() {
        delta.write(&segment.files).await?;
    }
    Ok(())
}
