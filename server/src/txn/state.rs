//! One transactional id's state, and Kafka's transaction state machine (KIP-98) on it: pure, no
//! I/O. The coordinator (`coordinator.rs`) persists each state before acting on it.
//!
//! ```text
//! Empty ──AddPartitions/AddOffsets──► Ongoing ──EndTxn(commit)──► PrepareCommit ──markers──► CompleteCommit
//!   ▲                                    │    └─EndTxn(abort)/timeout/re-init──► PrepareAbort ──markers──► CompleteAbort
//!   └──── InitProducerId (epoch + 1) ◄───┴── (Complete* and Empty accept a new transaction)
//! PrepareEpochFence: an Ongoing transaction whose producer is being fenced; it becomes PrepareAbort.
//! ```
//!
//! # Invariants
//! - `partitions` and `groups` are empty in Empty and Complete* states.
//! - `producer_epoch` only grows for a given `producer_id`.
#![forbid(unsafe_code)]

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;
use serde::{Deserialize, Serialize};

use super::marker::TxnProducer;

/// Kafka's transaction states, spelled as DescribeTransactions and ListTransactions report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    PrepareEpochFence,
}

impl TxnState {
    /// The name Kafka's admin APIs use.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    pub const ALL: [TxnState; 7] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::PrepareEpochFence,
    ];

    /// Whether markers are owed (a decision taken, not yet written everywhere).
    pub fn is_prepared(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }

    /// Whether a new transaction may start from here.
    pub fn accepts_new_transaction(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }
}

/// What a KIP-360 InitProducerId asks ([`TxnMetadata::check_bump`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bump {
    /// The current producer: bump its epoch.
    Bump,
    /// A retry of the bump that made the current state: answer it again.
    Retry,
}

/// A topic partition in a transaction.
pub type TxnPartition = (String, i32);

/// Everything the coordinator knows of one transactional id: the value of its record in
/// `__transaction_state` (JSON, see `log.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnMetadata {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TxnPartition>,
    /// Groups whose offsets this transaction commits (AddOffsetsToTxn).
    pub groups: BTreeSet<String>,
    /// When the current transaction started (its first AddPartitions/AddOffsets), -1 if none.
    pub start_ms: i64,
    pub update_ms: i64,
    /// The epoch the last KIP-360 bump (InitProducerId naming the current epoch) bumped from,
    /// so that request retried, its answer lost, gets the bumped epoch again instead of
    /// PRODUCER_FENCED (Kafka's `lastProducerEpoch`); -1 when none (a new producer's
    /// InitProducerId or a fence forgets it). Absent from records written before it: -1.
    #[serde(default = "no_epoch")]
    pub last_producer_epoch: i16,
    /// The producer id `last_producer_epoch` belongs to: the previous one after a bump that
    /// moved to a new producer id (Kafka's `previousProducerId`), else `producer_id`; -1 in
    /// records written before it (then `producer_id`).
    #[serde(default = "no_producer_id")]
    pub last_producer_id: i64,
}

fn no_epoch() -> i16 {
    -1
}

fn no_producer_id() -> i64 {
    -1
}

/// The highest epoch a producer id may have; the next InitProducerId gets a new id (Kafka does
/// the same, so markers with epoch + 1 always fit).
pub const PRODUCER_EPOCH_MAX: i16 = i16::MAX - 1;

impl TxnMetadata {
    pub fn new(producer_id: i64, timeout_ms: i32, now_ms: i64) -> Self {
        Self {
            producer_id,
            producer_epoch: 0,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
            start_ms: -1,
            update_ms: now_ms,
            last_producer_epoch: no_epoch(),
            last_producer_id: no_producer_id(),
        }
    }

    /// Checks a request's producer id and epoch against this transactional id's (Kafka's
    /// coordinator with transaction version 1: a different id is INVALID_PRODUCER_ID_MAPPING,
    /// any other epoch PRODUCER_FENCED, a higher one too: only the coordinator hands out epochs,
    /// so a producer ahead of it is not the one it knows).
    pub fn check_producer(
        &self,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<(), ResponseError> {
        if producer_id != self.producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if producer_epoch != self.producer_epoch {
            return Err(ResponseError::ProducerFenced);
        }
        Ok(())
    }

    /// KIP-360: whether an InitProducerId naming `current` (the producer id and epoch it holds)
    /// may bump the epoch, or retries the bump that made this state (its answer lost: the same
    /// answer again, no second bump, as Kafka's prepareIncrementProducerEpoch), else
    /// PRODUCER_FENCED.
    pub fn check_bump(&self, current: TxnProducer) -> Result<Bump, ResponseError> {
        if current.producer_id == self.producer_id && current.producer_epoch == self.producer_epoch
        {
            return Ok(Bump::Bump);
        }
        let last_producer_id = if self.last_producer_id < 0 {
            self.producer_id
        } else {
            self.last_producer_id
        };
        let retry = self.last_producer_epoch >= 0
            && current.producer_id == last_producer_id
            && current.producer_epoch == self.last_producer_epoch
            && self.state.accepts_new_transaction();
        if retry {
            Ok(Bump::Retry)
        } else {
            Err(ResponseError::ProducerFenced)
        }
    }

    /// The producer an InitProducerId leaves (its state, timeout and update time still to set):
    /// epoch + 1, or past [`PRODUCER_EPOCH_MAX`] a new producer id at epoch 0. `by_holder`: a
    /// KIP-360 bump by the producer holding the epoch, which a retry may repeat.
    pub fn bumped(&self, by_holder: bool, new_producer_id: impl FnOnce() -> i64) -> TxnMetadata {
        let mut next = self.clone();
        next.last_producer_epoch = if by_holder {
            self.producer_epoch
        } else {
            no_epoch()
        };
        next.last_producer_id = self.producer_id;
        if self.producer_epoch >= PRODUCER_EPOCH_MAX {
            // The bumped-from epoch stays remembered with its (old) id, for a retry.
            next.producer_id = new_producer_id();
            next.producer_epoch = 0;
        } else {
            next.producer_epoch += 1;
        }
        next
    }

    /// AddPartitionsToTxn v4+ with verify_only (KIP-890 part 1): whether `partition` is in the
    /// transaction, as Kafka's `handleVerifyPartitionsInTransaction` answers. A commit or abort
    /// writing its markers is CONCURRENT_TRANSACTIONS (retriable); a partition not in the
    /// transaction, whatever its state, TRANSACTION_ABORTABLE (the producer aborts and goes on,
    /// where INVALID_TXN_STATE was fatal to it). A fence under way is treated as the abort it
    /// leads to.
    pub fn verify(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        partition: &TxnPartition,
    ) -> Result<(), ResponseError> {
        self.check_producer(producer_id, producer_epoch)?;
        match self.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                Err(ResponseError::ConcurrentTransactions)
            }
            _ if self.partitions.contains(partition) => Ok(()),
            _ => Err(ResponseError::TransactionAbortable),
        }
    }

    /// Adds partitions and groups to the transaction, starting it if needed: the state to persist.
    pub fn with_added(
        &self,
        partitions: &[TxnPartition],
        group: Option<&str>,
        now_ms: i64,
    ) -> Result<TxnMetadata, ResponseError> {
        let mut next = self.clone();
        match self.state {
            TxnState::Ongoing => {}
            state if state.accepts_new_transaction() => {
                next.state = TxnState::Ongoing;
                next.partitions.clear();
                next.groups.clear();
                next.start_ms = now_ms;
            }
            // A commit or abort still writes its markers: the client retries.
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                return Err(ResponseError::ConcurrentTransactions)
            }
            _ => return Err(ResponseError::InvalidTxnState),
        }
        next.partitions.extend(partitions.iter().cloned());
        if let Some(group) = group {
            next.groups.insert(group.to_string());
        }
        next.update_ms = now_ms;
        Ok(next)
    }

    /// The state EndTxn leads to. `Ok(None)`: a retry of an EndTxn already done (answer success).
    pub fn ending(&self, commit: bool, now_ms: i64) -> Result<Option<TxnMetadata>, ResponseError> {
        match (self.state, commit) {
            (TxnState::Ongoing, _) => {
                let mut next = self.clone();
                next.state = if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                };
                next.update_ms = now_ms;
                Ok(Some(next))
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(None),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(ResponseError::ConcurrentTransactions)
            }
            // Empty accepts neither (Kafka's endTransaction with transaction version 1, the one
            // Ringtail advertises): only a TV2 client (EndTxn v5+) aborts an Empty transaction,
            // to bump its epoch. librdkafka and the Java client don't send an EndTxn for a
            // transaction that added nothing.
            _ => Err(ResponseError::InvalidTxnState),
        }
    }

    /// The state once every marker is written.
    pub fn completed(&self, now_ms: i64) -> TxnMetadata {
        assert!(
            self.state.is_prepared(),
            "only a prepared transaction completes"
        );
        let mut next = self.clone();
        next.state = if self.state == TxnState::PrepareCommit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        next.partitions.clear();
        next.groups.clear();
        next.start_ms = -1;
        next.update_ms = now_ms;
        // As Kafka's prepareComplete: a bump's retry after a transaction at the bumped epoch is
        // stale.
        next.last_producer_epoch = self.producer_epoch;
        next.last_producer_id = self.producer_id;
        next
    }

    /// An ongoing transaction aborted by the coordinator (timeout, or a new InitProducerId):
    /// the epoch is bumped first, so the old producer is fenced (Kafka's PrepareEpochFence).
    pub fn fenced_abort(&self, now_ms: i64) -> TxnMetadata {
        assert_eq!(self.state, TxnState::Ongoing);
        let mut next = self.clone();
        // Up to i16::MAX: a producer at PRODUCER_EPOCH_MAX is fenced too (the next
        // InitProducerId moves the id to a new producer id).
        next.producer_epoch = self.producer_epoch.saturating_add(1);
        next.last_producer_epoch = no_epoch();
        next.state = TxnState::PrepareAbort;
        next.update_ms = now_ms;
        next
    }

    /// Whether the ongoing transaction has run past its timeout at `now_ms`.
    pub fn timed_out(&self, now_ms: i64) -> bool {
        self.state == TxnState::Ongoing
            && self.start_ms >= 0
            && now_ms.saturating_sub(self.start_ms) > i64::from(self.timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(name: &str) -> TxnPartition {
        (name.to_string(), 0)
    }

    #[test]
    fn a_transaction_goes_through_kafkas_states() {
        let empty = TxnMetadata::new(7, 60_000, 0);
        let ongoing = empty.with_added(&[partition("a")], None, 1).unwrap();
        assert_eq!(ongoing.state, TxnState::Ongoing);
        assert_eq!(ongoing.start_ms, 1);
        let more = ongoing.with_added(&[partition("b")], Some("g"), 2).unwrap();
        assert_eq!(more.partitions.len(), 2);
        assert_eq!(more.start_ms, 1, "adding keeps the start");
        let prepared = more.ending(true, 3).unwrap().unwrap();
        assert_eq!(prepared.state, TxnState::PrepareCommit);
        assert_eq!(
            prepared.with_added(&[partition("c")], None, 4),
            Err(ResponseError::ConcurrentTransactions)
        );
        let done = prepared.completed(5);
        assert_eq!(done.state, TxnState::CompleteCommit);
        assert!(done.partitions.is_empty() && done.groups.is_empty());
        assert_eq!(done.ending(true, 6), Ok(None), "a retried commit succeeds");
        assert_eq!(done.ending(false, 6), Err(ResponseError::InvalidTxnState));
    }

    #[test]
    fn verification_answers_as_kafkas_handle_verify_partitions_in_transaction() {
        // Kafka: a partition outside the transaction is TRANSACTION_ABORTABLE (the producer can
        // abort and go on), whatever the state; a commit or abort writing its markers is
        // CONCURRENT_TRANSACTIONS (the producer retries), partition in or not.
        let empty = TxnMetadata::new(7, 60_000, 0);
        assert_eq!(
            empty.verify(7, 0, &partition("a")),
            Err(ResponseError::TransactionAbortable)
        );
        let ongoing = empty.with_added(&[partition("a")], None, 1).unwrap();
        assert_eq!(ongoing.verify(7, 0, &partition("a")), Ok(()));
        assert_eq!(
            ongoing.verify(7, 0, &partition("b")),
            Err(ResponseError::TransactionAbortable)
        );
        assert_eq!(
            ongoing.verify(7, 1, &partition("a")),
            Err(ResponseError::ProducerFenced)
        );
        assert_eq!(
            ongoing.verify(8, 0, &partition("a")),
            Err(ResponseError::InvalidProducerIdMapping)
        );
        for commit in [true, false] {
            let prepared = ongoing.ending(commit, 2).unwrap().unwrap();
            for name in ["a", "b"] {
                assert_eq!(
                    prepared.verify(7, 0, &partition(name)),
                    Err(ResponseError::ConcurrentTransactions)
                );
            }
            assert_eq!(
                prepared.completed(3).verify(7, 0, &partition("a")),
                Err(ResponseError::TransactionAbortable)
            );
        }
    }

    #[test]
    fn an_empty_transaction_can_be_neither_committed_nor_aborted() {
        let empty = TxnMetadata::new(7, 60_000, 0);
        assert_eq!(empty.ending(false, 1), Err(ResponseError::InvalidTxnState));
        assert_eq!(empty.ending(true, 1), Err(ResponseError::InvalidTxnState));
    }

    #[test]
    fn old_epochs_are_fenced_and_other_ids_refused() {
        let mut meta = TxnMetadata::new(7, 60_000, 0);
        meta.producer_epoch = 3;
        assert_eq!(
            meta.check_producer(7, 2),
            Err(ResponseError::ProducerFenced)
        );
        assert_eq!(
            meta.check_producer(8, 3),
            Err(ResponseError::InvalidProducerIdMapping)
        );
        assert_eq!(
            meta.check_producer(7, 4),
            Err(ResponseError::ProducerFenced),
            "an epoch the coordinator never handed out"
        );
        assert_eq!(meta.check_producer(7, 3), Ok(()));
    }

    #[test]
    fn a_timeout_abort_at_the_last_epoch_still_fences_the_producer() {
        // A producer at the last epoch InitProducerId hands out (32766) whose transaction times
        // out must be fenced like any other: the abort's epoch goes to 32767 (as Kafka's fence
        // may), and the next InitProducerId moves the id to a new producer id. It stayed at
        // 32766, so the producer carried on after its transaction was aborted under it, and its
        // next commit committed only what it sent after the abort.
        let mut ongoing = TxnMetadata::new(7, 100, 0)
            .with_added(&[partition("a")], None, 10)
            .unwrap();
        ongoing.producer_epoch = PRODUCER_EPOCH_MAX;
        let aborting = ongoing.fenced_abort(111);
        assert_eq!(aborting.producer_epoch, i16::MAX);
        let aborted = aborting.completed(112);
        assert_eq!(
            aborted.check_producer(7, PRODUCER_EPOCH_MAX),
            Err(ResponseError::ProducerFenced)
        );
    }

    #[test]
    fn a_fence_forgets_the_bumped_from_epoch_and_old_records_have_none() {
        // A KIP-360 retry naming the epoch before a timeout's fence must stay fenced.
        let mut ongoing = TxnMetadata::new(7, 100, 0)
            .with_added(&[partition("a")], None, 10)
            .unwrap();
        ongoing.last_producer_epoch = 0;
        ongoing.producer_epoch = 1;
        let aborted = ongoing.fenced_abort(111).completed(112);
        assert_eq!(aborted.producer_epoch, 2);
        assert_eq!(aborted.last_producer_epoch, 2, "neither 0 nor 1 is a retry");
        let old = br#"{"producer_id":7,"producer_epoch":3,"timeout_ms":100,"state":"Empty","partitions":[],"groups":[],"start_ms":-1,"update_ms":0}"#;
        let read: TxnMetadata = serde_json::from_slice(old).unwrap();
        assert_eq!(read.last_producer_epoch, -1);
    }

    fn producer(producer_id: i64, producer_epoch: i16) -> TxnProducer {
        TxnProducer {
            producer_id,
            producer_epoch,
        }
    }

    #[test]
    fn a_retried_bump_across_a_producer_id_rotation_gets_the_same_answer() {
        // Kafka keeps the previous producer id with the bumped-from epoch (lastProducerId,
        // lastProducerEpoch): a KIP-360 bump at the last epoch that moved the transactional id to
        // a new producer id, retried (its answer lost), gets that new id again. It was fenced,
        // the producer had to start over as a new instance.
        let mut meta = TxnMetadata::new(7, 60_000, 0);
        meta.producer_epoch = PRODUCER_EPOCH_MAX;
        let holder = producer(7, PRODUCER_EPOCH_MAX);
        assert_eq!(meta.check_bump(holder), Ok(Bump::Bump));
        let rotated = meta.bumped(true, || 8);
        assert_eq!((rotated.producer_id, rotated.producer_epoch), (8, 0));
        assert_eq!(rotated.check_bump(holder), Ok(Bump::Retry));
        assert_eq!(
            rotated.check_bump(producer(7, PRODUCER_EPOCH_MAX - 1)),
            Err(ResponseError::ProducerFenced)
        );
        assert_eq!(
            rotated.check_bump(producer(8, PRODUCER_EPOCH_MAX)),
            Err(ResponseError::ProducerFenced),
            "the old epoch under the new id is no retry"
        );
        assert_eq!(rotated.check_bump(producer(8, 0)), Ok(Bump::Bump));
        // A transaction at the new id makes the retry stale.
        let done = rotated
            .with_added(&[partition("a")], None, 1)
            .unwrap()
            .ending(true, 2)
            .unwrap()
            .unwrap()
            .completed(3);
        assert_eq!(done.check_bump(holder), Err(ResponseError::ProducerFenced));
        // A plain InitProducerId (no KIP-360 holder) leaves nothing to retry.
        let fresh = meta.bumped(false, || 9);
        assert_eq!(fresh.check_bump(holder), Err(ResponseError::ProducerFenced));
    }

    #[test]
    fn a_timeout_abort_bumps_the_epoch() {
        let ongoing = TxnMetadata::new(7, 100, 0)
            .with_added(&[partition("a")], None, 10)
            .unwrap();
        assert!(!ongoing.timed_out(110));
        assert!(ongoing.timed_out(111));
        let aborting = ongoing.fenced_abort(111);
        assert_eq!(aborting.state, TxnState::PrepareAbort);
        assert_eq!(aborting.producer_epoch, 1);
        assert_eq!(
            aborting.partitions, ongoing.partitions,
            "markers go where data went"
        );
    }
}
