//! The coordinator's side of consumer (KIP-848) groups: runs the state machine on each
//! ConsumerGroupHeartbeat with the current topics, persists what changed before answering, and
//! keeps a group id to one protocol (a classic group with members is not a consumer group, and
//! the reverse).

use kafka_protocol::error::ResponseError;
use ringtail_engine::log::now_ms;

use super::record::{self, Record};
use super::state::{HeartbeatError, HeartbeatResponse};
use super::{ConsumerGroup, HeartbeatRequest, TopicCounts};
use crate::group::Coordinator;

impl Coordinator {
    /// Partition counts of every topic, for subscriptions and assignors.
    fn topic_counts(&self) -> TopicCounts {
        self.metadata
            .topics()
            .iter()
            .map(|topic| (topic.name.clone(), topic.partitions))
            .collect()
    }

    /// Handles a ConsumerGroupHeartbeat; the answer is sent once its changes are durable.
    pub async fn consumer_heartbeat(
        &self,
        group_id: String,
        request: HeartbeatRequest,
    ) -> Result<HeartbeatResponse, HeartbeatError> {
        let mut records = self.claim_for_consumer_protocol(&group_id, request.member_epoch)?;
        let topics = self.topic_counts();
        let answer = {
            let mut groups = self.consumer_groups.borrow_mut();
            let group = groups
                .entry(group_id.clone())
                .or_insert_with(|| ConsumerGroup::new(group_id.clone()));
            let answer = group.heartbeat(&request, &topics, &self.consumer_config, now_ms());
            records.extend(record::take_records(group));
            if answer.is_err() && group.members.is_empty() && group.group_epoch == 0 {
                // A refused first join leaves no group behind.
                groups.remove(&group_id);
            }
            answer
        };
        self.persist(records)
            .await
            .map_err(|error| HeartbeatError {
                error,
                message: "the offsets log could not be written".into(),
            })?;
        answer
    }

    /// Makes sure `group_id` may be used as a consumer group: a classic group with members can't;
    /// an empty classic group is converted (its group record deleted, offsets kept). A heartbeat
    /// other than a join needs the group to exist.
    fn claim_for_consumer_protocol(
        &self,
        group_id: &str,
        member_epoch: i32,
    ) -> Result<Vec<Record>, HeartbeatError> {
        let mut records = Vec::new();
        let classic_members = self
            .groups
            .borrow()
            .get(group_id)
            .map(|group| group.members.len());
        match classic_members {
            Some(members) if members > 0 => {
                return Err(HeartbeatError {
                    error: ResponseError::GroupIdNotFound,
                    message: format!("group {group_id} is a classic group, not a consumer group"),
                })
            }
            Some(_) => {
                self.groups.borrow_mut().remove(group_id);
                records.push((crate::group::group_key(group_id), None));
            }
            None => {}
        }
        if member_epoch != 0 && !self.consumer_groups.borrow().contains_key(group_id) {
            return Err(HeartbeatError {
                error: ResponseError::GroupIdNotFound,
                message: format!("consumer group {group_id} does not exist"),
            });
        }
        Ok(records)
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
        self.persist(tombstones).await?;
        self.consumer_groups.borrow_mut().remove(group_id);
        Ok(())
    }

    /// Expires consumer group members and persists the removals.
    pub(crate) async fn consumer_tick(&self) {
        let now = now_ms();
        let mut records = Vec::new();
        for group in self.consumer_groups.borrow_mut().values_mut() {
            let expired = group.tick(now);
            if !expired.is_empty() {
                tracing::info!(group = %group.group_id, ?expired, "consumer group members expired");
            }
            records.extend(record::take_records(group));
        }
        if let Err(err) = self.persist(records).await {
            tracing::error!(?err, "persisting expired consumer group members failed");
        }
    }

    /// A snapshot of a consumer group (ConsumerGroupDescribe, DescribeGroups, ListGroups).
    pub fn consumer_group(&self, group_id: &str) -> Option<ConsumerGroup> {
        self.consumer_groups.borrow().get(group_id).cloned()
    }
}
