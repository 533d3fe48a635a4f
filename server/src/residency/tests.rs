//! The range sender over real files and loopback sockets.
// The tests' lock is held across awaits on purpose: each compio test runs its own runtime on its
// own thread, and the lock orders those threads, not tasks of one runtime.
#![allow(clippy::await_holding_lock)]

use super::cold::{REFUSE_BUFFERED_OPENS, REFUSE_DIRECT_OPENS, REFUSE_DIRECT_READS};
use super::memory::{
    cold_read_memory_bytes, spares_on_this_thread, BYTES_IN_USE, COLD_BUFFER_BYTES_MAX,
    SPARE_BUFFERS_PER_SHARD,
};
use super::metrics::{
    BUFFERED_OPENS_FAILED_TOTAL, COLD_BYTES_TOTAL, COLD_DIRECT_BYTES_TOTAL, COLD_READS_IN_PROGRESS,
    DIRECT_REFUSED_TOTAL, HOT_BYTES_TOTAL, OVER_BUDGET_BYTES_TOTAL,
};
use super::*;

use std::io::Write;

use compio::io::AsyncReadExt;
use compio::net::TcpListener;
use compio::BufResult;
use ringtail_engine::io::{advise, Advice};

#[test]
fn chunks_end_on_page_boundaries_within_the_limit() {
    let page = 4096;
    let max = COLD_CHUNK_BYTES_MAX as u64;
    let tail = COLD_CHUNK_TAIL_BYTES_MAX as u64;
    assert_eq!(chunk_end(0, 10, page), 10);
    assert_eq!(chunk_end(100, 100 + max, page), 100 + max);
    assert_eq!(chunk_end(max, 3 * max, page), 2 * max);
    // What would be left after the page boundary is a short tail: taken in.
    assert_eq!(chunk_end(100, 101 + max, page), 101 + max);
    assert_eq!(chunk_end(max, 2 * max + tail - 1, page), 2 * max + tail - 1);
    // A tail of a whole COLD_CHUNK_TAIL_BYTES_MAX is left to a read of its own.
    assert_eq!(chunk_end(max, 2 * max + tail, page), 2 * max);
    assert_eq!(chunk_end(100, max + tail, page), max);
}

/// The chunks of `[start, end)`, walked as the sender walks them, each checked: within the
/// largest read, page-aligned ends inside the range, covering it exactly.
fn walk_chunks(start: u64, end: u64, page: u64) -> Vec<u64> {
    let mut at = start;
    let mut chunks = Vec::new();
    while at < end {
        let next = chunk_end(at, end, page);
        assert!(next > at && next - at <= COLD_READ_BYTES_MAX as u64);
        assert!(next == end || next.is_multiple_of(page));
        chunks.push(next - at);
        at = next;
    }
    assert_eq!(at, end);
    chunks
}

#[test]
fn ranges_split_into_whole_chunks_without_a_tail_read_of_its_own() {
    let page = 4096;
    let max = COLD_CHUNK_BYTES_MAX as u64;
    // Five chunks and 834 bytes past the last page boundary: taken in by the fifth.
    let long = walk_chunks(12_345, 12_345 + 5 * max + 777, page);
    assert_eq!(long.len(), 5);
    assert_eq!(long[4], max + 834);
    // A catch-up fetch's range: 8 MiB less a few hundred bytes (the partial batch), starting
    // anywhere in a page. Two reads, never a third of a few bytes.
    for start in [0u64, 1, 820, 4095, 4096, 12_345, (3 << 20) + 4000] {
        for short_by in [0u64, 1, 820, 4095, 4096, 100_000] {
            let end = start + 2 * max - short_by;
            let chunks = walk_chunks(start, end, page);
            assert_eq!(chunks.len(), 2, "[{start}, {end}): {chunks:?}");
        }
    }
    // Every split of ranges around whole chunks: no chunk under a tail's size but the only one.
    for len in (2 * max - 3 * page..2 * max + 3 * page).step_by(511) {
        for start in [0u64, 333, 4000] {
            let chunks = walk_chunks(start, start + len, page);
            assert!(
                chunks
                    .iter()
                    .all(|&c| c >= COLD_CHUNK_TAIL_BYTES_MAX as u64),
                "[{start}, +{len}): {chunks:?}"
            );
        }
    }
}

/// Non-repeating contents, so bytes from a wrong offset cannot compare equal.
pub(super) fn contents(len: usize) -> Vec<u8> {
    crate::test_bytes::non_repeating(len, 0x2545_F491_4F6C_DD1D)
}

/// The cold read memory budget is one per process: tests that spend it or count on it take turns.
static BUDGET_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub(super) fn take_turn() -> std::sync::MutexGuard<'static, ()> {
    BUDGET_TESTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A file of `len` non-repeating bytes in `dir`, on disk and not in the page cache.
pub(super) async fn evicted_file(dir: &std::path::Path, len: usize) -> (Vec<u8>, compio::fs::File) {
    let path = dir.join("segment.log");
    let data = contents(len);
    let mut writer = std::fs::File::create(&path).unwrap();
    writer.write_all(&data).unwrap();
    writer.sync_all().unwrap();
    ringtail_engine::io::drop_cached_file_blocking(&writer).unwrap();
    (data, compio::fs::File::open(&path).await.unwrap())
}

/// A connected pair over loopback: the client, and the broker's side.
pub(super) async fn socket_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (client, server)
}

/// Reads `len` bytes on `client` in a task of its own.
pub(super) fn receive(mut client: TcpStream, len: usize) -> JoinHandle<Vec<u8>> {
    compio::runtime::spawn(async move {
        let BufResult(result, received) = client.read_exact(vec![0u8; len]).await;
        result.unwrap();
        received
    })
}

pub(super) fn range(file: &compio::fs::File, position: u64, len: u64) -> FileRange<'_> {
    FileRange {
        file,
        position,
        len,
    }
}

/// Waits until every chunk's charge is back (cancelled reads return theirs once the runtime
/// has dropped them).
pub(super) async fn budget_returned() {
    for _ in 0..500 {
        if BYTES_IN_USE.load(Ordering::Relaxed) == 0 {
            return;
        }
        compio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(BYTES_IN_USE.load(Ordering::Relaxed), 0);
}

fn sender(cold_read_io: ColdReadIo) -> RangeSender {
    sender_on(cold_read_io, ColdSendThread::Shard)
}

pub(super) fn sender_on(cold_read_io: ColdReadIo, cold_send_thread: ColdSendThread) -> RangeSender {
    RangeSender::new(SendPolicy {
        check: ResidencyCheck::On,
        cold_reads_in_flight: COLD_READS_IN_FLIGHT_DEFAULT,
        cold_read_io,
        cold_read_priority: ColdReadPriority::Idle,
        cold_send_thread,
    })
    .unwrap()
}

#[compio::test]
async fn cold_ranges_read_direct_arrive_byte_for_byte_and_stay_out_of_the_page_cache() {
    let _turn = take_turn();
    let direct_before = COLD_DIRECT_BYTES_TOTAL.load(Ordering::Relaxed);
    let cold_bytes =
        send_a_partly_cached_range(ColdReadIo::Direct, 5_000, ColdSendThread::Shard).await;
    assert!(
        COLD_DIRECT_BYTES_TOTAL.load(Ordering::Relaxed) - direct_before >= cold_bytes,
        "the cold chunks were read with O_DIRECT"
    );
}

#[compio::test]
async fn cold_ranges_read_buffered_arrive_byte_for_byte_and_leave_the_page_cache() {
    let _turn = take_turn();
    send_a_partly_cached_range(ColdReadIo::Buffered, 5_000, ColdSendThread::Shard).await;
}

#[compio::test]
async fn direct_reads_a_file_system_refuses_are_read_buffered_instead() {
    // A file system may take an O_DIRECT open and refuse the reads (EINVAL), or the open may
    // fail (no descriptor left, no /proc): the chunks are read through the page cache instead
    // (and dropped behind), counted as refused, and the fetch goes out whole.
    let _turn = take_turn();
    for knob in [&REFUSE_DIRECT_READS, &REFUSE_DIRECT_OPENS] {
        let refused_before = DIRECT_REFUSED_TOTAL.load(Ordering::Relaxed);
        let direct_before = COLD_DIRECT_BYTES_TOTAL.load(Ordering::Relaxed);
        knob.with(|refuse| refuse.set(true));
        send_a_partly_cached_range(ColdReadIo::Direct, 5_000, ColdSendThread::Shard).await;
        knob.with(|refuse| refuse.set(false));
        assert!(DIRECT_REFUSED_TOTAL.load(Ordering::Relaxed) > refused_before);
        assert_eq!(
            COLD_DIRECT_BYTES_TOTAL.load(Ordering::Relaxed),
            direct_before,
            "no chunk went out as read direct"
        );
    }
}

#[compio::test]
async fn buffered_reads_without_a_descriptor_of_their_own_read_the_shared_one() {
    // The buffered path's own descriptor (advised RANDOM) may fail to open (no descriptor left,
    // no /proc): the chunks are read from the segment's shared descriptor instead, counted, and
    // the fetch goes out whole. (The readahead this costs is not visible here: the helper's
    // file is advised RANDOM on the shared descriptor already.)
    let _turn = take_turn();
    let failed_before = BUFFERED_OPENS_FAILED_TOTAL.load(Ordering::Relaxed);
    REFUSE_BUFFERED_OPENS.with(|refuse| refuse.set(true));
    send_a_partly_cached_range(ColdReadIo::Buffered, 5_000, ColdSendThread::Shard).await;
    REFUSE_BUFFERED_OPENS.with(|refuse| refuse.set(false));
    assert!(BUFFERED_OPENS_FAILED_TOTAL.load(Ordering::Relaxed) > failed_before);
}

#[compio::test]
async fn a_short_tail_is_read_with_the_last_chunk_byte_for_byte() {
    // 3,000 bytes past the last whole chunk: read with it, one read over COLD_CHUNK_BYTES_MAX.
    let _turn = take_turn();
    for cold_read_io in [ColdReadIo::Direct, ColdReadIo::Buffered] {
        send_a_partly_cached_range(cold_read_io, 3_000, ColdSendThread::Shard).await;
    }
}

/// Pages of a file read into the page cache and kept there while this lives, however short of
/// memory the machine is: they are spliced into pipes, which hold a reference to each, and
/// reclaim leaves referenced pages alone. (A test's hot chunk, only read in, was reclaimed
/// between its read and the send on a machine whose memory the page cache had filled: the
/// broker then rightly read it cold, and the test failed.)
struct PinnedPages {
    _pipes: Vec<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)>,
}

impl PinnedPages {
    fn read_in(file: &compio::fs::File, position: u64, len: u64) -> Self {
        use rustix::pipe::{fcntl_setpipe_size, pipe_with, splice, PipeFlags, SpliceFlags};
        let page = page_bytes();
        assert!(
            position.is_multiple_of(page) && len.is_multiple_of(page),
            "whole pages"
        );
        let mut pipes = Vec::new();
        let mut at = position;
        while at < position + len {
            let (read, write) = pipe_with(PipeFlags::CLOEXEC).unwrap();
            // One page a pipe slot: 1 MiB (the unprivileged maximum) holds 256 pages.
            let capacity = fcntl_setpipe_size(&write, 1 << 20).unwrap() as u64;
            let end = (at + capacity).min(position + len);
            while at < end {
                let want = usize::try_from(end - at).unwrap();
                let mut offset = at;
                let moved = splice(
                    file,
                    Some(&mut offset),
                    &write,
                    None,
                    want,
                    SpliceFlags::empty(),
                )
                .unwrap();
                assert!(moved > 0, "the file is long enough");
                at += moved as u64;
            }
            pipes.push((read, write));
        }
        let pinned = range_residency(file, position, len).unwrap();
        assert!(pinned.is_resident(), "pinned pages are cached");
        Self { _pipes: pipes }
    }
}

/// A cold range partly cached goes out in order (hot chunks spliced, cold ones from memory),
/// and afterwards the pages read cold are not cached. The file is three chunks and `tail_bytes`
/// long. Returns the cold bytes sent.
/// Callers take their turn first (the counters they read are the process's).
pub(super) async fn send_a_partly_cached_range(
    cold_read_io: ColdReadIo,
    tail_bytes: usize,
    cold_send_thread: ColdSendThread,
) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let file_len = 3 * COLD_CHUNK_BYTES_MAX + tail_bytes;
    let (data, file) = evicted_file(dir.path(), file_len).await;
    // The second chunk is hot (read in before, and pinned in the page cache), the rest cold.
    let mb = COLD_CHUNK_BYTES_MAX as u64;
    advise(&file, 0, 0, Advice::Random).await.unwrap();
    let _hot = PinnedPages::read_in(&file, mb, mb);

    let (client, mut server) = socket_pair().await;
    let (position, len) = (7u64, file_len as u64 - 7);
    let reader = receive(client, len as usize);
    let (hot_before, cold_before) = (
        HOT_BYTES_TOTAL.load(Ordering::Relaxed),
        COLD_BYTES_TOTAL.load(Ordering::Relaxed),
    );
    let mut sender = sender_on(cold_read_io, cold_send_thread);
    sender
        .send(range(&file, position, len), None, &mut server)
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
    assert!(
        (1..=SPARE_BUFFERS_PER_SHARD).contains(&spares_on_this_thread()),
        "the written chunks' buffers are kept as the shard's spares, within the bound"
    );
    let page = page_bytes();
    let cold_tail = range_residency(&file, 2 * mb, file_len as u64 / page * page - 2 * mb).unwrap();
    assert_eq!(cold_tail.cached_pages, 0, "cold chunks are not cached");
    assert!(
        range_residency(&file, mb, mb).unwrap().is_resident(),
        "hot chunk kept"
    );
    assert_eq!(
        BYTES_IN_USE.load(Ordering::Relaxed),
        0,
        "every chunk gave its charge back"
    );
    len - mb
}

#[compio::test]
async fn a_cold_range_goes_out_whole_when_other_connections_hold_the_memory_budget() {
    // Other connections' chunks hold the whole budget: this one's cold chunks are spliced (as on
    // the naive path), counted as over budget, and its bytes all arrive, in order; it takes no
    // memory of its own.
    let _turn = take_turn();
    let spent = MemoryPermit::take_bytes(cold_read_memory_bytes(), cold_read_memory_bytes())
        .expect("the budget is free");
    assert!(MemoryPermit::take(Share::First).is_none(), "nothing left");
    let dir = tempfile::tempdir().unwrap();
    let file_len = 2 * COLD_CHUNK_BYTES_MAX + 123;
    let (data, file) = evicted_file(dir.path(), file_len).await;
    let (client, mut server) = socket_pair().await;
    let reader = receive(client, file_len);
    let (over_before, cold_before, hot_before) = (
        OVER_BUDGET_BYTES_TOTAL.load(Ordering::Relaxed),
        COLD_BYTES_TOTAL.load(Ordering::Relaxed),
        HOT_BYTES_TOTAL.load(Ordering::Relaxed),
    );
    sender(ColdReadIo::Direct)
        .send(range(&file, 0, file_len as u64), None, &mut server)
        .await
        .unwrap();
    assert!(reader.await.unwrap() == data, "bytes differ from the file");
    // The first chunk is spliced cold; the kernel's readahead (the naive path's) may have
    // brought the next ones in by their turn, and they go out as hot.
    let over = OVER_BUDGET_BYTES_TOTAL.load(Ordering::Relaxed) - over_before;
    let hot = HOT_BYTES_TOTAL.load(Ordering::Relaxed) - hot_before;
    assert!(
        over >= COLD_CHUNK_BYTES_MAX as u64,
        "the cold chunk was spliced for want of room"
    );
    assert!(over + hot >= file_len as u64, "every byte was spliced");
    assert_eq!(
        COLD_BYTES_TOTAL.load(Ordering::Relaxed),
        cold_before,
        "none read cold"
    );
    assert_eq!(
        BYTES_IN_USE.load(Ordering::Relaxed),
        cold_read_memory_bytes(),
        "nothing taken beyond the budget"
    );
    drop(spent);
    assert_eq!(BYTES_IN_USE.load(Ordering::Relaxed), 0);
}

#[compio::test]
async fn read_ahead_leaves_room_for_other_connections_first_reads() {
    // Read-ahead holds its whole share (half the budget): a connection's first chunk still reads
    // cold from the other half, one chunk at a time, and nothing is spliced for want of room.
    let _turn = take_turn();
    let mut read_ahead = Vec::new();
    while let Some(permit) = MemoryPermit::take(Share::ReadAhead) {
        read_ahead.push(permit);
    }
    let held = BYTES_IN_USE.load(Ordering::Relaxed);
    assert!(
        held <= cold_read_memory_bytes() / 2,
        "read-ahead holds at most half"
    );
    assert!(MemoryPermit::take(Share::ReadAhead).is_none());
    let dir = tempfile::tempdir().unwrap();
    let file_len = 3 * COLD_CHUNK_BYTES_MAX + 5;
    let (data, file) = evicted_file(dir.path(), file_len).await;
    let (client, mut server) = socket_pair().await;
    let reader = receive(client, file_len);
    let (over_before, cold_before) = (
        OVER_BUDGET_BYTES_TOTAL.load(Ordering::Relaxed),
        COLD_BYTES_TOTAL.load(Ordering::Relaxed),
    );
    sender(ColdReadIo::Direct)
        .send(range(&file, 0, file_len as u64), None, &mut server)
        .await
        .unwrap();
    assert!(reader.await.unwrap() == data, "bytes differ from the file");
    assert_eq!(OVER_BUDGET_BYTES_TOTAL.load(Ordering::Relaxed), over_before);
    assert!(COLD_BYTES_TOTAL.load(Ordering::Relaxed) - cold_before >= file_len as u64);
    assert_eq!(
        BYTES_IN_USE.load(Ordering::Relaxed),
        held,
        "first reads gave theirs back"
    );
    drop(read_ahead);
    assert_eq!(BYTES_IN_USE.load(Ordering::Relaxed), 0);
}

#[test]
fn every_chunk_in_flight_is_charged_its_largest_buffer() {
    // A direct read's buffer is the chunk widened to alignment plus a huge page's room: the
    // charge must cover the largest, or the budget would not bound the memory.
    const { assert!(COLD_BUFFER_BYTES_MAX >= COLD_CHUNK_BYTES_MAX + 2 * direct::DIRECT_ALIGN_BYTES) };
    let _turn = take_turn();
    let permit = MemoryPermit::take(Share::First).expect("the budget is free");
    assert_eq!(
        BYTES_IN_USE.load(Ordering::Relaxed),
        COLD_BUFFER_BYTES_MAX as u64
    );
    drop(permit);
    assert_eq!(BYTES_IN_USE.load(Ordering::Relaxed), 0);
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
            .send(
                range(&file, 5_000, 3 * COLD_CHUNK_BYTES_MAX as u64),
                None,
                &mut server,
            )
            .await
            .unwrap_err();
        assert_eq!(
            error.kind(),
            io::ErrorKind::UnexpectedEof,
            "{cold_read_io:?}"
        );
    }
    budget_returned().await;
}

#[compio::test]
async fn the_next_ranges_cold_reads_start_early_and_its_bytes_arrive_in_order() {
    let _turn = take_turn();
    // Three cold ranges of two files, each named as the next of the one before (as a Fetch
    // response's ranges are): every byte arrives in order, and the reads started ahead are
    // taken up by their range, or cancelled when another range comes instead.
    let dir = tempfile::tempdir().unwrap();
    let first_dir = dir.path().join("first");
    let second_dir = dir.path().join("second");
    std::fs::create_dir_all(&first_dir).unwrap();
    std::fs::create_dir_all(&second_dir).unwrap();
    let mb = COLD_CHUNK_BYTES_MAX as u64;
    let (first_data, first) = evicted_file(&first_dir, 3 * COLD_CHUNK_BYTES_MAX).await;
    let (second_data, second) = evicted_file(&second_dir, 5 * COLD_CHUNK_BYTES_MAX).await;
    for cold_read_io in [ColdReadIo::Direct, ColdReadIo::Buffered] {
        let ranges = [
            range(&first, 100, 2 * mb + 5),
            range(&second, 4_097, 3 * mb),
            range(&first, 2 * mb + 105, mb - 105),
        ];
        let expected: Vec<u8> = [
            &first_data[100..(2 * mb + 105) as usize],
            &second_data[4_097..(4_097 + 3 * mb) as usize],
            &first_data[(2 * mb + 105) as usize..],
        ]
        .concat();
        let (client, mut server) = socket_pair().await;
        let reader = receive(client, expected.len());
        let mut sender = sender(cold_read_io);
        for (at, sent) in ranges.iter().enumerate() {
            let next = ranges.get(at + 1).copied();
            sender.send(*sent, next, &mut server).await.unwrap();
            if at == 0 {
                assert!(
                    sender
                        .ahead
                        .as_ref()
                        .is_some_and(|ahead| ahead.is(ranges[1]) && !ahead.reads.is_empty()),
                    "{cold_read_io:?}: the second range's reads started during the first"
                );
            }
        }
        assert!(
            reader.await.unwrap() == expected,
            "{cold_read_io:?}: bytes differ"
        );
        assert!(sender.ahead.is_none(), "the last range had no next");
        budget_returned().await;

        // Reads started for a next range that does not come are cancelled.
        let (client, mut server) = socket_pair().await;
        let reader = receive(client, (2 * mb) as usize);
        let mut sender = self::sender(cold_read_io);
        sender
            .send(
                range(&second, 0, mb),
                Some(range(&second, 3 * mb, mb)),
                &mut server,
            )
            .await
            .unwrap();
        sender
            .send(range(&second, mb, mb), None, &mut server)
            .await
            .unwrap();
        assert!(
            reader.await.unwrap()[..] == second_data[..(2 * mb) as usize],
            "{cold_read_io:?}: bytes differ"
        );
        budget_returned().await;
    }
}

#[compio::test]
async fn a_chunk_written_in_pieces_arrives_whole_from_the_middle_of_its_buffer() {
    // A direct read's bytes start past its buffer's head (the read began on an aligned block);
    // an odd length leaves a short last piece.
    let buffer = contents(3 * super::cold::COLD_SEND_PIECE_BYTES + 5000);
    let bytes = 777..buffer.len() - 1234;
    let (client, mut server) = socket_pair().await;
    let received = receive(client, bytes.len());
    let returned = super::cold::write_in_pieces(
        &mut server,
        buffer.clone(),
        bytes.clone(),
        super::cold::BetweenPieces::GoOn,
    )
    .await
    .unwrap();
    assert_eq!(received.await.unwrap(), buffer[bytes]);
    assert_eq!(
        returned, buffer,
        "the buffer comes back for reuse, untouched"
    );
}

#[compio::test]
async fn a_cold_read_dropped_in_flight_keeps_its_charge_until_the_kernel_lets_go() {
    // A read of an empty FIFO waits in the kernel as a slow disk read does. Its future dropped
    // (the client gone, the response cut short), the buffer stays with the driver until the
    // cancellation completes, and so must its charge: otherwise clients that leave mid-read
    // could keep the kernel filling more buffers than the budget allows.
    let _turn = take_turn();
    budget_returned().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .expect("mkfifo");
    // Read and write: opening a FIFO so does not wait for a writer (Linux).
    let fifo = compio::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .await
        .unwrap();
    let in_progress_before = COLD_READS_IN_PROGRESS.load(Ordering::Relaxed);
    let budget = memory::MemoryPermit::take(memory::Share::First).unwrap();
    let charged = BYTES_IN_USE.load(Ordering::Relaxed);
    assert_eq!(charged, COLD_BUFFER_BYTES_MAX as u64);
    let read = cold::read_cold(ColdSource::Buffered(fifo), 0, 4096, Vec::new(), budget);
    // Polled with the runtime running (not once by hand), so the read is submitted and waits in
    // the kernel before its future is dropped.
    let mut read = Box::pin(read);
    let waited = compio::time::timeout(std::time::Duration::from_millis(50), &mut read).await;
    assert!(waited.is_err(), "nothing to read yet");
    drop(read);
    assert_eq!(
        BYTES_IN_USE.load(Ordering::Relaxed),
        charged,
        "charged while the kernel holds the buffer"
    );
    assert_eq!(
        COLD_READS_IN_PROGRESS.load(Ordering::Relaxed),
        in_progress_before + 1,
        "counted in progress while the kernel holds the buffer"
    );
    budget_returned().await;
    assert_eq!(
        COLD_READS_IN_PROGRESS.load(Ordering::Relaxed),
        in_progress_before,
        "no longer in progress once the kernel let go"
    );
}

#[compio::test]
async fn buffered_cold_reads_leave_the_segments_own_descriptor_its_readahead() {
    // Buffered cold reads want no readahead (a chunk brings in only the pages it drops after),
    // but the advice holds for an open file: given on the segment's shared descriptor, the
    // splices and engine reads of that segment lost their readahead too. They read on a
    // descriptor of their own; a first read of the segment's start on the shared one still
    // reads ahead of itself (one page under RANDOM, more without).
    let _turn = take_turn();
    let dir = tempfile::tempdir().unwrap();
    let file_len = 2 * COLD_CHUNK_BYTES_MAX;
    let (data, file) = evicted_file(dir.path(), file_len).await;
    let mb = COLD_CHUNK_BYTES_MAX as u64;
    let (client, mut server) = socket_pair().await;
    let reader = receive(client, COLD_CHUNK_BYTES_MAX);
    let cold_before = COLD_BYTES_TOTAL.load(Ordering::Relaxed);
    sender(ColdReadIo::Buffered)
        .send(range(&file, mb, mb), None, &mut server)
        .await
        .unwrap();
    assert!(reader.await.unwrap()[..] == data[COLD_CHUNK_BYTES_MAX..]);
    assert!(
        COLD_BYTES_TOTAL.load(Ordering::Relaxed) - cold_before >= mb,
        "read cold"
    );

    let page = page_bytes();
    ringtail_engine::io::read_at_most(&file, 0, page as usize)
        .await
        .unwrap();
    let start = range_residency(&file, 0, 16 * page).unwrap();
    assert!(
        start.cached_pages > 1,
        "a one-page read at the start of the shared descriptor read ahead ({} pages cached)",
        start.cached_pages
    );
    budget_returned().await;
}
