"""What the live page shows, read from the store: progress with ETA, trials, the learning
curves of running trials, and the report (rebuilt only when a trial has ended)."""

from __future__ import annotations

import hashlib
import tempfile
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from search.eta import Running, eta_seconds, format_seconds
from search.listing import last_error_line, trial_row
from search.optuna_space import enqueued_trials
from search.progress import EXPLORE, FULL, halving_of
from search.space import Space, load_space
from search.store.records import EpochRecord, StudyInfo, TrialRecord
from search.store.store import Store


def _seconds_since(stamp: str | None, now: datetime) -> float:
    if not stamp:
        return 0.0
    return max((now - datetime.fromisoformat(stamp)).total_seconds(), 0.0)


def _running(trial: TrialRecord, kind: str, epochs: list[EpochRecord], now: datetime) -> Running:
    """A stored running trial as the ETA sees it: its epoch times from its stored epochs."""
    max_epochs = ((trial.config or {}).get("params") or {}).get("epochs", 0)
    times = tuple(e.epoch_time_s for e in epochs if e.epoch_time_s is not None)
    since = _seconds_since(epochs[-1].recorded_at if epochs else trial.started_at, now)
    elapsed = _seconds_since(trial.started_at, now)
    return Running(kind, elapsed, trial.epochs_done, max_epochs, times, since)


def progress_of(
    study: StudyInfo,
    space: Space,
    trials: list[TrialRecord],
    epochs: dict[int, list[EpochRecord]] | None = None,
) -> dict[str, Any]:
    """done/total, counts, best, elapsed and ETA (search.eta) from the stored trials and
    the stored ``epochs`` of the running ones."""
    now = datetime.now(timezone.utc)
    total = int((study.config or {}).get("budget") or len(trials))
    full_total = len(enqueued_trials(space))
    finished: dict[str, list[float]] = {FULL: [], EXPLORE: []}
    running: list[Running] = []
    started = {FULL: 0, EXPLORE: 0}
    for t in trials:
        kind = EXPLORE if t.kind == "explore" else FULL
        if t.kind == "retrain":
            continue
        started[kind] += 1
        if t.status in ("completed", "pruned") and t.duration_s:
            finished[kind].append(t.duration_s)
        elif t.status == "running":
            running.append(_running(t, kind, (epochs or {}).get(t.trial_id, []), now))
    pending = [FULL] * max(full_total - started[FULL], 0)
    pending += [EXPLORE] * max(total - full_total - started[EXPLORE], 0)
    slots = max(len(running), space.search.max_concurrent or 1)
    eta = (
        eta_seconds(finished, running, pending, slots, halving_of(space))
        if study.status == "running"
        else 0.0
    )
    done = sum(study.counts.get(k, 0) for k in ("completed", "pruned", "failed"))
    return {
        "done": done,
        "total": total,
        "running": len(running),
        "counts": study.counts,
        "best_value": study.best_value,
        "best_trial_id": study.best_trial_id,
        "elapsed": format_seconds(_seconds_since(study.created_at, now)),
        "eta": format_seconds(eta),
        "eta_s": eta,
    }


class LiveState:
    """The page's data for one study; the report is cached per store fingerprint."""

    def __init__(self, store: Store, study: str) -> None:
        self.store = store
        self.study = study
        self._lock = threading.Lock()
        self._report: tuple[str, str] | None = None

    def state(self) -> dict[str, Any]:
        with self._lock:
            study = self.store.require_study(self.study)
            space = load_space(
                study.space_path or "space.yaml", study.profile, text=study.space_yaml
            )
            trials = self.store.trials(study.id)
            values = self.store.trial_values(study.id, study.metric, study.mode)
            epochs = {
                t.trial_id: self.store.epochs(t.trial_id) for t in trials if t.status == "running"
            }
            curves = {
                tid: [
                    {"epoch": e.epoch, "value": e.metrics.get(study.metric), "loss": e.train_loss}
                    for e in rows
                ]
                for tid, rows in epochs.items()
            }
        rows = [trial_row(t, study.metric, values.get(t.trial_id)) for t in trials]
        for row in rows:
            row["error"] = last_error_line(row["error"]) if row["error"] else None
        return {
            "study": study.name,
            "status": study.status,
            "metric": study.metric,
            "mode": study.mode,
            "description": study.description,
            "fingerprint": fingerprint(trials),
            "progress": progress_of(study, space, trials, epochs),
            "trials": rows,
            "curves": curves,
        }

    def report_html(self) -> dict[str, str]:
        """The report's body as HTML, built again only when a trial has ended since."""
        from search.report.build import build_report
        from search.report.render import to_html

        with self._lock:
            study = self.store.require_study(self.study)
            key = fingerprint(self.store.trials(study.id))
            if self._report is None or self._report[0] != key:
                with tempfile.TemporaryDirectory(prefix="leuksearch-serve-") as tmp:
                    try:
                        report = build_report(self.store, self.study, Path(tmp))
                        page = to_html(report.blocks, self.study)
                        body = page.split("<body>", 1)[1].rsplit("</body>", 1)[0]
                    except Exception as exc:  # shown on the page; the next trial retries
                        body = f"<p>the report cannot be built yet: {type(exc).__name__}: {exc}</p>"
                self._report = (key, body)
            return {"fingerprint": self._report[0], "html": self._report[1]}


def fingerprint(trials: list[TrialRecord]) -> str:
    """Changes whenever a trial is added or ends (what the report depends on)."""
    ended = [(t.trial_id, t.status, t.ended_at) for t in trials if t.status != "running"]
    return f"{len(trials)}:{hashlib.sha1(repr(ended).encode()).hexdigest()[:12]}"
