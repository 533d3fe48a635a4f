//! Timestamp lookup (ListOffsets by time).
#![forbid(unsafe_code)]

use super::state::PartitionLog;
use crate::batch;
use crate::error::ReadError;
use crate::segment::{self, SegmentFiles};
use crate::units::{Offset, Position};

impl PartitionLog {
    /// The first offset whose record timestamp is at least `timestamp`, with that timestamp
    /// (ListOffsets by time). `None` when every record is older.
    pub async fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<(Offset, i64)>, ReadError> {
        // Segments whose newest record is old enough, each with where the time index lets a
        // walk start; taken under one borrow, searched after it.
        let candidates: Vec<(SegmentFiles, Position, Position)> = {
            let state = self.state.borrow();
            state
                .segments
                .iter()
                .filter(|segment| segment.max_timestamp >= timestamp)
                .map(|segment| {
                    let walk_start = segment.walk_start_for_timestamp(timestamp);
                    (segment.files.clone(), walk_start, segment.end())
                })
                .collect()
        };
        for (files, walk_start, end) in candidates {
            if let Some(found) = first_at_or_after(&files, walk_start, end, timestamp).await? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }
}

/// Walks batch headers of one segment from `position` (a batch start) to `end` for the first
/// record with a timestamp at least `timestamp`: its offset and timestamp. Inside a compressed
/// batch the records are not read; the batch's base offset and max timestamp answer.
async fn first_at_or_after(
    files: &SegmentFiles,
    mut position: Position,
    end: Position,
    timestamp: i64,
) -> Result<Option<(Offset, i64)>, ReadError> {
    let corrupt = |position: Position, reason: String| ReadError::Corrupt {
        path: files.log_path.clone(),
        position,
        reason,
    };
    while position < end {
        let header_bytes =
            segment::walk::read_range(&files.log, position, batch::HEADER_BYTES).await?;
        let header =
            batch::parse_header(&header_bytes).map_err(|err| corrupt(position, err.to_string()))?;
        if header.batch_length < batch::BATCH_LENGTH_MIN {
            return Err(corrupt(
                position,
                format!("batch length {}", header.batch_length),
            ));
        }
        if header.max_timestamp >= timestamp {
            let base_offset = header.base_offset;
            let whole =
                segment::walk::read_range(&files.log, position, header.total_bytes()).await?;
            return Ok(Some(
                match batch::first_record_at_or_after(&whole, timestamp) {
                    Some((delta, record_timestamp)) => {
                        (base_offset.plus(i64::from(delta)), record_timestamp)
                    }
                    None => (base_offset, header.max_timestamp),
                },
            ));
        }
        position =
            position.advanced_by(u64::try_from(header.total_bytes()).expect("usize fits in u64"));
    }
    Ok(None)
}
