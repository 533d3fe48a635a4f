//! Newtypes for the numbers a log mixes up most easily: a record's offset, a byte position in a
//! segment file, and a partition's index in its topic. Each is a plain wrapper (no overhead) so
//! that, for example, a position passed where an offset is expected does not compile.
//!
//! A leaf module: everything may use it, it uses nothing of the engine.
//!
//! A position where an offset belongs is a type error:
//! ```compile_fail
//! use ringtail_engine::{Offset, Position};
//! fn remember(offset: Offset, position: Position) {}
//! remember(Position::new(4096), Offset::new(7));
//! ```
#![forbid(unsafe_code)]

use std::fmt;

use serde::{Deserialize, Serialize};

/// A record's offset in its partition (Kafka's `int64` offset). Serialised as the bare number
/// (producer snapshots store offsets).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Offset(i64);

impl Offset {
    pub const ZERO: Self = Self(0);

    pub const fn new(offset: i64) -> Self {
        Self(offset)
    }

    pub const fn get(self) -> i64 {
        self.0
    }

    /// The offset `delta` records later (earlier when negative).
    pub const fn plus(self, delta: i64) -> Self {
        Self(self.0 + delta)
    }

    /// How many offsets `self` lies after `base` (negative when before it).
    pub const fn since(self, base: Self) -> i64 {
        self.0 - base.0
    }
}

impl From<i64> for Offset {
    fn from(offset: i64) -> Self {
        Self(offset)
    }
}

impl From<Offset> for i64 {
    fn from(offset: Offset) -> Self {
        offset.0
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(formatter)
    }
}

/// A byte position in a segment's `.log` file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position(u64);

impl Position {
    pub const START: Self = Self(0);

    pub const fn new(position: u64) -> Self {
        Self(position)
    }

    pub const fn get(self) -> u64 {
        self.0
    }

    /// The position `bytes` further on.
    pub const fn advanced_by(self, bytes: u64) -> Self {
        Self(self.0 + bytes)
    }

    /// Bytes from `earlier` to `self`.
    ///
    /// # Panics
    /// When `earlier` lies after `self`: a caller that measures a range backwards has mixed up
    /// its ends.
    pub fn bytes_since(self, earlier: Self) -> u64 {
        self.0
            .checked_sub(earlier.0)
            .expect("a range's start lies before its end")
    }

    /// The position as the index files store it (`u32`).
    ///
    /// # Panics
    /// At 4 GiB or beyond: segments stay below `segment.bytes` (at most 2 GiB, as in Kafka) and a
    /// batch only starts beyond that when it is a segment's first, at position 0.
    pub fn to_index_u32(self) -> u32 {
        u32::try_from(self.0).expect("indexed positions lie below 4 GiB")
    }
}

impl From<u32> for Position {
    fn from(position: u32) -> Self {
        Self(u64::from(position))
    }
}

impl fmt::Display for Position {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(formatter)
    }
}

/// A partition's index in its topic (Kafka's `int32` partition).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionIndex(i32);

impl PartitionIndex {
    pub const fn new(partition: i32) -> Self {
        Self(partition)
    }

    pub const fn get(self) -> i32 {
        self.0
    }
}

impl From<i32> for PartitionIndex {
    fn from(partition: i32) -> Self {
        Self(partition)
    }
}

impl From<PartitionIndex> for i32 {
    fn from(partition: PartitionIndex) -> Self {
        partition.0
    }
}

impl fmt::Display for PartitionIndex {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(formatter)
    }
}
