//! Transactions as the integration tests drive them: the coordinator's requests (InitProducerId
//! with a transactional id, AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit, EndTxn,
//! OffsetFetch), transactional batches built by hand, and fetched record sets walked batch by
//! batch with their markers.

use bytes::Bytes;
use kafka_protocol::messages::*;
use ringtail_engine::batch::{
    decode_records, encode_batch, parse_header, ProducerSpec, RecordSpec,
};

use super::client::{now_ms, str_bytes as name, topic_name, Client};

pub const INVALID_PRODUCER_EPOCH: i16 = 47;
pub const INVALID_TXN_STATE: i16 = 48;
pub const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
pub const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub const INVALID_RECORD: i16 = 87;
pub const PRODUCER_FENCED: i16 = 90;
pub const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;

/// A transactional producer as the tests drive it.
#[derive(Clone, Copy, Debug)]
pub struct Producer {
    pub id: i64,
    pub epoch: i16,
}

pub fn init(client: &mut Client, transactional_id: &str, timeout_ms: i32) -> (i16, Producer) {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(name(transactional_id))))
        .with_transaction_timeout_ms(timeout_ms)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let response: InitProducerIdResponse = client.call(ApiKey::InitProducerId, 4, &request);
    if response.error_code == 0 {
        // The connection's Produce requests name it from now on, as a transactional producer's do.
        client.transactional_id = Some(transactional_id.to_string());
    }
    (
        response.error_code,
        Producer {
            id: response.producer_id.0,
            epoch: response.producer_epoch,
        },
    )
}

pub fn add_partitions(
    client: &mut Client,
    txn: &str,
    producer: Producer,
    topic: &str,
    partitions: &[i32],
) -> Vec<i16> {
    let request = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(name(txn)))
        .with_v3_and_below_producer_id(ProducerId(producer.id))
        .with_v3_and_below_producer_epoch(producer.epoch)
        .with_v3_and_below_topics(vec![
            add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(partitions.to_vec()),
        ]);
    let response: AddPartitionsToTxnResponse = client.call(ApiKey::AddPartitionsToTxn, 3, &request);
    response.results_by_topic_v3_and_below[0]
        .results_by_partition
        .iter()
        .map(|result| result.partition_error_code)
        .collect()
}

pub fn add_offsets(client: &mut Client, txn: &str, producer: Producer, group: &str) -> i16 {
    let request = AddOffsetsToTxnRequest::default()
        .with_transactional_id(TransactionalId(name(txn)))
        .with_producer_id(ProducerId(producer.id))
        .with_producer_epoch(producer.epoch)
        .with_group_id(GroupId(name(group)));
    let response: AddOffsetsToTxnResponse = client.call(ApiKey::AddOffsetsToTxn, 3, &request);
    response.error_code
}

/// One partition's offset in a TxnOffsetCommit, with its metadata if any.
pub fn txn_offset(
    partition: i32,
    offset: i64,
    metadata: Option<&str>,
) -> txn_offset_commit_request::TxnOffsetCommitRequestPartition {
    txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
        .with_partition_index(partition)
        .with_committed_offset(offset)
        .with_committed_leader_epoch(-1)
        .with_committed_metadata(metadata.map(name))
}

/// TxnOffsetCommit of `group`'s offsets of `topic` in `txn`'s transaction (no generation or
/// member, as a producer outside a consumer group sends it).
pub fn txn_offset_commit_request(
    txn: &str,
    producer: Producer,
    group: &str,
    topic: &str,
    partitions: Vec<txn_offset_commit_request::TxnOffsetCommitRequestPartition>,
) -> TxnOffsetCommitRequest {
    TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(name(txn)))
        .with_group_id(GroupId(name(group)))
        .with_producer_id(ProducerId(producer.id))
        .with_producer_epoch(producer.epoch)
        .with_generation_id(-1)
        .with_member_id(name(""))
        .with_topics(vec![
            txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(partitions),
        ])
}

/// TxnOffsetCommit v3 of partition 0's `offset`: its error code.
pub fn txn_offset_commit(
    client: &mut Client,
    txn: &str,
    producer: Producer,
    group: &str,
    topic: &str,
    offset: i64,
) -> i16 {
    let partitions = vec![txn_offset(0, offset, None)];
    let request = txn_offset_commit_request(txn, producer, group, topic, partitions);
    let response: TxnOffsetCommitResponse = client.call(ApiKey::TxnOffsetCommit, 3, &request);
    response.topics[0].partitions[0].error_code
}

/// What a Fetch v12 of one partition from offset 0 returned under an isolation level.
pub struct IsolatedFetch {
    pub records: Bytes,
    /// Aborted transactions as (producer id, first offset).
    pub aborted: Vec<(i64, i64)>,
    pub last_stable_offset: i64,
    pub high_watermark: i64,
}

/// Fetch v12 of `topic`'s `partition` from 0 under `isolation_level` (0 read_uncommitted,
/// 1 read_committed), without waiting; the partition must answer without an error.
pub fn fetch_isolated(
    client: &mut Client,
    topic: &str,
    partition: i32,
    isolation_level: i8,
) -> IsolatedFetch {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    let request = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_isolation_level(isolation_level)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let response: FetchResponse = client.call(ApiKey::Fetch, 12, &request);
    let data = &response.responses[0].partitions[0];
    assert_eq!(data.error_code, 0);
    IsolatedFetch {
        records: data.records.clone().unwrap_or_default(),
        aborted: (data.aborted_transactions.iter().flatten())
            .map(|txn| (txn.producer_id.0, txn.first_offset))
            .collect(),
        last_stable_offset: data.last_stable_offset,
        high_watermark: data.high_watermark,
    }
}

pub fn end_txn(client: &mut Client, txn: &str, producer: Producer, commit: bool) -> i16 {
    let request = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(name(txn)))
        .with_producer_id(ProducerId(producer.id))
        .with_producer_epoch(producer.epoch)
        .with_committed(commit);
    let response: EndTxnResponse = client.call(ApiKey::EndTxn, 3, &request);
    response.error_code
}

pub fn committed_offset(client: &mut Client, group: &str, topic: &str) -> i64 {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(name(group)))
        .with_topics(Some(vec![
            offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partition_indexes(vec![0]),
        ]));
    let response: OffsetFetchResponse = client.call(ApiKey::OffsetFetch, 5, &request);
    response.topics[0].partitions[0].committed_offset
}

/// A transactional batch (attributes 0x10) of `producer` with `count` records from `sequence`.
pub fn txn_batch(producer: Producer, sequence: i32, count: usize) -> Vec<u8> {
    let records: Vec<RecordSpec<'_>> = (0..count)
        .map(|_| RecordSpec {
            key: Some(b"k"),
            value: Some(b"v"),
            timestamp_delta: 0,
        })
        .collect();
    let mut batch = encode_batch(
        now_ms(),
        &records,
        ProducerSpec {
            producer_id: producer.id,
            producer_epoch: producer.epoch,
            base_sequence: sequence,
        },
    );
    set_attributes(&mut batch, 0x10);
    batch
}

pub fn set_attributes(batch: &mut [u8], attributes: i16) {
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Every batch of a fetched record set: (is control, producer id, epoch, the marker's type if a
/// control batch, record count).
pub fn batches(bytes: &Bytes) -> Vec<(bool, i64, i16, Option<i16>, usize)> {
    let mut out = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let header = parse_header(&bytes[position..]).unwrap();
        let batch = &bytes[position..position + header.total_bytes()];
        let records = decode_records(batch).unwrap();
        let marker = header
            .is_control()
            .then(|| i16::from_be_bytes(records[0].key.unwrap()[2..4].try_into().unwrap()));
        if header.is_control() {
            assert_eq!(
                header.attributes, 0x30,
                "a marker is transactional and control"
            );
            assert_eq!(header.base_sequence, -1);
            assert_eq!(records[0].value.unwrap(), &[0u8, 0, 0, 0, 0, 0][..]);
        }
        out.push((
            header.is_control(),
            header.producer_id,
            header.producer_epoch,
            marker,
            records.len(),
        ));
        position += header.total_bytes();
    }
    out
}

pub const UNSTABLE_OFFSET_COMMIT: i16 = 88;

/// A plain OffsetCommit (v8, no member: a simple consumer group) of one partition; its error.
pub fn offset_commit(client: &mut Client, group: &str, topic: &str, offset: i64) -> i16 {
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(name(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(name(""))
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(-1),
                ]),
        ]);
    let response: OffsetCommitResponse = client.call(ApiKey::OffsetCommit, 8, &request);
    response.topics[0].partitions[0].error_code
}

/// One partition of an OffsetFetch answer: (topic, partition, error code, committed offset).
pub type FetchedOffset = (String, i32, i16, i64);

/// OffsetFetch at `version` (v7: one group; v8+: the groups layout) of `group`'s `partitions`
/// of `topic` (none: every committed partition), with `require_stable`; the partitions
/// answered, after checking the group-level error is 0.
pub fn fetch_offsets(
    client: &mut Client,
    version: i16,
    group: &str,
    topic: &str,
    partitions: Option<&[i32]>,
    require_stable: bool,
) -> Vec<FetchedOffset> {
    if version < 8 {
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(name(group)))
            .with_topics(partitions.map(|partitions| {
                vec![offset_fetch_request::OffsetFetchRequestTopic::default()
                    .with_name(topic_name(topic))
                    .with_partition_indexes(partitions.to_vec())]
            }))
            .with_require_stable(require_stable);
        let response: OffsetFetchResponse = client.call(ApiKey::OffsetFetch, version, &request);
        assert_eq!(response.error_code, 0, "group-level error");
        return response
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    let topic = t.name.0.to_string();
                    (topic, p.partition_index, p.error_code, p.committed_offset)
                })
            })
            .collect();
    }
    let request = OffsetFetchRequest::default()
        .with_groups(vec![
            offset_fetch_request::OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(name(group)))
                .with_topics(partitions.map(|partitions| {
                    vec![offset_fetch_request::OffsetFetchRequestTopics::default()
                        .with_name(topic_name(topic))
                        .with_partition_indexes(partitions.to_vec())]
                })),
        ])
        .with_require_stable(require_stable);
    let response: OffsetFetchResponse = client.call(ApiKey::OffsetFetch, version, &request);
    let group = &response.groups[0];
    assert_eq!(group.error_code, 0, "group-level error");
    group
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                let topic = t.name.0.to_string();
                (topic, p.partition_index, p.error_code, p.committed_offset)
            })
        })
        .collect()
}

/// DescribeTransactions of one id: its state's name ("Ongoing", "CompleteCommit", …).
pub fn txn_state(client: &mut Client, txn: &str) -> String {
    let request = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(name(txn))]);
    let response: DescribeTransactionsResponse =
        client.call(ApiKey::DescribeTransactions, 0, &request);
    let state = &response.transaction_states[0];
    assert_eq!(state.error_code, 0);
    state.transaction_state.to_string()
}

/// Polls DescribeTransactions until `txn` is in `state`; fails the test (with the last state
/// seen) if it is not within 20 s: a coordinator that never finishes is the failure, not a slow one.
pub fn wait_for_txn_state(client: &mut Client, txn: &str, state: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let seen = txn_state(client, txn);
        if seen == state {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{txn} stayed {seen}, never reached {state}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
