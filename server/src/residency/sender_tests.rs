//! Cold chunks written by a shard's sender thread (`--fetch-cold-send-priority`).
// Each test runs on its own thread and runtime: the budget's turn is held on purpose while it
// awaits (see `tests::take_turn`).
#![allow(clippy::await_holding_lock)]

use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::cold::COLD_SEND_PIECE_BYTES;
use super::memory::{MemoryPermit, BYTES_IN_USE, COLD_BUFFER_BYTES_MAX};
use super::metrics::{
    COLD_SENDER_BYTES_TOTAL, COLD_SENDER_FALLBACK_CHUNKS_TOTAL, COLD_SENDER_YIELDS_TOTAL,
};
use super::sender::{
    lower_priority_to_nice, parse_cold_send_priority, send_on_sender_thread, send_or_write_here,
    start_sender_with, Duplicate, SenderPriority, COLD_SEND_NICE_MAX,
};
use super::tests::{
    budget_returned, contents, receive, send_a_partly_cached_range, socket_pair, take_turn,
};
use super::{ColdReadIo, ColdSendThread, COLD_CHUNK_BYTES_MAX};

/// The nice value and scheduling policy of each of this process's threads named `cold-sender`.
fn cold_senders() -> Vec<(i32, u32)> {
    cold_sender_threads()
        .into_iter()
        .map(|(_tid, nice, policy)| (nice, policy))
        .collect()
}

/// The thread id, nice value and scheduling policy of each thread named `cold-sender`.
fn cold_sender_threads() -> Vec<(String, i32, u32)> {
    let mut senders = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue; // a thread that ended meanwhile
        };
        // "tid (comm) state ...": the comm may hold spaces, so split after its closing paren.
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        if !head.ends_with("(cold-sender") {
            continue;
        }
        // Fields after the comm, from state (field 3): nice is field 19, policy field 41.
        let fields: Vec<&str> = rest.split(' ').collect();
        let tid = task.file_name().to_string_lossy().into_owned();
        senders.push((
            tid,
            fields[16].parse().unwrap(),
            fields[38].parse().unwrap(),
        ));
    }
    senders
}

#[compio::test]
async fn cold_ranges_written_by_a_niced_sender_thread_arrive_byte_for_byte() {
    let _turn = take_turn();
    for cold_read_io in [ColdReadIo::Direct, ColdReadIo::Buffered] {
        let by_sender_before = COLD_SENDER_BYTES_TOTAL.load(Ordering::Relaxed);
        let yields_before = COLD_SENDER_YIELDS_TOTAL.load(Ordering::Relaxed);
        // Byte for byte, in order, the cold pages not cached, every charge back: checked inside.
        let cold_bytes = send_a_partly_cached_range(
            cold_read_io,
            5_000,
            ColdSendThread::Sender(SenderPriority::Nice(COLD_SEND_NICE_MAX)),
        )
        .await;
        assert!(
            COLD_SENDER_BYTES_TOTAL.load(Ordering::Relaxed) - by_sender_before >= cold_bytes,
            "the cold chunks went out on the sender thread"
        );
        // Each cold chunk is written in pieces, with a yield between two (`BetweenPieces`).
        let pieces_per_chunk = (COLD_CHUNK_BYTES_MAX / COLD_SEND_PIECE_BYTES) as u64;
        assert!(
            COLD_SENDER_YIELDS_TOTAL.load(Ordering::Relaxed) - yields_before
                >= pieces_per_chunk - 1,
            "the sender yields its core between the pieces of a chunk"
        );
    }
    assert!(
        cold_senders().contains(&(COLD_SEND_NICE_MAX, libc::SCHED_OTHER as u32)),
        "this shard's sender thread runs at the nice asked for: {:?}",
        cold_senders()
    );
}

const IDLE: SenderPriority = SenderPriority::Idle;

#[test]
fn a_sender_started_by_a_shard_with_a_short_slice_runs_with_the_kernels_slice() {
    // `--shard-sched-slice-us` gives each shard a short slice, and a thread starts with its
    // creator's: the sender, meant to yield to the shards, must not keep it, at either priority.
    use crate::thread_slice::{request_slice, slice_ns_of, SLICE_US_MIN};
    let _turn = take_turn();
    for (priority, policy, nice) in [
        (NICE, libc::SCHED_OTHER as u32, Some(COLD_SEND_NICE_MAX)),
        // Nice values do not apply under SCHED_IDLE.
        (IDLE, libc::SCHED_IDLE as u32, None),
    ] {
        std::thread::spawn(move || {
            let kernels = slice_ns_of(0).expect("sched_getattr");
            match request_slice(SLICE_US_MIN) {
                Ok(()) => {}
                // Kernels before 6.12 have no custom slices: nothing is inherited.
                Err(error) if error.raw_os_error() == Some(libc::EINVAL) => {
                    eprintln!("no custom slices on this kernel: nothing to check");
                    return;
                }
                Err(error) => panic!("sched_setattr: {error}"),
            }
            let before: Vec<String> = cold_sender_threads().into_iter().map(|t| t.0).collect();
            let jobs =
                start_sender_with(priority, compio::runtime::Runtime::new).expect("a sender");
            // The thread gives the slice back, then lowers its priority, after telling the shard
            // it runs: wait for the end state.
            let expected = [(policy, nice, Some(kernels))];
            let mut seen = Vec::new();
            for _ in 0..3_000 {
                seen = cold_sender_threads()
                    .into_iter()
                    .filter(|(tid, _, _)| !before.contains(tid))
                    .map(|(tid, thread_nice, thread_policy)| {
                        let slice = slice_ns_of(tid.parse().unwrap()).ok();
                        let nice =
                            (thread_policy != libc::SCHED_IDLE as u32).then_some(thread_nice);
                        (thread_policy, nice, slice)
                    })
                    .collect();
                if seen == expected {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            assert_eq!(
                seen,
                expected,
                "{priority:?}: the new sender runs with the kernel's slice, not its shard's {} ns",
                u64::from(SLICE_US_MIN) * 1_000
            );
            drop(jobs);
        })
        .join()
        .unwrap();
    }
}

#[compio::test]
async fn a_send_to_a_client_that_stopped_reading_gives_its_charge_back_when_dropped() {
    // The client reads nothing, so a chunk larger than both sockets' buffers can never be
    // written whole. The writer stops waiting (its connection closing): the sender thread
    // cancels the write, the charge comes back, and the thread goes on with other chunks.
    let _turn = take_turn();
    budget_returned().await;
    let (_stalled_client, mut stalled) = socket_pair().await;
    let buffer = contents(64 << 20);
    let held = MemoryPermit::take_bytes(COLD_BUFFER_BYTES_MAX as u64, u64::MAX).unwrap();
    let send = send_on_sender_thread(&mut stalled, buffer, 0..64 << 20, Box::new(held), IDLE);
    let waited = compio::time::timeout(Duration::from_millis(200), send).await;
    assert!(
        waited.is_err(),
        "a client that reads nothing takes no 64 MiB"
    );
    budget_returned().await;

    let (client, mut server) = socket_pair().await;
    let data = contents(1 << 20);
    let received = receive(client, data.len());
    let held = MemoryPermit::take_bytes(COLD_BUFFER_BYTES_MAX as u64, u64::MAX).unwrap();
    let returned = send_on_sender_thread(
        &mut server,
        data.clone(),
        0..data.len(),
        Box::new(held),
        IDLE,
    )
    .await
    .unwrap();
    assert!(
        received.await.unwrap() == data,
        "the next chunk arrives whole"
    );
    assert_eq!(returned, data, "and its buffer comes back for reuse");
    assert_eq!(BYTES_IN_USE.load(Ordering::Relaxed), 0);
    assert!(
        cold_senders()
            .iter()
            .any(|&(_nice, policy)| policy == libc::SCHED_IDLE as u32),
        "this shard's sender thread runs under SCHED_IDLE: {:?}",
        cold_senders()
    );
}

#[compio::test]
async fn a_client_that_stopped_reading_holds_up_no_other_connections_chunk() {
    // One sender thread writes the cold chunks of every connection of its shard. A chunk to a
    // client that reads nothing waits in the kernel for room that never comes; a chunk of
    // another connection handed over meanwhile must still go out whole, not wait behind it:
    // each chunk is written in a task of its own on the sender's runtime.
    let _turn = take_turn();
    budget_returned().await;
    let (_stalled_client, mut stalled) = socket_pair().await;
    let stalled_send = compio::runtime::spawn(async move {
        let held = MemoryPermit::take_bytes(COLD_BUFFER_BYTES_MAX as u64, u64::MAX).unwrap();
        let buffer = contents(64 << 20);
        send_on_sender_thread(&mut stalled, buffer, 0..64 << 20, Box::new(held), NICE).await
    });
    // The stalled chunk is with the sender once it wrote a piece (a yield follows each).
    let yields_before = COLD_SENDER_YIELDS_TOTAL.load(Ordering::Relaxed);
    for _ in 0..3_000 {
        if COLD_SENDER_YIELDS_TOTAL.load(Ordering::Relaxed) > yields_before {
            break;
        }
        compio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        COLD_SENDER_YIELDS_TOTAL.load(Ordering::Relaxed) > yields_before,
        "the stalled chunk reached the sender thread"
    );

    for round in 0..3 {
        let (client, mut server) = socket_pair().await;
        let data = contents(12 << 20);
        let received = receive(client, data.len());
        let held = MemoryPermit::take_bytes(COLD_BUFFER_BYTES_MAX as u64, u64::MAX).unwrap();
        let send = send_on_sender_thread(
            &mut server,
            data.clone(),
            0..data.len(),
            Box::new(held),
            NICE,
        );
        let returned = compio::time::timeout(Duration::from_secs(30), send)
            .await
            .unwrap_or_else(|_| panic!("round {round}: the chunk waited behind the stalled one"))
            .unwrap();
        assert!(
            received.await.unwrap() == data,
            "round {round}: the chunk arrives whole"
        );
        assert!(returned == data, "round {round}: its buffer comes back");
    }
    assert!(
        !stalled_send.is_finished(),
        "a client that reads nothing takes no 64 MiB"
    );
    // Its writer stops waiting: the write is cancelled and its charge comes back.
    drop(stalled_send);
    budget_returned().await;
}

const NICE: SenderPriority = SenderPriority::Nice(COLD_SEND_NICE_MAX);

#[compio::test]
async fn a_send_to_a_client_gone_is_an_error_not_a_panic() {
    let _turn = take_turn();
    let (client, mut server) = socket_pair().await;
    drop(client);
    let held = MemoryPermit::take_bytes(COLD_BUFFER_BYTES_MAX as u64, u64::MAX).unwrap();
    // Larger than the socket's buffer, so the write reaches the closed peer's reset.
    let buffer = contents(16 << 20);
    let sent = send_on_sender_thread(&mut server, buffer, 0..16 << 20, Box::new(held), IDLE).await;
    assert!(sent.is_err(), "the connection's writer gets the error");
    budget_returned().await;
}

#[test]
fn a_sender_lowers_its_priority_but_never_raises_it() {
    let nice_after = |start: i32, asked: i32| {
        std::thread::spawn(move || {
            let thread = Some(rustix::thread::gettid());
            rustix::process::setpriority_process(thread, start).unwrap();
            lower_priority_to_nice(asked).unwrap();
            rustix::process::getpriority_process(thread).unwrap()
        })
        .join()
        .unwrap()
    };
    // Relative to the process's own nice value, so the test runs under `nice` too.
    let own = rustix::process::getpriority_process(None).unwrap();
    assert!(own <= 16, "run from a shell at nice 16 or below (at {own})");
    assert_eq!(nice_after(own, own + 2), own + 2, "lowered from {own}");
    // A thread already lower (a broker started at a higher nice value) keeps its value, even
    // as root, which could raise it.
    assert_eq!(nice_after(own + 3, own + 2), own + 3);
    assert_eq!(nice_after(own + 2, own + 2), own + 2);
}

#[test]
fn the_flag_takes_shard_idle_or_a_nice_of_0_to_19_only() {
    assert_eq!(parse_cold_send_priority("shard"), Ok(ColdSendThread::Shard));
    assert_eq!(
        parse_cold_send_priority("idle"),
        Ok(ColdSendThread::Sender(SenderPriority::Idle))
    );
    assert_eq!(
        parse_cold_send_priority("0"),
        Ok(ColdSendThread::Sender(SenderPriority::Nice(0)))
    );
    assert_eq!(
        parse_cold_send_priority("19"),
        Ok(ColdSendThread::Sender(SenderPriority::Nice(
            COLD_SEND_NICE_MAX
        )))
    );
    for refused in ["-1", "20", "IDLE", "", "1.5"] {
        assert!(parse_cold_send_priority(refused).is_err(), "{refused:?}");
    }
}

#[compio::test]
async fn without_its_sender_thread_a_shard_writes_the_chunk_itself() {
    // The fallback of `--fetch-cold-send-priority`: the sender thread could not make its
    // io_uring (so it is reported as not started: `None`), its hand-over has no thread behind it
    // any more (before the offer or during it), or the process has no descriptor to spare for
    // the sender's duplicate (EMFILE).
    // Each way the chunk arrives whole, written on this (the shard's) thread without yields,
    // its buffer comes back and the fallback is counted.
    let _turn = take_turn();
    budget_returned().await;
    let no_io_uring = start_sender_with(IDLE, || Err(std::io::Error::other("no io_uring (test)")));
    assert!(
        no_io_uring.is_none(),
        "a sender thread without a runtime is reported before any chunk is offered to it"
    );
    let working = start_sender_with(IDLE, compio::runtime::Runtime::new);
    assert!(working.is_some(), "a sender thread with its runtime is");
    drop(working); // its thread ends once the hand-over has no sender
                   // A thread gone (as after a panic in its runtime) leaves its hand-over closed.
    let (hand_over_without_thread, gone) = flume::bounded(0);
    drop(gone);
    let running = start_sender_with(IDLE, compio::runtime::Runtime::new);
    assert!(running.is_some());
    let no_descriptor: Duplicate = |_| Err(rustix::io::Errno::MFILE.into());
    let duplicate: Duplicate = |socket| socket.as_fd().try_clone_to_owned();
    // No descriptor is spent on a thread known to be gone.
    let not_for_a_thread_gone: Duplicate = |_| panic!("a descriptor duplicated for a thread gone");
    // A thread that ends while the chunk is offered to it (after the shard found it alive and
    // duplicated the descriptor) hands the chunk back: its hand-over ends once the duplicate is
    // made, whether or not the offer is waiting yet.
    static DUPLICATED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let duplicate_then_end: Duplicate = |socket| {
        DUPLICATED.store(true, Ordering::SeqCst);
        socket.as_fd().try_clone_to_owned()
    };
    let (ends_while_offered, taker) = flume::bounded(0);
    compio::runtime::spawn(async move {
        while !DUPLICATED.load(Ordering::SeqCst) {
            compio::time::sleep(Duration::from_millis(1)).await;
        }
        drop(taker);
    })
    .detach();
    for (case, jobs, duplicate) in [
        ("no io_uring", no_io_uring, duplicate),
        (
            "thread gone",
            Some(hand_over_without_thread),
            not_for_a_thread_gone,
        ),
        (
            "thread ends while offered",
            Some(ends_while_offered),
            duplicate_then_end,
        ),
        ("no descriptor to spare", running, no_descriptor),
    ] {
        let fallbacks_before = COLD_SENDER_FALLBACK_CHUNKS_TOTAL.load(Ordering::Relaxed);
        let by_sender_before = COLD_SENDER_BYTES_TOTAL.load(Ordering::Relaxed);
        let yields_before = COLD_SENDER_YIELDS_TOTAL.load(Ordering::Relaxed);
        let (client, mut server) = socket_pair().await;
        // Several pieces, and more than the sockets' buffers hold, so the write must wait for
        // the reader.
        let data = contents(12 << 20);
        let received = receive(client, data.len());
        let held = MemoryPermit::take_bytes(COLD_BUFFER_BYTES_MAX as u64, u64::MAX).unwrap();
        let returned = compio::time::timeout(
            Duration::from_secs(30),
            send_or_write_here(
                jobs,
                duplicate,
                &mut server,
                data.clone(),
                0..data.len(),
                Box::new(held),
            ),
        )
        .await
        .unwrap_or_else(|_| panic!("{case}: the chunk was neither sent nor written"))
        .unwrap();
        // Closed now, so a reader short of bytes fails at once rather than waits.
        drop(server);
        let received = received.await;
        assert!(
            received.as_ref().is_ok_and(|bytes| *bytes == data),
            "{case}: the chunk arrives whole"
        );
        assert!(returned == data, "{case}: its buffer comes back for reuse");
        assert_eq!(
            COLD_SENDER_FALLBACK_CHUNKS_TOTAL.load(Ordering::Relaxed) - fallbacks_before,
            1,
            "{case}: the chunk is counted as written without its sender"
        );
        assert_eq!(
            COLD_SENDER_BYTES_TOTAL.load(Ordering::Relaxed),
            by_sender_before,
            "{case}: no sender thread wrote it"
        );
        assert_eq!(
            COLD_SENDER_YIELDS_TOTAL.load(Ordering::Relaxed),
            yields_before,
            "{case}: the shard writes it as its own, without yielding its core"
        );
    }
    budget_returned().await;
}
