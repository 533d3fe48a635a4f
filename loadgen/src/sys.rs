//! The loadgen's only `unsafe` code: small wrappers over libc calls that std does not offer
//! (clock ticks, own CPU usage, uname, SIGTERM, dropping a file from the page cache). Each wrapper
//! returns plain Rust values, so the rest of the crate never touches a raw libc type.

use std::ffi::CStr;
use std::io;
use std::time::Duration;

/// Clock ticks per second, the unit of the CPU times in `/proc/<pid>/stat` (`sysconf(_SC_CLK_TCK)`).
pub(crate) fn clock_ticks_per_s() -> io::Result<u64> {
    // SAFETY: sysconf only reads a configuration value; it takes no pointers.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks <= 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ticks as u64)
}

/// User and system CPU time this process used so far, over all its threads.
pub(crate) fn rusage_self() -> io::Result<(Duration, Duration)> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: `usage` is valid for writes of one `rusage`, which getrusage fills on success.
    let status = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if status != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: getrusage returned 0, so it initialised the whole struct.
    let usage = unsafe { usage.assume_init() };
    Ok((timeval(usage.ru_utime), timeval(usage.ru_stime)))
}

fn timeval(value: libc::timeval) -> Duration {
    assert!(value.tv_sec >= 0, "CPU time is never negative");
    assert!((0..1_000_000).contains(&value.tv_usec), "tv_usec below 1 s");
    Duration::from_secs(value.tv_sec as u64) + Duration::from_micros(value.tv_usec as u64)
}

/// The parts of `uname(2)` the reports use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Uname {
    pub(crate) sysname: String,
    pub(crate) nodename: String,
    pub(crate) release: String,
}

pub(crate) fn uname() -> io::Result<Uname> {
    let mut name = std::mem::MaybeUninit::<libc::utsname>::uninit();
    // SAFETY: `name` is valid for writes of one `utsname`, which uname fills on success.
    let status = unsafe { libc::uname(name.as_mut_ptr()) };
    if status != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: uname returned 0, so it initialised the whole struct.
    let name = unsafe { name.assume_init() };
    Ok(Uname {
        sysname: c_chars(&name.sysname),
        nodename: c_chars(&name.nodename),
        release: c_chars(&name.release),
    })
}

/// A NUL-terminated `c_char` array as a String (lossy); the whole array if it lacks a NUL.
fn c_chars(chars: &[libc::c_char]) -> String {
    let bytes: Vec<u8> = chars.iter().map(|&c| c as u8).collect();
    match CStr::from_bytes_until_nul(&bytes) {
        Ok(text) => text.to_string_lossy().into_owned(),
        Err(_) => String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// Sends SIGTERM to process `pid`. Only for a child this process started and has not reaped yet
/// (`Child::try_wait` said it runs), so the pid cannot have been reused by another process.
/// (SIGKILL needs no wrapper: `Child::kill` sends it.)
pub(crate) fn send_sigterm(pid: u32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::other("pid out of range"))?;
    // pid 0 and negative pids address process groups: never meant here.
    assert!(pid > 0, "a single process");
    // SAFETY: kill takes no pointers; the pid is a single positive process id.
    let status = unsafe { libc::kill(pid, libc::SIGTERM) };
    if status != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Drops a whole file's clean pages from the page cache (`posix_fadvise(POSIX_FADV_DONTNEED)`).
pub(crate) fn drop_cached_file(file: &std::fs::File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: posix_fadvise takes no pointers; the descriptor is open while `file` is borrowed.
    let error = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if error != 0 {
        return Err(io::Error::from_raw_os_error(error));
    }
    Ok(())
}

/// Moves the calling thread to `SCHED_IDLE` (it runs only when no normal thread wants its core).
pub(crate) fn become_sched_idle() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a live `sched_param` the kernel only reads during the call; pid 0 is the
    // calling thread.
    let status = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if status != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_made_idle_runs_under_sched_idle() {
        std::thread::spawn(|| {
            become_sched_idle().expect("SCHED_IDLE needs no privilege");
            // SAFETY: sched_getscheduler takes no pointers; pid 0 is the calling thread.
            assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_IDLE);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn wrappers_answer_plausibly() {
        // The wrappers decode what the kernel filled in (not garbage from uninitialised memory).
        let ticks = clock_ticks_per_s().unwrap();
        assert!((1..=10_000).contains(&ticks), "CLK_TCK {ticks}");
        let (user, system) = rusage_self().unwrap();
        assert!(user + system < Duration::from_secs(1_000_000));
        let name = uname().unwrap();
        assert_eq!(name.sysname, "Linux");
        assert!(!name.release.is_empty());
        assert!(!name.nodename.is_empty());
    }
}
