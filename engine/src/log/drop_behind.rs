//! Drops behind the tail (`drop.behind.bytes`, decision 0033): the page cache keeps about that
//! many bytes of a partition's newest data, and writes take the pages so freed, which on this kind
//! of VM cost far less CPU than fresh ones.
//!
//! The window is the log's, not the active segment's: right after a roll the newest data is the
//! end of the segment before plus the start of the new one. So the segments are walked from the
//! newest back, each dropping what lies behind the window, and a rolled segment wholly behind it
//! is dropped to its end. Before, only the active segment was dropped: each roll left the last
//! `drop.behind.bytes` of the segment before cached for good, and the new segment's first
//! `drop.behind.bytes` were written with no drops freeing pages, into fresh ones. With the default
//! 1 GiB segments and 256 MiB kept, four partitions rolling together at 500 MB/s stalled the
//! producer for about a second at each roll (p99 62-236 ms in `fixed-rate-latency`, the kernel's
//! copy into those pages taking over both cores: results/drop-behind-rolls/).
//!
//! Pages a live reader has yet to read stay, up to `drop.behind.max.bytes` behind the end
//! (decision 0034, `reader_floor.rs`).
#![forbid(unsafe_code)]

use super::reader_floor::SEGMENTS_WALKED_MAX;
use super::state::PartitionLog;
use crate::segment::SegmentFiles;
use crate::units::Position;

/// The largest page-cache folio (a PMD, 2 MiB with 4 KiB pages), which the kernel aligns in the
/// file to its size. Started writeback stays this far behind the log's end (`writer.rs`), so no
/// folio it starts is written again by a later append; drops behind the active segment end on a
/// multiple of it, since a folio across the end of a dropped range stays cached, and the next
/// range, starting there, would leave it cached for good.
pub(super) const LARGEST_FOLIO_BYTES: u64 = 2 << 20;

/// The least a drop behind takes at a time from a segment still in the window: one io-wq
/// operation per this many bytes written.
const DROP_BEHIND_STEP_BYTES: u64 = 8 << 20;

/// What a drop needs to know of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Extent {
    pub size_bytes: u64,
    pub dropped_behind_bytes: u64,
}

/// A range of one segment to write back and drop: `[from, to)` of the segment `newest_first`
/// places back from the active one (0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Drop {
    pub newest_first: usize,
    pub from: u64,
    pub to: u64,
}

/// The ranges due to be dropped, newest segment first, given the segments newest first (the active one's size being
/// its end after the write just made), the bytes to keep, and a live reader's floor (a position
/// relative to the active segment's start, negative in the segment before) with how far behind
/// the end it may hold pages.
pub(super) fn plan(
    newest_first: &[Extent],
    keep_bytes: u64,
    reader_floor: Option<i64>,
    hold_bytes: u64,
) -> Vec<Drop> {
    let Some(active) = newest_first.first() else {
        return Vec::new();
    };
    let active_end = i64::try_from(active.size_bytes).unwrap_or(i64::MAX);
    let minus = |bytes: u64| active_end.saturating_sub(i64::try_from(bytes).unwrap_or(i64::MAX));
    // Everything before this (relative to the active segment's start) may go.
    let mut may_go_before = minus(keep_bytes);
    if let Some(floor) = reader_floor {
        // A live reader has yet to read from `floor` on: those pages stay, as long as they lie
        // within `drop.behind.max.bytes` of the end.
        may_go_before = may_go_before.min(floor.max(minus(hold_bytes)));
    }
    let mut drops = Vec::new();
    let mut segment_start = 0i64;
    for (index, extent) in newest_first.iter().enumerate().take(SEGMENTS_WALKED_MAX) {
        let size = i64::try_from(extent.size_bytes).unwrap_or(i64::MAX);
        if index > 0 {
            segment_start = segment_start.saturating_sub(size);
        }
        let local = may_go_before.saturating_sub(segment_start);
        // A rolled segment takes no more writes: wholly behind the window, it goes to its end.
        let whole = index > 0 && local >= size;
        let to = if whole {
            extent.size_bytes.next_multiple_of(LARGEST_FOLIO_BYTES)
        } else {
            let local = u64::try_from(local.clamp(0, size)).unwrap_or(0);
            local / LARGEST_FOLIO_BYTES * LARGEST_FOLIO_BYTES
        };
        let from = extent.dropped_behind_bytes;
        // The walk goes on past a segment dropped whole: an older one need not have gone when
        // this one fell behind the window (a plan skipped while a drop ran, a reader's hold over
        // several rolls). Segments dropped before cost a comparison, no call.
        if to > from && (whole || to - from >= DROP_BEHIND_STEP_BYTES) {
            drops.push(Drop {
                newest_first: index,
                from,
                to,
            });
        }
    }
    drops
}

impl PartitionLog {
    /// With `drop.behind.bytes`, after a write that ends the active segment (`files`) at `end`:
    /// once the segments hold at least [`DROP_BEHIND_STEP_BYTES`] behind the window that were not
    /// dropped yet (or a rolled segment fell wholly behind it), writes them back, waits, and drops
    /// them from the page cache, in a detached task (the kernel's io-wq does the waiting; one such
    /// task per log at a time, the next one catches up). Errors are not acted on here, as for
    /// started writeback: the next fsync reports a failed writeback.
    pub(super) fn drop_behind_if_due(&self, files: &SegmentFiles, end: Position) {
        let (ranges, running) = {
            let mut state = self.state.borrow_mut();
            let keep_bytes = state.config.drop_behind_bytes;
            if keep_bytes == 0 || state.drop_behind_running.get() {
                return;
            }
            let hold_bytes = state.config.drop_behind_max_bytes;
            let active_base = state.rebase_reader_floor();
            let reader_floor = state
                .reader_floor
                .floor(active_base, std::time::Instant::now());
            let extents: Vec<Extent> = state
                .segments
                .iter()
                .rev()
                .take(SEGMENTS_WALKED_MAX)
                .enumerate()
                .map(|(index, segment)| Extent {
                    size_bytes: if index == 0 {
                        end.get()
                    } else {
                        segment.size_bytes
                    },
                    dropped_behind_bytes: segment.dropped_behind_bytes,
                })
                .collect();
            let drops = plan(&extents, keep_bytes, reader_floor, hold_bytes);
            if drops.is_empty() {
                return;
            }
            let newest = state.segments.len() - 1;
            let mut ranges = Vec::with_capacity(drops.len());
            for drop in drops.iter().rev() {
                let segment = &mut state.segments[newest - drop.newest_first];
                assert_eq!(
                    segment.dropped_behind_bytes, drop.from,
                    "a drop starts where the last one ended"
                );
                segment.dropped_behind_bytes = drop.to;
                let log = if drop.newest_first == 0 {
                    files.log.clone()
                } else {
                    segment.files.log.clone()
                };
                ranges.push((log, drop.from, drop.to - drop.from));
            }
            // Counted up to each segment's end: a whole drop rounds up past it to a folio.
            state.stats.dropped_behind_bytes += drops
                .iter()
                .map(|d| {
                    let end = extents[d.newest_first].size_bytes;
                    d.to.min(end).saturating_sub(d.from)
                })
                .sum::<u64>();
            state.drop_behind_running.set(true);
            (ranges, std::rc::Rc::clone(&state.drop_behind_running))
        };
        compio::runtime::spawn(async move {
            // Oldest first: those pages are surely past every live reader.
            for (log, from, len) in ranges {
                let _ = log.write_back_and_drop(from, len).await;
            }
            running.set(false);
        })
        .detach();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn extent(size_mib: u64, dropped_mib: u64) -> Extent {
        Extent {
            size_bytes: size_mib * MIB,
            dropped_behind_bytes: dropped_mib * MIB,
        }
    }

    fn drop(newest_first: usize, from_mib: u64, to_mib: u64) -> Drop {
        Drop {
            newest_first,
            from: from_mib * MIB,
            to: to_mib * MIB,
        }
    }

    #[test]
    fn the_active_segment_drops_in_steps_on_folio_bounds() {
        assert_eq!(plan(&[extent(100, 0)], 256 * MIB, None, 0), vec![]);
        assert_eq!(
            plan(&[extent(260, 0)], 256 * MIB, None, 0),
            vec![],
            "under a step"
        );
        assert_eq!(
            plan(&[extent(265, 0)], 256 * MIB, None, 0),
            vec![drop(0, 0, 8)]
        );
        let odd = Extent {
            size_bytes: 256 * MIB + 11 * MIB + 5,
            dropped_behind_bytes: 0,
        };
        assert_eq!(plan(&[odd], 256 * MIB, None, 0), vec![drop(0, 0, 10)]);
    }

    #[test]
    fn after_a_roll_the_segment_before_drops_what_the_new_one_adds() {
        // 1 GiB rolled with its last 256 MiB cached; the new segment holds 16 MiB.
        let before = extent(1024, 768);
        assert_eq!(
            plan(&[extent(16, 0), before], 256 * MIB, None, 0),
            vec![drop(1, 768, 784)]
        );
        // Once the new segment holds the whole window, the one before goes to its end.
        assert_eq!(
            plan(&[extent(256, 0), extent(1024, 784)], 256 * MIB, None, 0),
            vec![drop(1, 784, 1024)]
        );
        assert_eq!(
            plan(&[extent(270, 0), extent(1024, 1024)], 256 * MIB, None, 0),
            vec![drop(0, 0, 14)],
            "a segment dropped whole is passed over"
        );
    }

    #[test]
    fn a_rolled_segment_whose_end_is_not_on_a_folio_goes_whole() {
        let before = Extent {
            size_bytes: 1000 * MIB + 123,
            dropped_behind_bytes: 0,
        };
        assert_eq!(
            plan(&[extent(300, 0), before], 256 * MIB, None, 0),
            vec![drop(0, 0, 44), drop(1, 0, 1002)]
        );
    }

    #[test]
    fn small_segments_in_the_window_drop_in_turn() {
        // 64 MiB segments, 256 MiB kept: the window spans the active one and four before it.
        let newest_first = [
            extent(32, 0),
            extent(64, 0),
            extent(64, 0),
            extent(64, 0),
            extent(64, 0),
            extent(64, 0),
            extent(64, 64),
        ];
        assert_eq!(
            plan(&newest_first, 256 * MIB, None, 0),
            vec![drop(4, 0, 32), drop(5, 0, 64)]
        );
    }

    #[test]
    fn older_segments_not_dropped_yet_go_too() {
        // Two segments fell wholly behind the window while a drop ran (no plan then), with an
        // empty one between them: all of them go, oldest included.
        let newest_first = [
            extent(200, 0),
            extent(64, 0),
            extent(0, 0),
            extent(64, 16),
            extent(64, 64),
        ];
        assert_eq!(
            plan(&newest_first, 128 * MIB, None, 0),
            vec![drop(0, 0, 72), drop(1, 0, 64), drop(3, 16, 64)]
        );
    }

    #[test]
    fn small_segments_stay_near_the_window_when_plans_are_skipped() {
        // 16 MiB segments written 5 MiB at a time, a plan only every third write (a drop still
        // running skips the others), a reader holding 100 MiB for a while: what stays cached never
        // grows past the window, and every segment behind it goes in the end.
        let mut newest_first: Vec<Extent> = vec![extent(0, 0)];
        for write in 0..400u64 {
            if newest_first[0].size_bytes >= 16 * MIB {
                newest_first.insert(0, extent(0, 0));
            }
            newest_first[0].size_bytes += 5 * MIB;
            if write % 3 != 0 {
                continue;
            }
            let reader = (100..160).contains(&write).then_some(-100 * MIB as i64);
            let walked = newest_first.len().min(SEGMENTS_WALKED_MAX);
            for drop in plan(&newest_first[..walked], 64 * MIB, reader, 200 * MIB) {
                let extent = &mut newest_first[drop.newest_first];
                assert_eq!(drop.from, extent.dropped_behind_bytes);
                extent.dropped_behind_bytes = drop.to;
            }
            if reader.is_none() {
                let cached = newest_first
                    .iter()
                    .map(|e| e.size_bytes.saturating_sub(e.dropped_behind_bytes))
                    .sum::<u64>();
                assert!(
                    cached <= 64 * MIB + 3 * 5 * MIB + DROP_BEHIND_STEP_BYTES + 16 * MIB,
                    "write {write}: {} MiB cached",
                    cached / MIB
                );
            }
        }
    }

    #[test]
    fn a_live_reader_in_the_segment_before_holds_its_pages_within_the_hold() {
        let newest_first = [extent(300, 0), extent(1024, 0)];
        // The reader is 100 MiB before the roll: that much of the segment before stays.
        assert_eq!(
            plan(
                &newest_first,
                256 * MIB,
                Some(-100 * MIB as i64),
                1024 * MIB
            ),
            vec![drop(1, 0, 924)]
        );
        // A hold of 512 MiB reaches 212 MiB into the segment before, so the reader keeps only
        // what lies within it.
        assert_eq!(
            plan(&newest_first, 256 * MIB, Some(-500 * MIB as i64), 512 * MIB),
            vec![drop(1, 0, 812)]
        );
        // A reader in the active segment holds it from its floor on.
        assert_eq!(
            plan(&newest_first, 256 * MIB, Some(20 * MIB as i64), 1024 * MIB),
            vec![drop(0, 0, 20), drop(1, 0, 1024)]
        );
    }

    #[test]
    fn nothing_is_dropped_twice_and_drops_only_move_forward() {
        let mut newest_first = vec![extent(8, 0), extent(1024, 768)];
        let mut dropped_total = 0;
        for _ in 0..200 {
            newest_first[0].size_bytes += 3 * MIB + 17;
            for drop in plan(&newest_first, 256 * MIB, None, 0) {
                let extent = &mut newest_first[drop.newest_first];
                assert_eq!(drop.from, extent.dropped_behind_bytes);
                assert!(drop.to > drop.from);
                extent.dropped_behind_bytes = drop.to;
                dropped_total += drop.to - drop.from;
            }
            let cached = newest_first
                .iter()
                .map(|e| e.size_bytes.saturating_sub(e.dropped_behind_bytes))
                .sum::<u64>();
            assert!(
                cached <= 256 * MIB + DROP_BEHIND_STEP_BYTES + LARGEST_FOLIO_BYTES,
                "the cache stays near the window: {cached}"
            );
        }
        assert!(dropped_total > 256 * MIB);
        assert_eq!(newest_first[1].dropped_behind_bytes, 1024 * MIB);
    }
}
