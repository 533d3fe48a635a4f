//! A broker-wide pace for cold reads (`--fetch-cold-read-bytes-per-s`, 0: none, the default).
//!
//! Why: on a VM whose disk reads cost the host CPU time, a catch-up reader at the disk's full
//! speed makes the hypervisor steal time from the guest's busy vCPUs, and a live producer's p99
//! grows many times over whatever the broker does with its threads; paced to about half the
//! disk's speed it mostly does not (results/reader-interference/). An operator who prefers the
//! producers' tail to the catch-up's speed sets a pace. A client quota (`consumer_byte_rate`)
//! limits one client's average, but in bursts of full-speed fetches; this spreads every cold
//! read of every connection evenly over time, as fio's `--rate` does.
//!
//! How: one virtual clock for the whole process (GCRA): a read of `n` bytes starts at the later
//! of now and the clock, and moves the clock on by `n / rate`. No credit is banked while idle, so
//! a burst never exceeds the reads already in flight. The wait is a timer on the reading shard's
//! own io_uring (a task of the connection's, never the shard itself); hand-written rather than
//! `governor`, whose async waits run on a timer thread of their own.
//!
//! Not paced: chunks spliced because the memory budget had no room, and the naive path
//! (`--fetch-residency-check off`), which read through the kernel's readahead.
//!
//! # Invariants
//! - Over any interval, the cold reads started add up to at most `rate × interval` plus the
//!   reads that may start at once (one per reservation made at the same instant).
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::metrics::COLD_PACE_WAIT;

static BYTES_PER_S: AtomicU64 = AtomicU64::new(0);
/// The virtual clock: nanoseconds since [`epoch`] at which the next read may start.
static NEXT_START_NANOS: AtomicU64 = AtomicU64::new(0);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Sets the broker-wide pace (`--fetch-cold-read-bytes-per-s`); 0 turns it off.
pub fn set_cold_read_bytes_per_s(bytes_per_s: u64) {
    BYTES_PER_S.store(bytes_per_s, Ordering::Relaxed);
}

/// The pace now (0: none).
pub fn cold_read_bytes_per_s() -> u64 {
    BYTES_PER_S.load(Ordering::Relaxed)
}

/// Nanoseconds a read of `bytes` takes of the pace's time.
fn cost_nanos(bytes: u64, bytes_per_s: u64) -> u64 {
    assert!(bytes_per_s > 0, "a pace of zero is no pace");
    let nanos = u128::from(bytes) * 1_000_000_000 / u128::from(bytes_per_s);
    u64::try_from(nanos).unwrap_or(u64::MAX)
}

/// The start of a read of `bytes` reserved at `now_nanos` against the clock `next_start`: the
/// later of the two; and the clock after it. Pure, so the pacing can be checked without a clock.
fn reserve(next_start: u64, now_nanos: u64, bytes: u64, bytes_per_s: u64) -> (u64, u64) {
    let start = next_start.max(now_nanos);
    (start, start.saturating_add(cost_nanos(bytes, bytes_per_s)))
}

/// Waits until a cold read of `bytes` may start under the pace; at once when there is none.
pub(super) async fn wait_for_turn(bytes: u64) {
    let bytes_per_s = cold_read_bytes_per_s();
    if bytes_per_s == 0 {
        return;
    }
    let now = Instant::now();
    let now_nanos = u64::try_from(now.duration_since(epoch()).as_nanos()).unwrap_or(u64::MAX);
    let mut start = now_nanos;
    NEXT_START_NANOS
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |next| {
            let (reserved, next) = reserve(next, now_nanos, bytes, bytes_per_s);
            start = reserved;
            Some(next)
        })
        .expect("the update always returns a value");
    let wait = Duration::from_nanos(start - now_nanos);
    if !wait.is_zero() {
        compio::time::sleep(wait).await;
    }
    COLD_PACE_WAIT.record(wait);
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn reads_reserved_together_start_one_cost_apart() {
        // 1,000 bytes/s: reads of 500 bytes each take half a second of the pace.
        let (first, clock) = reserve(0, 0, 500, 1_000);
        let (second, clock) = reserve(clock, 0, 500, 1_000);
        let (third, clock) = reserve(clock, 0, 500, 1_000);
        assert_eq!((first, second, third), (0, SECOND / 2, SECOND));
        assert_eq!(clock, 3 * SECOND / 2);
    }

    #[test]
    fn an_idle_pace_banks_no_credit() {
        // Ten seconds after the clock ran out, a read starts at once, and the next one still
        // waits its cost: idle time is not saved up for a burst.
        let (first, clock) = reserve(SECOND, 10 * SECOND, 4_000, 1_000);
        assert_eq!(first, 10 * SECOND);
        let (second, _) = reserve(clock, 10 * SECOND, 4_000, 1_000);
        assert_eq!(second, 14 * SECOND);
    }

    #[test]
    fn the_rate_over_many_reads_is_the_pace() {
        // 4 MiB reads at 400 MB/s, all reserved at once: the last one starts when the bytes
        // before it are due at the pace, to the nanosecond's rounding.
        let (bytes, bytes_per_s) = (4u64 << 20, 400_000_000u64);
        let mut clock = 0;
        let mut start = 0;
        for _ in 0..100 {
            (start, clock) = reserve(clock, 0, bytes, bytes_per_s);
        }
        let due = 99 * bytes * SECOND / bytes_per_s;
        assert!(start.abs_diff(due) < 100, "{start} against {due}");
    }

    #[test]
    fn huge_reads_at_tiny_paces_saturate_instead_of_wrapping() {
        assert_eq!(cost_nanos(u64::MAX, 1), u64::MAX);
        let (start, clock) = reserve(u64::MAX - 1, 0, 1 << 20, 1);
        assert_eq!((start, clock), (u64::MAX - 1, u64::MAX));
    }
}
