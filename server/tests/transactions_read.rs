//! The read side of transactions over the wire: Fetch under read_committed stops at the last
//! stable offset and names the aborted transactions, every Fetch carries the LSO, ListOffsets
//! honours the isolation level, and read_committed record bytes are still spliced.
//!
//! The transactional batches and markers are appended through the engine's append path while
//! the broker is stopped — the path the transaction coordinator uses — so the test does not rely
//! on clients being allowed to produce control batches (they are not, once the coordinator
//! checks produce requests).
#![forbid(unsafe_code)]

mod common;

use std::process::{Command, Stdio};

use bytes::Bytes;
use common::client::{topic_name as name, Client};
use common::{free_port, restart, start_broker, try_until_listening, Broker, START_ATTEMPTS};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;
use ringtail_engine::batch::{self, ProducerSpec, RecordSpec};
use ringtail_engine::txn::encode::{control_batch, transactional_batch};
use ringtail_engine::txn::ControlMarker;
use ringtail_engine::{LogConfig, PartitionIndex, PartitionLog};

const TOPIC: &str = "txn-read";

fn records(count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|index| format!("value-{index}").into_bytes())
        .collect()
}

fn specs(values: &[Vec<u8>]) -> Vec<RecordSpec<'_>> {
    values
        .iter()
        .map(|value| RecordSpec {
            key: Some(b"k"),
            value: Some(value),
            timestamp_delta: 0,
        })
        .collect()
}

fn txn_data(producer_id: i64, base_sequence: i32, count: usize) -> Vec<u8> {
    let values = records(count);
    let producer = ProducerSpec {
        producer_id,
        producer_epoch: 0,
        base_sequence,
    };
    transactional_batch(1_000, &specs(&values), producer)
}

fn plain(count: usize) -> Vec<u8> {
    batch::encode_batch(1_000, &specs(&records(count)), ProducerSpec::default())
}

/// Writes the partition's history through the engine, as the coordinator's appends would:
/// offsets 0-1 plain, 2-4 producer 10, 5-6 producer 11, 7 COMMIT 10, 8 ABORT 11, 9-10 producer
/// 12 (left open), 11 plain. High watermark 12, LSO 9, one aborted transaction (11 from 5).
fn write_history(data_dir: &std::path::Path) {
    let dir = ringtail_engine::data_dirs::partition_dir(data_dir, TOPIC, PartitionIndex::new(0));
    let runtime = compio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (log, _) = PartitionLog::open(&dir, LogConfig::default())
            .await
            .unwrap();
        let history = [
            plain(2),
            txn_data(10, 0, 3),
            txn_data(11, 0, 2),
            control_batch(1_000, 10, 0, ControlMarker::Commit, 0),
            control_batch(1_000, 11, 0, ControlMarker::Abort, 0),
            txn_data(12, 0, 2),
            plain(1),
        ];
        for batch in history {
            log.append(Bytes::from(batch), 0).await.unwrap();
        }
        assert_eq!(log.last_stable_offset().get(), 9);
        log.close().await.unwrap();
    });
}

/// Restarts the broker on its data dir, with a metrics listener (for the splice counter), on
/// fresh ports; again on others if a parallel test's broker took one of them first (ours then
/// exits before listening), as `common::restart` does.
fn restart_with_metrics(broker: &mut Broker) {
    let mut exits = Vec::new();
    for _ in 0..START_ATTEMPTS {
        broker.port = free_port();
        broker.metrics_port = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringtail"))
            .args(["--listen", &format!("127.0.0.1:{}", broker.port)])
            .args([
                "--metrics-listen",
                &format!("127.0.0.1:{}", broker.metrics_port),
            ])
            .arg("--data-dir")
            .arg(broker.dir.path())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        match try_until_listening(&mut child, broker.port, "broker did not restart") {
            Ok(()) => {
                broker.child = child;
                return;
            }
            Err(exited) => exits.push(exited),
        }
    }
    panic!("broker did not restart: {exits:?}");
}

fn fetch(
    client: &mut Client,
    offset: i64,
    isolation_level: i8,
    version: i16,
) -> fetch_response::PartitionData {
    let request = FetchRequest::default()
        .with_max_wait_ms(50)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_isolation_level(isolation_level)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(TOPIC))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    let response: FetchResponse = client.call(ApiKey::Fetch, version, &request);
    response.responses[0].partitions[0].clone()
}

fn list_latest(client: &mut Client, isolation_level: i8) -> i64 {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation_level)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(TOPIC))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)])]);
    let response: ListOffsetsResponse = client.call(ApiKey::ListOffsets, 7, &request);
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    partition.offset
}

/// Base offsets of the batches in a fetched record set (CRC-checked).
fn base_offsets(records: &Option<Bytes>) -> Vec<i64> {
    let bytes = records.as_deref().unwrap_or_default();
    if bytes.is_empty() {
        return Vec::new();
    }
    batch::validate_all(bytes, usize::MAX, batch::Strictness::Stored)
        .unwrap()
        .iter()
        .map(|header| header.base_offset.get())
        .collect()
}

fn broker_with_history() -> Broker {
    let mut broker = start_broker(&[]);
    {
        let mut client = Client::connect(&broker);
        assert_eq!(client.create_topic(TOPIC, 1, &[]), 0);
    }
    let _ = broker.child.kill();
    let _ = broker.child.wait();
    write_history(broker.dir.path());
    restart_with_metrics(&mut broker);
    broker
}

#[test]
fn read_committed_fetch_stops_at_the_lso_and_names_aborted_transactions() {
    // What a read_committed consumer relies on: nothing past the LSO, and the aborted ranges.
    let broker = broker_with_history();
    let mut client = Client::connect(&broker);
    let spliced_before = common::scrape(&broker, "ringtail_spliced_bytes_total");
    let mut fetched_bytes = 0u64;
    for version in [4i16, 11, 12] {
        let committed = fetch(&mut client, 0, 1, version);
        assert_eq!(committed.error_code, 0);
        assert_eq!(committed.high_watermark, 12, "v{version}");
        assert_eq!(committed.last_stable_offset, 9, "v{version}");
        assert_eq!(
            base_offsets(&committed.records),
            vec![0, 2, 5, 7, 8],
            "v{version}: up to the LSO"
        );
        let aborted: Vec<(i64, i64)> = committed
            .aborted_transactions
            .unwrap()
            .iter()
            .map(|entry| (entry.producer_id.0, entry.first_offset))
            .collect();
        assert_eq!(aborted, vec![(11, 5)], "v{version}");
        fetched_bytes += committed.records.map_or(0, |records| records.len() as u64);

        let uncommitted = fetch(&mut client, 0, 0, version);
        assert_eq!(
            base_offsets(&uncommitted.records),
            vec![0, 2, 5, 7, 8, 9, 11]
        );
        assert_eq!(
            uncommitted.last_stable_offset, 9,
            "every Fetch carries the LSO"
        );
        assert_eq!(
            uncommitted.aborted_transactions.as_deref().map(<[_]>::len),
            Some(0)
        );
        fetched_bytes += uncommitted
            .records
            .map_or(0, |records| records.len() as u64);
    }
    let spliced = common::scrape(&broker, "ringtail_spliced_bytes_total") - spliced_before;
    assert_eq!(
        spliced, fetched_bytes,
        "read_committed records are spliced too"
    );

    // At the LSO a read_committed consumer waits (and gets nothing); past the committed range
    // the aborted list stays empty.
    let at_lso = fetch(&mut client, 9, 1, 12);
    assert_eq!(
        (at_lso.error_code, base_offsets(&at_lso.records)),
        (0, vec![])
    );
    let after_abort = fetch(&mut client, 9, 0, 12);
    assert_eq!(base_offsets(&after_abort.records), vec![9, 11]);
    let from_commit = fetch(&mut client, 7, 1, 12);
    assert_eq!(base_offsets(&from_commit.records), vec![7, 8]);
    assert_eq!(
        from_commit.aborted_transactions.unwrap().len(),
        1,
        "the abort at 8 is in range"
    );
}

#[test]
fn list_offsets_latest_is_the_lso_under_read_committed() {
    // A read_committed consumer's "latest" must not point into an open transaction.
    let mut broker = broker_with_history();
    let mut client = Client::connect(&broker);
    assert_eq!(list_latest(&mut client, 1), 9);
    assert_eq!(list_latest(&mut client, 0), 12);
    // After a SIGKILL the open transaction is recovered from the log: the LSO holds.
    restart(&mut broker);
    let mut client = Client::connect(&broker);
    assert_eq!(list_latest(&mut client, 1), 9);
    assert_eq!(list_latest(&mut client, 0), 12);
    assert_eq!(
        fetch(&mut client, 0, 1, 12)
            .aborted_transactions
            .unwrap()
            .len(),
        1
    );
}

/// A read_committed Fetch naming one partition 400 times (a 14 KB request) over a segment with
/// 5,000 aborted transactions. Each copy used to be planned on its own, and each non-empty plan
/// listed every aborted transaction to the segment's end again: 2,000,000 entries (32 MB) built
/// and sent for one small request, and a request of megabytes could make gigabytes. Kafka keeps
/// one entry per partition of a Fetch; so does the broker now.
#[test]
fn a_partition_named_many_times_in_a_read_committed_fetch_is_answered_once() {
    const ABORTED: i64 = 5_000;
    let mut broker = start_broker(&[]);
    {
        let mut client = Client::connect(&broker);
        assert_eq!(client.create_topic(TOPIC, 1, &[]), 0);
    }
    let _ = broker.child.kill();
    let _ = broker.child.wait();
    let dir =
        ringtail_engine::data_dirs::partition_dir(broker.dir.path(), TOPIC, PartitionIndex::new(0));
    compio::runtime::Runtime::new().unwrap().block_on(async {
        let (log, _) = PartitionLog::open(&dir, LogConfig::default())
            .await
            .unwrap();
        for chunk in 0..10 {
            let mut run = Vec::new();
            for producer_id in chunk * ABORTED / 10..(chunk + 1) * ABORTED / 10 {
                run.extend_from_slice(&txn_data(1_000 + producer_id, 0, 1));
                run.extend_from_slice(&control_batch(
                    1_000,
                    1_000 + producer_id,
                    0,
                    ControlMarker::Abort,
                    0,
                ));
            }
            log.append(Bytes::from(run), 0).await.unwrap();
        }
        log.close().await.unwrap();
    });
    restart_with_metrics(&mut broker);
    let mut client = Client::connect(&broker);
    client.set_read_timeout(std::time::Duration::from_secs(120));
    let request = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_isolation_level(1)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(TOPIC))
            .with_partitions(
                (0..400)
                    .map(|_| {
                        FetchPartition::default()
                            .with_partition(0)
                            .with_partition_max_bytes(200)
                    })
                    .collect(),
            )]);
    let response: FetchResponse = client.call(ApiKey::Fetch, 12, &request);
    let partitions = &response.responses[0].partitions;
    let aborted_entries: usize = partitions
        .iter()
        .map(|partition| {
            partition
                .aborted_transactions
                .as_deref()
                .map_or(0, <[_]>::len)
        })
        .sum();
    assert_eq!(partitions.len(), 1, "one answer per partition");
    assert_eq!(partitions[0].error_code, 0);
    assert!(!base_offsets(&partitions[0].records).is_empty());
    assert_eq!(aborted_entries, ABORTED as usize);
}
