"""Logging: configured once by the command line, on stderr, every message once."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from search.cli import build_parser
from search.cli import main as cli_main
from search.logs import NORMAL, OUR_LOGGERS, QUIET, VERBOSE, setup_logging

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in OUR_LOGGERS}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


def emit_all() -> None:
    logging.getLogger("search.runner").info("study started")
    logging.getLogger("leukmodels.data").warning("class rare has 3 images")
    logging.getLogger("search.runner").debug("details")
    logging.getLogger("somelib").info("library chatter")
    logging.getLogger("somelib").warning("library warning")


def test_normal_shows_progress_and_says_what_a_warning_is(capsys) -> None:
    setup_logging(NORMAL)
    setup_logging(NORMAL)  # configuring again replaces, never doubles
    emit_all()
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "study started",
        "warning: class rare has 3 images",
        "warning: library warning",
    ]


def test_quiet_keeps_warnings_only(capsys) -> None:
    setup_logging(QUIET)
    emit_all()
    assert capsys.readouterr().err.splitlines() == [
        "warning: class rare has 3 images",
        "warning: library warning",
    ]


def test_verbose_adds_debug_and_the_source(capsys) -> None:
    setup_logging(VERBOSE)
    emit_all()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 4  # the library's INFO stays out
    assert "search.runner INFO: study started" in lines[0]
    assert "search.runner DEBUG: details" in lines[2]


def test_every_subcommand_takes_quiet_and_verbose(capsys) -> None:
    space = str(ROOT / "spaces" / "quickstart.yaml")
    for flag in ("--quiet", "-q", "--verbose", "-v"):
        assert cli_main(["describe", space, "--json", flag]) == 0
        json.loads(capsys.readouterr().out)  # stdout holds the JSON and nothing else
    with pytest.raises(SystemExit) as info:
        cli_main(["describe", space, "--quiet", "--verbose"])
    assert info.value.code == 2
    required = {
        "describe": ["s.yaml"], "profile": ["s.yaml"], "synth": ["out"], "trial": ["s.yaml"],
        "run": ["s.yaml"], "resume": ["--study", "S"], "studies": [], "best": ["--study", "S"],
        "retrain": ["1"], "report": ["--study", "S", "--out", "o"],
    }  # fmt: skip
    for command, args in required.items():
        parsed = build_parser().parse_args([command, *args, "--quiet", "--json"])
        assert (parsed.quiet, parsed.verbose, parsed.json) == (True, False, True), command
        assert build_parser().parse_args([command, *args, "-v"]).verbose, command
