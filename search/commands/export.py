"""``leuksearch export TRIAL_ID``: a trial's complete configuration, to train it elsewhere."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from leukmodels.errors import UserError
from search.export import dump, export_document
from search.store.store import Store


def main(args: argparse.Namespace) -> int:
    with Store.open(args.db) as store:
        trial = store.trial(args.trial_id)
        if trial is None:
            raise UserError(
                f"no trial {args.trial_id} in {store.masked_url}; "
                "`leuksearch trials --study NAME` lists trial ids"
            )
        study = next((s for s in store.studies() if s.id == trial.study_id), None)
    fmt = "json" if args.json else args.format
    text = dump(export_document(trial, study), fmt)
    if args.out:
        try:
            Path(args.out).write_text(text)
        except OSError as exc:
            raise UserError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    else:
        sys.stdout.write(text)
    return 0
