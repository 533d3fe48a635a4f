//! Which `O_DIRECT` writes does io_uring hand to an io-wq worker on ext4? (issue 13,
//! results/write-direct-inline-submit/). Writes 800 × 1 MiB into a fresh, preallocated file the
//! way the broker does (a buffered descriptor, an `O_DIRECT` one reopened through /proc):
//!
//! - `plain`: each write starts where the last ended;
//! - `overlap`: each write starts at the last write's final block (the broker's rewrite of the
//!   log's partial last block), so its range spans one written block and unwritten ones;
//! - `overlap-split`: the same bytes, with the first block as a write of its own beside the rest;
//! - `readpage`: like `plain`, after a buffered read of the block the next write starts at.
//!
//! Count the hand-offs with
//! `perf stat -e io_uring:io_uring_queue_async_work -a -- target/release/punt-repro MODE`.
use compio::io::AsyncWriteAt;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

const WRITE_BYTES: usize = 1 << 20;
const BLOCK_BYTES: usize = 4096;

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "plain".into());
    let path = std::env::args()
        .nth(2)
        .unwrap_or_else(|| "punt-repro.data".into());
    let runtime = compio::runtime::Runtime::new().unwrap();
    let data_path = path.clone();
    runtime.block_on(async move {
        let _ = std::fs::remove_file(&path);
        let file = compio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .open(&path)
            .await
            .unwrap();
        // SAFETY: a plain syscall on a descriptor this function owns, no pointers passed.
        let allocated = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, 1 << 30) };
        assert_eq!(allocated, 0, "fallocate");
        let direct = compio::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(format!("/proc/self/fd/{}", file.as_raw_fd()))
            .await
            .unwrap();
        let overlap = mode.starts_with("overlap");
        let started = std::time::Instant::now();
        let mut position = 0u64;
        for _ in 0..800 {
            if mode == "readpage" {
                let mut block = vec![0u8; BLOCK_BYTES];
                std::fs::File::open(&path)
                    .and_then(|plain| plain.read_at(&mut block, position))
                    .unwrap();
            }
            let mut buffer: Vec<u8> = Vec::with_capacity(WRITE_BYTES + BLOCK_BYTES);
            let start = (buffer.as_ptr() as usize).next_multiple_of(BLOCK_BYTES)
                - buffer.as_ptr() as usize;
            buffer.resize(start + WRITE_BYTES, 7);
            let buffer = bytes::Bytes::from(buffer);
            let written = if mode == "overlap-split" {
                let (mut first, mut rest) = (&direct, &direct);
                let (a, b) = futures_util::future::join(
                    first.write_at(buffer.slice(start..start + BLOCK_BYTES), position),
                    rest.write_at(
                        buffer.slice(start + BLOCK_BYTES..start + WRITE_BYTES),
                        position + BLOCK_BYTES as u64,
                    ),
                )
                .await;
                a.0.unwrap() + b.0.unwrap()
            } else {
                let mut handle = &direct;
                let compio::BufResult(result, _) = handle
                    .write_at(buffer.slice(start..start + WRITE_BYTES), position)
                    .await;
                result.unwrap()
            };
            assert_eq!(written, WRITE_BYTES);
            position += if overlap {
                (WRITE_BYTES - BLOCK_BYTES) as u64
            } else {
                WRITE_BYTES as u64
            };
        }
        eprintln!("{mode}: 800 writes in {:?}", started.elapsed());
    });
    let _ = std::fs::remove_file(data_path);
}
