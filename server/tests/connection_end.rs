//! What a connection's end does to the requests the broker has already received: every frame
//! that arrived whole is served to completion even when the client is gone (as Kafka does), so a
//! producer with acks=0 that closes right after its last send loses nothing it sent; and a frame
//! whose bytes arrived at once is not timed out while it waits for the request-bytes budget.

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use ringtail_engine::batch::encode_uniform_batch;

mod common;
use common::client::{now_ms, topic_name, Client};
use common::{request_frame, scrape, start_broker, Broker};

/// Produce requests (acks=0, one record each) sent before the client goes away: far more than a
/// connection may have in flight (16), and few enough bytes to sit in the socket buffers at once.
const PRODUCES: i64 = 100;

/// How long the two long-polling fetches in front of the produces keep the connection's writer
/// waiting: the client is gone before they are answered, so answering them fails.
const FETCH_WAITS_MS: [i32; 2] = [1_000, 1_500];

/// How the test client leaves.
#[derive(Clone, Copy)]
enum Leave {
    /// shutdown + close: a FIN; the broker's first answer is refused by a reset, the next fails.
    Close,
    /// SO_LINGER 0: a reset at once, as a client closing with unread answers sends; the frames
    /// already in the broker's socket buffer stay readable (Linux keeps them until read).
    Reset,
}

/// A Fetch that waits `max_wait_ms` for data that never comes (`topic` stays empty).
fn long_poll(topic: &str, max_wait_ms: i32) -> FetchRequest {
    common::fetch_from_start(topic, max_wait_ms, 1 << 20, 1 << 20)
}

/// A Produce v9 with acks=0 of one one-record batch to partition 0 of `topic`.
fn produce_without_acks(topic: &str) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(0)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(encode_uniform_batch(now_ms(), 1, 16).into()))])])
}

/// The high watermark of partition 0 of `topic`, polled until it reaches `expected` or 30 s pass
/// (the broker serves a dead connection's requests on its own time; a broker that dropped them
/// never gets there), then returned for the caller to compare.
fn high_watermark_reaching(broker: &Broker, topic: &str, expected: i64) -> i64 {
    let mut client = Client::connect(broker);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let partition = client.fetch_partition(topic, 0, 0, 12);
        assert_eq!(partition.error_code, 0, "fetch of {topic}");
        if partition.high_watermark >= expected || Instant::now() > deadline {
            return partition.high_watermark;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends two long polls and then [`PRODUCES`] acks=0 produces in one write, leaves as `leave`
/// says, and checks that every produce landed.
fn produces_outlive_the_client(leave: Leave) {
    let broker = start_broker(&[]);
    let mut admin = Client::connect(&broker);
    assert_eq!(admin.create_topic("quiet", 1, &[]), 0);
    assert_eq!(admin.create_topic("landed", 1, &[]), 0);

    let mut frames = BytesMut::new();
    let mut correlation_id = 0;
    for max_wait_ms in FETCH_WAITS_MS {
        correlation_id += 1;
        let fetch = long_poll("quiet", max_wait_ms);
        frames.extend_from_slice(&request_frame(
            ApiKey::Fetch,
            12,
            correlation_id,
            "leaver",
            &fetch,
        ));
    }
    for _ in 0..PRODUCES {
        correlation_id += 1;
        let produce = produce_without_acks("landed");
        frames.extend_from_slice(&request_frame(
            ApiKey::Produce,
            9,
            correlation_id,
            "leaver",
            &produce,
        ));
    }
    let mut stream = TcpStream::connect(("127.0.0.1", broker.port)).unwrap();
    stream.write_all(&frames).unwrap();
    match leave {
        Leave::Close => stream.shutdown(Shutdown::Both).unwrap(),
        Leave::Reset => socket2::SockRef::from(&stream)
            .set_linger(Some(Duration::ZERO))
            .unwrap(),
    }
    drop(stream);

    let landed = high_watermark_reaching(&broker, "landed", PRODUCES);
    assert_eq!(
        landed, PRODUCES,
        "records of the {PRODUCES} acks=0 produces sent before the client left"
    );
}

#[test]
fn requests_received_before_a_close_are_all_served() {
    produces_outlive_the_client(Leave::Close);
}

#[test]
fn requests_received_before_a_reset_are_all_served() {
    produces_outlive_the_client(Leave::Reset);
}

/// A Produce (acks=-1, of garbage records) whose frame, size prefix excluded, is `frame_bytes`.
fn produce_of_frame_bytes(frame_bytes: usize) -> ProduceRequest {
    let with_records = |records_bytes: usize| {
        ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name("quiet"))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(vec![0u8; records_bytes].into()))])])
    };
    let frame_len = |request: &ProduceRequest| {
        request_frame(ApiKey::Produce, 9, 1, "ringtail-test", request).len() - 4
    };
    // The records' length prefix is a varint: one correction settles it.
    let mut records_bytes = frame_bytes - frame_len(&with_records(0));
    for _ in 0..2 {
        let request = with_records(records_bytes);
        records_bytes = records_bytes + frame_bytes - frame_len(&request);
    }
    let request = with_records(records_bytes);
    assert_eq!(
        frame_len(&request),
        frame_bytes,
        "the frame is sized exactly"
    );
    request
}

#[test]
fn a_frame_waiting_for_the_request_bytes_budget_is_not_timed_out() {
    // The whole budget is one largest frame: while one long poll holds a few bytes of it, a
    // frame of that size waits, and the wait (3 s) is longer than the frame timeout (300 ms).
    // The frame's bytes all arrived at once, so its client is honest and must be answered.
    let frame_bytes_max: usize = 64 * 1024;
    let broker = start_broker(&[
        "--frame-bytes-max",
        &frame_bytes_max.to_string(),
        "--queued-max-request-bytes",
        &frame_bytes_max.to_string(),
        "--frame-read-timeout-ms",
        "300",
    ]);
    let mut admin = Client::connect(&broker);
    assert_eq!(admin.create_topic("quiet", 1, &[]), 0);

    let mut holder = Client::connect(&broker);
    holder
        .send(ApiKey::Fetch, 12, &long_poll("quiet", 3_000))
        .unwrap();
    // The long poll now holds its request bytes until it is answered.
    let deadline = Instant::now() + Duration::from_secs(20);
    while scrape(&broker, "ringtail_request_bytes_in_flight") == 0 {
        assert!(
            Instant::now() < deadline,
            "the long poll never held request bytes"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    // A Produce whose records fill the frame up to the limit (garbage: the answer is an error
    // code, which is an answer all the same).
    let request = produce_of_frame_bytes(frame_bytes_max);
    let mut waiter = Client::connect(&broker);
    let answer = waiter.try_call::<_, ProduceResponse>(ApiKey::Produce, 9, &request);
    let answer = answer.expect("the broker answers a frame that waited for the budget");
    assert_eq!(answer.responses.len(), 1, "one topic answered");

    let polled: FetchResponse = holder.receive(ApiKey::Fetch, 12).unwrap();
    assert_eq!(polled.error_code, 0, "the long poll is answered too");
}
