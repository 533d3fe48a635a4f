//! Appends written with `O_DIRECT` (topic config `write.direct`, decision 0025).
//!
//! Why: a buffered write copies into page-cache pages the kernel has just allocated, and on
//! these VMs the first touch of a fresh page is the dear part (results/write-paths/: 1 MiB
//! direct writes from a reused buffer ran at 1.8-2.2 GB/s for 0.05-0.08 CPU-s per GB, buffered
//! at 0.55-1.3 GB/s for 0.2-1.1). Here a run of batches is copied once, into an aligned buffer
//! of the write's size, and written from it: no page-cache page is allocated, and the buffers'
//! memory is what the allocator hands out again as earlier buffers are freed (warm in steady
//! state). The tail cache then keeps the buffer ([`super::tail_cache`]).
//!
//! `O_DIRECT` writes whole aligned blocks. The log's end is rarely aligned, so the log keeps the
//! bytes of its last, partial block ([`DirectTail`]): each write starts at that block with those
//! bytes again, and ends with the new end's block padded with zeros. The padding is never
//! read (reads stop at the log's end), the next write overwrites it, a seal cuts it off, and
//! recovery drops it as it drops preallocated space: zeros after the last batch. Rewriting the
//! partial block puts the same bytes in its first part, so a torn write of it cannot damage what
//! was there.
//!
//! Nothing written lands in the page cache: readers of the tail get it from the tail cache, or
//! find it cold and read it from disk. Where the file system refuses `O_DIRECT` (EINVAL at open
//! or at a write), or the direct open fails otherwise (no `/proc`, no descriptor left), the log
//! writes buffered until it is reopened, and says so once.
#![forbid(unsafe_code)]

use bytes::Bytes;
use tracing::warn;

use super::state::PartitionLog;
use crate::io::direct::{
    align_down, align_up, aligned_offset, DIRECT_ALIGN_BYTES, DIRECT_WRITE_BYTES_MAX,
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
    /// With `O_DIRECT`; with the run's bytes for the tail cache if they were asked for.
    Written(Option<Vec<WrittenPiece>>),
    /// The file system refuses `O_DIRECT`: the caller writes the run buffered.
    Refused,
}

impl PartitionLog {
    /// Writes `run` at `position`, the active segment's end, with `O_DIRECT`; with
    /// `keep_for_cache`, returns its bytes as the write buffers they were written from (a few
    /// large pieces that pin nothing else, unlike the producers' request buffers the run points
    /// into).
    pub(crate) async fn write_direct(
        &self,
        files: &SegmentFiles,
        segment_base: Offset,
        run: &[Bytes],
        position: Position,
        keep_for_cache: bool,
    ) -> std::io::Result<DirectOutcome> {
        let tail = self.state.borrow_mut().direct_tail.take();
        let tail = match tail {
            Some(tail) if tail.segment_base == segment_base && tail.end == position => tail,
            _ => match self.open_tail(files, segment_base, position).await? {
                Some(tail) => tail,
                None => return Ok(DirectOutcome::Refused),
            },
        };
        let mut pieces = keep_for_cache.then(Vec::new);
        match write_run(tail, run, position, pieces.as_mut()).await {
            Ok(tail) => {
                self.state.borrow_mut().direct_tail = Some(tail);
                Ok(DirectOutcome::Written(pieces))
            }
            // Taken at open, refused at write: nothing was written that a buffered write of the
            // same run at the same place will not write again.
            Err(err) if err.raw_os_error() == Some(libc::EINVAL) => {
                self.refuse_direct(files, &err);
                Ok(DirectOutcome::Refused)
            }
            Err(err) => Err(err),
        }
    }

    /// `O_DIRECT` refused (at open or at a write) or its open failed: buffered writes from now on.
    fn refuse_direct(&self, files: &SegmentFiles, err: &std::io::Error) {
        warn!(path = %files.log_path.display(), %err,
            "O_DIRECT refused or not available: this log writes through the page cache");
        self.state.borrow_mut().direct_refused = true;
    }

    /// A tail for the active segment ending at `end`: a direct handle and the partial block read
    /// back. `None` if the direct open fails (then never tried again on this log).
    async fn open_tail(
        &self,
        files: &SegmentFiles,
        segment_base: Offset,
        end: Position,
    ) -> std::io::Result<Option<DirectTail>> {
        if self.state.borrow().direct_refused {
            return Ok(None);
        }
        // Any failed open falls back, as cold reads do: EINVAL (the file system refuses
        // O_DIRECT), but also no `/proc` to reopen through, a refused permission or no
        // descriptor left. Failing the write instead would fail the log until restart, and
        // every restart after, for want of what a buffered write does not need.
        let file = match files.log.open_direct_writer().await {
            Ok(file) => file,
            Err(err) => {
                self.refuse_direct(files, &err);
                return Ok(None);
            }
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

/// A written piece of a run, for the tail cache: the run's bytes of one write, sharing that
/// write's buffer, and the buffer's size (what the cache holds).
pub(crate) struct WrittenPiece {
    pub(crate) bytes: Bytes,
    pub(crate) held_bytes: u64,
}

/// Writes `run` after `tail`'s partial block in aligned writes of at most
/// [`DIRECT_WRITE_BYTES_MAX`], each from a buffer of its own size; returns the tail at the new
/// end. With `pieces`, each write's buffer is kept there (its run bytes) for the tail cache:
/// the bytes are copied once, into the buffer the disk reads them from.
async fn write_run(
    mut tail: DirectTail,
    run: &[Bytes],
    position: Position,
    mut pieces: Option<&mut Vec<WrittenPiece>>,
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
    let mut left = usize::try_from(run_bytes).expect("a run fits in memory");
    let mut carried = std::mem::take(&mut tail.partial_block);
    loop {
        // One write: the carried bytes (the partial block), then as much of the run as fits,
        // then zeros to the block's end (never read, overwritten by the next write).
        let taken = left.min(DIRECT_WRITE_BYTES_MAX - carried.len());
        let filled = carried.len() + taken;
        let aligned_bytes = align_up(filled);
        let held_bytes = aligned_bytes + DIRECT_ALIGN_BYTES;
        let mut buffer = Vec::with_capacity(held_bytes);
        let start = aligned_offset(buffer.as_ptr());
        buffer.resize(start, 0);
        buffer.extend_from_slice(&carried);
        source.extend_into(&mut buffer, taken);
        buffer.resize(start + aligned_bytes, 0);
        assert_eq!(
            buffer.capacity(),
            held_bytes,
            "the buffer was not reallocated"
        );
        let buffer = Bytes::from(buffer);
        tail.file
            .write_all_bytes_at(buffer.slice(start..start + aligned_bytes), block_position)
            .await?;
        left -= taken;
        let write_end = block_position + filled as u64;
        if let Some(pieces) = pieces.as_mut() {
            pieces.push(WrittenPiece {
                bytes: buffer.slice(start + carried.len()..start + filled),
                held_bytes: held_bytes as u64,
            });
        }
        // The next write starts at this one's last partial block (if any), carried again.
        let next_block = align_down(write_end);
        let partial = usize::try_from(write_end - next_block).expect("under one block");
        carried.clear();
        carried.extend_from_slice(&buffer[start + filled - partial..start + filled]);
        block_position = next_block;
        if left == 0 {
            assert_eq!(write_end, end, "a direct write covers its whole run");
            break;
        }
    }
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

    /// Appends the next `count` bytes of the run to `into`.
    fn extend_into(&mut self, into: &mut Vec<u8>, count: usize) {
        let mut copied = 0;
        while copied < count {
            let source = &self.run[self.buffer_index][self.offset_in_buffer..];
            let step = source.len().min(count - copied);
            into.extend_from_slice(&source[..step]);
            copied += step;
            self.offset_in_buffer += step;
            if self.offset_in_buffer == self.run[self.buffer_index].len() {
                self.buffer_index += 1;
                self.offset_in_buffer = 0;
            }
        }
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
        let mut first = Vec::new();
        cursor.extend_into(&mut first, 4);
        assert_eq!(first, b"abcd");
        let mut second = b"xy".to_vec();
        cursor.extend_into(&mut second, 5);
        assert_eq!(second, b"xyefghi");
    }
}
