//! The FUSE face of the [`Model`]: each kernel request is one model call under the lock.
//!
//! Every entry and attribute is answered with a zero TTL, and files are opened without
//! `FOPEN_KEEP_CACHE`, so the kernel drops a file's cached pages whenever it is opened: after a
//! power loss (taken only while no process has the files open, see `control`), reads see the
//! durable image, never a page the kernel kept. Writes go through to the model at once (no
//! writeback cache is negotiated).
//!
//! Not `FOPEN_DIRECT_IO`: on Linux 6.18, an io_uring read that comes up short at the end of a
//! direct-I/O FUSE file is retried by the kernel *at its start offset* for the remainder, so a
//! whole-file read got bytes of the file twice (seen as a corrupt `topics.json`).
#![forbid(unsafe_code)]

use std::ffi::OsStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::content::SECTOR_BYTES;
use crate::model::{Model, Node};

/// Nothing is cached by the kernel (see the module doc).
const TTL: Duration = Duration::ZERO;

/// See the module doc.
const OPEN_FLAGS: FopenFlags = FopenFlags::empty();

/// The mounted filesystem: the shared model (the control channel holds the other handle).
pub struct ForgetfulFs {
    model: Arc<Mutex<Model>>,
}

impl ForgetfulFs {
    pub fn new(model: Arc<Mutex<Model>>) -> Self {
        Self { model }
    }

    fn model(&self) -> MutexGuard<'_, Model> {
        // A panic under the lock is a bug in the model; the filesystem cannot go on meaningfully.
        self.model.lock().expect("model lock poisoned")
    }

    fn attr(model: &Model, ino: u64) -> Result<FileAttr, Errno> {
        let inode = model.inode(ino).map_err(Errno::from_i32)?;
        let (kind, size_bytes, nlink) = match &inode.node {
            Node::File(file) => (FileType::RegularFile, file.live.size_bytes(), 1),
            Node::Dir(_) => (FileType::Directory, 0, 2),
        };
        Ok(FileAttr {
            ino: INodeNo(ino),
            size: size_bytes,
            blocks: size_bytes.div_ceil(SECTOR_BYTES),
            atime: inode.mtime,
            mtime: inode.mtime,
            ctime: inode.mtime,
            crtime: inode.mtime,
            kind,
            perm: inode.perm,
            nlink,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    fn reply_entry(&self, result: Result<u64, i32>, reply: ReplyEntry) {
        let model = self.model();
        match result
            .map_err(Errno::from_i32)
            .and_then(|ino| Self::attr(&model, ino))
        {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(errno) => reply.error(errno),
        }
    }
}

fn empty(result: Result<(), i32>, reply: ReplyEmpty) {
    match result {
        Ok(()) => reply.ok(),
        Err(errno) => reply.error(Errno::from_i32(errno)),
    }
}

impl Filesystem for ForgetfulFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let result = self.model().lookup(parent.0, name);
        self.reply_entry(result, reply);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match Self::attr(&self.model(), ino.0) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(errno) => reply.error(errno),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut model = self.model();
        let changed = match size {
            Some(size_bytes) => model.set_len(ino.0, size_bytes),
            None => Ok(()),
        };
        if let (Ok(()), Some(mode)) = (changed, mode) {
            model.set_perm(ino.0, (mode & 0o7777) as u16);
        }
        match changed
            .map_err(Errno::from_i32)
            .and_then(|()| Self::attr(&model, ino.0))
        {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(errno) => reply.error(errno),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            reply.error(Errno::EPERM);
            return;
        }
        let result = self
            .model()
            .create(parent.0, name, false, (mode & 0o7777) as u16);
        self.reply_entry(result, reply);
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let result = self
            .model()
            .create(parent.0, name, true, (mode & 0o7777) as u16);
        self.reply_entry(result, reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(self.model().unlink(parent.0, name, false), reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(self.model().unlink(parent.0, name, true), reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.intersects(RenameFlags::RENAME_EXCHANGE | RenameFlags::RENAME_WHITEOUT) {
            reply.error(Errno::EINVAL);
            return;
        }
        let no_replace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        empty(
            self.model()
                .rename(parent.0, name, newparent.0, newname, no_replace),
            reply,
        );
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let mut model = self.model();
        match model.inode(ino.0) {
            Ok(_) => {
                model.stats.open_files += 1;
                reply.opened(FileHandle(0), OPEN_FLAGS);
            }
            Err(errno) => reply.error(Errno::from_i32(errno)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let mut model = self.model();
        model.stats.open_files = model.stats.open_files.saturating_sub(1);
        reply.ok();
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut model = self.model();
        // The kernel asks to create when its lookup saw no file; if one appeared since, open it
        // as open(2) would, truncating it under O_TRUNC (the kernel believes it created it and
        // does not truncate it itself).
        let ino = match model.create(parent.0, name, false, (mode & 0o7777) as u16) {
            Err(libc::EEXIST) if flags & libc::O_EXCL == 0 => {
                model.lookup(parent.0, name).and_then(|ino| {
                    if flags & libc::O_TRUNC != 0 {
                        model.set_len(ino, 0)?;
                    }
                    Ok(ino)
                })
            }
            other => other,
        };
        match ino
            .map_err(Errno::from_i32)
            .and_then(|ino| Self::attr(&model, ino))
        {
            Ok(attr) => {
                model.stats.open_files += 1;
                reply.created(&TTL, &attr, Generation(0), FileHandle(0), OPEN_FLAGS);
            }
            Err(errno) => reply.error(errno),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.model().read(ino.0, offset, u64::from(size)) {
            Ok(bytes) => reply.data(&bytes),
            Err(errno) => reply.error(Errno::from_i32(errno)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.model().write(ino.0, offset, data) {
            Ok(()) => reply.written(data.len() as u32),
            Err(errno) => reply.error(Errno::from_i32(errno)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        empty(self.model().fsync(ino.0), reply);
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let model = self.model();
        let entries = match model.entries(ino.0) {
            Ok(entries) => entries,
            Err(errno) => {
                reply.error(Errno::from_i32(errno));
                return;
            }
        };
        let dots = [(".".into(), ino.0), ("..".into(), ino.0)];
        let all = dots.into_iter().chain(entries);
        for (index, (name, child)) in all.enumerate().skip(offset as usize) {
            let kind = match model.inode(child).map(|inode| &inode.node) {
                Ok(Node::Dir(_)) => FileType::Directory,
                _ => FileType::RegularFile,
            };
            if reply.add(INodeNo(child), index as u64 + 1, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        empty(self.model().fsync(ino.0), reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // A roomy disk: 1 TiB in 4 KiB blocks, a million inodes.
        let blocks = (1u64 << 40) / 4096;
        reply.statfs(blocks, blocks, blocks, 1 << 20, 1 << 20, 4096, 255, 4096);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        empty(self.model().fallocate(ino.0, offset, length, mode), reply);
    }
}
