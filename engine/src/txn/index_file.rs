//! The aborted-transaction index of a segment, `NNNNNNNNNNNNNNNNNNNN.txnindex` (Kafka's format),
//! and the one place the engine reads and writes it.
//!
//! # Byte map (big-endian), one 34-byte entry per aborted transaction, in marker order
//! ```text
//!  0  2 version = 0
//!  2  8 producer_id
//! 10  8 first_offset        offset of the transaction's first batch in this partition
//! 18  8 last_offset         offset of its ABORT marker (inside this segment)
//! 26  8 last_stable_offset  the partition's LSO once the marker was written
//! ```
//! The file is written whole (temp file, fsync, rename, directory fsync) when its segment is
//! sealed, when the log closes, after recovery rebuilt it, and at the open for a rolled segment
//! whose seal a crash dropped (its file, if any, was written while it was active); the active
//! segment's entries are otherwise in memory only (recovery replays them from the log after a
//! crash).
//!
//! # Invariants
//! - Entries are ordered by `last_offset`, strictly increasing, each inside its segment, and
//!   `first_offset <= last_offset`. A file that breaks any of them (or whose length is not a
//!   multiple of 34, a torn write) is refused whole, and recovery rebuilds it from the log.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use super::AbortedTxn;
use crate::io;
use crate::units::Offset;

pub const ENTRY_BYTES: usize = 34;
const VERSION: i16 = 0;
const PRODUCER_ID_AT: usize = 2;
const FIRST_OFFSET_AT: usize = 10;
const LAST_OFFSET_AT: usize = 18;
const LAST_STABLE_OFFSET_AT: usize = 26;
const _: () = assert!(LAST_STABLE_OFFSET_AT + 8 == ENTRY_BYTES);

/// The index file beside a segment's log.
pub fn path_for(log_path: &Path) -> PathBuf {
    log_path.with_extension("txnindex")
}

pub fn encode(entries: &[AbortedTxn]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(entries.len() * ENTRY_BYTES);
    for entry in entries {
        bytes.extend_from_slice(&VERSION.to_be_bytes());
        bytes.extend_from_slice(&entry.producer_id.to_be_bytes());
        bytes.extend_from_slice(&entry.first_offset.get().to_be_bytes());
        bytes.extend_from_slice(&entry.last_offset.get().to_be_bytes());
        bytes.extend_from_slice(&entry.last_stable_offset.get().to_be_bytes());
    }
    assert_eq!(
        bytes.len(),
        entries.len() * ENTRY_BYTES,
        "fixed-size entries"
    );
    bytes
}

fn read_i64(bytes: &[u8], at: usize) -> i64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[at..at + 8]);
    i64::from_be_bytes(raw)
}

/// Decodes a segment's index; `None` when the bytes break the module's invariants for a segment
/// holding offsets `[base_offset, next_offset)`.
pub fn decode(bytes: &[u8], base_offset: Offset, next_offset: Offset) -> Option<Vec<AbortedTxn>> {
    if !bytes.len().is_multiple_of(ENTRY_BYTES) {
        return None;
    }
    let mut entries: Vec<AbortedTxn> = Vec::with_capacity(bytes.len() / ENTRY_BYTES);
    for raw in bytes.chunks_exact(ENTRY_BYTES) {
        if i16::from_be_bytes([raw[0], raw[1]]) != VERSION {
            return None;
        }
        let entry = AbortedTxn {
            producer_id: read_i64(raw, PRODUCER_ID_AT),
            first_offset: Offset::new(read_i64(raw, FIRST_OFFSET_AT)),
            last_offset: Offset::new(read_i64(raw, LAST_OFFSET_AT)),
            last_stable_offset: Offset::new(read_i64(raw, LAST_STABLE_OFFSET_AT)),
        };
        let ordered = entries
            .last()
            .is_none_or(|previous| previous.last_offset < entry.last_offset);
        let inside = entry.last_offset >= base_offset && entry.last_offset < next_offset;
        if !ordered || !inside || entry.first_offset > entry.last_offset || entry.producer_id < 0 {
            return None;
        }
        entries.push(entry);
    }
    Some(entries)
}

/// What reading a segment's index found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    Entries(Vec<AbortedTxn>),
    Missing,
    /// Torn or garbled: recovery rebuilds it.
    Invalid,
}

/// Reads the index of the segment whose log is `log_path`.
pub async fn load(log_path: &Path, base_offset: Offset, next_offset: Offset) -> Loaded {
    match io::disk::read(&path_for(log_path)).await {
        Ok(bytes) => match decode(&bytes, base_offset, next_offset) {
            Some(entries) => Loaded::Entries(entries),
            None => Loaded::Invalid,
        },
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Loaded::Missing,
        Err(_) => Loaded::Invalid,
    }
}

/// Writes a segment's index whole and durably (see the module's byte map).
pub async fn store(log_path: &Path, entries: &[AbortedTxn]) -> std::io::Result<()> {
    io::disk::write_file_atomically(&path_for(log_path), encode(entries)).await
}

/// Removes a segment's index (retention, an emptied segment); a missing one is fine.
pub async fn remove(log_path: &Path) -> std::io::Result<()> {
    match io::disk::remove_file(&path_for(log_path)).await {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}
