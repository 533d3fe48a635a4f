//! Write paths compared on this machine (issue 13's open question): buffered writes through the
//! page cache against `O_DIRECT` writes from one reused, page-aligned buffer, each until the data
//! is durable (`fdatasync`), per directory given.
//!
//! Why: on VMs that hand idle guest memory back to the host, every page-cache page a buffered
//! write fills is a fresh page whose first touch is dear; a direct write from a reused buffer
//! touches no new page. Before the engine's write path is rebuilt around that, this measures what
//! it would buy: MB/s to durable, the process's CPU, and the whole machine's busy CPU (the
//! kernel's writeback threads work for buffered writes but are not charged to the writer).
//!
//! Usage: `cargo run --release -p ringtail-benches --bin write_paths -- [--total-mib 4096]
//!         [--chunk-kib 1024] [--reps 3] DIR...` (each DIR gets a scratch file, deleted after).
#![forbid(unsafe_code)]

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use ringtail_loadgen::cpu;

const ALIGN_BYTES: usize = 4096;

#[derive(Clone, Copy, Debug)]
enum WritePath {
    Buffered,
    Direct,
}

struct Measured {
    seconds: f64,
    process_cpu_s: f64,
    machine_busy_cpu_s: f64,
}

/// CPU seconds of this process and busy CPU seconds of the whole machine, now.
fn cpu_now() -> io::Result<(f64, f64)> {
    let process = cpu::self_cpu().map_err(io::Error::other)?.total_s();
    let machine = cpu::machine_busy_cpu()
        .map_err(io::Error::other)?
        .as_secs_f64();
    Ok((process, machine))
}

/// A buffer of `len` bytes starting at an aligned index of `storage`, filled with non-zero data.
fn aligned_buffer(len: usize) -> (Vec<u8>, usize) {
    let mut storage = vec![0u8; len + ALIGN_BYTES];
    let address = storage.as_ptr() as usize;
    let start = address.next_multiple_of(ALIGN_BYTES) - address;
    for (at, byte) in storage[start..start + len].iter_mut().enumerate() {
        *byte = (at % 251) as u8 + 1;
    }
    (storage, start)
}

fn write_file(
    path: &Path,
    how: WritePath,
    total_bytes: u64,
    chunk_bytes: usize,
) -> io::Result<Measured> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    if let WritePath::Direct = how {
        options.custom_flags(libc::O_DIRECT);
    }
    let file = options.open(path)?;
    let (storage, start) = aligned_buffer(chunk_bytes);
    let chunk = &storage[start..start + chunk_bytes];
    let (cpu_before, machine_before) = cpu_now()?;
    let started = Instant::now();
    let mut written = 0u64;
    while written < total_bytes {
        file.write_all_at(chunk, written)?;
        written += chunk_bytes as u64;
    }
    file.sync_data()?;
    let seconds = started.elapsed().as_secs_f64();
    let (cpu_after, machine_after) = cpu_now()?;
    let measured = Measured {
        seconds,
        process_cpu_s: cpu_after - cpu_before,
        machine_busy_cpu_s: machine_after - machine_before,
    };
    drop(file);
    std::fs::remove_file(path)?;
    Ok(measured)
}

struct Options {
    total_mib: u64,
    chunk_kib: usize,
    reps: usize,
    dirs: Vec<PathBuf>,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        total_mib: 4096,
        chunk_kib: 1024,
        reps: 3,
        dirs: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--total-mib" => {
                options.total_mib = value("--total-mib")?
                    .parse()
                    .map_err(|e| format!("--total-mib: {e}"))?
            }
            "--chunk-kib" => {
                options.chunk_kib = value("--chunk-kib")?
                    .parse()
                    .map_err(|e| format!("--chunk-kib: {e}"))?
            }
            "--reps" => {
                options.reps = value("--reps")?
                    .parse()
                    .map_err(|e| format!("--reps: {e}"))?
            }
            flag if flag.starts_with("--") => return Err(format!("unknown flag {flag}")),
            dir => options.dirs.push(PathBuf::from(dir)),
        }
    }
    if options.dirs.is_empty() {
        return Err("give at least one directory".to_string());
    }
    if options.chunk_kib == 0 || !(options.chunk_kib * 1024).is_multiple_of(ALIGN_BYTES) {
        return Err("--chunk-kib must be a positive multiple of 4".to_string());
    }
    Ok(options)
}

fn main() -> Result<(), String> {
    let options = parse_args()?;
    let total_bytes = options.total_mib << 20;
    let chunk_bytes = options.chunk_kib * 1024;
    println!(
        "| dir | path | rep | MB/s to durable | process CPU-s per GB | machine busy CPU-s per GB |\n|---|---|---:|---:|---:|---:|"
    );
    for rep in 1..=options.reps {
        for dir in &options.dirs {
            // Alternating, so a drift of the machine hits both paths alike.
            for how in [WritePath::Buffered, WritePath::Direct] {
                let path = dir.join(format!("write-paths-{}.tmp", std::process::id()));
                let measured = write_file(&path, how, total_bytes, chunk_bytes)
                    .map_err(|error| format!("{how:?} in {}: {error}", dir.display()))?;
                let gigabytes = total_bytes as f64 / 1e9;
                println!(
                    "| {} | {how:?} | {rep} | {:.0} | {:.3} | {:.3} |",
                    dir.display(),
                    total_bytes as f64 / 1e6 / measured.seconds,
                    measured.process_cpu_s / gigabytes,
                    measured.machine_busy_cpu_s / gigabytes,
                );
            }
        }
    }
    Ok(())
}
