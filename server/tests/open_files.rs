//! The broker's open-files limit: raised from soft to hard at start, reported on /metrics, and
//! warned about before segments or connections run out of descriptors.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::client::Client;
use common::{scrape, start_broker_spawned_by, Broker};
use ringtail_engine::batch::encode_uniform_batch;

/// Starts `ringtail` under `ulimit_args` (e.g. `-S -n 256`), stderr into a file in its dir; its
/// data dir is `data` inside it.
fn start_under_ulimit(ulimit_args: &str) -> Broker {
    start_broker_spawned_by(tempfile::tempdir().unwrap(), |port, metrics_port, dir| {
        let stderr = std::fs::File::create(dir.join("stderr.log")).unwrap();
        Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit {ulimit_args} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_ringtail"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--shards", "2"])
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap()
    })
}

/// Field `column` (1 = soft, 2 = hard) of the "Max open files" line of /proc/`pid`/limits.
fn open_files_limit(pid: &str, column: usize) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace()
        .nth(2 + column)
        .unwrap()
        .parse()
        .unwrap()
}

fn open_descriptors(child: &Child) -> u64 {
    std::fs::read_dir(format!("/proc/{}/fd", child.id()))
        .unwrap()
        .count() as u64
}

#[test]
fn the_soft_limit_is_raised_to_the_hard_one_and_both_show_on_metrics() {
    let hard = open_files_limit("self", 2);
    assert!(
        hard > 256,
        "the test needs a hard limit above 256, not {hard}"
    );
    let broker = start_under_ulimit("-S -n 256");
    let pid = broker.child.id().to_string();
    assert_eq!(
        open_files_limit(&pid, 2),
        hard,
        "the hard limit is unchanged"
    );
    assert_eq!(open_files_limit(&pid, 1), hard, "the soft limit is raised");
    assert_eq!(scrape(&broker, "ringtail_open_files_limit"), hard);

    // The gauge counts the broker's own descriptors (the scrape's connection among them).
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("files", 8, &[]), 0);
    let before = open_descriptors(&broker.child);
    let gauge = scrape(&broker, "ringtail_open_files");
    let after = open_descriptors(&broker.child);
    assert!(
        gauge + 4 >= before.min(after) && gauge <= before.max(after) + 4,
        "gauge {gauge}, /proc says {before} then {after}"
    );
    let log = std::fs::read_to_string(broker.dir.path().join("stderr.log")).unwrap();
    assert!(
        log.contains("raised the open-files soft limit to the hard limit"),
        "{log}"
    );
}

#[test]
fn descriptors_near_the_limit_are_warned_about_and_the_broker_still_serves() {
    const LIMIT: u64 = 400;
    let broker = start_under_ulimit(&format!("-n {LIMIT}"));
    assert_eq!(scrape(&broker, "ringtail_open_files_limit"), LIMIT);
    let stderr = broker.dir.path().join("stderr.log");
    let warned = || {
        std::fs::read_to_string(&stderr)
            .unwrap()
            .contains("open files near the limit")
    };
    assert!(!warned(), "no warning while far under the limit");

    // Partitions written to (a partition opens at its first use; its active segment holds its
    // log and two indexes) until over 85% of the limit, in steps small enough to stay under it.
    let mut client = Client::connect(&broker);
    let mut topics = 0;
    while open_descriptors(&broker.child) * 100 <= LIMIT * 85 {
        assert!(topics < 40, "partitions did not add descriptors");
        let topic = format!("near-{topics}");
        assert_eq!(client.create_topic(&topic, 4, &[]), 0);
        for partition in 0..4 {
            let produced = client.produce(&topic, partition, encode_uniform_batch(1_000, 1, 10));
            assert_eq!(produced.error_code, 0, "produce to {topic}-{partition}");
        }
        topics += 1;
    }
    let open = open_descriptors(&broker.child);
    assert!(
        open < LIMIT,
        "{open} descriptors: the steps overshot the limit"
    );

    // The watcher counts every 10 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !warned() {
        assert!(
            Instant::now() < deadline,
            "no warning at {open} of {LIMIT} descriptors"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = std::fs::read_to_string(&stderr).unwrap();
    assert!(
        log.contains(&format!("open_files_limit={LIMIT}")),
        "the warning names the limit: {log}"
    );
    // Warned, not refused: the last topic takes records and gives them back.
    let last = format!("near-{}", topics - 1);
    let produced = client.produce(&last, 0, encode_uniform_batch(1_000, 3, 10));
    assert_eq!(produced.error_code, 0, "produce near the limit");
    let records = client.fetch_records(&last, 0, 0);
    assert!(!records.is_empty(), "the record came back");
}
