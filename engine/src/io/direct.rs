//! `O_DIRECT` on segment files: the alignment rules and a second descriptor that bypasses the
//! page cache.
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

use std::io;
use std::os::fd::AsRawFd;

/// Alignment of `O_DIRECT` positions, lengths and buffer addresses: the largest logical block
/// size of a disk whose blocks fit a page.
pub const DIRECT_ALIGN_BYTES: usize = 4096;

/// Bytes one direct write carries at most, and so the size of a pooled write buffer: measured
/// here as the size at which a direct write outruns a buffered one (results/write-paths/).
pub const DIRECT_WRITE_BYTES_MAX: usize = 1 << 20;

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
    aligned_offset(buffer.as_ptr())
}

/// How far past `address` the first aligned address is (for a `Vec` about to be filled: its
/// `as_ptr()` is its allocation's start).
pub fn aligned_offset(address: *const u8) -> usize {
    let address = address as usize;
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
}
