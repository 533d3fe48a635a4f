//! The data dirs (disks) of a broker: their state (online, read-only above the hard watermark,
//! offline when unreadable), their space, and where new partitions go. Shared by every shard
//! (`Arc<DataDirs>`); the one structure here that crosses threads.
//!
//! Placement: a new partition goes to the online dir with the most free space; dirs whose free
//! space is within [`crate::disk_space::FREE_BYTES_TIE_PERCENT`] of the best's capacity count as tied, and of those the
//! one with the fewest partitions wins (then the first listed). Read-only dirs are used only when
//! no dir is online. The map is persisted ([`crate::placement`]) before the partition's directory
//! is created, so a restart finds every partition in its home.
//!
//! # Invariants
//! - A dir found offline at start stays offline until restart; its partitions are never
//!   recreated elsewhere (their entries stay in the map).
//! - Saves of the map are serialized (`save_lock`) and each has a higher generation than the last.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

use tracing::{error, info, warn};

use crate::disk_space::{choose_dir, disk_space, DiskSpace, DiskWatermarks};
use crate::error::OpenError;
use crate::placement::{write_copy, PartitionKey, PlacementMap};
use crate::units::PartitionIndex;

/// Where a partition's segments live, inside its data dir.
pub fn partition_dir(data_dir: &Path, topic: &str, partition: PartitionIndex) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

/// A data dir's condition, as /metrics and DescribeLogDirs report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum DirState {
    /// Serving reads and writes.
    Online = 0,
    /// Above the hard watermark (or out of space): produce refused, reads, retention and
    /// internal writes go on. Leaves by itself when space comes back.
    ReadOnly = 1,
    /// Unreadable at start (missing, permission denied): its partitions are not served.
    Offline = 2,
}

impl DirState {
    fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::Online,
            1 => Self::ReadOnly,
            _ => Self::Offline,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::ReadOnly => "read-only",
            Self::Offline => "offline",
        }
    }
}

/// One data dir and what is known of it.
pub struct DataDir {
    path: PathBuf,
    state: AtomicU8,
    total_bytes: AtomicU64,
    free_bytes: AtomicU64,
    used_bytes: AtomicU64,
    /// Why it is offline or read-only, for DescribeLogDirs and logs.
    reason: Mutex<Option<String>>,
    /// Above the warning watermark at the last check (logs only crossings).
    over_warn: std::sync::atomic::AtomicBool,
}

impl DataDir {
    fn new(path: PathBuf, state: DirState, reason: Option<String>) -> Self {
        Self {
            path,
            state: AtomicU8::new(state as u8),
            total_bytes: AtomicU64::new(0),
            free_bytes: AtomicU64::new(0),
            used_bytes: AtomicU64::new(0),
            reason: Mutex::new(reason),
            over_warn: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn state(&self) -> DirState {
        DirState::from_u8(self.state.load(Ordering::Relaxed))
    }

    pub fn space(&self) -> DiskSpace {
        DiskSpace {
            total_bytes: self.total_bytes.load(Ordering::Relaxed),
            free_bytes: self.free_bytes.load(Ordering::Relaxed),
            used_bytes: self.used_bytes.load(Ordering::Relaxed),
        }
    }

    pub fn reason(&self) -> Option<String> {
        self.reason
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    fn set_reason(&self, reason: Option<String>) {
        *self
            .reason
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = reason;
    }
}

/// Why a partition has no usable home.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    #[error("data dir {path} of this partition is offline: {reason}")]
    Offline { path: PathBuf, reason: String },
    #[error("no data dir is online")]
    NoDirOnline,
    #[error("saving the placement map failed: {0}")]
    Save(std::io::Error),
}

impl From<PlacementError> for OpenError {
    fn from(err: PlacementError) -> Self {
        match err {
            PlacementError::Offline { path, reason } => OpenError::DataDirOffline { path, reason },
            other => OpenError::Placement {
                reason: other.to_string(),
            },
        }
    }
}

/// A partition move asked for (AlterReplicaLogDirs): running, or failed with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveStatus {
    pub dest_index: usize,
    /// `None` while it runs; the reason once it failed (kept until the next move of it).
    pub error: Option<String>,
}

/// Every data dir of the broker and the placement map.
pub struct DataDirs {
    dirs: Vec<DataDir>,
    watermarks: DiskWatermarks,
    map: Mutex<PlacementMap>,
    /// Moves running or failed, by partition (at most one entry per partition: bounded).
    moves: Mutex<BTreeMap<PartitionKey, MoveStatus>>,
    /// Serializes saves so copies are written in generation order.
    save_lock: futures_util::lock::Mutex<()>,
}

impl DataDirs {
    /// Probes each dir (blocking; at start): a readable, writable dir is online; a dir that is
    /// missing but known to the placement map, or unreadable, is offline, loudly. A missing dir
    /// never used before is created.
    pub fn open(paths: Vec<PathBuf>, watermarks: DiskWatermarks) -> Result<Self, OpenError> {
        assert!(!paths.is_empty(), "at least one data dir");
        let present: Vec<&Path> = paths
            .iter()
            .filter(|path| probe(path).is_ok())
            .map(PathBuf::as_path)
            .collect();
        let mut map = PlacementMap::load(&present).map_err(|err| OpenError::BadRegistry {
            path: err.path,
            reason: err.reason,
        })?;
        let mut dirs = Vec::with_capacity(paths.len());
        for path in paths {
            let known = map.known_dirs.contains(&path);
            let state = match probe(&path) {
                Ok(()) => Ok(()),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound && !known => {
                    std::fs::create_dir_all(&path).and_then(|()| probe(&path))
                }
                Err(err) => Err(err),
            };
            let dir = match state {
                Ok(()) => DataDir::new(path.clone(), DirState::Online, None),
                Err(err) => {
                    let partitions = map.count_in(&path);
                    error!(dir = %path.display(), %err, partitions,
                        "DATA DIR OFFLINE: its partitions are not served until it is readable and the broker restarts");
                    DataDir::new(path.clone(), DirState::Offline, Some(err.to_string()))
                }
            };
            map.known_dirs.insert(path);
            dirs.push(dir);
        }
        let data_dirs = Self {
            dirs,
            watermarks,
            map: Mutex::new(map),
            moves: Mutex::new(BTreeMap::new()),
            save_lock: futures_util::lock::Mutex::new(()),
        };
        data_dirs.refresh_space();
        Ok(data_dirs)
    }

    pub fn dirs(&self) -> &[DataDir] {
        &self.dirs
    }

    pub fn watermarks(&self) -> DiskWatermarks {
        self.watermarks
    }

    fn map(&self) -> std::sync::MutexGuard<'_, PlacementMap> {
        self.map.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// The index of `path` among the dirs.
    pub fn index_of(&self, path: &Path) -> Option<usize> {
        self.dirs.iter().position(|dir| dir.path == path)
    }

    /// The index of the dir holding a partition, if it has a home.
    pub fn home_index(&self, topic: &str, partition: i32) -> Option<usize> {
        let map = self.map();
        let home = map.partitions.get(&(topic.to_string(), partition))?;
        self.index_of(home)
    }

    /// The partitions of `topic` that the placement map records or that have a directory in a
    /// dir that is not offline. For a topic the registry does not hold, this is what a deletion
    /// cut short (a shutdown in the middle of it, a directory that could not be removed) left
    /// behind, which a new topic of that name must not take over.
    pub async fn leftover_partitions(&self, topic: &str) -> std::io::Result<Vec<i32>> {
        let mut partitions: std::collections::BTreeSet<i32> = self
            .map()
            .partitions
            .keys()
            .filter(|(name, _)| name == topic)
            .map(|(_, partition)| *partition)
            .collect();
        let paths: Vec<PathBuf> = self
            .dirs
            .iter()
            .filter(|dir| dir.state() != DirState::Offline)
            .map(|dir| dir.path.clone())
            .collect();
        let prefix = format!("{topic}-");
        let found = crate::io::blocking(move || {
            let mut found = Vec::new();
            for path in paths {
                for entry in std::fs::read_dir(&path)? {
                    let name = entry?.file_name();
                    let Some(rest) = name.to_str().and_then(|name| name.strip_prefix(&prefix))
                    else {
                        continue;
                    };
                    // Exactly the name `partition_dir` gives: "t-1" is t's, "t-1-0" is t-1's.
                    match rest.parse::<i32>() {
                        Ok(partition) if partition >= 0 && partition.to_string() == rest => {
                            found.push(partition);
                        }
                        _ => {}
                    }
                }
            }
            Ok(found)
        })
        .await?;
        partitions.extend(found);
        Ok(partitions.into_iter().collect())
    }

    /// Partitions placed in each dir (by index).
    pub fn partition_counts(&self) -> Vec<usize> {
        let map = self.map();
        self.dirs
            .iter()
            .map(|dir| map.count_in(&dir.path))
            .collect()
    }

    /// Whether Produce may append to partitions of dir `index`.
    pub fn accepts_produce(&self, index: usize) -> bool {
        self.dirs[index].state() == DirState::Online
    }

    /// Reads every dir's space (blocking statvfs) and moves dirs between online and read-only by
    /// the watermarks, logging each crossing once. Offline dirs stay offline.
    pub fn refresh_space(&self) {
        for dir in &self.dirs {
            if dir.state() == DirState::Offline {
                continue;
            }
            match disk_space(&dir.path) {
                Ok(space) => self.apply_space(dir, space),
                Err(err) => {
                    warn!(dir = %dir.path.display(), %err, "statvfs failed; state unchanged")
                }
            }
        }
    }

    fn apply_space(&self, dir: &DataDir, space: DiskSpace) {
        dir.total_bytes.store(space.total_bytes, Ordering::Relaxed);
        dir.free_bytes.store(space.free_bytes, Ordering::Relaxed);
        dir.used_bytes.store(space.used_bytes, Ordering::Relaxed);
        let marks = self.watermarks;
        let (used_percent, free_bytes) = (space.used_percent(), space.free_bytes);
        let over_warn = space.over_warn(marks);
        if dir.over_warn.swap(over_warn, Ordering::Relaxed) != over_warn {
            if over_warn {
                warn!(dir = %dir.path.display(), used_percent, free_bytes,
                    warn_used_percent = marks.warn_used_percent, "data dir above the warning watermark");
            } else {
                info!(dir = %dir.path.display(), used_percent, free_bytes, "data dir back below the warning watermark");
            }
        }
        let next = if space.over_limit(marks) {
            DirState::ReadOnly
        } else {
            DirState::Online
        };
        let previous = DirState::from_u8(dir.state.swap(next as u8, Ordering::Relaxed));
        match (previous, next) {
            (DirState::Online, DirState::ReadOnly) => {
                let reason = format!(
                    "{used_percent}% used, {free_bytes} bytes free: above --disk-limit-used-percent {} or below --min-free-bytes {}",
                    marks.limit_used_percent, marks.min_free_bytes
                );
                error!(dir = %dir.path.display(), %reason, "data dir full: refusing produce to its partitions");
                dir.set_reason(Some(reason));
            }
            (DirState::ReadOnly, DirState::Online) => {
                info!(dir = %dir.path.display(), used_percent, free_bytes, "data dir has space again: produce resumes");
                dir.set_reason(None);
            }
            _ => {}
        }
    }

    /// A write on dir `index` ran out of space: refuse produce there now rather than at the next
    /// check (which lifts it again once space is back).
    pub fn note_out_of_space(&self, index: usize, reason: &str) {
        let dir = &self.dirs[index];
        let previous = dir
            .state
            .compare_exchange(
                DirState::Online as u8,
                DirState::ReadOnly as u8,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok();
        if previous {
            error!(dir = %dir.path.display(), %reason, "data dir out of space: refusing produce to its partitions");
            dir.set_reason(Some(format!("out of space: {reason}")));
        }
    }

    /// The directory of a partition: its recorded home, else (a partition from before placement
    /// was recorded) an existing directory in an online dir, else a new home chosen by free space
    /// and recorded durably before the caller creates it.
    pub async fn home_of(&self, topic: &str, partition: i32) -> Result<PathBuf, PlacementError> {
        if let Some(home) = self.recorded_home(topic, partition)? {
            return Ok(home);
        }
        self.place(vec![(topic.to_string(), partition)]).await?;
        self.recorded_home(topic, partition)?
            .ok_or(PlacementError::NoDirOnline)
    }

    fn recorded_home(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Option<PathBuf>, PlacementError> {
        let Some(index) = self.home_index(topic, partition) else {
            return Ok(None);
        };
        let dir = &self.dirs[index];
        if dir.state() == DirState::Offline {
            return Err(PlacementError::Offline {
                path: dir.path.clone(),
                reason: dir.reason().unwrap_or_default(),
            });
        }
        Ok(Some(partition_dir(&dir.path, topic, partition.into())))
    }

    /// Records a home for each of `partitions` that has none (one save for all of them).
    pub async fn place(&self, partitions: Vec<PartitionKey>) -> Result<(), PlacementError> {
        let _saving = self.save_lock.lock().await;
        let encoded = {
            let mut map = self.map();
            let mut counts = self
                .dirs
                .iter()
                .map(|dir| map.count_in(&dir.path))
                .collect::<Vec<_>>();
            let mut changed = false;
            for key in partitions {
                let recorded = map
                    .partitions
                    .get(&key)
                    .and_then(|home| self.index_of(home));
                if recorded.is_some() {
                    continue;
                }
                let index = match self.existing_copy(&key) {
                    Some(index) => index,
                    None => self.choose(&counts).ok_or(PlacementError::NoDirOnline)?,
                };
                if let Some(stale) = map.partitions.get(&key) {
                    warn!(topic = %key.0, partition = key.1, old = %stale.display(),
                        "partition's recorded data dir is no longer configured; placing it anew");
                }
                counts[index] += 1;
                map.partitions.insert(key, self.dirs[index].path.clone());
                changed = true;
            }
            if !changed {
                return Ok(());
            }
            map.generation += 1;
            map.encode()
        };
        self.save(encoded).await
    }

    /// Records `dest_index` as a partition's home: the commit point of a move.
    pub async fn set_home(
        &self,
        topic: &str,
        partition: i32,
        dest_index: usize,
    ) -> Result<(), PlacementError> {
        let _saving = self.save_lock.lock().await;
        let (encoded, previous) = {
            let mut map = self.map();
            let key = (topic.to_string(), partition);
            let previous = map
                .partitions
                .insert(key, self.dirs[dest_index].path.clone());
            map.generation += 1;
            (map.encode(), previous)
        };
        let saved = self.save(encoded).await;
        if saved.is_err() {
            // Not durable: keep serving the old home in memory too.
            let mut map = self.map();
            let key = (topic.to_string(), partition);
            match previous {
                Some(previous) => map.partitions.insert(key, previous),
                None => map.partitions.remove(&key),
            };
        }
        saved
    }

    /// Registers a move of a partition to `dest_index`; false if one is already running.
    pub fn begin_move(&self, topic: &str, partition: i32, dest_index: usize) -> bool {
        let mut moves = self
            .moves
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let key = (topic.to_string(), partition);
        if moves.get(&key).is_some_and(|status| status.error.is_none()) {
            return false;
        }
        moves.insert(
            key,
            MoveStatus {
                dest_index,
                error: None,
            },
        );
        true
    }

    /// Ends a move: forgotten if it succeeded, kept with its reason if it failed.
    pub fn end_move(&self, topic: &str, partition: i32, result: Result<(), String>) {
        let mut moves = self
            .moves
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let key = (topic.to_string(), partition);
        match result {
            Ok(()) => {
                moves.remove(&key);
            }
            Err(reason) => {
                if let Some(status) = moves.get_mut(&key) {
                    status.error = Some(reason);
                }
            }
        }
    }

    /// Moves running or failed.
    pub fn moves(&self) -> Vec<(PartitionKey, MoveStatus)> {
        let moves = self
            .moves
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        moves
            .iter()
            .map(|(key, status)| (key.clone(), status.clone()))
            .collect()
    }

    /// A copy of the placement map (for start-up clean-up and tools).
    pub fn placement(&self) -> PlacementMap {
        self.map().clone()
    }

    /// Forgets the homes of `partitions` (topic deletion), after their files are removed.
    pub async fn forget(&self, partitions: Vec<PartitionKey>) -> Result<(), PlacementError> {
        let _saving = self.save_lock.lock().await;
        let encoded = {
            let mut map = self.map();
            let before = map.partitions.len();
            for key in &partitions {
                map.partitions.remove(key);
            }
            if map.partitions.len() == before {
                return Ok(());
            }
            map.generation += 1;
            map.encode()
        };
        self.save(encoded).await
    }

    /// Writes the map to every dir that is not offline. One copy written is enough to go on; a
    /// dir whose copy fails is logged (its copy lags, and the newest copy wins at load).
    async fn save(&self, encoded: Vec<u8>) -> Result<(), PlacementError> {
        let targets: Vec<PathBuf> = self
            .dirs
            .iter()
            .filter(|dir| dir.state() != DirState::Offline)
            .map(|dir| dir.path.clone())
            .collect();
        let results = crate::io::blocking(move || {
            Ok(targets
                .into_iter()
                .map(|dir| {
                    let result = write_copy(&dir, &encoded);
                    (dir, result)
                })
                .collect::<Vec<_>>())
        })
        .await
        .map_err(PlacementError::Save)?;
        let mut first_error = None;
        let mut written = 0;
        for (dir, result) in results {
            match result {
                Ok(()) => written += 1,
                Err(err) => {
                    warn!(dir = %dir.display(), %err, "writing the placement map copy failed");
                    first_error.get_or_insert(err);
                }
            }
        }
        match first_error {
            Some(err) if written == 0 => Err(PlacementError::Save(err)),
            _ => Ok(()),
        }
    }

    /// An online dir that already holds the partition's directory (data from before placement
    /// was recorded, when a hash picked the dir).
    fn existing_copy(&self, (topic, partition): &PartitionKey) -> Option<usize> {
        self.dirs.iter().position(|dir| {
            dir.state() != DirState::Offline
                && partition_dir(&dir.path, topic, (*partition).into()).is_dir()
        })
    }

    /// The dir a new partition goes to, given the partition counts so far.
    fn choose(&self, counts: &[usize]) -> Option<usize> {
        let candidates = |state: DirState| -> Vec<usize> {
            (0..self.dirs.len())
                .filter(|&index| self.dirs[index].state() == state)
                .collect()
        };
        let mut pool = candidates(DirState::Online);
        if pool.is_empty() {
            pool = candidates(DirState::ReadOnly);
        }
        let spaces: Vec<DiskSpace> = pool.iter().map(|&index| self.dirs[index].space()).collect();
        choose_dir(&pool, &spaces, counts)
    }
}

/// Readable and writable: a listing and a probe file.
fn probe(path: &Path) -> std::io::Result<()> {
    std::fs::read_dir(path)?;
    let probe_path = path.join(".probe");
    std::fs::write(&probe_path, b"")?;
    std::fs::remove_file(&probe_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[compio::test]
    async fn placement_survives_a_reopen_and_a_missing_known_dir_is_offline() {
        // The map is what a restart trusts: same homes; a lost disk's partitions stay offline.
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        let dirs = DataDirs::open(vec![a.clone(), b.clone()], DiskWatermarks::default()).unwrap();
        dirs.place((0..4).map(|p| ("t".to_string(), p)).collect())
            .await
            .unwrap();
        let homes: Vec<_> = (0..4).map(|p| dirs.home_index("t", p).unwrap()).collect();
        assert_eq!(dirs.partition_counts().iter().sum::<usize>(), 4);
        drop(dirs);
        let reopened =
            DataDirs::open(vec![a.clone(), b.clone()], DiskWatermarks::default()).unwrap();
        let again: Vec<_> = (0..4)
            .map(|p| reopened.home_index("t", p).unwrap())
            .collect();
        assert_eq!(homes, again);
        drop(reopened);
        std::fs::remove_dir_all(&b).unwrap();
        let degraded =
            DataDirs::open(vec![a.clone(), b.clone()], DiskWatermarks::default()).unwrap();
        assert_eq!(degraded.dirs()[1].state(), DirState::Offline);
        assert!(!b.exists(), "a known missing dir is not recreated");
        for partition in 0..4 {
            let home = degraded.home_of("t", partition).await;
            match homes[partition as usize] {
                0 => assert!(home.unwrap().starts_with(&a)),
                _ => assert!(matches!(home, Err(PlacementError::Offline { .. }))),
            }
        }
    }
}
