//! Each disk layout for real: prepared, written and fsynced, its filesystem checked by `statfs`
//! (`stat -f`), torn down, and nothing left mounted or attached. Every layout but `fs` needs root
//! (CAP_SYS_ADMIN), and the loop images /dev/loop-control and mkfs.xfs/mkfs.ext4: CI has them (it
//! runs scripts/test.sh as root, after scripts/setup-test-deps.sh installs xfsprogs), so a layout
//! that cannot run fails its test, with the missing prerequisite found independently of the
//! library. No test passes by skipping. Elsewhere, deselect them: `cargo test -- --skip layout`.
//!
//! Everything lives under cargo's per-target temp dir (a real disk, which loop images need for
//! direct I/O), in a directory per test and process.
#![forbid(unsafe_code)]

use std::fs;
use std::io::{Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Command;

use ringtail_loadgen::layout::{self, DiskKind, Layout, LayoutError, SkipReason};
use ringtail_loadgen::mounts;

/// Per disk; mkfs.xfs needs at least 300 MiB. The image is sparse: little of it is written.
const DISK_BYTES: u64 = 512 << 20;

fn work_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("layout-tests")
        .join(format!("{test}-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Why this machine cannot run `kind`, found independently of the library; `None`: it can.
fn expected_skip(kind: DiskKind) -> Option<&'static str> {
    if kind == DiskKind::Fs {
        return None;
    }
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let cap_eff = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .map(|hex| u64::from_str_radix(hex.trim(), 16).unwrap())
        .unwrap();
    if cap_eff & (1 << 21) == 0 {
        return Some("NoMountPrivilege");
    }
    let mkfs = match kind {
        DiskKind::XfsLoop => "mkfs.xfs",
        DiskKind::Ext4Loop => "mkfs.ext4",
        _ => return None,
    };
    if !Path::new("/dev/loop-control").exists() {
        return Some("NoLoopControl");
    }
    let found = Command::new("sh")
        .args([
            "-c",
            &format!("PATH=$PATH:/usr/sbin:/sbin command -v {mkfs}"),
        ])
        .output()
        .unwrap()
        .status
        .success();
    (!found).then_some("ToolMissing")
}

/// Fails the test when this machine cannot run `kind`, with the reason.
fn require(kind: DiskKind) {
    if let Some(reason) = expected_skip(kind) {
        panic!("{kind} cannot run here: {reason} (needs root, loop devices and mkfs; CI has them)");
    }
}

fn reason_name(reason: &SkipReason) -> &'static str {
    match reason {
        SkipReason::NoMountPrivilege => "NoMountPrivilege",
        SkipReason::NoLoopControl => "NoLoopControl",
        SkipReason::ToolMissing { .. } => "ToolMissing",
        SkipReason::MountDenied { .. } => "MountDenied",
        SkipReason::LoopUnavailable { .. } => "LoopUnavailable",
        SkipReason::DirectIoUnavailable { .. } => "DirectIoUnavailable",
    }
}

/// `stat -f -c %T`: the filesystem name coreutils derives from statfs's magic number.
fn statfs_name(path: &Path) -> String {
    let output = Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(path)
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// Loop devices whose backing file lies under `dir` (`/sys/block/loopN/loop/backing_file`).
fn loops_backed_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/sys/block").unwrap().flatten() {
        let backing = entry.path().join("loop/backing_file");
        if let Ok(file) = fs::read_to_string(&backing) {
            if Path::new(file.trim()).starts_with(dir) {
                found.push(format!(
                    "{}: {}",
                    entry.file_name().to_string_lossy(),
                    file.trim()
                ));
            }
        }
    }
    found
}

fn assert_nothing_left(work_dir: &Path) {
    let mounted = mounts::mounts_under(work_dir).unwrap();
    assert!(mounted.is_empty(), "still mounted: {mounted:?}");
    let loops = loops_backed_under(work_dir);
    assert!(loops.is_empty(), "still attached: {loops:?}");
    let left: Vec<_> = fs::read_dir(work_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Writes, fsyncs and reads back a file in the data dir.
fn write_synced_file(data_dir: &Path) {
    let path = data_dir.join("probe.bin");
    let payload: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let mut file = fs::File::create_new(&path).unwrap();
    file.write_all(&payload).unwrap();
    file.sync_all().unwrap();
    drop(file);
    let mut back = Vec::new();
    fs::File::open(&path)
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, payload);
}

fn check_layout(kind: DiskKind) {
    let work_dir = work_dir(kind.name());
    let prepared = match layout::prepare(&Layout::disk(kind), &work_dir, DISK_BYTES) {
        Ok(prepared) => prepared,
        Err(LayoutError::Skipped { reason }) => {
            let expected = expected_skip(kind);
            assert_nothing_left(&work_dir);
            assert_eq!(
                Some(reason_name(&reason)),
                expected,
                "{kind} was skipped ({reason}) on a machine that can run it"
            );
            panic!(
                "{kind} cannot run here: {reason} (needs root, loop devices and mkfs; CI has them)"
            );
        }
        Err(error) => panic!("{kind}: {error}"),
    };
    assert_eq!(
        expected_skip(kind),
        None,
        "{kind} ran where a skip was expected"
    );
    let data_dir = prepared.data_dir().to_path_buf();
    assert!(data_dir.starts_with(work_dir.canonicalize().unwrap()));
    write_synced_file(&data_dir);

    let description = prepared.description().clone();
    println!("{kind}: {description:?}");
    assert_eq!(description.disks.len(), 1);
    let disk = &description.disks[0];
    let (fs_type, statfs) = match kind {
        DiskKind::Fs => {
            let host = mounts::mount_containing(&work_dir).unwrap().fs_type;
            (host, statfs_name(&work_dir))
        }
        DiskKind::Tmpfs => ("tmpfs".to_string(), "tmpfs".to_string()),
        DiskKind::XfsLoop => ("xfs".to_string(), "xfs".to_string()),
        // statfs reports one magic number for ext2, ext3 and ext4.
        DiskKind::Ext4Loop => ("ext4".to_string(), "ext2/ext3".to_string()),
        _ => unreachable!("a new kind needs its expectations here"),
    };
    assert_eq!(disk.fs_type, fs_type);
    assert_eq!(statfs_name(&data_dir), statfs);
    if matches!(kind, DiskKind::XfsLoop | DiskKind::Ext4Loop) {
        assert!(disk.device.starts_with("/dev/loop"), "{}", disk.device);
        let name = Path::new(&disk.device).file_name().unwrap();
        let sys = Path::new("/sys/block").join(name).join("loop");
        assert_eq!(fs::read_to_string(sys.join("dio")).unwrap().trim(), "1");
        let backing = fs::read_to_string(sys.join("backing_file")).unwrap();
        assert!(Path::new(backing.trim()).starts_with(work_dir.canonicalize().unwrap()));
        assert_eq!(disk.loop_direct_io, Some(true));
    }

    prepared.teardown().unwrap();
    assert_nothing_left(&work_dir);
    fs::remove_dir(&work_dir).unwrap();
}

#[test]
fn fs_layout() {
    check_layout(DiskKind::Fs);
}

#[test]
fn tmpfs_layout() {
    check_layout(DiskKind::Tmpfs);
}

#[test]
fn xfs_loop_layout() {
    check_layout(DiskKind::XfsLoop);
}

#[test]
fn ext4_loop_layout() {
    check_layout(DiskKind::Ext4Loop);
}

#[test]
fn a_panic_still_tears_down() {
    // A panic while a layout is in use unwinds through its drop: unmounted, detached, removed.
    for kind in [DiskKind::Tmpfs, DiskKind::Ext4Loop] {
        require(kind);
        let work_dir = work_dir(&format!("panic-{kind}"));
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let prepared = layout::prepare(&Layout::disk(kind), &work_dir, DISK_BYTES).unwrap();
            write_synced_file(prepared.data_dir());
            panic!("deliberate, with {kind} mounted");
        }));
        assert!(outcome.is_err());
        assert_nothing_left(&work_dir);
        fs::remove_dir(&work_dir).unwrap();
    }
}

#[test]
fn a_failed_prepare_leaves_nothing() {
    // mkfs.xfs refuses a 16 MiB disk after the image is made and the loop device attached: the
    // error path must undo both.
    require(DiskKind::XfsLoop);
    let work_dir = work_dir("failed-prepare");
    let error = layout::prepare(&Layout::disk(DiskKind::XfsLoop), &work_dir, 16 << 20).unwrap_err();
    println!("expected failure: {error}");
    assert!(matches!(error, LayoutError::Command { .. }), "{error}");
    assert_nothing_left(&work_dir);
    fs::remove_dir(&work_dir).unwrap();
}

#[test]
fn two_data_dirs_get_two_disks() {
    // A layout with several data dirs gets one disk each, on distinct mounts.
    require(DiskKind::Tmpfs);
    let work_dir = work_dir("two-dirs");
    let mut two = Layout::disk(DiskKind::Tmpfs);
    two.data_dirs = 2;
    let prepared = layout::prepare(&two, &work_dir, 64 << 20).unwrap();
    let dirs = prepared.data_dirs();
    assert_eq!(dirs.len(), 2);
    let first = mounts::mount_containing(&dirs[0]).unwrap();
    let second = mounts::mount_containing(&dirs[1]).unwrap();
    assert_ne!(first.mount_point, second.mount_point);
    drop(prepared);
    assert_nothing_left(&work_dir);
    fs::remove_dir(&work_dir).unwrap();
}

/// If the test fails with the child's layout still there, detaches it anyway (lazy unmount, loop
/// detach), so a failing test leaves nothing mounted either.
struct Sweep(PathBuf);

impl Drop for Sweep {
    fn drop(&mut self) {
        for mount in mounts::mounts_under(&self.0).unwrap_or_default() {
            let _ = Command::new("umount")
                .arg("--lazy")
                .arg(&mount.mount_point)
                .status();
        }
        for entry in loops_backed_under(&self.0) {
            let device = format!("/dev/{}", entry.split(':').next().unwrap());
            let _ = Command::new("losetup").args(["-d", &device]).status();
        }
    }
}

/// Set by `leftovers_of_a_killed_process_are_removed` for the child it runs.
const ABORT_DIR_VARIABLE: &str = "RINGTAIL_LAYOUT_TEST_ABORT_IN";

/// Not a test of its own: the child process of `leftovers_of_a_killed_process_are_removed`. It
/// prepares a layout and aborts, so no drop runs, as when a loadgen is SIGKILLed.
#[test]
#[ignore = "run by leftovers_of_a_killed_process_are_removed"]
fn prepare_then_abort() {
    let Some(dir) = std::env::var_os(ABORT_DIR_VARIABLE) else {
        // Run by hand (`--ignored`): nothing to check, and it says so.
        println!(
            "prepare_then_abort: not a check; leftovers_of_a_killed_process_are_removed runs it"
        );
        return;
    };
    let kind: DiskKind = std::env::var("RINGTAIL_LAYOUT_TEST_KIND")
        .unwrap()
        .parse()
        .unwrap();
    let prepared = layout::prepare(&Layout::disk(kind), Path::new(&dir), DISK_BYTES).unwrap();
    write_synced_file(prepared.data_dir());
    std::process::abort();
}

#[test]
fn leftovers_of_a_killed_process_are_removed() {
    // A process killed with a layout mounted leaves it mounted; the next run's
    // remove_leftovers unmounts, detaches and removes it.
    let kind = DiskKind::XfsLoop;
    require(kind);
    let work_dir = work_dir("leftovers");
    let _sweep = Sweep(work_dir.clone());
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "prepare_then_abort", "--nocapture"])
        .env(ABORT_DIR_VARIABLE, &work_dir)
        .env("RINGTAIL_LAYOUT_TEST_KIND", kind.name())
        .status()
        .unwrap();
    assert!(!status.success(), "the child aborts");
    let mounted = mounts::mounts_under(&work_dir).unwrap();
    assert_eq!(
        mounted.len(),
        1,
        "the child left its layout mounted: {mounted:?}"
    );

    let removed = layout::remove_leftovers(&work_dir).unwrap();
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_nothing_left(&work_dir);
    // Our own layouts are not leftovers.
    let ours = layout::prepare(&Layout::disk(DiskKind::Fs), &work_dir, DISK_BYTES).unwrap();
    assert!(layout::remove_leftovers(&work_dir).unwrap().is_empty());
    assert!(ours.data_dir().exists());
    drop(ours);
    fs::remove_dir(&work_dir).unwrap();
}
