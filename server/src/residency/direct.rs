//! Reads of cold segment bytes that bypass the page cache (`O_DIRECT`), into reused buffers.
//!
//! Why: a buffered read of cold data costs the disk's DMA into freshly allocated page-cache
//! pages, a copy into the reader's buffer, and dropping those pages again behind the reader. On
//! these VMs the fresh pages are the expensive part: idle guest memory goes back to the host, and
//! the first touch of a page costs 15-18 µs per 4 KiB. An `O_DIRECT` read lands the disk's bytes
//! straight in a buffer this connection keeps (its pages stay warm), touches no page-cache page,
//! and so needs no drop-behind ([decision 0024](../../../docs/decisions/0024-cold-reads-direct.md)).
//!
//! `O_DIRECT` wants the file position, the length and the buffer's address aligned to the
//! device's logical block; [`DIRECT_ALIGN_BYTES`] (4 KiB) covers every block size up to a page.
//! A chunk is read from its position rounded down to that alignment to its end rounded up (past
//! the end of the file the read is short), and only the requested bytes are sent.
//!
//! The segment is opened a second time ([`ringtail_engine::io::direct::open_direct`], which the
//! engine's direct writes share), so the original keeps its flags for splice. Direct reads are
//! coherent with the page cache: the kernel writes back dirty pages of the range before reading it.
#![forbid(unsafe_code)]

use std::io;
use std::ops::Range;
use std::sync::atomic::Ordering;

use super::metrics::{COLD_BUFFER_MAKE, HUGE_PAGE_ADVICE_REFUSED_TOTAL};

use ringtail_engine::io::{
    advise_huge_pages, read_at_priority_holding, IoPriority, HUGE_PAGE_BYTES,
};

pub use ringtail_engine::io::direct::DIRECT_ALIGN_BYTES;
use ringtail_engine::io::direct::{aligned_start, DirectAccess};

/// Buffer bytes a direct read of `chunk_bytes_max` needs: the chunk widened to alignment on both
/// sides, plus room to start at a huge page boundary.
pub const fn direct_buffer_bytes(chunk_bytes_max: usize) -> usize {
    buffer_bytes_for(chunk_bytes_max + 2 * DIRECT_ALIGN_BYTES)
}

/// Opens `file` again for direct reads. Fails with EINVAL where the file system refuses
/// `O_DIRECT`, and as any open can (out of descriptors, no `/proc`).
pub async fn open_direct(file: &compio::fs::File) -> io::Result<compio::fs::File> {
    ringtail_engine::io::direct::open_direct(file, DirectAccess::Read).await
}

/// Reads `[position, position + len)` of `direct` (opened by [`open_direct`]) into `buffer`;
/// returns the buffer and where in it the requested bytes are. `buffer` is reused if it is large
/// enough, else replaced. The reads ask the block layer for `priority`. `held` (the buffer's
/// memory charge) stays with the buffer while the kernel has it, also if this future is dropped
/// ([`ringtail_engine::io::read_at_priority_holding`]), and comes back with it, whether the read
/// succeeded or not.
pub async fn read_direct<H: 'static>(
    direct: &compio::fs::File,
    position: u64,
    len: usize,
    mut buffer: Vec<u8>,
    priority: IoPriority,
    mut held: H,
) -> (io::Result<(Vec<u8>, Range<usize>)>, H) {
    let align = DIRECT_ALIGN_BYTES as u64;
    let read_from = position / align * align;
    let Some(wanted_end) = position.checked_add(len as u64) else {
        let overflow = io::Error::new(io::ErrorKind::InvalidInput, "file range overflow");
        return (Err(overflow), held);
    };
    let read_to = wanted_end.div_ceil(align) * align;
    let read_bytes = usize::try_from(read_to - read_from).expect("a chunk fits memory");
    let needed = buffer_bytes_for(read_bytes);
    if buffer.len() < needed {
        let started = std::time::Instant::now();
        buffer = huge_page_buffer(needed);
        COLD_BUFFER_MAKE.record(started.elapsed());
    }
    // At a huge page boundary when the buffer has room for it (every buffer made here has), so
    // the read's memory is a few huge pages: see `advise_huge_pages`.
    let huge_start = buffer.as_ptr().align_offset(HUGE_PAGE_BYTES);
    let start = if huge_start + read_bytes <= buffer.len() {
        huge_start
    } else {
        aligned_start(&buffer)
    };
    let skip = usize::try_from(position - read_from).expect("under one alignment");
    let wanted_to = skip + len;

    let mut done = 0;
    while done < wanted_to {
        let (result, returned, given_back) = read_at_priority_holding(
            direct,
            buffer,
            start + done..start + read_bytes,
            read_from + done as u64,
            priority,
            held,
        )
        .await;
        (buffer, held) = (returned, given_back);
        let read = match result {
            Ok(read) => read,
            Err(error) => return (Err(error), held),
        };
        done += read;
        // A short read is the end of the file; a read after it would not be aligned.
        if done < wanted_to && (read == 0 || read % DIRECT_ALIGN_BYTES != 0) {
            let short = io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "segment shorter than its fetched range",
            );
            return (Err(short), held);
        }
    }
    let bytes = start + skip..start + wanted_to;
    assert_eq!(bytes.len(), len, "a direct read yields exactly its range");
    (Ok((buffer, bytes)), held)
}

/// Bytes of buffer that hold `read_bytes` from a huge page boundary, wherever the allocator put it.
const fn buffer_bytes_for(read_bytes: usize) -> usize {
    read_bytes + HUGE_PAGE_BYTES
}

/// A zeroed buffer of `len` bytes whose whole huge pages are advised to be huge before the zeroing
/// touches them (then kept warm by reuse). Refused advice, or THP off, costs the gain of 0027 but
/// nothing else: counted and logged once, so `/metrics` tells which case a broker is in.
fn huge_page_buffer(len: usize) -> Vec<u8> {
    let mut buffer = Vec::with_capacity(len);
    let advised = advise_huge_pages(buffer.spare_capacity_mut());
    if let Err(error) = &advised {
        if HUGE_PAGE_ADVICE_REFUSED_TOTAL.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!(%error, "MADV_HUGEPAGE refused: cold reads go as smaller disk requests");
        }
    } else if !huge_pages_enabled() {
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            tracing::warn!(
                "transparent huge pages are off ({THP_ENABLED_PATH}): cold reads go as smaller disk requests"
            );
        });
    }
    buffer.resize(len, 0);
    buffer
}

/// Where the kernel says whether transparent huge pages may be used.
const THP_ENABLED_PATH: &str = "/sys/kernel/mm/transparent_hugepage/enabled";

/// Whether this kernel gives advised buffers huge pages (THP `always` or `madvise`), read once.
pub(super) fn huge_pages_enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| {
        std::fs::read_to_string(THP_ENABLED_PATH).is_ok_and(|mode| thp_mode_allows_advice(&mode))
    })
}

/// Whether a THP mode line (`always [madvise] never`: the selected one in brackets) lets advised
/// memory have huge pages.
fn thp_mode_allows_advice(mode: &str) -> bool {
    mode.split_whitespace()
        .any(|word| word == "[always]" || word == "[madvise]")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(len: usize) -> Vec<u8> {
        crate::test_bytes::non_repeating(len, 0xD1B5_4A32_D192_ED03)
    }

    async fn file_with(dir: &std::path::Path, bytes: &[u8]) -> compio::fs::File {
        let path = dir.join("00000000000000000000.log");
        std::fs::write(&path, bytes).unwrap();
        compio::fs::File::open(&path).await.unwrap()
    }

    #[test]
    fn thp_modes_are_read_from_the_selected_word() {
        assert!(thp_mode_allows_advice("always [madvise] never\n"));
        assert!(thp_mode_allows_advice("[always] madvise never"));
        assert!(!thp_mode_allows_advice("always madvise [never]\n"));
        assert!(!thp_mode_allows_advice(""), "no THP in the kernel");
    }

    #[compio::test]
    async fn direct_reads_yield_exactly_their_range_at_any_alignment() {
        let dir = tempfile::tempdir().unwrap();
        let written = contents(3 * 1024 * 1024 + 777);
        let file = file_with(dir.path(), &written).await;
        let direct = open_direct(&file)
            .await
            .expect("the test directory's file system takes O_DIRECT");
        let mut buffer = Vec::new();
        let cases: [(u64, usize); 7] = [
            (0, 4096),
            (1, 1),
            (4095, 2),
            (12_345, 1 << 20),
            (1 << 20, 1 << 20),
            // To the last byte of a file whose size is not aligned: the read is short.
            (written.len() as u64 - 1000, 1000),
            (written.len() as u64 - (1 << 20) - 3, (1 << 20) + 3),
        ];
        let priorities = [IoPriority::Default, IoPriority::Idle];
        for ((position, len), priority) in cases.into_iter().zip(priorities.into_iter().cycle()) {
            let (read, ()) = read_direct(&direct, position, len, buffer, priority, ()).await;
            let (filled, range) = read.unwrap();
            let at = usize::try_from(position).unwrap();
            assert_eq!(
                &filled[range.clone()],
                &written[at..at + len],
                "at {position}, {priority:?}"
            );
            assert_eq!(
                (filled.as_ptr() as usize + range.start
                    - usize::try_from(position % 4096).unwrap())
                    % HUGE_PAGE_BYTES,
                0,
                "the read started at a huge page boundary (so at an aligned address)"
            );
            buffer = filled;
        }
    }

    #[compio::test]
    async fn a_direct_read_past_the_end_of_the_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let written = contents(10_000);
        let file = file_with(dir.path(), &written).await;
        let direct = open_direct(&file).await.unwrap();
        // What the read holds (a budget charge) comes back with the error too.
        let charge = std::rc::Rc::new(());
        let (read, held) = read_direct(
            &direct,
            9_000,
            2_000,
            Vec::new(),
            IoPriority::Idle,
            charge.clone(),
        )
        .await;
        assert_eq!(read.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        assert!(std::rc::Rc::ptr_eq(&held, &charge));
        let (read, ()) =
            read_direct(&direct, 20_000, 10, Vec::new(), IoPriority::Default, ()).await;
        assert_eq!(read.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    #[compio::test]
    async fn direct_reads_see_bytes_not_yet_written_back() {
        // A segment's recent appends may still be dirty in the page cache: the kernel writes
        // them back before a direct read of their range.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.log");
        let written = contents(64 * 1024 + 5);
        std::fs::write(&path, &written).unwrap();
        let file = compio::fs::File::open(&path).await.unwrap();
        let direct = open_direct(&file).await.unwrap();
        let (read, ()) = read_direct(
            &direct,
            100,
            written.len() - 100,
            Vec::new(),
            IoPriority::Idle,
            (),
        )
        .await;
        let (filled, range) = read.unwrap();
        assert_eq!(&filled[range], &written[100..]);
    }
}
