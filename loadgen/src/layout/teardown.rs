//! Undoing a layout: each disk's [`DiskGuard`] records what was set up and undoes it in reverse
//! order (unmount, detach the loop device, remove the image and the directory), on drop too; and
//! [`remove_leftovers`] undoes what a killed loadgen left behind.
#![forbid(unsafe_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::commands::run;
use super::loop_device::loops_backed_under;
use super::LayoutError;
use crate::mounts::{self, MountEntry};

/// Names the directories of concurrent `prepare` calls in one process apart.
static DISK_SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Attempts and pause for an unmount that finds the disk busy (a just-stopped broker's files are
/// still being closed).
const UNMOUNT_ATTEMPTS: u32 = 20;
const UNMOUNT_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// What has been set up for one disk so far, undone in reverse order by `release` (on drop too).
#[derive(Debug)]
pub(super) struct DiskGuard {
    /// A fresh directory in the work dir that holds everything else; removed last.
    pub(super) root: PathBuf,
    pub(super) mount_point: Option<PathBuf>,
    pub(super) loop_device: Option<PathBuf>,
    pub(super) image: Option<PathBuf>,
}

impl DiskGuard {
    /// Claims a fresh directory `<work_dir>/<layout>-<index>-<pid>-<sequence>`.
    pub(super) fn claim(
        work_dir: &Path,
        layout_name: &str,
        index: usize,
    ) -> Result<Self, LayoutError> {
        let sequence = DISK_SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let name = format!("{layout_name}-{index}-{}-{sequence}", std::process::id());
        let root = work_dir.join(name);
        fs::create_dir(&root).map_err(LayoutError::io(&root))?;
        Ok(Self {
            root,
            mount_point: None,
            loop_device: None,
            image: None,
        })
    }

    /// Undoes every step still recorded; tries them all and reports the first failure. Called
    /// twice, the second call has nothing left to do.
    pub(super) fn release(&mut self) -> Result<(), LayoutError> {
        let mut problems = Vec::new();
        if let Some(mount_point) = self.mount_point.take() {
            if let Err(problem) = unmount(&mount_point) {
                problems.push(problem);
            }
        }
        if let Some(device) = self.loop_device.take() {
            let device_text = device.to_string_lossy().into_owned();
            if let Err(error) = run("losetup", &["-d", &device_text]) {
                problems.push(error.to_string());
            }
        }
        if let Some(image) = self.image.take() {
            if let Err(error) = fs::remove_file(&image) {
                problems.push(format!("removing {}: {error}", image.display()));
            }
        }
        if self.root.exists() {
            match mounts::mounts_under(&self.root) {
                Ok(left) if left.is_empty() => {
                    if let Err(error) = fs::remove_dir_all(&self.root) {
                        problems.push(format!("removing {}: {error}", self.root.display()));
                    }
                }
                Ok(left) => {
                    problems.push(format!("left in place, still mounted: {}", describe(&left)))
                }
                Err(error) => problems.push(format!("reading the mount table: {error}")),
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        Err(LayoutError::Teardown {
            root: self.root.clone(),
            detail: problems.join("; "),
        })
    }
}

impl Drop for DiskGuard {
    fn drop(&mut self) {
        if let Err(error) = self.release() {
            eprintln!("ringtail-loadgen: layout {error}");
        }
    }
}

/// `umount`, retried while the disk is busy; as a last resort a lazy unmount, which detaches the
/// filesystem now and frees it when its last file closes (then reported, not silent).
fn unmount(mount_point: &Path) -> Result<(), String> {
    let target = mount_point.to_string_lossy().into_owned();
    let mut last = String::new();
    for _ in 0..UNMOUNT_ATTEMPTS {
        match run("umount", &[&target]) {
            Ok(_) => return Ok(()),
            Err(error) => last = error.to_string(),
        }
        if !last.to_lowercase().contains("busy") {
            break;
        }
        std::thread::sleep(UNMOUNT_RETRY_PAUSE);
    }
    match run("umount", &["--lazy", &target]) {
        Ok(_) => Err(format!("{last}{LAZILY}")),
        Err(error) => Err(format!("{last}; then {error}")),
    }
}

/// Undoes what earlier, killed loadgen processes left in `work_dir` (a SIGKILL skips every drop):
/// for each layout directory whose creator (the pid in its name) no longer runs, unmounts what
/// is mounted below it, detaches loop devices backed by files in it and removes it. Returns the
/// directories removed. Directories of running processes are not touched.
pub fn remove_leftovers(work_dir: &Path) -> Result<Vec<PathBuf>, LayoutError> {
    let Ok(entries) = fs::read_dir(work_dir) else {
        return Ok(Vec::new());
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = creator_pid(&entry.file_name().to_string_lossy()) else {
            continue;
        };
        if Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        let root = entry
            .path()
            .canonicalize()
            .map_err(LayoutError::io(&entry.path()))?;
        let mut mounted = mounts::mounts_under(&root).map_err(LayoutError::io(&root))?;
        // Deepest first, so nothing is unmounted from under another mount.
        mounted.sort_by_key(|mount| std::cmp::Reverse(mount.mount_point.components().count()));
        let teardown = |detail| LayoutError::Teardown {
            root: root.clone(),
            detail,
        };
        for mount in mounted {
            // A lazy unmount (the disk was busy) is good enough for a leftover: it is detached.
            if let Err(detail) = unmount(&mount.mount_point) {
                if !detail.ends_with(LAZILY) {
                    return Err(teardown(detail));
                }
            }
        }
        for device in loops_backed_under(&root) {
            run("losetup", &["-d", &device.to_string_lossy()])?;
        }
        let left = mounts::mounts_under(&root).map_err(LayoutError::io(&root))?;
        if !left.is_empty() {
            return Err(teardown(format!("still mounted: {}", describe(&left))));
        }
        fs::remove_dir_all(&root).map_err(LayoutError::io(&root))?;
        removed.push(root);
    }
    Ok(removed)
}

/// The pid in a directory name made by `DiskGuard::claim`: `<layout>-<index>-<pid>-<sequence>`.
fn creator_pid(name: &str) -> Option<u32> {
    let mut parts = name.rsplitn(4, '-');
    let sequence = parts.next()?;
    let pid = parts.next()?;
    let index = parts.next()?;
    let _layout = parts.next()?;
    sequence.parse::<u64>().ok()?;
    index.parse::<usize>().ok()?;
    pid.parse().ok()
}

/// Ends the error of an unmount that fell back to a lazy one.
const LAZILY: &str = "; unmounted lazily instead";

fn describe(entries: &[MountEntry]) -> String {
    let parts: Vec<String> = entries
        .iter()
        .map(|entry| format!("{} ({})", entry.mount_point.display(), entry.fs_type))
        .collect();
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftover_names_give_their_creator() {
        // The pid is read back from names `claim` makes, layout names with dashes included.
        assert_eq!(creator_pid("xfs-loop-0-4242-7"), Some(4242));
        assert_eq!(creator_pid("fs-1-17-0"), Some(17));
        assert_eq!(creator_pid("out"), None);
        assert_eq!(creator_pid("broker-ringtail.log"), None);
        assert_eq!(creator_pid("a-b-c-d"), None);
    }
}
