"""The command line explains itself: help on every flag, plain top-level help, completion,
and the documented exit codes 0, 1, 2 and 130, each provoked for real."""

from __future__ import annotations

import argparse
import os
import pty
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from search.cli import build_parser
from search.store.schema import TRIAL_STATUSES

ROOT = Path(__file__).resolve().parents[1]


def _walk(parser: argparse.ArgumentParser, path: str = "leuksearch"):
    for action in parser._actions:  # our own parser: argparse keeps no public list
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, f"{path} {name}")
        else:
            yield path, action


def test_every_flag_and_argument_has_help() -> None:
    missing = [
        f"{path}: {'/'.join(a.option_strings) or a.dest}"
        for path, a in _walk(build_parser())
        if not (a.help and a.help.strip()) or a.help == argparse.SUPPRESS
    ]
    assert missing == []


def test_every_command_has_help_and_status_choices_match_the_store() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert all(choice.help for choice in sub._choices_actions)
    trials = sub.choices["trials"]
    status = next(a for a in trials._actions if a.dest == "status")
    assert tuple(status.choices) == TRIAL_STATUSES


def _cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "search.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        **kw,
    )


def test_top_level_help_is_plain_text_and_lists_exit_codes() -> None:
    r = _cli("--help")
    assert r.returncode == 0
    assert "``" not in r.stdout and ":class:" not in r.stdout and ":func:" not in r.stdout
    for code in ("0", "1", "2", "130"):
        assert re.search(rf"^\s+{code}\s+\w", r.stdout, re.M), code
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Exit codes") :][:1500]
    for code in ("`0`", "`1`", "`2`", "`130`"):
        assert code in section


def test_exit_code_2_for_a_bad_flag_and_a_missing_file(tmp_path: Path) -> None:
    r = _cli("describe", str(tmp_path / "nope.yaml"))
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.splitlines()) == 1
    r = _cli("best", "--study", "s", "--no-such-flag")
    assert r.returncode == 2 and "unrecognized arguments" in r.stderr


def test_exit_code_130_on_ctrl_c(tmp_path: Path) -> None:
    """SIGINT while `synth` writes its images (their folder exists): one line, exit 130."""
    out = tmp_path / "a" / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "search.cli", "synth", str(out), "--n", "1500", "--size", "64"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not out.parent.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert err.strip().splitlines() == ["leuksearch synth: interrupted"]


def test_exit_code_1_when_delete_is_answered_no(sqlite_url: str) -> None:
    """`delete` asks on a terminal; 'n' deletes nothing and exits 1."""
    from search.store.records import StudyRecord
    from search.store.store import Store

    with Store.open(sqlite_url) as store:
        store.ensure_study(
            StudyRecord(name="cli-no", space_yaml="x", space_hash="h", metric="val_f1", mode="max")
        )
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "search.cli", "delete", "--study", "cli-no", "--db", sqlite_url],
        stdin=follower, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    os.close(follower)
    os.write(leader, b"n\n")
    out, err = proc.communicate(timeout=60)
    os.close(leader)
    assert proc.returncode == 1, err
    assert "nothing deleted" in out
    with Store.open(sqlite_url) as store:
        assert store.study("cli-no") is not None


@pytest.mark.parametrize(
    "line, expected",
    [("leuksearch tri", {"trial", "trials"}), ("leuksearch export 3 --for", {"--format"})],
)
def test_completion_answers_the_shell(tmp_path: Path, line: str, expected: set[str]) -> None:
    """argcomplete answers a shell's completion request (what `register-python-argcomplete
    leuksearch` wires up): the words come back on the file the shell names."""
    answer = tmp_path / "completions"
    env = {
        **os.environ,
        "_ARGCOMPLETE": "1",
        "COMP_LINE": line,
        "COMP_POINT": str(len(line)),
        "_ARGCOMPLETE_IFS": "\n",
        "_ARGCOMPLETE_STDOUT_FILENAME": str(answer),
    }
    r = subprocess.run(
        [sys.executable, "-m", "search.cli"], env=env, capture_output=True, text=True,
        timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert set(answer.read_text().split()) == expected


def test_gitignore_lists_the_quick_start_report() -> None:
    """The quick start's report/ is ignored at the top only: search/report is source."""
    lines = (ROOT / ".gitignore").read_text().split()
    assert "/report/" in lines
    assert not any(
        line.strip("/") in {"report", "runs", "search"} and not line.startswith("/")
        for line in lines
    )
