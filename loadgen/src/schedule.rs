//! The open-loop schedule: at a target rate, message *n* is due at `start + n / rate`, whether or
//! not earlier sends were slow. Latency is measured from that intended time, so a stall of the
//! broker shows as the latency of every message that should have gone out meanwhile (no
//! coordinated omission). Without a rate the schedule is flat out: every message is due at once.
#![forbid(unsafe_code)]

use std::time::Duration;

/// When each message is due, relative to the start of the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Messages per second; `None`: flat out.
    rate_per_s: Option<f64>,
}

impl Schedule {
    pub fn open_loop(rate_per_s: f64) -> Self {
        assert!(rate_per_s > 0.0, "a positive rate");
        Self {
            rate_per_s: Some(rate_per_s),
        }
    }

    pub fn flat_out() -> Self {
        Self { rate_per_s: None }
    }

    /// The intended send time of message `index` (0-based).
    pub fn due(&self, index: u64) -> Duration {
        match self.rate_per_s {
            Some(rate) => Duration::from_secs_f64(index as f64 / rate),
            None => Duration::ZERO,
        }
    }

    /// How many messages are due by `elapsed` (the producer sends up to this many).
    pub fn due_by(&self, elapsed: Duration) -> u64 {
        match self.rate_per_s {
            Some(rate) => (elapsed.as_secs_f64() * rate).floor() as u64 + 1,
            None => u64::MAX,
        }
    }

    /// The latency to record for a message acknowledged at `acked` (since start): from its
    /// intended send time under a rate, from its actual send time flat out.
    pub fn latency(&self, index: u64, sent: Duration, acked: Duration) -> Duration {
        let from = match self.rate_per_s {
            Some(_) => self.due(index),
            None => sent,
        };
        acked.saturating_sub(from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stall_counts_against_every_message_that_was_due() {
        // At 1000 msg/s, a 100 ms stall before message 0 is acknowledged must show on messages
        // 0..100 too, as if each had waited from its own due time (synthetic clock, no sleeping).
        let schedule = Schedule::open_loop(1_000.0);
        assert_eq!(schedule.due(0), Duration::ZERO);
        assert_eq!(schedule.due(250), Duration::from_millis(250));
        assert_eq!(schedule.due_by(Duration::from_millis(99)), 100);
        let stall_end = Duration::from_millis(100);
        let latencies: Vec<Duration> = (0..100)
            .map(|index| schedule.latency(index, stall_end, stall_end))
            .collect();
        assert_eq!(latencies[0], Duration::from_millis(100));
        assert_eq!(latencies[50], Duration::from_millis(50));
        // A closed-loop tool would have recorded ~0 for all of them (sent == acked).
        assert!(latencies.iter().all(|latency| *latency > Duration::ZERO));
    }

    #[test]
    fn flat_out_measures_from_the_actual_send() {
        let schedule = Schedule::flat_out();
        assert_eq!(schedule.due_by(Duration::ZERO), u64::MAX);
        let latency = schedule.latency(7, Duration::from_millis(40), Duration::from_millis(43));
        assert_eq!(latency, Duration::from_millis(3));
    }
}
