//! CRC-32C (Castagnoli), the checksum of every Kafka RecordBatch v2: computed when a batch is
//! built, checked on every produce, on recovery and when compaction rewrites a log.
//!
//! `crc-fast` folds 64 bytes at a time with carry-less multiplication (AVX-512 VPCLMULQDQ where
//! the CPU has it, PCLMULQDQ otherwise, chosen at run time; a table on other CPUs). On this
//! machine it ran 3.8x the `crc32c` crate (SSE4.2 `crc32` instructions, three streams) on a
//! cached 1 MiB batch and was faster at every size down to 13 bytes (decision 0036; the
//! `crc32c_implementations` group of benches/benches/crc_index.rs measures both side by side).
//! The `crc32c` crate stays, in tests only, as an independent oracle for this one.
#![forbid(unsafe_code)]

use crc_fast::CrcAlgorithm;

/// The CRC-32C of `bytes`, as a RecordBatch's `crc` field holds it.
pub fn crc32c(bytes: &[u8]) -> u32 {
    let crc = crc_fast::checksum(CrcAlgorithm::Crc32Iscsi, bytes);
    // CRC-32/ISCSI is CRC-32C; a 32-bit CRC always fits, the u64 is the crate's common type.
    u32::try_from(crc).expect("a 32-bit CRC")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_standard_check_values() {
        // The catalogue's check value, and RFC 3720's (iSCSI) test vectors.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
        let ascending: Vec<u8> = (0u8..32).collect();
        assert_eq!(crc32c(&ascending), 0x46DD_794E);
        let descending: Vec<u8> = (0u8..32).rev().collect();
        assert_eq!(crc32c(&descending), 0x113F_DB5C);
        assert_eq!(crc32c(&[]), 0);
    }

    #[test]
    fn agrees_with_the_crc32c_crate_around_every_fold_boundary() {
        // Lengths either side of the 16, 64, 128 and 256-byte strides of the SIMD paths, from
        // every start alignment.
        let data: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for start in 0..64 {
            for len in (0..300).chain([511, 512, 513, 1023, 1024, 1025, 4000]) {
                let slice = &data[start..start + len.min(data.len() - start)];
                assert_eq!(
                    crc32c(slice),
                    ::crc32c::crc32c(slice),
                    "start {start}, len {}",
                    slice.len()
                );
            }
        }
    }

    proptest! {
        #[test]
        fn agrees_with_the_crc32c_crate(
            bytes in proptest::collection::vec(any::<u8>(), 0..70_000),
            skip in 0usize..64,
        ) {
            let slice = &bytes[skip.min(bytes.len())..];
            prop_assert_eq!(crc32c(slice), ::crc32c::crc32c(slice));
        }
    }
}
