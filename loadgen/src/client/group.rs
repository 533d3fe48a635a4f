//! Membership of a classic consumer group (JoinGroup/SyncGroup/Heartbeat/LeaveGroup) with the
//! `range` assignor computed by the leader, plus committing and fetching offsets. The loadgen's
//! consumers use it between fetches; heartbeats ride on the coordinator connection.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedPartitions;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, FindCoordinatorRequest, GroupId,
    HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, OffsetCommitRequest,
    OffsetFetchRequest, SyncGroupRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::cluster::topic_name;
use super::connection::Connection;
use super::ClientError;

const MEMBER_ID_REQUIRED: i16 = 79;
const REBALANCE_IN_PROGRESS: i16 = 27;
const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_COORDINATOR: i16 = 16;
const ASSIGNOR: &str = "range";
const SESSION_TIMEOUT: Duration = Duration::from_secs(10);
const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(1000);

/// One member of a consumer group subscribed to one topic.
pub struct GroupMember {
    coordinator: Connection,
    group_id: String,
    topic: String,
    partitions: i32,
    member_id: String,
    generation_id: i32,
    assignment: Vec<i32>,
    last_heartbeat: Instant,
    /// An OffsetCommit sent but not yet answered (commits do not stall fetching: a commit is
    /// written to the offsets log, possibly with an fsync).
    pending_commit: Option<(i16, i32)>,
}

/// What a heartbeat said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    Stable,
    /// The group is rebalancing: commit, then [`GroupMember::join`] again.
    Rejoin,
}

impl GroupMember {
    /// Finds the coordinator and joins; returns once this member has an assignment.
    pub fn join_new(
        bootstrap: &str,
        group_id: &str,
        topic: &str,
        partitions: i32,
    ) -> Result<Self, ClientError> {
        let mut connection = Connection::connect(bootstrap)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let coordinator = loop {
            let request = FindCoordinatorRequest::default()
                .with_key(StrBytes::from_string(group_id.to_string()));
            let response = connection.call(&request)?;
            match response.error_code {
                0 => break format!("{}:{}", response.host, response.port),
                COORDINATOR_NOT_AVAILABLE | COORDINATOR_LOAD_IN_PROGRESS
                    if Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(100));
                }
                code => return Err(ClientError::kafka("FindCoordinator", code)),
            }
        };
        let coordinator = if coordinator == connection.address() {
            connection
        } else {
            Connection::connect(&coordinator)?
        };
        let mut member = Self {
            coordinator,
            group_id: group_id.to_string(),
            topic: topic.to_string(),
            partitions,
            member_id: String::new(),
            generation_id: -1,
            assignment: Vec::new(),
            last_heartbeat: Instant::now(),
            pending_commit: None,
        };
        member.join()?;
        Ok(member)
    }

    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }

    /// This member's partitions of the topic.
    pub fn assignment(&self) -> &[i32] {
        &self.assignment
    }

    /// Joins (or rejoins) the group and syncs the assignment.
    pub fn join(&mut self) -> Result<(), ClientError> {
        self.finish_commit()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if Instant::now() > deadline {
                return Err(ClientError::Timeout(format!(
                    "joining group {} for 60 s",
                    self.group_id
                )));
            }
            let response = self.coordinator.call(&self.join_request()?)?;
            match response.error_code {
                0 => {}
                MEMBER_ID_REQUIRED => {
                    self.member_id = response.member_id.to_string();
                    continue;
                }
                UNKNOWN_MEMBER_ID | ILLEGAL_GENERATION => {
                    self.member_id.clear();
                    continue;
                }
                REBALANCE_IN_PROGRESS | COORDINATOR_LOAD_IN_PROGRESS => {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                // Apache Kafka names itself coordinator of a new group while the offsets
                // partition it just created is still being loaded, and answers these until it is.
                // The matrix runs single brokers, so the coordinator is the node asked: wait and
                // ask again rather than look it up anew.
                NOT_COORDINATOR | COORDINATOR_NOT_AVAILABLE => {
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
                code => return Err(ClientError::kafka("JoinGroup", code)),
            }
            self.member_id = response.member_id.to_string();
            self.generation_id = response.generation_id;
            let sync = self.sync_request(&response)?;
            let synced = self.coordinator.call(&sync)?;
            match synced.error_code {
                0 => {
                    self.assignment =
                        decode_assignment(synced.assignment, &self.topic, self.partitions)?;
                    self.last_heartbeat = Instant::now();
                    return Ok(());
                }
                REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION => continue,
                UNKNOWN_MEMBER_ID => {
                    self.member_id.clear();
                    continue;
                }
                code => return Err(ClientError::kafka("SyncGroup", code)),
            }
        }
    }

    /// The SyncGroup that follows a successful join: the leader sends every member's range
    /// assignment, the others none.
    fn sync_request(&self, joined: &JoinGroupResponse) -> Result<SyncGroupRequest, ClientError> {
        let assignments = if joined.leader == joined.member_id {
            let members: Vec<String> = joined
                .members
                .iter()
                .map(|member| member.member_id.to_string())
                .collect();
            range_assignment(&members, self.partitions)
                .into_iter()
                .map(|(member, partitions)| {
                    Ok(SyncGroupRequestAssignment::default()
                        .with_member_id(StrBytes::from_string(member))
                        .with_assignment(encode_assignment(&self.topic, partitions)?))
                })
                .collect::<Result<Vec<_>, ClientError>>()?
        } else {
            Vec::new()
        };
        let sync = SyncGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.group_id.clone())))
            .with_generation_id(self.generation_id)
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_assignments(assignments);
        Ok(if self.coordinator.version_of::<SyncGroupRequest>()? >= 5 {
            sync.with_protocol_type(Some(StrBytes::from_static_str("consumer")))
                .with_protocol_name(Some(StrBytes::from_static_str(ASSIGNOR)))
        } else {
            sync
        })
    }

    fn join_request(&self) -> Result<JoinGroupRequest, ClientError> {
        let mut metadata = BytesMut::new();
        metadata.put_i16(0);
        ConsumerProtocolSubscription::default()
            .with_topics(vec![StrBytes::from_string(self.topic.clone())])
            .encode(&mut metadata, 0)
            .map_err(ClientError::codec)?;
        Ok(JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.group_id.clone())))
            .with_session_timeout_ms(
                i32::try_from(SESSION_TIMEOUT.as_millis()).expect("a session timeout of seconds"),
            )
            .with_rebalance_timeout_ms(30_000)
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str(ASSIGNOR))
                .with_metadata(metadata.freeze())]))
    }

    /// Sends a heartbeat when one is due.
    pub fn heartbeat_if_due(&mut self) -> Result<Heartbeat, ClientError> {
        if self.last_heartbeat.elapsed() < HEARTBEAT_INTERVAL {
            return Ok(Heartbeat::Stable);
        }
        self.finish_commit()?;
        self.last_heartbeat = Instant::now();
        let request = HeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.group_id.clone())))
            .with_generation_id(self.generation_id)
            .with_member_id(StrBytes::from_string(self.member_id.clone()));
        match self.coordinator.call(&request)?.error_code {
            0 => Ok(Heartbeat::Stable),
            REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION | UNKNOWN_MEMBER_ID => Ok(Heartbeat::Rejoin),
            code => Err(ClientError::kafka("Heartbeat", code)),
        }
    }

    /// Commits positions (the next offset to read) of this member's partitions and waits.
    pub fn commit(&mut self, positions: &BTreeMap<i32, i64>) -> Result<(), ClientError> {
        self.commit_async(positions)?;
        self.finish_commit()
    }

    /// Sends a commit whose answer is read before the next request to the coordinator.
    pub fn commit_async(&mut self, positions: &BTreeMap<i32, i64>) -> Result<(), ClientError> {
        self.finish_commit()?;
        if positions.is_empty() {
            return Ok(());
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.group_id.clone())))
            .with_generation_id_or_member_epoch(self.generation_id)
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(topic_name(&self.topic))
                .with_partitions(
                    positions
                        .iter()
                        .map(|(partition, offset)| {
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(*partition)
                                .with_committed_offset(*offset)
                        })
                        .collect(),
                )]);
        self.pending_commit = Some(self.coordinator.send(&request)?);
        Ok(())
    }

    fn finish_commit(&mut self) -> Result<(), ClientError> {
        let Some(pending) = self.pending_commit.take() else {
            return Ok(());
        };
        let response = self.coordinator.receive::<OffsetCommitRequest>(pending)?;
        for partition in response.topics.iter().flat_map(|topic| &topic.partitions) {
            match partition.error_code {
                0 => {}
                // A rebalance started: the next heartbeat says so, and the new owner resumes
                // from the last commit that went through.
                REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION | UNKNOWN_MEMBER_ID => return Ok(()),
                code => return Err(ClientError::kafka("OffsetCommit", code)),
            }
        }
        Ok(())
    }

    /// Committed offsets of this member's partitions (absent: none committed).
    pub fn committed(&mut self) -> Result<BTreeMap<i32, i64>, ClientError> {
        self.finish_commit()?;
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.group_id.clone())))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(topic_name(&self.topic))
                .with_partition_indexes(self.assignment.clone())]));
        let response = self.coordinator.call(&request)?;
        if response.error_code != 0 {
            return Err(ClientError::kafka("OffsetFetch", response.error_code));
        }
        let mut committed = BTreeMap::new();
        for partition in response.topics.iter().flat_map(|topic| &topic.partitions) {
            if partition.error_code != 0 {
                return Err(ClientError::kafka("OffsetFetch", partition.error_code));
            }
            if partition.committed_offset >= 0 {
                committed.insert(partition.partition_index, partition.committed_offset);
            }
        }
        Ok(committed)
    }

    /// Leaves the group so that the others rebalance at once rather than after a session timeout.
    pub fn leave(&mut self) -> Result<(), ClientError> {
        self.finish_commit()?;
        let mut request = LeaveGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.group_id.clone())));
        if self.coordinator.version_of::<LeaveGroupRequest>()? >= 3 {
            request = request.with_members(vec![MemberIdentity::default()
                .with_member_id(StrBytes::from_string(self.member_id.clone()))]);
        } else {
            request = request.with_member_id(StrBytes::from_string(self.member_id.clone()));
        }
        let code = self.coordinator.call(&request)?.error_code;
        if code != 0 && code != UNKNOWN_MEMBER_ID && code != NOT_COORDINATOR {
            return Err(ClientError::kafka("LeaveGroup", code));
        }
        Ok(())
    }
}

/// The `range` assignor for one topic: members sorted by id, each a contiguous run of
/// partitions, the first `partitions % members` one more.
pub fn range_assignment(members: &[String], partitions: i32) -> BTreeMap<String, Vec<i32>> {
    let mut sorted: Vec<&String> = members.iter().collect();
    sorted.sort();
    let count = i32::try_from(sorted.len().max(1)).unwrap_or(i32::MAX);
    let (share, extra) = (partitions / count, partitions % count);
    let mut next = 0;
    sorted
        .into_iter()
        .enumerate()
        .map(|(index, member)| {
            let len = share + i32::from(i32::try_from(index).is_ok_and(|index| index < extra));
            let assigned = (next..next + len).collect();
            next += len;
            (member.clone(), assigned)
        })
        .collect()
}

fn encode_assignment(topic: &str, partitions: Vec<i32>) -> Result<Bytes, ClientError> {
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    ConsumerProtocolAssignment::default()
        .with_assigned_partitions(vec![AssignedPartitions::default()
            .with_topic(topic_name(topic))
            .with_partitions(partitions)])
        .encode(&mut buf, 0)
        .map_err(ClientError::codec)?;
    Ok(buf.freeze())
}

/// This member's partitions of `topic` from the leader's assignment; a partition the topic does
/// not have is an error (the consumer indexes its leaders by partition).
fn decode_assignment(
    mut assignment: Bytes,
    topic: &str,
    partitions: i32,
) -> Result<Vec<i32>, ClientError> {
    if assignment.remaining() < 2 {
        return Ok(Vec::new()); // no partitions for this member
    }
    let version = assignment.get_i16().clamp(0, 3);
    let decoded =
        ConsumerProtocolAssignment::decode(&mut assignment, version).map_err(ClientError::codec)?;
    let assigned: Vec<i32> = decoded
        .assigned_partitions
        .into_iter()
        .filter(|assigned| assigned.topic.0.as_str() == topic)
        .flat_map(|assigned| assigned.partitions)
        .collect();
    if let Some(bad) = assigned.iter().find(|p| !(0..partitions).contains(*p)) {
        return Err(ClientError::Protocol(format!(
            "assigned partition {bad} of {topic}, which has {partitions}"
        )));
    }
    Ok(assigned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_gives_contiguous_runs_extra_to_the_first() {
        let members: Vec<String> = ["c", "a", "b"].iter().map(|m| m.to_string()).collect();
        let assignment = range_assignment(&members, 7);
        assert_eq!(assignment["a"], vec![0, 1, 2]);
        assert_eq!(assignment["b"], vec![3, 4]);
        assert_eq!(assignment["c"], vec![5, 6]);
        let few = range_assignment(&members, 2);
        assert_eq!(few["c"], Vec::<i32>::new());
    }

    #[test]
    fn assignments_round_trip() {
        let encoded = encode_assignment("t", vec![1, 4]).unwrap();
        assert_eq!(
            decode_assignment(encoded.clone(), "t", 5).unwrap(),
            vec![1, 4]
        );
        assert!(
            decode_assignment(encoded, "t", 4).is_err(),
            "partition 4 of 4"
        );
        assert!(decode_assignment(Bytes::new(), "t", 4).unwrap().is_empty());
    }
}
