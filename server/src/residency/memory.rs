//! What cold reads may hold in memory, whatever the number of connections: a process-wide budget
//! for the buffers of chunks in flight (`--fetch-cold-read-memory-bytes`), and a few spare
//! buffers per shard kept warm for the next reads.
//!
//! Why: a cold chunk's buffer is up to [`COLD_BUFFER_BYTES_MAX`] (a 4 MiB chunk and its tail,
//! widened to alignment, with room to start at a huge page). Without a bound across
//! connections, a few hundred consumers catching up at once (or one client opening many
//! connections) would hold gigabytes. Within the budget a connection reads its cold ranges as
//! before; past it, the chunk is spliced as on the naive path (the kernel reads it in, through
//! the page cache): the fetch is answered, no memory is taken, and `/metrics` counts those
//! bytes (`ringtail_fetch_cold_over_budget_bytes_total`).
//!
//! A connection's first chunk in flight may take any of the budget; chunks read ahead of it only
//! the first half, so read-ahead cannot leave other connections' first reads without room.
//!
//! Spare buffers are the shard's, not a connection's: an idle connection holds none, and every
//! connection of the shard reuses the same warm pages (at most [`SPARE_BUFFERS_PER_SHARD`]).
//!
//! # Invariants
//! - Bytes charged never exceed the budget: taken with one compare-and-swap, given back on drop.
//! - A chunk's buffer never holds more than its charge (asserted when its read completes).
//! - A spare buffer's capacity is at most [`COLD_BUFFER_BYTES_MAX`]; a shard keeps at most
//!   [`SPARE_BUFFERS_PER_SHARD`] of them.
#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use super::direct::direct_buffer_bytes;
use super::COLD_READ_BYTES_MAX;

/// Largest buffer of a cold chunk: a direct read's is wider than the chunk (alignment and a huge
/// page boundary). Every chunk in flight is charged this much.
pub const COLD_BUFFER_BYTES_MAX: usize = direct_buffer_bytes(COLD_READ_BYTES_MAX);

/// `--fetch-cold-read-memory-bytes`' default: 21 chunks in flight across all connections.
pub const COLD_READ_MEMORY_BYTES_DEFAULT: u64 = 128 << 20;

/// The smallest budget: one chunk in flight.
pub const COLD_READ_MEMORY_BYTES_MIN: u64 = COLD_BUFFER_BYTES_MAX as u64;

/// Spare cold buffers a shard keeps between reads (their pages stay warm): as many as one
/// connection reads at once by default.
pub const SPARE_BUFFERS_PER_SHARD: usize = 2;

static BUDGET_BYTES: AtomicU64 = AtomicU64::new(COLD_READ_MEMORY_BYTES_DEFAULT);
pub(super) static BYTES_IN_USE: AtomicU64 = AtomicU64::new(0);
pub(super) static SPARE_BYTES: AtomicU64 = AtomicU64::new(0);

/// Sets the process-wide budget (`--fetch-cold-read-memory-bytes`), at least one chunk's buffer.
pub fn set_cold_read_memory_bytes(bytes: u64) {
    BUDGET_BYTES.store(bytes.max(COLD_READ_MEMORY_BYTES_MIN), Ordering::Relaxed);
}

/// The process-wide budget now.
pub fn cold_read_memory_bytes() -> u64 {
    BUDGET_BYTES.load(Ordering::Relaxed)
}

/// Which part of the budget a chunk may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Share {
    /// A connection's first chunk in flight: any of the budget.
    First,
    /// A chunk read ahead of the one being written: the first half of the budget only.
    ReadAhead,
}

/// A chunk's charge against the budget, given back when dropped (once the chunk is written, or
/// its read cancelled).
#[derive(Debug)]
pub(super) struct MemoryPermit {
    bytes: u64,
}

impl MemoryPermit {
    /// A chunk buffer's charge, if `share` of the budget has room for it.
    pub(super) fn take(share: Share) -> Option<Self> {
        let budget = cold_read_memory_bytes();
        let limit = match share {
            Share::First => budget,
            // At least one chunk, so a budget of one chunk still reads ahead when idle.
            Share::ReadAhead => (budget / 2).max(COLD_READ_MEMORY_BYTES_MIN),
        };
        Self::take_bytes(COLD_BUFFER_BYTES_MAX as u64, limit)
    }

    /// The bytes charged: the most the chunk's buffer may hold.
    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// `bytes` of the budget if the bytes in use stay within `limit` (tests take it all).
    pub(super) fn take_bytes(bytes: u64, limit: u64) -> Option<Self> {
        BYTES_IN_USE
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |in_use| {
                in_use.checked_add(bytes).filter(|&total| total <= limit)
            })
            .ok()
            .map(|_| Self { bytes })
    }
}

impl Drop for MemoryPermit {
    fn drop(&mut self) {
        BYTES_IN_USE.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

thread_local! {
    /// This shard's spare buffers, warm from earlier reads.
    static SPARE_BUFFERS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A spare buffer of this shard, or an empty one (the read then allocates).
pub(super) fn take_spare() -> Vec<u8> {
    let spare = SPARE_BUFFERS.with_borrow_mut(Vec::pop).unwrap_or_default();
    SPARE_BYTES.fetch_sub(spare.capacity() as u64, Ordering::Relaxed);
    spare
}

/// Keeps a written chunk's buffer for this shard's next reads, if it has fewer than
/// [`SPARE_BUFFERS_PER_SHARD`]; else frees it.
pub(super) fn keep_spare(buffer: Vec<u8>) {
    assert!(
        buffer.capacity() <= COLD_BUFFER_BYTES_MAX,
        "a cold buffer of {} bytes is within {COLD_BUFFER_BYTES_MAX}",
        buffer.capacity()
    );
    if buffer.capacity() == 0 {
        return;
    }
    SPARE_BUFFERS.with_borrow_mut(|spares| {
        if spares.len() < SPARE_BUFFERS_PER_SHARD {
            SPARE_BYTES.fetch_add(buffer.capacity() as u64, Ordering::Relaxed);
            spares.push(buffer);
        }
    });
}

/// Spare buffers this thread keeps (tests).
#[cfg(test)]
pub(super) fn spares_on_this_thread() -> usize {
    SPARE_BUFFERS.with_borrow(Vec::len)
}
