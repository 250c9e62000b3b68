"""``leuksearch describe SPACE``: validate a space and show what it searches."""

from __future__ import annotations

import argparse

from search.cli import emit_json
from search.space import iter_ablation_points, load_space


def main(args: argparse.Namespace) -> int:
    space = load_space(args.space, args.profile)
    info = space.describe()
    info["ablation_points"] = len(iter_ablation_points(space))
    if args.json:
        emit_json(info)
        return 0
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
            f"{info['ablation_points']} configurations x {s.repeats} repeat(s)"
        )
    if space.reference:
        print(f"reference: {space.reference.source} ({len(space.reference.rows)} rows)")
    if space.profiles:
        print(f"profiles: {', '.join(space.profiles)}")
    return 0
