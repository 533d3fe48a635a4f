#!/usr/bin/env python3
"""For each produce write punted to io-wq (an io_uring WRITEV queued async) that took over 0.5 ms
from being queued to its completion: which threads held the CPU its worker completed on, in that
time, and the longest stretches other threads ran on it without a switch while a write waited.
Input: `perf script -F comm,tid,cpu,time,event,trace` of io_uring and sched_switch events."""

import bisect
import collections
import re
import sys

from perf_events import events

SLOW_S = 0.0005


def main(path: str) -> None:
    switches = collections.defaultdict(list)  # cpu -> [(time, next thread)]
    queued, writes = {}, []
    for cpu, time, event, rest in events(path):
        if event == "sched:sched_switch":
            switches[cpu].append((time, re.search(r"next_comm=(.*?) next_pid", rest).group(1)))
        elif event == "io_uring:io_uring_queue_async_work" and "opcode WRITEV" in rest:
            queued[re.search(r"user_data (\S+),", rest).group(1)] = time
        elif event == "io_uring:io_uring_complete":
            user_data = re.search(r"user_data (\S+),", rest).group(1)
            if user_data in queued:
                writes.append((queued.pop(user_data), time, cpu))
    slow = [w for w in writes if w[1] - w[0] >= SLOW_S]
    held = collections.Counter()
    longest = collections.Counter()  # thread -> its longest run while a write waited
    for start, end, cpu in slow:
        on_cpu = switches[cpu]
        at = bisect.bisect_right(on_cpu, (start, "\xff")) - 1
        current, since = (on_cpu[at][1] if at >= 0 else "?"), start
        for time, following in on_cpu[at + 1:] + [(end, None)]:
            if time > end:
                time = end
            thread = re.sub(r"-\d+$", "", current)
            held[thread] += time - since
            longest[thread] = max(longest[thread], time - since)
            if time >= end or following is None:
                break
            current, since = following, time
    total = sum(end - start for start, end, _ in slow)
    latencies = sorted(end - start for start, end, _ in writes)
    if not latencies:
        sys.exit("no punted writes in the trace")
    print(f"produce writes punted to io-wq: {len(writes)}, p50 {latencies[len(latencies) // 2] * 1e3:.3f} ms, "
          f"p99 {latencies[int(len(latencies) * 0.99)] * 1e3:.3f} ms, max {latencies[-1] * 1e3:.3f} ms")
    print(f"over {SLOW_S * 1e3:.1f} ms: {len(slow)}, {total * 1e3:.1f} ms in all; the CPU was held by:")
    for thread, seconds in held.most_common(8):
        print(f"  {thread:<20} {seconds * 1e3:7.1f} ms ({100 * seconds / max(total, 1e-9):.0f}%)")
    print("the longest stretch each ran without a switch while a write waited:")
    for thread, seconds in longest.most_common(5):
        print(f"  {thread:<20} {seconds * 1e3:7.2f} ms")

if __name__ == "__main__":
    main(sys.argv[1])
