"""The driver-side Tune callback: every reported epoch and every trial end goes to the store.

Workers never touch the database. Each write is idempotent, so a report delivered twice
(or a trial restarted after a crash or a resume) never makes two rows. The callback also
prints the progress a person reads: one line per trial event and a compact summary.
"""

from __future__ import annotations

import json
import time
from typing import Any

from ray.tune import Callback

from leukmodels.config import EPOCH_METRICS, EPOCH_TIMINGS
from search.cli import log
from search.optuna_space import KIND, NUMBER, REPEAT, SEED, decode_config
from search.space import Space
from search.store.store import Store
from search.trainable import trial_config_for

EPOCH_KEYS = (*EPOCH_METRICS, *EPOCH_TIMINGS)


class StoreCallback(Callback):
    """Writes trials to the store and prints progress; picklable (holds the URL, not a connection)."""

    def __init__(
        self,
        db_url: str,
        study_id: int,
        space: Space,
        overrides: dict[str, Any],
        summary_every_s: float = 20.0,
    ):
        self.db_url = db_url
        self.overrides = overrides
        self.study_id = study_id
        self.space = space
        self.summary_every_s = summary_every_s
        self._store: Store | None = None
        self._ids: dict[str, int] = {}
        self.counts = {"completed": 0, "pruned": 0, "failed": 0}
        self.best: tuple[float, int] | None = None
        self._last_summary = 0.0
        self.interrupted = False

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_store"] = None
        return state

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store.open(self.db_url)
        return self._store

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
        tid = self.store.upsert_trial(
            self.study_id,
            trial.trial_id,
            params=point,
            config=tc.model_dump(mode="json"),
            kind=cfg.get(KIND, "explore"),
            status="running",
            seed=cfg.get(SEED),
            optuna_number=cfg.get(NUMBER),
            repeat=cfg.get(REPEAT, 0),
        )
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

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._start(trial)
        log(f"{self._name(trial)} started {self._label(trial)}")

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        log(f"{self._name(trial)} failed and will be retried")

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        tid = self._trial_id(trial)
        if result.get("final"):
            return
        row = {k: result[k] for k in EPOCH_KEYS if isinstance(result.get(k), (int, float))}
        self.store.record_epoch(tid, int(result["epoch"]), row)
        if int(result["epoch"]) == 1 and result.get("hostname"):
            self.store.upsert_trial(
                self.study_id,
                trial.trial_id,
                params=None,
                config=None,
                kind=None,
                status=None,
                repeat=None,
                node=f"{result['hostname']} ({result.get('node_ip', '?')})",
            )
        value = result.get(self.space.search.metric)
        if self.summary_every_s and time.monotonic() - self._last_summary > self.summary_every_s:
            self._summary(trials)
        if value is not None and int(result["epoch"]) % 5 == 0:
            log(
                f"{self._name(trial)} epoch {result['epoch']} {self.space.search.metric} {value:.4f}"
            )

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        tid = self._trial_id(trial)
        last = trial.last_result or {}
        if last.get("final"):
            payload = json.loads(last["result_json"])
            self.store.record_result(tid, payload)
            epochs_done = payload["epochs_done"]
            self.counts["completed"] += 1
            value = last.get(self.space.search.metric)
            if value is not None and (self.best is None or self._better(value, self.best[0])):
                self.best = (value, tid)
            t = payload["test"]
            log(
                f"{self._name(trial)} completed: {self.space.search.metric} {_fmt(value)}, "
                f"test accuracy {t['accuracy']:.4f} f1 {t['f1']:.4f} ({epochs_done} epochs)"
            )
        else:
            self.store.finish_trial(
                tid, "pruned", fidelity="partial", epochs_done=last.get("epoch")
            )
            self.counts["pruned"] += 1
            log(f"{self._name(trial)} pruned by ASHA at epoch {last.get('epoch')}")
        self._summary(trials)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        tid = self._trial_id(trial)
        error = _error_text(trial)
        self.store.finish_trial(tid, "failed", error=error, fidelity="partial")
        self.counts["failed"] += 1
        first = error.strip().splitlines()[-1] if error.strip() else "unknown error"
        log(f"{self._name(trial)} FAILED: {first[:300]}")
        self._summary(trials)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        for trial in trials:
            tid = self._ids.get(trial.trial_id)
            if tid is None:
                continue
            row = self.store.trial(tid)
            if row and row["status"] == "running":
                self.store.finish_trial(tid, "terminated", fidelity="partial")
                self.interrupted = True
        self._summary(trials, force=True)

    # -- summary ---------------------------------------------------------------------

    def _better(self, a: float, b: float) -> bool:
        return a > b if self.space.search.mode == "max" else a < b

    def _summary(self, trials: list, force: bool = False) -> None:
        self._last_summary = time.monotonic()
        c = dict(self.counts, running=sum(1 for t in trials if t.status == "RUNNING"))
        best = (
            f"best {self.space.search.metric} {self.best[0]:.4f} (trial {self.best[1]})"
            if self.best
            else "best -"
        )
        log(
            f"-- running {c['running']} | completed {c['completed']} | pruned {c['pruned']} | "
            f"failed {c['failed']} | {best}"
        )


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
