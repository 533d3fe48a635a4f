//! The data-path APIs at the versions today's clients send (Produce v13, Fetch v17, ListOffsets
//! v10, Metadata v13, OffsetForLeaderEpoch v4), topic ids (KIP-516), and the error answers the
//! librdkafka suite expects, against the real binary over loopback.
#![forbid(unsafe_code)]

mod common;

use bytes::Bytes;
use common::client::{topic_name, Client};
use common::{restart, start_broker};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use ringtail_engine::batch::encode_uniform_batch;
use uuid::Uuid;

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const FENCED_LEADER_EPOCH: i16 = 74;
const UNKNOWN_LEADER_EPOCH: i16 = 75;
const UNKNOWN_TOPIC_ID: i16 = 100;

fn produce_by_id(
    client: &mut Client,
    topic_id: Uuid,
    partition: i32,
    records: Bytes,
) -> (i16, i64) {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_topic_id(topic_id)
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])]);
    let response: ProduceResponse = client.call(ApiKey::Produce, 13, &request);
    assert_eq!(response.responses[0].topic_id, topic_id, "the id is echoed");
    let partition = &response.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset)
}

fn fetch_by_id(
    client: &mut Client,
    topic_id: Uuid,
    partition: i32,
    offset: i64,
) -> (Uuid, fetch_response::PartitionData) {
    let request = FetchRequest::default()
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic_id(topic_id)
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    let response: FetchResponse = client.call(ApiKey::Fetch, 17, &request);
    let topic = &response.responses[0];
    (topic.topic_id, topic.partitions[0].clone())
}

fn metadata(
    client: &mut Client,
    topic: &str,
    version: i16,
) -> metadata_response::MetadataResponseTopic {
    let request = MetadataRequest::default()
        .with_allow_auto_topic_creation(true)
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name(topic)))
        ]));
    let response: MetadataResponse = client.call(ApiKey::Metadata, version, &request);
    response.topics[0].clone()
}

pub fn list_offset(
    client: &mut Client,
    topic: &str,
    partition: i32,
    timestamp: i64,
) -> (i16, i64, i64) {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_timeout_ms(1_000)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(timestamp)])]);
    let response: ListOffsetsResponse = client.call(ApiKey::ListOffsets, 10, &request);
    let found = &response.topics[0].partitions[0];
    (found.error_code, found.offset, found.timestamp)
}

#[test]
fn today_s_clients_find_the_newest_versions_advertised() {
    // kafka-python infers the broker's release from these maxima (Produce 13 is Kafka 4.1);
    // the Java client and librdkafka use the newest version both sides know.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    let versions: ApiVersionsResponse =
        client.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let max = |api: ApiKey| {
        versions
            .api_keys
            .iter()
            .find(|key| key.api_key == api as i16)
            .map(|key| key.max_version)
    };
    assert_eq!(max(ApiKey::Produce), Some(13));
    assert_eq!(max(ApiKey::Fetch), Some(17));
    assert_eq!(max(ApiKey::ListOffsets), Some(10));
    assert_eq!(max(ApiKey::Metadata), Some(13));
    assert_eq!(max(ApiKey::DeleteRecords), Some(2));
    assert_eq!(max(ApiKey::OffsetForLeaderEpoch), Some(4));
}

#[test]
fn topics_are_produced_and_fetched_by_a_persisted_id() {
    // KIP-516: the id CreateTopics returns is Metadata's, Produce v13's and Fetch v17's, and
    // survives a restart; an id nobody holds is UNKNOWN_TOPIC_ID, not a guess by name.
    let mut broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    let (error, topic_id) = client.create_topic_with_id("by-id", 2, &[]);
    assert_eq!(error, 0);
    assert!(!topic_id.is_nil());
    assert_eq!(metadata(&mut client, "by-id", 13).topic_id, topic_id);
    let batch = Bytes::from(encode_uniform_batch(1_000, 3, 10));
    assert_eq!(
        produce_by_id(&mut client, topic_id, 1, batch.clone()),
        (0, 0)
    );
    assert_eq!(
        produce_by_id(&mut client, topic_id, 1, batch.clone()),
        (0, 3)
    );
    let (echoed, fetched) = fetch_by_id(&mut client, topic_id, 1, 3);
    assert_eq!(
        (echoed, fetched.error_code, fetched.high_watermark),
        (topic_id, 0, 6)
    );
    let records = fetched.records.expect("records");
    assert_eq!(records.len(), batch.len(), "one batch, from offset 3");
    assert_eq!(&records[..8], &3i64.to_be_bytes(), "its base offset");

    let stranger = Uuid::new_v4();
    assert_eq!(
        produce_by_id(&mut client, stranger, 0, batch.clone()).0,
        UNKNOWN_TOPIC_ID
    );
    let (echoed, fetched) = fetch_by_id(&mut client, stranger, 0, 0);
    assert_eq!((echoed, fetched.error_code), (stranger, UNKNOWN_TOPIC_ID));
    assert_eq!(
        produce_by_id(&mut client, topic_id, 7, batch).0,
        UNKNOWN_TOPIC_OR_PARTITION,
        "a known id with a partition it lacks"
    );

    let by_id = |topic_id| {
        MetadataRequest::default()
            .with_allow_auto_topic_creation(false)
            .with_topics(Some(vec![MetadataRequestTopic::default()
                .with_name(None)
                .with_topic_id(topic_id)]))
    };
    let found: MetadataResponse = client.call(ApiKey::Metadata, 12, &by_id(topic_id));
    assert_eq!(
        found.topics[0].name.as_ref().map(|n| n.to_string()),
        Some("by-id".into())
    );
    let unknown: MetadataResponse = client.call(ApiKey::Metadata, 12, &by_id(stranger));
    assert_eq!(unknown.topics[0].error_code, UNKNOWN_TOPIC_ID);

    restart(&mut broker);
    let mut client = Client::connect(&broker);
    assert_eq!(metadata(&mut client, "by-id", 12).topic_id, topic_id);
    let (_, fetched) = fetch_by_id(&mut client, topic_id, 1, 0);
    assert_eq!((fetched.error_code, fetched.high_watermark), (0, 6));
}

#[test]
fn list_offsets_v10_answers_max_timestamp_earliest_local_and_latest_tiered() {
    // KIP-734's -3 is the first record with the largest timestamp (not the last offset); with no
    // tiered storage -4 is the earliest offset and -5 has no answer (-1).
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic_with_id("times", 1, &[]).0, 0);
    let topic_id = metadata(&mut client, "times", 13).topic_id;
    assert_eq!(
        list_offset(&mut client, "times", 0, -3),
        (0, -1, -1),
        "empty log"
    );
    for (base_timestamp, count) in [(5_000, 2), (9_000, 3), (7_000, 4)] {
        let batch = Bytes::from(encode_uniform_batch(base_timestamp, count, 10));
        assert_eq!(produce_by_id(&mut client, topic_id, 0, batch).0, 0);
    }
    assert_eq!(list_offset(&mut client, "times", 0, -3), (0, 2, 9_000));
    assert_eq!(list_offset(&mut client, "times", 0, -4), (0, 0, -1));
    assert_eq!(list_offset(&mut client, "times", 0, -2), (0, 0, -1));
    assert_eq!(list_offset(&mut client, "times", 0, -1), (0, 9, -1));
    assert_eq!(list_offset(&mut client, "times", 0, -5), (0, -1, -1));
    assert_eq!(list_offset(&mut client, "times", 0, 6_000), (0, 2, 9_000));
    assert_eq!(list_offset(&mut client, "times", 0, 9_001), (0, -1, -1));
    assert_eq!(
        list_offset(&mut client, "times", 3, -3).0,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        list_offset(&mut client, "nowhere", 0, -3).0,
        UNKNOWN_TOPIC_OR_PARTITION
    );
}

fn epoch_end(
    client: &mut Client,
    topic: &str,
    partition: i32,
    current_leader_epoch: i32,
    leader_epoch: i32,
) -> offset_for_leader_epoch_response::EpochEndOffset {
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(partition)
                .with_current_leader_epoch(current_leader_epoch)
                .with_leader_epoch(leader_epoch)])]);
    let response: OffsetForLeaderEpochResponse =
        client.call(ApiKey::OffsetForLeaderEpoch, 4, &request);
    response.topics[0].partitions[0].clone()
}

#[test]
fn offset_for_leader_epoch_ends_epoch_zero_at_the_high_watermark() {
    // The Java consumer validates its position after a metadata change with this; one broker
    // is leader at epoch 0 for life, so epoch 0 ends at the high watermark.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic_with_id("epochs", 1, &[]).0, 0);
    let described = metadata(&mut client, "epochs", 13);
    assert_eq!(
        described.partitions[0].leader_epoch, 0,
        "Metadata names the epoch"
    );
    let topic_id = described.topic_id;
    let batch = Bytes::from(encode_uniform_batch(1_000, 4, 10));
    assert_eq!(produce_by_id(&mut client, topic_id, 0, batch).0, 0);
    let end = epoch_end(&mut client, "epochs", 0, 0, 0);
    assert_eq!(
        (end.error_code, end.leader_epoch, end.end_offset),
        (0, 0, 4)
    );
    let end = epoch_end(&mut client, "epochs", 0, -1, 0);
    assert_eq!(
        (end.error_code, end.end_offset),
        (0, 4),
        "no current epoch given"
    );
    let end = epoch_end(&mut client, "epochs", 0, 0, 3);
    assert_eq!(
        (end.error_code, end.leader_epoch, end.end_offset),
        (0, -1, -1)
    );
    assert_eq!(
        epoch_end(&mut client, "epochs", 0, 2, 0).error_code,
        UNKNOWN_LEADER_EPOCH
    );
    assert_eq!(
        epoch_end(&mut client, "epochs", 1, 0, 0).error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        epoch_end(&mut client, "elsewhere", 0, 0, 0).error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        epoch_end(&mut client, "epochs", 0, -3, 0).error_code,
        FENCED_LEADER_EPOCH
    );

    // Fetch and ListOffsets check the client's current epoch the same way (-1: no check).
    let fetch_with_epoch = |client: &mut Client, current_leader_epoch| {
        let request = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic_id(topic_id)
                .with_partitions(vec![FetchPartition::default()
                    .with_current_leader_epoch(current_leader_epoch)
                    .with_partition_max_bytes(1 << 20)])]);
        let response: FetchResponse = client.call(ApiKey::Fetch, 17, &request);
        response.responses[0].partitions[0].error_code
    };
    assert_eq!(fetch_with_epoch(&mut client, 0), 0);
    assert_eq!(fetch_with_epoch(&mut client, -1), 0);
    assert_eq!(fetch_with_epoch(&mut client, 1), UNKNOWN_LEADER_EPOCH);
    let list_with_epoch = |client: &mut Client, current_leader_epoch| {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name("epochs"))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_current_leader_epoch(current_leader_epoch)
                    .with_timestamp(-1)])]);
        let response: ListOffsetsResponse = client.call(ApiKey::ListOffsets, 10, &request);
        let found = &response.topics[0].partitions[0];
        (found.error_code, found.offset)
    };
    assert_eq!(list_with_epoch(&mut client, 0), (0, 4));
    assert_eq!(list_with_epoch(&mut client, 7).0, UNKNOWN_LEADER_EPOCH);
    assert_eq!(list_with_epoch(&mut client, -2).0, FENCED_LEADER_EPOCH);
}

#[test]
fn commits_to_missing_partitions_and_illegal_names_are_refused() {
    // librdkafka's 0030/0081 expect UNKNOWN_TOPIC_OR_PARTITION per missing partition (the
    // others commit), 0057 INVALID_TOPIC_EXCEPTION for a name Kafka could never hold.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic_with_id("present", 1, &[]).0, 0);
    let partition = |index| {
        OffsetCommitRequestPartition::default()
            .with_partition_index(index)
            .with_committed_offset(5)
    };
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("simple")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(topic_name("present"))
                .with_partitions(vec![partition(0), partition(4)]),
            OffsetCommitRequestTopic::default()
                .with_name(topic_name("absent"))
                .with_partitions(vec![partition(0)]),
        ]);
    let response: OffsetCommitResponse = client.call(ApiKey::OffsetCommit, 9, &request);
    let codes: Vec<Vec<i16>> = response
        .topics
        .iter()
        .map(|topic| topic.partitions.iter().map(|p| p.error_code).collect())
        .collect();
    assert_eq!(
        codes,
        vec![
            vec![0, UNKNOWN_TOPIC_OR_PARTITION],
            vec![UNKNOWN_TOPIC_OR_PARTITION]
        ]
    );

    let illegal = metadata(&mut client, "no way!", 12);
    assert_eq!(illegal.error_code, INVALID_TOPIC_EXCEPTION);
    let all: MetadataResponse = client.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    );
    let names: Vec<String> = all
        .topics
        .iter()
        .filter_map(|topic| topic.name.as_ref().map(|name| name.to_string()))
        .filter(|name| !name.starts_with("__"))
        .collect();
    assert_eq!(names, vec!["present".to_string()], "nothing auto-created");
}

#[test]
fn a_transactional_init_producer_id_gets_an_id_and_idempotent_ones_too() {
    // The transaction coordinator grants transactional ids (server/tests/transactions.rs has the
    // rest); idempotent producers are served as before.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("tx-1"))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let transactional: InitProducerIdResponse = client.call(ApiKey::InitProducerId, 4, &request);
    assert_eq!(transactional.error_code, 0);
    assert!(transactional.producer_id.0 > 0);
    assert_eq!(transactional.producer_epoch, 0);
    let idempotent = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(-1)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let granted: InitProducerIdResponse = client.call(ApiKey::InitProducerId, 4, &idempotent);
    assert_eq!(granted.error_code, 0);
    assert!(
        granted.producer_id.0 > 0,
        "idempotent producers still get ids"
    );
    // Without a transactional id Kafka always grants a new producer id at epoch 0, whatever id
    // and epoch the request names (an idempotent producer bumps its epoch itself, KIP-360): a
    // broker bumping the named id's epoch let any client fence another client's producer.
    let named = idempotent
        .with_producer_id(granted.producer_id)
        .with_producer_epoch(0);
    let again: InitProducerIdResponse = client.call(ApiKey::InitProducerId, 4, &named);
    assert_eq!(again.error_code, 0);
    assert_ne!(again.producer_id, granted.producer_id);
    assert_eq!(again.producer_epoch, 0);
}

#[test]
fn an_api_not_advertised_closes_only_its_connection() {
    // As Kafka does for an API it has not enabled: the connection closes at once (no hang, no
    // answer a client could misread), and the broker serves the next one.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    // Delegation tokens need a controller quorum Ringtail doesn't have.
    let request = DescribeDelegationTokenRequest::default();
    assert!(
        client
            .try_call::<_, DescribeDelegationTokenResponse>(
                ApiKey::DescribeDelegationToken,
                3,
                &request
            )
            .is_err(),
        "closed, not answered"
    );
    let mut next = Client::connect(&broker);
    let versions: ApiVersionsResponse =
        next.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert!(versions
        .api_keys
        .iter()
        .all(|key| key.api_key != ApiKey::DescribeDelegationToken as i16));
}

/// Produce with acks=0 of one batch to `partition`; only sent, no answer is awaited.
fn produce_without_acks(client: &mut Client, topic: &str, partition: i32) {
    let request = ProduceRequest::default()
        .with_acks(0)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(Bytes::from(encode_uniform_batch(
                    1_000, 2, 10,
                ))))])]);
    client.send(ApiKey::Produce, 9, &request).unwrap();
}

#[test]
fn a_refused_produce_without_acks_closes_its_connection() {
    // With acks=0 no answer can say "not written": Kafka closes the connection instead, and the
    // client's next request fails, so it learns. A written one leaves the connection open.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic_with_id("quiet", 1, &[]).0, 0);

    produce_without_acks(&mut client, "quiet", 0);
    // The next request is answered on the same connection, and the batch was written.
    assert_eq!(client.fetch_partition("quiet", 0, 0, 12).high_watermark, 2);

    produce_without_acks(&mut client, "quiet", 7);
    assert!(client.closed_by_broker(), "a refused acks=0 produce closes");
    let mut next = Client::connect(&broker);
    assert_eq!(
        next.fetch_partition("quiet", 0, 0, 12).high_watermark,
        2,
        "the broker serves on"
    );
}
