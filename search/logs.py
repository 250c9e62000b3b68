"""Logging for the command line: one stderr handler, configured once per process.

Every module logs to ``logging.getLogger(__name__)``, so the service's loggers sit under
``search`` and the training library's under ``leukmodels`` (both packages of the
leuksearch distribution: :data:`OUR_LOGGERS`). :func:`setup_logging` shows their INFO
messages (progress) by default, only warnings and errors with ``--quiet``, and DEBUG with
the logger names and times with ``--verbose``; other libraries' warnings pass through the
same handler. Logs never go to stdout, which belongs to ``--json`` output.
"""

from __future__ import annotations

import logging
import sys

OUR_LOGGERS = ("search", "leukmodels")
QUIET, NORMAL, VERBOSE = -1, 0, 1


class _Stderr(logging.StreamHandler):
    """A handler on whatever ``sys.stderr`` is when a record comes (tests swap it)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ sets it; sys.stderr wins
        pass


class _Formatter(logging.Formatter):
    """Bare progress lines; warnings and errors say what they are."""

    def __init__(self, verbose: bool) -> None:
        fmt = "%(asctime)s %(name)s %(levelname)s: %(message)s" if verbose else "%(message)s"
        super().__init__(fmt, datefmt="%H:%M:%S")
        self.verbose = verbose

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if not self.verbose and record.levelno >= logging.WARNING:
            text = f"{record.levelname.lower()}: {text}"
        return text


def setup_logging(verbosity: int = NORMAL) -> None:
    """Send log records to stderr: ``QUIET`` (warnings and errors), ``NORMAL`` (progress)
    or ``VERBOSE`` (debug, with logger names). Calling it again replaces the setup."""
    handler = _Stderr()
    handler.setFormatter(_Formatter(verbose=verbosity >= VERBOSE))
    handler.set_name("leuksearch")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "leuksearch"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    level = {QUIET: logging.WARNING, NORMAL: logging.INFO}.get(verbosity, logging.DEBUG)
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(level)
    # A checkpoint (CheckpointConfig(num_to_keep=1): a retried trial goes on from its last
    # checkpointed epoch) forces Tune's experiment snapshot on purpose; Tune would warn
    # about that "excessive" snapshotting again and again, in five lines each time.
    logging.getLogger("ray.tune.execution.experiment_state").setLevel(
        logging.WARNING if verbosity >= VERBOSE else logging.ERROR
    )
