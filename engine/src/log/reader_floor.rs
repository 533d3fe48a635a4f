//! Where the live readers of the active segment are, so that a drop behind (`drop.behind.bytes`)
//! leaves the pages a reader a little behind the end has yet to read (`drop.behind.max.bytes`;
//! decision 0034).
//!
//! Without it, a consumer that falls more than `drop.behind.bytes` behind a fast producer (a
//! pause, a burst, a shared core) finds the pages it needs next dropped, reads them from disk,
//! and falls further behind. Kafka's page cache would have kept them.
//!
//! The log knows no consumers, only reads. A reader is followed by where its reads continue: a
//! consumer's next fetch starts where its last one ended, at a batch boundary, so a read that
//! starts where a known reader's last read ended is that reader moving on. Each known reader
//! holds the pages from the start of its read before the latest: a consumer fetches ahead (the
//! Java consumer, librdkafka and the loadgen keep a fetch in flight while they process the last
//! one), and the server sends a planned range as the client's socket drains, so the range of
//! the read before the latest may still be going out. One not seen for [`READER_TIMEOUT`] is
//! forgotten. At most [`READERS_MAX`] are followed per log, the stalest replaced first.
//!
//! Positions are the active segment's, and a reader still in a segment before it has a negative
//! one (its position less the sizes of the segments from its own to the active one): it has yet
//! to read the whole active segment, and a roll does not lose it.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use crate::units::Offset;

/// Segments a drop behind looks at, newest first (`drop_behind.rs`), the active one included.
/// With segments smaller than `drop.behind.bytes / 64` (4 MiB under the defaults), none of them
/// lies wholly behind the window, and nothing is dropped at all: drops behind are in effect off
/// for such a log. A reader further back than the walk is neither followed (`read.rs`) nor
/// rebased at a roll (`state.rs`). Kept here, beside the readers, so the drop and the log's state
/// do not import each other.
pub(crate) const SEGMENTS_WALKED_MAX: usize = 64;

/// How long a reader counts after its last read: longer than a live consumer's wait between
/// fetches (a long poll waits 500 ms by default, and a consumer at the tail of a busy partition
/// fetches far more often), short enough that a gone consumer stops holding pages soon.
pub(crate) const READER_TIMEOUT: Duration = Duration::from_secs(2);

/// Readers followed per log: consumer groups of one partition, each with one consumer reading
/// it. More are not followed (the stalest is replaced), which only lets drops go ahead.
pub(crate) const READERS_MAX: usize = 8;

#[derive(Debug, Clone, Copy)]
struct Reader {
    /// Where its read before the latest started: what may still be going out to it.
    held_from: i64,
    /// Where its latest read started.
    latest_start: i64,
    /// Where its latest read ended: where its next read starts.
    next_position: i64,
    last_read: Instant,
}

/// The readers of the active segment, by where they read next.
#[derive(Debug, Default)]
pub(crate) struct ReaderFloor {
    /// The active segment the positions are relative to: after a roll the log rebases them
    /// ([`ReaderFloor::rebase`]); a note or a floor for another segment forgets the readers.
    segment_base: Offset,
    readers: Vec<Reader>,
}

impl ReaderFloor {
    /// A reader read `[start, end)`, positions relative to the active segment based at
    /// `segment_base`.
    pub(crate) fn note(&mut self, segment_base: Offset, start: i64, end: i64, now: Instant) {
        if segment_base != self.segment_base {
            self.segment_base = segment_base;
            self.readers.clear();
        }
        let continued = self
            .readers
            .iter_mut()
            .find(|reader| reader.next_position == start);
        if let Some(reader) = continued {
            *reader = Reader {
                held_from: reader.latest_start,
                latest_start: start,
                next_position: end,
                last_read: now,
            };
            return;
        }
        let new = Reader {
            held_from: start,
            latest_start: start,
            next_position: end,
            last_read: now,
        };
        if self.readers.len() < READERS_MAX {
            self.readers.push(new);
        } else if let Some(stalest) = self.readers.iter_mut().min_by_key(|r| r.last_read) {
            *stalest = new;
        }
    }

    /// The segment the positions are relative to.
    pub(crate) fn segment_base(&self) -> Offset {
        self.segment_base
    }

    /// Makes the positions relative to the segment based at `segment_base`, which starts
    /// `shift_bytes` after the one they were relative to (a roll); `None`: that segment is gone
    /// or too far back, and the readers are forgotten.
    pub(crate) fn rebase(&mut self, segment_base: Offset, shift_bytes: Option<i64>) {
        self.segment_base = segment_base;
        let Some(shift) = shift_bytes else {
            self.readers.clear();
            return;
        };
        for reader in &mut self.readers {
            reader.held_from = reader.held_from.saturating_sub(shift);
            reader.latest_start = reader.latest_start.saturating_sub(shift);
            reader.next_position = reader.next_position.saturating_sub(shift);
        }
    }

    /// The lowest position of the active segment based at `segment_base` a reader seen within
    /// [`READER_TIMEOUT`] may still need (negative: it is still in the segment before); the
    /// readers not seen since are forgotten.
    pub(crate) fn floor(&mut self, segment_base: Offset, now: Instant) -> Option<i64> {
        if segment_base != self.segment_base {
            return None;
        }
        self.readers
            .retain(|reader| now.saturating_duration_since(reader.last_read) < READER_TIMEOUT);
        self.readers.iter().map(|reader| reader.held_from).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Offset = Offset::ZERO;

    #[test]
    fn a_reader_is_followed_from_read_to_read_and_holds_its_read_before_the_latest() {
        let now = Instant::now();
        let mut floor = ReaderFloor::default();
        assert_eq!(floor.floor(BASE, now), None, "no reader yet");
        floor.note(BASE, 0, 100, now);
        assert_eq!(
            floor.floor(BASE, now),
            Some(0),
            "its first read may still go out"
        );
        floor.note(BASE, 100, 250, now);
        assert_eq!(
            floor.floor(BASE, now),
            Some(0),
            "a fetch ahead: the first may still go out"
        );
        floor.note(BASE, 250, 400, now);
        assert_eq!(floor.floor(BASE, now), Some(100), "one reader, moved on");
        assert_eq!(floor.readers.len(), 1);
    }

    #[test]
    fn the_slowest_of_several_readers_is_the_floor() {
        let now = Instant::now();
        let mut floor = ReaderFloor::default();
        floor.note(BASE, 0, 100, now);
        floor.note(BASE, 1_000, 1_200, now);
        floor.note(BASE, 1_200, 1_500, now);
        assert_eq!(floor.floor(BASE, now), Some(0));
        floor.note(BASE, 100, 2_000, now);
        floor.note(BASE, 2_000, 2_100, now);
        floor.note(BASE, 2_100, 2_200, now);
        assert_eq!(
            floor.floor(BASE, now),
            Some(1_000),
            "the slow one overtook the other"
        );
    }

    #[test]
    fn a_reader_not_seen_for_the_timeout_is_forgotten() {
        let start = Instant::now();
        let mut floor = ReaderFloor::default();
        floor.note(BASE, 0, 100, start);
        floor.note(BASE, 500, 600, start + READER_TIMEOUT / 2);
        assert_eq!(floor.floor(BASE, start + READER_TIMEOUT / 2), Some(0));
        assert_eq!(floor.floor(BASE, start + READER_TIMEOUT), Some(500));
        assert_eq!(floor.floor(BASE, start + 2 * READER_TIMEOUT), None);
    }

    #[test]
    fn at_most_readers_max_are_followed_the_stalest_replaced() {
        let start = Instant::now();
        let mut floor = ReaderFloor::default();
        for reader in 0..READERS_MAX as i64 {
            let at = start + Duration::from_millis(reader as u64);
            floor.note(BASE, reader * 1_000, reader * 1_000 + 10, at);
        }
        assert_eq!(floor.floor(BASE, start), Some(0));
        // A new reader takes the place of the one seen longest ago (the one at 0).
        floor.note(BASE, 50_000, 50_010, start + Duration::from_millis(100));
        assert_eq!(floor.readers.len(), READERS_MAX);
        assert_eq!(floor.floor(BASE, start), Some(1_000));
    }

    #[test]
    fn a_reader_in_the_segment_before_is_followed_into_the_active_one() {
        let now = Instant::now();
        let mut floor = ReaderFloor::default();
        // 500 bytes before the end of the segment before the active one, then across.
        floor.note(BASE, -500, -300, now);
        assert_eq!(floor.floor(BASE, now), Some(-500));
        floor.note(BASE, -300, 0, now);
        floor.note(BASE, 0, 200, now);
        assert_eq!(floor.floor(BASE, now), Some(-300));
        floor.note(BASE, 200, 300, now);
        assert_eq!(floor.floor(BASE, now), Some(0));
        assert_eq!(floor.readers.len(), 1, "one reader, followed across");
    }

    #[test]
    fn a_rebase_after_a_roll_keeps_the_readers_and_their_continuity() {
        let now = Instant::now();
        let mut floor = ReaderFloor::default();
        floor.note(BASE, 100, 300, now);
        floor.note(BASE, 300, 900, now);
        // The segment rolled at 1,000 bytes: the reader holds from 900 bytes before the new one.
        let next = Offset::new(50);
        floor.rebase(next, Some(1_000));
        assert_eq!(floor.segment_base(), next);
        assert_eq!(floor.floor(next, now), Some(-900));
        floor.note(next, -100, 200, now);
        assert_eq!(
            floor.floor(next, now),
            Some(-700),
            "the same reader moved on"
        );
        assert_eq!(floor.readers.len(), 1);
        // A segment gone (or too far back) forgets them.
        floor.rebase(Offset::new(90), None);
        assert_eq!(floor.floor(Offset::new(90), now), None);
    }

    #[test]
    fn a_roll_forgets_the_readers_of_the_segment_before() {
        let now = Instant::now();
        let mut floor = ReaderFloor::default();
        floor.note(BASE, 0, 300, now);
        let next = Offset::new(1_000);
        assert_eq!(floor.floor(next, now), None, "asked of another segment");
        floor.note(next, 0, 700, now);
        assert_eq!(floor.floor(next, now), Some(0));
        assert_eq!(floor.floor(BASE, now), None);
    }
}
