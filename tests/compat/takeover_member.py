"""One consumer-group member for the takeover stress test (group_takeover.py), run as a child process.

    python takeover_member.py CONFIG_JSON TOPIC

It runs the loop of the takeover bug report: `consume(500, timeout=0.5)`, then a synchronous
`commit()` (its "No offset stored" error when nothing new was read is ignored, as are commits a
rebalance refuses). What it sees goes to stdout, one JSON object a line, flushed at once:

    {"ev": "assigned", "parts": [...]}   its assignment, after every change
    {"ev": "leader", "gen": G}            librdkafka elected it leader of generation G (classic)
    {"ev": "msgs", "recs": [[p, o], ...]} records consumed by one consume() call
    {"ev": "committed", "offsets": [[p, o], ...]}
    {"ev": "error", "what": "..."}       a fatal client error (e.g. FENCED_INSTANCE_ID)
    {"ev": "closed", "close_s": S}        after "close" on stdin: how long close() took

Commands on stdin, one a line (the parent's kill plans; the member kills itself with SIGKILL so
that the moment is exact):

    close              leave the group cleanly (close()) and exit
    kill-now           SIGKILL now
    kill-on-assign     SIGKILL in the next assignment callback (right after an assignment)
    kill-on-revoke     SIGKILL in the next revocation callback (in the middle of a rebalance)
    kill-in-join       SIGKILL once it has sent a JoinGroup to rejoin (classic; librdkafka's log
                       says so): it dies counted as joined, parked in the rebalance
    kill-in-commit D   at the next commit, send it asynchronously and SIGKILL D microseconds later,
                       so that the OffsetCommit is in flight
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

from confluent_kafka import Consumer, KafkaError, KafkaException

config = json.loads(sys.argv[1])
topic = sys.argv[2]
out_lock = threading.Lock()


def emit(event: dict) -> None:
    line = json.dumps(event)
    with out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


plan: dict = {}


def on_log(record) -> None:
    # librdkafka's cgrp debug line for a JoinGroup answer: "JoinGroup response: GenerationId 7,
    # Protocol range, LeaderId rdkafka-… (me), my MemberId …". Only the classic protocol has one.
    message = record.getMessage()
    if plan.get("kill-in-join") and "Joining group" in message and 'member id ""' not in message:
        # A rejoin with its member id was just sent: the JoinGroup is parked at the coordinator.
        die()
    if "JoinGroup response" in message and "(me)" in message:
        try:
            generation = int(message.split("GenerationId", 1)[1].split(",", 1)[0])
        except (IndexError, ValueError):
            generation = -1
        emit({"ev": "leader", "gen": generation})


class LogHandler:
    """The logger interface confluent-kafka calls (only .log(level, fmt, *args) is used)."""

    def log(self, level, fmt, *args):
        class Record:
            def getMessage(self):
                return fmt % args if args else fmt

        on_log(Record())


if config.pop("_leader_log", False):
    config["debug"] = "cgrp"
    config["logger"] = LogHandler()


def is_fatal(err: KafkaError) -> bool:
    # A fatal error reaches the consumer as code _FATAL, whose fatal() flag is not set.
    return err.fatal() or err.code() == KafkaError._FATAL


def on_error(err: KafkaError) -> None:
    if is_fatal(err):
        emit({"ev": "error", "what": str(err)})
    else:
        emit({"ev": "warning", "what": str(err)})


config["error_cb"] = on_error
consumer = Consumer(config)


def report_assignment() -> None:
    emit({"ev": "assigned", "parts": sorted(tp.partition for tp in consumer.assignment())})


def on_assign(c, partitions) -> None:
    if plan.pop("kill-on-assign", False):
        die()
    # (confluent-kafka assigns the partitions itself after this callback returns.)


def on_revoke(c, partitions) -> None:
    if plan.pop("kill-on-revoke", False):
        die()


def on_lost(c, partitions) -> None:
    if plan.pop("kill-on-revoke", False):
        die()


def read_commands() -> None:
    """Applies stdin commands; returns when stdin closes or on "close"."""
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "kill-now":
            die()
        elif words[0] == "kill-in-commit":
            plan["kill-in-commit"] = int(words[1])
        elif words[0] in ("kill-on-assign", "kill-on-revoke", "kill-in-join"):
            plan[words[0]] = True
        elif words[0] == "close":
            plan["close"] = True
            return


threading.Thread(target=read_commands, daemon=True).start()
consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
last_assignment = None
while not plan.get("close"):
    try:
        messages = consumer.consume(500, timeout=0.5)
    except KafkaException as e:
        emit({"ev": "error", "what": str(e)})
        messages = []
    assignment = sorted(tp.partition for tp in consumer.assignment())
    if assignment != last_assignment:
        last_assignment = assignment
        emit({"ev": "assigned", "parts": assignment})
    for m in messages:
        # Consumer errors (a fatal FENCED_INSTANCE_ID among them) come as messages with an error.
        if m.error() is not None and is_fatal(m.error()):
            emit({"ev": "error", "what": str(m.error())})
    records = [[m.partition(), m.offset()] for m in messages if m.error() is None]
    if records:
        emit({"ev": "msgs", "recs": records})
    delay_us = plan.pop("kill-in-commit", None)
    if delay_us is not None:
        try:
            consumer.commit(asynchronous=True)
        except KafkaException:
            pass
        time.sleep(delay_us / 1e6)
        die()
    try:
        committed = consumer.commit(asynchronous=False) or []
        offsets = [[tp.partition, tp.offset] for tp in committed if tp.error is None]
        if offsets:
            emit({"ev": "committed", "offsets": offsets})
    except KafkaException as e:
        # _NO_OFFSET when nothing new was read; REBALANCE_IN_PROGRESS and the like mid-rebalance.
        error = e.args[0]
        if is_fatal(error) and "Commit failed" not in str(error):
            emit({"ev": "error", "what": str(error)})
start = time.monotonic()
consumer.close()
emit({"ev": "closed", "close_s": round(time.monotonic() - start, 3)})
