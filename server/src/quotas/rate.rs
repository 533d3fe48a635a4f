//! A rate over sampled windows, as Kafka's quota sensors measure it (`Rate` over a `SampledStat`
//! with `quota.window.num` = 11 windows of `quota.window.size.seconds` = 1 s), and the throttle
//! time of KIP-219: how long the client must wait for the rate to fall back to the quota.
//!
//! # Invariants
//! - Samples older than the whole span (windows × window length) count for nothing.
//! - The elapsed time a rate divides by is at least (windows − 1) window lengths, so a client's
//!   first burst is measured against the full span rather than a few milliseconds (Kafka's
//!   `Rate.windowSize`).
#![forbid(unsafe_code)]

/// Kafka's `quota.window.num` default.
pub const WINDOWS: usize = 11;
/// Kafka's `quota.window.size.seconds` default, in ms.
pub const WINDOW_MS: u64 = 1_000;

#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    start_ms: u64,
    value: f64,
}

/// Values recorded over the last [`WINDOWS`] windows.
#[derive(Debug, Clone)]
pub struct SampledRate {
    samples: [Sample; WINDOWS],
    current: usize,
    /// When anything was last recorded: idle sensors are dropped by their owner.
    pub last_record_ms: u64,
}

impl SampledRate {
    pub fn new(now_ms: u64) -> Self {
        Self {
            samples: [Sample {
                start_ms: now_ms,
                value: 0.0,
            }; WINDOWS],
            current: 0,
            last_record_ms: now_ms,
        }
    }

    /// Adds `value` at `now_ms` (time that goes backwards counts as the current window).
    pub fn record(&mut self, value: f64, now_ms: u64) {
        self.purge(now_ms);
        if now_ms.saturating_sub(self.samples[self.current].start_ms) >= WINDOW_MS {
            self.current = (self.current + 1) % WINDOWS;
            self.samples[self.current] = Sample {
                start_ms: now_ms,
                value: 0.0,
            };
        }
        self.samples[self.current].value += value;
        self.last_record_ms = now_ms;
    }

    /// Per second, over the samples still in the span.
    pub fn rate_per_sec(&mut self, now_ms: u64) -> f64 {
        self.purge(now_ms);
        let total: f64 = self.samples.iter().map(|sample| sample.value).sum();
        total / (self.window_ms(now_ms) as f64 / 1_000.0)
    }

    /// The elapsed time the rate divides by (Kafka's `Rate.windowSize`).
    fn window_ms(&self, now_ms: u64) -> u64 {
        let oldest = self
            .samples
            .iter()
            .map(|s| s.start_ms)
            .min()
            .unwrap_or(now_ms);
        let elapsed_ms = now_ms.saturating_sub(oldest);
        let full_windows = elapsed_ms / WINDOW_MS;
        let min_full_windows = (WINDOWS - 1) as u64;
        let window_ms = if full_windows < min_full_windows {
            elapsed_ms + (min_full_windows - full_windows) * WINDOW_MS
        } else {
            elapsed_ms
        };
        assert!(window_ms > 0, "the span is never empty");
        window_ms
    }

    fn purge(&mut self, now_ms: u64) {
        let span_ms = WINDOWS as u64 * WINDOW_MS;
        for sample in &mut self.samples {
            if now_ms.saturating_sub(sample.start_ms) >= span_ms {
                *sample = Sample {
                    start_ms: now_ms,
                    value: 0.0,
                };
            }
        }
    }

    /// KIP-219's throttle: 0 while the rate is within `quota_per_sec`; otherwise the time, in
    /// ms, for the rate to fall back to it if nothing more were recorded
    /// ((rate − quota) / quota × window), at most `throttle_ms_max`.
    pub fn throttle_ms(&mut self, quota_per_sec: f64, now_ms: u64, throttle_ms_max: u32) -> u32 {
        assert!(quota_per_sec > 0.0, "stored quotas are positive");
        let rate = self.rate_per_sec(now_ms);
        if rate <= quota_per_sec {
            return 0;
        }
        let throttle_ms = (rate - quota_per_sec) / quota_per_sec * self.window_ms(now_ms) as f64;
        (throttle_ms.round() as u64).min(u64::from(throttle_ms_max)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_burst_is_measured_over_the_whole_span() {
        // 10 KB at once is 1 KB/s over the 10-window minimum, not 10 KB per millisecond.
        let mut rate = SampledRate::new(1_000);
        rate.record(10_000.0, 1_000);
        assert_eq!(rate.rate_per_sec(1_000), 1_000.0);
        assert_eq!(rate.throttle_ms(1_000.0, 1_000, 60_000), 0);
        rate.record(10_000.0, 1_000);
        // 2 KB/s against 1 KB/s: as long again as the 10 s window to fall back.
        assert_eq!(rate.throttle_ms(1_000.0, 1_000, 60_000), 10_000);
        assert_eq!(rate.throttle_ms(1_000.0, 1_000, 500), 500);
    }

    #[test]
    fn old_samples_expire() {
        // Nothing recorded for a whole span leaves no rate, and so no throttle.
        let mut rate = SampledRate::new(0);
        rate.record(1e9, 0);
        assert!(rate.rate_per_sec(5_000) > 0.0);
        assert_eq!(rate.rate_per_sec(WINDOWS as u64 * WINDOW_MS + 1), 0.0);
        assert_eq!(rate.throttle_ms(1.0, 20_000, 60_000), 0);
    }

    #[test]
    fn a_steady_rate_is_measured_as_such() {
        // 100 bytes every 100 ms for 30 s is 1000 bytes/s, within a rounding of the window edge.
        let mut rate = SampledRate::new(0);
        for step in 0..300u64 {
            rate.record(100.0, step * 100);
        }
        let measured = rate.rate_per_sec(29_950);
        assert!((900.0..=1_100.0).contains(&measured), "{measured}");
    }
}
