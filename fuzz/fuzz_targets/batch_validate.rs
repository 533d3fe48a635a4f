//! Fuzzes the RecordBatch decoder, which reads bytes from producers and from disk.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringtail_engine::batch::{first_record_at_or_after, validate, validate_all, Strictness};

fuzz_target!(|data: &[u8]| {
    if let Ok(headers) = validate_all(data, 1 << 20, Strictness::Producer) {
        // Paired check: what validated must re-validate from its own bytes.
        let mut position = 0;
        for header in headers {
            let again = validate(&data[position..], 1 << 20, Strictness::Producer).unwrap();
            assert_eq!(again, header);
            position += header.total_bytes();
        }
        assert_eq!(position, data.len());
    }
    let _ = validate(data, usize::MAX, Strictness::Stored);
    let _ = first_record_at_or_after(data, 0);
});
