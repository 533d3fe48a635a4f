//! The produce ceiling tool runs end to end: every message made in the measured window is
//! answered and recorded once, and the files it wrote are gone afterwards.

use std::process::Command;

fn run(args: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_produce_ceiling"))
        .args(args)
        .output()
        .expect("produce_ceiling runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON line")
}

#[test]
fn every_measured_message_is_recorded_once_and_the_files_are_removed() {
    let dir = tempfile::tempdir().expect("scratch dir");
    let dir_arg = dir.path().to_str().expect("a UTF-8 path");
    for write in ["buffered", "none"] {
        let report = run(&[
            "--rate-msg-s",
            "20000",
            "--message-bytes",
            "100",
            "--linger-ms",
            "1",
            "--connections",
            "3",
            "--duration-s",
            "0.5",
            "--warmup-s",
            "0.1",
            "--write",
            write,
            "--dir",
            dir_arg,
        ]);
        // Messages 2,000 up to 12,000 were made in the measured window.
        assert_eq!(report["messages"], 10_000, "{write}: {report}");
        assert_eq!(report["write"], write);
        let p50 = report["p50_ms"].as_f64().expect("a number");
        let p99 = report["p99_ms"].as_f64().expect("a number");
        assert!(p50 > 0.0 && p50 <= p99, "{write}: {report}");
    }
    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("readable").collect();
    assert!(left.is_empty(), "the tool left {left:?}");
}

#[test]
fn bad_flags_are_refused() {
    for args in [
        &["--write", "maybe"][..],
        &["--drop-behind", "yes"],
        &["--rate-msg-s"],
    ] {
        let status = Command::new(env!("CARGO_BIN_EXE_produce_ceiling"))
            .args(args)
            .output()
            .expect("produce_ceiling runs")
            .status;
        assert!(!status.success(), "{args:?} was accepted");
    }
}
