//! Timestamp lookup (ListOffsets by time).

use super::state::PartitionLog;
use crate::batch;
use crate::error::ReadError;
use crate::segment::{self, SegmentFiles};

impl PartitionLog {
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
}
