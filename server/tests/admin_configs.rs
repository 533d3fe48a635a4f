//! Configs against the real binary: every Kafka topic config accepted with its type, APPEND and
//! SUBTRACT, the legacy AlterConfigs, the BROKER resource, and the configs that change what is
//! stored (LogAppendTime, timestamp bounds, compression.type).

mod common;

use common::client::{now_ms, str_bytes, Client};
use common::configs::{incremental_alter, legacy_alter};
use common::start_broker;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::messages::*;
use ringtail_engine::batch::{
    encode_batch, encode_uniform_batch, validate_all, Compression, ProducerSpec, RecordSpec,
    Strictness,
};
use ringtail_engine::cleaner::decode_batch;

const TYPE_BOOLEAN: i8 = 1;
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_DOUBLE: i8 = 6;
const TYPE_LIST: i8 = 7;
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;
const INVALID_TIMESTAMP: i16 = 32;

fn describe(
    client: &mut Client,
    resource_type: i8,
    resource: &str,
) -> describe_configs_response::DescribeConfigsResult {
    let request = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_include_documentation(true)
        .with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(str_bytes(resource)),
        ]);
    let response: DescribeConfigsResponse = client.call(ApiKey::DescribeConfigs, 4, &request);
    response.results[0].clone()
}

fn config<'a>(
    result: &'a describe_configs_response::DescribeConfigsResult,
    key: &str,
) -> &'a DescribeConfigsResourceResult {
    result
        .configs
        .iter()
        .find(|config| config.name.as_str() == key)
        .unwrap_or_else(|| panic!("{key} not described"))
}

fn value(result: &describe_configs_response::DescribeConfigsResult, key: &str) -> String {
    config(result, key).value.as_ref().unwrap().to_string()
}

fn alter(client: &mut Client, topic: &str, changes: &[(&str, i8, Option<&str>)]) -> i16 {
    incremental_alter(client, 2, topic, changes, false).error_code
}

#[test]
fn every_kafka_topic_config_is_accepted_typed_and_described() {
    // librdkafka 0077/0081 create topics with configs Ringtail does not act on: they must be
    // accepted, stored and described with Kafka's types, and bad values refused.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    let accepted = [
        ("file.delete.delay.ms", "1000"),
        ("min.compaction.lag.ms", "10"),
        ("segment.jitter.ms", "5"),
        ("min.insync.replicas", "1"),
        ("compression.type", "producer"),
        ("min.cleanable.dirty.ratio", "0.25"),
        ("unclean.leader.election.enable", "false"),
    ];
    assert_eq!(client.create_topic("typed", 1, &accepted), 0);
    let described = describe(&mut client, 2, "typed");
    assert_eq!(described.error_code, 0);
    for (key, expected) in accepted {
        assert_eq!(value(&described, key), expected, "{key}");
        assert_eq!(config(&described, key).config_source, SOURCE_TOPIC, "{key}");
    }
    for (key, kind) in [
        ("retention.bytes", TYPE_LONG),
        ("retention.ms", TYPE_LONG),
        ("segment.bytes", TYPE_INT),
        ("cleanup.policy", TYPE_LIST),
        ("preallocate", TYPE_BOOLEAN),
        ("min.cleanable.dirty.ratio", TYPE_DOUBLE),
        ("compression.type", TYPE_STRING),
    ] {
        assert_eq!(config(&described, key).config_type, kind, "{key}");
    }
    let retention = config(&described, "retention.ms");
    assert_eq!(retention.config_source, SOURCE_DEFAULT);
    assert_eq!(retention.synonyms.len(), 1);
    assert_eq!(retention.synonyms[0].name.as_str(), "log.retention.ms");
    let ratio = config(&described, "min.cleanable.dirty.ratio");
    assert_eq!(ratio.synonyms[0].source, SOURCE_TOPIC);
    assert_eq!(
        ratio.synonyms[1].name.as_str(),
        "log.cleaner.min.cleanable.ratio"
    );
    assert!(ratio
        .documentation
        .as_ref()
        .is_some_and(|doc| !doc.is_empty()));
    // Refused: a bad value, an unknown name.
    for bad in [
        ("compression.type", "brotli"),
        ("file.delete.delay.ms", "-5"),
        ("no.such.config", "1"),
        ("message.timestamp.type", "Whenever"),
    ] {
        assert_eq!(
            client.create_topic("refused", 1, &[bad]),
            INVALID_CONFIG,
            "{bad:?}"
        );
    }
}

#[test]
fn append_and_subtract_change_list_configs_only() {
    // librdkafka 0011: APPEND compact to cleanup.policy, SUBTRACT it again; not on a LONG.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("lists", 1, &[]), 0);
    assert_eq!(
        alter(
            &mut client,
            "lists",
            &[("cleanup.policy", 2, Some("compact"))]
        ),
        0
    );
    assert_eq!(
        value(&describe(&mut client, 2, "lists"), "cleanup.policy"),
        "delete,compact"
    );
    assert_eq!(
        alter(
            &mut client,
            "lists",
            &[("cleanup.policy", 3, Some("delete"))]
        ),
        0
    );
    assert_eq!(
        value(&describe(&mut client, 2, "lists"), "cleanup.policy"),
        "compact"
    );
    assert_eq!(
        alter(
            &mut client,
            "lists",
            &[("cleanup.policy", 2, Some("compact"))]
        ),
        0,
        "appending an item already there changes nothing"
    );
    assert_eq!(
        value(&describe(&mut client, 2, "lists"), "cleanup.policy"),
        "compact"
    );
    assert_eq!(
        alter(&mut client, "lists", &[("retention.ms", 2, Some("5"))]),
        INVALID_CONFIG
    );
    assert_eq!(
        alter(&mut client, "lists", &[("cleanup.policy", 2, None)]),
        INVALID_REQUEST
    );
    assert_eq!(
        alter(
            &mut client,
            "lists",
            &[("cleanup.policy", 3, Some("compact"))]
        ),
        INVALID_CONFIG,
        "an empty cleanup.policy is refused"
    );
}

#[test]
fn legacy_alter_configs_replaces_every_override() {
    // AlterConfigs (API 33) is not incremental: configs it leaves out return to their defaults.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(
        client.create_topic("legacy", 1, &[("retention.ms", "1000")]),
        0
    );
    assert_eq!(
        legacy_alter(&mut client, 2, "legacy", &[("segment.ms", "60000")]),
        0
    );
    let described = describe(&mut client, 2, "legacy");
    assert_eq!(value(&described, "segment.ms"), "60000");
    assert_eq!(config(&described, "segment.ms").config_source, SOURCE_TOPIC);
    assert_eq!(value(&described, "retention.ms"), "604800000");
    assert_eq!(
        config(&described, "retention.ms").config_source,
        SOURCE_DEFAULT
    );
    assert_eq!(
        legacy_alter(&mut client, 2, "legacy", &[("segment.ms", "0")]),
        INVALID_CONFIG
    );
    assert_eq!(legacy_alter(&mut client, 2, "missing", &[]), 3);
    assert_eq!(
        legacy_alter(&mut client, 4, "0", &[("num.partitions", "3")]),
        INVALID_REQUEST
    );
    assert_eq!(
        value(&describe(&mut client, 2, "legacy"), "segment.ms"),
        "60000"
    );
}

#[test]
fn the_broker_resource_shows_its_settings_under_kafka_names() {
    // kafka-configs --describe --entity-type brokers, kafka-python's describe_configs(BROKER).
    let broker = start_broker(&["--retention-ms", "123456", "--default-partitions", "3"]);
    let mut client = Client::connect(&broker);
    let described = describe(&mut client, 4, "0");
    assert_eq!(described.error_code, 0);
    let retention = config(&described, "log.retention.ms");
    assert_eq!(
        retention.value.as_ref().map(|v| v.to_string()).as_deref(),
        Some("123456")
    );
    assert_eq!(retention.config_source, SOURCE_STATIC_BROKER);
    // Dynamic in Kafka (tests/broker_configs.rs alters it), so not read-only.
    assert!(!retention.read_only);
    assert!(config(&described, "num.partitions").read_only);
    assert_eq!(retention.config_type, TYPE_LONG);
    assert_eq!(value(&described, "num.partitions"), "3");
    assert_eq!(
        config(&described, "log.segment.bytes").config_source,
        SOURCE_DEFAULT
    );
    assert_eq!(
        config(&described, "log.segment.bytes").config_type,
        TYPE_INT
    );
    assert_eq!(
        value(&described, "advertised.listeners"),
        format!("PLAINTEXT://127.0.0.1:{}", broker.port)
    );
    assert_eq!(
        value(&described, "log.dirs"),
        broker.dir.path().display().to_string()
    );
    assert_eq!(value(&described, "auto.create.topics.enable"), "true");
    // A topic's retention.ms now falls back to a static broker config.
    assert_eq!(client.create_topic("inherits", 1, &[]), 0);
    let topic = describe(&mut client, 2, "inherits");
    assert_eq!(value(&topic, "retention.ms"), "123456");
    assert_eq!(
        config(&topic, "retention.ms").config_source,
        SOURCE_STATIC_BROKER
    );
    assert_eq!(describe(&mut client, 4, "7").error_code, INVALID_REQUEST);
    assert!(describe(&mut client, 4, "").configs.is_empty());
}

#[test]
fn log_append_time_topics_stamp_each_batch_with_the_append_time() {
    // librdkafka 0052: the broker sets the batch's timestamp type and max timestamp, CRC intact.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(
        client.create_topic("stamped", 1, &[("message.timestamp.type", "LogAppendTime")]),
        0
    );
    let before_ms = now_ms();
    let produced = client.produce("stamped", 0, encode_uniform_batch(1_000, 3, 10));
    let after_ms = now_ms();
    assert_eq!(produced.error_code, 0);
    assert!((before_ms..=after_ms).contains(&produced.log_append_time_ms));
    let records = client.fetch_records("stamped", 0, 0);
    let headers = validate_all(&records, 1 << 20, Strictness::Stored).expect("CRC recomputed");
    assert_eq!(headers.len(), 1);
    assert!(headers[0].is_log_append_time());
    assert_eq!(headers[0].max_timestamp, produced.log_append_time_ms);
    assert_eq!(
        headers[0].base_timestamp, 1_000,
        "the producer's base is kept"
    );
}

#[test]
fn timestamps_outside_the_topic_window_are_invalid() {
    // message.timestamp.after.max.ms (Kafka 4 default: 1 hour) and before.max.ms.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(
        client.create_topic("window", 1, &[("message.timestamp.before.max.ms", "60000")]),
        0
    );
    let future = now_ms() + 2 * 3_600_000;
    assert_eq!(
        client
            .produce("window", 0, encode_uniform_batch(future, 1, 10))
            .error_code,
        INVALID_TIMESTAMP
    );
    assert_eq!(
        client
            .produce("window", 0, encode_uniform_batch(1_000, 1, 10))
            .error_code,
        INVALID_TIMESTAMP
    );
    let accepted = client.produce("window", 0, encode_uniform_batch(now_ms(), 1, 10));
    assert_eq!(accepted.error_code, 0);
    assert_eq!(accepted.base_offset, 0, "refused batches took no offsets");
    assert_eq!(accepted.log_append_time_ms, -1, "CreateTime");
}

#[test]
fn compression_type_recompresses_batches_to_the_topic_codec() {
    // compression.type=zstd stores zstd whatever the producer sent; the records are unchanged.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(
        client.create_topic("zstd", 1, &[("compression.type", "zstd")]),
        0
    );
    let plain = encode_uniform_batch(now_ms(), 20, 100);
    assert_eq!(client.produce("zstd", 0, plain.clone()).error_code, 0);
    let records = client.fetch_records("zstd", 0, 0);
    let headers = validate_all(&records, 1 << 20, Strictness::Stored).unwrap();
    assert_eq!(headers[0].compression().unwrap(), Compression::Zstd);
    assert!(records.len() < plain.len());
    let stored = decode_batch(&records).unwrap();
    assert_eq!(
        stored.records_area,
        decode_batch(&plain).unwrap().records_area
    );
    // Switching back to producer keeps the next batch as sent.
    assert_eq!(
        alter(
            &mut client,
            "zstd",
            &[("compression.type", 0, Some("producer"))]
        ),
        0
    );
    assert_eq!(client.produce("zstd", 0, plain.clone()).error_code, 0);
    let records = client.fetch_records("zstd", 0, 20);
    assert_eq!(
        validate_all(&records, 1 << 20, Strictness::Stored).unwrap()[0]
            .compression()
            .unwrap(),
        Compression::None
    );
}

#[test]
#[cfg_attr(not(debug_assertions), ignore = "needs the debug build's test hooks")]
fn an_overtaken_config_alteration_does_not_put_its_older_config_on_the_log() {
    // Two IncrementalAlterConfigs of one topic: the first is saved, then held (a test hook of
    // debug builds) before it reaches the partition logs; the second is saved and applied. When
    // the first goes on, the log must keep the newest config, the one the registry holds and
    // DescribeConfigs shows, not the first's (until a restart re-read it).
    let dir = tempfile::tempdir().unwrap();
    let release = dir.path().join("release");
    let release_text = release.to_str().unwrap().to_string();
    let broker = common::start_broker_with_env(
        &[],
        &[("RINGTAIL_TEST_HOLD_FIRST_CONFIG_APPLY", &release_text)],
    );
    let mut admin = Client::connect(&broker);
    assert_eq!(admin.create_topic("overtaken", 1, &[]), 0);
    // The partition's log is open (a config change reaches open logs).
    let opened = admin.produce("overtaken", 0, encode_uniform_batch(now_ms(), 1, 10));
    assert_eq!(opened.error_code, 0);
    let change = |value: &str| {
        IncrementalAlterConfigsRequest::default().with_resources(vec![
            incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(str_bytes("overtaken"))
                .with_configs(vec![
                    incremental_alter_configs_request::AlterableConfig::default()
                        .with_name(str_bytes("max.message.bytes"))
                        .with_config_operation(0)
                        .with_value(Some(str_bytes(value))),
                ]),
        ])
    };
    let mut first = Client::connect(&broker);
    first
        .send(ApiKey::IncrementalAlterConfigs, 1, &change("1000"))
        .unwrap();
    // The first alteration is saved (and held) once DescribeConfigs shows it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while value(&describe(&mut admin, 2, "overtaken"), "max.message.bytes") != "1000" {
        assert!(
            std::time::Instant::now() < deadline,
            "the first alteration was not saved"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(
        alter(
            &mut admin,
            "overtaken",
            &[("max.message.bytes", 0, Some("100000"))]
        ),
        0
    );
    std::fs::write(&release, b"").unwrap();
    let answer: IncrementalAlterConfigsResponse =
        first.receive(ApiKey::IncrementalAlterConfigs, 1).unwrap();
    assert_eq!(answer.responses[0].error_code, 0);
    assert_eq!(
        value(&describe(&mut admin, 2, "overtaken"), "max.message.bytes"),
        "100000"
    );
    // A 5 KB batch: within the newest limit, over the overtaken one.
    let produced = admin.produce("overtaken", 0, encode_uniform_batch(now_ms(), 1, 5_000));
    assert_eq!(produced.error_code, 0, "the log holds the newest config");
}

#[test]
fn keyless_records_in_a_compacted_topic_are_named_in_record_errors() {
    // librdkafka 0011 (test_message_single_partition_record_fail): one batch of 100 records into
    // a compacted topic, every tenth without a key. Kafka (KIP-467) refuses the batch with
    // INVALID_RECORD and lists each keyless record's index in record_errors, so the client fails
    // those with INVALID_RECORD and the others with _INVALID_DIFFERENT_RECORD (retriable alone).
    const INVALID_RECORD: i16 = 87;
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(
        client.create_topic("compacted", 1, &[("cleanup.policy", "compact")]),
        0
    );
    let keys: Vec<String> = (0..100).map(|i| format!("key-{i}")).collect();
    let records: Vec<RecordSpec> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| RecordSpec {
            key: (i % 10 != 0).then_some(key.as_bytes()),
            value: Some(b"v"),
            timestamp_delta: 0,
        })
        .collect();
    let answer = client.produce(
        "compacted",
        0,
        encode_batch(now_ms(), &records, ProducerSpec::default()),
    );
    assert_eq!(answer.error_code, INVALID_RECORD);
    let indexes: Vec<i32> = answer
        .record_errors
        .iter()
        .map(|error| error.batch_index)
        .collect();
    assert_eq!(indexes, (0..100).step_by(10).collect::<Vec<i32>>());
    assert!(answer
        .record_errors
        .iter()
        .all(|error| error.batch_index_error_message.is_some()));
    assert!(answer.error_message.is_some());
    let keyed = encode_batch(now_ms(), &records[1..10], ProducerSpec::default());
    let answer = client.produce("compacted", 0, keyed);
    assert_eq!(answer.error_code, 0, "the keyed records alone are accepted");
    assert_eq!(
        answer.base_offset, 0,
        "nothing of the refused batch was written"
    );
}
