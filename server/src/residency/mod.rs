//! Sending a fetch's file ranges by page-cache residency (KAFKA-7504): resident ranges are
//! spliced at once, cold ranges are read in without anything waiting on the disk but this
//! connection's own response, and without filling the page cache (read direct, or dropped
//! behind the reader).
//!
//! Why: a splice of a cold range waits for the disk inside an io-wq worker, and the kernel's
//! readahead then fills the page cache with megabytes of old data (8 MiB windows on this VM)
//! that push out the tail live consumers read. Here, before each range goes out, `cachestat(2)`
//! asks how much of it is cached (well under a microsecond per call; `/metrics` shows it):
//!
//! - **hot** (every page cached): zero-copy splice, as before.
//! - **cold** (any page missing): the range is read in chunks of at most
//!   [`COLD_CHUNK_BYTES_MAX`] (the last one with a tail of under [`COLD_CHUNK_TAIL_BYTES_MAX`])
//!   with io_uring reads into buffers charged to a process-wide budget
//!   (`--fetch-cold-read-memory-bytes`, [`memory`]). Up to `--fetch-cold-reads-in-flight`
//!   (default 2) chunks of a range are read at once; each is written from memory in file order
//!   once read. A chunk the budget has no room for is spliced, as on the naive path. `--fetch-cold-read-io` says how:
//!   - `direct` (default): `O_DIRECT` reads ([`direct`]), which never touch the page
//!     cache ([decision 0024](../../../docs/decisions/0024-cold-reads-direct.md)). A file system
//!     that refuses `O_DIRECT` gets buffered reads.
//!   - `buffered`: buffered reads that wait for the disk on a page-lock callback, so no thread
//!     blocks, with `POSIX_FADV_RANDOM` on the file, so the kernel reads exactly the chunk and no
//!     readahead beyond it; once a chunk is written its pages are dropped
//!     (`POSIX_FADV_DONTNEED`, on io_uring). A catch-up reader holds a few chunks in the page
//!     cache, never a window of the kernel's choosing ([decision 0008](../../../docs/decisions/0008-cold-reads-drop-behind.md)).
//!
//! A Fetch's ranges go out one after the other; the writer names the next one, and once every
//! cold chunk of a range is being read, the next range's first cold chunks are started too
//! (within the same in-flight limit, always taking their share of the budget; cancelled if
//! another range comes instead), so the disk does not wait at range boundaries.
//!
//! The connection's writer awaits all this, and it alone: responses of one connection go out in
//! order anyway, and the shard's other connections are served meanwhile.
//!
//! `--fetch-cold-read-bytes-per-sec` paces every cold read of the broker together ([`pace`]): off by
//! default; a trade of catch-up speed for live producers' latency on disks whose reads cost the
//! host CPU time.
//!
//! `--fetch-residency-check=off` splices everything unchecked (the naive path), so the benefit can
//! be measured.
//!
//! # Invariants
//! - Bytes of a range go out in file order, each exactly once, whichever way they go.
//! - Cold reads' memory is bounded whatever the number of connections: every chunk in flight
//!   holds [`memory::COLD_BUFFER_BYTES_MAX`] of the budget until it is written, and each shard
//!   keeps at most [`memory::SPARE_BUFFERS_PER_SHARD`] spare buffers. Their page cache is bounded
//!   by the chunks in flight (buffered reads drop their pages once written).
//! - Only pages of ranges this connection read cold with buffered reads are dropped.
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::time::Instant;

use compio::net::TcpStream;
use compio::runtime::{JoinError, JoinHandle};
use ringtail_engine::io::{page_bytes, range_residency, IoPriority};

use crate::zero_copy::{send_file_range, SplicePipe};
use cold::{
    open_direct_or_refused, open_for_buffered_reads, read_cold, write_cold, ColdChunk, ColdSource,
};
use memory::{keep_spare, take_spare, MemoryPermit, Share};
pub use memory::{
    set_cold_read_memory_bytes, COLD_READ_MEMORY_BYTES_DEFAULT, COLD_READ_MEMORY_BYTES_MIN,
};
pub use metrics::render_metrics;
#[cfg(test)]
pub use pace::COLD_READ_PACE_MIN_BYTES_PER_SEC;
pub use pace::{parse_cold_read_pace, set_cold_read_bytes_per_sec};
pub use sender::{parse_cold_send_priority, ColdSendThread};

/// Counts fetch record bytes sent from a log's tail cache instead of the file.
pub fn record_tail_cache_bytes(bytes: u64) {
    metrics::TAIL_CACHE_BYTES_TOTAL.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
}
use metrics::{
    CHECK_COST, CHECK_FAILURES_TOTAL, COLD_READ_ERRORS_TOTAL, COLD_WRITER_READ_WAIT,
    COLD_WRITER_SOCKET_WAIT, HOT_BYTES_TOTAL, OVER_BUDGET_BYTES_TOTAL,
};

mod cold;
mod direct;
mod memory;
mod metrics;
mod pace;
mod sender;
#[cfg(test)]
mod sender_tests;
#[cfg(test)]
mod tests;

/// Largest read of cold data, and so the buffers a connection keeps for them: large enough for
/// the disk's sequential speed, small enough to hold per connection. This VM's disk answers per
/// request: 1 MiB reads into 4 KiB pages went as ~0.9 MiB requests and a catch-up reader moved
/// 490 MB/s; 4 MiB reads into huge pages ([`direct`]) go as ~2 MiB requests, 700-740 MB/s
/// (1.4-1.5x, results/cold-read-huge-pages/).
pub const COLD_CHUNK_BYTES_MAX: usize = 4 << 20;

/// The largest tail a chunk takes in rather than leave it to a read of its own. A range a little
/// longer than whole chunks would otherwise end in a read of less than a page: its first chunk ends
/// at a page boundary, so it is up to a page short of [`COLD_CHUNK_BYTES_MAX`]. Such a read costs
/// a whole disk request and a writer's turn. A catch-up consumer's 8 MiB ranges are mostly such
/// ranges: 364 of a catch-up's 1,363 cold chunks were these tails (results/cold-read-waits/).
pub const COLD_CHUNK_TAIL_BYTES_MAX: usize = 4096;

/// The largest cold read: a chunk with the tail it took in.
pub const COLD_READ_BYTES_MAX: usize = COLD_CHUNK_BYTES_MAX + COLD_CHUNK_TAIL_BYTES_MAX;

/// Largest `--fetch-cold-reads-in-flight`.
pub const COLD_READS_IN_FLIGHT_MAX: usize = 16;

/// `--fetch-cold-reads-in-flight`'s default: cold chunks of one range read at once. With 1 MiB
/// chunks, one at a time moved a catch-up reader 310-360 MB/s beside a 50k msg/s producer and four
/// 570-950 (results/cold-read-window/). With 4 MiB chunks, two (8 MiB in flight) read as fast as
/// four, at a shorter producer tail (p99 7.4 against 10.3 ms, results/cold-read-huge-pages/).
pub const COLD_READS_IN_FLIGHT_DEFAULT: usize = 2;

/// `--fetch-residency-check`: whether fetches look at the page cache before splicing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ResidencyCheck {
    /// Hot ranges spliced, cold ranges read in chunks (see [`ColdReadIo`]) and sent from memory.
    On,
    /// Every range spliced unchecked (the naive path; cold pages wait inside io-wq).
    Off,
}

/// `--fetch-cold-read-io`: how cold chunks are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColdReadIo {
    /// `O_DIRECT` into the connection's buffers: no page-cache pages filled, none to drop.
    Direct,
    /// Through the page cache without readahead, the chunk's pages dropped once written.
    Buffered,
}

/// `--fetch-cold-read-priority`: the I/O priority class of direct cold reads, so a catch-up
/// reader's reads wait behind the writes (and writeback) of live producers at the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColdReadPriority {
    /// `IOPRIO_CLASS_IDLE`: dispatched when no write or other read waits (mq-deadline, bfq).
    Idle,
    /// The broker's own priority, as every other I/O.
    Normal,
}

impl ColdReadPriority {
    pub(crate) fn io_priority(self) -> IoPriority {
        match self {
            ColdReadPriority::Idle => IoPriority::Idle,
            ColdReadPriority::Normal => IoPriority::Default,
        }
    }
}

/// How a connection sends fetched ranges: `--fetch-residency-check`,
/// `--fetch-cold-reads-in-flight`, `--fetch-cold-read-io` and `--fetch-cold-read-priority`.
#[derive(Debug, Clone, Copy)]
pub struct SendPolicy {
    pub check: ResidencyCheck,
    /// Cold chunks of one range read at once, 1 to [`COLD_READS_IN_FLIGHT_MAX`].
    pub cold_reads_in_flight: usize,
    pub cold_read_io: ColdReadIo,
    /// The block-layer priority of direct cold reads.
    pub cold_read_priority: ColdReadPriority,
    /// Which thread writes cold chunks to their sockets.
    pub cold_send_thread: ColdSendThread,
}

/// A range of a segment file, as a Fetch response sends it.
#[derive(Debug, Clone, Copy)]
pub struct FileRange<'a> {
    pub file: &'a compio::fs::File,
    pub position: u64,
    pub len: u64,
}

/// Sends file ranges of Fetch responses on one connection.
pub struct RangeSender {
    pipe: SplicePipe,
    /// Its `cold_reads_in_flight` within 1 to [`COLD_READS_IN_FLIGHT_MAX`].
    policy: SendPolicy,
    /// Cold reads of the range to be sent next, started while the one before it was written.
    ahead: Option<ColdRange>,
}

impl RangeSender {
    pub fn new(policy: SendPolicy) -> io::Result<Self> {
        Ok(Self {
            pipe: SplicePipe::new()?,
            policy: SendPolicy {
                cold_reads_in_flight: policy
                    .cold_reads_in_flight
                    .clamp(1, COLD_READS_IN_FLIGHT_MAX),
                ..policy
            },
            ahead: None,
        })
    }

    /// Sends `range` to `socket`. `next` is the range the caller sends after it, if it knows:
    /// once every cold chunk of `range` is being read, the first ones of `next` are started too,
    /// so the disk is not idle between ranges. An error leaves the response partly written: the
    /// caller closes the connection (as with [`send_file_range`]), and the reads started ahead
    /// are cancelled at once: they would otherwise hold their budget, and the next segment's
    /// file, for as long as the client keeps its end open.
    pub async fn send(
        &mut self,
        range: FileRange<'_>,
        next: Option<FileRange<'_>>,
        socket: &mut TcpStream,
    ) -> io::Result<()> {
        let sent = self.send_range(range, next, socket).await;
        if sent.is_err() {
            self.ahead = None;
        }
        sent
    }

    async fn send_range(
        &mut self,
        range: FileRange<'_>,
        next: Option<FileRange<'_>>,
        socket: &mut TcpStream,
    ) -> io::Result<()> {
        let FileRange {
            file,
            position,
            len,
        } = range;
        // Reads started for another range than this one are cancelled (their budget returns).
        let ahead = self.ahead.take().filter(|ahead| ahead.is(range));
        let policy = self.policy;
        let SendPolicy {
            check,
            cold_reads_in_flight,
            ..
        } = policy;
        if check == ResidencyCheck::Off || (ahead.is_none() && is_resident(file, position, len)) {
            send_file_range(&self.pipe, file, position, len, socket).await?;
            if check == ResidencyCheck::On {
                HOT_BYTES_TOTAL.fetch_add(len, Ordering::Relaxed);
            }
            return Ok(());
        }
        let mut current = match ahead {
            Some(ahead) => ahead,
            None => ColdRange::new(range)?,
        };
        loop {
            // Keep the disk busy: start the next cold chunks' reads before waiting for any.
            current
                .start_reads(cold_reads_in_flight, true, policy)
                .await;
            if let Some(next) = next.filter(|_| current.all_started()) {
                if self.ahead.is_none() {
                    self.ahead = Some(ColdRange::new(next)?);
                }
                let room = cold_reads_in_flight.saturating_sub(current.reads.len());
                if let Some(ahead) = self.ahead.as_mut() {
                    ahead.start_reads(room, false, policy).await;
                }
            }
            match current.reads.pop_front() {
                Some(read) => {
                    let turn = Instant::now();
                    let chunk = match read.await {
                        Ok(Ok(chunk)) => chunk,
                        Ok(Err(err)) => {
                            // The disk's failure, not the client's: say so (a consumer would
                            // otherwise only see its fetch cut off, again and again).
                            COLD_READ_ERRORS_TOTAL.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(
                                %err,
                                range_position = position,
                                range_bytes = len,
                                "cold read failed; closing the connection"
                            );
                            return Err(err);
                        }
                        Err(JoinError::Panicked(panic)) => std::panic::resume_unwind(panic),
                        Err(JoinError::Cancelled) => {
                            return Err(io::Error::other("cold read cancelled"))
                        }
                    };
                    let read = Instant::now();
                    COLD_WRITER_READ_WAIT.record(read - turn);
                    keep_spare(write_cold(socket, file, chunk, policy.cold_send_thread).await?);
                    COLD_WRITER_SOCKET_WAIT.record(read.elapsed());
                }
                None if !current.all_started() => {
                    // The next chunk is hot, or cold with no room in the memory budget (a cold
                    // one with room would have been started above): spliced.
                    let at = current.at;
                    let chunk_len = chunk_end(at, current.end, page_bytes()) - at;
                    if current.over_budget {
                        // A disk read too, so it takes its turn under the pace: with a pace
                        // set, chunks waiting theirs hold the budget, and many catch-up readers
                        // would otherwise go round the pace through this splice.
                        pace::wait_for_turn(chunk_len).await;
                    }
                    send_file_range(&self.pipe, file, at, chunk_len, socket).await?;
                    let counter = if std::mem::take(&mut current.over_budget) {
                        &OVER_BUDGET_BYTES_TOTAL
                    } else {
                        &HOT_BYTES_TOTAL
                    };
                    counter.fetch_add(chunk_len, Ordering::Relaxed);
                    current.at += chunk_len;
                }
                None => return Ok(()),
            }
        }
    }
}

/// The cold chunks of one range being read, in file order: each is written once the ones
/// before it are.
struct ColdRange {
    file: compio::fs::File,
    /// The range's start, to recognise it when its turn comes.
    position: u64,
    end: u64,
    /// Where the next chunk not yet started begins.
    at: u64,
    reads: VecDeque<JoinHandle<io::Result<ColdChunk>>>,
    /// How this range's chunks are read, chosen at its first cold chunk.
    source: Option<ReadSource>,
    /// The next chunk is cold but the memory budget had no room for its read: it is spliced.
    over_budget: bool,
}

impl ColdRange {
    fn new(range: FileRange<'_>) -> io::Result<Self> {
        let end = range
            .position
            .checked_add(range.len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "file range overflow"))?;
        Ok(Self {
            file: range.file.clone(),
            position: range.position,
            end,
            at: range.position,
            reads: VecDeque::new(),
            source: None,
            over_budget: false,
        })
    }

    /// Whether this is `range` (the files of a response's ranges stay open while it is sent,
    /// so their descriptors are not reused meanwhile).
    fn is(&self, range: FileRange<'_>) -> bool {
        self.file.as_raw_fd() == range.file.as_raw_fd()
            && self.position == range.position
            && Some(self.end) == range.position.checked_add(range.len)
    }

    fn all_started(&self) -> bool {
        self.at == self.end
    }

    /// Starts reading the next cold chunks until `in_flight_max` are being read, the next chunk
    /// is hot, or the memory budget has no room. With `is_turn` (this range is being sent), a
    /// first read in flight may take any of the budget, and if even that has no room the chunk
    /// is marked to be spliced; reads ahead (of this range's turn, or of the chunk being
    /// written) take only the read-ahead share.
    async fn start_reads(&mut self, in_flight_max: usize, is_turn: bool, policy: SendPolicy) {
        while self.at < self.end && self.reads.len() < in_flight_max {
            let chunk_len = chunk_end(self.at, self.end, page_bytes()) - self.at;
            if is_resident(&self.file, self.at, chunk_len) {
                // A hot chunk: spliced once the cold ones ahead of it are written.
                break;
            }
            let first = is_turn && self.reads.is_empty();
            let share = if first {
                Share::First
            } else {
                Share::ReadAhead
            };
            let Some(budget) = MemoryPermit::take(share) else {
                self.over_budget = first;
                break;
            };
            if self.source.is_none() {
                let direct = match policy.cold_read_io {
                    ColdReadIo::Direct => open_direct_or_refused(&self.file).await,
                    ColdReadIo::Buffered => None,
                };
                self.source = Some(match direct {
                    Some(direct) => ReadSource::Direct(direct),
                    None => ReadSource::Buffered(open_for_buffered_reads(&self.file).await),
                });
            }
            let source = match self.source.as_ref().expect("chosen above") {
                ReadSource::Direct(direct) => ColdSource::Direct {
                    direct: direct.clone(),
                    file: self.file.clone(),
                    priority: policy.cold_read_priority,
                },
                ReadSource::Buffered(file) => ColdSource::Buffered(file.clone()),
            };
            // A spare buffer of this shard if there is one (warm pages), else a new one.
            let spare = take_spare();
            self.reads.push_back(compio::runtime::spawn(read_cold(
                source, self.at, chunk_len, spare, budget,
            )));
            self.at += chunk_len;
        }
    }
}

/// The descriptor a range's cold chunks are read from.
enum ReadSource {
    /// The segment opened again with `O_DIRECT`.
    Direct(compio::fs::File),
    /// Its file system refuses `O_DIRECT`, or buffered reads were asked for: the segment opened
    /// again for reads without readahead ([`open_for_buffered_reads`]).
    Buffered(compio::fs::File),
}

/// Where the chunk starting at `at` ends: at `end` if that is within [`COLD_CHUNK_BYTES_MAX`],
/// else at the last page boundary within it (so chunks after the first are page-aligned and
/// their pages can be dropped whole), unless less than [`COLD_CHUNK_TAIL_BYTES_MAX`] would be
/// left after it: then at `end`, the tail taken in.
fn chunk_end(at: u64, end: u64, page_bytes: u64) -> u64 {
    assert!(at < end);
    let limit = at + COLD_CHUNK_BYTES_MAX as u64;
    if end <= limit {
        return end;
    }
    let aligned = limit / page_bytes * page_bytes;
    assert!(aligned > at, "a chunk holds more than one page");
    if end - aligned < COLD_CHUNK_TAIL_BYTES_MAX as u64 {
        return end;
    }
    aligned
}

/// Whether every page of the range is cached, timing the check. A failed check (a kernel before
/// 6.5) counts as resident: the range is spliced as on the naive path.
fn is_resident(file: &compio::fs::File, position: u64, len: u64) -> bool {
    let started = Instant::now();
    let residency = range_residency(file, position, len);
    CHECK_COST.record(started.elapsed());
    match residency {
        Ok(residency) => residency.is_resident(),
        Err(error) => {
            if CHECK_FAILURES_TOTAL.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::warn!(%error, "page-cache residency check failed; splicing unchecked");
            }
            true
        }
    }
}
