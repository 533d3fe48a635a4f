//! Stopping a broker with a signal and checking how it went: a broker whose stderr goes to a
//! file, the signal, a bounded wait that reports what a hung broker's threads were doing, and the
//! checks of a clean stop (exit 0, every partition closed cleanly). Used by `shutdown.rs` and
//! `shutdown_cold.rs`.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{start_broker_spawned_by, Broker};

/// How long a stopping broker may take before the test calls it hung (a bound for a hang, not a
/// timing assertion: every stop here takes well under a second when it works).
pub const STOP_HANG: Duration = Duration::from_secs(60);
/// What the broker logs for a healthy partition whose close failed.
pub const UNCLEAN: &str = "did not close cleanly";
/// server/src/shutdown.rs's `CONNECTIONS_LEFT_OPEN`: a connection outlived its socket's shutdown.
pub const CONNECTIONS_LEFT_OPEN: &str = "closing with connections still open after being shut";
/// What the broker logs when its shutdown gave up waiting for requests.
pub const GAVE_UP_WAITING: &str = "closing with requests still in flight";

/// A broker (2 shards) whose stderr goes to a file the test reads once it has stopped.
pub fn start_logged(extra: &[&str], env: &[(&str, &str)]) -> (Broker, PathBuf, tempfile::TempDir) {
    start_logged_in(tempfile::tempdir().unwrap(), extra, env)
}

/// [`start_logged`] on the data dir `dir` (a real disk's, for cold reads).
pub fn start_logged_in(
    dir: tempfile::TempDir,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (Broker, PathBuf, tempfile::TempDir) {
    let logs = tempfile::tempdir().unwrap();
    let log_path = logs.path().join("stderr.log");
    let broker = start_broker_spawned_by(dir, |port, metrics, dir| {
        spawn_logged(port, metrics, dir, extra, env, &log_path)
    });
    (broker, log_path, logs)
}

pub fn spawn_logged(
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

pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args(["-s", name, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -s {name}");
}

/// Waits for the child to exit; fails the test if it hangs, with what the hung broker's threads
/// were doing and its log (a hang seen once in CI must be diagnosable from that run alone).
pub fn wait_exit(child: &mut Child, log_path: &Path) -> ExitStatus {
    let deadline = Instant::now() + STOP_HANG;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let report = hang_report(child.id());
            let _ = child.kill();
            let log = std::fs::read_to_string(log_path).unwrap_or_default();
            panic!("the broker did not stop\n{report}\nits log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Each thread of `pid`: its name, kernel wait channel and stack, then gdb's backtraces where gdb
/// is installed.
pub fn hang_report(pid: u32) -> String {
    let mut report = String::new();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten();
    for task in tasks.flatten() {
        let read = |name: &str| std::fs::read_to_string(task.path().join(name)).unwrap_or_default();
        report += &format!(
            "thread {:?} {} wchan={}\n{}",
            task.file_name(),
            read("comm").trim(),
            read("wchan"),
            read("stack")
        );
    }
    let gdb = Command::new("timeout")
        .args([
            "30",
            "gdb",
            "-p",
            &pid.to_string(),
            "-batch",
            "-ex",
            "thread apply all bt 40",
        ])
        .stdin(Stdio::null())
        .output();
    if let Ok(gdb) = gdb {
        report += &String::from_utf8_lossy(&gdb.stdout);
    }
    report
}

/// Stops the broker with `signal_name` and checks the exit status and the log.
pub fn stop_cleanly(broker: &mut Broker, log_path: &Path, signal_name: &str) -> String {
    signal(&broker.child, signal_name);
    let status = wait_exit(&mut broker.child, log_path);
    let log = std::fs::read_to_string(log_path).unwrap_or_default();
    assert!(
        status.success(),
        "exit {status} after {signal_name}:\n{log}"
    );
    assert!(!log.contains(UNCLEAN), "a partition did not close:\n{log}");
    log
}

/// Every partition directory of `topic` holds the clean-shutdown marker.
pub fn assert_closed_cleanly(data_dir: &Path, topic: &str, partitions: i32) {
    for partition in 0..partitions {
        let marker = data_dir
            .join(format!("{topic}-{partition}"))
            .join(".clean_shutdown");
        assert!(marker.exists(), "{} missing", marker.display());
    }
}
