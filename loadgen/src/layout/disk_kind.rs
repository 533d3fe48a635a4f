//! The kinds of disk a data dir can be on, by name (`fs`, `tmpfs`, `xfs-loop`, `ext4-loop`), and
//! the filesystem a loop kind formats its image with.
#![forbid(unsafe_code)]

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

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
    pub(super) fn loop_fs(self) -> Option<LoopFs> {
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
pub(super) enum LoopFs {
    Xfs,
    Ext4,
}

impl LoopFs {
    pub(super) fn mkfs(self) -> &'static str {
        match self {
            LoopFs::Xfs => "mkfs.xfs",
            LoopFs::Ext4 => "mkfs.ext4",
        }
    }

    pub(super) fn mkfs_args(self) -> &'static [&'static str] {
        match self {
            LoopFs::Xfs => &["-q", "-f"],
            // Initialise inode tables and journal now: by default ext4 zeroes them lazily from a
            // kernel thread after mounting, which would write behind the benchmark's back.
            LoopFs::Ext4 => &["-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0"],
        }
    }

    pub(super) fn fs_type(self) -> &'static str {
        match self {
            LoopFs::Xfs => "xfs",
            LoopFs::Ext4 => "ext4",
        }
    }
}
