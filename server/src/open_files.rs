//! The process's file descriptors against its open-files limit (`ulimit -n`).
//!
//! Every sealed segment holds one descriptor (its log), every active segment three, every
//! connection one: a broker with many partitions or a long retention needs far more than the
//! soft limit many systems start a service with (1,024 under systemd, whose hard limit is
//! 524,288). At the limit a segment roll fails with EMFILE (the partition is refused until the
//! shard reopens it) and accept fails. So at start the soft limit is raised to the hard one, as
//! Go's runtime and most servers do; the count and the limit are on /metrics; and a watcher warns
//! while the count is over [`WARN_SHARE_PERCENT`] of the limit, before anything fails.
#![forbid(unsafe_code)]

use std::time::Duration;

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use tracing::{info, warn};

/// Share of the limit above which the watcher warns.
pub const WARN_SHARE_PERCENT: u64 = 80;
/// How often the watcher counts the descriptors (reading /proc/self/fd costs about a
/// microsecond per descriptor, on its own thread).
const WATCH_INTERVAL: Duration = Duration::from_secs(10);
/// While over the share, the warning repeats at most this often.
const WARN_INTERVAL: Duration = Duration::from_secs(60);
/// Descriptors kept free for what is not a connection (segments, the data dir locks, the
/// metrics listener) when comparing `--max-connections` with the limit.
const NON_CONNECTION_FILES_MIN: u64 = 1024;

/// The soft open-files limit now; `None` if unlimited.
pub fn soft_limit() -> Option<u64> {
    getrlimit(Resource::Nofile).current
}

/// Descriptors the process has open now (entries of /proc/self/fd, less the one reading it).
pub fn open_now() -> Option<u64> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    Some((entries.count() as u64).saturating_sub(1))
}

/// Raises the soft limit to the hard one, logging both; a failure (a hard limit lowered under
/// us) is logged and the broker goes on with the soft limit it has.
pub fn raise_soft_limit() {
    let limit = getrlimit(Resource::Nofile);
    let (Some(soft), hard) = (limit.current, limit.maximum) else {
        return; // already unlimited
    };
    if hard.is_some_and(|hard| hard <= soft) {
        info!(open_files_limit = soft, "open-files limit");
        return;
    }
    let raised = Rlimit {
        current: hard,
        maximum: hard,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => info!(
            from = soft,
            to = ?hard,
            "raised the open-files soft limit to the hard limit"
        ),
        Err(err) => warn!(
            open_files_limit = soft,
            %err,
            "could not raise the open-files soft limit to the hard limit"
        ),
    }
}

/// Descriptors a connection holds once it has fetched: its socket and its splice pipe's two ends,
/// and while a cold chunk of its is written on a sender thread (the default,
/// `--fetch-cold-send-priority`), the sender's duplicate of the socket.
pub const DESCRIPTORS_PER_CONNECTION: u64 = 4;

/// Whether `max_connections` connections, each with [`DESCRIPTORS_PER_CONNECTION`], and the
/// broker's other files fit under `limit`.
pub fn connections_fit(max_connections: u32, limit: u64) -> bool {
    u64::from(max_connections) * DESCRIPTORS_PER_CONNECTION + NON_CONNECTION_FILES_MIN <= limit
}

/// A --max-connections whose connections can't all hold their descriptors would turn refusals
/// into accept errors (EMFILE) and starve partition files of descriptors: warned at start.
pub fn warn_if_connections_exceed_limit(max_connections: u32) {
    if let Some(open_files_limit) = soft_limit() {
        if !connections_fit(max_connections, open_files_limit) {
            warn!(
                max_connections,
                open_files_limit,
                descriptors_per_connection = DESCRIPTORS_PER_CONNECTION,
                "--max-connections is near or above the open-files limit (ulimit -n): lower it \
                 or raise the limit"
            );
        }
    }
}

/// Whether `open` descriptors are over [`WARN_SHARE_PERCENT`] of `limit`.
pub fn over_warning_share(open: u64, limit: u64) -> bool {
    open.saturating_mul(100) > limit.saturating_mul(WARN_SHARE_PERCENT)
}

/// Starts the watcher thread: every [`WATCH_INTERVAL`] it counts the descriptors and warns
/// (at most every [`WARN_INTERVAL`]) while they are over the warning share of the limit.
pub fn spawn_watcher() -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("open-files".into())
        .spawn(|| {
            let mut warned_at: Option<std::time::Instant> = None;
            loop {
                if let (Some(open_files), Some(open_files_limit)) = (open_now(), soft_limit()) {
                    let due = warned_at.is_none_or(|at| at.elapsed() >= WARN_INTERVAL);
                    if over_warning_share(open_files, open_files_limit) && due {
                        warn!(
                            open_files,
                            open_files_limit,
                            "open files near the limit: each sealed segment holds one, each \
                             connection one; raise ulimit -n (systemd: LimitNOFILE=), use larger \
                             segments or shorter retention"
                        );
                        warned_at = Some(std::time::Instant::now());
                    }
                }
                std::thread::sleep(WATCH_INTERVAL);
            }
        })
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_warning_share_is_strictly_over_eighty_percent() {
        assert!(!over_warning_share(800, 1000));
        assert!(over_warning_share(801, 1000));
        assert!(over_warning_share(u64::MAX, 1000), "no overflow");
        assert!(!over_warning_share(0, 0));
    }

    #[test]
    fn a_fetching_connection_counts_four_descriptors() {
        assert!(connections_fit(1_000, 4 * 1_000 + NON_CONNECTION_FILES_MIN));
        assert!(!connections_fit(
            1_000,
            4 * 1_000 + NON_CONNECTION_FILES_MIN - 1
        ));
        assert!(
            !connections_fit(u32::MAX, u64::from(u32::MAX)),
            "no overflow"
        );
    }
}
