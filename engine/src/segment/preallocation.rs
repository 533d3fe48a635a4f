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
//!   (ENOSPC, or EDQUOT where a quota the share cannot see ran out), gets the segment
//!   unallocated, written as it would be without preallocation.
//!   Only EIO and the like fail the segment's creation: the disk itself is failing then.
#![forbid(unsafe_code)]

use std::path::Path;
use std::sync::Mutex;

use tracing::{debug, warn};

use crate::disk_space::{preallocation_fits, DiskSpace};
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

/// Bytes being allocated ahead now, per file system (statvfs `f_fsid`), by every shard of the
/// process. Checking the share and the `fallocate` that follows are two steps: without these,
/// partitions on several shards reaching the share together would each pass on the same reading
/// and all allocate, past the share and towards the watermarks. A claim is counted from the
/// check until its `fallocate` returned (then the file system counts it), and the check reads
/// the space under the same lock, so no claim is missed between the two.
static CLAIMS: Mutex<Claims> = Mutex::new(Claims(Vec::new()));

/// Bytes claimed per file system id.
#[derive(Debug, Default)]
struct Claims(Vec<(u64, u64)>);

impl Claims {
    fn claimed_bytes(&self, file_system: u64) -> u64 {
        self.0
            .iter()
            .filter(|(id, _)| *id == file_system)
            .map(|(_, bytes)| bytes)
            .sum()
    }

    /// Claims `bytes` on `file_system` if they fit beside what is claimed there already.
    fn claim(
        &mut self,
        file_system: u64,
        space: DiskSpace,
        bytes: u64,
        max_used_percent: u8,
    ) -> bool {
        let claimed = self.claimed_bytes(file_system);
        // Claimed bytes are not yet used nor free in `space`: count them as both.
        let fits = preallocation_fits(
            DiskSpace {
                free_bytes: space.free_bytes.saturating_sub(claimed),
                used_bytes: space.used_bytes.saturating_add(claimed),
                ..space
            },
            bytes,
            max_used_percent,
        );
        if fits {
            self.0.push((file_system, bytes));
        }
        fits
    }

    fn release(&mut self, file_system: u64, bytes: u64) {
        if let Some(index) = self
            .0
            .iter()
            .position(|&claim| claim == (file_system, bytes))
        {
            self.0.swap_remove(index);
        }
    }
}

/// Room claimed for one allocation ahead; given back when dropped (after the `fallocate`).
#[derive(Debug)]
#[must_use = "the room is claimed only while this lives: hold it across the fallocate"]
pub(crate) struct Claim {
    /// `None` on a simulated disk, which has no other thread to race with.
    file_system: Option<u64>,
    bytes: u64,
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(file_system) = self.file_system {
            lock_claims().release(file_system, self.bytes);
        }
    }
}

fn lock_claims() -> std::sync::MutexGuard<'static, Claims> {
    // A panic while held leaves a plain list of numbers, still consistent.
    CLAIMS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The room to allocate `bytes` ahead on the file system holding `dir`, leaving it at most
/// `max_used_percent` used with every allocation ahead in progress: `None` if there is none.
pub(crate) async fn room_for(dir: &Path, bytes: u64, max_used_percent: u8) -> Option<Claim> {
    if let Some(space) = io::disk::simulated_space() {
        // A simulated disk with no space set: room everywhere.
        let fits = space.is_none_or(|space| fits_or_say(dir, space, bytes, max_used_percent));
        return fits.then_some(Claim {
            file_system: None,
            bytes,
        });
    }
    let owned = dir.to_path_buf();
    let claimed = io::blocking(move || {
        let mut claims = lock_claims();
        let (space, in_memory) = crate::disk_space::file_system_space(&owned)?;
        if in_memory {
            debug!(dir = %owned.display(), "no preallocation: the file system keeps its files in memory");
            return Ok(None);
        }
        let file_system = rustix::fs::statvfs(&owned)?.f_fsid;
        if !claims.claim(file_system, space, bytes, max_used_percent) {
            debug!(dir = %owned.display(), used_percent = space.used_percent(), max_used_percent,
                "no preallocation: it would take the file system past its share");
            return Ok(None);
        }
        Ok(Some(Claim {
            file_system: Some(file_system),
            bytes,
        }))
    })
    .await;
    match claimed {
        Ok(claim) => claim,
        Err(err) => {
            warn!(dir = %dir.display(), %err, "no preallocation: the file system's space is unknown");
            None
        }
    }
}

/// Whether `bytes` fit in `space`'s share, logged (debug) when not.
fn fits_or_say(dir: &Path, space: DiskSpace, bytes: u64, max_used_percent: u8) -> bool {
    let fits = preallocation_fits(space, bytes, max_used_percent);
    if !fits {
        debug!(dir = %dir.display(), used_percent = space.used_percent(), max_used_percent,
            "no preallocation: it would take the file system past its share");
    }
    fits
}

/// Whether a failed `fallocate` only means "not here": the segment then goes on unallocated.
pub(crate) fn declined(err: &std::io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(
            libc::ENOSPC
                | libc::EDQUOT
                | libc::EFBIG
                | libc::EOPNOTSUPP
                | libc::ENOSYS
                | libc::EINVAL
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_file_system_that_cannot_allocate_declines() {
        for code in [
            libc::ENOSPC,
            libc::EDQUOT,
            libc::EFBIG,
            libc::EOPNOTSUPP,
            libc::ENOSYS,
            libc::EINVAL,
        ] {
            assert!(declined(&std::io::Error::from_raw_os_error(code)), "{code}");
        }
        for code in [libc::EIO, libc::EROFS, libc::EBADF] {
            assert!(
                !declined(&std::io::Error::from_raw_os_error(code)),
                "{code}"
            );
        }
    }
    #[test]
    fn claims_in_progress_count_against_the_share_until_released() {
        // Two partitions (on two shards) reach the share together: 60 of 100 GiB used, 10 GiB
        // each asked for under a 75 % share. One reading of the space lets both pass; the claims
        // let only the first, until its fallocate is done and the space counts it.
        let gib = 1u64 << 30;
        let space = DiskSpace {
            total_bytes: 100 * gib,
            free_bytes: 40 * gib,
            used_bytes: 60 * gib,
        };
        let mut claims = Claims::default();
        assert!(claims.claim(7, space, 10 * gib, 75));
        assert!(
            !claims.claim(7, space, 10 * gib, 75),
            "the first claim's bytes count"
        );
        assert!(
            claims.claim(8, space, 10 * gib, 75),
            "another file system's are its own"
        );
        claims.release(7, 10 * gib);
        let after = DiskSpace {
            free_bytes: 30 * gib,
            used_bytes: 70 * gib,
            ..space
        };
        assert!(
            !claims.claim(7, after, 10 * gib, 75),
            "now the space itself counts it"
        );
        assert!(claims.claim(7, space, 10 * gib, 75), "released: room again");
        assert_eq!(claims.claimed_bytes(7), 10 * gib);
        assert_eq!(claims.claimed_bytes(8), 10 * gib);
    }

    #[compio::test]
    async fn a_real_file_system_gives_a_claim_and_takes_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let file_system = rustix::fs::statvfs(dir.path()).unwrap().f_fsid;
        let claim = room_for(dir.path(), 4096, 100).await;
        if crate::disk_space::file_system_space(dir.path()).unwrap().1 {
            assert!(
                claim.is_none(),
                "a file system in memory is never allocated ahead"
            );
            return;
        }
        let claim = claim.expect("4 KiB fit on the test's file system");
        assert!(
            lock_claims().0.contains(&(file_system, 4096)),
            "claimed while held"
        );
        drop(claim);
        assert!(
            room_for(dir.path(), 4096, 0).await.is_none(),
            "a 0 % share takes nothing"
        );
    }
}
