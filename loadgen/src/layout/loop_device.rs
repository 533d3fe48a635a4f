//! Loop disks: a sparse image file attached with `losetup --direct-io=on`, formatted and mounted;
//! and, for leftovers, the loop devices backed by files under a directory.
#![forbid(unsafe_code)]

use std::fs;
use std::path::{Path, PathBuf};

use super::commands::{is_denial, is_no_loop, mount, run};
use super::disk_kind::LoopFs;
use super::teardown::DiskGuard;
use super::{LayoutError, SkipReason};
use crate::mounts;

/// Image → direct-I/O loop device → mkfs → mount. Returns the backing's description.
pub(super) fn prepare_loop(
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
/// Loop devices whose backing file lies under `dir` (`/sys/block/loopN/loop/backing_file`).
pub(super) fn loops_backed_under(dir: &Path) -> Vec<PathBuf> {
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
