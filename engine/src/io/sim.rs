//! A deterministic, in-memory simulated disk: the second backend of [`super::disk`].
//!
//! It keeps, per file, a *live* image (what reads see) and a *durable* image (what the last
//! fsync/fdatasync made durable), and per directory entry the same split: creations, removals and
//! renames are live at once and durable only after the directory is fsynced. [`SimDisk::power_loss`]
//! drops everything not durable, the way a machine losing power would, with the randomness a
//! real disk adds, all drawn from the seed:
//! - of the directory operations not yet made durable, an ordered *prefix* survives (metadata
//!   journals commit in order; a rename is one operation);
//! - of a file's unsynced data, each 512-byte sector independently keeps its old or takes its new
//!   contents (writes torn at sector boundaries, reordered by the disk), and the size lands
//!   anywhere between the durable and the live size.
//!
//! Faults come from seeded countdowns: EIO on a write or on an fsync, ENOSPC on a write or an
//! fallocate, short writes; [`SimDisk::freeze_after`] cuts the power after a number of mutating
//! operations, inside whatever the engine is doing (every operation from then on fails with EIO
//! until [`SimDisk::power_loss`]).
//!
//! # Invariants
//! - A sector that was durable before an operation stays durable: appends never change durable
//!   bytes they do not overwrite, and power loss never touches a clean file.
//! - Handles opened before a power loss fail with EIO afterwards (the process that held them died).
//! - Deterministic: one disk serves the one thread whose runtime drives the engine under test (the
//!   lock only makes handles `Send`, as read plans cross threads in the broker).
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Sector size: the unit a power loss tears writes at.
pub const SECTOR_BYTES: usize = 512;

/// A fault the disk injects when its countdown reaches zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// A write fails with EIO, writing nothing.
    WriteEio,
    /// An fsync/fdatasync fails with EIO; the data stays not durable.
    SyncEio,
    /// A write or an fallocate fails with ENOSPC, writing nothing.
    NoSpace,
    /// A write writes only part of its bytes (at least one) and says so.
    ShortWrite,
}

impl FaultKind {
    fn applies_to(self, op: OpKind) -> bool {
        match self {
            Self::WriteEio | Self::ShortWrite => op == OpKind::Write,
            Self::SyncEio => op == OpKind::Sync,
            Self::NoSpace => matches!(op, OpKind::Write | OpKind::Allocate),
        }
    }
}

/// What an operation does, for fault eligibility.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Write,
    Sync,
    Allocate,
    /// ftruncate: changes the size without allocating, so it never meets ENOSPC.
    Truncate,
    Metadata,
}

/// Counters of one disk's life, for the test report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    pub mutating_ops: u64,
    pub power_losses: u64,
    pub faults_injected: u64,
    pub torn_sectors: u64,
    pub dir_ops_lost: u64,
    /// fsyncs and fdatasyncs of files and directories asked for, failed ones included.
    pub syncs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    File(u64),
    Dir,
}

#[derive(Debug, Clone)]
enum DirOp {
    Link(PathBuf, Entry),
    Unlink(PathBuf),
    Rename(PathBuf, PathBuf, Entry),
}

#[derive(Debug, Default)]
struct Inode {
    live: Vec<u8>,
    durable: Vec<u8>,
    dirty: bool,
}

#[derive(Debug)]
struct FaultPlan {
    countdown: u64,
    kind: FaultKind,
    hits_left: u64,
}

#[derive(Debug)]
struct State {
    rng: u64,
    epoch: u64,
    next_inode: u64,
    inodes: HashMap<u64, Inode>,
    live: BTreeMap<PathBuf, Entry>,
    durable: BTreeMap<PathBuf, Entry>,
    /// Per directory, its entry operations since its last fsync, in order.
    pending: BTreeMap<PathBuf, Vec<DirOp>>,
    fault: Option<FaultPlan>,
    freeze_countdown: Option<u64>,
    frozen: bool,
    /// Opens with `O_DIRECT` fail with this errno (EINVAL: a file system without direct I/O).
    refuses_direct: Option<i32>,
    /// The file system's space as `statvfs` would report it, if the test set one.
    space: Option<crate::DiskSpace>,
    stats: SimStats,
}

/// The simulated disk. Cheap to clone (a shared handle).
#[derive(Debug, Clone)]
pub struct SimDisk(Arc<Mutex<State>>);

/// An open file of a [`SimDisk`].
#[derive(Debug, Clone)]
pub struct SimFile {
    disk: SimDisk,
    inode: u64,
    epoch: u64,
}

/// EIO, the error of a dead or failing device; `why` is for the reader of this code only.
fn eio(why: &str) -> io::Error {
    debug_assert!(!why.is_empty());
    io::Error::from_raw_os_error(libc::EIO)
}

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

fn parent_of(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

impl State {
    /// splitmix64: small, seedable, good enough to pick sectors and prefixes.
    fn next_u64(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next_u64() % bound
        }
    }

    /// Counts a mutating operation against the freeze and fault countdowns. `Err` means the
    /// operation must fail (frozen, or its fault fired); `Ok(Some(kind))` a fault that shapes it.
    fn begin(&mut self, op: OpKind) -> io::Result<Option<FaultKind>> {
        if self.frozen {
            return Err(eio("the disk lost power"));
        }
        self.stats.mutating_ops += 1;
        if op == OpKind::Sync {
            self.stats.syncs += 1;
        }
        if let Some(left) = self.freeze_countdown.as_mut() {
            if *left == 0 {
                self.frozen = true;
                self.freeze_countdown = None;
                return Err(eio("the disk lost power"));
            }
            *left -= 1;
        }
        let Some(plan) = self.fault.as_mut() else {
            return Ok(None);
        };
        if !plan.kind.applies_to(op) {
            return Ok(None);
        }
        if plan.countdown > 0 {
            plan.countdown -= 1;
            return Ok(None);
        }
        let kind = plan.kind;
        plan.hits_left -= 1;
        if plan.hits_left == 0 {
            self.fault = None;
        }
        self.stats.faults_injected += 1;
        match kind {
            FaultKind::WriteEio | FaultKind::SyncEio => Err(errno(libc::EIO)),
            FaultKind::NoSpace => Err(errno(libc::ENOSPC)),
            FaultKind::ShortWrite => Ok(Some(kind)),
        }
    }

    fn inode(&mut self, file: &SimFile) -> io::Result<&mut Inode> {
        if file.epoch != self.epoch {
            return Err(eio("handle from before a power loss"));
        }
        self.inodes
            .get_mut(&file.inode)
            .ok_or_else(|| eio("inode gone"))
    }

    fn push_dir_op(&mut self, dir: PathBuf, op: DirOp) {
        self.pending.entry(dir).or_default().push(op);
    }

    fn require_dir(&self, dir: &Path) -> io::Result<()> {
        if dir.as_os_str().is_empty() || dir == Path::new("/") {
            return Ok(());
        }
        match self.live.get(dir) {
            Some(Entry::Dir) => Ok(()),
            Some(Entry::File(_)) => Err(errno(libc::ENOTDIR)),
            None => Err(errno(libc::ENOENT)),
        }
    }
}

fn apply(entries: &mut BTreeMap<PathBuf, Entry>, op: &DirOp) {
    match op {
        DirOp::Link(path, entry) => {
            entries.insert(path.clone(), *entry);
        }
        DirOp::Unlink(path) => {
            entries.remove(path);
        }
        DirOp::Rename(from, to, entry) => {
            entries.remove(from);
            entries.insert(to.clone(), *entry);
        }
    }
}

impl SimDisk {
    /// The state, even after a panic elsewhere poisoned the lock (a test failing mid-operation
    /// must still be able to report its seed).
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An empty disk whose every random choice comes from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(Arc::new(Mutex::new(State {
            rng: seed ^ 0x5EED_D15C,
            epoch: 0,
            next_inode: 1,
            inodes: HashMap::new(),
            live: BTreeMap::new(),
            durable: BTreeMap::new(),
            pending: BTreeMap::new(),
            fault: None,
            freeze_countdown: None,
            frozen: false,
            refuses_direct: None,
            space: None,
            stats: SimStats::default(),
        })))
    }

    /// After `countdown` more operations the fault applies to, the next `hits` of them fail
    /// (or, for [`FaultKind::ShortWrite`], come up short).
    pub fn inject_fault(&self, kind: FaultKind, countdown: u64, hits: u64) {
        assert!(hits > 0, "a fault plan hits at least once");
        self.lock().fault = Some(FaultPlan {
            countdown,
            kind,
            hits_left: hits,
        });
    }

    /// Cuts the power after `ops` more mutating operations: that one and every later one fail
    /// with EIO until [`Self::power_loss`].
    pub fn freeze_after(&self, ops: u64) {
        self.lock().freeze_countdown = Some(ops);
    }

    /// From now on the disk reports `space` as its file system's (what preallocation consults;
    /// no write is refused for it: ENOSPC comes from [`FaultKind::NoSpace`]).
    pub fn set_space(&self, space: crate::DiskSpace) {
        self.lock().space = Some(space);
    }

    /// The space [`Self::set_space`] set, if any.
    pub fn space(&self) -> Option<crate::DiskSpace> {
        self.lock().space
    }

    /// From now on, opens with `O_DIRECT` fail with EINVAL (a file system without direct I/O).
    pub fn refuse_direct_io(&self) {
        self.fail_direct_opens(libc::EINVAL);
    }

    /// From now on, opens with `O_DIRECT` fail with `code` (ENOENT: no `/proc` to reopen through).
    pub fn fail_direct_opens(&self, code: i32) {
        self.lock().refuses_direct = Some(code);
    }

    /// Whether a [`Self::freeze_after`] countdown has run out.
    pub fn is_frozen(&self) -> bool {
        self.lock().frozen
    }

    pub fn stats(&self) -> SimStats {
        self.lock().stats
    }

    /// A random number from the disk's seed stream (for tests that pick their own points).
    pub fn random_below(&self, bound: u64) -> u64 {
        self.lock().below(bound)
    }

    /// Loses power: every directory keeps a seeded prefix of its unsynced entry operations, every
    /// file keeps its durable image plus a seeded subset of its unsynced sectors; then the disk
    /// comes back with no fault pending and all old handles dead.
    pub fn power_loss(&self) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let pending = std::mem::take(&mut state.pending);
        for ops in pending.values() {
            let kept = state.below(ops.len() as u64 + 1) as usize;
            for op in &ops[..kept] {
                apply(&mut state.durable, op);
            }
            state.stats.dir_ops_lost += (ops.len() - kept) as u64;
        }
        // An entry whose directory's own entry was lost is unreachable: gone with it.
        let orphans: Vec<PathBuf> = state
            .durable
            .keys()
            .filter(|path| {
                let parent = parent_of(path);
                !(parent.as_os_str().is_empty()
                    || parent == Path::new("/")
                    || state.durable.get(&parent) == Some(&Entry::Dir))
            })
            .cloned()
            .collect();
        for orphan in orphans {
            let prefix = orphan.clone();
            state.durable.retain(|path, _| !path.starts_with(&prefix));
        }
        state.live = state.durable.clone();
        let mut ids: Vec<u64> = state.inodes.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let mut inode = state.inodes.remove(&id).expect("listed inode");
            if inode.dirty {
                let torn = tear(state, &inode);
                inode.durable = torn;
                inode.dirty = false;
            }
            inode.live = inode.durable.clone();
            state.inodes.insert(id, inode);
        }
        let referenced: std::collections::HashSet<u64> = state
            .durable
            .values()
            .filter_map(|entry| match entry {
                Entry::File(id) => Some(*id),
                Entry::Dir => None,
            })
            .collect();
        state.inodes.retain(|id, _| referenced.contains(id));
        state.epoch += 1;
        state.frozen = false;
        state.freeze_countdown = None;
        state.fault = None;
        state.stats.power_losses += 1;
    }

    // ---- the operations [`super::disk`] routes here ----

    pub fn open(&self, path: &Path, create: bool) -> io::Result<SimFile> {
        let mut state = self.lock();
        state.begin(OpKind::Metadata)?;
        let inode = match state.live.get(path) {
            Some(Entry::File(id)) => *id,
            Some(Entry::Dir) => return Err(errno(libc::EISDIR)),
            None if !create => return Err(errno(libc::ENOENT)),
            None => {
                let parent = parent_of(path);
                state.require_dir(&parent)?;
                let id = state.next_inode;
                state.next_inode += 1;
                state.inodes.insert(id, Inode::default());
                state.live.insert(path.to_path_buf(), Entry::File(id));
                state.push_dir_op(parent, DirOp::Link(path.to_path_buf(), Entry::File(id)));
                id
            }
        };
        Ok(SimFile {
            disk: self.clone(),
            inode,
            epoch: state.epoch,
        })
    }

    /// Creates `path` and its parents durably, as a data directory an operator set up before
    /// the broker ever ran (no operation counted, no fault).
    pub fn create_dir_all_durable(&self, path: &Path) {
        let mut state = self.lock();
        for dir in path.ancestors() {
            if !dir.as_os_str().is_empty() && dir != Path::new("/") {
                state.live.insert(dir.to_path_buf(), Entry::Dir);
                state.durable.insert(dir.to_path_buf(), Entry::Dir);
            }
        }
    }

    pub fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        let mut missing: Vec<PathBuf> = path
            .ancestors()
            .filter(|dir| !dir.as_os_str().is_empty() && *dir != Path::new("/"))
            .take_while(|dir| !state.live.contains_key(*dir))
            .map(Path::to_path_buf)
            .collect();
        missing.reverse();
        for dir in missing {
            state.begin(OpKind::Metadata)?;
            let parent = parent_of(&dir);
            state.require_dir(&parent)?;
            state.live.insert(dir.clone(), Entry::Dir);
            state.push_dir_op(parent, DirOp::Link(dir, Entry::Dir));
        }
        state.require_dir(path)
    }

    pub fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.begin(OpKind::Metadata)?;
        match state.live.get(path) {
            Some(Entry::File(_)) => {}
            Some(Entry::Dir) => return Err(errno(libc::EISDIR)),
            None => return Err(errno(libc::ENOENT)),
        }
        state.live.remove(path);
        state.push_dir_op(parent_of(path), DirOp::Unlink(path.to_path_buf()));
        Ok(())
    }

    /// Renames a file (directories are not supported: the engine renames only files in place).
    pub fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.begin(OpKind::Metadata)?;
        let entry = match state.live.get(from) {
            Some(Entry::File(id)) => Entry::File(*id),
            Some(Entry::Dir) => return Err(errno(libc::EXDEV)),
            None => return Err(errno(libc::ENOENT)),
        };
        let (from_dir, to_dir) = (parent_of(from), parent_of(to));
        state.require_dir(&to_dir)?;
        if matches!(state.live.get(to), Some(Entry::Dir)) {
            return Err(errno(libc::EISDIR));
        }
        state.live.remove(from);
        state.live.insert(to.to_path_buf(), entry);
        if from_dir == to_dir {
            let op = DirOp::Rename(from.to_path_buf(), to.to_path_buf(), entry);
            state.push_dir_op(from_dir, op);
        } else {
            state.push_dir_op(from_dir, DirOp::Unlink(from.to_path_buf()));
            state.push_dir_op(to_dir, DirOp::Link(to.to_path_buf(), entry));
        }
        Ok(())
    }

    /// fsync of a directory: its entry operations so far become durable.
    pub fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.begin(OpKind::Sync)?;
        state.require_dir(dir)?;
        if let Some(ops) = state.pending.remove(dir) {
            for op in &ops {
                apply(&mut state.durable, op);
            }
        }
        Ok(())
    }

    /// Full paths of the live entries directly in `dir`, sorted.
    pub fn list_dir(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let state = self.lock();
        if state.frozen {
            return Err(eio("the disk lost power"));
        }
        state.require_dir(dir)?;
        Ok(state
            .live
            .keys()
            .filter(|path| path.parent() == Some(dir))
            .cloned()
            .collect())
    }

    pub fn exists(&self, path: &Path) -> bool {
        self.lock().live.contains_key(path)
    }
}

/// The image a dirty file comes back with after a power loss: durable bytes, plus each unsynced
/// sector old or new by coin flip, cut at a size between the durable and the live one.
fn tear(state: &mut State, inode: &Inode) -> Vec<u8> {
    let (durable, live) = (&inode.durable, &inode.live);
    let low = durable.len().min(live.len());
    let high = durable.len().max(live.len());
    let len = low + state.below((high - low) as u64 + 1) as usize;
    let mut out = durable.clone();
    out.resize(len, 0);
    let mut sector_start = 0usize;
    while sector_start < len {
        let sector_end = (sector_start + SECTOR_BYTES).min(len);
        let new_sector = |at: usize| live.get(at).copied().unwrap_or(0);
        let differs = (sector_start..sector_end).any(|at| out[at] != new_sector(at));
        if differs && state.below(2) == 1 {
            for (at, byte) in out[sector_start..sector_end].iter_mut().enumerate() {
                *byte = new_sector(sector_start + at);
            }
            state.stats.torn_sectors += 1;
        }
        sector_start = sector_end;
    }
    out
}

impl SimFile {
    /// The same file opened again with `O_DIRECT`: this disk has no page cache to bypass, so
    /// it is the same handle, unless the disk refuses direct I/O.
    pub fn open_direct(&self) -> io::Result<SimFile> {
        if let Some(code) = self.disk.lock().refuses_direct {
            return Err(errno(code));
        }
        Ok(self.clone())
    }

    fn with<T>(
        &self,
        op: OpKind,
        work: impl FnOnce(&mut Inode, Option<FaultKind>) -> T,
    ) -> io::Result<T> {
        let mut state = self.disk.lock();
        let fault = if op == OpKind::Metadata && !state.frozen {
            None
        } else {
            state.begin(op)?
        };
        let inode = state.inode(self)?;
        Ok(work(inode, fault))
    }

    /// One positional write; may come up short under a [`FaultKind::ShortWrite`] fault.
    pub fn write_at(&self, bytes: &[u8], position: u64) -> io::Result<usize> {
        let position = usize::try_from(position).map_err(|_| errno(libc::EFBIG))?;
        self.with(OpKind::Write, |inode, fault| {
            let count = match fault {
                Some(FaultKind::ShortWrite) if bytes.len() > 1 => bytes.len() / 2,
                _ => bytes.len(),
            };
            let end = position + count;
            if inode.live.len() < end {
                inode.live.resize(end, 0);
            }
            inode.live[position..end].copy_from_slice(&bytes[..count]);
            inode.dirty = true;
            count
        })
    }

    pub fn read_at(&self, position: u64, len: usize) -> io::Result<Vec<u8>> {
        self.with(OpKind::Metadata, |inode, _| {
            let start = usize::try_from(position)
                .unwrap_or(usize::MAX)
                .min(inode.live.len());
            let end = start.saturating_add(len).min(inode.live.len());
            inode.live[start..end].to_vec()
        })
    }

    /// fallocate mode 0: extends the size with zeros (never shrinks).
    pub fn allocate(&self, offset: u64, len: u64) -> io::Result<()> {
        let end = usize::try_from(offset + len).map_err(|_| errno(libc::EFBIG))?;
        self.with(OpKind::Allocate, |inode, _| {
            if inode.live.len() < end {
                inode.live.resize(end, 0);
                inode.dirty = true;
            }
        })
    }

    pub fn set_len(&self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(|_| errno(libc::EFBIG))?;
        self.with(OpKind::Truncate, |inode, _| {
            if inode.live.len() != len {
                inode.live.resize(len, 0);
                inode.dirty = true;
            }
        })
    }

    /// fsync and fdatasync alike: the live image becomes the durable one.
    pub fn sync(&self) -> io::Result<()> {
        self.with(OpKind::Sync, |inode, _| {
            inode.durable = inode.live.clone();
            inode.dirty = false;
        })
    }

    pub fn len(&self) -> io::Result<u64> {
        self.with(OpKind::Metadata, |inode, _| inode.live.len() as u64)
    }

    pub fn is_empty(&self) -> io::Result<bool> {
        self.len().map(|len| len == 0)
    }
}

#[cfg(test)]
#[path = "sim_tests.rs"]
mod tests;
