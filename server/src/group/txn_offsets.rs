//! Transactional offset commits (KIP-98, KIP-447): TxnOffsetCommit's offsets stay pending, per
//! producer, until the transaction's marker reaches `__consumer_offsets`; a COMMIT makes them the
//! group's committed offsets, an ABORT drops them.
//!
//! # Byte map (records in `__consumer_offsets`, see also offsets_log.rs)
//! ```text
//! key "txnoffset\0<producer id>\0<group>\0<topic>\0<partition>"  value JSON CommittedOffset
//!     in a transactional batch (attributes 0x10) of the producer: a pending offset
//! marker (control batch) + one plain batch, in ONE append when the transaction ends:
//!     tombstones of the pending keys, and on COMMIT the "offset\0…" records with their values
//! ```
//! Replay needs no marker logic: the plain records that follow each marker say what it did, and
//! the append holding both is all or nothing. A pending key of its own (not the "offset" key)
//! keeps compaction from dropping a committed offset that a later, aborted, transaction shadowed.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};

use bytes::BytesMut;
use kafka_protocol::error::ResponseError;
use ringtail_engine::batch::RecordSpec;
use ringtail_engine::log::now_ms;

use super::{fits_in_key, offsets_log, CommittedOffset, Coordinator, GroupOffsets};
use crate::txn::marker::{encode_marker, encode_transactional, MarkerType, TxnProducer};

/// Pending offsets by producer id, then group.
pub(crate) type PendingTxnOffsets = BTreeMap<i64, BTreeMap<String, GroupOffsets>>;

/// A pending offset a TxnOffsetCommit put in memory: its partition, the offset, and the one it
/// replaced.
type Replaced = ((String, i32), CommittedOffset, Option<CommittedOffset>);

/// Pending offsets a producer may hold (the bound on what a client can make the coordinator keep).
pub const PENDING_OFFSETS_PER_PRODUCER_MAX: usize = 100_000;

pub(crate) fn txn_offset_key(
    producer_id: i64,
    group: &str,
    topic: &str,
    partition: i32,
) -> Vec<u8> {
    format!("txnoffset\0{producer_id}\0{group}\0{topic}\0{partition}").into_bytes()
}

/// Applies a replayed pending-offset record (`parts`: the key split at NUL bytes).
pub(crate) fn apply(pending: &mut PendingTxnOffsets, parts: &[&str], value: Option<&[u8]>) -> bool {
    let ["txnoffset", producer_id, group, topic, partition] = parts else {
        return false;
    };
    let (Ok(producer_id), Ok(partition)) = (producer_id.parse::<i64>(), partition.parse::<i32>())
    else {
        return true;
    };
    let key = (topic.to_string(), partition);
    match value.and_then(|value| serde_json::from_slice::<CommittedOffset>(value).ok()) {
        Some(committed) => {
            pending
                .entry(producer_id)
                .or_default()
                .entry(group.to_string())
                .or_default()
                .insert(key, committed);
        }
        None => {
            if let Some(groups) = pending.get_mut(&producer_id) {
                if let Some(offsets) = groups.get_mut(*group) {
                    offsets.remove(&key);
                    if offsets.is_empty() {
                        groups.remove(*group);
                    }
                }
                if groups.is_empty() {
                    pending.remove(&producer_id);
                }
            }
        }
    }
    true
}

impl Coordinator {
    /// TxnOffsetCommit: stores the offsets as pending for `producer` (written, fsynced).
    pub async fn txn_commit(
        &self,
        group_id: &str,
        producer: TxnProducer,
        (member_id, instance_id, generation_id): (&str, Option<&str>, i32),
        commits: Vec<(String, i32, CommittedOffset)>,
    ) -> Result<(), ResponseError> {
        if !fits_in_key(group_id) {
            return Err(ResponseError::InvalidGroupId);
        }
        if !commits.iter().all(|(topic, _, _)| fits_in_key(topic)) {
            return Err(ResponseError::UnknownTopicOrPartition);
        }
        // KIP-447: the member a producer names (its consumer's group metadata) is checked as an
        // OffsetCommit's is, so a fenced member's producer can't overwrite the new owner's
        // offsets; naming nobody (-1, no member id: a producer without its consumer's metadata,
        // or TxnOffsetCommit before v3) is accepted.
        let member = (member_id, instance_id, generation_id);
        let refused = if let Some(group) = self.consumer_groups.borrow().get(group_id) {
            // A consumer (KIP-848) group's member and epoch too, as Kafka checks them.
            group.check_commit(member, 0, true)
        } else if let Some(group) = self.groups.borrow().get(group_id) {
            group.check_commit(member, true)
        } else if generation_id >= 0 {
            // Kafka's validateTransactionalOffsetCommit: a group that does not exist is
            // ILLEGAL_GENERATION (any version); one known only by its commits (Kafka's
            // "simple" group, empty) fails the member check.
            Some(if self.offsets.borrow().contains_key(group_id) {
                ResponseError::UnknownMemberId
            } else {
                ResponseError::IllegalGeneration
            })
        } else {
            // Generation -1 to a group without members is Kafka's simple consumer: accepted.
            None
        };
        if let Some(error) = refused {
            return Err(error);
        }
        let held = self
            .pending_txn_offsets
            .borrow()
            .get(&producer.producer_id)
            .map_or(0, |groups| {
                groups.values().map(BTreeMap::len).sum::<usize>()
            });
        if held + commits.len() > PENDING_OFFSETS_PER_PRODUCER_MAX {
            return Err(ResponseError::InvalidRequest);
        }
        let keys: Vec<(Vec<u8>, Vec<u8>)> = commits
            .iter()
            .map(|(topic, partition, committed)| {
                (
                    txn_offset_key(producer.producer_id, group_id, topic, *partition),
                    serde_json::to_vec(committed).expect("serialisable"),
                )
            })
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        let specs: Vec<RecordSpec<'_>> = keys
            .iter()
            .map(|(key, value)| RecordSpec {
                key: Some(key),
                value: Some(value),
                timestamp_delta: 0,
            })
            .collect();
        let record_set = BytesMut::from(&encode_transactional(producer, &specs, now_ms())[..]);
        // In memory before the write, not after: a topic deletion whose cleanup runs while it is
        // written ([`Coordinator::forget_topic`], at the await) must see these offsets, and its
        // tombstones land after this record. Put in only after the write, they were missed and
        // a later COMMIT gave the deleted (or recreated) topic the offset. Taken back if the
        // write fails.
        //
        // The handler checked the topics on its shard, then hopped here through the transaction
        // coordinator: a DeleteTopics may have removed one and run its cleanup meanwhile.
        // Checked again here, with no await before the offsets go in: either the cleanup comes
        // later and sees them, or the topic is already gone from the metadata (published before
        // any cleanup) and nothing is stored. The client retries UNKNOWN_TOPIC_OR_PARTITION and
        // gets each partition's answer.
        let gone = commits.iter().any(|(topic, partition, _)| {
            !self
                .metadata
                .topic(topic)
                .is_some_and(|info| info.has_partition(*partition))
        });
        if gone {
            return Err(ResponseError::UnknownTopicOrPartition);
        }
        let written: Vec<Replaced> = {
            let mut pending = self.pending_txn_offsets.borrow_mut();
            let offsets = pending
                .entry(producer.producer_id)
                .or_default()
                .entry(group_id.to_string())
                .or_default();
            commits
                .into_iter()
                .map(|(topic, partition, committed)| {
                    let key = (topic, partition);
                    let before = offsets.insert(key.clone(), committed.clone());
                    (key, committed, before)
                })
                .collect()
        };
        if let Err(error) = self.append_record_set(record_set).await {
            self.take_back(producer.producer_id, group_id, written);
            return Err(error);
        }
        Ok(())
    }

    /// Undoes a failed TxnOffsetCommit's offsets in memory: each back to what it replaced,
    /// unless something changed it meanwhile (a topic deletion took it out: it stays out).
    fn take_back(&self, producer_id: i64, group_id: &str, written: Vec<Replaced>) {
        let mut pending = self.pending_txn_offsets.borrow_mut();
        let Some(groups) = pending.get_mut(&producer_id) else {
            return;
        };
        if let Some(offsets) = groups.get_mut(group_id) {
            for (key, ours, before) in written {
                if offsets.get(&key) != Some(&ours) {
                    continue;
                }
                match before {
                    Some(before) => offsets.insert(key, before),
                    None => offsets.remove(&key),
                };
            }
            if offsets.is_empty() {
                groups.remove(group_id);
            }
        }
        if groups.is_empty() {
            pending.remove(&producer_id);
        }
    }

    /// The partitions of `group_id` with a transactional offset not yet committed or aborted:
    /// what an OffsetFetch with `require_stable` (KIP-447) answers UNSTABLE_OFFSET_COMMIT for.
    /// One pass over the producers holding pending offsets (bounded by the transactional ids).
    pub fn pending_txn_partitions(&self, group_id: &str) -> BTreeSet<(String, i32)> {
        self.pending_txn_offsets
            .borrow()
            .values()
            .filter_map(|groups| groups.get(group_id))
            .flat_map(|offsets| offsets.keys().cloned())
            .collect()
    }

    /// The marker of `producer`'s transaction in `__consumer_offsets`, with what it did (see the
    /// module's byte map), in one append; then the pending offsets become committed or go.
    /// `only_if_open` (a transaction recovered after a restart): no open transaction of the
    /// producer in the offsets log means this marker was written before the crash (or the
    /// producer committed no offsets), so none is written again. Its pending offsets alone do
    /// not say it: a deleted topic's are dropped (admin.rs) while its batch still waits for the
    /// marker, which the log's last stable offset waits for.
    pub async fn end_txn_offsets(
        &self,
        producer: TxnProducer,
        marker: MarkerType,
        only_if_open: bool,
    ) -> Result<(), ResponseError> {
        let now = now_ms();
        let pending = self
            .pending_txn_offsets
            .borrow()
            .get(&producer.producer_id)
            .cloned()
            .unwrap_or_default();
        let open = || {
            (self.log().open_transactions())
                .iter()
                .any(|(producer_id, _)| *producer_id == producer.producer_id)
        };
        if only_if_open && !open() {
            return Ok(());
        }
        let mut records = Vec::new();
        for (group, offsets) in &pending {
            for ((topic, partition), committed) in offsets {
                records.push((
                    txn_offset_key(producer.producer_id, group, topic, *partition),
                    None,
                ));
                if marker == MarkerType::Commit {
                    let value = serde_json::to_vec(committed).expect("serialisable");
                    records.push((
                        offsets_log::offset_key(group, topic, *partition),
                        Some(value),
                    ));
                }
            }
        }
        let mut record_set = BytesMut::from(&encode_marker(producer, marker, now)[..]);
        if !records.is_empty() {
            let max_batch_bytes = self.log().config().max_message_bytes as usize;
            record_set.extend_from_slice(&offsets_log::encode_records(
                &records,
                max_batch_bytes,
                now,
            ));
        }
        self.append_record_set(record_set).await?;
        self.pending_txn_offsets
            .borrow_mut()
            .remove(&producer.producer_id);
        if marker == MarkerType::Commit {
            let mut offsets = self.offsets.borrow_mut();
            for (group, committed) in pending {
                offsets.entry(group).or_default().extend(committed);
            }
        }
        Ok(())
    }
}
