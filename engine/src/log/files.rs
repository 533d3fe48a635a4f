//! The names of a partition directory's files: segments, producer snapshots, the clean-shutdown
//! marker.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use crate::error::OpenError;
use crate::io;
use crate::units::Offset;

/// Marker written by a clean [`PartitionLog::close`] and removed on open: without it, the last
/// open ended in a crash and the active segment is CRC-checked from its start.
pub const CLEAN_SHUTDOWN_FILE_NAME: &str = ".clean_shutdown";

/// File name of the producer snapshot taken as of `offset`.
pub(super) fn snapshot_file_name(offset: Offset) -> String {
    format!("{:020}.snapshot", offset.get())
}

/// Base offsets of the `.log` files and offsets of the `.snapshot` files in `dir`, each sorted;
/// creates `dir` if missing.
pub(super) async fn list_segments(dir: &Path) -> Result<(Vec<Offset>, Vec<Offset>), OpenError> {
    io::disk::create_dir_all(dir)
        .await
        .map_err(OpenError::io(dir))?;
    let names: Vec<PathBuf> = io::disk::list_dir(dir).await.map_err(OpenError::io(dir))?;
    let mut base_offsets = Vec::new();
    let mut snapshot_offsets = Vec::new();
    for path in names {
        let extension = path.extension().and_then(|ext| ext.to_str());
        if extension != Some("log") && extension != Some("snapshot") {
            continue;
        }
        let stem = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .unwrap_or_default();
        let offset = match stem.parse::<i64>() {
            Ok(offset) if stem.len() == 20 && offset >= 0 => Offset::new(offset),
            _ => return Err(OpenError::BadFileName { path }),
        };
        if extension == Some("log") {
            base_offsets.push(offset);
        } else {
            snapshot_offsets.push(offset);
        }
    }
    base_offsets.sort_unstable();
    snapshot_offsets.sort_unstable();
    Ok((base_offsets, snapshot_offsets))
}
