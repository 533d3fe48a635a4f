//! Client threads that stand for work done on another machine (`--consumer-priority idle`): they
//! run at `SCHED_IDLE` and offer their core to any other runnable thread after each piece of
//! their work.
//!
//! Why the yields: at `SCHED_IDLE` alone, a catch-up consumer still held a core for up to 5 ms
//! while a broker shard or the producer whose latency is measured was runnable on it
//! (results/cold-send-thread/, the yield section). The scheduler (EEVDF) weighs which runnable
//! thread runs next only at scheduling events. A thread that receives megabytes (each `recv`
//! returning to user space without sleeping) and checks their CRCs in user space makes none,
//! so a thread woken with a negative lag, not yet eligible when it was queued, waited until the
//! next tick: 4 ms at HZ=250. A `sched_yield` is such an event: the consumer's runtime is
//! counted, and the waiting thread, eligible by then, runs.
#![forbid(unsafe_code)]

use std::cell::Cell;
use std::io;

/// Bytes of work (received from a socket, or checked) between two yields of a background thread,
/// and the most one `recv` of such a thread copies: well under a millisecond of work either way.
pub const WORK_BETWEEN_YIELDS_BYTES: usize = 256 << 10;

thread_local! {
    /// `Some(bytes of work since the last yield)` on a background thread, `None` elsewhere.
    static WORK_SINCE_YIELD_BYTES: Cell<Option<usize>> = const { Cell::new(None) };
    /// Yields this thread made.
    static YIELDS: Cell<u64> = const { Cell::new(0) };
}

/// Makes the calling thread a background thread: `SCHED_IDLE`, and yields in [`worked`].
pub fn become_background() -> io::Result<()> {
    crate::sys::become_sched_idle()?;
    WORK_SINCE_YIELD_BYTES.set(Some(0));
    Ok(())
}

/// Whether the calling thread is a background thread.
pub fn is_background() -> bool {
    WORK_SINCE_YIELD_BYTES.get().is_some()
}

/// Counts `bytes` of work done by the calling thread; a background thread yields its core once
/// every [`WORK_BETWEEN_YIELDS_BYTES`]. Elsewhere it does nothing.
pub fn worked(bytes: usize) {
    let Some(since_yield_bytes) = WORK_SINCE_YIELD_BYTES.get() else {
        return;
    };
    let since_yield_bytes = since_yield_bytes.saturating_add(bytes);
    if since_yield_bytes < WORK_BETWEEN_YIELDS_BYTES {
        WORK_SINCE_YIELD_BYTES.set(Some(since_yield_bytes));
        return;
    }
    WORK_SINCE_YIELD_BYTES.set(Some(0));
    YIELDS.set(YIELDS.get() + 1);
    std::thread::yield_now();
}

/// Yields the calling thread made in [`worked`] so far.
pub fn yields() -> u64 {
    YIELDS.get()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_background_thread_yields_once_per_share_of_work_and_others_never() {
        worked(10 * WORK_BETWEEN_YIELDS_BYTES);
        assert!(!is_background());
        assert_eq!(yields(), 0, "a normal thread never yields");

        std::thread::spawn(|| {
            become_background().expect("SCHED_IDLE needs no privilege");
            assert!(is_background());
            for _ in 0..40 {
                worked(WORK_BETWEEN_YIELDS_BYTES / 4);
            }
            assert_eq!(yields(), 10, "one yield per share of work");
            worked(3 * WORK_BETWEEN_YIELDS_BYTES);
            assert_eq!(yields(), 11, "a large piece of work is one yield, after it");
        })
        .join()
        .unwrap();
    }
}
