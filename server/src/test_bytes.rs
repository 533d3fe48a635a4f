//! Test data for file and socket tests: bytes that never repeat within a test's sizes, so bytes
//! sent or read from a wrong offset cannot compare equal.
#![forbid(unsafe_code)]

/// `len` bytes of an xorshift64 stream started at `seed` (non-zero).
pub fn non_repeating(len: usize, seed: u64) -> Vec<u8> {
    assert_ne!(seed, 0, "xorshift needs a non-zero state");
    let mut state = seed;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}
