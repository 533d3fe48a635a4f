//! DeleteRecords (API 21) against the real binary: the low watermark moves, fetches below it are
//! OFFSET_OUT_OF_RANGE, ListOffsets' earliest follows, the errors Kafka gives, and a restart.
#![forbid(unsafe_code)]

mod common;

use bytes::Bytes;
use common::client::{topic_name, Client};
use common::{restart, start_broker};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use ringtail_engine::batch::encode_uniform_batch;

const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const POLICY_VIOLATION: i16 = 44;

fn produce(client: &mut Client, topic: &str, records: usize) -> i16 {
    let batch = Bytes::from(encode_uniform_batch(1_000, records, 100));
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch))])]);
    let response: ProduceResponse = client.call(ApiKey::Produce, 12, &request);
    response.responses[0].partition_responses[0].error_code
}

/// DeleteRecords for one partition: (error code, low watermark).
fn delete_before(client: &mut Client, topic: &str, partition: i32, offset: i64) -> (i16, i64) {
    let request = DeleteRecordsRequest::default()
        .with_timeout_ms(5_000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(partition)
                .with_offset(offset)])]);
    let response: DeleteRecordsResponse = client.call(ApiKey::DeleteRecords, 2, &request);
    let result = &response.topics[0].partitions[0];
    (result.error_code, result.low_watermark)
}

/// Fetch v12 at `offset`: (error code, log start offset, base offset of the first batch).
fn fetch_at(client: &mut Client, topic: &str, offset: i64) -> (i16, i64, Option<i64>) {
    let partition = client.fetch_partition(topic, 0, offset, 12);
    let first_base = partition
        .records
        .as_ref()
        .filter(|records| records.len() >= 8)
        .map(|records| i64::from_be_bytes(records[..8].try_into().unwrap()));
    (partition.error_code, partition.log_start_offset, first_base)
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
fn delete_records_moves_the_low_watermark_for_fetch_and_list_offsets() {
    // Three batches of ten: deleting before 15 cuts the middle batch; a fetch at 15 gets that
    // batch whole from 10 (clients skip what is below their offset), below 15 is out of range.
    let mut broker = start_broker(&["--auto-create-topics", "false"]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic_with_id("trim", 1, &[]).0, 0);
    for _ in 0..3 {
        assert_eq!(produce(&mut client, "trim", 10), 0);
    }
    assert_eq!(delete_before(&mut client, "trim", 0, 15), (0, 15));
    assert_eq!(
        fetch_at(&mut client, "trim", 14),
        (OFFSET_OUT_OF_RANGE, 15, None)
    );
    assert_eq!(fetch_at(&mut client, "trim", 15), (0, 15, Some(10)));
    assert_eq!(earliest(&mut client, "trim"), 15);
    assert_eq!(
        delete_before(&mut client, "trim", 0, 5),
        (0, 15),
        "never back"
    );
    assert_eq!(
        delete_before(&mut client, "trim", 0, 31).0,
        OFFSET_OUT_OF_RANGE
    );
    assert_eq!(
        delete_before(&mut client, "trim", 0, -7).0,
        OFFSET_OUT_OF_RANGE
    );
    assert_eq!(
        delete_before(&mut client, "trim", 1, 0).0,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        delete_before(&mut client, "ghost", 0, 0).0,
        UNKNOWN_TOPIC_OR_PARTITION
    );

    restart(&mut broker);
    let mut client = Client::connect(&broker);
    assert_eq!(earliest(&mut client, "trim"), 15, "persisted");
    assert_eq!(
        delete_before(&mut client, "trim", 0, -1),
        (0, 30),
        "-1: the high watermark"
    );
    assert_eq!(fetch_at(&mut client, "trim", 30), (0, 30, None));
    assert_eq!(produce(&mut client, "trim", 1), 0);
    assert_eq!(fetch_at(&mut client, "trim", 30), (0, 30, Some(30)));
}

#[test]
fn delete_records_refuses_a_compacted_topic_and_deletes_whole_segments() {
    // A compact-only topic keeps its records (POLICY_VIOLATION, as Kafka); on a topic with small
    // segments the segment files wholly below the new start leave the disk.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    let compact = [("cleanup.policy", "compact")];
    assert_eq!(client.create_topic_with_id("kept", 1, &compact).0, 0);
    assert_eq!(delete_before(&mut client, "kept", 0, 0).0, POLICY_VIOLATION);
    let small = [("segment.bytes", "16384")];
    assert_eq!(client.create_topic_with_id("rolled", 1, &small).0, 0);
    for _ in 0..40 {
        assert_eq!(produce(&mut client, "rolled", 20), 0);
    }
    let segments = || {
        std::fs::read_dir(broker.dir.path().join("rolled-0"))
            .unwrap()
            .filter(|entry| {
                let path = entry.as_ref().unwrap().path();
                path.extension().is_some_and(|ext| ext == "log")
            })
            .count()
    };
    let before = segments();
    assert!(before >= 4, "{before} segments of 16 KiB");
    assert_eq!(delete_before(&mut client, "rolled", 0, 790), (0, 790));
    assert!(
        segments() < before,
        "{} segments left of {before}",
        segments()
    );
    assert_eq!(fetch_at(&mut client, "rolled", 790).0, 0);
}
