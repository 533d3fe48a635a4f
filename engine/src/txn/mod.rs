//! Transactions as a partition's log sees them (KIP-98): which producers have a transaction open
//! here, where the last stable offset (LSO) is, and which transactions were aborted.
//!
//! The engine builds no transaction: a coordinator (in the broker) appends transactional batches
//! (attributes bit `0x10`) and control batches (`0x20 | 0x10`, one record, the marker) through the
//! ordinary append path. This module reads those bytes as Kafka defines them:
//! - a control record's key is `version: i16 = 0, type: i16` (0 = ABORT, 1 = COMMIT); its value
//!   is `version: i16, coordinator_epoch: i32` (not needed here);
//! - a producer's transaction in a partition starts at its first transactional batch after its
//!   last marker, and ends at its next marker.
//!
//! Control batches carry `base_sequence = -1`, so the idempotent producers' table
//! ([`crate::producer`]) never sees them, and they are never data: compaction puts no marker
//! key in its key map, and removes a marker only once its transaction has no record left and
//! its delete horizon passed ([`cleaning`]).
//!
//! # Invariants worth naming
//! - A producer has at most one open transaction per partition; its first offset is the base
//!   offset of the first transactional batch since the producer's last marker.
//! - The LSO is `min(first offset of every open transaction, high watermark)`, never below the log
//!   start; it only moves forward while the log grows (an open transaction's first offset never
//!   changes until its marker closes it).
//! - An aborted transaction's entry lives in the segment that holds its ABORT marker, and
//!   `first_offset <= last_offset` (the marker's offset).
#![forbid(unsafe_code)]

pub mod cleaning;
pub mod encode;
pub mod index_file;
pub mod replay;

use std::collections::{BTreeSet, HashMap};

use crate::batch::{self, BatchHeader};
use crate::error::BatchError;
use crate::units::Offset;

/// What a control batch's marker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlMarker {
    Abort,
    Commit,
}

impl ControlMarker {
    /// The `type` field of the control record's key.
    pub fn type_code(self) -> i16 {
        match self {
            Self::Abort => 0,
            Self::Commit => 1,
        }
    }
}

/// Control record key bytes: version (i16) and type (i16).
pub const CONTROL_KEY_BYTES: usize = 4;

/// Reads the marker of a control batch (whole batch bytes, CRC already checked). A control batch
/// must hold exactly one uncompressed record whose key is version 0 and type 0 or 1.
pub fn parse_control_marker(batch_bytes: &[u8]) -> Result<ControlMarker, BatchError> {
    let bad = |reason: &str| BatchError::BadControlBatch {
        reason: reason.to_string(),
    };
    let records = batch::decode_records(batch_bytes)
        .ok_or_else(|| bad("records unreadable (control batches are never compressed)"))?;
    let [record] = records.as_slice() else {
        return Err(bad("a control batch holds exactly one record"));
    };
    let key = record
        .key
        .ok_or_else(|| bad("control record without a key"))?;
    if key.len() < CONTROL_KEY_BYTES {
        return Err(bad("control record key shorter than 4 bytes"));
    }
    let version = i16::from_be_bytes([key[0], key[1]]);
    if version != 0 {
        return Err(bad("control record key version is not 0"));
    }
    match i16::from_be_bytes([key[2], key[3]]) {
        0 => Ok(ControlMarker::Abort),
        1 => Ok(ControlMarker::Commit),
        _ => Err(bad(
            "control record type is neither ABORT (0) nor COMMIT (1)",
        )),
    }
}

/// The markers of a record set's control batches, one per batch (`None` for data batches).
pub fn markers_of(
    records: &[u8],
    headers: &[BatchHeader],
) -> Result<Vec<Option<ControlMarker>>, BatchError> {
    let mut position = 0usize;
    let mut markers = Vec::with_capacity(headers.len());
    for header in headers {
        let end = position + header.total_bytes();
        let marker = if header.is_control() {
            Some(parse_control_marker(&records[position..end])?)
        } else {
            None
        };
        markers.push(marker);
        position = end;
    }
    assert_eq!(position, records.len(), "headers cover the record set");
    Ok(markers)
}

/// One aborted transaction in a partition, as Kafka's `.txnindex` stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    /// Offset of the transaction's first batch in this partition.
    pub first_offset: Offset,
    /// Offset of the ABORT marker.
    pub last_offset: Offset,
    /// The LSO once the marker was written.
    pub last_stable_offset: Offset,
}

impl AbortedTxn {
    /// Whether the transaction's range meets `[from, upper)`.
    pub fn overlaps(&self, from: Offset, upper: Offset) -> bool {
        self.last_offset >= from && self.first_offset < upper
    }
}

/// The open transactions of one partition: producer id → first offset, and the same ordered by
/// offset so the smallest (the LSO's bound) is found at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenTransactions {
    first_offsets: HashMap<i64, Offset>,
    by_offset: BTreeSet<(Offset, i64)>,
}

impl OpenTransactions {
    /// From a snapshot's list of (producer id, first offset).
    pub fn from_pairs(pairs: &[(i64, Offset)]) -> Self {
        let mut open = Self::default();
        for &(producer_id, first_offset) in pairs {
            open.begin(producer_id, first_offset);
        }
        open
    }

    /// (producer id, first offset) of every open transaction, by offset.
    pub fn pairs(&self) -> Vec<(i64, Offset)> {
        self.by_offset
            .iter()
            .map(|&(offset, producer_id)| (producer_id, offset))
            .collect()
    }

    /// Pairs that began below `offset`: the state as of `offset`, for a snapshot.
    pub fn pairs_before(&self, offset: Offset) -> Vec<(i64, Offset)> {
        self.pairs()
            .into_iter()
            .filter(|(_, first)| *first < offset)
            .collect()
    }

    /// Whether `producer_id` has a transaction open here.
    pub fn contains(&self, producer_id: i64) -> bool {
        self.first_offsets.contains_key(&producer_id)
    }

    /// First offset of `producer_id`'s open transaction here.
    pub fn first_offset(&self, producer_id: i64) -> Option<Offset> {
        self.first_offsets.get(&producer_id).copied()
    }

    pub fn len(&self) -> usize {
        self.first_offsets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.first_offsets.is_empty()
    }

    /// The first offset of the oldest open transaction.
    pub fn first_unstable(&self) -> Option<Offset> {
        self.by_offset.first().map(|(offset, _)| *offset)
    }

    /// A transactional data batch of `producer_id` at `offset`: opens its transaction unless one
    /// is open.
    fn begin(&mut self, producer_id: i64, offset: Offset) {
        if let std::collections::hash_map::Entry::Vacant(entry) =
            self.first_offsets.entry(producer_id)
        {
            entry.insert(offset);
            self.by_offset.insert((offset, producer_id));
        }
        assert_eq!(
            self.first_offsets.len(),
            self.by_offset.len(),
            "both views hold the same transactions"
        );
    }

    /// A marker of `producer_id` at `offset` closes its transaction. An ABORT returns the
    /// aborted transaction's entry; a marker without an open transaction (its data gone, or none
    /// written here) aborts the range of the marker alone, as Kafka does.
    fn complete(
        &mut self,
        producer_id: i64,
        marker: ControlMarker,
        offset: Offset,
    ) -> Option<AbortedTxn> {
        let first_offset = match self.first_offsets.remove(&producer_id) {
            Some(first) => {
                assert!(self.by_offset.remove(&(first, producer_id)), "both views");
                first
            }
            None => offset,
        };
        assert!(first_offset <= offset, "a transaction ends after it starts");
        let after_marker = offset.plus(1);
        let last_stable_offset = self
            .first_unstable()
            .map_or(after_marker, |first| first.min(after_marker));
        (marker == ControlMarker::Abort).then_some(AbortedTxn {
            producer_id,
            first_offset,
            last_offset: offset,
            last_stable_offset,
        })
    }

    /// Notes one appended (or replayed) batch; returns the entry when it is an ABORT marker.
    /// `marker` is the control batch's marker (`None` for data batches).
    pub fn note(
        &mut self,
        header: &BatchHeader,
        marker: Option<ControlMarker>,
    ) -> Option<AbortedTxn> {
        if !header.is_transactional() || !header.has_producer_id() {
            return None;
        }
        match (header.is_control(), marker) {
            (true, Some(marker)) => self.complete(header.producer_id, marker, header.base_offset),
            (true, None) => panic!("a control batch is noted with its marker"),
            (false, _) => {
                self.begin(header.producer_id, header.base_offset);
                None
            }
        }
    }
}

/// The aborted transactions of some segments, by producer: what compaction asks of each
/// transactional batch ("was it aborted?").
#[derive(Debug, Clone, Default)]
pub struct AbortedSet {
    ranges: HashMap<i64, Vec<(Offset, Offset)>>,
}

impl AbortedSet {
    pub fn new<'a>(entries: impl IntoIterator<Item = &'a AbortedTxn>) -> Self {
        let mut ranges: HashMap<i64, Vec<(Offset, Offset)>> = HashMap::new();
        for entry in entries {
            ranges
                .entry(entry.producer_id)
                .or_default()
                .push((entry.first_offset, entry.last_offset));
        }
        Self { ranges }
    }

    /// Whether a transactional data batch belongs to an aborted transaction.
    pub fn holds(&self, header: &BatchHeader) -> bool {
        if !header.is_transactional() || header.is_control() {
            return false;
        }
        self.ranges.get(&header.producer_id).is_some_and(|ranges| {
            ranges
                .iter()
                .any(|(first, last)| *first <= header.base_offset && header.base_offset <= *last)
        })
    }
}

#[cfg(test)]
mod tests;
