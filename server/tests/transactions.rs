//! The transaction coordinator against the real binary (issue #18): FindCoordinator for
//! TRANSACTION keys, InitProducerId with a transactional id, AddPartitionsToTxn, AddOffsetsToTxn,
//! TxnOffsetCommit, EndTxn with the markers it writes, fencing, timeouts, the produce-side
//! checks, DescribeTransactions / ListTransactions, and the state across a SIGKILL and restart.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::client::{now_ms, str_bytes as name, topic_name, Client};
use common::{restart, start_broker};
use kafka_protocol::messages::*;
use ringtail_engine::batch::{
    decode_records, encode_batch, parse_header, ProducerSpec, RecordSpec,
};

const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_RECORD: i16 = 87;
const PRODUCER_FENCED: i16 = 90;
const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;

/// A transactional producer as the tests drive it.
#[derive(Clone, Copy, Debug)]
struct Producer {
    id: i64,
    epoch: i16,
}

fn init(client: &mut Client, transactional_id: &str, timeout_ms: i32) -> (i16, Producer) {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(name(transactional_id))))
        .with_transaction_timeout_ms(timeout_ms)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let response: InitProducerIdResponse = client.call(ApiKey::InitProducerId, 4, &request);
    (
        response.error_code,
        Producer {
            id: response.producer_id.0,
            epoch: response.producer_epoch,
        },
    )
}

fn add_partitions(
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

fn add_offsets(client: &mut Client, txn: &str, producer: Producer, group: &str) -> i16 {
    let request = AddOffsetsToTxnRequest::default()
        .with_transactional_id(TransactionalId(name(txn)))
        .with_producer_id(ProducerId(producer.id))
        .with_producer_epoch(producer.epoch)
        .with_group_id(GroupId(name(group)));
    let response: AddOffsetsToTxnResponse = client.call(ApiKey::AddOffsetsToTxn, 3, &request);
    response.error_code
}

fn txn_offset_commit(
    client: &mut Client,
    txn: &str,
    producer: Producer,
    group: &str,
    topic: &str,
    offset: i64,
) -> i16 {
    let request = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(name(txn)))
        .with_group_id(GroupId(name(group)))
        .with_producer_id(ProducerId(producer.id))
        .with_producer_epoch(producer.epoch)
        .with_generation_id(-1)
        .with_member_id(name(""))
        .with_topics(vec![
            txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![
                    txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(-1),
                ]),
        ]);
    let response: TxnOffsetCommitResponse = client.call(ApiKey::TxnOffsetCommit, 3, &request);
    response.topics[0].partitions[0].error_code
}

fn end_txn(client: &mut Client, txn: &str, producer: Producer, commit: bool) -> i16 {
    let request = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(name(txn)))
        .with_producer_id(ProducerId(producer.id))
        .with_producer_epoch(producer.epoch)
        .with_committed(commit);
    let response: EndTxnResponse = client.call(ApiKey::EndTxn, 3, &request);
    response.error_code
}

fn committed_offset(client: &mut Client, group: &str, topic: &str) -> i64 {
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
fn txn_batch(producer: Producer, sequence: i32, count: usize) -> Vec<u8> {
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

fn set_attributes(batch: &mut [u8], attributes: i16) {
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Every batch of a fetched record set: (is control, producer id, epoch, the marker's type if a
/// control batch, record count).
fn batches(bytes: &Bytes) -> Vec<(bool, i64, i16, Option<i16>, usize)> {
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

#[test]
fn find_coordinator_answers_transaction_keys() {
    // librdkafka and the Java client look up the transaction coordinator with key_type 1.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    let request = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_coordinator_keys(vec![name("my-txn")]);
    let response: FindCoordinatorResponse = client.call(ApiKey::FindCoordinator, 4, &request);
    assert_eq!(response.coordinators[0].error_code, 0);
    assert_eq!(response.coordinators[0].port, i32::from(broker.port));
    let old: FindCoordinatorResponse = client.call(
        ApiKey::FindCoordinator,
        3,
        &FindCoordinatorRequest::default()
            .with_key(name("my-txn"))
            .with_key_type(1),
    );
    assert_eq!(old.error_code, 0);
    assert_eq!(old.port, i32::from(broker.port));
}

#[test]
fn a_committed_transaction_writes_commit_markers_and_its_offsets() {
    // The whole KIP-98 flow: data and offsets in one transaction, a COMMIT marker on the data
    // partition, the offsets visible once committed.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("out", 2, &[]), 0);
    let (error, producer) = init(&mut client, "t1", 60_000);
    assert_eq!(error, 0);
    assert!(producer.id >= 0);
    assert_eq!(producer.epoch, 0);
    assert_eq!(
        add_partitions(&mut client, "t1", producer, "out", &[0]),
        vec![0]
    );
    assert_eq!(
        client
            .produce("out", 0, txn_batch(producer, 0, 3))
            .error_code,
        0
    );
    assert_eq!(add_offsets(&mut client, "t1", producer, "g1"), 0);
    assert_eq!(
        txn_offset_commit(&mut client, "t1", producer, "g1", "in", 42),
        0
    );
    assert_eq!(
        committed_offset(&mut client, "g1", "in"),
        -1,
        "pending until the marker"
    );
    assert_eq!(end_txn(&mut client, "t1", producer, true), 0);
    assert_eq!(committed_offset(&mut client, "g1", "in"), 42);
    let log = batches(&client.fetch_records("out", 0, 0));
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0], (false, producer.id, 0, None, 3));
    assert_eq!(log[1], (true, producer.id, 0, Some(1), 1), "COMMIT marker");
    assert!(
        client.fetch_records("out", 1, 0).is_empty(),
        "no marker where nothing was added"
    );
    assert_eq!(
        end_txn(&mut client, "t1", producer, true),
        0,
        "a retried commit succeeds"
    );
    // The next transaction of the same producer continues its sequences.
    assert_eq!(
        add_partitions(&mut client, "t1", producer, "out", &[0]),
        vec![0]
    );
    assert_eq!(
        client
            .produce("out", 0, txn_batch(producer, 3, 1))
            .error_code,
        0
    );
    assert_eq!(end_txn(&mut client, "t1", producer, true), 0);
}

#[test]
fn an_aborted_transaction_writes_abort_markers_and_drops_its_offsets() {
    // EndTxn(abort): ABORT markers, and the transactional offsets never become committed.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("out", 1, &[]), 0);
    let (_, producer) = init(&mut client, "t2", 60_000);
    assert_eq!(
        add_partitions(&mut client, "t2", producer, "out", &[0]),
        vec![0]
    );
    assert_eq!(
        client
            .produce("out", 0, txn_batch(producer, 0, 2))
            .error_code,
        0
    );
    assert_eq!(add_offsets(&mut client, "t2", producer, "g2"), 0);
    assert_eq!(
        txn_offset_commit(&mut client, "t2", producer, "g2", "in", 7),
        0
    );
    assert_eq!(end_txn(&mut client, "t2", producer, false), 0);
    assert_eq!(committed_offset(&mut client, "g2", "in"), -1);
    let log = batches(&client.fetch_records("out", 0, 0));
    assert_eq!(log[1], (true, producer.id, 0, Some(0), 1), "ABORT marker");
    assert_eq!(
        end_txn(&mut client, "t2", producer, true),
        INVALID_TXN_STATE,
        "commit after abort"
    );
}

#[test]
fn a_new_producer_fences_the_old_one_and_aborts_its_transaction() {
    // Zombie fencing: InitProducerId again bumps the epoch; the ongoing transaction is aborted
    // (an ABORT marker with the bumped epoch), and the old epoch is refused everywhere.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("out", 1, &[]), 0);
    let (_, zombie) = init(&mut client, "t3", 60_000);
    assert_eq!(
        add_partitions(&mut client, "t3", zombie, "out", &[0]),
        vec![0]
    );
    assert_eq!(
        client.produce("out", 0, txn_batch(zombie, 0, 1)).error_code,
        0
    );
    let (error, current) = init(&mut client, "t3", 60_000);
    assert_eq!(error, 0);
    assert_eq!(current.id, zombie.id);
    assert!(current.epoch > zombie.epoch);
    let log = batches(&client.fetch_records("out", 0, 0));
    assert_eq!(
        log[1].3,
        Some(0),
        "the zombie's transaction was aborted: {log:?}"
    );
    assert!(
        log[1].2 > zombie.epoch,
        "the marker carries the fencing epoch"
    );
    assert_eq!(end_txn(&mut client, "t3", zombie, true), PRODUCER_FENCED);
    assert_eq!(
        add_partitions(&mut client, "t3", zombie, "out", &[0]),
        vec![PRODUCER_FENCED]
    );
    assert_eq!(add_offsets(&mut client, "t3", zombie, "g"), PRODUCER_FENCED);
    assert_eq!(
        client.produce("out", 0, txn_batch(zombie, 1, 1)).error_code,
        INVALID_PRODUCER_EPOCH
    );
    let other = Producer {
        id: current.id + 1,
        epoch: current.epoch,
    };
    assert_eq!(
        end_txn(&mut client, "t3", other, true),
        INVALID_PRODUCER_ID_MAPPING
    );
    // KIP-360: the current producer may bump its own epoch; the zombie may not.
    let bump = |producer: Producer| {
        InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(name("t3"))))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(producer.id))
            .with_producer_epoch(producer.epoch)
    };
    let refused: InitProducerIdResponse = client.call(ApiKey::InitProducerId, 4, &bump(zombie));
    assert_eq!(refused.error_code, PRODUCER_FENCED);
    let old_client: InitProducerIdResponse = client.call(ApiKey::InitProducerId, 3, &bump(zombie));
    assert_eq!(
        old_client.error_code, INVALID_PRODUCER_EPOCH,
        "v3 predates PRODUCER_FENCED"
    );
    let bumped: InitProducerIdResponse = client.call(ApiKey::InitProducerId, 4, &bump(current));
    assert_eq!(bumped.error_code, 0);
    assert_eq!(bumped.producer_epoch, current.epoch + 1);
}

#[test]
fn produce_refuses_batches_outside_the_transaction_and_client_markers() {
    // KIP-890 part 1's server-side defence, and Kafka's refusal of control batches from clients.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("out", 2, &[]), 0);
    let (_, producer) = init(&mut client, "t4", 60_000);
    assert_eq!(
        client
            .produce("out", 0, txn_batch(producer, 0, 1))
            .error_code,
        INVALID_TXN_STATE,
        "no transaction started"
    );
    assert_eq!(
        add_partitions(&mut client, "t4", producer, "out", &[0]),
        vec![0]
    );
    assert_eq!(
        client
            .produce("out", 1, txn_batch(producer, 0, 1))
            .error_code,
        INVALID_TXN_STATE,
        "partition 1 not added"
    );
    assert_eq!(
        client
            .produce("out", 0, txn_batch(producer, 0, 1))
            .error_code,
        0
    );
    let mut marker = txn_batch(producer, -1, 1);
    set_attributes(&mut marker, 0x30);
    assert_eq!(client.produce("out", 0, marker).error_code, INVALID_RECORD);
    assert_eq!(end_txn(&mut client, "t4", producer, true), 0);
    assert_eq!(
        client
            .produce("out", 0, txn_batch(producer, 1, 1))
            .error_code,
        INVALID_TXN_STATE,
        "after the commit, until partitions are added again"
    );
    assert_eq!(
        add_partitions(&mut client, "t4", producer, "nope", &[0]),
        vec![UNKNOWN_TOPIC_OR_PARTITION]
    );
    // Plain and idempotent producers are untouched.
    let plain = encode_batch(
        now_ms(),
        &[RecordSpec {
            key: None,
            value: Some(b"x"),
            timestamp_delta: 0,
        }],
        ProducerSpec::default(),
    );
    assert_eq!(client.produce("out", 1, plain).error_code, 0);
}

#[test]
fn transaction_timeouts_are_bounded_and_abort_with_a_fence() {
    // transaction.timeout.ms above --transaction-max-timeout-ms is refused; a transaction that
    // outlives its timeout is aborted by the coordinator and its producer fenced.
    let broker = start_broker(&["--transaction-max-timeout-ms", "5000"]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("out", 1, &[]), 0);
    assert_eq!(init(&mut client, "t5", 5001).0, INVALID_TRANSACTION_TIMEOUT);
    assert_eq!(init(&mut client, "t5", 0).0, INVALID_TRANSACTION_TIMEOUT);
    let (error, producer) = init(&mut client, "t5", 300);
    assert_eq!(error, 0);
    assert_eq!(
        add_partitions(&mut client, "t5", producer, "out", &[0]),
        vec![0]
    );
    assert_eq!(
        client
            .produce("out", 0, txn_batch(producer, 0, 1))
            .error_code,
        0
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let log = loop {
        let log = batches(&client.fetch_records("out", 0, 0));
        if log.len() == 2 || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        log.len(),
        2,
        "the coordinator aborted the transaction: {log:?}"
    );
    assert_eq!(log[1].3, Some(0));
    assert_eq!(end_txn(&mut client, "t5", producer, true), PRODUCER_FENCED);
}

#[test]
fn describe_and_list_transactions_show_the_coordinators_state() {
    // kafka-transactions.sh describe / list.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("out", 2, &[]), 0);
    let (_, first) = init(&mut client, "alpha", 60_000);
    let (_, second) = init(&mut client, "beta", 60_000);
    assert_eq!(
        add_partitions(&mut client, "alpha", first, "out", &[1, 0]),
        vec![0, 0]
    );
    let request = DescribeTransactionsRequest::default().with_transactional_ids(vec![
        TransactionalId(name("alpha")),
        TransactionalId(name("missing")),
    ]);
    let described: DescribeTransactionsResponse =
        client.call(ApiKey::DescribeTransactions, 0, &request);
    let alpha = &described.transaction_states[0];
    assert_eq!(alpha.error_code, 0);
    assert_eq!(alpha.transaction_state.as_str(), "Ongoing");
    assert_eq!(alpha.producer_id, ProducerId(first.id));
    assert_eq!(alpha.transaction_timeout_ms, 60_000);
    assert!(alpha.transaction_start_time_ms > 0);
    assert_eq!(alpha.topics[0].partitions, vec![0, 1]);
    assert_eq!(
        described.transaction_states[1].error_code,
        TRANSACTIONAL_ID_NOT_FOUND
    );
    let list = |client: &mut Client, request: ListTransactionsRequest| {
        let response: ListTransactionsResponse = client.call(ApiKey::ListTransactions, 2, &request);
        let mut ids: Vec<String> = response
            .transaction_states
            .iter()
            .map(|state| {
                format!(
                    "{}:{}",
                    state.transactional_id.0.as_str(),
                    state.transaction_state.as_str()
                )
            })
            .collect();
        ids.sort();
        (ids, response.unknown_state_filters.len())
    };
    assert_eq!(
        list(
            &mut client,
            ListTransactionsRequest::default().with_duration_filter(-1)
        )
        .0,
        vec!["alpha:Ongoing", "beta:Empty"]
    );
    let ongoing = ListTransactionsRequest::default()
        .with_state_filters(vec![name("Ongoing"), name("Bogus")])
        .with_duration_filter(-1);
    assert_eq!(
        list(&mut client, ongoing),
        (vec!["alpha:Ongoing".to_string()], 1)
    );
    let by_producer = ListTransactionsRequest::default()
        .with_producer_id_filters(vec![ProducerId(second.id)])
        .with_duration_filter(-1);
    assert_eq!(list(&mut client, by_producer).0, vec!["beta:Empty"]);
    let by_pattern = ListTransactionsRequest::default()
        .with_transactional_id_pattern(Some(name("al.*")))
        .with_duration_filter(-1);
    assert_eq!(list(&mut client, by_pattern).0, vec!["alpha:Ongoing"]);
}

#[test]
fn transactions_and_pending_offsets_survive_a_sigkill() {
    // The state is in __transaction_state and the pending offsets in __consumer_offsets: after
    // a SIGKILL the ongoing transaction is still there, and its commit writes its marker and
    // makes its offsets committed.
    let mut broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("out", 1, &[]), 0);
    let (_, producer) = init(&mut client, "t6", 60_000);
    assert_eq!(
        add_partitions(&mut client, "t6", producer, "out", &[0]),
        vec![0]
    );
    assert_eq!(
        client
            .produce("out", 0, txn_batch(producer, 0, 2))
            .error_code,
        0
    );
    assert_eq!(add_offsets(&mut client, "t6", producer, "g6"), 0);
    assert_eq!(
        txn_offset_commit(&mut client, "t6", producer, "g6", "in", 99),
        0
    );
    drop(client);
    restart(&mut broker);
    let mut client = Client::connect(&broker);
    assert_eq!(
        committed_offset(&mut client, "g6", "in"),
        -1,
        "still pending"
    );
    assert_eq!(
        client
            .produce("out", 0, txn_batch(producer, 2, 1))
            .error_code,
        0,
        "the transaction still holds its partition"
    );
    assert_eq!(end_txn(&mut client, "t6", producer, true), 0);
    assert_eq!(committed_offset(&mut client, "g6", "in"), 99);
    let log = batches(&client.fetch_records("out", 0, 0));
    assert_eq!(log.last().unwrap().3, Some(1), "{log:?}");
    // And the completed state and committed offset survive another restart.
    drop(client);
    restart(&mut broker);
    let mut client = Client::connect(&broker);
    assert_eq!(committed_offset(&mut client, "g6", "in"), 99);
    let (error, next) = init(&mut client, "t6", 60_000);
    assert_eq!(error, 0);
    assert_eq!((next.id, next.epoch), (producer.id, producer.epoch + 1));
}
