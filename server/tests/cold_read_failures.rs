//! The cold fetch path when things go wrong (issue 13): a client that leaves while its cold
//! fetch is read, a topic deleted or records deleted under a held cold read, the broker killed
//! with cold reads in flight, and hostile sizes and offsets that must be answered as the hot path
//! answers them. Held reads (`RINGTAIL_TEST_HOLD_COLD_READS`, debug builds) put each event at a
//! known step; the checks are the bytes and the gauges, never a time.
#![forbid(unsafe_code)]

use bytes::Bytes;
use kafka_protocol::messages::*;
use ringtail_engine::batch::encode_uniform_batch;

mod common;
use common::client::topic_name;
use common::cold::*;
use common::Broker;

const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const IN_PROGRESS: &str = "ringtail_fetch_cold_reads_in_progress";
const MEMORY: &str = "ringtail_fetch_cold_read_memory_bytes";

/// A broker holding its cold reads until `release` exists, with topic `name` of `batches`
/// 512 KiB batches evicted from the page cache; the records a hot fetch from 0 returned.
fn held_backlog(
    release: &std::path::Path,
    name: &str,
    batches: i64,
    configs: &[(&str, &str)],
) -> (Broker, Bytes) {
    let broker = start_broker(&[], Some(release));
    let mut admin = connect(&broker);
    assert_eq!(admin.create_topic(name, 1, configs), 0);
    produce_backlog(&mut admin, name, batches);
    let hot = hot_fetch(&broker, &fetch_request(name));
    let hot = fetched_records(&hot);
    evict_partition(&broker, name);
    (broker, hot)
}

/// Sends a fetch of `topic` from 0 on a new connection and waits until its cold reads are held.
fn send_held_fetch(broker: &Broker, topic: &str) -> common::client::Client {
    let mut reader = connect(broker);
    reader
        .send(ApiKey::Fetch, FETCH_VERSION, &fetch_request(topic))
        .unwrap();
    wait_for_metric(
        broker,
        IN_PROGRESS,
        1,
        "the fetch of evicted data must take the cold path (is the data dir on tmpfs?)",
    );
    reader
}

/// Every cold read finished and every buffer back in the budget.
fn wait_until_cold_path_idle(broker: &Broker, why: &str) {
    wait_for_zero(broker, IN_PROGRESS, why);
    wait_for_zero(broker, MEMORY, why);
}

/// The records of a partition's answer: whole, valid batches, or none.
fn valid_records(partition: &fetch_response::PartitionData) -> Bytes {
    let records = partition.records.clone().unwrap_or_default();
    if records.is_empty() {
        return records;
    }
    ringtail_engine::batch::validate_all(
        &records,
        usize::MAX,
        ringtail_engine::batch::Strictness::Stored,
    )
    .unwrap_or_else(|error| panic!("a cut or corrupt batch on the wire: {error:?}"));
    records
}

/// The answer to a held fetch whose data was deleted meanwhile: what was read before the files
/// went, as it was (a prefix of `hot`'s batches, whole), or `gone_error` with no records. Never
/// a cut frame.
fn answered_as_it_was(
    reader: &mut common::client::Client,
    hot: &[u8],
    gone_error: i16,
    what: &str,
) {
    let answered: FetchResponse = reader.receive(ApiKey::Fetch, FETCH_VERSION).unwrap();
    let partition = &answered.responses[0].partitions[0];
    let records = valid_records(partition);
    match partition.error_code {
        0 => assert!(
            hot.starts_with(&records),
            "{what}: {} bytes that are not a prefix of the partition's",
            records.len()
        ),
        error if error == gone_error => assert!(records.is_empty(), "{what}"),
        other => panic!("{what}: error {other}"),
    }
}

/// `stored` is `produced` as the log keeps it: the same batch but for its base offset (the log's)
/// and its leader epoch (the broker's).
fn assert_stored_as(stored: &[u8], produced: &[u8], base_offset: i64, what: &str) {
    assert_eq!(stored.len(), produced.len(), "{what}: batch sizes");
    assert_eq!(
        stored[..8],
        base_offset.to_be_bytes(),
        "{what}: base offset"
    );
    assert!(
        stored[8..12] == produced[8..12] && stored[16..] == produced[16..],
        "{what}: other bytes than the batch produced"
    );
}

#[test]
#[cfg_attr(not(debug_assertions), ignore = "needs the debug build's test hooks")]
fn a_client_gone_during_its_held_cold_fetch_leaves_no_read_or_buffer_behind() {
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let release = work.path().join("release");
    let (broker, hot) = held_backlog(&release, "backlog", 6, &[]);
    let reader = send_held_fetch(&broker, "backlog");
    assert!(
        common::scrape(&broker, MEMORY) > 0,
        "held reads hold buffers"
    );
    drop(reader);

    std::fs::write(&release, b"").unwrap();
    wait_until_cold_path_idle(&broker, "the reader left mid-fetch");
    // The shard serves on: the same cold fetch again, whole, and a produce.
    evict_partition(&broker, "backlog");
    let mut again = connect(&broker);
    let cold: FetchResponse = again.call(ApiKey::Fetch, FETCH_VERSION, &fetch_request("backlog"));
    assert!(
        fetched_records(&cold) == hot,
        "cold bytes equal the hot ones"
    );
    let offset = produce(
        &mut again,
        "backlog",
        Bytes::from(encode_uniform_batch(9, 10, 100)),
    );
    assert_eq!(offset, 6 * 512);
    wait_until_cold_path_idle(&broker, "after the second fetch");
}

#[test]
#[cfg_attr(not(debug_assertions), ignore = "needs the debug build's test hooks")]
fn a_topic_deleted_under_a_held_cold_fetch_is_answered_and_its_name_starts_empty_again() {
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let release = work.path().join("release");
    let (broker, hot) = held_backlog(&release, "doomed", 6, &[]);
    let mut reader = send_held_fetch(&broker, "doomed");

    // The deletion does not wait for the held reads.
    let mut admin = connect(&broker);
    let delete = DeleteTopicsRequest::default()
        .with_topic_names(vec![topic_name("doomed")])
        .with_timeout_ms(10_000);
    let deleted: DeleteTopicsResponse = admin.call(ApiKey::DeleteTopics, 5, &delete);
    assert_eq!(deleted.responses[0].error_code, 0);

    std::fs::write(&release, b"").unwrap();
    answered_as_it_was(
        &mut reader,
        &hot,
        UNKNOWN_TOPIC_OR_PARTITION,
        "a deleted topic",
    );
    wait_until_cold_path_idle(&broker, "the topic was deleted mid-fetch");

    // A new topic of the same name holds only what is written to it.
    assert_eq!(admin.create_topic("doomed", 1, &[]), 0);
    let fresh = Bytes::from(encode_uniform_batch(77, 3, 50));
    assert_eq!(produce(&mut admin, "doomed", fresh.clone()), 0);
    let response: FetchResponse =
        admin.call(ApiKey::Fetch, FETCH_VERSION, &fetch_request("doomed"));
    assert_stored_as(&fetched_records(&response), &fresh, 0, "the new topic");
}

#[test]
#[cfg_attr(not(debug_assertions), ignore = "needs the debug build's test hooks")]
fn records_deleted_under_a_held_cold_fetch_leave_a_whole_answer_and_a_moved_start() {
    // Small segments, so DeleteRecords removes the very segment the held fetch reads.
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let release = work.path().join("release");
    let (broker, hot) = held_backlog(&release, "trimmed", 8, &[("segment.bytes", "1048576")]);
    let mut reader = send_held_fetch(&broker, "trimmed");

    let mut admin = connect(&broker);
    let delete_before = 6 * 512;
    let request = DeleteRecordsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
            .with_name(topic_name("trimmed"))
            .with_partitions(vec![
                delete_records_request::DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(delete_before),
            ])]);
    let response: DeleteRecordsResponse = admin.call(ApiKey::DeleteRecords, 2, &request);
    let result = &response.topics[0].partitions[0];
    assert_eq!(result.error_code, 0);
    assert_eq!(result.low_watermark, delete_before);

    std::fs::write(&release, b"").unwrap();
    answered_as_it_was(&mut reader, &hot, OFFSET_OUT_OF_RANGE, "records deleted");
    wait_until_cold_path_idle(&broker, "records were deleted mid-fetch");

    // The start moved: offset 0 is out of range now, and the kept records read back cold whole.
    let from_zero = admin.fetch_partition("trimmed", 0, 0, FETCH_VERSION);
    assert_eq!(from_zero.error_code, OFFSET_OUT_OF_RANGE);
    // Its answer may have spliced pages it would hold (see `hot_fetch`).
    drop(reader);
    evict_partition(&broker, "trimmed");
    let kept = admin.fetch_records("trimmed", 0, delete_before);
    assert!(!kept.is_empty());
    let batch_bytes = hot.len() / 8;
    assert!(
        hot[delete_before as usize / 512 * batch_bytes..].starts_with(&kept),
        "the kept records are the partition's, from the new start"
    );
}

#[test]
#[cfg_attr(not(debug_assertions), ignore = "needs the debug build's test hooks")]
fn a_broker_killed_with_cold_reads_held_restarts_with_every_acknowledged_batch() {
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let release = work.path().join("release");
    let (mut broker, hot) = held_backlog(&release, "backlog", 6, &[]);
    let _readers: Vec<_> = (0..3)
        .map(|_| send_held_fetch(&broker, "backlog"))
        .collect();
    // A produce acknowledged while the reads are held must survive the kill too.
    let mut producer = connect(&broker);
    let tail = Bytes::from(encode_uniform_batch(5, 4, 64));
    assert_eq!(produce(&mut producer, "backlog", tail.clone()), 6 * 512);

    kill_and_restart(&mut broker, &[]);
    // The first fetch opens (and recovers) the log, reading it through the page cache; the
    // second reads it cold.
    for read in ["after recovery", "cold"] {
        if read == "cold" {
            evict_partition(&broker, "backlog");
        }
        // Each on a connection of its own (see `hot_fetch`).
        let response = hot_fetch(&broker, &fetch_request("backlog"));
        let records = fetched_records(&response);
        assert!(
            records.len() == hot.len() + tail.len() && records.starts_with(&hot),
            "{read}: the restarted broker lost or changed the backlog"
        );
        assert_stored_as(&records[hot.len()..], &tail, 6 * 512, read);
    }
    assert!(common::scrape(&broker, "ringtail_fetch_cold_bytes_total") > 0);
}

/// One fetch of `topic` partition 0 from `offset` with the given sizes, on a connection of its
/// own (see `hot_fetch`): (error code, records).
fn fetch_sized(
    broker: &Broker,
    topic: &str,
    offset: i64,
    max_bytes: i32,
    partition_max_bytes: i32,
) -> (i16, Bytes) {
    let mut request = common::fetch_from_start(topic, 0, max_bytes, partition_max_bytes);
    request.topics[0].partitions[0].fetch_offset = offset;
    let response = hot_fetch(broker, &request);
    let partition = &response.responses[0].partitions[0];
    (partition.error_code, valid_records(partition))
}

#[test]
fn cold_fetches_of_hostile_sizes_and_offsets_are_answered_as_hot_ones_are() {
    // Every request is answered twice, from the page cache and evicted from it; the cold path
    // must give the same error and the same bytes (at least one whole batch when the first is
    // larger than any limit, 0 included, as KIP-74 and Kafka's minOneMessage ask).
    let broker = start_broker(&[], None);
    let mut client = connect(&broker);
    create_topic(&mut client, "odd");
    produce_backlog(&mut client, "odd", 6);
    let end = 6 * 512;
    let cases: &[(i64, i32, i32)] = &[
        (0, 1, 1),
        (0, 0, 0),
        (0, -1, -1),
        (0, i32::MAX, i32::MAX),
        (0, 64 << 20, 1),
        (0, 1, 64 << 20),
        (700, 64 << 20, 32 << 20),
        (700, 600_000, 600_000),
        (end - 1, 64 << 20, 32 << 20),
        (end, 64 << 20, 32 << 20),
        (end + 1, 64 << 20, 32 << 20),
        (-1, 64 << 20, 32 << 20),
        (i64::MAX, 64 << 20, 32 << 20),
    ];
    for &(offset, max_bytes, partition_max_bytes) in cases {
        let hot = fetch_sized(&broker, "odd", offset, max_bytes, partition_max_bytes);
        evict_partition(&broker, "odd");
        let cold_before = common::scrape(&broker, "ringtail_fetch_cold_bytes_total");
        let cold = fetch_sized(&broker, "odd", offset, max_bytes, partition_max_bytes);
        let read_cold = common::scrape(&broker, "ringtail_fetch_cold_bytes_total") - cold_before;
        assert_eq!(
            read_cold > 0,
            !cold.1.is_empty(),
            "offset {offset}, max {max_bytes}, partition max {partition_max_bytes}: \
             {read_cold} bytes read cold for {} returned",
            cold.1.len()
        );
        assert!(
            hot == cold,
            "offset {offset}, max {max_bytes}, partition max {partition_max_bytes}: hot (error \
             {}, {} bytes) and cold (error {}, {} bytes) answers differ",
            hot.0,
            hot.1.len(),
            cold.0,
            cold.1.len()
        );
        if offset >= 0 && offset < end {
            assert_eq!(hot.0, 0, "offset {offset}");
            assert!(!hot.1.is_empty(), "offset {offset}: at least one batch");
        }
    }
    assert!(common::scrape(&broker, "ringtail_fetch_cold_bytes_total") > 0);
    wait_until_cold_path_idle(&broker, "after the hostile fetches");
    // The broker is still whole.
    let all = client.fetch_records("odd", 0, 0);
    assert!(!all.is_empty());
}

#[test]
fn a_cold_read_that_fails_cuts_its_response_counts_and_frees_the_reads_ahead_at_once() {
    // One Fetch of two evicted partitions, 1 MiB each: the second's read starts while the
    // first's is still awaited. The first's segment is cut short under the broker, so its read
    // fails: the response stops there, the failure is counted, and the read started ahead gives
    // its budget back at once, though the client keeps its end of the connection open.
    let broker = start_broker(&[], None);
    let mut admin = connect(&broker);
    for topic in ["short", "whole"] {
        create_topic(&mut admin, topic);
        produce_backlog(&mut admin, topic, 6);
    }
    let hot_whole = hot_fetch(&broker, &fetch_request("whole"));
    let mut request = common::fetch_from_start("short", 100, 64 << 20, 1 << 20);
    let mut second = request.topics[0].clone();
    second.topic = topic_name("whole");
    request.topics.push(second);
    for topic in ["short", "whole"] {
        evict_partition(&broker, topic);
    }
    let segment = broker
        .dir
        .path()
        .join("data/short-0/00000000000000000000.log");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(64 << 10)
        .unwrap();

    let mut reader = connect(&broker);
    reader.send(ApiKey::Fetch, FETCH_VERSION, &request).unwrap();
    assert!(
        reader
            .receive::<FetchResponse>(ApiKey::Fetch, FETCH_VERSION)
            .is_err(),
        "a response with bytes the disk could not give"
    );
    wait_for_metric(
        &broker,
        "ringtail_fetch_cold_read_errors_total",
        1,
        "the failed read is counted",
    );
    wait_until_cold_path_idle(&broker, "the reader's connection is still open");

    // The shard serves on: the other partition, cold, whole.
    evict_partition(&broker, "whole");
    let cold_whole: FetchResponse =
        admin.call(ApiKey::Fetch, FETCH_VERSION, &fetch_request("whole"));
    assert!(fetched_records(&cold_whole) == fetched_records(&hot_whole));
    drop(reader);
}
