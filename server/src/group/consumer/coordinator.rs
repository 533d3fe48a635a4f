//! The coordinator's side of consumer (KIP-848) groups: runs the state machine on each
//! ConsumerGroupHeartbeat with the current topics, persists what changed before answering, and
//! keeps a group id to one protocol (a classic group with members is not a consumer group, and
//! the reverse).
#![forbid(unsafe_code)]

use kafka_protocol::error::ResponseError;
use ringtail_engine::log::now_ms;

use std::rc::Rc;

use super::record;
use super::state::{Dirty, HeartbeatError, HeartbeatResponse};
use super::subscription::{Describable, TopicView};
use super::{ConsumerGroup, HeartbeatRequest, TopicCounts};
use crate::group::Coordinator;

impl Coordinator {
    /// Partition counts of every topic, for subscriptions and assignors, with the metadata
    /// version they are of; made again only when the metadata changed.
    fn topic_counts(&self) -> (u64, Rc<TopicCounts>) {
        let version = self.metadata.version();
        if let Some((cached, counts)) = &*self.topic_counts.borrow() {
            if *cached == version {
                return (version, Rc::clone(counts));
            }
        }
        let (version, topics) = self.metadata.versioned_topics();
        let counts: Rc<TopicCounts> = Rc::new(
            topics
                .iter()
                .map(|topic| (topic.name.clone(), topic.partitions))
                .collect(),
        );
        *self.topic_counts.borrow_mut() = Some((version, Rc::clone(&counts)));
        (version, counts)
    }

    /// [`Coordinator::consumer_heartbeat_as`] of no particular principal (every topic
    /// describable).
    #[cfg(test)]
    pub async fn consumer_heartbeat(
        &self,
        group_id: String,
        request: HeartbeatRequest,
    ) -> Result<HeartbeatResponse, HeartbeatError> {
        self.consumer_heartbeat_as(group_id, request, None, (&|_, _| true, 0))
            .await
    }

    /// Handles a ConsumerGroupHeartbeat sent by `identity`, whose regex subscription matches
    /// only the topics `describable` lets it see (as of the ACLs' version `acl_version`, read
    /// before any check: a regex's result is reused until it changes); the answer is sent once its changes are
    /// durable. If they can't be written, the answer is an error and the changes stay due: the
    /// group's next successful write carries them (the state in memory is never answered before
    /// it is durable).
    pub async fn consumer_heartbeat_as(
        &self,
        group_id: String,
        request: HeartbeatRequest,
        identity: Option<crate::acl::Identity>,
        (describable, acl_version): (Describable<'_>, u64),
    ) -> Result<HeartbeatResponse, HeartbeatError> {
        // Both are parts of record keys, which separate their parts with NUL bytes.
        for (name, id) in [("GroupId", &group_id), ("MemberId", &request.member_id)] {
            if !crate::group::fits_in_key(id) {
                return Err(HeartbeatError {
                    error: ResponseError::InvalidRequest,
                    message: format!("{name} can't contain a NUL byte"),
                });
            }
        }
        let converts_classic = self.claim_for_consumer_protocol(&group_id, request.member_epoch)?;
        let (metadata_version, topics) = self.topic_counts();
        let view = TopicView {
            counts: &topics,
            describable,
            version: Some((metadata_version, acl_version)),
        };
        // The group's own session timeout and heartbeat interval, read at every heartbeat as
        // Kafka does: a change applies from the member's next heartbeat.
        let config = self
            .consumer_config
            .for_group(self.metadata.group_configs(&group_id).as_ref());
        let (answer, taken, records) = {
            let mut groups = self.consumer_groups.borrow_mut();
            let group = groups
                .entry(group_id.clone())
                .or_insert_with(|| ConsumerGroup::new(group_id.clone()));
            let answer = group.heartbeat_as(&request, identity, &view, &config, now_ms());
            if answer.is_err() && group.members.is_empty() && group.group_epoch == 0 {
                // A refused first join leaves no group behind (and an empty classic group stays).
                groups.remove(&group_id);
                return answer;
            }
            if converts_classic {
                self.groups.borrow_mut().remove(&group_id);
                group.dirty.classic_tombstone = true;
            }
            let taken = group.dirty.clone();
            (answer, taken, record::take_records(group))
        };
        if let Err(error) = self.persist(records).await {
            self.redirty_consumer_group(&group_id, taken);
            return Err(HeartbeatError {
                error,
                message: "the offsets log could not be written".into(),
            });
        }
        answer
    }

    /// After a failed write: the records taken from `group_id` are due again.
    fn redirty_consumer_group(&self, group_id: &str, taken: Dirty) {
        if let Some(group) = self.consumer_groups.borrow_mut().get_mut(group_id) {
            group.dirty.merge(taken);
        }
    }

    /// Checks that `group_id` may be used as a consumer group: a classic group with members
    /// can't; a heartbeat other than a join needs the group to exist. Changes nothing; returns
    /// whether the id is an empty classic group's, to be converted (its group record deleted,
    /// offsets kept) once the heartbeat is accepted.
    fn claim_for_consumer_protocol(
        &self,
        group_id: &str,
        member_epoch: i32,
    ) -> Result<bool, HeartbeatError> {
        let classic_members = self
            .groups
            .borrow()
            .get(group_id)
            .map(|group| group.members.len());
        if let Some(members) = classic_members.filter(|members| *members > 0) {
            return Err(HeartbeatError {
                error: ResponseError::GroupIdNotFound,
                message: format!(
                    "group {group_id} is a classic group with {members} members, not a consumer group"
                ),
            });
        }
        if member_epoch != 0 && !self.consumer_groups.borrow().contains_key(group_id) {
            return Err(HeartbeatError {
                error: ResponseError::GroupIdNotFound,
                message: format!("consumer group {group_id} does not exist"),
            });
        }
        Ok(classic_members.is_some())
    }

    /// For a classic JoinGroup: an empty consumer group gives its id up (its records are
    /// deleted, offsets kept); one with members refuses with INCONSISTENT_GROUP_PROTOCOL.
    pub(crate) async fn release_consumer_group(&self, group_id: &str) -> Result<(), ResponseError> {
        let tombstones = match self.consumer_groups.borrow().get(group_id) {
            None => return Ok(()),
            Some(group) if !group.members.is_empty() => {
                return Err(ResponseError::InconsistentGroupProtocol)
            }
            Some(group) => record::tombstones(group),
        };
        // Out of memory before the wait for its tombstones: a consumer member joining in that
        // wait makes a new group, written after them, which then owns the id (removed after the
        // wait, it was dropped from memory and came back at a restart next to the classic group).
        let released = self.consumer_groups.borrow_mut().remove(group_id);
        if let Err(error) = self.persist(tombstones).await {
            let mut groups = self.consumer_groups.borrow_mut();
            if let (Some(group), false) = (released, groups.contains_key(group_id)) {
                groups.insert(group_id.to_string(), group);
            }
            return Err(error);
        }
        if self.consumer_groups.borrow().contains_key(group_id) {
            return Err(ResponseError::InconsistentGroupProtocol);
        }
        Ok(())
    }

    /// Expires consumer group members and persists the removals.
    pub(crate) async fn consumer_tick(&self) {
        let now = now_ms();
        let mut records = Vec::new();
        let mut taken = Vec::new();
        for group in self.consumer_groups.borrow_mut().values_mut() {
            let expired = group.tick(now);
            if !expired.is_empty() {
                tracing::info!(group = %group.group_id, ?expired, "consumer group members expired");
            }
            taken.push((group.group_id.clone(), group.dirty.clone()));
            records.extend(record::take_records(group));
        }
        if let Err(err) = self.persist(records).await {
            tracing::error!(?err, "persisting expired consumer group members failed");
            for (group_id, dirty) in taken {
                self.redirty_consumer_group(&group_id, dirty);
            }
        }
    }

    /// A snapshot of a consumer group (ConsumerGroupDescribe, DescribeGroups, ListGroups).
    pub fn consumer_group(&self, group_id: &str) -> Option<ConsumerGroup> {
        self.consumer_groups.borrow().get(group_id).cloned()
    }
}
