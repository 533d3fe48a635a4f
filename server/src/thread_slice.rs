//! The CPU time slice the kernel gives each shard thread (`--shard-sched-slice-us`).
//!
//! Why: broker and clients, io-wq workers and everything else on the machine share the cores.
//! Linux's EEVDF scheduler (6.6+) gives each runnable thread a virtual deadline of its eligible
//! time plus its slice, and since 6.12 a thread may ask for its own slice (0.1 to 100 ms) with
//! `sched_setattr(2)`'s `sched_runtime` under `SCHED_OTHER`. A shard woken by a produce request
//! with a short slice gets an earlier deadline than a busy neighbour with the default slice
//! (1.4 ms on this 2-core VM), so the kernel runs it sooner instead of letting the neighbour
//! finish its slice; it also gives the core back sooner when it runs long. The shard's fairness
//! (its share of CPU time) is unchanged: only the latency of its turns is.
//!
//! A kernel without custom slices refuses the call (EINVAL, or E2BIG for an older `sched_attr`):
//! the shard then runs with the kernel's slice and one warning says so.
//!
//! This is one of the few modules with `unsafe`: the `sched_setattr` and `sched_getattr`
//! system calls, which libc does not wrap.

use std::io;

use clap::Args as ClapArgs;

/// Smallest custom slice the kernel takes (`sched_setattr` refuses less with EINVAL).
pub const SLICE_US_MIN: u32 = 100;
/// Largest custom slice the kernel takes.
pub const SLICE_US_MAX: u32 = 100_000;

/// `--shard-sched-slice-us`, flattened into [`crate::config::Args`].
#[derive(Debug, Clone, ClapArgs)]
pub struct SliceArgs {
    /// CPU time slice each shard thread asks the kernel for, in microseconds (EEVDF custom slice,
    /// Linux 6.12+, 100 to 100000): a shorter slice than its neighbours' lets a shard woken by a
    /// request run sooner. 0 keeps the kernel's default slice.
    #[arg(long, value_name = "US", default_value_t = 0, value_parser = parse_slice_us)]
    pub shard_sched_slice_us: u32,
}

fn parse_slice_us(text: &str) -> Result<u32, String> {
    let slice_us: u32 = text.parse().map_err(|err| format!("{err}"))?;
    if slice_us == 0 || (SLICE_US_MIN..=SLICE_US_MAX).contains(&slice_us) {
        Ok(slice_us)
    } else {
        Err(format!(
            "0 (the kernel's slice) or {SLICE_US_MIN} to {SLICE_US_MAX} microseconds"
        ))
    }
}

/// The kernel's `struct sched_attr` (SCHED_ATTR_SIZE_VER1, 56 bytes), as `sched_setattr(2)`
/// documents it.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct SchedAttr {
    size: u32,
    sched_policy: u32,
    sched_flags: u64,
    sched_nice: i32,
    sched_priority: u32,
    /// Under `SCHED_OTHER`, the custom slice in nanoseconds (0: the kernel's).
    sched_runtime: u64,
    sched_deadline: u64,
    sched_period: u64,
    sched_util_min: u32,
    sched_util_max: u32,
}

const SCHED_ATTR_BYTES: u32 = std::mem::size_of::<SchedAttr>() as u32;
/// `sched_attr.sched_flags`: children start under `SCHED_OTHER` with the default slice and nice.
const SCHED_FLAG_RESET_ON_FORK: u64 = 0x01;
const _: () = assert!(SCHED_ATTR_BYTES == 56);

/// Asks the kernel to give the calling thread a slice of `slice_us` microseconds, keeping its
/// policy (`SCHED_OTHER`) and nice value.
pub fn request_slice(slice_us: u32) -> io::Result<()> {
    let mut attr = current_attr()?;
    if attr.sched_policy != libc::SCHED_OTHER as u32 {
        // A real-time or batch policy set from outside (chrt) is the operator's choice.
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the thread's scheduling policy is not SCHED_OTHER",
        ));
    }
    attr.sched_runtime = u64::from(slice_us) * 1_000;
    set_attr(attr)
}

/// Gives the calling thread the kernel's slice again, keeping its policy and nice value. A new
/// thread starts with its creator's slice, custom or not: a thread a shard starts to do work
/// that must yield to the shards (the cold sender) would otherwise compete with the shard's
/// short slice. Call it before moving the thread to `SCHED_IDLE`: the kernel resets a slice
/// only under `SCHED_OTHER` and `SCHED_BATCH`, and leaves a thread under any other policy (set
/// from outside) as it is, as does this.
pub fn use_the_kernels_slice() -> io::Result<()> {
    let mut attr = current_attr()?;
    if ![libc::SCHED_OTHER as u32, libc::SCHED_BATCH as u32].contains(&attr.sched_policy) {
        return Ok(());
    }
    // 0 under a fair policy: the kernel's own slice, no custom one.
    attr.sched_runtime = 0;
    set_attr(attr)
}

/// Moves the calling thread to `SCHED_IDLE`: it then runs only when no thread of a normal
/// policy wants its core (a weight of 3 against a nice-0 thread's 1024), for work that must not
/// delay anything else.
pub fn become_sched_idle() -> io::Result<()> {
    set_attr(SchedAttr {
        sched_policy: libc::SCHED_IDLE as u32,
        ..SchedAttr::default()
    })
}

/// Sets the calling thread's scheduling attributes to `attr`, stating its size and keeping
/// only the reset-on-fork flag of those given (clearing it needs privilege: EPERM otherwise).
fn set_attr(mut attr: SchedAttr) -> io::Result<()> {
    attr.size = SCHED_ATTR_BYTES;
    attr.sched_flags &= SCHED_FLAG_RESET_ON_FORK;
    // SAFETY: `attr` is a live, initialised `struct sched_attr` of the size its `size` field
    // states; the kernel only reads it during the call. Pid 0 is the calling thread.
    let result =
        unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0u32) };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The calling thread's slice in nanoseconds, as the kernel reports it (its default when none
/// was asked for).
#[cfg(test)]
fn current_slice_ns() -> io::Result<u64> {
    slice_ns_of(0)
}

/// Thread `tid`'s slice in nanoseconds (0: the calling thread), under any fair policy,
/// `SCHED_IDLE` included (whose `/proc/<tid>/sched` does not show it).
#[cfg(test)]
pub(crate) fn slice_ns_of(tid: i32) -> io::Result<u64> {
    Ok(attr_of(tid)?.sched_runtime)
}

fn current_attr() -> io::Result<SchedAttr> {
    attr_of(0)
}

fn attr_of(tid: i32) -> io::Result<SchedAttr> {
    let mut attr = SchedAttr::default();
    // SAFETY: the kernel writes at most `SCHED_ATTR_BYTES` bytes into `attr`, which is that
    // large and lives for the call. A `tid` of 0 is the calling thread; another thread is only
    // read (a tid that is gone gives ESRCH).
    let result = unsafe {
        libc::syscall(
            libc::SYS_sched_getattr,
            tid,
            &mut attr as *mut SchedAttr,
            SCHED_ATTR_BYTES,
            0u32,
        )
    };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(attr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slice_asked_for_is_the_threads_slice_afterwards() {
        // On its own thread: the test harness's threads are shared.
        std::thread::spawn(|| {
            let before = current_slice_ns().expect("sched_getattr");
            assert!(before > 0, "the kernel reports its default slice");
            match request_slice(250) {
                Ok(()) => assert_eq!(current_slice_ns().unwrap(), 250_000),
                // Kernels before 6.12 have no custom slices: nothing changed then.
                Err(error) if error.raw_os_error() == Some(libc::EINVAL) => {
                    assert_eq!(current_slice_ns().unwrap(), before)
                }
                Err(error) => panic!("sched_setattr: {error}"),
            }
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_thread_started_by_one_with_a_custom_slice_can_take_the_kernels_slice_back() {
        std::thread::spawn(|| {
            let kernels = current_slice_ns().expect("sched_getattr");
            match request_slice(250) {
                Ok(()) => {}
                // Kernels before 6.12 have no custom slices: nothing to inherit or give back.
                Err(error) if error.raw_os_error() == Some(libc::EINVAL) => return,
                Err(error) => panic!("sched_setattr: {error}"),
            }
            std::thread::spawn(move || {
                assert_eq!(
                    current_slice_ns().unwrap(),
                    250_000,
                    "a new thread starts with its creator's custom slice (why the call exists)"
                );
                let nice_before = current_attr().unwrap().sched_nice;
                use_the_kernels_slice().expect("sched_setattr");
                assert_eq!(current_slice_ns().unwrap(), kernels);
                assert_eq!(current_attr().unwrap().sched_nice, nice_before, "nice kept");
            })
            .join()
            .unwrap();
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_thread_made_idle_runs_under_sched_idle() {
        std::thread::spawn(|| {
            become_sched_idle().expect("SCHED_IDLE needs no privilege");
            assert_eq!(
                current_attr().unwrap().sched_policy,
                libc::SCHED_IDLE as u32
            );
        })
        .join()
        .unwrap();
    }

    #[test]
    fn the_flag_takes_zero_or_the_kernels_range() {
        assert_eq!(parse_slice_us("0"), Ok(0));
        assert_eq!(parse_slice_us("100"), Ok(100));
        assert_eq!(parse_slice_us("100000"), Ok(100_000));
        assert!(parse_slice_us("99").is_err());
        assert!(parse_slice_us("100001").is_err());
        assert!(parse_slice_us("-1").is_err());
    }
}
