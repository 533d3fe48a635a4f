//! Space of a file system and the thresholds that judge it: `statvfs` figures, the watermarks,
//! and the choice of a dir for a new partition by free space.
//!
//! # Invariants
//! - Used percent is counted as `df` counts it: used / (used + available to the broker).
#![forbid(unsafe_code)]

use std::path::Path;

/// Free space within this percentage of the best dir's capacity counts as a tie.
pub const FREE_BYTES_TIE_PERCENT: u64 = 1;

/// The space thresholds of every data dir (Redpanda-like defaults: warn at 80 % used, refuse
/// produce at 95 % used or below `min_free_bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskWatermarks {
    pub warn_used_percent: u8,
    pub limit_used_percent: u8,
    pub min_free_bytes: u64,
}

impl Default for DiskWatermarks {
    fn default() -> Self {
        Self {
            warn_used_percent: 80,
            limit_used_percent: 95,
            min_free_bytes: 0,
        }
    }
}

/// Space of a file system, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiskSpace {
    pub total_bytes: u64,
    /// Available to the broker (statvfs `f_bavail`, as Kafka's usable bytes).
    pub free_bytes: u64,
    /// In use (`f_blocks - f_bfree`).
    pub used_bytes: u64,
}

impl DiskSpace {
    /// Used share in percent as `df` shows it (used / (used + available), so blocks reserved for
    /// root do not count as free), rounded down; an empty file system is 0 %.
    pub fn used_percent(self) -> u64 {
        let usable = self.used_bytes.saturating_add(self.free_bytes);
        self.used_bytes
            .saturating_mul(100)
            .checked_div(usable)
            .unwrap_or(0)
    }

    pub(crate) fn over_limit(self, marks: DiskWatermarks) -> bool {
        self.used_percent() >= u64::from(marks.limit_used_percent)
            || self.free_bytes < marks.min_free_bytes
    }

    pub(crate) fn over_warn(self, marks: DiskWatermarks) -> bool {
        self.used_percent() >= u64::from(marks.warn_used_percent)
    }
}

/// The space of the file system holding `path` (blocking statvfs).
pub fn disk_space(path: &Path) -> std::io::Result<DiskSpace> {
    let stat = rustix::fs::statvfs(path)?;
    Ok(DiskSpace {
        total_bytes: stat.f_blocks.saturating_mul(stat.f_frsize),
        free_bytes: stat.f_bavail.saturating_mul(stat.f_frsize),
        used_bytes: stat
            .f_blocks
            .saturating_sub(stat.f_bfree)
            .saturating_mul(stat.f_frsize),
    })
}

/// Default of [`crate::LogConfig::preallocate_max_used_percent`]: the most of a file system a
/// preallocation may leave in use, in percent as `df` counts it. Space allocated ahead and not
/// yet written counts as used, so preallocating past this would bring the data dirs' watermarks
/// (80 % warn, 95 % refuse, by default) nearer with nothing written.
pub const PREALLOCATE_MAX_USED_PERCENT_DEFAULT: u8 = 50;

/// The space of the file system holding `path`, and whether it keeps its files in memory
/// (tmpfs, ramfs), where allocating ahead takes memory and saves no block allocation (blocking
/// statvfs and statfs).
pub fn file_system_space(path: &Path) -> std::io::Result<(DiskSpace, bool)> {
    // ramfs's magic (linux/magic.h), which the libc crate does not name.
    const RAMFS_MAGIC: libc::c_long = 0x8584_58f6;
    let kind = rustix::fs::statfs(path)?.f_type;
    let in_memory = kind == libc::TMPFS_MAGIC || kind == RAMFS_MAGIC;
    Ok((disk_space(path)?, in_memory))
}

/// Whether `bytes` more may be allocated ahead on a file system with `space`: only while it
/// stays at or under `max_used_percent` used.
pub fn preallocation_fits(space: DiskSpace, bytes: u64, max_used_percent: u8) -> bool {
    let usable = space.used_bytes.saturating_add(space.free_bytes);
    bytes <= space.free_bytes
        && space.used_bytes.saturating_add(bytes).saturating_mul(100)
            <= usable.saturating_mul(u64::from(max_used_percent))
}

/// Of `pool` (dir indexes, with their `spaces`), the one with the most free bytes; dirs within
/// [`FREE_BYTES_TIE_PERCENT`] of the best's capacity are tied and the fewest partitions wins.
pub fn choose_dir(pool: &[usize], spaces: &[DiskSpace], counts: &[usize]) -> Option<usize> {
    let best = spaces.iter().max_by_key(|space| space.free_bytes)?;
    let tie_bytes = best.total_bytes / 100 * FREE_BYTES_TIE_PERCENT;
    let floor = best.free_bytes.saturating_sub(tie_bytes);
    pool.iter()
        .zip(spaces)
        .filter(|(_, space)| space.free_bytes >= floor)
        .min_by_key(|(&index, _)| (counts[index], index))
        .map(|(&index, _)| index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(total_bytes: u64, free_bytes: u64) -> DiskSpace {
        DiskSpace {
            total_bytes,
            free_bytes,
            used_bytes: total_bytes - free_bytes,
        }
    }

    #[test]
    fn the_most_free_space_wins_and_ties_go_to_the_fewest_partitions() {
        // Free space decides; near-equal disks share partitions instead of one taking them all.
        let gib = 1 << 30;
        let spaces = [space(100 * gib, 10 * gib), space(100 * gib, 60 * gib)];
        assert_eq!(choose_dir(&[0, 1], &spaces, &[0, 5]), Some(1));
        let tied = [space(100 * gib, 60 * gib), space(100 * gib, 60 * gib - 1)];
        assert_eq!(choose_dir(&[0, 1], &tied, &[3, 2]), Some(1));
        assert_eq!(choose_dir(&[0, 1], &tied, &[2, 2]), Some(0));
        assert_eq!(choose_dir(&[], &[], &[]), None);
    }

    #[test]
    fn preallocation_stops_at_half_the_file_system() {
        // Space allocated ahead counts as used: it may not take the disk past half full.
        let gib = 1 << 30;
        let half = PREALLOCATE_MAX_USED_PERCENT_DEFAULT;
        assert!(preallocation_fits(
            space(100 * gib, 60 * gib),
            10 * gib,
            half
        ));
        assert!(!preallocation_fits(
            space(100 * gib, 60 * gib),
            10 * gib + 1,
            half
        ));
        assert!(!preallocation_fits(space(100 * gib, 40 * gib), 1, half));
        // 100 %: anything the disk has room for; 0 %: nothing.
        assert!(preallocation_fits(
            space(100 * gib, 40 * gib),
            40 * gib,
            100
        ));
        assert!(!preallocation_fits(
            space(100 * gib, 40 * gib),
            40 * gib + 1,
            100
        ));
        assert!(!preallocation_fits(space(100 * gib, 100 * gib), 1, 0));
        // Blocks reserved for root are neither free nor used: half of what `df` shows.
        let reserved = DiskSpace {
            total_bytes: 100 * gib,
            free_bytes: 30 * gib,
            used_bytes: 30 * gib,
        };
        assert!(preallocation_fits(reserved, 0, half));
        assert!(!preallocation_fits(reserved, 1, half));
        assert!(!preallocation_fits(DiskSpace::default(), 1, half));
    }

    #[test]
    fn a_real_directory_reports_its_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let (space, _) = file_system_space(dir.path()).unwrap();
        assert!(space.total_bytes > 0);
        assert!(file_system_space(Path::new("/nonexistent/ringtail")).is_err());
        // /dev/shm is tmpfs wherever it exists as a mount (it is on every CI machine here).
        if let Ok((_, in_memory)) = file_system_space(Path::new("/dev/shm")) {
            assert!(in_memory, "/dev/shm is tmpfs");
        }
    }

    #[test]
    fn watermarks_count_used_percent_and_free_bytes() {
        // The hard limit trips on either the percentage or the absolute free-bytes floor.
        let marks = DiskWatermarks {
            min_free_bytes: 1000,
            ..DiskWatermarks::default()
        };
        assert!(!space(10_000, 2_100).over_warn(marks));
        assert!(space(10_000, 2_000).over_warn(marks));
        assert!(!space(10_000, 1_000).over_limit(marks));
        assert!(space(10_000, 500).over_limit(marks));
        assert!(space(1_000_000, 999).over_limit(marks));
        assert_eq!(space(0, 0).used_percent(), 0);
    }
}
