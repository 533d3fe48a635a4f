"""The consumer-group takeover stress test's driver: members in child processes (takeover_member.py)
are SIGKILLed at chosen moments while producers keep writing, and the survivors must take over.

A *run* is one group on one 6-partition topic with one protocol (a classic assignor, or KIP-848
with a broker-side assignor). It keeps 3 members and, `kills` times over, picks a case from a seeded
random generator, kills one member at that case's moment and checks:
- within session timeout + 10 s of the kill, the live members' assignments cover every partition
  exactly once;
- when the run ends, every record written to the topic was consumed by some member, the group's
  committed offsets reach the high watermarks, and every member's close() returns within 10 s.

Cases (each kill prints `case: run=... seed=... kill=N kind=... victim=...`; the run's seed replays
it with RINGTAIL_TAKEOVER_SEED):
- `after-assign`: a 4th member joins; the victim dies in its next assignment callback.
- `in-commit`: the victim sends a commit and dies microseconds later, the OffsetCommit in flight.
- `in-rebalance`: a 4th member joins; the victim dies in its next revocation callback, or at a
  random moment of the rebalance (up to 3 s after the join), whichever comes first.
- `in-join`: a 4th member joins; the victim dies once it has sent its JoinGroup to rejoin, so the
  rebalance completes with a dead member (classic; for KIP-848 groups, as `in-rebalance`).
- `leader`: the victim is the group leader (classic; KIP-848 groups have none: a random member).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from compat_checks import confluent_create_topic as create_topic, topic_name

MEMBER_SCRIPT = Path(__file__).resolve().parent / "takeover_member.py"
PARTITIONS = 6
CLASSIC_ASSIGNORS = ["range", "roundrobin", "cooperative-sticky"]
KIP848_ASSIGNORS = ["uniform", "range"]
# Every protocol the test covers: (name, group.protocol, assignor).
PROTOCOLS = [(a, "classic", a) for a in CLASSIC_ASSIGNORS] + [(f"consumer-{a}", "consumer", a) for a in KIP848_ASSIGNORS]
CASES = ["after-assign", "in-commit", "in-rebalance", "in-join", "leader"]
SESSION_TIMEOUT_MS = 6000
HEARTBEAT_INTERVAL_MS = 1000
TAKEOVER_GRACE_S = 10.0
CLOSE_LIMIT_S = 10.0
SPREAD_TIMEOUT_S = 45.0
DRAIN_TIMEOUT_S = 60.0
INITIAL_MESSAGES = 6000
PRODUCE_PER_S = 40


class TakeoverFailure(AssertionError):
    pass


@dataclass
class Member:
    """A member process and what it reported."""

    name: str
    proc: subprocess.Popen
    parts: list[int] | None = None
    leader_gen: int = -1
    consumed: set = field(default_factory=set)
    committed: dict = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    close_s: float | None = None
    eof: threading.Event = field(default_factory=threading.Event)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, command: str) -> None:
        try:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass

    def read_events(self, lock: threading.Lock) -> None:
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            with lock:
                kind = event.get("ev")
                if kind == "assigned":
                    self.parts = event["parts"]
                elif kind == "leader":
                    self.leader_gen = max(self.leader_gen, event["gen"])
                elif kind == "msgs":
                    self.consumed.update((p, o) for p, o in event["recs"])
                elif kind == "committed":
                    self.committed.update({p: o for p, o in event["offsets"]})
                elif kind == "error":
                    self.errors.append(event["what"])
                elif kind == "closed":
                    self.close_s = event["close_s"]
        self.eof.set()


class Run:
    """One group under kills: see the module's docstring."""

    def __init__(self, bootstrap: str, name: str, protocol: str, assignor: str, seed: int, log=print,
                 member_extra: dict | None = None):
        self.bootstrap = bootstrap
        self.name = name
        self.protocol = protocol
        self.assignor = assignor
        self.seed = seed
        self.log = log
        self.member_extra = member_extra or {}
        self.topic = topic_name(f"takeover-{name}")
        self.group = topic_name(f"takeover-{name}-g")
        self.members: list[Member] = []
        self.lock = threading.Lock()
        self.stop_producing = threading.Event()
        self.producer_error: list[str] = []
        self.spawned = 0

    # --- members ---------------------------------------------------------------------------

    def member_config(self, extra: dict | None = None) -> dict:
        conf = {"bootstrap.servers": self.bootstrap, "group.id": self.group, "auto.offset.reset": "earliest",
                "enable.auto.commit": False, "socket.connection.setup.timeout.ms": 5000}
        if self.protocol == "consumer":
            conf.update({"group.protocol": "consumer", "group.remote.assignor": self.assignor})
        else:
            conf.update({"partition.assignment.strategy": self.assignor, "session.timeout.ms": SESSION_TIMEOUT_MS,
                         "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS, "_leader_log": True})
        conf.update(self.member_extra)
        conf.update(extra or {})
        if self.protocol == "consumer":
            # KIP-848: the session timeout is the broker's; librdkafka refuses the classic knobs.
            for classic_only in ("session.timeout.ms", "heartbeat.interval.ms", "partition.assignment.strategy"):
                conf.pop(classic_only, None)
        return conf

    def spawn(self, extra: dict | None = None) -> Member:
        self.spawned += 1
        proc = subprocess.Popen([sys.executable, str(MEMBER_SCRIPT), json.dumps(self.member_config(extra)), self.topic],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        member = Member(f"m{self.spawned}", proc)
        threading.Thread(target=member.read_events, args=(self.lock,), daemon=True).start()
        self.members.append(member)
        return member

    def live(self) -> list[Member]:
        return [m for m in self.members if m.alive and m.close_s is None]

    def kill(self, member: Member) -> None:
        if member.alive:
            member.proc.kill()
        member.proc.wait(timeout=10)

    def describe_parts(self) -> str:
        with self.lock:
            return ", ".join(f"{m.name}{'' if m.alive else '(dead)'}={m.parts}" for m in self.members if m.alive)

    def covered(self, members: list[Member], want_each: bool) -> bool:
        """Whether `members` own every partition exactly once (and, if want_each, each owns some)."""
        with self.lock:
            owned = [m.parts or [] for m in members]
        flat = sorted(p for parts in owned for p in parts)
        if flat != list(range(PARTITIONS)):
            return False
        return not want_each or all(owned)

    def wait_until(self, predicate, timeout_s: float, what: str) -> float:
        start = time.monotonic()
        while not predicate():
            if time.monotonic() - start > timeout_s:
                raise TakeoverFailure(f"{self.name} seed={self.seed}: {what} not within {timeout_s:.0f} s; "
                                      f"live members: {self.describe_parts()}")
            time.sleep(0.1)
        return time.monotonic() - start

    def wait_spread(self) -> None:
        """Until the live members own every partition once, each some (a balanced group)."""
        self.wait_until(lambda: self.covered(self.live(), True), SPREAD_TIMEOUT_S, "a spread over the members")

    # --- producing --------------------------------------------------------------------------

    def produce(self) -> None:
        producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5})
        i = 0
        while not self.stop_producing.is_set():
            producer.produce(self.topic, value=f"live-{i}", partition=i % PARTITIONS)
            i += 1
            producer.poll(0)
            time.sleep(1.0 / PRODUCE_PER_S)
        if producer.flush(30) != 0:
            self.producer_error.append("the producer could not deliver everything")

    # --- the run ----------------------------------------------------------------------------

    def start(self) -> None:
        create_topic(self.bootstrap, self.topic, PARTITIONS)
        producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 20})
        for i in range(INITIAL_MESSAGES):
            producer.produce(self.topic, value=f"m{i}", partition=i % PARTITIONS)
        if producer.flush(60) != 0:
            raise TakeoverFailure(f"{self.name}: initial messages not delivered")
        threading.Thread(target=self.produce, daemon=True).start()
        for _ in range(3):
            self.spawn()
        self.wait_spread()

    def leader(self, live: list[Member], rng: random.Random) -> Member:
        with self.lock:
            known = [m for m in live if m.leader_gen >= 0]
            if self.protocol == "classic" and known:
                return max(known, key=lambda m: m.leader_gen)
        return rng.choice(live)

    def one_kill(self, number: int) -> None:
        case_seed = f"{self.seed}-{self.name}-{number}"
        rng = random.Random(case_seed)
        kind = rng.choice(CASES)
        live = self.live()
        victim = self.leader(live, rng) if kind == "leader" else rng.choice(live)
        self.log(f"case: run={self.name} seed={self.seed} kill={number} kind={kind} victim={victim.name} "
                 f"assignment: {self.describe_parts()}")
        if kind in ("after-assign", "in-rebalance", "in-join"):
            command = {"after-assign": "kill-on-assign", "in-rebalance": "kill-on-revoke",
                       "in-join": "kill-in-join" if self.protocol == "classic" else "kill-on-revoke"}[kind]
            victim.send(command)
            self.spawn()
            fallback_s = rng.uniform(0.5, 3.0) if kind == "in-rebalance" else 8.0
            deadline = time.monotonic() + fallback_s
            while victim.alive and time.monotonic() < deadline:
                time.sleep(0.01)
            self.kill(victim)
        elif kind == "in-commit":
            victim.send(f"kill-in-commit {rng.randrange(0, 3000)}")
            deadline = time.monotonic() + 5
            while victim.alive and time.monotonic() < deadline:
                time.sleep(0.01)
            self.kill(victim)
        else:
            self.kill(victim)
        killed_at = time.monotonic()
        survivors = [m for m in self.live() if m is not victim]
        limit_s = SESSION_TIMEOUT_MS / 1000 + TAKEOVER_GRACE_S
        took = self.wait_until(lambda: self.covered(survivors, False), limit_s,
                               f"kill {number} ({kind} of {victim.name}): survivors owning every partition")
        self.log(f"  taken over in {time.monotonic() - killed_at:.1f} s ({took:.1f} s of waiting): {self.describe_parts()}")
        while len(self.live()) < 3:
            self.spawn()
        self.wait_spread()

    def finish(self) -> None:
        """Stops producing; checks that everything was consumed and committed, and that close() is quick."""
        self.stop_producing.set()
        time.sleep(0.5)
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        probe = Producer({"bootstrap.servers": self.bootstrap})
        del probe
        from confluent_kafka import Consumer

        watcher = Consumer({"bootstrap.servers": self.bootstrap, "group.id": topic_name("watch")})
        try:
            high = {p: watcher.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)[1]
                    for p in range(PARTITIONS)}
        finally:
            watcher.close()

        def all_committed() -> bool:
            result = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(self.group)])[self.group]
            offsets = {tp.partition: tp.offset for tp in result.result(timeout=15).topic_partitions}
            return all(offsets.get(p, -1) >= high[p] for p in range(PARTITIONS))

        self.wait_until(all_committed, DRAIN_TIMEOUT_S, f"committed offsets reaching {high}")
        for member in self.live():
            member.send("close")
        for member in list(self.members):
            if member.close_s is None and not member.alive:
                continue
            start = time.monotonic()
            try:
                member.proc.wait(timeout=CLOSE_LIMIT_S + 5)
            except subprocess.TimeoutExpired:
                self.kill(member)
                raise TakeoverFailure(f"{self.name}: {member.name}'s close() did not return")
            member.eof.wait(5)
            if member.close_s is None or member.close_s > CLOSE_LIMIT_S:
                raise TakeoverFailure(f"{self.name}: {member.name}'s close() took {member.close_s} s "
                                      f"({time.monotonic() - start:.1f} s waited)")
        consumed = set()
        for member in self.members:
            member.eof.wait(5)
            consumed |= member.consumed
        missing = [(p, o) for p in range(PARTITIONS) for o in range(high[p]) if (p, o) not in consumed]
        if missing:
            raise TakeoverFailure(f"{self.name} seed={self.seed}: {len(missing)} records never consumed, e.g. {missing[:5]}")
        errors = [e for m in self.members for e in m.errors]
        if errors:
            raise TakeoverFailure(f"{self.name}: members reported fatal errors: {errors[:5]}")
        if self.producer_error:
            raise TakeoverFailure(f"{self.name}: {self.producer_error}")

    def cleanup(self) -> None:
        self.stop_producing.set()
        for member in self.members:
            if member.alive:
                member.proc.kill()
                member.proc.wait(timeout=10)

    def run(self, kills: int) -> None:
        try:
            self.start()
            for number in range(1, kills + 1):
                self.one_kill(number)
            self.finish()
            self.log(f"run {self.name} seed={self.seed}: {kills} kills taken over, "
                     f"{sum(len(m.consumed) for m in self.members)} records read, {self.spawned} members")
        finally:
            self.cleanup()


def run_all(bootstrap: str, protocols, kills: int, seed: int, log=print) -> list[str]:
    """Runs one group per protocol at once on one broker; returns the failures."""
    failures: list[str] = []
    runs = [Run(bootstrap, name, protocol, assignor, seed, log) for name, protocol, assignor in protocols]

    def go(run: Run) -> None:
        try:
            run.run(kills)
        except Exception as e:  # a failure of one run must not hide the others'
            failures.append(f"{run.name} (seed {seed}): {e}")
            log(f"FAILED {run.name} (seed {seed}): {e}")

    threads = [threading.Thread(target=go, args=(run,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def check_clean_leave(bootstrap: str, name: str, protocol: str, assignor: str, seed: int, log=print) -> None:
    """A member that closes (LeaveGroup, or a KIP-848 leave heartbeat) is replaced at once: the
    survivors own its partitions long before its session would have timed out."""
    run = Run(bootstrap, name, protocol, assignor, seed, log, member_extra=LONG_SESSION)
    try:
        run.start()
        leaving = random.Random(seed).choice(run.live())
        leaving.send("close")
        survivors = [m for m in run.live() if m is not leaving]
        took = run.wait_until(lambda: run.covered(survivors, True), LONG_SESSION_S - TAKEOVER_GRACE_S,
                              f"survivors owning every partition after {leaving.name} left")
        log(f"{name}: {leaving.name} left; taken over in {took:.1f} s")
        leaving.proc.wait(timeout=CLOSE_LIMIT_S + 5)
        leaving.eof.wait(5)
        if leaving.close_s is None or leaving.close_s > CLOSE_LIMIT_S:
            raise TakeoverFailure(f"{name}: the leaving member's close() took {leaving.close_s} s")
        run.finish()
    finally:
        run.cleanup()


# Classic members' session timeout for the tests where a takeover must not wait for an expiry.
LONG_SESSION_S = 30
LONG_SESSION = {"session.timeout.ms": LONG_SESSION_S * 1000}


def check_static_member_restart(bootstrap: str, name: str, seed: int, log=print) -> None:
    """Static membership (classic, KIP-345): a member with a group.instance.id is SIGKILLed and
    started again with the same id: it takes its place back without waiting for its session to
    time out, and nothing is missed. Then a second process with that id joins while the first
    lives: the first is fenced (FENCED_INSTANCE_ID, a fatal error) and the second owns its
    partitions."""
    run = Run(bootstrap, name, "classic", "range", seed, log, member_extra=LONG_SESSION)
    try:
        run.start()
        instance = {"group.instance.id": f"{run.group}-static"}
        # Replace one dynamic member by a static one first.
        dynamic = run.live()[0]
        dynamic.send("close")
        static = run.spawn(instance)
        run.wait_until(lambda: not dynamic.alive, CLOSE_LIMIT_S + 5, "the dynamic member closing")
        run.wait_spread()
        with run.lock:
            owned = list(static.parts or [])
        run.kill(static)
        restarted = run.spawn(instance)
        took = run.wait_until(lambda: run.covered(run.live(), True), LONG_SESSION_S - TAKEOVER_GRACE_S,
                              "the restarted static member taking its place back")
        with run.lock:
            again = list(restarted.parts or [])
        log(f"{name}: static member back in {took:.1f} s with {again} (had {owned})")
        if again != owned:
            raise TakeoverFailure(f"{name}: the restarted static member got {again}, it had {owned}")
        zombie_fenced = restarted
        newcomer = run.spawn(instance)
        run.wait_until(lambda: any("FENCED" in e.upper() for e in zombie_fenced.errors), SPREAD_TIMEOUT_S,
                       "the older member with the same group.instance.id being fenced")
        run.kill(zombie_fenced)
        zombie_fenced.errors.clear()  # expected; what it consumed still counts
        run.wait_until(lambda: run.covered(run.live(), True), SPREAD_TIMEOUT_S,
                       f"the newest static member ({newcomer.name}) owning the partitions")
        run.finish()
    finally:
        run.cleanup()


def check_broker_restart_mid_rebalance(broker, name: str, protocol: str, assignor: str, seed: int,
                                       log=print) -> None:
    """The broker is restarted (SIGTERM, start) while a 4th member's join rebalances the group:
    afterwards the group settles over its 4 members, and nothing is missed."""
    rng = random.Random(f"{seed}-{name}")
    run = Run(broker.bootstrap, name, protocol, assignor, seed, log)
    try:
        run.start()
        run.spawn()
        delay_s = rng.uniform(0.0, 2.0)
        log(f"case: run={name} seed={seed} broker restart {delay_s:.2f} s into a rebalance")
        time.sleep(delay_s)
        broker.restart()
        run.wait_until(lambda: len(run.live()) == 4 and run.covered(run.live(), True), SPREAD_TIMEOUT_S,
                       "the group settling over 4 members after the restart")
        run.finish()
    finally:
        run.cleanup()
