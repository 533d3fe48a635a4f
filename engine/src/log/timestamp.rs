//! Timestamp lookup (ListOffsets by time).
#![forbid(unsafe_code)]

use super::state::PartitionLog;
use crate::batch::{self, Compression};
use crate::compression;
use crate::error::ReadError;
use crate::segment::{self, SegmentFiles};
use crate::units::{Offset, Position};

impl PartitionLog {
    /// The first record with the largest timestamp in the log, with that timestamp (ListOffsets'
    /// max-timestamp, -3, KIP-734). `None` when the log has no timed record.
    pub async fn max_timestamp_offset(&self) -> Result<Option<(Offset, i64)>, ReadError> {
        let max_timestamp = {
            let state = self.state.borrow();
            let log_start_offset = state.log_start_offset;
            state
                .segments
                .iter()
                .filter(|segment| segment.next_offset > log_start_offset)
                .map(|segment| segment.max_timestamp)
                .max()
        };
        match max_timestamp {
            Some(max_timestamp) if max_timestamp >= 0 => {
                self.offset_for_timestamp(max_timestamp).await
            }
            _ => Ok(None),
        }
    }

    /// The first offset whose record timestamp is at least `timestamp`, with that timestamp
    /// (ListOffsets by time). `None` when every record is older. Records below the log start
    /// offset (DeleteRecords) are not searched past their segment: an answer below the start is
    /// raised to the start, whose own timestamp may be older than asked (the batch holding the
    /// start is the only one with records on both sides).
    pub async fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<(Offset, i64)>, ReadError> {
        // Segments whose newest record is old enough, each with where the time index lets a
        // walk start; taken under one borrow, searched after it.
        let log_start_offset = self.log_start_offset();
        let candidates: Vec<(SegmentFiles, Position, Position)> = {
            let state = self.state.borrow();
            state
                .segments
                .iter()
                .filter(|segment| segment.next_offset > state.log_start_offset)
                .filter(|segment| segment.max_timestamp >= timestamp)
                .map(|segment| {
                    let walk_start = segment.walk_start_for_timestamp(timestamp);
                    (segment.files.clone(), walk_start, segment.end())
                })
                .collect()
        };
        for (files, walk_start, end) in candidates {
            if let Some(found) = first_at_or_after(&files, walk_start, end, timestamp).await? {
                return Ok(Some((found.0.max(log_start_offset), found.1)));
            }
        }
        Ok(None)
    }
}

/// Walks batch headers of one segment from `position` (a batch start) to `end` for the first
/// record with a timestamp at least `timestamp`: its offset and timestamp (a compressed batch's
/// records are decompressed to find it).
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
                match first_record_of_batch(&whole, &header, timestamp) {
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

/// The first record of `whole` (one batch) at or after `timestamp`: in an uncompressed batch read
/// in place, in a compressed one after decompressing its records (bounded by the codec module),
/// as Kafka answers with the record's own offset. A batch whose records cannot be read answers
/// `None` (the caller then falls back to the batch's base offset).
///
/// Under LogAppendTime every record's timestamp is the batch's max timestamp (the broker's append
/// time), as clients read it, whatever create time the record carries: the batch's first record
/// answers (the caller asks only when that time is late enough), with the append time.
fn first_record_of_batch(
    whole: &[u8],
    header: &batch::BatchHeader,
    timestamp: i64,
) -> Option<(i32, i64)> {
    if header.is_log_append_time() {
        return first_record_by_create_time(whole, header, i64::MIN)
            .map(|(offset_delta, _)| (offset_delta, header.max_timestamp));
    }
    first_record_by_create_time(whole, header, timestamp)
}

/// [`first_record_of_batch`] by the records' own (create) timestamps.
fn first_record_by_create_time(
    whole: &[u8],
    header: &batch::BatchHeader,
    timestamp: i64,
) -> Option<(i32, i64)> {
    match header.compression().ok()? {
        Compression::None => batch::first_record_at_or_after(whole, timestamp),
        codec => {
            let area = whole.get(batch::HEADER_BYTES..header.total_bytes())?;
            let (records, _) = compression::decompress(codec, area).ok()?;
            batch::first_record_in_area(&records, header, timestamp)
        }
    }
}
