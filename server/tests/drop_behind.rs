//! `drop.behind.bytes` through the broker (decision 0033): a partition's written pages further
//! behind its end than that leave the page cache; a consumer that far behind then reads them
//! cold, byte for byte, and one at the tail from the page cache. A live consumer a little
//! behind keeps the pages it may still need, up to `drop.behind.max.bytes` behind the end
//! (decision 0034; off by default). DescribeConfigs shows the defaults, and 0 turns drops off.
#![forbid(unsafe_code)]

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::*;

mod common;
use common::client::str_bytes;
use common::cold::*;

const MIB: u64 = 1 << 20;
const DROPPED: &str = "ringtail_log_dropped_behind_bytes_total";

/// The topic config `name` of `topic` as DescribeConfigs v4 gives it.
fn described(client: &mut common::client::Client, topic: &str, name: &str) -> Option<String> {
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(str_bytes(topic))
            .with_configuration_keys(Some(vec![str_bytes(name)]))]);
    let response: DescribeConfigsResponse = client.call(ApiKey::DescribeConfigs, 4, &request);
    let result = &response.results[0];
    assert_eq!(result.error_code, 0);
    result
        .configs
        .iter()
        .find(|config| config.name.as_str() == name)
        .and_then(|config| config.value.as_ref().map(|value| value.to_string()))
}

/// Fetches `batches` batches of 512 records of `topic` from offset 0, checking they come whole and
/// in order; returns the record bytes fetched.
fn fetch_all(client: &mut common::client::Client, topic: &str, batches: i64) -> usize {
    let mut fetched = 0;
    let mut next_offset = 0;
    while next_offset < batches * 512 {
        let mut request = fetch_request(topic);
        request.topics[0].partitions[0].fetch_offset = next_offset;
        let response: FetchResponse = client.call(ApiKey::Fetch, FETCH_VERSION, &request);
        let records = fetched_records(&response);
        assert!(!records.is_empty(), "no progress at offset {next_offset}");
        fetched += records.len();
        let mut rest = &records[..];
        while let Some((base_offset, length)) = ringtail_engine::batch::peek_offset_and_length(rest)
        {
            assert_eq!(base_offset.get(), next_offset, "batches in order");
            next_offset += 512;
            rest = &rest[12 + length as usize..];
        }
        assert!(rest.is_empty(), "whole batches only");
    }
    fetched
}

#[test]
fn pages_behind_the_window_are_dropped_and_read_back_cold_byte_for_byte() {
    // A 4 MiB window, 24 MiB written in 512 KiB batches: everything but the newest few MiB
    // leaves the page cache. The first fetch from 0 then reads cold; the tail is still hot.
    let broker = start_broker(&["--drop-behind-bytes", &(4 * MIB).to_string()], None);
    let mut client = connect(&broker);
    create_topic(&mut client, "windowed");
    assert_eq!(
        described(&mut client, "windowed", "drop.behind.bytes").as_deref(),
        Some("4194304")
    );
    let produced = produce_backlog(&mut client, "windowed", 48);
    wait_for_metric(
        &broker,
        DROPPED,
        12 * MIB,
        "the first 12 MiB must be dropped behind",
    );
    let dropped = common::scrape(&broker, DROPPED);
    assert!(
        dropped <= produced as u64 - 4 * MIB,
        "{dropped} bytes dropped: the newest 4 MiB stay"
    );

    // Whole, as written: the fetch spans dropped and cached pages alike.
    assert_eq!(
        fetch_all(&mut client, "windowed", 48),
        produced,
        "every byte fetched back"
    );
    assert!(
        common::scrape(&broker, "ringtail_fetch_cold_bytes_total") >= 12 * MIB,
        "the dropped range was read cold"
    );
}

#[test]
fn the_default_is_256_mib_and_zero_drops_nothing() {
    let broker = start_broker(&[], None);
    let mut client = connect(&broker);
    create_topic(&mut client, "default");
    assert_eq!(
        described(&mut client, "default", "drop.behind.bytes").as_deref(),
        Some("268435456")
    );
    assert_eq!(
        described(&mut client, "default", "drop.behind.max.bytes").as_deref(),
        Some("0")
    );
    drop(client);
    drop(broker);

    let broker = start_broker(&["--drop-behind-bytes", "0"], None);
    let mut client = connect(&broker);
    create_topic(&mut client, "kept");
    produce_backlog(&mut client, "kept", 48);
    // The writer checks for a due drop after each write; after 48 writes none was taken.
    assert_eq!(common::scrape(&broker, DROPPED), 0);
}

#[test]
fn a_live_consumer_a_little_behind_keeps_the_pages_it_has_yet_to_read() {
    // The first test's 4 MiB window and 24 MiB, which drop at least 12 MiB without a consumer;
    // here a consumer fetches from offset 0 after every produce (one that has not moved on yet),
    // up to 24 MiB behind the end, within the 64 MiB the drops wait for it: none is taken.
    let broker = start_broker(
        &[
            "--drop-behind-bytes",
            &(4 * MIB).to_string(),
            "--drop-behind-max-bytes",
            &(64 * MIB).to_string(),
        ],
        None,
    );
    let mut client = connect(&broker);
    create_topic(&mut client, "held");
    assert_eq!(
        described(&mut client, "held", "drop.behind.max.bytes").as_deref(),
        Some("67108864")
    );
    let mut first_batch = common::fetch_from_start("held", 0, 1, 1);
    first_batch.min_bytes = 0;
    let mut produced = 0;
    for round in 0..48 {
        let batch = bytes::Bytes::from(ringtail_engine::batch::encode_uniform_batch(
            1_000 + round,
            512,
            1_000,
        ));
        assert_eq!(produce(&mut client, "held", batch.clone()), round * 512);
        produced += batch.len();
        let response: FetchResponse = client.call(ApiKey::Fetch, FETCH_VERSION, &first_batch);
        let records = fetched_records(&response);
        assert_eq!(
            ringtail_engine::batch::peek_offset_and_length(&records).map(|(base, _)| base.get()),
            Some(0),
            "the consumer reads the first batch"
        );
    }
    assert_eq!(
        common::scrape(&broker, DROPPED),
        0,
        "pages the consumer has yet to read were dropped"
    );
    // It then reads everything, whole.
    assert_eq!(
        fetch_all(&mut client, "held", 48),
        produced,
        "every byte fetched back"
    );
}
