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

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::data_dirs::DataDirs;
use crate::placement::PlacementMap;
use crate::shard::partition_dir;

/// Suffix of a copy being made.
pub const MOVE_SUFFIX: &str = ".move";
/// Suffix of a moved partition's old copy, renamed out of the partition's name to be removed.
pub const DELETE_SUFFIX: &str = "-delete";
/// Bytes copied per read/write call; the throttle sleeps between chunks.
const COPY_CHUNK_BYTES: usize = 1 << 20;

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

/// (inode, size) of each file of a directory, by name.
pub(crate) type FileStamps = HashMap<String, (u64, u64)>;

/// The active segment's log file, and its logical end when a copy round began (a log still
/// taking appends during the round).
#[derive(Debug, Clone)]
pub(crate) struct ActiveLogEnd {
    pub(crate) file_name: String,
    pub(crate) end_bytes: u64,
}

/// Copies files of `source` into `dest` (created) whose stamp differs from `copied`, removes from
/// `dest` files gone from `source`, and returns the new stamps (blocking). `throttle` paces bytes.
/// With `recopy_active`, the active (last) segment's files are copied whatever their stamp: with
/// `preallocate` its log file keeps its inode and size while it is written.
pub(crate) fn sync_copy(
    source: &Path,
    dest: &Path,
    copied: &FileStamps,
    throttle: &mut Throttle,
    recopy_active: bool,
    active_log: Option<&ActiveLogEnd>,
) -> Result<(FileStamps, u64), MoveError> {
    let failed = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MoveError::Copy { path, source }
    };
    std::fs::create_dir_all(dest).map_err(failed(dest))?;
    let entries = std::fs::read_dir(source)
        .and_then(|entries| entries.collect::<std::io::Result<Vec<_>>>())
        .map_err(failed(source))?;
    // Segment files are named by their 20-digit base offset: the greatest `.log` stem is active.
    let active_stem = entries
        .iter()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".log").map(str::to_string)
        })
        .max();
    let mut stamps = FileStamps::new();
    let mut bytes = 0;
    for entry in entries {
        let meta = entry.metadata().map_err(failed(&entry.path()))?;
        if !meta.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let stamp = (meta.ino(), meta.len());
        let active = recopy_active
            && active_stem
                .as_deref()
                .is_some_and(|stem| name.starts_with(stem));
        // Same inode and grown: only appended to (segments and indexes are written at their end;
        // a compaction install or a truncation at open makes a new inode or a smaller size).
        let from_bytes = match copied.get(&name) {
            Some(&(inode, len)) if !active && inode == stamp.0 && len <= stamp.1 => len,
            _ => 0,
        };
        if active || copied.get(&name) != Some(&stamp) {
            bytes += copy_file(&entry.path(), &dest.join(&name), from_bytes, throttle)?;
        }
        // The active log's bytes are final only up to the block holding its logical end when
        // the round began: past it lie preallocated zeros or a direct write's padding, which
        // later writes replace in place (the file's size unchanged, or grown past them before a
        // roll). The next round copies it again from there, whether it is still active or not.
        // A newer log (rolled into after the end was recorded, before the listing) has no known
        // end: the next round copies it whole.
        let stamp = match active_log {
            Some(log) if log.file_name == name => (
                stamp.0,
                stamp.1.min(crate::io::direct::align_down(log.end_bytes)),
            ),
            Some(log) if name.ends_with(".log") && name > log.file_name => (stamp.0, 0),
            _ => stamp,
        };
        stamps.insert(name, stamp);
    }
    for name in copied.keys().filter(|name| !stamps.contains_key(*name)) {
        match std::fs::remove_file(dest.join(name)) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                return Err(MoveError::Copy {
                    path: dest.join(name),
                    source: err,
                })
            }
            _ => {}
        }
    }
    Ok((stamps, bytes))
}

/// Copies `from` to `to` from byte `from_bytes` on (0: the whole file, `to` recreated).
fn copy_file(
    from: &Path,
    to: &Path,
    from_bytes: u64,
    throttle: &mut Throttle,
) -> Result<u64, MoveError> {
    use std::io::Seek as _;
    let failed = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MoveError::Copy { path, source }
    };
    let mut input = std::fs::File::open(from).map_err(failed(from))?;
    let mut output = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(from_bytes == 0)
        .open(to)
        .map_err(failed(to))?;
    if from_bytes > 0 {
        input
            .seek(std::io::SeekFrom::Start(from_bytes))
            .map_err(failed(from))?;
        output.set_len(from_bytes).map_err(failed(to))?;
        output
            .seek(std::io::SeekFrom::Start(from_bytes))
            .map_err(failed(to))?;
    }
    let mut buffer = vec![0u8; COPY_CHUNK_BYTES];
    let mut total = 0u64;
    loop {
        let read = input.read(&mut buffer).map_err(failed(from))?;
        if read == 0 {
            break;
        }
        output.write_all(&buffer[..read]).map_err(failed(to))?;
        total += read as u64;
        throttle.account(read as u64);
    }
    output.sync_all().map_err(failed(to))?;
    Ok(total)
}

/// Paces a copy to `bytes_per_sec` (0: unbounded) by sleeping once ahead of the budget.
pub(crate) struct Throttle {
    bytes_per_sec: u64,
    started: Instant,
    bytes: u64,
}

impl Throttle {
    pub(crate) fn new(bytes_per_sec: u64) -> Self {
        Self {
            bytes_per_sec,
            started: Instant::now(),
            bytes: 0,
        }
    }

    /// An unbounded throttle (the switch's catch-up must not be slowed: appends wait on it).
    pub(crate) fn unbounded() -> Self {
        Self::new(0)
    }

    fn account(&mut self, bytes: u64) {
        self.bytes += bytes;
        if self.bytes_per_sec == 0 {
            return;
        }
        let due = Duration::from_secs_f64(self.bytes as f64 / self.bytes_per_sec as f64);
        let elapsed = self.started.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
    }
}

/// The directory a move copies into.
pub fn move_dir(dest_data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    let mut name = partition_dir(dest_data_dir, topic, partition.into()).into_os_string();
    name.push(MOVE_SUFFIX);
    PathBuf::from(name)
}

/// The name a moved partition's old copy `source` takes until it is removed: Kafka's
/// `<topic>-<partition>.<id>-delete`. A partition directory's name ends in its number, so no
/// partition (of any topic name) is ever taken for it, nor it for one.
fn retired_dir(source: &Path) -> PathBuf {
    let mut name = source.as_os_str().to_os_string();
    name.push(format!(".{}{DELETE_SUFFIX}", uuid::Uuid::new_v4().simple()));
    PathBuf::from(name)
}

/// Takes a moved partition's old copy out of the partition's name (under the open lock, after the
/// commit point) and returns where it went, for [`remove_old_copy`] once the lock is released. If
/// it cannot be renamed it is removed here: under its name a partition made again later would be
/// placed in it and recover the deleted records.
async fn retire_old_copy(source: &Path) -> Option<PathBuf> {
    let retired = retired_dir(source);
    let (from, to) = (source.to_path_buf(), retired.clone());
    let renamed = crate::io::blocking(move || std::fs::rename(&from, &to)).await;
    match renamed {
        Ok(()) => Some(retired),
        Err(err) => {
            warn!(path = %source.display(), %err, "could not rename the moved partition's old copy; removing it in place");
            remove_old_copy(source.to_path_buf()).await;
            None
        }
    }
}

/// Removes a moved partition's old copy (blocking work on the pool); one that stays is logged and
/// removed at the next start.
async fn remove_old_copy(path: PathBuf) {
    let removing = path.clone();
    let removed = crate::io::blocking(move || match std::fs::remove_dir_all(&removing) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    })
    .await;
    if let Err(err) = removed {
        warn!(path = %path.display(), %err, "the moved partition's old copy stays; removed at next start");
    }
}

/// Makes a directory's new entries durable (blocking).
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// At start (blocking): removes every `*.move` directory (a move that never reached its commit
/// point), every `*-delete` directory (a moved partition's old copy not removed yet) and every
/// partition directory outside its recorded home when that home is an online dir (a move that
/// committed but did not rename its source). Returns what was removed.
pub fn remove_move_leftovers(data_dirs: &DataDirs, map: &PlacementMap) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    for dir in data_dirs.dirs() {
        if dir.state() == crate::DirState::Offline {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(dir.path()) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let leftover = if name.ends_with(MOVE_SUFFIX) || name.ends_with(DELETE_SUFFIX) {
                true
            } else {
                is_stray_copy(data_dirs, map, dir.path(), &name)
            };
            if leftover && path.is_dir() {
                match std::fs::remove_dir_all(&path) {
                    Ok(()) => {
                        warn!(path = %path.display(), "removed the leftover of an interrupted partition move");
                        removed.push(path);
                    }
                    Err(err) => {
                        warn!(path = %path.display(), %err, "could not remove a move leftover")
                    }
                }
            }
        }
    }
    removed
}

/// `name` in `data_dir` is a partition directory whose recorded home is another, online dir.
fn is_stray_copy(data_dirs: &DataDirs, map: &PlacementMap, data_dir: &Path, name: &str) -> bool {
    let Some((topic, partition)) = name.rsplit_once('-') else {
        return false;
    };
    let Ok(partition) = partition.parse::<i32>() else {
        return false;
    };
    let Some(home) = map.partitions.get(&(topic.to_string(), partition)) else {
        return false;
    };
    home != data_dir
        && data_dirs
            .index_of(home)
            .is_some_and(|index| data_dirs.dirs()[index].state() != crate::DirState::Offline)
        && partition_dir(home, topic, partition.into()).is_dir()
}

/// Logs a finished move.
pub(crate) fn log_moved(topic: &str, partition: i32, dest: &Path, report: &MoveReport) {
    info!(topic, partition, dest = %dest.display(), bytes_copied = report.bytes_copied,
        switch_pause_ms = report.switch_pause.as_millis() as u64, "partition moved");
}

impl crate::Shard {
    /// Moves a partition this shard owns to data dir `dest_index` (see the module doc). Returns
    /// once it is done or failed; a failure leaves the partition serving from its source.
    pub async fn move_partition(
        &self,
        topic_partition: &crate::TopicPartition,
        dest_index: usize,
        bytes_per_sec: u64,
    ) -> Result<MoveReport, MoveError> {
        let data_dirs = std::sync::Arc::clone(self.data_dirs());
        let dest_data_dir = data_dirs
            .dirs()
            .get(dest_index)
            .ok_or_else(|| MoveError::UnknownDir(PathBuf::new()))?
            .path()
            .to_path_buf();
        if !data_dirs.accepts_produce(dest_index) {
            return Err(MoveError::DirNotOnline(dest_data_dir));
        }
        let (topic, partition) = (
            topic_partition.topic.to_string(),
            topic_partition.partition.get(),
        );
        let source_index = data_dirs
            .home_index(&topic, partition)
            .ok_or(MoveError::NoHome)?;
        if source_index == dest_index {
            return Ok(MoveReport {
                bytes_copied: 0,
                switch_pause: Duration::ZERO,
            });
        }
        let source = partition_dir(
            data_dirs.dirs()[source_index].path(),
            &topic,
            partition.into(),
        );
        let staging = move_dir(&dest_data_dir, &topic, partition);
        let result = self
            .copy_and_switch(
                topic_partition,
                &source,
                &staging,
                dest_index,
                bytes_per_sec,
            )
            .await;
        if result.is_err() {
            let staging = staging.clone();
            let _ = crate::io::blocking(move || match std::fs::remove_dir_all(&staging) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
                _ => Ok(()),
            })
            .await;
        }
        let (report, old_copy) = result?;
        if let Some(old_copy) = old_copy {
            remove_old_copy(old_copy).await;
        }
        log_moved(&topic, partition, &dest_data_dir, &report);
        Ok(report)
    }

    /// Steps 1 and 2 of the module doc; the moved partition's old copy, renamed, if there is one
    /// left to remove.
    async fn copy_and_switch(
        &self,
        topic_partition: &crate::TopicPartition,
        source: &Path,
        staging: &Path,
        dest_index: usize,
        bytes_per_sec: u64,
    ) -> Result<(MoveReport, Option<PathBuf>), MoveError> {
        let (from, to) = (source.to_path_buf(), staging.to_path_buf());
        let copied_log = self.partition(topic_partition);
        let active_log =
            copied_log
                .as_ref()
                .map(|log| log.active_segment_end())
                .map(|(base_offset, end)| ActiveLogEnd {
                    file_name: crate::segment::log_file_name(base_offset),
                    end_bytes: end.get(),
                });
        let (stamps, bulk_bytes) = crate::io::blocking(move || {
            let mut throttle = Throttle::new(bytes_per_sec);
            Ok(sync_copy(
                &from,
                &to,
                &FileStamps::new(),
                &mut throttle,
                false,
                active_log.as_ref(),
            ))
        })
        .await
        .map_err(|source| MoveError::Copy {
            path: staging.to_path_buf(),
            source,
        })??;
        let _opening = self.open_lock.lock().await;
        if self.is_closed() {
            return Err(MoveError::ShardClosed);
        }
        let paused = Instant::now();
        let log = self.partition(topic_partition);
        let config = match &log {
            Some(log) => log.config(),
            None => return Err(MoveError::Open("the partition is not open".into())),
        };
        let log = log.expect("checked above");
        // The bulk copy ran without the lock: a DeleteTopics (and a topic made again under the
        // name) may have replaced the log meanwhile. Switched, the new topic's log was closed and
        // its files replaced by the deleted partition's copy mixed with its own.
        if !copied_log.is_some_and(|copied| std::rc::Rc::ptr_eq(&copied, &log)) {
            return Err(MoveError::Replaced);
        }
        self.partitions.borrow_mut().remove(topic_partition);
        let switched = self
            .switch(topic_partition, &log, source, staging, dest_index, stamps)
            .await;
        let (home, bytes) = match switched {
            Ok((home, bytes)) => (home, bytes),
            Err(err) => {
                // Not committed: the source is still the home; serve from it again.
                let (reopened, _) =
                    crate::PartitionLog::open(source, config)
                        .await
                        .map_err(|open| {
                            MoveError::Open(format!("{err}; reopening the source: {open}"))
                        })?;
                self.partitions
                    .borrow_mut()
                    .insert(topic_partition.clone(), reopened);
                return Err(err);
            }
        };
        // Committed: the source is no longer the partition's home.
        let old_copy = retire_old_copy(source).await;
        let (moved, _) = match crate::PartitionLog::open(&home, config).await {
            Ok(opened) => opened,
            Err(err) => {
                if let Some(old_copy) = old_copy {
                    remove_old_copy(old_copy).await;
                }
                return Err(MoveError::Open(err.to_string()));
            }
        };
        self.partitions
            .borrow_mut()
            .insert(topic_partition.clone(), moved);
        let report = MoveReport {
            bytes_copied: bulk_bytes + bytes,
            switch_pause: paused.elapsed(),
        };
        Ok((report, old_copy))
    }

    /// Closes the log, catches the copy up, renames it into place and commits the new home.
    async fn switch(
        &self,
        topic_partition: &crate::TopicPartition,
        log: &crate::PartitionLog,
        source: &Path,
        staging: &Path,
        dest_index: usize,
        stamps: FileStamps,
    ) -> Result<(PathBuf, u64), MoveError> {
        log.close().await.map_err(MoveError::Close)?;
        // A preallocated active segment is written inside its allocated size: copy it whole.
        let preallocated = log.config().preallocate;
        let home = partition_dir(
            self.data_dirs().dirs()[dest_index].path(),
            &topic_partition.topic,
            topic_partition.partition,
        );
        let (from, to, final_dir) = (source.to_path_buf(), staging.to_path_buf(), home.clone());
        let bytes = crate::io::blocking(move || {
            // Closed: nothing is written during this round.
            let (_, bytes) = sync_copy(
                &from,
                &to,
                &stamps,
                &mut Throttle::unbounded(),
                preallocated,
                None,
            )
            .map_err(std::io::Error::other)?;
            sync_dir(&to)?;
            std::fs::rename(&to, &final_dir)?;
            sync_dir(final_dir.parent().unwrap_or(Path::new("/")))?;
            Ok(bytes)
        })
        .await
        .map_err(|source| MoveError::Copy {
            path: staging.to_path_buf(),
            source,
        })?;
        let committed = self
            .data_dirs()
            .set_home(
                &topic_partition.topic,
                topic_partition.partition.get(),
                dest_index,
            )
            .await;
        if let Err(err) = committed {
            // Not committed: the renamed copy is a stray; take it out of the way again.
            let stray = home.clone();
            let _ = crate::io::blocking(move || std::fs::remove_dir_all(&stray)).await;
            return Err(MoveError::Placement(err.to_string()));
        }
        Ok((home, bytes))
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;
    use std::sync::Arc;

    use super::*;
    use crate::{DiskWatermarks, LogConfig, Shard, ShardId, TopicPartition};

    /// Writes `bytes` at `position` of `path` in place (as direct writes and preallocated
    /// segments do), the file's size growing only if they reach past it.
    fn write_in_place(path: &Path, bytes: &[u8], position: u64) {
        let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&file, bytes, position).unwrap();
    }

    fn assert_same_files(source: &Path, dest: &Path) {
        for entry in std::fs::read_dir(source).unwrap() {
            let path = entry.unwrap().path();
            let copy = dest.join(path.file_name().unwrap());
            assert!(
                std::fs::read(&copy).unwrap() == std::fs::read(&path).unwrap(),
                "{} differs from its source",
                copy.display()
            );
        }
    }

    #[test]
    fn a_catch_up_copy_takes_again_what_the_active_log_rewrites_in_place() {
        // Past the active log's logical end lie zeros that later writes replace in place: a
        // direct write's padding (the size unchanged) or preallocated space (the size unchanged,
        // or grown past it before the segment rolls). A copy resuming from the old size would
        // keep the zeros. Both cases: the segment still active at the next round, and rolled.
        for (padding_to, rolls) in [(8192u64, false), (65_536, true), (8192, true)] {
            let root = tempfile::tempdir().unwrap();
            let (source, dest) = (root.path().join("src"), root.path().join("dst"));
            std::fs::create_dir_all(&source).unwrap();
            let sealed = source.join("00000000000000000000.log");
            let active = source.join("00000000000000000100.log");
            std::fs::write(&sealed, vec![7u8; 5000]).unwrap();
            let mut bytes = vec![1u8; 5000];
            bytes.resize(padding_to as usize, 0);
            std::fs::write(&active, &bytes).unwrap();
            let active_log = ActiveLogEnd {
                file_name: "00000000000000000100.log".into(),
                end_bytes: 5000,
            };
            let stamps = copy_round(&source, &dest, &FileStamps::new(), Some(&active_log));
            // Written on in place after the round, past the old size when it rolls.
            let written_to = if rolls { padding_to + 10_000 } else { 7000 };
            write_in_place(&active, &vec![2u8; (written_to - 5000) as usize], 5000);
            if rolls {
                std::fs::write(source.join("00000000000000000200.log"), [3u8; 100]).unwrap();
            }
            copy_round(&source, &dest, &stamps, None);
            assert_same_files(&source, &dest);
        }
    }

    /// One bulk round of [`sync_copy`], unthrottled; the stamps it leaves.
    fn copy_round(
        source: &Path,
        dest: &Path,
        stamps: &FileStamps,
        active_log: Option<&ActiveLogEnd>,
    ) -> FileStamps {
        sync_copy(
            source,
            dest,
            stamps,
            &mut Throttle::unbounded(),
            false,
            active_log,
        )
        .unwrap()
        .0
    }

    #[test]
    fn a_segment_rolled_into_before_the_round_listed_its_files_is_copied_again_whole() {
        // The round recorded the active log's end, then (before it listed the directory: the
        // hop to the blocking pool) the log rolled. The new segment's padding (or preallocated
        // space) past its logical end, copied in this round, is written in place afterwards.
        let root = tempfile::tempdir().unwrap();
        let (source, dest) = (root.path().join("src"), root.path().join("dst"));
        std::fs::create_dir_all(&source).unwrap();
        std::fs::write(source.join("00000000000000000000.log"), vec![7u8; 5000]).unwrap();
        let rolled_into = source.join("00000000000000000100.log");
        let mut bytes = vec![1u8; 5000];
        bytes.resize(8192, 0);
        std::fs::write(&rolled_into, &bytes).unwrap();
        let active_log = ActiveLogEnd {
            file_name: "00000000000000000000.log".into(),
            end_bytes: 5000,
        };
        let stamps = copy_round(&source, &dest, &FileStamps::new(), Some(&active_log));
        write_in_place(&rolled_into, &[2u8; 2000], 5000);
        copy_round(&source, &dest, &stamps, None);
        assert_same_files(&source, &dest);
    }

    fn two_dirs(root: &Path) -> Arc<DataDirs> {
        let dirs = vec![root.join("a"), root.join("b")];
        Arc::new(DataDirs::open(dirs, DiskWatermarks::default()).unwrap())
    }

    #[compio::test]
    async fn a_move_keeps_offsets_and_records_and_the_log_takes_appends_after() {
        for write_direct in [false, true] {
            // The moved log is the same log: same offsets and bytes, new home recorded, old copy gone.
            let root = tempfile::tempdir().unwrap();
            let data_dirs = two_dirs(root.path());
            let shard = Rc::new(Shard::with_data_dirs(ShardId(0), Arc::clone(&data_dirs)));
            let tp = TopicPartition::new("t", 0);
            let config = LogConfig {
                segment_bytes: 4096,
                write_direct,
                ..LogConfig::default()
            };
            let log = shard.open_partition(tp.clone(), config).await.unwrap();
            for _ in 0..50 {
                let batch = crate::batch::encode_uniform_batch(0, 5, 100);
                log.append(bytes::BytesMut::from(&batch[..]), 0)
                    .await
                    .unwrap();
            }
            let before = log.read_bytes(0, 1 << 30, true).await.unwrap();
            let source = shard.home_index(&tp).unwrap();
            let dest = 1 - source;
            let report = shard.move_partition(&tp, dest, 0).await.unwrap();
            assert!(report.bytes_copied >= before.len() as u64);
            assert_eq!(shard.home_index(&tp), Some(dest));
            let moved = shard.partition(&tp).unwrap();
            assert!(!Rc::ptr_eq(&moved, &log));
            assert_eq!(moved.high_watermark(), crate::Offset::new(250));
            let after = moved.read_bytes(0, 1 << 30, true).await.unwrap();
            assert_eq!(after, before);
            let batch = crate::batch::encode_uniform_batch(0, 5, 100);
            let outcome = moved
                .append(bytes::BytesMut::from(&batch[..]), 0)
                .await
                .unwrap();
            assert_eq!(outcome.base_offset, crate::Offset::new(250));
            let old = partition_dir(data_dirs.dirs()[source].path(), "t", 0.into());
            assert!(!old.exists(), "the source copy is removed");
            let reopened = DataDirs::open(
                data_dirs
                    .dirs()
                    .iter()
                    .map(|d| d.path().to_path_buf())
                    .collect(),
                DiskWatermarks::default(),
            )
            .unwrap();
            assert_eq!(
                reopened.home_index("t", 0),
                Some(dest),
                "the new home is durable"
            );
        }
    }

    #[compio::test]
    async fn a_partition_made_again_while_the_old_copy_is_removed_keeps_its_files() {
        // The move removes the old copy after releasing the open lock. A DeleteTopics and the
        // topic made again in that window found the old copy still under the partition's name:
        // placed there (an existing copy is a partition's home), the new partition recovered the
        // deleted one's records as its own, and the removal then took its files.
        let root = tempfile::tempdir().unwrap();
        let data_dirs = two_dirs(root.path());
        let shard = Shard::with_data_dirs(ShardId(0), Arc::clone(&data_dirs));
        let tp = TopicPartition::new("t", 0);
        let config = LogConfig {
            segment_bytes: 4096,
            ..LogConfig::default()
        };
        let log = shard
            .open_partition(tp.clone(), config.clone())
            .await
            .unwrap();
        for _ in 0..10 {
            let batch = crate::batch::encode_uniform_batch(0, 5, 100);
            log.append(bytes::BytesMut::from(&batch[..]), 0)
                .await
                .unwrap();
        }
        drop(log);
        let source = shard.home_index(&tp).unwrap();
        let dest = 1 - source;
        let source_dir = partition_dir(data_dirs.dirs()[source].path(), "t", 0.into());
        let staging = move_dir(data_dirs.dirs()[dest].path(), "t", 0);
        // The move up to the release of the open lock (`move_partition` without its last step).
        let (_, old_copy) = shard
            .copy_and_switch(&tp, &source_dir, &staging, dest, 0)
            .await
            .unwrap();
        // The window: the topic is deleted and made again.
        shard.delete_partition(&tp).await.unwrap();
        let new = shard
            .open_partition(tp.clone(), config.clone())
            .await
            .unwrap();
        assert_eq!(
            new.high_watermark(),
            crate::Offset::new(0),
            "the new partition took the deleted one's records"
        );
        let batch = crate::batch::encode_uniform_batch(0, 5, 100);
        new.append(bytes::BytesMut::from(&batch[..]), 0)
            .await
            .unwrap();
        // The move's last step.
        if let Some(old_copy) = old_copy {
            remove_old_copy(old_copy).await;
        }
        shard.close().await.unwrap();
        for dir in data_dirs.dirs() {
            for entry in std::fs::read_dir(dir.path()).unwrap() {
                let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                assert!(
                    name == "t-0" || name.starts_with("placement.json"),
                    "{name} left in {}",
                    dir.path().display()
                );
            }
        }
        // From disk, as at a restart: the new partition's five records.
        let shard = Shard::with_data_dirs(ShardId(0), two_dirs(root.path()));
        let reopened = shard.open_partition(tp.clone(), config).await.unwrap();
        assert_eq!(reopened.high_watermark(), crate::Offset::new(5));
        let bytes = reopened.read_bytes(0, 1 << 20, true).await.unwrap();
        assert_eq!(bytes.len(), batch.len(), "the new partition's one batch");
        shard.close().await.unwrap();
    }

    #[test]
    fn leftovers_of_an_interrupted_move_are_removed_and_homes_kept() {
        // A crash before the commit leaves `.move`; after it, the old copy (under its name, or
        // renamed `-delete`): all go at start.
        let root = tempfile::tempdir().unwrap();
        let data_dirs = two_dirs(root.path());
        let (a, b) = (data_dirs.dirs()[0].path(), data_dirs.dirs()[1].path());
        let runtime = compio::runtime::Runtime::new().unwrap();
        runtime
            .block_on(data_dirs.place(vec![("t".into(), 0), ("u".into(), 0)]))
            .unwrap();
        let t_home = data_dirs.home_index("t", 0).unwrap();
        let t_dirs = [a, b];
        std::fs::create_dir_all(partition_dir(t_dirs[t_home], "t", 0.into())).unwrap();
        std::fs::create_dir_all(partition_dir(t_dirs[1 - t_home], "t", 0.into())).unwrap();
        std::fs::create_dir_all(move_dir(t_dirs[1 - t_home], "u", 0)).unwrap();
        // A moved partition's old copy, renamed but not removed yet.
        std::fs::create_dir_all(retired_dir(&partition_dir(a, "v", 0.into()))).unwrap();
        std::fs::create_dir_all(partition_dir(a, "unplaced", 0.into())).unwrap();
        let removed = remove_move_leftovers(&data_dirs, &data_dirs.placement());
        assert_eq!(removed.len(), 3, "{removed:?}");
        assert!(partition_dir(t_dirs[t_home], "t", 0.into()).is_dir());
        assert!(!partition_dir(t_dirs[1 - t_home], "t", 0.into()).exists());
        assert!(
            partition_dir(a, "unplaced", 0.into()).is_dir(),
            "data the map does not know stays"
        );
    }
}
