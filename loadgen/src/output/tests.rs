//! Writes the files of synthetic reports into a temporary directory and reads them back.
#![forbid(unsafe_code)]

use std::fs;

use super::*;
use crate::report::{
    ConsumeSummary, Machine, Percentiles, ProduceSummary, RunReport, TimelinePoint,
};
use crate::workload::Workload;

/// A report with round, recognisable numbers; `scale` makes a second run differ from the first.
fn synthetic_report(label: &str, scale: u64) -> RunReport {
    let latency = |base_us: u64| Percentiles {
        count: 120_000,
        p50: base_us,
        p90: base_us * 2,
        p99: base_us * 4,
        p999: base_us * 8,
        p9999: base_us * 16,
        max: base_us * 32,
    };
    let curve = |base_us: u64| {
        [0.0, 50.0, 90.0, 99.0, 99.9, 99.99, 99.999, 100.0]
            .iter()
            .enumerate()
            .map(|(i, p)| (*p, base_us << i))
            .collect()
    };
    let timeline = (1..=12)
        .map(|t| TimelinePoint {
            t_s: t as f64,
            produced_messages: 10_000 * scale,
            produced_bytes: 10_240_000 * scale,
            consumed_messages: 9_000 * scale,
            consumed_bytes: 9_216_000 * scale,
            produce_latency_max_us: 2_500,
        })
        .collect();
    RunReport {
        label: label.to_string(),
        started_at: "2026-11-25T10:00:00Z".to_string(),
        partition_move: None,
        produce: ProduceSummary {
            messages: 120_000 * scale,
            bytes: 122_880_000 * scale,
            measured_messages: 100_000 * scale,
            measured_bytes: 102_400_000 * scale,
            measured_s: 10.0,
            mb_per_s: 10.24 * scale as f64,
            msgs_per_s: 10_000.0 * scale as f64,
            latency_us: latency(1_500 * scale),
            send_wait_us: latency(300 * scale),
            request_round_trip_us: latency(1_100 * scale),
            request_write_us: latency(50 * scale),
            backlog_messages: 0,
            failed_messages: 3,
            errors: [("NOT_LEADER_OR_FOLLOWER".to_string(), 3)].into(),
        },
        consume: ConsumeSummary {
            messages: 120_000 * scale,
            bytes: 122_880_000 * scale,
            measured_messages: 100_000 * scale,
            measured_bytes: 102_400_000 * scale,
            mb_per_s: 9.5 * scale as f64,
            msgs_per_s: 9_300.0 * scale as f64,
            e2e_latency_us: latency(2_500 * scale),
        },
        config: Workload::default(),
        machine: Machine {
            hostname: "bench-1".to_string(),
            kernel: "6.12.0".to_string(),
            cpu_model: "Test CPU".to_string(),
            cpus: 2,
            memory_bytes: 24 << 30,
            loadgen_commit: "abc1234".to_string(),
            loadgen_version: "0.1.0".to_string(),
        },
        broker_cpu_s: Some(4.0 * scale as f64),
        drain_timed_out: false,
        loadgen_cpu_s: 3.25,
        produce_mb_per_broker_cpu_s: Some(25.6),
        timeline,
        produce_latency_curve: curve(1_000 * scale),
        e2e_latency_curve: curve(2_000 * scale),
    }
}

fn assert_svg_with(text: &str, labels: &[&str]) {
    let start = text.trim_start();
    assert!(
        start.starts_with("<svg") || start.starts_with("<?xml"),
        "{start:.80}"
    );
    assert!(text.trim_end().ends_with("</svg>"));
    for label in labels {
        assert!(text.contains(label), "{label} missing from the SVG");
    }
}

#[test]
fn run_files_hold_the_report() {
    // Guards every file of one run: JSON round trip, CSV rows, markdown numbers, SVG labels.
    let dir = tempfile::tempdir().unwrap();
    let report = synthetic_report("ringtail", 1);
    let written = write_run_files(dir.path(), "run-1", &report).unwrap();
    assert_eq!(written.len(), 5);
    assert!(written.iter().all(|path| path.exists()));

    let json = fs::read_to_string(dir.path().join("run-1.json")).unwrap();
    let back: RunReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, report);

    let csv = fs::read_to_string(dir.path().join("run-1.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), report.timeline.len() + 1);
    assert!(rows[0].starts_with("t_s,produced_messages"));
    assert_eq!(rows[1], "1,10000,10240000,10.240,9000,9216000,9.216,2.500");

    let md = fs::read_to_string(dir.path().join("run-1.md")).unwrap();
    for number in [
        "10.24", "1.500", "3.000", "48.000", "4.00", "3.25", "25.60", "abc1234",
    ] {
        assert!(md.contains(number), "{number} missing from:\n{md}");
    }
    assert!(md.contains("NOT_LEADER_OR_FOLLOWER × 3"));
    let split_rows: Vec<&str> = md
        .lines()
        .filter(|line| line.starts_with("| produce: "))
        .collect();
    assert_eq!(split_rows.len(), 3, "{md}");
    assert!(split_rows[0].starts_with("| produce: send wait | 120000 | 0.300 | 0.600 | 1.200 |"));
    assert!(split_rows[1]
        .starts_with("| produce: request round trip | 120000 | 1.100 | 2.200 | 4.400 |"));
    assert!(split_rows[2].starts_with(
        "| produce: request write (part of the round trip) | 120000 | 0.050 | 0.100 | 0.200 |"
    ));

    let latency = fs::read_to_string(dir.path().join("run-1-latency.svg")).unwrap();
    assert_svg_with(&latency, &["produce", "end-to-end", "99.9%", "max"]);
    let throughput = fs::read_to_string(dir.path().join("run-1-throughput.svg")).unwrap();
    assert_svg_with(&throughput, &["produced", "consumed", "MB/s"]);
}

#[test]
fn comparison_has_a_row_and_series_per_report() {
    // Guards the comparison: one CSV/markdown row per report, ratios against the first.
    let dir = tempfile::tempdir().unwrap();
    let reports = [
        synthetic_report("ringtail/ext4", 1),
        synthetic_report("ringtail/xfs, loop", 2),
    ];
    write_comparison(dir.path(), "cmp", &reports).unwrap();

    let csv = fs::read_to_string(dir.path().join("cmp.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 3);
    assert!(rows[1].starts_with("ringtail/ext4,10.240,"));
    assert!(rows[1].ends_with(",1.000"));
    assert!(rows[2].starts_with("\"ringtail/xfs, loop\",20.480,"));
    assert!(rows[2].ends_with(",2.000"));

    let md = fs::read_to_string(dir.path().join("cmp.md")).unwrap();
    assert!(md.contains("| ringtail/ext4 | 10.24 |"), "{md}");
    assert!(md.contains("| 2.00 |"), "{md}");
    assert_eq!(
        md.lines()
            .filter(|line| line.starts_with("| ringtail"))
            .count(),
        2
    );

    let latency = fs::read_to_string(dir.path().join("cmp-latency.svg")).unwrap();
    assert_svg_with(
        &latency,
        &["ringtail/ext4 produce", "ringtail/xfs, loop end-to-end"],
    );
    let throughput = fs::read_to_string(dir.path().join("cmp-throughput.svg")).unwrap();
    assert_svg_with(
        &throughput,
        &["ringtail/ext4 produced", "ringtail/xfs, loop consumed"],
    );
}

#[test]
fn empty_runs_still_render() {
    // Guards a run that measured nothing (no timeline, no curves, no broker CPU): no panic.
    let dir = tempfile::tempdir().unwrap();
    let mut report = synthetic_report("empty", 1);
    report.timeline.clear();
    report.produce_latency_curve.clear();
    report.e2e_latency_curve.clear();
    report.broker_cpu_s = None;
    report.produce_mb_per_broker_cpu_s = None;
    write_run_files(dir.path(), "empty", &report).unwrap();
    let csv = fs::read_to_string(dir.path().join("empty.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1);
    assert!(terminal_table(&report).contains("broker n/a s"));
}

#[test]
fn bad_stems_and_empty_comparisons_are_refused() {
    // Guards the typed errors: a stem must name a file inside dir; a comparison needs a report.
    let dir = tempfile::tempdir().unwrap();
    let report = synthetic_report("x", 1);
    for stem in ["", "a/b", ".."] {
        assert!(matches!(
            write_run_files(dir.path(), stem, &report),
            Err(OutputError::BadStem(_))
        ));
    }
    assert!(matches!(
        write_comparison(dir.path(), "cmp", &[]),
        Err(OutputError::NoReports)
    ));
}

#[test]
fn terminal_table_aligns_both_directions() {
    // Guards the end-of-run table: both rows present, same width, numbers shown.
    let text = terminal_table(&synthetic_report("ringtail", 1));
    let rows: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("produce") || line.starts_with("end-to-end"))
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].chars().count(), rows[1].chars().count());
    assert!(rows[0].contains("10.24") && rows[0].contains("1.500"));
    assert!(text.contains("loadgen 3.25 s"));
    assert!(
        text.contains("send wait p50 0.300 p99 1.200 ms; request round trip p50 1.100 p99 4.400 p99.9 8.800 ms, of which writing the request p99 0.200 ms"),
        "{text}"
    );
}

#[test]
fn series_without_data_are_left_out_of_the_charts() {
    // A produce-only run: no end-to-end latency and nothing consumed. Those series must not be
    // drawn (they would lie along the axis floor) nor named in the legend.
    let dir = tempfile::tempdir().unwrap();
    let mut report = synthetic_report("produce-only", 1);
    for point in &mut report.e2e_latency_curve {
        point.1 = 0;
    }
    for point in &mut report.timeline {
        point.consumed_bytes = 0;
        point.consumed_messages = 0;
    }
    write_run_files(dir.path(), "run", &report).unwrap();
    let latency = fs::read_to_string(dir.path().join("run-latency.svg")).unwrap();
    assert_svg_with(&latency, &["produce"]);
    assert!(!latency.contains("end-to-end"), "{latency}");
    let throughput = fs::read_to_string(dir.path().join("run-throughput.svg")).unwrap();
    assert_svg_with(&throughput, &["produced"]);
    assert!(!throughput.contains("consumed"), "{throughput}");
}

#[test]
fn reports_written_before_the_latency_split_still_read() {
    // Committed results/ JSON predates send_wait_us and request_round_trip_us: they read as empty.
    let report = synthetic_report("ringtail", 1);
    let mut json = serde_json::to_value(&report).unwrap();
    let produce = json["produce"].as_object_mut().unwrap();
    produce.remove("send_wait_us").unwrap();
    produce.remove("request_round_trip_us").unwrap();
    produce.remove("request_write_us").unwrap();
    let back: RunReport = serde_json::from_value(json).unwrap();
    assert_eq!(back.produce.send_wait_us, Percentiles::default());
    assert_eq!(back.produce.request_round_trip_us, Percentiles::default());
    assert_eq!(back.produce.request_write_us, Percentiles::default());
    assert_eq!(back.produce.latency_us, report.produce.latency_us);
    // And a run without answers (acks=0) prints no split.
    let mut unanswered = report;
    unanswered.produce.request_round_trip_us = Percentiles::default();
    assert!(!terminal_table(&unanswered).contains("where produce latency went"));
}
