//! Appends written with `O_DIRECT` (topic config `write.direct`, decision 0025).
//!
//! Why: a buffered write copies into page-cache pages the kernel has just allocated, and on
//! these VMs the first touch of a fresh page is the dear part (results/write-paths/: 1 MiB
//! direct writes from a reused buffer ran at 1.8-2.2 GB/s for 0.05-0.08 CPU-s per GB, buffered
//! at 0.55-1.3 GB/s for 0.2-1.1). Here a run of batches is copied into a shard-kept aligned
//! buffer and written from it, so no page is touched for the first time.
//!
//! `O_DIRECT` writes whole aligned blocks. The log's end is rarely aligned, so the log keeps the
//! bytes of its last, partial block ([`DirectTail`]): each write starts at that block with those
//! bytes again, and ends with the new end's block padded with zeros. The padding is never
//! read (reads stop at the log's end), the next write overwrites it, a seal cuts it off, and
//! recovery drops it as it drops preallocated space: zeros after the last batch. Rewriting the
//! partial block puts the same bytes in its first part, so a torn write of it cannot damage what
//! was there.
//!
//! Nothing written lands in the page cache: readers of the tail find it cold and read it from
//! disk (the broker does that with direct reads too). Where the file system refuses `O_DIRECT`
//! (EINVAL at open), the log writes buffered until it is reopened, and says so once.
#![forbid(unsafe_code)]

use bytes::Bytes;
use tracing::warn;

use super::state::PartitionLog;
use crate::io::direct::{
    align_down, align_up, aligned_start, return_write_buffer, take_write_buffer, DIRECT_ALIGN_BYTES,
};
use crate::io::disk::DiskFile;
use crate::segment::SegmentFiles;
use crate::units::{Offset, Position};

/// The active segment's direct handle and its last partial block.
pub(crate) struct DirectTail {
    /// The segment this is for (a roll starts another).
    segment_base: Offset,
    /// The segment's end these bytes lead up to.
    end: Position,
    /// `O_DIRECT` handle on the segment's file.
    file: DiskFile,
    /// The bytes from the aligned block start before `end` to `end`.
    partial_block: Vec<u8>,
}

/// How a run was written.
pub(crate) enum DirectOutcome {
    /// With `O_DIRECT`; with a copy of the run's bytes for the tail cache if one was asked for.
    Written(Option<Vec<Bytes>>),
    /// The file system refuses `O_DIRECT`: the caller writes the run buffered.
    Refused,
}

impl PartitionLog {
    /// Writes `run` at `position`, the active segment's end, with `O_DIRECT`; with
    /// `copy_for_cache`, returns its bytes copied out of the write buffers (a few large pieces
    /// that pin nothing else, unlike the producers' request buffers the run points into).
    pub(crate) async fn write_direct(
        &self,
        files: &SegmentFiles,
        segment_base: Offset,
        run: &[Bytes],
        position: Position,
        copy_for_cache: bool,
    ) -> std::io::Result<DirectOutcome> {
        let tail = self.state.borrow_mut().direct_tail.take();
        let tail = match tail {
            Some(tail) if tail.segment_base == segment_base && tail.end == position => tail,
            _ => match self.open_tail(files, segment_base, position).await? {
                Some(tail) => tail,
                None => return Ok(DirectOutcome::Refused),
            },
        };
        let mut copies = copy_for_cache.then(Vec::new);
        match write_run(tail, run, position, copies.as_mut()).await {
            Ok(tail) => {
                self.state.borrow_mut().direct_tail = Some(tail);
                Ok(DirectOutcome::Written(copies))
            }
            // Taken at open, refused at write: nothing was written that a buffered write of the
            // same run at the same place will not write again.
            Err(err) if err.raw_os_error() == Some(libc::EINVAL) => {
                warn!(path = %files.log_path.display(), %err,
                    "an O_DIRECT write was refused: this log writes through the page cache");
                self.state.borrow_mut().direct_refused = true;
                Ok(DirectOutcome::Refused)
            }
            Err(err) => Err(err),
        }
    }

    /// A tail for the active segment ending at `end`: a direct handle and the partial block read
    /// back. `None` if the file system refuses `O_DIRECT` (then never tried again on this log).
    async fn open_tail(
        &self,
        files: &SegmentFiles,
        segment_base: Offset,
        end: Position,
    ) -> std::io::Result<Option<DirectTail>> {
        if self.state.borrow().direct_refused {
            return Ok(None);
        }
        let file = match files.log.open_direct_writer().await {
            Ok(file) => file,
            Err(err) if err.raw_os_error() == Some(libc::EINVAL) => {
                warn!(path = %files.log_path.display(), %err,
                    "the file system refuses O_DIRECT: this log writes through the page cache");
                self.state.borrow_mut().direct_refused = true;
                return Ok(None);
            }
            Err(err) => return Err(err),
        };
        let block_start = align_down(end.get());
        let partial_bytes = usize::try_from(end.get() - block_start).expect("under one block");
        let partial_block = files.log.read_at_most(block_start, partial_bytes).await?;
        if partial_block.len() != partial_bytes {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "{} is shorter than its log end {}",
                    files.log_path.display(),
                    end.get()
                ),
            ));
        }
        Ok(Some(DirectTail {
            segment_base,
            end,
            file,
            partial_block,
        }))
    }
}

/// Writes `run` after `tail`'s partial block in aligned writes of at most
/// [`DIRECT_WRITE_BYTES_MAX`] from a pooled buffer; returns the tail at the new end. With
/// `copies`, each write's run bytes are copied there too.
async fn write_run(
    mut tail: DirectTail,
    run: &[Bytes],
    position: Position,
    mut copies: Option<&mut Vec<Bytes>>,
) -> std::io::Result<DirectTail> {
    let run_bytes: u64 = run.iter().map(|bytes| bytes.len() as u64).sum();
    let end = position.get() + run_bytes;
    let mut block_position = align_down(position.get());
    assert_eq!(
        block_position + tail.partial_block.len() as u64,
        position.get(),
        "the partial block ends at the log's end"
    );
    let mut source = RunCursor::new(run);
    let largest_write = tail.partial_block.len() as u64 + run_bytes;
    let mut buffer = take_write_buffer(usize::try_from(largest_write).unwrap_or(usize::MAX));
    let start = aligned_start(&buffer);
    let capacity = buffer.len() - DIRECT_ALIGN_BYTES;
    let mut carried = std::mem::take(&mut tail.partial_block);
    loop {
        // One write: the carried bytes (the partial block), then as much of the run as fits.
        let mut filled = carried.len();
        buffer[start..start + filled].copy_from_slice(&carried);
        filled += source.copy_into(&mut buffer[start + filled..start + capacity]);
        if let Some(copies) = copies.as_mut() {
            copies.push(Bytes::copy_from_slice(
                &buffer[start + carried.len()..start + filled],
            ));
        }
        let write_end = block_position + filled as u64;
        let aligned_bytes = align_up(filled);
        // Past the data: zeros, never read, overwritten by the next write.
        buffer[start + filled..start + aligned_bytes].fill(0);
        // A failed write fails the log: its buffer is not worth keeping.
        buffer = tail
            .file
            .write_range_at(buffer, start..start + aligned_bytes, block_position)
            .await?;
        // The next write starts at this one's last partial block (if any), carried again.
        let next_block = align_down(write_end);
        let partial = usize::try_from(write_end - next_block).expect("under one block");
        let partial_from = start + filled - partial;
        carried.clear();
        carried.extend_from_slice(&buffer[partial_from..start + filled]);
        block_position = next_block;
        if source.is_done() {
            assert_eq!(write_end, end, "a direct write covers its whole run");
            break;
        }
    }
    return_write_buffer(buffer);
    tail.partial_block = carried;
    tail.end = Position::new(end);
    Ok(tail)
}

/// Reads a run's buffers in order into successive write buffers.
struct RunCursor<'a> {
    run: &'a [Bytes],
    buffer_index: usize,
    offset_in_buffer: usize,
}

impl<'a> RunCursor<'a> {
    fn new(run: &'a [Bytes]) -> Self {
        Self {
            run,
            buffer_index: 0,
            offset_in_buffer: 0,
        }
    }

    /// Copies as much as fits into `into`; returns the bytes copied.
    fn copy_into(&mut self, into: &mut [u8]) -> usize {
        let mut copied = 0;
        while copied < into.len() && self.buffer_index < self.run.len() {
            let source = &self.run[self.buffer_index][self.offset_in_buffer..];
            let count = source.len().min(into.len() - copied);
            into[copied..copied + count].copy_from_slice(&source[..count]);
            copied += count;
            self.offset_in_buffer += count;
            if self.offset_in_buffer == self.run[self.buffer_index].len() {
                self.buffer_index += 1;
                self.offset_in_buffer = 0;
            }
        }
        copied
    }

    fn is_done(&self) -> bool {
        self.buffer_index == self.run.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_cursor_copies_its_buffers_in_order_across_targets() {
        let run = vec![
            Bytes::from_static(b"abc"),
            Bytes::new(),
            Bytes::from_static(b"defgh"),
            Bytes::from_static(b"i"),
        ];
        let mut cursor = RunCursor::new(&run);
        let mut first = [0u8; 4];
        assert_eq!(cursor.copy_into(&mut first), 4);
        assert_eq!(&first, b"abcd");
        assert!(!cursor.is_done());
        let mut second = [0u8; 10];
        assert_eq!(cursor.copy_into(&mut second), 5);
        assert_eq!(&second[..5], b"efghi");
        assert!(cursor.is_done());
        assert_eq!(cursor.copy_into(&mut second), 0);
    }
}
