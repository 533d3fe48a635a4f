#!/usr/bin/env python3
"""Gives every thread of a process a custom EEVDF time slice (an experiment, results/sched-slice/).

Since Linux 6.12 a SCHED_OTHER task may ask for its own slice through sched_setattr(2)'s
`sched_runtime` (0.1-100 ms). A shorter slice gives the task an earlier virtual deadline, so its
wake-ups preempt the running task sooner; the kernel's default here is 1.4 ms (`se.slice` in
/proc/PID/sched). Threads and processes started afterwards inherit the slice, so a wrapper that
runs this on its own PID and then `exec`s the broker or the loadgen gives all their threads (io-wq
workers included) the slice:

    python3 scripts/sched_slice.py $$ 100 --once; exec target/release/ringtail "$@"

Usage: python3 scripts/sched_slice.py PID SLICE_US [--once]
Without --once it keeps applying the slice every 0.2 s to threads that appear, until PID exits.
"""
import ctypes
import os
import struct
import sys
import time

SYS_SCHED_SETATTR = 314  # x86_64
SCHED_ATTR_SIZE_VER1 = 56
SCHED_OTHER = 0

libc = ctypes.CDLL(None, use_errno=True)


def set_slice(tid: int, slice_ns: int) -> None:
    """sched_setattr(tid, {SCHED_OTHER, nice 0, sched_runtime=slice_ns}); raises on failure."""
    attr = struct.pack("IIQiIQQQII", SCHED_ATTR_SIZE_VER1, SCHED_OTHER, 0, 0, 0, slice_ns, 0, 0, 0, 0)
    buffer = ctypes.create_string_buffer(attr, SCHED_ATTR_SIZE_VER1)
    if libc.syscall(SYS_SCHED_SETATTR, tid, buffer, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"sched_setattr({tid}): {os.strerror(errno)}")


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    pid, slice_ns = int(sys.argv[1]), int(float(sys.argv[2]) * 1000)
    once = "--once" in sys.argv[3:]
    done: set[int] = set()
    while True:
        try:
            tids = {int(tid) for tid in os.listdir(f"/proc/{pid}/task")}
        except FileNotFoundError:
            return
        for tid in tids - done:
            try:
                set_slice(tid, slice_ns)
                done.add(tid)
            except ProcessLookupError:
                pass  # the thread ended meanwhile
        if once:
            return
        time.sleep(0.2)


if __name__ == "__main__":
    main()
