//! Shared fixtures of the engine's criterion benchmarks (`benches/benches/*.rs`).
//!
//! Everything here runs outside the timed regions: building batches, making scratch directories
//! on a real filesystem, cloning buffers, generating probe keys.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use compio::runtime::Runtime;
use ringtail_engine::batch::{self, Strictness};
use tempfile::TempDir;

/// Value size of every benchmark record: with its framing a record takes ~1 KiB in the batch.
pub const VALUE_BYTES: usize = 1000;

/// Base timestamp of benchmark batches (any valid timestamp; retention never runs here).
pub const BASE_TIMESTAMP_MS: i64 = 1_700_000_000_000;

/// Environment variable that moves the scratch directories (default: cargo's target tmp dir).
pub const SCRATCH_DIR_ENV: &str = "RINGTAIL_BENCH_DIR";

/// Environment variable: a CPU number to pin the benchmark thread to (unset: no pinning).
pub const PIN_CPU_ENV: &str = "RINGTAIL_BENCH_PIN_CPU";

/// Filesystems that keep data in memory: appends there would measure memcpy, not a log.
const MEMORY_FILESYSTEMS: &[&str] = &["tmpfs", "ramfs", "devtmpfs", "hugetlbfs"];

/// The largest uniform batch of [`VALUE_BYTES`] records that fits in `target_bytes`.
///
/// Record framing is not constant (offset deltas from 64 on take a 2-byte varint), so the count
/// is estimated and then lowered until the encoded batch fits, rather than computed exactly.
pub fn uniform_batch_within(target_bytes: usize) -> Vec<u8> {
    let one_record = batch::encode_uniform_batch(BASE_TIMESTAMP_MS, 1, VALUE_BYTES);
    let per_record = one_record.len() - batch::HEADER_BYTES;
    let mut record_count = ((target_bytes - batch::HEADER_BYTES) / per_record).max(1);
    loop {
        let encoded = batch::encode_uniform_batch(BASE_TIMESTAMP_MS, record_count, VALUE_BYTES);
        if encoded.len() <= target_bytes || record_count == 1 {
            // A benchmark that appends invalid batches would measure the error path.
            batch::validate(&encoded, usize::MAX, Strictness::Producer)
                .expect("benchmark batch is valid");
            return encoded;
        }
        record_count -= 1;
    }
}

/// Record count of a batch built by [`uniform_batch_within`] (for labels and reports).
pub fn record_count(batch_bytes: &[u8]) -> i32 {
    batch::parse_header(batch_bytes)
        .expect("benchmark batch parses")
        .record_count
}

/// How many copies of a `batch_bytes`-byte batch make at least `total_bytes`.
pub fn batches_for(total_bytes: usize, batch_bytes: usize) -> usize {
    total_bytes.div_ceil(batch_bytes)
}

/// `count` independent copies of `template`: the engine takes ownership of each appended buffer
/// (and writes offsets into it), and the baseline writes from the same kind of distinct buffers,
/// so neither side gets a cache-hot single source the other lacks.
pub fn clone_batches(template: &[u8], count: usize) -> Vec<BytesMut> {
    (0..count).map(|_| BytesMut::from(template)).collect()
}

/// The benchmark's io_uring runtime, on the calling thread, built as a broker shard's is
/// ([`ringtail_engine::shard_runtime`]): pinned, by default to CPU 0. `RINGTAIL_BENCH_PIN_CPU=N`
/// picks another CPU and `RINGTAIL_BENCH_PIN_CPU=none` leaves the thread unpinned. The baselines
/// run on the same thread, so they get the same pinning.
///
/// Pinning matters on small VMs: ext4 buffered writes are punted to io-wq, and handing each one
/// to a worker on another, idle vCPU costs a cross-CPU wake-up per write (see
/// results/engine-criterion/notes.md).
pub fn bench_runtime() -> Runtime {
    let cpu = match std::env::var(PIN_CPU_ENV) {
        Ok(value) if value.trim() == "none" => None,
        Ok(value) => Some(
            value
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("{PIN_CPU_ENV}={value:?} is not a CPU number or none")),
        ),
        Err(_) => Some(0),
    };
    ringtail_engine::shard_runtime(cpu).expect("io_uring runtime")
}

/// A fresh scratch directory on a disk-backed filesystem.
///
/// Defaults to `default_base` (benches pass cargo's `CARGO_TARGET_TMPDIR`), overridable with
/// [`SCRATCH_DIR_ENV`]. Panics on tmpfs and friends: the append benchmarks must hit the page
/// cache of a real filesystem and, for `every_batch`, a real `fdatasync`.
pub fn scratch_dir(default_base: &Path) -> TempDir {
    let base =
        std::env::var_os(SCRATCH_DIR_ENV).map_or_else(|| default_base.to_path_buf(), PathBuf::from);
    std::fs::create_dir_all(&base)
        .unwrap_or_else(|err| panic!("cannot create {}: {err}", base.display()));
    if let Some(fs_type) = filesystem_type(&base) {
        assert!(
            !MEMORY_FILESYSTEMS.contains(&fs_type.as_str()),
            "{} is on {fs_type}; point {SCRATCH_DIR_ENV} at a disk-backed filesystem",
            base.display()
        );
    }
    tempfile::Builder::new()
        .prefix("ringtail-bench-")
        .tempdir_in(&base)
        .unwrap_or_else(|err| panic!("cannot create a temp dir in {}: {err}", base.display()))
}

/// The filesystem type (`ext4`, `tmpfs`, ...) holding `path`, from `/proc/self/mounts`: the
/// mount with the longest mount point that is a prefix of the canonical path. `None` when
/// unknown (no procfs), in which case the caller trusts the path.
pub fn filesystem_type(path: &Path) -> Option<String> {
    let canonical = path.canonicalize().ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _device = fields.next()?;
            let mount_point = unescape_mount_field(fields.next()?);
            let fs_type = fields.next()?;
            Some((PathBuf::from(mount_point), fs_type.to_string()))
        })
        .filter(|(mount_point, _)| canonical.starts_with(mount_point))
        // Later mounts shadow earlier ones on the same point, hence `max_by_key` keeps the last.
        .max_by_key(|(mount_point, _)| mount_point.as_os_str().len())
        .map(|(_, fs_type)| fs_type)
}

/// Decodes the octal escapes (`\040` for a space, ...) of a `/proc/self/mounts` field.
fn unescape_mount_field(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escape = bytes
            .get(index + 1..index + 4)
            .filter(|_| bytes[index] == b'\\');
        match escape
            .and_then(|digits| u8::from_str_radix(std::str::from_utf8(digits).ok()?, 8).ok())
        {
            Some(byte) => {
                out.push(byte);
                index += 4;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A tiny deterministic PRNG (xorshift64*) for index probe keys: reproducible across runs and
/// without a `rand` dependency. Statistical quality is irrelevant here; only spread is.
#[derive(Debug, Clone)]
pub struct XorShift64(u64);

impl XorShift64 {
    pub fn new(seed: u64) -> Self {
        // xorshift has a fixed point at zero.
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..bound` (modulo bias is fine for probe keys).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_fill_but_do_not_exceed_their_size() {
        // The benchmark labels say "16 KiB" and "1 MiB": the batches must be just under that.
        for target in [16 << 10, 1 << 20] {
            let batch = uniform_batch_within(target);
            assert!(batch.len() <= target);
            let one_more = batch::encode_uniform_batch(
                BASE_TIMESTAMP_MS,
                record_count(&batch) as usize + 1,
                VALUE_BYTES,
            );
            assert!(one_more.len() > target);
        }
        // And a 1 MiB batch must pass the engine's default max.message.bytes.
        let default_max = ringtail_engine::LogConfig::default().max_message_bytes as usize;
        assert!(uniform_batch_within(1 << 20).len() <= default_max);
    }

    #[test]
    fn mount_fields_unescape() {
        assert_eq!(
            unescape_mount_field(r"/mnt/with\040space"),
            "/mnt/with space"
        );
        assert_eq!(unescape_mount_field(r"/plain"), "/plain");
        assert_eq!(unescape_mount_field(r"/trailing\"), r"/trailing\");
    }

    #[test]
    fn root_has_a_filesystem_type() {
        if Path::new("/proc/self/mounts").exists() {
            assert!(filesystem_type(Path::new("/")).is_some());
        }
    }
}
