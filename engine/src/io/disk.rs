//! The engine's one file interface: every file and directory operation of the log, its segments,
//! indexes, recovery, compaction and snapshots goes through here, to one of two backends.
//!
//! - **Real**: compio files on the shard's io_uring (the functions of [`super`]), as before.
//! - **Simulated**: [`super::sim::SimDisk`], in memory, deterministic, with power loss and faults.
//!
//! How the backend is chosen (docs/decisions/0017-simulated-disk.md): an open file is a
//! [`DiskFile`] enum, so the hot path (write, fdatasync, read on an open segment) costs one
//! well-predicted branch on the variant, no virtual call and no allocation. Operations by path
//! (open, rename, remove, directory fsync, listing) ask the calling thread which disk it runs on:
//! a test installs a simulated disk on its thread with [`install_sim`]; the broker never does, so
//! it always takes the real branch.
//!
//! # Invariants
//! - A file opened on one backend is only ever used on that backend (the variant carries it).
//! - With no simulated disk installed, every function here does exactly what the real functions
//!   of [`super`] did before this module existed.
#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::io;
use std::path::{Path, PathBuf};

use compio::fs::File;

use super::sim::{SimDisk, SimFile};

thread_local! {
    /// The simulated disk the current thread's engine runs on, if a test installed one.
    static SIM_DISK: RefCell<Option<SimDisk>> = const { RefCell::new(None) };
}

/// Runs this thread's engine on `disk` until the guard drops.
pub fn install_sim(disk: &SimDisk) -> SimInstallGuard {
    SIM_DISK.with(|slot| {
        let previous = slot.borrow_mut().replace(disk.clone());
        assert!(
            previous.is_none(),
            "one simulated disk per thread at a time"
        );
    });
    SimInstallGuard { _private: () }
}

/// Uninstalls the simulated disk when dropped.
#[derive(Debug)]
pub struct SimInstallGuard {
    _private: (),
}

impl Drop for SimInstallGuard {
    fn drop(&mut self) {
        SIM_DISK.with(|slot| slot.borrow_mut().take());
    }
}

fn sim() -> Option<SimDisk> {
    SIM_DISK.with(|slot| slot.borrow().clone())
}

/// What [`DiskFile::metadata`] tells: the file's size.
#[derive(Debug, Clone, Copy)]
pub struct DiskMetadata {
    len_bytes: u64,
}

impl DiskMetadata {
    pub fn len(&self) -> u64 {
        self.len_bytes
    }

    pub fn is_empty(&self) -> bool {
        self.len_bytes == 0
    }
}

/// An open file on either backend. Cheap to clone (a shared descriptor or a shared handle).
#[derive(Debug, Clone)]
pub enum DiskFile {
    Real(File),
    Sim(SimFile),
}

impl DiskFile {
    /// The real file, for what only a real descriptor can do (splice, page-cache residency).
    pub fn as_real(&self) -> Option<&File> {
        match self {
            Self::Real(file) => Some(file),
            Self::Sim(_) => None,
        }
    }

    /// Writes all of `bytes` at `position`, looping over short writes.
    pub async fn write_all_at(&self, bytes: Vec<u8>, position: u64) -> io::Result<()> {
        match self {
            Self::Real(file) => super::write_all_at(file, bytes, position).await,
            Self::Sim(file) => sim_write_all_at(file, &bytes, position),
        }
    }

    /// Writes the buffers back to back at `position`; returns them for reuse.
    pub async fn write_vectored_all_at<B>(
        &self,
        buffers: Vec<B>,
        position: u64,
    ) -> io::Result<Vec<B>>
    where
        B: compio::buf::IoBuf + 'static,
    {
        match self {
            Self::Real(file) => super::write_vectored_all_at(file, buffers, position).await,
            Self::Sim(file) => {
                let mut joined = Vec::new();
                for buffer in &buffers {
                    joined.extend_from_slice(buffer.as_init());
                }
                sim_write_all_at(file, &joined, position)?;
                Ok(buffers)
            }
        }
    }

    /// Writes the buffers back to back at `position` on the calling thread (`pwritev(2)`).
    pub fn write_vectored_all_at_blocking(
        &self,
        buffers: &[bytes::Bytes],
        position: u64,
    ) -> io::Result<()> {
        match self {
            Self::Real(file) => super::write_vectored_all_at_blocking(file, buffers, position),
            Self::Sim(file) => sim_write_all_at(file, &buffers.concat(), position),
        }
    }

    /// A second handle on the same file for `O_DIRECT` writes ([`super::direct`]).
    pub async fn open_direct_writer(&self) -> io::Result<DiskFile> {
        match self {
            Self::Real(file) => {
                super::direct::open_direct(file, super::direct::DirectAccess::Write)
                    .await
                    .map(Self::Real)
            }
            Self::Sim(file) => file.open_direct().map(Self::Sim),
        }
    }

    /// Writes all of `bytes` at `position`. On a handle from [`Self::open_direct_writer`], the
    /// position, the length and the address of the first byte must be aligned to
    /// [`super::direct::DIRECT_ALIGN_BYTES`].
    pub async fn write_all_bytes_at(&self, bytes: bytes::Bytes, position: u64) -> io::Result<()> {
        match self {
            Self::Real(file) => {
                use compio::io::AsyncWriteAt;
                use compio::BufResult;
                let mut done = 0;
                while done < bytes.len() {
                    let mut handle = file;
                    let BufResult(result, _) = handle
                        .write_at(bytes.slice(done..), position + done as u64)
                        .await;
                    let count = result?;
                    if count == 0 {
                        return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0"));
                    }
                    done += count;
                }
                Ok(())
            }
            Self::Sim(file) => sim_write_all_at(file, &bytes, position),
        }
    }

    /// Reads up to `len` bytes at `position`; shorter only at end of file.
    pub async fn read_at_most(&self, position: u64, len: usize) -> io::Result<Vec<u8>> {
        match self {
            Self::Real(file) => super::read_at_most(file, position, len).await,
            Self::Sim(file) => file.read_at(position, len),
        }
    }

    /// Allocates `[offset, offset + len)`, extending the size (fallocate mode 0).
    pub async fn fallocate(&self, offset: u64, len: u64) -> io::Result<()> {
        match self {
            Self::Real(file) => super::fallocate(file, offset, len).await,
            Self::Sim(file) => file.allocate(offset, len),
        }
    }

    pub async fn set_len(&self, len: u64) -> io::Result<()> {
        match self {
            Self::Real(file) => file.set_len(len).await,
            Self::Sim(file) => file.set_len(len),
        }
    }

    /// Starts the writeback of a range without waiting (`sync_file_range(2)`, WRITE only). The
    /// simulated disk has no writeback to start: nothing is durable before a sync there either.
    pub async fn start_writeback(&self, position: u64, len: u64) -> io::Result<()> {
        match self {
            Self::Real(file) => super::start_writeback(file, position, len).await,
            Self::Sim(_) => Ok(()),
        }
    }

    /// Writes a range back, waits, and drops its pages from the page cache
    /// ([`super::write_back_and_drop`]). The simulated disk has no page cache to drop.
    pub async fn write_back_and_drop(&self, position: u64, len: u64) -> io::Result<()> {
        match self {
            Self::Real(file) => super::write_back_and_drop(file, position, len).await,
            Self::Sim(_) => Ok(()),
        }
    }

    /// fdatasync.
    pub async fn sync_data(&self) -> io::Result<()> {
        match self {
            Self::Real(file) => file.sync_data().await,
            Self::Sim(file) => file.sync(),
        }
    }

    /// fsync.
    pub async fn sync_all(&self) -> io::Result<()> {
        match self {
            Self::Real(file) => file.sync_all().await,
            Self::Sim(file) => file.sync(),
        }
    }

    pub async fn metadata(&self) -> io::Result<DiskMetadata> {
        let len_bytes = match self {
            Self::Real(file) => file.metadata().await?.len(),
            Self::Sim(file) => file.len()?,
        };
        Ok(DiskMetadata { len_bytes })
    }

    /// Closes the handle (the real backend reports a close error; the simulated one has none).
    pub async fn close(self) -> io::Result<()> {
        match self {
            Self::Real(file) => file.close().await,
            Self::Sim(_) => Ok(()),
        }
    }
}

fn sim_write_all_at(file: &SimFile, bytes: &[u8], position: u64) -> io::Result<()> {
    let mut written = 0usize;
    while written < bytes.len() {
        let count = file.write_at(&bytes[written..], position + written as u64)?;
        if count == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0"));
        }
        written += count;
    }
    Ok(())
}

/// Opens (creating if needed) a file for reading and writing.
pub async fn open_read_write(path: &Path) -> io::Result<DiskFile> {
    if let Some(disk) = sim() {
        return disk.open(path, true).map(DiskFile::Sim);
    }
    compio::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .open(path)
        .await
        .map(DiskFile::Real)
}

/// Creates `path` (or truncates it) for writing.
pub async fn create(path: &Path) -> io::Result<DiskFile> {
    if let Some(disk) = sim() {
        let file = disk.open(path, true)?;
        file.set_len(0)?;
        return Ok(DiskFile::Sim(file));
    }
    compio::fs::File::create(path).await.map(DiskFile::Real)
}

/// The whole content of `path`.
pub async fn read(path: &Path) -> io::Result<Vec<u8>> {
    if let Some(disk) = sim() {
        let file = disk.open(path, false)?;
        let len = usize::try_from(file.len()?).unwrap_or(usize::MAX);
        return file.read_at(0, len);
    }
    compio::fs::read(path).await
}

/// Whether `path` exists.
pub async fn exists(path: &Path) -> bool {
    if let Some(disk) = sim() {
        return disk.exists(path);
    }
    compio::fs::metadata(path).await.is_ok()
}

pub async fn remove_file(path: &Path) -> io::Result<()> {
    if let Some(disk) = sim() {
        return disk.remove_file(path);
    }
    compio::fs::remove_file(path).await
}

pub async fn rename(from: &Path, to: &Path) -> io::Result<()> {
    if let Some(disk) = sim() {
        return disk.rename(from, to);
    }
    compio::fs::rename(from, to).await
}

/// fsyncs a directory so that creations, renames and deletions in it are durable.
pub async fn sync_dir(dir: &Path) -> io::Result<()> {
    if let Some(disk) = sim() {
        return disk.sync_dir(dir);
    }
    let handle = compio::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)
        .await?;
    handle.sync_all().await
}

/// Creates `dir` and its missing parents (blocking work off the shard thread on the real disk).
pub async fn create_dir_all(dir: &Path) -> io::Result<()> {
    if let Some(disk) = sim() {
        return disk.create_dir_all(dir);
    }
    let owned = dir.to_path_buf();
    super::blocking(move || std::fs::create_dir_all(owned)).await
}

/// On a simulated disk, the space its test set (`None` if it set none); `None` on the real disk,
/// where [`crate::disk_space::file_system_space`] measures it.
pub fn simulated_space() -> Option<Option<crate::DiskSpace>> {
    sim().map(|disk| disk.space())
}

/// Full paths of the entries of `dir` (in no particular order on the real disk).
pub async fn list_dir(dir: &Path) -> io::Result<Vec<PathBuf>> {
    if let Some(disk) = sim() {
        return disk.list_dir(dir);
    }
    let owned = dir.to_path_buf();
    super::blocking(move || {
        std::fs::read_dir(&owned)?
            .map(|entry| entry.map(|entry| entry.path()))
            .collect::<io::Result<Vec<PathBuf>>>()
    })
    .await
}

/// Replaces `path` with `bytes` atomically and durably: a temp file beside it (`<path>.tmp`) is
/// written, fsynced and renamed over `path`, then the directory is fsynced. A crash leaves either
/// the old file or the new one, plus at most a stale temp file that readers ignore.
pub async fn write_file_atomically(path: &Path, bytes: Vec<u8>) -> io::Result<()> {
    let mut temp_name = path.as_os_str().to_owned();
    temp_name.push(".tmp");
    let temp_path = PathBuf::from(temp_name);
    let temp = create(&temp_path).await?;
    temp.write_all_at(bytes, 0).await?;
    temp.sync_all().await?;
    temp.close().await?;
    rename(&temp_path, path).await?;
    sync_dir(path.parent().unwrap_or(Path::new("."))).await
}
