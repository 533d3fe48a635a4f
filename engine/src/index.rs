//! Sparse per-segment indexes: offset → file position, and timestamp → offset.
//!
//! Both are held in memory (a sorted `Vec`, searched by bisection) and mirrored to disk so that a
//! restart does not rescan whole segments. The files are a cache: recovery checks them against the
//! log and rebuilds them when they disagree.
//!
//! # Byte maps (big-endian, fixed-size entries, no header)
//! ```text
//! NNNNNNNNNNNNNNNNNNNN.index      entry = 8 bytes
//!   0  4  relative_offset u32   (offset - segment base offset)
//!   4  4  position        u32   (byte position of the batch in the .log)
//! NNNNNNNNNNNNNNNNNNNN.timeindex  entry = 12 bytes
//!   0  8  timestamp       i64   (largest batch max_timestamp seen so far in the segment)
//!   8  4  relative_offset u32   (base offset of the batch that carried it, minus segment base)
//! ```
//!
//! # Invariants
//! - Offset index entries are strictly increasing in both offset and position.
//! - Time index entries are strictly increasing in timestamp and non-decreasing in offset.
//! - An entry never points past the segment's valid end (recovery drops entries that do).
#![forbid(unsafe_code)]

use crate::units::{Offset, Position};

/// Bytes of one offset index entry on disk.
pub const OFFSET_ENTRY_BYTES: usize = 8;
/// Bytes of one time index entry on disk.
pub const TIME_ENTRY_BYTES: usize = 12;

/// An offset index entry, in absolute terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub offset: Offset,
    pub position: Position,
}

/// A time index entry, in absolute terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub offset: Offset,
}

/// Sparse map from offset to the byte position of the batch that starts there.
#[derive(Debug, Clone)]
pub struct OffsetIndex {
    base_offset: Offset,
    entries: Vec<OffsetEntry>,
}

impl OffsetIndex {
    pub fn new(base_offset: Offset) -> Self {
        Self {
            base_offset,
            entries: Vec::new(),
        }
    }

    pub fn entries(&self) -> &[OffsetEntry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn last(&self) -> Option<OffsetEntry> {
        self.entries.last().copied()
    }

    /// Adds an entry; the caller appends in log order.
    ///
    /// # Panics
    /// When the entry lies below the segment's base, does not follow the last entry in both
    /// offset and position, or cannot be stored in the file's `u32` fields: an index out of order
    /// would send lookups to the wrong batch, so this is checked in release builds too (two
    /// comparisons per entry, one entry per `index.interval.bytes` of log).
    pub fn push(&mut self, entry: OffsetEntry) {
        assert!(
            (0..=i64::from(u32::MAX)).contains(&entry.offset.since(self.base_offset)),
            "offset index entry {entry:?} outside segment {}",
            self.base_offset
        );
        let _fits_in_file = entry.position.to_index_u32();
        if let Some(last) = self.entries.last() {
            assert!(
                entry.offset > last.offset && entry.position > last.position,
                "offset index must increase in offset and position: {entry:?} after {last:?}"
            );
        }
        self.entries.push(entry);
    }

    /// The last entry whose offset is at most `offset`.
    pub fn floor_by_offset(&self, offset: Offset) -> Option<OffsetEntry> {
        let count = self.entries.partition_point(|entry| entry.offset <= offset);
        count.checked_sub(1).map(|index| self.entries[index])
    }

    /// The last entry whose position is at most `position`.
    pub fn floor_by_position(&self, position: Position) -> Option<OffsetEntry> {
        let count = self
            .entries
            .partition_point(|entry| entry.position <= position);
        count.checked_sub(1).map(|index| self.entries[index])
    }

    /// Drops entries at or past `position` (after a truncation of the log).
    pub fn truncate_to_position(&mut self, position: Position) {
        let keep = self
            .entries
            .partition_point(|entry| entry.position < position);
        self.entries.truncate(keep);
    }

    /// Encodes entries `from..` for appending to the index file.
    pub fn encode_from(&self, from: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity((self.entries.len() - from) * OFFSET_ENTRY_BYTES);
        for entry in &self.entries[from..] {
            out.extend_from_slice(&relative_offset(entry.offset, self.base_offset).to_be_bytes());
            out.extend_from_slice(&entry.position.to_index_u32().to_be_bytes());
        }
        out
    }

    /// Decodes an index file, keeping the longest prefix that is sorted and points below
    /// `log_end_position`. Returns the index and whether the whole file was valid.
    pub fn decode(base_offset: Offset, bytes: &[u8], log_end_position: Position) -> (Self, bool) {
        let mut index = Self::new(base_offset);
        let whole_entries = bytes.len() / OFFSET_ENTRY_BYTES;
        let mut valid = bytes.len().is_multiple_of(OFFSET_ENTRY_BYTES);
        for chunk in bytes.chunks_exact(OFFSET_ENTRY_BYTES).take(whole_entries) {
            let relative = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            let position = u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
            let entry = OffsetEntry {
                offset: base_offset.plus(i64::from(relative)),
                position: Position::from(position),
            };
            let ordered = index
                .last()
                .is_none_or(|last| entry.offset > last.offset && entry.position > last.position);
            if !ordered || entry.position >= log_end_position {
                valid = false;
                break;
            }
            index.entries.push(entry);
        }
        (index, valid)
    }
}

/// Sparse map from timestamp to the first offset that reached it.
#[derive(Debug, Clone)]
pub struct TimeIndex {
    base_offset: Offset,
    entries: Vec<TimeEntry>,
}

impl TimeIndex {
    pub fn new(base_offset: Offset) -> Self {
        Self {
            base_offset,
            entries: Vec::new(),
        }
    }

    pub fn entries(&self) -> &[TimeEntry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn last(&self) -> Option<TimeEntry> {
        self.entries.last().copied()
    }

    /// Adds an entry if it raises the maximum timestamp; returns whether it did.
    pub fn push_if_newer(&mut self, entry: TimeEntry) -> bool {
        if let Some(last) = self.entries.last() {
            if entry.timestamp <= last.timestamp {
                return false;
            }
            // Release builds check it too: a time lookup trusts the order to start its walk.
            assert!(
                entry.offset >= last.offset,
                "time index offsets must not decrease: {entry:?} after {last:?}"
            );
        }
        self.entries.push(entry);
        true
    }

    /// The last entry whose timestamp is below `timestamp`: every batch up to its offset is older
    /// than `timestamp`, so a search for the first batch at or after `timestamp` may start there.
    pub fn last_before(&self, timestamp: i64) -> Option<TimeEntry> {
        let count = self
            .entries
            .partition_point(|entry| entry.timestamp < timestamp);
        count.checked_sub(1).map(|index| self.entries[index])
    }

    /// Drops entries at or past `offset` (after a truncation of the log).
    pub fn truncate_to_offset(&mut self, offset: Offset) {
        let keep = self.entries.partition_point(|entry| entry.offset < offset);
        self.entries.truncate(keep);
    }

    pub fn encode_from(&self, from: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity((self.entries.len() - from) * TIME_ENTRY_BYTES);
        for entry in &self.entries[from..] {
            out.extend_from_slice(&entry.timestamp.to_be_bytes());
            out.extend_from_slice(&relative_offset(entry.offset, self.base_offset).to_be_bytes());
        }
        out
    }

    /// Decodes a time index file, keeping the longest ordered prefix whose offsets are below
    /// `next_offset`. Returns the index and whether the whole file was valid.
    pub fn decode(base_offset: Offset, bytes: &[u8], next_offset: Offset) -> (Self, bool) {
        let mut index = Self::new(base_offset);
        let mut valid = bytes.len().is_multiple_of(TIME_ENTRY_BYTES);
        for chunk in bytes.chunks_exact(TIME_ENTRY_BYTES) {
            let mut raw_timestamp = [0u8; 8];
            raw_timestamp.copy_from_slice(&chunk[..8]);
            let relative = u32::from_be_bytes([chunk[8], chunk[9], chunk[10], chunk[11]]);
            let entry = TimeEntry {
                timestamp: i64::from_be_bytes(raw_timestamp),
                offset: base_offset.plus(i64::from(relative)),
            };
            let ordered = index
                .last()
                .is_none_or(|last| entry.timestamp > last.timestamp && entry.offset >= last.offset);
            if !ordered || entry.offset >= next_offset {
                valid = false;
                break;
            }
            index.entries.push(entry);
        }
        (index, valid)
    }
}

/// `offset` relative to the segment's base, as the index files store it.
///
/// # Panics
/// When the offset lies outside the segment's `u32` range: [`OffsetIndex::push`] refuses such
/// entries, and a segment rolls before its offsets reach it.
fn relative_offset(offset: Offset, base_offset: Offset) -> u32 {
    u32::try_from(offset.since(base_offset))
        .expect("index offsets lie within the segment's u32 range")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn build(base: i64, gaps: &[(u8, u16)]) -> OffsetIndex {
        let mut index = OffsetIndex::new(Offset::new(base));
        let (mut offset, mut position) = (base, 0u32);
        for &(offset_gap, position_gap) in gaps {
            offset += i64::from(offset_gap) + 1;
            position += u32::from(position_gap) + 1;
            index.push(OffsetEntry {
                offset: Offset::new(offset),
                position: Position::from(position),
            });
        }
        index
    }

    proptest! {
        #[test]
        fn floor_lookups_match_a_linear_scan(
            gaps in proptest::collection::vec((any::<u8>(), any::<u16>()), 0..200),
            probe in 0i64..60_000,
        ) {
            // Bisection must agree with the obvious model on every probe.
            let index = build(1_000, &gaps);
            let probe_offset = Offset::new(1_000 + probe);
            let model = index.entries().iter().rev().find(|e| e.offset <= probe_offset).copied();
            prop_assert_eq!(index.floor_by_offset(probe_offset), model);
            let probe_position = Position::new(probe.unsigned_abs() * 64);
            let model = index.entries().iter().rev().find(|e| e.position <= probe_position).copied();
            prop_assert_eq!(index.floor_by_position(probe_position), model);
        }

        #[test]
        fn offset_index_file_round_trips(gaps in proptest::collection::vec((any::<u8>(), any::<u16>()), 0..200)) {
            // What is written to disk decodes to the same entries.
            let index = build(77, &gaps);
            let (decoded, valid) = OffsetIndex::decode(Offset::new(77), &index.encode_from(0), Position::new(u64::MAX));
            prop_assert!(valid);
            prop_assert_eq!(decoded.entries(), index.entries());
        }

        #[test]
        fn decoding_garbage_keeps_a_sorted_prefix(bytes in proptest::collection::vec(any::<u8>(), 0..400), end in 0u64..100_000) {
            // Random file contents never panic and never yield an unsorted index.
            let (index, _) = OffsetIndex::decode(Offset::ZERO, &bytes, Position::new(end));
            for pair in index.entries().windows(2) {
                prop_assert!(pair[0].offset < pair[1].offset && pair[0].position < pair[1].position);
            }
            prop_assert!(index.entries().iter().all(|e| e.position.get() < end));
            let (time, _) = TimeIndex::decode(Offset::ZERO, &bytes, Offset::new(i64::try_from(end).unwrap()));
            for pair in time.entries().windows(2) {
                prop_assert!(pair[0].timestamp < pair[1].timestamp && pair[0].offset <= pair[1].offset);
            }
        }

        #[test]
        fn time_lookup_matches_a_linear_scan(
            steps in proptest::collection::vec((0i64..50, 0i64..5), 0..100),
            probe in 0i64..6_000,
        ) {
            // last_before is the last entry strictly older than the probe.
            let mut index = TimeIndex::new(Offset::ZERO);
            let (mut timestamp, mut offset) = (0i64, 0i64);
            for (dt, doff) in steps {
                timestamp += dt;
                offset += doff;
                index.push_if_newer(TimeEntry { timestamp, offset: Offset::new(offset) });
            }
            let model = index.entries().iter().rev().find(|e| e.timestamp < probe).copied();
            prop_assert_eq!(index.last_before(probe), model);
            let (decoded, valid) = TimeIndex::decode(Offset::ZERO, &index.encode_from(0), Offset::new(i64::MAX));
            prop_assert!(valid);
            prop_assert_eq!(decoded.entries(), index.entries());
        }
    }

    #[test]
    fn truncation_drops_entries_at_or_past_the_cut() {
        // After the log is cut at a position, no index entry may point there or beyond.
        let mut index = build(0, &[(0, 99), (0, 99), (0, 99)]);
        index.truncate_to_position(Position::new(200));
        assert_eq!(index.len(), 1);
        assert_eq!(index.last().unwrap().position, Position::new(100));
    }
}
