"""The events of `perf script -F comm,tid,cpu,time,event,trace`, shared by this directory's
analyses."""

import re
from typing import Iterator, Tuple

LINE = re.compile(r"^\s*(\S.*?)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s+(.*)$")


def events(path: str) -> Iterator[Tuple[int, float, str, str]]:
    """(cpu, time in s, event name, the event's own fields) of each line that is an event."""
    for line in open(path):
        match = LINE.match(line)
        if match:
            _, _, cpu, time, event, rest = match.groups()
            yield int(cpu), float(time), event, rest
