"""scripts/ringtail-at.sh runs an earlier commit's broker under today's matrix scenarios: its
wrapper passes on the flags the old binary lists in --help and drops the others with their
values, saying which. scripts/ab-latency-goals.sh takes such a binary as a variant's
--ringtail-bin= and refuses one that is not there before any run starts."""

from __future__ import annotations

import os
import subprocess

from conftest import REPO

# Help in clap's layout; the old binary then prints the arguments it was given, one per line.
FAKE_BROKER = """#!/usr/bin/env bash
if [ "$1" = --help ]; then
  printf 'Usage: ringtail [OPTIONS]\\n\\nOptions:\\n      --listen <ADDR>\\n          Where to listen\\n'
  printf '  -d, --data-dir <DIR>\\n          A data dir\\n      --flush <POLICY>\\n  -h, --help\\n'
  exit 0
fi
printf '%s\\n' "$@"
"""


def test_the_wrapper_passes_known_flags_and_drops_the_others_with_their_values(tmp_path):
    binary = tmp_path / "old-ringtail"
    binary.write_text(FAKE_BROKER)
    binary.chmod(0o755)
    wrapper = tmp_path / "wrapper"
    subprocess.run(
        ["bash", str(REPO / "scripts/ringtail-at.sh"), "--wrap", str(binary), str(wrapper)],
        check=True,
    )
    args = [
        "--listen", "127.0.0.1:1",
        "--fetch-residency-check", "on",
        "--data-dir=/x",
        "--write-direct=true",
        "-d", "/y",
        "--flush", "none",
        "--cold-flag-at-the-end",
    ]
    run = subprocess.run([str(wrapper), *args], capture_output=True, text=True, check=True)
    assert run.stdout.splitlines() == ["--listen", "127.0.0.1:1", "--data-dir=/x", "-d", "/y", "--flush", "none"]
    dropped = [line for line in run.stderr.splitlines() if "dropped" in line]
    assert len(dropped) == 3, run.stderr
    assert "--fetch-residency-check on" in dropped[0]
    assert "--write-direct=true" in dropped[1]
    assert "--cold-flag-at-the-end" in dropped[2]


def test_a_binary_that_lists_no_flags_is_refused(tmp_path):
    binary = tmp_path / "not-ringtail"
    binary.write_text("#!/usr/bin/env bash\necho 'no help here'\n")
    binary.chmod(0o755)
    run = subprocess.run(
        ["bash", str(REPO / "scripts/ringtail-at.sh"), "--wrap", str(binary), str(tmp_path / "wrapper")],
        capture_output=True, text=True,
    )
    assert run.returncode != 0
    assert "lists no flags" in run.stderr
    assert not (tmp_path / "wrapper").exists()


def test_a_variant_binary_that_is_not_there_stops_the_ab_before_any_run(tmp_path):
    out = tmp_path / "ab"
    run = subprocess.run(
        ["bash", str(REPO / "scripts/ab-latency-goals.sh"),
         f"before=--ringtail-bin={tmp_path / 'missing'}", "now=--fetch-cold-send-priority 10"],
        capture_output=True, text=True, env={**os.environ, "OUT": str(out)}, timeout=60,
    )
    assert run.returncode == 2, run.stderr
    assert "is not an executable" in run.stderr
    assert not out.exists(), "nothing may be written before the variants are checked"


def test_relative_paths_are_taken_from_where_the_script_was_started(tmp_path):
    # The wrapper runs from wherever the loadgen starts its broker (the run's output directory),
    # so it must name the old binary by an absolute path.
    (tmp_path / "old-ringtail").write_text(FAKE_BROKER)
    (tmp_path / "old-ringtail").chmod(0o755)
    subprocess.run(
        ["bash", str(REPO / "scripts/ringtail-at.sh"), "--wrap", "old-ringtail", "wrapper"],
        check=True, cwd=tmp_path,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = subprocess.run(
        [str(tmp_path / "wrapper"), "--listen", "x", "--unknown", "y"],
        capture_output=True, text=True, check=True, cwd=elsewhere,
    )
    assert run.stdout.splitlines() == ["--listen", "x"]


def test_the_ab_refuses_a_binary_given_as_two_words_or_twice(tmp_path):
    binary = tmp_path / "old-ringtail"
    binary.write_text(FAKE_BROKER)
    binary.chmod(0o755)
    out = tmp_path / "ab"
    for variant, message in [
        (f"before=--ringtail-bin {binary}", "not --ringtail-bin PATH"),
        (f"before=--ringtail-bin={binary} --ringtail-bin={binary}", "--ringtail-bin twice"),
    ]:
        run = subprocess.run(
            ["bash", str(REPO / "scripts/ab-latency-goals.sh"), variant, "now=--fetch-cold-send-priority 10"],
            capture_output=True, text=True, env={**os.environ, "OUT": str(out)}, timeout=60,
        )
        assert run.returncode == 2, run.stderr
        assert message in run.stderr
        assert not out.exists()
    # A relative path is named from where the script was started: here, one that is not there.
    run = subprocess.run(
        ["bash", str(REPO / "scripts/ab-latency-goals.sh"), "before=--ringtail-bin=missing", "now=--x 1"],
        capture_output=True, text=True, env={**os.environ, "OUT": str(out)}, timeout=60, cwd=tmp_path,
    )
    assert run.returncode == 2, run.stderr
    assert f"{tmp_path}/missing is not an executable" in run.stderr
