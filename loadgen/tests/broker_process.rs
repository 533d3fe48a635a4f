//! Real brokers started, probed, measured and stopped: Ringtail (the binary in `RINGTAIL_BIN`,
//! else the workspace's release build, else its debug build, which `cargo test --workspace`
//! makes), tansu (in `TANSU_BIN`, else where its install command puts it) and Apache Kafka
//! (scripts/kafka-peer.sh, once fetched: scripts/setup-test-deps.sh does it).
//!
//! Ringtail's binary must be there: `cargo test --workspace` builds it, and a missing one fails
//! the test with the build command; so must Kafka, which the README's test command fetches. Tansu
//! is optional (not every machine installs it), so its tests are `#[ignore]`d with the reason; run
//! them with `--ignored` where it is installed, and they fail if it is not.
#![forbid(unsafe_code)]

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use ringtail_loadgen::broker_process::{
    self, BrokerKind, BrokerProcess, BrokerSpec, StopOutcome, TansuStorage, STOP_GRACE_DEFAULT,
};
use ringtail_loadgen::cpu;
use ringtail_loadgen::layout::{self, DiskKind, Layout};

/// The binary of `kind`.
///
/// # Panics
/// When it is not installed, naming the command that installs it: a test that needs a broker
/// never passes without running one.
fn binary(kind: BrokerKind) -> PathBuf {
    let variable = match kind {
        BrokerKind::Ringtail => "RINGTAIL_BIN",
        BrokerKind::Kafka => "KAFKA_PEER_SCRIPT",
        _ => "TANSU_BIN",
    };
    let mut explicit = std::env::var_os(variable).map(PathBuf::from);
    // `cargo test --workspace` builds the server's debug binary next to our own tests.
    let debug_ringtail = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../debug/ringtail");
    if kind == BrokerKind::Ringtail
        && explicit.is_none()
        && !kind.default_binary().is_file()
        && debug_ringtail.is_file()
    {
        explicit = Some(debug_ringtail);
    }
    broker_process::locate(kind, explicit.as_deref()).unwrap_or_else(|error| panic!("{error}"))
}

/// Starts `kind` on `data_dir`, checks what a matrix relies on (pid, port, CPU, log), stops it
/// with SIGTERM and returns its exit status.
fn start_probe_stop(
    kind: BrokerKind,
    binary: PathBuf,
    data_dir: &Path,
    output_dir: &Path,
) -> ExitStatus {
    let data_dir = data_dir.to_path_buf();
    let output_dir = output_dir.to_path_buf();
    let spec = BrokerSpec::new(kind, binary, vec![data_dir], output_dir);
    let mut broker = BrokerProcess::start(&spec).unwrap();
    println!(
        "{kind}: pid {} on {}, {} APIs",
        broker.pid(),
        broker.bootstrap(),
        broker.apis().len()
    );
    assert!(broker.is_running().unwrap());
    assert_eq!(
        cpu::pid_listening_on(broker.addr().port()).unwrap(),
        Some(broker.pid())
    );
    assert!(
        broker.apis().iter().any(|api| api.api_key == 0),
        "Produce listed"
    );
    assert!(
        broker.apis().iter().any(|api| api.api_key == 1),
        "Fetch listed"
    );
    cpu::process_cpu(broker.pid()).unwrap();
    assert!(broker.log_path().starts_with(&spec.output_dir));

    let addr = broker.addr();
    let outcome = broker.stop(STOP_GRACE_DEFAULT).unwrap();
    println!("{kind}: {outcome:?}");
    let StopOutcome::Terminated { status, .. } = outcome else {
        panic!("{kind} did not stop on SIGTERM: {outcome:?}");
    };
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
    let log = fs::read_to_string(spec.log_path()).unwrap();
    assert!(
        log.starts_with(&format!("== {}", spec.binary.display())),
        "{log}"
    );
    status
}

#[test]
fn ringtail_starts_answers_and_stops() {
    // Ringtail exits 0 on SIGTERM (a clean shutdown).
    let binary = binary(BrokerKind::Ringtail);
    let dir = tempfile::tempdir().unwrap();
    let status = start_probe_stop(
        BrokerKind::Ringtail,
        binary,
        dir.path(),
        &dir.path().join("out"),
    );
    assert!(status.success(), "{status}");
}

#[test]
fn ringtail_on_a_mounted_layout() {
    // The matrix's pairing: the broker on a layout's disk, stopped before the layout is torn down.
    let binary = binary(BrokerKind::Ringtail);
    let kind = if Path::new("/dev/loop-control").exists() {
        DiskKind::XfsLoop
    } else {
        DiskKind::Fs
    };
    let work_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("broker-layout-{}", std::process::id()));
    // As root (CI runs as root) a layout is never skipped; elsewhere this fails with the reason.
    let prepared = layout::prepare(&Layout::disk(kind), &work_dir, 512 << 20)
        .unwrap_or_else(|error| panic!("{kind}: {error} (this test needs root for its layout)"));
    let status = start_probe_stop(
        BrokerKind::Ringtail,
        binary,
        prepared.data_dir(),
        &work_dir.join("out"),
    );
    assert!(status.success(), "{status}");
    prepared.teardown().unwrap();
    fs::remove_dir_all(&work_dir).unwrap();
}

#[test]
fn kafka_starts_answers_and_stops_cleanly() {
    // Apache Kafka through scripts/kafka-peer.sh: the JVM runs as the script's pid (exec), so the
    // matrix measures and signals the broker itself; its exit after SIGTERM (143) is clean.
    let binary = binary(BrokerKind::Kafka);
    let dir = tempfile::tempdir().unwrap();
    let status = start_probe_stop(
        BrokerKind::Kafka,
        binary,
        dir.path(),
        &dir.path().join("out"),
    );
    assert!(BrokerKind::Kafka.stopped_cleanly(status), "{status}");
    let properties = fs::read_to_string(dir.path().join("server.properties")).unwrap();
    assert!(
        properties.contains("process.roles=broker,controller"),
        "{properties}"
    );
}

#[test]
#[ignore = "needs tansu (TANSU_BIN, or cargo install --root ~/.cache/ringtail/tansu tansu --features dynostore,libsql); run with --ignored"]
fn tansu_on_sqlite_keeps_its_database_in_the_data_dir() {
    let kind = BrokerKind::Tansu(TansuStorage::Sqlite);
    let binary = binary(kind);
    let dir = tempfile::tempdir().unwrap();
    start_probe_stop(kind, binary, dir.path(), &dir.path().join("out"));
    let entries: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name())
        .collect();
    assert!(
        entries
            .iter()
            .any(|name| name.to_string_lossy().starts_with("tansu.db")),
        "{entries:?}"
    );
}

#[test]
#[ignore = "needs tansu (TANSU_BIN, or cargo install --root ~/.cache/ringtail/tansu tansu --features dynostore,libsql); run with --ignored"]
fn tansu_in_memory_starts_and_stops() {
    let kind = BrokerKind::Tansu(TansuStorage::Memory);
    let binary = binary(kind);
    let dir = tempfile::tempdir().unwrap();
    start_probe_stop(kind, binary, dir.path(), &dir.path().join("out"));
}

#[test]
fn dropping_a_broker_kills_it() {
    // A run that fails half-way must not leave its broker behind.
    let binary = binary(BrokerKind::Ringtail);
    let dir = tempfile::tempdir().unwrap();
    let spec = BrokerSpec::new(
        BrokerKind::Ringtail,
        binary,
        vec![dir.path().to_path_buf()],
        dir.path().join("out"),
    );
    let broker = BrokerProcess::start(&spec).unwrap();
    let proc_dir = Path::new("/proc").join(broker.pid().to_string());
    assert!(proc_dir.exists());
    drop(broker);
    assert!(!proc_dir.exists());
}
