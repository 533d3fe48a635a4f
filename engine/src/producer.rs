//! Idempotent producers: per-producer sequence numbers, checked on append, so a retried batch is
//! recognised as a duplicate instead of being written twice.
//!
//! The table is rebuilt at open from a snapshot (written at every segment roll and at close) plus
//! the batch headers recovery scans after it, so a producer retrying across a broker crash neither
//! duplicates records nor gets a fatal error.
//!
//! # Byte map of `NNNNNNNNNNNNNNNNNNNN.snapshot`
//! JSON: `{"version": 1, "offset": N, "producers": [{"producer_id", "epoch", "batches": [[first_seq,
//! last_seq, base_offset, last_offset], …], "last_timestamp_ms"}]}` — the table as of every batch
//! below `offset`. Written to a temp file, fsynced and renamed. `last_timestamp_ms` is absent from
//! snapshots written before producers expired; such an entry's expiry clock starts at the first
//! expiry pass that sees it.
//!
//! # Expiry
//! A producer is forgotten once its last batch's max timestamp is `producer.id.expiration.ms` old
//! and it holds no open transaction ([`ProducerStateTable::expire`]), as Kafka's
//! `ProducerStateManager.removeExpiredProducers` does: without it the table (and every snapshot)
//! grows by one entry per producer id that ever wrote, and any client can mint ids at will. A
//! forgotten producer's next batch is taken as a new producer's.
//!
//! # Invariants
//! - Per producer, at most [`BATCHES_REMEMBERED`] batches are remembered, in sequence order.
//! - A batch is accepted only if its epoch is the producer's current one (or newer, starting at
//!   sequence 0), and its first sequence follows the last remembered one (0 when none is).
//! - A producer's epoch never goes down. Transaction markers move it up too (Kafka's
//!   `ProducerAppendInfo.appendEndTxnMarker`): a coordinator that fenced a producer writes its
//!   abort marker at the bumped epoch, and the zombie's later batches at the old epoch, idempotent
//!   or transactional, are refused as a stale epoch. A marker at an older epoch than the
//!   producer's is refused too (it would end the transaction open at the newer epoch).
#![forbid(unsafe_code)]

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::batch::BatchHeader;
pub use crate::error::SequenceError;
use crate::units::Offset;

/// Batches remembered per producer: Kafka's clients keep at most 5 requests in flight, so a retry
/// is always one of the last 5.
pub const BATCHES_REMEMBERED: usize = 5;

/// One appended batch of a producer: sequences and where it landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerBatch {
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub base_offset: Offset,
    pub last_offset: Offset,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ProducerEntry {
    producer_id: i64,
    epoch: i16,
    batches: VecDeque<ProducerBatch>,
    /// Max timestamp of the producer's last batch (Kafka's `lastTimestamp`), which its expiry is
    /// counted from; [`UNKNOWN_TIMESTAMP`] when read from a snapshot that did not hold it.
    #[serde(default = "unknown_timestamp")]
    last_timestamp_ms: i64,
    /// Offset of the first transaction marker seen at `epoch` (None: none, or the epoch came from
    /// a data batch). A marker can set a producer's epoch with no batch at it (the coordinator
    /// fenced the producer); a snapshot keeps such an entry only once that marker is below its
    /// offset, as it keeps batches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    marker_offset: Option<Offset>,
    /// A transactional batch of the producer was appended and no marker since (Kafka's
    /// `currentTxnFirstOffset`): its non-transactional batches are refused meanwhile. Not in
    /// snapshots: set at open from the log's open transactions
    /// ([`ProducerStateTable::note_open_transactions`]).
    #[serde(skip)]
    txn_open: bool,
}

impl ProducerEntry {
    /// The entry of a producer whose first batch (data or marker) this log sees.
    fn first_seen(header: &BatchHeader) -> Self {
        Self {
            producer_id: header.producer_id,
            epoch: header.producer_epoch,
            batches: VecDeque::with_capacity(BATCHES_REMEMBERED),
            last_timestamp_ms: header.max_timestamp,
            marker_offset: None,
            txn_open: false,
        }
    }

    /// Takes a batch's `epoch` if it is newer (the older epoch's batches and marker are
    /// forgotten, as Kafka's `ProducerStateEntry.maybeUpdateProducerEpoch`); false when it is
    /// older, and the batch changes nothing.
    fn adopt_epoch(&mut self, epoch: i16) -> bool {
        if epoch > self.epoch {
            self.epoch = epoch;
            self.batches.clear();
            self.marker_offset = None;
        }
        epoch >= self.epoch
    }
}

/// An entry's last timestamp when its snapshot predates the field (see the module's byte map).
const UNKNOWN_TIMESTAMP: i64 = i64::MIN;

fn unknown_timestamp() -> i64 {
    UNKNOWN_TIMESTAMP
}

/// What the sequence check says about a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// New: append it.
    Append,
    /// Already in the log (a retry): answer with where it landed, append nothing.
    Duplicate(ProducerBatch),
}

/// Sequence state of every idempotent producer of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
}

fn next_sequence(sequence: i32) -> i32 {
    add_sequence(sequence, 1)
}

/// `base + delta` on Kafka's sequence circle (wrapping from i32::MAX to 0).
fn add_sequence(base: i32, delta: i32) -> i32 {
    let sum = i64::from(base) + i64::from(delta);
    let wrapped = if sum > i64::from(i32::MAX) {
        sum - i64::from(i32::MAX) - 1
    } else {
        sum
    };
    wrapped as i32
}

/// Kafka's `ProducerAppendInfo.appendDataBatch`: a non-transactional batch of a producer whose
/// transaction is open on the partition is refused (INVALID_TXN_STATE).
fn outside_transaction(
    entry: &ProducerEntry,
    header: &BatchHeader,
) -> Result<SequenceCheck, SequenceError> {
    if entry.txn_open && !header.is_transactional() {
        return Err(SequenceError::TransactionOpen);
    }
    Ok(SequenceCheck::Append)
}

fn batch_of(header: &BatchHeader) -> ProducerBatch {
    ProducerBatch {
        first_sequence: header.base_sequence,
        last_sequence: add_sequence(header.base_sequence, header.last_offset_delta),
        base_offset: header.base_offset,
        last_offset: header.last_offset(),
    }
}

/// A producer of a partition, as an admin sees it (Kafka's DescribeProducers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveProducer {
    pub producer_id: i64,
    pub epoch: i16,
    /// Sequence of the last record of its last batch; -1 with no batch at its epoch (Kafka's
    /// NO_SEQUENCE: a marker set the epoch).
    pub last_sequence: i32,
    /// Offset of the last record of its last batch; None with no batch at its epoch.
    pub last_offset: Option<Offset>,
    /// Max timestamp of its last batch or marker (Kafka's `lastTimestamp`); None when a snapshot
    /// did not hold it and no expiry pass has run since.
    pub last_timestamp_ms: Option<i64>,
    /// First offset of its transaction open on the partition (Kafka's `currentTxnFirstOffset`).
    pub current_txn_first_offset: Option<Offset>,
}

impl ProducerStateTable {
    /// Every producer the table holds, by producer id: also one known only by a transaction
    /// marker at its epoch, as Kafka's `ProducerStateManager.activeProducers` lists it.
    /// `open_transaction(producer_id)` gives the first offset of the producer's open transaction
    /// (the log's open transactions hold it; the table only knows whether one is open).
    pub fn active(&self, open_transaction: impl Fn(i64) -> Option<Offset>) -> Vec<ActiveProducer> {
        let mut active: Vec<ActiveProducer> = self
            .producers
            .values()
            .map(|entry| {
                let last = entry.batches.back();
                ActiveProducer {
                    producer_id: entry.producer_id,
                    epoch: entry.epoch,
                    last_sequence: last.map_or(-1, |last| last.last_sequence),
                    last_offset: last.map(|last| last.last_offset),
                    last_timestamp_ms: (entry.last_timestamp_ms != UNKNOWN_TIMESTAMP)
                        .then_some(entry.last_timestamp_ms),
                    current_txn_first_offset: open_transaction(entry.producer_id),
                }
            })
            .collect();
        active.sort_by_key(|producer| producer.producer_id);
        active
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Checks a producer batch before it gets offsets. Batches without a producer id always pass.
    pub fn check(&self, header: &BatchHeader) -> Result<SequenceCheck, SequenceError> {
        if header.is_control() && header.has_producer_id() {
            return self.check_marker(header);
        }
        if !header.has_producer_id() || header.base_sequence < 0 {
            return Ok(SequenceCheck::Append);
        }
        let Some(entry) = self.producers.get(&header.producer_id) else {
            return Ok(SequenceCheck::Append);
        };
        if header.producer_epoch < entry.epoch {
            return Err(SequenceError::StaleEpoch {
                current: entry.epoch,
                got: header.producer_epoch,
            });
        }
        if header.producer_epoch > entry.epoch {
            // A new epoch starts its sequences over.
            return match header.base_sequence {
                0 => outside_transaction(entry, header),
                got => Err(SequenceError::OutOfOrder { expected: 0, got }),
            };
        }
        let wanted = batch_of(header);
        if let Some(done) = entry.batches.iter().find(|batch| {
            batch.first_sequence == wanted.first_sequence
                && batch.last_sequence == wanted.last_sequence
        }) {
            return Ok(SequenceCheck::Duplicate(*done));
        }
        // No batch at this epoch yet (a marker set it): it starts at 0, as in Kafka, where the
        // last sequence of an empty entry is -1.
        let expected = entry
            .batches
            .back()
            .map_or(0, |last| next_sequence(last.last_sequence));
        if header.base_sequence != expected {
            return Err(SequenceError::OutOfOrder {
                expected,
                got: header.base_sequence,
            });
        }
        outside_transaction(entry, header)
    }

    /// A transaction marker: refused at an epoch older than the producer's here, as Kafka's
    /// `ProducerAppendInfo.appendEndTxnMarker` (InvalidProducerEpochException), so it neither
    /// ends the transaction open at the newer epoch nor is appended. Recovery replays whatever
    /// the log holds ([`Self::record`]): this check is the append's.
    fn check_marker(&self, header: &BatchHeader) -> Result<SequenceCheck, SequenceError> {
        match self.producers.get(&header.producer_id) {
            Some(entry) if header.producer_epoch < entry.epoch => Err(SequenceError::StaleEpoch {
                current: entry.epoch,
                got: header.producer_epoch,
            }),
            _ => Ok(SequenceCheck::Append),
        }
    }

    /// Marks the producers with an open transaction in the log (at open, when nothing is
    /// queued, the log's open transactions are the whole truth).
    pub fn note_open_transactions(&mut self, open: impl Fn(i64) -> bool) {
        for (producer_id, entry) in &mut self.producers {
            entry.txn_open = open(*producer_id);
        }
    }

    /// Records a batch that got offsets (on append, or replayed by recovery).
    pub fn record(&mut self, header: &BatchHeader) {
        if header.is_control() && header.has_producer_id() {
            self.record_marker(header);
            return;
        }
        if !header.has_producer_id() || header.base_sequence < 0 {
            return;
        }
        let batch = batch_of(header);
        let entry = self
            .producers
            .entry(header.producer_id)
            .or_insert_with(|| ProducerEntry::first_seen(header));
        if !entry.adopt_epoch(header.producer_epoch) {
            return;
        }
        entry.txn_open |= header.is_transactional();
        // Replaying a batch the snapshot already holds changes nothing.
        if entry
            .batches
            .iter()
            .any(|known| known.base_offset == batch.base_offset)
        {
            return;
        }
        if entry.batches.len() == BATCHES_REMEMBERED {
            entry.batches.pop_front();
        }
        entry.batches.push_back(batch);
        entry.last_timestamp_ms = header.max_timestamp;
    }

    /// Records a transaction marker (a control batch) of a producer: its epoch becomes the
    /// producer's if newer (the batches of the older epoch are forgotten, as Kafka's
    /// `ProducerStateEntry.maybeUpdateProducerEpoch`), never lowering it.
    fn record_marker(&mut self, header: &BatchHeader) {
        let entry = self
            .producers
            .entry(header.producer_id)
            .or_insert_with(|| ProducerEntry::first_seen(header));
        // Any marker of the producer ends its transaction here, as the log's open transactions
        // count it.
        entry.txn_open = false;
        if !entry.adopt_epoch(header.producer_epoch) {
            return;
        }
        if entry
            .marker_offset
            .is_none_or(|known| header.base_offset < known)
        {
            entry.marker_offset = Some(header.base_offset);
        }
        entry.last_timestamp_ms = entry.last_timestamp_ms.max(header.max_timestamp);
    }

    /// Forgets every producer whose last batch's max timestamp is at least `expiration_ms` before
    /// `now_ms` (Kafka's `producer.id.expiration.ms`), unless `in_transaction(producer_id)` says it
    /// holds an open transaction (its state is needed until the marker) or its last batch is at
    /// or past `unwritten_from` (queued, not yet written: a transaction it opens is not noted
    /// until then). An entry whose timestamp a snapshot did not hold gets `now_ms`: its clock
    /// starts here. Returns how many were forgotten.
    pub fn expire(
        &mut self,
        now_ms: i64,
        expiration_ms: u64,
        unwritten_from: Offset,
        in_transaction: impl Fn(i64) -> bool,
    ) -> usize {
        let before = self.producers.len();
        let expiration_ms = i64::try_from(expiration_ms).unwrap_or(i64::MAX);
        self.producers.retain(|&producer_id, entry| {
            if entry.last_timestamp_ms == UNKNOWN_TIMESTAMP {
                entry.last_timestamp_ms = now_ms;
            }
            let unwritten = (entry.batches.back())
                .is_some_and(|last| last.last_offset >= unwritten_from)
                || entry
                    .marker_offset
                    .is_some_and(|marker| marker >= unwritten_from);
            now_ms.saturating_sub(entry.last_timestamp_ms) < expiration_ms
                || unwritten
                || in_transaction(producer_id)
        });
        before - self.producers.len()
    }

    /// Serialises the table as of `offset` (see the module's byte map). Batches at or past
    /// `offset` (queued, maybe never written) are left out: a snapshot must not vouch for them.
    pub fn encode_snapshot(&self, offset: Offset) -> Vec<u8> {
        self.encode_snapshot_with(offset, &[])
    }

    /// [`Self::encode_snapshot`] with the partition's open transactions as of `offset`
    /// (producer id, first offset), which the transaction state is rebuilt from at open.
    pub fn encode_snapshot_with(
        &self,
        offset: Offset,
        open_transactions: &[(i64, Offset)],
    ) -> Vec<u8> {
        let mut producers: Vec<ProducerEntry> = self
            .producers
            .values()
            .map(|entry| ProducerEntry {
                batches: entry
                    .batches
                    .iter()
                    .filter(|batch| batch.base_offset < offset)
                    .copied()
                    .collect(),
                ..entry.clone()
            })
            .filter(|entry| {
                !entry.batches.is_empty()
                    || entry.marker_offset.is_some_and(|marker| marker < offset)
            })
            .collect();
        producers.sort_by_key(|entry| entry.producer_id);
        let snapshot = SnapshotFile {
            version: SNAPSHOT_VERSION,
            offset,
            producers,
            open_transactions: open_transactions.to_vec(),
        };
        serde_json::to_vec(&snapshot).expect("a table always serialises")
    }

    /// Reads a snapshot; returns the table and the offset it covers up to.
    pub fn decode_snapshot(bytes: &[u8]) -> Option<(Self, Offset)> {
        let snapshot: SnapshotFile = serde_json::from_slice(bytes).ok()?;
        if snapshot.version != SNAPSHOT_VERSION {
            return None;
        }
        let producers = snapshot
            .producers
            .into_iter()
            .map(|entry| (entry.producer_id, entry))
            .collect();
        Some((Self { producers }, snapshot.offset))
    }

    /// The open transactions a snapshot holds (none in a snapshot written before transactions
    /// were stored: such a log had none).
    pub fn decode_snapshot_transactions(bytes: &[u8]) -> Option<Vec<(i64, Offset)>> {
        let snapshot: SnapshotFile = serde_json::from_slice(bytes).ok()?;
        Some(snapshot.open_transactions)
    }
}

const SNAPSHOT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    version: u32,
    offset: Offset,
    producers: Vec<ProducerEntry>,
    /// `[[producer_id, first_offset], …]`: transactions open as of `offset`.
    #[serde(default)]
    open_transactions: Vec<(i64, Offset)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{encode_batch, parse_header, set_base_offset, ProducerSpec, RecordSpec};

    fn header(
        producer_id: i64,
        epoch: i16,
        base_sequence: i32,
        records: usize,
        base_offset: i64,
    ) -> BatchHeader {
        let specs = vec![
            RecordSpec {
                key: None,
                value: Some(b"v"),
                timestamp_delta: 0
            };
            records
        ];
        let mut bytes = encode_batch(
            0,
            &specs,
            ProducerSpec {
                producer_id,
                producer_epoch: epoch,
                base_sequence,
            },
        );
        set_base_offset(&mut bytes, Offset::new(base_offset));
        parse_header(&bytes).unwrap()
    }

    #[test]
    fn retries_are_duplicates_and_gaps_are_refused() {
        // The idempotent producer's contract: a resent batch lands once; a lost batch is reported.
        let mut table = ProducerStateTable::default();
        let first = header(7, 0, 0, 3, 100);
        assert_eq!(table.check(&first), Ok(SequenceCheck::Append));
        table.record(&first);
        let second = header(7, 0, 3, 2, 103);
        assert_eq!(table.check(&second), Ok(SequenceCheck::Append));
        table.record(&second);
        let retry = header(7, 0, 0, 3, -1);
        assert_eq!(
            table.check(&retry),
            Ok(SequenceCheck::Duplicate(ProducerBatch {
                first_sequence: 0,
                last_sequence: 2,
                base_offset: Offset::new(100),
                last_offset: Offset::new(102)
            }))
        );
        assert_eq!(
            table.check(&header(7, 0, 9, 1, -1)),
            Err(SequenceError::OutOfOrder {
                expected: 5,
                got: 9
            })
        );
        assert_eq!(
            table.check(&header(7, 1, 4, 1, -1)),
            Err(SequenceError::OutOfOrder {
                expected: 0,
                got: 4
            })
        );
        table.record(&header(7, 1, 0, 1, 105));
        assert_eq!(
            table.check(&header(7, 0, 5, 1, -1)),
            Err(SequenceError::StaleEpoch { current: 1, got: 0 })
        );
        // Non-idempotent batches are never checked.
        assert_eq!(
            table.check(&header(-1, -1, -1, 1, -1)),
            Ok(SequenceCheck::Append)
        );
    }

    fn marker(producer_id: i64, epoch: i16, base_offset: i64) -> BatchHeader {
        let mut bytes = crate::txn::encode::control_batch(
            0,
            producer_id,
            epoch,
            crate::txn::ControlMarker::Abort,
            0,
        );
        set_base_offset(&mut bytes, Offset::new(base_offset));
        parse_header(&bytes).unwrap()
    }

    #[test]
    fn markers_raise_the_epoch_never_lower_it_and_snapshots_vouch_only_for_written_ones() {
        let mut table = ProducerStateTable::default();
        table.record(&header(7, 2, 0, 1, 10));
        table.record(&marker(7, 1, 11));
        assert_eq!(
            table.check(&header(7, 2, 1, 1, -1)),
            Ok(SequenceCheck::Append),
            "an older marker changes nothing"
        );
        table.record(&marker(7, 3, 12));
        assert_eq!(
            table.check(&header(7, 2, 1, 1, -1)),
            Err(SequenceError::StaleEpoch { current: 3, got: 2 })
        );
        assert_eq!(
            table.check(&header(7, 3, 2, 1, -1)),
            Err(SequenceError::OutOfOrder {
                expected: 0,
                got: 2
            })
        );
        // A snapshot below the marker (it may still be queued) does not vouch for its epoch.
        let (before, _) =
            ProducerStateTable::decode_snapshot(&table.encode_snapshot(Offset::new(12))).unwrap();
        assert!(before.is_empty());
        let (after, _) =
            ProducerStateTable::decode_snapshot(&table.encode_snapshot(Offset::new(13))).unwrap();
        assert_eq!(after, table);
        assert_eq!(
            after.active(|_| None),
            vec![ActiveProducer {
                producer_id: 7,
                epoch: 3,
                last_sequence: -1,
                last_offset: None,
                last_timestamp_ms: Some(0),
                current_txn_first_offset: None,
            }],
            "no batch at the marker's epoch, and still listed (as Kafka)"
        );
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        // Kafka's sequence numbers go round: the batch after i32::MAX starts at 0.
        assert_eq!(add_sequence(i32::MAX, 1), 0);
        assert_eq!(add_sequence(i32::MAX - 1, 3), 1);
        let mut table = ProducerStateTable::default();
        table.record(&header(3, 0, i32::MAX - 1, 2, 10));
        assert_eq!(
            table.check(&header(3, 0, 0, 1, -1)),
            Ok(SequenceCheck::Append)
        );
    }

    #[test]
    fn only_the_last_batches_are_remembered_and_snapshots_round_trip() {
        // Memory stays bounded per producer, and a restart sees the same table.
        let mut table = ProducerStateTable::default();
        for index in 0..10 {
            table.record(&header(1, 0, index, 1, 50 + i64::from(index)));
        }
        assert!(matches!(
            table.check(&header(1, 0, 5, 1, -1)),
            Ok(SequenceCheck::Duplicate(_))
        ));
        assert!(
            table.check(&header(1, 0, 2, 1, -1)).is_err(),
            "forgotten batches are no longer duplicates"
        );
        let (decoded, offset) =
            ProducerStateTable::decode_snapshot(&table.encode_snapshot(Offset::new(60))).unwrap();
        assert_eq!(offset, Offset::new(60));
        assert_eq!(decoded, table);
        assert!(ProducerStateTable::decode_snapshot(b"{").is_none());
    }

    /// Every batch of these tests is written.
    const WRITTEN: Offset = Offset::new(i64::MAX);

    #[test]
    fn producers_expire_after_their_last_batch_unless_in_a_transaction() {
        // Batches of `header` carry max timestamp 0: at now = expiration they are due.
        let mut table = ProducerStateTable::default();
        for producer_id in [1, 2, 3] {
            table.record(&header(producer_id, 0, 0, 1, producer_id * 10));
        }
        assert_eq!(
            table.expire(999, 1_000, WRITTEN, |_| false),
            0,
            "not yet due"
        );
        assert_eq!(
            table.expire(1_000, 1_000, WRITTEN, |producer_id| producer_id == 2),
            2
        );
        let left: Vec<i64> = table
            .active(|_| None)
            .iter()
            .map(|p| p.producer_id)
            .collect();
        assert_eq!(left, vec![2], "the one in a transaction stays");
        // A forgotten producer's next batch is a new producer's: any sequence is taken.
        assert_eq!(
            table.check(&header(1, 0, 7, 1, -1)),
            Ok(SequenceCheck::Append)
        );
        // A later batch moves the clock on.
        let mut recent = header(2, 0, 1, 1, 40);
        recent.max_timestamp = 5_000;
        table.record(&recent);
        assert_eq!(table.expire(5_999, 1_000, WRITTEN, |_| false), 0);
        // Not while its last batch is still queued (at or past the first unwritten offset).
        assert_eq!(table.expire(6_000, 1_000, Offset::new(40), |_| false), 0);
        assert_eq!(table.expire(6_000, 1_000, Offset::new(41), |_| false), 1);
        assert!(table.is_empty());
    }

    #[test]
    fn snapshots_keep_the_last_timestamp_and_older_ones_start_the_clock_at_the_first_pass() {
        let mut table = ProducerStateTable::default();
        let mut batch = header(4, 0, 0, 1, 0);
        batch.max_timestamp = 1_000;
        table.record(&batch);
        let (read, _) =
            ProducerStateTable::decode_snapshot(&table.encode_snapshot(Offset::new(1))).unwrap();
        assert_eq!(read, table);
        // A snapshot from before expiry: no last_timestamp_ms. Its producers are not forgotten
        // at once (they may have written a second ago); their clock starts at the first pass.
        let old = br#"{"version":1,"offset":1,"producers":[{"producer_id":4,"epoch":0,"batches":[{"first_sequence":0,"last_sequence":0,"base_offset":0,"last_offset":0}]}]}"#;
        let (mut read, _) = ProducerStateTable::decode_snapshot(old).unwrap();
        assert_eq!(read.expire(i64::MAX / 2, 1_000, WRITTEN, |_| false), 0);
        assert_eq!(
            read.expire(i64::MAX / 2 + 999, 1_000, WRITTEN, |_| false),
            0
        );
        assert_eq!(
            read.expire(i64::MAX / 2 + 1_000, 1_000, WRITTEN, |_| false),
            1
        );
    }
}
