//! The filesystem in memory: every file and directory has a *live* image (what reads see) and a
//! *durable* image (what a power loss keeps), as a disk without a volatile cache would.
//!
//! - A file's durable image changes only on `fsync`/`fdatasync`: the operations queued since the
//!   last one are applied to it. A failed fsync (injected EIO) *drops* them, as Linux may drop
//!   dirty pages after a writeback error: a later fsync that succeeds does not bring them back.
//! - A directory's durable entries are its live entries at its last `fsync`. A file created,
//!   renamed or unlinked since is back as it was after a power loss, whatever the file's own
//!   fsyncs said (POSIX asks for the directory fsync; ext4 happens to be kinder).
//! - A power loss makes every durable image live again, optionally keeping an in-order prefix of
//!   each file's queued operations, the last write torn at a sector boundary.
//!
//! # Invariants
//! - The root (inode 1) always exists and is a directory.
//! - Every entry of a live directory names an inode in the table; after a power loss the table
//!   holds exactly the inodes reachable from the root through durable entries.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::time::SystemTime;

use crate::content::{Content, Op};

pub const ROOT_INO: u64 = 1;

/// Operations queued per file before an fsync, at most: beyond it a write fails with ENOSPC
/// (the test disk's "cache" is full), so the model's memory has a bound.
pub const QUEUED_OPS_MAX: usize = 1 << 20;

#[derive(Debug)]
pub struct FileNode {
    pub live: Content,
    pub durable: Content,
    /// Operations applied to `live` since the last fsync, oldest first.
    pub queued: Vec<Op>,
    /// An fsync of this file failed: a later one is a retry as if the data were safe.
    pub fsync_failed: bool,
}

#[derive(Debug, Default)]
pub struct DirNode {
    pub live: BTreeMap<OsString, u64>,
    pub durable: BTreeMap<OsString, u64>,
}

#[derive(Debug)]
pub enum Node {
    File(FileNode),
    Dir(DirNode),
}

#[derive(Debug)]
pub struct Inode {
    pub node: Node,
    pub perm: u16,
    pub mtime: SystemTime,
}

/// Faults the control channel switches on and off.
#[derive(Debug, Default, Clone, Copy)]
pub struct Faults {
    /// Every fsync and directory fsync fails with EIO (and drops what it would have synced).
    pub fsync_eio: bool,
    /// Every write and growing `fallocate` fails with ENOSPC.
    pub write_enospc: bool,
}

/// Counters for the control channel's `stats`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub writes: u64,
    pub fsyncs: u64,
    pub dir_fsyncs: u64,
    pub fsync_errors: u64,
    pub power_losses: u64,
    pub ops_dropped: u64,
    pub ops_kept_by_tear: u64,
    /// fsyncs of a file whose earlier fsync failed (an engine that retries them counts here).
    pub fsyncs_after_error: u64,
    /// Files open now (opens and creates not yet released): a power loss is taken only at 0,
    /// when no process (nor a dying process's io_uring) can write any more.
    pub open_files: u64,
}

/// What a power loss did.
#[derive(Debug, Default, Clone, Copy)]
pub struct PowerLossReport {
    pub ops_dropped: u64,
    pub ops_kept: u64,
    pub inodes_dropped: u64,
}

#[derive(Debug)]
pub struct Model {
    inodes: HashMap<u64, Inode>,
    next_ino: u64,
    pub faults: Faults,
    pub stats: Stats,
    /// Print every change to stderr (`FORGETFUL_FS_TRACE=1`), for debugging a test.
    pub trace: bool,
}

/// An errno for the FUSE layer.
pub type Errno = i32;

impl Default for Model {
    fn default() -> Self {
        Self::new()
    }
}

impl Model {
    pub fn new() -> Self {
        let root = Inode {
            node: Node::Dir(DirNode::default()),
            perm: 0o755,
            mtime: SystemTime::now(),
        };
        Self {
            inodes: HashMap::from([(ROOT_INO, root)]),
            next_ino: ROOT_INO + 1,
            faults: Faults::default(),
            stats: Stats::default(),
            trace: std::env::var_os("FORGETFUL_FS_TRACE").is_some(),
        }
    }

    pub fn inode(&self, ino: u64) -> Result<&Inode, Errno> {
        self.inodes.get(&ino).ok_or(libc::ENOENT)
    }

    fn dir(&self, ino: u64) -> Result<&DirNode, Errno> {
        match &self.inode(ino)?.node {
            Node::Dir(dir) => Ok(dir),
            Node::File(_) => Err(libc::ENOTDIR),
        }
    }

    fn dir_mut(&mut self, ino: u64) -> Result<&mut DirNode, Errno> {
        match &mut self.inodes.get_mut(&ino).ok_or(libc::ENOENT)?.node {
            Node::Dir(dir) => Ok(dir),
            Node::File(_) => Err(libc::ENOTDIR),
        }
    }

    fn file_mut(&mut self, ino: u64) -> Result<&mut FileNode, Errno> {
        match &mut self.inodes.get_mut(&ino).ok_or(libc::ENOENT)?.node {
            Node::File(file) => Ok(file),
            Node::Dir(_) => Err(libc::EISDIR),
        }
    }

    pub fn lookup(&self, parent: u64, name: &OsStr) -> Result<u64, Errno> {
        self.dir(parent)?
            .live
            .get(name)
            .copied()
            .ok_or(libc::ENOENT)
    }

    /// Live entries of a directory, sorted by name.
    pub fn entries(&self, dir: u64) -> Result<Vec<(OsString, u64)>, Errno> {
        Ok(self
            .dir(dir)?
            .live
            .iter()
            .map(|(name, ino)| (name.clone(), *ino))
            .collect())
    }

    /// Creates a file (`directory == false`) or a directory named `name` in `parent`.
    pub fn create(
        &mut self,
        parent: u64,
        name: &OsStr,
        directory: bool,
        perm: u16,
    ) -> Result<u64, Errno> {
        if self.dir(parent)?.live.contains_key(name) {
            return Err(libc::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let node = if directory {
            Node::Dir(DirNode::default())
        } else {
            Node::File(FileNode {
                live: Content::default(),
                durable: Content::default(),
                queued: Vec::new(),
                fsync_failed: false,
            })
        };
        let inode = Inode {
            node,
            perm,
            mtime: SystemTime::now(),
        };
        self.inodes.insert(ino, inode);
        if self.trace {
            eprintln!("create {ino} {name:?} in {parent}");
        }
        self.dir_mut(parent)?.live.insert(name.to_owned(), ino);
        Ok(ino)
    }

    /// Removes a live entry; the inode stays while a durable entry may bring it back.
    pub fn unlink(&mut self, parent: u64, name: &OsStr, directory: bool) -> Result<(), Errno> {
        let ino = self.lookup(parent, name)?;
        match (&self.inode(ino)?.node, directory) {
            (Node::Dir(dir), true) if !dir.live.is_empty() => return Err(libc::ENOTEMPTY),
            (Node::Dir(_), false) => return Err(libc::EISDIR),
            (Node::File(_), true) => return Err(libc::ENOTDIR),
            _ => {}
        }
        self.dir_mut(parent)?.live.remove(name);
        Ok(())
    }

    pub fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        no_replace: bool,
    ) -> Result<(), Errno> {
        let ino = self.lookup(parent, name)?;
        let is_dir = matches!(self.inode(ino)?.node, Node::Dir(_));
        if let Ok(target) = self.lookup(new_parent, new_name) {
            if no_replace {
                return Err(libc::EEXIST);
            }
            if target == ino {
                return Ok(());
            }
            match (&self.inode(target)?.node, is_dir) {
                (Node::Dir(dir), true) if !dir.live.is_empty() => return Err(libc::ENOTEMPTY),
                (Node::Dir(_), false) => return Err(libc::EISDIR),
                (Node::File(_), true) => return Err(libc::ENOTDIR),
                _ => {}
            }
        }
        self.dir_mut(new_parent)?;
        if self.trace {
            eprintln!("rename {ino} {name:?} in {parent} to {new_name:?} in {new_parent}");
        }
        self.dir_mut(parent)?.live.remove(name);
        self.dir_mut(new_parent)?
            .live
            .insert(new_name.to_owned(), ino);
        Ok(())
    }

    pub fn set_perm(&mut self, ino: u64, perm: u16) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.perm = perm;
        }
    }

    pub fn read(&self, ino: u64, offset: u64, len: u64) -> Result<Vec<u8>, Errno> {
        match &self.inode(ino)?.node {
            Node::File(file) => {
                if self.trace {
                    eprintln!(
                        "read {ino} at {offset} len {len} size {}",
                        file.live.size_bytes()
                    );
                }
                Ok(file.live.read(offset, len))
            }
            Node::Dir(_) => Err(libc::EISDIR),
        }
    }

    /// Applies `op` to the live image and queues it for the next fsync.
    fn change(&mut self, ino: u64, op: Op) -> Result<(), Errno> {
        if self.trace {
            match &op {
                Op::Write { offset, bytes } => {
                    eprintln!("write {ino} at {offset} len {}", bytes.len())
                }
                Op::SetLen { size_bytes } => eprintln!("set_len {ino} to {size_bytes}"),
            }
        }
        let file = self.file_mut(ino)?;
        if file.queued.len() >= QUEUED_OPS_MAX {
            return Err(libc::ENOSPC);
        }
        file.live.apply(&op);
        file.queued.push(op);
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.mtime = SystemTime::now();
        }
        Ok(())
    }

    pub fn write(&mut self, ino: u64, offset: u64, bytes: &[u8]) -> Result<(), Errno> {
        if self.faults.write_enospc {
            return Err(libc::ENOSPC);
        }
        self.stats.writes += 1;
        self.change(
            ino,
            Op::Write {
                offset,
                bytes: bytes.to_vec(),
            },
        )
    }

    pub fn set_len(&mut self, ino: u64, size_bytes: u64) -> Result<(), Errno> {
        self.change(ino, Op::SetLen { size_bytes })
    }

    /// `fallocate(2)`: mode 0 grows the size, `FALLOC_FL_KEEP_SIZE` only reserves (nothing to
    /// model); holes and ranges are not supported.
    pub fn fallocate(&mut self, ino: u64, offset: u64, len: u64, mode: i32) -> Result<(), Errno> {
        if self.faults.write_enospc {
            return Err(libc::ENOSPC);
        }
        let size_bytes = match &self.inode(ino)?.node {
            Node::File(file) => file.live.size_bytes(),
            Node::Dir(_) => return Err(libc::EISDIR),
        };
        match mode {
            0 if offset + len > size_bytes => self.set_len(ino, offset + len),
            0 | libc::FALLOC_FL_KEEP_SIZE => Ok(()),
            _ => Err(libc::EOPNOTSUPP),
        }
    }

    /// fsync or fdatasync of a file, or fsync of a directory.
    pub fn fsync(&mut self, ino: u64) -> Result<(), Errno> {
        let fail = self.faults.fsync_eio;
        if self.trace {
            eprintln!("fsync {ino}");
        }
        let inode = self.inodes.get_mut(&ino).ok_or(libc::ENOENT)?;
        match &mut inode.node {
            Node::File(file) => {
                self.stats.fsyncs += 1;
                if file.fsync_failed {
                    self.stats.fsyncs_after_error += 1;
                }
                let queued = std::mem::take(&mut file.queued);
                if fail {
                    file.fsync_failed = true;
                    // The kernel may drop the dirty pages of a failed writeback: they stay in the
                    // page cache (`live`) but never reach the disk.
                    self.stats.fsync_errors += 1;
                    self.stats.ops_dropped += queued.len() as u64;
                    return Err(libc::EIO);
                }
                for op in &queued {
                    file.durable.apply(op);
                }
            }
            Node::Dir(dir) => {
                self.stats.dir_fsyncs += 1;
                if fail {
                    self.stats.fsync_errors += 1;
                    return Err(libc::EIO);
                }
                dir.durable = dir.live.clone();
            }
        }
        Ok(())
    }

    /// Loses power: every durable image becomes live. With `tear`, each file keeps an in-order
    /// prefix of its queued operations, the last write cut at a sector boundary.
    pub fn power_loss(&mut self, mut tear: Option<&mut SplitMix64>) -> PowerLossReport {
        let mut report = PowerLossReport::default();
        let mut inos: Vec<u64> = self.inodes.keys().copied().collect();
        inos.sort_unstable();
        for ino in inos {
            let Some(inode) = self.inodes.get_mut(&ino) else {
                continue;
            };
            match &mut inode.node {
                Node::Dir(dir) => dir.live = dir.durable.clone(),
                Node::File(file) => {
                    let queued = std::mem::take(&mut file.queued);
                    let kept = match tear.as_deref_mut() {
                        Some(rng) => kept_prefix(&queued, rng),
                        None => Vec::new(),
                    };
                    report.ops_kept += kept.len() as u64;
                    report.ops_dropped += (queued.len() - kept.len().min(queued.len())) as u64;
                    for op in &kept {
                        file.durable.apply(op);
                    }
                    file.live = file.durable.clone();
                }
            }
        }
        report.inodes_dropped = self.drop_unreachable();
        if self.trace {
            eprintln!("power loss: {report:?}");
        }
        self.stats.power_losses += 1;
        self.stats.ops_dropped += report.ops_dropped;
        self.stats.ops_kept_by_tear += report.ops_kept;
        report
    }

    /// Removes inodes no durable entry reaches from the root. Returns how many.
    fn drop_unreachable(&mut self) -> u64 {
        let mut reachable = std::collections::HashSet::from([ROOT_INO]);
        let mut stack = vec![ROOT_INO];
        while let Some(ino) = stack.pop() {
            if let Some(Inode {
                node: Node::Dir(dir),
                ..
            }) = self.inodes.get(&ino)
            {
                for child in dir.durable.values() {
                    if reachable.insert(*child) {
                        stack.push(*child);
                    }
                }
            }
        }
        let before = self.inodes.len();
        self.inodes.retain(|ino, _| reachable.contains(ino));
        assert!(self.inodes.contains_key(&ROOT_INO), "the root survives");
        (before - self.inodes.len()) as u64
    }
}

/// The queued operations a torn power loss keeps: a random count of whole ones, then the next
/// one torn at a random sector boundary inside it (if it is a write with one).
fn kept_prefix(queued: &[Op], rng: &mut SplitMix64) -> Vec<Op> {
    let whole = (rng.next_u64() % (queued.len() as u64 + 1)) as usize;
    let mut kept = queued[..whole].to_vec();
    if let Some(next) = queued.get(whole) {
        let boundaries = next.inner_boundaries();
        if boundaries > 0 {
            if let Some(torn) = next.torn(rng.next_u64() % boundaries) {
                kept.push(torn);
            }
        }
    }
    kept
}

/// A small seeded generator (SplitMix64): a torn power loss is replayable from its seed.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
