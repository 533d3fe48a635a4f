//! DeleteTopics while producers and fetchers still use the topic (kafka-go's suite deletes each
//! test's topic as its readers wind down). A request that looked the topic up just before the
//! delete opened the partition on its owner shard while the delete removed its files: the log
//! left behind failed the broker's SIGTERM shutdown ("a shard did not shut down cleanly", ENOENT
//! closing it), and a late open recreated the deleted directory.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

mod common;
use common::client::Client;
use common::start_broker;

const ROUNDS: usize = 20;
const PARTITIONS: i32 = 8;
/// How long one answer may take: generous, as a shared CI machine's disk can take seconds to sync.
const SLOW_DISK_BOUND: Duration = Duration::from_secs(60);
/// UNKNOWN_TOPIC_OR_PARTITION: what Kafka answers for a partition of a deleted topic.
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

/// Produces (and now and then fetches) across every partition of `topic` until `stop`; returns
/// how many requests were answered, asserting each answer is success or "unknown topic".
fn hammer(broker_port: u16, topic: String, stop: Arc<AtomicBool>, first: i32) -> usize {
    let mut client = Client::connect_port(broker_port);
    client.set_read_timeout(SLOW_DISK_BOUND);
    let mut answered = 0;
    let mut partition = first;
    while !stop.load(Ordering::Relaxed) {
        let batch = ringtail_engine::batch::encode_uniform_batch(1, 1, 10);
        let produced = client.produce(&topic, partition, batch);
        assert!(
            [0, UNKNOWN_TOPIC_OR_PARTITION].contains(&produced.error_code),
            "produce to {topic}-{partition} answered {} ({:?})",
            produced.error_code,
            produced.error_message
        );
        if answered % 4 == 0 {
            let fetched = client.fetch_partition(&topic, partition, 0, 12);
            assert!(
                [0, UNKNOWN_TOPIC_OR_PARTITION].contains(&fetched.error_code),
                "fetch of {topic}-{partition} answered {}",
                fetched.error_code
            );
        }
        answered += 1;
        partition = (partition + 1) % PARTITIONS;
    }
    answered
}

#[test]
fn topics_deleted_under_traffic_leave_no_files_and_a_clean_shutdown() {
    let mut broker = start_broker(&[]);
    let mut admin = Client::connect(&broker);
    admin.set_read_timeout(SLOW_DISK_BOUND);
    for round in 0..ROUNDS {
        let topic = format!("race-{round}");
        assert_eq!(admin.create_topic(&topic, PARTITIONS, &[]), 0);
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..2)
            .map(|worker| {
                let (port, topic, stop) = (broker.port, topic.clone(), Arc::clone(&stop));
                std::thread::spawn(move || hammer(port, topic, stop, worker * PARTITIONS / 2))
            })
            .collect();
        // Vary the moment: some deletes land while the first opens are still in progress.
        std::thread::sleep(Duration::from_millis((round % 5) as u64 * 3));
        let delete = DeleteTopicsRequest::default()
            .with_topic_names(vec![TopicName(StrBytes::from_string(topic.clone()))])
            .with_timeout_ms(SLOW_DISK_BOUND.as_millis() as i32);
        let deleted: DeleteTopicsResponse = admin.call(ApiKey::DeleteTopics, 5, &delete);
        assert_eq!(deleted.responses[0].error_code, 0, "round {round}");
        std::thread::sleep(Duration::from_millis(50));
        stop.store(true, Ordering::Relaxed);
        let answered: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
        assert!(answered > 0, "round {round}: no request was answered");
    }
    drop(admin);

    common::stop_cleanly(&mut broker);
    let left: Vec<String> = walkdir_names(broker.dir.path())
        .into_iter()
        .filter(|name| name.starts_with("race-"))
        .collect();
    assert!(left.is_empty(), "deleted partitions came back: {left:?}");
}

/// The names of every directory entry under `root`, two levels deep (data dirs, then partitions).
fn walkdir_names(root: &std::path::Path) -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(root).unwrap().flatten() {
        names.push(entry.file_name().to_string_lossy().into_owned());
        if entry.path().is_dir() {
            for inner in std::fs::read_dir(entry.path()).unwrap().flatten() {
                names.push(inner.file_name().to_string_lossy().into_owned());
            }
        }
    }
    names
}
