//! A write refused for space (ENOSPC, EDQUOT) is not a corruption: the kernel refused bytes
//! before taking them, so the page cache still holds exactly what the files say (a short write's
//! first part included, which recovery cuts as a torn tail). The log fails as after any write
//! error (every waiting append is answered with an error; nothing is acknowledged), but it is
//! marked as failed *for space*, and the shard reopens it — recovery as at a restart — once its
//! data dir has space again ([`crate::Shard::reopen_logs_failed_for_space`]).
//!
//! The same holds when the process or the system is out of file descriptors (EMFILE, ENFILE)
//! as a roll opens the new segment's files: nothing was written, and the reopen (retried on the
//! same schedule) succeeds once descriptors are free again.
//!
//! Only write calls (data, `fallocate`, index writes, the opens of a roll) mark it. An fsync that reports ENOSPC (a
//! delayed allocation that failed at writeback) leaves the page cache in an unknown state and
//! keeps the log failed until restart, as every failed fsync does.
//!
//! # Invariants
//! - `out_of_space` is set only together with, or before, `failure`.
#![forbid(unsafe_code)]

use super::state::PartitionLog;

/// Whether an I/O error means the file system has no room (or the quota is spent).
pub fn is_out_of_space(err: &std::io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// Whether an I/O error means the process or the system has no file descriptor to spare.
pub fn is_out_of_descriptors(err: &std::io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

impl PartitionLog {
    /// Notes a failed write call: out of space (or of descriptors) makes the coming failure
    /// recoverable by reopening.
    pub(crate) fn note_write_error(&self, err: &std::io::Error) {
        if is_out_of_space(err) || is_out_of_descriptors(err) {
            self.state.borrow_mut().out_of_space = true;
        }
    }

    /// The log failed because a write found no space (and for no other reason): reopening it
    /// once space is back recovers it.
    pub fn failed_for_space(&self) -> bool {
        let state = self.state.borrow();
        state.failure.is_some() && state.out_of_space
    }

    /// Whether the log takes no more appends after a failed write or fsync.
    pub fn is_failed(&self) -> bool {
        self.state.borrow().failure.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_space_errors_count() {
        // EIO must keep a log failed until restart; only ENOSPC and EDQUOT may be recovered.
        assert!(is_out_of_space(&std::io::Error::from_raw_os_error(
            libc::ENOSPC
        )));
        assert!(is_out_of_space(&std::io::Error::from_raw_os_error(
            libc::EDQUOT
        )));
        assert!(!is_out_of_space(&std::io::Error::from_raw_os_error(
            libc::EIO
        )));
        assert!(!is_out_of_space(&std::io::Error::other("x")));
        assert!(is_out_of_descriptors(&std::io::Error::from_raw_os_error(
            libc::EMFILE
        )));
        assert!(is_out_of_descriptors(&std::io::Error::from_raw_os_error(
            libc::ENFILE
        )));
        assert!(!is_out_of_descriptors(&std::io::Error::from_raw_os_error(
            libc::EIO
        )));
    }
}
