//! Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/): valid inputs made by the
//! broker's and the engine's own encoders, which the fuzzers then mutate. Run on demand:
//! `cargo test -p ringtail-server --lib fuzzing_corpus -- --ignored` (scripts/fuzz.sh says so).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, JoinGroupRequest, MetadataRequest, OffsetCommitRequest,
    OffsetFetchRequest, ProduceRequest, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use ringtail_engine::batch::{encode_batch, encode_uniform_batch, ProducerSpec, RecordSpec};
use ringtail_engine::{LogConfig, PartitionLog, TopicMeta, TopicRegistry};

use crate::api::SUPPORTED_APIS;
use crate::group::classic_record::{GroupRecord, MemberRecord};
use crate::group::consumer::{ConsumerGroupConfig, HeartbeatRequest};
use crate::group::offsets_log::{encode_records, group_key, offset_key};
use crate::group::state::{JoinRequest, INITIAL_REBALANCE_DELAY_MS};
use crate::group::{CommittedOffset, Coordinator};
use crate::metadata::Metadata;
use crate::protocol::offsets_v10::{OffsetCommitRequestV10, OffsetFetchRequestV10};

fn corpus_dir(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_seed(target: &str, name: &str, bytes: &[u8]) {
    std::fs::write(corpus_dir(target).join(format!("seed-{name}")), bytes).unwrap();
}

/// A request as it comes off the wire: size prefix, header, `body` encoded at `version`.
fn request_frame<T: Encodable>(api: ApiKey, version: i16, body: &T) -> Vec<u8> {
    let mut frame = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("fuzz-seed")))
        .encode(&mut frame, api.request_header_version(version))
        .unwrap();
    body.encode(&mut frame, version).unwrap();
    let mut out = (frame.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&frame);
    out
}

fn sample_batch() -> Vec<u8> {
    let records = [
        RecordSpec {
            key: Some(b"key-1"),
            value: Some(b"value-1"),
            timestamp_delta: 0,
        },
        RecordSpec {
            key: None,
            value: Some(b"value-2"),
            timestamp_delta: 5,
        },
    ];
    let producer = ProducerSpec {
        producer_id: 1000,
        producer_epoch: 0,
        base_sequence: 0,
    };
    encode_batch(1_700_000_000_000, &records, producer)
}

fn request_seeds() {
    let target = "request_frame";
    for &(api, min, max) in SUPPORTED_APIS {
        for version in [min, max] {
            let frame = crate::fuzzing::default_request_frame(api, version).unwrap();
            write_seed(target, &format!("{api:?}-v{version}-default"), &frame);
        }
    }
    let topic = TopicName(StrBytes::from_static_str("orders"));
    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic.clone())
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(sample_batch())))])]);
    for version in [3, 9] {
        let frame = request_frame(ApiKey::Produce, version, &produce);
        write_seed(target, &format!("Produce-v{version}-records"), &frame);
    }
    let fetch = FetchRequest::default()
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic.clone())
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_partition_max_bytes(1 << 20)])]);
    write_seed(
        target,
        "Fetch-v11-topic",
        &request_frame(ApiKey::Fetch, 11, &fetch),
    );
    let metadata = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(topic.clone())),
    ]));
    for version in [1, 12] {
        let frame = request_frame(ApiKey::Metadata, version, &metadata);
        write_seed(target, &format!("Metadata-v{version}-topic"), &frame);
    }
    let join = JoinGroupRequest::default()
        .with_group_id(StrBytes::from_static_str("group").into())
        .with_session_timeout_ms(30_000)
        .with_rebalance_timeout_ms(30_000)
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(StrBytes::from_static_str("range"))
            .with_metadata(Bytes::from_static(b"\0\x01\0\0\0\x01\0\x06orders"))]);
    write_seed(
        target,
        "JoinGroup-v7-range",
        &request_frame(ApiKey::JoinGroup, 7, &join),
    );
    let commit = OffsetCommitRequest::default()
        .with_group_id(StrBytes::from_static_str("group").into())
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic)
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(42)])]);
    let frame = request_frame(ApiKey::OffsetCommit, 8, &commit);
    write_seed(target, "OffsetCommit-v8-offset", &frame);
    v10_seeds(target, commit);
}

/// OffsetCommit and OffsetFetch v10 (topics by id, the hand-written codecs) with a topic in them.
fn v10_seeds(target: &str, commit: OffsetCommitRequest) {
    let topic_id = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210);
    let mut by_id = commit;
    by_id.topics[0].topic_id = topic_id;
    let frame = request_frame(ApiKey::OffsetCommit, 10, &OffsetCommitRequestV10(by_id));
    write_seed(target, "OffsetCommit-v10-topic-id", &frame);
    let fetch = OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
        .with_group_id(StrBytes::from_static_str("group").into())
        .with_topics(Some(vec![OffsetFetchRequestTopics::default()
            .with_topic_id(topic_id)
            .with_partition_indexes(vec![0, 1])]))]);
    let frame = request_frame(ApiKey::OffsetFetch, 10, &OffsetFetchRequestV10(fetch));
    write_seed(target, "OffsetFetch-v10-topic-id", &frame);
}

fn batch_seeds() {
    let target = "batch_validate";
    write_seed(target, "two-records", &sample_batch());
    write_seed(
        target,
        "uniform",
        &encode_uniform_batch(1_700_000_000_000, 3, 16),
    );
    let mut two = sample_batch();
    two.extend_from_slice(&encode_uniform_batch(1_700_000_000_000, 1, 4));
    write_seed(target, "two-batches", &two);
}

fn small_index_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1 << 20,
        // An index entry every batch or so, so the index files have entries to mutate.
        index_interval_bytes: 64,
        preallocate: false,
        ..LogConfig::default()
    }
}

/// A segment of a few batches, with its indexes, as the segment_recovery target's input.
async fn segment_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = PartitionLog::open(dir.path(), small_index_config())
        .await
        .unwrap();
    for count in 1..=4 {
        log.append(
            encode_uniform_batch(1_700_000_000_000 + count, count as usize, 24),
            0,
        )
        .await
        .unwrap();
    }
    log.close().await.unwrap();
    let read = |extension: &str| {
        std::fs::read(dir.path().join(format!("00000000000000000000.{extension}"))).unwrap()
    };
    let (log_bytes, offset_index, time_index) = (read("log"), read("index"), read("timeindex"));
    write_seed("index_decode", "offset-index", &offset_index);
    write_seed("index_decode", "time-index", &time_index);
    let target = "segment_recovery";
    for flags in [0u8, 1] {
        let mut input = vec![flags];
        input.extend_from_slice(&log_bytes);
        write_seed(target, &format!("log-only-flags{flags}"), &input);
        let mut input = vec![flags | 2];
        input.extend_from_slice(&(offset_index.len() as u16).to_be_bytes());
        input.extend_from_slice(&(time_index.len() as u16).to_be_bytes());
        input.extend_from_slice(&offset_index);
        input.extend_from_slice(&time_index);
        input.extend_from_slice(&log_bytes);
        write_seed(target, &format!("with-indexes-flags{flags}"), &input);
    }
}

/// The offsets log of a coordinator that ran a classic group to Stable, a consumer group with
/// two members, and commits; and a hand-made record set with every record kind and tombstones.
async fn offsets_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = TopicRegistry::load(dir.path()).await.unwrap();
    registry.insert(TopicMeta::new("t", 4, BTreeMap::new()));
    let metadata = Metadata::new(small_index_config());
    metadata.publish(&registry).unwrap();
    let (log, _) = PartitionLog::open(
        &dir.path().join("__consumer_offsets-0"),
        small_index_config(),
    )
    .await
    .unwrap();
    let coordinator = Rc::new(
        Coordinator::load(
            Rc::clone(&log),
            Arc::new(metadata),
            ConsumerGroupConfig::default(),
        )
        .await
        .unwrap(),
    );
    let joining = compio::runtime::spawn({
        let coordinator = Rc::clone(&coordinator);
        async move {
            let request = JoinRequest {
                member_id: String::new(),
                group_instance_id: Some("instance-1".into()),
                client_id: "client-1".into(),
                client_host: "/127.0.0.1".into(),
                session_timeout_ms: 30_000,
                rebalance_timeout_ms: 30_000,
                protocol_type: "consumer".into(),
                protocols: vec![("range".into(), Bytes::from_static(b"subscription"))],
                require_known_member_id: false,
                supports_skip_assignment: false,
            };
            coordinator.join("classic".into(), request).await
        }
    });
    compio::time::sleep(Duration::from_millis(
        INITIAL_REBALANCE_DELAY_MS as u64 + 50,
    ))
    .await;
    coordinator.tick().await;
    let joined = joining.await.unwrap();
    let member = (joined.member_id.clone(), Some("instance-1".into()));
    let assignment = vec![(joined.member_id.clone(), Bytes::from_static(b"assignment"))];
    coordinator
        .sync(
            "classic".into(),
            member,
            joined.generation_id,
            (None, None),
            assignment,
        )
        .await;
    let committed = |offset| CommittedOffset {
        offset,
        leader_epoch: 0,
        metadata: Some("meta".into()),
        commit_ms: 1_700_000_000_000,
    };
    let member = (
        joined.member_id.as_str(),
        Some("instance-1"),
        joined.generation_id,
    );
    let commits = vec![
        ("t".to_string(), 0, committed(10)),
        ("t".to_string(), 1, committed(20)),
    ];
    coordinator
        .commit("classic", member, 8, commits)
        .await
        .unwrap();
    for member_id in ["member-a", "member-b"] {
        let heartbeat = HeartbeatRequest {
            member_id: member_id.into(),
            member_epoch: 0,
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: Some(vec!["t".into()]),
            ..HeartbeatRequest::default()
        };
        coordinator
            .consumer_heartbeat("next".into(), heartbeat)
            .await
            .unwrap();
    }
    let end = log.high_watermark();
    let bytes = log
        .read_bytes(log.log_start_offset(), 1 << 20, true)
        .await
        .unwrap();
    assert!(
        !bytes.is_empty() && end.get() > 0,
        "the coordinator wrote records"
    );
    write_seed("offsets_replay", "coordinator-log", &bytes);

    let group = GroupRecord {
        version: 1,
        protocol_type: Some("consumer".into()),
        generation_id: 3,
        protocol_name: Some("range".into()),
        leader: Some("m-1".into()),
        members: vec![MemberRecord {
            member_id: "m-1".into(),
            group_instance_id: None,
            client_id: "client".into(),
            client_host: "/10.0.0.1".into(),
            session_timeout_ms: 30_000,
            rebalance_timeout_ms: 60_000,
            protocols: vec![("range".into(), "00010000".into())],
            assignment: "0001".into(),
        }],
    };
    let records = vec![
        (group_key("g"), Some(serde_json::to_vec(&group).unwrap())),
        (
            offset_key("g", "t", 0),
            Some(serde_json::to_vec(&committed(5)).unwrap()),
        ),
        (offset_key("g", "t", 1), None),
        (group_key("gone"), None),
        (b"cgroup\0c".to_vec(), None),
        (b"cmember\0c\0m".to_vec(), None),
    ];
    let set = encode_records(&records, 1 << 20, 1_700_000_000_000);
    write_seed("offsets_replay", "every-kind", &set);
}

#[compio::test]
#[ignore = "writes fuzz/corpus/; run on demand to regenerate the seeds"]
async fn write_fuzz_corpus() {
    request_seeds();
    batch_seeds();
    segment_seeds().await;
    offsets_seeds().await;
}
