//! The real `ringtail` binary, driven over loopback with requests built by the `kafka-protocol`
//! crate: error codes for bad input, the ApiVersions fallback, frame limits, and the zero-copy
//! fetch path (every record byte of a fetch is spliced file-to-socket, none copied in user space).
#![forbid(unsafe_code)]

use std::net::TcpStream;
use std::process::{Command, Stdio};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use ringtail_engine::batch::encode_uniform_batch;

mod common;
use common::client::Client;
use common::{free_port, spawn_on, start_broker};

#[test]
fn produce_then_fetch_round_trips_and_record_bytes_are_spliced_not_copied() {
    // The fetch path's promise: record bytes leave through splice; the counter proves no other
    // path carried them.
    let broker = start_broker(&["--flush", "every_batch"]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("zc", 2, &[("retention.ms", "-1")]), 0);
    let mut batches = Vec::new();
    for round in 0..4 {
        let batch = Bytes::from(encode_uniform_batch(1_000 + round, 50, 1_000));
        let response = client.produce("zc", 1, batch.clone());
        assert_eq!(response.error_code, 0);
        assert_eq!(response.base_offset, round * 50);
        batches.push(batch);
    }
    let spliced_before = common::scrape(&broker, "ringtail_spliced_bytes_total");
    for version in [4i16, 11, 12] {
        let data = client.fetch_partition("zc", 1, 0, version);
        assert_eq!(data.error_code, 0);
        assert_eq!(data.high_watermark, 200);
        let records = data.records.unwrap();
        let expected: usize = batches.iter().map(Bytes::len).sum();
        assert_eq!(records.len(), expected, "v{version}: all four batches");
        // The broker wrote base offsets in place; everything past the header's first 8 bytes and
        // the epoch is the producer's bytes, CRC intact.
        let headers = ringtail_engine::batch::validate_all(
            &records,
            usize::MAX,
            ringtail_engine::batch::Strictness::Stored,
        )
        .unwrap();
        assert_eq!(
            headers
                .iter()
                .map(|h| h.base_offset.get())
                .collect::<Vec<_>>(),
            vec![0, 50, 100, 150]
        );
    }
    let spliced = common::scrape(&broker, "ringtail_spliced_bytes_total") - spliced_before;
    let record_bytes: u64 = 3 * batches.iter().map(|b| b.len() as u64).sum::<u64>();
    assert_eq!(
        spliced, record_bytes,
        "every fetched record byte was spliced"
    );
    // An empty partition answers with no records, and a fetch past the end is out of range.
    assert_eq!(
        client
            .fetch_partition("zc", 0, 0, 12)
            .records
            .map_or(0, |r| r.len()),
        0
    );
    assert_eq!(client.fetch_partition("zc", 1, 201, 12).error_code, 1);
}

#[test]
fn bad_input_gets_kafka_error_codes() {
    // Unknown topic, corrupt CRC, oversized batch: error codes, and the broker keeps serving.
    let broker = start_broker(&["--auto-create-topics", "false"]);
    let mut client = Client::connect(&broker);
    assert_eq!(
        client.create_topic("small", 1, &[("max.message.bytes", "2000")]),
        0
    );
    assert_eq!(
        client.create_topic("small", 1, &[]),
        36,
        "TOPIC_ALREADY_EXISTS"
    );
    assert_eq!(
        client.create_topic("bad/name", 1, &[]),
        17,
        "INVALID_TOPIC_EXCEPTION"
    );
    let good = Bytes::from(encode_uniform_batch(0, 1, 100));
    assert_eq!(
        client.produce("nope", 0, good.clone()).error_code,
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    assert_eq!(client.produce("small", 5, good.clone()).error_code, 3);
    let mut corrupt = good.to_vec();
    *corrupt.last_mut().unwrap() ^= 0xff;
    assert_eq!(
        client.produce("small", 0, Bytes::from(corrupt)).error_code,
        2,
        "CORRUPT_MESSAGE"
    );
    let large = Bytes::from(encode_uniform_batch(0, 10, 1_000));
    assert_eq!(
        client.produce("small", 0, large).error_code,
        10,
        "MESSAGE_TOO_LARGE"
    );
    assert_eq!(client.produce("small", 0, good).error_code, 0);
    let metadata: MetadataResponse = client.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default()
            .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
            )
            .with_name(Some(TopicName(StrBytes::from_static_str("absent"))))])),
    );
    assert_eq!(
        metadata.topics[0].error_code, 3,
        "no auto-creation when disabled"
    );
}

#[test]
fn api_versions_falls_back_to_v0_for_unknown_versions() {
    // KIP-511: a client newer than us learns our ranges instead of being cut off.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    let known: ApiVersionsResponse =
        client.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(known.error_code, 0);
    assert!(known
        .api_keys
        .iter()
        .any(|key| key.api_key == ApiKey::Fetch as i16));
    let mut frame = BytesMut::new();
    frame.put_i32(8 + 2);
    frame.put_i16(ApiKey::ApiVersions as i16);
    frame.put_i16(99);
    frame.put_i32(77);
    frame.put_i16(-1);
    client.send_raw(&frame).unwrap();
    let mut response = client.read_frame().unwrap();
    let header = ResponseHeader::decode(&mut response, 0).unwrap();
    assert_eq!(header.correlation_id, 77);
    let fallback = ApiVersionsResponse::decode(&mut response, 0).unwrap();
    assert_eq!(fallback.error_code, 35, "UNSUPPORTED_VERSION");
    assert_eq!(fallback.api_keys.len(), known.api_keys.len());
}

#[test]
fn an_oversized_frame_closes_only_that_connection() {
    // The frame limit is checked before any allocation; other clients are unaffected.
    let broker = start_broker(&["--frame-bytes-max", "65536"]);
    let mut victim = Client::connect(&broker);
    victim.send_raw(&(1i32 << 30).to_be_bytes()).unwrap();
    assert!(victim.read_frame().is_err(), "connection closed");
    let mut other = Client::connect(&broker);
    let response: ApiVersionsResponse =
        other.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(response.error_code, 0);
}

fn describe_topic_config(client: &mut Client, topic: &str, name: &str) -> (String, i8) {
    let request = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.to_string()))
            .with_configuration_keys(Some(vec![StrBytes::from_string(name.to_string())])),
    ]);
    let response: DescribeConfigsResponse = client.call(ApiKey::DescribeConfigs, 4, &request);
    let config = &response.results[0].configs[0];
    (
        config.value.as_ref().unwrap().to_string(),
        config.config_source,
    )
}

fn alter_topic_config(
    client: &mut Client,
    topic: &str,
    name: &str,
    operation: i8,
    value: Option<&str>,
) -> i16 {
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.to_string()))
            .with_configs(vec![
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(StrBytes::from_string(name.to_string()))
                    .with_config_operation(operation)
                    .with_value(value.map(|v| StrBytes::from_string(v.to_string()))),
            ]),
    ]);
    let response: IncrementalAlterConfigsResponse =
        client.call(ApiKey::IncrementalAlterConfigs, 1, &request);
    response.responses[0].error_code
}

#[test]
fn topic_configs_are_described_altered_and_survive_a_restart() {
    // Topic-level overrides: CreateTopics sets them, IncrementalAlterConfigs changes them,
    // DescribeConfigs shows value and source, and the registry keeps them across a restart.
    let mut broker = start_broker(&["--flush", "none"]);
    let mut client = Client::connect(&broker);
    assert_eq!(
        client.create_topic("cfg", 1, &[("flush", "every_batch")]),
        0
    );
    assert_eq!(
        describe_topic_config(&mut client, "cfg", "flush"),
        ("every_batch".to_string(), 1)
    );
    assert_eq!(
        describe_topic_config(&mut client, "cfg", "retention.ms"),
        ("604800000".to_string(), 5)
    );
    assert_eq!(
        alter_topic_config(&mut client, "cfg", "retention.ms", 0, Some("60000")),
        0
    );
    assert_eq!(alter_topic_config(&mut client, "cfg", "flush", 1, None), 0);
    assert_eq!(
        alter_topic_config(&mut client, "cfg", "segment.bytes", 0, Some("12")),
        40,
        "INVALID_CONFIG"
    );
    assert_eq!(
        alter_topic_config(&mut client, "absent", "flush", 1, None),
        3
    );
    assert_eq!(
        describe_topic_config(&mut client, "cfg", "retention.ms"),
        ("60000".to_string(), 1)
    );
    // Back to the broker's value, which the --flush flag set: STATIC_BROKER_CONFIG.
    assert_eq!(
        describe_topic_config(&mut client, "cfg", "flush"),
        ("none".to_string(), 4)
    );
    // Restart on the same data dir: the overrides are still there.
    let data_dir = broker.dir.path().to_path_buf();
    let _ = Command::new("kill")
        .arg(broker.child.id().to_string())
        .status();
    let _ = broker.child.wait();
    broker.child = spawn_on(broker.port, &data_dir);
    let mut client = Client::connect(&broker);
    assert_eq!(
        describe_topic_config(&mut client, "cfg", "retention.ms"),
        ("60000".to_string(), 1)
    );
}

#[test]
fn a_stopped_broker_leaves_its_port_at_once() {
    // The accept in flight in each shard's io_uring kept the old listener open after the process
    // exited: a restart found the port "in use by another process", or a client connected to the
    // dying listener and was reset (this test's sibling above failed that way now and then).
    let mut broker = start_broker(&[]);
    let data_dir = broker.dir.path().to_path_buf();
    for round in 0..5 {
        // A request answered: the broker is past its start-up and handles SIGTERM itself.
        let mut client = Client::connect(&broker);
        let _: ApiVersionsResponse =
            client.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
        drop(client);
        let _ = Command::new("kill")
            .arg(broker.child.id().to_string())
            .status();
        let status = broker.child.wait().unwrap();
        assert!(
            status.success(),
            "round {round}: broker exited with {status}"
        );
        assert!(
            TcpStream::connect(("127.0.0.1", broker.port)).is_err(),
            "round {round}: something still accepts on the stopped broker's port"
        );
        broker.child = spawn_on(broker.port, &data_dir);
    }
}

#[test]
fn a_second_broker_on_the_same_data_dir_refuses_to_start() {
    // SO_REUSEPORT would let two brokers share a port silently; the data dir lock stops the second.
    let broker = start_broker(&[]);
    let second = Command::new(env!("CARGO_BIN_EXE_ringtail"))
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--data-dir")
        .arg(broker.dir.path())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("in use by another ringtail"));
}

#[test]
fn a_second_broker_on_the_same_port_refuses_to_start() {
    // With another data dir the lock does not stop it; SO_REUSEPORT would let it take half of
    // the connections (clients would see two brokers as one).
    let broker = start_broker(&[]);
    let other_dir = tempfile::tempdir().unwrap();
    let second = Command::new(env!("CARGO_BIN_EXE_ringtail"))
        .args(["--listen", &format!("127.0.0.1:{}", broker.port)])
        .arg("--data-dir")
        .arg(other_dir.path())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("is in use by another process"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let mut client = Client::connect(&broker);
    let versions: ApiVersionsResponse =
        client.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(versions.error_code, 0, "the first broker still answers");
}

#[test]
fn a_tiny_frame_claiming_a_huge_array_closes_its_connection_not_the_broker() {
    // kafka-protocol reserves an array's capacity from the wire count before reading it; a 14-byte
    // Metadata request claiming 2^31 - 1 topics must not take the process down.
    let broker = start_broker(&[]);
    for (api, version) in [
        (ApiKey::Metadata, 1i16),
        (ApiKey::Produce, 7),
        (ApiKey::Fetch, 11),
    ] {
        let mut victim = Client::connect(&broker);
        let mut frame = BytesMut::new();
        let mut body = BytesMut::new();
        body.put_i16(api as i16);
        body.put_i16(version);
        body.put_i32(1);
        body.put_i16(-1); // null client id
        match api {
            ApiKey::Produce => {
                body.put_i16(-1); // transactional id
                body.put_i16(1); // acks
                body.put_i32(1000); // timeout
            }
            ApiKey::Fetch => {
                body.put_i32(-1); // replica id
                body.put_i32(100); // max wait
                body.put_i32(1); // min bytes
                body.put_i32(1 << 20); // max bytes
                body.put_i8(0); // isolation
                body.put_i32(0); // session id
                body.put_i32(-1); // session epoch
            }
            _ => {}
        }
        body.put_i32(i32::MAX); // the array count
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        victim.send_raw(&frame).unwrap();
        assert!(victim.read_frame().is_err(), "{api:?}: connection closed");
    }
    let mut other = Client::connect(&broker);
    let response: ApiVersionsResponse =
        other.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(response.error_code, 0, "the broker is still serving");
}

#[test]
fn offset_metadata_over_kafkas_limit_is_refused_for_its_partition_only() {
    // Kafka's offset.metadata.max.bytes (4096): longer metadata is answered
    // OFFSET_METADATA_TOO_LARGE for its partition and not kept; the other partitions commit.
    const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("meta", 3, &[]), 0);
    let partition = |index: i32, metadata_bytes: usize| {
        offset_commit_request::OffsetCommitRequestPartition::default()
            .with_partition_index(index)
            .with_committed_offset(10 + i64::from(index))
            .with_committed_metadata(Some(StrBytes::from_string("m".repeat(metadata_bytes))))
    };
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("meta")))
                .with_partitions(vec![
                    partition(0, 4096),
                    partition(1, 4097),
                    partition(2, 1 << 20),
                ]),
        ]);
    let committed: OffsetCommitResponse = client.call(ApiKey::OffsetCommit, 8, &commit);
    let errors: Vec<i16> = committed.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(
        errors,
        vec![0, OFFSET_METADATA_TOO_LARGE, OFFSET_METADATA_TOO_LARGE]
    );
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_topics(Some(vec![
            offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("meta")))
                .with_partition_indexes(vec![0, 1, 2]),
        ]));
    let fetched: OffsetFetchResponse = client.call(ApiKey::OffsetFetch, 7, &request);
    let offsets: Vec<(i64, usize)> = fetched.topics[0]
        .partitions
        .iter()
        .map(|p| {
            (
                p.committed_offset,
                p.metadata.as_ref().map_or(0, |m| m.len()),
            )
        })
        .collect();
    assert_eq!(
        offsets,
        vec![(10, 4096), (-1, 0), (-1, 0)],
        "only the partition within the limit was committed"
    );
}

#[test]
fn simple_commits_fetch_and_offset_delete() {
    // A groupless consumer commits (generation -1), reads its offsets back, deletes one partition's
    // offset; an unknown group fetches as "no offsets", not an error.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("od", 2, &[]), 0);
    let topic = || TopicName(StrBytes::from_static_str("od"));
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("simple")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(topic())
                .with_partitions(
                    (0..2)
                        .map(|p| {
                            offset_commit_request::OffsetCommitRequestPartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(10 + i64::from(p))
                        })
                        .collect(),
                ),
        ]);
    let committed: OffsetCommitResponse = client.call(ApiKey::OffsetCommit, 8, &commit);
    assert!(committed.topics[0]
        .partitions
        .iter()
        .all(|p| p.error_code == 0));
    let fetch_offsets = |client: &mut Client, group: &'static str| -> Vec<(i32, i64)> {
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str(group)))
            .with_topics(Some(vec![
                offset_fetch_request::OffsetFetchRequestTopic::default()
                    .with_name(topic())
                    .with_partition_indexes(vec![0, 1]),
            ]));
        let response: OffsetFetchResponse = client.call(ApiKey::OffsetFetch, 7, &request);
        assert_eq!(response.error_code, 0);
        response.topics[0]
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.committed_offset))
            .collect()
    };
    assert_eq!(fetch_offsets(&mut client, "simple"), vec![(0, 10), (1, 11)]);
    assert_eq!(fetch_offsets(&mut client, "nobody"), vec![(0, -1), (1, -1)]);
    let delete = OffsetDeleteRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("simple")))
        .with_topics(vec![
            offset_delete_request::OffsetDeleteRequestTopic::default()
                .with_name(topic())
                .with_partitions(vec![
                    offset_delete_request::OffsetDeleteRequestPartition::default()
                        .with_partition_index(1),
                ]),
        ]);
    let deleted: OffsetDeleteResponse = client.call(ApiKey::OffsetDelete, 0, &delete);
    assert_eq!(deleted.error_code, 0);
    assert_eq!(deleted.topics[0].partitions[0].error_code, 0);
    assert_eq!(fetch_offsets(&mut client, "simple"), vec![(0, 10), (1, -1)]);
    let unknown: OffsetDeleteResponse = client.call(
        ApiKey::OffsetDelete,
        0,
        &delete
            .clone()
            .with_group_id(GroupId(StrBytes::from_static_str("nobody"))),
    );
    assert_eq!(unknown.error_code, 69, "GROUP_ID_NOT_FOUND");
}

#[test]
fn consumer_group_heartbeat_errors_commits_and_describe() {
    // KIP-848 over the wire: a join gets an epoch and the whole topic by topic id; bad epochs,
    // unknown groups, unknown assignors, bad regexes, empty group ids get their Kafka codes; a
    // commit needs the member's epoch; describe, list and a classic join see a consumer group.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("kip", 3, &[]), 0);
    let join = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g848")))
        .with_member_id(StrBytes::from_static_str("member-1"))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_server_assignor(Some(StrBytes::from_static_str("range")))
        .with_subscribed_topic_names(Some(vec![TopicName(StrBytes::from_static_str("kip"))]))
        .with_topic_partitions(Some(vec![]));
    let joined: ConsumerGroupHeartbeatResponse =
        client.call(ApiKey::ConsumerGroupHeartbeat, 1, &join);
    assert_eq!(joined.error_code, 0, "{:?}", joined.error_message);
    assert!(joined.member_epoch > 0);
    assert_eq!(joined.heartbeat_interval_ms, 5000);
    let assigned = joined.assignment.expect("a join gets its assignment");
    assert_eq!(assigned.topic_partitions.len(), 1);
    assert_eq!(assigned.topic_partitions[0].partitions, vec![0, 1, 2]);
    let epoch = joined.member_epoch;
    let beat = |epoch: i32| {
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g848")))
            .with_member_id(StrBytes::from_static_str("member-1"))
            .with_member_epoch(epoch)
            .with_rebalance_timeout_ms(-1)
    };
    let refused = [
        (beat(epoch + 5), 110, "FENCED_MEMBER_EPOCH"),
        (
            beat(epoch).with_group_id(GroupId(StrBytes::from_static_str("nobody"))),
            69,
            "GROUP_ID_NOT_FOUND",
        ),
        (
            join.clone()
                .with_group_id(GroupId(StrBytes::from_static_str(""))),
            42,
            "INVALID_REQUEST",
        ),
        (
            join.clone()
                .with_server_assignor(Some(StrBytes::from_static_str("bogus"))),
            112,
            "UNSUPPORTED_ASSIGNOR",
        ),
        (
            join.clone()
                .with_subscribed_topic_regex(Some(StrBytes::from_static_str("("))),
            128,
            "INVALID_REGULAR_EXPRESSION",
        ),
    ];
    for (request, code, name) in refused {
        let response: ConsumerGroupHeartbeatResponse =
            client.call(ApiKey::ConsumerGroupHeartbeat, 1, &request);
        assert_eq!(response.error_code, code, "{name}");
    }
    let steady: ConsumerGroupHeartbeatResponse =
        client.call(ApiKey::ConsumerGroupHeartbeat, 1, &beat(epoch));
    assert_eq!((steady.error_code, steady.member_epoch), (0, epoch));

    let commit = |epoch: i32| {
        OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g848")))
            .with_member_id(StrBytes::from_static_str("member-1"))
            .with_generation_id_or_member_epoch(epoch)
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("kip")))
                    .with_partitions(vec![
                        offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(5),
                    ]),
            ])
    };
    let stale: OffsetCommitResponse = client.call(ApiKey::OffsetCommit, 9, &commit(epoch - 1));
    assert_eq!(
        stale.topics[0].partitions[0].error_code, 113,
        "STALE_MEMBER_EPOCH"
    );
    let fresh: OffsetCommitResponse = client.call(ApiKey::OffsetCommit, 9, &commit(epoch));
    assert_eq!(fresh.topics[0].partitions[0].error_code, 0);

    let described: ConsumerGroupDescribeResponse = client.call(
        ApiKey::ConsumerGroupDescribe,
        0,
        &ConsumerGroupDescribeRequest::default().with_group_ids(vec![
            GroupId(StrBytes::from_static_str("g848")),
            GroupId(StrBytes::from_static_str("nobody")),
        ]),
    );
    let group = &described.groups[0];
    assert_eq!(group.error_code, 0);
    assert_eq!(group.group_state.as_str(), "Stable");
    assert_eq!(group.assignor_name.as_str(), "range");
    assert_eq!(group.members[0].member_epoch, epoch);
    assert_eq!(
        group.members[0].assignment.topic_partitions[0].partitions,
        vec![0, 1, 2]
    );
    assert_eq!(
        described.groups[1].error_code, 69,
        "unknown: GROUP_ID_NOT_FOUND"
    );
    let listed: ListGroupsResponse = client.call(
        ApiKey::ListGroups,
        5,
        &ListGroupsRequest::default()
            .with_types_filter(vec![StrBytes::from_static_str("consumer")]),
    );
    let names: Vec<(&str, &str)> = listed
        .groups
        .iter()
        .map(|g| (g.group_id.as_str(), g.group_type.as_str()))
        .collect();
    assert_eq!(names, vec![("g848", "consumer")]);
    let classic: JoinGroupResponse = client.call(
        ApiKey::JoinGroup,
        7,
        &JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g848")))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
            )
            .with_name(StrBytes::from_static_str("range"))]),
    );
    assert_eq!(classic.error_code, 23, "INCONSISTENT_GROUP_PROTOCOL");
    let left: ConsumerGroupHeartbeatResponse =
        client.call(ApiKey::ConsumerGroupHeartbeat, 1, &beat(-1));
    assert_eq!((left.error_code, left.member_epoch), (0, -1));
}
