//! Fuzzes a request as it arrives on a connection: size prefix, header, and the body decoded as
//! the API's handler decodes it (Produce record sets validated as the log does before appending).
#![no_main]

use libfuzzer_sys::fuzz_target;

// The broker's own allocator: kafka-protocol sizes a decoded array from the count on the wire
// before reading it, and the broker survives a count of 2^31 only because this allocator
// reserves such an allocation without committing it (server/src/large_alloc.rs).
#[global_allocator]
static ALLOCATOR: ringtail_server::large_alloc::LargeAllocReserveOnly =
    ringtail_server::large_alloc::LargeAllocReserveOnly;

fuzz_target!(|data: &[u8]| {
    // Bad input is an error; a panic (or an allocation the size of a lying length) is a crash.
    let _ = ringtail_server::fuzzing::request_frame(data);
});
