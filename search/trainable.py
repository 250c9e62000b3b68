"""The Ray Tune function around :func:`leukmodels.train.run_trial`.

It turns the trial's config (the Optuna parameters plus our meta keys) back into a
:class:`~leukmodels.config.TrialConfig`, reports every epoch to Tune, and ends with one
``final`` report carrying the :class:`~leukmodels.results.TrialResult` as JSON under
:data:`RESULT_KEY` (the driver's callback validates it again and stores it).
"""

from __future__ import annotations

import logging
import socket
import time
import traceback
from pathlib import Path
from typing import Any

from ray import tune

from leukmodels.errors import UserError
from search.optuna_space import CHECKPOINT, FOLD, SEED, decode_config
from search.proc_clock import process_start
from search.space import Space
from search.trial_state import CheckpointPolicy, load_start_state, report_with_state

RESULT_KEY = "result_json"
"""The final report's key for the trial's TrialResult as JSON."""
NODE_KEY, HOST_KEY, IP_KEY, GPUS_KEY = "ray_node_id", "ray_host", "ray_ip", "gpu_ids"
"""Keys of every epoch report that say where the trial runs (see :func:`placement`)."""
ERROR_KEY = "user_error"
"""The final report's key for a UserError the trial hit (its traceback, last line the error)."""

logger = logging.getLogger(__name__)


def trial_config_for(space: Space, config: dict[str, Any], overrides: dict[str, Any]) -> Any:
    """The TrialConfig of a Tune trial: decoded point, seed, fold, data overrides."""
    point = decode_config(space, config)
    tc = space.trial_config(
        point, seed=config.get(SEED), fold=config.get(FOLD), overrides=overrides
    )
    tc.threads = max(1, int(space.search.resources.cpu))
    return tc


def placement() -> dict[str, Any]:
    """Where this trial runs, from its own Ray runtime context: node id, host, IP, GPU ids."""
    import ray

    return {
        NODE_KEY: ray.get_runtime_context().get_node_id(),
        HOST_KEY: socket.gethostname(),
        IP_KEY: ray.util.get_node_ip_address(),
        GPUS_KEY: [g if isinstance(g, int) else str(g) for g in ray.get_gpu_ids()],
    }


def train_trial(config: dict[str, Any], space: Space, overrides: dict[str, Any]) -> None:
    """Tune function trainable (``tune.with_parameters`` supplies space and overrides).

    A :class:`UserError` (bad data, a bad value) would fail every retry the same way: it
    ends the trial with one final report carrying the error instead of raising, so Tune
    does not retry it; the traceback goes to ``error.txt`` in the trial's folder.
    """
    entry, t_import = time.time(), time.perf_counter()
    from leukmodels.train import run_trial

    import_s = time.perf_counter() - t_import
    try:
        tc = trial_config_for(space, config, overrides)
        where = placement()
        every = space.search.checkpoint
        policy = CheckpointPolicy(tc.params.epochs, every.every_epochs, every.every_s)
        result = run_trial(
            tc,
            start=load_start_state(config.get(CHECKPOINT)),
            on_state=lambda row, state: report_with_state(
                {**row.report(), **where},
                row.epoch,
                state if policy.due(row.epoch, state["stopped"]) else None,
            ),
        )
    except UserError:
        text = traceback.format_exc()
        logger.error("%s", text)
        with open(Path(tune.get_context().get_trial_dir()) / "error.txt", "w") as fh:
            fh.write(text)
        # epoch 0 is below every ASHA rung: the NaN informs no cutoff
        tune.report({"epoch": 0, "final": True, space.search.metric: float("nan"), ERROR_KEY: text})
        return
    # where the worker's time went before the trial began (bench/throughput.py)
    result.timings.import_s, result.timings.entry_unix = import_s, entry
    result.timings.process_start_unix = process_start()
    tune.report(
        {
            "epoch": result.epochs[-1].epoch if result.epochs else 0,
            "final": True,
            space.search.metric: result.best_value,
            RESULT_KEY: result.model_dump_json(),
        }
    )
