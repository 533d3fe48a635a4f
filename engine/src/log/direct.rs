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

use super::direct_tail::{write_run, DirectTail, WrittenPiece};
use super::state::PartitionLog;
use crate::io::direct::align_down;
use crate::segment::SegmentFiles;
use crate::units::{Offset, Position};
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
