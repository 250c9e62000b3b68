"""``leuksearch report`` on stores built for the purpose: a planted effect must show.

The store holds a study whose space has two ablation factors: attention=scab adds five
accuracy points to the baseline, pooling=gmp adds none, eight seeds each with a seed
effect shared by every level (so pairing by seed matters) and run-to-run noise. Metric
dicts come from :func:`leukmodels.metrics.classification_metrics` on synthetic predictions.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from factories import trial_result
from scipy.stats import ttest_1samp, ttest_rel

from leukmodels.errors import UserError
from leukmodels.metrics import classification_metrics
from leukmodels.results import EpochRow
from search.cli import main as cli_main
from search.report.ablation import factor_levels
from search.report.build import Report, build_report, write_report
from search.report.collect import load_study, point_key
from search.report.paper import reference_table
from search.report.stats import difference, summarise
from search.space import Space, iter_ablation_points, load_space
from search.store.records import StudyRecord, TrialUpdate
from search.store.store import Store

SPACE_YAML = """\
study: planted
description: a store built for the report tests
data:
  dataset: all_idb2
  split: {kind: holdout, train: 0.8, val: 0.1, test: 0.1, group: none}
  image_size: 64
search:
  algorithm: tpe
  num_samples: 8
  metric: val_f1
  repeats: 8
  scheduler: {kind: asha, max_epochs: 3, grace_epochs: 1}
ablation:
  baseline: {attention: none, pooling: gap}
  factors: [attention, pooling]
  configurations:
    ResNet18: {attention: none}
    ResNet18+SCAB: {attention: scab}
space:
  backbone: resnet18
  attention: {choice: [none, scab]}
  pooling: {choice: [gap, gmp, both]}
  lr: {loguniform: [1.0e-4, 1.0e-1]}
  optimizer: adam
  epochs: 3
  test_noise: [0, 5]
reference:
  source: A made-up paper (2026)
  scale: percent
  facts: {grouping: image, pretrained: false, image_size: 64}
  rows:
    - {config: ResNet18+SCAB, dataset: all_idb2, protocol: holdout, accuracy: 90.0, accuracy_gain: 2.0}
    - {config: ResNet18+SCAB, dataset: cnmc2019, protocol: holdout, accuracy: 93.0}
    - {config: ResNet18, dataset: all_idb2, protocol: cv5, accuracy: 85.0}
"""
STUDY = "planted"
SEEDS = range(8)
BASE_ACC = 80.0
EFFECTS = {("attention", "scab"): 5.0, ("pooling", "gmp"): 0.0}
N_TEST = 400
CLASSES = ["hem", "ALL"]


def metrics_for(accuracy_pct: float, rng: np.random.Generator) -> dict[str, Any]:
    """Real metrics of predictions on N_TEST balanced images with about that accuracy."""
    y = np.repeat([0, 1], N_TEST // 2)
    wrong = rng.permutation(N_TEST)[: int(round((1 - accuracy_pct / 100) * N_TEST))]
    p_true = rng.uniform(0.55, 0.99, N_TEST)
    p_true[wrong] = 1 - p_true[wrong]
    proba = np.where(y[:, None] == np.arange(2), p_true[:, None], 1 - p_true[:, None])
    return classification_metrics(y, proba, CLASSES)


def add_run(
    store: Store,
    study_id: int,
    space: Space,
    tag: str,
    point: dict[str, Any],
    acc: float,
    rng: np.random.Generator,
    *,
    kind: str = "ablation",
    seed: int = 0,
    status: str = "completed",
) -> int:
    config = space.trial_config(point, seed=seed).model_dump(mode="json")
    update = TrialUpdate(params=point, config=config, kind=kind, status="running", seed=seed)
    tid = store.upsert_trial(study_id, tag, update)
    for epoch in (1, 2, 3):
        row = EpochRow(epoch=epoch, val_f1=acc / 100 - 0.1 / epoch, train_loss=1.0 / epoch)
        store.record_epoch(tid, row)
    if status != "completed":
        store.finish_trial(tid, status, fidelity="partial", epochs_done=1)
        return tid
    scab = point["attention"] == "scab"
    result = trial_result(
        metrics_for(acc, rng),
        noise={"0": metrics_for(acc, rng), "5": metrics_for(acc - 4, rng)},
        profile={
            "params": 11_177_538 + (10_000 if scab else 0),
            "flops": 296_000_000 + (1_000_000 if scab else 0),
            "macs": 148_000_000,
            "size_mb": 42.7,
            "latency_ms": 30.0 + rng.uniform(0, 3),
        },
        epochs=3,
        seed=seed,
    )
    store.record_result(tid, result)
    return tid


def build_store(url: str) -> None:
    """The planted study: 8 seeds per ablation point, exploration, and trials to leave out."""
    space = load_space("planted.yaml", text=SPACE_YAML)
    rng = np.random.default_rng(7)
    seed_effect = rng.normal(0, 1.5, len(SEEDS))
    with Store.open(url) as store:
        sid = store.ensure_study(
            StudyRecord(
                name=STUDY,
                space_yaml=SPACE_YAML,
                space_hash=space.hash,
                space_path="planted.yaml",
                dataset="all_idb2",
                metric="val_f1",
                mode="max",
                code_version="test",
            )
        )
        for factor, label, point in iter_ablation_points(space):
            if (factor, label) == ("pooling", "both"):
                continue  # a level never trained: the report must say so
            if factor == "configuration":
                continue
            effect = EFFECTS.get((factor, label), 0.0)
            for seed in SEEDS:
                acc = BASE_ACC + seed_effect[seed] + effect + rng.normal(0, 1.2)
                add_run(store, sid, space, f"{factor}={label}/{seed}", point, acc, rng, seed=seed)
        for i in range(10):  # exploration: random points, all fully trained
            attention = ["none", "scab"][i % 2]
            point = space.fill(
                {
                    "attention": attention,
                    "pooling": ["gap", "gmp"][(i // 2) % 2],
                    "lr": float(10 ** rng.uniform(-4, -1)),
                }
            )
            acc = BASE_ACC + (5.0 if attention == "scab" else 0.0) + rng.normal(0, 1.5)
            add_run(store, sid, space, f"explore{i}", point, acc, rng, kind="explore", seed=0)
        base = space.baseline()
        # Never in the statistics: a pruned and a failed explorer, a retrain at 99 %.
        add_run(store, sid, space, "pruned", base, 99.0, rng, kind="explore", status="pruned")
        add_run(store, sid, space, "failed", base, 99.0, rng, kind="explore", status="failed")
        add_run(store, sid, space, "retrain", base, 99.0, rng, kind="retrain", seed=0)
        store.ensure_study(StudyRecord(
            name="other", space_yaml="study: other\nspace:\n  lr: 0.01\n", space_hash="h",
            dataset="synthetic", metric="val_f1", mode="max", code_version="test",
        ))  # fmt: skip


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Report]]:
    """The planted SQLite store and its report (written under out/)."""
    root = tmp_path_factory.mktemp("report")
    url = f"sqlite:///{root / 'planted.db'}"
    build_store(url)
    with Store.open(url) as store:
        report = build_report(store, STUDY, root / "out")
    write_report(report)
    yield url, report


def row(table: pd.DataFrame, factor: str, level: str, metric: str = "accuracy") -> pd.Series:
    sel = table[(table["factor"] == factor) & (table["level"] == level)]
    return sel[sel["metric"] == metric].iloc[0]


def test_planted_effect_excludes_zero_and_null_effect_includes_it(planted):
    _, report = planted
    table = report.tables["ablation"]
    scab = row(table, "attention", "scab")
    gmp = row(table, "pooling", "gmp")
    assert scab["n"] == 8 and gmp["n"] == 8
    assert scab["paired"] and gmp["paired"]  # same seeds on both sides
    assert 3.0 < scab["diff"] < 7.0
    assert scab["excludes_zero"] is True and scab["diff_low"] > 0
    assert gmp["excludes_zero"] is False and gmp["diff_low"] < 0 < gmp["diff_high"]


def test_baseline_rows_count_only_fully_trained_ablation_and_explore_runs(planted):
    _, report = planted
    table = report.tables["ablation"]
    for factor, level in (("attention", "none"), ("pooling", "gap")):
        base = row(table, factor, level)
        assert bool(base["baseline"]) and base["n"] == 8
        assert base["mean"] < 90  # the 99 % pruned, failed and retrain runs stayed out
        assert pd.isna(base["diff"])
    both = row(table, "pooling", "both")
    assert both["n"] == 0 and pd.isna(both["mean"])
    assert any("pooling=both" in m and "never fully trained" in m for m in report.missing)


def test_intervals_are_student_t_intervals_of_the_runs(planted):
    url, report = planted
    with Store.open(url) as store:
        study = store.require_study(STUDY)
        trials = store.trials(study.id, status="completed")
    space = load_space("planted.yaml", text=SPACE_YAML)
    base_key = point_key(space, space.baseline())
    scab_key = point_key(space, space.fill({**space.baseline(), "attention": "scab"}))

    def runs(key: str) -> pd.Series:
        sel = [t for t in trials if t.kind == "ablation" and point_key(space, t.params) == key]
        return pd.Series(
            [100 * t.result.accuracy for t in sel],
            index=[f"seed={t.seed},fold=None" for t in sel],
        )

    scab, base = runs(scab_key), runs(base_key)
    got = row(report.tables["ablation"], "attention", "scab")
    assert got["mean"] == pytest.approx(scab.mean())
    ci = ttest_1samp(scab, 0).confidence_interval()
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((ci.low, ci.high))
    paired = ttest_rel(scab, base.reindex(scab.index))
    assert got["paired"] and got["diff"] == pytest.approx((scab - base.reindex(scab.index)).mean())
    assert (got["diff_low"], got["diff_high"]) == pytest.approx(tuple(paired.confidence_interval()))
    assert got["p"] == pytest.approx(paired.pvalue) and got["p_holm"] == pytest.approx(got["p"])
    # one fixed split, no per-image predictions: seeds only, and the table says so
    assert got["covers"] == "seeds" and got["n_images"] == N_TEST


def test_single_run_has_no_interval_and_unpaired_when_seeds_differ():
    one = summarise(pd.Series([81.0]))
    assert one.n == 1 and np.isnan(one.ci_low) and np.isnan(one.std)
    flat = summarise(pd.Series([81.0, 81.0, 81.0]))  # no spread is no certainty
    assert np.isnan(flat.ci_low) and flat.note == "no spread over the runs"
    a = pd.Series([85.0, 86.0, 84.0], index=["s0", "s1", "s2"])
    b = pd.Series([80.0, 81.0, 79.0, 80.5], index=["s0", "s1", "s2", "s3"])
    d = difference(a, b)
    assert not d.paired and d.excludes_zero
    assert difference(pd.Series([85.0], index=["s0"]), b).excludes_zero is None


def test_report_files_tables_and_figures(planted):
    _, report = planted
    out = report.out
    for name in ("ablation", "ablation_attention", "ablation_pooling", "configurations"):
        csv = pd.read_csv(out / "tables" / f"{name}.csv")
        assert len(csv) == len(report.tables[name])
    csv = pd.read_csv(out / "tables" / "ablation_attention.csv")
    scab = csv[(csv["level"] == "scab") & (csv["metric"] == "accuracy")].iloc[0]
    assert bool(scab["excludes_zero"]) and scab["n"] == 8
    pngs = sorted((out / "figures").glob("*.png"))
    assert len(pngs) >= 3
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    names = {p.stem for p in pngs}
    assert {"factor_attention", "factor_pooling", "curves_attention", "confusion_best"} <= names
    assert "parallel_coordinates" in names and "importance" in names


def md_section_levels(md: str, factor: str) -> list[str]:
    """The first column of the first table under ``### Factor: <factor>``."""
    section = md.split(f"### Factor: {factor}\n", 1)[1].split("\n### ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("| ")]
    return [ln.split(" | ")[0].removeprefix("| ") for ln in lines[1:]]  # [0] is the header


def test_markdown_has_one_table_per_factor_with_every_level(planted):
    _, report = planted
    md = (report.out / "report.md").read_text()
    assert md.count("### Factor: ") == 2
    assert md_section_levels(md, "attention")[:2] == ["none (baseline)", "scab"]
    assert md_section_levels(md, "pooling")[:3] == ["gap (baseline)", "gmp", "both"]
    for fact in ("dataset: all_idb2", "split protocol: holdout 0.8/0.1/0.1", "fidelity:"):
        assert fact in md
    # what each interval covers, runs x test images, raw and Holm-adjusted p
    # (per factor: its main table and its positive-class table; the study has two classes)
    assert md.count("The intervals cover seed-to-seed variation only, on one fixed test set") == 4
    assert md.count("positive class 'ALL'") == 2
    assert "| runs × test images |" in md and "| 8 × 400 |" in md
    assert "Δ accuracy p (Holm)" in md and "Holm-adjusted across its levels" in md
    assert "## What is missing" in md


def test_html_is_self_contained(planted):
    _, report = planted
    page = (report.out / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == len(report.figures)
    assert "figures/" not in page and "http" not in page.split("<body>", 1)[1]
    assert page.count("<table") >= 2 * 2 + 1  # two tables per factor, configurations, ...


def test_reference_compared_only_where_every_fact_matches(planted):
    _, report = planted
    ref = report.tables["reference"]
    ok = ref[ref["comparable"]]
    assert set(zip(ok["config"], ok["metric"], ok["kind"], strict=True)) == {
        ("ResNet18+SCAB", "accuracy", "value"),
        ("ResNet18+SCAB", "accuracy", "gain"),
    }
    conf = report.tables["configurations"]
    ours = conf[(conf["config"] == "ResNet18+SCAB") & (conf["metric"] == "accuracy")].iloc[0]
    value = ok[ok["kind"] == "value"].iloc[0]
    assert value["ours"] == pytest.approx(ours["mean"])
    assert value["diff"] == pytest.approx(ours["mean"] - 90.0)
    gain = ok[ok["kind"] == "gain"].iloc[0]
    assert gain["ours"] == pytest.approx(
        row(report.tables["ablation"], "attention", "scab")["diff"]
    )
    why = dict(zip(ref["dataset"] + "/" + ref["protocol"], ref["why_not"], strict=True))
    assert "cnmc2019" in why["cnmc2019/holdout"] and "cv5" in why["all_idb2/cv5"]


def test_importance_complexity_and_noise_tables(planted):
    _, report = planted
    imp = report.tables["importance"].set_index("factor")
    assert {"attention", "pooling", "lr"} <= set(imp.index)
    assert imp.loc["attention", "fanova"] > imp.loc["pooling", "fanova"]
    comp = report.tables["complexity"]
    assert sorted(comp["architecture"]) == [  # head pooling changes the layers too
        f"attention={a} pooling={p}" for a in ("none", "scab") for p in ("gap", "gmp")
    ]
    params = dict(zip(comp["architecture"], comp["params"], strict=True))
    assert params["attention=scab pooling=gap"] - params["attention=none pooling=gap"] == 10_000
    assert comp["n"].sum() == len(report.tables["trials"].query("status == 'completed'"))
    noise = report.tables["noise"]
    # the baseline point is also the "ResNet18" configuration: named as the paper would
    assert "baseline" not in set(noise["config"])
    base = noise[noise["config"] == "ResNet18"].set_index("sigma")
    assert list(base.index) == [0.0, 5.0] and (base["n"] == 8).all()
    assert base.loc[5.0, "accuracy"] < base.loc[0.0, "accuracy"]


def test_cli_json_matches_library_and_unknown_study_exits_2(planted, tmp_path, capsys):
    url, report = planted
    out = tmp_path / "cli"
    proc = subprocess.run(
        [sys.executable, "-m", "search.cli", "report", "--study", STUDY, "--db", url]
        + ["--out", str(out), "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)  # stdout holds the JSON and nothing else
    expected = json.loads(json.dumps(report.as_json()))
    assert printed["tables"]["ablation"] == expected["tables"]["ablation"]
    assert printed["tables"]["reference"] == expected["tables"]["reference"]
    assert printed["missing"] == expected["missing"]
    assert (out / "report.md").is_file() and (out / "report.html").is_file()

    code = cli_main(["report", "--study", "nope", "--db", url, "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "no study named 'nope'" in err and "other, planted" in err
    code = cli_main(["report", "--study", STUDY, "--db", url, "--out", str(tmp_path / "y")]
                    + ["--metric", "val_f1"])  # fmt: skip
    assert code == 2 and "accuracy, precision" in capsys.readouterr().err


def test_metric_option_centres_the_tables(planted, tmp_path):
    url, _ = planted
    with Store.open(url) as store:
        report = build_report(store, STUDY, tmp_path, metric="kappa")
        with pytest.raises(UserError, match="valid: accuracy"):
            build_report(store, STUDY, tmp_path, metric="loss")
    write_report(report)
    md = (tmp_path / "report.md").read_text()
    assert "kappa mean ± std" in md and "accuracy mean ± std" not in md


def test_empty_study_without_ablation_reports_what_is_missing(sqlite_url, tmp_path):
    with Store.open(sqlite_url) as store:
        store.ensure_study(StudyRecord(
            name="bare", space_yaml="study: bare\nspace:\n  lr: {loguniform: [0.001, 0.1]}\n",
            space_hash="h", dataset="synthetic", metric="val_f1", mode="max", code_version="test",
        ))  # fmt: skip
        report = build_report(store, "bare", tmp_path)
    write_report(report)
    assert any("no fully trained trial" in m for m in report.missing)
    assert any("no ablation factors" in m for m in report.missing)
    md = (tmp_path / "report.md").read_text()
    assert "## What is missing" in md and "no fully trained trial" in md
    assert (tmp_path / "report.html").is_file()


def test_same_report_on_postgresql(planted, fresh_pg_url, tmp_path):
    _, sqlite_report = planted
    build_store(fresh_pg_url)
    with Store.open(fresh_pg_url) as store:
        report = build_report(store, STUDY, tmp_path)
    cols = ["factor", "level", "metric", "n", "mean", "diff", "excludes_zero"]
    pd.testing.assert_frame_equal(
        report.tables["ablation"][cols], sqlite_report.tables["ablation"][cols]
    )


def test_synthetic_study_shows_reference_values_as_not_comparable(planted):
    url, _ = planted
    with Store.open(url) as store:
        data = load_study(store, STUDY)
    # what `leuksearch run ... --data synthetic` stores
    data.study.dataset = "synthetic"
    data.study.config = {**(data.study.config or {}), "overrides": {"dataset": "synthetic"}}
    ref = reference_table(data)
    assert len(ref) == 4 and not ref["comparable"].any()
    assert ref["why_not"].str.contains("synthetic").all()
    assert ref["paper"].tolist() == [90.0, 2.0, 93.0, 85.0]  # shown, not set against ours


def test_levels_of_a_factor_inactive_at_the_baseline_are_left_out_with_a_note(sqlite_url, tmp_path):
    space = load_space(
        "inactive.yaml",
        text="study: inactive\nablation:\n  baseline: {attention: none}\n"
        "  factors: [attention, placement]\nspace:\n  attention: {choice: [none, scab]}\n"
        "  placement: {subset: [stage1, stage2], when: \"attention != 'none'\"}\n",
    )
    levels, notes = factor_levels(space)
    assert [lv.label for lv in levels["attention"]] == ["none", "scab"]
    assert levels["placement"] == []
    assert len(notes) == 3 and all("inactive at the baseline" in n for n in notes)
    with Store.open(sqlite_url) as store:
        store.ensure_study(StudyRecord(
            name="inactive", space_yaml=space.text, space_hash=space.hash,
            dataset="synthetic", metric="val_f1", mode="max", code_version="t",
        ))  # fmt: skip
        report = build_report(store, "inactive", tmp_path)
    write_report(report)
    md = (tmp_path / "report.md").read_text()
    assert "placement is inactive at the baseline" in md
    assert "placement=stage1+stage2 is left out" in md
