//! Fetch's size limits of zero, as Kafka answers them: its log read widens any limit, 0
//! included, to the first batch of the first partition with data (`minOneMessage`, KIP-74), and
//! gives nothing past the response's `max_bytes` after that. A long poll ends at
//! min(min_bytes, max_bytes) bytes, as Kafka's does, so a `max_bytes` of 0 answers at once. One
//! difference is pinned here on purpose: a negative `max_bytes` is taken as 0 (Kafka fails the
//! first partition's read).
#![forbid(unsafe_code)]

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;
use ringtail_engine::batch::encode_uniform_batch;

mod common;
use common::client::{topic_name, Client};
use common::start_broker;

const FETCH_VERSION: i16 = 12;
/// Records per batch, so a batch's offsets and its place in a response are known.
const RECORDS_PER_BATCH: usize = 10;

fn fetch(topic: &str, max_bytes: i32, max_wait_ms: i32, partitions: &[(i32, i32)]) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(
                partitions
                    .iter()
                    .map(|&(partition, partition_max_bytes)| {
                        FetchPartition::default()
                            .with_partition(partition)
                            .with_partition_max_bytes(partition_max_bytes)
                    })
                    .collect(),
            )])
}

/// Three batches of `RECORDS_PER_BATCH` records of 100 bytes in each of `partitions`.
fn topic_with_three_batches_per_partition(client: &mut Client, topic: &str, partitions: i32) {
    assert_eq!(client.create_topic(topic, partitions, &[]), 0);
    for partition in 0..partitions {
        for round in 0..3 {
            let batch = Bytes::from(encode_uniform_batch(1_000 + round, RECORDS_PER_BATCH, 100));
            let answer = client.produce(topic, partition, batch);
            assert_eq!(answer.error_code, 0);
        }
    }
}

/// The batches of a partition's answer: (base offset, record count).
type Batches = Vec<(i64, i32)>;

fn batches_of(partition: &fetch_response::PartitionData) -> Batches {
    let mut bytes = partition.records.clone().unwrap_or_default();
    let mut batches = Vec::new();
    while bytes.len() >= 61 {
        let header = ringtail_engine::batch::parse_header(&bytes).expect("a whole batch header");
        let len = header.total_bytes();
        assert!(len <= bytes.len(), "only whole batches are answered");
        batches.push((header.base_offset.get(), header.record_count));
        let _ = bytes.split_to(len);
    }
    assert!(bytes.is_empty(), "no partial batch at the end");
    batches
}

fn answer(client: &mut Client, request: &FetchRequest) -> Vec<Batches> {
    let response: FetchResponse = client.call(ApiKey::Fetch, FETCH_VERSION, request);
    response.responses[0]
        .partitions
        .iter()
        .map(|partition| {
            assert_eq!(
                partition.error_code, 0,
                "partition {}",
                partition.partition_index
            );
            batches_of(partition)
        })
        .collect()
}

#[test]
fn limits_of_zero_give_the_first_partitions_first_batch_and_nothing_more() {
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    topic_with_three_batches_per_partition(&mut client, "zero", 2);
    let one_batch = vec![(0, RECORDS_PER_BATCH as i32)];
    let cases: &[(&str, i32, [i32; 2], [Batches; 2])] = &[
        // Response max 0: the first partition's first batch, nothing of the second.
        (
            "max_bytes 0",
            0,
            [1 << 20, 1 << 20],
            [one_batch.clone(), vec![]],
        ),
        (
            "max_bytes -1",
            -1,
            [1 << 20, 1 << 20],
            [one_batch.clone(), vec![]],
        ),
        // Partition max 0 on the first partition: its first batch; the second, asked for 0
        // too, gets nothing once a partition has data.
        (
            "both partition max 0",
            1 << 20,
            [0, 0],
            [one_batch.clone(), vec![]],
        ),
        // Partition max 0 on the second only: the first reads all three batches, the second
        // nothing (the one batch past a limit goes only to the first partition with data).
        (
            "second partition max 0",
            1 << 20,
            [1 << 20, 0],
            [vec![(0, 10), (10, 10), (20, 10)], vec![]],
        ),
        // Partition max 1 (smaller than any batch) on the second: the same.
        (
            "second partition max 1",
            1 << 20,
            [1 << 20, 1],
            [vec![(0, 10), (10, 10), (20, 10)], vec![]],
        ),
        // Partition max 0 on the first, room on the second: one batch, then all of the second.
        (
            "first partition max 0",
            1 << 20,
            [0, 1 << 20],
            [one_batch.clone(), vec![(0, 10), (10, 10), (20, 10)]],
        ),
    ];
    for (name, max_bytes, [first_max, second_max], expected) in cases {
        let request = fetch("zero", *max_bytes, 0, &[(0, *first_max), (1, *second_max)]);
        let got = answer(&mut client, &request);
        assert_eq!(&got, expected, "{name}");
    }
}

#[test]
fn a_long_poll_with_max_bytes_zero_answers_at_once_as_kafka_does() {
    // Kafka's fetchMinBytes = min(min_bytes, max_bytes): with max_bytes 0 a fetch is "full"
    // before it reads anything, so it answers at once, whatever its max wait: empty while the
    // partition is empty, with the first batch once there is data.
    let broker = start_broker(&[]);
    let mut admin = Client::connect(&broker);
    assert_eq!(admin.create_topic("later", 1, &[]), 0);
    let mut fetcher = Client::connect(&broker);
    // The wait asked for (60 s, the broker's cap) is longer than the read timeout: a broker that
    // parked this fetch fails the test with a timed-out read rather than passing it late.
    fetcher.set_read_timeout(Duration::from_secs(30));
    for (max_bytes, partition_max_bytes) in [(0, 1 << 20), (-1, 1 << 20), (0, 0)] {
        let request = fetch("later", max_bytes, 60_000, &[(0, partition_max_bytes)]);
        fetcher
            .send(ApiKey::Fetch, FETCH_VERSION, &request)
            .unwrap();
        let response: FetchResponse = fetcher
            .receive(ApiKey::Fetch, FETCH_VERSION)
            .unwrap_or_else(|error| panic!("max_bytes {max_bytes}: parked, not answered: {error}"));
        let partition = &response.responses[0].partitions[0];
        assert_eq!(partition.error_code, 0);
        assert_eq!(partition.high_watermark, 0);
        assert_eq!(batches_of(partition), vec![], "max_bytes {max_bytes}");
    }
    for round in 0..2 {
        let batch = Bytes::from(encode_uniform_batch(1_000 + round, RECORDS_PER_BATCH, 100));
        assert_eq!(admin.produce("later", 0, batch).error_code, 0);
    }
    let request = fetch("later", 0, 60_000, &[(0, 1 << 20)]);
    fetcher
        .send(ApiKey::Fetch, FETCH_VERSION, &request)
        .unwrap();
    let response: FetchResponse = fetcher
        .receive(ApiKey::Fetch, FETCH_VERSION)
        .expect("answered at once");
    let got = batches_of(&response.responses[0].partitions[0]);
    assert_eq!(
        got,
        vec![(0, RECORDS_PER_BATCH as i32)],
        "one batch, the first"
    );
}

#[test]
fn a_long_poll_with_a_partition_max_of_zero_waits_for_min_bytes() {
    // A partition max of 0 is not the response's max: fetchMinBytes stays min_bytes (1), so the
    // fetch parks while the partition is empty and answers with the first batch once one exists.
    let broker = start_broker(&[]);
    let mut admin = Client::connect(&broker);
    assert_eq!(admin.create_topic("later", 1, &[]), 0);
    let mut fetcher = Client::connect(&broker);
    fetcher
        .send(
            ApiKey::Fetch,
            FETCH_VERSION,
            &fetch("later", 1 << 20, 60_000, &[(0, 0)]),
        )
        .unwrap();
    // Nothing comes while the partition is empty. (A wrong broker answers at once, empty; a
    // right one cannot answer before the data or the 60 s wait, so this cannot fail it.)
    fetcher.set_read_timeout(Duration::from_secs(1));
    let early = fetcher.read_frame();
    assert!(
        early.as_ref().is_err_and(|error| matches!(
            error.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        )),
        "answered before any data existed: {early:?}"
    );
    fetcher.set_read_timeout(Duration::from_secs(120));
    // The produce comes after, on another connection: the fetch answers with its data.
    for round in 0..2 {
        let batch = Bytes::from(encode_uniform_batch(1_000 + round, RECORDS_PER_BATCH, 100));
        assert_eq!(admin.produce("later", 0, batch).error_code, 0);
    }
    let response: FetchResponse = fetcher.receive(ApiKey::Fetch, FETCH_VERSION).unwrap();
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    let got = batches_of(partition);
    assert_eq!(
        got,
        vec![(0, RECORDS_PER_BATCH as i32)],
        "one batch, the first"
    );
}

#[test]
fn a_long_poll_naming_no_partition_is_answered_at_once() {
    // Nothing in the request can get data, so nothing is worth waiting for: Kafka answers such a
    // fetch at once, and so does Ringtail, whatever its max wait (60 s here, longer than the read
    // timeout: a broker that parked it fails the test with a timed-out read).
    let broker = start_broker(&[]);
    let mut fetcher = Client::connect(&broker);
    fetcher.set_read_timeout(Duration::from_secs(30));
    let request = FetchRequest::default()
        .with_max_wait_ms(60_000)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1);
    fetcher
        .send(ApiKey::Fetch, FETCH_VERSION, &request)
        .unwrap();
    let response: FetchResponse = fetcher
        .receive(ApiKey::Fetch, FETCH_VERSION)
        .expect("answered at once, not parked");
    assert_eq!(response.error_code, 0);
    assert!(response.responses.is_empty());
}
