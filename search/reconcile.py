"""Bring Optuna up to date with our store after a crash, and plan what a resume runs.

The store is the source of truth: the driver writes a trial's end there before it tells
Optuna, so Optuna can only lag behind. :func:`plan_resume`

- tells Optuna every trial the store has ended (completed, pruned, failed) that Optuna
  still holds as RUNNING;
- reruns every trial the crash cut short (store: running, pending or terminated) under its
  own Optuna number and store row: a stale RUNNING Optuna trial is *re-queued*, not failed;
- reruns Optuna RUNNING trials that never reached the store (asked just before the crash),
  except one whose parameters are incomplete: that one is closed as FAIL (and its enqueued
  point, if it had one, enqueued again);
- with ``retry_failed``, enqueues failed trials' points again to rerun into the same rows;
- enqueues ablation or grid points a crash kept from being enqueued at all.

Trials that completed before the crash are never run again. The plan says how many Tune
trials remain: the budget less the trials the store has ended.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from search.optuna_study import OptunaStudy
from search.store.records import StudyInfo, TrialRecord
from search.store.schema import SEARCH_KINDS
from search.store.store import Store

logger = logging.getLogger(__name__)

ENDED = ("completed", "pruned", "failed")
CUT_SHORT = ("running", "pending", "terminated")


@dataclass
class ResumePlan:
    """What a resume runs: ``reruns`` (Tune configs) first, then new Optuna trials up to
    ``remaining`` Tune trials in all; ``notes`` say what was reconciled."""

    reruns: list[dict[str, Any]] = field(default_factory=list)
    remaining: int = 0
    notes: list[str] = field(default_factory=list)


def _value(row: TrialRecord) -> float | None:
    extra = row.result.extra if row.result is not None else None
    return (extra or {}).get("best_value")


def plan_resume(
    store: Store,
    study: StudyInfo,
    ostudy: OptunaStudy,
    queued: list[tuple[dict[str, Any], dict[str, Any]]],
    retry_failed: bool = False,
) -> ResumePlan:
    """Reconcile Optuna from the store and plan the rest of ``study``'s budget."""
    plan = ResumePlan()
    rows = [t for t in store.trials(study.id) if t.kind in SEARCH_KINDS]
    frozen = {t.number: t for t in ostudy.trials()}
    rerun_status = CUT_SHORT + (("failed",) if retry_failed else ())
    for row in rows:
        ft = frozen.get(row.optuna_number) if row.optuna_number is not None else None
        if ft is None:
            plan.notes.append(f"trial {row.trial_id} has no Optuna trial; left as {row.status}")
            continue
        if row.status in rerun_status:
            _rerun(plan, ostudy, ft, row)
        elif row.status in ENDED and ft.state == TrialState.RUNNING:
            ostudy.tell(ft.number, row.status, _value(row))
            plan.notes.append(f"Optuna trial {ft.number} told {row.status} (trial {row.trial_id})")
    in_store = {t.optuna_number for t in rows}
    for ft in frozen.values():
        if ft.state == TrialState.RUNNING and ft.number not in in_store:
            _adopt(plan, ostudy, ft, queued)
    added = ostudy.ensure_enqueued(queued)
    if added:
        plan.notes.append(f"{added} ablation/grid point(s) enqueued that a crash had kept out")
    skip = ("completed", "pruned") if retry_failed else ENDED
    ended = sum(1 for t in rows if t.status in skip)
    budget = int((study.config or {}).get("budget") or 0)
    plan.remaining = max(budget - ended, len(plan.reruns))
    return plan


def _rerun(plan: ResumePlan, ostudy: OptunaStudy, ft: FrozenTrial, row: TrialRecord) -> None:
    """Run a stored trial again into its own row (its Optuna trial's number if still open)."""
    cfg = ostudy.config_of(ft, row.tune_trial_id) if ft.state == TrialState.RUNNING else None
    if cfg is not None:
        plan.reruns.append(cfg)
        plan.notes.append(
            f"trial {row.trial_id} ({row.status}) rerun; stale Optuna trial {ft.number} re-queued"
        )
        return
    if ft.state == TrialState.RUNNING:
        ostudy.tell(ft.number, "failed")
    ostudy.requeue(ft, row.tune_trial_id)
    plan.notes.append(
        f"trial {row.trial_id} ({row.status}) rerun as a new Optuna trial "
        f"(Optuna trial {ft.number} stays {ft.state.name if ft.state != TrialState.RUNNING else 'FAIL'})"
    )


def _adopt(
    plan: ResumePlan,
    ostudy: OptunaStudy,
    ft: FrozenTrial,
    queued: list[tuple[dict[str, Any], dict[str, Any]]],
) -> None:
    """An Optuna trial asked before the crash but never stored: run it, or close it."""
    cfg = ostudy.config_of(ft, None)
    if cfg is not None:
        plan.reruns.append(cfg)
        plan.notes.append(f"stale Optuna trial {ft.number} (never started) re-queued")
        return
    ostudy.tell(ft.number, "failed")
    plan.notes.append(f"stale Optuna trial {ft.number} had incomplete parameters: closed as FAIL")
    slot = ft.user_attrs.get("slot")
    if isinstance(slot, int) and 0 <= slot < len(queued):
        params, attrs = queued[slot]
        ostudy.study.enqueue_trial(params, user_attrs=attrs, skip_if_exists=False)
