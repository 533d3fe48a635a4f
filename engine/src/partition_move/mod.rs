//! Moving a partition to another data dir while it serves (Kafka's AlterReplicaLogDirs).
//!
//! 1. **Copy** (the partition keeps serving): every file of the partition's directory is copied to
//!    `<dest>/<topic>-<partition>.move/`, at most `bytes_per_sec` bytes a second, remembering each
//!    source file's inode and size.
//! 2. **Switch** (appends wait): under the shard's open lock the log is closed (queued appends
//!    written, indexes written, synced, clean-shutdown marker), and the copy is brought up to date:
//!    files whose inode or size changed since step 1 (the active segment, a compaction install,
//!    new segments) are copied again, files gone from the source are removed. The copy is fsynced,
//!    renamed to `<dest>/<topic>-<partition>`, and the placement map is saved with the new home:
//!    **that save is the commit point**. The log is opened at the destination (a clean open).
//!    Appends that arrived meanwhile were refused with [`crate::AppendError::Closed`], which the
//!    broker answers with a retriable error; fetches read on from the files they hold.
//!    Still under the lock, the source directory is renamed out of the partition's name, to
//!    `<source>/<topic>-<partition>.<id>-delete` (as Kafka names a log dir it deletes).
//! 3. **Clean up** (the lock released: it may take long): the renamed source is removed. Renamed
//!    first, a DeleteTopics and a topic made again under the name meanwhile never meet it: the
//!    new partition was placed in the old copy (an existing copy is a partition's home), took its
//!    records as its own, and then lost its files to the removal.
//!
//! A failure before the commit point removes the copy and reopens the log at the source. A crash
//! at any point leaves exactly one complete copy where the placement map says: at start
//! ([`remove_move_leftovers`]), `*.move` and `*-delete` directories and copies outside a
//! partition's recorded home are removed.
//!
//! # Invariants
//! - At every instant the placement map names exactly one directory holding a complete log.
//! - One move per partition at a time (the caller's `moving` set).
#![forbid(unsafe_code)]

mod copy;
mod old_copies;
mod switch;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::shard::partition_dir;

pub use old_copies::{remove_move_leftovers, DELETE_SUFFIX, MOVE_SUFFIX};

/// Why a move did not happen. The partition serves from its source meanwhile.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error("no data dir {0} on this broker")]
    UnknownDir(PathBuf),
    #[error("data dir {0} is not online")]
    DirNotOnline(PathBuf),
    #[error("partition is already moving")]
    AlreadyMoving,
    #[error("partition has no home")]
    NoHome,
    #[error("copying {path}: {source}")]
    Copy {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("closing the source log: {0}")]
    Close(std::io::Error),
    #[error("recording the new home: {0}")]
    Placement(String),
    #[error("opening the moved log: {0}")]
    Open(String),
    /// The partition was deleted (or opened anew) while its files were copied.
    #[error("the partition was deleted or reopened during the move")]
    Replaced,
    /// The shard closed its logs (the broker is stopping) before the switch.
    #[error("the shard is shut down")]
    ShardClosed,
}

/// What a finished move reports.
#[derive(Debug, Clone, Copy)]
pub struct MoveReport {
    pub bytes_copied: u64,
    /// How long appends waited: close, catch-up copy, fsync, commit, reopen.
    pub switch_pause: Duration,
}

/// The directory a move copies into.
pub fn move_dir(dest_data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    let mut name = partition_dir(dest_data_dir, topic, partition.into()).into_os_string();
    name.push(MOVE_SUFFIX);
    PathBuf::from(name)
}

/// Two data dirs under `root`, for the tests of the submodules.
#[cfg(test)]
fn two_dirs(root: &Path) -> std::sync::Arc<crate::DataDirs> {
    let dirs = vec![root.join("a"), root.join("b")];
    std::sync::Arc::new(crate::DataDirs::open(dirs, crate::DiskWatermarks::default()).unwrap())
}
