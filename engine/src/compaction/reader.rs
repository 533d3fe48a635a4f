//! Reading a segment's batches one at a time for a cleaning pass: a window of up to 1 MiB read
//! at once, each batch CRC-checked before the pass sees it.
#![forbid(unsafe_code)]

use crate::batch::{self, Strictness, LOG_OVERHEAD_BYTES};
use crate::error::CompactionError;
use crate::segment::SegmentFiles;
use crate::units::Position;
use crate::yielder::Yielder;

/// Bytes read at a time while a segment is cleaned.
const CLEAN_READ_BYTES: usize = 1 << 20;

/// Reads a segment's batches one by one, CRC-checked.
pub(super) struct BatchReader<'a> {
    files: &'a SegmentFiles,
    yielder: &'a Yielder,
    end: u64,
    position: u64,
    window: Vec<u8>,
    window_start: u64,
}

impl<'a> BatchReader<'a> {
    pub(super) fn new(files: &'a SegmentFiles, end: u64, yielder: &'a Yielder) -> Self {
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
    pub(super) async fn next_batch(&mut self) -> Result<Option<&[u8]>, CompactionError> {
        if self.position >= self.end {
            return Ok(None);
        }
        self.yielder
            .tick()
            .await
            .map_err(|_| CompactionError::Closing)?;
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
