//! The external programs a layout runs (`mount`, `losetup`, `mkfs.*`, `umount`): found in PATH or
//! the sbin dirs, run to completion, and their refusals told apart (a denial or a missing loop
//! device is a skip, not a failure).
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{LayoutError, SkipReason};

/// `program` in PATH or in the sbin directories (a non-login root shell may lack them in PATH).
pub(super) fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

pub(super) fn mount(args: &[&str], mount_point: &Path) -> Result<(), LayoutError> {
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

pub(super) fn is_denial(stderr: &str) -> bool {
    let text = stderr.to_lowercase();
    [
        "permission denied",
        "operation not permitted",
        "must be superuser",
    ]
    .iter()
    .any(|phrase| text.contains(phrase))
}

pub(super) fn is_no_loop(stderr: &str) -> bool {
    let text = stderr.to_lowercase();
    text.contains("cannot find an unused loop device") || text.contains("no such device")
}

/// Runs a program to completion; its stdout on success, its stderr (or why it could not start)
/// in a `Command` error otherwise.
pub(super) fn run(program: &str, args: &[&str]) -> Result<String, LayoutError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
