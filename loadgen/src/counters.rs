//! Running totals shared by producers and consumers, sampled once a second for the timeline and
//! the progress bar. Relaxed atomics: each is a counter read for display, never a synchronizer.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use crate::report::TimelinePoint;

#[derive(Debug, Default)]
pub struct Counters {
    produced_messages: AtomicU64,
    produced_bytes: AtomicU64,
    consumed_messages: AtomicU64,
    consumed_bytes: AtomicU64,
    /// Longest produce latency acknowledged since the last timeline sample took it.
    produce_latency_max_us: AtomicU64,
}

/// Totals at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub produced_messages: u64,
    pub produced_bytes: u64,
    pub consumed_messages: u64,
    pub consumed_bytes: u64,
}

impl Counters {
    pub fn add_produced(&self, messages: u64, bytes: u64) {
        self.produced_messages
            .fetch_add(messages, Ordering::Relaxed);
        self.produced_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn add_consumed(&self, messages: u64, bytes: u64) {
        self.consumed_messages
            .fetch_add(messages, Ordering::Relaxed);
        self.consumed_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Notes a produce latency for this second's maximum.
    pub fn record_produce_latency_us(&self, latency_us: u64) {
        self.produce_latency_max_us
            .fetch_max(latency_us, Ordering::Relaxed);
    }

    /// The longest produce latency since the last call, and starts the next second at zero.
    pub fn take_produce_latency_max_us(&self) -> u64 {
        self.produce_latency_max_us.swap(0, Ordering::Relaxed)
    }

    pub fn totals(&self) -> Totals {
        Totals {
            produced_messages: self.produced_messages.load(Ordering::Relaxed),
            produced_bytes: self.produced_bytes.load(Ordering::Relaxed),
            consumed_messages: self.consumed_messages.load(Ordering::Relaxed),
            consumed_bytes: self.consumed_bytes.load(Ordering::Relaxed),
        }
    }
}

impl Totals {
    /// The timeline point for the interval from `earlier` to `self`, ending at `t_s`.
    pub fn since(&self, earlier: &Totals, t_s: f64) -> TimelinePoint {
        TimelinePoint {
            t_s,
            produced_messages: self.produced_messages - earlier.produced_messages,
            produced_bytes: self.produced_bytes - earlier.produced_bytes,
            consumed_messages: self.consumed_messages - earlier.consumed_messages,
            consumed_bytes: self.consumed_bytes - earlier.consumed_bytes,
            produce_latency_max_us: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_second_gets_the_longest_latency_acknowledged_in_it() {
        let counters = Counters::default();
        for latency_us in [300, 7_000, 500] {
            counters.record_produce_latency_us(latency_us);
        }
        assert_eq!(counters.take_produce_latency_max_us(), 7_000);
        // The next second starts empty: one stall is not reported twice.
        assert_eq!(counters.take_produce_latency_max_us(), 0);
        counters.record_produce_latency_us(40);
        assert_eq!(counters.take_produce_latency_max_us(), 40);
    }
}
