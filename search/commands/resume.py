"""``leuksearch resume --study NAME [--retry-failed]``: finish an interrupted or crashed study;
completed trials never rerun."""

from __future__ import annotations

import argparse

from search.cli import emit_json
from search.cluster import refuse_ray_client
from search.commands.run import options
from search.runner import exit_code, resume_study


def main(args: argparse.Namespace) -> int:
    refuse_ray_client(args.address or "", args.argv)
    summary = resume_study(args.study, options(args), retry_failed=args.retry_failed)
    if args.json:
        emit_json(summary)
    return exit_code(summary)
