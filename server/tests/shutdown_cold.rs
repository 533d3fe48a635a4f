//! SIGTERM while a fetch of evicted data is under way, against the real binary: a cold read held
//! in flight, and the default sender thread's write blocked on a client that reads nothing. The
//! stop still exits 0 with every log closed (see `shutdown.rs` for the other stops).
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiKey;

mod common;
use common::client::Client;
use common::scrape;
use common::stopping::*;
use common::Broker;

/// Topic "cold" with `batches` batches of about 512 KB, evicted from the page cache, and a
/// client that has sent a Fetch of all of it from the start (and reads nothing back).
fn send_a_cold_fetch(broker: &Broker, batches: i64) -> Client {
    let mut admin = Client::connect(broker);
    assert_eq!(admin.create_topic("cold", 1, &[]), 0);
    for round in 0..batches {
        let batch = ringtail_engine::batch::encode_uniform_batch(1_000 + round, 512, 1_000);
        assert_eq!(admin.produce("cold", 0, batch).error_code, 0);
    }
    for entry in std::fs::read_dir(broker.dir.path().join("cold-0")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|extension| extension == "log") {
            let file = std::fs::File::open(&path).unwrap();
            ringtail_engine::io::drop_cached_file_blocking(&file).unwrap();
        }
    }
    let mut reader = Client::connect(broker);
    reader
        .send(
            ApiKey::Fetch,
            12,
            &common::fetch_from_start("cold", 100, 64 << 20, 32 << 20),
        )
        .unwrap();
    reader
}

#[test]
#[cfg_attr(not(debug_assertions), ignore = "needs the debug build's test hooks")]
fn a_sigterm_with_a_cold_read_in_flight_exits_cleanly() {
    // A fetch of evicted data whose cold read never finishes (held by the debug build's hook):
    // its connection's writer waits on the read, not on the socket; the stop still ends, with
    // every log closed.
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let release = work.path().join("release");
    let data = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let env = [("RINGTAIL_TEST_HOLD_COLD_READS", release.to_str().unwrap())];
    // Every append fsynced: clean pages, which the eviction below can drop.
    let extra = ["--flush", "every_batch"];
    let (mut broker, log_path, _logs) = start_logged_in(data, &extra, &env);
    let _reader = send_a_cold_fetch(&broker, 5);
    let deadline = Instant::now() + STOP_HANG;
    while scrape(&broker, "ringtail_fetch_cold_reads_in_progress") == 0 {
        assert!(Instant::now() < deadline, "the fetch never went cold");
        std::thread::sleep(Duration::from_millis(5));
    }
    stop_cleanly(&mut broker, &log_path, "TERM");
    assert_closed_cleanly(broker.dir.path(), "cold", 1);
}

#[test]
fn a_sigterm_while_a_sender_thread_writes_to_a_client_that_never_reads_exits_cleanly() {
    // The default cold path: evicted data read in and handed to the shard's sender thread,
    // whose write to a client that reads nothing fills the socket and waits. The stop shuts the
    // socket, which the sender's duplicate shares, so its write ends, and with it the
    // connection: the stop's drain is bounded and would end anyway, so what is checked is that
    // it did not have to give up on the connection (logged).
    let data = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let extra = ["--flush", "every_batch"];
    let (mut broker, log_path, _logs) = start_logged_in(data, &extra, &[]);
    // About 20 MB: more than loopback's socket buffers take in without a reader.
    let reader = send_a_cold_fetch(&broker, 40);
    let deadline = Instant::now() + STOP_HANG;
    // A yield comes after each 256 KiB piece the sender wrote (its bytes are counted only once
    // a whole chunk is out, which this client never lets happen).
    while scrape(&broker, "ringtail_fetch_cold_sender_yields_total") == 0 {
        assert!(
            Instant::now() < deadline,
            "the sender thread wrote no piece of the cold chunk"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let log = stop_cleanly(&mut broker, &log_path, "TERM");
    assert!(
        !log.contains(CONNECTIONS_LEFT_OPEN),
        "the sender's write held its connection past the shutdown of its socket:\n{log}"
    );
    assert_closed_cleanly(broker.dir.path(), "cold", 1);
    drop(reader);
}
