//! ACLs on the real `ringtail` binary over loopback: CreateAcls, DescribeAcls and DeleteAcls with
//! their authorization and validation, what the ACLs allow (Metadata's hidden topics, its
//! authorized-operations bits, CreateTopics), their survival across a restart, and a corrupt
//! `acls.json` refused at start. Logins use SASL PLAIN (the login itself is tested in sasl.rs).
#![forbid(unsafe_code)]

mod common;

use bytes::Bytes;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use common::client::Client;
use common::sasl::{self, SaslBroker};

const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
const INVALID_REQUEST: i16 = 42;
// Kafka's wire codes of the ACL model.
const ANY: i8 = 1;
const TOPIC: i8 = 2;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const MATCH: i8 = 2;
const READ: i8 = 3;
const DESCRIBE: i8 = 8;
const ALLOW: i8 = 3;

fn add_user(dir: &std::path::Path, name: &str) {
    sasl::add_user(dir, name, "SCRAM-SHA-256", &format!("{name}-secret"));
}

fn start(dir: &std::path::Path) -> SaslBroker {
    sasl::start_sasl(dir, &["--super-users", "User:admin"])
}

/// A connection to the SASL listener, logged in as `user` with PLAIN.
fn login(broker: &SaslBroker, user: &str) -> Client {
    let mut client = Client::connect_port(broker.sasl_port);
    let handshake =
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN"));
    let answer: SaslHandshakeResponse = client.call(ApiKey::SaslHandshake, 1, &handshake);
    assert_eq!(answer.error_code, 0);
    let token = format!("\0{user}\0{user}-secret");
    let auth = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
    let answer: SaslAuthenticateResponse = client.call(ApiKey::SaslAuthenticate, 2, &auth);
    assert_eq!(answer.error_code, 0, "{user} logs in");
    client
}

fn create_acls(client: &mut Client, creations: Vec<AclCreation>) -> Vec<i16> {
    let request = CreateAclsRequest::default().with_creations(creations);
    let answer: CreateAclsResponse = client.call(ApiKey::CreateAcls, 3, &request);
    answer.results.iter().map(|r| r.error_code).collect()
}

fn describe_acls(client: &mut Client, request: &DescribeAclsRequest) -> DescribeAclsResponse {
    client.call(ApiKey::DescribeAcls, 3, request)
}

fn metadata(client: &mut Client, topics: Option<&[&str]>, operations: bool) -> MetadataResponse {
    let topics = topics.map(|names| {
        names
            .iter()
            .map(|n| MetadataRequestTopic::default().with_name(Some(TopicName(str(n)))))
            .collect()
    });
    let request = MetadataRequest::default()
        .with_topics(topics)
        .with_include_topic_authorized_operations(operations);
    client.call(ApiKey::Metadata, 12, &request)
}

fn str(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn acl(name: &str, pattern: i8, principal: &str, operation: i8) -> AclCreation {
    AclCreation::default()
        .with_resource_type(TOPIC)
        .with_resource_name(str(name))
        .with_resource_pattern_type(pattern)
        .with_principal(str(principal))
        .with_host(str("*"))
        .with_operation(operation)
        .with_permission_type(ALLOW)
}

/// Null name, principal and host filters (kafka-protocol's defaults are empty strings, which
/// match only ACLs with empty fields, as in Kafka).
fn every_acl() -> DescribeAclsRequest {
    DescribeAclsRequest::default()
        .with_resource_name_filter(None)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_resource_type_filter(ANY)
        .with_pattern_type_filter(ANY)
        .with_operation(ANY)
        .with_permission_type(ANY)
}

fn topic_names(metadata: &MetadataResponse) -> Vec<String> {
    let mut names: Vec<String> = metadata
        .topics
        .iter()
        .filter(|t| t.error_code == 0)
        .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
        .collect();
    names.sort();
    names
}

#[test]
fn acl_apis_need_the_cluster_and_validate_what_they_store() {
    // Only ALTER on the cluster creates; a bad ACL in a batch fails alone, with INVALID_REQUEST.
    let dir = tempfile::tempdir().unwrap();
    add_user(dir.path(), "alice");
    add_user(dir.path(), "admin");
    let broker = start(dir.path());
    let mut alice = login(&broker, "alice");
    let denied = create_acls(&mut alice, vec![acl("t", LITERAL, "User:alice", READ)]);
    assert_eq!(denied, [CLUSTER_AUTHORIZATION_FAILED]);
    assert_eq!(
        describe_acls(&mut alice, &every_acl()).error_code,
        CLUSTER_AUTHORIZATION_FAILED
    );
    let mut admin = login(&broker, "admin");
    let results = create_acls(
        &mut admin,
        vec![
            acl("logs-", PREFIXED, "User:alice", READ),
            acl("t", LITERAL, "alice-without-type", READ),
            acl("t", MATCH, "User:alice", READ),
        ],
    );
    assert_eq!(results, [0, INVALID_REQUEST, INVALID_REQUEST]);
    // MATCH finds the prefix that covers a name; a literal filter on that name does not.
    let matching = every_acl()
        .with_resource_type_filter(TOPIC)
        .with_resource_name_filter(Some(str("logs-2026")))
        .with_pattern_type_filter(MATCH);
    let found = describe_acls(&mut admin, &matching);
    assert_eq!(found.resources.len(), 1);
    assert_eq!(found.resources[0].resource_name.as_str(), "logs-");
    assert_eq!(found.resources[0].pattern_type, PREFIXED);
    let literal = matching.with_pattern_type_filter(LITERAL);
    assert!(describe_acls(&mut admin, &literal).resources.is_empty());
    let delete = DeleteAclsFilter::default()
        .with_resource_name_filter(None)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_resource_type_filter(TOPIC)
        .with_pattern_type_filter(PREFIXED)
        .with_operation(ANY)
        .with_permission_type(ANY);
    let request = DeleteAclsRequest::default().with_filters(vec![delete]);
    let deleted: DeleteAclsResponse = admin.call(ApiKey::DeleteAcls, 3, &request);
    assert_eq!(deleted.filter_results[0].error_code, 0);
    assert_eq!(deleted.filter_results[0].matching_acls.len(), 1);
    assert!(describe_acls(&mut admin, &every_acl()).resources.is_empty());
}

#[test]
fn topics_follow_the_acls_and_the_acls_survive_a_restart() {
    // Metadata hides what alice may not DESCRIBE, names it TOPIC_AUTHORIZATION_FAILED when she
    // asks for it, reports her operations as bits; a restart keeps every ACL.
    let dir = tempfile::tempdir().unwrap();
    add_user(dir.path(), "alice");
    add_user(dir.path(), "admin");
    let broker = start(dir.path());
    let mut admin = login(&broker, "admin");
    for topic in ["shared", "private"] {
        assert_eq!(admin.create_topic(topic, 1, &[]), 0);
    }
    assert_eq!(
        create_acls(&mut admin, vec![acl("shared", LITERAL, "User:alice", READ)]),
        [0]
    );
    let mut alice = login(&broker, "alice");
    assert_eq!(
        alice.create_topic("mine", 1, &[]),
        TOPIC_AUTHORIZATION_FAILED
    );
    assert_eq!(topic_names(&metadata(&mut alice, None, false)), ["shared"]);
    // READ but not WRITE: refused before the records are even looked at.
    let produced = alice.produce("shared", 0, Bytes::from_static(b"not a batch"));
    assert_eq!(produced.error_code, TOPIC_AUTHORIZATION_FAILED);
    let asked = metadata(&mut alice, Some(&["private", "shared"]), true);
    assert_eq!(asked.topics[0].error_code, TOPIC_AUTHORIZATION_FAILED);
    let bits = asked.topics[1].topic_authorized_operations;
    assert_eq!(
        bits,
        (1 << READ) | (1 << DESCRIBE),
        "READ implies DESCRIBE, nothing else"
    );
    // The PLAINTEXT listener's User:ANONYMOUS: topics with ACLs follow them, as for anyone.
    let mut anonymous = Client::connect_port(broker.plaintext_port);
    assert_eq!(
        topic_names(&metadata(&mut anonymous, None, false)),
        ["__consumer_offsets", "__transaction_state", "private"]
    );
    drop(broker);

    let restarted = start(dir.path());
    let mut alice = login(&restarted, "alice");
    assert_eq!(topic_names(&metadata(&mut alice, None, false)), ["shared"]);
    let mut admin = login(&restarted, "admin");
    assert_eq!(describe_acls(&mut admin, &every_acl()).resources.len(), 1);
}

#[test]
fn a_corrupt_acl_file_stops_the_broker_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("acls.json"),
        b"{\"version\": 1, \"acls\": [{\"x\": 1}]}",
    )
    .unwrap();
    let port = common::free_port();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ringtail"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("acls.json"), "{stderr}");
}

const TRANSACTIONAL_ID: i8 = 5;
const WRITE: i8 = 4;
const GROUP_AUTHORIZATION_FAILED: i16 = 30;
const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;

/// AddPartitionsToTxn v3 of partition 0 of `topic` for `transactional_id`: each partition's error.
fn add_partition(client: &mut Client, transactional_id: &str, topic: &str) -> Vec<i16> {
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    let request = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(str(transactional_id)))
        .with_v3_and_below_producer_id(ProducerId(1))
        .with_v3_and_below_producer_epoch(0)
        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(TopicName(str(topic)))
            .with_partitions(vec![0])]);
    let answer: AddPartitionsToTxnResponse = client.call(ApiKey::AddPartitionsToTxn, 3, &request);
    answer
        .results_by_topic_v3_and_below
        .iter()
        .flat_map(|topic| topic.results_by_partition.iter())
        .map(|partition| partition.partition_error_code)
        .collect()
}

#[test]
fn transaction_apis_check_the_transactional_id_the_topics_and_the_group() {
    // As Kafka: WRITE on the transactional id first, then WRITE on each topic added, READ on the
    // group of AddOffsetsToTxn; ids the caller may not describe are hidden or refused.
    let dir = tempfile::tempdir().unwrap();
    add_user(dir.path(), "carol");
    add_user(dir.path(), "admin");
    let broker = start(dir.path());
    let mut admin = login(&broker, "admin");
    assert_eq!(admin.create_topic("txn-out", 1, &[]), 0);
    let mut carol = login(&broker, "carol");

    assert_eq!(
        add_partition(&mut carol, "tx-1", "txn-out"),
        [TRANSACTIONAL_ID_AUTHORIZATION_FAILED]
    );
    let end = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(str("tx-1")))
        .with_producer_id(ProducerId(1))
        .with_committed(true);
    let ended: EndTxnResponse = carol.call(ApiKey::EndTxn, 3, &end);
    assert_eq!(ended.error_code, TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    let describe = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(str("tx-1"))]);
    let described: DescribeTransactionsResponse =
        carol.call(ApiKey::DescribeTransactions, 0, &describe);
    assert_eq!(
        described.transaction_states[0].error_code,
        TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    );

    let grant = acl("tx-1", LITERAL, "User:carol", WRITE).with_resource_type(TRANSACTIONAL_ID);
    assert_eq!(create_acls(&mut admin, vec![grant]), [0]);
    // The id is now hers, the topic is not.
    assert_eq!(
        add_partition(&mut carol, "tx-1", "txn-out"),
        [TOPIC_AUTHORIZATION_FAILED]
    );
    let add_offsets = AddOffsetsToTxnRequest::default()
        .with_transactional_id(TransactionalId(str("tx-1")))
        .with_producer_id(ProducerId(1))
        .with_group_id(GroupId(str("readers")));
    let added: AddOffsetsToTxnResponse = carol.call(ApiKey::AddOffsetsToTxn, 3, &add_offsets);
    assert_eq!(added.error_code, GROUP_AUTHORIZATION_FAILED);
    // WRITE implies DESCRIBE: the id is described now (unknown to the coordinator, not refused).
    let described: DescribeTransactionsResponse =
        carol.call(ApiKey::DescribeTransactions, 0, &describe);
    assert_ne!(
        described.transaction_states[0].error_code,
        TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    );
}

#[test]
fn group_apis_and_create_topics_check_the_topics_they_name() {
    // As Kafka: a KIP-848 heartbeat needs DESCRIBE on every subscribed topic, OffsetDelete and
    // OffsetCommit v10 (topic by id) READ on each topic, OffsetFetch v10 DESCRIBE, beside their
    // rights on the group.
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::offset_delete_request::{
        OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
    };
    use ringtail_server::protocol::offsets_v10::{
        OffsetCommitRequestV10, OffsetCommitResponseV10, OffsetFetchRequestV10,
        OffsetFetchResponseV10,
    };
    const GROUP: i8 = 3;
    const DELETE: i8 = 6;
    let dir = tempfile::tempdir().unwrap();
    add_user(dir.path(), "dave");
    add_user(dir.path(), "admin");
    let broker = start(dir.path());
    let mut admin = login(&broker, "admin");
    let (created, hidden_id) = admin.create_topic_with_id("hidden", 1, &[]);
    assert_eq!(created, 0);
    let on_group = |operation| acl("g", LITERAL, "User:dave", operation).with_resource_type(GROUP);
    assert_eq!(
        create_acls(&mut admin, vec![on_group(READ), on_group(DELETE)]),
        [0, 0]
    );
    // The group exists, with an offset on the topic (a simple consumer's commit).
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(str("g")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(str("hidden")))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(0)])]);
    let committed: OffsetCommitResponse = admin.call(ApiKey::OffsetCommit, 8, &commit);
    assert_eq!(committed.topics[0].partitions[0].error_code, 0);
    let mut dave = login(&broker, "dave");

    let beat = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(str("g")))
        .with_member_id(str("dave-member-0000000001"))
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![TopicName(str("hidden"))]))
        .with_topic_partitions(Some(Vec::new()));
    let answer: ConsumerGroupHeartbeatResponse =
        dave.call(ApiKey::ConsumerGroupHeartbeat, 0, &beat);
    assert_eq!(answer.error_code, TOPIC_AUTHORIZATION_FAILED);
    assert!(answer.error_message.unwrap().contains("hidden"));

    let delete = OffsetDeleteRequest::default()
        .with_group_id(GroupId(str("g")))
        .with_topics(vec![OffsetDeleteRequestTopic::default()
            .with_name(TopicName(str("hidden")))
            .with_partitions(vec![
                OffsetDeleteRequestPartition::default().with_partition_index(0)
            ])]);
    let answer: OffsetDeleteResponse = dave.call(ApiKey::OffsetDelete, 0, &delete);
    assert_eq!(answer.error_code, 0, "the group is dave's");
    assert_eq!(
        answer.topics[0].partitions[0].error_code,
        TOPIC_AUTHORIZATION_FAILED
    );

    // v10 names the topic by id: resolved to "hidden" first, then checked by name as at v9.
    let mut by_id = commit.clone();
    by_id.topics[0].topic_id = hidden_id;
    let answer: OffsetCommitResponseV10 =
        dave.call(ApiKey::OffsetCommit, 10, &OffsetCommitRequestV10(by_id));
    assert_eq!(
        (
            answer.0.topics[0].topic_id,
            answer.0.topics[0].partitions[0].error_code
        ),
        (hidden_id, TOPIC_AUTHORIZATION_FAILED)
    );
    let fetch = OffsetFetchRequest::default().with_groups(vec![
        offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(str("g")))
            .with_topics(Some(vec![
                offset_fetch_request::OffsetFetchRequestTopics::default()
                    .with_topic_id(hidden_id)
                    .with_partition_indexes(vec![0]),
            ])),
    ]);
    let answer: OffsetFetchResponseV10 =
        dave.call(ApiKey::OffsetFetch, 10, &OffsetFetchRequestV10(fetch));
    let group = &answer.0.groups[0];
    assert_eq!(group.error_code, 0, "READ on the group implies DESCRIBE");
    assert_eq!(
        (
            group.topics[0].topic_id,
            group.topics[0].partitions[0].error_code
        ),
        (hidden_id, TOPIC_AUTHORIZATION_FAILED)
    );

    // CREATE without DESCRIBE_CONFIGS: the topic is made, its configs are not shown.
    const CREATE: i8 = 5;
    assert_eq!(
        create_acls(&mut admin, vec![acl("mine", LITERAL, "User:dave", CREATE)]),
        [0]
    );
    let request = CreateTopicsRequest::default().with_topics(vec![
        kafka_protocol::messages::create_topics_request::CreatableTopic::default()
            .with_name(TopicName(str("mine")))
            .with_num_partitions(1)
            .with_replication_factor(1),
    ]);
    let created: CreateTopicsResponse = dave.call(ApiKey::CreateTopics, 7, &request);
    assert_eq!(created.topics[0].error_code, 0);
    assert_eq!(
        created.topics[0].topic_config_error_code,
        TOPIC_AUTHORIZATION_FAILED
    );
    assert!(created.topics[0].configs.is_none());
}

#[test]
fn a_regex_subscription_is_assigned_only_topics_the_member_may_describe() {
    // Kafka resolves a KIP-848 regex against the topics the member's principal may DESCRIBE
    // (TopicRegexResolver.filterTopicDescribeAuthorizedTopics): an assignment must not reveal
    // a topic, its id and its partitions, to someone who may not see it in Metadata.
    const GROUP: i8 = 3;
    let dir = tempfile::tempdir().unwrap();
    add_user(dir.path(), "erin");
    add_user(dir.path(), "admin");
    let broker = start(dir.path());
    let mut admin = login(&broker, "admin");
    let (created, open_id) = admin.create_topic_with_id("re-open", 2, &[]);
    assert_eq!(created, 0);
    let (created, secret_id) = admin.create_topic_with_id("re-secret", 2, &[]);
    assert_eq!(created, 0);
    let on_group = acl("g-re", LITERAL, "User:erin", READ).with_resource_type(GROUP);
    let on_topic = acl("re-open", LITERAL, "User:erin", READ);
    assert_eq!(create_acls(&mut admin, vec![on_group, on_topic]), [0, 0]);
    let mut erin = login(&broker, "erin");
    let join = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(str("g-re")))
        .with_member_id(str("erin-member-0000000001"))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_regex(Some(str("re-.*")))
        .with_topic_partitions(Some(Vec::new()));
    let joined: ConsumerGroupHeartbeatResponse =
        erin.call(ApiKey::ConsumerGroupHeartbeat, 1, &join);
    assert_eq!(joined.error_code, 0, "{:?}", joined.error_message);
    let assigned: Vec<uuid::Uuid> = joined
        .assignment
        .expect("a join gets its assignment")
        .topic_partitions
        .iter()
        .map(|topic| topic.topic_id)
        .collect();
    assert_eq!(assigned, vec![open_id], "only the topic erin may describe");

    // The group keeps the regex's result until the ACLs change: a grant is seen by the next
    // heartbeat.
    let on_secret = acl("re-secret", LITERAL, "User:erin", DESCRIBE);
    assert_eq!(create_acls(&mut admin, vec![on_secret]), [0]);
    let beat = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(str("g-re")))
        .with_member_id(str("erin-member-0000000001"))
        .with_member_epoch(joined.member_epoch)
        .with_rebalance_timeout_ms(-1)
        .with_topic_partitions(None);
    let after: ConsumerGroupHeartbeatResponse = erin.call(ApiKey::ConsumerGroupHeartbeat, 1, &beat);
    assert_eq!(after.error_code, 0, "{:?}", after.error_message);
    let mut assigned: Vec<uuid::Uuid> = after
        .assignment
        .expect("the assignment grew")
        .topic_partitions
        .iter()
        .map(|topic| topic.topic_id)
        .collect();
    assigned.sort();
    let mut expected = vec![open_id, secret_id];
    expected.sort();
    assert_eq!(
        assigned, expected,
        "the grant is seen at the next heartbeat"
    );
}

#[test]
fn consumer_group_describe_hides_a_group_assigned_topics_the_caller_may_not_describe() {
    // Kafka's handleConsumerGroupDescribe: a group whose members are assigned a topic the
    // caller may not DESCRIBE is answered TOPIC_AUTHORIZATION_FAILED without its members, so
    // DESCRIBE on a group does not reveal the names, ids and partitions of hidden topics.
    const GROUP: i8 = 3;
    let dir = tempfile::tempdir().unwrap();
    add_user(dir.path(), "frank");
    add_user(dir.path(), "admin");
    let broker = start(dir.path());
    let mut admin = login(&broker, "admin");
    assert_eq!(admin.create_topic("cgd-hidden", 1, &[]), 0);
    let join = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(str("g-cgd")))
        .with_member_id(str("admin-member-00000000001"))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![TopicName(str("cgd-hidden"))]))
        .with_topic_partitions(Some(Vec::new()));
    let joined: ConsumerGroupHeartbeatResponse =
        admin.call(ApiKey::ConsumerGroupHeartbeat, 1, &join);
    assert_eq!(joined.error_code, 0, "{:?}", joined.error_message);
    let on_group = acl("g-cgd", LITERAL, "User:frank", DESCRIBE).with_resource_type(GROUP);
    assert_eq!(create_acls(&mut admin, vec![on_group]), [0]);
    let mut frank = login(&broker, "frank");
    let request =
        ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(str("g-cgd"))]);
    let described: ConsumerGroupDescribeResponse =
        frank.call(ApiKey::ConsumerGroupDescribe, 0, &request);
    let group = &described.groups[0];
    assert_eq!(group.error_code, TOPIC_AUTHORIZATION_FAILED);
    assert!(group.members.is_empty(), "{:?}", group.members);
    // The admin, who may describe the topic, sees the group whole.
    let described: ConsumerGroupDescribeResponse =
        admin.call(ApiKey::ConsumerGroupDescribe, 0, &request);
    assert_eq!(described.groups[0].error_code, 0);
    assert_eq!(described.groups[0].members.len(), 1);
}

#[test]
fn describe_transactions_leaves_out_topics_the_caller_may_not_describe() {
    // Kafka's handleDescribeTransactionsRequest keeps only the partitions of topics the caller
    // may DESCRIBE: DESCRIBE on a transactional id must not reveal the hidden topics it writes.
    let dir = tempfile::tempdir().unwrap();
    add_user(dir.path(), "grace");
    add_user(dir.path(), "admin");
    let broker = start(dir.path());
    let mut admin = login(&broker, "admin");
    assert_eq!(admin.create_topic("txd-open", 1, &[]), 0);
    assert_eq!(admin.create_topic("txd-hidden", 1, &[]), 0);
    let (error, producer) = common::txn::init(&mut admin, "t-desc", 60_000);
    assert_eq!(error, 0);
    for topic in ["txd-open", "txd-hidden"] {
        let added = common::txn::add_partitions(&mut admin, "t-desc", producer, topic, &[0]);
        assert_eq!(added, [0]);
    }
    let on_id = acl("t-desc", LITERAL, "User:grace", DESCRIBE).with_resource_type(TRANSACTIONAL_ID);
    let on_topic = acl("txd-open", LITERAL, "User:grace", DESCRIBE);
    assert_eq!(create_acls(&mut admin, vec![on_id, on_topic]), [0, 0]);
    let mut grace = login(&broker, "grace");
    let describe = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(str("t-desc"))]);
    let described: DescribeTransactionsResponse =
        grace.call(ApiKey::DescribeTransactions, 0, &describe);
    let state = &described.transaction_states[0];
    assert_eq!(state.error_code, 0);
    let topics: Vec<&str> = state.topics.iter().map(|t| t.topic.0.as_str()).collect();
    assert_eq!(topics, ["txd-open"]);
}

/// IncrementalAlterConfigs of BROKER `resource` setting `log.retention.ms`: its error code.
fn alter_broker_retention(client: &mut Client, resource: &str) -> i16 {
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(str(resource))
            .with_configs(vec![
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(str("log.retention.ms"))
                    .with_config_operation(0)
                    .with_value(Some(str("60000"))),
            ]),
    ]);
    let answer: IncrementalAlterConfigsResponse =
        client.call(ApiKey::IncrementalAlterConfigs, 1, &request);
    answer.responses[0].error_code
}

fn describe_broker(client: &mut Client, resource: &str) -> i16 {
    let request = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(str(resource)),
    ]);
    let answer: DescribeConfigsResponse = client.call(ApiKey::DescribeConfigs, 4, &request);
    answer.results[0].error_code
}

#[test]
fn dynamic_broker_configs_need_the_clusters_config_operations() {
    // As Kafka: ALTER_CONFIGS and DESCRIBE_CONFIGS on the CLUSTER, for a node id and for "".
    const CLUSTER: i8 = 4;
    const ALTER_CONFIGS: i8 = 11;
    let dir = tempfile::tempdir().unwrap();
    add_user(dir.path(), "ops");
    add_user(dir.path(), "admin");
    let broker = start(dir.path());
    let mut ops = login(&broker, "ops");
    for resource in ["0", ""] {
        assert_eq!(
            alter_broker_retention(&mut ops, resource),
            CLUSTER_AUTHORIZATION_FAILED
        );
        assert_eq!(
            describe_broker(&mut ops, resource),
            CLUSTER_AUTHORIZATION_FAILED
        );
    }
    let mut admin = login(&broker, "admin");
    let on_cluster = |operation| {
        acl("kafka-cluster", LITERAL, "User:ops", operation).with_resource_type(CLUSTER)
    };
    assert_eq!(
        create_acls(&mut admin, vec![on_cluster(ALTER_CONFIGS)]),
        [0]
    );
    // ALTER_CONFIGS implies DESCRIBE_CONFIGS.
    for resource in ["0", ""] {
        assert_eq!(alter_broker_retention(&mut ops, resource), 0);
        assert_eq!(describe_broker(&mut ops, resource), 0);
    }
}

/// IncrementalAlterConfigs of GROUP `group` setting `consumer.session.timeout.ms`, then its
/// DescribeConfigs: the two error codes.
fn alter_and_describe_group(client: &mut Client, group: &str) -> (i16, i16) {
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(32)
            .with_resource_name(str(group))
            .with_configs(vec![
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(str("consumer.session.timeout.ms"))
                    .with_config_operation(0)
                    .with_value(Some(str("50000"))),
            ]),
    ]);
    let altered: IncrementalAlterConfigsResponse =
        client.call(ApiKey::IncrementalAlterConfigs, 1, &request);
    let request = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(32)
            .with_resource_name(str(group)),
    ]);
    let described: DescribeConfigsResponse = client.call(ApiKey::DescribeConfigs, 4, &request);
    (
        altered.responses[0].error_code,
        described.results[0].error_code,
    )
}

#[test]
fn group_configs_need_the_groups_config_operations() {
    // As Kafka: ALTER_CONFIGS and DESCRIBE_CONFIGS on the GROUP resource, refused with
    // GROUP_AUTHORIZATION_FAILED.
    const GROUP: i8 = 3;
    const ALTER_CONFIGS: i8 = 11;
    let dir = tempfile::tempdir().unwrap();
    add_user(dir.path(), "ops");
    add_user(dir.path(), "admin");
    let broker = start(dir.path());
    let mut ops = login(&broker, "ops");
    assert_eq!(
        alter_and_describe_group(&mut ops, "gc"),
        (GROUP_AUTHORIZATION_FAILED, GROUP_AUTHORIZATION_FAILED)
    );
    let mut admin = login(&broker, "admin");
    let on_group = acl("gc", LITERAL, "User:ops", ALTER_CONFIGS).with_resource_type(GROUP);
    assert_eq!(create_acls(&mut admin, vec![on_group]), [0]);
    // ALTER_CONFIGS implies DESCRIBE_CONFIGS; another group stays closed.
    assert_eq!(alter_and_describe_group(&mut ops, "gc"), (0, 0));
    assert_eq!(
        alter_and_describe_group(&mut ops, "gc-other"),
        (GROUP_AUTHORIZATION_FAILED, GROUP_AUTHORIZATION_FAILED)
    );
}
