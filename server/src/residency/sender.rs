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

use std::cell::RefCell;
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

/// A shard's sender thread, as far as the shard knows.
enum SenderState {
    /// No cold chunk yet.
    NotStarted,
    Running(flume::Sender<Job>),
    /// It could not be started, or it stopped: the shard writes its chunks itself.
    Unavailable,
}

thread_local! {
    /// This shard's sender thread, started at its first cold chunk.
    static SENDER: RefCell<SenderState> = const { RefCell::new(SenderState::NotStarted) };
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
    let jobs = SENDER.with(|sender| {
        let mut sender = sender.borrow_mut();
        if matches!(*sender, SenderState::NotStarted) {
            *sender = match start_sender(priority) {
                Some(jobs) => SenderState::Running(jobs),
                None => SenderState::Unavailable,
            };
        }
        match &*sender {
            SenderState::Running(jobs) => Some(jobs.clone()),
            SenderState::NotStarted | SenderState::Unavailable => None,
        }
    });
    send_or_write_here(jobs, duplicate_socket, socket, buffer, bytes, held).await
}

/// How the sender gets its own reference to a socket ([`duplicate_socket`]; tests make it fail).
pub(super) type Duplicate = fn(&TcpStream) -> io::Result<OwnedFd>;

/// A duplicate of `socket`'s descriptor.
fn duplicate_socket(socket: &TcpStream) -> io::Result<OwnedFd> {
    socket.as_fd().try_clone_to_owned()
}

/// The shard drops its handle to a sender thread that has ended and writes this and later
/// chunks itself.
fn stop_using_the_sender() {
    SENDER.with(|sender| *sender.borrow_mut() = SenderState::Unavailable);
    log_sender_missing();
}

/// Hands the chunk to the sender thread behind `jobs`, or writes it on this thread when there
/// is none (`None`: it could not be started), it has stopped (it handed the chunk back), or no
/// descriptor can be spared for it.
pub(super) async fn send_or_write_here(
    jobs: Option<flume::Sender<Job>>,
    duplicate: Duplicate,
    socket: &mut TcpStream,
    buffer: Vec<u8>,
    bytes: Range<usize>,
    held: Box<dyn Send>,
) -> io::Result<Vec<u8>> {
    let (buffer, bytes, held) = match jobs {
        None => {
            log_sender_missing();
            (buffer, bytes, held)
        }
        // The thread already ended: no descriptor is duplicated for it.
        Some(jobs) if jobs.is_disconnected() => {
            stop_using_the_sender();
            (buffer, bytes, held)
        }
        Some(jobs) => match duplicate_or_log(duplicate, socket) {
            None => (buffer, bytes, held),
            Some(fd) => {
                let (done, result) = oneshot::channel();
                let job = Job {
                    fd,
                    buffer,
                    bytes,
                    held,
                    done,
                };
                let sent = jobs.send_async(job).await;
                // Not held while the chunk is written: the shard's own handle is the one that
                // keeps the hand-over open.
                drop(jobs);
                match sent {
                    Ok(()) => {
                        return result.await.map_err(|_| {
                            io::Error::other("the cold sender thread dropped a chunk")
                        })?
                    }
                    Err(flume::SendError(job)) => {
                        // The thread stopped and handed the chunk back ([`hand_over`]).
                        stop_using_the_sender();
                        (job.buffer, job.bytes, job.held)
                    }
                }
            }
        },
    };
    COLD_SENDER_FALLBACK_CHUNKS_TOTAL.fetch_add(1, Ordering::Relaxed);
    let buffer = super::cold::write_in_pieces(socket, buffer, bytes, BetweenPieces::GoOn).await;
    drop(held);
    buffer
}

/// Logged once per process: a shard found its sender thread missing.
fn log_sender_missing() {
    if !SENDER_MISSED.swap(true, Ordering::Relaxed) {
        tracing::error!("a cold sender thread is missing; its shard writes cold chunks itself");
    }
}

/// Sets this thread's nice value to `nice`, unless it already runs at that or a lower priority:
/// a sender never gets a higher priority than the shard that started it (in a broker started at
/// nice 15 it stays at 15, even where the broker could raise it).
pub(super) fn lower_priority_to_nice(nice: i32) -> io::Result<()> {
    let thread = Some(rustix::thread::gettid());
    if rustix::process::getpriority_process(thread)? >= nice {
        return Ok(());
    }
    rustix::process::setpriority_process(thread, nice).map_err(io::Error::from)
}

/// The sender's own reference to `socket`, or `None` (logged once) if the process has no
/// descriptor to spare (EMFILE): the shard then writes the chunk itself with the one it has,
/// rather than failing a fetch that it can serve.
fn duplicate_or_log(duplicate: Duplicate, socket: &TcpStream) -> Option<OwnedFd> {
    static LOGGED: AtomicBool = AtomicBool::new(false);
    match duplicate(socket) {
        Ok(fd) => Some(fd),
        Err(error) => {
            if !LOGGED.swap(true, Ordering::Relaxed) {
                tracing::warn!(%error, "no descriptor for a cold chunk's sender; its shard writes it itself");
            }
            None
        }
    }
}

/// Starts a sender thread at `priority`, free to run on every core the process may use; it
/// stops once its shard's handle to it is gone. `None` (logged) if no thread can be started.
fn start_sender(priority: SenderPriority) -> Option<flume::Sender<Job>> {
    start_sender_with(priority, compio::runtime::Runtime::new)
}

/// [`start_sender`] with the sender's runtime made by `new_runtime`. Returns only once the
/// thread has its runtime (or has failed to make one: `None`), so the shard knows at once
/// whether it has a sender rather than at a failed hand-over. The shard waits for this once, at
/// its first cold chunk.
pub(super) fn start_sender_with(
    priority: SenderPriority,
    new_runtime: fn() -> io::Result<compio::runtime::Runtime>,
) -> Option<flume::Sender<Job>> {
    let (jobs, incoming) = hand_over();
    let (started, has_runtime) = std::sync::mpsc::sync_channel::<bool>(1);
    let spawned = std::thread::Builder::new()
        .name("cold-sender".into())
        .spawn(move || {
            if let Err(error) = take_the_process_cpus() {
                tracing::warn!(%error, "the cold sender thread stays on its shard's cores");
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
            // Told before the thread lowers its priority: the shard waits for this, and at
            // SCHED_IDLE the thread could wait long for a core its neighbours keep busy.
            let _ = started.send(true);
            // The thread began with its shard's slice: a short one (`--shard-sched-slice-us`)
            // would win it cores sooner, which a thread meant to yield to the shards must not.
            // Given back before the priority is lowered: the kernel resets a slice only under
            // SCHED_OTHER or SCHED_BATCH, so no longer once the thread is SCHED_IDLE.
            if let Err(error) = crate::thread_slice::use_the_kernels_slice() {
                tracing::warn!(%error, "the cold sender thread keeps its shard's scheduler slice");
            }
            let lowered = match priority {
                SenderPriority::Idle => crate::thread_slice::become_sched_idle(),
                SenderPriority::Nice(nice) => lower_priority_to_nice(nice),
            };
            if let Err(error) = lowered {
                tracing::warn!(%error, ?priority, "the cold sender thread keeps the shard's priority");
            }
            let incoming = Incoming(incoming);
            runtime.block_on(async move {
                while let Ok(job) = incoming.0.recv_async().await {
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

/// A shard's hand-over to its sender thread: no capacity, so a chunk offered while the thread
/// is not waiting for one waits with its writer, and a thread that ends, normally or by a panic
/// in its runtime (which the per-chunk `catch_unwind` does not cover), hands it back with the
/// send's error for the shard to write. A chunk offered while the thread waits is accepted at
/// once into the channel, for the thread to take when it next runs: should the thread end
/// first, [`Incoming`] drops it. A chunk the thread took is dropped with its runtime. Either way
/// its writer gets an error and its charge comes back. The thread takes each chunk at once and
/// writes it in a task of its own, so the hand-over waits only for the thread to be scheduled.
fn hand_over() -> (flume::Sender<Job>, flume::Receiver<Job>) {
    flume::bounded(0)
}

/// The sender thread's end of the hand-over, dropped as the thread ends, after the receive
/// that woke it: it drops the chunks accepted for it but not yet taken (a flume channel keeps
/// them while any handle to send lives, and the shard's does). Once the receive is gone, no new
/// chunk is accepted; offers wait, and are handed back when this end goes.
struct Incoming(flume::Receiver<Job>);

impl Drop for Incoming {
    fn drop(&mut self) {
        self.0.drain().for_each(drop);
    }
}

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

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    use super::*;

    /// A chunk's stand-in budget charge: says when it is given back.
    struct Charge(Arc<AtomicBool>);

    impl Drop for Charge {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }

    fn job(given_back: &Arc<AtomicBool>) -> (Job, oneshot::Receiver<io::Result<Vec<u8>>>) {
        let (done, result) = oneshot::channel();
        let any_descriptor = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let job = Job {
            fd: OwnedFd::from(any_descriptor),
            buffer: vec![7; 16],
            bytes: 0..16,
            held: Box::new(Charge(Arc::clone(given_back))),
            done,
        };
        (job, result)
    }

    #[test]
    fn a_chunk_accepted_for_a_waiting_thread_that_ends_before_taking_it_goes_with_it() {
        // The thread waits in its receive; an offer is then accepted at once, into the channel.
        // Its runtime ends (a panic) before the thread takes it. The shard's handle still lives,
        // so without the drain the channel would keep the chunk, and its writer would wait.
        let (jobs, incoming) = hand_over();
        let incoming = Incoming(incoming);
        let given_back = Arc::new(AtomicBool::new(false));
        let (chunk, mut result) = job(&given_back);
        {
            let mut taking = std::pin::pin!(incoming.0.recv_async());
            assert!(
                taking.as_mut().now_or_never().is_none(),
                "the thread waits for a chunk"
            );
            assert!(
                jobs.send(chunk).is_ok(),
                "offered to a waiting thread, a chunk is accepted at once"
            );
        } // the receive goes with the runtime, before its next poll
        drop(incoming);
        assert!(
            given_back.load(Ordering::Relaxed),
            "the chunk's charge is given back"
        );
        assert!(
            result.try_recv().is_err(),
            "its writer learns that the chunk was dropped"
        );
        let (late, _result) = job(&Arc::new(AtomicBool::new(false)));
        assert!(
            jobs.send(late).is_err(),
            "a chunk offered after the thread's end is refused, for the shard to write"
        );
    }

    #[test]
    fn a_chunk_offered_to_a_thread_that_ends_comes_back_to_its_writer() {
        // Whether the thread's end comes before the offer or while the offer waits for it to
        // take the chunk, the chunk comes back whole with the send's error, for the shard to
        // write: none is kept where its writer would wait for it.
        for end_first in [true, false] {
            let (jobs, incoming) = hand_over();
            let incoming = Incoming(incoming);
            let given_back = Arc::new(AtomicBool::new(false));
            let (chunk, mut result) = job(&given_back);
            let sent = if end_first {
                drop(incoming);
                jobs.send(chunk)
            } else {
                let mut offer = std::pin::pin!(jobs.send_async(chunk));
                assert!(
                    offer.as_mut().now_or_never().is_none(),
                    "no capacity: the offer waits for the thread to take it"
                );
                drop(incoming);
                offer
                    .as_mut()
                    .now_or_never()
                    .expect("the thread's end answers the waiting offer")
            };
            let flume::SendError(chunk) = sent.expect_err("a chunk nobody took is handed back");
            assert!(
                !given_back.load(Ordering::Relaxed),
                "it still holds its charge, for the shard's own write"
            );
            drop(chunk);
            assert!(given_back.load(Ordering::Relaxed));
            assert!(result.try_recv().is_err(), "its writer is not left waiting");
            let (late, _result) = job(&Arc::new(AtomicBool::new(false)));
            assert!(
                jobs.send(late).is_err(),
                "a chunk offered after the thread's end is refused, for the shard to write"
            );
        }
    }
}
