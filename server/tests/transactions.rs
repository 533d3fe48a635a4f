//! The transaction coordinator against the real binary (issue #18): FindCoordinator for
//! TRANSACTION keys, InitProducerId with a transactional id, AddPartitionsToTxn, AddOffsetsToTxn,
//! TxnOffsetCommit, EndTxn with the markers it writes, fencing, timeouts, the produce-side
//! checks, DescribeTransactions / ListTransactions, and the state across a SIGKILL and restart.

mod common;

use std::time::{Duration, Instant};

use common::client::{now_ms, str_bytes as name, Client};
use common::txn::*;
use common::{restart, start_broker};
use kafka_protocol::messages::*;
use ringtail_engine::batch::{encode_batch, ProducerSpec, RecordSpec};

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
    assert_eq!(client.create_topic("in", 1, &[]), 0);
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
    assert_eq!(client.create_topic("in", 1, &[]), 0);
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
    // Its idempotent (non-transactional) batches too: the ABORT marker raised the partition's
    // epoch of the producer id (Kafka's ProducerAppendInfo.appendEndTxnMarker).
    let mut idempotent = txn_batch(zombie, 1, 1);
    set_attributes(&mut idempotent, 0);
    assert_eq!(
        client.produce("out", 0, idempotent).error_code,
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
    assert_eq!(client.create_topic("in", 1, &[]), 0);
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
    client.transactional_id = Some("t6".to_string());
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
