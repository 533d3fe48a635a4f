//! The process's global allocator: the system allocator, except that very large allocations are
//! reserved with `mmap(MAP_NORESERVE)`.
//!
//! Why: `kafka-protocol` sizes each decoded array with `Vec::with_capacity(count)` taken from the
//! wire before it has read a single element. A 20-byte request claiming 2^31 topics asks for
//! ~150 GB; the system allocator refuses (the kernel's overcommit heuristic), and Rust then aborts
//! the whole process — every shard — from one bad frame. Reserved without commitment, the same
//! request costs only address space; decoding then fails on the missing bytes, the connection gets
//! closed, and the reservation is unmapped untouched. Nothing in Ringtail fills such a buffer.
//!
//! This is the only `unsafe` of the server besides the splice path.

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations at least this large are reserved with mmap(MAP_NORESERVE).
pub const RESERVE_ONLY_BYTES_MIN: usize = 1 << 30;
const PAGE_BYTES: usize = 4096;

pub struct LargeAllocReserveOnly;

fn is_large(layout: Layout) -> bool {
    layout.size() >= RESERVE_ONLY_BYTES_MIN && layout.align() <= PAGE_BYTES
}

// SAFETY: small layouts go to `System` unchanged. Large ones get a fresh anonymous private mapping
// of exactly `layout.size()` bytes (page aligned, so any align <= 4096 holds), which no other
// allocation overlaps, and are released with munmap of the same size; `is_large` depends only on
// the layout, so alloc and dealloc always take the same path.
unsafe impl GlobalAlloc for LargeAllocReserveOnly {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !is_large(layout) {
            // SAFETY: forwarded with the caller's guarantees (non-zero size layout).
            return unsafe { System.alloc(layout) };
        }
        // SAFETY: an anonymous mapping with no address hint touches no existing memory.
        let pointer = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                layout.size(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if pointer == libc::MAP_FAILED {
            std::ptr::null_mut()
        } else {
            pointer.cast()
        }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        if !is_large(layout) {
            // SAFETY: `pointer` came from `System.alloc` with this layout (same path as alloc).
            return unsafe { System.dealloc(pointer, layout) };
        }
        // SAFETY: `pointer` is the start of a mapping of exactly `layout.size()` bytes made above.
        unsafe {
            libc::munmap(pointer.cast(), layout.size());
        }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return std::ptr::null_mut();
        };
        if !is_large(layout) && !is_large(new_layout) {
            // SAFETY: both sizes stay on the System path; forwarded with the caller's guarantees.
            return unsafe { System.realloc(pointer, layout, new_size) };
        }
        // SAFETY: a new block of the new layout, the overlapping prefix copied, the old block freed
        // by the path that allocated it; the blocks are distinct allocations.
        unsafe {
            let fresh = self.alloc(new_layout);
            if !fresh.is_null() {
                std::ptr::copy_nonoverlapping(pointer, fresh, layout.size().min(new_size));
                self.dealloc(pointer, layout);
            }
            fresh
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_wire_sized_array_capacity_does_not_abort_the_process() {
        // What kafka-protocol does with a hostile count: reserve, use nothing, drop.
        let hostile: Vec<[u8; 64]> = Vec::with_capacity(i32::MAX as usize);
        assert!(hostile.capacity() >= i32::MAX as usize);
        drop(hostile);
        // Growing across the threshold keeps the contents.
        let mut grown: Vec<u8> = vec![7; 1024];
        grown.reserve_exact(super::RESERVE_ONLY_BYTES_MIN);
        assert!(grown.iter().all(|byte| *byte == 7));
        let small: Vec<u64> = (0..1000).collect();
        assert_eq!(small.iter().sum::<u64>(), 499_500);
    }
}
