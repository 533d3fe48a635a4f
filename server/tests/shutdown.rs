//! SIGTERM (and SIGINT) against the real binary, whatever the broker is doing: the exit status is
//! 0 (test harnesses of every client suite treat anything else as a failure), every healthy
//! partition closes cleanly (its `.clean_shutdown` marker is left, so the next start needs no full
//! recovery) and a restart finds every acknowledged record.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;

mod common;
use common::client::{topic_name, Client};
use common::{restart_with, scrape, start_broker_spawned_by, Broker};

/// How long a stopping broker may take before the test calls it hung (a bound for a hang, not a
/// timing assertion: every stop here takes well under a second when it works).
const STOP_HANG: Duration = Duration::from_secs(60);
/// What the broker logs for a healthy partition whose close failed.
const UNCLEAN: &str = "did not close cleanly";
/// What the broker logs when its shutdown gave up waiting for requests.
const GAVE_UP_WAITING: &str = "closing with requests still in flight";

/// A broker (2 shards) whose stderr goes to a file the test reads once it has stopped.
fn start_logged(extra: &[&str], env: &[(&str, &str)]) -> (Broker, PathBuf, tempfile::TempDir) {
    let logs = tempfile::tempdir().unwrap();
    let log_path = logs.path().join("stderr.log");
    let broker = start_broker_spawned_by(tempfile::tempdir().unwrap(), |port, metrics, dir| {
        spawn_logged(port, metrics, dir, extra, env, &log_path)
    });
    (broker, log_path, logs)
}

fn spawn_logged(
    port: u16,
    metrics_port: u16,
    dir: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
    log_path: &Path,
) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_ringtail"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
        .arg("--data-dir")
        .arg(dir)
        .args(["--shards", "2"])
        .args(extra)
        .envs(env.iter().copied())
        .env("RUST_LOG", "info")
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap()
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args(["-s", name, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -s {name}");
}

/// Waits for the child to exit; fails the test if it hangs.
fn wait_exit(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + STOP_HANG;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the broker did not stop");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Stops the broker with `signal_name` and checks the exit status and the log.
fn stop_cleanly(broker: &mut Broker, log_path: &Path, signal_name: &str) -> String {
    signal(&broker.child, signal_name);
    let status = wait_exit(&mut broker.child);
    let log = std::fs::read_to_string(log_path).unwrap_or_default();
    assert!(
        status.success(),
        "exit {status} after {signal_name}:\n{log}"
    );
    assert!(!log.contains(UNCLEAN), "a partition did not close:\n{log}");
    log
}

/// Every partition directory of `topic` holds the clean-shutdown marker.
fn assert_closed_cleanly(data_dir: &Path, topic: &str, partitions: i32) {
    for partition in 0..partitions {
        let marker = data_dir
            .join(format!("{topic}-{partition}"))
            .join(".clean_shutdown");
        assert!(marker.exists(), "{} missing", marker.display());
    }
}

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

fn high_watermark(client: &mut Client, topic: &str, partition: i32) -> i64 {
    let data = client.fetch_partition(topic, partition, 0, 12);
    assert_eq!(data.error_code, 0, "{topic}-{partition}");
    data.high_watermark
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
    let status = wait_exit(&mut broker.child);
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
    let status = wait_exit(&mut broker.child);
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
    let status = wait_exit(&mut child);
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
