//! One clock for a run: a monotonic `Instant` anchored to the Unix epoch once at the start, so
//! intended send times written into records (microseconds since the epoch) and the consumers'
//! receive times come from the same monotonic source and never jump with NTP.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    start_unix_us: u64,
}

impl Clock {
    pub fn start() -> Self {
        let start_unix_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_micros() as u64);
        Self {
            start: Instant::now(),
            start_unix_us,
        }
    }

    /// Time since the start of the run.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// The instant `offset` after the start.
    pub fn at(&self, offset: Duration) -> Instant {
        self.start + offset
    }

    /// Microseconds since the Unix epoch of a point `offset` after the start.
    pub fn unix_us(&self, offset: Duration) -> u64 {
        self.start_unix_us + offset.as_micros() as u64
    }

    /// Microseconds since the Unix epoch, now.
    pub fn now_unix_us(&self) -> u64 {
        self.unix_us(self.elapsed())
    }

    /// The offset since the start of a Unix-epoch time (0 if before the start).
    pub fn offset_of_unix_us(&self, unix_us: u64) -> Duration {
        Duration::from_micros(unix_us.saturating_sub(self.start_unix_us))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_times_and_offsets_are_inverse() {
        let clock = Clock::start();
        let offset = Duration::from_millis(1234);
        assert_eq!(clock.offset_of_unix_us(clock.unix_us(offset)), offset);
        assert!(clock.now_unix_us() >= clock.unix_us(Duration::ZERO));
    }

    #[test]
    fn a_synthetic_delay_shows_in_the_difference() {
        // What a consumer computes: receive time minus the stamped intended send time.
        let clock = Clock::start();
        let intended = clock.now_unix_us();
        std::thread::sleep(Duration::from_millis(20));
        let latency_us = clock.now_unix_us() - intended;
        assert!(latency_us >= 20_000, "{latency_us} µs after a 20 ms sleep");
    }
}
