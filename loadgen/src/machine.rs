//! Where a run happens: fills [`Machine`] for its report from `uname`, `/proc/cpuinfo`,
//! `/proc/meminfo` and the loadgen's own build (its git commit, recorded by `build.rs`).
//! Every field has a fallback ("unknown", 0) rather than an error: a report without a CPU model
//! is still worth writing.
#![forbid(unsafe_code)]

use std::fs;

use crate::report::Machine;
use crate::sys;

/// `git describe --always --dirty` of the loadgen's source tree when it was built, or "unknown".
pub const LOADGEN_COMMIT: &str = env!("RINGTAIL_LOADGEN_GIT_DESCRIBE");

/// The loadgen's crate version.
pub const LOADGEN_VERSION: &str = env!("CARGO_PKG_VERSION");

const UNKNOWN: &str = "unknown";

/// This machine, as reports describe it.
pub fn current() -> Machine {
    let uname = sys::uname().ok();
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let cpus = match processor_count(&cpuinfo) {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    Machine {
        hostname: uname
            .as_ref()
            .map_or_else(|| UNKNOWN.to_string(), |u| u.nodename.clone()),
        kernel: uname.as_ref().map_or_else(
            || UNKNOWN.to_string(),
            |u| format!("{} {}", u.sysname, u.release),
        ),
        cpu_model: cpu_model(&cpuinfo).unwrap_or_else(|| UNKNOWN.to_string()),
        cpus,
        memory_bytes: mem_total_bytes(&meminfo).unwrap_or(0),
        loadgen_commit: LOADGEN_COMMIT.to_string(),
        loadgen_version: LOADGEN_VERSION.to_string(),
    }
}

/// The first CPU's model: "model name" on x86, else "Hardware" or "cpu model" (some ARM and
/// other kernels have no "model name").
fn cpu_model(cpuinfo: &str) -> Option<String> {
    ["model name", "Hardware", "cpu model"]
        .iter()
        .find_map(|key| cpuinfo_value(cpuinfo, key))
}

fn cpuinfo_value(cpuinfo: &str, key: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        (name.trim() == key && !value.trim().is_empty()).then(|| value.trim().to_string())
    })
}

/// Logical CPUs the kernel lists (the machine's, not only those this process may use).
fn processor_count(cpuinfo: &str) -> usize {
    cpuinfo
        .lines()
        .filter(|line| {
            line.split_once(':')
                .is_some_and(|(name, _)| name.trim() == "processor")
        })
        .count()
}

/// `MemTotal` of `/proc/meminfo` (given in kB, meaning KiB) in bytes.
fn mem_total_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let mut words = line["MemTotal:".len()..].split_whitespace();
    let kib: u64 = words.next()?.parse().ok()?;
    assert_eq!(words.next(), Some("kB"), "meminfo counts in kB");
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpuinfo_and_meminfo() {
        // The x86 layout, and an ARM one without "model name".
        let x86 = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t: fpu\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n";
        assert_eq!(cpu_model(x86).as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(processor_count(x86), 2);
        let arm = "processor\t: 0\nBogoMIPS\t: 50.00\n\nHardware\t: BCM2835\n";
        assert_eq!(cpu_model(arm).as_deref(), Some("BCM2835"));
        assert_eq!(cpu_model(""), None);
        let meminfo = "MemTotal:       24683656 kB\nMemFree:         1000 kB\n";
        assert_eq!(mem_total_bytes(meminfo), Some(24683656 * 1024));
        assert_eq!(mem_total_bytes("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn describes_this_machine() {
        // Every field is filled on a Linux machine; the version is the crate's.
        let machine = current();
        assert!(!machine.hostname.is_empty() && machine.hostname != UNKNOWN);
        assert!(machine.kernel.starts_with("Linux "), "{}", machine.kernel);
        assert!(machine.cpus >= 1);
        assert!(machine.memory_bytes > 64 << 20, "{}", machine.memory_bytes);
        assert!(!machine.cpu_model.is_empty());
        assert_eq!(machine.loadgen_version, env!("CARGO_PKG_VERSION"));
        assert!(!machine.loadgen_commit.is_empty());
        // Built from this git checkout, the commit is known: a hex id, maybe with "-dirty".
        if std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.git")).exists() {
            let id = machine.loadgen_commit.trim_end_matches("-dirty");
            let hash = id.rsplit('-').next().unwrap().trim_start_matches('g');
            assert!(hash.len() >= 7, "{}", machine.loadgen_commit);
            assert!(
                hash.chars().all(|c| c.is_ascii_hexdigit()),
                "{}",
                machine.loadgen_commit
            );
        }
    }
}
