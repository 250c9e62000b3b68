"""``leuksearch run SPACE``: Ray Tune schedules the trials Optuna proposes; results go to the store."""

from __future__ import annotations

import argparse

from search.cli import emit_json
from search.cluster import refuse_ray_client
from search.progress import wants_live
from search.runner import RunOptions, exit_code, run_study
from search.space import load_space


def options(args: argparse.Namespace) -> RunOptions:
    """RunOptions from the parsed command line (flags a subcommand lacks stay default)."""
    fields = RunOptions.__dataclass_fields__
    return RunOptions(**{k: getattr(args, k) for k in fields if getattr(args, k, None) is not None})


def main(args: argparse.Namespace) -> int:
    refuse_ray_client(args.address or "", args.argv)
    space = load_space(args.space, args.profile)
    opts = options(args)
    opts.live = wants_live(args.json, args.quiet)
    summary = run_study(space, opts)
    if args.json:
        emit_json(summary)
    return exit_code(summary)
