//! Header walks: from a batch start, batch header by batch header, to the batch holding an offset
//! or the last boundary before a position. Reads go through a window of [`WALK_READ_BYTES`], so a
//! walk from an index entry costs one read (page cache, usually).
#![forbid(unsafe_code)]

use std::path::Path;

use crate::io::disk::DiskFile;

use crate::batch::{self, LOG_OVERHEAD_BYTES};
use crate::error::ReadError;
use crate::units::{Offset, Position};

/// Bytes read at a time when a lookup walks batch headers from an index entry.
pub(crate) const WALK_READ_BYTES: usize = 16 << 10;

/// Header bytes a walk needs to know where a batch ends and which offsets it holds.
const WALK_HEADER_BYTES: usize = batch::LAST_OFFSET_DELTA_OFFSET + 4;

/// Walks batch headers from `position` (a batch start) and returns the start of the batch that
/// holds `target_offset`, or `end` when no batch before `end` does.
pub async fn walk_to_offset(
    file: &DiskFile,
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
    file: &DiskFile,
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
    file: &'a DiskFile,
    path: &'a Path,
    end: Position,
    window: Vec<u8>,
    window_start: Position,
}

impl<'a> HeaderWalker<'a> {
    fn new(file: &'a DiskFile, path: &'a Path, end: Position) -> Self {
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
            self.window = self.file.read_at_most(position.get(), len).await?;
            self.window_start = position;
        }
        let at = usize::try_from(position.bytes_since(self.window_start))
            .expect("inside the window, which is in memory");
        let corrupt = |reason: &str| ReadError::Corrupt {
            path: self.path.to_path_buf(),
            position,
            reason: reason.to_string(),
        };
        let bytes = self
            .window
            .get(at..at + WALK_HEADER_BYTES)
            .ok_or_else(|| corrupt("header past end of file"))?;
        let (base_offset, batch_length) =
            batch::peek_offset_and_length(bytes).ok_or_else(|| corrupt("short header"))?;
        if batch_length < batch::BATCH_LENGTH_MIN {
            return Err(corrupt("batch length below header size"));
        }
        let mut raw_delta = [0u8; 4];
        raw_delta.copy_from_slice(&bytes[batch::LAST_OFFSET_DELTA_OFFSET..WALK_HEADER_BYTES]);
        let last_offset_delta = i32::from_be_bytes(raw_delta);
        let total = LOG_OVERHEAD_BYTES as u64 + u64::try_from(batch_length).expect("checked above");
        let next_offset = base_offset.plus(i64::from(last_offset_delta) + 1);
        Ok((next_offset, total))
    }
}

/// End position of the batch that starts at `position`.
pub async fn batch_end(
    file: &DiskFile,
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
pub async fn read_range(
    file: &DiskFile,
    position: Position,
    len: usize,
) -> std::io::Result<Vec<u8>> {
    file.read_at_most(position.get(), len).await
}
