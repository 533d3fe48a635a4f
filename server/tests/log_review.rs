//! Log lifecycle cases found in review, over the wire.
#![forbid(unsafe_code)]

mod common;

use bytes::Bytes;
use common::client::{topic_name as name, Client};
use common::{restart, start_broker};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;
use ringtail_engine::batch::{self, ProducerSpec, RecordSpec};
use ringtail_engine::txn::encode::transactional_batch;
use ringtail_engine::{LogConfig, PartitionIndex, PartitionLog};

const TOPIC: &str = "log-review-open-txn";

fn values(count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|index| format!("v{index}").into_bytes())
        .collect()
}

fn specs(values: &[Vec<u8>]) -> Vec<RecordSpec<'_>> {
    values
        .iter()
        .map(|value| RecordSpec {
            key: None,
            value: Some(value),
            timestamp_delta: 0,
        })
        .collect()
}

/// Offsets 0-1 plain at time 1000, 2-3 an open transaction at time 2000, 4 plain at time 2000:
/// high watermark 5, last stable offset 2. Written through the engine while the broker is down,
/// as the coordinator's appends would be.
fn write_open_transaction(data_dir: &std::path::Path) {
    let dir = ringtail_engine::data_dirs::partition_dir(data_dir, TOPIC, PartitionIndex::new(0));
    compio::runtime::Runtime::new().unwrap().block_on(async {
        let (log, _) = PartitionLog::open(&dir, LogConfig::default())
            .await
            .unwrap();
        let (two, one) = (values(2), values(1));
        let open = ProducerSpec {
            producer_id: 12,
            producer_epoch: 0,
            base_sequence: 0,
        };
        let history = [
            batch::encode_batch(1_000, &specs(&two), ProducerSpec::default()),
            transactional_batch(2_000, &specs(&two), open),
            batch::encode_batch(2_000, &specs(&one), ProducerSpec::default()),
        ];
        for batch in history {
            log.append(Bytes::from(batch), 0).await.unwrap();
        }
        assert_eq!(log.last_stable_offset().get(), 2);
        log.close().await.unwrap();
    });
}

/// ListOffsets (v7) of partition 0 at `timestamp`: (offset, timestamp).
fn list(client: &mut Client, timestamp: i64, isolation_level: i8) -> (i64, i64) {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation_level)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(TOPIC))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(timestamp)])]);
    let response: ListOffsetsResponse = client.call(ApiKey::ListOffsets, 7, &request);
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    (partition.offset, partition.timestamp)
}

#[test]
fn read_committed_time_lookups_never_answer_at_or_past_the_last_stable_offset() {
    // Kafka answers a consumer's lookup by time (and -3, max timestamp) only with an offset it
    // may fetch: below the last stable offset under read_committed, else no offset (-1). An
    // offset inside an open transaction made a read_committed consumer's offsetsForTimes point
    // where it can read nothing until the transaction ends.
    let mut broker = start_broker(&[]);
    {
        let mut client = Client::connect(&broker);
        assert_eq!(client.create_topic(TOPIC, 1, &[]), 0);
    }
    let _ = broker.child.kill();
    let _ = broker.child.wait();
    write_open_transaction(broker.dir.path());
    restart(&mut broker);
    let mut client = Client::connect(&broker);
    assert_eq!(
        list(&mut client, 2_000, 1),
        (-1, -1),
        "by time, read_committed"
    );
    assert_eq!(
        list(&mut client, -3, 1),
        (-1, -1),
        "max timestamp, read_committed"
    );
    assert_eq!(list(&mut client, 1_000, 1), (0, 1_000), "below the LSO");
    assert_eq!(list(&mut client, 2_000, 0), (2, 2_000), "read_uncommitted");
    assert_eq!(list(&mut client, -3, 0), (2, 2_000), "read_uncommitted");
}

#[test]
fn transactions_go_on_after_the_transaction_log_moves_to_another_data_dir() {
    // The transaction coordinator held the log of __transaction_state-0 it was started with; a
    // move between data dirs (AlterReplicaLogDirs, e.g. kafka-reassign-partitions emptying a
    // disk) closed that log, and every later state write failed: InitProducerId and every
    // transaction answered COORDINATOR_NOT_AVAILABLE, which clients retry until restart.
    let second_dir = tempfile::tempdir().unwrap();
    let second = second_dir.path().to_str().unwrap().to_string();
    let broker = start_broker(&["--data-dir", &second]);
    let first = broker.dir.path().to_str().unwrap().to_string();
    let mut client = Client::connect(&broker);
    assert_eq!(common::txn::init(&mut client, "before-move", 60_000).0, 0);
    let bootstrap = format!("127.0.0.1:{}", broker.port);
    // One of the two is a real move whichever dir the partition started in.
    for to in [&second, &first] {
        ringtail_server::cli_log_dirs::run_move(
            &bootstrap,
            "__transaction_state",
            0,
            to,
            std::time::Duration::from_secs(120),
        )
        .unwrap();
    }
    let mut client = Client::connect(&broker);
    assert_eq!(
        common::txn::init(&mut client, "after-move", 60_000).0,
        0,
        "the coordinator writes to the moved log"
    );
}
