//! Copying a partition's files into the staging dir (step 1, and the switch's catch-up): round
//! by round, each taking only what changed since the last, paced by a throttle.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use super::MoveError;

/// Bytes copied per read/write call; the throttle sleeps between chunks.
const COPY_CHUNK_BYTES: usize = 1 << 20;

/// (inode, size) of each file of a directory, by name.
pub(crate) type FileStamps = HashMap<String, (u64, u64)>;

/// The active segment's log file, and its logical end when a copy round began (a log still
/// taking appends during the round).
#[derive(Debug, Clone)]
pub(crate) struct ActiveLogEnd {
    pub(crate) file_name: String,
    pub(crate) end_bytes: u64,
}

/// Copies files of `source` into `dest` (created) whose stamp differs from `copied`, removes from
/// `dest` files gone from `source`, and returns the new stamps (blocking). `throttle` paces bytes.
/// With `recopy_active`, the active (last) segment's files are copied whatever their stamp: with
/// `preallocate` its log file keeps its inode and size while it is written.
pub(crate) fn sync_copy(
    source: &Path,
    dest: &Path,
    copied: &FileStamps,
    throttle: &mut Throttle,
    recopy_active: bool,
    active_log: Option<&ActiveLogEnd>,
) -> Result<(FileStamps, u64), MoveError> {
    let failed = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MoveError::Copy { path, source }
    };
    std::fs::create_dir_all(dest).map_err(failed(dest))?;
    let entries = std::fs::read_dir(source)
        .and_then(|entries| entries.collect::<std::io::Result<Vec<_>>>())
        .map_err(failed(source))?;
    // Segment files are named by their 20-digit base offset: the greatest `.log` stem is active.
    let active_stem = entries
        .iter()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".log").map(str::to_string)
        })
        .max();
    let mut stamps = FileStamps::new();
    let mut bytes = 0;
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        // The spare segment is allocated zeros, maybe still being allocated: the moved log
        // prepares its own. A `.tmp` file is an atomic rewrite in flight (a snapshot a seal in
        // the background writes): the file it becomes is copied by a later round.
        if name == crate::log::SPARE_FILE_NAME || name.ends_with(".tmp") {
            continue;
        }
        let meta = match entry.metadata() {
            // Gone since the listing (retention, a rewrite renamed over it): nothing to copy.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            meta => meta.map_err(failed(&entry.path()))?,
        };
        if !meta.is_file() {
            continue;
        }
        let stamp = (meta.ino(), meta.len());
        let active = recopy_active
            && active_stem
                .as_deref()
                .is_some_and(|stem| name.starts_with(stem));
        // Same inode and grown: only appended to (segments and indexes are written at their end;
        // a compaction install or a truncation at open makes a new inode or a smaller size).
        let from_bytes = match copied.get(&name) {
            Some(&(inode, len)) if !active && inode == stamp.0 && len <= stamp.1 => len,
            _ => 0,
        };
        // The active log is copied up to its logical end only: the preallocated rest is zeros
        // (a whole segment of them, by default) that every round would copy again.
        let until_bytes = match active_log {
            Some(log) if log.file_name == name => Some(log.end_bytes.max(from_bytes)),
            _ => None,
        };
        if active || copied.get(&name) != Some(&stamp) {
            let range = (from_bytes, until_bytes);
            match copy_file(&entry.path(), &dest.join(&name), range, throttle) {
                Ok(copied_bytes) => bytes += copied_bytes,
                // Removed between its listing and its opening: as if not listed.
                Err(MoveError::Copy { path, source })
                    if source.kind() == std::io::ErrorKind::NotFound && path == entry.path() =>
                {
                    continue
                }
                Err(err) => return Err(err),
            }
        }
        // The active log's bytes are final only up to the block holding its logical end when
        // the round began: past it lie preallocated zeros or a direct write's padding, which
        // later writes replace in place (the file's size unchanged, or grown past them before a
        // roll). The next round copies it again from there, whether it is still active or not.
        // A newer log (rolled into after the end was recorded, before the listing) has no known
        // end: the next round copies it whole.
        let stamp = match active_log {
            Some(log) if log.file_name == name => (
                stamp.0,
                stamp.1.min(crate::io::direct::align_down(log.end_bytes)),
            ),
            Some(log) if name.ends_with(".log") && name > log.file_name => (stamp.0, 0),
            _ => stamp,
        };
        stamps.insert(name, stamp);
    }
    for name in copied.keys().filter(|name| !stamps.contains_key(*name)) {
        match std::fs::remove_file(dest.join(name)) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                return Err(MoveError::Copy {
                    path: dest.join(name),
                    source: err,
                })
            }
            _ => {}
        }
    }
    Ok((stamps, bytes))
}

/// Copies `from` to `to` from byte `from_bytes` on (0: the whole file, `to` recreated).
/// Copies `from` into `to` from byte `from_bytes` (the copy cut there first) up to
/// `until_bytes`, or to its end.
fn copy_file(
    from: &Path,
    to: &Path,
    (from_bytes, until_bytes): (u64, Option<u64>),
    throttle: &mut Throttle,
) -> Result<u64, MoveError> {
    use std::io::Seek as _;
    let failed = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MoveError::Copy { path, source }
    };
    let mut input = std::fs::File::open(from).map_err(failed(from))?;
    let mut output = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(from_bytes == 0)
        .open(to)
        .map_err(failed(to))?;
    if from_bytes > 0 {
        input
            .seek(std::io::SeekFrom::Start(from_bytes))
            .map_err(failed(from))?;
        output.set_len(from_bytes).map_err(failed(to))?;
        output
            .seek(std::io::SeekFrom::Start(from_bytes))
            .map_err(failed(to))?;
    }
    let mut buffer = vec![0u8; COPY_CHUNK_BYTES];
    let mut total = 0u64;
    let mut left_bytes = until_bytes.map_or(u64::MAX, |until| until.saturating_sub(from_bytes));
    loop {
        let chunk = usize::try_from(left_bytes).map_or(buffer.len(), |left| left.min(buffer.len()));
        let read = input.read(&mut buffer[..chunk]).map_err(failed(from))?;
        left_bytes -= read as u64;
        if read == 0 {
            break;
        }
        output.write_all(&buffer[..read]).map_err(failed(to))?;
        total += read as u64;
        throttle.account(read as u64);
    }
    output.sync_all().map_err(failed(to))?;
    Ok(total)
}

/// Paces a copy to `bytes_per_sec` (0: unbounded) by sleeping once ahead of the budget.
pub(crate) struct Throttle {
    bytes_per_sec: u64,
    started: Instant,
    bytes: u64,
}

impl Throttle {
    pub(crate) fn new(bytes_per_sec: u64) -> Self {
        Self {
            bytes_per_sec,
            started: Instant::now(),
            bytes: 0,
        }
    }

    /// An unbounded throttle (the switch's catch-up must not be slowed: appends wait on it).
    pub(crate) fn unbounded() -> Self {
        Self::new(0)
    }

    fn account(&mut self, bytes: u64) {
        self.bytes += bytes;
        if self.bytes_per_sec == 0 {
            return;
        }
        let due = Duration::from_secs_f64(self.bytes as f64 / self.bytes_per_sec as f64);
        let elapsed = self.started.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
    }
}

/// Makes a directory's new entries durable (blocking).
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `bytes` at `position` of `path` in place (as direct writes and preallocated
    /// segments do), the file's size growing only if they reach past it.
    fn write_in_place(path: &Path, bytes: &[u8], position: u64) {
        let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&file, bytes, position).unwrap();
    }

    fn assert_same_files(source: &Path, dest: &Path) {
        for entry in std::fs::read_dir(source).unwrap() {
            let path = entry.unwrap().path();
            let copy = dest.join(path.file_name().unwrap());
            assert!(
                std::fs::read(&copy).unwrap() == std::fs::read(&path).unwrap(),
                "{} differs from its source",
                copy.display()
            );
        }
    }

    #[test]
    fn a_catch_up_copy_takes_again_what_the_active_log_rewrites_in_place() {
        // Past the active log's logical end lie zeros that later writes replace in place: a
        // direct write's padding (the size unchanged) or preallocated space (the size unchanged,
        // or grown past it before the segment rolls). A copy resuming from the old size would
        // keep the zeros. Both cases: the segment still active at the next round, and rolled.
        for (padding_to, rolls) in [(8192u64, false), (65_536, true), (8192, true)] {
            let root = tempfile::tempdir().unwrap();
            let (source, dest) = (root.path().join("src"), root.path().join("dst"));
            std::fs::create_dir_all(&source).unwrap();
            let sealed = source.join("00000000000000000000.log");
            let active = source.join("00000000000000000100.log");
            std::fs::write(&sealed, vec![7u8; 5000]).unwrap();
            let mut bytes = vec![1u8; 5000];
            bytes.resize(padding_to as usize, 0);
            std::fs::write(&active, &bytes).unwrap();
            let active_log = ActiveLogEnd {
                file_name: "00000000000000000100.log".into(),
                end_bytes: 5000,
            };
            let stamps = copy_round(&source, &dest, &FileStamps::new(), Some(&active_log));
            // Written on in place after the round, past the old size when it rolls.
            let written_to = if rolls { padding_to + 10_000 } else { 7000 };
            write_in_place(&active, &vec![2u8; (written_to - 5000) as usize], 5000);
            if rolls {
                std::fs::write(source.join("00000000000000000200.log"), [3u8; 100]).unwrap();
            }
            copy_round(&source, &dest, &stamps, None);
            assert_same_files(&source, &dest);
        }
    }

    #[test]
    fn a_round_copies_the_active_log_up_to_its_logical_end_not_its_allocated_zeros() {
        // A preallocated active segment is a whole segment of zeros past its batches: copied,
        // every round would copy them again.
        let root = tempfile::tempdir().unwrap();
        let (source, dest) = (root.path().join("src"), root.path().join("dst"));
        std::fs::create_dir_all(&source).unwrap();
        let active = source.join("00000000000000000000.log");
        let mut bytes = vec![1u8; 5000];
        bytes.resize(1 << 20, 0);
        std::fs::write(&active, &bytes).unwrap();
        let mut end = ActiveLogEnd {
            file_name: "00000000000000000000.log".into(),
            end_bytes: 5000,
        };
        let (stamps, copied) = sync_copy(
            &source,
            &dest,
            &FileStamps::new(),
            &mut Throttle::unbounded(),
            false,
            Some(&end),
        )
        .unwrap();
        assert_eq!(copied, 5000);
        let copy = dest.join("00000000000000000000.log");
        assert_eq!(std::fs::read(&copy).unwrap(), vec![1u8; 5000]);
        // Written on in place; the next round takes the rest up to the new end, from the block
        // the last one ended in.
        write_in_place(&active, &[2u8; 7000], 5000);
        end.end_bytes = 12_000;
        let (_, copied) = sync_copy(
            &source,
            &dest,
            &stamps,
            &mut Throttle::unbounded(),
            false,
            Some(&end),
        )
        .unwrap();
        assert_eq!(copied, 12_000 - 4096);
        assert_eq!(
            std::fs::read(&copy).unwrap()[..],
            bytes_written(&active, 12_000)[..]
        );
        // Once closed, the whole file: what the final round does.
        copy_round(&source, &dest, &FileStamps::new(), None);
        assert_same_files(&source, &dest);
    }

    fn bytes_written(path: &Path, end: usize) -> Vec<u8> {
        std::fs::read(path).unwrap()[..end].to_vec()
    }

    /// One bulk round of [`sync_copy`], unthrottled; the stamps it leaves.
    fn copy_round(
        source: &Path,
        dest: &Path,
        stamps: &FileStamps,
        active_log: Option<&ActiveLogEnd>,
    ) -> FileStamps {
        sync_copy(
            source,
            dest,
            stamps,
            &mut Throttle::unbounded(),
            false,
            active_log,
        )
        .unwrap()
        .0
    }

    #[test]
    fn a_segment_rolled_into_before_the_round_listed_its_files_is_copied_again_whole() {
        // The round recorded the active log's end, then (before it listed the directory: the
        // hop to the blocking pool) the log rolled. The new segment's padding (or preallocated
        // space) past its logical end, copied in this round, is written in place afterwards.
        let root = tempfile::tempdir().unwrap();
        let (source, dest) = (root.path().join("src"), root.path().join("dst"));
        std::fs::create_dir_all(&source).unwrap();
        std::fs::write(source.join("00000000000000000000.log"), vec![7u8; 5000]).unwrap();
        let rolled_into = source.join("00000000000000000100.log");
        let mut bytes = vec![1u8; 5000];
        bytes.resize(8192, 0);
        std::fs::write(&rolled_into, &bytes).unwrap();
        let active_log = ActiveLogEnd {
            file_name: "00000000000000000000.log".into(),
            end_bytes: 5000,
        };
        let stamps = copy_round(&source, &dest, &FileStamps::new(), Some(&active_log));
        write_in_place(&rolled_into, &[2u8; 2000], 5000);
        copy_round(&source, &dest, &stamps, None);
        assert_same_files(&source, &dest);
    }

    #[test]
    fn the_spare_segment_is_not_copied() {
        // Allocated zeros of a segment not yet rolled into (maybe still being allocated): the
        // moved log prepares its own, and a copy would write a segment of zeros for nothing.
        let root = tempfile::tempdir().unwrap();
        let (source, dest) = (root.path().join("src"), root.path().join("dst"));
        std::fs::create_dir_all(&source).unwrap();
        std::fs::write(source.join("00000000000000000000.log"), vec![7u8; 5000]).unwrap();
        std::fs::write(source.join(crate::log::SPARE_FILE_NAME), vec![0u8; 8192]).unwrap();
        let stamps = copy_round(&source, &dest, &FileStamps::new(), None);
        assert!(dest.join("00000000000000000000.log").exists());
        assert!(!dest.join(crate::log::SPARE_FILE_NAME).exists());
        assert!(!stamps.contains_key(crate::log::SPARE_FILE_NAME));
    }
}
