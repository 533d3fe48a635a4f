//! The state a direct-writing log keeps between appends (its active segment's `O_DIRECT` handle
//! and last partial block, [`DirectTail`]) and the aligned write loop over a run of batches. Kept
//! apart from `direct.rs`, which drives it from `PartitionLog`, so that the log's state can hold
//! a tail without the two modules importing each other.
#![forbid(unsafe_code)]

use bytes::Bytes;

use crate::io::direct::{
    align_down, align_up, aligned_offset, DIRECT_ALIGN_BYTES, DIRECT_WRITE_BYTES_MAX,
};
use crate::io::disk::DiskFile;
use crate::units::{Offset, Position};

/// The active segment's direct handle and its last partial block.
pub(crate) struct DirectTail {
    /// The segment this is for (a roll starts another).
    pub(super) segment_base: Offset,
    /// The segment's end these bytes lead up to.
    pub(super) end: Position,
    /// `O_DIRECT` handle on the segment's file.
    pub(super) file: DiskFile,
    /// The bytes from the aligned block start before `end` to `end`.
    pub(super) partial_block: Vec<u8>,
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
pub(super) async fn write_run(
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
