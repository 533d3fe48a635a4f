//! File operations on the shard's own io_uring, including the ones compio lacks.
//!
//! Everything on the data path (read, write, fdatasync, fallocate) is an io_uring submission on the
//! current thread's ring: a blocking file syscall on a shard thread would stall every connection of
//! that core. Rare metadata work (listing and creating directories, renames of the registry) goes
//! to compio's blocking pool through [`blocking`].
//!
//! This is one of the few modules with `unsafe`: the custom [`Fallocate`], [`Fadvise`] and
//! [`SyncFileRange`] opcodes (and `ReadAtPriority` in [`priority_read`]),
//! the inline `pwritev`, and `cachestat(2)` (page-cache residency of a range, which the broker
//! checks before splicing a fetch).
//!
//! The engine itself reaches files through [`disk`], the narrow interface with two backends: the
//! functions here (real files) and the simulated disk of [`sim`] (docs/decisions/0017).

pub mod direct;
pub mod disk;
mod priority_read;
pub mod sim;

pub use priority_read::{read_at_priority, read_at_priority_holding, IoPriority};

use std::io;
use std::os::fd::{AsFd, AsRawFd};

use compio::driver::{OpCode, OpEntry};
use compio::driver::{SharedFd, ToSharedFd};
use compio::fs::File;
use compio::io::{AsyncReadAt, AsyncWriteAt};
use compio::BufResult;
use io_uring::{opcode, types::Fd};

/// Most iovecs one `writev` takes (Linux `IOV_MAX`).
pub const IOVECS_PER_WRITE_MAX: usize = 1024;

/// `fallocate(2)` as an io_uring operation (IORING_OP_FALLOCATE).
struct Fallocate {
    fd: SharedFd<std::fs::File>,
    offset: u64,
    len: u64,
    mode: i32,
}

// SAFETY: the entry references only the file descriptor, which `self.fd` keeps open until the
// operation completes (the driver owns the op until then); it points at no memory of ours.
unsafe impl OpCode for Fallocate {
    type Control = ();

    fn create_entry(&mut self, _: &mut Self::Control) -> OpEntry {
        opcode::Fallocate::new(Fd(self.fd.as_fd().as_raw_fd()), self.len)
            .offset(self.offset)
            .mode(self.mode)
            .build()
            .into()
    }
}

/// Allocates `[offset, offset + len)` of `file` on disk, extending its size (mode 0).
pub async fn fallocate(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let op = Fallocate {
        fd: file.to_shared_fd(),
        offset,
        len,
        mode: 0,
    };
    let BufResult(result, _) = compio::runtime::submit(op).await;
    result.map(|_| ())
}

/// Writes all of `bytes` at `position`, looping over short writes.
pub async fn write_all_at(file: &File, bytes: Vec<u8>, position: u64) -> io::Result<()> {
    let mut written = 0usize;
    let mut buffer = bytes;
    while written < buffer.len() {
        let tail = buffer.split_off(written);
        let mut handle = file;
        let BufResult(result, tail) = handle.write_at(tail, position + written as u64).await;
        buffer.extend_from_slice(&tail);
        let count = result?;
        if count == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0"));
        }
        written += count;
    }
    Ok(())
}

/// Writes the buffers back to back at `position` with as few `writev`s as the kernel allows.
/// Returns the buffers so the caller can reuse or drop them.
pub async fn write_vectored_all_at<B>(
    file: &File,
    buffers: Vec<B>,
    position: u64,
) -> io::Result<Vec<B>>
where
    B: compio::buf::IoBuf + 'static,
{
    let total: usize = buffers.iter().map(|buffer| buffer.buf_len()).sum();
    let mut done_buffers: Vec<B> = Vec::with_capacity(buffers.len());
    let mut remaining = buffers;
    let mut written_total = 0usize;
    while !remaining.is_empty() {
        let rest = if remaining.len() > IOVECS_PER_WRITE_MAX {
            remaining.split_off(IOVECS_PER_WRITE_MAX)
        } else {
            Vec::new()
        };
        let chunk = std::mem::replace(&mut remaining, rest);
        let chunk_bytes: usize = chunk.iter().map(|buffer| buffer.buf_len()).sum();
        let chunk = write_chunk(file, chunk, chunk_bytes, position + written_total as u64).await?;
        written_total += chunk_bytes;
        done_buffers.extend(chunk);
    }
    // Checked in release builds too: a short write here would leave a batch torn on disk.
    assert_eq!(
        written_total, total,
        "a vectored write covers all its bytes"
    );
    Ok(done_buffers)
}

/// One `writev` of at most [`IOVECS_PER_WRITE_MAX`] buffers, finishing short writes.
async fn write_chunk<B>(
    file: &File,
    chunk: Vec<B>,
    chunk_bytes: usize,
    position: u64,
) -> io::Result<Vec<B>>
where
    B: compio::buf::IoBuf + 'static,
{
    let mut handle = file;
    let BufResult(result, chunk) = handle.write_vectored_at(chunk, position).await;
    let mut written = result?;
    if written == chunk_bytes {
        return Ok(chunk);
    }
    // Short write (rare: signals, full disk on the way): finish it buffer by buffer.
    let mut offset_in_chunk = 0usize;
    for buffer in &chunk {
        let bytes = buffer.as_init();
        let buffer_end = offset_in_chunk + bytes.len();
        if written < buffer_end {
            let from = written.max(offset_in_chunk) - offset_in_chunk;
            write_all_at(
                file,
                bytes[from..].to_vec(),
                position + (offset_in_chunk + from) as u64,
            )
            .await?;
            written = buffer_end;
        }
        offset_in_chunk = buffer_end;
    }
    Ok(chunk)
}

/// Writes the buffers back to back at `position` with `pwritev(2)` on the calling thread: no
/// io_uring round trip and no io-wq hand-off, at the price of blocking the thread for the copy into
/// the page cache (and for dirty-page throttling, if the kernel applies it).
pub fn write_vectored_all_at_blocking(
    file: &File,
    buffers: &[bytes::Bytes],
    position: u64,
) -> io::Result<()> {
    let fd = file.as_raw_fd();
    let mut index = 0usize;
    let mut skip = 0usize; // bytes of buffers[index] already written
    let mut offset = position;
    while index < buffers.len() {
        let iovecs: Vec<libc::iovec> = buffers[index..]
            .iter()
            .take(IOVECS_PER_WRITE_MAX)
            .enumerate()
            .map(|(i, buffer)| {
                let start = if i == 0 { skip } else { 0 };
                libc::iovec {
                    iov_base: buffer[start..].as_ptr() as *mut libc::c_void,
                    iov_len: buffer.len() - start,
                }
            })
            .collect();
        let offset_signed = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file offset overflow"))?;
        // SAFETY: every iovec points into a live `Bytes` of `buffers`, borrowed for this call, with
        // its exact remaining length; the count is at most IOV_MAX; `fd` is open while `file` is.
        let written = unsafe {
            libc::pwritev(
                fd,
                iovecs.as_ptr(),
                iovecs.len() as libc::c_int,
                offset_signed,
            )
        };
        if written < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        if written == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "pwritev returned 0",
            ));
        }
        let mut left = written as usize;
        offset += left as u64;
        while left > 0 {
            let rest = buffers[index].len() - skip;
            if left >= rest {
                left -= rest;
                index += 1;
                skip = 0;
            } else {
                skip += left;
                left = 0;
            }
        }
        while index < buffers.len() && buffers[index].len() == skip {
            index += 1;
            skip = 0;
        }
    }
    Ok(())
}

/// Reads up to `len` bytes at `position`; shorter only at end of file.
pub async fn read_at_most(file: &File, position: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(len);
    while out.len() < len {
        let want = len - out.len();
        let buffer = Vec::with_capacity(want);
        let BufResult(result, buffer) = file.read_at(buffer, position + out.len() as u64).await;
        let count = result?;
        if count == 0 {
            break;
        }
        out.extend_from_slice(&buffer[..count]);
    }
    Ok(out)
}

/// `cachestat(2)`'s number (Linux 6.5+). New system calls share one number on every
/// architecture; libc 0.2 does not name it for x86_64 glibc yet.
const SYS_CACHESTAT: libc::c_long = 451;

/// `struct cachestat_range` of `<linux/mman.h>`: offset and length in bytes, two `u64`s.
type CachestatRange = [u64; 2];

/// `struct cachestat` of `<linux/mman.h>`: five `u64` page counts, in this order.
type Cachestat = [u64; 5];

/// Index of `nr_cache` (pages of the range in the page cache) in [`Cachestat`].
const CACHESTAT_CACHED_PAGES: usize = 0;

/// How much of a file range the page cache holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeResidency {
    /// Pages the range touches (a partial page at either end counts).
    pub pages: u64,
    /// Of those, pages in the page cache now.
    pub cached_pages: u64,
}

impl RangeResidency {
    /// Every page of the range is cached: reading it cannot wait for the disk.
    pub fn is_resident(&self) -> bool {
        self.cached_pages >= self.pages
    }
}

/// The page size in bytes, read once.
pub fn page_bytes() -> u64 {
    static PAGE_BYTES: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PAGE_BYTES.get_or_init(|| {
        // SAFETY: sysconf takes no pointers; a failure (-1) falls back to 4 KiB below.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        u64::try_from(page)
            .ok()
            .filter(|&page| page > 0)
            .unwrap_or(4096)
    })
}

/// Bytes of a transparent huge page (x86-64 and arm64 with 4 KiB pages).
pub const HUGE_PAGE_BYTES: usize = 2 << 20;

/// Asks the kernel to back the whole huge pages inside `buffer` (initialised or not) with transparent huge pages
/// (`madvise(MADV_HUGEPAGE)`; with THP in `madvise` mode, the common default, nothing else gets
/// them). Pages not yet touched are then faulted in 2 MiB at a time.
///
/// Why: an `O_DIRECT` read into 4 KiB pages scattered in memory is split by the block layer at
/// its segment limit (254 on virtio here: about 1 MiB), and this VM's disk answers per request,
/// so its throughput follows the request size. Into huge pages, a 4 MiB read goes as a few large
/// requests, as the kernel's own readahead does (results/cold-read-huge-pages/).
///
/// Only advice: a kernel without THP, or one that refuses (the error returned), leaves the buffer
/// as it was. With THP `never` the advice is taken and has no effect.
pub fn advise_huge_pages<T>(buffer: &mut [T]) -> io::Result<()> {
    let start = buffer.as_mut_ptr() as usize;
    let first = start.next_multiple_of(HUGE_PAGE_BYTES);
    let last = (start + std::mem::size_of_val(buffer)) / HUGE_PAGE_BYTES * HUGE_PAGE_BYTES;
    if last <= first {
        return Ok(());
    }
    // SAFETY: [first, last) lies inside `buffer`, memory this process owns and the caller holds
    // exclusively for the call; MADV_HUGEPAGE only changes which page size later faults use in
    // that range, never its contents or whether it is mapped.
    let result = unsafe {
        libc::madvise(
            first as *mut libc::c_void,
            last - first,
            libc::MADV_HUGEPAGE,
        )
    };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `cachestat(2)` of `[position, position + len)` of `fd`: the page counts of [`Cachestat`].
fn cachestat(fd: std::os::fd::BorrowedFd<'_>, position: u64, len: u64) -> io::Result<Cachestat> {
    let range: CachestatRange = [position, len];
    let mut stat: Cachestat = [0; 5];
    // SAFETY: both pointers point at live arrays laid out as the kernel's structs for the call's
    // duration (the kernel reads `range`, writes `stat`); the borrowed descriptor is open for it.
    let result = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            fd.as_raw_fd(),
            range.as_ptr(),
            stat.as_mut_ptr(),
            0u32,
        )
    };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(stat)
}

/// Asks the page cache how much of `[position, position + len)` of `file` it holds, with
/// `cachestat(2)`. A synchronous system call, but one that never waits for I/O: it walks the
/// file's page-cache tree under RCU. An empty range is resident. Fails with `ENOSYS` before
/// Linux 6.5.
pub fn range_residency(file: &File, position: u64, len: u64) -> io::Result<RangeResidency> {
    if len == 0 {
        return Ok(RangeResidency {
            pages: 0,
            cached_pages: 0,
        });
    }
    let end = position
        .checked_add(len)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "file range overflow"))?;
    let page = page_bytes();
    let pages = (end - 1) / page - position / page + 1;
    let stat = cachestat(file.as_fd(), position, len)?;
    Ok(RangeResidency {
        pages,
        cached_pages: stat[CACHESTAT_CACHED_PAGES].min(pages),
    })
}

/// `posix_fadvise(2)` as an io_uring operation (IORING_OP_FADVISE). The kernel runs the advice
/// kinds that may block (DONTNEED, WILLNEED) in its io-wq workers, never on the shard thread.
struct Fadvise {
    fd: SharedFd<std::fs::File>,
    offset: u64,
    len: libc::off_t,
    advice: i32,
}

// SAFETY: the entry references only the file descriptor, which `self.fd` keeps open until the
// operation completes (the driver owns the op until then); it points at no memory of ours.
unsafe impl OpCode for Fadvise {
    type Control = ();

    fn create_entry(&mut self, _: &mut Self::Control) -> OpEntry {
        opcode::Fadvise::new(Fd(self.fd.as_fd().as_raw_fd()), self.len, self.advice)
            .offset(self.offset)
            .build()
            .into()
    }
}

/// Advice for the page cache about a file range, given with [`advise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advice {
    /// `POSIX_FADV_RANDOM`, for the whole open file: reads bring in exactly the pages asked
    /// for, no readahead beyond them (the range is ignored by the kernel).
    Random,
    /// `POSIX_FADV_DONTNEED`: drop the range's clean pages from the page cache. Only whole pages
    /// inside the range go; dirty pages stay (the kernel starts their writeback instead). Pages
    /// of a large folio that reaches outside the range stay too.
    DontNeed,
}

/// Gives `advice` about `[position, position + len)` of `file` on the shard's io_uring (a `len`
/// of 0 means to the end of the file). The kernel runs the kinds that may block (DONTNEED) in
/// its io-wq workers and the rest inline, never blocking the shard thread.
pub async fn advise(file: &File, position: u64, len: u64, advice: Advice) -> io::Result<()> {
    let len = libc::off_t::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "range too long"))?;
    let op = Fadvise {
        fd: file.to_shared_fd(),
        offset: position,
        len,
        advice: match advice {
            Advice::Random => libc::POSIX_FADV_RANDOM,
            Advice::DontNeed => libc::POSIX_FADV_DONTNEED,
        },
    };
    let BufResult(result, _) = compio::runtime::submit(op).await;
    result.map(|_| ())
}

/// `sync_file_range(2)` as an io_uring operation (IORING_OP_SYNC_FILE_RANGE): with
/// `SYNC_FILE_RANGE_WRITE` alone it starts the writeback of a range's dirty pages and waits for
/// none; with the two waits as well it returns once the range is written back.
struct SyncFileRange {
    fd: SharedFd<std::fs::File>,
    offset: u64,
    len: u32,
    flags: u32,
}

// SAFETY: the entry references only the file descriptor, which `self.fd` keeps open until the
// operation completes (the driver owns the op until then); it points at no memory of ours.
unsafe impl OpCode for SyncFileRange {
    type Control = ();

    fn create_entry(&mut self, _: &mut Self::Control) -> OpEntry {
        opcode::SyncFileRange::new(Fd(self.fd.as_fd().as_raw_fd()), self.len)
            .offset(self.offset)
            .flags(self.flags)
            .build()
            .into()
    }
}

/// Starts writing `[position, position + len)` of `file` back to disk without waiting for it, on
/// the shard's io_uring. Nothing is promised durable (no metadata, no cache flush): it only keeps
/// dirty pages from piling up until a later fdatasync has to write them all at once. A `len`
/// over 4 GiB is cut to 4 GiB.
pub async fn start_writeback(file: &File, position: u64, len: u64) -> io::Result<()> {
    let op = SyncFileRange {
        fd: file.to_shared_fd(),
        offset: position,
        len: u32::try_from(len).unwrap_or(u32::MAX),
        flags: libc::SYNC_FILE_RANGE_WRITE,
    };
    let BufResult(result, _) = compio::runtime::submit(op).await;
    result.map(|_| ())
}

/// Writes `[position, position + len)` of `file` back, waits for it, and drops its pages from
/// the page cache, all in the kernel's io-wq workers (the shard thread never waits): what is
/// freed so is the memory the next buffered writes are given (on VMs whose idle memory goes back
/// to the host, fresh pages cost 2-3x the CPU of reused ones: decision 0033). Nothing is promised
/// durable. A `len` over 4 GiB is cut to 4 GiB.
pub async fn write_back_and_drop(file: &File, position: u64, len: u64) -> io::Result<()> {
    let op = SyncFileRange {
        fd: file.to_shared_fd(),
        offset: position,
        len: u32::try_from(len).unwrap_or(u32::MAX),
        flags: libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER,
    };
    let BufResult(result, _) = compio::runtime::submit(op).await;
    result?;
    advise(
        file,
        position,
        len.min(u64::from(u32::MAX)),
        Advice::DontNeed,
    )
    .await
}

/// Index of `nr_dirty` (pages of the range dirty in the page cache) in [`Cachestat`].
const CACHESTAT_DIRTY_PAGES: usize = 1;

/// Pages of `[position, position + len)` of `file` dirty in the page cache now (`cachestat(2)`,
/// as [`range_residency`]): what an fdatasync of the range would still have to write.
pub fn range_dirty_pages(file: &std::fs::File, position: u64, len: u64) -> io::Result<u64> {
    Ok(cachestat(file.as_fd(), position, len)?[CACHESTAT_DIRTY_PAGES])
}

/// Pages of `[position, position + len)` of `file` in the page cache now (`cachestat(2)`, as
/// [`range_residency`], for a std file): for tests and tools that check data is cold.
pub fn range_cached_pages(file: &std::fs::File, position: u64, len: u64) -> io::Result<u64> {
    Ok(cachestat(file.as_fd(), position, len)?[CACHESTAT_CACHED_PAGES])
}

/// Drops a whole file's clean pages from the page cache, blocking the caller: for tests and
/// tools that make data cold on purpose, never for the shard thread.
pub fn drop_cached_file_blocking(file: &std::fs::File) -> io::Result<()> {
    // SAFETY: posix_fadvise takes no pointers; the descriptor is open while `file` is.
    let error = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if error != 0 {
        return Err(io::Error::from_raw_os_error(error));
    }
    Ok(())
}

/// Runs rare, blocking metadata work (directory listing, mkdir) off the shard thread.
pub async fn blocking<T, F>(work: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    match compio::runtime::spawn_blocking(work).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::other("blocking task panicked")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file opened for reading and writing, created if missing (also the other io tests').
    pub(crate) async fn open_real(path: &std::path::Path) -> File {
        compio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .open(path)
            .await
            .unwrap()
    }

    #[compio::test]
    async fn fallocate_extends_and_vectored_writes_land_in_order() {
        // The custom opcode must really allocate, and the writev helper must keep buffer order.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = open_real(&path).await;
        fallocate(&file, 0, 1 << 20).await.unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 1 << 20);
        let buffers: Vec<Vec<u8>> = (0..3000u32).map(|i| i.to_be_bytes().to_vec()).collect();
        write_vectored_all_at(&file, buffers, 8).await.unwrap();
        let back = read_at_most(&file, 8, 12_000).await.unwrap();
        for (i, chunk) in back.chunks(4).enumerate() {
            assert_eq!(chunk, (i as u32).to_be_bytes());
        }
        let past_end = read_at_most(&file, (1 << 20) - 4, 100).await.unwrap();
        assert_eq!(past_end.len(), 4);
    }

    #[compio::test]
    async fn blocking_vectored_writes_land_in_order_past_the_iovec_limit() {
        // The inline pwritev path must keep buffer order across IOV_MAX chunks and empty buffers.
        let dir = tempfile::tempdir().unwrap();
        let file = open_real(&dir.path().join("f")).await;
        let buffers: Vec<bytes::Bytes> = (0..3000u32)
            .map(|i| {
                if i % 7 == 0 {
                    bytes::Bytes::new()
                } else {
                    bytes::Bytes::from(i.to_be_bytes().to_vec())
                }
            })
            .collect();
        let total: usize = buffers.iter().map(bytes::Bytes::len).sum();
        write_vectored_all_at_blocking(&file, &buffers, 8).unwrap();
        let back = read_at_most(&file, 8, total + 100).await.unwrap();
        assert_eq!(back.len(), total);
        let expected: Vec<u8> = buffers.iter().flat_map(|b| b.iter().copied()).collect();
        assert_eq!(back, expected);
    }

    #[compio::test]
    async fn residency_follows_reads_and_dropped_ranges() {
        // cachestat must see written pages as cached and dropped ones as gone; under RANDOM a
        // read brings in exactly its pages, so dropping that range leaves nothing; an empty
        // range and one past the end of the file must not confuse the page count.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = open_real(&path).await;
        let len = 1u64 << 20;
        let page = page_bytes();
        write_all_at(&file, vec![7u8; len as usize], 0)
            .await
            .unwrap();
        file.sync_all().await.unwrap(); // clean pages, so DONTNEED can drop them
        let written = range_residency(&file, 0, len).unwrap();
        assert_eq!(written.pages, len / page);
        assert!(written.is_resident());
        assert!(range_residency(&file, 123, 0).unwrap().is_resident());
        assert_eq!(range_residency(&file, page - 1, 2).unwrap().pages, 2);

        // The write may have made large folios, which only a whole-file drop surely removes.
        advise(&file, 0, 0, Advice::DontNeed).await.unwrap();
        assert_eq!(range_residency(&file, 0, len).unwrap().cached_pages, 0);

        advise(&file, 0, 0, Advice::Random).await.unwrap();
        let back = read_at_most(&file, page, (len / 4) as usize).await.unwrap();
        assert_eq!(back, vec![7u8; (len / 4) as usize]);
        let read = range_residency(&file, 0, len).unwrap();
        assert_eq!(
            read.cached_pages,
            len / 4 / page,
            "no readahead under RANDOM"
        );
        assert!(range_residency(&file, page, len / 4).unwrap().is_resident());
        advise(&file, page, len / 4, Advice::DontNeed)
            .await
            .unwrap();
        assert_eq!(range_residency(&file, 0, len).unwrap().cached_pages, 0);

        read_at_most(&file, 0, page as usize).await.unwrap();
        let std_file = std::fs::File::open(&path).unwrap();
        drop_cached_file_blocking(&std_file).unwrap();
        assert_eq!(range_residency(&file, 0, len).unwrap().cached_pages, 0);
        assert!(!range_residency(&file, len * 4, page).unwrap().is_resident());
    }
}
