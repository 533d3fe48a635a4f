//! Sending a fetch's file ranges by page-cache residency (KAFKA-7504): resident ranges are
//! spliced at once, cold ranges are read in without anything waiting on the disk but this
//! connection's own response, then dropped from the page cache behind the reader.
//!
//! Why: a splice of a cold range waits for the disk inside an io-wq worker, and the kernel's
//! readahead then fills the page cache with megabytes of old data (8 MiB windows on this VM)
//! that push out the tail live consumers read. Here, before each range goes out, `cachestat(2)`
//! asks how much of it is cached (well under a microsecond per call; `/metrics` shows it):
//!
//! - **hot** (every page cached): zero-copy splice, as before.
//! - **cold** (any page missing): the range is read in chunks of at most
//!   [`COLD_CHUNK_BYTES_MAX`] with io_uring reads into this connection's buffers. Up to
//!   `--fetch-cold-reads-in-flight` (default 4) chunks of a range are read at once (the first
//!   always, the others within the process-wide [`COLD_READ_AHEAD_BYTES_MAX`]); each is written
//!   from memory in file order once read. `--fetch-cold-read-io` says how:
//!   - `direct` (default): `O_DIRECT` reads ([`crate::direct_read`]), which never touch the page
//!     cache ([decision 0024](../../docs/decisions/0024-cold-reads-direct.md)). A file system
//!     that refuses `O_DIRECT` gets buffered reads.
//!   - `buffered`: buffered reads that wait for the disk on a page-lock callback, so no thread
//!     blocks, with `POSIX_FADV_RANDOM` on the file, so the kernel reads exactly the chunk and no
//!     readahead beyond it; once a chunk is written its pages are dropped
//!     (`POSIX_FADV_DONTNEED`, on io_uring). A catch-up reader holds a few chunks in the page
//!     cache, never a window of the kernel's choosing ([decision 0008](../../docs/decisions/0008-cold-reads-drop-behind.md)).
//!
//! The connection's writer awaits all this, and it alone: responses of one connection go out in
//! order anyway, and the shard's other connections are served meanwhile.
//!
//! `--fetch-residency-check=off` splices everything unchecked (the naive path), so the benefit can
//! be measured.
//!
//! # Invariants
//! - Bytes of a range go out in file order, each exactly once, whichever way they go.
//! - Cold reads' memory and page cache are bounded: each connection has at most one chunk of
//!   [`COLD_CHUNK_BYTES_MAX`] outside the budget (its first read) plus two kept buffers; every
//!   further chunk in flight holds a share of [`COLD_READ_AHEAD_BYTES_MAX`] until it is written.
//! - Only pages of ranges this connection read cold with buffered reads are dropped.
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::io;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use compio::buf::{IntoInner, IoBuf};
use compio::io::{AsyncReadAtExt, AsyncWriteExt};
use compio::net::TcpStream;
use compio::runtime::{JoinError, JoinHandle};
use compio::BufResult;
use ringtail_engine::io::{advise, page_bytes, range_residency, Advice};

use crate::direct_read::{direct_buffer_bytes, open_direct, read_direct};
use crate::histogram::LatencyHistogram;
use crate::zero_copy::{send_file_range, SplicePipe};

/// Largest read of cold data, and so the buffers a connection keeps for them: large enough for
/// the disk's sequential speed, small enough to hold per connection.
pub const COLD_CHUNK_BYTES_MAX: usize = 1 << 20;

/// Largest buffer of a cold chunk: a direct read's is wider than the chunk (alignment).
const COLD_BUFFER_BYTES_MAX: usize = direct_buffer_bytes(COLD_CHUNK_BYTES_MAX);

/// Cold chunk buffers a connection keeps between reads (their pages stay warm).
const COLD_CHUNKS_IN_MEMORY_MAX: usize = 2;

/// Largest `--fetch-cold-reads-in-flight`.
pub const COLD_READS_IN_FLIGHT_MAX: usize = 16;

/// `--fetch-cold-reads-in-flight`'s default: cold chunks of one range read at once. One at a
/// time, a catch-up reader moved 310-360 MB/s beside a 50k msg/s producer: the disk answers a
/// 1 MiB read here in about 0.8 ms, but a buffered read on io_uring completes in the busy shard's
/// own task work about 1.9 ms after it starts. Two or four in flight: 570-950 MB/s, at the same
/// producer p99 (results/cold-read-window/).
pub const COLD_READS_IN_FLIGHT_DEFAULT: usize = 4;

/// Bytes of cold chunks read ahead (beyond each connection's first read) in the whole process:
/// what bounds cold reads' memory and page cache, whatever the number of connections.
pub const COLD_READ_AHEAD_BYTES_MAX: u64 = 64 << 20;

/// `--fetch-residency-check`: whether fetches look at the page cache before splicing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ResidencyCheck {
    /// Hot ranges spliced, cold ranges read in without readahead and dropped behind.
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

static HOT_BYTES_TOTAL: AtomicU64 = AtomicU64::new(0);
static COLD_BYTES_TOTAL: AtomicU64 = AtomicU64::new(0);
static COLD_DIRECT_BYTES_TOTAL: AtomicU64 = AtomicU64::new(0);
static COLD_READS_IN_PROGRESS: AtomicU64 = AtomicU64::new(0);
static CHECK_FAILURES_TOTAL: AtomicU64 = AtomicU64::new(0);
static DIRECT_REFUSED_TOTAL: AtomicU64 = AtomicU64::new(0);
/// From a cold chunk's first read until its bytes are in memory.
static COLD_READ_WAIT: LatencyHistogram = LatencyHistogram::new();
/// One `cachestat(2)` call.
static CHECK_COST: LatencyHistogram = LatencyHistogram::new();

/// How a connection sends fetched ranges: `--fetch-residency-check` and
/// `--fetch-cold-reads-in-flight`.
#[derive(Debug, Clone, Copy)]
pub struct SendPolicy {
    pub check: ResidencyCheck,
    /// Cold chunks of one range read at once, 1 to [`COLD_READS_IN_FLIGHT_MAX`].
    pub cold_reads_in_flight: usize,
    pub cold_read_io: ColdReadIo,
}

/// Sends file ranges of Fetch responses on one connection.
pub struct RangeSender {
    pipe: SplicePipe,
    check: ResidencyCheck,
    cold_reads_in_flight: usize,
    cold_read_io: ColdReadIo,
    /// Buffers of written cold chunks, kept for the next reads (their pages stay warm).
    cold_buffers: Vec<Vec<u8>>,
}

impl RangeSender {
    pub fn new(policy: SendPolicy) -> io::Result<Self> {
        Ok(Self {
            pipe: SplicePipe::new()?,
            check: policy.check,
            cold_reads_in_flight: policy
                .cold_reads_in_flight
                .clamp(1, COLD_READS_IN_FLIGHT_MAX),
            cold_read_io: policy.cold_read_io,
            cold_buffers: Vec::new(),
        })
    }

    /// Sends `len` bytes of `file` from `position` to `socket`. An error leaves the response
    /// partly written: the caller closes the connection (as with [`send_file_range`]).
    pub async fn send(
        &mut self,
        file: &compio::fs::File,
        position: u64,
        len: u64,
        socket: &mut TcpStream,
    ) -> io::Result<()> {
        if self.check == ResidencyCheck::Off || is_resident(file, position, len) {
            send_file_range(&self.pipe, file, position, len, socket).await?;
            if self.check == ResidencyCheck::On {
                HOT_BYTES_TOTAL.fetch_add(len, Ordering::Relaxed);
            }
            return Ok(());
        }
        let end = position
            .checked_add(len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "file range overflow"))?;
        let mut at = position;
        // Cold chunks being read, in file order: each is written once the ones before it are.
        let mut reads: VecDeque<JoinHandle<io::Result<ColdChunk>>> = VecDeque::new();
        // The file opened for direct reads, at the first cold chunk: `Some(None)` when its file
        // system refuses O_DIRECT (then buffered reads).
        let mut direct: Option<Option<compio::fs::File>> = None;
        loop {
            // Keep the disk busy: start the next cold chunks' reads before waiting for any.
            while at < end && reads.len() < self.cold_reads_in_flight {
                let chunk_len = chunk_end(at, end, page_bytes()) - at;
                if is_resident(file, at, chunk_len) {
                    // A hot chunk: spliced once the cold ones ahead of it are written.
                    break;
                }
                // The first read of a connection is always allowed; more only within the
                // process's read-ahead budget.
                let budget = if reads.is_empty() {
                    ReadAheadPermit::free()
                } else {
                    match ReadAheadPermit::take(chunk_len) {
                        Some(permit) => permit,
                        None => break,
                    }
                };
                if direct.is_none() {
                    direct = Some(match self.cold_read_io {
                        ColdReadIo::Direct => open_direct_or_refused(file).await?,
                        ColdReadIo::Buffered => None,
                    });
                }
                let source = match direct.as_ref().and_then(Option::as_ref) {
                    Some(direct) => ColdSource::Direct(direct.clone()),
                    None => ColdSource::Buffered(file.clone()),
                };
                let spare = self.spare_buffer();
                reads.push_back(compio::runtime::spawn(read_cold(
                    source, at, chunk_len, spare, budget,
                )));
                at += chunk_len;
            }
            match reads.pop_front() {
                Some(read) => {
                    let chunk = match read.await {
                        Ok(chunk) => chunk?,
                        Err(JoinError::Panicked(panic)) => std::panic::resume_unwind(panic),
                        Err(JoinError::Cancelled) => {
                            return Err(io::Error::other("cold read cancelled"))
                        }
                    };
                    let buffer = write_cold(socket, file, chunk).await?;
                    self.reuse_buffer(buffer);
                }
                None if at < end => {
                    // The next chunk is hot (a cold one would have been started above).
                    let chunk_len = chunk_end(at, end, page_bytes()) - at;
                    send_file_range(&self.pipe, file, at, chunk_len, socket).await?;
                    HOT_BYTES_TOTAL.fetch_add(chunk_len, Ordering::Relaxed);
                    at += chunk_len;
                }
                None => return Ok(()),
            }
        }
    }

    /// A buffer for the next cold read: a kept one if there is one (warm pages), else empty.
    fn spare_buffer(&mut self) -> Vec<u8> {
        self.cold_buffers.pop().unwrap_or_default()
    }

    /// Keeps a written chunk's buffer for the next read, up to [`COLD_CHUNKS_IN_MEMORY_MAX`].
    fn reuse_buffer(&mut self, buffer: Vec<u8>) {
        assert!(buffer.capacity() <= COLD_BUFFER_BYTES_MAX);
        if self.cold_buffers.len() < COLD_CHUNKS_IN_MEMORY_MAX {
            self.cold_buffers.push(buffer);
        }
    }
}

/// Where a cold chunk is read from.
enum ColdSource {
    /// The segment opened with `O_DIRECT`.
    Direct(compio::fs::File),
    /// The segment itself, through the page cache (pages dropped once written).
    Buffered(compio::fs::File),
}

/// Opens `file` for direct reads; `None` (buffered reads, counted and logged once) if its file
/// system refuses `O_DIRECT`.
async fn open_direct_or_refused(file: &compio::fs::File) -> io::Result<Option<compio::fs::File>> {
    let direct = open_direct(file).await?;
    if direct.is_none() && DIRECT_REFUSED_TOTAL.fetch_add(1, Ordering::Relaxed) == 0 {
        tracing::warn!(
            "a data dir's file system refuses O_DIRECT; its cold reads go through the page cache"
        );
    }
    Ok(direct)
}

/// A cold chunk read into memory and not yet written.
struct ColdChunk {
    position: u64,
    /// The chunk's bytes are `buffer[bytes]`.
    buffer: Vec<u8>,
    bytes: Range<usize>,
    /// Read through the page cache: its pages are dropped once written.
    buffered: bool,
    _in_progress: ColdReadInProgress,
    _budget: ReadAheadPermit,
}

/// Reads `[position, position + len)` from `source` into `buffer`, without readahead.
async fn read_cold(
    source: ColdSource,
    position: u64,
    len: u64,
    mut buffer: Vec<u8>,
    budget: ReadAheadPermit,
) -> io::Result<ColdChunk> {
    let len_bytes = usize::try_from(len).expect("a chunk is at most COLD_CHUNK_BYTES_MAX");
    assert!(len_bytes <= COLD_CHUNK_BYTES_MAX);
    let in_progress = ColdReadInProgress::enter();
    let started = Instant::now();
    // A file shorter than its plan fails with UnexpectedEof, as the splice path does.
    let (buffer, bytes, buffered) = match source {
        ColdSource::Direct(direct) => {
            let (buffer, bytes) = read_direct(&direct, position, len_bytes, buffer).await?;
            (buffer, bytes, false)
        }
        ColdSource::Buffered(file) => {
            // Per open file, cheap and idempotent: the read below brings in only its own pages.
            advise(&file, 0, 0, Advice::Random).await?;
            buffer.clear();
            buffer.reserve_exact(len_bytes);
            let BufResult(result, slice) = file
                .read_exact_at(buffer.slice(0..len_bytes), position)
                .await;
            let buffer = slice.into_inner();
            result?;
            (buffer, 0..len_bytes, true)
        }
    };
    assert_eq!(bytes.len(), len_bytes, "a cold read fills its chunk");
    COLD_READ_WAIT.record(started.elapsed());
    #[cfg(debug_assertions)]
    test_hook::hold().await;
    Ok(ColdChunk {
        position,
        buffer,
        bytes,
        buffered,
        _in_progress: in_progress,
        _budget: budget,
    })
}

/// Writes a cold chunk to the socket, then drops its pages if it was read buffered; returns its
/// buffer.
async fn write_cold(
    socket: &mut TcpStream,
    file: &compio::fs::File,
    chunk: ColdChunk,
) -> io::Result<Vec<u8>> {
    let ColdChunk {
        position,
        buffer,
        bytes,
        buffered,
        _in_progress,
        _budget,
    } = chunk;
    let len = bytes.len() as u64;
    let BufResult(result, slice) = socket.write_all(buffer.slice(bytes)).await;
    let buffer = slice.into_inner();
    result?;
    COLD_BYTES_TOTAL.fetch_add(len, Ordering::Relaxed);
    if !buffered {
        COLD_DIRECT_BYTES_TOTAL.fetch_add(len, Ordering::Relaxed);
        return Ok(buffer);
    }

    // Whole pages inside the chunk only: a partial page at a range's edge also holds bytes of a
    // neighbouring batch, which another reader may be using. Chunk ends inside a range are
    // page-aligned, so at most two pages per range stay.
    let page = page_bytes();
    let drop_from = position.div_ceil(page) * page;
    let drop_to = (position + len) / page * page;
    if drop_to > drop_from {
        if let Err(error) = advise(file, drop_from, drop_to - drop_from, Advice::DontNeed).await {
            // The bytes went out; only the page cache bound is missed this once.
            tracing::debug!(%error, "dropping a cold chunk's pages failed");
        }
    }
    Ok(buffer)
}

/// Where the chunk starting at `at` ends: at `end` if that is within [`COLD_CHUNK_BYTES_MAX`],
/// else at the last page boundary within it (so chunks after the first are page-aligned and
/// their pages can be dropped whole).
fn chunk_end(at: u64, end: u64, page_bytes: u64) -> u64 {
    assert!(at < end);
    let limit = at + COLD_CHUNK_BYTES_MAX as u64;
    if end <= limit {
        return end;
    }
    let aligned = limit / page_bytes * page_bytes;
    assert!(aligned > at, "a chunk holds more than one page");
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

static READ_AHEAD_BYTES_IN_USE: AtomicU64 = AtomicU64::new(0);

/// A cold chunk's share of [`COLD_READ_AHEAD_BYTES_MAX`], given back when dropped (once the
/// chunk is written, or its read cancelled).
struct ReadAheadPermit {
    bytes: u64,
}

impl ReadAheadPermit {
    /// For a connection's first chunk in flight, which is always allowed.
    fn free() -> Self {
        Self { bytes: 0 }
    }

    /// `bytes` of the budget, if that much is left.
    fn take(bytes: u64) -> Option<Self> {
        READ_AHEAD_BYTES_IN_USE
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |in_use| {
                in_use
                    .checked_add(bytes)
                    .filter(|&total| total <= COLD_READ_AHEAD_BYTES_MAX)
            })
            .ok()
            .map(|_| Self { bytes })
    }
}

impl Drop for ReadAheadPermit {
    fn drop(&mut self) {
        READ_AHEAD_BYTES_IN_USE.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Counts a cold read as in progress until dropped (also when the send is cancelled).
struct ColdReadInProgress;

impl ColdReadInProgress {
    fn enter() -> Self {
        COLD_READS_IN_PROGRESS.fetch_add(1, Ordering::Relaxed);
        Self
    }
}

impl Drop for ColdReadInProgress {
    fn drop(&mut self) {
        COLD_READS_IN_PROGRESS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Appends this module's series to the `/metrics` text.
pub fn render_metrics(out: &mut String) {
    use std::fmt::Write as _;
    for (name, help, kind, value) in [
        (
            "fetch_hot_bytes_total",
            "Fetch record bytes found in the page cache and spliced (residency check on).",
            "counter",
            HOT_BYTES_TOTAL.load(Ordering::Relaxed),
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
            "fetch_cold_reads_in_progress",
            "Cold chunks being read or sent now.",
            "gauge",
            COLD_READS_IN_PROGRESS.load(Ordering::Relaxed),
        ),
        (
            "fetch_cold_read_ahead_bytes",
            "Bytes of cold chunks read ahead of the one being written, all connections (bounded).",
            "gauge",
            READ_AHEAD_BYTES_IN_USE.load(Ordering::Relaxed),
        ),
        (
            "fetch_residency_check_failures_total",
            "Residency checks that failed (ranges then spliced unchecked).",
            "counter",
            CHECK_FAILURES_TOTAL.load(Ordering::Relaxed),
        ),
        (
            "fetch_cold_direct_refused_total",
            "Segments whose file system refused O_DIRECT (their cold chunks then read buffered).",
            "counter",
            DIRECT_REFUSED_TOTAL.load(Ordering::Relaxed),
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP ringtail_{name} {help}\n# TYPE ringtail_{name} {kind}\nringtail_{name} {value}"
        );
    }
    crate::histogram::render_family(
        out,
        "ringtail_fetch_cold_read_wait_seconds",
        "From a cold chunk's read until its bytes are in memory.",
        &[("", &COLD_READ_WAIT)],
    );
    crate::histogram::render_family(
        out,
        "ringtail_fetch_residency_check_seconds",
        "Cost of one page-cache residency check (cachestat).",
        &[("", &CHECK_COST)],
    );
}

/// Test builds only (debug assertions on): holds every cold chunk, after its bytes are in memory
/// and before they are written, until the file named by `RINGTAIL_TEST_HOLD_COLD_READS` exists.
/// A test can so keep a cold fetch unanswered for as long as it likes and show by the order of
/// responses that the shard serves other requests meanwhile. Release builds never read the
/// variable.
#[cfg(debug_assertions)]
mod test_hook {
    use std::path::PathBuf;
    use std::sync::OnceLock;
    use std::time::Duration;

    const HOLD_ENV: &str = "RINGTAIL_TEST_HOLD_COLD_READS";
    /// How often a held read looks for the release file (an async sleep: the shard runs on).
    const POLL: Duration = Duration::from_millis(5);

    pub(super) async fn hold() {
        static RELEASE_FILE: OnceLock<Option<PathBuf>> = OnceLock::new();
        let Some(release) =
            RELEASE_FILE.get_or_init(|| std::env::var_os(HOLD_ENV).map(PathBuf::from))
        else {
            return;
        };
        while !release.exists() {
            compio::time::sleep(POLL).await;
        }
    }
}

// The tests' lock is held across awaits on purpose: each compio test runs its own runtime on its
// own thread, and the lock orders those threads, not tasks of one runtime.
#[cfg(test)]
#[allow(clippy::await_holding_lock)]
mod tests {
    use super::*;

    use std::io::Write;

    use compio::io::AsyncReadExt;
    use compio::net::TcpListener;

    #[test]
    fn chunks_end_on_page_boundaries_within_the_limit() {
        let page = 4096;
        let max = COLD_CHUNK_BYTES_MAX as u64;
        assert_eq!(chunk_end(0, 10, page), 10);
        assert_eq!(chunk_end(100, 100 + max, page), 100 + max);
        assert_eq!(chunk_end(100, 101 + max, page), max);
        assert_eq!(chunk_end(max, 3 * max, page), 2 * max);
        // Walking a long unaligned range: every chunk within the limit, covering it exactly.
        let (start, end) = (12_345u64, 12_345 + 5 * max + 777);
        let mut at = start;
        let mut chunks = 0;
        while at < end {
            let next = chunk_end(at, end, page);
            assert!(next > at && next - at <= max);
            assert!(next == end || next.is_multiple_of(page));
            at = next;
            chunks += 1;
        }
        assert_eq!((at, chunks), (end, 6));
    }

    /// Non-repeating contents, so bytes from a wrong offset cannot compare equal.
    fn contents(len: usize) -> Vec<u8> {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    /// The read-ahead budget is one per process: tests that spend it or count on it take turns.
    static BUDGET_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn take_turn() -> std::sync::MutexGuard<'static, ()> {
        BUDGET_TESTS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A file of `len` non-repeating bytes in `dir`, on disk and not in the page cache.
    async fn evicted_file(dir: &std::path::Path, len: usize) -> (Vec<u8>, compio::fs::File) {
        let path = dir.join("segment.log");
        let data = contents(len);
        let mut writer = std::fs::File::create(&path).unwrap();
        writer.write_all(&data).unwrap();
        writer.sync_all().unwrap();
        ringtail_engine::io::drop_cached_file_blocking(&writer).unwrap();
        (data, compio::fs::File::open(&path).await.unwrap())
    }

    /// A connected pair over loopback: the client, and the broker's side.
    async fn socket_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    /// Reads `len` bytes on `client` in a task of its own.
    fn receive(mut client: TcpStream, len: usize) -> JoinHandle<Vec<u8>> {
        compio::runtime::spawn(async move {
            let BufResult(result, received) = client.read_exact(vec![0u8; len]).await;
            result.unwrap();
            received
        })
    }

    fn sender(cold_read_io: ColdReadIo) -> RangeSender {
        RangeSender::new(SendPolicy {
            check: ResidencyCheck::On,
            cold_reads_in_flight: COLD_READS_IN_FLIGHT_DEFAULT,
            cold_read_io,
        })
        .unwrap()
    }

    #[compio::test]
    async fn cold_ranges_read_direct_arrive_byte_for_byte_and_stay_out_of_the_page_cache() {
        let direct_before = COLD_DIRECT_BYTES_TOTAL.load(Ordering::Relaxed);
        let cold_bytes = send_a_partly_cached_range(ColdReadIo::Direct).await;
        assert!(
            COLD_DIRECT_BYTES_TOTAL.load(Ordering::Relaxed) - direct_before >= cold_bytes,
            "the cold chunks were read with O_DIRECT"
        );
    }

    #[compio::test]
    async fn cold_ranges_read_buffered_arrive_byte_for_byte_and_leave_the_page_cache() {
        send_a_partly_cached_range(ColdReadIo::Buffered).await;
    }

    /// A cold range partly cached goes out in order (hot chunks spliced, cold ones from memory),
    /// and afterwards the pages read cold are not cached. Returns the cold bytes sent.
    async fn send_a_partly_cached_range(cold_read_io: ColdReadIo) -> u64 {
        let _turn = take_turn();
        let dir = tempfile::tempdir().unwrap();
        let file_len = 3 * COLD_CHUNK_BYTES_MAX + 5_000;
        let (data, file) = evicted_file(dir.path(), file_len).await;
        // The second MiB is hot (read in before), the rest cold.
        let mb = COLD_CHUNK_BYTES_MAX as u64;
        advise(&file, 0, 0, Advice::Random).await.unwrap();
        ringtail_engine::io::read_at_most(&file, mb, COLD_CHUNK_BYTES_MAX)
            .await
            .unwrap();

        let (client, mut server) = socket_pair().await;
        let (position, len) = (7u64, file_len as u64 - 7);
        let reader = receive(client, len as usize);
        let (hot_before, cold_before) = (
            HOT_BYTES_TOTAL.load(Ordering::Relaxed),
            COLD_BYTES_TOTAL.load(Ordering::Relaxed),
        );
        let mut sender = sender(cold_read_io);
        sender
            .send(&file, position, len, &mut server)
            .await
            .unwrap();
        let received = reader.await.unwrap();

        assert!(
            received[..] == data[7..],
            "bytes differ from the file range"
        );
        // Other tests of this process may add to the counters, never subtract.
        assert!(HOT_BYTES_TOTAL.load(Ordering::Relaxed) - hot_before >= mb);
        assert!(COLD_BYTES_TOTAL.load(Ordering::Relaxed) - cold_before >= len - mb);
        assert!(sender.cold_buffers.len() <= COLD_CHUNKS_IN_MEMORY_MAX);
        assert!(sender
            .cold_buffers
            .iter()
            .all(|buffer| buffer.capacity() <= COLD_BUFFER_BYTES_MAX));
        let page = page_bytes();
        let cold_tail =
            range_residency(&file, 2 * mb, file_len as u64 / page * page - 2 * mb).unwrap();
        assert_eq!(cold_tail.cached_pages, 0, "cold chunks are not cached");
        assert!(
            range_residency(&file, mb, mb).unwrap().is_resident(),
            "hot chunk kept"
        );
        assert_eq!(
            READ_AHEAD_BYTES_IN_USE.load(Ordering::Relaxed),
            0,
            "every chunk read ahead gave its budget back"
        );
        len - mb
    }

    #[compio::test]
    async fn a_cold_range_goes_out_whole_with_the_read_ahead_budget_spent() {
        // Other connections hold the whole budget: this one reads one chunk at a time, and its
        // bytes still all arrive, in order.
        let _turn = take_turn();
        let spent = ReadAheadPermit::take(COLD_READ_AHEAD_BYTES_MAX).expect("the budget is free");
        assert!(ReadAheadPermit::take(1).is_none(), "nothing left");
        let dir = tempfile::tempdir().unwrap();
        let file_len = 4 * COLD_CHUNK_BYTES_MAX + 123;
        let (data, file) = evicted_file(dir.path(), file_len).await;
        let (client, mut server) = socket_pair().await;
        let reader = receive(client, file_len);
        sender(ColdReadIo::Direct)
            .send(&file, 0, file_len as u64, &mut server)
            .await
            .unwrap();
        assert!(reader.await.unwrap() == data, "bytes differ from the file");
        assert_eq!(
            READ_AHEAD_BYTES_IN_USE.load(Ordering::Relaxed),
            COLD_READ_AHEAD_BYTES_MAX,
            "a connection's first read takes nothing from the budget"
        );
        drop(spent);
        assert_eq!(READ_AHEAD_BYTES_IN_USE.load(Ordering::Relaxed), 0);
    }

    #[compio::test]
    async fn a_cold_range_past_the_end_of_the_file_is_an_error() {
        let _turn = take_turn();
        // A plan naming bytes the file does not have (truncated on disk) must fail the send,
        // not hang or send garbage; the reads started after the failing one are cancelled.
        let dir = tempfile::tempdir().unwrap();
        let (_, file) = evicted_file(dir.path(), 10_000).await;
        for cold_read_io in [ColdReadIo::Direct, ColdReadIo::Buffered] {
            let (_client, mut server) = socket_pair().await;
            let error = sender(cold_read_io)
                .send(&file, 5_000, 3 * COLD_CHUNK_BYTES_MAX as u64, &mut server)
                .await
                .unwrap_err();
            assert_eq!(
                error.kind(),
                io::ErrorKind::UnexpectedEof,
                "{cold_read_io:?}"
            );
        }
        // The cancelled reads give their budget back once the runtime has dropped them.
        for _ in 0..500 {
            if READ_AHEAD_BYTES_IN_USE.load(Ordering::Relaxed) == 0 {
                break;
            }
            compio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(READ_AHEAD_BYTES_IN_USE.load(Ordering::Relaxed), 0);
    }
}
