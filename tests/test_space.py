"""The search-space language: parsing, validation messages, profiles, grid, ablation points."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from leukmodels.errors import UserError
from search.conditions import ConditionError, parse_condition
from search.space import iter_ablation_points, load_space

ROOT = Path(__file__).resolve().parents[1]
PLACEMENT = ROOT / "spaces" / "attention_placement.yaml"
QUICKSTART = ROOT / "spaces" / "quickstart.yaml"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "search.cli", *args], capture_output=True, text=True, cwd=ROOT
    )


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "space.yaml"
    p.write_text(text)
    return p


def test_describe_json_names_factors_levels_and_grid() -> None:
    r = cli("describe", str(PLACEMENT), "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    factors = {f["name"]: f for f in info["factors"]}
    assert factors["backbone"]["levels"] == ["resnet18", "mobilenetv4_conv_small"]
    assert factors["attention"]["levels"] == ["none", "pcab", "scab"]
    assert factors["placement"]["kind"] == "subset"
    assert factors["placement"]["n_levels"] == 15  # non-empty subsets of 4 stages
    assert factors["placement"]["when"] == "attention != 'none'"
    # backbone x (none + {pcab, scab} x 15 placements) x batch size {16, 32}
    assert info["grid_size"] == 2 * (1 + 2 * 15) * 2
    assert info["search"]["algorithm"] == "tpe"


@pytest.mark.parametrize(
    ("old", "new", "expect"),
    [
        ("choice: [none, pcab, scab]", "choice: [none, pcab, scabb]", ["scabb", ":35:", "'scab'"]),
        (
            "batch_size: {choice: [16, 32]}",
            "batch_size: sixteen",
            ["sixteen", "batch_size", ":43:"],
        ),
        (
            "attention: {choice: [none, pcab, scab]}",
            "attention: {choice: [none, pcab, scab]",
            ["YAML syntax error", ":36"],
        ),
        ("  lr: {", "  lrr: {", ["lrr", "did you mean 'lr'"]),
        ("kind: asha", "kind: hyperband", ["hyperband", "search.scheduler.kind"]),
    ],
)
def test_bad_space_is_exit_2_with_location_and_no_traceback(
    tmp_path: Path, old: str, new: str, expect: list[str]
) -> None:
    text = PLACEMENT.read_text()
    assert old in text
    bad = write(tmp_path, text.replace(old, new, 1))
    r = cli("describe", str(bad))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    for piece in expect:
        assert piece in r.stderr, r.stderr
    # a failing factor must not cascade into a bogus complaint about conditions
    assert "not a factor declared above" not in r.stderr


def test_missing_file_and_unknown_profile(tmp_path: Path) -> None:
    r = cli("describe", str(tmp_path / "nope.yaml"))
    assert r.returncode == 2 and "not found" in r.stderr and "Traceback" not in r.stderr
    r = cli("describe", str(PLACEMENT), "--profile", "smok")
    assert r.returncode == 2 and "did you mean 'smoke'" in r.stderr


def test_profile_overrides_dotted_keys() -> None:
    plain = load_space(PLACEMENT)
    smoke = load_space(PLACEMENT, "smoke")
    assert plain.data.image_size == 224 and smoke.data.image_size == 64
    assert smoke.data.dataset == "synthetic"
    assert smoke.search.num_samples == 6
    assert smoke.search.scheduler.max_epochs == 2
    assert plain.hash != smoke.hash
    # the epoch budget caps a trial's epochs
    cfg = smoke.trial_config(smoke.baseline())
    assert cfg.params.epochs == 2


def test_bad_profile_key_points_at_profile(tmp_path: Path) -> None:
    assert "data.n: 480" in QUICKSTART.read_text()
    text = QUICKSTART.read_text().replace("data.n: 480", "data.nn: 480")
    r = cli("describe", str(write(tmp_path, text)), "--profile", "smoke")
    assert r.returncode == 2
    assert "profile override" in r.stderr and "data.nn" in r.stderr


def test_conditions_and_grid(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        """
study: t
space:
  backbone: {choice: [resnet18, resnet50]}
  attention: {choice: [none, scab]}
  placement: {subset: [stage1, stage2, stage3], max_size: 2, when: "attention == 'scab'"}
  dropout: {uniform: [0.0, 0.5]}
""",
    )
    space = load_space(p)
    grid = space.grid()
    # none: 1 point; scab: 3 singles + 3 pairs
    assert len(grid) == 2 * (1 + 6)
    assert all("placement" not in g for g in grid if g["attention"] == "none")
    assert all(1 <= len(g["placement"]) <= 2 for g in grid if g["attention"] == "scab")
    filled = space.fill({"backbone": "resnet50", "attention": "scab"})
    assert filled["placement"] == ["stage1", "stage2", "stage3"]
    assert 0.0 <= filled["dropout"] <= 0.5


def test_grid_algorithm_rejects_ranges(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "study: t\nsearch: {algorithm: grid}\nspace:\n  lr: {loguniform: [1.0e-4, 1.0e-2]}\n",
    )
    with pytest.raises(UserError, match="grid search needs categorical"):
        load_space(p)


def test_range_and_subset_errors(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        """
study: t
space:
  lr: {loguniform: [0, 0.1]}
  dropout: {uniform: [0.6, 0.2]}
  batch_size: {int: [8, 64], step: 8}
  placement: {subset: [stage1, block9]}
  attention: {choice: [scab], when: "import os"}
""",
    )
    with pytest.raises(UserError) as info:
        load_space(p)
    msg = str(info.value)
    assert "loguniform bounds must be > 0" in msg
    assert "low (0.6) must be below high (0.2)" in msg
    assert "block9" in msg
    assert "bad condition" in msg


def test_ablation_levels_are_checked(tmp_path: Path) -> None:
    text = QUICKSTART.read_text().replace(
        "baseline: {backbone: resnet18, attention: none, pooling: gap}",
        "baseline: {backbone: resnet18, attention: none, pooling: avg}",
    )
    with pytest.raises(UserError, match="avg.* is not a level"):
        load_space(write(tmp_path, text))


def test_ablation_points_one_factor_at_a_time() -> None:
    space = load_space(QUICKSTART)
    points = iter_ablation_points(space)
    base = points[0][2]
    assert points[0][0] == "baseline"
    assert (
        base["backbone"] == "resnet18" and base["attention"] == "none" and base["pooling"] == "gap"
    )
    for factor, _label, point in points[1:]:
        if factor == "configuration":
            continue
        changed = {k for k in point if point[k] != base.get(k)}
        assert changed == {factor}
    keys = [json.dumps(p, sort_keys=True) for _, _, p in points]
    assert len(keys) == len(set(keys))
    # every level of every ablation factor appears
    for name in space.ablation.factors:
        seen = {json.dumps(p[name]) for _, _, p in points}
        assert seen == {json.dumps(v) for v in space.factors[name].levels}


def test_condition_language() -> None:
    c = parse_condition("attention != 'none' and backbone in ['resnet18', 'resnet50']")
    assert c({"attention": "scab", "backbone": "resnet18"})
    assert not c({"attention": "none", "backbone": "resnet18"})
    assert c.names == {"attention", "backbone"}
    for bad in ["__import__('os')", "a.b == 1", "x + 1 == 2", "lambda: 1"]:
        with pytest.raises(ConditionError):
            parse_condition(bad)


def test_bundle_moves_parameters_together(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        """
study: t
space:
  optimiser_setting:
    bundle:
      adam: {optimizer: adam, lr: 1.0e-3, weight_decay: 1.0e-4}
      adamw: {optimizer: adamw, lr: 3.0e-4, weight_decay: 1.0e-5}
  loss: {choice: [ce, focal]}
""",
    )
    space = load_space(p)
    assert space.grid_size == 4
    cfg = space.trial_config(space.fill({"optimiser_setting": "adamw"}))
    assert (cfg.params.optimizer, cfg.params.lr, cfg.params.weight_decay) == ("adamw", 3e-4, 1e-5)
    bad = (
        p.read_text()
        .replace("lr: 3.0e-4", "lrr: 3.0e-4")
        .replace("loss:", "optimizer: sgd\n  loss:")
    )
    with pytest.raises(UserError) as info:
        load_space(write(tmp_path, bad.replace("optimizer: adam,", "optimizer: adam,", 1)))
    msg = str(info.value)
    assert "lrr" in msg and "did you mean 'lr'" in msg
    assert "also a factor" in msg


def test_subset_levels_written_in_any_order_are_the_same_point(tmp_path: Path) -> None:
    from search.optuna_space import enqueued_trials

    p = write(
        tmp_path,
        """
study: t
ablation:
  baseline: {attention: scab, placement: stage1+stage2}
  factors: [attention]
  configurations:
    Same: {attention: scab, placement: stage2+stage1}
    Other: {attention: scab, placement: [stage2]}
space:
  attention: {choice: [none, scab]}
  placement: {subset: [stage1, stage2], when: "attention != 'none'"}
""",
    )
    space = load_space(p)
    points = iter_ablation_points(space)
    assert [label for _, label, _ in points] == ["baseline", "none", "Other"]
    assert dict(space.configurations())["Same"]["placement"] == ["stage1", "stage2"]
    placement = space.factors["placement"]
    for params, _attrs in enqueued_trials(space):
        if "placement" in params:
            assert params["placement"] in placement.encoded_levels


ALL_KINDS = """
study: t
data:
  protocols: {a: {image_size: 64}, b: {image_size: 96}}
space:
  protocol: {choice: [a, b]}
  backbone: resnet18
  attention: {choice: [none, scab]}
  placement: {subset: [stage1, stage2], when: "attention != 'none'"}
  batch_size: {int: [8, 64], step: 8}
  dropout: {uniform: [0.0, 0.5]}
  lr: {loguniform: [1.0e-4, 1.0e-2]}
  opt:
    bundle:
      adam: {optimizer: adam, weight_decay: 1.0e-4}
      sgd: {optimizer: sgd, weight_decay: 1.0e-3}
"""


def test_each_kind_is_a_class_that_suggests_from_its_own_distribution(tmp_path: Path) -> None:
    import optuna

    from search.factors import (
        Bundle,
        Choice,
        Constant,
        IntRange,
        LogUniformRange,
        Subset,
        UniformRange,
    )
    from search.optuna_space import DefineByRun

    space = load_space(write(tmp_path, ALL_KINDS))
    kinds = {name: (type(f), f.kind) for name, f in space.factors.items()}
    assert kinds == {
        "protocol": (Choice, "choice"),
        "backbone": (Constant, "constant"),
        "attention": (Choice, "choice"),
        "placement": (Subset, "subset"),
        "batch_size": (IntRange, "int"),
        "dropout": (UniformRange, "uniform"),
        "lr": (LogUniformRange, "loguniform"),
        "opt": (Bundle, "bundle"),
    }
    fill = space.fill({"attention": "scab"})
    assert fill["batch_size"] == 36 and fill["dropout"] == 0.25
    assert fill["lr"] == pytest.approx(1e-3) and fill["placement"] == ["stage1", "stage2"]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen_placement = False
    for _ in range(12):
        trial = study.ask()
        DefineByRun(space)(trial)
        # what each factor asked Optuna for is exactly its distribution(); constants ask nothing
        assert trial.distributions == {
            name: space.factors[name].distribution() for name in trial.params
        }
        assert "backbone" not in trial.params
        seen_placement |= "placement" in trial.params
        assert ("placement" in trial.params) == (trial.params["attention"] == "scab")
        study.tell(trial, 0.0)
    assert seen_placement
    cfg = space.trial_config(space.fill({"opt": "sgd", "protocol": "b"}))
    assert (cfg.params.optimizer, cfg.params.weight_decay, cfg.data.image_size) == ("sgd", 1e-3, 96)


@pytest.mark.parametrize(
    ("factor", "expect"),
    [
        ("batch_size: {int: [8, 64], step: x}", "space.batch_size.step: step must be a whole"),
        ("batch_size: {int: [8, 64], step: 0}", "space.batch_size.step: step must be a whole"),
        ("placement: {subset: [stage1], min_size: a}", "space.placement.min_size: min_size must"),
        ("batch_size: {value: 8, foo: 2}", "space.batch_size.foo: unknown option for value"),
        ("protocol: {int: [0, 2]}", "space.protocol: protocol takes names of data.protocols"),
        ("opt: {bundle: {a: {lr: 0.1}}, foo: 1}", "space.opt.foo: unknown option for bundle"),
        (
            "dropout: {uniform: [0.1, 0.2], step: 2}",
            "space.dropout.step: unknown option for uniform",
        ),
    ],
)
def test_bad_factor_options_are_errors_not_crashes(
    tmp_path: Path, factor: str, expect: str
) -> None:
    text = f"study: t\ndata:\n  protocols: {{a: {{image_size: 64}}}}\nspace:\n  {factor}\n"
    with pytest.raises(UserError) as info:
        load_space(write(tmp_path, text))
    assert expect in str(info.value) and ":5:" in str(info.value)


def test_loading_a_space_imports_neither_torch_nor_optuna() -> None:
    code = (
        "import sys; from search.space import load_space; "
        f"s = load_space({str(PLACEMENT)!r}, 'smoke'); s.grid(); s.baseline(); "
        "print(sorted(m for m in ('torch', 'optuna', 'timm', 'ray') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
