//! The placement map: which data dir holds each partition, persisted so a restart finds every
//! partition where it is, and so a partition whose disk is missing is reported offline instead of
//! being recreated empty on another disk.
//!
//! # Byte map of `placement.json`
//! A UTF-8 JSON document in the root of *every* online data dir (so losing one disk does not lose
//! the map):
//! `{"version": 1, "generation": u64, "data_dirs": [path, ...],
//!   "partitions": [{"topic": name, "partition": i32, "data_dir": path}, ...]}`.
//! `data_dirs` lists every data dir the broker has ever used (a known dir that is missing at start
//! is a lost disk, not a fresh one). Each copy is replaced atomically (temp file, fsync, rename,
//! fsync of the directory). At load the copy with the highest `generation` wins; a copy that
//! cannot be parsed is skipped with a warning when another copy is readable.
//!
//! # Invariants
//! - A partition has at most one entry; `generation` strictly increases with each save.
//! - What `load` returns is what the last completed save wrote to at least one readable dir.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const PLACEMENT_FILE_NAME: &str = "placement.json";
const PLACEMENT_VERSION: u32 = 1;

/// A partition's key in the map: topic name and partition number.
pub type PartitionKey = (String, i32);

#[derive(Serialize, Deserialize)]
struct PlacementEntry {
    topic: String,
    partition: i32,
    data_dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct PlacementFile {
    version: u32,
    generation: u64,
    data_dirs: Vec<PathBuf>,
    partitions: Vec<PlacementEntry>,
}

/// Why no placement map could be loaded.
#[derive(Debug, thiserror::Error)]
#[error("placement map {path} is unreadable: {reason}")]
pub struct PlacementLoadError {
    pub path: PathBuf,
    pub reason: String,
}

/// The partitions' homes, in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlacementMap {
    pub generation: u64,
    /// Every data dir ever used by this broker.
    pub known_dirs: BTreeSet<PathBuf>,
    pub partitions: BTreeMap<PartitionKey, PathBuf>,
}

impl PlacementMap {
    /// The newest copy among `dirs` (blocking; runs at start). No copy anywhere: an empty map.
    /// Every copy present but unparsable: an error, since starting empty would recreate
    /// partitions on the wrong disks.
    pub fn load(dirs: &[&Path]) -> Result<Self, PlacementLoadError> {
        let mut best: Option<Self> = None;
        let mut first_error = None;
        for dir in dirs {
            remove_leftover_temp(dir);
            let path = dir.join(PLACEMENT_FILE_NAME);
            let bytes = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => {
                    tracing::warn!(path = %path.display(), %err, "placement map copy unreadable");
                    first_error.get_or_insert(PlacementLoadError {
                        path,
                        reason: err.to_string(),
                    });
                    continue;
                }
            };
            match Self::decode(&bytes) {
                Ok(map) => {
                    if best.as_ref().is_none_or(|b| map.generation > b.generation) {
                        best = Some(map);
                    }
                }
                Err(reason) => {
                    tracing::warn!(path = %path.display(), %reason, "placement map copy corrupt; skipped");
                    first_error.get_or_insert(PlacementLoadError { path, reason });
                }
            }
        }
        match (best, first_error) {
            (Some(map), _) => Ok(map),
            (None, Some(err)) => Err(err),
            (None, None) => Ok(Self::default()),
        }
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        let file: PlacementFile = serde_json::from_slice(bytes).map_err(|err| err.to_string())?;
        if file.version != PLACEMENT_VERSION {
            return Err(format!("unsupported version {}", file.version));
        }
        let mut partitions = BTreeMap::new();
        for entry in file.partitions {
            let key = (entry.topic, entry.partition);
            if partitions.insert(key.clone(), entry.data_dir).is_some() {
                return Err(format!("partition {}-{} listed twice", key.0, key.1));
            }
        }
        Ok(Self {
            generation: file.generation,
            known_dirs: file.data_dirs.into_iter().collect(),
            partitions,
        })
    }

    /// The document a save writes (the caller bumps `generation` first).
    pub fn encode(&self) -> Vec<u8> {
        let file = PlacementFile {
            version: PLACEMENT_VERSION,
            generation: self.generation,
            data_dirs: self.known_dirs.iter().cloned().collect(),
            partitions: self
                .partitions
                .iter()
                .map(|((topic, partition), data_dir)| PlacementEntry {
                    topic: topic.clone(),
                    partition: *partition,
                    data_dir: data_dir.clone(),
                })
                .collect(),
        };
        serde_json::to_vec_pretty(&file).expect("a placement map always serializes")
    }

    /// Partitions whose home is `dir`.
    pub fn count_in(&self, dir: &Path) -> usize {
        self.partitions.values().filter(|home| *home == dir).count()
    }
}

/// Removes the temp copy a save cut short by a crash left (before its rename): nothing reads it,
/// but it would hold its space for good. Exact name only; load runs at start, before any save.
/// A failed removal is logged and retried at the next start.
fn remove_leftover_temp(dir: &Path) {
    let temp = dir.join(format!("{PLACEMENT_FILE_NAME}.tmp"));
    match std::fs::remove_file(&temp) {
        Ok(()) => {
            tracing::warn!(path = %temp.display(), "removed a placement map temp a crash left")
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => tracing::warn!(path = %temp.display(), %err, "a placement map temp stays"),
    }
}

/// Writes `bytes` as `dir/placement.json` durably (blocking): temp file, fsync, rename, fsync of
/// the directory.
pub fn write_copy(dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let path = dir.join(PLACEMENT_FILE_NAME);
    let temp_path = dir.join(format!("{PLACEMENT_FILE_NAME}.tmp"));
    let mut temp = std::fs::File::create(&temp_path)?;
    temp.write_all(bytes)?;
    temp.sync_all()?;
    drop(temp);
    std::fs::rename(&temp_path, &path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_with(generation: u64, home: &Path) -> PlacementMap {
        let mut map = PlacementMap {
            generation,
            ..PlacementMap::default()
        };
        map.known_dirs.insert(home.to_path_buf());
        map.partitions.insert(("orders".into(), 3), home.into());
        map
    }

    #[test]
    fn the_newest_readable_copy_wins() {
        // Copies in several dirs may lag one another after a crash mid-save: the newest counts.
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        write_copy(a.path(), &map_with(4, a.path()).encode()).unwrap();
        write_copy(b.path(), &map_with(5, b.path()).encode()).unwrap();
        let loaded = PlacementMap::load(&[a.path(), b.path()]).unwrap();
        assert_eq!(loaded, map_with(5, b.path()));
        assert_eq!(loaded.count_in(b.path()), 1);
        assert_eq!(loaded.count_in(a.path()), 0);
    }

    #[test]
    fn a_corrupt_copy_is_skipped_but_all_corrupt_is_an_error() {
        // One bad disk must not stop the broker; no good copy at all must not start it empty.
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::write(a.path().join(PLACEMENT_FILE_NAME), b"{garbage").unwrap();
        assert!(PlacementMap::load(&[a.path(), b.path()]).is_err());
        write_copy(b.path(), &map_with(1, b.path()).encode()).unwrap();
        assert_eq!(
            PlacementMap::load(&[a.path(), b.path()]).unwrap(),
            map_with(1, b.path())
        );
        let none = tempfile::tempdir().unwrap();
        assert_eq!(
            PlacementMap::load(&[none.path()]).unwrap(),
            PlacementMap::default()
        );
    }

    #[test]
    fn a_temp_copy_a_crash_left_is_removed_at_load() {
        // A crash between a save's temp file and its rename leaves `placement.json.tmp` in the
        // dir's root: nothing reads it, but it would stay for good. Only that name goes.
        let dir = tempfile::tempdir().unwrap();
        write_copy(dir.path(), &map_with(2, dir.path()).encode()).unwrap();
        let temp = dir.path().join(format!("{PLACEMENT_FILE_NAME}.tmp"));
        std::fs::write(&temp, b"{half a map").unwrap();
        let foreign = dir.path().join("placement.json.tmp.keep");
        std::fs::write(&foreign, b"not ours").unwrap();
        let none = tempfile::tempdir().unwrap();
        let none_temp = none.path().join(format!("{PLACEMENT_FILE_NAME}.tmp"));
        std::fs::write(&none_temp, b"{").unwrap();
        assert_eq!(
            PlacementMap::load(&[dir.path(), none.path()]).unwrap(),
            map_with(2, dir.path())
        );
        assert!(
            !temp.exists() && !none_temp.exists(),
            "the temps were removed"
        );
        assert!(foreign.exists(), "another file was removed");
    }

    #[test]
    fn a_partition_listed_twice_is_refused() {
        // Two homes for one partition would open two logs of it.
        let text = br#"{"version":1,"generation":1,"data_dirs":[],"partitions":[
            {"topic":"t","partition":0,"data_dir":"/a"},{"topic":"t","partition":0,"data_dir":"/b"}]}"#;
        assert!(PlacementMap::decode(text).is_err());
        assert!(PlacementMap::decode(
            br#"{"version":9,"generation":1,"data_dirs":[],"partitions":[]}"#
        )
        .is_err());
    }
}
