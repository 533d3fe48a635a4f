//! The compression codec a batch's attributes name: a leaf module, so that the batch codec, the
//! codecs themselves and the error types can all name it without depending on each other.
#![forbid(unsafe_code)]

/// Bits 0-2 of a batch's attributes.
const ATTR_CODEC_MASK: i16 = 0x07;

/// Compression codec of a batch; the engine stores compressed batches as they come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// The codec bits 0-2 of `attributes` name, or those bits when no codec has that number.
    pub(crate) fn from_attributes(attributes: i16) -> Result<Self, u8> {
        match attributes & ATTR_CODEC_MASK {
            0 => Ok(Self::None),
            1 => Ok(Self::Gzip),
            2 => Ok(Self::Snappy),
            3 => Ok(Self::Lz4),
            4 => Ok(Self::Zstd),
            // The mask keeps three bits, so the narrowing cannot fail.
            codec => Err(u8::try_from(codec).expect("three bits fit in u8")),
        }
    }
}
