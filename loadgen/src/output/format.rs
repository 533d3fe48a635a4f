//! Number formatting and plain-text layout shared by the markdown, CSV and terminal outputs, so
//! that the same figure reads the same everywhere. MB is 10^6 bytes, as in the report.
#![forbid(unsafe_code)]

use crate::report::TimelinePoint;
use crate::workload::{Acks, Compression, MessageSize, PartitionerKind, StartFrom, Workload};

/// Bytes per MB (decimal, as in `RunReport`).
pub(crate) const BYTES_PER_MB: f64 = 1_000_000.0;

/// A latency in µs shown in milliseconds with µs resolution (three decimals).
pub(crate) fn ms(latency_us: u64) -> String {
    format!("{:.3}", latency_us as f64 / 1000.0)
}

/// An optional figure with `decimals`, or `none` when it is unknown.
pub(crate) fn opt(value: Option<f64>, decimals: usize, none: &str) -> String {
    match value {
        Some(value) if value.is_finite() => format!("{value:.decimals$}"),
        _ => none.to_string(),
    }
}

/// `numerator / denominator`, or `None` when the denominator is zero or unknown: a ratio against a
/// baseline that measured nothing is not a number worth printing.
pub(crate) fn ratio(numerator: f64, denominator: f64) -> Option<f64> {
    (denominator > 0.0 && denominator.is_finite()).then(|| numerator / denominator)
}

/// Seconds covered by timeline point `index`: the gap to the previous point (the first point
/// covers the second before it, as `TimelinePoint` documents). A non-positive gap — only a bug
/// upstream produces one — counts as one second rather than dividing by zero.
pub(crate) fn interval_s(timeline: &[TimelinePoint], index: usize) -> f64 {
    assert!(index < timeline.len());
    let previous_t_s = match index {
        0 => timeline[0].t_s - 1.0,
        _ => timeline[index - 1].t_s,
    };
    let interval_s = timeline[index].t_s - previous_t_s;
    if interval_s > 0.0 {
        interval_s
    } else {
        1.0
    }
}

/// MB/s of `bytes` over `interval_s` seconds.
pub(crate) fn mb_per_s(bytes: u64, interval_s: f64) -> f64 {
    assert!(interval_s > 0.0);
    bytes as f64 / BYTES_PER_MB / interval_s
}

/// One line that says what ran: enough to tell two reports' configurations apart at a glance.
pub(crate) fn config_line(workload: &Workload) -> String {
    let size = match workload.message_size {
        MessageSize::Fixed { bytes } => format!("{bytes} B"),
        MessageSize::Uniform {
            min_bytes,
            max_bytes,
        } => format!("{min_bytes}–{max_bytes} B"),
    };
    let keys = match workload.key_cardinality {
        Some(keys) => format!("{keys} keys"),
        None => "no keys".to_string(),
    };
    let rate = match workload.rate_msgs_per_s {
        Some(rate) => format!("{rate} msg/s"),
        None => "flat out".to_string(),
    };
    let mut line = format!(
        "{topics} topic(s) × {partitions} partition(s), {size} messages, {keys} ({partitioner}), \
         {producers} producer(s)/topic, {subscriptions} subscription(s) × {consumers} consumer(s), \
         {rate}, acks={acks}, {compression}, linger {linger} ms, batch {batch} B, \
         {duration} s + {warmup} s warm-up",
        topics = workload.topics.len(),
        partitions = workload.partitions,
        partitioner = partitioner_name(workload.partitioner),
        producers = workload.producers,
        subscriptions = workload.subscriptions,
        consumers = workload.consumers_per_subscription,
        acks = acks_name(workload.acks),
        compression = compression_name(workload.compression),
        linger = workload.linger_ms,
        batch = workload.batch_bytes,
        duration = workload.duration_s,
        warmup = workload.warmup_s,
    );
    if workload.backlog_bytes > 0 || workload.start_from == StartFrom::Earliest {
        line.push_str(&format!(
            ", backlog {} B read from earliest",
            workload.backlog_bytes
        ));
    }
    line
}

fn partitioner_name(partitioner: PartitionerKind) -> &'static str {
    match partitioner {
        PartitionerKind::RoundRobin => "round-robin",
        PartitionerKind::Sticky => "sticky",
        PartitionerKind::Murmur2 => "murmur2",
    }
}

fn acks_name(acks: Acks) -> &'static str {
    match acks {
        Acks::None => "0",
        Acks::Leader => "1",
        Acks::All => "all",
    }
}

fn compression_name(compression: Compression) -> &'static str {
    match compression {
        Compression::None => "no compression",
        Compression::Lz4 => "lz4",
        Compression::Zstd => "zstd",
    }
}

/// Lays out rows as aligned plain-text columns: the first column left-aligned (names), the others
/// right-aligned (numbers), two spaces apart. Widths count chars, not bytes, so "µ" and "×" align.
pub(crate) fn aligned_columns(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            rows.iter()
                .filter_map(|row| row.get(column))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (column, cell) in row.iter().enumerate() {
            let pad = widths[column] - cell.chars().count();
            if column == 0 {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            } else {
                line.push_str("  ");
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_follow_the_gaps_and_never_divide_by_zero() {
        // Guards the MB/s of the timeline: each point is divided by the time it covers.
        let point = |t_s: f64| TimelinePoint {
            t_s,
            ..TimelinePoint::default()
        };
        let timeline = [point(1.0), point(2.0), point(2.5), point(2.5)];
        assert_eq!(interval_s(&timeline, 0), 1.0);
        assert_eq!(interval_s(&timeline, 1), 1.0);
        assert_eq!(interval_s(&timeline, 2), 0.5);
        assert_eq!(interval_s(&timeline, 3), 1.0);
        assert_eq!(mb_per_s(3_000_000, 0.5), 6.0);
    }

    #[test]
    fn columns_align_on_chars() {
        // Guards the terminal table: multi-byte units must not shift a column.
        let rows = vec![
            vec!["µs".to_string(), "1".to_string()],
            vec!["long name".to_string(), "12345".to_string()],
        ];
        let text = aligned_columns(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0].chars().count(), lines[1].chars().count());
        assert!(lines[0].ends_with("    1"));
    }

    #[test]
    fn ratios_of_nothing_are_none() {
        // Guards the comparison's ratio column against a baseline that measured zero.
        assert_eq!(ratio(2.0, 1.0), Some(2.0));
        assert_eq!(ratio(2.0, 0.0), None);
        assert_eq!(opt(None, 2, "n/a"), "n/a");
        assert_eq!(opt(Some(1.234), 1, "n/a"), "1.2");
    }
}
