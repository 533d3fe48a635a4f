//! The mount table of this process (`/proc/self/mountinfo`): which filesystem and device hold a
//! path, and what is mounted below a directory. Reports use it to say where a broker's data lived
//! (`xfs` on `/dev/loop3`); layouts use it to check that a teardown left nothing mounted.
//!
//! The filesystem type comes from here rather than from `statfs`, whose magic number cannot tell
//! ext2, ext3 and ext4 apart.
#![forbid(unsafe_code)]

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_point: PathBuf,
    /// Filesystem type, e.g. `ext4`, `xfs`, `tmpfs`.
    pub fs_type: String,
    /// What is mounted: a device (`/dev/loop3`) or a name (`tmpfs`).
    pub source: String,
    /// Per-mount options, e.g. `rw,relatime`.
    pub options: String,
}

/// Every mount this process sees, in mount order (a later entry on the same point hides earlier
/// ones).
pub fn mounts() -> io::Result<Vec<MountEntry>> {
    let text = fs::read_to_string("/proc/self/mountinfo")?;
    text.lines()
        .map(|line| {
            parse_line(line).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad mountinfo line {line:?}"),
                )
            })
        })
        .collect()
}

/// The mount that holds `path` (which must exist): the entry with the longest mount point above
/// the canonical path, the last one mounted when several share that point.
pub fn mount_containing(path: &Path) -> io::Result<MountEntry> {
    let path = path.canonicalize()?;
    mounts()?
        .into_iter()
        .filter(|entry| path.starts_with(&entry.mount_point))
        .fold(None::<MountEntry>, |best, entry| match best {
            Some(best)
                if best.mount_point.components().count()
                    > entry.mount_point.components().count() =>
            {
                Some(best)
            }
            _ => Some(entry),
        })
        .ok_or_else(|| io::Error::other(format!("no mount holds {}", path.display())))
}

/// Mounts at or below `dir` (compared as given and canonicalised, so a removed `dir` still
/// matches its old entries by the path as given).
pub fn mounts_under(dir: &Path) -> io::Result<Vec<MountEntry>> {
    let canonical = dir.canonicalize().ok();
    Ok(mounts()?
        .into_iter()
        .filter(|entry| {
            entry.mount_point.starts_with(dir)
                || canonical
                    .as_ref()
                    .is_some_and(|dir| entry.mount_point.starts_with(dir))
        })
        .collect())
}

/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`: id, parent,
/// major:minor, root, mount point, options, optional fields up to `-`, then type, source, super
/// options (proc(5)).
fn parse_line(line: &str) -> Option<MountEntry> {
    let (before, after) = line.split_once(" - ")?;
    let before: Vec<&str> = before.split(' ').collect();
    let mut after = after.split(' ');
    Some(MountEntry {
        mount_point: PathBuf::from(unescape(before.get(4)?)),
        options: before.get(5)?.to_string(),
        fs_type: after.next()?.to_string(),
        source: unescape(after.next()?),
    })
}

/// Undoes the kernel's octal escapes (`\040` space, `\011` tab, `\012` newline, `\134` backslash).
fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let octal = bytes.get(index + 1..index + 4).and_then(|digits| {
            let digits = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(digits, 8).ok()
        });
        match (bytes[index], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                index += 4;
            }
            (byte, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_with_optional_fields_and_escapes() {
        // Optional fields vary in number, and mount points escape spaces.
        let line = "36 35 98:0 / /mnt/my\\040disk rw,noatime master:1 shared:7 - ext4 /dev/vda rw";
        let entry = parse_line(line).unwrap();
        assert_eq!(entry.mount_point, PathBuf::from("/mnt/my disk"));
        assert_eq!(entry.fs_type, "ext4");
        assert_eq!(entry.source, "/dev/vda");
        assert_eq!(entry.options, "rw,noatime");
        let bare = parse_line("40 1 0:5 / /dev/shm rw - tmpfs tmpfs rw,size=10k").unwrap();
        assert_eq!(bare.fs_type, "tmpfs");
        assert!(parse_line("garbage").is_none());
    }

    #[test]
    fn the_root_holds_everything() {
        // Any existing path has a containing mount; "/" is itself a mount point.
        assert_eq!(
            mount_containing(Path::new("/")).unwrap().mount_point,
            PathBuf::from("/")
        );
        let here = mount_containing(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
        assert!(!here.fs_type.is_empty());
    }
}
