//! Recent batch boundaries (segment, offset → position), filled by writes, so that a tail fetch —
//! a consumer's next offset is usually the end of the last write — is planned without I/O.
#![forbid(unsafe_code)]

use std::collections::VecDeque;

use crate::units::{Offset, Position};

/// Boundaries kept: enough for the tails of a few consumers at different paces.
pub(crate) const BOUNDARY_CACHE_ENTRIES: usize = 64;

/// A batch boundary: the batch holding `offset` starts at `position` in the segment whose base is
/// `segment_base`. Named fields, so that the two offsets cannot be swapped unnoticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchBoundary {
    pub(crate) segment_base: Offset,
    pub(crate) offset: Offset,
    pub(crate) position: Position,
}

/// A cache lookup: the batch holding `offset` in the segment whose base is `segment_base`. Named
/// fields for the same reason as [`BatchBoundary`]'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BoundaryKey {
    pub(crate) segment_base: Offset,
    pub(crate) offset: Offset,
}

/// The most recent [`BOUNDARY_CACHE_ENTRIES`] boundaries, oldest first.
#[derive(Debug)]
pub(crate) struct BoundaryCache {
    boundaries: VecDeque<BatchBoundary>,
}

impl BoundaryCache {
    pub(crate) fn new() -> Self {
        Self {
            boundaries: VecDeque::with_capacity(BOUNDARY_CACHE_ENTRIES),
        }
    }

    pub(crate) fn remember(&mut self, boundary: BatchBoundary) {
        if self.boundaries.len() == BOUNDARY_CACHE_ENTRIES {
            self.boundaries.pop_front();
        }
        self.boundaries.push_back(boundary);
    }

    /// Where the batch holding `key.offset` starts in segment `key.segment_base`, if remembered.
    pub(crate) fn position_of(&self, key: BoundaryKey) -> Option<Position> {
        self.boundaries
            .iter()
            .rev()
            .find(|boundary| {
                boundary.offset == key.offset && boundary.segment_base == key.segment_base
            })
            .map(|boundary| boundary.position)
    }

    /// Forgets the boundaries of a segment that was deleted or replaced (its positions are of
    /// files no longer in the log).
    pub(crate) fn forget_segment(&mut self, segment_base: Offset) {
        self.boundaries
            .retain(|boundary| boundary.segment_base != segment_base);
    }
}
