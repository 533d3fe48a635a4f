//! CSV files: a run's timeline (one row per second) and a comparison (one row per report). Written
//! by hand: the cells are numbers and labels, and a label is the only cell that needs quoting.
#![forbid(unsafe_code)]

use super::format::{interval_s, mb_per_s, opt, ratio};
use crate::report::RunReport;

/// Header of the timeline CSV; the rows follow [`timeline_csv`]'s column order.
pub(crate) const TIMELINE_HEADER: &str = "t_s,produced_messages,produced_bytes,produced_mb_per_s,\
consumed_messages,consumed_bytes,consumed_mb_per_s,produce_latency_max_ms";

/// Header of the comparison CSV; the ratio column is produce MB/s over the first report's.
pub(crate) const COMPARISON_HEADER: &str = "label,produce_mb_per_s,produce_msgs_per_s,\
produce_p50_us,produce_p99_us,produce_p999_us,consume_mb_per_s,e2e_p99_us,broker_cpu_s,\
produce_mb_per_broker_cpu_s,produce_mb_per_s_vs_baseline";

/// The timeline: a header, then one row per timeline point, in order.
pub(crate) fn timeline_csv(report: &RunReport) -> String {
    let mut out = String::from(TIMELINE_HEADER);
    out.push('\n');
    for (index, point) in report.timeline.iter().enumerate() {
        let seconds = interval_s(&report.timeline, index);
        out.push_str(&format!(
            "{},{},{},{:.3},{},{},{:.3},{:.3}\n",
            point.t_s,
            point.produced_messages,
            point.produced_bytes,
            mb_per_s(point.produced_bytes, seconds),
            point.consumed_messages,
            point.consumed_bytes,
            mb_per_s(point.consumed_bytes, seconds),
            point.produce_latency_max_us as f64 / 1000.0,
        ));
    }
    assert_eq!(out.lines().count(), report.timeline.len() + 1);
    out
}

/// One row per report; the first report is the baseline of the ratio column. Unknown values
/// (no broker CPU, a zero baseline) are empty cells.
pub(crate) fn comparison_csv(reports: &[RunReport]) -> String {
    let mut out = String::from(COMPARISON_HEADER);
    out.push('\n');
    let baseline_mb_per_s = reports.first().map_or(0.0, |first| first.produce.mb_per_s);
    for report in reports {
        let produce = &report.produce;
        out.push_str(&format!(
            "{},{:.3},{:.1},{},{},{},{:.3},{},{},{},{}\n",
            quote(&report.label),
            produce.mb_per_s,
            produce.msgs_per_s,
            produce.latency_us.p50,
            produce.latency_us.p99,
            produce.latency_us.p999,
            report.consume.mb_per_s,
            report.consume.e2e_latency_us.p99,
            opt(report.broker_cpu_s, 3, ""),
            opt(report.produce_mb_per_broker_cpu_s, 3, ""),
            opt(ratio(produce.mb_per_s, baseline_mb_per_s), 3, ""),
        ));
    }
    out
}

/// RFC 4180 quoting, only when the cell needs it.
fn quote(cell: &str) -> String {
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_with_commas_or_quotes_are_quoted() {
        // Guards the comparison CSV's column count when a label is free text.
        assert_eq!(quote("ringtail/xfs"), "ringtail/xfs");
        assert_eq!(quote("a,b"), "\"a,b\"");
        assert_eq!(quote("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
