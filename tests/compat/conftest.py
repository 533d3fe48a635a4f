"""Fixtures for Ringtail's client compatibility tests.

The tests drive the real `ringtail` binary with real, unchanged Kafka clients. The binary is built
once per session (`cargo build --release --locked -p ringtail-server --bin ringtail`; set
RINGTAIL_BIN to use a prebuilt one instead) and every test gets its own broker on a free loopback
port with a fresh data dir: `--shards 2 --flush every_batch --segment-bytes 8388608` (small
segments: the broker allocates each partition's active segment ahead, and at the default 1 GiB a
few dozen test topics would reserve tens of GB; it stops short of half the file system,
docs/decisions/0031, but the tests should not lean on that). At teardown
the broker gets SIGTERM and must exit 0 within STOP_TIMEOUT_S; a broker that hangs is SIGKILLed
and the test errors. Broker output goes to a log file per broker whose tail is attached to the
report of any failed test. A passed test's temp dir is deleted (tmp_path_retention_policy).

Every test runs in a forked child (`--forked` in pytest.ini, from pytest-forked): confluent-kafka
and the checks' reader load librdkafka in-process, and a malformed response can make librdkafka
abort() the whole interpreter. Forked, such a crash fails that one test (with its brokers' log
tails; librdkafka's failed assertion shows at the end of the run's output) and the run goes on.
Brokers are started under `setpriv --pdeathsig KILL` so that they die with a crashed child.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT_S = 1800
READY_TIMEOUT_S = 20
STOP_TIMEOUT_S = 20
LOG_TAIL_LINES = 80
SEGMENT_BYTES = 8 * 1024 * 1024
# Starts of a new broker whose free port another process took first (see Broker.start).
START_ATTEMPTS = 5
# What the broker logs when its port is taken: its own check (broker.rs refuse_a_shared_port),
# or the bind's error.
PORT_TAKEN_SIGNS = ("is in use by another process", "Address already in use")
PDEATHSIG = [shutil.which("setpriv"), "--pdeathsig", "KILL", "--"] if shutil.which("setpriv") else []


# Test brokers listen below the kernel's ephemeral range (net.ipv4.ip_local_port_range): a port
# the kernel picked for bind(0) is also the pool it takes clients' source ports from, so while a
# broker restarted on its port, any connection of a test running beside it (the Go suite runs in
# parallel) could take that port, and the restart failed with "Address already in use" (seen in
# CI on a metrics port). Below the range only another test's own pick can collide.
LOWEST_TEST_PORT = 10000


def ephemeral_ports_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A loopback port that was free a moment ago, below the ephemeral range when it can be (else
    one the kernel picks)."""
    top = ephemeral_ports_start()
    candidates = [random.randrange(LOWEST_TEST_PORT, top) for _ in range(100)] if top > LOWEST_TEST_PORT + 1000 else []
    for port in candidates + [0]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise AssertionError("no free loopback port")


def listens_on(pid: int, port: int) -> bool:
    """Whether process `pid` holds a socket listening on `port` (its network namespace's TCP
    tables, matched by socket inode against its file descriptors)."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            rows = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            # fields[1] is local "ADDR:PORT" in hex, fields[3] the state (0A = LISTEN).
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return False
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                return True
        except OSError:
            continue
    return False


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = ANSI_ESCAPE.sub("", path.read_text(errors="replace"))
    except FileNotFoundError:
        return "(no log file)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


class Broker:
    """One `ringtail` process; `restart()` keeps its port and data dir."""

    def __init__(self, binary: Path, data_dir: Path, log_path: Path, extra_args: list[str], port: int):
        self.binary = binary
        self.data_dir = data_dir
        self.log_path = log_path
        self.extra_args = list(extra_args)
        self.port = port
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        # Set by the first successful start: from then on the port is the broker's address.
        self.port_fixed = False

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            str(self.binary),
            "--listen", self.bootstrap,
            "--data-dir", str(self.data_dir),
            "--shards", "2",
            "--flush", "every_batch",
            "--segment-bytes", str(SEGMENT_BYTES),
            *self.extra_args,
        ]

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return _tail(self.log_path, lines)

    def _fail(self, what: str):
        pytest.fail(f"ringtail {self.bootstrap}: {what}\n--- tail of {self.log_path} ---\n{self.log_tail()}",
                    pytrace=False)

    def listen_ports(self) -> list[int]:
        """The ports this broker listens on (one per listener)."""
        return [self.port]

    def pick_new_ports(self) -> None:
        """New free ports for a first start whose ports another process took meanwhile."""
        self.port = free_port()

    def start(self) -> None:
        """Spawns the broker; returns once this very process listens on all its ports.

        A successful connect is no proof: free_port() hands the port back to the kernel, another
        test's broker may take it first, and ours then exits (it refuses a port in use) while the
        other answers, and is stopped when its own test ends. So the check is that our pid holds
        the listening sockets (/proc), and a first start that lost its port that way is retried on
        new ports. A restart keeps its port (clients bootstrap from it) and fails instead."""
        assert self.proc is None, "broker already running"
        attempts = 1 if self.port_fixed else START_ATTEMPTS
        for attempt in range(1, attempts + 1):
            failure, port_taken = self._spawn_and_wait()
            if failure is None:
                self.port_fixed = True
                return
            if not (port_taken and attempt < attempts):
                self._fail(failure)
            self.pick_new_ports()

    def start_on_new_port(self) -> None:
        """Starts on fresh ports (after a SIGKILL, whose listeners may linger a moment)."""
        self.port_fixed = False
        self.pick_new_ports()
        self.start()

    def _spawn_and_wait(self) -> tuple[str | None, bool]:
        """One start: (None, _) once listening, else (why not, whether a port was in use)."""
        self.starts += 1
        cmd = self.command()
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            log.write(f"=== start #{self.starts}: {' '.join(cmd)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(PDEATHSIG + cmd, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, cwd=self.data_dir.parent,
                                         env={**os.environ, "NO_COLOR": "1"})
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self.proc = None
                with open(self.log_path, "rb") as log:
                    log.seek(log_offset)
                    said = log.read().decode(errors="replace")
                port_taken = any(sign in said for sign in PORT_TAKEN_SIGNS)
                return f"exited with status {rc} before listening on {self.listen_ports()}", port_taken
            if all(listens_on(self.proc.pid, port) for port in self.listen_ports()):
                return None, False
            if time.monotonic() > deadline:
                self.kill()
                self._fail(f"did not listen on {self.listen_ports()} within {READY_TIMEOUT_S} s")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM and wait: the broker must exit 0 within STOP_TIMEOUT_S (else SIGKILL and fail)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        rc = proc.poll()
        if rc is not None:
            self._fail(f"died while the test ran (exit status {rc})")
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            self._fail(f"did not exit within {STOP_TIMEOUT_S} s of SIGTERM; killed")
        if rc != 0:
            self._fail(f"exited with status {rc} after SIGTERM (want 0)")

    def restart(self) -> None:
        """Graceful stop (asserted as in teardown), then start again on the same port and data dir."""
        self.stop()
        self.start()

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def pytest_sessionstart(session):
    # Fix the session's temp dir in the parent process, before any test forks: every child must
    # inherit this one rather than make its own.
    session.config._tmp_path_factory.getbasetemp()


def _cargo_binary(tmp_path_factory, env_var: str, package: str, name: str, example: bool = False) -> Path:
    """Path of a release binary (or, with `example`, an example) of this workspace: `env_var` if
    set (scripts/test.sh builds them all in one cargo run first), else built once with cargo.

    Forked tests each set up session fixtures anew; a stamp in the session's temp dir makes the
    build (and a build failure) happen once."""
    override = os.environ.get(env_var)
    if override:
        path = Path(override).resolve()
        if not os.access(path, os.X_OK):
            pytest.fail(f"{env_var}={override} is not an executable", pytrace=False)
        return path
    default = REPO / "target" / "release" / ("examples" if example else "") / name
    command = ["cargo", "build", "--release", "--locked", "-p", package, "--example" if example else "--bin", name]
    built = tmp_path_factory.getbasetemp() / f"{name}-build.ok"
    failed = tmp_path_factory.getbasetemp() / f"{name}-build.failed"
    if built.exists():
        return Path(built.read_text())
    if failed.exists():
        pytest.fail(failed.read_text(), pytrace=False)
    try:
        done = subprocess.run(command, cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=BUILD_TIMEOUT_S)
        if done.returncode != 0:
            tail = "\n".join(done.stderr.splitlines()[-60:])
            problem = f"{' '.join(command)} failed ({done.returncode}):\n{tail}"
        elif not default.exists():
            problem = f"the build succeeded but {default} is missing"
        else:
            problem = None
    except subprocess.TimeoutExpired:
        problem = f"{' '.join(command)} took over {BUILD_TIMEOUT_S} s"
    if problem:
        failed.write_text(problem)
        pytest.fail(problem, pytrace=False)
    built.write_text(str(default))
    return default


@pytest.fixture(scope="session")
def ringtail_bin(tmp_path_factory) -> Path:
    """The broker binary: RINGTAIL_BIN if set, else built once."""
    return _cargo_binary(tmp_path_factory, "RINGTAIL_BIN", "ringtail-server", "ringtail")


@pytest.fixture(scope="session")
def loadgen_bin(tmp_path_factory) -> Path:
    """The load generator binary: LOADGEN_BIN if set, else built once."""
    return _cargo_binary(tmp_path_factory, "LOADGEN_BIN", "ringtail-loadgen", "ringtail-loadgen")


class BrokerPool:
    """The brokers one test starts. Their logs are attached to the test's failure report (also
    when a forked test's child crashes), and at teardown each must stop cleanly (SIGTERM, exit 0)."""

    def __init__(self, request):
        self.brokers: list[Broker] = []
        self._registry = _crash_registry(request.config, request.node.nodeid)
        request.node._ringtail_brokers = self.brokers

    def __len__(self) -> int:
        return len(self.brokers)

    def start(self, broker: Broker) -> Broker:
        self.brokers.append(broker)
        with open(self._registry, "a") as registry:
            registry.write(f"{broker.log_path}\n")
        broker.start()
        return broker

    def stop_all(self) -> list[str]:
        """Stops every broker (killing what does not stop); the failures, as messages."""
        failures = []
        for broker in self.brokers:
            try:
                broker.stop()
            except pytest.fail.Exception as e:
                failures.append(str(e))
            finally:
                broker.kill()
        return failures


def fail_if_any(failures: list[str]) -> None:
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


@pytest.fixture
def start_broker(ringtail_bin, tmp_path, request):
    """Factory: `start_broker(*extra_args)` runs one more broker for this test and returns it."""
    pool = BrokerPool(request)

    def start(*extra_args: str) -> Broker:
        n = len(pool)
        data_dir = tmp_path / f"ringtail-{n}-data"
        data_dir.mkdir()
        return pool.start(Broker(ringtail_bin, data_dir, tmp_path / f"ringtail-{n}.log", list(extra_args),
                                 free_port()))

    yield start
    fail_if_any(pool.stop_all())


@pytest.fixture
def broker(start_broker) -> Broker:
    """A broker with the default flags; `.bootstrap` is "127.0.0.1:PORT", `.restart()` restarts it."""
    return start_broker()


@pytest.fixture
def bootstrap(broker) -> str:
    return broker.bootstrap


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    # (A teardown failure's message carries the log tail already.)
    if report.failed and report.when != "teardown":
        for n, b in enumerate(getattr(item, "_ringtail_brokers", [])):
            report.sections.append((f"ringtail #{n} log tail ({b.log_path})", b.log_tail()))
    return report


def _crash_registry(config, nodeid: str) -> Path:
    """File listing the broker logs of one test, read by the parent if the test's child crashes."""
    folder = config._tmp_path_factory.getbasetemp() / "broker-logs"
    folder.mkdir(exist_ok=True)
    return folder / (hashlib.sha1(nodeid.encode()).hexdigest() + ".txt")


def pytest_runtest_logreport(report):
    """A forked test whose child crashed (librdkafka's abort() on a malformed response) left no
    report of its own: attach the tails of its brokers' logs. (What the child wrote to stderr,
    such as librdkafka's failed assertion, is printed by pytest at the end of the run.)"""
    if not report.failed or "CRASHED" not in str(report.longrepr):
        return
    registry = _crash_registry(_config, report.nodeid)
    paths = registry.read_text().split() if registry.exists() else []
    for path in paths:
        report.sections.append((f"ringtail log tail ({path})", _tail(Path(path))))


_config = None


def pytest_configure(config):
    global _config
    _config = config
