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
