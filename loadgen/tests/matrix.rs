//! A six-second matrix against a real `ringtail`: six scenarios of one second each on the
//! ordinary filesystem. Checks that every report file exists and parses, that the index lists
//! every run, and that consumers read every message produced (times the subscriptions, plus the
//! backlog for the catch-up reader). No timing is asserted.
#![forbid(unsafe_code)]

use std::fs;
use std::path::{Path, PathBuf};

use ringtail_loadgen::broker_process::{self, BrokerKind};
use ringtail_loadgen::layout::Layout;
use ringtail_loadgen::matrix::{run_matrix, MatrixOptions};
use ringtail_loadgen::report::RunReport;
use ringtail_loadgen::run::Silent;
use ringtail_loadgen::scenario;

/// The broker binary: RINGTAIL_BIN, else the debug build `cargo test --workspace` just made
/// (current with the source), else the release build.
///
/// # Panics
/// When none is there: CI builds it, and a matrix test that ran no matrix must not pass.
fn ringtail_binary() -> PathBuf {
    let explicit = std::env::var_os("RINGTAIL_BIN").map(PathBuf::from);
    let debug = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../debug/ringtail");
    let candidate = explicit.or_else(|| debug.is_file().then_some(debug));
    broker_process::locate(BrokerKind::Ringtail, candidate.as_deref())
        .unwrap_or_else(|error| panic!("{error}: build it with cargo build -p ringtail-server"))
}

#[test]
fn a_six_second_matrix_writes_reports_that_count_every_message() {
    let binary = ringtail_binary();
    let work = tempfile::tempdir().unwrap();
    let results = work.path().join("results");
    fs::create_dir_all(&results).unwrap();
    let names = [
        "max-produce",
        "fixed-rate-latency",
        "fan-out",
        "catch-up",
        "cold-catch-up",
        "partitions-16",
    ];
    let options = MatrixOptions {
        scenarios: scenario::select(&names.map(String::from)).unwrap(),
        layouts: vec![Layout::disk(ringtail_loadgen::layout::DiskKind::Fs)],
        brokers: vec![BrokerKind::Ringtail],
        binaries: [(BrokerKind::Ringtail.name().to_string(), binary)].into(),
        // Every run with direct writes (and the tail cache): the whole load path over them,
        // every message consumed; the default buffered path has the other tests.
        ringtail_args: vec!["--write-direct".to_string(), "true".to_string()],
        duration_s: 1.0,
        warmup_s: 0.0,
        backlog_bytes_max: 4_000_000,
        results_dir: results.clone(),
        work_dir: work.path().join("disks"),
        disk_bytes: 1 << 30,
        progress: &Silent,
    };
    let outcome = run_matrix(&options).unwrap();
    assert!(outcome.failed.is_empty(), "failed: {:?}", outcome.failed);
    assert!(outcome.skipped.is_empty(), "skipped: {:?}", outcome.skipped);
    assert_eq!(outcome.runs.len(), names.len());

    let index = fs::read_to_string(results.join("README.md")).unwrap();
    for name in names {
        let dir = results.join(name);
        for file in [
            "ringtail-fs.json",
            "ringtail-fs.csv",
            "ringtail-fs.md",
            "ringtail-fs-latency.svg",
            "ringtail-fs-throughput.svg",
            "comparison.md",
            "comparison.csv",
            "comparison-latency.svg",
            "comparison-throughput.svg",
        ] {
            let path = dir.join(file);
            let text =
                fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!text.is_empty(), "{} is empty", path.display());
            if file.ends_with(".svg") {
                assert!(text.contains("<svg"), "{} is not an SVG", path.display());
            }
        }
        let broker_config = fs::read_to_string(dir.join("ringtail-fs-broker.txt")).unwrap();
        assert!(
            broker_config.contains("--write-direct true"),
            "{name}: the matrix's flags reach the broker: {broker_config}"
        );
        let report: RunReport =
            serde_json::from_str(&fs::read_to_string(dir.join("ringtail-fs.json")).unwrap())
                .unwrap();
        let csv = fs::read_to_string(dir.join("ringtail-fs.csv")).unwrap();
        assert_eq!(
            csv.lines().count(),
            report.timeline.len() + 1,
            "{name}: header + a row a second"
        );
        assert!(
            index.contains(&format!("]({name}/ringtail-fs.md)")),
            "{name} is in the index"
        );

        let produced = report.produce.messages;
        assert!(produced > 0, "{name} produced");
        assert_eq!(
            report.produce.failed_messages, 0,
            "{name}: {:?}",
            report.produce.errors
        );
        let subscriptions = u64::from(report.config.subscriptions);
        let readers = u64::from(report.config.consumers_per_subscription.min(1));
        let expected = (produced + report.produce.backlog_messages) * subscriptions * readers;
        assert_eq!(
            report.consume.messages, expected,
            "{name}: every message consumed"
        );
        if name.ends_with("catch-up") {
            assert!(
                report.produce.backlog_messages > 0,
                "the catch-up reader had a backlog"
            );
        }
        if name != "max-produce" {
            assert!(report.config.rate_msgs_per_s.is_some() || name == "partitions-16");
        }
        assert!(
            report.broker_cpu_s.is_some(),
            "{name}: the broker's CPU is known"
        );
    }
}
