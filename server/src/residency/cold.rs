//! A cold chunk's life: read into a buffer (direct or buffered) charged to the process-wide
//! cold read memory budget ([`super::memory`]), written to the socket, its pages dropped if it
//! was buffered.
#![forbid(unsafe_code)]

use std::io;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::time::Instant;

use compio::buf::{IntoInner, IoBuf};
use compio::io::AsyncWriteExt;
use compio::net::TcpStream;
use compio::BufResult;
use ringtail_engine::io::{advise, page_bytes, read_at_priority_holding, Advice, IoPriority};

use super::direct::{open_direct, read_direct};
use super::memory::MemoryPermit;
use super::metrics::{
    BUFFERED_OPENS_FAILED_TOTAL, COLD_BYTES_TOTAL, COLD_DIRECT_BYTES_TOTAL, COLD_READS_IN_PROGRESS,
    COLD_READ_WAIT, COLD_SENDER_YIELDS_TOTAL, DIRECT_REFUSED_TOTAL,
};
use super::sender::{send_on_sender_thread, ColdSendThread};
use super::COLD_READ_BYTES_MAX;

/// Where a cold chunk is read from.
pub(super) enum ColdSource {
    /// The segment opened with `O_DIRECT` (`direct`), and as the engine opened it (`file`), for
    /// a buffered read should the direct one be refused.
    Direct {
        direct: compio::fs::File,
        file: compio::fs::File,
        /// The block-layer priority of the direct reads.
        priority: super::ColdReadPriority,
    },
    /// The segment through the page cache (pages dropped once written), opened by
    /// [`open_for_buffered_reads`].
    Buffered(compio::fs::File),
}

/// Opens `file` again for cold reads through the page cache, advised `POSIX_FADV_RANDOM` so a
/// chunk's read brings in only its own pages, which are dropped once written. A descriptor of
/// its own, because the advice holds for the open file: set on the segment's shared one, it
/// would also take readahead from the splices and the engine's reads of the same segment. If
/// the open or the advice fails, the shared descriptor, unadvised: readahead may then leave a
/// few pages past a chunk cached (logged once).
pub(super) async fn open_for_buffered_reads(file: &compio::fs::File) -> compio::fs::File {
    let opened = async {
        if let Some(error) = injected_failure(Injected::BufferedOpen) {
            return Err(error);
        }
        let path = format!("/proc/self/fd/{}", file.as_raw_fd());
        let own = compio::fs::OpenOptions::new()
            .read(true)
            .open(&path)
            .await?;
        advise(&own, 0, 0, Advice::Random).await?;
        io::Result::Ok(own)
    };
    match opened.await {
        Ok(own) => own,
        Err(error) => {
            if BUFFERED_OPENS_FAILED_TOTAL.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::warn!(
                    %error,
                    "cold reads through the page cache share the segment's descriptor, with readahead"
                );
            }
            file.clone()
        }
    }
}

/// Opens `file` for direct reads; `None` if that fails (its file system refuses `O_DIRECT`, or
/// the open itself fails: out of descriptors, no `/proc`). Cold reads then go through the page
/// cache: a fetch never fails for want of a direct descriptor. Counted, logged once.
pub(super) async fn open_direct_or_refused(file: &compio::fs::File) -> Option<compio::fs::File> {
    let opened = match injected_failure(Injected::Open) {
        Some(error) => Err(error),
        None => open_direct(file).await,
    };
    match opened {
        Ok(direct) => Some(direct),
        Err(error) => {
            direct_refused("at open", &error);
            None
        }
    }
}

/// Which cold read operation a unit test makes fail.
#[derive(Clone, Copy)]
enum Injected {
    Open,
    Read,
    BufferedOpen,
}

/// The failure a unit test asked for on its thread (EMFILE for opens, as with no descriptor
/// left; EINVAL for direct reads, as a file system refusing them); always `None` outside unit
/// tests.
fn injected_failure(which: Injected) -> Option<io::Error> {
    #[cfg(test)]
    {
        let (knob, errno) = match which {
            Injected::Open => (&REFUSE_DIRECT_OPENS, libc::EMFILE),
            Injected::Read => (&REFUSE_DIRECT_READS, libc::EINVAL),
            Injected::BufferedOpen => (&REFUSE_BUFFERED_OPENS, libc::EMFILE),
        };
        knob.with(std::cell::Cell::get)
            .then(|| io::Error::from_raw_os_error(errno))
    }
    #[cfg(not(test))]
    {
        let _ = which;
        None
    }
}

#[cfg(test)]
thread_local! {
    /// Unit tests: direct reads on this thread fail as a file system refusing them would.
    pub(super) static REFUSE_DIRECT_READS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Unit tests: direct opens on this thread fail as with no descriptor left.
    pub(super) static REFUSE_DIRECT_OPENS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Unit tests: buffered cold reads' own opens on this thread fail as with no descriptor left.
    pub(super) static REFUSE_BUFFERED_OPENS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Counts a direct open or read that failed or was refused (then buffered reads), logged the
/// first time.
fn direct_refused(when: &str, error: &io::Error) {
    if DIRECT_REFUSED_TOTAL.fetch_add(1, Ordering::Relaxed) == 0 {
        tracing::warn!(
            when,
            %error,
            "an O_DIRECT cold read failed; such reads go through the page cache"
        );
    }
}

/// A cold chunk read into memory and not yet written.
pub(super) struct ColdChunk {
    position: u64,
    /// The chunk's bytes are `buffer[bytes]`.
    buffer: Vec<u8>,
    bytes: Range<usize>,
    /// Read through the page cache: its pages are dropped once written.
    buffered: bool,
    _in_progress: ColdReadInProgress,
    _budget: MemoryPermit,
}

/// Reads `[position, position + len)` from `source` into `buffer`, without readahead.
pub(super) async fn read_cold(
    source: ColdSource,
    position: u64,
    len: u64,
    buffer: Vec<u8>,
    budget: MemoryPermit,
) -> io::Result<ColdChunk> {
    let len_bytes = usize::try_from(len).expect("a chunk is at most COLD_READ_BYTES_MAX");
    assert!(len_bytes <= COLD_READ_BYTES_MAX);
    // Before the read is counted or timed: the disk's wait is measured without the pace's.
    super::pace::wait_for_turn(len).await;
    let in_progress = ColdReadInProgress::enter();
    let started = Instant::now();
    // A file shorter than its plan fails with UnexpectedEof, as the splice path does. The
    // budget and the in-progress count go into each read and back: a read dropped in flight
    // (its fetch cut short, its client gone) keeps its charge, and is counted, until the kernel
    // lets go of the buffer.
    let held = (budget, in_progress);
    let (buffer, bytes, buffered, (budget, in_progress)) = match source {
        ColdSource::Direct {
            direct,
            file,
            priority,
        } => {
            let priority = priority.io_priority();
            let (direct_read, held) = match injected_failure(Injected::Read) {
                Some(error) => (Err(error), held),
                None => read_direct(&direct, position, len_bytes, buffer, priority, held).await,
            };
            match direct_read {
                Ok((buffer, bytes)) => (buffer, bytes, false, held),
                // A file system may take the open and refuse the read (alignment it wants
                // larger than 4 KiB, or none at all): this chunk is read buffered instead, from
                // the segment's shared descriptor (readahead on: a rare case, not worth an open).
                Err(error) if error.raw_os_error() == Some(libc::EINVAL) => {
                    direct_refused("at read", &error);
                    let (buffer, held) =
                        read_buffered(&file, position, len_bytes, Vec::new(), held).await?;
                    (buffer, 0..len_bytes, true, held)
                }
                Err(error) => return Err(error),
            }
        }
        ColdSource::Buffered(file) => {
            let (buffer, held) = read_buffered(&file, position, len_bytes, buffer, held).await?;
            (buffer, 0..len_bytes, true, held)
        }
    };
    assert_eq!(bytes.len(), len_bytes, "a cold read fills its chunk");
    // The budget bounds memory only if no buffer holds more than its chunk was charged.
    assert!(
        buffer.capacity() as u64 <= budget.bytes(),
        "a cold buffer of {} bytes within its charge of {}",
        buffer.capacity(),
        budget.bytes()
    );
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

/// Reads `len_bytes` from `position` of `file` through the page cache into `buffer`; `held` is
/// kept with the buffer while the kernel has it (see [`read_direct`]).
async fn read_buffered<H: 'static>(
    file: &compio::fs::File,
    position: u64,
    len_bytes: usize,
    mut buffer: Vec<u8>,
    mut held: H,
) -> io::Result<(Vec<u8>, H)> {
    // Zeroed only where a reused buffer is too short: the read overwrites what it needs.
    if buffer.len() < len_bytes {
        // Exactly: a spare buffer's capacity stays within COLD_BUFFER_BYTES_MAX.
        buffer.reserve_exact(len_bytes - buffer.len());
        buffer.resize(len_bytes, 0);
    }
    let mut done = 0;
    while done < len_bytes {
        let (result, returned, given_back) = read_at_priority_holding(
            file,
            buffer,
            done..len_bytes,
            position + done as u64,
            IoPriority::Default,
            held,
        )
        .await;
        (buffer, held) = (returned, given_back);
        match result? {
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "segment shorter than its fetched range",
                ))
            }
            read => done += read,
        }
    }
    Ok((buffer, held))
}

/// Writes a cold chunk to the socket, then drops its pages if it was read buffered; returns its
/// buffer.
pub(super) async fn write_cold(
    socket: &mut TcpStream,
    file: &compio::fs::File,
    chunk: ColdChunk,
    send_thread: ColdSendThread,
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
    let buffer = match send_thread {
        ColdSendThread::Shard => {
            write_in_pieces(socket, buffer, bytes, BetweenPieces::GoOn).await?
        }
        ColdSendThread::Sender(priority) => {
            let held = Box::new((_in_progress, _budget));
            send_on_sender_thread(socket, buffer, bytes, held, priority).await?
        }
    };
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

/// Writes `bytes` of `buffer` to `socket` at most [`COLD_SEND_PIECE_BYTES`] per write; returns
/// the buffer. Why pieces: io_uring first tries a send inline, in the shard's own submission,
/// and over loopback that copies the whole piece into the socket and runs the receiver's TCP
/// processing before the shard can do anything else. A 4 MiB chunk held the shard (and every
/// Produce it owns) for a millisecond or more; a piece of 256 KiB for a sixteenth of that.
/// With [`BetweenPieces::YieldTheCore`] the thread also offers its core to any other runnable
/// thread after each piece (see [`BetweenPieces`]).
pub(super) async fn write_in_pieces(
    socket: &mut TcpStream,
    mut buffer: Vec<u8>,
    bytes: Range<usize>,
    between_pieces: BetweenPieces,
) -> io::Result<Vec<u8>> {
    let mut at = bytes.start;
    while at < bytes.end {
        let end = bytes.end.min(at + COLD_SEND_PIECE_BYTES);
        let BufResult(result, slice) = socket.write_all(buffer.slice(at..end)).await;
        buffer = slice.into_inner();
        result?;
        at = end;
        if between_pieces == BetweenPieces::YieldTheCore && at < bytes.end {
            COLD_SENDER_YIELDS_TOTAL.fetch_add(1, Ordering::Relaxed);
            std::thread::yield_now();
        }
    }
    Ok(buffer)
}

/// What a cold chunk's writer does between two pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BetweenPieces {
    /// Goes on: a shard's own thread, which has its requests to serve.
    GoOn,
    /// `sched_yield`: a cold sender thread, whose priority alone does not keep it out of a
    /// shard's way. Its loopback sends rarely sleep, and the scheduler (EEVDF) weighs which
    /// runnable thread runs next only at scheduling events: a shard thread woken with a
    /// negative lag, not yet eligible, waited behind a `SCHED_IDLE` sender until the next tick,
    /// 4 ms at HZ=250 (results/cold-send-thread/, the yield section). A yield is such an event:
    /// the sender's runtime is counted and the shard, eligible by then, runs. About 4,000
    /// yields a second per GB/s, a microsecond each.
    YieldTheCore,
}

/// The most of a cold chunk one socket write sends (see [`write_in_pieces`]).
pub(super) const COLD_SEND_PIECE_BYTES: usize = 256 << 10;

/// Counts a cold read as in progress until dropped (also when the send is cancelled, and not
/// before the kernel is done with a read dropped in flight).
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
