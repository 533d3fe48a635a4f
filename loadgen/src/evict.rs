//! Dropping a broker's files from the page cache, so a catch-up consumer reads its backlog from
//! disk (the `cold-catch-up` scenarios): every regular file under the given directories is
//! fdatasync'ed (dirty pages cannot be dropped) and then advised `POSIX_FADV_DONTNEED`. Unlike
//! `echo 3 > /proc/sys/vm/drop_caches` this needs no root and leaves the rest of the machine's
//! page cache alone.
#![forbid(unsafe_code)]

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Directory levels walked below each root: a broker's data dir holds a level of partition
/// directories (Kafka's too); anything deeper is not a backlog.
const DEPTH_MAX: usize = 4;

/// Syncs and drops every regular file under `roots` from the page cache; returns the bytes of
/// the files so dropped. A missing root is an error: the scenario would silently read warm data.
pub fn drop_from_page_cache(roots: &[PathBuf]) -> io::Result<u64> {
    let mut bytes = 0;
    for root in roots {
        bytes += drop_tree(root, DEPTH_MAX)?;
    }
    Ok(bytes)
}

fn drop_tree(dir: &Path, depth_left: usize) -> io::Result<u64> {
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() && depth_left > 0 {
            bytes += drop_tree(&entry.path(), depth_left - 1)?;
        } else if kind.is_file() {
            // A file deleted meanwhile (retention, a rolled temp file) is no backlog to drop.
            let file = match File::open(entry.path()) {
                Ok(file) => file,
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(error),
            };
            file.sync_data()?;
            crate::sys::drop_cached_file(&file)?;
            bytes += file.metadata()?.len();
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_in_partition_directories_are_dropped_and_counted() {
        let root = tempfile::tempdir().unwrap();
        let partition = root.path().join("topic-0");
        std::fs::create_dir(&partition).unwrap();
        std::fs::write(
            partition.join("00000000000000000000.log"),
            vec![1u8; 1 << 20],
        )
        .unwrap();
        std::fs::write(root.path().join("topics.json"), b"{}").unwrap();
        let dropped = drop_from_page_cache(&[root.path().to_path_buf()]).unwrap();
        assert_eq!(dropped, (1 << 20) + 2);
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        let missing = root.path().join("nope");
        assert!(drop_from_page_cache(&[missing]).is_err());
    }
}
