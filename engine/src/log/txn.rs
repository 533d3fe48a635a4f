//! A log's transactions as readers see them: the last stable offset, the aborted transactions
//! of a fetched range, and long-polls on the LSO (see [`crate::txn`]).
#![forbid(unsafe_code)]

use super::state::{LogState, PartitionLog};
use crate::txn::AbortedTxn;
use crate::units::Offset;

impl LogState {
    /// `min(first offset of the oldest open transaction, high watermark)`, never below the log
    /// start (retention may have removed an open transaction's first batches).
    pub(crate) fn last_stable_offset(&self) -> Offset {
        let stable = self
            .transactions
            .first_unstable()
            .map_or(self.high_watermark, |first| first.min(self.high_watermark));
        stable.max(self.log_start_offset)
    }
}

impl PartitionLog {
    /// The last stable offset (LSO): a read_committed consumer reads up to it, never past.
    pub fn last_stable_offset(&self) -> Offset {
        self.state.borrow().last_stable_offset()
    }

    /// Transactions open in this partition now, as (producer id, first offset), by offset.
    pub fn open_transactions(&self) -> Vec<(i64, Offset)> {
        self.state.borrow().transactions.pairs()
    }

    /// The aborted transactions whose range meets `[from, upper)`, in marker order: what a
    /// read_committed fetch of that range returns so the consumer can drop their records.
    ///
    /// Scans the in-memory index of the segment holding `from` and of later ones, and stops at
    /// the first entry whose recorded LSO lies past `upper`: no later-aborted transaction can
    /// have started below `upper` (it would have held that LSO back).
    pub fn aborted_transactions(&self, from: Offset, upper: Offset) -> Vec<AbortedTxn> {
        let state = self.state.borrow();
        let mut found = Vec::new();
        if from >= upper {
            return found;
        }
        let first = state.segment_index_for(from);
        for segment in state.segments.iter().skip(first) {
            for entry in &segment.aborted {
                if entry.overlaps(from, upper) {
                    found.push(*entry);
                }
                if entry.last_stable_offset > upper {
                    return found;
                }
            }
        }
        found
    }

    /// Every aborted transaction the log's segments remember, oldest marker first (tests, tools).
    pub fn all_aborted_transactions(&self) -> Vec<AbortedTxn> {
        let state = self.state.borrow();
        state
            .segments
            .iter()
            .flat_map(|segment| segment.aborted.iter().copied())
            .collect()
    }
}
