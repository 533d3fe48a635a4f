//! Hostile and stalled fetchers against the real binary (review of the Fetch path).
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

mod common;
use common::client::Client;
use common::start_broker;

fn fetch_of(topic: &str, partitions: Vec<FetchPartition>, max_wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(partitions)])
}

/// The same partition named 40,000 times in one long-polling Fetch (a 1.3 MB request): each
/// copy parked a waiter on the partition's log, and each park swept every waiter already parked
/// there, so this one request held its shard for n²/2 steps (17 s in a debug build) while every
/// other connection of the shard waited. Now a fetch answers and parks once per partition, and
/// a park visits O(1) waiters on average however many wait (counted by the engine's
/// `a_park_visits_a_bounded_number_of_waiters_on_average`).
#[test]
fn a_fetch_naming_one_partition_many_times_is_answered_and_parked_once() {
    let broker = start_broker(&["--shards", "1"]);
    let mut admin = Client::connect(&broker);
    assert_eq!(admin.create_topic("dup", 1, &[]), 0);
    let max_wait = Duration::from_millis(2_000);
    let partitions = (0..40_000)
        .map(|_| {
            FetchPartition::default()
                .with_partition(0)
                .with_partition_max_bytes(1 << 20)
        })
        .collect();
    let request = fetch_of("dup", partitions, max_wait.as_millis() as i32);
    let mut fetcher = Client::connect(&broker);
    fetcher.set_read_timeout(Duration::from_secs(120));
    fetcher.send(ApiKey::Fetch, 12, &request).unwrap();
    // While it is parked (no data comes), the shard answers others.
    let _: ApiVersionsResponse = admin.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let response: FetchResponse = fetcher.receive(ApiKey::Fetch, 12).unwrap();
    let answered = &response.responses[0].partitions;
    assert_eq!(
        answered.len(),
        1,
        "a partition named again is answered once"
    );
    assert_eq!(answered[0].error_code, 0);
}

/// A Fetch with min_bytes 0 is answered at once, data or not (Kafka's `fetchMinBytes <= 0`), not
/// after max_wait_ms: a client polling that way was held 60 s per empty fetch.
#[test]
fn a_fetch_with_min_bytes_zero_is_answered_at_once() {
    let broker = start_broker(&[]);
    let mut admin = Client::connect(&broker);
    assert_eq!(admin.create_topic("empty", 1, &[]), 0);
    let request = fetch_of(
        "empty",
        vec![FetchPartition::default()
            .with_partition(0)
            .with_partition_max_bytes(1 << 20)],
        60_000,
    )
    .with_min_bytes(0);
    let mut fetcher = Client::connect(&broker);
    // Far below the 60 s the broker would wait, far above an answer at once.
    fetcher.set_read_timeout(Duration::from_secs(30));
    fetcher.send(ApiKey::Fetch, 12, &request).unwrap();
    let response: FetchResponse = fetcher
        .receive(ApiKey::Fetch, 12)
        .expect("answered before max_wait_ms");
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    assert!(partition
        .records
        .as_ref()
        .is_none_or(|records| records.is_empty()));
}

/// Starts `ringtail` with one shard and its data on the build's disk (not a tmpfs /tmp, whose
/// pages cannot be evicted), plus `extra` flags.
fn start_broker_on_disk(extra: &[&str]) -> common::Broker {
    start_broker_on_disk_with_env(extra, &[])
}

/// [`start_broker_on_disk`] with environment variables (test hooks of debug builds).
fn start_broker_on_disk_with_env(
    extra: &[&str],
    env: &[(&str, &std::path::Path)],
) -> common::Broker {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    common::start_broker_spawned_by(dir, |port, metrics_port, dir| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ringtail"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--shards", "1", "--flush", "every_batch"])
            .args(extra)
            .envs(env.iter().copied())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    })
}

/// Drops `topic`'s partition 0 segment files from the page cache (clean: every produce was
/// fsynced).
fn evict(broker: &common::Broker, topic: &str) {
    let partition_dir = broker.dir.path().join("data").join(format!("{topic}-0"));
    for entry in std::fs::read_dir(partition_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|extension| extension == "log") {
            let file = std::fs::File::open(&path).unwrap();
            ringtail_engine::io::drop_cached_file_blocking(&file).unwrap();
        }
    }
}

/// A connection whose receive buffer is small, so a large response soon fills it.
fn small_window_connection(broker: &common::Broker) -> std::net::TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let address: std::net::SocketAddr = format!("127.0.0.1:{}", broker.port).parse().unwrap();
    socket.connect(&address.into()).unwrap();
    socket.into()
}

/// A consumer that asks for a large cold fetch and then never reads (its receive window stays
/// at zero, the process alive) must not hold its connection, the segment files its response
/// names and its share of the cold read memory budget forever: Kafka closes a connection that
/// makes no progress for connections.max.idle.ms. The broker's writer used to wait for room in
/// the socket without end; the reader's idle timeout closed only the reading side.
#[test]
fn a_fetcher_that_never_reads_is_closed_after_the_idle_time() {
    use std::io::{Read, Write};
    let idle_ms = 1_500;
    let broker = start_broker_on_disk(&["--connections-max-idle-ms", &idle_ms.to_string()]);
    let mut admin = Client::connect(&broker);
    assert_eq!(admin.create_topic("stall", 1, &[]), 0);
    for round in 0..16 {
        let batch = ringtail_engine::batch::encode_uniform_batch(1_000 + round, 512, 1_000);
        assert_eq!(admin.produce("stall", 0, batch).error_code, 0);
    }
    drop(admin);
    evict(&broker, "stall");

    let mut stalled = small_window_connection(&broker);
    let request = common::fetch_from_start("stall", 100, 64 << 20, 32 << 20);
    stalled
        .write_all(&common::request_frame(
            ApiKey::Fetch,
            12,
            1,
            "stall",
            &request,
        ))
        .unwrap();
    // The cold reads start, and the response fills the socket buffers: no byte is read here.
    // (A cold chunk of 4 MiB may never be written whole into this window: the sign is its read.)
    let deadline = Instant::now() + Duration::from_secs(30);
    while common::scrape(&broker, "ringtail_fetch_cold_read_wait_seconds_count") == 0 {
        assert!(Instant::now() < deadline, "the fetch never went cold");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Closed by the kernel's TCP_USER_TIMEOUT (the idle time) and then by the broker; polled up
    // to a deadline far beyond it, so a busy machine does not fail the test, while a broker that
    // keeps the connection (as before) does.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (open, read_ahead) = loop {
        let open = common::scrape(&broker, "ringtail_connections_open");
        let read_ahead = common::scrape(&broker, "ringtail_fetch_cold_read_memory_bytes");
        if (open == 0 && read_ahead == 0) || Instant::now() > deadline {
            break (open, read_ahead);
        }
        std::thread::sleep(Duration::from_millis(100));
    };

    // Whatever the broker did send can be read; a closed connection ends before the frame does.
    stalled
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut received = Vec::new();
    let end = stalled.read_to_end(&mut received);
    let frame_bytes = received.get(..4).map_or(usize::MAX, |size| {
        4 + i32::from_be_bytes(size.try_into().unwrap()) as usize
    });
    assert_eq!(
        open, 0,
        "the stalled connection is still open 60 s after it stalled"
    );
    assert_eq!(
        read_ahead, 0,
        "the stalled connection still holds cold read memory"
    );
    assert!(
        received.len() < frame_bytes,
        "the whole response arrived ({} bytes, {end:?}): the connection was kept",
        received.len()
    );
}

/// Topics deleted while a Fetch of their evicted data waits for its cold reads (held by the
/// debug build's hook until the test releases them): the response's files stay open, so the
/// client gets every byte it was promised, the same bytes a hot fetch gave, read direct or
/// buffered, across two ranges (the second read ahead while the first is written).
#[test]
#[cfg_attr(not(debug_assertions), ignore = "needs the debug build's test hooks")]
fn topics_deleted_under_a_cold_fetch_still_send_every_byte() {
    for mode in ["direct", "buffered"] {
        let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let release = work.path().join("release");
        let broker = start_broker_on_disk_with_env(
            &["--fetch-cold-read-io", mode],
            &[("RINGTAIL_TEST_HOLD_COLD_READS", &release)],
        );
        let mut admin = Client::connect(&broker);
        let topics = ["gone-a", "gone-b"];
        let mut request = common::fetch_from_start(topics[0], 100, 64 << 20, 32 << 20);
        for topic in topics {
            assert_eq!(admin.create_topic(topic, 1, &[]), 0);
            for round in 0..5 {
                let batch = ringtail_engine::batch::encode_uniform_batch(1_000 + round, 512, 1_000);
                assert_eq!(admin.produce(topic, 0, batch).error_code, 0);
            }
        }
        let mut second = request.topics[0].clone();
        second.topic = TopicName(StrBytes::from_string(topics[1].to_string()));
        request.topics.push(second);
        let records_of = |response: &FetchResponse| -> Vec<bytes::Bytes> {
            response
                .responses
                .iter()
                .map(|topic| {
                    assert_eq!(topic.partitions[0].error_code, 0);
                    topic.partitions[0].records.clone().unwrap()
                })
                .collect()
        };
        let hot: FetchResponse = admin.call(ApiKey::Fetch, 12, &request);
        let hot = records_of(&hot);
        assert!(hot.iter().all(|records| records.len() > 2 << 20));
        for topic in topics {
            evict(&broker, topic);
        }

        let mut reader = Client::connect(&broker);
        reader.send(ApiKey::Fetch, 12, &request).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while common::scrape(&broker, "ringtail_fetch_cold_reads_in_progress") == 0 {
            assert!(
                Instant::now() < deadline,
                "{mode}: the fetch never went cold"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        for topic in topics {
            let request = DeleteTopicsRequest::default()
                .with_topic_names(vec![TopicName(StrBytes::from_string(topic.to_string()))])
                .with_timeout_ms(10_000);
            let response: DeleteTopicsResponse = admin.call(ApiKey::DeleteTopics, 5, &request);
            assert_eq!(response.responses[0].error_code, 0);
            let dir = broker.dir.path().join("data").join(format!("{topic}-0"));
            while dir.exists() {
                assert!(Instant::now() < deadline, "{mode}: {topic} never deleted");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        std::fs::write(&release, b"").unwrap();
        let cold: FetchResponse = reader.receive(ApiKey::Fetch, 12).unwrap();
        assert!(
            records_of(&cold) == hot,
            "{mode}: cold bytes differ from the hot ones"
        );
        assert!(common::scrape(&broker, "ringtail_fetch_cold_bytes_total") > 0);
    }
}

/// Open descriptors of the broker on deleted files under a `topic-N` partition directory.
fn deleted_files_held(broker: &common::Broker, topic: &str) -> usize {
    let prefix = format!("/{topic}-");
    std::fs::read_dir(format!("/proc/{}/fd", broker.child.id()))
        .unwrap()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .map(|target| target.to_string_lossy().into_owned())
        .filter(|target| target.contains(&prefix) && target.ends_with("(deleted)"))
        .count()
}

/// A long-polling Fetch parks a waiter on each partition's owner shard. Once one partition has
/// data the fetch is answered, but the waiters it had parked on the other shard used to stay
/// until its deadline (up to 60 s), each holding its partition's log: a fetch woken again and
/// again left a new set per wake, and a topic deleted meanwhile kept its files open. Shown by
/// the files: the quiet topic, deleted after the fetch was answered, must be let go at once.
#[test]
fn a_long_poll_answered_leaves_no_waiters_on_other_shards() {
    let broker = start_broker(&["--shards", "2"]);
    let mut admin = Client::connect(&broker);
    // Neighbouring partitions are on different shards: whichever shard serves the connection,
    // one partition of each topic is on the other.
    assert_eq!(admin.create_topic("busy", 2, &[]), 0);
    assert_eq!(admin.create_topic("quiet", 2, &[]), 0);
    let mut request = fetch_of(
        "busy",
        (0..2)
            .map(|partition| {
                FetchPartition::default()
                    .with_partition(partition)
                    .with_partition_max_bytes(1 << 20)
            })
            .collect(),
        30_000,
    );
    let mut quiet = request.topics[0].clone();
    quiet.topic = TopicName(StrBytes::from_static_str("quiet"));
    request.topics.push(quiet);
    let mut fetcher = Client::connect(&broker);
    fetcher.set_read_timeout(Duration::from_secs(60));
    fetcher.send(ApiKey::Fetch, 12, &request).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let batch = ringtail_engine::batch::encode_uniform_batch(1, 1, 10);
    assert_eq!(admin.produce("busy", 0, batch).error_code, 0);
    let response: FetchResponse = fetcher.receive(ApiKey::Fetch, 12).unwrap();
    assert!(response.responses[0].partitions[0]
        .records
        .as_ref()
        .is_some_and(|records| !records.is_empty()));

    let delete = DeleteTopicsRequest::default()
        .with_topic_names(vec![TopicName(StrBytes::from_static_str("quiet"))])
        .with_timeout_ms(10_000);
    let deleted: DeleteTopicsResponse = admin.call(ApiKey::DeleteTopics, 5, &delete);
    assert_eq!(deleted.responses[0].error_code, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let held = deleted_files_held(&broker, "quiet");
        if held == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{held} files of the deleted topic still open: a waiter of the answered fetch holds its log"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
