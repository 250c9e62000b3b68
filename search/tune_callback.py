"""The driver-side Tune callback: every reported epoch and every trial end goes to the store.

Workers never touch the database. Each write is idempotent, so a report delivered twice
(or a trial restarted after a crash or a resume) never makes two rows. The callback also
logs the progress a person reads: one line per trial event, and a status (done of the
budget, best so far, elapsed, ETA) drawn live or logged by :class:`search.progress.Progress`.
Its counters start from the store, so a resumed study counts on from where it stopped.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from ray.tune import Callback

from leukmodels.results import EpochRow, TrialResult
from search.journal import Journal
from search.optuna_space import (
    KIND,
    NUMBER,
    REPEAT,
    RESUMES,
    SEED,
    decode_config,
    enqueued_trials,
)
from search.optuna_study import OptunaStudy
from search.progress import EXPLORE, FULL, Progress, halving_of
from search.space import Space
from search.store import credentials
from search.store.records import TrialUpdate
from search.store.retry import call_with_retry
from search.store.store import Store
from search.trainable import (
    ERROR_KEY,
    GPUS_KEY,
    HOST_KEY,
    IP_KEY,
    NODE_KEY,
    RESULT_KEY,
    trial_config_for,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")
_COUNTED = ("completed", "pruned", "failed")
_MODULE_PATH = re.compile(r"^(?:[A-Za-z_]\w*\.)+(?=\w+: )")


class StoreCallback(Callback):
    """Writes trials to the store and prints progress.

    Picklable into Ray's experiment state: it holds the masked database URL as a key (no
    password, no connection) and finds the real URL at use time (search.store.credentials).
    Every write goes through a :class:`~search.journal.Journal` (kept in order while the
    database is away); Optuna is told how a trial ended after the store holds it.
    """

    def __init__(
        self,
        db_url: str,
        study: str,
        study_id: int,
        space: Space,
        overrides: dict[str, Any],
        summary_every_s: float = 20.0,
        live: bool = False,
        ostudy: OptunaStudy | None = None,
    ):
        self.db_key = credentials.register(db_url)
        self.ostudy = ostudy
        self._journal: Journal | None = None
        self._seen: set[str] = set()  # trials with a result since they (re)started
        self._nodes: dict[str, str] = {}  # the Ray node each trial last reported from
        self.overrides = overrides
        self.study = study
        self.study_id = study_id
        self.space = space
        self.summary_every_s = summary_every_s
        self.live = live
        self._progress: Progress | None = None
        self._store: Store | None = None
        self._ids: dict[str, int] = {}
        self.counts = dict.fromkeys(_COUNTED, 0)
        self.best: tuple[float, int] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_store"] = None
        state["_journal"] = None
        state["_progress"] = None  # a live display stays in the driver that draws it
        return state

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store.open(credentials.lookup(self.db_key))
        return self._store

    @property
    def journal(self) -> Journal:
        if self._journal is None:
            self._journal = Journal(self.db_key, self.study)
        return self._journal

    def setup(self, **info: Any) -> None:
        """Counters and trial ids from the store (all zero for a new study)."""
        study = self._read(lambda: self.store.study(self.study))
        if study is None or study.id != self.study_id:
            raise LookupError(f"study {self.study!r} (id {self.study_id}) is not in the store")
        self.counts = {k: study.counts.get(k, 0) for k in _COUNTED}
        if study.best_value is not None and study.best_trial_id is not None:
            self.best = (study.best_value, study.best_trial_id)
        stored = self._read(lambda: self.store.trials(self.study_id))
        self._ids = {t.tune_trial_id: t.trial_id for t in stored}
        self._progress = self._new_progress(study, stored)

    def _new_progress(self, study: Any, stored: list) -> Progress:
        """The status display, its counts and trial durations so far from the store."""
        budget = (study.config or {}).get("budget") or 0
        progress = Progress(
            study=self.study,
            total=int(budget),
            full_fidelity=len(enqueued_trials(self.space)),
            metric=self.space.search.metric,
            slots=self.space.search.max_concurrent or 1,
            live=self.live and sys.stderr.isatty(),  # a resumed study may log to a file
            every_s=self.summary_every_s,
            counts=dict(self.counts),
            best=self.best,
            halving=halving_of(self.space),
        )
        for t in stored:
            kind = EXPLORE if t.kind == "explore" else FULL
            if t.status != "pending":
                progress.started_kinds[kind] += 1
            if t.status in ("completed", "pruned") and t.duration_s:
                progress.durations[kind].append(t.duration_s)
        return progress

    @property
    def progress(self) -> Progress:
        if self._progress is None:
            self.setup()
        assert self._progress is not None
        return self._progress

    # -- helpers ---------------------------------------------------------------------

    def _trial_id(self, trial: Any) -> int:
        tid = self._ids.get(trial.trial_id)
        if tid is None:
            tid = self._start(trial)
        return tid

    def _start(self, trial: Any) -> int:
        """The trial's store row: a rerun after a crash (``RESUMES``) keeps its old row."""
        cfg = trial.config
        point = decode_config(self.space, cfg)
        tc = trial_config_for(self.space, cfg, self.overrides)
        update = TrialUpdate(
            params=point,
            config=tc.model_dump(mode="json"),
            kind=cfg.get(KIND, "explore"),
            status="running",
            seed=cfg.get(SEED),
            optuna_number=cfg.get(NUMBER),
            repeat=cfg.get(REPEAT, 0),
        )
        tid = self.store.upsert_trial(self.study_id, self._key(trial), update)
        self._ids[trial.trial_id] = tid
        return tid

    def _key(self, trial: Any) -> str:
        """The trial's key in the store: its Tune id, or the row a rerun continues."""
        return str(trial.config.get(RESUMES) or trial.trial_id)

    def _write(self, what: str, write: Callable[[], object]) -> None:
        """Write now, or keep the write in order while the database is away."""
        self.journal.add(what, write)

    def _read(self, read: Callable[[], T]) -> T:
        return call_with_retry(read, self.db_key, what="reading trials", study=self.study)

    def _tell(self, trial: Any, status: str, value: float | None = None) -> None:
        """Tell Optuna how the trial ended, after the store holds it."""
        number = trial.config.get(NUMBER)
        if self.ostudy is not None and number is not None:
            self.ostudy.tell(number, status, value)

    def _name(self, trial: Any) -> str:
        return f"trial {self._ids.get(trial.trial_id, '?')}"

    def _label(self, trial: Any) -> str:
        point = decode_config(self.space, trial.config)
        shown = {k: v for k, v in point.items() if self.space.factors[k].searched}
        text = " ".join(
            f"{k}={self.space.factors[k].level_label(v) if isinstance(v, list) else _fmt(v)}"
            for k, v in shown.items()
        )
        kind = trial.config.get(KIND, "explore")
        return f"[{kind}] {text}"

    # -- Tune hooks ------------------------------------------------------------------

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        self.progress.tick()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._seen.discard(trial.trial_id)
        self._write("a trial's start", lambda: self._start(trial))
        label = self._label(trial)
        logger.info("%s started %s", self._name(trial), label)
        epochs = trial_config_for(self.space, trial.config, self.overrides).params.epochs
        kind = trial.config.get(KIND, "explore")
        self.progress.started(trial.trial_id, kind, f"{self._name(trial)} {label}", epochs)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        logger.warning("%s failed and will be retried", self._name(trial))

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        if result.get("final"):
            return
        row = EpochRow.model_validate({k: result.get(k) for k in EpochRow.model_fields})
        # the node whenever it changes: a retry, perhaps elsewhere, may go on from a
        # checkpoint, so its first epoch there need not be epoch 1
        node = None
        if result.get(NODE_KEY) and self._nodes.get(trial.trial_id) != result[NODE_KEY]:
            self._nodes[trial.trial_id] = result[NODE_KEY]
            node = node_update(result)
        value = result.get(self.space.search.metric)

        def write() -> None:
            self.store.record_epoch(self._trial_id(trial), row)
            if node is not None:
                self.store.upsert_trial(self.study_id, self._key(trial), node)
            if self.ostudy is not None and value is not None:
                self.ostudy.report(trial.config.get(NUMBER), row.epoch, value)

        self._write(f"epoch {row.epoch} of {self._name(trial)}", write)
        if trial.trial_id not in self._seen:
            self._seen.add(trial.trial_id)
            if row.epoch > 1:
                logger.info(
                    "%s continues from its checkpoint after epoch %d",
                    self._name(trial), row.epoch - 1,
                )  # fmt: skip
        self.progress.epoch(trial.trial_id, row.epoch, value, row.epoch_time_s)
        if value is not None and not self.live:  # live: the status block shows each epoch
            metric = self.space.search.metric
            logger.info("%s epoch %d %s %.4f", self._name(trial), row.epoch, metric, value)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        last = dict(trial.last_result or {})
        if last.get(ERROR_KEY):
            return self._failed(trial, last[ERROR_KEY])
        if last.get("final"):
            self._completed(trial, TrialResult.model_validate_json(last[RESULT_KEY]))
            return
        epoch = last.get("epoch")

        def write() -> None:
            tid = self._trial_id(trial)
            self.store.finish_trial(tid, "pruned", fidelity="partial", epochs_done=epoch)
            self._tell(trial, "pruned")

        self._write(f"the end of {self._name(trial)}", write)
        self.counts["pruned"] += 1
        logger.info("%s pruned by ASHA at epoch %s", self._name(trial), epoch)
        self.progress.finished(trial.trial_id, "pruned")

    def _completed(self, trial: Any, result: TrialResult) -> None:
        value = result.best_value

        def write() -> None:
            tid = self._trial_id(trial)
            # every epoch again (idempotent): one continued from a checkpoint may hold
            # epochs whose reports a crashed driver never wrote
            for row in result.epochs:
                self.store.record_epoch(tid, row)
            self.store.record_result(tid, result)
            self._tell(trial, "completed", value)
            if value is not None and (self.best is None or self._better(value, self.best[0])):
                self.best = (value, tid)
                self.progress.set_best(value, tid)

        self._write(f"the result of {self._name(trial)}", write)
        self.counts["completed"] += 1
        logger.info(
            "%s completed: %s %s, test accuracy %.4f f1 %.4f (%d epochs)",
            self._name(trial), self.space.search.metric, _fmt(value),
            result.test.accuracy, result.test.f1, result.epochs_done,
        )  # fmt: skip
        self.progress.finished(trial.trial_id, "completed")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._failed(trial, _error_text(trial))

    def _failed(self, trial: Any, error: str) -> None:
        """Store the failure with its whole text; the terminal gets its last line."""

        def write() -> None:
            tid = self._trial_id(trial)
            self.store.finish_trial(tid, "failed", error=error, fidelity="partial")
            self._tell(trial, "failed")

        self._write(f"the failure of {self._name(trial)}", write)
        self.counts["failed"] += 1
        logger.error("%s FAILED: %s", self._name(trial), error_line(error)[:300])
        self.progress.finished(trial.trial_id, "failed")

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        """Write what waited for the database (a no-op while it is still away)."""
        if len(self.journal):
            self.journal.flush()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """Write everything kept; trials still running were cut short: terminated, and the
        study interrupted."""
        self.journal.drain()
        interrupted = False
        for trial in trials:
            tid = self._ids.get(trial.trial_id)
            if tid is None:
                continue
            stored = self._read(lambda tid=tid: self.store.trial(tid))
            if stored is not None and stored.status == "running":
                self._write("a cut-short trial", lambda tid=tid: self._terminate(tid))
                interrupted = True
        if interrupted:
            self._write("the study's status", self._interrupted)
        self.journal.drain()
        self.progress.close()

    def _terminate(self, tid: int) -> None:
        self.store.finish_trial(tid, "terminated", fidelity="partial")

    def _interrupted(self) -> None:
        self.store.set_study_status(self.study_id, "interrupted")

    # -- summary ---------------------------------------------------------------------

    def _better(self, a: float, b: float) -> bool:
        return a > b if self.space.search.mode == "max" else a < b


def node_update(result: dict) -> TrialUpdate:
    """``ls_trials.node`` ("node id, host (IP)": several Ray nodes may share a host) and
    ``gpu_ids`` from a trial's epoch report."""
    node = f"{result[NODE_KEY]}, {result.get(HOST_KEY, '?')} ({result.get(IP_KEY, '?')})"
    return TrialUpdate(node=node[:200], gpu_ids=list(result.get(GPUS_KEY) or []))


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def error_line(error: str | None) -> str:
    """The line of an error text (a traceback ends with it) a person reads first, without
    the exception's module path."""
    lines = (error or "").strip().splitlines()
    return _MODULE_PATH.sub("", lines[-1].strip()) if lines else "unknown error"


def _error_text(trial: Any) -> str:
    path = getattr(trial, "error_file", None)
    if path:
        try:
            with open(path) as fh:
                return fh.read()[-20000:]
        except OSError:
            pass
    return str(getattr(trial, "error_msg", None) or "trial raised an error (no error file)")
