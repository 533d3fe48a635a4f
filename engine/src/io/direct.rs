//! `O_DIRECT` on segment files: the alignment rules, a second descriptor that bypasses the page
//! cache, and aligned buffers kept per shard.
//!
//! `O_DIRECT` wants the file position, the length and the buffer's address aligned to the
//! device's logical block; [`DIRECT_ALIGN_BYTES`] (4 KiB) covers every block size up to a page.
//! Buffers are plain `Vec<u8>` sliced at their first aligned address ([`aligned_start`]), so no
//! `unsafe` allocation is needed. Direct I/O is coherent with the page cache: the kernel writes
//! back dirty pages of a range before a direct read or write of it, and drops cached pages a
//! direct write replaced.
//!
//! The second descriptor is opened through `/proc/self/fd`: a new open file description of the
//! same inode, so the original keeps its flags (splice, buffered reads).
#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::io;
use std::os::fd::AsRawFd;

/// Alignment of `O_DIRECT` positions, lengths and buffer addresses: the largest logical block
/// size of a disk whose blocks fit a page.
pub const DIRECT_ALIGN_BYTES: usize = 4096;

/// Bytes one direct write carries at most, and so the size of a pooled write buffer: measured
/// here as the size at which a direct write outruns a buffered one (results/write-paths/).
pub const DIRECT_WRITE_BYTES_MAX: usize = 1 << 20;

/// The smaller write buffer size, for runs that fit it: a partition writing a few KiB at a time
/// does not hold a whole [`DIRECT_WRITE_BYTES_MAX`] for each write.
pub const DIRECT_WRITE_SMALL_BYTES: usize = 64 << 10;

/// Write buffers of each size a shard keeps for reuse. More may be in use at once (one per
/// partition writing, each at most the size of what it writes plus a block); those beyond are
/// freed after use.
pub const DIRECT_WRITE_BUFFERS_KEPT_MAX: usize = 8;

/// Whether the descriptor is for reading or writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectAccess {
    Read,
    Write,
}

/// Opens `file` again with `O_DIRECT`. Fails with EINVAL where the file system refuses
/// `O_DIRECT`, and as any open can (out of descriptors, no `/proc`).
pub async fn open_direct(
    file: &compio::fs::File,
    access: DirectAccess,
) -> io::Result<compio::fs::File> {
    let path = format!("/proc/self/fd/{}", file.as_raw_fd());
    compio::fs::OpenOptions::new()
        .read(access == DirectAccess::Read)
        .write(access == DirectAccess::Write)
        .custom_flags(libc::O_DIRECT)
        .open(&path)
        .await
}

/// The first index of `buffer` at an aligned address.
pub fn aligned_start(buffer: &[u8]) -> usize {
    let address = buffer.as_ptr() as usize;
    address.next_multiple_of(DIRECT_ALIGN_BYTES) - address
}

/// `position` rounded down to the alignment.
pub fn align_down(position: u64) -> u64 {
    position / DIRECT_ALIGN_BYTES as u64 * DIRECT_ALIGN_BYTES as u64
}

/// `len` rounded up to the alignment.
pub fn align_up(len: usize) -> usize {
    len.next_multiple_of(DIRECT_ALIGN_BYTES)
}

thread_local! {
    /// The shard's idle write buffers, small and large. Reused so their pages stay warm: on
    /// these VMs the first touch of a fresh page is the dear part of writing
    /// (results/write-paths/).
    static WRITE_BUFFERS: RefCell<[Vec<Vec<u8>>; 2]> = const { RefCell::new([Vec::new(), Vec::new()]) };
}

/// The size class of a buffer for `bytes` (at most [`DIRECT_WRITE_BYTES_MAX`]): its index in
/// the pool and the bytes it holds from its aligned start.
fn size_class(bytes: usize) -> (usize, usize) {
    if bytes <= DIRECT_WRITE_SMALL_BYTES {
        (0, DIRECT_WRITE_SMALL_BYTES)
    } else {
        (1, DIRECT_WRITE_BYTES_MAX)
    }
}

/// A write buffer holding at least `bytes` (at most [`DIRECT_WRITE_BYTES_MAX`]) from an aligned
/// address on: a kept one if the shard has one of its size, else a new one (zeroed, so its pages
/// are touched once, here).
pub fn take_write_buffer(bytes: usize) -> Vec<u8> {
    let (class, class_bytes) = size_class(bytes.min(DIRECT_WRITE_BYTES_MAX));
    WRITE_BUFFERS
        .with(|buffers| buffers.borrow_mut()[class].pop())
        .unwrap_or_else(|| vec![0; class_bytes + DIRECT_ALIGN_BYTES])
}

/// Gives a buffer from [`take_write_buffer`] back for reuse (freed if the shard keeps enough).
pub fn return_write_buffer(buffer: Vec<u8>) {
    let (class, class_bytes) = size_class(buffer.len().saturating_sub(DIRECT_ALIGN_BYTES));
    if buffer.len() != class_bytes + DIRECT_ALIGN_BYTES {
        return;
    }
    WRITE_BUFFERS.with(|buffers| {
        let mut buffers = buffers.borrow_mut();
        if buffers[class].len() < DIRECT_WRITE_BUFFERS_KEPT_MAX {
            buffers[class].push(buffer);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_helpers_round_to_the_block() {
        assert_eq!(align_down(0), 0);
        assert_eq!(align_down(4095), 0);
        assert_eq!(align_down(4096), 4096);
        assert_eq!(align_down(10_000), 8192);
        assert_eq!(align_up(0), 0);
        assert_eq!(align_up(1), 4096);
        assert_eq!(align_up(4096), 4096);
        assert_eq!(align_up(4097), 8192);
    }

    #[test]
    fn pooled_buffers_hold_their_write_from_an_aligned_address_by_size() {
        for (asked, holds) in [
            (1, DIRECT_WRITE_SMALL_BYTES),
            (DIRECT_WRITE_SMALL_BYTES, DIRECT_WRITE_SMALL_BYTES),
            (DIRECT_WRITE_SMALL_BYTES + 1, DIRECT_WRITE_BYTES_MAX),
            (10 * DIRECT_WRITE_BYTES_MAX, DIRECT_WRITE_BYTES_MAX),
        ] {
            let buffer = take_write_buffer(asked);
            let start = aligned_start(&buffer);
            assert!(start < DIRECT_ALIGN_BYTES);
            assert_eq!(buffer.len() - DIRECT_ALIGN_BYTES, holds, "asked {asked}");
            assert_eq!((buffer.as_ptr() as usize + start) % DIRECT_ALIGN_BYTES, 0);
            let address = buffer.as_ptr();
            return_write_buffer(buffer);
            let again = take_write_buffer(asked);
            assert_eq!(again.as_ptr(), address, "a returned buffer is reused");
            return_write_buffer(again);
        }
        // A buffer of another size is not pooled.
        return_write_buffer(vec![0; 10]);
        assert_eq!(
            take_write_buffer(1).len(),
            DIRECT_WRITE_SMALL_BYTES + DIRECT_ALIGN_BYTES
        );
    }
}
