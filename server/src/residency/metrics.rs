//! The residency check's and cold reads' counters and histograms, rendered on `/metrics`.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use super::memory::{cold_read_memory_bytes, BYTES_IN_USE, SPARE_BYTES};
use crate::histogram::LatencyHistogram;

pub(super) static HOT_BYTES_TOTAL: AtomicU64 = AtomicU64::new(0);
pub(super) static COLD_BYTES_TOTAL: AtomicU64 = AtomicU64::new(0);
pub(super) static COLD_DIRECT_BYTES_TOTAL: AtomicU64 = AtomicU64::new(0);
/// Of the cold bytes, those written by a shard's cold sender thread (`--fetch-cold-send-priority`).
pub(super) static COLD_SENDER_BYTES_TOTAL: AtomicU64 = AtomicU64::new(0);
/// Times a cold sender thread offered its core between two pieces of a chunk.
pub(super) static COLD_SENDER_YIELDS_TOTAL: AtomicU64 = AtomicU64::new(0);
/// Cold chunks a shard set out to write itself because its sender thread could not be started
/// or had stopped, or no descriptor could be spared for the sender (with
/// `--fetch-cold-send-priority` other than `shard`); counted before the write, so also those
/// whose write then failed.
pub(super) static COLD_SENDER_FALLBACK_CHUNKS_TOTAL: AtomicU64 = AtomicU64::new(0);
pub(super) static COLD_READS_IN_PROGRESS: AtomicU64 = AtomicU64::new(0);
pub(super) static CHECK_FAILURES_TOTAL: AtomicU64 = AtomicU64::new(0);
pub(super) static DIRECT_REFUSED_TOTAL: AtomicU64 = AtomicU64::new(0);
/// Buffered cold reads' own descriptor (advised RANDOM) that could not be opened or advised: they
/// read the segment's shared one instead, with its readahead.
pub(super) static BUFFERED_OPENS_FAILED_TOTAL: AtomicU64 = AtomicU64::new(0);
/// Cold buffers whose `MADV_HUGEPAGE` advice the kernel refused.
pub(super) static HUGE_PAGE_ADVICE_REFUSED_TOTAL: AtomicU64 = AtomicU64::new(0);
/// Cold bytes spliced because the cold read memory budget had no room for their read.
pub(super) static OVER_BUDGET_BYTES_TOTAL: AtomicU64 = AtomicU64::new(0);
/// Cold chunk reads that failed (EIO, or a segment shorter than planned): the response was cut
/// and its connection closed.
pub(super) static COLD_READ_ERRORS_TOTAL: AtomicU64 = AtomicU64::new(0);
/// Fetch record bytes sent from the engine's tail cache (`write.direct`).
pub(crate) static TAIL_CACHE_BYTES_TOTAL: AtomicU64 = AtomicU64::new(0);
/// From a cold chunk's first read until its bytes are in memory.
pub(super) static COLD_READ_WAIT: LatencyHistogram = LatencyHistogram::new();
/// A connection's writer, per cold chunk: waiting for the chunk's read once its turn came
/// (zero when the read was done already), and writing it into the socket: the copy into the
/// socket (over loopback also the receiver's TCP processing, see `cold::write_in_pieces`) and
/// waiting for the client to make room; a buffered chunk's pages dropped too. Which one grows
/// tells whether the disk or the client holds a catch-up reader back.
pub(super) static COLD_WRITER_READ_WAIT: LatencyHistogram = LatencyHistogram::new();
pub(super) static COLD_WRITER_SOCKET_WAIT: LatencyHistogram = LatencyHistogram::new();
/// Making a new direct cold read buffer because the shard had no spare large enough: allocating
/// and zeroing it (first touches of fresh pages), on the shard's thread. Its count is the buffers
/// made. (A buffered read's buffer is filled by the kernel's read: nothing to time here.)
pub(super) static COLD_BUFFER_MAKE: LatencyHistogram = LatencyHistogram::new();
/// A cold chunk's wait for its turn under `--fetch-cold-read-bytes-per-sec` (recorded only with a
/// pace set; zero when its turn had come).
pub(super) static COLD_PACE_WAIT: LatencyHistogram = LatencyHistogram::new();
/// One `cachestat(2)` call.
pub(super) static CHECK_COST: LatencyHistogram = LatencyHistogram::new();

/// Appends this module's series to the `/metrics` text.
pub fn render_metrics(out: &mut String) {
    for (name, help, kind, value) in [
        (
            "fetch_hot_bytes_total",
            "Fetch record bytes found in the page cache and spliced (residency check on).",
            "counter",
            HOT_BYTES_TOTAL.load(Ordering::Relaxed),
        ),
        (
            "fetch_tail_cache_bytes_total",
            "Fetch record bytes sent from memory: a partition's latest writes, kept by its tail cache (write.direct).",
            "counter",
            TAIL_CACHE_BYTES_TOTAL.load(Ordering::Relaxed),
        ),
        (
            "fetch_cold_bytes_total",
            "Fetch record bytes not in the page cache: read in (direct or buffered and dropped behind), sent from memory.",
            "counter",
            COLD_BYTES_TOTAL.load(Ordering::Relaxed),
        ),
        (
            "fetch_cold_direct_bytes_total",
            "Of the cold bytes, those read with O_DIRECT (never in the page cache).",
            "counter",
            COLD_DIRECT_BYTES_TOTAL.load(Ordering::Relaxed),
        ),
        (
            "fetch_cold_sender_bytes_total",
            "Of the cold bytes, those written to their sockets by a shard's cold sender thread (--fetch-cold-send-priority), not the shard's own.",
            "counter",
            COLD_SENDER_BYTES_TOTAL.load(Ordering::Relaxed),
        ),
        (
            "fetch_cold_sender_yields_total",
            "Times a cold sender thread yielded its core (sched_yield) between two pieces of a chunk.",
            "counter",
            COLD_SENDER_YIELDS_TOTAL.load(Ordering::Relaxed),
        ),
        (
            "fetch_cold_sender_fallback_chunks_total",
            "Cold chunks a shard set out to write itself because its cold sender thread could not be started or had stopped, or no descriptor could be spared for it.",
            "counter",
            COLD_SENDER_FALLBACK_CHUNKS_TOTAL.load(Ordering::Relaxed),
        ),
        (
            "fetch_cold_reads_in_progress",
            "Cold chunks being read (a read dropped in flight until the kernel lets go of it) or sent now.",
            "gauge",
            COLD_READS_IN_PROGRESS.load(Ordering::Relaxed),
        ),
        (
            "fetch_cold_read_memory_bytes",
            "Buffer bytes charged by cold chunks being read or sent, all connections.",
            "gauge",
            BYTES_IN_USE.load(Ordering::Relaxed),
        ),
        (
            "fetch_cold_read_memory_bytes_max",
            "The budget of those bytes (--fetch-cold-read-memory-bytes).",
            "gauge",
            cold_read_memory_bytes(),
        ),
        (
            "fetch_cold_read_bytes_per_sec",
            "The pace of all cold reads together (--fetch-cold-read-bytes-per-sec); 0: none.",
            "gauge",
            super::pace::cold_read_bytes_per_sec(),
        ),
        (
            "fetch_cold_spare_buffer_bytes",
            "Bytes of spare cold buffers the shards keep warm between reads.",
            "gauge",
            SPARE_BYTES.load(Ordering::Relaxed),
        ),
        (
            "fetch_cold_huge_pages_enabled",
            "1 when the kernel's transparent huge pages (always or madvise) back cold read buffers, so direct reads go as ~2 MiB disk requests; 0 when off.",
            "gauge",
            u64::from(super::direct::huge_pages_enabled()),
        ),
        (
            "fetch_cold_huge_page_advice_refused_total",
            "Cold read buffers whose MADV_HUGEPAGE advice the kernel refused (read into 4 KiB pages).",
            "counter",
            HUGE_PAGE_ADVICE_REFUSED_TOTAL.load(Ordering::Relaxed),
        ),
        (
            "fetch_cold_read_errors_total",
            "Cold chunk reads that failed (a disk error, or a segment shorter than planned): the fetch response was cut off and its connection closed.",
            "counter",
            COLD_READ_ERRORS_TOTAL.load(Ordering::Relaxed),
        ),
        (
            "fetch_cold_over_budget_bytes_total",
            "Cold fetch record bytes spliced (as on the naive path) because the cold read memory budget had no room.",
            "counter",
            OVER_BUDGET_BYTES_TOTAL.load(Ordering::Relaxed),
        ),
        (
            "fetch_residency_check_failures_total",
            "Residency checks that failed (ranges then spliced unchecked).",
            "counter",
            CHECK_FAILURES_TOTAL.load(Ordering::Relaxed),
        ),
        (
            "fetch_cold_direct_refused_total",
            "Direct opens or reads that failed or were refused (those cold chunks then read buffered).",
            "counter",
            DIRECT_REFUSED_TOTAL.load(Ordering::Relaxed),
        ),
        (
            "fetch_cold_buffered_opens_failed_total",
            "Buffered cold reads' own descriptor not opened or not advised RANDOM (those read the segment's shared one, with readahead).",
            "counter",
            BUFFERED_OPENS_FAILED_TOTAL.load(Ordering::Relaxed),
        ),
    ] {
        crate::metrics::render_scalar(out, name, help, kind, value);
    }
    crate::histogram::render_family(
        out,
        "ringtail_fetch_cold_read_wait_seconds",
        "From a cold chunk's read until its bytes are in memory.",
        &[("", &COLD_READ_WAIT)],
    );
    crate::histogram::render_family(
        out,
        "ringtail_fetch_cold_writer_wait_seconds",
        "A connection's writer per cold chunk: waiting for its read once its turn came (for=\"read\", zero when read already), and writing it into the socket (for=\"socket\": the copy, and waiting for the client to make room).",
        &[
            ("for=\"read\"", &COLD_WRITER_READ_WAIT),
            ("for=\"socket\"", &COLD_WRITER_SOCKET_WAIT),
        ],
    );
    crate::histogram::render_family(
        out,
        "ringtail_fetch_cold_pace_wait_seconds",
        "A cold chunk's wait for its turn under --fetch-cold-read-bytes-per-sec (only with a pace set).",
        &[("", &COLD_PACE_WAIT)],
    );
    crate::histogram::render_family(
        out,
        "ringtail_fetch_cold_buffer_make_seconds",
        "Making a new direct cold read buffer (the shard had no spare): allocating and zeroing it on the shard's thread; the count is the buffers made.",
        &[("", &COLD_BUFFER_MAKE)],
    );
    crate::histogram::render_family(
        out,
        "ringtail_fetch_residency_check_seconds",
        "Cost of one page-cache residency check (cachestat).",
        &[("", &CHECK_COST)],
    );
}
