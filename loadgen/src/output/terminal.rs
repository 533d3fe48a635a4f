//! The plain-text table printed at the end of a run: aligned columns, no colour, no box drawing,
//! so it reads the same in a terminal, a log file and a CI transcript.
#![forbid(unsafe_code)]

use super::format::{aligned_columns, config_line, ms, opt};
use crate::report::{Percentiles, RunReport};

/// The end-of-run summary: config line, throughput and latency per direction, CPU.
pub fn terminal_table(report: &RunReport) -> String {
    let mut out = format!(
        "{} ({})\n{}\n\n",
        report.label,
        report.started_at,
        config_line(&report.config)
    );
    let header: Vec<String> = [
        "",
        "messages",
        "MB/s",
        "msgs/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "p99.99 ms",
        "max ms",
    ]
    .iter()
    .map(|cell| cell.to_string())
    .collect();
    let produce = &report.produce;
    let consume = &report.consume;
    let rows = vec![
        header,
        row(
            "produce",
            produce.messages,
            produce.mb_per_s,
            produce.msgs_per_s,
            &produce.latency_us,
        ),
        row(
            "end-to-end",
            consume.messages,
            consume.mb_per_s,
            consume.msgs_per_s,
            &consume.e2e_latency_us,
        ),
    ];
    out.push_str(&aligned_columns(&rows));
    if produce.request_round_trip_us.count > 0 {
        let (wait, trip) = (&produce.send_wait_us, &produce.request_round_trip_us);
        out.push_str(&format!(
            "where produce latency went: send wait p50 {} p99 {} ms; request round trip p50 {} p99 {} p99.9 {} ms, of which writing the request p99 {} ms\n",
            ms(wait.p50),
            ms(wait.p99),
            ms(trip.p50),
            ms(trip.p99),
            ms(trip.p999),
            ms(produce.request_write_us.p99),
        ));
    }
    if produce.failed_messages > 0 {
        out.push_str(&format!(
            "failed produces: {} messages\n",
            produce.failed_messages
        ));
    }
    out.push_str(&format!(
        "CPU: broker {} s, loadgen {:.2} s, {} MB per broker CPU-s\n",
        opt(report.broker_cpu_s, 2, "n/a"),
        report.loadgen_cpu_s,
        opt(report.produce_mb_per_broker_cpu_s, 2, "n/a"),
    ));
    out
}

fn row(
    name: &str,
    messages: u64,
    mb_per_s: f64,
    msgs_per_s: f64,
    latency: &Percentiles,
) -> Vec<String> {
    vec![
        name.to_string(),
        messages.to_string(),
        format!("{mb_per_s:.2}"),
        format!("{msgs_per_s:.1}"),
        ms(latency.p50),
        ms(latency.p90),
        ms(latency.p99),
        ms(latency.p999),
        ms(latency.p9999),
        ms(latency.max),
    ]
}
