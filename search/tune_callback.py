"""The driver-side Tune callback: every reported epoch and every trial end goes to the store.

Workers never touch the database. Each write is idempotent, so a report delivered twice
(or a trial restarted after a crash or a resume) never makes two rows. The callback also
logs the progress a person reads: one line per trial event, and a status (done of the
budget, best so far, elapsed, ETA) drawn live or logged by :class:`search.progress.Progress`.
Its counters start from the store, so a resumed study counts on from where it stopped.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from ray.tune import Callback

from leukmodels.results import EpochRow, TrialResult
from search.optuna_space import KIND, NUMBER, REPEAT, SEED, decode_config, enqueued_trials
from search.progress import EXPLORE, FULL, Progress
from search.space import Space
from search.store import credentials
from search.store.records import TrialUpdate
from search.store.store import Store
from search.trainable import (
    GPUS_KEY,
    HOST_KEY,
    IP_KEY,
    NODE_KEY,
    RESULT_KEY,
    trial_config_for,
)

logger = logging.getLogger(__name__)
_COUNTED = ("completed", "pruned", "failed")


class StoreCallback(Callback):
    """Writes trials to the store and prints progress.

    Picklable into Ray's experiment state: it holds the masked database URL as a key (no
    password, no connection) and finds the real URL at use time (search.store.credentials).
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
    ):
        self.db_key = credentials.register(db_url)
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
        state["_progress"] = None  # a live display stays in the driver that draws it
        return state

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store.open(credentials.lookup(self.db_key))
        return self._store

    def setup(self, **info: Any) -> None:
        """Counters and trial ids from the store (all zero for a new study)."""
        study = self.store.study(self.study)
        if study is None or study.id != self.study_id:
            raise LookupError(f"study {self.study!r} (id {self.study_id}) is not in the store")
        self.counts = {k: study.counts.get(k, 0) for k in _COUNTED}
        if study.best_value is not None and study.best_trial_id is not None:
            self.best = (study.best_value, study.best_trial_id)
        stored = self.store.trials(self.study_id)
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
        tid = self.store.upsert_trial(self.study_id, trial.trial_id, update)
        self._ids[trial.trial_id] = tid
        return tid

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
        self._start(trial)
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
        tid = self._trial_id(trial)
        if result.get("final"):
            return
        row = EpochRow.model_validate({k: result.get(k) for k in EpochRow.model_fields})
        self.store.record_epoch(tid, row)
        if row.epoch == 1 and result.get(NODE_KEY):  # again on a retry, perhaps elsewhere
            self.store.upsert_trial(self.study_id, trial.trial_id, node_update(result))
        value = result.get(self.space.search.metric)
        self.progress.epoch(trial.trial_id, row.epoch, value)
        if value is not None and not self.live:  # live: the status block shows each epoch
            metric = self.space.search.metric
            logger.info("%s epoch %d %s %.4f", self._name(trial), row.epoch, metric, value)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        tid = self._trial_id(trial)
        last = trial.last_result or {}
        if last.get("final"):
            result = TrialResult.model_validate_json(last[RESULT_KEY])
            self.store.record_result(tid, result)
            self.counts["completed"] += 1
            value = result.best_value
            if value is not None and (self.best is None or self._better(value, self.best[0])):
                self.best = (value, tid)
                self.progress.set_best(value, tid)
            logger.info(
                "%s completed: %s %s, test accuracy %.4f f1 %.4f (%d epochs)",
                self._name(trial), self.space.search.metric, _fmt(value),
                result.test.accuracy, result.test.f1, result.epochs_done,
            )  # fmt: skip
        else:
            self.store.finish_trial(
                tid, "pruned", fidelity="partial", epochs_done=last.get("epoch")
            )
            self.counts["pruned"] += 1
            logger.info("%s pruned by ASHA at epoch %s", self._name(trial), last.get("epoch"))
        status = "completed" if last.get("final") else "pruned"
        self.progress.finished(trial.trial_id, status)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        tid = self._trial_id(trial)
        error = _error_text(trial)
        self.store.finish_trial(tid, "failed", error=error, fidelity="partial")
        self.counts["failed"] += 1
        first = error.strip().splitlines()[-1] if error.strip() else "unknown error"
        logger.error("%s FAILED: %s", self._name(trial), first[:300])
        self.progress.finished(trial.trial_id, "failed")

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """Trials still running were cut short: terminated, and the study interrupted."""
        interrupted = False
        for trial in trials:
            tid = self._ids.get(trial.trial_id)
            if tid is None:
                continue
            stored = self.store.trial(tid)
            if stored is not None and stored.status == "running":
                self.store.finish_trial(tid, "terminated", fidelity="partial")
                interrupted = True
        if interrupted:
            self.store.set_study_status(self.study_id, "interrupted")
        self.progress.close()

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


def _error_text(trial: Any) -> str:
    path = getattr(trial, "error_file", None)
    if path:
        try:
            with open(path) as fh:
                return fh.read()[-20000:]
        except OSError:
            pass
    return str(getattr(trial, "error_msg", None) or "trial raised an error (no error file)")
