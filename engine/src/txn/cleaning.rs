//! What a cleaning pass does with transactions, batch by batch from the log start, as Kafka's
//! cleaner does (its `CleanedTransactionMetadata`):
//! - a transactional data batch inside an aborted transaction (its entry reached, its ABORT
//!   marker not yet) is removed, and noted as seen;
//! - an ABORT marker may go once the pass saw no batch of its transaction: its aborted entry is
//!   then dropped from the index (nothing is left for it to hide); otherwise marker and entry
//!   stay;
//! - a COMMIT marker may go once the pass saw no batch of its producer's transaction since the
//!   producer's previous marker.
//!
//! "May go" is not "goes": the compaction pass then stamps the marker's batch with a delete
//! horizon (KIP-534) and removes it only on a pass at or after that horizon, so consumers get
//! `delete.retention.ms` to see it.
//!
//! # Invariants
//! - The pass feeds every batch of the segments it cleans, in offset order, from the log start:
//!   a transaction's data always precede its marker, so "saw none" means none is left.
//! - An entry is dropped only when the pass saw none of its batches in the files it read, so an
//!   index without it never exposes an aborted record, whatever point a crash cuts the install at.
#![forbid(unsafe_code)]

use std::collections::{HashMap, HashSet, VecDeque};

use super::{AbortedTxn, ControlMarker};
use crate::batch::BatchHeader;

/// An aborted transaction the pass has reached, and whether it saw a batch of it.
#[derive(Debug, Clone, Copy)]
struct Ongoing {
    seen_batch: bool,
}

/// The transactions a pass is inside of, carried from batch to batch and segment to segment.
#[derive(Debug, Default)]
pub struct TxnCleaning {
    /// Aborted transactions not reached yet, by first offset.
    pending: VecDeque<AbortedTxn>,
    /// Aborted transactions reached and not yet closed by their ABORT marker, by producer.
    aborted: HashMap<i64, Ongoing>,
    /// Producers with a batch of a not-aborted transaction since their last marker.
    committed: HashSet<i64>,
}

impl TxnCleaning {
    /// A pass over a log whose aborted transactions are `entries` (every segment's).
    pub fn new<'a>(entries: impl IntoIterator<Item = &'a AbortedTxn>) -> Self {
        let mut pending: Vec<AbortedTxn> = entries.into_iter().copied().collect();
        pending.sort_by_key(|entry| (entry.first_offset, entry.last_offset));
        Self {
            pending: pending.into(),
            ..Self::default()
        }
    }

    /// Enters every aborted transaction that starts at or before `offset`.
    fn reach(&mut self, offset: crate::units::Offset) {
        while let Some(entry) = self.pending.front().filter(|e| e.first_offset <= offset) {
            self.aborted
                .entry(entry.producer_id)
                .or_insert(Ongoing { seen_batch: false });
            self.pending.pop_front();
        }
    }

    /// A data batch: true when it belongs to an aborted transaction (the pass removes it).
    pub fn on_data_batch(&mut self, header: &BatchHeader) -> bool {
        self.reach(header.last_offset());
        if !header.is_transactional() || !header.has_producer_id() {
            return false;
        }
        match self.aborted.get_mut(&header.producer_id) {
            Some(ongoing) => {
                ongoing.seen_batch = true;
                true
            }
            None => {
                self.committed.insert(header.producer_id);
                false
            }
        }
    }

    /// A control batch with its marker: true when no batch of its transaction is left before
    /// it, so it may go after its delete horizon (and an ABORT marker's entry goes from the
    /// index now). A marker that cannot be read never gets here: the pass stops at it, since
    /// without it the producer's later batches could be taken for aborted.
    pub fn on_control_batch(&mut self, header: &BatchHeader, marker: ControlMarker) -> bool {
        self.reach(header.last_offset());
        match marker {
            ControlMarker::Abort => !self
                .aborted
                .remove(&header.producer_id)
                .is_some_and(|ongoing| ongoing.seen_batch),
            ControlMarker::Commit => !self.committed.remove(&header.producer_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::parse_header;
    use crate::batch::{ProducerSpec, RecordSpec};
    use crate::txn::encode::{control_batch, transactional_batch};
    use crate::units::Offset;

    fn data(producer_id: i64, offset: i64) -> BatchHeader {
        let record = RecordSpec {
            key: Some(b"k"),
            value: Some(b"v"),
            timestamp_delta: 0,
        };
        let producer = ProducerSpec {
            producer_id,
            producer_epoch: 0,
            base_sequence: 0,
        };
        let mut bytes = transactional_batch(0, &[record], producer);
        crate::batch::set_base_offset(&mut bytes, Offset::new(offset));
        parse_header(&bytes).unwrap()
    }

    fn marker(producer_id: i64, offset: i64, kind: ControlMarker) -> BatchHeader {
        let mut bytes = control_batch(0, producer_id, 0, kind, 0);
        crate::batch::set_base_offset(&mut bytes, Offset::new(offset));
        parse_header(&bytes).unwrap()
    }

    #[test]
    fn markers_may_go_only_once_their_transaction_has_no_batch_left() {
        // Producer 1 commits [0] at 1; producer 2 aborts [2] at 3; producer 1's marker at 5 ends
        // a transaction whose batch is gone; producer 2's abort at 6 has no batch either.
        let entries = [
            AbortedTxn {
                producer_id: 2,
                first_offset: Offset::new(2),
                last_offset: Offset::new(3),
                last_stable_offset: Offset::new(4),
            },
            AbortedTxn {
                producer_id: 2,
                first_offset: Offset::new(6),
                last_offset: Offset::new(6),
                last_stable_offset: Offset::new(7),
            },
        ];
        let mut pass = TxnCleaning::new(&entries);
        assert!(!pass.on_data_batch(&data(1, 0)), "committed data stays");
        assert!(!pass.on_control_batch(&marker(1, 1, ControlMarker::Commit), ControlMarker::Commit));
        assert!(pass.on_data_batch(&data(2, 2)), "aborted data goes");
        assert!(
            !pass.on_control_batch(&marker(2, 3, ControlMarker::Abort), ControlMarker::Abort),
            "its data were still there in this pass"
        );
        assert!(!pass.on_data_batch(&data(3, 4)));
        assert!(pass.on_control_batch(&marker(1, 5, ControlMarker::Commit), ControlMarker::Commit));
        assert!(pass.on_control_batch(&marker(2, 6, ControlMarker::Abort), ControlMarker::Abort));
    }
}
