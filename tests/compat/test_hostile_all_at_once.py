"""Every hostile client at once beside a well-behaved producer and consumer (issue 14, section 3).

Garbage, truncated frames, 2 GiB and negative length prefixes, unknown API keys and versions,
Metadata naming 100,000 unknown topics (with and without auto-create, repeatedly), a Fetch naming
100,000 partitions with max_bytes=0 and one asking for unlimited bytes, slowloris frames, and a
crowd of idle connections as large as the fd limit allows (aiming at 10,000) — all while a
confluent-kafka producer and consumer stream on. Asserted: every record delivered and read back
with no client error, the limits at work, and the broker's peak RSS (VmHWM) under the bound
hostile_all.rss_bound_bytes derives from its flags. No timing is asserted: the p99 figures come
from scripts/hostile-clients.py (results/hostile/).
"""

from __future__ import annotations

import urllib.request

from compat_checks import confluent_create_topic, topic_name
from conftest import free_port
from hostile_all import (HostileProcess, crowd_size_for, memory_bytes, open_fds, raise_open_files,
                         rss_bound_bytes, streaming_well_behaved)

CROWD_WANTED = 10_000
PER_IP_MAX = 1_000
# Room beyond the crowd for the hostile kinds' connections and the well-behaved clients.
CONNECTION_HEADROOM = 300
QUEUED_MAX_REQUEST_BYTES = 64 * 1024 * 1024
FRAME_BYTES_MAX = 8 * 1024 * 1024
MESSAGES = 6_000
RATE_PER_S = 300
DEADLINE_S = 90


def metrics(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
            if line and not line.startswith("#") and "{" not in line}


def test_all_hostile_clients_at_once_lose_nothing_and_memory_stays_under_the_derived_bound(start_broker):
    """Guards the edge as a whole: each bound holds while all the others are pressed too."""
    open_files = raise_open_files(2 * CROWD_WANTED + 4096)
    crowd_held_wanted = crowd_size_for(open_files, CROWD_WANTED)
    print(f"RLIMIT_NOFILE {open_files}: a crowd of {crowd_held_wanted} idle connections"
          + ("" if crowd_held_wanted == CROWD_WANTED else f" (fewer than {CROWD_WANTED}: the fd limit)"))
    max_connections = crowd_held_wanted + CONNECTION_HEADROOM
    metrics_port = free_port()
    broker = start_broker(
        "--max-connections", str(max_connections), "--max-connections-per-ip", str(PER_IP_MAX),
        "--connections-max-idle-ms", "300000", "--frame-read-timeout-ms", "2000",
        "--frame-bytes-max", str(FRAME_BYTES_MAX), "--queued-max-request-bytes", str(QUEUED_MAX_REQUEST_BYTES),
        "--fetch-max-bytes", "1048576", "--auto-create-topics-per-request-max", "20", "--topics-max", "200",
        "--metrics-listen", f"127.0.0.1:{metrics_port}")
    topic, topic_after = topic_name("wb"), topic_name("wb-after")
    for name in (topic, topic_after):  # before the flood can fill --topics-max
        confluent_create_topic(broker.bootstrap, name, 1)
    # Attempts per address are 10% over the per-IP limit: those are refused.
    attempts = crowd_held_wanted + crowd_held_wanted // 10
    hostile = HostileProcess(broker.port, topic, crowd=attempts, per_ip_max=PER_IP_MAX)
    fds_with_crowd = open_fds(broker.proc.pid)
    try:
        result = streaming_well_behaved(broker.bootstrap, topic, MESSAGES, RATE_PER_S, DEADLINE_S)
    finally:
        report = hostile.stop()
    memory = memory_bytes(broker.proc.pid)
    bound = rss_bound_bytes(max_connections, QUEUED_MAX_REQUEST_BYTES, FRAME_BYTES_MAX)
    print(f"crowd {report}; broker fds {fds_with_crowd}; VmHWM {memory['VmHWM'] / 2**20:.0f} MiB, "
          f"bound {bound / 2**20:.0f} MiB")

    assert result["errors"] == [], result["errors"][:10]
    assert result["delivered"] == MESSAGES
    assert result["consumed"] == MESSAGES, f"never read: {result['missing']}"
    assert memory["VmHWM"] < bound, (memory, bound)
    assert report["crowd_connect_failed"] == 0, report
    assert report["crowd_held"] == crowd_held_wanted, report
    assert report["crowd_refused"] == attempts - crowd_held_wanted, "the per-IP limit refused the extra ones"
    assert report["crowd_still_open_at_end"] == crowd_held_wanted, "held for the whole run"
    assert fds_with_crowd >= crowd_held_wanted, "the broker held the crowd's sockets"
    counts = report["hostile_requests"]
    for kind in ["garbage", "truncated", "huge_prefix", "negative_prefix", "unknown_api", "unknown_topics",
                 "auto_create_flood", "fetch_100000_partitions"]:
        assert counts.get(kind, 0) > 0, (kind, counts)
    after = metrics(metrics_port)
    assert after["ringtail_frames_timed_out_total"] >= 1, "slowloris frames dropped"
    assert after["ringtail_connections_refused_total"] >= attempts - crowd_held_wanted
    # One frame at a time may be read over the budget (the overdraft, limits.rs).
    assert after["ringtail_request_bytes_in_flight"] <= QUEUED_MAX_REQUEST_BYTES + FRAME_BYTES_MAX
    # Still whole afterwards: a fresh client works and the broker stops cleanly at teardown.
    again = streaming_well_behaved(broker.bootstrap, topic_after, 1_000, 1_000, DEADLINE_S)
    assert (again["errors"], again["consumed"]) == ([], 1_000)
