"""``leuksearch describe SPACE``: validate a space and show what it searches and what it costs."""

from __future__ import annotations

import argparse

from search.budget import budget, budgets_by_profile
from search.cli import emit_json
from search.space import Space, iter_ablation_points, load_space


def main(args: argparse.Namespace) -> int:
    space = load_space(args.space, args.profile)
    info = space.describe()
    info["ablation_points"] = len(iter_ablation_points(space))
    info["budget"] = budget(space).as_dict()
    info["budgets"] = {name: b.as_dict() for name, b in budgets_by_profile(space).items()}
    if args.json:
        emit_json(info)
        return 0
    _print_text(space, info)
    return 0


def _print_text(space: Space, info: dict) -> None:
    print(
        f"study {space.study}  ({space.path}{', profile ' + space.profile if space.profile else ''})"
    )
    if space.description:
        print(f"  {space.description}")
    d = space.data
    print(
        f"data: {d.dataset}  split {d.split.kind}  image {d.image_size}px"
        + (f"  limit {d.limit}" if d.limit else "")
    )
    if space.protocols:
        print(f"protocols: {', '.join(space.protocols)}")
    s = space.search
    print(
        f"search: {s.algorithm}, {s.num_samples} samples, {s.mode} {s.metric}, "
        f"scheduler {s.scheduler.kind}, {s.resources.cpu:g} cpu / {s.resources.gpu:g} gpu per trial"
    )
    print("factors:")
    for f in space.factors.values():
        cond = f"   when {f.when.source}" if f.when else ""
        print(f"  {f.name:<20} {f.summary()}{cond}")
    print(f"grid of categorical factors: {info['grid_size']} combinations")
    if space.ablation:
        print(
            f"ablation: baseline {space.ablation.baseline}, factors {', '.join(space.ablation.factors)}; "
            f"{info['ablation_points']} configurations"
        )
    if space.reference:
        print(f"reference: {space.reference.source} ({len(space.reference.rows)} rows)")
    print("budget (trials a `run` enqueues; --num-samples changes the exploration part):")
    for name, b in info["budgets"].items():
        mark = "*" if b["profile"] == space.profile else " "
        print(f" {mark}{name:<14} {_line(b)}")


def _line(b: dict) -> str:
    full = f"{b['full_fidelity']} full-fidelity"
    if b["points"]:
        runs = f" x {b['runs_per_point']} run(s)" if b["runs_per_point"] else ", runs differ"
        full += f" ({b['points']} {b['kind']} points{runs})"
    return (
        f"{full} + {b['exploration']} {b['algorithm']} = {b['total']} trials, "
        f"<= {b['epochs']} epochs, {b['cpu']:g} cpu / {b['gpu']:g} gpu each"
    )
