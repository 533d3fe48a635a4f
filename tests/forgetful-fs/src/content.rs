//! A file's bytes, and the operations that change them: the unit of what a power loss keeps.
//!
//! # Invariants
//! - `bytes.len() <= size_bytes`: bytes past `bytes.len()` read as zeros (a sparse tail, so a
//!   `fallocate` of a large segment costs no memory).
#![forbid(unsafe_code)]

/// Bytes of one sector: a torn write keeps whole sectors only.
pub const SECTOR_BYTES: u64 = 512;

/// The contents of one file at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Content {
    bytes: Vec<u8>,
    size_bytes: u64,
}

/// One change to a file's contents, kept until an fsync makes it durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `bytes` written at `offset`.
    Write { offset: u64, bytes: Vec<u8> },
    /// The size set (truncate, `fallocate` growing the file).
    SetLen { size_bytes: u64 },
}

impl Content {
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// Up to `len` bytes at `offset` (fewer at the end of the file).
    pub fn read(&self, offset: u64, len: u64) -> Vec<u8> {
        if offset >= self.size_bytes {
            return Vec::new();
        }
        let end = offset.saturating_add(len).min(self.size_bytes);
        let mut out = vec![0u8; (end - offset) as usize];
        let stored_end = (self.bytes.len() as u64).min(end);
        if offset < stored_end {
            out[..(stored_end - offset) as usize]
                .copy_from_slice(&self.bytes[offset as usize..stored_end as usize]);
        }
        out
    }

    pub fn apply(&mut self, op: &Op) {
        match op {
            Op::Write { offset, bytes } => {
                let end = offset + bytes.len() as u64;
                if (self.bytes.len() as u64) < end {
                    self.bytes.resize(end as usize, 0);
                }
                self.bytes[*offset as usize..end as usize].copy_from_slice(bytes);
                self.size_bytes = self.size_bytes.max(end);
            }
            Op::SetLen { size_bytes } => {
                self.bytes.truncate(*size_bytes as usize);
                self.size_bytes = *size_bytes;
            }
        }
        assert!(
            self.bytes.len() as u64 <= self.size_bytes,
            "stored bytes within the size"
        );
    }
}

impl Op {
    /// The part of a write a power loss keeps when it tears it at `sectors_kept` sector
    /// boundaries past its start; `None` when no boundary falls inside the write (nothing kept).
    pub fn torn(&self, sectors_kept: u64) -> Option<Op> {
        let Op::Write { offset, bytes } = self else {
            return None;
        };
        let end = offset + bytes.len() as u64;
        let first_boundary = (offset / SECTOR_BYTES + 1) * SECTOR_BYTES;
        let boundary = first_boundary + sectors_kept * SECTOR_BYTES;
        if boundary >= end {
            return None;
        }
        Some(Op::Write {
            offset: *offset,
            bytes: bytes[..(boundary - offset) as usize].to_vec(),
        })
    }

    /// How many sector boundaries fall strictly inside this write.
    pub fn inner_boundaries(&self) -> u64 {
        let Op::Write { offset, bytes } = self else {
            return 0;
        };
        let end = offset + bytes.len() as u64;
        let first_boundary = (offset / SECTOR_BYTES + 1) * SECTOR_BYTES;
        if first_boundary >= end {
            return 0;
        }
        (end - 1 - first_boundary) / SECTOR_BYTES + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write past the stored end zero-fills the gap; a grown size reads as zeros.
    #[test]
    fn writes_and_sizes_read_back() {
        let mut content = Content::default();
        content.apply(&Op::SetLen { size_bytes: 10 });
        content.apply(&Op::Write {
            offset: 4,
            bytes: vec![7, 8],
        });
        assert_eq!(content.read(0, 100), vec![0, 0, 0, 0, 7, 8, 0, 0, 0, 0]);
        content.apply(&Op::SetLen { size_bytes: 5 });
        assert_eq!(content.read(3, 100), vec![0, 7]);
        assert_eq!(content.read(5, 1), Vec::<u8>::new());
    }

    /// A torn write keeps whole sectors from its start up to a boundary inside it.
    #[test]
    fn torn_writes_end_on_sector_boundaries() {
        let write = Op::Write {
            offset: 100,
            bytes: vec![1; 1200],
        };
        assert_eq!(write.inner_boundaries(), 2);
        let Some(Op::Write { offset, bytes }) = write.torn(0) else {
            panic!("a boundary at 512 lies inside the write");
        };
        assert_eq!((offset, bytes.len()), (100, 412));
        let Some(Op::Write { bytes, .. }) = write.torn(1) else {
            panic!("a boundary at 1024 lies inside the write");
        };
        assert_eq!(bytes.len(), 924);
        assert_eq!(write.torn(2), None);
        let small = Op::Write {
            offset: 0,
            bytes: vec![1; 512],
        };
        assert_eq!(small.inner_boundaries(), 0);
    }
}
