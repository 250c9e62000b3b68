"""Optuna's side of a study, driven by us: ask for new points, tell each ended trial once.

Our store is the record of what happened; Optuna's study (in the same database) is what
the sampler learns from. The driver writes the store first and then tells Optuna, so after
a crash Optuna can only lag behind the store, never run ahead of it, and a resume brings it
up to date (:mod:`search.reconcile`). :class:`StudySearcher` is the Tune searcher that asks
this study for each new trial's configuration (and hands out reruns first).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import optuna
from optuna.trial import FixedTrial, FrozenTrial, TrialState
from ray.tune.search import Searcher

from search.optuna_space import RESUMES, DefineByRun, meta_for
from search.optuna_storage import MaskedRDBStorage
from search.space import Space
from search.store import credentials
from search.store.retry import call_with_retry

T = TypeVar("T")

STATES = {"completed": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "failed": TrialState.FAIL}
"""The Optuna state told for each ending of a trial in our store."""


class OptunaStudy:
    """Optuna's study ``name`` in the database at ``url``; picklable: it holds the masked URL
    as a key and finds the real one at use time (search.store.credentials)."""

    def __init__(self, url: str, name: str, space: Space) -> None:
        self.url_key = credentials.register(url)
        self.name = name
        self.space = space
        self._study: optuna.Study | None = None
        self._asked: dict[int, optuna.Trial] = {}  # this driver's trials, for report()
        self._reported: dict[int, set[int]] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_study": None, "_asked": {}, "_reported": {}}

    @property
    def study(self) -> optuna.Study:
        """The Optuna study, created on first use (same seed and sampler every time)."""
        if self._study is None:
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            search = self.space.search
            sampler = (
                optuna.samplers.RandomSampler(seed=search.seed)
                if search.algorithm == "random"
                else optuna.samplers.TPESampler(seed=search.seed)
            )
            self._study = self.retry(
                lambda: optuna.create_study(
                    study_name=self.name,
                    storage=MaskedRDBStorage(
                        credentials.lookup(self.url_key), engine_kwargs={"pool_pre_ping": True}
                    ),
                    sampler=sampler,
                    direction="maximize" if search.mode == "max" else "minimize",
                    load_if_exists=True,
                ),
                "opening Optuna's study",
            )
        return self._study

    def retry(self, call: Callable[[], T], what: str) -> T:
        """``call()``, retried while the database is away (bounded; see search.store.retry)."""
        return call_with_retry(call, self.url_key, what=what, study=self.name)

    def trials(self) -> list[FrozenTrial]:
        """Every Optuna trial of the study, by number."""
        return self.retry(lambda: self.study.get_trials(deepcopy=False), "reading Optuna's trials")

    def ensure_enqueued(self, queued: list[tuple[dict[str, Any], dict[str, Any]]]) -> int:
        """Enqueue the points of ``queued`` (see ``enqueued_trials``) that Optuna does not
        hold yet (a crash may have cut the first enqueueing short); returns how many."""
        held = {t.user_attrs.get("slot") for t in self.trials()}
        added = 0
        for params, attrs in queued:
            if attrs.get("slot") not in held:
                self.study.enqueue_trial(params, user_attrs=attrs, skip_if_exists=False)
                added += 1
        return added

    def requeue(self, frozen: FrozenTrial, resumes: str | None) -> None:
        """Enqueue a finished trial's point again (``--retry-failed``, or a rerun whose
        Optuna trial already ended); ``resumes`` names the store row the rerun continues."""
        attrs = {k: v for k, v in frozen.user_attrs.items() if k != "slot"}
        if resumes is not None:
            attrs["resumes"] = resumes
        self.study.enqueue_trial(frozen.params, user_attrs=attrs, skip_if_exists=False)

    def ask(self) -> dict[str, Any]:
        """A new trial (an enqueued point first, else the sampler's) as a Tune config."""
        trial = self.retry(self.study.ask, "asking Optuna for a trial")
        self._asked[trial.number] = trial
        meta = DefineByRun(self.space)(trial)
        return {**trial.params, **meta}

    def config_of(self, frozen: FrozenTrial, resumes: str | None) -> dict[str, Any] | None:
        """The Tune config that reruns a RUNNING Optuna trial under its own number, or
        None when its parameters are incomplete (the crash came while it was being asked)."""
        try:
            DefineByRun(self.space)(FixedTrial(frozen.params, number=frozen.number))
        except ValueError:
            return None
        meta = meta_for(self.space, dict(frozen.user_attrs), frozen.number)
        return {**frozen.params, **meta, RESUMES: resumes}

    def report(self, number: int | None, epoch: int, value: float) -> None:
        """An epoch's value as the trial's intermediate value (its curve in optuna-dashboard),
        once per epoch, for trials this driver asked (a rerun's curve stays as it was)."""
        trial = self._asked.get(number) if number is not None else None
        done = self._reported.setdefault(number, set()) if number is not None else set()
        if trial is None or epoch in done or not math.isfinite(value):
            return
        trial.report(float(value), epoch)
        done.add(epoch)

    def tell(self, number: int, status: str, value: float | None = None) -> None:
        """End Optuna trial ``number`` as our store ended it; an already finished trial is
        left as it is. A completed trial without a value is told as failed."""
        state = STATES[status]
        if state == TrialState.COMPLETE and value is None:
            state = TrialState.FAIL
        self.study.tell(
            number,
            value if state == TrialState.COMPLETE else None,
            state=state,
            skip_if_finished=True,
        )
        self._asked.pop(number, None)


class StudySearcher(Searcher):
    """Tune searcher: the reruns a resume prepared, then new trials asked of Optuna.

    Ending trials is not its job: the store callback tells Optuna once the store holds
    the trial's end (the store is written first).
    """

    def __init__(self, ostudy: OptunaStudy, reruns: list[dict[str, Any]] | None = None) -> None:
        super().__init__(metric=ostudy.space.search.metric, mode=ostudy.space.search.mode)
        self.ostudy = ostudy
        self.reruns = list(reruns or [])

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.reruns:
            return self.reruns.pop(0)
        return self.ostudy.ask()

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        """Nothing to do: the store callback tells Optuna after writing the store."""

    def save(self, checkpoint_path: str) -> None:
        """Tune saves searchers with its experiment state; ours keeps only the reruns left
        (a resume plans again from the store and Optuna, never from this file)."""
        Path(checkpoint_path).write_text(json.dumps({"reruns": self.reruns}))

    def restore(self, checkpoint_path: str) -> None:
        self.reruns = list(json.loads(Path(checkpoint_path).read_text()).get("reruns", []))
