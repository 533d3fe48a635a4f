//! A topic deleted and at once created again under the same name from another connection (test
//! suites do this between tests). DeleteTopics published the topic's removal, then deleted each
//! partition's files on its owner shard; a CreateTopics arriving between the two succeeded, and
//! the new topic's partitions opened the deleted topic's directories (its records came back), or
//! had their fresh files removed by the delete's late hop. In Kafka the new topic has a new id and
//! never sees the old one's data. The broker's debug-build hook
//! `RINGTAIL_TEST_HOLD_FIRST_DELETE_FILES` holds the delete between the two steps.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

mod common;
use common::client::{topic_name, Client};
use common::{restart_with, start_broker_with_env, Broker};

const PARTITIONS: i32 = 8;
const TOPIC: &str = "again";
const HOLD_ENV: &str = "RINGTAIL_TEST_HOLD_FIRST_DELETE_FILES";
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// How long a request is given to be answered before the test takes it as waiting (on the held
/// delete) and releases the hold; either way the same outcome is asserted.
const ANSWER_GRACE: Duration = Duration::from_secs(1);
/// Bound on polls for a state the broker reaches by itself.
const POLL_BOUND: Duration = Duration::from_secs(20);

/// Every partition's (error code, high watermark), in one Fetch that does not wait.
fn high_watermarks(client: &mut Client) -> Vec<(i16, i64)> {
    let request = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(16 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(TOPIC))
            .with_partitions(
                (0..PARTITIONS)
                    .map(|partition| {
                        FetchPartition::default()
                            .with_partition(partition)
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(1 << 20)
                    })
                    .collect(),
            )]);
    let response: FetchResponse = client.call(ApiKey::Fetch, 12, &request);
    let mut answers: Vec<_> = response.responses[0]
        .partitions
        .iter()
        .map(|data| (data.partition_index, data.error_code, data.high_watermark))
        .collect();
    answers.sort_unstable();
    answers
        .into_iter()
        .map(|(_, error, high_watermark)| (error, high_watermark))
        .collect()
}

fn produce_one_to_each(client: &mut Client) {
    for partition in 0..PARTITIONS {
        let batch = ringtail_engine::batch::encode_uniform_batch(1, 1, 10);
        let produced = client.produce(TOPIC, partition, batch);
        assert_eq!(produced.error_code, 0, "produce to {TOPIC}-{partition}");
    }
}

/// Polls Metadata until the topic is gone: the delete's registry change is published.
fn wait_until_unknown(client: &mut Client) {
    let deadline = Instant::now() + POLL_BOUND;
    loop {
        let request = MetadataRequest::default()
            .with_allow_auto_topic_creation(false)
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic_name(TOPIC)))
            ]));
        let response: MetadataResponse = client.call(ApiKey::Metadata, 12, &request);
        if response.topics[0].error_code == UNKNOWN_TOPIC_OR_PARTITION {
            return;
        }
        assert!(Instant::now() < deadline, "the delete was never published");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn delete_request() -> DeleteTopicsRequest {
    DeleteTopicsRequest::default()
        .with_topic_names(vec![TopicName(StrBytes::from_static_str(TOPIC))])
        .with_timeout_ms(10_000)
}

/// A broker whose first DeleteTopics holds before deleting files until `release` exists.
fn held_broker() -> (Broker, tempfile::TempDir, std::path::PathBuf) {
    let hold_dir = tempfile::tempdir().unwrap();
    let release = hold_dir.path().join("release");
    let broker = start_broker_with_env(&[], &[(HOLD_ENV, release.to_str().unwrap())]);
    (broker, hold_dir, release)
}

#[test]
#[cfg_attr(not(debug_assertions), ignore = "needs the debug build's test hooks")]
fn a_topic_created_again_during_its_delete_starts_empty_and_keeps_its_records() {
    let (mut broker, _hold_dir, release) = held_broker();
    let mut admin = Client::connect(&broker);
    assert_eq!(admin.create_topic(TOPIC, PARTITIONS, &[]), 0);
    produce_one_to_each(&mut admin);

    let port = broker.port;
    let deleter = std::thread::spawn(move || {
        let mut client = Client::connect_port(port);
        let deleted: DeleteTopicsResponse = client.call(ApiKey::DeleteTopics, 5, &delete_request());
        deleted.responses[0].error_code
    });
    wait_until_unknown(&mut admin);

    // Create it again while the delete holds: answered at once, the delete's files still there,
    // or (as in Kafka) kept apart from them.
    let mut creator = Client::connect(&broker);
    let create = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(topic_name(TOPIC))
        .with_num_partitions(PARTITIONS)
        .with_replication_factor(1)]);
    creator.send(ApiKey::CreateTopics, 7, &create).unwrap();
    let deadline = Instant::now() + ANSWER_GRACE;
    let mut started = creator.arrived_so_far();
    while started.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        started = creator.arrived_so_far();
    }
    let created_during_delete = !started.is_empty();
    if created_during_delete {
        // The new topic's records, written while the old topic's delete still has to run.
        let seen = high_watermarks(&mut creator);
        assert!(
            seen.iter().all(|&answer| answer == (0, 0)),
            "the new topic's partitions show the deleted topic's records (error, high watermark): \
             {seen:?}"
        );
        produce_one_to_each(&mut creator);
    }
    std::fs::write(&release, b"").unwrap();
    let created: CreateTopicsResponse = creator.receive_after(ApiKey::CreateTopics, 7, started);
    assert_eq!(created.topics[0].error_code, 0);
    assert_eq!(deleter.join().unwrap(), 0);
    if !created_during_delete {
        let seen = high_watermarks(&mut creator);
        assert!(
            seen.iter().all(|&answer| answer == (0, 0)),
            "the new topic's partitions show the deleted topic's records: {seen:?}"
        );
        produce_one_to_each(&mut creator);
    }
    let seen = high_watermarks(&mut admin);
    assert!(
        seen.iter().all(|&answer| answer == (0, 1)),
        "after the delete, the new topic's (error, high watermark): {seen:?}"
    );
    drop((admin, creator));
    common::stop_cleanly(&mut broker);
}

/// The text of every `placement.json` under the broker's data dir (the recorded homes).
fn placement_files(broker: &Broker) -> String {
    let mut text = String::new();
    let mut dirs = vec![broker.dir.path().to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if entry.file_name() == "placement.json" {
                text.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    text
}

/// Waits up to [`ANSWER_GRACE`] for the answer to the request last sent on `client` to start;
/// what arrived.
fn answer_started(client: &mut Client) -> Vec<u8> {
    let deadline = Instant::now() + ANSWER_GRACE;
    let mut started = client.arrived_so_far();
    while started.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        started = client.arrived_so_far();
    }
    started
}

/// A DeleteTopics between a CreatePartitions' registry change and the recording of the new
/// partitions' homes left those homes recorded for the deleted topic (placement.json, for good:
/// counted against their data dir when new partitions are placed).
#[test]
#[cfg_attr(not(debug_assertions), ignore = "needs the debug build's test hooks")]
fn a_delete_during_create_partitions_leaves_no_homes_recorded() {
    let hold_dir = tempfile::tempdir().unwrap();
    let release = hold_dir.path().join("release");
    let mut broker = start_broker_with_env(
        &[],
        &[(
            "RINGTAIL_TEST_HOLD_FIRST_PARTITIONS_PLACEMENT",
            release.to_str().unwrap(),
        )],
    );
    const GROWN: &str = "grown";
    let mut admin = Client::connect(&broker);
    assert_eq!(admin.create_topic(GROWN, 2, &[]), 0);
    assert!(placement_files(&broker).contains(GROWN));

    let mut grower = Client::connect(&broker);
    let grow = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(topic_name(GROWN))
            .with_count(4)])
        .with_timeout_ms(10_000);
    grower.send(ApiKey::CreatePartitions, 3, &grow).unwrap();
    // The new count is published (the held placement comes after).
    let deadline = Instant::now() + POLL_BOUND;
    loop {
        let request = MetadataRequest::default()
            .with_allow_auto_topic_creation(false)
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic_name(GROWN)))
            ]));
        let response: MetadataResponse = admin.call(ApiKey::Metadata, 12, &request);
        if response.topics[0].partitions.len() == 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new partitions were never published"
        );
        std::thread::sleep(Duration::from_millis(5));
    }

    let mut deleter = Client::connect(&broker);
    let delete = DeleteTopicsRequest::default()
        .with_topic_names(vec![TopicName(StrBytes::from_static_str(GROWN))])
        .with_timeout_ms(10_000);
    deleter.send(ApiKey::DeleteTopics, 5, &delete).unwrap();
    // Answered at once (the delete overtook the placement), or waiting for it: the same outcome
    // is asserted either way.
    let started = answer_started(&mut deleter);
    std::fs::write(&release, b"").unwrap();
    let deleted: DeleteTopicsResponse = deleter.receive_after(ApiKey::DeleteTopics, 5, started);
    assert_eq!(deleted.responses[0].error_code, 0);
    let grown: CreatePartitionsResponse = grower.receive(ApiKey::CreatePartitions, 3).unwrap();
    assert_eq!(grown.results[0].error_code, 0);

    let placement = placement_files(&broker);
    assert!(
        !placement.contains(GROWN),
        "homes recorded for the deleted topic: {placement}"
    );
    drop((admin, grower, deleter));
    common::stop_cleanly(&mut broker);
}

/// The committed offset of group `group` on partition 0 of the topic (-1: none).
fn committed_offset(client: &mut Client, group: &str) -> i64 {
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(topic_name(TOPIC))
            .with_partition_indexes(vec![0])]));
    let response: OffsetFetchResponse = client.call(ApiKey::OffsetFetch, 7, &request);
    assert_eq!(response.error_code, 0);
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    partition.committed_offset
}

fn commit_offset(client: &mut Client, group: &str, offset: i64) {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name(TOPIC))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)])]);
    let response: OffsetCommitResponse = client.call(ApiKey::OffsetCommit, 8, &request);
    assert_eq!(response.topics[0].partitions[0].error_code, 0);
}

#[test]
#[cfg_attr(not(debug_assertions), ignore = "needs the debug build's test hooks")]
fn a_topic_whose_delete_a_crash_cut_short_is_created_again_empty_and_without_its_offsets() {
    // The delete is published, then the broker dies before removing the files: they stay on
    // disk, and the committed offsets stay in __consumer_offsets. A topic created later under
    // the name opened those directories and served the deleted records, and its consumers got
    // the old topic's offsets. As Kafka's stray-log handling and topic ids do, it starts empty.
    let (mut broker, _hold_dir, _never_released) = held_broker();
    let mut admin = Client::connect(&broker);
    assert_eq!(admin.create_topic(TOPIC, PARTITIONS, &[]), 0);
    produce_one_to_each(&mut admin);
    commit_offset(&mut admin, "old-readers", 1);
    let mut deleter = Client::connect(&broker);
    deleter
        .send(ApiKey::DeleteTopics, 5, &delete_request())
        .unwrap();
    wait_until_unknown(&mut admin);
    drop((admin, deleter));
    restart_with(&mut broker, &[]);
    let left = (0..PARTITIONS)
        .filter(|partition| {
            broker
                .dir
                .path()
                .join(format!("{TOPIC}-{partition}"))
                .exists()
        })
        .count();
    assert_eq!(
        left, PARTITIONS as usize,
        "the crash left the deleted topic's files"
    );

    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic(TOPIC, 2, &[]), 0);
    assert_eq!(committed_offset(&mut client, "old-readers"), -1);
    // Grown to the old count: the partitions the first create did not make start empty too.
    let grow = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(topic_name(TOPIC))
            .with_count(PARTITIONS)])
        .with_timeout_ms(10_000);
    let grown: CreatePartitionsResponse = client.call(ApiKey::CreatePartitions, 3, &grow);
    assert_eq!(grown.results[0].error_code, 0);
    assert!(
        high_watermarks(&mut client)
            .iter()
            .all(|&answer| answer == (0, 0)),
        "the new topic shows the deleted topic's records: {:?}",
        high_watermarks(&mut client)
    );
    // What the new topic is given stays across a restart.
    produce_one_to_each(&mut client);
    restart_with(&mut broker, &[]);
    let mut client = Client::connect(&broker);
    assert!(high_watermarks(&mut client)
        .iter()
        .all(|&answer| answer == (0, 1)));
}
