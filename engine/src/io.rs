//! File operations on the shard's own io_uring, including the ones compio lacks.
//!
//! Everything on the data path (read, write, fdatasync, fallocate) is an io_uring submission on the
//! current thread's ring: a blocking file syscall on a shard thread would stall every connection of
//! that core. Rare metadata work (listing and creating directories, renames of the registry) goes
//! to compio's blocking pool through [`blocking`].
//!
//! This is one of the few modules with `unsafe`: the custom [`Fallocate`] opcode.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

use compio::driver::{OpCode, OpEntry};
use compio::driver::{SharedFd, ToSharedFd};
use compio::fs::File;
use compio::io::{AsyncReadAt, AsyncWriteAt};
use compio::BufResult;
use io_uring::{opcode, types::Fd};

/// Most iovecs one `writev` takes (Linux `IOV_MAX`).
pub const IOVECS_PER_WRITE_MAX: usize = 1024;

/// `fallocate(2)` as an io_uring operation (IORING_OP_FALLOCATE).
struct Fallocate {
    fd: SharedFd<std::fs::File>,
    offset: u64,
    len: u64,
    mode: i32,
}

// SAFETY: the entry references only the file descriptor, which `self.fd` keeps open until the
// operation completes (the driver owns the op until then); it points at no memory of ours.
unsafe impl OpCode for Fallocate {
    type Control = ();

    fn create_entry(&mut self, _: &mut Self::Control) -> OpEntry {
        opcode::Fallocate::new(Fd(self.fd.as_fd().as_raw_fd()), self.len)
            .offset(self.offset)
            .mode(self.mode)
            .build()
            .into()
    }
}

/// Allocates `[offset, offset + len)` of `file` on disk, extending its size (mode 0).
pub async fn fallocate(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let op = Fallocate {
        fd: file.to_shared_fd(),
        offset,
        len,
        mode: 0,
    };
    let BufResult(result, _) = compio::runtime::submit(op).await;
    result.map(|_| ())
}

/// Writes all of `bytes` at `position`, looping over short writes.
pub async fn write_all_at(file: &File, bytes: Vec<u8>, position: u64) -> io::Result<()> {
    let mut written = 0usize;
    let mut buffer = bytes;
    while written < buffer.len() {
        let tail = buffer.split_off(written);
        let mut handle = file;
        let BufResult(result, tail) = handle.write_at(tail, position + written as u64).await;
        buffer.extend_from_slice(&tail);
        let count = result?;
        if count == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0"));
        }
        written += count;
    }
    Ok(())
}

/// Writes the buffers back to back at `position` with as few `writev`s as the kernel allows.
/// Returns the buffers so the caller can reuse or drop them.
pub async fn write_vectored_all_at<B>(
    file: &File,
    buffers: Vec<B>,
    position: u64,
) -> io::Result<Vec<B>>
where
    B: compio::buf::IoBuf + 'static,
{
    let total: usize = buffers.iter().map(|buffer| buffer.buf_len()).sum();
    let mut done_buffers: Vec<B> = Vec::with_capacity(buffers.len());
    let mut remaining = buffers;
    let mut written_total = 0usize;
    while !remaining.is_empty() {
        let rest = if remaining.len() > IOVECS_PER_WRITE_MAX {
            remaining.split_off(IOVECS_PER_WRITE_MAX)
        } else {
            Vec::new()
        };
        let chunk = std::mem::replace(&mut remaining, rest);
        let chunk_bytes: usize = chunk.iter().map(|buffer| buffer.buf_len()).sum();
        let chunk = write_chunk(file, chunk, chunk_bytes, position + written_total as u64).await?;
        written_total += chunk_bytes;
        done_buffers.extend(chunk);
    }
    // Checked in release builds too: a short write here would leave a batch torn on disk.
    assert_eq!(
        written_total, total,
        "a vectored write covers all its bytes"
    );
    Ok(done_buffers)
}

/// One `writev` of at most [`IOVECS_PER_WRITE_MAX`] buffers, finishing short writes.
async fn write_chunk<B>(
    file: &File,
    chunk: Vec<B>,
    chunk_bytes: usize,
    position: u64,
) -> io::Result<Vec<B>>
where
    B: compio::buf::IoBuf + 'static,
{
    let mut handle = file;
    let BufResult(result, chunk) = handle.write_vectored_at(chunk, position).await;
    let mut written = result?;
    if written == chunk_bytes {
        return Ok(chunk);
    }
    // Short write (rare: signals, full disk on the way): finish it buffer by buffer.
    let mut offset_in_chunk = 0usize;
    for buffer in &chunk {
        let bytes = buffer.as_init();
        let buffer_end = offset_in_chunk + bytes.len();
        if written < buffer_end {
            let from = written.max(offset_in_chunk) - offset_in_chunk;
            write_all_at(
                file,
                bytes[from..].to_vec(),
                position + (offset_in_chunk + from) as u64,
            )
            .await?;
            written = buffer_end;
        }
        offset_in_chunk = buffer_end;
    }
    Ok(chunk)
}

/// Writes the buffers back to back at `position` with `pwritev(2)` on the calling thread: no
/// io_uring round trip and no io-wq hand-off, at the price of blocking the thread for the copy into
/// the page cache (and for dirty-page throttling, if the kernel applies it).
pub fn write_vectored_all_at_blocking(
    file: &File,
    buffers: &[bytes::Bytes],
    position: u64,
) -> io::Result<()> {
    let fd = file.as_raw_fd();
    let mut index = 0usize;
    let mut skip = 0usize; // bytes of buffers[index] already written
    let mut offset = position;
    while index < buffers.len() {
        let iovecs: Vec<libc::iovec> = buffers[index..]
            .iter()
            .take(IOVECS_PER_WRITE_MAX)
            .enumerate()
            .map(|(i, buffer)| {
                let start = if i == 0 { skip } else { 0 };
                libc::iovec {
                    iov_base: buffer[start..].as_ptr() as *mut libc::c_void,
                    iov_len: buffer.len() - start,
                }
            })
            .collect();
        let offset_signed = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file offset overflow"))?;
        // SAFETY: every iovec points into a live `Bytes` of `buffers`, borrowed for this call, with
        // its exact remaining length; the count is at most IOV_MAX; `fd` is open while `file` is.
        let written = unsafe {
            libc::pwritev(
                fd,
                iovecs.as_ptr(),
                iovecs.len() as libc::c_int,
                offset_signed,
            )
        };
        if written < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        if written == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "pwritev returned 0",
            ));
        }
        let mut left = written as usize;
        offset += left as u64;
        while left > 0 {
            let rest = buffers[index].len() - skip;
            if left >= rest {
                left -= rest;
                index += 1;
                skip = 0;
            } else {
                skip += left;
                left = 0;
            }
        }
        while index < buffers.len() && buffers[index].len() == skip {
            index += 1;
            skip = 0;
        }
    }
    Ok(())
}

/// Reads up to `len` bytes at `position`; shorter only at end of file.
pub async fn read_at_most(file: &File, position: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(len);
    while out.len() < len {
        let want = len - out.len();
        let buffer = Vec::with_capacity(want);
        let BufResult(result, buffer) = file.read_at(buffer, position + out.len() as u64).await;
        let count = result?;
        if count == 0 {
            break;
        }
        out.extend_from_slice(&buffer[..count]);
    }
    Ok(out)
}

/// Opens (creating if needed) a file for reading and writing.
pub async fn open_read_write(path: &Path) -> io::Result<File> {
    compio::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .open(path)
        .await
}

/// Replaces `path` with `bytes` atomically and durably: a temp file beside it (`<path>.tmp`) is
/// written, fsynced and renamed over `path`, then the directory is fsynced. A crash leaves either
/// the old file or the new one, plus at most a stale temp file that readers ignore.
pub async fn write_file_atomically(path: &Path, bytes: Vec<u8>) -> io::Result<()> {
    let mut temp_name = path.as_os_str().to_owned();
    temp_name.push(".tmp");
    let temp_path = std::path::PathBuf::from(temp_name);
    let temp = compio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temp_path)
        .await?;
    write_all_at(&temp, bytes, 0).await?;
    temp.sync_all().await?;
    temp.close().await?;
    compio::fs::rename(&temp_path, path).await?;
    sync_dir(path.parent().unwrap_or(Path::new("."))).await
}

/// fsyncs a directory so that creations, renames and deletions in it are durable.
pub async fn sync_dir(dir: &Path) -> io::Result<()> {
    let handle = compio::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)
        .await?;
    handle.sync_all().await
}

/// Runs rare, blocking metadata work (directory listing, mkdir) off the shard thread.
pub async fn blocking<T, F>(work: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    match compio::runtime::spawn_blocking(work).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::other("blocking task panicked")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[compio::test]
    async fn fallocate_extends_and_vectored_writes_land_in_order() {
        // The custom opcode must really allocate, and the writev helper must keep buffer order.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = open_read_write(&path).await.unwrap();
        fallocate(&file, 0, 1 << 20).await.unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 1 << 20);
        let buffers: Vec<Vec<u8>> = (0..3000u32).map(|i| i.to_be_bytes().to_vec()).collect();
        write_vectored_all_at(&file, buffers, 8).await.unwrap();
        let back = read_at_most(&file, 8, 12_000).await.unwrap();
        for (i, chunk) in back.chunks(4).enumerate() {
            assert_eq!(chunk, (i as u32).to_be_bytes());
        }
        let past_end = read_at_most(&file, (1 << 20) - 4, 100).await.unwrap();
        assert_eq!(past_end.len(), 4);
    }

    #[compio::test]
    async fn blocking_vectored_writes_land_in_order_past_the_iovec_limit() {
        // The inline pwritev path must keep buffer order across IOV_MAX chunks and empty buffers.
        let dir = tempfile::tempdir().unwrap();
        let file = open_read_write(&dir.path().join("f")).await.unwrap();
        let buffers: Vec<bytes::Bytes> = (0..3000u32)
            .map(|i| {
                if i % 7 == 0 {
                    bytes::Bytes::new()
                } else {
                    bytes::Bytes::from(i.to_be_bytes().to_vec())
                }
            })
            .collect();
        let total: usize = buffers.iter().map(bytes::Bytes::len).sum();
        write_vectored_all_at_blocking(&file, &buffers, 8).unwrap();
        let back = read_at_most(&file, 8, total + 100).await.unwrap();
        assert_eq!(back.len(), total);
        let expected: Vec<u8> = buffers.iter().flat_map(|b| b.iter().copied()).collect();
        assert_eq!(back, expected);
    }
}
