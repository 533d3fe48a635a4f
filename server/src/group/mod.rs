//! The group coordinator: classic consumer groups (membership and rebalances in [`state`]) and
//! committed offsets, persisted in the internal topic `__consumer_offsets` through the same engine
//! and rebuilt from it at start.
//!
//! The coordinator lives on the shard that owns `__consumer_offsets` partition 0; every group
//! request is sent there. Requests that wait (a JoinGroup until the rebalance completes, a
//! follower's SyncGroup until the leader's assignment) park on a oneshot that the state machine's
//! effects complete; a 100 ms tick drives session and rebalance timeouts.
//!
//! Modules: [`offsets_log`] the records' keys and batches (with the byte map), [`replay`] the
//! rebuild at start, [`admin`] the views and deletions of admin tools, [`classic_record`] a
//! classic group's record, [`consumer`] KIP-848 groups; this file the live classic coordinator.
#![forbid(unsafe_code)]

pub mod admin;
pub mod classic_record;
pub mod consumer;
pub mod offsets_log;
mod replay;
mod retention;
pub mod state;
pub mod txn_offsets;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use futures_channel::oneshot;
use kafka_protocol::error::ResponseError;
use ringtail_engine::log::now_ms;
use ringtail_engine::PartitionLog;
use serde::{Deserialize, Serialize};

use classic_record::GroupRecord;
use consumer::{ConsumerGroup, ConsumerGroupConfig};
use state::{Effect, Group, GroupPhase, JoinRequest, JoinResponse, Reply, SyncResponse};

pub(crate) use offsets_log::{fits_in_key, group_key};

use crate::metadata::Metadata;

/// The internal topic that stores committed offsets and groups.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// How often session and rebalance timeouts are checked.
pub const TICK_MS: u64 = 100;
/// Session timeouts a classic member may ask for by default (Kafka's group.min.session.timeout.ms
/// and group.max.session.timeout.ms defaults; `--group-min-session-timeout-ms`,
/// `--group-max-session-timeout-ms`): a dead member is expired within 30 minutes, and a handed-out
/// member id (MEMBER_ID_REQUIRED) is kept no longer than that.
pub const SESSION_TIMEOUT_MS_MIN: i64 = 6_000;
pub const SESSION_TIMEOUT_MS_MAX: i64 = 1_800_000;

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_ms: i64,
}

/// A group's committed offsets by (topic, partition).
pub(crate) type GroupOffsets = BTreeMap<(String, i32), CommittedOffset>;

/// The coordinator of all groups (one per broker, on one shard).
pub struct Coordinator {
    groups: RefCell<BTreeMap<String, Group>>,
    join_waiters: RefCell<HashMap<(String, String), oneshot::Sender<JoinResponse>>>,
    sync_waiters: RefCell<HashMap<(String, String), oneshot::Sender<SyncResponse>>>,
    offsets: RefCell<BTreeMap<String, GroupOffsets>>,
    /// Consumer (KIP-848) groups; a group id is in this map or in `groups`, never both.
    consumer_groups: RefCell<BTreeMap<String, ConsumerGroup>>,
    /// Transactional commits waiting for their transaction's marker (txn_offsets.rs).
    pending_txn_offsets: RefCell<txn_offsets::PendingTxnOffsets>,
    /// Groups seen without members by the offset retention pass, since when (retention.rs).
    memberless_since_ms: RefCell<HashMap<String, i64>>,
    consumer_config: ConsumerGroupConfig,
    metadata: Arc<Metadata>,
    /// Partition counts of every topic as of a metadata version (consumer group heartbeats).
    topic_counts: RefCell<Option<(u64, Rc<consumer::TopicCounts>)>>,
    /// The offsets log; replaced when a move between data dirs reopens it (a `RefCell` never
    /// borrowed across an await: [`Coordinator::log`] hands out a clone).
    log: RefCell<Rc<PartitionLog>>,
    /// Set when the broker shuts down: timers stop and nothing more is written, so the log can
    /// close under no writer.
    stopped: std::cell::Cell<bool>,
    /// Tests: how many of the next writes to the offsets log fail.
    #[cfg(test)]
    failing_writes: std::cell::Cell<u32>,
}

impl Coordinator {
    /// Appends records to the offsets log and waits until they are durable. One append of one
    /// or more batches (each under the log's `max.message.bytes`): the records are written
    /// together or not at all.
    async fn persist(&self, records: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<(), ResponseError> {
        if records.is_empty() {
            return Ok(());
        }
        if self.stopped.get() {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        #[cfg(test)]
        if self.failing_writes.get() > 0 {
            self.failing_writes.set(self.failing_writes.get() - 1);
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let log = self.log();
        let max_batch_bytes = log.config().max_message_bytes as usize;
        let record_set = offsets_log::encode_records(&records, max_batch_bytes, now_ms());
        self.append_record_set_to(&log, record_set).await
    }

    /// Appends a record set the coordinator built (one or more batches, all or nothing) and
    /// waits until it is durable.
    async fn append_record_set(&self, record_set: bytes::BytesMut) -> Result<(), ResponseError> {
        if self.stopped.get() {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        self.append_record_set_to(&self.log(), record_set).await
    }

    async fn append_record_set_to(
        &self,
        log: &Rc<PartitionLog>,
        record_set: bytes::BytesMut,
    ) -> Result<(), ResponseError> {
        log.append(record_set, 0).await.map(|_| ()).map_err(|err| {
            tracing::error!(%err, "writing the offsets log failed");
            ResponseError::CoordinatorNotAvailable
        })
    }

    /// The offsets log writes go to now.
    pub fn log(&self) -> Rc<PartitionLog> {
        Rc::clone(&self.log.borrow())
    }

    /// Points the coordinator at the offsets log reopened by a move between data dirs (or at the
    /// source reopened after a failed one): the log it held was closed, and writes to it fail
    /// with a retriable error until this swap. The state in memory is the log's: nothing to
    /// replay.
    pub fn replace_log(&self, log: Rc<PartitionLog>) {
        *self.log.borrow_mut() = log;
    }

    fn deliver(&self, group_id: &str, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Join(member, response) => {
                    answer_waiter(&self.join_waiters, group_id, member, response)
                }
                Effect::Sync(member, response) => {
                    answer_waiter(&self.sync_waiters, group_id, member, response)
                }
            }
        }
    }

    pub async fn join(&self, group_id: String, request: JoinRequest) -> JoinResponse {
        let fallback_member = request.member_id.clone();
        let config = &self.consumer_config;
        let session_allowed = (config.classic_min_session_timeout_ms
            ..=config.classic_max_session_timeout_ms)
            .contains(&request.session_timeout_ms);
        // An empty id is INVALID_GROUP_ID before the session timeout is looked at, as Kafka's
        // GroupCoordinatorService.joinGroup checks (kafka-go's TestConn join_group_with_an_invalid_groupID).
        let refusal = if group_id.is_empty() || !fits_in_key(&group_id) {
            Some(ResponseError::InvalidGroupId)
        } else if !session_allowed {
            // Checked before the group is looked at or made, as Kafka does.
            Some(ResponseError::InvalidSessionTimeout)
        } else {
            self.release_consumer_group(&group_id).await.err()
        };
        if let Some(error) = refusal {
            return JoinResponse {
                error: Some(error),
                generation_id: -1,
                protocol_type: None,
                protocol_name: None,
                leader: String::new(),
                member_id: fallback_member,
                members: Vec::new(),
                skip_assignment: false,
            };
        }
        let (reply, effects) = {
            let mut groups = self.groups.borrow_mut();
            let group = groups
                .entry(group_id.clone())
                .or_insert_with(|| Group::new(group_id.clone()));
            // Set on every join: groups restored from the offsets log are made without it.
            group.set_initial_delay_ms(config.classic_initial_rebalance_delay_ms);
            let answer = group.join(request, now_ms());
            if group.is_unused() {
                // Refused before anyone joined: nothing to keep (see Group::is_unused).
                groups.remove(&group_id);
            }
            answer
        };
        self.deliver(&group_id, effects);
        let response = match reply {
            Reply::Now(response) => response,
            Reply::Later(member_id) => {
                let (sender, receiver) = oneshot::channel();
                self.join_waiters
                    .borrow_mut()
                    .insert((group_id.clone(), member_id.clone()), sender);
                receiver.await.unwrap_or_else(|_| JoinResponse {
                    error: Some(ResponseError::UnknownMemberId),
                    generation_id: -1,
                    protocol_type: None,
                    protocol_name: None,
                    leader: String::new(),
                    member_id: if member_id.is_empty() {
                        fallback_member
                    } else {
                        member_id
                    },
                    members: Vec::new(),
                    skip_assignment: false,
                })
            }
        };
        if response.error.is_none() {
            if let Err(error) = self.persist_group(&group_id).await {
                return JoinResponse {
                    error: Some(error),
                    generation_id: -1,
                    protocol_type: None,
                    protocol_name: None,
                    leader: String::new(),
                    member_id: response.member_id,
                    members: Vec::new(),
                    skip_assignment: false,
                };
            }
        }
        response
    }

    /// Writes a classic group's record: with its members when Stable (see classic_record.rs).
    async fn persist_group(&self, group_id: &str) -> Result<(), ResponseError> {
        let record = self.groups.borrow().get(group_id).map(GroupRecord::of);
        let Some(record) = record else {
            return Ok(());
        };
        let value = serde_json::to_vec(&record).expect("serialisable");
        self.persist(vec![(group_key(group_id), Some(value))])
            .await
            .inspect_err(|error| {
                tracing::error!(group_id, ?error, "writing a classic group's record failed");
            })
    }

    pub async fn sync(
        &self,
        group_id: String,
        (member_id, instance_id): (String, Option<String>),
        generation_id: i32,
        (protocol_type, protocol_name): (Option<String>, Option<String>),
        assignments: Vec<(String, Bytes)>,
    ) -> SyncResponse {
        let mut completed = false;
        let (mut reply, mut effects) = {
            let mut groups = self.groups.borrow_mut();
            match groups.get_mut(&group_id) {
                Some(group)
                    if group
                        .check_instance(&member_id, instance_id.as_deref())
                        .is_some() =>
                {
                    (
                        Reply::Now(SyncResponse::error(ResponseError::FencedInstanceId)),
                        Vec::new(),
                    )
                }
                // As Kafka, checked once the member and its generation are known good.
                Some(group)
                    if group.check_member(&member_id, generation_id).is_ok()
                        && group
                            .check_sync_protocol(protocol_type.as_deref(), protocol_name.as_deref())
                            .is_some() =>
                {
                    (
                        Reply::Now(SyncResponse::error(
                            ResponseError::InconsistentGroupProtocol,
                        )),
                        Vec::new(),
                    )
                }
                Some(group) => {
                    let before = group.phase;
                    let answer = group.sync(&member_id, generation_id, assignments, now_ms());
                    completed = before != GroupPhase::Stable && group.phase == GroupPhase::Stable;
                    answer
                }
                None => (
                    Reply::Now(SyncResponse {
                        error: Some(ResponseError::UnknownMemberId),
                        protocol_type: None,
                        protocol_name: None,
                        assignment: Bytes::new(),
                    }),
                    Vec::new(),
                ),
            }
        };
        if completed {
            // The generation is complete: its members and assignments are stored before anyone
            // is answered, so a restart brings the group back Stable. If they can't be, everyone
            // waiting is answered the error and the group rebalances (as Kafka does).
            if let Err(error) = self.persist_group(&group_id).await {
                let failed = SyncResponse {
                    error: Some(error),
                    protocol_type: None,
                    protocol_name: None,
                    assignment: Bytes::new(),
                };
                for effect in &mut effects {
                    if let Effect::Sync(_, response) = effect {
                        *response = failed.clone();
                    }
                }
                if let Reply::Now(response) = &mut reply {
                    *response = failed;
                }
                let rebalance = self
                    .groups
                    .borrow_mut()
                    .get_mut(&group_id)
                    .map(|group| group.assignment_not_stored(now_ms()))
                    .unwrap_or_default();
                effects.extend(rebalance);
            }
        }
        self.deliver(&group_id, effects);
        match reply {
            Reply::Now(response) => response,
            Reply::Later(member_id) => {
                let (sender, receiver) = oneshot::channel();
                self.sync_waiters
                    .borrow_mut()
                    .insert((group_id, member_id), sender);
                receiver.await.unwrap_or(SyncResponse {
                    error: Some(ResponseError::RebalanceInProgress),
                    protocol_type: None,
                    protocol_name: None,
                    assignment: Bytes::new(),
                })
            }
        }
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        (member_id, instance_id): (&str, Option<&str>),
        generation_id: i32,
    ) -> Option<ResponseError> {
        match self.groups.borrow_mut().get_mut(group_id) {
            Some(group) => group
                .check_instance(member_id, instance_id)
                .or_else(|| group.heartbeat(member_id, generation_id, now_ms())),
            None => Some(ResponseError::UnknownMemberId),
        }
    }

    /// Removes members; answers per member.
    pub async fn leave(
        &self,
        group_id: &str,
        members: Vec<(String, Option<String>)>,
    ) -> Vec<Option<ResponseError>> {
        let before = self.phase(group_id);
        let mut answers = Vec::with_capacity(members.len());
        for (member_id, instance_id) in members {
            let (error, effects) = match self.groups.borrow_mut().get_mut(group_id) {
                Some(group) => group.leave(&member_id, instance_id.as_deref(), now_ms()),
                None => (Some(ResponseError::UnknownMemberId), Vec::new()),
            };
            self.deliver(group_id, effects);
            answers.push(error);
        }
        if stored_record_outdated(before, self.phase(group_id)) {
            // The stored members are no longer the group's: a restart must not bring them back.
            // If it can't be written, the leaves are answered the error (the members are gone
            // from memory; a restart would bring them back until their sessions end).
            if let Err(error) = self.persist_group(group_id).await {
                for answer in answers.iter_mut().filter(|answer| answer.is_none()) {
                    *answer = Some(error);
                }
            }
        }
        answers
    }

    fn phase(&self, group_id: &str) -> Option<GroupPhase> {
        self.groups.borrow().get(group_id).map(|group| group.phase)
    }

    /// Stops the coordinator for a shutdown: no more timers or writes, and every request parked
    /// in JoinGroup or SyncGroup is answered COORDINATOR_NOT_AVAILABLE at once (the client finds
    /// the coordinator again once the broker is back), as Kafka answers them when it resigns.
    pub fn stop(&self) {
        self.stopped.set(true);
        for (_, waiter) in self.join_waiters.borrow_mut().drain() {
            let _ = waiter.send(JoinResponse {
                error: Some(ResponseError::CoordinatorNotAvailable),
                generation_id: -1,
                protocol_type: None,
                protocol_name: None,
                leader: String::new(),
                member_id: String::new(),
                members: Vec::new(),
                skip_assignment: false,
            });
        }
        for (_, waiter) in self.sync_waiters.borrow_mut().drain() {
            let _ = waiter.send(SyncResponse::error(ResponseError::CoordinatorNotAvailable));
        }
    }

    /// Whether [`Coordinator::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.stopped.get()
    }

    /// Runs timeouts of every group.
    pub async fn tick(&self) {
        for group_id in self.classic_tick() {
            // A failure is logged by persist_group; nobody waits for the answer.
            let _ = self.persist_group(&group_id).await;
        }
        self.consumer_tick().await;
    }

    /// Runs classic groups' timeouts; returns the groups whose stored record is outdated (to
    /// persist).
    fn classic_tick(&self) -> Vec<String> {
        let now = now_ms();
        let mut outdated = Vec::new();
        // Groups whose handed-out member ids expired unused are forgotten.
        self.groups
            .borrow_mut()
            .retain(|_, group| !group.is_unused());
        let all_effects: Vec<(String, Vec<Effect>)> = self
            .groups
            .borrow_mut()
            .iter_mut()
            .map(|(id, group)| {
                let before = group.phase;
                let effects = group.tick(now);
                if stored_record_outdated(Some(before), Some(group.phase)) {
                    outdated.push(id.clone());
                }
                (id.clone(), effects)
            })
            .filter(|(_, effects)| !effects.is_empty())
            .collect();
        for (group_id, effects) in all_effects {
            self.deliver(&group_id, effects);
        }
        outdated
    }

    /// Validates and stores commits (`member`: the member id, its instance id and its generation,
    /// the member epoch for consumer groups; `version` is the OffsetCommit version).
    pub async fn commit(
        &self,
        group_id: &str,
        member: (&str, Option<&str>, i32),
        version: i16,
        commits: Vec<(String, i32, CommittedOffset)>,
    ) -> Result<(), ResponseError> {
        let generation_id = member.2;
        if !fits_in_key(group_id) {
            return Err(ResponseError::InvalidGroupId);
        }
        if !commits.iter().all(|(topic, _, _)| fits_in_key(topic)) {
            // No topic has such a name (topic names are [a-zA-Z0-9._-]).
            return Err(ResponseError::UnknownTopicOrPartition);
        }
        let consumer_refusal = self
            .consumer_groups
            .borrow()
            .get(group_id)
            .map(|group| group.check_commit(member, version, false));
        let refused = match self.groups.borrow().get(group_id) {
            _ if consumer_refusal.is_some() => consumer_refusal.flatten(),
            Some(group) => group.check_commit(member, false),
            // A group known only by its commits (simple consumers), or a new one.
            None if generation_id < 0 => None,
            None => Some(unknown_group_commit_error(
                self.offsets.borrow().contains_key(group_id),
                version,
            )),
        };
        if let Some(error) = refused {
            return Err(error);
        }
        // The handler checked the topics on its shard, then hopped here: a DeleteTopics may have
        // removed one and run its offsets cleanup (forget_topic) meanwhile, or may do so while the
        // commit is written. Each topic's id is taken here (no await since the check) and
        // compared once the record is written: an offset whose topic went (or was made again
        // under the name) in between is not kept, else the deleted topic's offset stayed, and a
        // topic made again resumed at it. Kafka never keeps a deleted partition's offsets.
        let topic_ids = match self.topic_ids(&commits) {
            Some(topic_ids) => topic_ids,
            None => return Err(ResponseError::UnknownTopicOrPartition),
        };
        let records = commits
            .iter()
            .map(|(topic, partition, committed)| {
                (
                    offsets_log::offset_key(group_id, topic, *partition),
                    Some(serde_json::to_vec(committed).expect("serialisable")),
                )
            })
            .collect();
        self.persist(records).await?;
        let (kept, deleted): (Vec<_>, Vec<_>) =
            commits
                .into_iter()
                .zip(topic_ids)
                .partition(|((topic, partition, _), topic_id)| {
                    self.metadata.topic(topic).is_some_and(|info| {
                        info.topic_id == *topic_id && info.has_partition(*partition)
                    })
                });
        {
            let mut offsets = self.offsets.borrow_mut();
            let group_offsets = offsets.entry(group_id.to_string()).or_default();
            for ((topic, partition, committed), _) in kept {
                group_offsets.insert((topic, partition), committed);
            }
        }
        if deleted.is_empty() {
            return Ok(());
        }
        // The cleanup ran before this record was written: take it back from the log as well.
        let tombstones = deleted
            .iter()
            .map(|((topic, partition, _), _)| {
                (offsets_log::offset_key(group_id, topic, *partition), None)
            })
            .collect();
        if let Err(error) = self.persist(tombstones).await {
            tracing::error!(
                group_id,
                ?error,
                "taking back an offset committed for a deleted topic failed"
            );
        }
        Err(ResponseError::UnknownTopicOrPartition)
    }

    /// The topic id of each commit's topic, from the shared metadata; `None` if one of them (or
    /// its partition) is not there.
    fn topic_ids(&self, commits: &[(String, i32, CommittedOffset)]) -> Option<Vec<uuid::Uuid>> {
        commits
            .iter()
            .map(|(topic, partition, _)| {
                self.metadata
                    .topic(topic)
                    .filter(|info| info.has_partition(*partition))
                    .map(|info| info.topic_id)
            })
            .collect()
    }

    /// OffsetFetch v9's member check: only consumer groups check the member and its epoch.
    pub fn check_offset_fetch(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Option<ResponseError> {
        self.consumer_groups
            .borrow()
            .get(group_id)
            .and_then(|group| group.check_fetch(member_id, member_epoch))
    }

    /// Committed offsets of a group: for the partitions asked, or all of them.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        wanted: Option<Vec<(String, Vec<i32>)>>,
    ) -> Vec<(String, i32, Option<CommittedOffset>)> {
        let offsets = self.offsets.borrow();
        let group_offsets = offsets.get(group_id);
        match wanted {
            Some(wanted) => wanted
                .into_iter()
                .flat_map(|(topic, partitions)| {
                    partitions.into_iter().map(move |partition| {
                        let committed = group_offsets
                            .and_then(|all| all.get(&(topic.clone(), partition)).cloned());
                        (topic.clone(), partition, committed)
                    })
                })
                .collect(),
            None => group_offsets
                .map(|all| {
                    all.iter()
                        .map(|((topic, partition), committed)| {
                            (topic.clone(), *partition, Some(committed.clone()))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// Whether a classic group's stored record no longer says what a restart should bring back: it
/// left Stable (the stored members are gone), or it emptied (if it emptied mid-rebalance, the
/// record still held the members of its last Stable generation, who had all left).
fn stored_record_outdated(before: Option<GroupPhase>, after: Option<GroupPhase>) -> bool {
    let left_stable = before == Some(GroupPhase::Stable) && after != Some(GroupPhase::Stable);
    let emptied =
        before.is_some_and(|phase| phase != GroupPhase::Empty) && after == Some(GroupPhase::Empty);
    left_stable || emptied
}

/// Answers the waiter of `member` in `group_id`, if it still waits (it may have timed out).
fn answer_waiter<T>(
    waiters: &RefCell<HashMap<(String, String), oneshot::Sender<T>>>,
    group_id: &str,
    member: String,
    response: T,
) {
    if let Some(waiter) = waiters.borrow_mut().remove(&(group_id.to_string(), member)) {
        let _ = waiter.send(response);
    }
}

/// Kafka's answer to an OffsetCommit with a generation (or member epoch) >= 0 to a group without
/// members: a group known by its commits is Kafka's "simple" classic group, whose member check
/// fails (UNKNOWN_MEMBER_ID); a group that does not exist is GROUP_ID_NOT_FOUND from OffsetCommit
/// v9 on, ILLEGAL_GENERATION before (kept by Kafka for older clients).
fn unknown_group_commit_error(known_by_commits: bool, version: i16) -> ResponseError {
    if known_by_commits {
        ResponseError::UnknownMemberId
    } else if version >= 9 {
        ResponseError::GroupIdNotFound
    } else {
        ResponseError::IllegalGeneration
    }
}

#[cfg(test)]
mod commit_tests;
#[cfg(test)]
#[path = "coordinator_tests.rs"]
mod coordinator_tests;
#[cfg(test)]
mod retention_tests;
#[cfg(test)]
mod txn_offsets_tests;
