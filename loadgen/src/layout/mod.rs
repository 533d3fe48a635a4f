//! Disk layouts, a dimension of the benchmark matrix: how a broker's data directories are provided,
//! plus any broker flags that go with them.
//!
//! Today's disks ([`DiskKind`]): `fs`, a directory on the filesystem of the work dir; `tmpfs`, a
//! tmpfs mount of a given size (memory: no disk at all); `xfs-loop` and `ext4-loop`, a sparse image
//! file in the work dir attached with `losetup --direct-io=on`, formatted and mounted. A [`Layout`]
//! combines a disk kind with the number of data dirs (each on its own disk) and extra broker
//! arguments, so later layouts (several data dirs, a shared log per shard) fit without a new type.
//!
//! [`prepare`] sets a layout up; the [`PreparedLayout`] tears everything down when dropped — also
//! on an error half-way through `prepare` and on a panic — in reverse order: unmount, detach the
//! loop device, remove the image and the directories. Stop the broker before dropping it (declare
//! the layout before the broker process, so it drops after), or the unmount finds the disk busy.
//!
//! A layout this machine cannot provide (no mount privilege, no loop devices, mkfs missing, mount
//! refused, no direct I/O) is [`LayoutError::Skipped`] with a [`SkipReason`], so a matrix can say
//! what it left out and why.
//!
//! # Invariants worth naming
//! - A loop layout is only handed out with direct I/O on (`/sys/block/loopN/loop/dio` is 1):
//!   without it the image writes into the host's page cache and every fsync figure is fake.
//! - Everything `prepare` created lives under one fresh directory in the work dir, claimed with
//!   `create_dir` (never reused), and is removed with it.
//! - A directory is only removed recursively once nothing is mounted below it.
#![forbid(unsafe_code)]

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::mounts;

mod commands;
mod disk_kind;
mod loop_device;
mod teardown;

use commands::{find_program, mount};
pub use disk_kind::DiskKind;
use disk_kind::LoopFs;
pub use teardown::remove_leftovers;
use teardown::DiskGuard;

/// One layout of the matrix: where the data dirs live and the broker flags that go with them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// Name in reports and labels, e.g. `xfs-loop`.
    pub name: String,
    pub disk: DiskKind,
    /// Data directories, each on its own disk of kind `disk` (the broker's repeated `--data-dir`).
    pub data_dirs: usize,
    /// Broker arguments this layout adds (none for the plain disk layouts).
    pub broker_args: Vec<String>,
    /// The disk kind used instead when this machine cannot provide `disk` (said loudly, and the
    /// report names the kind used); `None`: the layout is skipped.
    #[serde(default)]
    pub fallback_disk: Option<DiskKind>,
}

impl Layout {
    /// One data dir on a disk of `kind`, no extra broker flags.
    pub fn disk(kind: DiskKind) -> Self {
        Self {
            name: kind.name().to_string(),
            disk: kind,
            data_dirs: 1,
            broker_args: Vec::new(),
            fallback_disk: None,
        }
    }

    /// `jbod`: two data dirs, each on its own XFS loop image (two tmpfs mounts where loop devices
    /// are unavailable), for moves between data dirs.
    pub fn jbod() -> Self {
        Self {
            name: JBOD.to_string(),
            disk: DiskKind::XfsLoop,
            data_dirs: 2,
            broker_args: Vec::new(),
            fallback_disk: Some(DiskKind::Tmpfs),
        }
    }

    /// The four plain disk layouts, in the order a matrix runs them.
    pub fn standard() -> Vec<Layout> {
        DiskKind::ALL.into_iter().map(Layout::disk).collect()
    }
}

impl FromStr for Layout {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == JBOD {
            return Ok(Layout::jbod());
        }
        text.parse()
            .map(Layout::disk)
            .map_err(|error| format!("{error}, {JBOD}"))
    }
}

/// Name of the two-data-dir layout.
pub const JBOD: &str = "jbod";

/// Why a layout cannot be set up on this machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    #[error("no mount privilege (CAP_SYS_ADMIN; run as root)")]
    NoMountPrivilege,
    #[error("no loop devices (/dev/loop-control missing)")]
    NoLoopControl,
    #[error("{program} not found (install {package})")]
    ToolMissing {
        program: String,
        package: &'static str,
    },
    #[error("mount refused: {detail}")]
    MountDenied { detail: String },
    #[error("no loop device available: {detail}")]
    LoopUnavailable { detail: String },
    #[error("direct I/O could not be turned on for the loop device over {backing} ({fs_type})")]
    DirectIoUnavailable { backing: PathBuf, fs_type: String },
}

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("skipped: {reason}")]
    Skipped { reason: SkipReason },
    #[error("{command} failed: {detail}")]
    Command { command: String, detail: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("layout needs at least {min} bytes per disk, got {got}")]
    TooSmall { min: u64, got: u64 },
    #[error("layout {name} has no data dirs")]
    NoDataDirs { name: String },
    /// Teardown could not undo everything; the detail says what is left.
    #[error("teardown of {root}: {detail}")]
    Teardown { root: PathBuf, detail: String },
}

impl LayoutError {
    pub fn skip_reason(&self) -> Option<&SkipReason> {
        match self {
            LayoutError::Skipped { reason } => Some(reason),
            _ => None,
        }
    }

    pub(super) fn io(path: &Path) -> impl FnOnce(io::Error) -> LayoutError + '_ {
        move |source| LayoutError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Smallest disk `prepare` accepts; mkfs.xfs itself refuses below 300 MiB.
pub const DISK_BYTES_MIN: u64 = 1 << 20;

/// What a report says about one prepared disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskDescription {
    pub data_dir: PathBuf,
    /// Filesystem type holding the data dir, e.g. `xfs`.
    pub fs_type: String,
    /// Device or source of that filesystem, e.g. `/dev/loop3`, `tmpfs`, `/dev/vda`.
    pub device: String,
    pub mount_options: String,
    /// Size of the tmpfs or image; `None` for `fs` (the host filesystem's size is not ours).
    pub size_bytes: Option<u64>,
    /// For loop disks: the image and the filesystem and device it lives on.
    pub backing: Option<String>,
    /// For loop disks: direct I/O on the loop device (always true: checked).
    pub loop_direct_io: Option<bool>,
}

/// What a report says about a prepared layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayoutDescription {
    pub layout: Layout,
    pub disks: Vec<DiskDescription>,
}

/// A layout set up and ready for a broker; torn down on drop.
#[derive(Debug)]
pub struct PreparedLayout {
    description: LayoutDescription,
    /// Dropped in order; each undoes its own disk.
    disks: Vec<DiskGuard>,
}

impl PreparedLayout {
    pub fn layout(&self) -> &Layout {
        &self.description.layout
    }

    /// The broker's data dirs, one per disk (at least one).
    pub fn data_dirs(&self) -> Vec<PathBuf> {
        self.description
            .disks
            .iter()
            .map(|disk| disk.data_dir.clone())
            .collect()
    }

    /// The first data dir (the only one of the standard layouts).
    pub fn data_dir(&self) -> &Path {
        &self.description.disks[0].data_dir
    }

    /// Extra broker arguments of the layout (the data dirs are not among them).
    pub fn broker_args(&self) -> &[String] {
        &self.description.layout.broker_args
    }

    pub fn description(&self) -> &LayoutDescription {
        &self.description
    }

    /// Tears down now and says whether everything was undone (dropping does the same, but can
    /// only print a failure).
    pub fn teardown(mut self) -> Result<(), LayoutError> {
        let mut first_error = None;
        for disk in &mut self.disks {
            if let Err(error) = disk.release() {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Sets up `layout` under `work_dir` (created if missing), each disk `size_bytes` large (`fs`
/// ignores the size: it is the host filesystem). Loop images live in `work_dir`, so it must be on
/// a real disk that supports direct I/O (not tmpfs or overlayfs).
pub fn prepare(
    layout: &Layout,
    work_dir: &Path,
    size_bytes: u64,
) -> Result<PreparedLayout, LayoutError> {
    if layout.data_dirs == 0 {
        return Err(LayoutError::NoDataDirs {
            name: layout.name.clone(),
        });
    }
    if size_bytes < DISK_BYTES_MIN {
        return Err(LayoutError::TooSmall {
            min: DISK_BYTES_MIN,
            got: size_bytes,
        });
    }
    match prepare_on(layout, layout.disk, work_dir, size_bytes) {
        Err(LayoutError::Skipped { reason }) if layout.fallback_disk.is_some() => {
            let fallback = layout.fallback_disk.expect("checked");
            eprintln!(
                "ringtail-loadgen: layout {}: {} disks unavailable ({reason}); using {} disks instead",
                layout.name, layout.disk, fallback
            );
            prepare_on(layout, fallback, work_dir, size_bytes)
        }
        other => other,
    }
}

/// `prepare` with every disk of kind `disk`; the description names that kind.
fn prepare_on(
    layout: &Layout,
    disk: DiskKind,
    work_dir: &Path,
    size_bytes: u64,
) -> Result<PreparedLayout, LayoutError> {
    check_machine(disk).map_err(|reason| LayoutError::Skipped { reason })?;
    fs::create_dir_all(work_dir).map_err(LayoutError::io(work_dir))?;
    // Absolute, so mount points compare with the mount table's paths.
    let work_dir = &work_dir.canonicalize().map_err(LayoutError::io(work_dir))?;
    let mut prepared = PreparedLayout {
        description: LayoutDescription {
            layout: Layout {
                disk,
                ..layout.clone()
            },
            disks: Vec::new(),
        },
        disks: Vec::new(),
    };
    for index in 0..layout.data_dirs {
        // On an error, `prepared` drops here and undoes the disks made so far.
        let mut guard = DiskGuard::claim(work_dir, &layout.name, index)?;
        let description = prepare_disk(disk, &mut guard, size_bytes)?;
        prepared.disks.push(guard);
        prepared.description.disks.push(description);
    }
    assert_eq!(prepared.disks.len(), layout.data_dirs);
    assert_eq!(prepared.description.disks.len(), layout.data_dirs);
    Ok(prepared)
}

/// Whether this machine has what a disk kind needs (privilege, loop devices, tools), checked
/// without creating anything: `prepare` starts with it, and a matrix can list its skips up front.
/// `prepare` may still skip later for what only trying reveals (a refused mount, no direct I/O).
pub fn check_machine(kind: DiskKind) -> Result<(), SkipReason> {
    if kind == DiskKind::Fs {
        return Ok(());
    }
    if !has_cap_sys_admin() {
        return Err(SkipReason::NoMountPrivilege);
    }
    let mut tools = vec![("mount", "mount"), ("umount", "mount")];
    if let Some(loop_fs) = kind.loop_fs() {
        if !Path::new("/dev/loop-control").exists() {
            return Err(SkipReason::NoLoopControl);
        }
        tools.push(("losetup", "mount"));
        tools.push(match loop_fs {
            LoopFs::Xfs => ("mkfs.xfs", "xfsprogs"),
            LoopFs::Ext4 => ("mkfs.ext4", "e2fsprogs"),
        });
    }
    for (program, package) in tools {
        if find_program(program).is_none() {
            return Err(SkipReason::ToolMissing {
                program: program.to_string(),
                package,
            });
        }
    }
    Ok(())
}

/// Whether this process may mount: CAP_SYS_ADMIN (bit 21) in `CapEff` of `/proc/self/status`.
fn has_cap_sys_admin() -> bool {
    const CAP_SYS_ADMIN: u32 = 21;
    let Ok(status) = fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_SYS_ADMIN) != 0)
}

/// Sets up one disk inside the guard's directory; the guard records each step as it succeeds.
fn prepare_disk(
    kind: DiskKind,
    guard: &mut DiskGuard,
    size_bytes: u64,
) -> Result<DiskDescription, LayoutError> {
    let mount_point = guard.root.join("mnt");
    fs::create_dir(&mount_point).map_err(LayoutError::io(&mount_point))?;
    let (size, backing, direct_io) = match kind {
        DiskKind::Fs => (None, None, None),
        DiskKind::Tmpfs => {
            let options = format!("size={size_bytes},mode=0755");
            mount(
                &["-t", "tmpfs", "-o", &options, "ringtail-tmpfs"],
                &mount_point,
            )?;
            guard.mount_point = Some(mount_point.clone());
            (Some(size_bytes), None, None)
        }
        DiskKind::XfsLoop | DiskKind::Ext4Loop => {
            let loop_fs = kind.loop_fs().expect("a loop kind");
            let backing = loop_device::prepare_loop(loop_fs, guard, &mount_point, size_bytes)?;
            (Some(size_bytes), Some(backing), Some(true))
        }
    };
    // The broker gets a fresh directory inside the mount: a filesystem's root may hold entries
    // of its own (ext4's lost+found) that a broker could take for a partition.
    let data_dir = mount_point.join("data");
    fs::create_dir(&data_dir).map_err(LayoutError::io(&data_dir))?;
    let entry = mounts::mount_containing(&data_dir).map_err(LayoutError::io(&data_dir))?;
    if let Some(expected) = kind.loop_fs() {
        assert_eq!(entry.fs_type, expected.fs_type(), "mounted the image");
    }
    Ok(DiskDescription {
        data_dir,
        fs_type: entry.fs_type,
        device: entry.source,
        mount_options: entry.options,
        size_bytes: size,
        backing,
        loop_direct_io: direct_io,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        // The names used on the command line and in reports parse back to the same kind.
        for kind in DiskKind::ALL {
            assert_eq!(kind.name().parse::<DiskKind>().unwrap(), kind);
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.name()));
        }
        assert!("zfs".parse::<DiskKind>().is_err());
        let layout: Layout = "xfs-loop".parse().unwrap();
        assert_eq!(layout, Layout::disk(DiskKind::XfsLoop));
        assert_eq!(layout.data_dirs, 1);
        assert_eq!(Layout::standard().len(), DiskKind::ALL.len());
        let jbod: Layout = JBOD.parse().unwrap();
        assert_eq!(jbod, Layout::jbod());
        assert_eq!(jbod.data_dirs, 2);
        assert_eq!(jbod.fallback_disk, Some(DiskKind::Tmpfs));
        let error = "zfs".parse::<Layout>().unwrap_err();
        assert!(error.contains(JBOD), "{error}");
    }

    #[test]
    fn refuses_nonsense_before_touching_anything() {
        // Size and data-dir count are checked before the work dir is even created.
        let work_dir = Path::new("/nonexistent/ringtail-layout-test");
        let error = prepare(&Layout::disk(DiskKind::Fs), work_dir, 1).unwrap_err();
        assert!(matches!(error, LayoutError::TooSmall { .. }), "{error}");
        let mut none = Layout::disk(DiskKind::Fs);
        none.data_dirs = 0;
        let error = prepare(&none, work_dir, 1 << 30).unwrap_err();
        assert!(matches!(error, LayoutError::NoDataDirs { .. }), "{error}");
        assert!(!work_dir.exists());
    }
}
