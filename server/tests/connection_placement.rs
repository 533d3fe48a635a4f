//! Which shard serves a connection (`--connection-placement`, server/src/placement.rs): by
//! default the one serving the fewest, whatever listener the kernel's SO_REUSEPORT hash picked.
//! A handed-over connection serves requests as any other, and is counted until it closes, also
//! when the client closes it before its first byte. (A handed-over TLS connection is served by
//! the same code after the hand-over: the security suites' connections go through it too.)

use std::net::TcpStream;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse};
use ringtail_engine::batch::encode_uniform_batch;

mod common;
use common::client::{now_ms, Client};
use common::{scrape, start_broker, Broker};

const SHARD_0: &str = "ringtail_shard_connections{shard=\"0\"}";
const SHARD_1: &str = "ringtail_shard_connections{shard=\"1\"}";
const HANDED_OVER: &str = "ringtail_connections_handed_over_total";

fn per_shard(broker: &Broker) -> (u64, u64) {
    (scrape(broker, SHARD_0), scrape(broker, SHARD_1))
}

/// The connection counts once they add up to `total` (a closed connection's task ends when its
/// next read returns, so both shards notice closes in their own time), or what they were after
/// 30 s, for the caller to compare.
fn per_shard_totalling(broker: &Broker, total: u64) -> (u64, u64) {
    polled(
        || per_shard(broker),
        |(first, second)| first + second == total,
    )
}

/// Waits until the broker has accepted `count` connections since start (up to 30 s).
fn accepted_reaching(broker: &Broker, count: u64) -> u64 {
    polled(
        || scrape(broker, "ringtail_connections_accepted_total"),
        |&accepted| accepted >= count,
    )
}

/// `read()` again every 20 ms until `done` holds of it or 30 s pass; the last reading.
fn polled<T>(read: impl Fn() -> T, done: impl Fn(&T) -> bool) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reading = read();
        if done(&reading) || Instant::now() > deadline {
            return reading;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `count` connections opened one after another, each answered (a Metadata request) before the
/// next is opened.
fn answered_connections(broker: &Broker, count: usize) -> Vec<Client> {
    (0..count)
        .map(|_| {
            let mut client = Client::connect(broker);
            let _: MetadataResponse =
                client.call(ApiKey::Metadata, 12, &MetadataRequest::default());
            client
        })
        .collect()
}

#[test]
fn connections_spread_evenly_over_the_shards_and_every_one_serves_produce_and_fetch() {
    let broker = start_broker(&[]);
    let mut admin = Client::connect(&broker);
    assert_eq!(admin.create_topic("placed", 4, &[]), 0);

    // Opened one after another, each answered before the next is opened (so no two shards
    // choose at once). With the kernel's hash alone, forty connections split 20/20 one time in
    // eight; with the balance, none is handed over one time in 2^20.
    let mut clients: Vec<Client> = Vec::new();
    for index in 0..39 {
        let mut client = Client::connect(&broker);
        let partition = index % 4;
        let answer = client.produce("placed", partition, encode_uniform_batch(now_ms(), 3, 64));
        assert_eq!(answer.error_code, 0, "produce on connection {index}");
        clients.push(client);
    }
    assert_eq!(
        per_shard(&broker),
        (20, 20),
        "the admin connection and 39 more"
    );
    // Each connection reads back all that every connection wrote to its partition.
    for (index, client) in clients.iter_mut().enumerate() {
        let partition = (index % 4) as i32;
        let data = client.fetch_partition("placed", partition, 0, 12);
        assert_eq!(data.error_code, 0);
        let written = (0..39).filter(|other| other % 4 == index % 4).count() as i64;
        assert_eq!(data.high_watermark, 3 * written, "partition {partition}");
    }
    assert!(
        scrape(&broker, HANDED_OVER) >= 1,
        "some connection was handed over, or the split above was luck"
    );

    clients.truncate(4);
    let left = per_shard_totalling(&broker, 5);
    assert!(
        left == (3, 2) || left == (2, 3),
        "five connections left: {left:?}"
    );
    drop(clients);
    drop(admin);
    assert_eq!(per_shard_totalling(&broker, 0), (0, 0), "all closed");

    // New connections fill both shards again from empty.
    let _again = answered_connections(&broker, 4);
    assert_eq!(per_shard(&broker), (2, 2));
}

#[test]
fn connections_closed_before_their_first_byte_are_not_counted_for_ever() {
    let broker = start_broker(&[]);
    for _ in 0..64 {
        drop(TcpStream::connect(("127.0.0.1", broker.port)).unwrap());
    }
    // Every one accepted (and so placed) before the count of those still open is read.
    assert!(accepted_reaching(&broker, 64) >= 64);
    assert_eq!(per_shard_totalling(&broker, 0), (0, 0));
    // The broker still serves, on both shards.
    let _clients = answered_connections(&broker, 2);
    assert_eq!(per_shard(&broker), (1, 1));
}

#[test]
fn the_accepting_shard_keeps_its_connections_when_asked() {
    let broker = start_broker(&["--connection-placement", "accepting-shard"]);
    let _clients = answered_connections(&broker, 8);
    let (first, second) = per_shard(&broker);
    assert_eq!(first + second, 8);
    assert_eq!(scrape(&broker, HANDED_OVER), 0);
}

#[test]
fn concurrent_accepts_on_both_shards_keep_the_counts_true() {
    const THREADS: usize = 8;
    const CONNECTIONS_PER_THREAD: usize = 25;
    let broker = start_broker(&[]);
    // Clients connecting at once: both shards accept, and choose, at the same moments.
    let clients: Vec<Client> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                scope.spawn(|| {
                    (0..CONNECTIONS_PER_THREAD)
                        .map(|_| {
                            let mut client = Client::connect(&broker);
                            let _: MetadataResponse =
                                client.call(ApiKey::Metadata, 12, &MetadataRequest::default());
                            client
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|thread| thread.join().unwrap())
            .collect()
    });
    let total = (THREADS * CONNECTIONS_PER_THREAD) as u64;
    let (first, second) = per_shard(&broker);
    assert_eq!(
        first + second,
        total,
        "every answered connection is counted once"
    );
    assert_eq!(scrape(&broker, "ringtail_connections_open"), total);
    drop(clients);
    assert_eq!(per_shard_totalling(&broker, 0), (0, 0));
    assert_eq!(scrape(&broker, "ringtail_connections_open"), 0);
}
