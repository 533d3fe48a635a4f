//! Reads at an I/O priority (IORING_OP_READ with `ioprio` set, which compio's read does not
//! expose), and reads that hold something with their buffer until the kernel lets go of it.
//! One of the few modules with `unsafe`: the `ReadAtPriority` opcode.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

use compio::driver::{OpCode, OpEntry};
use compio::driver::{SharedFd, ToSharedFd};
use compio::fs::File;
use compio::BufResult;
use io_uring::{opcode, types::Fd};

/// The I/O priority one read asks of the block layer (the classes of `ioprio_set(2)`), carried
/// in its io_uring submission. Schedulers that know priorities (mq-deadline, bfq) honour it; with
/// `none` (usual on NVMe) it changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoPriority {
    /// The thread's own priority (best effort, unless someone changed it).
    Default,
    /// `IOPRIO_CLASS_IDLE`: dispatched only while no request of a higher class waits (mq-deadline
    /// still dispatches one that waited `prio_aging_expire`, 10 s by default).
    Idle,
}

impl IoPriority {
    /// The submission's `ioprio` field: `IOPRIO_PRIO_VALUE(class, 0)`, or 0 for the thread's own.
    fn ioprio(self) -> u16 {
        const IOPRIO_CLASS_SHIFT: u16 = 13;
        const IOPRIO_CLASS_IDLE: u16 = 3;
        match self {
            IoPriority::Default => 0,
            IoPriority::Idle => IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT,
        }
    }
}

/// `pread(2)` into `buffer[range]` with an I/O priority (IORING_OP_READ with `ioprio` set, which
/// compio's read does not expose), holding `held` for as long as it holds the buffer.
struct ReadAtPriority<H> {
    fd: SharedFd<std::fs::File>,
    buffer: Vec<u8>,
    range: std::ops::Range<usize>,
    offset: u64,
    ioprio: u16,
    held: H,
}

// SAFETY: the entry points into `self.buffer`'s heap allocation, which the op owns (and so keeps
// alive and unmoved: moving the `Vec` does not move its heap bytes) until the operation
// completes, and `range` is checked to lie within the buffer's initialized length; the file
// descriptor is kept open by `self.fd` the same way.
unsafe impl<H> OpCode for ReadAtPriority<H> {
    type Control = ();

    fn create_entry(&mut self, _: &mut Self::Control) -> OpEntry {
        let target = &mut self.buffer[self.range.clone()];
        opcode::Read::new(
            Fd(self.fd.as_fd().as_raw_fd()),
            target.as_mut_ptr(),
            u32::try_from(target.len()).unwrap_or(u32::MAX),
        )
        .offset(self.offset)
        .ioprio(self.ioprio)
        .build()
        .into()
    }
}

/// Reads from `position` of `file` into `buffer[range]` at `priority`, as one `pread` (it may be
/// short); returns the bytes read and the buffer. `range` must lie within `buffer.len()`.
pub async fn read_at_priority(
    file: &File,
    buffer: Vec<u8>,
    range: std::ops::Range<usize>,
    position: u64,
    priority: IoPriority,
) -> (io::Result<usize>, Vec<u8>) {
    let (result, buffer, ()) =
        read_at_priority_holding(file, buffer, range, position, priority, ()).await;
    (result, buffer)
}

/// [`read_at_priority`], holding `held` with the buffer until the kernel is done with it, and
/// giving it back with the buffer. Why: this future may be dropped while the read is in flight
/// (a client gone, a response cut short); the driver then keeps the buffer until the read
/// completes or its cancellation does, which for a disk read already sent is when the disk
/// answers. A charge for the buffer's memory passed as `held` so ends when that memory is free,
/// not when the caller stops waiting.
pub async fn read_at_priority_holding<H: 'static>(
    file: &File,
    buffer: Vec<u8>,
    range: std::ops::Range<usize>,
    position: u64,
    priority: IoPriority,
    held: H,
) -> (io::Result<usize>, Vec<u8>, H) {
    assert!(
        range.start <= range.end && range.end <= buffer.len(),
        "a read's range lies within its buffer"
    );
    let op = ReadAtPriority {
        fd: file.to_shared_fd(),
        buffer,
        range,
        offset: position,
        ioprio: priority.ioprio(),
        held,
    };
    let BufResult(result, op) = compio::runtime::submit(op).await;
    (result, op.buffer, op.held)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::tests::open_real;
    use crate::io::write_all_at;

    #[compio::test]
    async fn reads_at_a_priority_fill_exactly_their_range() {
        // The custom read must land the file's bytes in the asked part of the buffer, leave the
        // rest alone, be short at the end of the file, and give the buffer back either way.
        let dir = tempfile::tempdir().unwrap();
        let file = open_real(&dir.path().join("f")).await;
        let written: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        write_all_at(&file, written.clone(), 0).await.unwrap();
        for priority in [IoPriority::Default, IoPriority::Idle] {
            let (read, buffer) =
                read_at_priority(&file, vec![0xEE; 9000], 100..8100, 4096, priority).await;
            assert_eq!(read.unwrap(), 8000, "{priority:?}");
            assert_eq!(&buffer[100..8100], &written[4096..12_096], "{priority:?}");
            assert!(buffer[..100]
                .iter()
                .chain(&buffer[8100..])
                .all(|&b| b == 0xEE));

            let (read, buffer) =
                read_at_priority(&file, vec![0; 4096], 0..4096, 19_000, priority).await;
            assert_eq!(read.unwrap(), 1000, "a short read at the end of the file");
            assert_eq!(&buffer[..1000], &written[19_000..]);
        }
        assert_eq!(
            IoPriority::Idle.ioprio(),
            3 << 13,
            "IOPRIO_PRIO_VALUE(IDLE, 0)"
        );
        assert_eq!(IoPriority::Default.ioprio(), 0, "the thread's own priority");
    }

    #[compio::test]
    async fn a_dropped_read_holds_what_it_was_given_until_the_kernel_lets_go() {
        // A read of an empty FIFO waits in the kernel. Its future dropped, the buffer and what
        // the read holds stay with the driver until the cancellation completes: not freed while
        // the kernel may still write into the buffer, and not kept past it.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &path,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .expect("mkfifo");
        // Read and write: opening a FIFO so does not wait for a writer (Linux).
        let fifo = compio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .await
            .unwrap();
        let held = std::rc::Rc::new(());
        let read = read_at_priority_holding(
            &fifo,
            vec![0; 4096],
            0..4096,
            0,
            IoPriority::Default,
            held.clone(),
        );
        // Polled with the runtime running (not once by hand), so the read is submitted and
        // waits in the kernel before its future is dropped.
        let mut read = Box::pin(read);
        let waited = compio::time::timeout(std::time::Duration::from_millis(50), &mut read).await;
        assert!(waited.is_err(), "nothing to read yet");
        drop(read);
        assert_eq!(
            std::rc::Rc::strong_count(&held),
            2,
            "held by the read in flight after its future is gone"
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::rc::Rc::strong_count(&held) > 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "the cancelled read never let go of what it held"
            );
            compio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
}
