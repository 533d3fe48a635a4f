//! The coordinator's views and deletions for admin tools: ListGroups, DescribeGroups,
//! OffsetDelete and DeleteGroups.
#![forbid(unsafe_code)]

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::consumer;
use super::offsets_log::{group_key, offset_key};
use super::state::Group;
use super::txn_offsets::txn_offset_key;
use super::{CommittedOffset, Coordinator};

/// A group as ListGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    pub state: &'static str,
    /// "classic" or "consumer" (KIP-848), as Kafka's ListGroups v5 names them.
    pub group_type: &'static str,
}

/// Whether a consumer-protocol assignment (version, [topic, [partition]], user data) names
/// `topic`. Assignments are the clients' bytes; anything unreadable counts as not naming it.
fn assignment_mentions(assignment: &Bytes, topic: &str) -> bool {
    use bytes::Buf;
    use kafka_protocol::protocol::Decodable;
    let mut bytes = assignment.clone();
    if bytes.remaining() < 2 {
        return false;
    }
    let version = bytes.get_i16().clamp(0, 3);
    kafka_protocol::messages::ConsumerProtocolAssignment::decode(&mut bytes, version).is_ok_and(
        |decoded| {
            decoded
                .assigned_partitions
                .iter()
                .any(|assigned| assigned.topic.as_str() == topic)
        },
    )
}

impl Coordinator {
    /// Every group, classic and consumer, and groups known only by their offsets.
    pub fn list(&self) -> Vec<ListedGroup> {
        let mut all: Vec<ListedGroup> = self
            .groups
            .borrow()
            .values()
            .map(|group| ListedGroup {
                group_id: group.group_id.clone(),
                protocol_type: group.protocol_type.clone().unwrap_or_default(),
                state: group.phase.kafka_name(),
                group_type: "classic",
            })
            .collect();
        all.extend(
            self.consumer_groups
                .borrow()
                .values()
                .map(|group| ListedGroup {
                    group_id: group.group_id.clone(),
                    protocol_type: "consumer".to_string(),
                    state: group.phase().kafka_name(),
                    group_type: "consumer",
                }),
        );
        for group_id in self.offsets.borrow().keys() {
            if !all.iter().any(|listed| listed.group_id == *group_id) {
                all.push(ListedGroup {
                    group_id: group_id.clone(),
                    protocol_type: String::new(),
                    state: "Empty",
                    group_type: "classic",
                });
            }
        }
        all.sort();
        all
    }

    /// A snapshot of one group for DescribeGroups.
    pub fn describe(&self, group_id: &str) -> Option<Group> {
        self.groups.borrow().get(group_id).cloned().or_else(|| {
            self.offsets
                .borrow()
                .contains_key(group_id)
                .then(|| Group::new(group_id))
        })
    }

    /// Deletes committed offsets of partitions the group does not consume now (OffsetDelete).
    /// Returns an error per partition: GROUP_SUBSCRIBED_TO_TOPIC for topics a member is assigned.
    pub async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        let known = self.groups.borrow().contains_key(group_id)
            || self.consumer_groups.borrow().contains_key(group_id)
            || self.offsets.borrow().contains_key(group_id);
        if !known {
            return Err(ResponseError::GroupIdNotFound);
        }
        let subscribed = |topic: &str| -> bool {
            let classic = self.groups.borrow().get(group_id).is_some_and(|group| {
                group
                    .members
                    .values()
                    .any(|member| assignment_mentions(&member.assignment, topic))
            });
            classic
                || self
                    .consumer_groups
                    .borrow()
                    .get(group_id)
                    .is_some_and(|group| {
                        group.members.values().any(|member| {
                            member.assigned.contains_key(topic)
                                || member.revoking.contains_key(topic)
                        })
                    })
        };
        let mut answers = Vec::with_capacity(partitions.len());
        let mut tombstones = Vec::new();
        for (topic, partition) in &partitions {
            if subscribed(topic) {
                answers.push(Some(ResponseError::GroupSubscribedToTopic));
            } else {
                tombstones.push((offset_key(group_id, topic, *partition), None));
                answers.push(None);
            }
        }
        // Out of memory before the wait for the tombstones: a commit in that wait is written
        // after them and must stay (removed after the wait, it could be dropped from memory and
        // come back at a restart).
        let mut removed = Vec::new();
        if let Some(group_offsets) = self.offsets.borrow_mut().get_mut(group_id) {
            for ((topic, partition), answer) in partitions.into_iter().zip(&answers) {
                let key = (topic, partition);
                if let Some(committed) = answer.is_none().then(|| group_offsets.remove(&key)) {
                    removed.push((key, committed));
                }
            }
        }
        if let Err(error) = self.persist(tombstones).await {
            let mut offsets = self.offsets.borrow_mut();
            let group_offsets = offsets.entry(group_id.to_string()).or_default();
            for (key, committed) in removed {
                if let Some(committed) = committed {
                    group_offsets.entry(key).or_insert(committed);
                }
            }
            return Err(error);
        }
        Ok(answers)
    }

    /// Deletes every group's committed offsets of a deleted topic, and the pending transactional
    /// ones (Kafka's `OffsetMetadataManager.onPartitionsDeleted`): a topic made again under the
    /// name starts with none (else a group resumes it at the old topic's offsets, skipping the
    /// records before them, or a transaction committed later brings them back). A failed write
    /// is logged and changes nothing.
    pub async fn forget_topic(&self, topic: &str) {
        // Out of memory before the wait, as in `delete_offsets`.
        let mut removed = Vec::new();
        for (group_id, group_offsets) in self.offsets.borrow_mut().iter_mut() {
            group_offsets.retain(|(name, partition), committed| {
                let keep = name != topic;
                if !keep {
                    removed.push((group_id.clone(), *partition, committed.clone()));
                }
                keep
            });
        }
        self.offsets
            .borrow_mut()
            .retain(|_, group_offsets| !group_offsets.is_empty());
        let removed_pending = self.forget_pending_of_topic(topic);
        let tombstones = removed
            .iter()
            .map(|(group_id, partition, _)| (offset_key(group_id, topic, *partition), None))
            .chain(
                removed_pending
                    .iter()
                    .map(|(producer_id, group_id, partition, _)| {
                        let key = txn_offset_key(*producer_id, group_id, topic, *partition);
                        (key, None)
                    }),
            )
            .collect();
        if let Err(error) = self.persist(tombstones).await {
            tracing::error!(
                topic,
                ?error,
                "deleting a deleted topic's committed offsets failed"
            );
            let mut offsets = self.offsets.borrow_mut();
            for (group_id, partition, committed) in removed {
                let group_offsets = offsets.entry(group_id).or_default();
                group_offsets
                    .entry((topic.to_string(), partition))
                    .or_insert(committed);
            }
            let mut pending = self.pending_txn_offsets.borrow_mut();
            for (producer_id, group_id, partition, committed) in removed_pending {
                let group_offsets = pending
                    .entry(producer_id)
                    .or_default()
                    .entry(group_id)
                    .or_default();
                group_offsets
                    .entry((topic.to_string(), partition))
                    .or_insert(committed);
            }
        }
    }

    /// Takes `topic`'s pending transactional offsets out of memory: (producer id, group,
    /// partition, offset) of each.
    fn forget_pending_of_topic(&self, topic: &str) -> Vec<(i64, String, i32, CommittedOffset)> {
        let mut removed = Vec::new();
        let mut pending = self.pending_txn_offsets.borrow_mut();
        for (producer_id, groups) in pending.iter_mut() {
            for (group_id, group_offsets) in groups.iter_mut() {
                group_offsets.retain(|(name, partition), committed| {
                    let keep = name != topic;
                    if !keep {
                        removed.push((
                            *producer_id,
                            group_id.clone(),
                            *partition,
                            committed.clone(),
                        ));
                    }
                    keep
                });
            }
            groups.retain(|_, group_offsets| !group_offsets.is_empty());
        }
        pending.retain(|_, groups| !groups.is_empty());
        removed
    }

    /// Deletes an empty group and its offsets.
    pub async fn delete(&self, group_id: &str) -> Result<(), ResponseError> {
        let consumer_tombstones = match self.consumer_groups.borrow().get(group_id) {
            Some(group) if !group.members.is_empty() => return Err(ResponseError::NonEmptyGroup),
            Some(group) => Some(consumer::record::tombstones(group)),
            None => None,
        };
        let known = consumer_tombstones.is_some() || {
            let groups = self.groups.borrow();
            match groups.get(group_id) {
                Some(group) if !group.members.is_empty() => {
                    return Err(ResponseError::NonEmptyGroup)
                }
                Some(_) => true,
                None => self.offsets.borrow().contains_key(group_id),
            }
        };
        if !known {
            return Err(ResponseError::GroupIdNotFound);
        }
        let mut tombstones: Vec<(Vec<u8>, Option<Vec<u8>>)> =
            consumer_tombstones.unwrap_or_else(|| vec![(group_key(group_id), None)]);
        if let Some(group_offsets) = self.offsets.borrow().get(group_id) {
            tombstones.extend(
                group_offsets
                    .keys()
                    .map(|(topic, partition)| (offset_key(group_id, topic, *partition), None)),
            );
        }
        // Taken out of memory before the wait for the tombstones: a join, heartbeat or commit
        // arriving in that wait starts afresh, after the tombstones in the log as in memory.
        // (Removed after the wait, it was dropped from memory while its records, written after
        // the tombstones, came back at a restart; a parked join was never answered.)
        let classic = self.groups.borrow_mut().remove(group_id);
        let consumer = self.consumer_groups.borrow_mut().remove(group_id);
        let offsets = self.offsets.borrow_mut().remove(group_id);
        if let Err(error) = self.persist(tombstones).await {
            self.undo_delete(group_id, classic, consumer, offsets);
            return Err(error);
        }
        Ok(())
    }

    /// The tombstones of a deletion could not be written: what it took out of memory is put
    /// back, under whatever a newcomer made meanwhile (a group id stays one protocol's).
    fn undo_delete(
        &self,
        group_id: &str,
        classic: Option<Group>,
        consumer: Option<consumer::ConsumerGroup>,
        offsets: Option<super::GroupOffsets>,
    ) {
        let taken = self.groups.borrow().contains_key(group_id)
            || self.consumer_groups.borrow().contains_key(group_id);
        if !taken {
            if let Some(group) = classic {
                self.groups.borrow_mut().insert(group_id.to_string(), group);
            }
            if let Some(group) = consumer {
                self.consumer_groups
                    .borrow_mut()
                    .insert(group_id.to_string(), group);
            }
        }
        let mut all_offsets = self.offsets.borrow_mut();
        let now = all_offsets.entry(group_id.to_string()).or_default();
        for (partition, committed) in offsets.unwrap_or_default() {
            now.entry(partition).or_insert(committed);
        }
        if now.is_empty() {
            all_offsets.remove(group_id);
        }
    }
}
