"""What a person watching ``leuksearch run`` reads: a status block and one line per event.

:class:`Progress` keeps the counts (done of the budget, running, completed, pruned,
failed), the best value so far, the elapsed time and the ETA (:mod:`search.eta`). On a
terminal it draws them as a live block under the event lines (rich); when stderr is not a
terminal, or with ``--json`` / ``--quiet``, it logs the same status as a plain line after
every trial end and every ``every_s`` seconds. The Tune callback calls
``started`` / ``epoch`` / ``finished`` / ``set_best`` / ``tick`` / ``close``; every event
line itself is logged once, by the callback.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from search.eta import EXPLORE, FULL, Halving, Running, eta_seconds, format_seconds
from search.space import Space

logger = logging.getLogger(__name__)


@dataclass
class _Trial:
    label: str
    kind: str
    started: float
    max_epochs: int
    epoch: int = 0
    value: float | None = None
    epoch_times: list[float] = field(default_factory=list)
    last_epoch: float | None = None  # clock at its last epoch report


@dataclass
class Progress:
    """Counts, best value, elapsed and ETA of a study; drawn live or logged as lines."""

    study: str
    total: int
    full_fidelity: int
    metric: str
    slots: int = 1
    live: bool = False
    every_s: float = 20.0
    counts: dict[str, int] = field(
        default_factory=lambda: {"completed": 0, "pruned": 0, "failed": 0}
    )
    started_kinds: dict[str, int] = field(default_factory=lambda: {FULL: 0, EXPLORE: 0})
    durations: dict[str, list[float]] = field(default_factory=lambda: {FULL: [], EXPLORE: []})
    best: tuple[float, int] | None = None
    halving: Halving | None = None  # the study's ASHA, None without
    clock: Any = time.monotonic

    def __post_init__(self) -> None:
        self.t0 = self.clock()
        self.running: dict[str, _Trial] = {}
        self._last_line = self.t0
        self._logged: tuple | None = None  # the state the last status line reported
        self._live: Any = None
        if self.live:
            self._live = _start_live(self)

    # -- events ------------------------------------------------------------------------

    def started(self, key: str, kind: str, label: str, max_epochs: int) -> None:
        k = FULL if kind != EXPLORE else EXPLORE
        self.started_kinds[k] += 1
        self.running[key] = _Trial(label, k, self.clock(), max_epochs)
        self.slots = max(self.slots, len(self.running))
        self._refresh()

    def epoch(
        self, key: str, epoch: int, value: float | None, epoch_time_s: float | None = None
    ) -> None:
        trial = self.running.get(key)
        if trial is not None:
            trial.epoch, trial.value, trial.last_epoch = epoch, value, self.clock()
            if epoch_time_s is not None:
                trial.epoch_times.append(epoch_time_s)
        self._refresh()

    def finished(self, key: str, status: str) -> None:
        trial = self.running.pop(key, None)
        self.counts[status] = self.counts.get(status, 0) + 1
        if trial is not None:
            self.durations[trial.kind].append(self.clock() - trial.started)
        self._refresh()
        if not self.live:
            self._log_status()

    def set_best(self, value: float, trial_id: int) -> None:
        self.best = (value, trial_id)

    def tick(self) -> None:
        """Called often (every Tune step): redraw, or log the status line now and then."""
        if self.live:
            self._refresh()
        elif self.every_s and self.clock() - self._last_line >= self.every_s:
            self._log_status()

    def close(self) -> None:
        if self._live is not None:
            self._live.update(self.render())
            self._live.stop()
            self._live = None
        elif self._state() != self._logged:  # the last line already says it otherwise
            self._log_status()

    # -- numbers -----------------------------------------------------------------------

    @property
    def done(self) -> int:
        return sum(self.counts.get(k, 0) for k in ("completed", "pruned", "failed"))

    def pending_kinds(self) -> list[str]:
        """Kinds of the trials not started yet, in the order they will start."""
        full = max(self.full_fidelity - self.started_kinds[FULL], 0)
        explore = max(self.total - self.full_fidelity - self.started_kinds[EXPLORE], 0)
        return [FULL] * full + [EXPLORE] * explore

    def eta(self) -> float | None:
        now = self.clock()
        running = [
            Running(
                t.kind, now - t.started, t.epoch, t.max_epochs, tuple(t.epoch_times),
                now - (t.last_epoch if t.last_epoch is not None else t.started),
            )
            for t in self.running.values()
        ]  # fmt: skip
        pending = self.pending_kinds()
        return eta_seconds(self.durations, running, pending, self.slots, self.halving)

    def status_line(self) -> str:
        c = self.counts
        best = (
            f"best {self.metric} {self.best[0]:.4f} (trial {self.best[1]})"
            if self.best
            else "best -"
        )
        return (
            f"-- {self.done}/{self.total} done | running {len(self.running)} | completed "
            f"{c.get('completed', 0)} | pruned {c.get('pruned', 0)} | failed {c.get('failed', 0)} | "
            f"{best} | elapsed {format_seconds(self.clock() - self.t0)} | "
            f"ETA {format_seconds(self.eta())}"
        )

    # -- output ------------------------------------------------------------------------

    def _state(self) -> tuple:
        """What a status line reports, apart from the clock."""
        return (tuple(sorted(self.counts.items())), len(self.running), self.best)

    def _log_status(self) -> None:
        self._last_line = self.clock()
        self._logged = self._state()
        logger.info("%s", self.status_line())

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self.render())

    def render(self) -> Any:
        """The live block: a bar with done/total, the status, one row per running trial."""
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        head = Table.grid(padding=(0, 1))
        head.add_row(
            Text(self.study, style="bold"),
            ProgressBar(total=max(self.total, 1), completed=self.done, width=30),
            Text(self.status_line().removeprefix("-- ")),
        )
        rows = Table.grid(padding=(0, 2))
        now = self.clock()
        for t in sorted(self.running.values(), key=lambda t: t.started):
            value = "" if t.value is None else f"{self.metric} {t.value:.4f}"
            rows.add_row(
                Text(f"  {t.label}"),  # Text: a label's [kind] is not rich markup
                Text(f"epoch {t.epoch}/{t.max_epochs}"),
                Text(value),
                Text(format_seconds(now - t.started)),
            )
        return Group(head, rows)


def _start_live(progress: Progress) -> Any:
    from rich.console import Console
    from rich.live import Live

    live = Live(
        progress.render(),
        console=Console(file=sys.stderr),
        refresh_per_second=2,
        redirect_stderr=True,
        redirect_stdout=False,
        transient=False,
    )
    live.start()
    return live


def halving_of(space: Space) -> Halving | None:
    """The ASHA the runner sets up for ``space`` (search.asha); None without a scheduler."""
    sched = space.search.scheduler
    if sched.kind != "asha":
        return None
    max_epochs = space.trial_config(space.baseline()).params.epochs
    return Halving(min(sched.grace_epochs, max_epochs), sched.reduction_factor, max_epochs)


def wants_live(json_output: bool, quiet: bool) -> bool:
    """A live block only on a terminal, and not with --json or --quiet."""
    return not json_output and not quiet and sys.stderr.isatty()
