//! Transactions and idempotent producers as a hostile or unlucky client meets them (found by
//! review): races between the coordinator's timeout tick and the producer's own calls, and the
//! produce-side checks a client can sidestep.

mod common;

use std::time::{Duration, Instant};

use common::client::{now_ms, Client};
use common::start_broker;
use common::txn::*;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;

/// Fetch v12 under read_committed of one partition: its last stable offset and high watermark.
fn stable_and_high(client: &mut Client, topic: &str, partition: i32) -> (i64, i64) {
    let request = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_isolation_level(1)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(common::client::topic_name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let response: FetchResponse = client.call(ApiKey::Fetch, 12, &request);
    let data = &response.responses[0].partitions[0];
    assert_eq!(data.error_code, 0);
    (data.last_stable_offset, data.high_watermark)
}

/// One attempt at the race: `others` transactional ids and the victim (sorted last) all time
/// out in the same tick; while the tick aborts the others one by one, the victim's producer
/// commits its (timed-out but not yet aborted) transaction and starts a new one on `late`.
/// Returns None when the tick reached the victim before its producer was done (the window was
/// missed), else the victim's producer and whether the second transaction's EndTxn succeeded.
fn race_once(client: &mut Client, round: usize, others: usize) -> Option<(Producer, i16)> {
    let victim = format!("zz-victim-{round}");
    let first = format!("a{round}-0000");
    let last = format!("a{round}-{:04}", others - 1);
    // Every transaction of this round times out at `deadline` (each id gets the timeout that
    // leads there from its start), the victim a little earlier so it is due in the same tick.
    let setup_budget_ms = 4_000 + 20 * others as i64;
    let deadline = now_ms() + setup_budget_ms;
    let timeout_to = |at: i64| {
        let timeout = at - now_ms();
        assert!(timeout > 0, "the setup took longer than its budget");
        i32::try_from(timeout).unwrap()
    };
    for index in 0..others {
        let id = format!("a{round}-{index:04}");
        let (error, producer) = init(client, &id, timeout_to(deadline));
        assert_eq!(error, 0);
        assert_eq!(add_partitions(client, &id, producer, "out", &[0]), vec![0]);
    }
    let (error, producer) = init(client, &victim, timeout_to(deadline - 20));
    assert_eq!(error, 0);
    assert_eq!(
        add_partitions(client, &victim, producer, "out", &[0]),
        vec![0]
    );
    assert_eq!(
        client
            .produce("out", 0, txn_batch(producer, 0, 2))
            .error_code,
        0
    );
    assert_eq!(txn_state(client, &first), "Ongoing");
    // The tick has started aborting this round's ids: the victim is in its list, still Ongoing.
    let started = Instant::now();
    while txn_state(client, &first) == "Ongoing" {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the timeout never aborted {first}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    // The producer, unaware, commits and starts its next transaction on another partition.
    let committed = end_txn(client, &victim, producer, true);
    if committed == PRODUCER_FENCED {
        return None;
    }
    assert_eq!(committed, 0);
    assert_eq!(
        add_partitions(client, &victim, producer, "late", &[0]),
        vec![0]
    );
    let produced = client
        .produce("late", 0, txn_batch(producer, 2, 3))
        .error_code;
    if produced != 0 || txn_state(client, &last) == "CompleteAbort" {
        // The tick may have reached the victim already: this round proves nothing.
        wait_for_txn_state(client, &last, "CompleteAbort");
        return None;
    }
    // Once the tick is through with this round, the victim's second transaction ends.
    wait_for_txn_state(client, &last, "CompleteAbort");
    std::thread::sleep(Duration::from_millis(500));
    let second = end_txn(client, &victim, producer, true);
    Some((producer, second))
}

#[test]
fn the_timeout_tick_never_aborts_a_transaction_that_ended_while_it_waited() {
    // The tick lists the timed-out transactions, then aborts them one by one, awaiting each.
    // It used the state it listed: a transaction its producer committed meanwhile (and the next
    // one it started) was "aborted" from that stale copy — the producer fenced although its
    // commit had succeeded, and the new transaction's partition left open for ever (its last
    // stable offset stuck, read_committed consumers blocked) because the abort went only to the
    // stale copy's partitions.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("out", 1, &[]), 0);
    assert_eq!(client.create_topic("late", 1, &[]), 0);
    let mut outcome = None;
    for (round, others) in [(0, 150), (1, 300), (2, 600)] {
        outcome = race_once(&mut client, round, others);
        if outcome.is_some() {
            break;
        }
    }
    let (_, second_commit) = outcome.expect("the race window was never hit in 3 rounds");
    assert_eq!(
        second_commit, 0,
        "the producer's next transaction commits: it was never fenced"
    );
    let (stable, high) = stable_and_high(&mut client, "late", 0);
    assert_eq!(
        stable, high,
        "the second transaction is closed: nothing holds the last stable offset"
    );
    let log = batches(&client.fetch_records("out", 0, 0));
    let victim_markers: Vec<_> = log
        .iter()
        .filter(|(control, id, ..)| *control && log.iter().any(|b| !b.0 && b.1 == *id))
        .map(|(_, _, _, marker, _)| *marker)
        .collect();
    assert_eq!(
        victim_markers,
        vec![Some(1)],
        "the committed transaction's partition holds its COMMIT and nothing else: {log:?}"
    );
}
