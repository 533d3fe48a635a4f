//! Helpers shared by the broker's integration tests: a `ringtail` child process on free loopback
//! ports with its own temporary data dir, killed when dropped.
//!
//! A test that sets one of the broker's test hooks (`RINGTAIL_TEST_*`, compiled into debug builds
//! only) carries `#[cfg_attr(not(debug_assertions), ignore = "...")]`: under `cargo test
//! --release` it is listed as ignored, with why, rather than failing or passing without its hook.
#![forbid(unsafe_code)]
// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Encodable, StrBytes};

pub mod client;
pub mod cold;
pub mod configs;
pub mod sasl;
pub mod stopping;
pub mod threads;
pub mod txn;

/// A size-prefixed Kafka request frame: header (with `client_id`) and body at `version`.
pub fn request_frame<Req: Encodable>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &'static str,
    request: &Req,
) -> BytesMut {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(client_id)));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, api.request_header_version(version))
        .unwrap();
    request.encode(&mut body, version).unwrap();
    let mut frame = BytesMut::new();
    frame.put_i32(i32::try_from(body.len()).unwrap());
    frame.extend_from_slice(&body);
    frame
}

/// How long a broker may take to listen after it is spawned.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running broker; killed (and its data dir removed) on drop.
pub struct Broker {
    pub child: Child,
    pub port: u16,
    pub metrics_port: u16,
    pub dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        // A test that failed while the broker runs (an answer that never came, most often) shows
        // where each of its threads waited, so a failure seen once in CI can be read afterwards.
        let log = stderr_log_path(self.dir.path());
        if std::thread::panicking() {
            eprint!("{}", thread_waits(self.child.id()));
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let shown = &lines[lines.len().saturating_sub(STDERR_LINES_SHOWN)..];
            eprintln!("broker log, its last {} lines:", shown.len());
            for line in shown {
                eprintln!("  {line}");
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(log);
    }
}

/// Lines of a broker's log a failed test prints.
const STDERR_LINES_SHOWN: usize = 80;

/// Where a broker on `data_dir` logs: beside the data dir, not in it (the broker owns that).
fn stderr_log_path(data_dir: &Path) -> std::path::PathBuf {
    let mut name = data_dir.as_os_str().to_owned();
    name.push(".broker.log");
    name.into()
}

/// The broker's stderr, appended to its log beside `data_dir` (restarts add to it).
pub fn stderr_log(data_dir: &Path) -> Stdio {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(stderr_log_path(data_dir))
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

/// Each thread of process `pid`: its name, the kernel function it sleeps in (`wchan`) and, as
/// root, its kernel stack.
pub fn thread_waits(pid: u32) -> String {
    let mut out = format!("broker (pid {pid}) threads when the test failed:\n");
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        out.push_str("  (gone)\n");
        return out;
    };
    for task in tasks.flatten() {
        let read = |name: &str| std::fs::read_to_string(task.path().join(name)).unwrap_or_default();
        out.push_str(&format!(
            "  {} {} waits in {:?}\n",
            task.file_name().to_string_lossy(),
            read("comm").trim(),
            read("wchan")
        ));
        for frame in read("stack").lines() {
            out.push_str(&format!("      {frame}\n"));
        }
    }
    out
}

/// The lowest port [`free_port`] hands out.
const LOWEST_TEST_PORT: u16 = 10_000;

/// A loopback port no one listens on right now, below the kernel's ephemeral range when it can
/// be: that range is also where clients' source ports come from, so a broker restarted on a port
/// from it could find a connection of a test running beside it holding the port ("Address already
/// in use"; seen in CI). Below it, only another test's own pick can collide.
pub fn free_port() -> u16 {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let span = ephemeral_start.saturating_sub(LOWEST_TEST_PORT);
    if span > 1_000 {
        for attempt in 0..100u64 {
            use std::hash::{BuildHasher, Hasher};
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u64(attempt);
            let port = LOWEST_TEST_PORT + (hasher.finish() % u64::from(span)) as u16;
            if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
                return listener.local_addr().unwrap().port();
            }
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `ringtail` with 2 shards, a metrics listener and a fresh data dir, plus `extra` flags;
/// returns once it accepts connections.
pub fn start_broker(extra: &[&str]) -> Broker {
    start_broker_with_env(extra, &[])
}

/// [`start_broker`] with environment variables set for the broker (test hooks of debug builds).
/// A [`restart`] starts it without them.
pub fn start_broker_with_env(extra: &[&str], env: &[(&str, &str)]) -> Broker {
    start_broker_spawned_by(tempfile::tempdir().unwrap(), |port, metrics_port, dir| {
        Command::new(env!("CARGO_BIN_EXE_ringtail"))
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--metrics-listen",
                &format!("127.0.0.1:{metrics_port}"),
            ])
            .arg("--data-dir")
            .arg(dir)
            .args(["--shards", "2"])
            .args(extra)
            .envs(env.iter().copied())
            .stderr(stderr_log(dir))
            .spawn()
            .unwrap()
    })
}

/// Starts a broker with `spawn(port, metrics_port, dir)` on fresh loopback ports, retried on
/// other ports when another process took them first (see [`wait_until_listening`]).
pub fn start_broker_spawned_by(
    dir: tempfile::TempDir,
    mut spawn: impl FnMut(u16, u16, &Path) -> Child,
) -> Broker {
    let mut exits = Vec::new();
    for _ in 0..START_ATTEMPTS {
        let (port, metrics_port) = (free_port(), free_port());
        let mut child = spawn(port, metrics_port, dir.path());
        match try_until_listening(&mut child, port, "broker did not start") {
            Ok(()) => {
                return Broker {
                    child,
                    port,
                    metrics_port,
                    dir,
                }
            }
            Err(exited) => exits.push(exited),
        }
    }
    panic!("broker did not start: {exits:?}");
}

/// Kills the broker (SIGKILL) and starts it again on the same data dir with `extra` flags (as
/// [`start_broker`] gives them: 2 shards, a metrics listener), on fresh ports.
pub fn restart_with(broker: &mut Broker, extra: &[&str]) {
    let _ = broker.child.kill();
    let _ = broker.child.wait();
    let mut exits = Vec::new();
    for _ in 0..START_ATTEMPTS {
        let (port, metrics_port) = (free_port(), free_port());
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringtail"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
            .arg("--data-dir")
            .arg(broker.dir.path())
            .args(["--shards", "2"])
            .args(extra)
            .stderr(stderr_log(broker.dir.path()))
            .spawn()
            .unwrap();
        match try_until_listening(&mut child, port, "broker did not restart") {
            Ok(()) => {
                (broker.child, broker.port, broker.metrics_port) = (child, port, metrics_port);
                return;
            }
            Err(exited) => exits.push(exited),
        }
    }
    panic!("broker did not restart: {exits:?}");
}

/// Spawns `ringtail` on `port` and `data_dir` (a restart) and returns once it listens.
pub fn spawn_on(port: u16, data_dir: &Path) -> Child {
    let mut child = spawn_unchecked(port, data_dir);
    wait_until_listening(&mut child, port, "broker did not restart");
    child
}

fn spawn_unchecked(port: u16, data_dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ringtail"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data_dir)
        .stderr(stderr_log(data_dir))
        .spawn()
        .unwrap()
}

/// Kills the broker (SIGKILL: no clean shutdown) and starts it again on the same data dir, on a
/// fresh port (the old one may be taken by a parallel test's broker meanwhile).
pub fn restart(broker: &mut Broker) {
    let _ = broker.child.kill();
    let _ = broker.child.wait();
    let mut exits = Vec::new();
    for _ in 0..START_ATTEMPTS {
        broker.port = free_port();
        let mut child = spawn_unchecked(broker.port, broker.dir.path());
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

/// Polls until `child` itself listens on `port`; fails the test with `failure` if it exits first
/// or after [`START_TIMEOUT`]. A connect alone is not proof: `free_port` hands the port back to
/// the kernel, another test's broker may take it first, and ours then exits while the other
/// answers (and is killed when its own test ends, resetting our connections).
pub fn wait_until_listening(child: &mut Child, port: u16, failure: &str) {
    if let Err(exited) = try_until_listening(child, port, failure) {
        panic!("{failure}: {exited}");
    }
}

/// [`wait_until_listening`], but a child that exits first (the port was taken: see there) is an
/// `Err` the caller may retry on another port.
pub(crate) fn try_until_listening(
    child: &mut Child,
    port: u16,
    failure: &str,
) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Err(format!(
                "ringtail exited ({status}) before listening on port {port}"
            ));
        }
        if listens_on(child.id(), port) {
            return Ok(());
        }
        assert!(Instant::now() < deadline, "{failure}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Attempts at a start whose free port another process took first.
pub(crate) const START_ATTEMPTS: usize = 5;

/// Whether process `pid` holds a socket listening on loopback `port` (/proc/net/tcp{,6} and the
/// process's file descriptors).
fn listens_on(pid: u32, port: u16) -> bool {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            let local_port = local
                .rsplit(':')
                .next()
                .and_then(|hex| u16::from_str_radix(hex, 16).ok());
            // State 0A is LISTEN.
            if local_port == Some(port) && *state == "0A" {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| {
            inodes
                .iter()
                .any(|inode| target.as_os_str() == inode.as_str())
        })
    })
}

/// A counter or gauge from the broker's /metrics (the line `metric value`); fails the test if it
/// is missing.
pub fn scrape(broker: &Broker, metric: &str) -> u64 {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(("127.0.0.1", broker.metrics_port)).unwrap();
    stream.set_read_timeout(Some(START_TIMEOUT)).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.lines()
        .find_map(|line| {
            line.strip_prefix(metric)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .unwrap_or_else(|| panic!("{metric} missing from /metrics"))
        .parse()
        .unwrap()
}

/// A Fetch of partition 0 of `topic` from offset 0 (no fetch session), with its wait and sizes.
pub fn fetch_from_start(
    topic: &str,
    max_wait_ms: i32,
    max_bytes: i32,
    partition_max_bytes: i32,
) -> kafka_protocol::messages::FetchRequest {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    kafka_protocol::messages::FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(kafka_protocol::messages::TopicName(StrBytes::from_string(
                topic.to_string(),
            )))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(partition_max_bytes)])])
}

/// Stops the broker with SIGTERM and checks it exits 0 (a clean shutdown: every log closed).
pub fn stop_cleanly(broker: &mut Broker) {
    let _ = Command::new("kill")
        .arg(broker.child.id().to_string())
        .status();
    let status = broker.child.wait().unwrap();
    assert!(
        status.success(),
        "the broker did not shut down cleanly: {status}"
    );
}
