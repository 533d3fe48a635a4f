//! OffsetFetch `require_stable` (KIP-447) against the real binary: while a transaction holds a
//! pending offset of a group's partition (TxnOffsetCommit, not yet ended by its marker), an
//! OffsetFetch that requires stable offsets gets UNSTABLE_OFFSET_COMMIT for that partition (as
//! Kafka: per partition, offset -1, in every version from v7); one that does not gets the last
//! committed offset. A commit makes the pending offset the answer, an abort leaves the previous
//! one; a pending offset replayed after a SIGKILL is still unstable.

mod common;

use common::client::Client;
use common::txn::*;
use common::{restart, start_broker};
use kafka_protocol::messages::{ApiKey, TxnOffsetCommitResponse};

/// (topic, partition, error code, offset) of one answered partition of topic "in".
fn row(partition: i32, error: i16, offset: i64) -> FetchedOffset {
    ("in".to_string(), partition, error, offset)
}

/// The pending offset's partition, 0, and a partition without one, 1, asked at `version`.
fn asked(client: &mut Client, version: i16, group: &str, stable: bool) -> Vec<FetchedOffset> {
    fetch_offsets(client, version, group, "in", Some(&[0, 1]), stable)
}

#[test]
fn require_stable_answers_unstable_while_a_transactional_offset_is_pending() {
    // The whole life of a pending offset: unstable while pending, for each OffsetFetch layout
    // (v7 one group, v8 and v9 groups, fetch-all), never for another group or partition; the
    // committed value after COMMIT, the previous one after ABORT, unstable again after a restart.
    let mut broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("in", 2, &[]), 0);
    assert_eq!(offset_commit(&mut client, "g", "in", 5), 0);
    assert_eq!(offset_commit(&mut client, "other", "in", 3), 0);
    let (_, producer) = init(&mut client, "t", 60_000);
    assert_eq!(add_offsets(&mut client, "t", producer, "g"), 0);
    assert_eq!(
        txn_offset_commit(&mut client, "t", producer, "g", "in", 10),
        0
    );

    for version in [7, 8, 9] {
        assert_eq!(
            asked(&mut client, version, "g", true),
            vec![row(0, UNSTABLE_OFFSET_COMMIT, -1), row(1, 0, -1)],
            "v{version} require_stable"
        );
        assert_eq!(
            asked(&mut client, version, "g", false),
            vec![row(0, 0, 5), row(1, 0, -1)],
            "v{version} without require_stable: the last committed offset"
        );
        assert_eq!(
            fetch_offsets(&mut client, version, "g", "in", None, true),
            vec![row(0, UNSTABLE_OFFSET_COMMIT, -1)],
            "v{version} fetch-all: the committed partitions, the pending one unstable"
        );
        assert_eq!(
            asked(&mut client, version, "other", true),
            vec![row(0, 0, 3), row(1, 0, -1)],
            "v{version}: another group's offsets are stable"
        );
    }
    assert_eq!(
        asked(&mut client, 6, "g", false),
        vec![row(0, 0, 5), row(1, 0, -1)],
        "v6 has no require_stable"
    );

    assert_eq!(end_txn(&mut client, "t", producer, true), 0);
    assert_eq!(
        asked(&mut client, 8, "g", true),
        vec![row(0, 0, 10), row(1, 0, -1)],
        "after COMMIT: the transaction's offset"
    );

    assert_eq!(add_offsets(&mut client, "t", producer, "g"), 0);
    assert_eq!(
        txn_offset_commit(&mut client, "t", producer, "g", "in", 20),
        0
    );
    drop(client);
    restart(&mut broker);
    let mut client = Client::connect(&broker);
    assert_eq!(
        asked(&mut client, 7, "g", true),
        vec![row(0, UNSTABLE_OFFSET_COMMIT, -1), row(1, 0, -1)],
        "the pending offset is replayed as pending after a SIGKILL"
    );
    assert_eq!(asked(&mut client, 7, "g", false)[0], row(0, 0, 10));
    assert_eq!(end_txn(&mut client, "t", producer, false), 0);
    assert_eq!(
        asked(&mut client, 7, "g", true),
        vec![row(0, 0, 10), row(1, 0, -1)],
        "after ABORT: the previous offset"
    );
}

#[test]
fn a_fenced_transactions_pending_offsets_stop_being_unstable() {
    // A new producer of the same transactional id aborts the old transaction: its pending offset
    // goes, so a require_stable fetch answers the previous offset instead of waiting forever.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("in", 2, &[]), 0);
    assert_eq!(offset_commit(&mut client, "g", "in", 4), 0);
    let (_, zombie) = init(&mut client, "t", 60_000);
    assert_eq!(add_offsets(&mut client, "t", zombie, "g"), 0);
    assert_eq!(txn_offset_commit(&mut client, "t", zombie, "g", "in", 9), 0);
    assert_eq!(
        asked(&mut client, 8, "g", true)[0],
        row(0, UNSTABLE_OFFSET_COMMIT, -1)
    );
    let (error, _) = init(&mut client, "t", 60_000);
    assert_eq!(error, 0);
    assert_eq!(asked(&mut client, 8, "g", true)[0], row(0, 0, 4));
}

#[test]
fn txn_offset_commit_refuses_unknown_topics_and_partitions() {
    // Kafka's KafkaApis.handleTxnOffsetCommitRequest: a topic or partition the metadata does not
    // have is answered UNKNOWN_TOPIC_OR_PARTITION and not stored, the request's other partitions
    // are. Stored, a late commit of a deleted topic's offset was given to a topic made again
    // under its name once the transaction committed.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("in", 2, &[]), 0);
    let (_, producer) = init(&mut client, "t", 60_000);
    assert_eq!(add_offsets(&mut client, "t", producer, "g"), 0);
    assert_eq!(
        txn_offset_commit(&mut client, "t", producer, "g", "gone", 4),
        UNKNOWN_TOPIC_OR_PARTITION
    );
    let partitions = vec![txn_offset(0, 10, None), txn_offset(2, 11, None)];
    let request = txn_offset_commit_request("t", producer, "g", "in", partitions);
    let response: TxnOffsetCommitResponse = client.call(ApiKey::TxnOffsetCommit, 3, &request);
    let codes: Vec<i16> = response.topics[0]
        .partitions
        .iter()
        .map(|partition| partition.error_code)
        .collect();
    assert_eq!(codes, vec![0, UNKNOWN_TOPIC_OR_PARTITION]);
    assert_eq!(end_txn(&mut client, "t", producer, true), 0);
    assert_eq!(client.create_topic("gone", 1, &[]), 0);
    assert_eq!(
        fetch_offsets(&mut client, 8, "g", "gone", Some(&[0]), false),
        vec![("gone".to_string(), 0, 0, -1)],
        "the unknown topic's offset was not stored"
    );
    assert_eq!(
        fetch_offsets(&mut client, 8, "g", "in", Some(&[0]), false),
        vec![row(0, 0, 10)]
    );
}
