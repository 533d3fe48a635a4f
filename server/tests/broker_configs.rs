//! Dynamic broker configs against the real binary (Kafka's KIP-226 as a KRaft broker serves
//! it): AlterConfigs and IncrementalAlterConfigs on BROKER "<node id>" and "" (the cluster-wide
//! default), DescribeConfigs' sources and synonyms, a restart, DELETE back to the start-up value,
//! a topic's retention following the dynamic default, refusals, validate_only.
#![forbid(unsafe_code)]

mod common;

use bytes::Bytes;
use common::client::{now_ms, str_bytes, topic_name, Client};
use common::configs::{incremental_alter, legacy_alter};
use common::{restart, restart_with, start_broker};
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;
use ringtail_engine::batch::encode_uniform_batch;
use std::time::{Duration, Instant};

const BROKER: i8 = 4;
const TOPIC: i8 = 2;
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DYNAMIC_BROKER: i8 = 2;
const SOURCE_DYNAMIC_DEFAULT: i8 = 3;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
const INVALID_REQUEST: i16 = 42;

fn describe(client: &mut Client, resource_type: i8, resource: &str) -> DescribeConfigsResult {
    let request = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(str_bytes(resource)),
        ]);
    let response: DescribeConfigsResponse = client.call(ApiKey::DescribeConfigs, 4, &request);
    response.results[0].clone()
}

fn entry<'a>(
    result: &'a DescribeConfigsResult,
    key: &str,
) -> Option<&'a DescribeConfigsResourceResult> {
    result
        .configs
        .iter()
        .find(|config| config.name.as_str() == key)
}

/// (value, source, synonyms' sources) of `key` as described.
fn shown(result: &DescribeConfigsResult, key: &str) -> (String, i8, Vec<i8>) {
    let config = entry(result, key).unwrap_or_else(|| panic!("{key} not described"));
    (
        config
            .value
            .as_ref()
            .map(|v| v.to_string())
            .unwrap_or_default(),
        config.config_source,
        config
            .synonyms
            .iter()
            .map(|synonym| synonym.source)
            .collect(),
    )
}

/// IncrementalAlterConfigs of one resource: (error code, message).
fn alter(
    client: &mut Client,
    resource_type: i8,
    resource: &str,
    changes: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> (i16, String) {
    let result = incremental_alter(client, resource_type, resource, changes, validate_only);
    let message = result.error_message.as_ref().map(|m| m.to_string());
    (result.error_code, message.unwrap_or_default())
}

#[test]
fn librdkafka_0081_sets_a_per_broker_config_with_the_legacy_api() {
    // librdkafka's 0081 sets sasl.kerberos.min.time.before.relogin on its broker and expects
    // NO_ERROR, as Kafka answers; the value is then described as DYNAMIC_BROKER_CONFIG.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    let relogin = "sasl.kerberos.min.time.before.relogin";
    assert_eq!(
        legacy_alter(&mut client, BROKER, "0", &[(relogin, "58000")]),
        0
    );
    let node = describe(&mut client, BROKER, "0");
    assert_eq!(
        shown(&node, relogin),
        (
            "58000".into(),
            SOURCE_DYNAMIC_BROKER,
            vec![SOURCE_DYNAMIC_BROKER]
        )
    );
    assert!(!entry(&node, relogin).unwrap().read_only);
    // Kafka keeps per-broker SASL configs off the cluster-wide default.
    let (error, message) = alter(&mut client, BROKER, "", &[(relogin, SET, Some("1"))], false);
    assert_eq!(error, INVALID_REQUEST);
    assert!(message.contains("broker id must be specified"), "{message}");
    // The legacy API replaces the whole set: an empty one removes it.
    assert_eq!(legacy_alter(&mut client, BROKER, "0", &[]), 0);
    assert!(entry(&describe(&mut client, BROKER, "0"), relogin).is_none());
}

#[test]
fn dynamic_configs_are_described_in_kafka_order_survive_a_restart_and_delete_restores() {
    // kafka-configs --entity-type brokers --entity-default --alter --add-config, then per node.
    let mut broker = start_broker(&["--retention-ms", "123456"]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("inherits", 1, &[]), 0);
    assert_eq!(
        client.create_topic("own", 1, &[("retention.ms", "1000")]),
        0
    );
    let set_default = [("log.retention.ms", SET, Some("600000"))];
    assert_eq!(alter(&mut client, BROKER, "", &set_default, false).0, 0);
    let set_node = [("log.retention.ms", SET, Some("700000"))];
    assert_eq!(alter(&mut client, BROKER, "0", &set_node, false).0, 0);

    let node = describe(&mut client, BROKER, "0");
    assert_eq!(
        shown(&node, "log.retention.ms"),
        (
            "700000".into(),
            SOURCE_DYNAMIC_BROKER,
            vec![
                SOURCE_DYNAMIC_BROKER,
                SOURCE_DYNAMIC_DEFAULT,
                SOURCE_STATIC_BROKER
            ]
        )
    );
    let default = describe(&mut client, BROKER, "");
    assert_eq!(default.configs.len(), 1);
    assert_eq!(
        shown(&default, "log.retention.ms"),
        (
            "600000".into(),
            SOURCE_DYNAMIC_DEFAULT,
            vec![SOURCE_DYNAMIC_DEFAULT]
        )
    );
    let topic = describe(&mut client, TOPIC, "inherits");
    assert_eq!(
        shown(&topic, "retention.ms"),
        (
            "700000".into(),
            SOURCE_DYNAMIC_BROKER,
            vec![
                SOURCE_DYNAMIC_BROKER,
                SOURCE_DYNAMIC_DEFAULT,
                SOURCE_STATIC_BROKER
            ]
        )
    );
    // A topic's own override still wins.
    let own = describe(&mut client, TOPIC, "own");
    assert_eq!(shown(&own, "retention.ms").0, "1000");
    assert_eq!(shown(&own, "retention.ms").1, SOURCE_TOPIC);

    // Kept across a restart (a SIGKILL: what was acknowledged was saved).
    restart_with(&mut broker, &["--retention-ms", "123456"]);
    let mut client = Client::connect(&broker);
    assert_eq!(
        shown(&describe(&mut client, BROKER, "0"), "log.retention.ms").0,
        "700000"
    );
    assert_eq!(
        shown(&describe(&mut client, TOPIC, "inherits"), "retention.ms").0,
        "700000"
    );

    // DELETE on the node: the default shows through; then on the default: the start-up value.
    let delete = [("log.retention.ms", DELETE, None)];
    assert_eq!(alter(&mut client, BROKER, "0", &delete, false).0, 0);
    let topic = describe(&mut client, TOPIC, "inherits");
    assert_eq!(
        shown(&topic, "retention.ms"),
        (
            "600000".into(),
            SOURCE_DYNAMIC_DEFAULT,
            vec![SOURCE_DYNAMIC_DEFAULT, SOURCE_STATIC_BROKER]
        )
    );
    assert_eq!(alter(&mut client, BROKER, "", &delete, false).0, 0);
    let node = describe(&mut client, BROKER, "0");
    assert_eq!(
        shown(&node, "log.retention.ms"),
        (
            "123456".into(),
            SOURCE_STATIC_BROKER,
            vec![SOURCE_STATIC_BROKER]
        )
    );
    assert_eq!(
        shown(&describe(&mut client, TOPIC, "inherits"), "retention.ms").0,
        "123456"
    );
    assert!(describe(&mut client, BROKER, "").configs.is_empty());
    restart(&mut broker);
    let mut client = Client::connect(&broker);
    assert!(describe(&mut client, BROKER, "").configs.is_empty());
}

#[test]
fn refusals_are_kafkas_and_validate_only_changes_nothing() {
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    // Not dynamic in Kafka.
    let (error, message) = alter(
        &mut client,
        BROKER,
        "0",
        &[("log.dirs", SET, Some("/x"))],
        false,
    );
    assert_eq!(error, INVALID_REQUEST);
    assert_eq!(
        message,
        "Cannot update these configs dynamically: Set(log.dirs)"
    );
    assert_eq!(
        legacy_alter(&mut client, BROKER, "0", &[("num.partitions", "3")]),
        INVALID_REQUEST
    );
    // Another broker's id, or no id at all.
    let retention = [("log.retention.ms", SET, Some("60000"))];
    let (error, message) = alter(&mut client, BROKER, "7", &retention, false);
    assert_eq!(error, INVALID_REQUEST);
    assert_eq!(message, "Unexpected broker id, expected 0, but received 7");
    assert_eq!(
        alter(&mut client, BROKER, "zero", &retention, false).0,
        INVALID_REQUEST
    );
    // A value the topic config's rule refuses.
    let bad = [("log.segment.bytes", SET, Some("12"))];
    assert_eq!(
        alter(&mut client, BROKER, "", &bad, false).0,
        INVALID_REQUEST
    );
    // validate_only answers as the real change would, and changes nothing.
    assert_eq!(alter(&mut client, BROKER, "", &retention, true).0, 0);
    assert_eq!(
        alter(&mut client, BROKER, "", &bad, true).0,
        INVALID_REQUEST
    );
    assert!(describe(&mut client, BROKER, "").configs.is_empty());
    assert_eq!(
        shown(&describe(&mut client, BROKER, "0"), "log.retention.ms").1,
        SOURCE_DEFAULT
    );
    // kafka-reassign-partitions --verify deletes the replication throttles on every broker.
    let throttles = [
        ("leader.replication.throttled.rate", DELETE, None),
        ("follower.replication.throttled.rate", DELETE, None),
        (
            "replica.alter.log.dirs.io.max.bytes.per.second",
            DELETE,
            None,
        ),
    ];
    assert_eq!(alter(&mut client, BROKER, "0", &throttles, false).0, 0);
    // APPEND on a LIST config starts from the inherited value.
    let compact = [("log.cleanup.policy", APPEND, Some("compact"))];
    assert_eq!(alter(&mut client, BROKER, "", &compact, false).0, 0);
    assert_eq!(
        shown(
            &describe(&mut client, BROKER, "").clone(),
            "log.cleanup.policy"
        )
        .0,
        "delete,compact"
    );
    // Custom names are kept, as Kafka keeps them, and shown as sensitive (no known type).
    assert_eq!(
        alter(
            &mut client,
            BROKER,
            "0",
            &[("my.own.setting", SET, Some("x"))],
            false
        )
        .0,
        0
    );
    let custom = describe(&mut client, BROKER, "0");
    let custom = entry(&custom, "my.own.setting").unwrap();
    assert!(custom.is_sensitive && custom.value.is_none());
}

fn earliest(client: &mut Client, topic: &str) -> i64 {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-2)])]);
    let response: ListOffsetsResponse = client.call(ApiKey::ListOffsets, 10, &request);
    response.topics[0].partitions[0].offset
}

#[test]
fn an_existing_topics_retention_follows_the_dynamic_default() {
    // A topic without a retention override, its segments small: once the cluster-wide default
    // bounds retention.bytes, the retention pass deletes its old segments.
    let broker = start_broker(&["--log-cleanup-check-ms", "50"]);
    let mut client = Client::connect(&broker);
    assert_eq!(
        client.create_topic("aging", 1, &[("segment.bytes", "1024")]),
        0
    );
    for _ in 0..5 {
        // Timestamps of now: age-based retention (7 days) keeps them.
        let batch = Bytes::from(encode_uniform_batch(now_ms(), 10, 200));
        assert_eq!(client.produce("aging", 0, batch).error_code, 0);
    }
    assert_eq!(earliest(&mut client, "aging"), 0);
    let bound = [("log.retention.bytes", SET, Some("1"))];
    assert_eq!(alter(&mut client, BROKER, "", &bound, false).0, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while earliest(&mut client, "aging") == 0 {
        assert!(
            Instant::now() < deadline,
            "retention never followed the dynamic default"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let topic = describe(&mut client, TOPIC, "aging");
    assert_eq!(shown(&topic, "retention.bytes").0, "1");
    assert_eq!(shown(&topic, "retention.bytes").1, SOURCE_DYNAMIC_DEFAULT);
}

#[test]
fn append_subtract_delete_and_the_legacy_replace_on_a_broker() {
    const SUBTRACT: i8 = 3;
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    let policy = |result: &DescribeConfigsResult| {
        entry(result, "log.cleanup.policy").and_then(|c| c.value.as_ref().map(|v| v.to_string()))
    };
    // DELETE of a name never set is done, as Kafka.
    let unset = [("log.retention.ms", DELETE, None)];
    assert_eq!(alter(&mut client, BROKER, "", &unset, false).0, 0);
    // APPEND starts from the value in force (delete).
    let append = [("log.cleanup.policy", APPEND, Some("compact"))];
    assert_eq!(alter(&mut client, BROKER, "", &append, false).0, 0);
    let described = describe(&mut client, BROKER, "");
    assert_eq!(policy(&described).as_deref(), Some("delete,compact"));
    let subtract = [("log.cleanup.policy", SUBTRACT, Some("delete"))];
    assert_eq!(alter(&mut client, BROKER, "", &subtract, false).0, 0);
    let described = describe(&mut client, BROKER, "");
    assert_eq!(policy(&described).as_deref(), Some("compact"));
    assert_eq!(client.create_topic("inherits", 1, &[]), 0);
    let topic = describe(&mut client, TOPIC, "inherits");
    assert_eq!(shown(&topic, "cleanup.policy").0, "compact");
    assert_eq!(shown(&topic, "cleanup.policy").1, SOURCE_DYNAMIC_DEFAULT);
    // APPEND or SUBTRACT on a non-list config: Kafka's broker-side check (ConfigAdminManager's
    // prepareIncrementalConfigs) answers INVALID_REQUEST, not the topics' INVALID_CONFIG.
    for operation in [APPEND, SUBTRACT] {
        let bad = [("log.retention.ms", operation, Some("5"))];
        let (code, message) = alter(&mut client, BROKER, "", &bad, false);
        assert_eq!(code, INVALID_REQUEST, "{message}");
        assert!(message.ends_with("is not allowed for config key: log.retention.ms"));
    }
    // The legacy API replaces the resource's whole set.
    assert_eq!(
        legacy_alter(&mut client, BROKER, "", &[("log.retention.ms", "5000")]),
        0
    );
    let described = describe(&mut client, BROKER, "");
    assert_eq!(policy(&described), None);
    let retention = entry(&described, "log.retention.ms").unwrap();
    assert_eq!(retention.value.as_ref().unwrap().as_str(), "5000");
    let topic = describe(&mut client, TOPIC, "inherits");
    assert_eq!(shown(&topic, "cleanup.policy").0, "delete");
    assert_eq!(shown(&topic, "retention.ms").0, "5000");
}

#[test]
fn append_on_a_node_starts_from_its_own_value_else_kafkas_default() {
    // Kafka's controller appends to the resource's own value, else the config's schema default
    // (ConfigurationControlManager.getParts): not the cluster-wide default's value.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    let compact = [("log.cleanup.policy", SET, Some("compact"))];
    assert_eq!(alter(&mut client, BROKER, "", &compact, false).0, 0);
    let append = [("log.cleanup.policy", APPEND, Some("delete"))];
    assert_eq!(alter(&mut client, BROKER, "0", &append, false).0, 0);
    let described = describe(&mut client, BROKER, "0");
    let policy = entry(&described, "log.cleanup.policy").unwrap();
    assert_eq!(policy.value.as_ref().unwrap().as_str(), "delete");
    assert_eq!(policy.config_source, SOURCE_DYNAMIC_BROKER);
}

#[test]
fn a_topics_own_override_wins_over_both_dynamic_levels_before_and_after() {
    // The flag is the base; "" over it; the node over ""; a topic's override over all, whether
    // set before or after the dynamic ones; deleting it falls back to the dynamic value.
    let broker = start_broker(&["--retention-ms", "123456"]);
    let mut client = Client::connect(&broker);
    assert_eq!(
        client.create_topic("before", 1, &[("retention.ms", "1000")]),
        0
    );
    assert_eq!(client.create_topic("plain", 1, &[]), 0);
    let set = |value| [("log.retention.ms", SET, Some(value))];
    assert_eq!(alter(&mut client, BROKER, "", &set("5000"), false).0, 0);
    let plain = describe(&mut client, TOPIC, "plain");
    assert_eq!(shown(&plain, "retention.ms").0, "5000");
    assert_eq!(shown(&plain, "retention.ms").1, SOURCE_DYNAMIC_DEFAULT);
    assert_eq!(alter(&mut client, BROKER, "0", &set("7000"), false).0, 0);
    let before = describe(&mut client, TOPIC, "before");
    assert_eq!(shown(&before, "retention.ms").0, "1000");
    assert_eq!(shown(&before, "retention.ms").1, SOURCE_TOPIC);
    let plain = describe(&mut client, TOPIC, "plain");
    assert_eq!(shown(&plain, "retention.ms").0, "7000");
    assert_eq!(shown(&plain, "retention.ms").1, SOURCE_DYNAMIC_BROKER);
    assert_eq!(
        client.create_topic("after", 1, &[("retention.ms", "2000")]),
        0
    );
    let override_set = [("retention.ms", SET, Some("3000"))];
    assert_eq!(
        alter(&mut client, TOPIC, "plain", &override_set, false).0,
        0
    );
    for (topic, value) in [("after", "2000"), ("plain", "3000")] {
        let described = describe(&mut client, TOPIC, topic);
        assert_eq!(shown(&described, "retention.ms").0, value, "{topic}");
        assert_eq!(shown(&described, "retention.ms").1, SOURCE_TOPIC, "{topic}");
    }
    let delete = |name| [(name, DELETE, None)];
    assert_eq!(
        alter(&mut client, BROKER, "0", &delete("log.retention.ms"), false).0,
        0
    );
    assert_eq!(
        alter(&mut client, TOPIC, "plain", &delete("retention.ms"), false).0,
        0
    );
    let plain = describe(&mut client, TOPIC, "plain");
    assert_eq!(shown(&plain, "retention.ms").0, "5000");
    assert_eq!(shown(&plain, "retention.ms").1, SOURCE_DYNAMIC_DEFAULT);
    assert_eq!(
        alter(&mut client, BROKER, "", &delete("log.retention.ms"), false).0,
        0
    );
    let plain = describe(&mut client, TOPIC, "plain");
    assert_eq!(shown(&plain, "retention.ms").0, "123456");
    assert_eq!(shown(&plain, "retention.ms").1, SOURCE_STATIC_BROKER);
}

fn earliest_of(client: &mut Client, topic: &str, partition: i32) -> i64 {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(-2)])]);
    let response: ListOffsetsResponse = client.call(ApiKey::ListOffsets, 10, &request);
    response.topics[0].partitions[0].offset
}

#[test]
fn a_dynamic_default_reaches_the_open_logs_of_every_shard() {
    // Four partitions over the two shards: every one's retention follows the new default, not
    // only those of the shard that handled the request.
    let broker = start_broker(&["--log-cleanup-check-ms", "50"]);
    let mut client = Client::connect(&broker);
    assert_eq!(
        client.create_topic("spread", 4, &[("segment.bytes", "1024")]),
        0
    );
    for partition in 0..4 {
        for _ in 0..5 {
            let batch = Bytes::from(encode_uniform_batch(now_ms(), 10, 200));
            assert_eq!(client.produce("spread", partition, batch).error_code, 0);
        }
    }
    let bound = [("log.retention.bytes", SET, Some("1"))];
    assert_eq!(alter(&mut client, BROKER, "", &bound, false).0, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    for partition in 0..4 {
        while earliest_of(&mut client, "spread", partition) == 0 {
            assert!(
                Instant::now() < deadline,
                "partition {partition}'s retention never followed the dynamic default"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn invalid_values_are_refused_and_change_nothing() {
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    // Kafka refuses 0 for log.retention.ms (a negative value is unlimited, as -1).
    for value in ["abc", "0"] {
        let bad = [("log.retention.ms", SET, Some(value))];
        let (code, message) = alter(&mut client, BROKER, "", &bad, false);
        assert_ne!(code, 0, "{value}: {message}");
    }
    let described = describe(&mut client, BROKER, "");
    assert!(entry(&described, "log.retention.ms").is_none());
}

#[test]
fn a_failed_save_answers_an_error_and_changes_nothing() {
    // A directory where the registry's temp file goes: the save fails as on a full or read-only
    // disk. The alteration must answer an error and leave the configs in force as they were.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("kept", 1, &[]), 0);
    let blocker = broker.dir.path().join("topics.json.tmp");
    std::fs::create_dir(&blocker).unwrap();
    let set = [("log.retention.ms", SET, Some("5000"))];
    let (code, message) = alter(&mut client, BROKER, "", &set, false);
    assert_ne!(code, 0, "{message}");
    assert!(entry(&describe(&mut client, BROKER, ""), "log.retention.ms").is_none());
    let topic = describe(&mut client, TOPIC, "kept");
    assert_ne!(shown(&topic, "retention.ms").0, "5000");
    std::fs::remove_dir(&blocker).unwrap();
    assert_eq!(alter(&mut client, BROKER, "", &set, false).0, 0);
    let topic = describe(&mut client, TOPIC, "kept");
    assert_eq!(shown(&topic, "retention.ms").0, "5000");
}

#[test]
fn retention_special_values_are_taken_and_refused_as_kafka_does() {
    // Kafka: a topic's retention.ms is at least -1 (CreateTopics and IncrementalAlterConfigs
    // refuse -2 with INVALID_CONFIG in ConfigException's words), its retention.bytes any long;
    // the broker's log.retention.ms takes any negative value as unlimited, and refuses 0
    // (INVALID_REQUEST, KafkaConfig's requirement).
    const INVALID_CONFIG: i16 = 40;
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(
        client.create_topic("bad", 1, &[("retention.ms", "-2")]),
        INVALID_CONFIG
    );
    assert_eq!(client.create_topic("t", 1, &[("retention.bytes", "-2")]), 0);
    let (error, message) = alter(
        &mut client,
        TOPIC,
        "t",
        &[("retention.ms", SET, Some("-2"))],
        false,
    );
    assert_eq!(error, INVALID_CONFIG);
    assert_eq!(
        message,
        "Invalid value -2 for configuration retention.ms: Value must be at least -1"
    );
    let unlimited = [("log.retention.ms", SET, Some("-2"))];
    assert_eq!(
        alter(&mut client, BROKER, "", &unlimited, false),
        (0, String::new())
    );
    let topic = describe(&mut client, TOPIC, "t");
    assert_eq!(shown(&topic, "retention.ms").0, "-1");
    assert_eq!(shown(&topic, "retention.bytes").0, "-2");
    assert_eq!(
        shown(&describe(&mut client, BROKER, ""), "log.retention.ms").0,
        "-2"
    );
    let (error, message) = alter(
        &mut client,
        BROKER,
        "0",
        &[("log.retention.ms", SET, Some("0"))],
        false,
    );
    assert_eq!(error, INVALID_REQUEST);
    assert_eq!(
        message,
        "requirement failed: log.retention.ms must be unlimited (-1) or, greater than or equal to 1"
    );
}
