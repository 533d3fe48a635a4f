//! Fuzzes the replay of `__consumer_offsets` at start: arbitrary record batches (committed
//! offsets, classic and consumer group records, tombstones) applied to a coordinator, whose
//! groups are then read back.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let _ = ringtail_server::fuzzing::offsets_replay(dir.path(), data);
});
