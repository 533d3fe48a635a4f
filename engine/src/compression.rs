//! The record-area codecs of RecordBatch v2, as Kafka clients write them: gzip, snappy, lz4 and
//! zstd. The cleaner uses them (it must read keys inside compressed batches and write a
//! shortened batch back with the same codec), and appends decompress a producer's batch once to
//! check its records (`cleaner::check_records`), as Kafka's log validator does; fetches never
//! decompress.
//!
//! # Byte maps of the framings that are not the codec's own
//! ```text
//! snappy, xerial framing (the Java client, snappy-java's SnappyOutputStream):
//!   0  8  magic 0x82 'S' 'N' 'A' 'P' 'P' 'Y' 0x00
//!   8  4  version i32 (1)          12  4  compatible version i32 (1)
//!  16  …  blocks: length i32 (big-endian), then that many bytes of one raw snappy block
//! snappy, raw (librdkafka): one raw snappy block, no framing
//! lz4: the LZ4 frame format (magic 0x184D2204); Kafka's Java client writes independent 64 KiB
//!      blocks without checksums, which is what we write
//! gzip: one or more gzip members;  zstd: one or more zstd frames
//! ```
//!
//! # Invariants
//! - `decompress` never produces more than [`DECOMPRESSED_BYTES_MAX`] bytes (a small batch can
//!   claim to expand without bound) and never panics on bytes from disk.
//! - `compress(codec, framing, decompress(codec, x).0)` is readable by `decompress` and by
//!   Kafka's clients: the framing of the input is kept.
#![forbid(unsafe_code)]

use std::io::{Read, Write};

use crate::codec::Compression;
use crate::error::CompressionError;

/// Largest record area a batch may expand to. Batches are at most `max.message.bytes` (1 MiB by
/// default) compressed; 64x that covers every realistic ratio and bounds the cleaner's memory.
pub const DECOMPRESSED_BYTES_MAX: usize = 64 << 20;

const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_BYTES: usize = 16;
/// The most a raw snappy block can expand (its densest element copies 64 bytes for 3), with room.
const SNAPPY_EXPANSION_MAX: usize = 24;

/// snappy-java's default block size, which the Java client uses.
const XERIAL_BLOCK_BYTES: usize = 32 << 10;

/// How a codec's output was framed, where clients differ, so a re-encoded batch keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// The codec's standard format (gzip, lz4 frame, zstd frame), or no compression.
    Standard,
    /// Snappy inside snappy-java's xerial block framing.
    SnappyXerial,
    /// One raw snappy block.
    SnappyRaw,
}

/// Decompresses a record area; returns the bytes and the framing found.
pub fn decompress(
    codec: Compression,
    bytes: &[u8],
) -> Result<(Vec<u8>, Framing), CompressionError> {
    let mut out = Vec::new();
    let framing = decompress_into(codec, bytes, &mut out)?;
    Ok((out, framing))
}

/// [`decompress`] into `out` (cleared first), whose memory is reused: on a VM that hands freed
/// memory back to its host, fresh pages for every batch cost more than the decompression.
pub fn decompress_into(
    codec: Compression,
    bytes: &[u8],
    out: &mut Vec<u8>,
) -> Result<Framing, CompressionError> {
    let failed = |reason: String| CompressionError::Decompress { codec, reason };
    out.clear();
    match codec {
        Compression::None => {
            out.extend_from_slice(bytes);
            Ok(Framing::Standard)
        }
        Compression::Gzip => read_bounded(flate2::read::MultiGzDecoder::new(bytes), out)
            .map(|()| Framing::Standard)
            .map_err(failed),
        Compression::Lz4 => read_bounded(lz4_flex::frame::FrameDecoder::new(bytes), out)
            .map(|()| Framing::Standard)
            .map_err(failed),
        Compression::Zstd => zstd::stream::read::Decoder::new(bytes)
            .map_err(|err| failed(err.to_string()))
            .and_then(|decoder| read_bounded(decoder, out).map_err(failed))
            .map(|()| Framing::Standard),
        Compression::Snappy if bytes.starts_with(&XERIAL_MAGIC) => {
            snappy_xerial_decompress(bytes, out).map(|()| Framing::SnappyXerial)
        }
        Compression::Snappy => snappy_raw_decompress(bytes, out).map(|()| Framing::SnappyRaw),
    }
}

/// Compresses a record area with `codec` in `framing`.
pub fn compress(
    codec: Compression,
    framing: Framing,
    bytes: &[u8],
) -> Result<Vec<u8>, CompressionError> {
    let failed = |reason: String| CompressionError::Compress { codec, reason };
    match (codec, framing) {
        (Compression::None, _) => Ok(bytes.to_vec()),
        (Compression::Gzip, _) => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder
                .write_all(bytes)
                .and_then(|()| encoder.finish())
                .map_err(|err| failed(err.to_string()))
        }
        (Compression::Lz4, _) => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
            encoder
                .write_all(bytes)
                .map_err(|err| failed(err.to_string()))?;
            encoder.finish().map_err(|err| failed(err.to_string()))
        }
        (Compression::Zstd, _) => {
            zstd::stream::encode_all(bytes, 3).map_err(|err| failed(err.to_string()))
        }
        (Compression::Snappy, Framing::SnappyRaw) => snap::raw::Encoder::new()
            .compress_vec(bytes)
            .map_err(|err| failed(err.to_string())),
        (Compression::Snappy, _) => snappy_xerial_compress(bytes).map_err(failed),
    }
}

/// Reads a decoder to its end onto `out`, refusing output beyond [`DECOMPRESSED_BYTES_MAX`].
fn read_bounded(reader: impl Read, out: &mut Vec<u8>) -> Result<(), String> {
    reader
        .take(DECOMPRESSED_BYTES_MAX as u64 + 1)
        .read_to_end(out)
        .map_err(|err| err.to_string())?;
    if out.len() > DECOMPRESSED_BYTES_MAX {
        return Err(format!("expands beyond {DECOMPRESSED_BYTES_MAX} bytes"));
    }
    Ok(())
}

/// One raw snappy block, appended to `out`.
fn snappy_raw_decompress(bytes: &[u8], out: &mut Vec<u8>) -> Result<(), CompressionError> {
    let failed = |reason: String| CompressionError::Decompress {
        codec: Compression::Snappy,
        reason,
    };
    let len = snap::raw::decompress_len(bytes).map_err(|err| failed(err.to_string()))?;
    // A snappy block expands at most ~21x (a 3-byte copy of 64 bytes): a larger claim is a lie
    // that would otherwise cost an allocation and a zero fill of its size before decoding.
    if len > SNAPPY_EXPANSION_MAX * bytes.len() + 64 {
        return Err(failed(format!(
            "claims {len} bytes from a block of {}",
            bytes.len()
        )));
    }
    if out.len() + len > DECOMPRESSED_BYTES_MAX {
        return Err(failed(format!(
            "expands beyond {DECOMPRESSED_BYTES_MAX} bytes"
        )));
    }
    let start = out.len();
    out.resize(start + len, 0);
    let written = snap::raw::Decoder::new()
        .decompress(bytes, &mut out[start..])
        .map_err(|err| failed(err.to_string()))?;
    out.truncate(start + written);
    Ok(())
}

fn snappy_xerial_decompress(bytes: &[u8], out: &mut Vec<u8>) -> Result<(), CompressionError> {
    let failed = |reason: &str| CompressionError::Decompress {
        codec: Compression::Snappy,
        reason: reason.to_string(),
    };
    let mut position = XERIAL_HEADER_BYTES;
    if bytes.len() < position {
        return Err(failed("xerial header truncated"));
    }
    while position < bytes.len() {
        let length_bytes = bytes
            .get(position..position + 4)
            .ok_or_else(|| failed("xerial block length truncated"))?;
        let length = usize::try_from(u32::from_be_bytes(
            length_bytes.try_into().expect("4 bytes"),
        ))
        .map_err(|_| failed("xerial block length past the address space"))?;
        position += 4;
        let block = bytes
            .get(position..position.saturating_add(length))
            .ok_or_else(|| failed("xerial block truncated"))?;
        snappy_raw_decompress(block, out)?;
        position += length;
    }
    Ok(())
}

fn snappy_xerial_compress(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(XERIAL_HEADER_BYTES + bytes.len() / 2 + 64);
    out.extend_from_slice(&XERIAL_MAGIC);
    out.extend_from_slice(&1i32.to_be_bytes());
    out.extend_from_slice(&1i32.to_be_bytes());
    let mut encoder = snap::raw::Encoder::new();
    for chunk in bytes.chunks(XERIAL_BLOCK_BYTES) {
        let block = encoder.compress_vec(chunk).map_err(|err| err.to_string())?;
        // A block compresses at most XERIAL_BLOCK_BYTES (32 KiB): its length always fits.
        let block_len = u32::try_from(block.len()).map_err(|err| err.to_string())?;
        out.extend_from_slice(&block_len.to_be_bytes());
        out.extend_from_slice(&block);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn every_codec_round_trips_and_keeps_its_framing() {
        // A re-encoded batch must come back in the framing its producer used.
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|n| (n % 251).to_be_bytes())
            .collect();
        for codec in CODECS {
            let framings: &[Framing] = if codec == Compression::Snappy {
                &[Framing::SnappyXerial, Framing::SnappyRaw]
            } else {
                &[Framing::Standard]
            };
            for framing in framings {
                let packed = compress(codec, *framing, &data).unwrap();
                let (unpacked, found) = decompress(codec, &packed).unwrap();
                assert_eq!(unpacked, data, "{codec:?}");
                assert_eq!(found, *framing, "{codec:?}");
            }
        }
    }

    #[test]
    fn empty_input_round_trips() {
        // A batch whose records are all gone is dropped, but the codecs must not trip on zero bytes.
        for codec in CODECS {
            let packed = compress(codec, Framing::Standard, &[]).unwrap();
            assert!(
                decompress(codec, &packed).unwrap().0.is_empty(),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn xerial_snappy_from_java_decodes() {
        // Bytes as snappy-java's SnappyOutputStream frames "hello hello hello": header, then one
        // block of raw snappy.
        let block = snap::raw::Encoder::new()
            .compress_vec(b"hello hello hello")
            .unwrap();
        let mut framed = XERIAL_MAGIC.to_vec();
        framed.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
        framed.extend_from_slice(&u32::try_from(block.len()).unwrap().to_be_bytes());
        framed.extend_from_slice(&block);
        let (out, framing) = decompress(Compression::Snappy, &framed).unwrap();
        assert_eq!(out, b"hello hello hello");
        assert_eq!(framing, Framing::SnappyXerial);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        // The cleaner reads bytes from disk: a damaged record area must be reported, not crash.
        for codec in CODECS.into_iter().skip(1) {
            for garbage in [
                &b""[..],
                b"\x82SNAPPY\0\0\0\0\x01\0\0\0\x01\xff\xff\xff\xff",
                b"\x04\x22\x4d\x18garbage",
                b"not compressed at all",
            ] {
                let _ = decompress(codec, garbage);
            }
        }
        assert!(decompress(Compression::Gzip, b"not gzip").is_err());
        assert!(decompress(Compression::Zstd, b"not zstd").is_err());
    }

    #[test]
    fn expansion_is_bounded() {
        // A tiny zstd frame of zeros must not be allowed to expand past the cleaner's limit.
        let zeros = vec![0u8; DECOMPRESSED_BYTES_MAX + 1];
        let packed = zstd::stream::encode_all(&zeros[..], 1).unwrap();
        assert!(decompress(Compression::Zstd, &packed).is_err());
    }
}
