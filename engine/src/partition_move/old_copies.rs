//! A moved partition's old copy: renamed out of the partition's name under the open lock (after
//! the commit point) and removed once the lock is released; and at start, the leftovers of moves
//! a crash interrupted.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use tracing::warn;

use crate::data_dirs::DataDirs;
use crate::placement::PlacementMap;
use crate::shard::partition_dir;

/// Suffix of a copy being made (here with the other leftover names: start-up removes both).
pub const MOVE_SUFFIX: &str = ".move";
/// Suffix of a moved partition's old copy, renamed out of the partition's name to be removed.
pub const DELETE_SUFFIX: &str = "-delete";

/// The longest file name Linux file systems take (NAME_MAX).
const FILE_NAME_BYTES_MAX: usize = 255;

/// The name a moved partition's old copy `source` (`<topic>-<partition>`) takes until it is
/// removed: Kafka's `<topic>-<partition>.<id>-delete`, the topic shortened as Kafka does when the
/// name would pass [`FILE_NAME_BYTES_MAX`] (a 249-character topic leaves no room for the id). A
/// partition directory's name ends in its number, so no partition (of any topic name) is ever
/// taken for it, nor it for one.
fn retired_dir(source: &Path) -> PathBuf {
    let name = source
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (topic, partition) = name.rsplit_once('-').unwrap_or((name.as_str(), ""));
    let suffix = format!(
        "-{partition}.{}{DELETE_SUFFIX}",
        uuid::Uuid::new_v4().simple()
    );
    let mut topic_bytes = topic
        .len()
        .min(FILE_NAME_BYTES_MAX.saturating_sub(suffix.len()));
    // Kafka's topic names are ASCII; a char boundary all the same.
    while !topic.is_char_boundary(topic_bytes) {
        topic_bytes -= 1;
    }
    source.with_file_name(format!("{}{suffix}", &topic[..topic_bytes]))
}

/// Takes a moved partition's old copy out of the partition's name (under the open lock, after the
/// commit point) and returns where it went, for [`remove_old_copy`] once the lock is released. If
/// it cannot be renamed it is removed here: under its name a partition made again later would be
/// placed in it and recover the deleted records.
pub(super) async fn retire_old_copy(source: &Path) -> Option<PathBuf> {
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
pub(super) async fn remove_old_copy(path: PathBuf) {
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

#[cfg(test)]
mod tests {
    use super::super::{move_dir, two_dirs};
    use super::*;

    #[test]
    fn an_old_copy_of_the_longest_topic_name_can_be_renamed() {
        // Kafka's longest topic name (249 characters) with a partition number leaves 255 bytes
        // at most for the directory's name; the old copy's name must fit too (as Kafka's does,
        // the topic shortened), or the rename fails and the removal happens under the lock.
        let root = tempfile::tempdir().unwrap();
        let topic = "t".repeat(249);
        for partition in [0, 99_999] {
            let source = partition_dir(root.path(), &topic, partition.into());
            std::fs::create_dir(&source).unwrap();
            let retired = retired_dir(&source);
            assert_eq!(retired.parent(), source.parent());
            std::fs::rename(&source, &retired).unwrap();
            let name = retired.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                name.ends_with(DELETE_SUFFIX) && name.contains(&format!("-{partition}.")),
                "{name}"
            );
        }
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
