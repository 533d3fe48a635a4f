//! The primitives of Kafka's flexible versions (KIP-482), for the messages written by hand: unsigned
//! varints, compact strings and arrays (length + 1, 0 for null), uuids, tagged fields.
//!
//! kafka-protocol has these, but its `Encoder`/`Decoder` traits are crate-private, so they cannot
//! be called from outside; the crate's `ByteBuf` (`try_get_bytes`) and `StrBytes` are reused.
//!
//! # Invariants worth naming
//! - Reading never panics and never allocates more than the bytes left can fill: an array of `n`
//!   items reserves at most `remaining / item_bytes_min` slots, every read is checked.
//! - Strings are valid UTF-8 of at most `i16::MAX` bytes (Kafka refuses longer ones too).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use bytes::{Buf, BufMut, Bytes};
use kafka_protocol::protocol::buf::ByteBuf;
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

/// The longest string Kafka reads (its `Readable.readString` refuses more than a short's worth).
const STRING_BYTES_MAX: usize = i16::MAX as usize;

/// An unsigned varint of at most 5 bytes that fits in 32 bits (Kafka's `readUnsignedVarint`).
pub fn get_uvarint<B: ByteBuf>(buf: &mut B) -> Result<u32> {
    let mut value: u32 = 0;
    for index in 0..5 {
        let byte = buf.try_get_u8().context("unsigned varint cut short")?;
        let bits = u32::from(byte & 0x7f);
        // The fifth byte holds bits 28..32: anything above 4 bits would be lost.
        if index == 4 && (byte & 0x80 != 0 || bits > 0x0f) {
            bail!("unsigned varint longer than 32 bits");
        }
        value |= bits << (7 * index);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    unreachable!("the fifth byte returns or fails");
}

/// A compact length: `None` for null (wire 0), else the wire value minus one.
fn get_compact_len<B: ByteBuf>(buf: &mut B) -> Result<Option<usize>> {
    let wire = get_uvarint(buf)?;
    Ok(wire.checked_sub(1).map(|len| len as usize))
}

/// A compact nullable string.
pub fn get_nullable_string<B: ByteBuf>(buf: &mut B) -> Result<Option<StrBytes>> {
    let Some(len) = get_compact_len(buf)? else {
        return Ok(None);
    };
    if len > STRING_BYTES_MAX {
        bail!("string of {len} bytes, more than {STRING_BYTES_MAX}");
    }
    let bytes = buf.try_get_bytes(len).context("string cut short")?;
    Ok(Some(
        StrBytes::from_utf8(bytes).context("string not UTF-8")?,
    ))
}

/// A compact string that may not be null.
pub fn get_string<B: ByteBuf>(buf: &mut B) -> Result<StrBytes> {
    get_nullable_string(buf)?.context("null in a non-nullable string")
}

/// A uuid: 16 bytes, most significant first.
pub fn get_uuid<B: ByteBuf>(buf: &mut B) -> Result<Uuid> {
    let mut bytes = [0u8; 16];
    buf.try_copy_to_slice(&mut bytes)
        .context("uuid cut short")?;
    Ok(Uuid::from_bytes(bytes))
}

/// A compact nullable array whose items take at least `item_bytes_min` bytes each (so a forged
/// count cannot reserve more than the frame holds).
pub fn get_nullable_array<B: ByteBuf, T>(
    buf: &mut B,
    item_bytes_min: usize,
    mut item: impl FnMut(&mut B) -> Result<T>,
) -> Result<Option<Vec<T>>> {
    assert!(item_bytes_min > 0, "every item takes bytes");
    let Some(count) = get_compact_len(buf)? else {
        return Ok(None);
    };
    if count > buf.remaining() / item_bytes_min {
        bail!("array of {count} items in {} bytes", buf.remaining());
    }
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        items.push(item(buf)?);
    }
    Ok(Some(items))
}

/// A compact array that may not be null.
pub fn get_array<B: ByteBuf, T>(
    buf: &mut B,
    item_bytes_min: usize,
    item: impl FnMut(&mut B) -> Result<T>,
) -> Result<Vec<T>> {
    get_nullable_array(buf, item_bytes_min, item)?.context("null in a non-nullable array")
}

/// The tagged fields section: kept by tag (none are defined in these messages; unknown ones are
/// carried as kafka-protocol carries them).
pub fn get_tagged_fields<B: ByteBuf>(buf: &mut B) -> Result<BTreeMap<i32, Bytes>> {
    let count = get_uvarint(buf)?;
    let mut fields = BTreeMap::new();
    for _ in 0..count {
        let tag = get_uvarint(buf)?;
        let size = get_uvarint(buf)? as usize;
        let value = buf.try_get_bytes(size).context("tagged field cut short")?;
        let tag = i32::try_from(tag).context("tag above i32::MAX")?;
        if fields.insert(tag, value).is_some() {
            bail!("tag {tag} twice");
        }
    }
    Ok(fields)
}

/// The `i16` of a fixed-size field, with what was being read on error.
pub fn get_i16<B: Buf>(buf: &mut B) -> Result<i16> {
    buf.try_get_i16().context("int16 cut short")
}

pub fn get_i32<B: Buf>(buf: &mut B) -> Result<i32> {
    buf.try_get_i32().context("int32 cut short")
}

pub fn get_i64<B: Buf>(buf: &mut B) -> Result<i64> {
    buf.try_get_i64().context("int64 cut short")
}

pub fn get_bool<B: Buf>(buf: &mut B) -> Result<bool> {
    Ok(buf.try_get_u8().context("boolean cut short")? != 0)
}

pub fn put_uvarint<B: BufMut>(buf: &mut B, mut value: u32) {
    while value >= 0x80 {
        buf.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

/// A compact length (`None`: null).
fn put_compact_len<B: BufMut>(buf: &mut B, len: Option<usize>) -> Result<()> {
    let wire = match len {
        None => 0,
        Some(len) => u32::try_from(len)
            .ok()
            .and_then(|len| len.checked_add(1))
            .context("length beyond a compact length")?,
    };
    put_uvarint(buf, wire);
    Ok(())
}

pub fn put_nullable_string<B: BufMut>(buf: &mut B, value: Option<&str>) -> Result<()> {
    if let Some(text) = value {
        if text.len() > STRING_BYTES_MAX {
            bail!(
                "string of {} bytes, more than {STRING_BYTES_MAX}",
                text.len()
            );
        }
    }
    put_compact_len(buf, value.map(str::len))?;
    buf.put_slice(value.unwrap_or_default().as_bytes());
    Ok(())
}

pub fn put_string<B: BufMut>(buf: &mut B, value: &str) -> Result<()> {
    put_nullable_string(buf, Some(value))
}

pub fn put_uuid<B: BufMut>(buf: &mut B, value: Uuid) {
    buf.put_slice(value.as_bytes());
}

/// A compact nullable array, each item written by `item`.
pub fn put_nullable_array<B: BufMut, T>(
    buf: &mut B,
    items: Option<&[T]>,
    mut item: impl FnMut(&mut B, &T) -> Result<()>,
) -> Result<()> {
    put_compact_len(buf, items.map(<[T]>::len))?;
    for value in items.unwrap_or_default() {
        item(buf, value)?;
    }
    Ok(())
}

pub fn put_array<B: BufMut, T>(
    buf: &mut B,
    items: &[T],
    item: impl FnMut(&mut B, &T) -> Result<()>,
) -> Result<()> {
    put_nullable_array(buf, Some(items), item)
}

/// The tagged fields section, in tag order (a `BTreeMap` is sorted, as KIP-482 requires).
pub fn put_tagged_fields<B: BufMut>(buf: &mut B, fields: &BTreeMap<i32, Bytes>) -> Result<()> {
    put_uvarint(buf, u32::try_from(fields.len()).context("too many tags")?);
    for (tag, value) in fields {
        put_uvarint(buf, u32::try_from(*tag).context("negative tag")?);
        put_uvarint(
            buf,
            u32::try_from(value.len()).context("tag value too long")?,
        );
        buf.put_slice(value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    #[test]
    fn uvarints_round_trip_at_every_length_and_refuse_overlong_ones() {
        // Each byte-length boundary, then the 5-byte forms Kafka refuses.
        for value in [
            0,
            0x7f,
            0x80,
            0x3fff,
            0x4000,
            0x1f_ffff,
            0x20_0000,
            u32::MAX,
        ] {
            let mut buf = BytesMut::new();
            put_uvarint(&mut buf, value);
            let mut bytes = buf.freeze();
            assert_eq!(get_uvarint(&mut bytes).unwrap(), value);
            assert!(bytes.is_empty());
        }
        let mut six_bytes = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert!(get_uvarint(&mut six_bytes).is_err());
        let mut over_32_bits = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x1f]);
        assert!(get_uvarint(&mut over_32_bits).is_err());
        assert!(get_uvarint(&mut Bytes::from_static(&[0x80])).is_err());
    }

    #[test]
    fn strings_are_compact_with_null_as_zero() {
        // "ab" is 0x03 'a' 'b'; null is 0x00; a non-nullable null and bad UTF-8 are errors.
        let mut buf = BytesMut::new();
        put_string(&mut buf, "ab").unwrap();
        put_nullable_string(&mut buf, None).unwrap();
        assert_eq!(&buf[..], &[0x03, b'a', b'b', 0x00]);
        let mut bytes = buf.freeze();
        assert_eq!(get_string(&mut bytes).unwrap().as_str(), "ab");
        assert_eq!(get_nullable_string(&mut bytes.clone()).unwrap(), None);
        assert!(get_string(&mut bytes).is_err(), "null where not nullable");
        assert!(get_string(&mut Bytes::from_static(&[0x02, 0xff])).is_err());
        assert!(get_string(&mut Bytes::from_static(&[0x05, b'a'])).is_err());
    }

    #[test]
    fn a_forged_array_count_is_refused_before_any_allocation() {
        // 2^31 items claimed in 3 bytes: refused by the count check, not by an allocation.
        let mut buf = BytesMut::new();
        put_uvarint(&mut buf, 1 << 31);
        buf.put_slice(&[0, 0, 0]);
        let mut bytes = buf.freeze();
        let error = get_array(&mut bytes, 4, get_i32).unwrap_err();
        assert!(error.to_string().contains("items in 3 bytes"), "{error}");
    }

    #[test]
    fn tagged_fields_round_trip_and_duplicates_are_refused() {
        // Two tags carried through unchanged; the same tag twice is malformed (KIP-482).
        let fields = BTreeMap::from([(0, Bytes::from_static(b"x")), (7, Bytes::new())]);
        let mut buf = BytesMut::new();
        put_tagged_fields(&mut buf, &fields).unwrap();
        assert_eq!(&buf[..], &[2, 0, 1, b'x', 7, 0]);
        assert_eq!(get_tagged_fields(&mut buf.freeze()).unwrap(), fields);
        let twice = Bytes::from_static(&[2, 3, 0, 3, 0]);
        assert!(get_tagged_fields(&mut twice.clone()).is_err());
    }
}
