//! Latency recording in HdrHistogram (microseconds, 3 significant digits, up to an hour), with the
//! percentiles reports show and merging of per-thread histograms.
#![forbid(unsafe_code)]

use hdrhistogram::Histogram;

/// Highest latency recorded, in microseconds; anything slower is clamped to it (and shows as max).
pub const LATENCY_US_MAX: u64 = 3_600_000_000;

/// The percentiles every report shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub p9999_us: u64,
    pub max_us: u64,
}

/// A latency histogram in microseconds.
pub struct Latencies {
    histogram: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    pub fn new() -> Self {
        Self {
            histogram: Histogram::new_with_bounds(1, LATENCY_US_MAX, 3)
                .expect("static bounds are valid"),
        }
    }

    /// Records one latency; values beyond [`LATENCY_US_MAX`] are clamped, never dropped.
    pub fn record_us(&mut self, latency_us: u64) {
        self.histogram.saturating_record(latency_us.max(1));
    }

    /// Adds another histogram's counts (per-thread histograms merged for the report).
    pub fn merge(&mut self, other: &Latencies) {
        self.histogram
            .add(&other.histogram)
            .expect("histograms share bounds");
    }

    pub fn summary(&self) -> LatencySummary {
        let at = |quantile: f64| self.histogram.value_at_quantile(quantile);
        LatencySummary {
            count: self.histogram.len(),
            p50_us: at(0.50),
            p90_us: at(0.90),
            p99_us: at(0.99),
            p999_us: at(0.999),
            p9999_us: at(0.9999),
            max_us: self.histogram.max(),
        }
    }

    /// (percentile, latency µs) points for a percentile-curve chart.
    pub fn percentile_curve(&self) -> Vec<(f64, u64)> {
        [
            0.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.999, 100.0,
        ]
        .iter()
        .map(|percentile| (*percentile, self.histogram.value_at_percentile(*percentile)))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        // 1..=10000 µs uniformly: the percentiles are the values themselves (within 0.1%).
        let mut latencies = Latencies::new();
        for value in 1..=10_000u64 {
            latencies.record_us(value);
        }
        let summary = latencies.summary();
        assert_eq!(summary.count, 10_000);
        let close = |got: u64, want: u64| got.abs_diff(want) * 1000 <= want;
        assert!(close(summary.p50_us, 5_000), "{summary:?}");
        assert!(close(summary.p99_us, 9_900), "{summary:?}");
        assert!(close(summary.max_us, 10_000), "{summary:?}");
    }

    #[test]
    fn merging_equals_recording_everything_in_one() {
        // Per-thread histograms merged give the same percentiles as one histogram of all values.
        let (mut left, mut right, mut all) = (Latencies::new(), Latencies::new(), Latencies::new());
        for value in 1..=5_000u64 {
            left.record_us(value * 3);
            right.record_us(value * 7 + 11);
            all.record_us(value * 3);
            all.record_us(value * 7 + 11);
        }
        left.merge(&right);
        assert_eq!(left.summary(), all.summary());
        // Beyond the bound: clamped, still counted.
        let mut slow = Latencies::new();
        slow.record_us(u64::MAX);
        assert_eq!(slow.summary().count, 1);
        assert!(slow.summary().max_us >= LATENCY_US_MAX * 999 / 1000);
    }
}
