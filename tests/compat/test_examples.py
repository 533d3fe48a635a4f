"""The examples/batch_stream jobs, unchanged, against the real broker: the quixstreams stream app
turns a loaded file into exactly the expected output-topic and resumes from its committed offsets
after a restart; the batch job processes a file once and finds nothing new when run again."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "batch_stream"
PYTHON = ROOT / ".venv-examples" / "bin" / "python"
OUTPUT_TIMEOUT_S = 60


def run(*args: str, timeout: float = 60) -> str:
    done = subprocess.run([str(PYTHON), *args], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args}: {done.stderr[-2000:]}"
    return done.stdout


def read_all(bootstrap: str, topic: str, expected: int, timeout_s: float = OUTPUT_TIMEOUT_S) -> list[tuple[str, str]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "examples-reader", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    records = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                records.append((message.key().decode(), message.value().decode()))
        # Anything past the expected count would be a duplicate or a stray: give it a moment to show.
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                records.append((message.key().decode(), message.value().decode()))
    finally:
        consumer.close()
    return records


def lines_file(tmp_path: Path, name: str, first: int, count: int) -> tuple[Path, list[tuple[str, str]]]:
    lines = [f"event {n} important-data" if n % 3 == 0 else f"event {n} routine" for n in range(first, first + count)]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    expected = [(str(n), line.upper()) for n, line in zip(range(first, first + count), lines) if "important-data" in line]
    return path, expected


def start_stream_app(bootstrap: str, state_dir: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([str(PYTHON), str(EXAMPLES / "stream_app.py"), "--bootstrap", bootstrap, "--state-dir", str(state_dir)],
                            stdout=log.open("a"), stderr=subprocess.STDOUT)


def stop(app: subprocess.Popen) -> None:
    app.send_signal(signal.SIGTERM)
    try:
        app.wait(timeout=30)
    except subprocess.TimeoutExpired:
        app.kill()
        pytest.fail("the stream app did not stop on SIGTERM")


def test_stream_app_filters_and_upper_cases_then_resumes_without_reprocessing(bootstrap, tmp_path):
    first, expected_first = lines_file(tmp_path, "first.txt", 0, 60)
    run(str(EXAMPLES / "load_file.py"), "--bootstrap", bootstrap, "--topic", "stream-data-topic", str(first))
    app = start_stream_app(bootstrap, tmp_path / "state", tmp_path / "stream.log")
    try:
        assert read_all(bootstrap, "output-topic", len(expected_first)) == expected_first, (tmp_path / "stream.log").read_text()[-3000:]
        time.sleep(2)  # past the app's 1 s commit interval
    finally:
        stop(app)
    second, expected_second = lines_file(tmp_path, "second.txt", 60, 30)
    run(str(EXAMPLES / "load_file.py"), "--bootstrap", bootstrap, "--topic", "stream-data-topic", "--first-key", "60", str(second))
    app = start_stream_app(bootstrap, tmp_path / "state", tmp_path / "stream.log")
    try:
        everything = expected_first + expected_second
        assert read_all(bootstrap, "output-topic", len(everything)) == everything, "resumed without reprocessing committed input"
    finally:
        stop(app)


def test_batch_job_processes_a_file_once(bootstrap, tmp_path):
    path, _ = lines_file(tmp_path, "batch.txt", 0, 250)
    run(str(EXAMPLES / "load_file.py"), "--bootstrap", bootstrap, "--topic", "batch-data-topic", str(path))
    first = json.loads(run(str(EXAMPLES / "batch_job.py"), "--bootstrap", bootstrap).strip().splitlines()[-1])
    assert first["processed"] == 250
    again = json.loads(run(str(EXAMPLES / "batch_job.py"), "--bootstrap", bootstrap).strip().splitlines()[-1])
    assert again["processed"] == 0, "the second run resumes after the committed offsets"
