//! Latency histograms for `/metrics`: fixed buckets from 250 ns to 10 s, atomic counts, and the
//! Prometheus text form (`_bucket{le=...}`, `_sum`, `_count`, in seconds).
//!
//! Fixed buckets keep recording to a scan of 24 bounds and one relaxed add, cheap enough for
//! every fetch chunk and every produce stage; the bounds follow a 1-2.5-5 progression, so a
//! quantile read from them is within a factor of about two.
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in nanoseconds; a last, unbounded bucket (`+Inf`) follows.
const BOUNDS_NANOS: [u64; 24] = [
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

const BUCKETS: usize = BOUNDS_NANOS.len() + 1;

/// One latency distribution, shared by every shard (relaxed atomics: statistics only).
pub struct LatencyHistogram {
    /// Non-cumulative counts per bucket; rendering accumulates them.
    buckets: [AtomicU64; BUCKETS],
    sum_nanos: AtomicU64,
}

impl LatencyHistogram {
    pub const fn new() -> Self {
        Self {
            buckets: [const { AtomicU64::new(0) }; BUCKETS],
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Counts one observation.
    pub fn record(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BOUNDS_NANOS
            .iter()
            .position(|&bound| nanos <= bound)
            .unwrap_or(BUCKETS - 1);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Writes this histogram's series; `labels` is empty or `key="value"` pairs without braces.
    fn render_series(&self, out: &mut String, name: &str, labels: &str) {
        let separator = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0u64;
        for (index, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = BOUNDS_NANOS
                .get(index)
                .map_or_else(|| "+Inf".to_string(), |&nanos| seconds(nanos));
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{separator}le=\"{le}\"}} {cumulative}"
            );
        }
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let sum = seconds(self.sum_nanos.load(Ordering::Relaxed));
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {cumulative}");
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

/// Writes one histogram family: HELP and TYPE once, then each labelled series.
pub fn render_family(
    out: &mut String,
    name: &str,
    help: &str,
    series: &[(&str, &LatencyHistogram)],
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (labels, histogram) in series {
        histogram.render_series(out, name, labels);
    }
}

/// Nanoseconds as a decimal number of seconds, exactly (no float rounding in bucket bounds).
fn seconds(nanos: u64) -> String {
    let whole = nanos / 1_000_000_000;
    let fraction = nanos % 1_000_000_000;
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:09}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_cumulative_buckets() {
        // Bounds are inclusive, the last bucket catches everything, and the text is Prometheus'.
        let histogram = LatencyHistogram::new();
        histogram.record(Duration::from_nanos(250));
        histogram.record(Duration::from_nanos(251));
        histogram.record(Duration::from_micros(3));
        histogram.record(Duration::from_secs(60));
        let mut out = String::new();
        render_family(&mut out, "t", "help", &[("stage=\"x\"", &histogram)]);
        assert!(out.starts_with("# HELP t help\n# TYPE t histogram\n"));
        assert!(out.contains("t_bucket{stage=\"x\",le=\"0.00000025\"} 1\n"));
        assert!(out.contains("t_bucket{stage=\"x\",le=\"0.0000005\"} 2\n"));
        assert!(out.contains("t_bucket{stage=\"x\",le=\"0.000005\"} 3\n"));
        assert!(out.contains("t_bucket{stage=\"x\",le=\"10\"} 3\n"));
        assert!(out.contains("t_bucket{stage=\"x\",le=\"+Inf\"} 4\n"));
        assert!(out.contains("t_sum{stage=\"x\"} 60.000003501\n"));
        assert!(out.contains("t_count{stage=\"x\"} 4\n"));
    }

    #[test]
    fn unlabelled_series_have_no_braces() {
        let histogram = LatencyHistogram::new();
        let mut out = String::new();
        render_family(&mut out, "u", "help", &[("", &histogram)]);
        assert!(out.contains("u_bucket{le=\"+Inf\"} 0\n"));
        assert!(out.contains("u_sum 0\nu_count 0\n"));
    }
}
