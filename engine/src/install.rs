//! The crash-safe install of a cleaned segment copy, and its completion at open.
//!
//! A leaf of the log: [`crate::compaction`] writes the `.cleaned` copy and calls [`install`]; the
//! log's open calls [`finish_interrupted`] before it lists segments. Steps (see the compaction
//! module doc): a. the `.cleaned` files are written and fsynced; b. `<base>.log.cleaned` is renamed
//! to `<base>.log.swap` and the directory fsynced (the commit); c. the index files are renamed over
//! the old ones, then `<base>.log.swap` over `<base>.log`, and the directory fsynced.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use tracing::warn;

use crate::error::{CompactionError, OpenError};
use crate::io;
use crate::segment::log_file_name;
use crate::units::Offset;

/// Suffix of a cleaned copy being written.
pub const CLEANED_SUFFIX: &str = "cleaned";
/// Suffix of a committed cleaned log, not yet renamed into place.
pub const SWAP_SUFFIX: &str = "swap";

/// Where a pass stops early, for crash tests: the files are left as a crash at that point would.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopPoint {
    /// After the `.cleaned` files of the first rewritten segment are written and fsynced.
    CleanedWritten,
    /// After the commit rename to `.log.swap`.
    Committed,
    /// After the index files were renamed into place, before the log was.
    IndexesInstalled,
}

/// Paths of segment `base_offset`'s files: (log, index, timeindex), each with `suffix` if given.
fn paths(dir: &Path, base_offset: Offset, suffix: Option<&str>) -> [PathBuf; 3] {
    let log = log_file_name(base_offset);
    let name = |extension: &str| {
        let plain = Path::new(&log).with_extension(extension);
        match suffix {
            Some(suffix) => dir.join(format!("{}.{suffix}", plain.display())),
            None => dir.join(plain),
        }
    };
    [name("log"), name("index"), name("timeindex")]
}

/// Steps b and c of the install (see the module doc).
pub(crate) async fn install(
    dir: &Path,
    base_offset: Offset,
    stop: Option<StopPoint>,
) -> Result<(), CompactionError> {
    let [cleaned_log, cleaned_index, cleaned_time] = paths(dir, base_offset, Some(CLEANED_SUFFIX));
    let [swap_log, _, _] = paths(dir, base_offset, Some(SWAP_SUFFIX));
    let [log, index, time] = paths(dir, base_offset, None);
    let rename = |from: PathBuf, to: PathBuf| async move {
        io::disk::rename(&from, &to)
            .await
            .map_err(CompactionError::io(&from))
    };
    let sync = || async {
        io::disk::sync_dir(dir)
            .await
            .map_err(CompactionError::sync(dir))
    };
    rename(cleaned_log, swap_log.clone()).await?;
    sync().await?;
    if stop == Some(StopPoint::Committed) {
        return Ok(());
    }
    rename(cleaned_index, index).await?;
    rename(cleaned_time, time).await?;
    if stop == Some(StopPoint::IndexesInstalled) {
        return Ok(());
    }
    rename(swap_log, log).await?;
    sync().await
}

pub(crate) async fn remove_cleaned_files(
    dir: &Path,
    base_offset: Offset,
) -> Result<(), CompactionError> {
    for path in paths(dir, base_offset, Some(CLEANED_SUFFIX)) {
        io::disk::remove_file(&path)
            .await
            .map_err(CompactionError::io(&path))?;
    }
    Ok(())
}

/// Removes whatever `.cleaned` files of a pass that failed before its commit exist, as far as
/// it can (a missing one is fine; another failure is logged): on a full disk a partial copy
/// would otherwise keep the space taken until the next pass or a restart.
pub(crate) async fn discard_cleaned_files(dir: &Path, base_offset: Offset) {
    for path in paths(dir, base_offset, Some(CLEANED_SUFFIX)) {
        match io::disk::remove_file(&path).await {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                warn!(path = %path.display(), %err, "a failed cleaning's copy stays");
            }
            _ => {}
        }
    }
}

/// Finishes or undoes a cleaning that a crash interrupted (see the module doc). Run by
/// [`PartitionLog::open`] before it lists segments. Also removes index files whose log is gone
/// (a deletion of an emptied segment cut short).
pub async fn finish_interrupted(dir: &Path) -> Result<(), OpenError> {
    let changed = finish_interrupted_in(dir)
        .await
        .map_err(OpenError::io(dir))?;
    if changed {
        io::disk::sync_dir(dir).await.map_err(OpenError::io(dir))?;
    }
    Ok(())
}

/// File names in `dir`; none when `dir` does not exist yet.
async fn names_in(dir: &Path) -> std::io::Result<Vec<String>> {
    match io::disk::list_dir(dir).await {
        Ok(paths) => Ok(paths
            .iter()
            .filter_map(|path| path.file_name())
            .filter_map(|name| name.to_str().map(str::to_owned))
            .collect()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(err) => Err(err),
    }
}

async fn finish_interrupted_in(dir: &Path) -> std::io::Result<bool> {
    let names = names_in(dir).await?;
    let mut changed = false;
    let swap_suffix = format!(".log.{SWAP_SUFFIX}");
    for name in &names {
        let Some(stem) = name.strip_suffix(&swap_suffix) else {
            continue;
        };
        let Ok(base_offset) = stem.parse::<i64>().map(Offset::new) else {
            continue;
        };
        let [cleaned_log, cleaned_index, cleaned_time] =
            paths(dir, base_offset, Some(CLEANED_SUFFIX));
        let [swap_log, _, _] = paths(dir, base_offset, Some(SWAP_SUFFIX));
        let [log, index, time] = paths(dir, base_offset, None);
        for (from, to) in [(cleaned_index, index), (cleaned_time, time)] {
            if io::disk::exists(&from).await {
                io::disk::rename(&from, &to).await?;
            }
        }
        io::disk::rename(&swap_log, &log).await?;
        let _ = io::disk::remove_file(&cleaned_log).await;
        warn!(dir = %dir.display(), %base_offset, "finished an interrupted cleaning");
        changed = true;
    }
    let cleaned_suffix = format!(".{CLEANED_SUFFIX}");
    for name in names_in(dir).await? {
        let mut orphan_index = false;
        for extension in [".index", ".timeindex", ".txnindex"] {
            if let Some(stem) = name.strip_suffix(extension) {
                orphan_index |= !io::disk::exists(&dir.join(format!("{stem}.log"))).await;
            }
        }
        if name.ends_with(&cleaned_suffix) || orphan_index {
            io::disk::remove_file(&dir.join(&name)).await?;
            changed = true;
        }
    }
    Ok(changed)
}
