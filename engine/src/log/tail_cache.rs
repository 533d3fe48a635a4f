//! The bytes most recently written with `O_DIRECT`, kept in memory for live consumers.
//!
//! Direct writes leave nothing in the page cache, so without this a consumer at the tail would
//! read from disk what was written a moment ago: twice the disk traffic, and a disk read on every
//! fetch's path (results/write-direct/: a live consumer then held the producer to about half its
//! speed). The cache keeps the buffers the latest runs were written from (the bytes were copied
//! into them for the write; the cache takes no second copy, and never holds a producer's request,
//! which a slice of it would keep whole) for the active segment's last `tail_cache_bytes`, and
//! the read planner serves a slice from it when the whole slice is there
//! ([`crate::FileSlice::memory`]).
//!
//! Bounds, on the memory the buffers hold (alignment included): per log `tail_cache_bytes`
//! (topic config `tail.cache.bytes`), and per shard
//! [`TAIL_CACHE_SHARD_BYTES_MAX`] over all its logs: a run that would pass the shard's bound is
//! not cached (its readers read it from disk). Served slices outlive the cache's hold on their
//! buffers while their response waits to be sent; each pins at most
//! [`PINNED_PER_SERVED_BYTE_MAX`] times its bytes.
#![forbid(unsafe_code)]

use std::cell::Cell;
use std::collections::VecDeque;

use bytes::Bytes;

use crate::units::{Offset, Position};

/// A served slice pins at most this many times its own bytes: a part of a write buffer smaller
/// than its share is copied out instead of shared, so a response waiting to be sent (a stalled
/// client's, up to its connection's queue of them) cannot keep whole megabyte buffers alive for
/// a few bytes each once the cache has let them go.
const PINNED_PER_SERVED_BYTE_MAX: usize = 4;

/// Bytes all the tail caches of one shard (thread) may hold together.
pub const TAIL_CACHE_SHARD_BYTES_MAX: u64 = 512 << 20;

thread_local! {
    /// Bytes held by this shard's tail caches.
    static SHARD_BYTES: Cell<u64> = const { Cell::new(0) };
}

/// Bytes held by the calling shard's tail caches (for /metrics and tests).
pub fn shard_tail_cache_bytes() -> u64 {
    SHARD_BYTES.with(Cell::get)
}

/// One written run: its buffers, back to back from `position`, and the memory they hold.
struct CachedRun {
    position: u64,
    len: u64,
    held_bytes: u64,
    pieces: Vec<Bytes>,
}

/// The active segment's most recent runs, contiguous and ending at the log's end.
#[derive(Default)]
pub(crate) struct TailCache {
    segment_base: Option<Offset>,
    runs: VecDeque<CachedRun>,
    bytes: u64,
}

impl TailCache {
    /// Notes `pieces`, written at `position` of segment `segment_base` and holding `held_bytes`
    /// of memory (their buffers, alignment included). A run that does not follow the cached
    /// ones (another segment, a gap) starts the cache afresh; the oldest runs go once more than
    /// `bytes_max` is held.
    pub(crate) fn push(
        &mut self,
        segment_base: Offset,
        position: Position,
        pieces: Vec<Bytes>,
        held_bytes: u64,
        bytes_max: u64,
    ) {
        let len: u64 = pieces.iter().map(|piece| piece.len() as u64).sum();
        let follows = self.segment_base == Some(segment_base)
            && self
                .runs
                .back()
                .is_none_or(|last| last.position + last.len == position.get());
        if !follows {
            self.clear();
        }
        let shard_room = TAIL_CACHE_SHARD_BYTES_MAX.saturating_sub(shard_tail_cache_bytes());
        if len == 0 || held_bytes > bytes_max || held_bytes > shard_room {
            // Not cached: the next run would leave a gap, so nothing older is of use either.
            self.clear();
            return;
        }
        self.segment_base = Some(segment_base);
        self.runs.push_back(CachedRun {
            position: position.get(),
            len,
            held_bytes,
            pieces,
        });
        self.add_bytes(held_bytes);
        self.trim(bytes_max);
    }

    /// The bytes of `[position, position + len)` of segment `segment_base`, if all are held.
    /// Parts of buffers are shared, or copied where they are under a
    /// [`PINNED_PER_SERVED_BYTE_MAX`]th of their buffer.
    pub(crate) fn get(
        &self,
        segment_base: Offset,
        position: Position,
        len: u64,
    ) -> Option<Vec<Bytes>> {
        if self.segment_base != Some(segment_base) || len == 0 {
            return None;
        }
        let start = position.get();
        let end = start.checked_add(len)?;
        let first = self.runs.front()?;
        let last = self.runs.back()?;
        if start < first.position || end > last.position + last.len {
            return None;
        }
        let mut out = Vec::new();
        let mut at = first.position;
        for run in &self.runs {
            for piece in &run.pieces {
                let piece_end = at + piece.len() as u64;
                if piece_end > start && at < end {
                    let from = usize::try_from(start.saturating_sub(at)).ok()?;
                    let to = usize::try_from(end.min(piece_end) - at).ok()?;
                    out.push(if (to - from) * PINNED_PER_SERVED_BYTE_MAX < piece.len() {
                        Bytes::copy_from_slice(&piece[from..to])
                    } else {
                        piece.slice(from..to)
                    });
                }
                at = piece_end;
                if at >= end {
                    return Some(out);
                }
            }
        }
        None
    }

    /// Drops the oldest runs until at most `bytes_max` is held (the bound lowered at runtime).
    pub(crate) fn trim(&mut self, bytes_max: u64) {
        while self.bytes > bytes_max {
            let oldest = self.runs.pop_front().expect("held bytes are in runs");
            self.sub_bytes(oldest.held_bytes);
        }
    }

    /// Drops everything held.
    pub(crate) fn clear(&mut self) {
        self.runs.clear();
        self.sub_bytes(self.bytes);
        self.segment_base = None;
    }

    fn add_bytes(&mut self, bytes: u64) {
        self.bytes += bytes;
        SHARD_BYTES.with(|shard| shard.set(shard.get() + bytes));
    }

    fn sub_bytes(&mut self, bytes: u64) {
        self.bytes -= bytes;
        SHARD_BYTES.with(|shard| shard.set(shard.get() - bytes));
    }
}

impl Drop for TailCache {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(from: u8, sizes: &[usize]) -> Vec<Bytes> {
        let mut next = from;
        sizes
            .iter()
            .map(|size| {
                let piece: Vec<u8> = (0..*size)
                    .map(|_| {
                        next = next.wrapping_add(1);
                        next
                    })
                    .collect();
                Bytes::from(piece)
            })
            .collect()
    }

    fn joined(pieces: &[Bytes]) -> Vec<u8> {
        pieces.concat()
    }

    const SEGMENT: Offset = Offset::new(100);

    #[test]
    fn a_range_inside_the_cached_runs_is_served_across_pieces_and_runs() {
        let mut cache = TailCache::default();
        let first = pieces(0, &[10, 5]);
        let second = pieces(50, &[7, 1, 20]);
        cache.push(SEGMENT, Position::new(1000), first.clone(), 15, 1 << 20);
        cache.push(SEGMENT, Position::new(1015), second.clone(), 28, 1 << 20);
        let all: Vec<u8> = [joined(&first), joined(&second)].concat();
        for (start, len) in [
            (1000, 43),
            (1003, 5),
            (1012, 10),
            (1015, 28),
            (1042, 1),
            (1010, 5),
        ] {
            let got = cache.get(SEGMENT, Position::new(start), len).unwrap();
            let from = (start - 1000) as usize;
            assert_eq!(
                joined(&got),
                all[from..from + len as usize],
                "[{start}, +{len})"
            );
        }
        // Outside the cached bytes, or another segment: not served.
        assert!(cache.get(SEGMENT, Position::new(999), 5).is_none());
        assert!(cache.get(SEGMENT, Position::new(1040), 4).is_none());
        assert!(cache.get(Offset::new(7), Position::new(1000), 5).is_none());
        assert!(cache.get(SEGMENT, Position::new(1000), 0).is_none());
    }

    #[test]
    fn a_small_part_of_a_large_buffer_is_copied_not_shared() {
        let mut cache = TailCache::default();
        let run = pieces(0, &[4096, 4096]);
        cache.push(SEGMENT, Position::new(0), run.clone(), 8192, 1 << 20);
        let shares = |got: &Bytes, piece: &Bytes| {
            let range = piece.as_ptr_range();
            range.contains(&got.as_ptr())
        };
        // A quarter of a buffer or more is shared; less is copied.
        let got = cache.get(SEGMENT, Position::new(0), 1024).unwrap();
        assert!(shares(&got[0], &run[0]));
        let got = cache.get(SEGMENT, Position::new(100), 1023).unwrap();
        assert!(!shares(&got[0], &run[0]));
        assert_eq!(got[0][..], run[0][100..1123]);
        // Across two buffers: each part judged against its own buffer.
        let got = cache.get(SEGMENT, Position::new(4000), 2000).unwrap();
        assert_eq!(got.len(), 2);
        assert!(!shares(&got[0], &run[0]), "96 bytes of 4096");
        assert!(shares(&got[1], &run[1]), "1904 bytes of 4096");
        assert_eq!(joined(&got), joined(&run)[4000..6000]);
    }

    #[test]
    fn the_oldest_runs_go_past_the_bound_and_a_gap_or_roll_starts_afresh() {
        let before = shard_tail_cache_bytes();
        let mut cache = TailCache::default();
        cache.push(SEGMENT, Position::new(0), pieces(0, &[100]), 100, 250);
        cache.push(SEGMENT, Position::new(100), pieces(1, &[100]), 100, 250);
        cache.push(SEGMENT, Position::new(200), pieces(2, &[100]), 100, 250);
        assert!(
            cache.get(SEGMENT, Position::new(0), 10).is_none(),
            "evicted"
        );
        assert!(cache.get(SEGMENT, Position::new(100), 200).is_some());
        assert_eq!(shard_tail_cache_bytes() - before, 200);
        // A run too large for the bound is not cached, and leaves nothing stale behind.
        cache.push(SEGMENT, Position::new(300), pieces(3, &[300]), 300, 250);
        assert!(cache.get(SEGMENT, Position::new(200), 10).is_none());
        assert_eq!(shard_tail_cache_bytes(), before);
        // A run that does not follow (after a roll: another segment) starts afresh.
        cache.push(SEGMENT, Position::new(600), pieces(4, &[50]), 50, 250);
        cache.push(
            Offset::new(200),
            Position::new(0),
            pieces(5, &[50]),
            50,
            250,
        );
        assert!(cache.get(SEGMENT, Position::new(600), 10).is_none());
        assert!(cache.get(Offset::new(200), Position::new(0), 50).is_some());
        drop(cache);
        assert_eq!(
            shard_tail_cache_bytes(),
            before,
            "a dropped cache gives its bytes back"
        );
    }
}
