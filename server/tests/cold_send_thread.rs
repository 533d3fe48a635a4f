//! Cold chunks written by the shards' sender threads (`--fetch-cold-send-priority`, decision
//! 0039) against the real `ringtail` binary: the bytes, the threads' priority, and clients that
//! leave in the middle of a cold response.
#![forbid(unsafe_code)]

use std::path::Path;
use std::process::Command;

use kafka_protocol::messages::*;

mod common;
use common::cold::*;

/// SCHED_IDLE, as `sched(7)` numbers it.
const SCHED_IDLE: u32 = 5;

/// SCHED_OTHER, the policy a nice value applies to.
const SCHED_OTHER: u32 = 0;

/// The nice value and scheduling policy of each of process `pid`'s threads named `cold-sender`
/// (the same order as the unit tests').
fn cold_senders(pid: u32) -> Vec<(i32, u32)> {
    common::threads::scheduling_of_threads(pid, "cold-sender")
}

/// The policies alone, for a sender at `idle` (whose nice value means nothing).
fn cold_sender_policies(pid: u32) -> Vec<u32> {
    cold_senders(pid)
        .into_iter()
        .map(|(_nice, policy)| policy)
        .collect()
}

#[test]
fn by_default_cold_chunks_go_out_on_a_sender_thread_at_nice_10() {
    let broker = start_broker(&[], None);
    // A broker started at nice 10 would pass without its sender lowering anything.
    let broker_nice =
        common::threads::Stat::read(Path::new(&format!("/proc/{}/stat", broker.child.id())))
            .expect("the broker's stat")
            .nice();
    assert!(
        broker_nice < 10,
        "run this test from a shell below nice 10 (the broker runs at nice {broker_nice})"
    );
    let mut client = connect(&broker);
    let (request, hot) = backlog_in_topics(&broker, &mut client);
    assert!(
        cold_senders(broker.child.id()).is_empty(),
        "no sender thread before the first cold chunk"
    );
    let cold_bytes = refetch_evicted(
        &broker,
        &mut client,
        &BACKLOG_TOPICS,
        &request,
        &hot,
        "default sender",
    );
    assert_eq!(
        common::scrape(&broker, "ringtail_fetch_cold_sender_bytes_total"),
        cold_bytes,
        "every cold chunk went out on the sender thread"
    );
    assert_eq!(
        cold_senders(broker.child.id()),
        vec![(10, SCHED_OTHER)],
        "one sender thread for the one shard, at nice 10"
    );
}

#[test]
fn with_shard_the_shard_writes_its_cold_chunks_itself() {
    let broker = start_broker(&["--fetch-cold-send-priority", "shard"], None);
    let mut client = connect(&broker);
    let (request, hot) = backlog_in_topics(&broker, &mut client);
    let cold_bytes = refetch_evicted(
        &broker,
        &mut client,
        &BACKLOG_TOPICS,
        &request,
        &hot,
        "shard",
    );
    assert_eq!(
        common::scrape(&broker, "ringtail_fetch_cold_sender_bytes_total"),
        0,
        "none of the {cold_bytes} cold bytes went to a sender thread"
    );
    assert_eq!(
        common::scrape(&broker, "ringtail_fetch_cold_sender_fallback_chunks_total"),
        0,
        "with `shard`, a chunk the shard writes is not a fallback"
    );
    assert!(
        cold_senders(broker.child.id()).is_empty(),
        "no sender thread is started"
    );
}

#[test]
fn cold_ranges_sent_by_an_idle_sender_thread_arrive_whole_and_in_order() {
    let broker = start_broker(&["--fetch-cold-send-priority", "idle"], None);
    let mut client = connect(&broker);
    let (request, hot) = backlog_in_topics(&broker, &mut client);
    assert_eq!(
        common::scrape(&broker, "ringtail_fetch_cold_sender_bytes_total"),
        0,
        "hot ranges are spliced by the shard"
    );

    let cold_bytes = refetch_evicted(
        &broker,
        &mut client,
        &BACKLOG_TOPICS,
        &request,
        &hot,
        "idle sender",
    );
    assert_eq!(
        common::scrape(&broker, "ringtail_fetch_cold_sender_bytes_total"),
        cold_bytes,
        "every cold chunk went out on the sender thread"
    );
    // Each topic's cold range (about 1 MB) spans several 256 KiB pieces, and the sender yields
    // between two (their count per chunk: residency::sender_tests).
    let yields = common::scrape(&broker, "ringtail_fetch_cold_sender_yields_total");
    assert!(
        yields >= BACKLOG_TOPICS.len() as u64,
        "the sender yields its core between the pieces of its chunks: {yields} yields for {cold_bytes} bytes"
    );
    assert_eq!(
        common::scrape(&broker, "ringtail_fetch_cold_sender_fallback_chunks_total"),
        0,
        "with its sender thread running, the shard wrote no cold chunk itself"
    );
    assert_eq!(
        cold_sender_policies(broker.child.id()),
        vec![SCHED_IDLE],
        "one sender thread for the one shard, at SCHED_IDLE"
    );
    // The shard is pinned to one core; its sender thread may run on every core the process may.
    let (threads, process_cpus) = common::threads::broker_threads(&broker);
    let cpus_of = |name: &str| -> Vec<&Vec<usize>> {
        threads
            .iter()
            .filter(|thread| thread.name == name)
            .map(|thread| &thread.cpus)
            .collect()
    };
    assert_eq!(
        cpus_of("cold-sender"),
        vec![&process_cpus],
        "the sender thread is not pinned to its shard's core (shard: {:?})",
        cpus_of("shard-0")
    );
    // The client's next request on the same connection is answered after the cold response.
    let again: FetchResponse = client.call(ApiKey::Fetch, FETCH_VERSION, &request);
    assert_eq!(records_of(&again).len(), BACKLOG_TOPICS.len());
    wait_for_zero(
        &broker,
        "ringtail_fetch_cold_read_memory_bytes",
        "every chunk's charge comes back",
    );
}

#[test]
fn clients_that_leave_mid_response_give_back_every_charge_and_the_next_reader_is_served() {
    // Ten connections ask for the same evicted data, read none of it, and close once its reads
    // have begun: their chunks are handed to the sender thread and written to sockets whose
    // clients are gone. Each write ends in an error or a cancellation; none may keep its budget
    // charge, stop the sender thread, or take the broker down.
    let mut broker = start_broker(&["--fetch-cold-send-priority", "19"], None);
    let mut client = connect(&broker);
    create_topic(&mut client, "backlog");
    produce_backlog(&mut client, "backlog", 6);
    let request = fetch_request("backlog");
    let expected = fetched_records(&hot_fetch(&broker, &request));
    evict_partition(&broker, "backlog");

    let mut leaving: Vec<_> = (0..10).map(|_| connect(&broker)).collect();
    for client in &mut leaving {
        client.send(ApiKey::Fetch, FETCH_VERSION, &request).unwrap();
    }
    // Counted once a chunk is in memory: the responses are under way when their clients go.
    wait_for_metric(
        &broker,
        "ringtail_fetch_cold_read_wait_seconds_count",
        1,
        "the leaving clients' fetches were read cold",
    );
    drop(leaving);
    wait_for_zero(
        &broker,
        "ringtail_fetch_cold_reads_in_progress",
        "cold reads of clients gone end",
    );
    wait_for_zero(
        &broker,
        "ringtail_fetch_cold_read_memory_bytes",
        "cold reads of clients gone give their charge back",
    );

    evict_partition(&broker, "backlog");
    let response: FetchResponse = client.call(ApiKey::Fetch, FETCH_VERSION, &request);
    assert!(
        fetched_records(&response) == expected,
        "the reader after them gets the same bytes"
    );
    assert!(common::scrape(&broker, "ringtail_fetch_cold_sender_bytes_total") > 0);
    assert!(
        broker.child.try_wait().unwrap().is_none(),
        "the broker runs on after its clients left mid-response"
    );
}

#[test]
fn a_bad_send_priority_is_refused() {
    for refused in ["-5", "20", "high"] {
        let output = Command::new(env!("CARGO_BIN_EXE_ringtail"))
            .arg(format!("--fetch-cold-send-priority={refused}"))
            .output()
            .unwrap();
        assert!(!output.status.success(), "{refused}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--fetch-cold-send-priority"), "{stderr}");
    }
}
