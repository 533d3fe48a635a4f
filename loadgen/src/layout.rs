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

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::mounts::{self, MountEntry};

/// How one data directory is provided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum DiskKind {
    /// A directory on the filesystem of the work dir.
    Fs,
    /// A tmpfs mount: memory, no device; the ceiling of what storage could give.
    Tmpfs,
    /// A sparse image on the work dir's filesystem, on a direct-I/O loop device, formatted XFS.
    XfsLoop,
    /// The same, formatted ext4.
    Ext4Loop,
}

impl DiskKind {
    pub const ALL: [DiskKind; 4] = [
        DiskKind::Fs,
        DiskKind::Tmpfs,
        DiskKind::XfsLoop,
        DiskKind::Ext4Loop,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DiskKind::Fs => "fs",
            DiskKind::Tmpfs => "tmpfs",
            DiskKind::XfsLoop => "xfs-loop",
            DiskKind::Ext4Loop => "ext4-loop",
        }
    }

    /// The filesystem a loop kind formats its image with; `None` for the others.
    fn loop_fs(self) -> Option<LoopFs> {
        match self {
            DiskKind::XfsLoop => Some(LoopFs::Xfs),
            DiskKind::Ext4Loop => Some(LoopFs::Ext4),
            DiskKind::Fs | DiskKind::Tmpfs => None,
        }
    }
}

impl fmt::Display for DiskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DiskKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        DiskKind::ALL
            .into_iter()
            .find(|kind| kind.name() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = DiskKind::ALL.iter().map(|kind| kind.name()).collect();
                format!("unknown disk layout {text:?}; known: {}", names.join(", "))
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LoopFs {
    Xfs,
    Ext4,
}

impl LoopFs {
    fn mkfs(self) -> &'static str {
        match self {
            LoopFs::Xfs => "mkfs.xfs",
            LoopFs::Ext4 => "mkfs.ext4",
        }
    }

    fn mkfs_args(self) -> &'static [&'static str] {
        match self {
            LoopFs::Xfs => &["-q", "-f"],
            // Initialise inode tables and journal now: by default ext4 zeroes them lazily from a
            // kernel thread after mounting, which would write behind the benchmark's back.
            LoopFs::Ext4 => &["-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0"],
        }
    }

    fn fs_type(self) -> &'static str {
        match self {
            LoopFs::Xfs => "xfs",
            LoopFs::Ext4 => "ext4",
        }
    }
}

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
}

impl Layout {
    /// One data dir on a disk of `kind`, no extra broker flags.
    pub fn disk(kind: DiskKind) -> Self {
        Self {
            name: kind.name().to_string(),
            disk: kind,
            data_dirs: 1,
            broker_args: Vec::new(),
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
        text.parse().map(Layout::disk)
    }
}

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

    fn io(path: &Path) -> impl FnOnce(io::Error) -> LayoutError + '_ {
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
    check_machine(layout.disk).map_err(|reason| LayoutError::Skipped { reason })?;
    fs::create_dir_all(work_dir).map_err(LayoutError::io(work_dir))?;
    // Absolute, so mount points compare with the mount table's paths.
    let work_dir = &work_dir.canonicalize().map_err(LayoutError::io(work_dir))?;
    let mut prepared = PreparedLayout {
        description: LayoutDescription {
            layout: layout.clone(),
            disks: Vec::new(),
        },
        disks: Vec::new(),
    };
    for index in 0..layout.data_dirs {
        // On an error, `prepared` drops here and undoes the disks made so far.
        let mut guard = DiskGuard::claim(work_dir, &layout.name, index)?;
        let description = prepare_disk(layout.disk, &mut guard, size_bytes)?;
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

/// `program` in PATH or in the sbin directories (a non-login root shell may lack them in PATH).
fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
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
            let backing = prepare_loop(loop_fs, guard, &mount_point, size_bytes)?;
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

/// Image → direct-I/O loop device → mkfs → mount. Returns the backing's description.
fn prepare_loop(
    loop_fs: LoopFs,
    guard: &mut DiskGuard,
    mount_point: &Path,
    size_bytes: u64,
) -> Result<String, LayoutError> {
    let image = guard.root.join("disk.img");
    let file = fs::File::create_new(&image).map_err(LayoutError::io(&image))?;
    guard.image = Some(image.clone());
    // Sparse: blocks are allocated as the filesystem writes them.
    file.set_len(size_bytes).map_err(LayoutError::io(&image))?;
    drop(file);
    let backing_mount = mounts::mount_containing(&image).map_err(LayoutError::io(&image))?;

    let device = attach_loop(&image)?;
    guard.loop_device = Some(device.clone());
    if !loop_direct_io(&device)? {
        return Err(LayoutError::Skipped {
            reason: SkipReason::DirectIoUnavailable {
                backing: image,
                fs_type: backing_mount.fs_type,
            },
        });
    }
    let device_text = device.to_string_lossy().into_owned();
    let mut mkfs_args: Vec<&str> = loop_fs.mkfs_args().to_vec();
    mkfs_args.push(&device_text);
    run(loop_fs.mkfs(), &mkfs_args)?;
    mount(&["-t", loop_fs.fs_type(), &device_text], mount_point)?;
    guard.mount_point = Some(mount_point.to_path_buf());
    Ok(format!(
        "{} on {} {}",
        image.display(),
        backing_mount.fs_type,
        backing_mount.source
    ))
}

/// `losetup --direct-io=on --find --show IMAGE`: the device it attached, e.g. `/dev/loop3`.
fn attach_loop(image: &Path) -> Result<PathBuf, LayoutError> {
    let image_text = image.to_string_lossy();
    let output = run(
        "losetup",
        &["--direct-io=on", "--find", "--show", &image_text],
    );
    let stdout = match output {
        Ok(stdout) => stdout,
        Err(LayoutError::Command { detail, .. }) if is_denial(&detail) || is_no_loop(&detail) => {
            return Err(LayoutError::Skipped {
                reason: SkipReason::LoopUnavailable { detail },
            })
        }
        Err(error) => return Err(error),
    };
    let device = PathBuf::from(stdout.trim());
    if !device.starts_with("/dev") {
        return Err(LayoutError::Command {
            command: "losetup --show".to_string(),
            detail: format!("printed {stdout:?}, not a device"),
        });
    }
    Ok(device)
}

/// Whether the loop device does direct I/O to its image (`/sys/block/loopN/loop/dio`).
fn loop_direct_io(device: &Path) -> Result<bool, LayoutError> {
    let name = device.file_name().unwrap_or_default();
    let flag = Path::new("/sys/block").join(name).join("loop/dio");
    let text = fs::read_to_string(&flag).map_err(LayoutError::io(&flag))?;
    Ok(text.trim() == "1")
}

fn mount(args: &[&str], mount_point: &Path) -> Result<(), LayoutError> {
    let target = mount_point.to_string_lossy();
    let mut all = args.to_vec();
    all.push(&target);
    match run("mount", &all) {
        Err(LayoutError::Command { detail, .. }) if is_denial(&detail) => {
            Err(LayoutError::Skipped {
                reason: SkipReason::MountDenied { detail },
            })
        }
        other => other.map(drop),
    }
}

fn is_denial(stderr: &str) -> bool {
    let text = stderr.to_lowercase();
    [
        "permission denied",
        "operation not permitted",
        "must be superuser",
    ]
    .iter()
    .any(|phrase| text.contains(phrase))
}

fn is_no_loop(stderr: &str) -> bool {
    let text = stderr.to_lowercase();
    text.contains("cannot find an unused loop device") || text.contains("no such device")
}

/// Runs a program to completion; its stdout on success, its stderr (or why it could not start)
/// in a `Command` error otherwise.
fn run(program: &str, args: &[&str]) -> Result<String, LayoutError> {
    let command = format!("{program} {}", args.join(" "));
    let path = find_program(program).ok_or_else(|| LayoutError::Command {
        command: command.clone(),
        detail: "not found".to_string(),
    })?;
    let output = Command::new(path)
        .args(args)
        .output()
        .map_err(|error| LayoutError::Command {
            command: command.clone(),
            detail: error.to_string(),
        })?;
    if !output.status.success() {
        // The head of stderr says what went wrong; tools like mkfs.xfs append a page of usage.
        let stderr = String::from_utf8_lossy(&output.stderr);
        let head: Vec<&str> = stderr.trim().lines().take(STDERR_LINES_MAX).collect();
        return Err(LayoutError::Command {
            command,
            detail: format!("{}: {}", output.status, head.join(" / ")),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Lines of a failed command's stderr kept in its error.
const STDERR_LINES_MAX: usize = 3;

/// Names the directories of concurrent `prepare` calls in one process apart.
static DISK_SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Attempts and pause for an unmount that finds the disk busy (a just-stopped broker's files are
/// still being closed).
const UNMOUNT_ATTEMPTS: u32 = 20;
const UNMOUNT_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// What has been set up for one disk so far, undone in reverse order by `release` (on drop too).
#[derive(Debug)]
struct DiskGuard {
    /// A fresh directory in the work dir that holds everything else; removed last.
    root: PathBuf,
    mount_point: Option<PathBuf>,
    loop_device: Option<PathBuf>,
    image: Option<PathBuf>,
}

impl DiskGuard {
    /// Claims a fresh directory `<work_dir>/<layout>-<index>-<pid>-<sequence>`.
    fn claim(work_dir: &Path, layout_name: &str, index: usize) -> Result<Self, LayoutError> {
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
    fn release(&mut self) -> Result<(), LayoutError> {
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

/// Loop devices whose backing file lies under `dir` (`/sys/block/loopN/loop/backing_file`).
fn loops_backed_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(devices) = fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    devices
        .flatten()
        .filter(|device| {
            fs::read_to_string(device.path().join("loop/backing_file"))
                .is_ok_and(|file| Path::new(file.trim()).starts_with(dir))
        })
        .map(|device| Path::new("/dev").join(device.file_name()))
        .collect()
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

    #[test]
    fn leftover_names_give_their_creator() {
        // The pid is read back from names `claim` makes, layout names with dashes included.
        assert_eq!(creator_pid("xfs-loop-0-4242-7"), Some(4242));
        assert_eq!(creator_pid("fs-1-17-0"), Some(17));
        assert_eq!(creator_pid("out"), None);
        assert_eq!(creator_pid("broker-ringtail.log"), None);
        assert_eq!(creator_pid("a-b-c-d"), None);
    }

    #[test]
    fn denials_are_recognised() {
        // util-linux's wordings for a refused mount and a missing loop device.
        assert!(is_denial("mount: /x: permission denied."));
        assert!(is_denial(
            "mount: only root can do that (effective UID is 1000): must be superuser"
        ));
        assert!(is_no_loop("losetup: cannot find an unused loop device"));
        assert!(!is_denial(
            "mount: /x: wrong fs type, bad option, bad superblock"
        ));
    }
}
