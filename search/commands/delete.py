"""``leuksearch delete --study S``: remove a study's rows and its Optuna study."""

from __future__ import annotations

import argparse
import logging
import sys

from leukmodels.errors import UserError
from search.cli import emit_json
from search.store.store import Store

logger = logging.getLogger(__name__)


def _confirm(name: str, n_trials: int) -> bool:
    if not sys.stdin.isatty():
        raise UserError(f"deleting study {name!r} needs a yes: run it in a terminal or add --yes")
    answer = input(f"delete study {name!r} and its {n_trials} trial(s)? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def delete_optuna_study(optuna_url: str, name: str) -> bool:
    """Delete Optuna's study ``name`` in the same database; False if there is none."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        optuna.delete_study(study_name=name, storage=optuna_url)
    except KeyError:
        return False
    return True


def main(args: argparse.Namespace) -> int:
    with Store.open(args.db) as store:
        study = store.require_study(args.study)
        if study.status == "running":
            logger.warning(
                "study %s is marked running; if a run is still going, it will fail", args.study
            )
        if not args.yes and not _confirm(args.study, study.n_trials):
            print("nothing deleted")
            return 1
        rows = store.delete_study(args.study)
        optuna_deleted = delete_optuna_study(store.optuna_url, args.study)
    if args.json:
        emit_json(
            {"study": args.study, "deleted_rows": rows, "optuna_study_deleted": optuna_deleted}
        )
    else:
        print(
            f"deleted study {args.study}: {rows.get('ls_trials', 0)} trial(s), "
            f"{rows.get('ls_epochs', 0)} epoch row(s), {rows.get('ls_results', 0)} result(s)"
            + ("; and Optuna's study" if optuna_deleted else "")
        )
    return 0
