//! Group configs (KIP-848 GROUP config resources, type 32) against the real binary, as Kafka 4.0
//! serves them: librdkafka 0081's IncrementalAlterConfigs of `consumer.session.timeout.ms`,
//! DescribeConfigs' values, sources and types, ListConfigResources, a restart, DELETE back to the
//! broker's value, Kafka's refusals (empty name, unknown names, the broker's bounds, APPEND,
//! duplicates, nulls), validate_only, the legacy AlterConfigs, the bounds flags, and the
//! heartbeat interval a ConsumerGroupHeartbeat is answered.
#![forbid(unsafe_code)]

mod common;

use common::client::{str_bytes, topic_name, Client};
use common::configs::{incremental_alter, legacy_alter};
use common::{restart, start_broker};
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::*;

const GROUP: i8 = 32;
const BROKER: i8 = 4;
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;
const SOURCE_DEFAULT: i8 = 5;
const SOURCE_GROUP: i8 = 8;
const TYPE_INT: i8 = 3;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;
const SESSION: &str = "consumer.session.timeout.ms";
/// One IncrementalAlterConfigs operation: (name, operation, value).
type Change<'a> = (&'a str, i8, Option<&'a str>);
const INTERVAL: &str = "consumer.heartbeat.interval.ms";

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

/// (value, source, type, synonyms' sources) of `key` as described.
fn shown(result: &DescribeConfigsResult, key: &str) -> (String, i8, i8, Vec<i8>) {
    let config = result
        .configs
        .iter()
        .find(|config| config.name.as_str() == key)
        .unwrap_or_else(|| panic!("{key} not described"));
    assert!(!config.read_only && !config.is_sensitive, "{key}");
    (
        config
            .value
            .as_ref()
            .map(|v| v.to_string())
            .unwrap_or_default(),
        config.config_source,
        config.config_type,
        config
            .synonyms
            .iter()
            .map(|synonym| synonym.source)
            .collect(),
    )
}

/// IncrementalAlterConfigs of one GROUP resource: (error code, message).
fn alter(
    client: &mut Client,
    group: &str,
    changes: &[Change],
    validate_only: bool,
) -> (i16, String) {
    let result = incremental_alter(client, GROUP, group, changes, validate_only);
    assert_eq!(result.resource_type, GROUP);
    let message = result.error_message.as_ref().map(|m| m.to_string());
    (result.error_code, message.unwrap_or_default())
}

/// The GROUP resources ListConfigResources v1 lists when asked for `types`.
fn listed_groups(client: &mut Client, types: Vec<i8>) -> Vec<String> {
    let response: ListConfigResourcesResponse = client.call(
        ApiKey::ListConfigResources,
        1,
        &ListConfigResourcesRequest::default().with_resource_types(types),
    );
    assert_eq!(response.error_code, 0);
    response
        .config_resources
        .iter()
        .filter(|resource| resource.resource_type == GROUP)
        .map(|resource| resource.resource_name.to_string())
        .collect()
}

#[test]
fn librdkafka_0081_sets_a_group_config_which_is_described_listed_and_survives_a_restart() {
    // librdkafka's 0081 (TEST_KAFKA_VERSION=4.0.0) sets consumer.session.timeout.ms=50000 on a
    // GROUP resource and expects NO_ERROR, as Kafka 4.0 answers (the group need not exist).
    let mut broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(
        alter(
            &mut client,
            "g-0081",
            &[(SESSION, SET, Some("50000"))],
            false
        ),
        (0, String::new())
    );
    let described = describe(&mut client, GROUP, "g-0081");
    assert_eq!(described.error_code, 0);
    assert_eq!(
        shown(&described, SESSION),
        ("50000".into(), SOURCE_GROUP, TYPE_INT, vec![SOURCE_GROUP])
    );
    // Not set on the group: the broker's value, as DEFAULT_CONFIG (Kafka's GroupConfig defaults).
    assert_eq!(
        shown(&described, INTERVAL),
        (
            "5000".into(),
            SOURCE_DEFAULT,
            TYPE_INT,
            vec![SOURCE_DEFAULT]
        )
    );
    assert_eq!(described.configs.len(), 2);
    // Any group may be described: one without configs shows the broker's values.
    let other = describe(&mut client, GROUP, "no-configs");
    assert_eq!(other.error_code, 0);
    assert_eq!(shown(&other, SESSION).0, "45000");
    assert_eq!(listed_groups(&mut client, vec![GROUP]), ["g-0081"]);
    assert_eq!(listed_groups(&mut client, vec![]), ["g-0081"]);
    assert!(listed_groups(&mut client, vec![BROKER]).is_empty());

    drop(client);
    restart(&mut broker);
    let mut client = Client::connect(&broker);
    let described = describe(&mut client, GROUP, "g-0081");
    assert_eq!(shown(&described, SESSION).0, "50000");
    assert_eq!(shown(&described, SESSION).1, SOURCE_GROUP);
    // DELETE returns the group to the broker's value, and it is no longer listed.
    assert_eq!(
        alter(&mut client, "g-0081", &[(SESSION, DELETE, None)], false).0,
        0
    );
    let described = describe(&mut client, GROUP, "g-0081");
    assert_eq!(
        shown(&described, SESSION),
        (
            "45000".into(),
            SOURCE_DEFAULT,
            TYPE_INT,
            vec![SOURCE_DEFAULT]
        )
    );
    assert!(listed_groups(&mut client, vec![GROUP]).is_empty());
}

#[test]
fn kafkas_refusals_of_group_configs_and_validate_only() {
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    let cases: [(&str, Vec<Change>, i16, &str); 8] = [
        (
            "",
            vec![(SESSION, SET, Some("50000"))],
            INVALID_REQUEST,
            "Default group resources are not allowed.",
        ),
        (
            "g",
            vec![("share.session.timeout.ms", SET, Some("50000"))],
            INVALID_CONFIG,
            "Unknown group config name: share.session.timeout.ms",
        ),
        (
            "g",
            vec![(SESSION, SET, Some("44999"))],
            INVALID_CONFIG,
            "consumer.session.timeout.ms must be greater than or equal to group.consumer.min.session.timeout.ms",
        ),
        (
            "g",
            vec![(SESSION, SET, Some("60001"))],
            INVALID_CONFIG,
            "consumer.session.timeout.ms must be less than or equal to group.consumer.max.session.timeout.ms",
        ),
        (
            "g",
            vec![(INTERVAL, SET, Some("15001"))],
            INVALID_CONFIG,
            "consumer.heartbeat.interval.ms must be less than or equal to group.consumer.max.heartbeat.interval.ms",
        ),
        (
            "g",
            vec![(SESSION, SET, Some("soon"))],
            INVALID_CONFIG,
            "Invalid value soon for configuration consumer.session.timeout.ms: Not a number of type INT",
        ),
        (
            "g",
            vec![(SESSION, APPEND, Some("1"))],
            INVALID_CONFIG,
            "Can't APPEND to key consumer.session.timeout.ms because its type is not LIST.",
        ),
        (
            "g",
            vec![(SESSION, SET, Some("50000")), (SESSION, DELETE, None)],
            INVALID_REQUEST,
            "Error due to duplicate config keys",
        ),
    ];
    for (group, changes, error, message) in cases {
        assert_eq!(
            alter(&mut client, group, &changes, false),
            (error, message.to_string()),
            "{group:?} {changes:?}"
        );
    }
    assert_eq!(
        alter(&mut client, "g", &[(INTERVAL, SUBTRACT, Some("1"))], false).0,
        INVALID_CONFIG
    );
    // validate_only checks and keeps nothing.
    assert_eq!(
        alter(&mut client, "g", &[(SESSION, SET, Some("50000"))], true).0,
        0
    );
    assert_eq!(
        shown(&describe(&mut client, GROUP, "g"), SESSION).0,
        "45000"
    );
    assert!(listed_groups(&mut client, vec![GROUP]).is_empty());
    // Kafka's ConfigHelper refuses to describe the empty group name.
    assert_eq!(describe(&mut client, GROUP, "").error_code, INVALID_REQUEST);

    // The legacy AlterConfigs replaces the group's whole set.
    assert_eq!(
        alter(
            &mut client,
            "legacy",
            &[(SESSION, SET, Some("50000")), (INTERVAL, SET, Some("6000"))],
            false
        )
        .0,
        0
    );
    assert_eq!(
        legacy_alter(&mut client, GROUP, "legacy", &[(INTERVAL, "7000")]),
        0
    );
    let described = describe(&mut client, GROUP, "legacy");
    assert_eq!(shown(&described, SESSION).1, SOURCE_DEFAULT);
    assert_eq!(shown(&described, INTERVAL).0, "7000");
    assert_eq!(
        legacy_alter(&mut client, GROUP, "legacy", &[(SESSION, "1")]),
        INVALID_CONFIG
    );
}

#[test]
fn the_bounds_flags_are_described_and_bound_the_group_configs() {
    let broker = start_broker(&[
        "--group-consumer-session-timeout-ms",
        "6000",
        "--group-consumer-min-session-timeout-ms",
        "6000",
        "--group-consumer-heartbeat-interval-ms",
        "1000",
        "--group-consumer-min-heartbeat-interval-ms",
        "1000",
    ]);
    let mut client = Client::connect(&broker);
    let node = describe(&mut client, BROKER, "0");
    let value = |key: &str| {
        let config = node
            .configs
            .iter()
            .find(|config| config.name.as_str() == key)
            .unwrap_or_else(|| panic!("{key} not described"));
        (config.value.as_ref().unwrap().to_string(), config.read_only)
    };
    assert_eq!(
        value("group.consumer.min.session.timeout.ms"),
        ("6000".into(), true)
    );
    assert_eq!(
        value("group.consumer.max.session.timeout.ms"),
        ("60000".into(), true)
    );
    assert_eq!(
        value("group.consumer.min.heartbeat.interval.ms"),
        ("1000".into(), true)
    );
    assert_eq!(
        value("group.consumer.max.heartbeat.interval.ms"),
        ("15000".into(), true)
    );
    // 10 s is under Kafka's default minimum (45 s) but within this broker's.
    assert_eq!(
        alter(
            &mut client,
            "short",
            &[(SESSION, SET, Some("10000")), (INTERVAL, SET, Some("2000"))],
            false
        )
        .0,
        0
    );
    // The session must outlast the interval (the broker's 6 s session when the group sets none).
    assert_eq!(
        alter(&mut client, "g", &[(INTERVAL, SET, Some("7000"))], false),
        (
            INVALID_CONFIG,
            "consumer.session.timeout.ms must be greater than consumer.heartbeat.interval.ms"
                .to_string()
        )
    );

    // A member of "short" is told the group's interval; one of another group the broker's.
    assert_eq!(client.create_topic("t", 1, &[]), 0);
    let join = |client: &mut Client, group: &str| -> i32 {
        let beat = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_member_id(str_bytes(&format!("{group}-member-00000001")))
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![topic_name("t")]))
            .with_topic_partitions(Some(Vec::new()));
        let answer: ConsumerGroupHeartbeatResponse =
            client.call(ApiKey::ConsumerGroupHeartbeat, 0, &beat);
        assert_eq!(answer.error_code, 0, "{group}");
        answer.heartbeat_interval_ms
    };
    assert_eq!(join(&mut client, "short"), 2_000);
    assert_eq!(join(&mut client, "plain"), 1_000);
}
