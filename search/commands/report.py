"""``leuksearch report --study NAME --out DIR``: the study's ablation report.

Writes DIR/report.md, a self-contained DIR/report.html, DIR/tables/*.csv and
DIR/figures/*.png; ``--json`` prints the same tables as JSON on stdout.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from search.cli import emit_json, log


def main(args: argparse.Namespace) -> int:
    import optuna

    from search.report.build import build_report, check_metric, write_report
    from search.store.store import Store

    check_metric(args.metric)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = Path(args.out).expanduser()
    with Store.open(args.db) as store:
        log(f"report of study {args.study} from {store.masked_url}")
        report = build_report(store, args.study, out, metric=args.metric)
    write_report(report)
    log(
        f"wrote {out / 'report.md'}, {out / 'report.html'}, {len(report.tables)} tables, {len(report.figures)} figures"
    )
    for item in report.missing:
        log(f"missing: {item}")
    if args.json:
        emit_json(report.as_json())
    else:
        print(out / "report.html")
    return 0
