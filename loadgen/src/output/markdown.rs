//! Markdown: a one-run summary and a comparison table of several runs (the first is the baseline).
//! Latencies are shown in ms with µs resolution; MB is 10^6 bytes.
#![forbid(unsafe_code)]

use super::format::{config_line, ms, opt, ratio};
use crate::report::{Percentiles, RunReport};

/// The summary of one run: config, throughput, latency table, CPU, machine.
pub(crate) fn run_markdown(report: &RunReport) -> String {
    let mut out = format!(
        "# Run: {}\n\nStarted {}.\n\n**Config:** {}\n\n",
        escape(&report.label),
        report.started_at,
        config_line(&report.config)
    );
    out.push_str("## Throughput\n\n");
    out.push_str(&throughput_table(report));
    if report.produce.failed_messages > 0 {
        let errors: Vec<String> = report
            .produce
            .errors
            .iter()
            .map(|(name, count)| format!("{name} × {count}"))
            .collect();
        out.push_str(&format!(
            "\nFailed produces: {} messages ({}).\n",
            report.produce.failed_messages,
            errors.join(", ")
        ));
    }
    out.push_str("\n## Latency (ms)\n\n");
    out.push_str(&table(
        &["", "count", "p50", "p90", "p99", "p99.9", "p99.99", "max"],
        &[
            latency_row("produce", &report.produce.latency_us),
            latency_row("produce: send wait", &report.produce.send_wait_us),
            latency_row(
                "produce: request round trip",
                &report.produce.request_round_trip_us,
            ),
            latency_row(
                "produce: request write (part of the round trip)",
                &report.produce.request_write_us,
            ),
            latency_row("end-to-end", &report.consume.e2e_latency_us),
        ],
    ));
    out.push_str("\n## CPU\n\n");
    out.push_str(&table(
        &["broker CPU s", "loadgen CPU s", "MB per broker CPU-s"],
        &[vec![
            opt(report.broker_cpu_s, 2, "n/a"),
            format!("{:.2}", report.loadgen_cpu_s),
            opt(report.produce_mb_per_broker_cpu_s, 2, "n/a"),
        ]],
    ));
    let machine = &report.machine;
    out.push_str(&format!(
        "\n## Machine\n\n{}: {}, {} CPUs, {:.1} GiB, kernel {}. Loadgen {} at commit {}.\n",
        escape(&machine.hostname),
        escape(&machine.cpu_model),
        machine.cpus,
        machine.memory_bytes as f64 / (1u64 << 30) as f64,
        escape(&machine.kernel),
        machine.loadgen_version,
        machine.loadgen_commit,
    ));
    out
}

fn throughput_table(report: &RunReport) -> String {
    let (produce, consume) = (&report.produce, &report.consume);
    table(
        &["", "messages", "measured messages", "MB/s", "msgs/s"],
        &[
            vec![
                "produce".to_string(),
                produce.messages.to_string(),
                produce.measured_messages.to_string(),
                format!("{:.2}", produce.mb_per_s),
                format!("{:.1}", produce.msgs_per_s),
            ],
            vec![
                "consume".to_string(),
                consume.messages.to_string(),
                consume.measured_messages.to_string(),
                format!("{:.2}", consume.mb_per_s),
                format!("{:.1}", consume.msgs_per_s),
            ],
        ],
    )
}

fn latency_row(name: &str, latency: &Percentiles) -> Vec<String> {
    vec![
        name.to_string(),
        latency.count.to_string(),
        ms(latency.p50),
        ms(latency.p90),
        ms(latency.p99),
        ms(latency.p999),
        ms(latency.p9999),
        ms(latency.max),
    ]
}

/// One row per report; the ratio columns divide by the first report's figures.
pub(crate) fn comparison_markdown(reports: &[RunReport]) -> String {
    let Some(baseline) = reports.first() else {
        return "# Comparison\n\nNo reports.\n".to_string();
    };
    let mut out = format!(
        "# Comparison\n\nBaseline: {}. “× baseline” is produce MB/s over the baseline's; \
         latencies in ms.\n\n",
        escape(&baseline.label)
    );
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|report| comparison_row(report, baseline))
        .collect();
    out.push_str(&table(
        &[
            "label",
            "produce MB/s",
            "msgs/s",
            "p50",
            "p99",
            "p99.9",
            "consume MB/s",
            "e2e p99",
            "broker CPU s",
            "MB per broker CPU-s",
            "× baseline",
        ],
        &rows,
    ));
    out.push_str("\n## Configurations\n\n");
    for report in reports {
        out.push_str(&format!(
            "- **{}**: {}\n",
            escape(&report.label),
            config_line(&report.config)
        ));
    }
    out
}

fn comparison_row(report: &RunReport, baseline: &RunReport) -> Vec<String> {
    let produce = &report.produce;
    vec![
        report.label.clone(),
        format!("{:.2}", produce.mb_per_s),
        format!("{:.1}", produce.msgs_per_s),
        ms(produce.latency_us.p50),
        ms(produce.latency_us.p99),
        ms(produce.latency_us.p999),
        format!("{:.2}", report.consume.mb_per_s),
        ms(report.consume.e2e_latency_us.p99),
        opt(report.broker_cpu_s, 2, "n/a"),
        opt(report.produce_mb_per_broker_cpu_s, 2, "n/a"),
        opt(ratio(produce.mb_per_s, baseline.produce.mb_per_s), 2, "n/a"),
    ]
}

/// A markdown table; the first column is left-aligned, the others (numbers) right-aligned.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n|", header.join(" | "));
    for column in 0..header.len() {
        out.push_str(if column == 0 { "---|" } else { "---:|" });
    }
    out.push('\n');
    for row in rows {
        assert_eq!(row.len(), header.len(), "a cell per column");
        let cells: Vec<String> = row.iter().map(|cell| escape(cell)).collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out
}

/// Free text (labels, host names) must not open a table cell or a tag.
fn escape(text: &str) -> String {
    text.replace('|', "\\|").replace('<', "&lt;")
}
