"""``leuksearch resume --study NAME``: continue an interrupted study; completed trials never rerun."""

from __future__ import annotations

import argparse

from search.cli import emit_json
from search.cluster import refuse_ray_client
from search.commands.run import options
from search.runner import resume_study


def main(args: argparse.Namespace) -> int:
    refuse_ray_client(args.address or "", args.argv)
    summary = resume_study(args.study, options(args))
    if args.json:
        emit_json(summary)
    return 130 if summary["status"] == "interrupted" else 0
