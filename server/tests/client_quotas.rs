//! Client quotas against the real binary: AlterClientQuotas and DescribeClientQuotas as Kafka
//! answers them (match types, strict, validation, validate_only, persistence across a restart),
//! and byte-rate enforcement (throttle_time_ms, the muted connection, the empty throttled fetch).

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::client::{now_ms, str_bytes as name, topic_name, Client};
use common::{restart, start_broker};
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use ringtail_engine::batch::{encode_batch, ProducerSpec, RecordSpec};

const INVALID_REQUEST: i16 = 42;
const UNSUPPORTED_VERSION: i16 = 35;
const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_ANY: i8 = 2;

/// An entity as (type, name), `None` being `<default>`.
type Entity<'a> = &'a [(&'a str, Option<&'a str>)];

fn entry(entity: Entity, ops: &[(&str, f64, bool)]) -> EntryData {
    EntryData::default()
        .with_entity(
            entity
                .iter()
                .map(|(kind, entity_name)| {
                    EntityData::default()
                        .with_entity_type(name(kind))
                        .with_entity_name(entity_name.map(name))
                })
                .collect(),
        )
        .with_ops(
            ops.iter()
                .map(|(key, value, remove)| {
                    OpData::default()
                        .with_key(name(key))
                        .with_value(*value)
                        .with_remove(*remove)
                })
                .collect(),
        )
}

/// AlterClientQuotas v1 (flexible); each entry's error code.
fn alter(client: &mut Client, entries: Vec<EntryData>, validate_only: bool) -> Vec<i16> {
    let request = AlterClientQuotasRequest::default()
        .with_entries(entries)
        .with_validate_only(validate_only);
    let response: AlterClientQuotasResponse = client.call(ApiKey::AlterClientQuotas, 1, &request);
    response
        .entries
        .iter()
        .map(|entry| entry.error_code)
        .collect()
}

/// One described entity: its "type=name" parts, sorted, and its (key, value) pairs.
type Described = (Vec<String>, Vec<(String, f64)>);

/// DescribeClientQuotas v1: the error code and the entities with their (key, value) pairs,
/// each entity as sorted "type=name" strings.
fn describe(
    client: &mut Client,
    components: &[(&str, i8, Option<&str>)],
    strict: bool,
) -> (i16, Vec<Described>) {
    let request = DescribeClientQuotasRequest::default()
        .with_strict(strict)
        .with_components(
            components
                .iter()
                .map(|(kind, match_type, matched)| {
                    ComponentData::default()
                        .with_entity_type(name(kind))
                        .with_match_type(*match_type)
                        .with_match(matched.map(name))
                })
                .collect(),
        );
    let response: DescribeClientQuotasResponse =
        client.call(ApiKey::DescribeClientQuotas, 1, &request);
    let mut entries: Vec<_> = response
        .entries
        .unwrap_or_default()
        .into_iter()
        .map(|entry| {
            let mut entity: Vec<String> = entry
                .entity
                .iter()
                .map(|e| {
                    let entity_name = e.entity_name.as_deref().unwrap_or("<default>");
                    format!("{}={entity_name}", e.entity_type.as_str())
                })
                .collect();
            entity.sort();
            let values = entry
                .values
                .iter()
                .map(|v| (v.key.to_string(), v.value))
                .collect();
            (entity, values)
        })
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    (response.error_code, entries)
}

fn entities(found: &[Described]) -> Vec<String> {
    found.iter().map(|(entity, _)| entity.join(",")).collect()
}

fn store_examples(client: &mut Client) {
    let codes = alter(
        client,
        vec![
            entry(
                &[("user", Some("alice"))],
                &[("producer_byte_rate", 1024.0, false)],
            ),
            entry(&[("user", None)], &[("consumer_byte_rate", 2048.0, false)]),
            entry(
                &[("user", Some("alice")), ("client-id", None)],
                &[("request_percentage", 12.5, false)],
            ),
            entry(
                &[("client-id", Some("c1"))],
                &[("controller_mutation_rate", 3.0, false)],
            ),
            entry(
                &[("ip", None)],
                &[("connection_creation_rate", 10.0, false)],
            ),
        ],
        false,
    );
    assert_eq!(codes, vec![0; 5]);
}

#[test]
fn describe_matches_exact_default_and_any_as_kafka_does() {
    // Kafka's filter semantics (ClientQuotasImage.matches) over the entity kinds an operator uses.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    store_examples(&mut client);
    let (code, all) = describe(&mut client, &[], false);
    assert_eq!(code, 0);
    assert_eq!(all.len(), 5);
    let (_, alice) = describe(&mut client, &[("user", MATCH_EXACT, Some("alice"))], false);
    assert_eq!(
        entities(&alice),
        ["client-id=<default>,user=alice", "user=alice"]
    );
    let (_, alice_only) = describe(&mut client, &[("user", MATCH_EXACT, Some("alice"))], true);
    assert_eq!(entities(&alice_only), ["user=alice"]);
    assert_eq!(
        alice_only[0].1,
        vec![("producer_byte_rate".to_string(), 1024.0)]
    );
    let (_, default_user) = describe(&mut client, &[("user", MATCH_DEFAULT, None)], true);
    assert_eq!(entities(&default_user), ["user=<default>"]);
    let (_, any_user) = describe(&mut client, &[("user", MATCH_ANY, None)], true);
    assert_eq!(entities(&any_user), ["user=<default>", "user=alice"]);
    let (_, pair) = describe(
        &mut client,
        &[
            ("user", MATCH_EXACT, Some("alice")),
            ("client-id", MATCH_DEFAULT, None),
        ],
        true,
    );
    assert_eq!(pair[0].1, vec![("request_percentage".to_string(), 12.5)]);
    let (_, ip) = describe(&mut client, &[("ip", MATCH_ANY, None)], false);
    assert_eq!(entities(&ip), ["ip=<default>"]);
    let (_, nobody) = describe(
        &mut client,
        &[("client-id", MATCH_EXACT, Some("zz"))],
        false,
    );
    assert!(nobody.is_empty());
}

#[test]
fn bad_entries_fail_alone_and_bad_filters_are_refused() {
    // Kafka's controller checks: unknown keys, bad values, bad entities, each per entry.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    let codes = alter(
        &mut client,
        vec![
            entry(&[("user", Some("a"))], &[("bogus_rate", 1.0, false)]),
            entry(
                &[("user", Some("a"))],
                &[("producer_byte_rate", 10.5, false)],
            ),
            entry(
                &[("user", Some("a"))],
                &[("producer_byte_rate", -1.0, false)],
            ),
            entry(
                &[("user", Some("a"))],
                &[("connection_creation_rate", 1.0, false)],
            ),
            entry(
                &[("ip", Some("1.2.3.4")), ("user", None)],
                &[("producer_byte_rate", 1.0, false)],
            ),
            entry(
                &[("group", Some("g"))],
                &[("producer_byte_rate", 1.0, false)],
            ),
            entry(&[("user", Some(""))], &[("producer_byte_rate", 1.0, false)]),
            entry(&[], &[("producer_byte_rate", 1.0, false)]),
            entry(
                &[("user", Some("ok"))],
                &[("producer_byte_rate", 4096.0, false)],
            ),
        ],
        false,
    );
    assert_eq!(codes[..8], [INVALID_REQUEST; 8]);
    assert_eq!(codes[8], 0);
    let (_, stored) = describe(&mut client, &[], false);
    assert_eq!(
        entities(&stored),
        ["user=ok"],
        "only the valid entry was applied"
    );
    let (code, _) = describe(&mut client, &[("user", MATCH_EXACT, None)], false);
    assert_eq!(code, INVALID_REQUEST);
    let (code, _) = describe(&mut client, &[("user", MATCH_DEFAULT, Some("x"))], false);
    assert_eq!(code, INVALID_REQUEST);
    let (code, _) = describe(
        &mut client,
        &[("user", MATCH_ANY, None), ("user", MATCH_ANY, None)],
        false,
    );
    assert_eq!(code, INVALID_REQUEST);
    let (code, _) = describe(
        &mut client,
        &[("ip", MATCH_ANY, None), ("user", MATCH_ANY, None)],
        false,
    );
    assert_eq!(code, INVALID_REQUEST);
    let (code, _) = describe(&mut client, &[("group", MATCH_ANY, None)], false);
    assert_eq!(code, UNSUPPORTED_VERSION);
}

#[test]
fn validate_only_changes_nothing_and_remove_drops_keys_and_entities() {
    // validate_only answers as a real change would, but stores nothing; removing the last key
    // removes the entity, as Kafka does.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    let bob: Entity = &[("user", Some("bob"))];
    let codes = alter(
        &mut client,
        vec![entry(bob, &[("producer_byte_rate", 100.0, false)])],
        true,
    );
    assert_eq!(codes, [0]);
    let codes = alter(
        &mut client,
        vec![entry(bob, &[("bogus", 100.0, false)])],
        true,
    );
    assert_eq!(codes, [INVALID_REQUEST]);
    assert!(describe(&mut client, &[], false).1.is_empty());
    let ops = [
        ("producer_byte_rate", 100.0, false),
        ("consumer_byte_rate", 200.0, false),
    ];
    assert_eq!(alter(&mut client, vec![entry(bob, &ops)], false), [0]);
    let removal = [("producer_byte_rate", 0.0, true)];
    assert_eq!(alter(&mut client, vec![entry(bob, &removal)], false), [0]);
    let (_, left) = describe(&mut client, &[], false);
    assert_eq!(left[0].1, vec![("consumer_byte_rate".to_string(), 200.0)]);
    let removal = [("consumer_byte_rate", 0.0, true)];
    assert_eq!(alter(&mut client, vec![entry(bob, &removal)], false), [0]);
    assert!(describe(&mut client, &[], false).1.is_empty());
}

#[test]
fn quotas_survive_a_restart() {
    // Saved with temp-fsync-rename in the data dir, loaded at start.
    let mut broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    store_examples(&mut client);
    let (_, before) = describe(&mut client, &[], false);
    drop(client);
    assert!(broker.dir.path().join("client-quotas.json").exists());
    restart(&mut broker);
    let mut client = Client::connect(&broker);
    let (_, after) = describe(&mut client, &[], false);
    assert_eq!(after, before);
}

#[test]
fn an_infinite_quota_is_refused_and_cannot_stop_the_next_start() {
    // JSON has no infinity (serde_json writes null): a stored +inf made client-quotas.json
    // unreadable, and the broker refused to start on it. A value must be a finite number.
    let mut broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    let codes = alter(
        &mut client,
        vec![
            entry(
                &[("user", Some("inf"))],
                &[("request_percentage", f64::INFINITY, false)],
            ),
            entry(
                &[("user", Some("ok"))],
                &[("request_percentage", 50.0, false)],
            ),
        ],
        false,
    );
    drop(client);
    restart(&mut broker);
    let mut client = Client::connect(&broker);
    let (error, found) = describe(&mut client, &[], false);
    assert_eq!(error, 0);
    assert_eq!(codes, vec![INVALID_REQUEST, 0]);
    assert_eq!(entities(&found), vec!["user=ok"]);
}

#[test]
fn a_corrupt_quota_file_stops_the_start_with_a_clear_error() {
    // Bad input from disk never panics and is never enforced as nonsense.
    let mut broker = start_broker(&[]);
    let dir = broker.dir.path().to_path_buf();
    broker.child.kill().unwrap();
    broker.child.wait().unwrap();
    std::fs::write(dir.join("client-quotas.json"), "{ not json").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ringtail"))
        .args(["--listen", &format!("127.0.0.1:{}", common::free_port())])
        .arg("--data-dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("client-quotas.json"), "{stderr}");
}

/// Produce v9 of `bytes` of value to partition 0 of `topic`; the response.
fn produce(client: &mut Client, topic: &str, bytes: usize) -> ProduceResponse {
    let value = vec![7u8; bytes];
    let records = [RecordSpec {
        key: None,
        value: Some(&value),
        timestamp_delta: 0,
    }];
    let batch = encode_batch(now_ms(), &records, ProducerSpec::default());
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(batch)))])]);
    let response: ProduceResponse = client.call(ApiKey::Produce, 9, &request);
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    response
}

/// Fetch v12 of partition 0 of `topic` from offset 0; the whole response.
fn fetch(client: &mut Client, topic: &str) -> FetchResponse {
    let request = common::fetch_from_start(topic, 100, 16 << 20, 8 << 20);
    client.call(ApiKey::Fetch, 12, &request)
}

#[test]
fn a_producer_over_its_quota_is_throttled_and_muted_and_others_are_not() {
    // KIP-219: the over-quota answer carries throttle_time_ms and the connection then serves
    // nothing until it has passed; a client without a quota is answered with 0.
    let broker = start_broker(&[]);
    let mut admin = Client::connect(&broker);
    assert_eq!(admin.create_topic("q", 1, &[]), 0);
    let slow: Entity = &[("client-id", Some("slow"))];
    assert_eq!(
        alter(
            &mut admin,
            vec![entry(slow, &[("producer_byte_rate", 1024.0, false)])],
            false
        ),
        [0]
    );
    let mut free = Client::connect(&broker).with_client_id("free");
    assert_eq!(produce(&mut free, "q", 64 * 1024).throttle_time_ms, 0);
    let mut throttled = Client::connect(&broker).with_client_id("slow");
    let sent = Instant::now();
    // 64 KiB against 1 KiB/s over the 10 s minimum window: about 54 s owed, capped at the span.
    let throttle_ms = produce(&mut throttled, "q", 64 * 1024).throttle_time_ms;
    assert!(throttle_ms > 0, "over quota: {throttle_ms}");
    let _: ApiVersionsResponse =
        throttled.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    // The broker answered the produce after `sent` and muted the connection from then on: the
    // next answer can come no earlier, however fast or slow the machine is.
    assert!(sent.elapsed() >= Duration::from_millis(throttle_ms as u64));
    assert_eq!(produce(&mut free, "q", 16).throttle_time_ms, 0);
    let counted = common::scrape(
        &broker,
        "ringtail_quota_throttle_time_ms_total{quota=\"produce\",entity=\"client-id\"}",
    );
    assert!(counted >= throttle_ms as u64);
}

#[test]
fn a_fetch_over_its_quota_is_answered_empty_with_a_throttle_time() {
    // Kafka's throttled fetch: no topics, throttle_time_ms set; a user quota applies to the
    // ANONYMOUS principal of a plaintext listener.
    let broker = start_broker(&[]);
    let mut admin = Client::connect(&broker);
    assert_eq!(admin.create_topic("f", 1, &[]), 0);
    let anonymous: Entity = &[("user", Some("ANONYMOUS")), ("client-id", Some("reader"))];
    assert_eq!(
        alter(
            &mut admin,
            vec![entry(anonymous, &[("consumer_byte_rate", 1024.0, false)])],
            false
        ),
        [0]
    );
    let mut writer = Client::connect(&broker).with_client_id("writer");
    produce(&mut writer, "f", 64 * 1024);
    let full = fetch(&mut writer, "f");
    assert_eq!(full.throttle_time_ms, 0);
    assert!(full.responses[0].partitions[0]
        .records
        .as_ref()
        .is_some_and(|r| r.len() > 64 * 1024));
    let mut reader = Client::connect(&broker).with_client_id("reader");
    let throttled = fetch(&mut reader, "f");
    assert!(throttled.throttle_time_ms > 0);
    assert!(throttled.responses.is_empty());
    let counted = common::scrape(
        &broker,
        "ringtail_quota_throttled_requests_total{quota=\"fetch\",entity=\"user,client-id\"}",
    );
    assert_eq!(counted, 1);
}
