//! The network edge's bounds against the real binary: connection limits, idle and frame-read
//! timeouts, bounded Metadata auto-creation, and Fetch sizes a client may not choose.
//! tests/compat/test_hostile.py runs the same faults at scale beside a real client.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

mod common;
use common::{request_frame, start_broker, Broker};

fn connect(broker: &Broker) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", broker.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
}

/// True once the broker has closed `stream` (EOF or reset) within the read timeout.
fn closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(err) => !matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

fn call<Req: Encodable, Resp: Decodable>(
    stream: &mut TcpStream,
    api: ApiKey,
    version: i16,
    request: &Req,
) -> Resp {
    let frame = request_frame(api, version, 7, "edge-test", request);
    stream.write_all(&frame).unwrap();
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).unwrap();
    let mut response = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut response).unwrap();
    let mut response = Bytes::from(response);
    ResponseHeader::decode(&mut response, api.response_header_version(version)).unwrap();
    Resp::decode(&mut response, version).unwrap()
}

/// Whether `stream` answers an ApiVersions request (false if the broker closed it).
fn answers(stream: &mut TcpStream) -> bool {
    let frame = [
        0u8, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 1, 0,
        0, // size, ApiVersions v0, id 1, no client id
    ];
    let mut size = [0u8; 4];
    stream.write_all(&frame).is_ok() && stream.read_exact(&mut size).is_ok()
}

fn api_versions_work(broker: &Broker) {
    let response: ApiVersionsResponse = call(
        &mut connect(broker),
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default(),
    );
    assert_eq!(response.error_code, 0);
}

#[test]
fn connections_beyond_the_per_ip_limit_are_closed_at_once() {
    let broker = start_broker(&["--max-connections-per-ip", "2"]);
    // Each held connection answers a request, so it is known to be counted, and start_broker's
    // readiness probe (closed at once) is known to be released (else it could take a slot).
    let mut held = Vec::new();
    while held.len() < 2 {
        let mut stream = connect(&broker);
        if answers(&mut stream) {
            held.push(stream);
        }
    }
    let mut third = connect(&broker);
    assert!(
        closed(&mut third),
        "the third connection from 127.0.0.1 is closed"
    );
    drop(held);
    // The slots free when the held connections close (the broker notices the EOF).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut stream = connect(&broker);
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        if !closed(&mut stream) {
            break;
        }
        assert!(Instant::now() < deadline, "slots never freed");
    }
}

#[test]
fn idle_connections_and_slow_frames_are_dropped() {
    let broker = start_broker(&[
        "--connections-max-idle-ms",
        "300",
        "--frame-read-timeout-ms",
        "300",
    ]);
    let mut idle = connect(&broker);
    assert!(closed(&mut idle), "idle connection closed");
    // A frame that starts and never finishes (slowloris), and one whose size prefix is partial.
    let mut slow = connect(&broker);
    slow.write_all(&[0, 0, 0, 100, 0, 18]).unwrap();
    assert!(closed(&mut slow), "incomplete frame dropped");
    let mut partial = connect(&broker);
    partial.write_all(&[0, 0]).unwrap();
    assert!(closed(&mut partial), "incomplete size prefix dropped");
    api_versions_work(&broker);
}

#[test]
fn metadata_auto_creates_at_most_the_per_request_bound_and_the_topic_total() {
    let broker = start_broker(&[
        "--auto-create-topics-per-request-max",
        "10",
        "--topics-max",
        "16",
    ]);
    let mut stream = connect(&broker);
    let ask = |prefix: &str| {
        MetadataRequest::default()
            .with_topics(Some(
                (0..1000)
                    .map(|i| {
                        MetadataRequestTopic::default().with_name(Some(TopicName(
                            StrBytes::from_string(format!("{prefix}{i}")),
                        )))
                    })
                    .collect(),
            ))
            .with_allow_auto_topic_creation(true)
    };
    // A topic the request created is answered LEADER_NOT_AVAILABLE (5), without partitions, as
    // Kafka answers it; one it could not create, UNKNOWN_TOPIC_OR_PARTITION (3).
    let created = |response: &MetadataResponse| {
        response
            .topics
            .iter()
            .filter(|topic| topic.error_code == 5)
            .map(|topic| topic.name.as_ref().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let first: MetadataResponse = call(&mut stream, ApiKey::Metadata, 9, &ask("a"));
    assert_eq!(first.topics.len(), 1000);
    let created_first = created(&first);
    assert_eq!(created_first.len(), 10, "per-request bound");
    assert!(first.topics.iter().all(|topic| {
        (topic.error_code == 5 || topic.error_code == 3) && topic.partitions.is_empty()
    }));
    // The next Metadata finds them, with their partitions.
    let again = MetadataRequest::default().with_topics(Some(
        created_first
            .iter()
            .map(|name| {
                MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_string(name.clone()))))
            })
            .collect(),
    ));
    let found: MetadataResponse = call(&mut stream, ApiKey::Metadata, 9, &again);
    assert!(found
        .topics
        .iter()
        .all(|topic| topic.error_code == 0 && !topic.partitions.is_empty()));
    // 2 internal topics (__consumer_offsets, __transaction_state) + 10 created: 4 more fit
    // under --topics-max 16.
    let second: MetadataResponse = call(&mut stream, ApiKey::Metadata, 9, &ask("b"));
    assert_eq!(created(&second).len(), 4, "topic total bound");
}

#[test]
fn fetch_max_bytes_zero_or_negative_over_100000_partitions_is_answered_not_a_panic() {
    let broker = start_broker(&["--fetch-max-bytes", "1024"]);
    let mut stream = connect(&broker);
    let _: MetadataResponse = call(
        &mut stream,
        ApiKey::Metadata,
        9,
        &MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("f"))))]))
            .with_allow_auto_topic_creation(true),
    );
    for max_bytes in [0, -1, i32::MIN] {
        let request = FetchRequest::default()
            .with_max_wait_ms(10)
            .with_max_bytes(max_bytes)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("f")))
                .with_partitions(
                    (0..100_000)
                        .map(|partition| {
                            FetchPartition::default()
                                .with_partition(partition)
                                .with_partition_max_bytes(i32::MAX)
                        })
                        .collect(),
                )]);
        let response: FetchResponse = call(&mut stream, ApiKey::Fetch, 4, &request);
        assert_eq!(response.responses[0].partitions.len(), 100_000);
    }
    api_versions_work(&broker);
}
