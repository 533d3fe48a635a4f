#!/usr/bin/env python3
"""Gives every thread of a process an EEVDF custom slice (sched_setattr(2) with sched_runtime on
SCHED_OTHER, Linux 6.12+): shorter slices make a waking thread preempt sooner. Threads are set
again every 50 ms, so io-wq workers started later get it too. Exits when the process does.

An experiment for issue 13 (results/produce-stages/cold-reader.md), not a broker setting. To run
a broker under it from scripts/ab_broker.py, a variant's binary can be a wrapper such as:

    #!/usr/bin/env bash
    (python3 scripts/sched_slice.py $$ 100 &)
    exec target/release/ringtail "$@"

With --once it sets the threads there are and exits. Threads and processes started afterwards
inherit the slice, so a wrapper that runs it on its own PID and then `exec`s a binary gives all its
threads the slice from the start (results/sched-slice/):

    python3 scripts/sched_slice.py $$ 100 --once; exec target/release/ringtail "$@"

Usage: python3 scripts/sched_slice.py PID SLICE_US [--once]
"""

import ctypes
import os
import sys
import time

SYS_SCHED_SETATTR = 314  # x86_64


class SchedAttr(ctypes.Structure):
    _fields_ = [("size", ctypes.c_uint32), ("policy", ctypes.c_uint32), ("flags", ctypes.c_uint64),
                ("nice", ctypes.c_int32), ("priority", ctypes.c_uint32), ("runtime_ns", ctypes.c_uint64),
                ("deadline_ns", ctypes.c_uint64), ("period_ns", ctypes.c_uint64),
                ("util_min", ctypes.c_uint32), ("util_max", ctypes.c_uint32)]


def main():
    pid, slice_us = int(sys.argv[1]), int(sys.argv[2])
    once = "--once" in sys.argv[3:]
    libc = ctypes.CDLL(None, use_errno=True)
    done: set[int] = set()
    while True:
        try:
            threads = [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
        except FileNotFoundError:
            return
        for tid in threads:
            if tid in done:
                continue
            attr = SchedAttr(size=ctypes.sizeof(SchedAttr), policy=0, runtime_ns=slice_us * 1000)
            if libc.syscall(SYS_SCHED_SETATTR, tid, ctypes.byref(attr), 0) != 0:
                print(f"sched_setattr({tid}): {os.strerror(ctypes.get_errno())}", file=sys.stderr)
            done.add(tid)
        if once:
            return
        time.sleep(0.05)


if __name__ == "__main__":
    main()
