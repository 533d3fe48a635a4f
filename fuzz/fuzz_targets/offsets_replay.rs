//! Fuzzes the replay of `__consumer_offsets` at start: arbitrary record batches (committed
//! offsets, classic and consumer group records, tombstones) applied to a coordinator, whose
//! groups are then read back.
#![no_main]

use libfuzzer_sys::fuzz_target;

// The broker's own allocator: kafka-protocol sizes a decoded array from the count on the wire
// before reading it, and the broker survives a count of 2^31 only because this allocator
// reserves such an allocation without committing it (server/src/large_alloc.rs).
#[global_allocator]
static ALLOCATOR: ringtail_server::large_alloc::LargeAllocReserveOnly =
    ringtail_server::large_alloc::LargeAllocReserveOnly;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let _ = ringtail_server::fuzzing::offsets_replay(dir.path(), data);
});
