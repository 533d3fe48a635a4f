//! Hostile-client cases of the security paths found by review, on the real `ringtail` binary:
//! each test failed before its fix.
#![forbid(unsafe_code)]

mod common;

use std::process::{Command, Stdio};

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use common::client::Client;
use common::Broker;

const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
// Kafka's wire codes of the ACL model.
const TOPIC: i8 = 2;
const LITERAL: i8 = 3;
const ALL: i8 = 2;
const WRITE: i8 = 4;
const ALTER: i8 = 7;
const DESCRIBE: i8 = 8;
const CLUSTER: i8 = 4;
const DENY: i8 = 2;
const ALLOW: i8 = 3;

fn str(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

/// A 2-shard broker whose one listener is `listener` (`{port}` replaced by a free port).
fn start_with_listener(listener: &'static str) -> Broker {
    common::start_broker_spawned_by(tempfile::tempdir().unwrap(), |port, metrics_port, dir| {
        Command::new(env!("CARGO_BIN_EXE_ringtail"))
            .args([
                "--listeners",
                &listener.replace("{port}", &port.to_string()),
                "--metrics-listen",
                &format!("127.0.0.1:{metrics_port}"),
                "--shards",
                "2",
            ])
            .arg("--data-dir")
            .arg(dir)
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    })
}

fn topic_acl(
    topic: &str,
    principal: &str,
    host: &str,
    operation: i8,
    permission: i8,
) -> AclCreation {
    AclCreation::default()
        .with_resource_type(TOPIC)
        .with_resource_name(str(topic))
        .with_resource_pattern_type(LITERAL)
        .with_principal(str(principal))
        .with_host(str(host))
        .with_operation(operation)
        .with_permission_type(permission)
}

fn metadata_error(client: &mut Client, topic: &str) -> i16 {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(TopicName(str(topic))))
        ]))
        .with_allow_auto_topic_creation(false);
    let answer: MetadataResponse = client.call(ApiKey::Metadata, 12, &request);
    answer.topics[0].error_code
}

#[test]
fn an_acl_on_an_ipv4_host_applies_to_that_client_on_a_dual_stack_listener() {
    // A listener on an IPv6 socket (`[::]`, or here the loopback-only `[::ffff:127.0.0.1]`)
    // sees an IPv4 client as `::ffff:127.0.0.1`; Kafka (Java) sees `127.0.0.1`, and so must the
    // ACL host check, or a DENY on the client's IPv4 address does not stop it.
    let broker = start_with_listener("PLAINTEXT://[::ffff:127.0.0.1]:{port}");
    let mut client = Client::connect_port(broker.port);
    assert_eq!(client.create_topic("guarded", 1, &[]), 0);
    let creations = vec![
        topic_acl("guarded", "User:ANONYMOUS", "*", ALL, ALLOW),
        topic_acl("guarded", "User:ANONYMOUS", "127.0.0.1", DESCRIBE, DENY),
    ];
    let created: CreateAclsResponse = client.call(
        ApiKey::CreateAcls,
        3,
        &CreateAclsRequest::default().with_creations(creations),
    );
    assert!(created.results.iter().all(|r| r.error_code == 0));
    assert_eq!(
        metadata_error(&mut client, "guarded"),
        TOPIC_AUTHORIZATION_FAILED,
        "the DENY names the client's address"
    );
}

#[test]
fn an_idempotent_producer_relying_on_no_acl_found_gets_its_producer_id() {
    // Kafka's authorizeByResourceType (InitProducerId without a transactional id) first asks
    // about a topic no ACL names: where the "no ACL found" rule lets the principal write such a
    // topic, it may write idempotently. Once the cluster and one topic had ACLs (SECURITY.md's
    // advice for the PLAINTEXT listener), ANONYMOUS was refused its producer id, breaking every
    // idempotent producer (Java's default) while its plain produce kept working.
    let broker = common::start_broker(&[]);
    let mut client = Client::connect(&broker);
    let cluster_admin = AclCreation::default()
        .with_resource_type(CLUSTER)
        .with_resource_name(str("kafka-cluster"))
        .with_resource_pattern_type(LITERAL)
        .with_principal(str("User:admin"))
        .with_host(str("*"))
        .with_operation(ALTER)
        .with_permission_type(ALLOW);
    let creations = vec![
        cluster_admin,
        topic_acl("secret", "User:alice", "*", WRITE, ALLOW),
    ];
    let created: CreateAclsResponse = client.call(
        ApiKey::CreateAcls,
        3,
        &CreateAclsRequest::default().with_creations(creations),
    );
    assert!(created.results.iter().all(|r| r.error_code == 0));
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000);
    let answer: InitProducerIdResponse = client.call(ApiKey::InitProducerId, 4, &request);
    assert_eq!(answer.error_code, 0, "a topic no ACL names is writable");
    assert!(answer.producer_id.0 >= 0);
}

#[test]
fn clients_cannot_write_the_internal_topics() {
    // Kafka refuses a client's Produce to __consumer_offsets and __transaction_state
    // (INVALID_TOPIC_EXCEPTION: "Cannot append to internal topic") and its DeleteRecords there
    // ("Cannot delete records of internal topic"): the coordinators own them. Here anyone
    // allowed to write (ANONYMOUS by default) appended records there, which the coordinators
    // replay at the next start as if they had written them, or deleted every group's offsets.
    use kafka_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsTopic,
    };
    use ringtail_engine::batch::{encode_batch, ProducerSpec, RecordSpec};
    const INVALID_TOPIC_EXCEPTION: i16 = 17;
    let mut broker = common::start_broker(&[]);
    let mut client = Client::connect(&broker);
    let records = [RecordSpec {
        key: Some(b"\x00\x01not-a-key".as_slice()),
        value: Some(b"not-a-value".as_slice()),
        timestamp_delta: 0,
    }];
    for topic in ["__consumer_offsets", "__transaction_state"] {
        let batch = encode_batch(common::client::now_ms(), &records, ProducerSpec::default());
        let answer = client.produce(topic, 0, batch);
        assert_eq!(answer.error_code, INVALID_TOPIC_EXCEPTION, "{topic}");
        // Nor may they delete its records (every group's offsets, every transaction's state),
        // even once its cleanup policy no longer refuses it (a compacted topic's records cannot
        // be deleted, but the policy is a topic config a client may be allowed to change).
        let policy = incremental_alter_configs_request::AlterableConfig::default()
            .with_name(str("cleanup.policy"))
            .with_config_operation(0)
            .with_value(Some(str("delete")));
        let alter = IncrementalAlterConfigsRequest::default().with_resources(vec![
            incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(str(topic))
                .with_configs(vec![policy]),
        ]);
        let _: IncrementalAlterConfigsResponse =
            client.call(ApiKey::IncrementalAlterConfigs, 1, &alter);
        let delete =
            DeleteRecordsRequest::default().with_topics(vec![DeleteRecordsTopic::default()
                .with_name(TopicName(str(topic)))
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(-1)])]);
        let deleted: DeleteRecordsResponse = client.call(ApiKey::DeleteRecords, 2, &delete);
        assert_eq!(
            deleted.topics[0].partitions[0].error_code, INVALID_TOPIC_EXCEPTION,
            "{topic}"
        );
    }
    drop(client);
    common::restart(&mut broker);
    let mut client = Client::connect(&broker);
    let versions: ApiVersionsResponse =
        client.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(versions.error_code, 0);
}

#[test]
fn the_internal_topics_cannot_be_deleted() {
    // DeleteTopics of __consumer_offsets closed the group coordinator's log under it: every
    // OffsetCommit then failed (COORDINATOR_NOT_AVAILABLE) until a restart, which recreated the
    // topic empty, every group's offsets gone. One request of anyone with DELETE on the topic
    // (ANONYMOUS by default) did it.
    const INVALID_TOPIC_EXCEPTION: i16 = 17;
    let broker = common::start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("kept", 1, &[]), 0);
    for topic in ["__consumer_offsets", "__transaction_state"] {
        let request = DeleteTopicsRequest::default()
            .with_topic_names(vec![TopicName(str(topic))])
            .with_timeout_ms(10_000);
        let answer: DeleteTopicsResponse = client.call(ApiKey::DeleteTopics, 5, &request);
        assert_eq!(
            answer.responses[0].error_code, INVALID_TOPIC_EXCEPTION,
            "{topic}"
        );
    }
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(str("g")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(str("kept")))
                .with_partitions(vec![
                    kafka_protocol::messages::offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(0),
                ]),
        ]);
    let committed: OffsetCommitResponse = client.call(ApiKey::OffsetCommit, 8, &commit);
    assert_eq!(committed.topics[0].partitions[0].error_code, 0);
}
