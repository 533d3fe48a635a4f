//! The names of a partition directory's files: segments, producer snapshots, the clean-shutdown
//! marker, the temp files of interrupted rewrites.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use tracing::warn;

use super::cleaner_checkpoint::CLEANER_CHECKPOINT_FILE_NAME;
use super::start_offset::LOG_START_OFFSET_FILE_NAME;
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

/// Removes the temp files an atomic rewrite (`io::disk::write_file_atomically`) of this log's
/// own files left when it was cut short before its rename: `<offset>.txnindex.tmp`,
/// `<offset>.snapshot.tmp`, `log-start-offset.tmp`, `cleaner-checkpoint.tmp`; and the spare segment
/// (`spare.rs`) a crash left. Like Kafka's load removing `.cleaned`,
/// `.swap` and `.deleted` leftovers: nothing reads them, but they hold disk space for good.
/// Matched by exact name only; any other file is left alone. A failed removal is logged and
/// retried at the next open. Runs before anything of the log writes (open), so no rewrite is
/// in flight.
pub(super) async fn remove_leftover_temp_files(dir: &Path) {
    let Ok(names) = io::disk::list_dir(dir).await else {
        return;
    };
    for path in names {
        let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
            continue;
        };
        if !is_leftover_temp_file(name) {
            continue;
        }
        match io::disk::remove_file(&path).await {
            Ok(()) => {
                warn!(path = %path.display(), "removed a temp file an interrupted rewrite left")
            }
            Err(err) => warn!(path = %path.display(), %err, "a leftover temp file stays"),
        }
    }
}

/// Whether `name` is the temp file of one of the log's atomically rewritten files.
fn is_leftover_temp_file(name: &str) -> bool {
    // The spare segment a crash left (`spare.rs`) is allocated disk and nothing else.
    if name == format!("{LOG_START_OFFSET_FILE_NAME}.tmp")
        || name == format!("{CLEANER_CHECKPOINT_FILE_NAME}.tmp")
        || name == super::spare::SPARE_FILE_NAME
    {
        return true;
    }
    [".txnindex.tmp", ".snapshot.tmp"].iter().any(|suffix| {
        name.strip_suffix(suffix)
            .is_some_and(|stem| stem.len() == 20 && stem.bytes().all(|byte| byte.is_ascii_digit()))
    })
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
