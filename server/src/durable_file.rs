//! Small state files the broker rewrites whole (credentials, ACLs, client quotas): a new version
//! replaces the old one atomically and durably, so a crash leaves one or the other, never a mix.
#![forbid(unsafe_code)]

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path`: a temp file beside it, fsync, rename over the old one, fsync the
/// directory (without it the rename itself may be lost in a power cut).
pub fn replace_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut temp_name = path.as_os_str().to_owned();
    temp_name.push(".tmp");
    let temp = Path::new(&temp_name);
    let mut out = std::fs::File::create(temp)?;
    out.write_all(bytes)?;
    out.sync_all()?;
    std::fs::rename(temp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replacement_leaves_only_the_new_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        replace_atomically(&path, b"old").unwrap();
        replace_atomically(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temp file left behind");
    }
}
