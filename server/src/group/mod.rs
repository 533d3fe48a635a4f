//! The group coordinator: classic consumer groups (membership and rebalances in [`state`]) and
//! committed offsets, persisted in the internal topic `__consumer_offsets` through the same engine
//! and rebuilt from it at start.
//!
//! The coordinator lives on the shard that owns `__consumer_offsets` partition 0; every group
//! request is sent there. Requests that wait (a JoinGroup until the rebalance completes, a
//! follower's SyncGroup until the leader's assignment) park on a oneshot that the state machine's
//! effects complete; a 100 ms tick drives session and rebalance timeouts.
//!
//! # Byte map of a `__consumer_offsets` record (uncompressed batches written by the coordinator)
//! ```text
//! key   "offset\0<group>\0<topic>\0<partition>"   value JSON {"offset","leader_epoch","metadata","commit_ms"}
//! key   "group\0<group>"                           value JSON: a classic group, classic_record.rs
//! key   "cgroup\0<group>", "cmember\0<group>\0<member>"  consumer (KIP-848) groups: consumer/record.rs
//! a null value (tombstone) deletes the key
//! ```

pub mod classic_record;
pub mod consumer;
pub mod state;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_channel::oneshot;
use kafka_protocol::error::ResponseError;
use ringtail_engine::batch::{decode_records, encode_batch, ProducerSpec, RecordSpec};
use ringtail_engine::log::now_ms;
use ringtail_engine::PartitionLog;
use serde::{Deserialize, Serialize};

use classic_record::GroupRecord;
use consumer::record::Record;
use consumer::{ConsumerGroup, ConsumerGroupConfig};
use state::{Effect, Group, GroupPhase, JoinRequest, JoinResponse, Reply, SyncResponse};

use crate::metadata::Metadata;

/// The internal topic that stores committed offsets and groups.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// How often session and rebalance timeouts are checked.
pub const TICK_MS: u64 = 100;
/// Bytes read at a time when the offsets log is replayed at start.
const REPLAY_READ_BYTES: u64 = 1 << 20;

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_ms: i64,
}

/// A group's committed offsets by (topic, partition).
type GroupOffsets = BTreeMap<(String, i32), CommittedOffset>;

/// The coordinator of all groups (one per broker, on one shard).
pub struct Coordinator {
    groups: RefCell<BTreeMap<String, Group>>,
    join_waiters: RefCell<HashMap<(String, String), oneshot::Sender<JoinResponse>>>,
    sync_waiters: RefCell<HashMap<(String, String), oneshot::Sender<SyncResponse>>>,
    offsets: RefCell<BTreeMap<String, GroupOffsets>>,
    /// Consumer (KIP-848) groups; a group id is in this map or in `groups`, never both.
    consumer_groups: RefCell<BTreeMap<String, ConsumerGroup>>,
    consumer_config: ConsumerGroupConfig,
    metadata: Arc<Metadata>,
    log: Rc<PartitionLog>,
    /// Set when the broker shuts down: timers stop and nothing more is written, so the log can
    /// close under no writer.
    stopped: std::cell::Cell<bool>,
    /// Tests: how many of the next writes to the offsets log fail.
    #[cfg(test)]
    failing_writes: std::cell::Cell<u32>,
}

/// A group as ListGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    pub state: &'static str,
    /// "classic" or "consumer" (KIP-848), as Kafka's ListGroups v5 names them.
    pub group_type: &'static str,
}

fn offset_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    format!("offset\0{group}\0{topic}\0{partition}").into_bytes()
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

/// A batch's bytes besides its records (Kafka's v2 batch header).
const BATCH_OVERHEAD: usize = 61;
/// A record's bytes besides its key and value, at most (length, attributes, timestamp and offset
/// deltas, key and value lengths, header count as varints).
const RECORD_OVERHEAD: usize = 32;

/// Splits records into runs whose batches stay within `max_batch_bytes` (a single record larger
/// than that is a run of its own, which the log refuses).
fn batch_chunks(records: &[Record], max_batch_bytes: usize) -> Vec<&[Record]> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut size = BATCH_OVERHEAD;
    for (index, (key, value)) in records.iter().enumerate() {
        let record = RECORD_OVERHEAD + key.len() + value.as_ref().map_or(0, Vec::len);
        if index > start && size + record > max_batch_bytes {
            chunks.push(&records[start..index]);
            start = index;
            size = BATCH_OVERHEAD;
        }
        size += record;
    }
    chunks.push(&records[start..]);
    chunks
}

/// Whether an id (group, member, topic) can be part of a record key: keys separate their parts
/// with NUL bytes, so an id containing one would make a key that replay does not recognise.
pub(crate) fn fits_in_key(id: &str) -> bool {
    !id.contains('\0')
}

pub(crate) fn group_key(group: &str) -> Vec<u8> {
    format!("group\0{group}").into_bytes()
}

impl Coordinator {
    /// Rebuilds groups and offsets from the offsets log.
    pub async fn load(
        log: Rc<PartitionLog>,
        metadata: Arc<Metadata>,
        consumer_config: ConsumerGroupConfig,
    ) -> Result<Self, ringtail_engine::ReadError> {
        let coordinator = Self {
            groups: RefCell::new(BTreeMap::new()),
            join_waiters: RefCell::new(HashMap::new()),
            sync_waiters: RefCell::new(HashMap::new()),
            offsets: RefCell::new(BTreeMap::new()),
            consumer_groups: RefCell::new(BTreeMap::new()),
            consumer_config,
            metadata,
            log,
            stopped: std::cell::Cell::new(false),
            #[cfg(test)]
            failing_writes: std::cell::Cell::new(0),
        };
        let mut offset = coordinator.log.log_start_offset();
        let end = coordinator.log.high_watermark();
        let mut records = 0usize;
        while offset < end {
            let bytes = coordinator
                .log
                .read_bytes(offset, REPLAY_READ_BYTES, true)
                .await?;
            let mut position = 0;
            while position < bytes.len() {
                let header =
                    ringtail_engine::batch::parse_header(&bytes[position..]).map_err(|err| {
                        ringtail_engine::ReadError::Corrupt {
                            path: coordinator.log.dir().to_path_buf(),
                            position: position as u64,
                            reason: err.to_string(),
                        }
                    })?;
                let batch = &bytes[position..position + header.total_bytes()];
                for record in decode_records(batch).unwrap_or_default() {
                    coordinator.apply_record(record.key.unwrap_or_default(), record.value);
                    records += 1;
                }
                offset = header.next_offset();
                position += header.total_bytes();
            }
            if bytes.is_empty() {
                break;
            }
        }
        // Sessions start anew: members have until a session timeout from now to heartbeat.
        let now = now_ms();
        for group in coordinator.consumer_groups.borrow_mut().values_mut() {
            group.start_sessions(&coordinator.consumer_config, now);
        }
        tracing::info!(
            records,
            groups = coordinator.groups.borrow().len(),
            consumer_groups = coordinator.consumer_groups.borrow().len(),
            "group coordinator loaded"
        );
        Ok(coordinator)
    }

    fn apply_record(&self, key: &[u8], value: Option<&[u8]>) {
        let Ok(key) = std::str::from_utf8(key) else {
            return;
        };
        let parts: Vec<&str> = key.split('\0').collect();
        if consumer::record::apply(&mut self.consumer_groups.borrow_mut(), &parts, value) {
            return;
        }
        match parts.as_slice() {
            ["offset", group, topic, partition] => {
                let Ok(partition) = partition.parse::<i32>() else {
                    return;
                };
                let mut offsets = self.offsets.borrow_mut();
                match value.and_then(|value| serde_json::from_slice::<CommittedOffset>(value).ok())
                {
                    Some(committed) => {
                        offsets
                            .entry(group.to_string())
                            .or_default()
                            .insert((topic.to_string(), partition), committed);
                    }
                    None => {
                        if let Some(group_offsets) = offsets.get_mut(*group) {
                            group_offsets.remove(&(topic.to_string(), partition));
                        }
                    }
                }
            }
            ["group", group] => {
                let mut groups = self.groups.borrow_mut();
                let Some(value) = value else {
                    groups.remove(*group);
                    return;
                };
                // A Stable group comes back with its members; otherwise Empty with its generation.
                match serde_json::from_slice::<GroupRecord>(value)
                    .ok()
                    .and_then(|record| record.restore(group, now_ms()))
                {
                    Some(restored) => {
                        groups.insert(group.to_string(), restored);
                    }
                    None => tracing::warn!(group, "skipping an unreadable or newer group record"),
                }
            }
            _ => {}
        }
    }

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
        let max_batch_bytes = self.log.config().max_message_bytes as usize;
        let now = now_ms();
        let mut record_set = BytesMut::new();
        for chunk in batch_chunks(&records, max_batch_bytes) {
            let specs: Vec<RecordSpec<'_>> = chunk
                .iter()
                .map(|(key, value)| RecordSpec {
                    key: Some(key),
                    value: value.as_deref(),
                    timestamp_delta: 0,
                })
                .collect();
            record_set.extend_from_slice(&encode_batch(now, &specs, ProducerSpec::default()));
        }
        self.log
            .append(record_set, 0)
            .await
            .map(|_| ())
            .map_err(|err| {
                tracing::error!(%err, "writing the offsets log failed");
                ResponseError::CoordinatorNotAvailable
            })
    }

    fn deliver(&self, group_id: &str, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Join(member, response) => {
                    if let Some(waiter) = self
                        .join_waiters
                        .borrow_mut()
                        .remove(&(group_id.to_string(), member))
                    {
                        let _ = waiter.send(response);
                    }
                }
                Effect::Sync(member, response) => {
                    if let Some(waiter) = self
                        .sync_waiters
                        .borrow_mut()
                        .remove(&(group_id.to_string(), member))
                    {
                        let _ = waiter.send(response);
                    }
                }
            }
        }
    }

    pub async fn join(&self, group_id: String, request: JoinRequest) -> JoinResponse {
        let fallback_member = request.member_id.clone();
        let refusal = if fits_in_key(&group_id) {
            self.release_consumer_group(&group_id).await.err()
        } else {
            Some(ResponseError::InvalidGroupId)
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
            };
        }
        let (reply, effects) = {
            let mut groups = self.groups.borrow_mut();
            let group = groups
                .entry(group_id.clone())
                .or_insert_with(|| Group::new(group_id.clone()));
            group.join(request, now_ms())
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
        let was_stable = self.is_stable(group_id);
        let mut answers = Vec::with_capacity(members.len());
        for (member_id, instance_id) in members {
            let (error, effects) = match self.groups.borrow_mut().get_mut(group_id) {
                Some(group) => group.leave(&member_id, instance_id.as_deref(), now_ms()),
                None => (Some(ResponseError::UnknownMemberId), Vec::new()),
            };
            self.deliver(group_id, effects);
            answers.push(error);
        }
        if was_stable && !self.is_stable(group_id) {
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

    fn is_stable(&self, group_id: &str) -> bool {
        self.groups
            .borrow()
            .get(group_id)
            .is_some_and(|group| group.phase == GroupPhase::Stable)
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

    /// Runs classic groups' timeouts; returns the groups that left Stable (to persist).
    fn classic_tick(&self) -> Vec<String> {
        let now = now_ms();
        let mut left_stable = Vec::new();
        let all_effects: Vec<(String, Vec<Effect>)> = self
            .groups
            .borrow_mut()
            .iter_mut()
            .map(|(id, group)| {
                let was_stable = group.phase == GroupPhase::Stable;
                let effects = group.tick(now);
                if was_stable && group.phase != GroupPhase::Stable {
                    left_stable.push(id.clone());
                }
                (id.clone(), effects)
            })
            .filter(|(_, effects)| !effects.is_empty())
            .collect();
        for (group_id, effects) in all_effects {
            self.deliver(&group_id, effects);
        }
        left_stable
    }

    /// Validates and stores commits (`generation_id` is the member epoch for consumer groups;
    /// `version` is the OffsetCommit version).
    pub async fn commit(
        &self,
        group_id: &str,
        member: (&str, Option<&str>, i32),
        version: i16,
        commits: Vec<(String, i32, CommittedOffset)>,
    ) -> Result<(), ResponseError> {
        let (member_id, instance_id, generation_id) = member;
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
            .map(|group| group.check_commit(member_id, generation_id, version));
        let refused = match self.groups.borrow().get(group_id) {
            _ if consumer_refusal.is_some() => consumer_refusal.flatten(),
            Some(group) => group
                .check_instance(member_id, instance_id)
                .or_else(|| group.check_commit(member_id, generation_id)),
            // A group known only by its commits (simple consumers), or a new one.
            None if generation_id < 0 => None,
            None => Some(ResponseError::IllegalGeneration),
        };
        if let Some(error) = refused {
            return Err(error);
        }
        let records = commits
            .iter()
            .map(|(topic, partition, committed)| {
                (
                    offset_key(group_id, topic, *partition),
                    Some(serde_json::to_vec(committed).expect("serialisable")),
                )
            })
            .collect();
        self.persist(records).await?;
        let mut offsets = self.offsets.borrow_mut();
        let group_offsets = offsets.entry(group_id.to_string()).or_default();
        for (topic, partition, committed) in commits {
            group_offsets.insert((topic, partition), committed);
        }
        Ok(())
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
        self.persist(tombstones).await?;
        if let Some(group_offsets) = self.offsets.borrow_mut().get_mut(group_id) {
            for ((topic, partition), answer) in partitions.into_iter().zip(&answers) {
                if answer.is_none() {
                    group_offsets.remove(&(topic, partition));
                }
            }
        }
        Ok(answers)
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
        self.persist(tombstones).await?;
        self.groups.borrow_mut().remove(group_id);
        self.consumer_groups.borrow_mut().remove(group_id);
        self.offsets.borrow_mut().remove(group_id);
        Ok(())
    }
}

#[cfg(test)]
#[path = "coordinator_tests.rs"]
mod coordinator_tests;
