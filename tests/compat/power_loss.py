"""The power-loss harness: the real `ringtail` on a filesystem that forgets (tests/forgetful-fs).

One round: commit consumer offsets; produce with an idempotent producer (acks=all) until a
random number of records is acknowledged, records still in flight; SIGKILL the broker; tell the
filesystem to lose power (everything not fsynced is dropped, the last writes torn at a sector
boundary from a seeded generator); restart the broker; let the same producer deliver what was in
flight; then read every partition from offset 0 and check the log against every acknowledgement
ever received, and the committed offsets against the last commit.

`check_log` does not decide pass or fail: it reports what is missing, duplicated, misplaced or
gapped, and the tests say what each flush policy must show.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import PDEATHSIG, Broker, _cargo_binary, _tail, free_port

MOUNT_TIMEOUT_S = 10
TOPIC = "powerloss"
PARTITIONS = 3
GROUP = "powerloss-group"
# Small segments: every round rolls a few, so seal fsyncs, new segment files and directory
# fsyncs are all crossed by power losses.
SEGMENT_BYTES = 16 * 1024
# Records unacknowledged in the producer at once: enough that a kill always finds some in flight.
IN_FLIGHT_RECORDS_MAX = 200
ACKED_BEFORE_KILL = (20, 300)
PRODUCE_DEADLINE_S = 60
READ_DEADLINE_S = 60
RELEASE_TIMEOUT_S = 30


class ForgetfulFs:
    """One forgetful-fs process and its mount; `command` speaks its control channel."""

    def __init__(self, binary: Path, root: Path):
        self.binary = binary
        self.mountpoint = root / "mnt"
        self.control = root / "forgetful.sock"
        self.log_path = root / "forgetful-fs.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                PDEATHSIG + [str(self.binary), str(self.mountpoint), "--control", str(self.control)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + MOUNT_TIMEOUT_S
        while not (os.path.ismount(self.mountpoint) and self.control.exists()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"forgetful-fs did not mount:\n{_tail(self.log_path)}")
            time.sleep(0.05)

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(30)
            sock.connect(str(self.control))
            sock.sendall(line.encode() + b"\n")
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
        text = answer.decode().strip()
        if not text.startswith("ok"):
            raise RuntimeError(f"forgetful-fs: {line!r} answered {text!r}")
        return text

    def stats(self) -> dict[str, int]:
        return {k: int(v) for k, v in (w.split("=") for w in self.command("stats").split()[1:])}

    def mkdir_durably(self, name: str) -> Path:
        """A directory on the mount whose entry is durable (the root fsynced after the mkdir)."""
        path = self.mountpoint / name
        path.mkdir()
        fd = os.open(self.mountpoint, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return path

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            if proc.poll() is None:
                self.command("quit")
                proc.wait(timeout=10)
        except (OSError, RuntimeError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait(timeout=10)
        if os.path.ismount(self.mountpoint):
            subprocess.run(["umount", "-l", str(self.mountpoint)], check=False)


class PowerLossBroker(Broker):
    """A broker on the forgetful mount with the flush policy under test."""

    def __init__(self, binary: Path, data_dir: Path, log_path: Path, port: int, flush: str):
        super().__init__(binary, data_dir, log_path, [], port)
        self.flush = flush

    def command(self) -> list[str]:
        return [str(self.binary), "--listen", self.bootstrap, "--data-dir", str(self.data_dir),
                "--shards", "2", "--flush", self.flush, "--segment-bytes", str(SEGMENT_BYTES)]

    def power_off(self, fs: ForgetfulFs) -> None:
        """SIGKILL, then wait until its files are all released: the process's io_uring outlives
        it for a moment and may still write (see tests/forgetful-fs/src/control.rs)."""
        proc, self.proc = self.proc, None
        assert proc is not None and proc.poll() is None, "the broker died before its power loss"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + RELEASE_TIMEOUT_S
        while fs.stats()["open_files"] > 0:
            assert time.monotonic() < deadline, f"files still open {RELEASE_TIMEOUT_S} s after the kill"
            time.sleep(0.02)

    def stop_expecting_failed_partitions(self) -> None:
        """SIGTERM with a partition failed: the broker closes the others and exits 1 (a failed
        partition cannot close cleanly; it is recovered in full at the next start)."""
        proc, self.proc = self.proc, None
        assert proc is not None and proc.poll() is None, "the broker died while the test ran"
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)
        assert rc == 1, f"exit status {rc} after SIGTERM with a failed partition (want 1)"
        assert "did not close cleanly" in _tail(self.log_path, 200), "the failed partition is logged"

    def start(self) -> None:
        """A restart (after a power loss) starts on the same port once it is free: the killed
        broker's io_uring holds its listener until the ring is torn down, and the test's producer
        reconnects to that port. The first start waits for nothing: Broker.start checks that this
        process listens on the port, and retries on a new port if another broker took it first."""
        if self.port_fixed:
            deadline = time.monotonic() + RELEASE_TIMEOUT_S
            while not port_is_free(self.port):
                assert time.monotonic() < deadline, f"port {self.port} still bound {RELEASE_TIMEOUT_S} s after the kill"
                time.sleep(0.02)
        super().start()


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


@dataclass
class Ledger:
    """Everything acknowledged, and the last committed offsets."""
    acked: dict[tuple[int, int], bytes] = field(default_factory=dict)
    acked_values: set[bytes] = field(default_factory=set)
    produce_errors: list[str] = field(default_factory=list)
    # An offset acknowledged for a second record: the first was lost and its offset reused.
    offsets_reused: list[tuple[int, int]] = field(default_factory=list)
    committed: dict[int, int] = field(default_factory=dict)


@dataclass
class LogCheck:
    records: int = 0
    missing: list[tuple[int, int, bytes]] = field(default_factory=list)
    duplicates: list[bytes] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    read_errors: list[str] = field(default_factory=list)
    offsets_lost: list[str] = field(default_factory=list)


def producer(bootstrap: str) -> Producer:
    return Producer({
        "bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
        "linger.ms": 2, "message.timeout.ms": 120_000, "retry.backoff.ms": 50,
        "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 500,
    })


def create_topic(bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=1)])
    for future in futures.values():
        future.result(timeout=30)


def produce_until_acked(p: Producer, ledger: Ledger, tag: str, acked_target: int) -> int:
    """Produces records named `tag-N` until `acked_target` of them are acknowledged; returns how
    many were produced (the rest are in flight)."""
    acked_now = [0]

    def on_delivery(err, msg):
        if err is not None:
            ledger.produce_errors.append(f"{msg.value()!r}: {err}")
            return
        key = (msg.partition(), msg.offset())
        if key in ledger.acked:
            ledger.offsets_reused.append(key)
        ledger.acked[key] = msg.value()
        ledger.acked_values.add(msg.value())
        acked_now[0] += 1

    produced = 0
    deadline = time.monotonic() + PRODUCE_DEADLINE_S
    while acked_now[0] < acked_target:
        if time.monotonic() > deadline:
            raise AssertionError(f"{tag}: only {acked_now[0]} of {acked_target} acknowledged "
                                 f"in {PRODUCE_DEADLINE_S} s; errors {ledger.produce_errors[:5]}")
        if len(p) >= IN_FLIGHT_RECORDS_MAX:
            p.poll(0.005)
            continue
        p.produce(TOPIC, value=f"{tag}-{produced}".encode(), partition=produced % PARTITIONS,
                  on_delivery=on_delivery)
        produced += 1
        p.poll(0)
    return produced


def commit_offsets(bootstrap: str, ledger: Ledger) -> None:
    """Commits, for each partition, one past its highest acknowledged offset."""
    offsets = {}
    for partition, offset in ledger.acked:
        offsets[partition] = max(offsets.get(partition, 0), offset + 1)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "enable.auto.commit": False})
    try:
        tps = [TopicPartition(TOPIC, partition, offset) for partition, offset in sorted(offsets.items())]
        if tps:
            for tp in consumer.commit(offsets=tps, asynchronous=False):
                assert tp.error is None, f"commit of {tp} failed"
            ledger.committed.update(offsets)
    finally:
        consumer.close()


def read_committed(bootstrap: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "enable.auto.commit": False})
    try:
        tps = consumer.committed([TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=30)
        return {tp.partition: tp.offset for tp in tps if tp.offset >= 0}
    finally:
        consumer.close()


def read_partition(bootstrap: str, partition: int, check: LogCheck) -> list[tuple[int, bytes]]:
    """Every record of a partition from offset 0 to its high watermark, CRCs checked."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "powerloss-reader",
                         "enable.auto.commit": False, "check.crcs": True, "fetch.wait.max.ms": 50})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(TOPIC, partition), timeout=30)
        if low != 0:
            check.gaps.append(f"partition {partition} starts at {low}, not 0")
        consumer.assign([TopicPartition(TOPIC, partition, low)])
        records: list[tuple[int, bytes]] = []
        deadline = time.monotonic() + READ_DEADLINE_S
        next_offset = low
        while next_offset < high:
            if time.monotonic() > deadline:
                check.read_errors.append(f"partition {partition}: read stopped at {next_offset} of {high}")
                break
            for msg in consumer.consume(500, timeout=1):
                if msg.error():
                    if msg.error().code() != KafkaError._PARTITION_EOF:
                        check.read_errors.append(f"partition {partition}: {msg.error()}")
                    continue
                records.append((msg.offset(), msg.value()))
                next_offset = msg.offset() + 1
        return records
    finally:
        consumer.close()


def check_log(bootstrap: str, ledger: Ledger) -> LogCheck:
    """The log against the ledger (see the module doc); decides nothing."""
    check = LogCheck()
    seen: set[bytes] = set()
    present: dict[tuple[int, int], bytes] = {}
    for partition in range(PARTITIONS):
        expected = 0
        for offset, value in read_partition(bootstrap, partition, check):
            if offset != expected:
                check.gaps.append(f"partition {partition}: offset {offset} after {expected - 1}")
            expected = offset + 1
            if value in seen:
                check.duplicates.append(value)
            seen.add(value)
            present[(partition, offset)] = value
            check.records += 1
    for (partition, offset), value in sorted(ledger.acked.items()):
        if present.get((partition, offset)) != value:
            check.missing.append((partition, offset, value))
    committed = read_committed(bootstrap)
    for partition, offset in ledger.committed.items():
        if committed.get(partition) != offset:
            check.offsets_lost.append(f"partition {partition}: committed {offset}, "
                                      f"read back {committed.get(partition)}")
    return check


@dataclass
class RunReport:
    rounds: int = 0
    power_losses: int = 0
    acked: int = 0
    records_checked: int = 0
    checks: list[LogCheck] = field(default_factory=list)
    fs_stats: dict[str, int] = field(default_factory=dict)


def run_rounds(fs: ForgetfulFs, broker: PowerLossBroker, rounds: int, seed: int,
               stop_on_loss: bool) -> tuple[Ledger, RunReport]:
    """Runs `rounds` power losses (see the module doc), checking the log after each. With
    `stop_on_loss`, stops after the first round that lost an acknowledged record or offset."""
    rng = random.Random(seed)
    ledger = Ledger()
    report = RunReport()
    create_topic(broker.bootstrap)
    for round_no in range(rounds):
        commit_offsets(broker.bootstrap, ledger)
        p = producer(broker.bootstrap)
        produce_until_acked(p, ledger, f"s{seed}-r{round_no}", rng.randint(*ACKED_BEFORE_KILL))
        broker.power_off(fs)
        # Odd rounds drop everything not durable; even ones keep a seeded torn prefix of it.
        tear_seed = rng.getrandbits(63)
        fs.command(f"power-loss tear {tear_seed}" if round_no % 2 == 0 else "power-loss")
        report.power_losses += 1
        broker.start()
        try:
            remaining = p.flush(60)
        except (KafkaException, SystemError) as error:
            # The idempotent producer goes fatal when the broker lost records it had acknowledged:
            # the sequence numbers it kept no longer follow the broker's (OUT_OF_ORDER_SEQUENCE),
            # as Kafka answers. Expected under flush=none; a produce error (a failure) otherwise.
            # confluent-kafka raises SystemError for a fatal error met inside flush().
            ledger.produce_errors.append(f"round {round_no}: producer fatal after the power loss: "
                                         f"{error!r}")
            remaining = 0
        if remaining:
            ledger.produce_errors.append(f"round {round_no}: {remaining} records never answered")
        check = check_log(broker.bootstrap, ledger)
        report.rounds += 1
        report.checks.append(check)
        report.records_checked += check.records
        if stop_on_loss and (check.missing or check.offsets_lost):
            break
    report.acked = len(ledger.acked)
    report.fs_stats = fs.stats()
    return ledger, report


needs_fuse = pytest.mark.skipif(
    not os.path.exists("/dev/fuse") or os.geteuid() != 0,
    reason="needs /dev/fuse and root to mount tests/forgetful-fs "
           f"(/dev/fuse {'present' if os.path.exists('/dev/fuse') else 'absent'}, euid {os.geteuid()})")


@pytest.fixture(scope="session")
def forgetful_fs_bin(tmp_path_factory):
    return _cargo_binary(tmp_path_factory, "FORGETFUL_FS_BIN", "forgetful-fs", "forgetful-fs")


@pytest.fixture
def powered(ringtail_bin, forgetful_fs_bin, tmp_path, request):
    """Factory: `powered(flush)` mounts a forgetful filesystem and starts a broker on it."""
    started: list[tuple[ForgetfulFs, PowerLossBroker]] = []
    request.node._ringtail_brokers = []

    def start(flush: str) -> tuple[ForgetfulFs, PowerLossBroker]:
        fs = ForgetfulFs(forgetful_fs_bin, tmp_path / f"fs-{len(started)}")
        fs.start()
        data_dir = fs.mkdir_durably("data")
        broker = PowerLossBroker(ringtail_bin, data_dir, tmp_path / f"ringtail-{len(started)}.log",
                                 free_port(), flush)
        started.append((fs, broker))
        request.node._ringtail_brokers.append(broker)
        broker.start()
        return fs, broker

    yield start
    for fs, broker in started:
        broker.kill()
        fs.stop()
