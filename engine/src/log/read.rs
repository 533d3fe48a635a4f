//! Read plans: file slices of whole batches, for zero-copy fetches.

use super::state::PartitionLog;
use super::types::{FileSlice, ReadPlan};
use crate::error::ReadError;
use crate::segment;

impl PartitionLog {
    /// Plans a read of up to `max_bytes` from `offset`: slices of whole batches. With
    /// `min_one_batch`, a first batch larger than `max_bytes` is still returned whole (KIP-74), so
    /// a consumer always makes progress.
    pub async fn read(
        &self,
        offset: i64,
        max_bytes: u64,
        min_one_batch: bool,
    ) -> Result<ReadPlan, ReadError> {
        let (high_watermark, log_start_offset) = {
            let state = self.state.borrow();
            (state.high_watermark, state.log_start_offset)
        };
        if offset < log_start_offset || offset > high_watermark {
            return Err(ReadError::OffsetOutOfRange {
                offset,
                log_start_offset,
                high_watermark,
            });
        }
        let mut plan = ReadPlan {
            slices: Vec::new(),
            high_watermark,
            log_start_offset,
        };
        let mut cursor = offset;
        let mut remaining = max_bytes;
        while cursor < high_watermark && remaining > 0 {
            let Some(step) = self
                .read_in_segment(cursor, remaining, min_one_batch && plan.slices.is_empty())
                .await?
            else {
                break;
            };
            if let Some(slice) = step.slice {
                remaining = remaining.saturating_sub(slice.len);
                plan.slices.push(slice);
            }
            if !step.reached_segment_end {
                break;
            }
            cursor = step.segment_next_offset;
        }
        // Later segments were looked at after awaits: the plan may hold batches appended since the
        // start, and its high watermark must cover them.
        plan.high_watermark = self.high_watermark();
        Ok(plan)
    }

    pub(crate) async fn read_in_segment(
        &self,
        cursor: i64,
        remaining: u64,
        min_one_batch: bool,
    ) -> Result<Option<SegmentRead>, ReadError> {
        let (files, size_bytes, (segment_base, generation), segment_next_offset, walk_from, cached) = {
            let state = self.state.borrow();
            let index = state.segment_index_for(cursor);
            let segment = &state.segments[index];
            if cursor >= segment.next_offset && index + 1 == state.segments.len() {
                return Ok(None);
            }
            // Where reading resumes after this segment: the next segment's base, which skips any
            // gap (a sealed segment cut short by recovery).
            let resume_offset = state
                .segments
                .get(index + 1)
                .map_or(segment.next_offset, |next| next.base_offset)
                .max(cursor + 1);
            (
                segment.files.clone(),
                segment.size_bytes,
                (segment.base_offset, segment.generation),
                resume_offset,
                segment.walk_start_for_offset(cursor),
                state.cached_position(cursor, segment.base_offset),
            )
        };
        let start = match cached {
            Some(position) => position,
            None => {
                segment::walk_to_offset(
                    &files.log,
                    &files.log_path,
                    walk_from.0,
                    size_bytes,
                    cursor,
                )
                .await?
            }
        };
        if start >= size_bytes {
            return Ok(Some(SegmentRead {
                slice: None,
                reached_segment_end: true,
                segment_next_offset,
            }));
        }
        let end = if size_bytes - start <= remaining {
            size_bytes
        } else {
            let limit = start + remaining;
            let walk_start = self
                .walk_start_for_position(segment_base, generation, limit)
                .max(start);
            let boundary = segment::walk_to_boundary(
                &files.log,
                &files.log_path,
                walk_start,
                size_bytes,
                limit,
            )
            .await?;
            if boundary > start {
                boundary
            } else if min_one_batch {
                segment::batch_end(&files.log, &files.log_path, start, size_bytes).await?
            } else {
                return Ok(None);
            }
        };
        Ok(Some(SegmentRead {
            slice: Some(FileSlice {
                file: files.log,
                position: start,
                len: end - start,
            }),
            reached_segment_end: end == size_bytes,
            segment_next_offset,
        }))
    }

    /// An indexed batch start at or before `position` in the segment `segment_base` (0 if the
    /// segment is gone or was replaced by the cleaner since the caller took its file handle: the
    /// walk then starts from the caller's own lower bound, in the file the caller holds).
    pub(crate) fn walk_start_for_position(
        &self,
        segment_base: i64,
        generation: u64,
        position: u64,
    ) -> u64 {
        let state = self.state.borrow();
        let index = state.segment_index_for(segment_base);
        match state.segments.get(index) {
            Some(segment)
                if segment.base_offset == segment_base && segment.generation == generation =>
            {
                segment.walk_start_for_position(position)
            }
            _ => 0,
        }
    }

    /// Reads into memory what [`PartitionLog::read`] would send.
    pub async fn read_bytes(
        &self,
        offset: i64,
        max_bytes: u64,
        min_one_batch: bool,
    ) -> Result<Vec<u8>, ReadError> {
        let plan = self.read(offset, max_bytes, min_one_batch).await?;
        let mut out = Vec::with_capacity(plan.total_bytes() as usize);
        for slice in &plan.slices {
            out.extend_from_slice(
                &segment::read_range(&slice.file, slice.position, slice.len as usize).await?,
            );
        }
        Ok(out)
    }
}

pub(crate) struct SegmentRead {
    slice: Option<FileSlice>,
    reached_segment_end: bool,
    segment_next_offset: i64,
}
