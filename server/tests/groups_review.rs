//! Consumer groups as real clients drive them over the wire: what the coordinator refuses so a
//! client can't make it keep members or state without bound.
#![forbid(unsafe_code)]

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

mod common;
use common::client::Client;
use common::start_broker;

fn join(group: &str, session_timeout_ms: i32) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_session_timeout_ms(session_timeout_ms)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
        )
        .with_name(StrBytes::from_static_str("range"))])
}

/// Kafka's INVALID_SESSION_TIMEOUT.
const INVALID_SESSION_TIMEOUT: i16 = 26;
/// Kafka's MEMBER_ID_REQUIRED.
const MEMBER_ID_REQUIRED: i16 = 79;

#[test]
fn a_join_with_a_session_timeout_outside_kafkas_bounds_is_refused() {
    // A member that may stay silent for 24 days before it is expired would hold its partitions
    // that long after it died; Kafka refuses session timeouts outside
    // [group.min.session.timeout.ms, group.max.session.timeout.ms] = [6 s, 30 min].
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    for session_timeout_ms in [i32::MAX, 1_800_001, 5_999, 0, -1] {
        let answer: JoinGroupResponse =
            client.call(ApiKey::JoinGroup, 7, &join("g", session_timeout_ms));
        assert_eq!(
            answer.error_code, INVALID_SESSION_TIMEOUT,
            "session timeout {session_timeout_ms} ms"
        );
    }
    for session_timeout_ms in [6_000, 1_800_000] {
        let answer: JoinGroupResponse =
            client.call(ApiKey::JoinGroup, 7, &join("g", session_timeout_ms));
        assert_eq!(answer.error_code, MEMBER_ID_REQUIRED);
    }
}

#[test]
fn the_session_timeout_bounds_are_the_brokers_flags() {
    // Kafka's group.min.session.timeout.ms and group.max.session.timeout.ms: a test cluster
    // lowers the minimum for clients that set session.timeout.ms under 6 s.
    let broker = start_broker(&[
        "--group-min-session-timeout-ms",
        "1000",
        "--group-max-session-timeout-ms",
        "10000",
    ]);
    let mut client = Client::connect(&broker);
    for (session_timeout_ms, expected) in [
        (999, INVALID_SESSION_TIMEOUT),
        (1_000, MEMBER_ID_REQUIRED),
        (10_000, MEMBER_ID_REQUIRED),
        (10_001, INVALID_SESSION_TIMEOUT),
    ] {
        let answer: JoinGroupResponse =
            client.call(ApiKey::JoinGroup, 7, &join("g", session_timeout_ms));
        assert_eq!(answer.error_code, expected, "{session_timeout_ms} ms");
    }
}

#[test]
fn a_refused_join_leaves_no_group_behind() {
    // A JoinGroup refused before anyone joined (here: no protocols) must not leave an empty
    // group in memory for ever: a client could grow the coordinator by one per group id, and
    // ListGroups would show groups nobody ever joined (gone after a restart, as never stored).
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    let refused: JoinGroupResponse = client.call(
        ApiKey::JoinGroup,
        7,
        &join("phantom", 10_000).with_protocols(Vec::new()),
    );
    assert_eq!(refused.error_code, 23, "INCONSISTENT_GROUP_PROTOCOL");
    let listed: ListGroupsResponse =
        client.call(ApiKey::ListGroups, 4, &ListGroupsRequest::default());
    let names: Vec<&str> = listed.groups.iter().map(|g| g.group_id.as_str()).collect();
    assert!(!names.contains(&"phantom"), "listed: {names:?}");
}

fn commit(client: &mut Client, group: &str, topic: &str, offset: i64) -> i16 {
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(common::client::topic_name(topic))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset),
                ]),
        ]);
    let response: OffsetCommitResponse = client.call(ApiKey::OffsetCommit, 8, &request);
    response.topics[0].partitions[0].error_code
}

#[test]
fn a_deleted_topics_committed_offsets_go_with_it() {
    // As Kafka does: a topic created again under the same name starts with no committed
    // offsets. Kept, they made a group resume the new topic at the old topic's offset,
    // silently skipping the records before it; and they came back after a restart.
    let mut broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("t", 1, &[]), 0);
    assert_eq!(commit(&mut client, "g", "t", 42), 0);
    assert_eq!(common::txn::committed_offset(&mut client, "g", "t"), 42);
    let delete = DeleteTopicsRequest::default()
        .with_topic_names(vec![common::client::topic_name("t")])
        .with_timeout_ms(10_000);
    let deleted: DeleteTopicsResponse = client.call(ApiKey::DeleteTopics, 5, &delete);
    assert_eq!(deleted.responses[0].error_code, 0);
    assert_eq!(client.create_topic("t", 1, &[]), 0);
    assert_eq!(common::txn::committed_offset(&mut client, "g", "t"), -1);
    common::restart(&mut broker);
    let mut client = Client::connect(&broker);
    assert_eq!(common::txn::committed_offset(&mut client, "g", "t"), -1);
}

/// Joins `group` with the MEMBER_ID_REQUIRED handshake; sends the second JoinGroup and returns
/// the member id without waiting for its answer.
fn send_join(client: &mut Client, group: &str) -> String {
    let asked: JoinGroupResponse = client.call(ApiKey::JoinGroup, 7, &join(group, 10_000));
    assert_eq!(asked.error_code, MEMBER_ID_REQUIRED);
    let member_id = asked.member_id;
    let again = join(group, 10_000).with_member_id(member_id.clone());
    client.send(ApiKey::JoinGroup, 7, &again).unwrap();
    member_id.to_string()
}

fn leave(client: &mut Client, group: &str, member_id: &str) {
    let request = LeaveGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_members(vec![leave_group_request::MemberIdentity::default()
            .with_member_id(StrBytes::from_string(member_id.to_string()))]);
    let left: LeaveGroupResponse = client.call(ApiKey::LeaveGroup, 3, &request);
    assert_eq!(left.members[0].error_code, 0);
}

fn describe(client: &mut Client, group: &str) -> (String, usize) {
    let request = DescribeGroupsRequest::default()
        .with_groups(vec![GroupId(StrBytes::from_string(group.to_string()))]);
    let described: DescribeGroupsResponse = client.call(ApiKey::DescribeGroups, 5, &request);
    let group = &described.groups[0];
    (group.group_state.to_string(), group.members.len())
}

#[test]
fn a_group_emptied_during_a_rebalance_stays_empty_after_a_restart() {
    // Stable {a} is stored with its member; b joins (a rebalance starts), then both leave: the
    // group is Empty. Unstored, a restart brought it back Stable with a, who had left: shown
    // in DescribeGroups, refusing DeleteGroups (NON_EMPTY_GROUP) and holding up the next
    // rebalance until a's session ran out.
    let mut broker = start_broker(&[]);
    let mut a = Client::connect(&broker);
    let mut b = Client::connect(&broker);
    let a_id = send_join(&mut a, "e");
    let joined: JoinGroupResponse = a.receive(ApiKey::JoinGroup, 7).unwrap();
    assert_eq!(
        (joined.error_code, joined.leader.as_str()),
        (0, a_id.as_str())
    );
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("e")))
        .with_generation_id(joined.generation_id)
        .with_member_id(StrBytes::from_string(a_id.clone()));
    let synced: SyncGroupResponse = a.call(ApiKey::SyncGroup, 5, &sync);
    assert_eq!(synced.error_code, 0);
    assert_eq!(describe(&mut a, "e"), ("Stable".to_string(), 1));
    let b_id = send_join(&mut b, "e");
    // b's JoinGroup is sent, not answered: seen once another connection (maybe on another
    // shard) finds the group rebalancing.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while describe(&mut a, "e").0 != "PreparingRebalance" {
        assert!(
            std::time::Instant::now() < deadline,
            "b's join never arrived"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    leave(&mut a, "e", &b_id);
    let refused: JoinGroupResponse = b.receive(ApiKey::JoinGroup, 7).unwrap();
    assert_ne!(refused.error_code, 0, "b left");
    leave(&mut a, "e", &a_id);
    assert_eq!(describe(&mut a, "e"), ("Empty".to_string(), 0));
    common::restart(&mut broker);
    let mut client = Client::connect(&broker);
    assert_eq!(describe(&mut client, "e"), ("Empty".to_string(), 0));
}

#[test]
fn the_initial_rebalance_delay_is_the_brokers_flag() {
    // Kafka's group.initial.rebalance.delay.ms, described under its name; at 0 (kafka-go's test
    // broker) a lone member's first join is answered with generation 1, the member leading.
    let broker = start_broker(&["--group-initial-rebalance-delay-ms", "0"]);
    let mut client = Client::connect(&broker);
    let request = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str("0"))
            .with_configuration_keys(Some(vec![StrBytes::from_static_str(
                "group.initial.rebalance.delay.ms",
            )])),
    ]);
    let described: DescribeConfigsResponse = client.call(ApiKey::DescribeConfigs, 4, &request);
    let configs = &described.results[0].configs;
    assert_eq!(configs.len(), 1);
    assert_eq!(configs[0].value.as_deref(), Some("0"));
    // STATIC_BROKER_CONFIG: set by a flag.
    assert_eq!(configs[0].config_source, 4);

    let asked: JoinGroupResponse = client.call(ApiKey::JoinGroup, 7, &join("solo", 10_000));
    assert_eq!(asked.error_code, MEMBER_ID_REQUIRED);
    let joined: JoinGroupResponse = client.call(
        ApiKey::JoinGroup,
        7,
        &join("solo", 10_000).with_member_id(asked.member_id.clone()),
    );
    assert_eq!(joined.error_code, 0);
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader, asked.member_id);
}

/// A Stable group "p" of one member on `a` (generation 1); returns its member id.
fn stable_group_of_one(a: &mut Client) -> String {
    let a_id = send_join(a, "p");
    let joined: JoinGroupResponse = a.receive(ApiKey::JoinGroup, 7).unwrap();
    assert_eq!((joined.error_code, joined.generation_id), (0, 1));
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("p")))
        .with_generation_id(1)
        .with_member_id(StrBytes::from_string(a_id.clone()));
    let synced: SyncGroupResponse = a.call(ApiKey::SyncGroup, 5, &sync);
    assert_eq!(synced.error_code, 0);
    a_id
}

/// Sends `member_id`'s rejoin of "p" and waits until the group is seen leaving Stable.
fn rejoin_and_see_the_rebalance(a: &mut Client, observer: &mut Client, member_id: &str) {
    let rejoin = join("p", 10_000)
        .with_rebalance_timeout_ms(300_000)
        .with_member_id(StrBytes::from_string(member_id.to_string()));
    a.send(ApiKey::JoinGroup, 7, &rejoin).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while describe(observer, "p").0 == "Stable" {
        assert!(
            std::time::Instant::now() < deadline,
            "the rejoin never arrived"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn a_rebalance_includes_a_member_that_got_member_id_required() {
    // Kafka: the id handed out with MEMBER_ID_REQUIRED makes a pending member, and the
    // rebalance waits for it (hasAllMembersJoined): b's join right after is in a's generation.
    let broker = start_broker(&["--group-initial-rebalance-delay-ms", "0"]);
    let (mut a, mut b, mut observer) = (
        Client::connect(&broker),
        Client::connect(&broker),
        Client::connect(&broker),
    );
    let a_id = stable_group_of_one(&mut a);
    let asked: JoinGroupResponse = b.call(ApiKey::JoinGroup, 7, &join("p", 10_000));
    assert_eq!(asked.error_code, MEMBER_ID_REQUIRED);
    rejoin_and_see_the_rebalance(&mut a, &mut observer, &a_id);
    let b_join = join("p", 10_000).with_member_id(asked.member_id.clone());
    b.send(ApiKey::JoinGroup, 7, &b_join).unwrap();
    let a_joined: JoinGroupResponse = a.receive(ApiKey::JoinGroup, 7).unwrap();
    let b_joined: JoinGroupResponse = b.receive(ApiKey::JoinGroup, 7).unwrap();
    assert_eq!((a_joined.error_code, b_joined.error_code), (0, 0));
    assert_eq!(a_joined.generation_id, 2);
    assert_eq!(b_joined.generation_id, 2);
    let leader = if a_joined.leader.as_str() == a_id {
        &a_joined
    } else {
        &b_joined
    };
    assert_eq!(leader.members.len(), 2, "the leader sees both");
}

#[test]
fn a_member_id_never_used_stops_holding_the_rebalance_after_its_session_timeout() {
    // Kafka expires a pending member after its session timeout; the rebalance then completes
    // (here long before its 300 s rebalance timeout could end it).
    let broker = start_broker(&[
        "--group-initial-rebalance-delay-ms",
        "0",
        "--group-min-session-timeout-ms",
        "1000",
    ]);
    let (mut a, mut b, mut observer) = (
        Client::connect(&broker),
        Client::connect(&broker),
        Client::connect(&broker),
    );
    let a_id = stable_group_of_one(&mut a);
    let asked: JoinGroupResponse = b.call(ApiKey::JoinGroup, 7, &join("p", 1_000));
    assert_eq!(asked.error_code, MEMBER_ID_REQUIRED);
    rejoin_and_see_the_rebalance(&mut a, &mut observer, &a_id);
    a.set_read_timeout(std::time::Duration::from_secs(120));
    let joined: JoinGroupResponse = a.receive(ApiKey::JoinGroup, 7).unwrap();
    assert_eq!((joined.error_code, joined.generation_id), (0, 2));
    assert_eq!(joined.members.len(), 1, "only a: b never came back");
}

/// Kafka's INCONSISTENT_GROUP_PROTOCOL.
const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;

#[test]
fn a_sync_naming_another_protocol_than_the_groups_is_refused() {
    // Kafka (validateSyncGroup): a SyncGroup v5+ whose protocol type or name is set and differs
    // from the group's is answered INCONSISTENT_GROUP_PROTOCOL; matching or unset ones pass.
    let broker = start_broker(&["--group-initial-rebalance-delay-ms", "0"]);
    let mut a = Client::connect(&broker);
    let a_id = send_join(&mut a, "s");
    let joined: JoinGroupResponse = a.receive(ApiKey::JoinGroup, 7).unwrap();
    assert_eq!((joined.error_code, joined.generation_id), (0, 1));
    let sync = |protocol_type: &'static str, protocol_name: &'static str| {
        SyncGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("s")))
            .with_generation_id(1)
            .with_member_id(StrBytes::from_string(a_id.clone()))
            .with_protocol_type(Some(StrBytes::from_static_str(protocol_type)))
            .with_protocol_name(Some(StrBytes::from_static_str(protocol_name)))
    };
    for (protocol_type, protocol_name) in [("connect", "range"), ("consumer", "roundrobin")] {
        let refused: SyncGroupResponse =
            a.call(ApiKey::SyncGroup, 5, &sync(protocol_type, protocol_name));
        assert_eq!(
            refused.error_code, INCONSISTENT_GROUP_PROTOCOL,
            "{protocol_type}/{protocol_name}"
        );
    }
    let synced: SyncGroupResponse = a.call(ApiKey::SyncGroup, 5, &sync("consumer", "range"));
    assert_eq!(synced.error_code, 0);
    assert_eq!(describe(&mut a, "s"), ("Stable".to_string(), 1));
}

#[test]
fn a_commit_without_a_member_to_a_group_with_members_is_unknown_member_id() {
    // librdkafka's 0081_admin (AlterConsumerGroupOffsets "with subscribing consumer"): an admin
    // commit (generation -1, no member id) to a classic group that has members is refused with
    // UNKNOWN_MEMBER_ID, as Kafka's ClassicGroup.validateOffsetCommit answers it; it was
    // ILLEGAL_GENERATION here. The offset stays as it was.
    let broker = start_broker(&[]);
    let mut a = Client::connect(&broker);
    assert_eq!(a.create_topic("t", 1, &[]), 0);
    stable_group_of_one(&mut a);
    let mut admin = Client::connect(&broker);
    const UNKNOWN_MEMBER_ID: i16 = 25;
    assert_eq!(commit(&mut admin, "p", "t", 7), UNKNOWN_MEMBER_ID);
    assert_eq!(common::txn::committed_offset(&mut admin, "p", "t"), -1);
}

#[test]
fn a_restarted_static_leader_is_told_to_skip_the_assignment_and_fences_its_old_id() {
    // KIP-814 (JoinGroup v9, Kafka's updateStaticMemberThenRebalanceOrCompleteJoin): the leader
    // of a Stable group restarted under a new member id gets the current generation, itself as
    // leader, the members and skip_assignment=true; before v9 it is answered the old leader id
    // and no members, so it computes no assignment either. The old id is fenced.
    let broker = start_broker(&["--group-initial-rebalance-delay-ms", "0"]);
    let mut client = Client::connect(&broker);
    let static_join = |member_id: &str| {
        join("s", 10_000)
            .with_group_instance_id(Some(StrBytes::from_static_str("instance-1")))
            .with_member_id(StrBytes::from_string(member_id.to_string()))
    };
    let first: JoinGroupResponse = client.call(ApiKey::JoinGroup, 9, &static_join(""));
    assert_eq!(first.error_code, 0);
    let old = first.member_id.to_string();
    assert_eq!(first.leader.as_str(), old);
    assert!(
        !first.skip_assignment,
        "a new generation is assigned by its leader"
    );
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("s")))
        .with_generation_id(first.generation_id)
        .with_member_id(StrBytes::from_string(old.clone()))
        .with_group_instance_id(Some(StrBytes::from_static_str("instance-1")))
        .with_assignments(vec![
            sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(StrBytes::from_string(old.clone()))
                .with_assignment(bytes::Bytes::from_static(b"mine")),
        ]);
    let synced: SyncGroupResponse = client.call(ApiKey::SyncGroup, 5, &sync);
    assert_eq!(synced.error_code, 0);

    let restarted: JoinGroupResponse = client.call(ApiKey::JoinGroup, 9, &static_join(""));
    let new = restarted.member_id.to_string();
    assert_ne!(new, old);
    assert_eq!(
        (restarted.error_code, restarted.generation_id),
        (0, first.generation_id)
    );
    assert_eq!(restarted.leader.as_str(), new);
    assert!(restarted.skip_assignment);
    let members: Vec<&str> = restarted
        .members
        .iter()
        .map(|m| m.member_id.as_str())
        .collect();
    assert_eq!(members, vec![new.as_str()]);
    let heartbeat = |member_id: &str| {
        HeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("s")))
            .with_generation_id(first.generation_id)
            .with_member_id(StrBytes::from_string(member_id.to_string()))
            .with_group_instance_id(Some(StrBytes::from_static_str("instance-1")))
    };
    let fenced: HeartbeatResponse = client.call(ApiKey::Heartbeat, 4, &heartbeat(&old));
    assert_eq!(fenced.error_code, 82, "FENCED_INSTANCE_ID");
    let alive: HeartbeatResponse = client.call(ApiKey::Heartbeat, 4, &heartbeat(&new));
    assert_eq!(alive.error_code, 0);

    let before_v9: JoinGroupResponse = client.call(ApiKey::JoinGroup, 7, &static_join(""));
    assert_eq!(before_v9.error_code, 0);
    assert_ne!(before_v9.member_id.as_str(), new);
    assert_eq!(
        before_v9.leader.as_str(),
        new,
        "the leader before this restart"
    );
    assert!(before_v9.members.is_empty());
}
