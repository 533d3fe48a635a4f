//! SIGTERM (and SIGINT) against the real binary, whatever the broker is doing: the exit status is
//! 0 (test harnesses of every client suite treat anything else as a failure), every healthy
//! partition closes cleanly (its `.clean_shutdown` marker is left, so the next start needs no full
//! recovery) and a restart finds every acknowledged record.
#![forbid(unsafe_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;

mod common;
use common::client::{topic_name, Client};
use common::stopping::*;
use common::{restart_with, scrape};

fn produce_request(topic: &str, partition: i32, acks: i16, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])])
}

/// Produces to `partition` until `stop` or the broker goes; returns the offset after the last
/// acknowledged record (0 if none was).
fn produce_until_gone(port: u16, topic: String, partition: i32, acks: i16) -> i64 {
    let mut client = Client::connect_port(port);
    let mut acknowledged_end = 0;
    loop {
        let batch = ringtail_engine::batch::encode_uniform_batch(0, 5, 100);
        let request = produce_request(&topic, partition, acks, Bytes::from(batch));
        let answer: std::io::Result<ProduceResponse> =
            client.try_call(ApiKey::Produce, 9, &request);
        let Ok(answer) = answer else {
            return acknowledged_end;
        };
        let data = &answer.responses[0].partition_responses[0];
        if data.error_code != 0 {
            // A request served during the shutdown may be refused; nothing after it is sent.
            return acknowledged_end;
        }
        acknowledged_end = data.base_offset + 5;
    }
}

/// The partition's high watermark (ListOffsets LATEST: a start moved by retention is no error).
fn high_watermark(client: &mut Client, topic: &str, partition: i32) -> i64 {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(-1)])]);
    let answer: ListOffsetsResponse = client.call(ApiKey::ListOffsets, 7, &request);
    let data = &answer.topics[0].partitions[0];
    assert_eq!(data.error_code, 0, "{topic}-{partition}");
    data.offset
}

#[test]
fn sigterm_under_produce_on_every_shard_keeps_every_acknowledged_record() {
    const PARTITIONS: i32 = 6;
    for (acks, signal_name) in [(-1i16, "TERM"), (1, "INT")] {
        let (mut broker, log_path, _logs) = start_logged(&[], &[]);
        let topic = format!("busy{acks}");
        let mut admin = Client::connect(&broker);
        assert_eq!(admin.create_topic(&topic, PARTITIONS, &[]), 0);
        let producers: Vec<_> = (0..PARTITIONS)
            .map(|partition| {
                let (port, topic) = (broker.port, topic.clone());
                std::thread::spawn(move || produce_until_gone(port, topic, partition, acks))
            })
            .collect();
        // Every partition has taken some records: the stop lands in the middle of the stream.
        for partition in 0..PARTITIONS {
            let deadline = Instant::now() + STOP_HANG;
            while high_watermark(&mut admin, &topic, partition) < 50 {
                assert!(Instant::now() < deadline, "no produce progress");
            }
        }
        drop(admin);
        stop_cleanly(&mut broker, &log_path, signal_name);
        let acknowledged: Vec<i64> = producers.into_iter().map(|p| p.join().unwrap()).collect();
        assert_closed_cleanly(broker.dir.path(), &topic, PARTITIONS);
        restart_with(&mut broker, &[]);
        let mut client = Client::connect(&broker);
        for (partition, end) in acknowledged.iter().enumerate() {
            let found = high_watermark(&mut client, &topic, partition as i32);
            assert!(
                found >= *end,
                "acks={acks}: partition {partition} has {found} records, {end} were acknowledged"
            );
        }
    }
}

#[test]
fn a_parked_long_poll_fetch_does_not_hold_up_the_shutdown() {
    // A consumer waiting (max_wait_ms 30 s, no data) is a request in flight: the shutdown waited
    // for it up to its grace period and then closed the logs under it.
    let (mut broker, log_path, _logs) = start_logged(&[], &[]);
    let mut admin = Client::connect(&broker);
    assert_eq!(admin.create_topic("quiet", 1, &[]), 0);
    let mut consumer = Client::connect(&broker);
    consumer
        .send(
            ApiKey::Fetch,
            12,
            &common::fetch_from_start("quiet", 30_000, 1 << 20, 1 << 20),
        )
        .unwrap();
    let deadline = Instant::now() + STOP_HANG;
    while scrape(&broker, "ringtail_request_bytes_in_flight") == 0 {
        assert!(Instant::now() < deadline, "the fetch never parked");
        std::thread::sleep(Duration::from_millis(5));
    }
    let log = stop_cleanly(&mut broker, &log_path, "TERM");
    assert!(!log.contains(GAVE_UP_WAITING), "{log}");
    assert_closed_cleanly(broker.dir.path(), "quiet", 1);
}

#[test]
fn a_partition_that_failed_earlier_does_not_fail_the_shutdown() {
    // A log failed by a disk error before the stop is known and reported (its requests get
    // KAFKA_STORAGE_ERROR): as in Kafka, whose shutdown logs an offline log dir and goes on, it
    // must not turn the SIGTERM into exit 1 once every other partition closed.
    let (mut broker, log_path, _logs) = start_logged(&[], &[]);
    let mut client = Client::connect(&broker);
    assert_eq!(
        client.create_topic("sick", 2, &[("segment.bytes", "1024")]),
        0
    );
    for partition in 0..2 {
        let batch = ringtail_engine::batch::encode_uniform_batch(0, 1, 100);
        assert_eq!(client.produce("sick", partition, batch).error_code, 0);
    }
    // Partition 0's directory disappears (a failing disk); its next roll cannot create a segment.
    std::fs::remove_dir_all(broker.dir.path().join("sick-0")).unwrap();
    let mut failed = false;
    for _ in 0..20 {
        let batch = ringtail_engine::batch::encode_uniform_batch(0, 1, 600);
        if client.produce("sick", 0, batch).error_code != 0 {
            failed = true;
            break;
        }
    }
    assert!(failed, "partition 0 never failed");
    let batch = ringtail_engine::batch::encode_uniform_batch(0, 3, 100);
    assert_eq!(client.produce("sick", 1, batch).error_code, 0);
    drop(client);
    signal(&broker.child, "TERM");
    let status = wait_exit(&mut broker.child, &log_path);
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(status.success(), "exit {status}:\n{log}");
    assert!(
        broker.dir.path().join("sick-1/.clean_shutdown").exists(),
        "the healthy partition closed cleanly"
    );
    restart_with(&mut broker, &[]);
    let mut client = Client::connect(&broker);
    assert_eq!(high_watermark(&mut client, "sick", 1), 4);
}

#[test]
#[cfg_attr(not(debug_assertions), ignore = "needs the debug build's test hooks")]
fn a_second_sigterm_during_the_shutdown_still_ends_cleanly() {
    // A harness that signals twice (or an operator's second Ctrl-C) must not turn a clean stop
    // into a killed one: the shutdown already under way finishes and exits 0.
    let release_dir = tempfile::tempdir().unwrap();
    let release = release_dir.path().join("release");
    let env = [(
        "RINGTAIL_TEST_HOLD_FIRST_CONFIG_APPLY",
        release.to_str().unwrap(),
    )];
    let (mut broker, log_path, _logs) = start_logged(&[], &env);
    let mut admin = Client::connect(&broker);
    assert_eq!(admin.create_topic("held", 1, &[]), 0);
    let batch = ringtail_engine::batch::encode_uniform_batch(0, 2, 100);
    assert_eq!(admin.produce("held", 0, batch).error_code, 0);
    // An IncrementalAlterConfigs held in the middle: the shutdown waits for it.
    let alter = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(common::client::str_bytes("held"))
            .with_configs(vec![
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(common::client::str_bytes("retention.ms"))
                    .with_config_operation(0)
                    .with_value(Some(common::client::str_bytes("3600000"))),
            ]),
    ]);
    admin
        .send(ApiKey::IncrementalAlterConfigs, 1, &alter)
        .unwrap();
    let deadline = Instant::now() + STOP_HANG;
    while scrape(&broker, "ringtail_request_bytes_in_flight") == 0 {
        assert!(Instant::now() < deadline, "the alteration never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    signal(&broker.child, "TERM");
    // The first signal is being handled (the listener is stopped) before the second comes.
    let deadline = Instant::now() + STOP_HANG;
    while std::net::TcpStream::connect(("127.0.0.1", broker.port)).is_ok() {
        assert!(Instant::now() < deadline, "the shutdown never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    signal(&broker.child, "TERM");
    signal(&broker.child, "INT");
    std::fs::write(&release, b"").unwrap();
    let status = wait_exit(&mut broker.child, &log_path);
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(status.success(), "exit {status}:\n{log}");
    assert!(!log.contains(UNCLEAN), "{log}");
    assert_closed_cleanly(broker.dir.path(), "held", 1);
}

#[test]
fn a_sigterm_during_start_up_recovery_exits_cleanly() {
    // A broker killed under load recovers its active segments in full at the next start; a
    // SIGTERM that arrives while it does must still give exit 0 and lose nothing.
    let (mut broker, log_path, _logs) = start_logged(&[], &[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("big", 4, &[]), 0);
    let mut ends = [0i64; 4];
    for round in 0..50 {
        for (partition, end) in ends.iter_mut().enumerate() {
            let batch = ringtail_engine::batch::encode_uniform_batch(0, 50, 1_000);
            let answer = client.produce("big", partition as i32, batch);
            assert_eq!(answer.error_code, 0, "round {round}");
            *end = answer.base_offset + 50;
        }
    }
    drop(client);
    let _ = broker.child.kill();
    let _ = broker.child.wait();
    let data_dir = broker.dir.path().to_path_buf();
    std::fs::remove_file(&log_path).unwrap();
    // Started by hand so the signal can come before it listens.
    let port = common::free_port();
    let mut child = spawn_logged(port, common::free_port(), &data_dir, &[], &[], &log_path);
    // The handlers are installed before anything else the broker does; wait for its first line.
    let deadline = Instant::now() + STOP_HANG;
    loop {
        if std::fs::metadata(&log_path).is_ok_and(|meta| meta.len() > 0) {
            break;
        }
        assert!(Instant::now() < deadline, "the broker logged nothing");
        std::thread::sleep(Duration::from_millis(1));
    }
    signal(&child, "TERM");
    let status = wait_exit(&mut child, &log_path);
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(status.success(), "exit {status}:\n{log}");
    assert!(!log.contains(UNCLEAN), "{log}");
    restart_with(&mut broker, &[]);
    let mut client = Client::connect(&broker);
    for (partition, end) in ends.iter().enumerate() {
        assert_eq!(high_watermark(&mut client, "big", partition as i32), *end);
    }
}

#[test]
fn a_client_that_never_reads_does_not_hold_the_shutdown() {
    // A consumer that sends fetches and never reads their answers fills its socket: the writer
    // of its connection waits for ever. The shutdown must still end, cleanly.
    let (mut broker, log_path, _logs) = start_logged(&[], &[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("wide", 1, &[]), 0);
    for _ in 0..40 {
        let batch = ringtail_engine::batch::encode_uniform_batch(0, 100, 1_000);
        assert_eq!(client.produce("wide", 0, batch).error_code, 0);
    }
    let mut stuck = Client::connect(&broker);
    // Far more answer bytes than the socket buffers hold, none of them read.
    for _ in 0..64 {
        stuck
            .send(
                ApiKey::Fetch,
                12,
                &common::fetch_from_start("wide", 0, 4 << 20, 4 << 20),
            )
            .unwrap();
    }
    let log = stop_cleanly(&mut broker, &log_path, "TERM");
    assert!(!log.contains(GAVE_UP_WAITING), "{log}");
    assert_closed_cleanly(broker.dir.path(), "wide", 1);
    drop(stuck);
}

#[test]
fn a_sigterm_during_compaction_and_retention_passes_exits_cleanly() {
    // The maintenance round (retention, then a compaction task) runs every 50 ms here: the stop
    // lands during one, over a compacted log with many dirty segments and a deleting one.
    let (mut broker, log_path, _logs) = start_logged(&["--log-cleanup-check-ms", "50"], &[]);
    let mut client = Client::connect(&broker);
    let compacted = [("cleanup.policy", "compact"), ("segment.bytes", "16384")];
    assert_eq!(client.create_topic("keyed", 1, &compacted), 0);
    let deleting = [("retention.bytes", "32768"), ("segment.bytes", "16384")];
    assert_eq!(client.create_topic("rolling", 1, &deleting), 0);
    let mut keyed_end = 0;
    let mut rolling_end = 0;
    for round in 0..200u32 {
        let records: Vec<_> = (0..20u32)
            .map(|i| ((round * 20 + i) % 50).to_be_bytes())
            .collect();
        let specs: Vec<_> = records
            .iter()
            .map(|key| ringtail_engine::batch::RecordSpec {
                key: Some(key),
                value: Some(b"value-value-value-value"),
                timestamp_delta: 0,
            })
            .collect();
        let batch = ringtail_engine::batch::encode_batch(
            common::client::now_ms(),
            &specs,
            ringtail_engine::batch::ProducerSpec::default(),
        );
        let answer = client.produce("keyed", 0, batch);
        assert_eq!(answer.error_code, 0);
        keyed_end = answer.base_offset + 20;
        let batch = ringtail_engine::batch::encode_uniform_batch(0, 20, 50);
        let answer = client.produce("rolling", 0, batch);
        assert_eq!(answer.error_code, 0);
        rolling_end = answer.base_offset + 20;
    }
    drop(client);
    stop_cleanly(&mut broker, &log_path, "TERM");
    assert_closed_cleanly(broker.dir.path(), "keyed", 1);
    assert_closed_cleanly(broker.dir.path(), "rolling", 1);
    restart_with(&mut broker, &[]);
    let mut client = Client::connect(&broker);
    assert_eq!(high_watermark(&mut client, "keyed", 0), keyed_end);
    assert_eq!(high_watermark(&mut client, "rolling", 0), rolling_end);
}

#[test]
fn a_sigterm_with_open_transactions_and_an_end_txn_in_flight_exits_cleanly() {
    // One transaction is committing (its EndTxn sent, not answered), another is open: the stop
    // exits 0 and the restart resolves both (the commit's markers written, the open one aborted
    // at its timeout or kept open): nothing acknowledged is lost and the LSO is sane.
    let (mut broker, log_path, _logs) = start_logged(&[], &[]);
    let mut admin = Client::connect(&broker);
    assert_eq!(admin.create_topic("txns", 4, &[]), 0);
    let mut committing = Client::connect(&broker);
    let (error, producer) = common::txn::init(&mut committing, "committing", 60_000);
    assert_eq!(error, 0);
    let partitions = [0, 1, 2, 3];
    let added =
        common::txn::add_partitions(&mut committing, "committing", producer, "txns", &partitions);
    assert!(added.iter().all(|code| *code == 0), "{added:?}");
    for partition in partitions {
        let batch = common::txn::txn_batch(producer, 0, 5);
        assert_eq!(committing.produce("txns", partition, batch).error_code, 0);
    }
    let mut open = Client::connect(&broker);
    let (error, other) = common::txn::init(&mut open, "open", 60_000);
    assert_eq!(error, 0);
    let added = common::txn::add_partitions(&mut open, "open", other, "txns", &[0]);
    assert_eq!(added, vec![0]);
    assert_eq!(
        open.produce("txns", 0, common::txn::txn_batch(other, 0, 3))
            .error_code,
        0
    );
    let end = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(common::client::str_bytes("committing")))
        .with_producer_id(ProducerId(producer.id))
        .with_producer_epoch(producer.epoch)
        .with_committed(true);
    committing.send(ApiKey::EndTxn, 3, &end).unwrap();
    stop_cleanly(&mut broker, &log_path, "TERM");
    assert_closed_cleanly(broker.dir.path(), "txns", 4);
    restart_with(&mut broker, &[]);
    let mut client = Client::connect(&broker);
    // The EndTxn raced the stop. If the broker took it (PrepareCommit or later), the restart
    // must finish the commit by itself. If the stop came first (a loaded machine: the reader
    // stops taking frames once the shutdown starts), it was never answered, so nothing was
    // acknowledged: the transaction is still Ongoing and the client retries the EndTxn, as a
    // Kafka client does after losing its connection. Without the retry it would be aborted at
    // its 60 s timeout, after this test's deadline.
    if common::txn::txn_state(&mut client, "committing") == "Ongoing" {
        assert_eq!(
            common::txn::end_txn(&mut client, "committing", producer, true),
            0,
            "the retried commit"
        );
    }
    common::txn::wait_for_txn_state(&mut client, "committing", "CompleteCommit");
    // Partitions 1-3 hold only the committing transaction: once its markers are written (before
    // the stop, or by the coordinator's recovery now), their LSO reaches the high watermark.
    for partition in 1..4 {
        let deadline = Instant::now() + STOP_HANG;
        loop {
            let fetched = common::txn::fetch_isolated(&mut client, "txns", partition, 1);
            assert!(fetched.high_watermark >= 5, "partition {partition}");
            if fetched.last_stable_offset == fetched.high_watermark {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "partition {partition}: the commit never completed"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn a_sigterm_during_a_partition_move_exits_cleanly() {
    // A move between data dirs (AlterReplicaLogDirs) throttled to 256 KiB/s, with producers
    // appending on: the stop lands in its copy or its switch (appends refused while it switches).
    let second = tempfile::tempdir().unwrap();
    let second_dir = second.path().to_str().unwrap().to_string();
    let extra = ["--data-dir", &second_dir, "--move-bytes-per-sec", "262144"];
    let (mut broker, log_path, _logs) = start_logged(&extra, &[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("moving", 1, &[]), 0);
    let mut end = 0;
    for _ in 0..20 {
        let batch = ringtail_engine::batch::encode_uniform_batch(0, 20, 1_000);
        let answer = client.produce("moving", 0, batch);
        assert_eq!(answer.error_code, 0);
        end = answer.base_offset + 20;
    }
    let first_dir = broker.dir.path().to_str().unwrap().to_string();
    let home_now = if Path::new(&first_dir).join("moving-0").exists() {
        &first_dir
    } else {
        &second_dir
    };
    let dest = if home_now == &first_dir {
        &second_dir
    } else {
        &first_dir
    };
    let request = AlterReplicaLogDirsRequest::default().with_dirs(vec![
        alter_replica_log_dirs_request::AlterReplicaLogDir::default()
            .with_path(common::client::str_bytes(dest))
            .with_topics(vec![
                alter_replica_log_dirs_request::AlterReplicaLogDirTopic::default()
                    .with_name(topic_name("moving"))
                    .with_partitions(vec![0]),
            ]),
    ]);
    let answer: AlterReplicaLogDirsResponse = client.call(ApiKey::AlterReplicaLogDirs, 2, &request);
    assert_eq!(answer.results[0].partitions[0].error_code, 0);
    // Appends go on during the copy; the first refused one means the switch has begun.
    for _ in 0..200 {
        let batch = ringtail_engine::batch::encode_uniform_batch(0, 5, 1_000);
        let answer = client.produce("moving", 0, batch);
        if answer.error_code != 0 {
            break;
        }
        end = answer.base_offset + 5;
    }
    drop(client);
    stop_cleanly(&mut broker, &log_path, "TERM");
    let homes: Vec<_> = [&first_dir, &second_dir]
        .into_iter()
        .map(|dir| Path::new(dir).join("moving-0"))
        .filter(|dir| dir.exists())
        .collect();
    assert_eq!(homes.len(), 1, "one home: {homes:?}");
    assert!(homes[0].join(".clean_shutdown").exists(), "{homes:?}");
    restart_with(&mut broker, &["--data-dir", &second_dir]);
    let mut client = Client::connect(&broker);
    assert!(high_watermark(&mut client, "moving", 0) >= end);
}

#[test]
fn a_sigterm_during_a_consumer_group_rebalance_exits_cleanly() {
    // A JoinGroup parked in the group's rebalance (its initial delay) when the stop comes: the
    // coordinator answers it and the stop ends at once; the offsets committed before are there
    // after the restart.
    let (mut broker, log_path, _logs) = start_logged(&[], &[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("consumed", 1, &[]), 0);
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(common::client::str_bytes("g")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(topic_name("consumed"))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(42),
                ]),
        ]);
    let committed: OffsetCommitResponse = client.call(ApiKey::OffsetCommit, 8, &commit);
    assert_eq!(committed.topics[0].partitions[0].error_code, 0);
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(common::client::str_bytes("g")))
        .with_member_id(common::client::str_bytes(""))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(common::client::str_bytes("consumer"))
        .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
        )
        .with_name(common::client::str_bytes("range"))]);
    // v3: no MEMBER_ID_REQUIRED round; the join waits in the group's initial rebalance delay.
    let mut member = Client::connect(&broker);
    member.send(ApiKey::JoinGroup, 3, &join).unwrap();
    let deadline = Instant::now() + STOP_HANG;
    while scrape(&broker, "ringtail_request_bytes_in_flight") == 0 {
        assert!(Instant::now() < deadline, "the join never parked");
        std::thread::sleep(Duration::from_millis(5));
    }
    let log = stop_cleanly(&mut broker, &log_path, "TERM");
    assert!(!log.contains(GAVE_UP_WAITING), "{log}");
    assert_closed_cleanly(broker.dir.path(), "__consumer_offsets", 1);
    restart_with(&mut broker, &[]);
    let mut client = Client::connect(&broker);
    assert_eq!(
        common::txn::committed_offset(&mut client, "g", "consumed"),
        42
    );
}
