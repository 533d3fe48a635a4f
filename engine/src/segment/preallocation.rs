//! Whether a segment is allocated ahead here, and what stops it: preallocation saves the block
//! allocation a write or its writeback would do (decision 0029), and is worth nothing where it
//! costs memory or brings the disk nearer full.
//!
//! A segment is allocated ahead only where all of these hold (decision 0031):
//! - the file system keeps its files on a disk: on tmpfs or ramfs an allocation takes memory
//!   and saves no block allocation;
//! - it stays at most `preallocate_max_used_percent` used with the allocation (half, by
//!   default), since space allocated and not yet written counts as used for the data dirs'
//!   watermarks;
//! - `fallocate` succeeds: a file system without it (EOPNOTSUPP), or without the room
//!   (ENOSPC), gets the segment unallocated, written as it would be without preallocation.
//!   Only EIO and the like fail the segment's creation: the disk itself is failing then.
#![forbid(unsafe_code)]

use std::path::Path;

use tracing::{debug, warn};

use crate::disk_space::preallocation_fits;
use crate::io;

/// How far a segment was allocated ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Preallocation {
    /// Not asked for (`preallocate=false`), or not yet decided (a segment being opened).
    #[default]
    Off,
    /// Allocated whole: writes up to `allocated_bytes` allocate nothing.
    Whole,
    /// Asked for and declined here (memory-backed or half-full file system, or `fallocate`
    /// refused): the segment is written unallocated, and its writes never `fallocate` either.
    Declined,
}

/// Whether `bytes` may be allocated ahead on the file system holding `dir`, leaving it at most
/// `max_used_percent` used.
pub(crate) async fn room_for(dir: &Path, bytes: u64, max_used_percent: u8) -> bool {
    match io::disk::file_system_space(dir).await {
        // A simulated disk with no space set: room everywhere.
        Ok(None) => true,
        Ok(Some((_, true))) => {
            debug!(dir = %dir.display(), "no preallocation: the file system keeps its files in memory");
            false
        }
        Ok(Some((space, false))) => {
            let fits = preallocation_fits(space, bytes, max_used_percent);
            if !fits {
                debug!(dir = %dir.display(), bytes, used_percent = space.used_percent(),
                    max_used_percent,
                    "no preallocation: it would take the file system past its share");
            }
            fits
        }
        Err(err) => {
            warn!(dir = %dir.display(), %err, "no preallocation: the file system's space is unknown");
            false
        }
    }
}

/// Whether a failed `fallocate` only means "not here": the segment then goes on unallocated.
pub(crate) fn declined(err: &std::io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::ENOSPC | libc::EOPNOTSUPP | libc::ENOSYS | libc::EINVAL)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_file_system_that_cannot_allocate_declines() {
        for code in [libc::ENOSPC, libc::EOPNOTSUPP, libc::ENOSYS, libc::EINVAL] {
            assert!(declined(&std::io::Error::from_raw_os_error(code)), "{code}");
        }
        for code in [libc::EIO, libc::EROFS, libc::EBADF] {
            assert!(
                !declined(&std::io::Error::from_raw_os_error(code)),
                "{code}"
            );
        }
    }
}
