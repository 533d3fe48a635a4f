//! Cooperative yielding for long CPU work on a shard thread (the cleaner's pass): the work gives
//! the thread back to the shard's other tasks every few batches or milliseconds.
#![forbid(unsafe_code)]

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A pass gives the shard thread back to its other tasks (appends, fetches, flush ticks) at least
/// once per this many batches...
pub(crate) const YIELD_EVERY_BATCHES: u32 = 64;

/// ...and once per this much work.
pub(crate) const YIELD_AFTER: Duration = Duration::from_millis(1);

/// Gives the shard thread back to its other tasks now and then during a pass: the pass's CPU work
/// (CRC checks, decompressing, key mapping, recompressing) runs on the shard between its reads, and
/// a window of small batches would otherwise be worked through without a break.
pub(crate) struct Yielder {
    since: Cell<Instant>,
    batches: Cell<u32>,
    pub(crate) yields: Cell<u64>,
    /// Asked after each yield: true ends the work (its log is closing; a shutdown must not wait
    /// for a pass over gigabytes, as Kafka's cleaner aborts a pass whose log is closed).
    stop_when: Option<Box<dyn Fn() -> bool>>,
}

impl Default for Yielder {
    fn default() -> Self {
        Self {
            since: Cell::new(Instant::now()),
            batches: Cell::new(0),
            yields: Cell::new(0),
            stop_when: None,
        }
    }
}

/// The work was asked to stop ([`Yielder::stopping_when`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stopped;

impl Yielder {
    /// A yielder whose [`Yielder::tick`] reports [`Stopped`] once `stop` holds after a yield.
    pub(crate) fn stopping_when(stop: impl Fn() -> bool + 'static) -> Self {
        Self {
            stop_when: Some(Box::new(stop)),
            ..Self::default()
        }
    }

    /// Called once per batch: yields every [`YIELD_EVERY_BATCHES`] batches or [`YIELD_AFTER`];
    /// after a yield, [`Stopped`] if the work is to end.
    pub(crate) async fn tick(&self) -> Result<(), Stopped> {
        let batches = self.batches.get() + 1;
        if batches < YIELD_EVERY_BATCHES && self.since.get().elapsed() < YIELD_AFTER {
            self.batches.set(batches);
            return Ok(());
        }
        YieldNow(false).await;
        self.yields.set(self.yields.get() + 1);
        self.batches.set(0);
        self.since.set(Instant::now());
        match &self.stop_when {
            Some(stop) if stop() => Err(Stopped),
            _ => Ok(()),
        }
    }
}

/// Lets the shard's other ready tasks run, then resumes (compio has no yield of its own): what
/// [`Yielder::tick`] does between batches, and what the server's handlers of very large
/// requests call between items.
pub async fn yield_now() {
    YieldNow(false).await
}

/// Pending once (waking itself), so the runtime runs its other ready tasks and polls its ring and
/// timers before the pass goes on.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        context.waker().wake_by_ref();
        Poll::Pending
    }
}
