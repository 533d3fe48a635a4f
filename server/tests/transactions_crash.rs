//! The transaction coordinator across crashes at exact points, and with a topic deleted under a
//! transaction, against the real binary (issue #18).
//!
//! Kill points: a test build aborts at `RINGTAIL_TEST_TXN_CRASH_AFTER_MARKERS=k` (server/src/txn/
//! fault.rs): once the Prepare* state is durable and k of the transaction's n markers are written,
//! in partition order with the offsets log last. After a restart the coordinator must finish the
//! transaction: every marker in the log exactly once, the LSO at the high watermark, a
//! read_committed fetch seeing the committed records (or none of the aborted ones), the group's
//! offsets as the decision says, and a new transaction of the same id working.
#![forbid(unsafe_code)]

mod common;

use std::os::unix::process::ExitStatusExt;

use bytes::Bytes;
use common::client::{str_bytes as name, topic_name, Client};
use common::txn::*;
use common::{restart, start_broker, start_broker_with_env, Broker};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;

/// Data partitions of the transaction; with the offsets log, n = 4 markers.
const PARTITIONS: i32 = 3;
/// Records the transaction writes to each partition.
const RECORDS_PER_PARTITION: usize = 2;
const SIGABRT: i32 = 6;

/// ListOffsets LATEST of one partition under `isolation_level` (1: the LSO).
fn latest(client: &mut Client, topic: &str, partition: i32, isolation_level: i8) -> i64 {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation_level)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(-1)])]);
    let response: ListOffsetsResponse = client.call(ApiKey::ListOffsets, 7, &request);
    let answer = &response.topics[0].partitions[0];
    assert_eq!(answer.error_code, 0);
    answer.offset
}

/// A transaction of "t" over every partition of "out" (records in each) and group "g"'s offset
/// of "in" (previously committed: 1; the transaction's: 7), up to its EndTxn.
fn open_transaction(client: &mut Client) -> Producer {
    assert_eq!(client.create_topic("out", PARTITIONS, &[]), 0);
    assert_eq!(client.create_topic("in", 1, &[]), 0);
    assert_eq!(offset_commit(client, "g", "in", 1), 0);
    let (error, producer) = init(client, "t", 60_000);
    assert_eq!(error, 0);
    let all: Vec<i32> = (0..PARTITIONS).collect();
    assert_eq!(
        add_partitions(client, "t", producer, "out", &all),
        vec![0; all.len()]
    );
    for partition in all {
        let batch = txn_batch(producer, 0, RECORDS_PER_PARTITION);
        assert_eq!(client.produce("out", partition, batch).error_code, 0);
    }
    assert_eq!(add_offsets(client, "t", producer, "g"), 0);
    assert_eq!(txn_offset_commit(client, "t", producer, "g", "in", 7), 0);
    producer
}

/// Sends EndTxn to a broker set to abort at its kill point, and checks that it did: the
/// connection closes unanswered and the process died of SIGABRT.
fn end_txn_into_the_kill_point(broker: &mut Broker, producer: Producer, commit: bool) {
    let mut client = Client::connect(broker);
    let request = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(name("t")))
        .with_producer_id(ProducerId(producer.id))
        .with_producer_epoch(producer.epoch)
        .with_committed(commit);
    let answer: std::io::Result<EndTxnResponse> = client.try_call(ApiKey::EndTxn, 3, &request);
    assert!(answer.is_err(), "EndTxn was answered: {answer:?}");
    let status = broker.child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(SIGABRT),
        "the broker did not stop at its kill point (a release build has no kill points): {status}"
    );
}

/// Control batches of `producer` in a record set: (marker type, epoch) each.
fn markers_of(records: &Bytes, producer: Producer) -> Vec<(Option<i16>, i16)> {
    batches(records)
        .into_iter()
        .filter(|(control, producer_id, ..)| *control && *producer_id == producer.id)
        .map(|(_, _, epoch, marker, _)| (marker, epoch))
        .collect()
}

/// After the restart: the transaction finished as decided, each marker exactly once.
fn check_finished(client: &mut Client, producer: Producer, commit: bool, kill_point: usize) {
    let (state, marker) = match commit {
        true => ("CompleteCommit", 1),
        false => ("CompleteAbort", 0),
    };
    wait_for_txn_state(client, "t", state);
    for partition in 0..PARTITIONS {
        let context = format!("kill point {kill_point}, partition {partition}");
        let records = fetch_isolated(client, "out", partition, 0).records;
        let log = batches(&records);
        assert_eq!(log.len(), 2, "{context}: data then one marker: {log:?}");
        assert_eq!(
            log[0],
            (
                false,
                producer.id,
                producer.epoch,
                None,
                RECORDS_PER_PARTITION
            )
        );
        assert_eq!(
            markers_of(&records, producer),
            vec![(Some(marker), producer.epoch)],
            "{context}"
        );
        let end = latest(client, "out", partition, 0);
        assert_eq!(end, RECORDS_PER_PARTITION as i64 + 1, "{context}");
        assert_eq!(latest(client, "out", partition, 1), end, "{context}: LSO");
        let IsolatedFetch {
            records: committed,
            aborted,
            last_stable_offset: stable,
            ..
        } = fetch_isolated(client, "out", partition, 1);
        assert_eq!(stable, end, "{context}: the fetch's LSO");
        assert_eq!(
            batches(&committed).len(),
            2,
            "{context}: read_committed reads to the end"
        );
        let expected_aborted = match commit {
            true => vec![],
            false => vec![(producer.id, 0)],
        };
        assert_eq!(aborted, expected_aborted, "{context}");
    }
    let offsets_log = fetch_isolated(client, "__consumer_offsets", 0, 0).records;
    assert_eq!(
        markers_of(&offsets_log, producer),
        vec![(Some(marker), producer.epoch)],
        "kill point {kill_point}: the offsets log's marker, once"
    );
    let expected_offset = if commit { 7 } else { 1 };
    assert_eq!(
        fetch_offsets(client, 8, "g", "in", Some(&[0]), true),
        vec![("in".to_string(), 0, 0, expected_offset)],
        "kill point {kill_point}: the group's offset, stable"
    );
}

/// The next transaction of the same id after the restart: fenced epoch + 1, commits.
fn next_transaction_commits(client: &mut Client, producer: Producer) {
    let (error, next) = init(client, "t", 60_000);
    assert_eq!(error, 0);
    assert_eq!((next.id, next.epoch), (producer.id, producer.epoch + 1));
    assert_eq!(add_partitions(client, "t", next, "out", &[0]), vec![0]);
    assert_eq!(
        client.produce("out", 0, txn_batch(next, 0, 1)).error_code,
        0
    );
    assert_eq!(end_txn(client, "t", next, true), 0);
    let end = latest(client, "out", 0, 0);
    assert_eq!(latest(client, "out", 0, 1), end);
}

/// Every kill point of an EndTxn(commit or abort) with 3 partitions and a group: k = 0 (right
/// after Prepare*) to 4 (every marker written, Complete* not yet), each on a fresh broker.
fn crash_at_every_kill_point(commit: bool) {
    let markers = PARTITIONS as usize + 1;
    for kill_point in 0..=markers {
        let value = kill_point.to_string();
        let env = [("RINGTAIL_TEST_TXN_CRASH_AFTER_MARKERS", value.as_str())];
        let mut broker = start_broker_with_env(&[], &env);
        let producer = open_transaction(&mut Client::connect(&broker));
        end_txn_into_the_kill_point(&mut broker, producer, commit);
        restart(&mut broker);
        let mut client = Client::connect(&broker);
        check_finished(&mut client, producer, commit, kill_point);
        next_transaction_commits(&mut client, producer);
    }
}

#[test]
#[cfg_attr(not(debug_assertions), ignore = "needs the debug build's test hooks")]
fn a_commit_killed_between_its_markers_completes_after_a_restart_with_each_marker_once() {
    // PREPARE_COMMIT durable, then a crash after 0..=4 of the 4 markers.
    crash_at_every_kill_point(true);
}

#[test]
#[cfg_attr(not(debug_assertions), ignore = "needs the debug build's test hooks")]
fn an_abort_killed_between_its_markers_completes_after_a_restart_with_each_marker_once() {
    // PREPARE_ABORT durable, then a crash after 0..=4 of the 4 markers.
    crash_at_every_kill_point(false);
}

fn delete_topic(client: &mut Client, topic: &str) -> i16 {
    let request = DeleteTopicsRequest::default()
        .with_topic_names(vec![topic_name(topic)])
        .with_timeout_ms(10_000);
    let response: DeleteTopicsResponse = client.call(ApiKey::DeleteTopics, 5, &request);
    response.responses[0].error_code
}

#[test]
fn a_topic_deleted_under_a_transaction_does_not_hold_up_its_end() {
    // Kafka skips the markers of deleted partitions; the coordinator must not retry them for
    // ever. EndTxn completes, the live partition gets its marker, and the persisted state
    // replays after a restart: the next transaction of the id works.
    let mut broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("doomed", 2, &[]), 0);
    assert_eq!(client.create_topic("kept", 1, &[]), 0);
    let (_, producer) = init(&mut client, "t", 60_000);
    assert_eq!(
        add_partitions(&mut client, "t", producer, "doomed", &[0, 1]),
        vec![0, 0]
    );
    assert_eq!(
        add_partitions(&mut client, "t", producer, "kept", &[0]),
        vec![0]
    );
    for (topic, partition) in [("doomed", 0), ("doomed", 1), ("kept", 0)] {
        let batch = txn_batch(producer, 0, 1);
        assert_eq!(client.produce(topic, partition, batch).error_code, 0);
    }
    assert_eq!(delete_topic(&mut client, "doomed"), 0);
    assert_eq!(end_txn(&mut client, "t", producer, true), 0);
    assert_eq!(txn_state(&mut client, "t"), "CompleteCommit");
    let kept = client.fetch_records("kept", 0, 0);
    assert_eq!(markers_of(&kept, producer), vec![(Some(1), producer.epoch)]);
    assert_eq!(
        latest(&mut client, "kept", 0, 1),
        2,
        "the LSO passed the marker"
    );

    drop(client);
    restart(&mut broker);
    let mut client = Client::connect(&broker);
    assert_eq!(txn_state(&mut client, "t"), "CompleteCommit");
    let (error, next) = init(&mut client, "t", 60_000);
    assert_eq!(error, 0);
    assert_eq!(next.epoch, producer.epoch + 1);
    assert_eq!(
        client.create_topic("doomed", 1, &[]),
        0,
        "the name again, a new topic"
    );
    assert_eq!(
        add_partitions(&mut client, "t", next, "doomed", &[0]),
        vec![0]
    );
    assert_eq!(
        client
            .produce("doomed", 0, txn_batch(next, 0, 1))
            .error_code,
        0
    );
    assert_eq!(end_txn(&mut client, "t", next, true), 0);
    let recreated = client.fetch_records("doomed", 0, 0);
    assert_eq!(markers_of(&recreated, next), vec![(Some(1), next.epoch)]);
}

#[test]
#[cfg_attr(not(debug_assertions), ignore = "needs the debug build's test hooks")]
fn a_prepared_transaction_on_a_deleted_topic_completes_after_a_crash() {
    // The topic is deleted while the transaction is open; the broker dies right after writing
    // PREPARE_COMMIT (kill point 0). The restarted coordinator replays the prepared state with
    // the deleted partition in it, skips that marker and completes.
    let mut broker = start_broker_with_env(&[], &[("RINGTAIL_TEST_TXN_CRASH_AFTER_MARKERS", "0")]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("doomed", 1, &[]), 0);
    assert_eq!(client.create_topic("out", PARTITIONS, &[]), 0);
    let (_, producer) = init(&mut client, "t", 60_000);
    assert_eq!(
        add_partitions(&mut client, "t", producer, "doomed", &[0]),
        vec![0]
    );
    assert_eq!(
        add_partitions(&mut client, "t", producer, "out", &[0]),
        vec![0]
    );
    assert_eq!(
        client
            .produce("doomed", 0, txn_batch(producer, 0, 1))
            .error_code,
        0
    );
    assert_eq!(
        client
            .produce("out", 0, txn_batch(producer, 0, 1))
            .error_code,
        0
    );
    assert_eq!(delete_topic(&mut client, "doomed"), 0);
    end_txn_into_the_kill_point(&mut broker, producer, true);
    restart(&mut broker);
    let mut client = Client::connect(&broker);
    wait_for_txn_state(&mut client, "t", "CompleteCommit");
    let out = client.fetch_records("out", 0, 0);
    assert_eq!(markers_of(&out, producer), vec![(Some(1), producer.epoch)]);
    assert_eq!(latest(&mut client, "out", 0, 1), 2);
    let (error, next) = init(&mut client, "t", 60_000);
    assert_eq!((error, next.epoch), (0, producer.epoch + 1));
}
