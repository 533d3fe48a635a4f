#!/usr/bin/env python3
"""How long each thread of a produce round trip waited for a CPU once it could run, and who held
that CPU meanwhile. A wait runs from a thread's `sched_wakeup` (or its switch-out while still
runnable, `prev_state=R`) to its next `sched_switch` in. Threads are grouped by name without the
trailing number (`shard-0` stays itself: its number names the core). A wait is charged to the
threads that ran on the CPU the waiting thread finally ran on; a thread that was woken on one CPU
and ran on another (only unpinned ones can) is counted as moved, and its wait charged to the second.
Input: `perf script -F comm,tid,cpu,time,event,trace` of sched_switch and sched_wakeup events."""

import bisect
import collections
import re
import sys

from perf_events import events

SWITCH = re.compile(r"prev_comm=(.*?) prev_pid=(\d+) .*?prev_state=(\S+) ==> next_comm=(.*?) next_pid=(\d+)")
WAKEUP = re.compile(r"comm=(.*?) pid=(\d+) .*?target_cpu=(\d+)")
LONG_S = 0.0005


def group(comm: str) -> str:
    if comm.startswith("shard-") or comm.startswith("cold-sender"):
        return comm
    return re.sub(r"[-:]\d+$", "", comm)


def percentile(values, share):
    return values[min(len(values) - 1, int(len(values) * share))]


def main(path: str) -> None:
    runnable_since = {}  # tid -> (time it became runnable, CPU it was queued on)
    on_cpu = collections.defaultdict(list)  # cpu -> [(time, comm)] of switches in
    waits = collections.defaultdict(list)  # group -> [(wait s, start, end, cpu)]
    moved = collections.Counter()  # group -> waits that ended on another CPU than they began
    for cpu, time, event, rest in events(path):
        if event == "sched:sched_wakeup":
            woken = WAKEUP.search(rest)
            if woken:
                runnable_since.setdefault(int(woken.group(2)), (time, int(woken.group(3))))
        elif event == "sched:sched_switch":
            switch = SWITCH.search(rest)
            if not switch:
                continue
            prev_comm, prev_tid, prev_state, next_comm, next_tid = switch.groups()
            prev_tid, next_tid = int(prev_tid), int(next_tid)
            if prev_state.startswith("R") and prev_tid != 0:
                runnable_since[prev_tid] = (time, cpu)
            else:
                # A thread may wake itself before it sleeps (a `sched_wakeup` while it runs):
                # that is no wait, and going to sleep ends it.
                runnable_since.pop(prev_tid, None)
            on_cpu[cpu].append((time, next_comm))
            queued = runnable_since.pop(next_tid, None)
            if queued is not None and next_tid != 0:
                since, queued_cpu = queued
                waits[group(next_comm)].append((time - since, since, time, cpu))
                if queued_cpu != cpu:
                    moved[group(next_comm)] += 1
    print(f"{'thread':<22} {'waits':>7} {'p50 ms':>7} {'p99 ms':>7} {'p99.9':>7} {'max ms':>7} {'>0.5 ms':>8} {'in all ms':>9} {'moved':>6}")
    busiest = sorted(waits, key=lambda name: -len(waits[name]))[:12]
    for name in busiest:
        values = sorted(wait for wait, *_ in waits[name])
        long_waits = [wait for wait in values if wait >= LONG_S]
        print(f"{name:<22} {len(values):>7} {percentile(values, 0.5) * 1e3:>7.3f} {percentile(values, 0.99) * 1e3:>7.3f} "
              f"{percentile(values, 0.999) * 1e3:>7.3f} {values[-1] * 1e3:>7.3f} {len(long_waits):>8} {sum(long_waits) * 1e3:>9.1f} {moved[name]:>6}")
    for name in busiest:
        if not (name.startswith("shard-") or name.startswith("producer") or name.startswith("produce-acks")):
            continue
        held = collections.Counter()
        longest = collections.Counter()
        for wait, start, end, cpu in waits[name]:
            if wait < LONG_S:
                continue
            switches = on_cpu[cpu]
            at = bisect.bisect_right(switches, (start, "\uffff"))
            current, since = (switches[at - 1][1] if at else "?"), start
            for time, comm in switches[at:]:
                if time > end:
                    break
                held[group(current)] += time - since
                longest[group(current)] = max(longest[group(current)], time - since)
                current, since = comm, time
            held[group(current)] += end - since
            longest[group(current)] = max(longest[group(current)], end - since)
        total = sum(held.values())
        if total:
            shares = ", ".join(f"{who} {100 * seconds / total:.0f}%" for who, seconds in held.most_common(4))
            print(f"  {name}'s waits over {LONG_S * 1e3:.1f} ms ({total * 1e3:.1f} ms): the CPU was held by {shares}")
            stretches = ", ".join(f"{who} {seconds * 1e3:.2f}" for who, seconds in longest.most_common(3))
            print(f"    the longest stretch each ran meanwhile, ms: {stretches}")


if __name__ == "__main__":
    main(sys.argv[1])
