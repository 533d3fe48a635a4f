//! Producers the broker stops remembering. Idempotent producers' state expires (Kafka's
//! producer.id.expiration.ms): a partition forgets a producer whose last batch is that old, unless
//! the producer holds an open transaction there. Idle transactional ids expire at the coordinator
//! (transactional.id.expiration.ms). Without them every producer id that ever wrote stays in
//! memory and in every snapshot, and every transactional id for ever, up to the coordinator's cap.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::client::{now_ms, topic_name, Client};
use common::txn::{
    add_partitions, end_txn, init, set_attributes, txn_state, Producer, TRANSACTIONAL_ID_NOT_FOUND,
};
use common::{restart, restart_with, start_broker};
use kafka_protocol::messages::*;
use ringtail_engine::batch::{encode_batch, ProducerSpec, RecordSpec};

const HOUR_MS: i64 = 60 * 60 * 1000;

/// The producer ids DescribeProducers lists for partition 0 of `topic`.
fn producers_of(client: &mut Client, topic: &str) -> BTreeSet<i64> {
    let request = DescribeProducersRequest::default().with_topics(vec![
        describe_producers_request::TopicRequest::default()
            .with_name(topic_name(topic))
            .with_partition_indexes(vec![0]),
    ]);
    let response: DescribeProducersResponse = client.call(ApiKey::DescribeProducers, 0, &request);
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    (partition.active_producers.iter())
        .map(|producer| producer.producer_id.0)
        .collect()
}

/// Polls until DescribeProducers no longer lists `gone` (expiry runs on the shard's own period).
fn wait_until_forgotten(client: &mut Client, topic: &str, gone: i64) -> BTreeSet<i64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed = producers_of(client, topic);
        if !listed.contains(&gone) {
            return listed;
        }
        assert!(
            Instant::now() < deadline,
            "producer {gone} never expired: {listed:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One record of `producer` at `sequence`, stamped `timestamp_ms`.
fn batch(producer: Producer, sequence: i32, timestamp_ms: i64) -> Vec<u8> {
    let record = RecordSpec {
        key: None,
        value: Some(b"v"),
        timestamp_delta: 0,
    };
    let spec = ProducerSpec {
        producer_id: producer.id,
        producer_epoch: producer.epoch,
        base_sequence: sequence,
    };
    encode_batch(timestamp_ms, &[record], spec)
}

#[test]
fn producers_are_forgotten_an_expiration_after_their_last_batch_but_not_mid_transaction() {
    let mut broker = start_broker(&[
        "--producer-id-expiration-ms",
        "3600000",
        "--producer-id-expiration-check-interval-ms",
        "20",
    ]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("idem", 1, &[]), 0);
    let stale = Producer { id: 42, epoch: 0 };
    let fresh = Producer { id: 43, epoch: 0 };
    let two_hours_ago = now_ms() - 2 * HOUR_MS;
    assert_eq!(
        client
            .produce("idem", 0, batch(stale, 0, two_hours_ago))
            .error_code,
        0
    );
    assert_eq!(
        client
            .produce("idem", 0, batch(fresh, 0, now_ms()))
            .error_code,
        0
    );
    // A transactional producer whose open transaction's batch is as old as the stale one's.
    let (error, in_txn) = init(&mut client, "t", 60_000);
    assert_eq!(error, 0);
    assert_eq!(
        add_partitions(&mut client, "t", in_txn, "idem", &[0]),
        vec![0]
    );
    client.transactional_id = Some("t".to_string());
    let mut txn_batch = batch(in_txn, 0, two_hours_ago);
    set_attributes(&mut txn_batch, 0x10);
    assert_eq!(client.produce("idem", 0, txn_batch).error_code, 0);
    client.transactional_id = None;

    let listed = wait_until_forgotten(&mut client, "idem", stale.id);
    assert_eq!(listed, BTreeSet::from([fresh.id, in_txn.id]));
    // The forgotten producer's next batch is taken as a new producer's, as in Kafka (it may
    // follow a retention that deleted all its batches).
    assert_eq!(
        client
            .produce("idem", 0, batch(stale, 1, now_ms()))
            .error_code,
        0
    );
    assert!(producers_of(&mut client, "idem").contains(&stale.id));
    // Its transaction's marker is its last write (Kafka's appendEndTxnMarker sets the entry's
    // last timestamp): the old batch no longer counts, the producer stays an expiration longer.
    assert_eq!(end_txn(&mut client, "t", in_txn, true), 0);
    assert!(producers_of(&mut client, "idem").contains(&in_txn.id));
    // Under a short expiration (after a restart, from what the log and snapshots hold) it goes.
    restart_with(
        &mut broker,
        &[
            "--producer-id-expiration-ms",
            "1000",
            "--producer-id-expiration-check-interval-ms",
            "20",
        ],
    );
    let mut client = Client::connect(&broker);
    wait_until_forgotten(&mut client, "idem", in_txn.id);
}

/// DescribeTransactions of one id: its error code.
fn describe_error(client: &mut Client, txn: &str) -> i16 {
    let request = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(common::client::str_bytes(txn))]);
    let response: DescribeTransactionsResponse =
        client.call(ApiKey::DescribeTransactions, 0, &request);
    response.transaction_states[0].error_code
}

#[test]
fn idle_transactional_ids_are_forgotten_and_stay_forgotten_after_a_restart() {
    let broker = &mut start_broker(&[]);
    let mut client = Client::connect(broker);
    assert_eq!(client.create_topic("out", 1, &[]), 0);
    // "busy" holds a transaction open; "idle" only got its producer id.
    let (error, busy) = init(&mut client, "busy", 60_000);
    assert_eq!(error, 0);
    assert_eq!(
        add_partitions(&mut client, "busy", busy, "out", &[0]),
        vec![0]
    );
    let (error, idle) = init(&mut client, "idle", 60_000);
    assert_eq!(error, 0);
    assert_eq!(init(&mut client, "idle-too", 60_000).0, 0);
    // Then a broker that expires ids a millisecond after their last change.
    restart_with(
        broker,
        &[
            "--transactional-id-expiration-ms",
            "1",
            "--transaction-remove-expired-transaction-cleanup-interval-ms",
            "20",
        ],
    );
    let mut client = Client::connect(broker);
    let deadline = Instant::now() + Duration::from_secs(30);
    while describe_error(&mut client, "idle") != TRANSACTIONAL_ID_NOT_FOUND {
        assert!(Instant::now() < deadline, "the idle id never expired");
        std::thread::sleep(Duration::from_millis(20));
    }
    while describe_error(&mut client, "idle-too") != TRANSACTIONAL_ID_NOT_FOUND {
        assert!(Instant::now() < deadline, "the other idle id never expired");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        txn_state(&mut client, "busy"),
        "Ongoing",
        "never mid-transaction"
    );
    // Its tombstone is in the log: a restart (default expiry: 7 days) does not bring it back.
    restart(broker);
    let mut client = Client::connect(broker);
    for txn in ["idle", "idle-too"] {
        assert_eq!(describe_error(&mut client, txn), TRANSACTIONAL_ID_NOT_FOUND);
    }
    assert_eq!(txn_state(&mut client, "busy"), "Ongoing");
    // The forgotten id starts over with a new producer id.
    let (error, again) = init(&mut client, "idle", 60_000);
    assert_eq!(error, 0);
    assert_ne!(again.id, idle.id);
    assert_eq!(again.epoch, 0);
}
