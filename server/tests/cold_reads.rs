//! Cold fetches against the real `ringtail` binary (KAFKA-7504): a fetch of data evicted from the
//! page cache does not hold up the shard. Shown by the order of responses, never by time: a test
//! build holds every cold read (`RINGTAIL_TEST_HOLD_COLD_READS`) until the test releases it,
//! and a produce sent later on another connection of the same shard must be answered first. Also
//! the produce path's per-stage histograms on /metrics (issue 13, part 2).
#![forbid(unsafe_code)]

use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::*;
use ringtail_engine::batch::encode_uniform_batch;

mod common;
use common::client::Client;
use common::cold::*;
use common::Broker;

#[test]
#[cfg_attr(not(debug_assertions), ignore = "needs the debug build's test hooks")]
fn a_held_cold_fetch_does_not_hold_up_a_later_produce_on_the_same_shard() {
    // The promise: while one connection's fetch waits for data read back from disk, the
    // shard answers another connection's produce. Hot data first: it is spliced, never cold.
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let release = work.path().join("release");
    let broker = start_broker(&[], Some(&release));
    let mut admin = connect(&broker);
    create_topic(&mut admin, "backlog");
    create_topic(&mut admin, "live");
    let backlog_bytes = produce_backlog(&mut admin, "backlog", 6);

    let hot = hot_fetch(&broker, &fetch_request("backlog"));
    assert_eq!(fetched_records(&hot).len(), backlog_bytes);
    assert!(common::scrape(&broker, "ringtail_fetch_hot_bytes_total") >= backlog_bytes as u64);
    assert_eq!(
        common::scrape(&broker, "ringtail_fetch_cold_bytes_total"),
        0,
        "fresh data is hot"
    );

    evict_partition(&broker, "backlog");
    let mut reader = connect(&broker);
    reader
        .send(ApiKey::Fetch, FETCH_VERSION, &fetch_request("backlog"))
        .unwrap();
    wait_for_metric(
        &broker,
        "ringtail_fetch_cold_reads_in_progress",
        1,
        "the fetch of evicted data must take the cold path (is the data dir on tmpfs?)",
    );

    let mut producer = connect(&broker);
    let offset = produce(
        &mut producer,
        "live",
        Bytes::from(encode_uniform_batch(7, 10, 100)),
    );
    assert_eq!(offset, 0, "the produce was answered");
    let fetch_started = reader.arrived_so_far();
    let fetch_frame_bytes = if fetch_started.len() >= 4 {
        4 + i32::from_be_bytes(fetch_started[..4].try_into().unwrap()) as usize
    } else {
        usize::MAX
    };
    assert!(
        fetch_started.len() < fetch_frame_bytes,
        "the cold fetch was still unanswered when the later produce's answer arrived"
    );
    // The fetch's chunks are read a few at a time (up to 4), and every one is still held.
    let held = common::scrape(&broker, "ringtail_fetch_cold_reads_in_progress");
    assert!((1..=4).contains(&held), "{held} cold reads in progress");

    std::fs::write(&release, b"").unwrap();
    let cold: FetchResponse = reader.receive_after(ApiKey::Fetch, FETCH_VERSION, fetch_started);
    let records = fetched_records(&cold);
    assert!(
        records == fetched_records(&hot),
        "cold bytes equal the hot ones"
    );
    let cold_bytes = common::scrape(&broker, "ringtail_fetch_cold_bytes_total");
    assert!(cold_bytes > 0);
    assert_eq!(
        common::scrape(&broker, "ringtail_fetch_cold_direct_bytes_total"),
        cold_bytes,
        "cold chunks are read with O_DIRECT by default"
    );
    assert_eq!(
        common::scrape(&broker, "ringtail_fetch_cold_reads_in_progress"),
        0
    );
    let reads = common::scrape(&broker, "ringtail_fetch_cold_read_wait_seconds_count");
    assert!(reads > 0);
    // The writer took its turn at every chunk read, and wrote each one.
    let writer_waits = common::scrape(
        &broker,
        "ringtail_fetch_cold_writer_wait_seconds_count{for=\"read\"}",
    );
    assert_eq!(writer_waits, reads, "one writer wait per cold chunk read");
    // The socket wait is recorded once the last write returned, which may be just after the
    // response reached this client.
    let socket_waits = "ringtail_fetch_cold_writer_wait_seconds_count{for=\"socket\"}";
    wait_for_metric(
        &broker,
        socket_waits,
        writer_waits,
        "a socket wait per chunk written",
    );
    assert_eq!(common::scrape(&broker, socket_waits), writer_waits);
    assert!(common::scrape(&broker, "ringtail_fetch_residency_check_seconds_count") > 0);
    // A fresh broker's shards have no spare buffers: its first direct reads make theirs, and
    // never more than one per read.
    let made = common::scrape(&broker, "ringtail_fetch_cold_buffer_make_seconds_count");
    assert!(
        (1..=reads).contains(&made),
        "{made} buffers made for {reads} cold reads"
    );
    // No pace by default: no read waited for one.
    assert_eq!(
        common::scrape(&broker, "ringtail_fetch_cold_pace_wait_seconds_count"),
        0
    );
    // Whether the cold buffers can have huge pages is the kernel's to say, and /metrics says it.
    let thp =
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    let thp_on = thp.contains("[always]") || thp.contains("[madvise]");
    assert_eq!(
        common::scrape(&broker, "ringtail_fetch_cold_huge_pages_enabled"),
        u64::from(thp_on),
        "THP mode {thp:?}"
    );
    assert_eq!(
        common::scrape(
            &broker,
            "ringtail_fetch_cold_huge_page_advice_refused_total"
        ),
        0
    );
}

#[test]
#[cfg_attr(not(debug_assertions), ignore = "needs the debug build's test hooks")]
fn a_cold_fetch_with_no_room_in_the_memory_budget_is_spliced_and_answered_meanwhile() {
    // Cold reads' buffers are bounded across connections. With a budget of one chunk, a held
    // fetch's chunk takes all of it; another connection's cold fetch is then spliced (the naive
    // path: no memory taken) and answered while the first is still held, byte for byte.
    // COLD_READ_MEMORY_BYTES_MIN: a 4 MiB chunk and its tail (under 4 KiB), widened to
    // alignment on both sides, with room to start at a huge page.
    const ONE_CHUNK_BYTES: u64 = (4 << 20) + 4096 + 2 * 4096 + (2 << 20);
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let release = work.path().join("release");
    let budget = ONE_CHUNK_BYTES.to_string();
    // A pace too, fast enough to slow nothing here: the spliced chunk must take its turn under
    // it as the read ones do, or many readers would go round the pace through such splices.
    let broker = start_broker(
        &[
            "--fetch-cold-read-memory-bytes",
            &budget,
            "--fetch-cold-read-bytes-per-sec",
            "1073741824",
        ],
        Some(&release),
    );
    assert_eq!(
        common::scrape(&broker, "ringtail_fetch_cold_read_memory_bytes_max"),
        ONE_CHUNK_BYTES
    );
    let mut admin = connect(&broker);
    create_topic(&mut admin, "held");
    create_topic(&mut admin, "other");
    produce_backlog(&mut admin, "held", 6);
    produce_backlog(&mut admin, "other", 6);
    let hot_held = hot_fetch(&broker, &fetch_request("held"));
    let hot_other = hot_fetch(&broker, &fetch_request("other"));
    evict_partition(&broker, "held");
    evict_partition(&broker, "other");

    let mut held = connect(&broker);
    held.send(ApiKey::Fetch, FETCH_VERSION, &fetch_request("held"))
        .unwrap();
    wait_for_metric(
        &broker,
        "ringtail_fetch_cold_reads_in_progress",
        1,
        "the fetch of evicted data must take the cold path (is the data dir on tmpfs?)",
    );
    assert_eq!(
        common::scrape(&broker, "ringtail_fetch_cold_read_memory_bytes"),
        ONE_CHUNK_BYTES,
        "the held chunk holds the whole budget"
    );

    let mut other = connect(&broker);
    let spliced: FetchResponse = other.call(ApiKey::Fetch, FETCH_VERSION, &fetch_request("other"));
    assert!(
        fetched_records(&spliced) == fetched_records(&hot_other),
        "the spliced cold bytes equal the hot ones"
    );
    assert!(
        common::scrape(&broker, "ringtail_fetch_cold_over_budget_bytes_total") > 0,
        "the other fetch's cold chunk was spliced for want of room"
    );
    let held_so_far = held.arrived_so_far();
    let held_frame_bytes = held_so_far.get(..4).map_or(usize::MAX, |size| {
        4 + i32::from_be_bytes(size.try_into().unwrap()) as usize
    });
    assert!(
        held_so_far.len() < held_frame_bytes,
        "the held fetch was still unanswered when the other one's answer arrived"
    );
    assert_eq!(
        common::scrape(&broker, "ringtail_fetch_cold_read_memory_bytes"),
        ONE_CHUNK_BYTES,
        "the spliced fetch took no memory"
    );

    std::fs::write(&release, b"").unwrap();
    let cold: FetchResponse = held.receive_after(ApiKey::Fetch, FETCH_VERSION, held_so_far);
    assert!(
        fetched_records(&cold) == fetched_records(&hot_held),
        "cold bytes equal the hot ones"
    );
    let deadline = Instant::now() + STEP_DEADLINE;
    while common::scrape(&broker, "ringtail_fetch_cold_read_memory_bytes") > 0 {
        assert!(Instant::now() < deadline, "the budget was never given back");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The held fetch's chunks were read, the other's one chunk (3 MiB) spliced: each took its
    // turn under the pace.
    let reads = common::scrape(&broker, "ringtail_fetch_cold_read_wait_seconds_count");
    assert_eq!(
        common::scrape(&broker, "ringtail_fetch_cold_pace_wait_seconds_count"),
        reads + 1,
        "the spliced chunk took its turn as the {reads} read ones did"
    );
}

/// A process's resident memory now (`VmRSS`) or at its peak (`VmHWM`), in bytes.
fn resident_bytes(broker: &Broker, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", broker.child.id())).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/PID/status"));
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|value| value.parse().ok())
        .unwrap();
    kib * 1024
}

#[test]
#[cfg_attr(not(debug_assertions), ignore = "needs the debug build's test hooks")]
fn many_cold_fetchers_at_once_hold_at_most_the_memory_budget() {
    // Forty connections fetch evicted data at once and every cold read is held: before the
    // budget covered every chunk, each connection's first chunk (6 MiB) was free of it, and the
    // broker's peak memory grew with the number of readers (40 x 6 MiB + 64 MiB here). Now the
    // chunks in flight hold at most the budget, the rest are spliced, and every response is whole.
    const CONNECTIONS: usize = 40;
    const BUDGET_BYTES: u64 = 64 << 20;
    /// The shard's two spare buffers, and the allocator's slack beside them.
    const SPARES_AND_SLACK_BYTES: u64 = 2 * (6 << 20) + (32 << 20);
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let release = work.path().join("release");
    let budget = BUDGET_BYTES.to_string();
    let broker = start_broker(&["--fetch-cold-read-memory-bytes", &budget], Some(&release));
    let mut admin = connect(&broker);
    create_topic(&mut admin, "crowd");
    produce_backlog(&mut admin, "crowd", 16);
    let hot = hot_fetch(&broker, &fetch_request("crowd"));
    let expected = fetched_records(&hot);
    evict_partition(&broker, "crowd");
    let baseline = resident_bytes(&broker, "VmRSS");

    let mut readers: Vec<Client> = (0..CONNECTIONS).map(|_| connect(&broker)).collect();
    for reader in &mut readers {
        reader
            .send(ApiKey::Fetch, FETCH_VERSION, &fetch_request("crowd"))
            .unwrap();
    }
    // Full: no room for one more chunk's buffer (6 MiB and 12 KiB).
    wait_for_metric(
        &broker,
        "ringtail_fetch_cold_read_memory_bytes",
        BUDGET_BYTES - (6 << 20) + 1,
        "forty held cold fetches must fill the budget",
    );
    let in_use = common::scrape(&broker, "ringtail_fetch_cold_read_memory_bytes");
    assert!(
        in_use <= BUDGET_BYTES,
        "{in_use} bytes of cold buffers in use, budget {BUDGET_BYTES}"
    );

    std::fs::write(&release, b"").unwrap();
    for reader in &mut readers {
        let response: FetchResponse =
            reader.receive_after(ApiKey::Fetch, FETCH_VERSION, Vec::new());
        assert!(
            fetched_records(&response) == expected,
            "a crowd fetch returned other bytes"
        );
    }
    assert!(
        common::scrape(&broker, "ringtail_fetch_cold_over_budget_bytes_total") > 0,
        "the fetches beyond the budget were spliced"
    );
    let peak = resident_bytes(&broker, "VmHWM");
    let bound = baseline + BUDGET_BYTES + SPARES_AND_SLACK_BYTES;
    assert!(
        peak <= bound,
        "peak RSS {} MiB above {} MiB (baseline {} MiB + budget + spares + slack)",
        peak >> 20,
        bound >> 20,
        baseline >> 20
    );
}

#[test]
fn a_fetch_of_several_cold_ranges_returns_the_same_bytes_read_direct_or_buffered() {
    // One Fetch over three evicted partitions, 1 MiB each at most: every range is read cold,
    // the next range's reads starting while one is written; the bytes are the ones a fetch of
    // the same data gave while it was hot, in both read modes.
    for (mode, direct_expected) in [("direct", true), ("buffered", false)] {
        let broker = start_broker(&["--fetch-cold-read-io", mode], None);
        let mut client = connect(&broker);
        let (request, hot) = backlog_in_topics(&broker, &mut client);

        let cold_bytes =
            refetch_evicted(&broker, &mut client, &BACKLOG_TOPICS, &request, &hot, mode);
        let direct_bytes = common::scrape(&broker, "ringtail_fetch_cold_direct_bytes_total");
        assert_eq!(
            direct_bytes == cold_bytes,
            direct_expected,
            "{mode}: {direct_bytes} of {cold_bytes} cold bytes read direct"
        );
        assert_eq!(direct_bytes > 0, direct_expected, "{mode}");
        // A chunk's share returns just after its last byte is written: poll, do not race it.
        let deadline = Instant::now() + STEP_DEADLINE;
        while common::scrape(&broker, "ringtail_fetch_cold_read_memory_bytes") > 0 {
            assert!(
                Instant::now() < deadline,
                "{mode}: reads ahead kept their budget"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn with_direct_writes_a_live_consumer_reads_the_tail_from_memory_or_disk() {
    // `--write-direct`: appends bypass the page cache. A fetch of what was just written is sent
    // from the log's tail cache; without the cache it finds the bytes cold and reads them from
    // disk (direct); with buffered writes the same fetch is hot. Small batches between the large
    // ones leave the log's end inside a block, which the next direct write rewrites.
    for (flags, source) in [
        (["--write-direct", "true"], "memory"),
        (["--tail-cache-bytes", "0"], "disk"),
        (["--write-direct", "false"], "page cache"),
    ] {
        let mut flags = flags.to_vec();
        if source == "disk" {
            flags.extend(["--write-direct", "true"]);
        }
        let broker = start_broker(&flags, None);
        let mut fetched_total = 0u64;
        let mut client = connect(&broker);
        create_topic(&mut client, "tail");
        let mut produced = 0;
        let mut next_offset = 0;
        for round in 0..6 {
            let (records, value_bytes) = if round % 2 == 0 {
                (512, 1_000)
            } else {
                (3, 17)
            };
            let batch = Bytes::from(encode_uniform_batch(1_000 + round, records, value_bytes));
            assert_eq!(produce(&mut client, "tail", batch.clone()), next_offset);
            next_offset += records as i64;
            produced += batch.len();
            let response: FetchResponse =
                client.call(ApiKey::Fetch, FETCH_VERSION, &fetch_request("tail"));
            assert_eq!(
                fetched_records(&response).len(),
                produced,
                "{source}: a fetch returns every batch written"
            );
            fetched_total += produced as u64;
        }
        let from_memory = common::scrape(&broker, "ringtail_fetch_tail_cache_bytes_total");
        let cold_bytes = common::scrape(&broker, "ringtail_fetch_cold_bytes_total");
        let direct_bytes = common::scrape(&broker, "ringtail_fetch_cold_direct_bytes_total");
        let hot_bytes = common::scrape(&broker, "ringtail_fetch_hot_bytes_total");
        let (memory_expected, cold_expected, hot_expected) = match source {
            "memory" => (fetched_total, 0, 0),
            "disk" => (0, fetched_total, 0),
            _ => (0, 0, fetched_total),
        };
        assert_eq!(
            (from_memory, cold_bytes, hot_bytes),
            (memory_expected, cold_expected, hot_expected),
            "{source}: bytes from the tail cache, read cold, spliced hot"
        );
        assert_eq!(direct_bytes, cold_bytes, "{source}");
    }
}

#[test]
fn with_the_check_off_evicted_data_is_spliced_unchecked() {
    // The naive path of --fetch-residency-check=off: no check, no cold path, every byte spliced,
    // even for data the page cache dropped.
    let broker = start_broker(&["--fetch-residency-check", "off"], None);
    let mut client = connect(&broker);
    create_topic(&mut client, "backlog");
    let backlog_bytes = produce_backlog(&mut client, "backlog", 3);
    evict_partition(&broker, "backlog");
    let spliced_before = common::scrape(&broker, "ringtail_spliced_bytes_total");
    let response: FetchResponse =
        client.call(ApiKey::Fetch, FETCH_VERSION, &fetch_request("backlog"));
    assert_eq!(fetched_records(&response).len(), backlog_bytes);
    let spliced = common::scrape(&broker, "ringtail_spliced_bytes_total") - spliced_before;
    assert_eq!(spliced, backlog_bytes as u64);
    assert_eq!(
        common::scrape(&broker, "ringtail_fetch_cold_bytes_total"),
        0
    );
    assert_eq!(common::scrape(&broker, "ringtail_fetch_hot_bytes_total"), 0);
    assert_eq!(
        common::scrape(&broker, "ringtail_fetch_residency_check_seconds_count"),
        0
    );
}

#[test]
fn a_bad_flag_value_is_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_ringtail"))
        .args(["--fetch-residency-check", "maybe"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--fetch-residency-check"), "{stderr}");
}

#[test]
fn every_produce_stage_is_counted_on_metrics() {
    // Issue 13 part 2's instrumentation: one acknowledged produce passes every stage once (one
    // partition), and each stage's histogram counts it.
    let broker = start_broker(&[], None);
    let mut client = connect(&broker);
    create_topic(&mut client, "staged");
    produce(
        &mut client,
        "staged",
        Bytes::from(encode_uniform_batch(1, 10, 100)),
    );
    produce(
        &mut client,
        "staged",
        Bytes::from(encode_uniform_batch(2, 10, 100)),
    );
    for stage in [
        "frame_read",
        "decode",
        "order_wait",
        "hop",
        "append",
        "group_wait",
        "write",
        "flush",
        "response_queue",
        "response_write",
    ] {
        let metric = format!("ringtail_produce_stage_seconds_count{{stage=\"{stage}\"}}");
        // order_wait exists from a connection's second produce on.
        let expected = if stage == "order_wait" { 1 } else { 2 };
        if stage == "response_write" {
            // Counted once the write completes on the broker's side, which may be just after
            // this client has read the response.
            wait_for_metric(
                &broker,
                &metric,
                expected,
                "the second response was written",
            );
        }
        assert_eq!(common::scrape(&broker, &metric), expected, "{metric}");
    }
}

#[test]
fn a_paced_broker_reads_every_cold_chunk_in_its_turn_and_answers_byte_for_byte() {
    // --fetch-cold-read-bytes-per-sec: every cold chunk waits for its turn under the pace (counted
    // once per read, whether it had to wait or not), and the fetch still returns the hot bytes.
    // Slow enough that the second read, started beside the first, is reserved well within the
    // first one's cost (a whole second for a 4 MiB chunk) however slow the machine: at 64 MiB/s
    // (62.5 ms), a loaded debug build started it later than that, and nothing had to wait.
    let pace = (4u64 << 20).to_string();
    let broker = start_broker(&["--fetch-cold-read-bytes-per-sec", &pace], None);
    assert_eq!(
        common::scrape(&broker, "ringtail_fetch_cold_read_bytes_per_sec").to_string(),
        pace
    );
    let mut client = connect(&broker);
    create_topic(&mut client, "paced");
    // About 10 MiB: three chunks, so reads queue behind each other under the pace.
    produce_backlog(&mut client, "paced", 20);
    let hot = hot_fetch(&broker, &fetch_request("paced"));
    let hot = fetched_records(&hot);
    evict_partition(&broker, "paced");
    let cold: FetchResponse = client.call(ApiKey::Fetch, FETCH_VERSION, &fetch_request("paced"));
    assert!(fetched_records(&cold) == hot, "paced cold bytes differ");
    let reads = common::scrape(&broker, "ringtail_fetch_cold_read_wait_seconds_count");
    assert!(reads >= 3, "{reads} cold reads of ~10 MiB");
    assert_eq!(
        common::scrape(&broker, "ringtail_fetch_cold_pace_wait_seconds_count"),
        reads,
        "every cold read took its turn under the pace"
    );
    // The reads were reserved together, so all but the first waited their predecessors' cost:
    // a turn, not a timing.
    let within_a_millisecond = common::scrape(
        &broker,
        "ringtail_fetch_cold_pace_wait_seconds_bucket{le=\"0.001\"}",
    );
    assert!(
        within_a_millisecond < reads,
        "{within_a_millisecond} of {reads} reads waited under a millisecond: none was paced"
    );
}
