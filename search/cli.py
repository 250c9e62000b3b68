# PYTHON_ARGCOMPLETE_OK
"""The ``leuksearch`` command line.

Every subcommand exits 0 on success, 2 on a user error (one message naming the file, key
or path at fault, never a traceback) and 1 on anything else. ``--json`` prints
machine-readable output on stdout and nothing else there; logs and progress go to stderr.
Heavy imports (torch, Ray) happen inside the subcommands so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from leukmodels import limits
from leukmodels.errors import UserError
from search.logs import NORMAL, QUIET, VERBOSE, setup_logging

EXIT_USER = 2


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with our one-paragraph style."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"leuksearch: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USER)


def _name(what: str) -> Callable[[str], str]:
    """An argparse type: a name that may become a file or folder name (search.names)."""

    def parse(value: str) -> str:
        from search.names import name_problem

        if problem := name_problem(value, what):
            raise argparse.ArgumentTypeError(problem)
        return value

    parse.__name__ = what
    return parse


def _int_in(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer in low..high."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"{number} is not in {low}..{high}")
        return number

    return parse


def emit_json(obj: Any) -> None:
    """Print ``obj`` as JSON on stdout (the only thing a --json command prints there)."""
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
    sys.stdout.flush()


def _add_space(p: argparse.ArgumentParser) -> None:
    p.add_argument("space", help="search space YAML file (see spaces/)")
    p.add_argument(
        "--profile", type=_name("profile name"), help="profile of the space to apply, e.g. smoke"
    )


def _add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data", help="dataset: a registry name, a folder, a CSV manifest or 'synthetic'"
    )
    p.add_argument(
        "--data-root",
        help="where registry datasets live (default $LEUKSEARCH_DATA or ~/.leuksearch/data)",
    )
    p.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="skip unreadable images (counted and reported)",
    )


def _add_db(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db", help="database URL (default $LEUKSEARCH_DB or sqlite:///./leuksearch.db)"
    )


def _add_study(p: argparse.ArgumentParser, required: bool = True, help: str | None = None) -> None:
    """--study: a name, checked by search.names before anything opens a database or a folder."""
    p.add_argument(
        "--study",
        required=required,
        type=_name("study name"),
        help=help or "study name (`leuksearch studies` lists them)",
    )


def _add_epochs(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--epochs", type=_int_in(1, limits.MAX_EPOCHS), help="train this many epochs instead"
    )


def _add_ray(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--address",
        help="join a Ray cluster: HOST:6379 or 'auto' on a node of it (default: start a local "
        "Ray); from elsewhere use `ray job submit` (ray:// is refused)",
    )
    p.add_argument(
        "--autoscale",
        action="store_true",
        help="the cluster's autoscaler adds nodes on demand: do not refuse trials larger "
        "than every node it has now",
    )
    p.add_argument(
        "--dashboard",
        action="store_true",
        help="start Ray's dashboard on 127.0.0.1 and print its URL",
    )
    p.add_argument(
        "--storage-path",
        help="where Ray Tune keeps experiment state: a path or a URI (file://, s3://, gs://); "
        "shared by every node on a cluster (default ./runs)",
    )


def _common() -> argparse.ArgumentParser:
    """The flags every subcommand takes: --json, --quiet, --verbose."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    loud = common.add_mutually_exclusive_group()
    loud.add_argument(
        "-q", "--quiet", action="store_true", help="log only warnings and errors (stderr)"
    )
    loud.add_argument(
        "-v", "--verbose", action="store_true", help="log debug messages with their source"
    )
    return common


def _inspect_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "describe", parents=[common], help="validate a space and print its factors and grid size"
    )
    _add_space(p)
    p = sub.add_parser(
        "profile",
        parents=[common],
        help="params, FLOPs and latency of every architecture in a space",
    )
    _add_space(p)
    p.add_argument("--input-size", type=int, default=224, help="image side in pixels (default 224)")
    p.add_argument(
        "--num-classes",
        type=int,
        default=None,
        help="classes of the head (default: the space's data)",
    )
    p.add_argument(
        "--latency-runs", type=int, default=10, help="forward passes timed per model (default 10)"
    )
    p = sub.add_parser(
        "synth", parents=[common], help="write a synthetic blood-smear dataset as an ImageFolder"
    )
    p.add_argument("out", help="output folder")
    p.add_argument(
        "--classes", type=int, default=2, choices=(2, 4), help="2 (blast/normal) or 4 cell types"
    )
    p.add_argument(
        "--n",
        type=_int_in(1, limits.MAX_IMAGES),
        default=2000,
        help="images to write (default 2000)",
    )
    p.add_argument(
        "--size",
        type=_int_in(limits.MIN_IMAGE_SIZE, limits.MAX_IMAGE_SIZE),
        default=64,
        help="image side in pixels (default 64)",
    )
    p.add_argument(
        "--patients",
        type=_int_in(2, limits.MAX_PATIENTS),
        default=40,
        help="simulated patients the images are drawn from (default 40)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--format", default="png", choices=("png", "jpg"), help="image file format (default png)"
    )
    p.add_argument(
        "--difficulty",
        default="standard",
        choices=("standard", "hard"),
        help="hard: the classes differ in nucleus shape only (default standard)",
    )


def _train_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """The commands that train: trial, run, resume, retrain."""
    _trial_command(sub, common)
    _run_command(sub, common)
    _resume_command(sub, common)
    _retrain_command(sub, common)


def _trial_command(sub: Any, common: argparse.ArgumentParser) -> None:
    """``leuksearch trial``: one configuration, no Ray or database."""
    p = sub.add_parser(
        "trial", parents=[common], help="train one configuration without Ray or a database"
    )
    p.add_argument("space", nargs="?", help="search space YAML file (or give --config)")
    p.add_argument(
        "--profile", type=_name("profile name"), help="profile of the space to apply, e.g. smoke"
    )
    p.add_argument(
        "--config", help="a trial configuration file from `leuksearch export` (instead of SPACE)"
    )
    _add_data(p)
    p.add_argument("--params", help="JSON object of parameters (default: the space's baseline)")
    _add_epochs(p)
    p.add_argument("--out", help="folder for the checkpoint")


def _run_command(sub: Any, common: argparse.ArgumentParser) -> None:
    """``leuksearch run``: a new study."""
    p = sub.add_parser(
        "run",
        parents=[common],
        help="run a study: Ray Tune schedules the trials Optuna proposes",
    )
    _add_space(p)
    _add_data(p)
    _add_db(p)
    _add_ray(p)
    _add_study(p, required=False, help="study name (default: the space's, suffixed when taken)")
    p.add_argument(
        "--num-samples", type=_int_in(0, 100_000), help="exploration trials after the ablation set"
    )
    p.add_argument(
        "--max-concurrent",
        type=_int_in(1, 10_000),
        help="trials at once (default: what resources allow)",
    )


def _resume_command(sub: Any, common: argparse.ArgumentParser) -> None:
    """``leuksearch resume``: finish an interrupted study."""
    p = sub.add_parser(
        "resume",
        parents=[common],
        help="finish an interrupted or crashed study (completed trials never rerun)",
    )
    _add_study(p)
    _add_db(p)
    _add_ray(p)
    p.add_argument(
        "--retry-failed",
        action="store_true",
        help="also rerun the trials that failed (each into its own row again)",
    )


def _retrain_command(sub: Any, common: argparse.ArgumentParser) -> None:
    """``leuksearch retrain``: a stored trial's configuration again."""
    p = sub.add_parser(
        "retrain",
        parents=[common],
        help="re-run a stored trial's exact configuration and save its checkpoint",
    )
    p.add_argument(
        "trial_id", type=int, nargs="?", help="id of the stored trial (`leuksearch trials`)"
    )
    p.add_argument(
        "--config", help="a file from `leuksearch export` instead of a stored trial (no database)"
    )
    _add_db(p)
    _add_data(p)
    _add_epochs(p)
    p.add_argument("--out", help="folder for the checkpoint (default runs/retrain-ID-TIME)")


def _result_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("studies", parents=[common], help="list the studies in the store")
    _add_db(p)
    p = sub.add_parser(
        "best", parents=[common], help="the best completed trials of a study, best first"
    )
    _add_study(p)
    _add_db(p)
    p.add_argument(
        "--metric", help="test metric (accuracy, f1, ...) or val_* (default: the study's)"
    )
    p.add_argument("--top", type=int, default=5, help="how many trials (default 5)")
    p = sub.add_parser(
        "report",
        parents=[common],
        help="ablation tables, statistics, plots and the paper's numbers for a study",
    )
    _add_study(p)
    _add_db(p)
    p.add_argument(
        "--out", required=True, help="output folder (report.md, report.html, tables/, figures/)"
    )
    p.add_argument(
        "--metric", help="test metric the tables centre on (default: accuracy and f1 and the rest)"
    )


DESCRIPTION = (
    "Architecture and hyperparameter search for leukaemia image classifiers: "
    "Optuna proposes, Ray Tune runs, a database keeps every trial."
)
EPILOG = """\
exit codes:
  0    success
  1    an unexpected error (a bug, a crash; the traceback is printed), or a
       question answered no (delete)
  2    a user error: bad space, data, flag, name or database (one line)
  130  interrupted (Ctrl-C, or a study stopped before its budget was used)

`leuksearch COMMAND --help` describes each command's flags.
"""


def _manage_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "trials", parents=[common], help="list a study's trials: status, value, time, node, error"
    )
    _add_study(p)
    _add_db(p)
    p.add_argument(
        "--status",
        choices=("pending", "running", "completed", "pruned", "failed", "terminated"),
        help="only trials with this status",
    )
    p = sub.add_parser(
        "export",
        parents=[common],
        help="write a trial's complete configuration (for `trial --config` or `retrain --config`)",
    )
    p.add_argument("trial_id", type=int, help="id of the stored trial (`leuksearch trials`)")
    _add_db(p)
    p.add_argument(
        "--format", choices=("yaml", "json"), default="yaml", help="file format (default yaml)"
    )
    p.add_argument("--out", help="write to this file instead of stdout")
    p = sub.add_parser(
        "delete", parents=[common], help="delete a study: our rows and Optuna's study"
    )
    _add_study(p)
    _add_db(p)
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p = sub.add_parser(
        "serve",
        parents=[common],
        help="a live web page of a study: progress, ETA, ablation tables, learning curves",
    )
    _add_study(p)
    _add_db(p)
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only)",
    )
    p.add_argument(
        "--port", type=_int_in(1, 65535), default=8000, help="port to listen on (default 8000)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="leuksearch",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    common = _common()
    _inspect_commands(sub, common)
    _train_commands(sub, common)
    _result_commands(sub, common)
    _manage_commands(sub, common)
    return parser


def _version() -> str:
    from search import __version__

    return f"leuksearch {__version__}"


def _cmd(name: str) -> Callable[[argparse.Namespace], int]:
    import importlib

    module = importlib.import_module(f"search.commands.{name}")
    return module.main


def _say(msg: str) -> None:
    """The command line's own last word (an error, an interruption): stderr, always."""
    print(msg, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    if argv is None:
        import argcomplete

        argcomplete.autocomplete(parser)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # e.g. for the `ray job submit` line
    setup_logging(QUIET if args.quiet else VERBOSE if args.verbose else NORMAL)
    try:
        return int(_cmd(args.command)(args) or 0)
    except UserError as exc:
        _say(f"leuksearch {args.command}: error: {exc}")
        return EXIT_USER
    except BrokenPipeError:  # e.g. `leuksearch best --json | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        _say(f"leuksearch {args.command}: interrupted")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
