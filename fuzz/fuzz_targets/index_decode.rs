//! Fuzzes the index file decoders, which read whatever a crash left on disk.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringtail_engine::index::{OffsetIndex, TimeIndex};
use ringtail_engine::{Offset, Position};

fuzz_target!(|data: &[u8]| {
    let (index, _) = OffsetIndex::decode(Offset::ZERO, data, Position::new(1 << 30));
    for pair in index.entries().windows(2) {
        assert!(pair[0].offset < pair[1].offset && pair[0].position < pair[1].position);
    }
    let (time, _) = TimeIndex::decode(Offset::ZERO, data, Offset::new(i64::MAX));
    for pair in time.entries().windows(2) {
        assert!(pair[0].timestamp < pair[1].timestamp);
    }
});
