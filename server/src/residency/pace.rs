//! A broker-wide pace for cold reads (`--fetch-cold-read-bytes-per-sec`, 0: none, the default).
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
//! Chunks spliced because the memory budget had no room take their turn too (with a pace set,
//! chunks waiting theirs hold the budget, so many readers would otherwise go round it there).
//! Not paced: the naive path (`--fetch-residency-check off`), which reads through the kernel's
//! readahead.
//!
//! A read cancelled while it waits (its range replaced, or its response failed) hands its turn
//! back, so the clock does not run ahead of the reads that happen. A client that merely goes away
//! is noticed at the next write of its response: its reads until then keep their turns (and with
//! many such clients at a low pace, the others wait behind them).
//!
//! # Invariants
//! - Over any interval, the cold reads started add up to at most `rate × interval` plus the
//!   reads that may start at once (one per reservation made at the same instant).
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::metrics::COLD_PACE_WAIT;

static BYTES_PER_SEC: AtomicU64 = AtomicU64::new(0);
/// The virtual clock: nanoseconds since [`epoch`] at which the next read may start.
static NEXT_START_NANOS: AtomicU64 = AtomicU64::new(0);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// The slowest pace taken: one 4 MiB chunk per 4 s. Against values that are plainly mistakes,
/// not a promise that fetches finish within a client's timeout at it.
pub const COLD_READ_PACE_MIN_BYTES_PER_SEC: u64 = 1 << 20;

/// `--fetch-cold-read-bytes-per-sec`: 0 (no pace) or at least
/// [`COLD_READ_PACE_MIN_BYTES_PER_SEC`].
pub fn parse_cold_read_pace(value: &str) -> Result<u64, String> {
    let bytes_per_sec: u64 = value
        .parse()
        .map_err(|err| format!("{value:?} is not a byte count: {err}"))?;
    if bytes_per_sec != 0 && bytes_per_sec < COLD_READ_PACE_MIN_BYTES_PER_SEC {
        return Err(format!(
            "{bytes_per_sec} bytes/s is below the least pace, {COLD_READ_PACE_MIN_BYTES_PER_SEC} (0 for none)"
        ));
    }
    Ok(bytes_per_sec)
}

/// Sets the broker-wide pace (`--fetch-cold-read-bytes-per-sec`); 0 turns it off.
pub fn set_cold_read_bytes_per_sec(bytes_per_sec: u64) {
    BYTES_PER_SEC.store(bytes_per_sec, Ordering::Relaxed);
}

/// The pace now (0: none).
pub fn cold_read_bytes_per_sec() -> u64 {
    BYTES_PER_SEC.load(Ordering::Relaxed)
}

/// Nanoseconds a read of `bytes` takes of the pace's time.
fn cost_nanos(bytes: u64, bytes_per_sec: u64) -> u64 {
    assert!(bytes_per_sec > 0, "a pace of zero is no pace");
    let nanos = u128::from(bytes) * 1_000_000_000 / u128::from(bytes_per_sec);
    u64::try_from(nanos).unwrap_or(u64::MAX)
}

/// The start of a read of `bytes` reserved at `now_nanos` against the clock `next_start`: the
/// later of the two; and the clock after it. Pure, so the pacing can be checked without a clock.
fn reserve(next_start: u64, now_nanos: u64, bytes: u64, bytes_per_sec: u64) -> (u64, u64) {
    let start = next_start.max(now_nanos);
    (
        start,
        start.saturating_add(cost_nanos(bytes, bytes_per_sec)),
    )
}

/// The clock after a reservation of `cost` nanoseconds is handed back at `now_nanos` (its read
/// cancelled before its turn): moved back by the cost, never to before now.
fn release(next_start: u64, now_nanos: u64, cost: u64) -> u64 {
    next_start.saturating_sub(cost).max(now_nanos)
}

fn nanos_since_epoch(at: Instant) -> u64 {
    u64::try_from(at.duration_since(epoch()).as_nanos()).unwrap_or(u64::MAX)
}

/// A reservation not yet reached: dropped before its turn (the read cancelled), it hands the
/// turn back.
struct Turn {
    cost: u64,
    reached: bool,
}

impl Drop for Turn {
    fn drop(&mut self) {
        if !self.reached {
            let now_nanos = nanos_since_epoch(Instant::now());
            NEXT_START_NANOS
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |next| {
                    Some(release(next, now_nanos, self.cost))
                })
                .expect("the update always returns a value");
        }
    }
}

/// Waits until a cold read of `bytes` may start under the pace; at once when there is none.
pub(super) async fn wait_for_turn(bytes: u64) {
    let bytes_per_sec = cold_read_bytes_per_sec();
    if bytes_per_sec == 0 {
        return;
    }
    let now_nanos = nanos_since_epoch(Instant::now());
    let mut start = now_nanos;
    NEXT_START_NANOS
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |next| {
            let (reserved, next) = reserve(next, now_nanos, bytes, bytes_per_sec);
            start = reserved;
            Some(next)
        })
        .expect("the update always returns a value");
    let mut turn = Turn {
        cost: cost_nanos(bytes, bytes_per_sec),
        reached: false,
    };
    let wait = Duration::from_nanos(start - now_nanos);
    if !wait.is_zero() {
        // Until the reserved instant, not for `wait` from now: no slip by the time since.
        compio::time::sleep_until(epoch() + Duration::from_nanos(start)).await;
    }
    turn.reached = true;
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
        let (bytes, bytes_per_sec) = (4u64 << 20, 400_000_000u64);
        let mut clock = 0;
        let mut start = 0;
        for _ in 0..100 {
            (start, clock) = reserve(clock, 0, bytes, bytes_per_sec);
        }
        let due = 99 * bytes * SECOND / bytes_per_sec;
        assert!(start.abs_diff(due) < 100, "{start} against {due}");
    }

    #[test]
    fn a_cancelled_turn_is_handed_back() {
        // Two reads reserved at 0, the second cancelled before its turn: the next read starts
        // where the second would have, not after it.
        let (_, clock) = reserve(0, 0, 500, 1_000);
        let (_, clock) = reserve(clock, 0, 500, 1_000);
        let clock = release(clock, SECOND / 10, cost_nanos(500, 1_000));
        assert_eq!(clock, SECOND / 2);
        let (third, _) = reserve(clock, SECOND / 10, 500, 1_000);
        assert_eq!(third, SECOND / 2);
        // Handed back late, the clock goes no further back than now: no burst of banked credit.
        assert_eq!(release(SECOND, 3 * SECOND, SECOND / 2), 3 * SECOND);
    }

    #[test]
    fn paces_below_the_least_are_refused() {
        assert_eq!(parse_cold_read_pace("0"), Ok(0));
        assert_eq!(
            parse_cold_read_pace(&COLD_READ_PACE_MIN_BYTES_PER_SEC.to_string()),
            Ok(COLD_READ_PACE_MIN_BYTES_PER_SEC)
        );
        for refused in ["1", "1048575", "-1", "fast", ""] {
            assert!(parse_cold_read_pace(refused).is_err(), "{refused} taken");
        }
    }

    #[test]
    fn huge_reads_at_tiny_paces_saturate_instead_of_wrapping() {
        assert_eq!(cost_nanos(u64::MAX, 1), u64::MAX);
        let (start, clock) = reserve(u64::MAX - 1, 0, 1 << 20, 1);
        assert_eq!((start, clock), (u64::MAX - 1, u64::MAX));
    }
}
