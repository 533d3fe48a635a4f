//! Helpers of the cold-read tests (`cold_reads.rs`, `cold_read_failures.rs`): a one-shard broker
//! whose cold reads a test can hold, topics of 512 KiB batches, and their eviction from the page
//! cache.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use ringtail_engine::batch::encode_uniform_batch;

use super::client::Client;
use super::Broker;

/// Failures, not timings: how long a step may take before the test gives up with a message.
pub const STEP_DEADLINE: Duration = Duration::from_secs(30);
pub const FETCH_VERSION: i16 = 12;

/// One shard, so the cold fetch and the produce share it; data on the build's disk (the target
/// directory), not a tmpfs /tmp whose pages cannot be evicted.
pub fn start_broker(extra: &[&str], hold_release: Option<&Path>) -> Broker {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    // On other ports again if a parallel test's broker took one first (ours then exits).
    super::start_broker_spawned_by(dir, |port, metrics_port, dir| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ringtail"));
        command
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--shards", "1", "--flush", "every_batch"])
            .args(extra)
            .stderr(super::stderr_log(dir));
        if let Some(release) = hold_release {
            command.env("RINGTAIL_TEST_HOLD_COLD_READS", release);
        }
        command.spawn().unwrap()
    })
}

/// A client whose reads wait a whole step.
pub fn connect(broker: &Broker) -> Client {
    let mut client = Client::connect(broker);
    client.set_read_timeout(STEP_DEADLINE);
    client
}

pub fn create_topic(client: &mut Client, name: &str) {
    let request = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(name.to_string())))
        .with_num_partitions(1)
        .with_replication_factor(1)]);
    let response: CreateTopicsResponse = client.call(ApiKey::CreateTopics, 5, &request);
    assert_eq!(response.topics[0].error_code, 0);
}

pub fn produce_request(topic: &str, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])])
}

pub fn produce(client: &mut Client, topic: &str, records: Bytes) -> i64 {
    let response: ProduceResponse =
        client.call(ApiKey::Produce, 9, &produce_request(topic, records));
    let partition = &response.responses[0].partition_responses[0];
    assert_eq!(partition.error_code, 0);
    partition.base_offset
}

pub fn fetch_request(topic: &str) -> FetchRequest {
    super::fetch_from_start(topic, 100, 64 << 20, 32 << 20)
}

/// The record bytes a fetch from offset 0 returns, checked batch by batch.
pub fn fetched_records(response: &FetchResponse) -> Bytes {
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    let records = partition.records.clone().unwrap();
    ringtail_engine::batch::validate_all(
        &records,
        usize::MAX,
        ringtail_engine::batch::Strictness::Stored,
    )
    .unwrap();
    records
}

/// Produces `batches` batches of 512 KiB to `topic`; returns their total size.
pub fn produce_backlog(client: &mut Client, topic: &str, batches: i64) -> usize {
    let mut total = 0;
    for round in 0..batches {
        let batch = Bytes::from(encode_uniform_batch(1_000 + round, 512, 1_000));
        assert_eq!(produce(client, topic, batch.clone()), round * 512);
        total += batch.len();
    }
    total
}

/// `request` answered on a connection of its own, closed after. Over loopback the skbs that
/// carried spliced page-cache pages are freed by the receiving CPU into the sending CPU's
/// deferred-free list (`net.core.skb_defer_max`), which that CPU empties only at its next network
/// receive: until then it holds the pages (seen: 1.5 MiB of a 3 MiB answer, for as long as the
/// connection stayed idle), and the kernel drops no page someone holds. Closing the connection
/// makes that traffic; a test that fetches hot data and then evicts it must not keep the
/// connection idle and open.
pub fn hot_fetch(broker: &Broker, request: &FetchRequest) -> FetchResponse {
    connect(broker).call(ApiKey::Fetch, FETCH_VERSION, request)
}

/// Drops the partition's segment files from the page cache, and waits until none of their pages
/// is cached. Pages can stay a moment after the advice: held by a connection they were spliced
/// to ([`hot_fetch`]), and the kernel drops no page someone else holds. Dirty pages stay too:
/// what a recovery may have rewritten is written back first.
pub fn evict_partition(broker: &Broker, topic: &str) {
    let partition_dir: PathBuf = broker.dir.path().join("data").join(format!("{topic}-0"));
    let segments: Vec<std::fs::File> = std::fs::read_dir(&partition_dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "log"))
        .map(|path| std::fs::File::open(path).unwrap())
        .collect();
    assert!(
        !segments.is_empty(),
        "no segment files in {}",
        partition_dir.display()
    );
    let cached_pages = std::cell::Cell::new(0);
    poll_for_a_step(
        || {
            let mut cached = 0;
            for file in &segments {
                file.sync_data().unwrap();
                ringtail_engine::io::drop_cached_file_blocking(file).unwrap();
                cached += ringtail_engine::io::range_cached_pages(file, 0, 0).unwrap();
            }
            cached_pages.set(cached);
            cached == 0
        },
        || {
            format!(
                "{} pages of {topic} stay cached (is the data dir on tmpfs?)",
                cached_pages.get()
            )
        },
    );
}

/// Waits until `metric` reaches `at_least`, failing after [`STEP_DEADLINE`].
pub fn wait_for_metric(broker: &Broker, metric: &str, at_least: u64, why: &str) {
    poll_for_a_step(
        || super::scrape(broker, metric) >= at_least,
        || format!("{why}: {metric} stayed below {at_least}"),
    );
}

/// Polls `settled` every 10 ms until it holds, failing with `failure()` after [`STEP_DEADLINE`].
fn poll_for_a_step(mut settled: impl FnMut() -> bool, failure: impl Fn() -> String) {
    let deadline = Instant::now() + STEP_DEADLINE;
    while !settled() {
        assert!(Instant::now() < deadline, "{}", failure());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Kills the broker (SIGKILL: no clean shutdown) and starts it again as [`start_broker`] does,
/// on the same data dir, without a hold, on fresh ports.
pub fn kill_and_restart(broker: &mut Broker, extra: &[&str]) {
    let _ = broker.child.kill();
    let _ = broker.child.wait();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let data_dir = broker.dir.path().join("data");
    let mut restarted = super::start_broker_spawned_by(dir, |port, metrics_port, _| {
        Command::new(env!("CARGO_BIN_EXE_ringtail"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--shards", "1", "--flush", "every_batch"])
            .args(extra)
            .stderr(super::stderr_log(broker.dir.path()))
            .spawn()
            .unwrap()
    });
    // The new child becomes the broker's; the placeholder takes the dead one (and an unused
    // dir) with it when dropped.
    std::mem::swap(&mut broker.child, &mut restarted.child);
    (broker.port, broker.metrics_port) = (restarted.port, restarted.metrics_port);
}

/// Waits until `metric` falls to 0, failing after [`STEP_DEADLINE`].
pub fn wait_for_zero(broker: &Broker, metric: &str, why: &str) {
    poll_for_a_step(
        || super::scrape(broker, metric) == 0,
        || format!("{why}: {metric} stayed above 0"),
    );
}

/// One Fetch of the first partition of each of `topics`, from offset 0, 1 MiB per partition.
pub fn fetch_of_topics(topics: &[&str]) -> FetchRequest {
    let mut request = super::fetch_from_start(topics[0], 100, 64 << 20, 1 << 20);
    for topic in &topics[1..] {
        let mut other = request.topics[0].clone();
        other.topic = TopicName(StrBytes::from_string(topic.to_string()));
        request.topics.push(other);
    }
    request
}

/// The records of each topic's first partition, in the request's order; each answered without error.
pub fn records_of(response: &FetchResponse) -> Vec<Bytes> {
    response
        .responses
        .iter()
        .map(|topic| {
            let partition = &topic.partitions[0];
            assert_eq!(partition.error_code, 0);
            partition.records.clone().unwrap()
        })
        .collect()
}

/// Evicts `topics`, fetches them again with `request` (now cold) and checks the records equal
/// `hot`; returns the cold bytes the broker counted (more than 0). `what` names the case.
pub fn refetch_evicted(
    broker: &Broker,
    client: &mut Client,
    topics: &[&str],
    request: &FetchRequest,
    hot: &[Bytes],
    what: &str,
) -> u64 {
    for topic in topics {
        evict_partition(broker, topic);
    }
    let cold: FetchResponse = client.call(ApiKey::Fetch, FETCH_VERSION, request);
    assert!(
        records_of(&cold) == hot,
        "{what}: cold bytes differ from the hot ones"
    );
    let cold_bytes = super::scrape(broker, "ringtail_fetch_cold_bytes_total");
    assert!(cold_bytes > 0, "{what}: the evicted ranges were read cold");
    cold_bytes
}

/// The topics of [`backlog_in_topics`].
pub const BACKLOG_TOPICS: [&str; 3] = ["first", "second", "third"];

/// Creates [`BACKLOG_TOPICS`] with three batches of backlog each; returns one Fetch of all three
/// (1 MiB each at most) and the records it gave while they were hot (over 512 KiB each).
pub fn backlog_in_topics(broker: &Broker, client: &mut Client) -> (FetchRequest, Vec<Bytes>) {
    for topic in BACKLOG_TOPICS {
        create_topic(client, topic);
        produce_backlog(client, topic, 3);
    }
    let request = fetch_of_topics(&BACKLOG_TOPICS);
    let hot = records_of(&hot_fetch(broker, &request));
    assert_eq!(hot.len(), BACKLOG_TOPICS.len());
    assert!(hot.iter().all(|records| records.len() > 512 * 1024));
    (request, hot)
}
