//! Cold chunks written to their sockets by a thread of lower priority than the shard's
//! (`--fetch-cold-send-priority`), so a catch-up reader's sends do not hold the core that the
//! shard's produce writes need.
//!
//! Why: a cold chunk is written from memory, and over loopback each socket write also runs the
//! receiver's TCP processing. On the shard's thread that held its core for up to 1.6 ms at a
//! stretch beside a catch-up reader, and the io-wq worker copying a produce batch into the page
//! cache, pinned to the same core, waited for it: 54-73% of the wait of slow produce writes
//! (results/cold-write-waits/). Here each shard hands its cold chunks to a sender thread of its
//! own, with an io_uring of its own, at a lower priority (`SCHED_IDLE`, or a nice value) and
//! free to run on any core the process may use (a thread starts with its creator's affinity,
//! and the shard's is one core). The shard goes back to its requests at once, and a produce
//! write's worker woken where the sender runs takes the core at the sender's next system call.
//!
//! How: the shard sends the chunk's buffer with a duplicate of the socket's descriptor (its own
//! reference to the socket, so the connection closing its descriptor meanwhile cannot send the
//! bytes elsewhere) and awaits the buffer back. The sender writes it in the same pieces as the
//! shard would ([`super::cold::write_in_pieces`]), and yields its core after each piece: at
//! `SCHED_IDLE` alone it still held a core for up to a scheduler tick (4 ms here) while a shard
//! thread waited ([`BetweenPieces::YieldTheCore`]). A write the shard stops waiting for (its
//! client gone, the broker stopping) is cancelled at once. Responses of one connection stay in
//! order: its writer awaits each chunk before it writes anything else. If the sender thread
//! cannot be started (no thread, or no io_uring for it), or has stopped, the shard writes the
//! chunk itself (logged once, counted in `ringtail_fetch_cold_sender_fallback_chunks_total`).
//!
//! # Invariants
//! - A chunk's bytes go out whole and in order, or the connection gets the error.
//! - A chunk's budget charge and in-progress count are held until its write ends or is
//!   cancelled; as on the shard's own thread, a cancelled write's buffer may stay with the
//!   kernel a moment after its charge is given back.
#![forbid(unsafe_code)]

use std::cell::OnceCell;
use std::io;
use std::ops::Range;
use std::os::fd::{AsFd, OwnedFd};

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};

use compio::net::TcpStream;
use futures_channel::oneshot;
use futures_util::future::{select, Either};
use futures_util::FutureExt;

use super::cold::BetweenPieces;
use super::metrics::{COLD_SENDER_BYTES_TOTAL, COLD_SENDER_FALLBACK_CHUNKS_TOTAL};

/// How a shard writes its cold chunks (`--fetch-cold-send-priority`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColdSendThread {
    /// On the shard's own thread, as every other write.
    Shard,
    /// On a sender thread of the shard's.
    Sender(SenderPriority),
}

/// The scheduling priority of a shard's cold sender thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderPriority {
    /// `SCHED_IDLE`: it runs only when no thread of a normal policy wants its core.
    Idle,
    /// `SCHED_OTHER` at this nice value (0 to 19; higher is lower priority).
    Nice(i32),
}

/// The highest nice value (the lowest priority) Linux gives a thread.
pub const COLD_SEND_NICE_MAX: i32 = 19;

/// `--fetch-cold-send-priority`: `shard` (the shard's own thread), `idle` (a sender thread per
/// shard at `SCHED_IDLE`) or a nice value of 0 to [`COLD_SEND_NICE_MAX`] for the sender thread.
/// Below 0 needs privileges a broker should not need, so it is refused rather than tried.
pub fn parse_cold_send_priority(value: &str) -> Result<ColdSendThread, String> {
    match value {
        "shard" => return Ok(ColdSendThread::Shard),
        "idle" => return Ok(ColdSendThread::Sender(SenderPriority::Idle)),
        _ => {}
    }
    let nice: i32 = value.parse().map_err(|_| {
        format!("{value:?} is none of `shard`, `idle` or a nice value of 0 to {COLD_SEND_NICE_MAX}")
    })?;
    if !(0..=COLD_SEND_NICE_MAX).contains(&nice) {
        return Err(format!("nice {nice} is outside 0 to {COLD_SEND_NICE_MAX}"));
    }
    Ok(ColdSendThread::Sender(SenderPriority::Nice(nice)))
}

/// One chunk for the sender: `buffer[bytes]` to the socket `fd`; `held` is dropped once the
/// write ends.
pub(super) struct Job {
    fd: OwnedFd,
    buffer: Vec<u8>,
    bytes: Range<usize>,
    held: Box<dyn Send>,
    done: oneshot::Sender<io::Result<Vec<u8>>>,
}

thread_local! {
    /// This shard's sender thread, started at its first cold chunk (`None`: it could not be).
    static SENDER: OnceCell<Option<flume::Sender<Job>>> = const { OnceCell::new() };
}

/// Set once the shard had to write a chunk itself for want of its sender thread (logged once).
static SENDER_MISSED: AtomicBool = AtomicBool::new(false);

/// Writes `buffer[bytes]` to `socket` on this shard's sender thread (started at `priority` by
/// its first chunk), or on the shard if there is none; returns the buffer. `held` (the chunk's
/// budget charge) lives until the write ends or, if this future is dropped, is cancelled.
pub(super) async fn send_on_sender_thread(
    socket: &mut TcpStream,
    buffer: Vec<u8>,
    bytes: Range<usize>,
    held: Box<dyn Send>,
    priority: SenderPriority,
) -> io::Result<Vec<u8>> {
    let jobs = SENDER.with(|sender| sender.get_or_init(|| start_sender(priority)).clone());
    send_or_write_here(jobs, socket, buffer, bytes, held).await
}

/// Hands the chunk to the sender thread behind `jobs`, or writes it on this thread when there
/// is none (`None`: it could not be started) or it has stopped (its queue closed).
pub(super) async fn send_or_write_here(
    jobs: Option<flume::Sender<Job>>,
    socket: &mut TcpStream,
    buffer: Vec<u8>,
    bytes: Range<usize>,
    held: Box<dyn Send>,
) -> io::Result<Vec<u8>> {
    let fd = socket.as_fd().try_clone_to_owned()?;
    let (done, result) = oneshot::channel();
    let job = Job {
        fd,
        buffer,
        bytes,
        held,
        done,
    };
    let refused = match jobs {
        Some(jobs) => match jobs.send_async(job).await {
            Ok(()) => {
                return result
                    .await
                    .map_err(|_| io::Error::other("the cold sender thread dropped a chunk"))?
            }
            Err(flume::SendError(job)) => job,
        },
        None => job,
    };
    COLD_SENDER_FALLBACK_CHUNKS_TOTAL.fetch_add(1, Ordering::Relaxed);
    if !SENDER_MISSED.swap(true, Ordering::Relaxed) {
        tracing::error!("a cold sender thread is missing; its shard writes cold chunks itself");
    }
    let Job {
        buffer,
        bytes,
        held,
        ..
    } = refused;
    let buffer = super::cold::write_in_pieces(socket, buffer, bytes, BetweenPieces::GoOn).await;
    drop(held);
    buffer
}

/// Starts a sender thread at `priority`, free to run on every core the process may use; it
/// stops once its shard's handle to it is gone. `None` (logged) if no thread can be started.
fn start_sender(priority: SenderPriority) -> Option<flume::Sender<Job>> {
    start_sender_with(priority, compio::runtime::Runtime::new)
}

/// [`start_sender`] with the sender's runtime made by `new_runtime`. Returns only once the
/// thread has its runtime (or has failed to make one: `None`), so that no chunk is queued for
/// a thread about to stop: a queue that outlives its receiver keeps its chunks, and their
/// writers would wait forever. The shard waits for this once, at its first cold chunk.
pub(super) fn start_sender_with(
    priority: SenderPriority,
    new_runtime: fn() -> io::Result<compio::runtime::Runtime>,
) -> Option<flume::Sender<Job>> {
    let (jobs, incoming) = flume::bounded::<Job>(SENDER_QUEUE_CHUNKS_MAX);
    let (started, has_runtime) = std::sync::mpsc::sync_channel::<bool>(1);
    let spawned = std::thread::Builder::new()
        .name("cold-sender".into())
        .spawn(move || {
            if let Err(error) = take_the_process_cpus() {
                tracing::warn!(%error, "the cold sender thread stays on its shard's cores");
            }
            let lowered = match priority {
                SenderPriority::Idle => crate::thread_slice::become_sched_idle(),
                SenderPriority::Nice(nice) => {
                    rustix::process::setpriority_process(Some(rustix::thread::gettid()), nice)
                        .map_err(io::Error::from)
                }
            };
            if let Err(error) = lowered {
                tracing::warn!(%error, ?priority, "the cold sender thread keeps the shard's priority");
            }
            let runtime = match new_runtime() {
                Ok(runtime) => runtime,
                Err(error) => {
                    // The shard, told so, writes its chunks itself.
                    tracing::error!(%error, "the cold sender thread has no io_uring");
                    let _ = started.send(false);
                    return;
                }
            };
            let _ = started.send(true);
            runtime.block_on(async move {
                while let Ok(job) = incoming.recv_async().await {
                    compio::runtime::spawn(run(job)).detach();
                }
            });
        });
    match spawned {
        // A thread that ended without a word (it panicked) counts as not started.
        Ok(_) => has_runtime.recv().unwrap_or(false).then_some(jobs),
        Err(error) => {
            tracing::error!(%error, "no cold sender thread could be started");
            None
        }
    }
}

/// Gives the calling thread the CPUs of the process's main thread, which no shard pins: a
/// thread spawned by a shard starts with the shard's one core.
fn take_the_process_cpus() -> io::Result<()> {
    let main_thread = rustix::process::getpid();
    let cpus = rustix::thread::sched_getaffinity(Some(main_thread))?;
    rustix::thread::sched_setaffinity(None, &cpus)?;
    Ok(())
}

/// The most chunks waiting for the sender: each writer has at most one chunk in its hands, so
/// this is only reached with thousands of catch-up readers, which then wait their turn.
const SENDER_QUEUE_CHUNKS_MAX: usize = 1024;

async fn run(job: Job) {
    // A panic in one chunk's write fails that chunk's connection, not the thread's others.
    if let Err(panic) = AssertUnwindSafe(write_job(job)).catch_unwind().await {
        let message = panic
            .downcast_ref::<&str>()
            .map(|text| text.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(%message, "a cold sender thread's write panicked; its connection closes");
    }
}

async fn write_job(job: Job) {
    let Job {
        fd,
        buffer,
        bytes,
        held,
        mut done,
    } = job;
    let mut stream = match TcpStream::from_std(std::net::TcpStream::from(fd)) {
        Ok(stream) => stream,
        Err(error) => {
            let _ = done.send(Err(error));
            return;
        }
    };
    let len_bytes = bytes.len() as u64;
    let write = std::pin::pin!(super::cold::write_in_pieces(
        &mut stream,
        buffer,
        bytes,
        BetweenPieces::YieldTheCore,
    ));
    let cancelled = std::pin::pin!(done.cancellation());
    match select(write, cancelled).await {
        Either::Left((result, _)) => {
            drop(held);
            if result.is_ok() {
                COLD_SENDER_BYTES_TOTAL.fetch_add(len_bytes, Ordering::Relaxed);
            }
            let _ = done.send(result);
        }
        // The writer stopped waiting: dropping the write cancels it (compio keeps the buffer
        // until the kernel is done with it), and the charge goes now, as when the shard's own
        // write is dropped.
        Either::Right(((), _)) => drop(held),
    }
}
