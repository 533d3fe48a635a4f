//! Reused receive buffers for large request frames.
//!
//! Why: a Produce frame of a few hundred KiB read into a freshly allocated buffer lands in pages the
//! allocator has just taken from the kernel (glibc serves such sizes from fresh mappings or a heap
//! top it trims again), so the socket read faults once per 4 KiB page, inside `tcp_recvmsg`'s copy
//! on the shard thread. At 850 MB/s that was 6-9k faults a second, every one of them there
//! (results/frame-pool/). On a VM that hands free memory back to its host, a page touched for the
//! first time costs 15-18 µs (results/profile/). Frames of at least [`POOLED_FRAME_BYTES_MIN`] are
//! read into buffers a shard's pool keeps warm instead. A frame's buffer goes back when the last
//! slice of it is dropped, on whichever thread that is (record sets travel to their owner shard),
//! and the pool keeps at most its configured bytes: past that, buffers are freed as before.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

/// Frames shorter than this are allocated as before: the allocator serves them from memory it
/// reuses anyway (glibc's heap below its mmap threshold).
pub const POOLED_FRAME_BYTES_MIN: usize = 128 * 1024;
/// Pooled buffers are sized in steps of this, so frames of nearby sizes share buffers.
const BUFFER_STEP_BYTES: usize = 256 * 1024;

/// One shard's spare frame buffers.
pub struct FramePool {
    spares: Mutex<Vec<Vec<u8>>>,
    /// The most bytes of capacity the spares may hold (0: no pooling).
    pool_bytes_max: u64,
    pooled_bytes: AtomicU64,
    reused_total: AtomicU64,
    allocated_total: AtomicU64,
}

/// The pool's counters, for /metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FramePoolStats {
    pub pooled_bytes: u64,
    pub reused_total: u64,
    pub allocated_total: u64,
}

impl FramePool {
    pub fn new(pool_bytes_max: u64) -> Arc<Self> {
        Arc::new(Self {
            spares: Mutex::new(Vec::new()),
            pool_bytes_max,
            pooled_bytes: AtomicU64::new(0),
            reused_total: AtomicU64::new(0),
            allocated_total: AtomicU64::new(0),
        })
    }

    /// An empty buffer with room for `len` bytes: a spare if one fits (the smallest that does).
    pub fn take(&self, len: usize) -> Vec<u8> {
        if !self.pools(len) {
            return Vec::with_capacity(len);
        }
        let reused = {
            // The gauge changes under the lock, as in `give_back`, so the two never interleave.
            let mut spares = self.spares.lock().unwrap_or_else(PoisonError::into_inner);
            let best = (spares.iter().enumerate())
                .filter(|(_, spare)| spare.capacity() >= len)
                .min_by_key(|(_, spare)| spare.capacity())
                .map(|(index, _)| index);
            best.map(|index| {
                let buffer = spares.swap_remove(index);
                self.pooled_bytes
                    .fetch_sub(buffer.capacity() as u64, Ordering::Relaxed);
                buffer
            })
        };
        match reused {
            Some(mut buffer) => {
                self.reused_total.fetch_add(1, Ordering::Relaxed);
                buffer.clear();
                buffer
            }
            None => {
                self.allocated_total.fetch_add(1, Ordering::Relaxed);
                Vec::with_capacity(len.next_multiple_of(BUFFER_STEP_BYTES))
            }
        }
    }

    /// The frame read into `buffer`, as the `Bytes` its slices share; a pooled buffer returns to
    /// this pool when the last of them is dropped.
    pub fn frame(self: &Arc<Self>, buffer: Vec<u8>) -> Bytes {
        if !self.pools(buffer.capacity()) {
            return Bytes::from(buffer);
        }
        Bytes::from_owner(PooledFrame {
            buffer,
            pool: Arc::clone(self),
        })
    }

    pub fn stats(&self) -> FramePoolStats {
        FramePoolStats {
            pooled_bytes: self.pooled_bytes.load(Ordering::Relaxed),
            reused_total: self.reused_total.load(Ordering::Relaxed),
            allocated_total: self.allocated_total.load(Ordering::Relaxed),
        }
    }

    fn pools(&self, len: usize) -> bool {
        len >= POOLED_FRAME_BYTES_MIN && len as u64 <= self.pool_bytes_max
    }

    /// Keeps `buffer` as a spare if the pool has room for it; frees it otherwise.
    fn give_back(&self, buffer: Vec<u8>) {
        let capacity = buffer.capacity() as u64;
        let mut spares = self.spares.lock().unwrap_or_else(PoisonError::into_inner);
        let pooled = self.pooled_bytes.load(Ordering::Relaxed);
        if pooled + capacity <= self.pool_bytes_max {
            self.pooled_bytes
                .store(pooled + capacity, Ordering::Relaxed);
            spares.push(buffer);
        }
    }
}

/// A pooled frame buffer owned by its `Bytes`; back to the pool on drop.
struct PooledFrame {
    buffer: Vec<u8>,
    pool: Arc<FramePool>,
}

impl AsRef<[u8]> for PooledFrame {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for PooledFrame {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buffer));
    }
}

/// The pools' counters summed over the shards, on /metrics.
pub fn render_metrics(out: &mut String, pools: &[Arc<FramePool>]) {
    let mut total = FramePoolStats::default();
    for pool in pools {
        let stats = pool.stats();
        total.pooled_bytes += stats.pooled_bytes;
        total.reused_total += stats.reused_total;
        total.allocated_total += stats.allocated_total;
    }
    out.push_str(&format!(
        "# HELP ringtail_frame_pool_bytes Spare request-frame buffers the shards keep warm (--frame-pool-bytes each).\n\
         # TYPE ringtail_frame_pool_bytes gauge\nringtail_frame_pool_bytes {}\n\
         # HELP ringtail_frame_pool_reused_total Large request frames read into a spare buffer.\n\
         # TYPE ringtail_frame_pool_reused_total counter\nringtail_frame_pool_reused_total {}\n\
         # HELP ringtail_frame_pool_allocated_total Large request frames that needed a new buffer.\n\
         # TYPE ringtail_frame_pool_allocated_total counter\nringtail_frame_pool_allocated_total {}\n",
        total.pooled_bytes, total.reused_total, total.allocated_total
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    fn filled(pool: &Arc<FramePool>, len: usize, byte: u8) -> Bytes {
        let mut buffer = pool.take(len);
        buffer.resize(len, byte);
        pool.frame(buffer)
    }

    #[test]
    fn a_large_frame_buffer_comes_back_when_its_last_slice_drops() {
        let pool = FramePool::new(16 * MIB as u64);
        let frame = filled(&pool, 300 * 1024, 7);
        let slice = frame.slice(1000..2000);
        drop(frame);
        assert_eq!(pool.stats().pooled_bytes, 0, "a slice still holds it");
        assert!(slice.iter().all(|&byte| byte == 7));
        drop(slice);
        let stats = pool.stats();
        assert_eq!(
            stats.pooled_bytes,
            512 * 1024,
            "rounded up to the buffer step"
        );
        assert_eq!(stats.allocated_total, 1);

        // The next frame that fits reuses it, whatever it held; its bytes are the new ones.
        let frame = filled(&pool, 400 * 1024, 9);
        assert_eq!(frame.len(), 400 * 1024);
        assert!(frame.iter().all(|&byte| byte == 9));
        assert_eq!(pool.stats().reused_total, 1);
        assert_eq!(pool.stats().pooled_bytes, 0);
    }

    #[test]
    fn the_smallest_spare_that_fits_is_taken() {
        let pool = FramePool::new(64 * MIB as u64);
        let large = filled(&pool, 3 * MIB, 1);
        let small = filled(&pool, 200 * 1024, 1);
        drop((large, small));
        let buffer = pool.take(150 * 1024);
        assert_eq!(buffer.capacity(), 256 * 1024);
        let buffer = pool.take(MIB);
        assert_eq!(buffer.capacity(), 3 * MIB);
        assert_eq!(pool.stats().reused_total, 2);
    }

    #[test]
    fn small_frames_and_a_full_pool_are_not_pooled() {
        let pool = FramePool::new(MIB as u64);
        drop(filled(&pool, 4096, 0));
        assert_eq!(
            pool.stats(),
            FramePoolStats::default(),
            "small frames bypass the pool"
        );
        drop(filled(&pool, 2 * MIB, 0));
        assert_eq!(pool.stats().pooled_bytes, 0, "larger than the whole pool");
        let first = filled(&pool, 768 * 1024, 0);
        let second = filled(&pool, 768 * 1024, 0);
        drop((first, second));
        assert_eq!(
            pool.stats().pooled_bytes,
            768 * 1024,
            "the second buffer did not fit in the pool's bound and was freed"
        );
    }

    #[test]
    fn a_pool_of_zero_bytes_never_pools() {
        let pool = FramePool::new(0);
        drop(filled(&pool, MIB, 0));
        assert_eq!(pool.stats(), FramePoolStats::default());
    }

    #[test]
    fn buffers_dropped_on_other_threads_come_back() {
        let pool = FramePool::new(64 * MIB as u64);
        let frames: Vec<Bytes> = (0..4).map(|_| filled(&pool, MIB, 3)).collect();
        std::thread::scope(|scope| {
            for frame in frames {
                scope.spawn(move || drop(frame));
            }
        });
        assert_eq!(pool.stats().pooled_bytes, 4 * MIB as u64);
    }
}
