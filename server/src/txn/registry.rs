//! The produce-side view of transactions, shared by every shard (KIP-890 part 1's server-side
//! defence): which partitions each producer's ongoing transaction has added, and each
//! transactional producer's current epoch. The coordinator writes it (one writer, on its shard);
//! Produce reads it on the partition's owner shard right before the append, with no await in
//! between, so a marker (appended through the same shard) is never overtaken by a batch that was
//! checked against the transaction it ends.
//!
//! # Invariants
//! - A producer is in `ongoing` only while its transaction's state is Ongoing.
//! - `epochs` never goes down for a producer id.
#![forbid(unsafe_code)]

use std::collections::{BTreeSet, HashMap};
use std::sync::RwLock;

use kafka_protocol::error::ResponseError;
use ringtail_engine::batch::{parse_header, BatchHeader};

use super::state::TxnPartition;

#[derive(Debug, Default)]
struct Inner {
    /// Producer id → its transactional id and the partitions its ongoing transaction added.
    ongoing: HashMap<i64, (String, BTreeSet<TxnPartition>)>,
    /// Producer id → current epoch, for every transactional producer the coordinator knows.
    epochs: HashMap<i64, i16>,
}

/// See the module doc.
#[derive(Debug, Default)]
pub struct TxnRegistry {
    inner: RwLock<Inner>,
}

impl TxnRegistry {
    /// The producer's current epoch and its ongoing transaction's partitions (None: no ongoing one)
    /// under `transactional_id`.
    pub fn set(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        ongoing: Option<BTreeSet<TxnPartition>>,
    ) {
        let mut inner = self
            .inner
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        let known = inner.epochs.entry(producer_id).or_insert(epoch);
        *known = (*known).max(epoch);
        match ongoing {
            Some(partitions) => {
                inner
                    .ongoing
                    .insert(producer_id, (transactional_id.to_string(), partitions));
            }
            None => {
                inner.ongoing.remove(&producer_id);
            }
        }
    }

    /// Forgets a producer id (its transactional id moved to a new one).
    pub fn forget(&self, producer_id: i64) {
        let mut inner = self
            .inner
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        inner.ongoing.remove(&producer_id);
        inner.epochs.remove(&producer_id);
    }

    /// Checks one batch headed for (`topic`, `partition`) in a Produce naming `transactional_id`:
    /// a client's control batch is refused (INVALID_RECORD, as Kafka), a transactional one needs
    /// its producer's current epoch (INVALID_PRODUCER_EPOCH) and the partition in its ongoing
    /// transaction, which must be `transactional_id`'s (INVALID_TXN_STATE, Kafka ≥ 3.6 verifies
    /// the request's id, producer id and epoch with the coordinator). Non-transactional batches
    /// pass.
    pub fn check_batch(
        &self,
        header: &BatchHeader,
        (topic, partition): (&str, i32),
        transactional_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        if header.is_control() {
            return Err(ResponseError::InvalidRecord);
        }
        if !header.is_transactional() {
            return Ok(());
        }
        let inner = self
            .inner
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        match inner.epochs.get(&header.producer_id) {
            Some(current) if header.producer_epoch < *current => {
                return Err(ResponseError::InvalidProducerEpoch)
            }
            _ => {}
        }
        let added = inner
            .ongoing
            .get(&header.producer_id)
            .is_some_and(|(id, partitions)| {
                Some(id.as_str()) == transactional_id
                    && partitions.contains(&(topic.to_string(), partition))
            });
        if added && inner.epochs.get(&header.producer_id) == Some(&header.producer_epoch) {
            Ok(())
        } else {
            Err(ResponseError::InvalidTxnState)
        }
    }

    /// Checks every batch of a produce record set (see [`TxnRegistry::check_batch`]). A record set
    /// that does not parse passes here: the engine's validation refuses it with its own error.
    pub fn check_records(
        &self,
        records: &[u8],
        (topic, partition): (&str, i32),
        transactional_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        let mut position = 0usize;
        while position < records.len() {
            let Ok(header) = parse_header(&records[position..]) else {
                return Ok(());
            };
            self.check_batch(&header, (topic, partition), transactional_id)?;
            let total = header.total_bytes();
            if total == 0 {
                return Ok(());
            }
            position = position.saturating_add(total);
        }
        Ok(())
    }
}

/// Whether a produce record set holds a transactional data batch (Kafka's
/// `hasTransactionalRecords`: such a Produce must name its transactional id). A record set that
/// does not parse has none here: the engine's validation refuses it with its own error.
pub fn has_transactional_records(records: &[u8]) -> bool {
    let mut position = 0usize;
    while position < records.len() {
        let Ok(header) = parse_header(&records[position..]) else {
            return false;
        };
        if header.is_transactional() && !header.is_control() {
            return true;
        }
        let total = header.total_bytes();
        if total == 0 {
            return false;
        }
        position = position.saturating_add(total);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::marker::{encode_marker, encode_transactional, MarkerType, TxnProducer};
    use ringtail_engine::batch::RecordSpec;

    fn batch(producer_id: i64, epoch: i16) -> Vec<u8> {
        let record = RecordSpec {
            key: Some(b"k"),
            value: Some(b"v"),
            timestamp_delta: 0,
        };
        encode_transactional(
            TxnProducer {
                producer_id,
                producer_epoch: epoch,
            },
            &[record],
            0,
        )
    }

    #[test]
    fn only_partitions_of_the_ongoing_transaction_take_its_batches() {
        let registry = TxnRegistry::default();
        let partitions = BTreeSet::from([("t".to_string(), 0)]);
        assert_eq!(
            registry.check_records(&batch(5, 0), ("t", 0), Some("x")),
            Err(ResponseError::InvalidTxnState),
            "unknown producer"
        );
        registry.set("x", 5, 0, Some(partitions));
        assert_eq!(
            registry.check_records(&batch(5, 0), ("t", 0), Some("x")),
            Ok(())
        );
        assert_eq!(
            registry.check_records(&batch(5, 0), ("t", 0), Some("y")),
            Err(ResponseError::InvalidTxnState),
            "another transactional id's producer"
        );
        assert_eq!(
            registry.check_records(&batch(5, 0), ("t", 0), None),
            Err(ResponseError::InvalidTxnState),
            "no transactional id"
        );
        assert!(has_transactional_records(&batch(5, 0)));
        assert_eq!(
            registry.check_records(&batch(5, 0), ("t", 1), Some("x")),
            Err(ResponseError::InvalidTxnState)
        );
        registry.set("x", 5, 1, None);
        assert_eq!(
            registry.check_records(&batch(5, 0), ("t", 0), Some("x")),
            Err(ResponseError::InvalidProducerEpoch),
            "a zombie is fenced"
        );
        assert_eq!(
            registry.check_records(&batch(5, 1), ("t", 0), Some("x")),
            Err(ResponseError::InvalidTxnState),
            "no transaction ongoing"
        );
    }

    #[test]
    fn a_client_control_batch_is_refused() {
        let registry = TxnRegistry::default();
        let marker = encode_marker(
            TxnProducer {
                producer_id: 1,
                producer_epoch: 0,
            },
            MarkerType::Commit,
            0,
        );
        assert_eq!(
            registry.check_records(&marker, ("t", 0), Some("x")),
            Err(ResponseError::InvalidRecord)
        );
    }
}
