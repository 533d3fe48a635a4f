//! Writing a cleaned copy of a segment: batches noted in the copy's bookkeeping (offsets,
//! indexes) and buffered, written out in 1 MiB runs, and the finished copy checked and fsynced.
#![forbid(unsafe_code)]

use crate::batch;
use crate::config::LogConfig;
use crate::error::CompactionError;
use crate::segment::{log_file_name, Segment};
use crate::units::Position;

/// Cleaned bytes buffered before a write.
const CLEAN_WRITE_BYTES: usize = 1 << 20;

/// Notes a batch in the copy's bookkeeping and buffers its bytes; `written` bytes precede the
/// buffer in the file.
pub(super) fn note_and_buffer(
    copy: &mut Segment,
    pending: &mut Vec<u8>,
    batch_bytes: &[u8],
    config: &LogConfig,
    written: u64,
) {
    let header = batch::parse_header(batch_bytes).expect("a whole batch");
    let position = Position::new(written + pending.len() as u64);
    copy.note_appended(&header, position, config);
    pending.extend_from_slice(batch_bytes);
    assert_eq!(
        copy.size_bytes,
        written + pending.len() as u64,
        "the copy is its batches"
    );
}

/// Writes the buffer out when it is full (or `force`); returns the bytes now in the file.
pub(super) async fn flush_if_full(
    copy: &Segment,
    pending: &mut Vec<u8>,
    written: u64,
    force: bool,
) -> Result<u64, CompactionError> {
    if pending.is_empty() || (!force && pending.len() < CLEAN_WRITE_BYTES) {
        return Ok(written);
    }
    let bytes = std::mem::take(pending);
    let len = bytes.len() as u64;
    copy.files
        .log
        .write_all_at(bytes, written)
        .await
        .map_err(CompactionError::io(&copy.files.log_path))?;
    Ok(written + len)
}

/// Writes the copy's indexes and fsyncs its three files.
pub(super) async fn finish_copy(copy: &mut Segment) -> Result<(), CompactionError> {
    let path = copy.files.log_path.clone();
    if let Some(delta) = copy.take_index_delta() {
        delta
            .write(&copy.files)
            .await
            .map_err(CompactionError::io(&path))?;
    }
    copy.allocated_bytes = copy.size_bytes;
    // Read back what the bookkeeping says was written before it can replace anything.
    let file_bytes = copy
        .files
        .log
        .metadata()
        .await
        .map_err(CompactionError::io(&path))?
        .len();
    if file_bytes != copy.size_bytes {
        return Err(CompactionError::Corrupt {
            path,
            position: Position::new(file_bytes),
            reason: format!(
                "cleaned copy holds {file_bytes} bytes, expected {}",
                copy.size_bytes
            ),
        });
    }
    let indexes = copy.files.indexes().map_err(CompactionError::io(&path))?;
    for file in [&copy.files.log, &indexes.offset, &indexes.time] {
        file.sync_all()
            .await
            .map_err(CompactionError::sync(&path))?;
    }
    // The copy replaces a sealed segment and takes no appends: its indexes live in memory.
    copy.files.close_indexes();
    copy.files.log_path = path
        .parent()
        .expect("in a directory")
        .join(log_file_name(copy.base_offset));
    Ok(())
}
