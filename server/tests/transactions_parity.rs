//! The transaction coordinator's answers where Ringtail differed from Kafka (found by review):
//! each test names the rule of Kafka's TransactionCoordinator (transaction version 1, the one
//! Ringtail advertises: `transaction.version` not finalized, EndTxn up to v4) it checks.

mod common;

use common::client::{str_bytes as name, Client};
use common::start_broker;
use common::txn::*;
use kafka_protocol::messages::*;

const INVALID_REQUEST: i16 = 42;

#[test]
fn end_txn_of_an_empty_transaction_is_an_invalid_state() {
    // Kafka (TV1): Empty accepts neither commit nor abort (endTransaction: `case Empty =>
    // INVALID_TXN_STATE`); only TV2 clients (EndTxn v5+) may abort an Empty one, to bump the
    // epoch. An abort was answered success.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    let (error, producer) = init(&mut client, "empty", 60_000);
    assert_eq!(error, 0);
    assert_eq!(
        end_txn(&mut client, "empty", producer, false),
        INVALID_TXN_STATE
    );
    assert_eq!(
        end_txn(&mut client, "empty", producer, true),
        INVALID_TXN_STATE
    );
    assert_eq!(txn_state(&mut client, "empty"), "Empty");
}

#[test]
fn a_producer_epoch_above_the_coordinators_is_fenced() {
    // Kafka: any epoch other than the coordinator's is PRODUCER_FENCED on AddPartitionsToTxn,
    // AddOffsetsToTxn and EndTxn (INVALID_PRODUCER_EPOCH only to versions before 2, which
    // predate PRODUCER_FENCED). A higher epoch got INVALID_PRODUCER_EPOCH at every version.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("out", 1, &[]), 0);
    let (error, producer) = init(&mut client, "ahead", 60_000);
    assert_eq!(error, 0);
    let ahead = Producer {
        id: producer.id,
        epoch: producer.epoch + 1,
    };
    for version in 0..=3i16 {
        let expected = if version < 2 {
            INVALID_PRODUCER_EPOCH
        } else {
            PRODUCER_FENCED
        };
        let add = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(name("ahead")))
            .with_v3_and_below_producer_id(ProducerId(ahead.id))
            .with_v3_and_below_producer_epoch(ahead.epoch)
            .with_v3_and_below_topics(vec![
                add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                    .with_name(common::client::topic_name("out"))
                    .with_partitions(vec![0]),
            ]);
        let added: AddPartitionsToTxnResponse =
            client.call(ApiKey::AddPartitionsToTxn, version, &add);
        assert_eq!(
            added.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
            expected,
            "AddPartitionsToTxn v{version}"
        );
        let add_offsets = AddOffsetsToTxnRequest::default()
            .with_transactional_id(TransactionalId(name("ahead")))
            .with_producer_id(ProducerId(ahead.id))
            .with_producer_epoch(ahead.epoch)
            .with_group_id(GroupId(name("g")));
        let added: AddOffsetsToTxnResponse =
            client.call(ApiKey::AddOffsetsToTxn, version, &add_offsets);
        assert_eq!(added.error_code, expected, "AddOffsetsToTxn v{version}");
    }
    // An ongoing transaction, so EndTxn's state check can't be what answers.
    assert_eq!(
        add_partitions(&mut client, "ahead", producer, "out", &[0]),
        vec![0]
    );
    for version in 0..=4i16 {
        let expected = if version < 2 {
            INVALID_PRODUCER_EPOCH
        } else {
            PRODUCER_FENCED
        };
        let end = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(name("ahead")))
            .with_producer_id(ProducerId(ahead.id))
            .with_producer_epoch(ahead.epoch)
            .with_committed(true);
        let ended: EndTxnResponse = client.call(ApiKey::EndTxn, version, &end);
        assert_eq!(ended.error_code, expected, "EndTxn v{version}");
    }
    assert_eq!(txn_state(&mut client, "ahead"), "Ongoing");
    assert_eq!(end_txn(&mut client, "ahead", producer, true), 0);
}

#[test]
fn an_empty_transactional_id_is_an_invalid_request() {
    // Kafka: a null transactional id is an idempotent producer's InitProducerId, an empty one
    // INVALID_REQUEST (handleInitProducerId); AddPartitionsToTxn, AddOffsetsToTxn and EndTxn
    // with an empty id are INVALID_REQUEST too. The empty id was taken for no id at all.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("out", 1, &[]), 0);
    let (error, producer) = init(&mut client, "", 60_000);
    assert_eq!(error, INVALID_REQUEST);
    assert_eq!((producer.id, producer.epoch), (-1, -1));
    // A real producer id, so only the empty id is wrong.
    let (error, producer) = init(&mut client, "real", 60_000);
    assert_eq!(error, 0);
    assert_eq!(
        add_partitions(&mut client, "", producer, "out", &[0]),
        vec![INVALID_REQUEST]
    );
    assert_eq!(add_offsets(&mut client, "", producer, "g"), INVALID_REQUEST);
    assert_eq!(end_txn(&mut client, "", producer, true), INVALID_REQUEST);
    assert_eq!(end_txn(&mut client, "", producer, false), INVALID_REQUEST);
}

#[test]
fn a_marker_refused_for_a_newer_epoch_on_the_partition_does_not_stall_the_transaction() {
    // A partition refuses a marker older than the producer's epoch there (Kafka's
    // appendEndTxnMarker). An idempotent batch naming a transactional producer's id at a later
    // epoch raises that epoch (no coordinator check applies to non-transactional batches, in
    // Kafka neither); the producer's own transactional batch there is then refused, so it has
    // nothing open on the partition, and the coordinator's marker is refused. The transaction
    // must still complete, not be retried for ever with its id answering
    // CONCURRENT_TRANSACTIONS.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    let mut other = Client::connect(&broker);
    assert_eq!(client.create_topic("out", 1, &[]), 0);
    let (error, producer) = init(&mut client, "raced", 60_000);
    assert_eq!(error, 0);
    let mut ahead = txn_batch(
        Producer {
            id: producer.id,
            epoch: producer.epoch + 5,
        },
        0,
        1,
    );
    set_attributes(&mut ahead, 0);
    assert_eq!(other.produce("out", 0, ahead).error_code, 0);
    assert_eq!(
        add_partitions(&mut client, "raced", producer, "out", &[0]),
        vec![0]
    );
    assert_eq!(
        client
            .produce("out", 0, txn_batch(producer, 0, 1))
            .error_code,
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(end_txn(&mut client, "raced", producer, true), 0);
    wait_for_txn_state(&mut client, "raced", "CompleteCommit");
    let log = batches(&client.fetch_records("out", 0, 0));
    assert_eq!(log.len(), 1, "no marker appended: {log:?}");
}

#[test]
fn describe_producers_lists_a_producer_known_only_by_its_marker() {
    // Kafka lists every producer of the partition's producer state (UnifiedLog.activeProducers),
    // one whose only trace there is a transaction marker too (its last sequence -1). A
    // transaction that added the partition and wrote nothing leaves just its marker; that
    // producer was left out.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("out", 1, &[]), 0);
    let (error, producer) = init(&mut client, "marker-only", 60_000);
    assert_eq!(error, 0);
    assert_eq!(
        add_partitions(&mut client, "marker-only", producer, "out", &[0]),
        vec![0]
    );
    assert_eq!(end_txn(&mut client, "marker-only", producer, true), 0);
    wait_for_txn_state(&mut client, "marker-only", "CompleteCommit");
    let log = batches(&client.fetch_records("out", 0, 0));
    assert_eq!(log.len(), 1, "the marker alone: {log:?}");
    let request = DescribeProducersRequest::default().with_topics(vec![
        describe_producers_request::TopicRequest::default()
            .with_name(common::client::topic_name("out"))
            .with_partition_indexes(vec![0]),
    ]);
    let response: DescribeProducersResponse = client.call(ApiKey::DescribeProducers, 0, &request);
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    let listed: Vec<(i64, i32, i32)> = partition
        .active_producers
        .iter()
        .map(|state| {
            (
                state.producer_id.0,
                state.producer_epoch,
                state.last_sequence,
            )
        })
        .collect();
    assert_eq!(listed, vec![(producer.id, i32::from(producer.epoch), -1)]);
}

#[test]
fn describe_producers_reports_the_open_transactions_start_and_the_last_timestamp() {
    // Kafka's DescribeProducers answers each producer's currentTxnFirstOffset (-1 with no
    // transaction open on the partition) and lastTimestamp (max timestamp of its last batch or
    // marker). Both were always -1.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("out", 1, &[]), 0);
    let (error, producer) = init(&mut client, "open", 60_000);
    assert_eq!(error, 0);
    assert_eq!(
        add_partitions(&mut client, "open", producer, "out", &[0]),
        vec![0]
    );
    let first = txn_batch(producer, 0, 2);
    assert_eq!(client.produce("out", 0, first).error_code, 0);
    let second = txn_batch(producer, 2, 1);
    // The record batch's maxTimestamp field (bytes 35..43 of its header).
    let second_max_timestamp = i64::from_be_bytes(second[35..43].try_into().unwrap());
    assert_eq!(client.produce("out", 0, second).error_code, 0);
    let request = DescribeProducersRequest::default().with_topics(vec![
        describe_producers_request::TopicRequest::default()
            .with_name(common::client::topic_name("out"))
            .with_partition_indexes(vec![0]),
    ]);
    let describe = |client: &mut Client| -> Vec<(i64, i64, i64)> {
        let response: DescribeProducersResponse =
            client.call(ApiKey::DescribeProducers, 0, &request);
        let partition = &response.topics[0].partitions[0];
        assert_eq!(partition.error_code, 0);
        partition
            .active_producers
            .iter()
            .map(|state| {
                (
                    state.producer_id.0,
                    state.current_txn_start_offset,
                    state.last_timestamp,
                )
            })
            .collect()
    };
    assert_eq!(
        describe(&mut client),
        vec![(producer.id, 0, second_max_timestamp)]
    );
    assert_eq!(end_txn(&mut client, "open", producer, true), 0);
    wait_for_txn_state(&mut client, "open", "CompleteCommit");
    let listed = describe(&mut client);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0, producer.id);
    assert_eq!(listed[0].1, -1, "the transaction is over: {listed:?}");
    assert!(
        listed[0].2 >= second_max_timestamp,
        "the marker's timestamp or the batch's: {listed:?}"
    );
}

/// AddPartitionsToTxn v4 with verify_only (the broker-to-broker check of KIP-890 part 1): each
/// asked partition's error code, by partition index.
fn verify_partitions(
    client: &mut Client,
    transactional_id: &str,
    producer: Producer,
    topic: &str,
    partitions: &[i32],
) -> Vec<(i32, i16)> {
    let request = AddPartitionsToTxnRequest::default().with_transactions(vec![
        add_partitions_to_txn_request::AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(name(transactional_id)))
            .with_producer_id(ProducerId(producer.id))
            .with_producer_epoch(producer.epoch)
            .with_verify_only(true)
            .with_topics(vec![
                add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                    .with_name(common::client::topic_name(topic))
                    .with_partitions(partitions.to_vec()),
            ]),
    ]);
    let response: AddPartitionsToTxnResponse = client.call(ApiKey::AddPartitionsToTxn, 4, &request);
    assert_eq!(response.error_code, 0);
    response.results_by_transaction[0].topic_results[0]
        .results_by_partition
        .iter()
        .map(|result| (result.partition_index, result.partition_error_code))
        .collect()
}

#[test]
fn verifying_a_partition_outside_the_transaction_is_abortable() {
    // Kafka's handleVerifyPartitionsInTransaction: a partition not in the transaction is
    // TRANSACTION_ABORTABLE (the producer aborts and goes on); it was INVALID_TXN_STATE, fatal
    // to the producer.
    const TRANSACTION_ABORTABLE: i16 = 120;
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("out", 2, &[]), 0);
    let (error, producer) = init(&mut client, "verified", 60_000);
    assert_eq!(error, 0);
    assert_eq!(
        verify_partitions(&mut client, "verified", producer, "out", &[0]),
        vec![(0, TRANSACTION_ABORTABLE)],
        "no transaction yet"
    );
    assert_eq!(
        add_partitions(&mut client, "verified", producer, "out", &[0]),
        vec![0]
    );
    let mut answers = verify_partitions(&mut client, "verified", producer, "out", &[0, 1]);
    answers.sort_unstable();
    assert_eq!(answers, vec![(0, 0), (1, TRANSACTION_ABORTABLE)]);
}
