#!/usr/bin/env python3
"""What a buffered writer pays for fresh page-cache pages, and what it saves by dropping written
pages behind it (decision 0033, issue 13).

Writes --mib MiB in 1 MiB writes to a file under --dir, three ways, each after the page cache was
dropped (`/proc/sys/vm/drop_caches`, root) and --settle-s seconds passed (so that a VM which hands
idle memory back to its host has done so):
  plain      buffered writes;
  writeback  + `sync_file_range(WRITE)` every 8 MiB (what the log does: decision 0023);
  drop       + every 8 MiB, the range --keep-mib behind the end written back, waited for and
             dropped with `POSIX_FADV_DONTNEED` (what `drop.behind.bytes` does).
Prints the elapsed and CPU seconds of each (median of --reps), as a Markdown table.

Usage: sudo python3 scripts/page_reuse.py [--dir DIR] [--mib 3000] [--keep-mib 64] [--reps 3]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import statistics
import time

SYNC_FILE_RANGE_WAIT_BEFORE, SYNC_FILE_RANGE_WRITE, SYNC_FILE_RANGE_WAIT_AFTER = 1, 2, 4
CHUNK = 8 << 20
MODES = ("plain", "writeback", "drop")

libc = ctypes.CDLL("libc.so.6", use_errno=True)
libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]


def sync_file_range(fd: int, offset: int, length: int, flags: int) -> None:
    if libc.sync_file_range(fd, offset, length, flags) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


def write_file(path: str, mib: int, mode: str, keep_bytes: int) -> tuple[float, float]:
    """Writes the file one way; returns (elapsed s, CPU s of this process)."""
    block = os.urandom(1 << 20)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    started = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_SELF)
    end = 0
    try:
        for _ in range(mib):
            os.write(fd, block)
            end += len(block)
            if mode == "plain" or end % CHUNK:
                continue
            sync_file_range(fd, end - CHUNK, CHUNK, SYNC_FILE_RANGE_WRITE)
            if mode == "drop" and end >= keep_bytes + CHUNK:
                start = end - keep_bytes - CHUNK
                sync_file_range(
                    fd,
                    start,
                    CHUNK,
                    SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER,
                )
                os.posix_fadvise(fd, start, CHUNK, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return time.monotonic() - started, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", default="target/tmp")
    parser.add_argument("--mib", type=int, default=3000)
    parser.add_argument("--keep-mib", type=int, default=64)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--settle-s", type=float, default=12.0)
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    path = os.path.join(args.dir, "page-reuse.tmp")
    runs: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
    try:
        for rep in range(args.reps):
            for mode in MODES:
                os.sync()
                with open("/proc/sys/vm/drop_caches", "w") as drop:
                    drop.write("3\n")
                time.sleep(args.settle_s)
                elapsed, cpu = write_file(path, args.mib, mode, args.keep_mib << 20)
                runs[mode].append((elapsed, cpu))
                print(f"# rep {rep} {mode}: {elapsed:.2f} s, CPU {cpu:.2f} s", flush=True)
                os.remove(path)
    finally:
        if os.path.exists(path):
            os.remove(path)
    plain_cpu = statistics.median(cpu for _, cpu in runs["plain"])
    print(f"\n{args.mib} MiB in 1 MiB writes, medians of {args.reps}:\n")
    print("| writer | elapsed s | CPU s | CPU vs plain |")
    print("|---|---:|---:|---:|")
    for mode in MODES:
        elapsed = statistics.median(e for e, _ in runs[mode])
        cpu = statistics.median(c for _, c in runs[mode])
        print(f"| {mode} | {elapsed:.2f} | {cpu:.2f} | {cpu / plain_cpu:.2f}x |")


if __name__ == "__main__":
    main()
