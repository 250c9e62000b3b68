"""``leuksearch report --study NAME --out DIR``: the study's ablation report.

Writes DIR/report.md, a self-contained DIR/report.html, DIR/tables/*.csv and
DIR/figures/*.png; ``--json`` prints the same tables as JSON on stdout.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from search.cli import emit_json

logger = logging.getLogger(__name__)


def main(args: argparse.Namespace) -> int:
    import optuna

    from search.report.build import build_report, check_metric, write_report
    from search.store.store import Store

    check_metric(args.metric)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = Path(args.out).expanduser()
    with Store.open(args.db) as store:
        logger.info("report of study %s from %s", args.study, store.masked_url)
        report = build_report(store, args.study, out, metric=args.metric)
    write_report(report)
    logger.info(
        "wrote %s, %s, %d tables, %d figures",
        out / "report.md", out / "report.html", len(report.tables), len(report.figures),
    )  # fmt: skip
    for item in report.missing:
        logger.info("missing: %s", item)
    if args.json:
        emit_json(report.as_json())
    else:
        print(out / "report.html")
    return 0
