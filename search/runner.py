"""Run a study: Optuna proposes, Ray Tune schedules (ASHA), the driver writes the store.

``run_study`` starts (or joins) Ray, creates the study in our tables and Optuna's RDB
storage in the same database, enqueues the ablation set (or the whole grid), and lets
TPE / random sampling explore the rest of the budget. ``resume_study`` finishes an
interrupted (or crashed) study from the store: completed trials are never run again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from leukmodels.errors import UserError
from search.cluster import check_cluster, refuse_ray_client, start_ray
from search.names import MAX_NAME_LENGTH, check_name
from search.optuna_space import enqueued_trials, study_budget
from search.space import Space, load_space
from search.storage import experiment_path, split_experiment, storage_root
from search.store.records import StudyInfo, StudyRecord
from search.store.store import Store
from search.store.url import mask_url
from search.trial_names import trial_dirname, trial_name

logger = logging.getLogger(__name__)


@dataclass
class RunOptions:
    """What the command line adds to a space."""

    db: str | None = None
    study: str | None = None
    data: str | None = None
    data_root: str | None = None
    skip_bad_images: bool = False
    cache_dir: str | None = None
    address: str | None = None
    num_samples: int | None = None
    max_concurrent: int | None = None
    dashboard: bool = False
    storage_path: str | None = None
    autoscale: bool = False
    live: bool = False
    """Draw the progress as a live block on the terminal (search.progress)."""


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything written to fd 1 (Ray's banners included) to stderr meanwhile."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def data_overrides(opts: RunOptions) -> dict[str, Any]:
    """DataSpec fields the command line sets for every trial (paths made absolute)."""
    out: dict[str, Any] = {}
    if opts.data:
        p = Path(opts.data).expanduser()
        out["dataset"] = str(p.resolve()) if p.exists() else opts.data
    if opts.data_root:
        out["root"] = str(Path(opts.data_root).expanduser().resolve())
    if opts.skip_bad_images:
        out["skip_bad_images"] = True
    if opts.cache_dir:
        out["cache_dir"] = str(Path(opts.cache_dir).expanduser().resolve())
    return out


def check_data(space: Space, overrides: dict[str, Any]) -> None:
    """Prepare the baseline's data on the driver: bad data (unreadable, a class missing, an
    empty split) fails before any trial starts, and the decode cache is warm for every trial."""
    from leukmodels.data.prepare import check_split_sizes, prepare_data  # not timm's import

    tc = space.trial_config(space.baseline(), overrides=overrides)
    data = prepare_data(tc.data, tc.params)  # logs what it skips and what it warns about
    check_split_sizes(data, tc.data.dataset)


def pick_study_name(store: Store, requested: str | None, space: Space) -> str:
    """``--study`` if free; else the space's name, suffixed -2, -3, ... when taken."""
    if requested:
        check_name(requested, "study name")
        existing = store.study(requested)
        if existing is not None:
            raise UserError(
                f"study '{requested}' already exists in {store.masked_url} "
                f"(status {existing.status}, {existing.n_trials} trials); "
                f"choose another --study, or continue it with `leuksearch resume --study {requested}`"
            )
        return requested
    name, n = space.study, 1
    while store.study(name) is not None:
        n += 1
        suffix = f"-{n}"
        name = f"{space.study[: MAX_NAME_LENGTH - len(suffix)]}{suffix}"
    return name


def _token_hint() -> str:
    """How to log in to the dashboard when Ray's token authentication is on."""
    if os.environ.get("RAY_AUTH_MODE", "token") == "disabled":
        return ""
    return " (if it asks for a token: `ray get-auth-token`)"


def _code_version() -> str:
    from search import __version__

    try:
        import subprocess

        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{__version__}+{sha}" if sha else __version__


def _trainable(space: Space, overrides: dict[str, Any]) -> Any:
    from ray import tune

    from search.trainable import train_trial

    res = space.search.resources
    return tune.with_resources(
        tune.with_parameters(train_trial, space=space, overrides=overrides),
        {"cpu": res.cpu, "gpu": res.gpu},
    )


def _scheduler(space: Space) -> Any:
    """ASHA as :func:`search.progress.halving_of` describes it (the ETA expects the same)."""
    from search.asha import FullFidelityASHA
    from search.progress import halving_of

    halving = halving_of(space)
    if halving is None:
        return None
    return FullFidelityASHA(
        metric=space.search.metric,
        mode=space.search.mode,
        max_epochs=halving.max_epochs,
        grace_epochs=halving.grace_epochs,
        reduction_factor=halving.reduction_factor,
    )


def _study_record(space: Space, opts: RunOptions, name: str, budget: int) -> StudyRecord:
    """What the store keeps about a new study: the space, the options, where Ray writes."""
    overrides = data_overrides(opts)
    options = {**asdict(opts), "db": mask_url(opts.db) if opts.db else None}  # no password
    return StudyRecord(
        name=name,
        space_yaml=space.text,
        space_hash=space.hash,
        space_path=str(space.path),
        profile=space.profile,
        dataset=str(overrides.get("dataset", space.data.dataset)),
        metric=space.search.metric,
        mode=space.search.mode,
        code_version=_code_version(),
        storage_path=experiment_path(storage_root(opts.storage_path), name),  # a URI stays one
        description=space.description,
        config={"options": options, "overrides": overrides, "budget": budget},
    )


def _fit(
    space: Space,
    opts: RunOptions,
    overrides: dict[str, Any],
    store: Store,
    study: tuple[str, int, str],
    searcher: Any,
    num_samples: int,
) -> None:
    """Run ``num_samples`` Tune trials of ``searcher``'s configs; ``study`` is (name, id,
    Ray storage folder). A resume starts a fresh Tuner too: our store and Optuna say what
    is left, not Ray's experiment state (which a crash may leave behind the store)."""
    from ray import tune

    from search.tune_callback import StoreCallback

    name, study_id, storage_path = study
    callback = StoreCallback(
        store.url, name, study_id, space, overrides, live=opts.live, ostudy=searcher.ostudy
    )
    with stdout_to_stderr():
        tuner = tune.Tuner(
            _trainable(space, overrides),
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=_scheduler(space),
                num_samples=num_samples,
                max_concurrent_trials=opts.max_concurrent or space.search.max_concurrent,
                time_budget_s=space.search.time_budget_s,
                trial_name_creator=trial_name,
                trial_dirname_creator=trial_dirname,
                reuse_actors=True,  # a warm worker: no process start and imports per trial
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=split_experiment(storage_path)[0],
                failure_config=tune.FailureConfig(max_failures=space.search.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                callbacks=[callback],
                verbose=0,
            ),
        )
        try:
            tuner.fit()
        except Exception as exc:
            gone = _database_gone(exc)
            if gone is None:
                raise
            raise gone from None


def _database_gone(exc: BaseException) -> BaseException | None:
    """The DatabaseGone behind an error Tune raised (a callback's), if that is what it was."""
    from search.store.retry import DatabaseGone

    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, DatabaseGone):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


def _stopped_by_database(store: Store, name: str, exc: BaseException) -> dict[str, Any]:
    """The study stops as interrupted (if the database takes that write) with the reason."""
    logger.error("%s", exc)
    with contextlib.suppress(Exception):
        study = store.require_study(name)
        store.set_study_status(study.id, "interrupted")
    return {"study": name, "status": "interrupted", "db": store.masked_url, "error": str(exc)}


def run_study(space: Space, opts: RunOptions) -> dict[str, Any]:
    """Run a new study of ``space``; returns a summary (also written to the store)."""
    from search.optuna_study import OptunaStudy, StudySearcher
    from search.store.retry import DatabaseGone

    refuse_ray_client(opts.address or "")
    storage_root(opts.storage_path)  # a bad --storage-path fails before anything starts
    overrides = data_overrides(opts)
    store = Store.open(opts.db)
    name = pick_study_name(store, opts.study, space)
    queued, explore, total = study_budget(space, opts.num_samples)
    if total == 0:
        raise UserError(
            f"{space.path}: nothing to run: no ablation section and search.num_samples is 0"
        )
    _start_ray(space, store, opts, overrides)  # checks the data meanwhile
    record = _study_record(space, opts, name, total)
    study_id = store.ensure_study(record)
    logger.info(
        "study %s (id %d) in %s; Ray results in %s", name, study_id, store.masked_url,
        record.storage_path,
    )  # fmt: skip
    ostudy = OptunaStudy(store.optuna_url, name, space)
    ostudy.ensure_enqueued(queued)
    logger.info(
        "%d %s trial(s) first (full fidelity), then %d %s trial(s)",
        len(queued), "grid" if space.search.algorithm == "grid" else "ablation",
        explore, space.search.algorithm,
    )  # fmt: skip
    study = (name, study_id, str(record.storage_path))
    try:
        _fit(space, opts, overrides, store, study, StudySearcher(ostudy), total)
    except DatabaseGone as exc:
        return _stopped_by_database(store, name, exc)
    return _finish(store, name, space)


def _start_ray(
    space: Space, store: Store, opts: RunOptions, overrides: dict[str, Any] | None = None
) -> None:
    """Start or join Ray and check the cluster can run the space's trials.

    With ``overrides``, :func:`check_data` runs in a thread meanwhile (Ray's start is
    mostly waiting on its own processes; the check is mostly importing torch): bad data
    is still the error reported, Ray is shut down again and its log lines are dropped.
    """
    if overrides is None:
        with stdout_to_stderr():
            url = start_ray(opts.address, opts.dashboard)
    else:
        with ThreadPoolExecutor(1, thread_name_prefix="check-data") as pool:
            checked = pool.submit(check_data, space, overrides)
            url = _start_ray_while(checked, opts)
    res = space.search.resources
    check_cluster(res.cpu, res.gpu, store.url, autoscale=opts.autoscale)
    if url:
        logger.info("Ray dashboard: %s%s", url, _token_hint())


def _start_ray_while(checked: Future[None], opts: RunOptions) -> str | None:
    """:func:`start_ray` while ``checked`` (the data check) runs; its error comes first."""
    import ray

    ours = not ray.is_initialized()  # shut down again only a Ray this call starts
    with _held_logs(logging.getLogger("ray")) as held:
        try:
            with stdout_to_stderr():
                url = start_ray(opts.address, opts.dashboard)
        except BaseException:
            checked.result()  # bad data is the error to report, as before
            raise
        try:
            checked.result()
        except BaseException:
            held.clear()
            if ours:
                ray.shutdown()
            raise
    return url


@contextlib.contextmanager
def _held_logs(log: logging.Logger) -> Iterator[list[Any]]:
    """Hold what ``log``'s handlers would write until the block ends, then write it; the
    block may empty the list it gets (of (handler, record)) to drop it instead."""
    held: list[tuple[logging.Handler, logging.LogRecord]] = []
    filters = []
    for handler in log.handlers:

        def hold(record: logging.LogRecord, handler: logging.Handler = handler) -> bool:
            held.append((handler, record))
            return False

        handler.addFilter(hold)
        filters.append((handler, hold))
    try:
        yield held
    finally:
        for handler, hold in filters:
            handler.removeFilter(hold)
        for handler, record in held:
            handler.handle(record)


def resume_study(name: str, opts: RunOptions, retry_failed: bool = False) -> dict[str, Any]:
    """Finish an interrupted study from the store: Optuna is reconciled from it, trials cut
    short are rerun, completed ones never (see :mod:`search.reconcile`). Ray's experiment
    state is not needed: a fresh Tuner runs what is left of the budget."""
    from search.optuna_study import OptunaStudy, StudySearcher
    from search.reconcile import plan_resume
    from search.store.retry import DatabaseGone

    check_name(name, "study name")
    refuse_ray_client(opts.address or "")
    store = Store.open(opts.db)
    study = store.require_study(name)
    failed = study.counts.get("failed", 0)
    if study.status == "completed" and not (retry_failed and failed):
        raise UserError(
            f"study '{name}' is already completed; nothing to resume (see `leuksearch best "
            f"--study {name}`{', or --retry-failed to rerun its failed trials' if failed else ''})"
        )
    space = load_space(study.space_path or "space.yaml", study.profile, text=study.space_yaml)
    overrides = dict((study.config or {}).get("overrides", {}))
    path = _resume_path(study.storage_path, name, opts.storage_path)
    check_data(space, overrides)
    ostudy = OptunaStudy(store.optuna_url, name, space)
    plan = plan_resume(store, study, ostudy, enqueued_trials(space), retry_failed)
    for note in plan.notes:
        logger.info("resume: %s", note)
    if path != study.storage_path:
        store.set_storage_path(study.id, path)
    store.set_study_status(study.id, "running")
    logger.info(
        "resuming study %s: %d trial(s) to run (%d rerun) in %s",
        name, plan.remaining, len(plan.reruns), path,
    )  # fmt: skip
    if plan.remaining > 0:  # Ray only when there is something to run
        _start_ray(space, store, opts)
        searcher = StudySearcher(ostudy, _with_checkpoints(plan.reruns, path))
        try:
            _fit(space, opts, overrides, store, (name, study.id, path), searcher, plan.remaining)
        except DatabaseGone as exc:
            return _stopped_by_database(store, name, exc)
    return _finish(store, name, space)


def _with_checkpoints(reruns: list[dict[str, Any]], path: str) -> list[dict[str, Any]]:
    """Reruns of stored trials continue from their last checkpoint, where one is on disk."""
    from search.optuna_space import CHECKPOINT, RESUMES
    from search.trial_state import latest_checkpoint

    out = []
    for cfg in reruns:
        found = latest_checkpoint(path, cfg[RESUMES]) if cfg.get(RESUMES) else None
        if found:
            logger.info("resume: trial %s continues from %s", cfg[RESUMES], found)
        out.append({**cfg, CHECKPOINT: found})
    return out


def _resume_path(stored: str | None, name: str, storage_path: str | None) -> str:
    """Where the resumed trials write: under ``--storage-path`` when given, else where the
    study recorded it (Ray's experiment state there is not needed)."""
    if storage_path:
        return experiment_path(storage_root(storage_path), name)
    return stored or experiment_path(storage_root(None), name)


def _finish(store: Store, name: str, space: Space) -> dict[str, Any]:
    """Mark the study interrupted when the store callback said so (trials cut short) or the
    budget was not used up; failed when no trial completed; else completed."""
    study = store.require_study(name)
    budget = (study.config or {}).get("budget")
    finished = sum(study.counts.get(k, 0) for k in ("completed", "pruned", "failed"))
    short = budget is not None and finished < budget and space.search.time_budget_s is None
    error = None
    if study.status == "interrupted" or short:
        status = "interrupted"
        logger.info(
            "study %s interrupted; continue it with: leuksearch resume --study %s", name, name
        )
    elif study.counts.get("completed", 0) == 0:
        status = "failed"
        error = _first_error(store, study)
        logger.error("study %s failed: no trial completed; the first error: %s", name, error)
    else:
        status = "completed"
        logger.info(
            "study %s completed: best %s %s (trial %s)",
            name, study.metric, study.best_value, study.best_trial_id,
        )  # fmt: skip
    store.set_study_status(study.id, status)
    return {**_summary(store.require_study(name), store.masked_url), "error": error}


def _first_error(store: Store, study: StudyInfo) -> str:
    from search.tune_callback import error_line

    failed = store.trials(study.id, "failed")
    if not failed:
        return "no trial ended (see the trials' logs under the study's storage path)"
    return f"trial {failed[0].trial_id}: {error_line(failed[0].error)}"


def exit_code(summary: dict[str, Any]) -> int:
    """What ``run`` and ``resume`` exit with: 130 interrupted, 1 failed, else 0."""
    return {"interrupted": 130, "failed": 1}.get(summary["status"], 0)


def _summary(study: StudyInfo, db: str) -> dict[str, Any]:
    """What ``run`` and ``resume`` print with --json."""
    return {
        "study": study.name,
        "study_id": study.id,
        "status": study.status,
        "db": db,
        "counts": study.counts,
        "n_trials": study.n_trials,
        "best_value": study.best_value,
        "best_trial_id": study.best_trial_id,
        "metric": study.metric,
        "storage_path": study.storage_path,
    }
