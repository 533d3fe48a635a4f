//! Read plans: file slices of whole batches, for zero-copy fetches.
//!
//! A plan needs batch boundaries: where the batch holding the cursor starts, and the last batch
//! start within the byte limit. They come, in this order, from the boundary cache (recent
//! writes), the offset index (an entry is a batch start: exact when its offset is the cursor, and
//! any entry within the limit ends a slice), and only then from a walk of batch headers in the
//! file. A catch-up reader's plans so need no file read: on cold data each walk is a disk read
//! the fetch waits for, partition after partition, before a byte of it is sent.
//!
//! # Invariants (asserted in release builds: a few comparisons per segment of a plan)
//! - Every slice starts on a batch boundary (the start of the batch holding the cursor, found by
//!   the boundary cache or a header walk) and ends on one (a header walk, or the segment's end).
//! - No slice reaches past the logical end of its segment as it was when planned.
#![forbid(unsafe_code)]

use super::boundary_cache::BoundaryKey;
use super::state::PartitionLog;
use super::types::{FileSlice, Isolation, ReadPlan};
use crate::error::ReadError;
use crate::segment::{self, SegmentFiles};
use crate::units::{Offset, Position};

impl PartitionLog {
    /// Plans a read of up to `max_bytes` from `offset`: slices of whole batches. With
    /// `min_one_batch`, a first batch larger than `max_bytes` (0 included) is still returned whole
    /// (KIP-74), so a consumer always makes progress.
    pub async fn read(
        &self,
        offset: impl Into<Offset>,
        max_bytes: u64,
        min_one_batch: bool,
    ) -> Result<ReadPlan, ReadError> {
        self.read_isolated(offset, max_bytes, min_one_batch, Isolation::ReadUncommitted)
            .await
    }

    /// [`PartitionLog::read`] under an isolation level: `ReadCommitted` stops at the last stable
    /// offset (a batch boundary: the first batch of the oldest open transaction), so the plan is
    /// the same zero-copy slices, only shorter.
    pub async fn read_isolated(
        &self,
        offset: impl Into<Offset>,
        max_bytes: u64,
        min_one_batch: bool,
        isolation: Isolation,
    ) -> Result<ReadPlan, ReadError> {
        let offset = offset.into();
        let (high_watermark, log_start_offset, stable) = {
            let state = self.state.borrow();
            (
                state.high_watermark,
                state.log_start_offset,
                state.last_stable_offset(),
            )
        };
        let limit = match isolation {
            Isolation::ReadUncommitted => high_watermark,
            Isolation::ReadCommitted => stable,
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
            last_stable_offset: stable,
            end_offset_bound: offset,
        };
        // Only read_committed cuts a segment at its limit; read_uncommitted reads each segment to
        // its end as it is when looked at (batches written meanwhile are whole and readable).
        let cut_at = (isolation == Isolation::ReadCommitted).then_some(limit);
        let mut cursor = offset;
        let mut remaining = max_bytes;
        // A first batch owed under KIP-74 is read even with no bytes allowed at all, as Kafka's
        // `LogSegment.read` widens a max size of 0 to the first batch under `minOneMessage`.
        while cursor < limit && (remaining > 0 || (min_one_batch && plan.slices.is_empty())) {
            let first = min_one_batch && plan.slices.is_empty();
            let Some(step) = self
                .read_in_segment(cursor, remaining, first, cut_at)
                .await?
            else {
                break;
            };
            plan.end_offset_bound = step
                .segment_next_offset
                .min(cut_at.unwrap_or(step.segment_next_offset))
                .max(cursor);
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
        plan.last_stable_offset = plan.last_stable_offset.max(self.last_stable_offset());
        Ok(plan)
    }

    /// The part of a plan one segment gives: from the batch holding `cursor` to its end or the
    /// last batch boundary within `remaining` bytes. `None` when nothing more can be read.
    async fn read_in_segment(
        &self,
        cursor: Offset,
        remaining: u64,
        min_one_batch: bool,
        cut_at: Option<Offset>,
    ) -> Result<Option<SegmentRead>, ReadError> {
        let Some(mut at) = self.locate(cursor) else {
            return Ok(None);
        };
        if let Some(limit) = cut_at.filter(|limit| *limit < at.resume_offset) {
            // The limit (the LSO under read_committed) is a batch start inside this segment:
            // the plan ends there.
            let (log, path) = (&at.files.log, &at.files.log_path);
            let limit_start = match self.cached_boundary(at.segment_base, limit) {
                Some(position) => position,
                None => {
                    self.count_plan_walk();
                    let from = self.walk_start_for_offset_in(at.segment_base, at.generation, limit);
                    segment::walk::walk_to_offset(log, path, from, at.end, limit).await?
                }
            };
            at.end = at.end.min(limit_start);
        }
        let start = match at.cached_start {
            Some(position) => position,
            None => {
                self.count_plan_walk();
                let (log, path) = (&at.files.log, &at.files.log_path);
                segment::walk::walk_to_offset(log, path, at.walk_from, at.end, cursor).await?
            }
        };
        assert!(start <= at.end, "a read starts inside its segment");
        if start == at.end {
            return Ok(Some(SegmentRead {
                slice: None,
                reached_segment_end: true,
                segment_next_offset: at.resume_offset,
            }));
        }
        let Some(end) = self.slice_end(&at, start, remaining, min_one_batch).await? else {
            return Ok(None);
        };
        assert!(
            start < end && end <= at.end,
            "a read slice [{start}, {end}) lies inside its segment of {} bytes",
            at.end
        );
        let len = end.bytes_since(start);
        self.note_reader(at.segment_base, start, end);
        let memory = self
            .state
            .borrow()
            .tail_cache
            .get(at.segment_base, start, len);
        Ok(Some(SegmentRead {
            slice: Some(FileSlice {
                file: at.files.log,
                position: start,
                len,
                memory,
            }),
            reached_segment_end: end == at.end,
            segment_next_offset: at.resume_offset,
        }))
    }

    /// A reader reads `[start, end)` of the segment based at `segment_base`: when that is the
    /// active segment or one of the few before it, the range was not dropped, and `end` lies within
    /// `drop.behind.max.bytes` of the log's end, drops behind leave the pages from `end` on
    /// while the reader is live (`reader_floor.rs`). A reader further behind is a
    /// catch-up reader: its pages are read cold and not held for it.
    fn note_reader(&self, segment_base: Offset, start: Position, end: Position) {
        let mut state = self.state.borrow_mut();
        let config = &state.config;
        if config.drop_behind_bytes == 0 || config.drop_behind_max_bytes <= config.drop_behind_bytes
        {
            return;
        }
        // A hold past i64::MAX bytes holds as far as any position can lie.
        let hold_bytes = i64::try_from(config.drop_behind_max_bytes).unwrap_or(i64::MAX);
        state.rebase_reader_floor();
        let index = state.segment_index_for(segment_base);
        let active_index = state.segments.len() - 1;
        let segment = &state.segments[index];
        if segment.base_offset != segment_base
            || active_index - index >= super::reader_floor::SEGMENTS_WALKED_MAX
        {
            return;
        }
        // Positions relative to the active segment: the segments before it end at 0.
        let shift: i64 = state
            .segments
            .range(index..active_index)
            .map(|before| before.end().get() as i64)
            .sum();
        let active = state.active();
        let active_end = active.end().get() as i64;
        let (start_at, end_at) = (start.get() as i64 - shift, end.get() as i64 - shift);
        if start.get() < segment.dropped_behind_bytes || active_end - end_at > hold_bytes {
            return;
        }
        let active_base = active.base_offset;
        state
            .reader_floor
            .note(active_base, start_at, end_at, std::time::Instant::now());
    }

    /// Where the segment holding `cursor` stands now: what a read needs from the log state, taken
    /// under one short borrow. `None` when `cursor` is at or past the end of the active segment.
    fn locate(&self, cursor: Offset) -> Option<SegmentCursor> {
        let state = self.state.borrow();
        let index = state.segment_index_for(cursor);
        let segment = &state.segments[index];
        if cursor >= segment.next_offset && index + 1 == state.segments.len() {
            return None;
        }
        // Where reading resumes after this segment: the next segment's base, which skips any gap
        // (a sealed segment cut short by recovery).
        let resume_offset = state
            .segments
            .get(index + 1)
            .map_or(segment.next_offset, |next| next.base_offset)
            .max(cursor.plus(1));
        let (walk_from, walk_from_offset) = segment.walk_start_for_offset(cursor);
        // An index entry is a batch's base offset and start: when it is the cursor itself, that
        // batch holds the cursor (a catch-up reader's next offset is usually the first batch past
        // its last slice, which ended at an indexed batch start: see `slice_end`). Without an
        // entry at or below the cursor the answer is (START, the segment's base): a cursor at the
        // base starts at the first batch, as a walk from START would find.
        let indexed_start = (walk_from_offset == cursor).then_some(walk_from);
        Some(SegmentCursor {
            files: segment.files.clone(),
            end: segment.end(),
            segment_base: segment.base_offset,
            generation: segment.generation,
            resume_offset,
            walk_from,
            cached_start: state
                .boundaries
                .position_of(BoundaryKey {
                    segment_base: segment.base_offset,
                    offset: cursor,
                })
                .or(indexed_start),
        })
    }

    /// The end of a slice from `start`: the segment's end if it fits in `remaining`, else the
    /// last batch boundary within it (or, for a first batch under KIP-74, that batch's end).
    /// `None` when not even one batch fits and none must be returned whole.
    async fn slice_end(
        &self,
        at: &SegmentCursor,
        start: Position,
        remaining: u64,
        min_one_batch: bool,
    ) -> Result<Option<Position>, ReadError> {
        if at.end.bytes_since(start) <= remaining {
            return Ok(Some(at.end));
        }
        let limit = start.advanced_by(remaining);
        let indexed = self.walk_start_for_position(at.segment_base, at.generation, limit);
        if indexed > start {
            // An indexed batch start within the limit ends the slice without reading the file.
            // The walk below would find the last batch start within it, at most one index
            // interval (and one batch) further: a few KiB of a large read, for one disk read
            // less per partition when the data is cold.
            assert!(indexed <= limit && limit < at.end);
            return Ok(Some(indexed));
        }
        self.count_plan_walk();
        let (log, path) = (&at.files.log, &at.files.log_path);
        let walk_start = indexed.max(start);
        let boundary =
            segment::walk::walk_to_boundary(log, path, walk_start, at.end, limit).await?;
        assert!(boundary <= limit, "a boundary walk stays within its limit");
        if boundary > start {
            Ok(Some(boundary))
        } else if min_one_batch {
            Ok(Some(
                segment::walk::batch_end(log, path, start, at.end).await?,
            ))
        } else {
            Ok(None)
        }
    }

    /// An indexed batch start at or before `position` in the segment `segment_base` (0 if the
    /// segment is gone or was replaced by the cleaner since the caller took its file handle: the
    /// walk then starts from the caller's own lower bound, in the file the caller holds).
    fn walk_start_for_position(
        &self,
        segment_base: Offset,
        generation: u64,
        position: Position,
    ) -> Position {
        let state = self.state.borrow();
        let index = state.segment_index_for(segment_base);
        match state.segments.get(index) {
            Some(segment)
                if segment.base_offset == segment_base && segment.generation == generation =>
            {
                segment.walk_start_for_position(position)
            }
            _ => Position::START,
        }
    }

    fn count_plan_walk(&self) {
        self.state.borrow_mut().stats.plan_walks += 1;
    }

    /// A batch start the boundary cache knows for `offset` in segment `segment_base`.
    fn cached_boundary(&self, segment_base: Offset, offset: Offset) -> Option<Position> {
        self.state.borrow().boundaries.position_of(BoundaryKey {
            segment_base,
            offset,
        })
    }

    /// An indexed batch start at or before the batch holding `offset` in the segment
    /// `segment_base` of `generation` (0 if it was replaced since).
    fn walk_start_for_offset_in(
        &self,
        segment_base: Offset,
        generation: u64,
        offset: Offset,
    ) -> Position {
        let state = self.state.borrow();
        let index = state.segment_index_for(segment_base);
        match state.segments.get(index) {
            Some(segment)
                if segment.base_offset == segment_base && segment.generation == generation =>
            {
                segment.walk_start_for_offset(offset).0
            }
            _ => Position::START,
        }
    }

    /// Reads into memory what [`PartitionLog::read`] would send.
    pub async fn read_bytes(
        &self,
        offset: impl Into<Offset>,
        max_bytes: u64,
        min_one_batch: bool,
    ) -> Result<Vec<u8>, ReadError> {
        let plan = self.read(offset, max_bytes, min_one_batch).await?;
        self.read_plan_bytes(&plan).await
    }

    /// Reads a plan's slices into memory (tests and tools), from their files; a slice the tail
    /// cache also holds in memory must hold the same bytes there.
    pub async fn read_plan_bytes(&self, plan: &ReadPlan) -> Result<Vec<u8>, ReadError> {
        let mut out = Vec::with_capacity(usize::try_from(plan.total_bytes()).unwrap_or(0));
        for slice in &plan.slices {
            let len = usize::try_from(slice.len).expect("a planned slice fits in memory");
            let bytes = segment::walk::read_range(&slice.file, slice.position, len).await?;
            if let Some(memory) = &slice.memory {
                assert!(
                    memory.concat() == bytes,
                    "the tail cache holds the bytes of [{}, +{len}) as written",
                    slice.position
                );
            }
            out.extend_from_slice(&bytes);
        }
        Ok(out)
    }
}

/// The segment a read is in, as it was when the read looked.
struct SegmentCursor {
    files: SegmentFiles,
    /// The segment's logical end when looked at: the plan never reaches past it.
    end: Position,
    segment_base: Offset,
    generation: u64,
    /// Where the next segment's part of the plan starts.
    resume_offset: Offset,
    /// An indexed batch start at or before the cursor's batch.
    walk_from: Position,
    /// The cursor's batch start, when the boundary cache knows it.
    cached_start: Option<Position>,
}

/// One segment's part of a plan.
struct SegmentRead {
    slice: Option<FileSlice>,
    reached_segment_end: bool,
    segment_next_offset: Offset,
}
