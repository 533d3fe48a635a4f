//! CPU time: of a local broker process (from `/proc/<pid>/stat`), of the loadgen itself
//! (`getrusage`), and which local process listens on a TCP port (so a run against
//! `127.0.0.1:9092` can report the broker's CPU without being told its pid).
//!
//! A run's CPU cost is the difference of two samples taken at its start and end
//! ([`CpuTime::since`]). Linux only: everything is read from `/proc`.
//!
//! # Invariants worth naming
//! - A process's user and system times never decrease, so `since` of a later sample of the same
//!   process is never negative (asserted).
//! - The CPU times count every thread of the process, not its children.
#![forbid(unsafe_code)]

use std::fs;
use std::io;
use std::path::Path;
use std::time::Duration;

use crate::sys;

/// User and system CPU time of one process, over all its threads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct CpuTime {
    pub user: Duration,
    pub system: Duration,
}

impl CpuTime {
    pub fn total(&self) -> Duration {
        self.user + self.system
    }

    /// Seconds of user + system time, as reports carry them.
    pub fn total_s(&self) -> f64 {
        self.total().as_secs_f64()
    }

    /// CPU used between `earlier` and this sample of the same process.
    pub fn since(&self, earlier: CpuTime) -> CpuTime {
        assert!(self.user >= earlier.user, "user time went backwards");
        assert!(self.system >= earlier.system, "system time went backwards");
        CpuTime {
            user: self.user - earlier.user,
            system: self.system - earlier.system,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CpuError {
    #[error("process {pid} not found (exited?)")]
    NoSuchProcess { pid: u32 },
    #[error("reading {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("unexpected format of {path}: {detail}")]
    Format { path: String, detail: String },
    #[error("sysconf(_SC_CLK_TCK): {0}")]
    ClockTicks(io::Error),
    #[error("getrusage: {0}")]
    Rusage(io::Error),
    #[error("several processes listen on TCP port {port}: {pids:?}")]
    SeveralListeners { port: u16, pids: Vec<u32> },
}

/// CPU time process `pid` has used so far (all its threads; `utime` and `stime` of
/// `/proc/<pid>/stat`).
pub fn process_cpu(pid: u32) -> Result<CpuTime, CpuError> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => CpuError::NoSuchProcess { pid },
        _ => CpuError::Read {
            path: path.clone(),
            source,
        },
    })?;
    let (user_ticks, system_ticks) =
        parse_stat_times(&text).map_err(|detail| CpuError::Format { path, detail })?;
    let ticks_per_s = sys::clock_ticks_per_s().map_err(CpuError::ClockTicks)?;
    Ok(CpuTime {
        user: ticks_to_duration(user_ticks, ticks_per_s),
        system: ticks_to_duration(system_ticks, ticks_per_s),
    })
}

/// CPU time this process (the loadgen) has used so far, all threads.
pub fn self_cpu() -> Result<CpuTime, CpuError> {
    let (user, system) = sys::rusage_self().map_err(CpuError::Rusage)?;
    Ok(CpuTime { user, system })
}

/// Busy CPU time of the whole machine so far, all CPUs: every column of `/proc/stat`'s `cpu`
/// line but idle and iowait. Counts what no one process is charged for (the kernel's writeback
/// and softirq work), so a measurement can report the machine's cost beside a process's.
pub fn machine_busy_cpu() -> Result<Duration, CpuError> {
    let path = "/proc/stat";
    let text = fs::read_to_string(path).map_err(|source| CpuError::Read {
        path: path.to_string(),
        source,
    })?;
    let busy_ticks = parse_busy_ticks(&text).map_err(|detail| CpuError::Format {
        path: path.to_string(),
        detail,
    })?;
    let ticks_per_s = sys::clock_ticks_per_s().map_err(CpuError::ClockTicks)?;
    Ok(ticks_to_duration(busy_ticks, ticks_per_s))
}

/// Busy clock ticks from `/proc/stat`'s first line: `cpu user nice system idle iowait irq
/// softirq steal ...` without idle (4th) and iowait (5th).
fn parse_busy_ticks(text: &str) -> Result<u64, String> {
    let line = text.lines().next().ok_or("empty")?;
    let mut columns = line.split_whitespace();
    if columns.next() != Some("cpu") {
        return Err(format!("first line is {line:?}"));
    }
    let mut busy = 0u64;
    for (at, raw) in columns.enumerate() {
        let ticks: u64 = raw.parse().map_err(|_| format!("column {raw:?}"))?;
        if at != 3 && at != 4 {
            busy += ticks;
        }
    }
    Ok(busy)
}

fn ticks_to_duration(ticks: u64, ticks_per_s: u64) -> Duration {
    assert!(ticks_per_s > 0);
    let whole_s = ticks / ticks_per_s;
    let rest_ticks = ticks % ticks_per_s;
    Duration::from_secs(whole_s) + Duration::from_nanos(rest_ticks * 1_000_000_000 / ticks_per_s)
}

/// `(utime, stime)` in clock ticks from the text of `/proc/<pid>/stat`. The command name (field 2)
/// is in parentheses and may itself hold spaces and parentheses, so fields are counted from the
/// *last* `)`: after it come state (field 3) … utime (field 14), stime (field 15).
fn parse_stat_times(text: &str) -> Result<(u64, u64), String> {
    let close = text.rfind(')').ok_or("no ')' after the command name")?;
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // Field n (1-based, as in proc(5)) is fields[n - 3].
    let field = |n: usize| -> Result<u64, String> {
        let raw = fields.get(n - 3).ok_or(format!("field {n} missing"))?;
        raw.parse().map_err(|_| format!("field {n} is {raw:?}"))
    };
    Ok((field(14)?, field(15)?))
}

/// The pid of the local process listening on TCP `port` (IPv4 or IPv6, any address); `None` when
/// no process in this network namespace listens there, or when its sockets cannot be seen (a
/// process of another user, without root). An error when several processes listen on the port
/// (SO_REUSEPORT): the caller must then say which one it means.
pub fn pid_listening_on(port: u16) -> Result<Option<u32>, CpuError> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        match fs::read_to_string(table) {
            Ok(text) => {
                inodes.extend(
                    listening_inodes(&text, port).map_err(|detail| CpuError::Format {
                        path: table.to_string(),
                        detail,
                    })?,
                )
            }
            // No IPv6 in this kernel: no tcp6 table.
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(CpuError::Read {
                    path: table.to_string(),
                    source,
                })
            }
        }
    }
    if inodes.is_empty() {
        return Ok(None);
    }
    let mut pids = pids_holding_sockets(&inodes)?;
    pids.sort_unstable();
    pids.dedup();
    match pids.as_slice() {
        [] => Ok(None),
        [pid] => Ok(Some(*pid)),
        _ => Err(CpuError::SeveralListeners { port, pids }),
    }
}

/// TCP state LISTEN in the `st` column of `/proc/net/tcp` (include/net/tcp_states.h).
const TCP_LISTEN: &str = "0A";

/// Socket inodes of the listening sockets on `port` in one `/proc/net/tcp{,6}` table. A row:
/// `sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode …`,
/// addresses as `HEXADDR:HEXPORT`.
fn listening_inodes(table: &str, port: u16) -> Result<Vec<u64>, String> {
    let mut inodes = Vec::new();
    for line in table.lines().skip(1) {
        let columns: Vec<&str> = line.split_whitespace().collect();
        if columns.len() < 10 {
            return Err(format!("short row {line:?}"));
        }
        let (_, port_hex) = columns[1]
            .rsplit_once(':')
            .ok_or(format!("no port in {:?}", columns[1]))?;
        let row_port =
            u16::from_str_radix(port_hex, 16).map_err(|_| format!("bad port {port_hex:?}"))?;
        if row_port != port || columns[3] != TCP_LISTEN {
            continue;
        }
        let inode: u64 = columns[9]
            .parse()
            .map_err(|_| format!("bad inode {:?}", columns[9]))?;
        // Inode 0: a socket being torn down, owned by no descriptor.
        if inode != 0 {
            inodes.push(inode);
        }
    }
    Ok(inodes)
}

/// Pids of the processes with a descriptor on any of these socket inodes: every
/// `/proc/<pid>/fd/<n>` link reads `socket:[<inode>]` for a socket. Processes that exit or deny
/// access while being scanned are skipped.
fn pids_holding_sockets(inodes: &[u64]) -> Result<Vec<u32>, CpuError> {
    let wanted: Vec<String> = inodes
        .iter()
        .map(|inode| format!("socket:[{inode}]"))
        .collect();
    let proc_dir = fs::read_dir("/proc").map_err(|source| CpuError::Read {
        path: "/proc".to_string(),
        source,
    })?;
    let mut pids = Vec::new();
    for entry in proc_dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse().ok())
        else {
            continue;
        };
        if holds_any(&entry.path().join("fd"), &wanted) {
            pids.push(pid);
        }
    }
    Ok(pids)
}

fn holds_any(fd_dir: &Path, wanted: &[String]) -> bool {
    let Ok(fds) = fs::read_dir(fd_dir) else {
        return false;
    };
    fds.flatten().any(|fd| {
        fs::read_link(fd.path())
            .ok()
            .and_then(|target| target.to_str().map(|text| wanted.iter().any(|w| w == text)))
            .unwrap_or(false)
    })
}

/// The CPU a run reports: a local broker's from /proc (when its pid is known) and the loadgen's own.
pub struct ProcessCpu {
    pub broker_pid: Option<u32>,
}

impl crate::run::CpuProbe for ProcessCpu {
    fn broker_cpu_s(&self) -> Option<f64> {
        process_cpu(self.broker_pid?)
            .ok()
            .map(|time| time.total_s())
    }

    fn own_cpu_s(&self) -> f64 {
        self_cpu().map_or(0.0, |time| time.total_s())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_ticks_leave_out_idle_and_iowait() {
        let text = "cpu  100 2 30 5000 40 6 7 8 0 0\ncpu0 50 1 15 2500 20 3 3 4 0 0\n";
        assert_eq!(parse_busy_ticks(text), Ok(100 + 2 + 30 + 6 + 7 + 8));
        assert!(parse_busy_ticks("intr 5\n").is_err());
        assert!(parse_busy_ticks("cpu 1 x\n").is_err());
        assert!(machine_busy_cpu().unwrap() > Duration::ZERO);
    }
    use std::net::TcpListener;
    use std::process::{Command, Stdio};
    use std::time::Instant;

    #[test]
    fn stat_fields_count_from_the_last_parenthesis() {
        // A command name with spaces and a ')' must not shift utime/stime.
        let text = "4242 (a b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 731 52 0 0 20 0 3 0 99 0 0";
        assert_eq!(parse_stat_times(text).unwrap(), (731, 52));
        assert!(parse_stat_times("4242 (x) S 1").is_err());
        assert!(parse_stat_times("no parenthesis").is_err());
    }

    #[test]
    fn ticks_convert_exactly() {
        // 150 ticks at 100 Hz are 1.5 s; sub-second remainders keep their nanoseconds.
        assert_eq!(ticks_to_duration(150, 100), Duration::from_millis(1500));
        assert_eq!(ticks_to_duration(0, 100), Duration::ZERO);
        assert_eq!(ticks_to_duration(1, 3), Duration::from_nanos(333_333_333));
    }

    #[test]
    fn listening_rows_are_selected_by_port_and_state() {
        // Only LISTEN rows of the asked port count; established connections on it do not.
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:2384 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0000000000000000 100 0 0 10 0\n\
   1: 0100007F:2384 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 222 1 0000000000000000 20 4 30 10 -1\n\
   2: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 333 1 0000000000000000 100 0 0 10 0\n";
        assert_eq!(listening_inodes(table, 9092).unwrap(), vec![111]);
        assert_eq!(listening_inodes(table, 8080).unwrap(), vec![333]);
        assert_eq!(listening_inodes(table, 9093).unwrap(), Vec::<u64>::new());
        assert!(listening_inodes("header\n0: short\n", 1).is_err());
    }

    #[test]
    fn a_spinning_child_accrues_cpu() {
        // A busy child's CPU time grows; the machine is shared, so wait for it rather than
        // expecting a fixed share of a fixed interval.
        let mut child = Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .stdin(Stdio::null())
            .spawn()
            .expect("sh");
        let pid = child.id();
        let first = process_cpu(pid).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = first;
        while last.since(first).total() < Duration::from_millis(100) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            last = process_cpu(pid).unwrap();
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            last.since(first).total() >= Duration::from_millis(100),
            "child used only {:?}",
            last.since(first)
        );
        assert!(matches!(
            process_cpu(pid),
            Err(CpuError::NoSuchProcess { .. })
        ));
    }

    #[test]
    fn own_cpu_grows_while_spinning() {
        // getrusage counts this process's own work.
        let before = self_cpu().unwrap();
        let started = Instant::now();
        let mut spin = 0u64;
        while self_cpu().unwrap().since(before).total() < Duration::from_millis(20) {
            spin = std::hint::black_box(spin.wrapping_add(1));
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no CPU accrued"
            );
        }
    }

    #[test]
    fn finds_our_own_listeners() {
        // A listener of this test process, IPv4 and (where the kernel has it) IPv6, maps to our pid.
        let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = v4.local_addr().unwrap().port();
        assert_eq!(pid_listening_on(port).unwrap(), Some(std::process::id()));
        if let Ok(v6) = TcpListener::bind("[::1]:0") {
            let port = v6.local_addr().unwrap().port();
            assert_eq!(pid_listening_on(port).unwrap(), Some(std::process::id()));
        }
        drop(v4);
        assert_eq!(pid_listening_on(port).unwrap(), None);
    }
}
