"""Build a study's report: tables (tidy frames for CSV and JSON), figures and the page.

:func:`build_report` reads the store and writes the figures; :func:`write_report`
writes report.md, report.html and tables/*.csv. All metric values are percent points.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from leukmodels.errors import UserError
from search.report import display, figures
from search.report.ablation import Level, factor_levels, factor_table, missing_levels
from search.report.collect import (
    BINARY_METRICS,
    METRICS,
    StudyData,
    epochs_frame,
    load_study,
    point_key,
)
from search.report.header import FULL_DEFINITION, header_facts
from search.report.importance import MIN_SEEDS, MIN_TRIALS, factor_importance, metric_study
from search.report.paper import configuration_table, configurations, reference_table
from search.report.reference_checks import impossible_values
from search.report.render import Block, to_html, to_markdown
from search.report.segmentation import add_section
from search.report.tables import complexity_table, noise_table
from search.store.store import Store


@dataclass
class Report:
    """What ``leuksearch report`` writes and prints."""

    study: str
    out: Path
    header: dict[str, Any]
    missing: list[str]
    tables: dict[str, pd.DataFrame]
    blocks: list[Block] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The header, what is missing, every table as records and the files written."""
        return {
            "study": self.study,
            "unit": "percent points (kappa and MCC x 100)",
            "header": self.header,
            "missing": self.missing,
            "tables": {k: json.loads(v.to_json(orient="records")) for k, v in self.tables.items()},
            "files": {
                "markdown": str(self.out / "report.md"),
                "html": str(self.out / "report.html"),
                "tables": [str(self.out / "tables" / f"{k}.csv") for k in self.tables],
                "figures": [str(p) for p in self.figures],
            },
        }


def check_metric(metric: str | None) -> tuple[str, ...]:
    """The metrics the tables centre on: ``metric`` alone, or accuracy and F1."""
    if metric is None:
        return ("accuracy", "f1")
    name = metric.removeprefix("test_")
    if name not in METRICS:
        raise UserError(
            f"--metric {metric}: not a test metric of the report; valid: {', '.join(METRICS)}"
        )
    return (name,)


def build_report(store: Store, name: str, out: Path, metric: str | None = None) -> Report:
    """Read study ``name`` from ``store`` and write its figures under ``out/figures``."""
    centre = check_metric(metric)
    return _Builder(store, load_study(store, name), Path(out), centre).build()


def write_report(report: Report) -> None:
    """report.md, report.html and tables/*.csv under ``report.out``."""
    tables = report.out / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    for key, frame in report.tables.items():
        frame.to_csv(tables / f"{key}.csv", index=False)
    (report.out / "report.md").write_text(to_markdown(report.blocks, report.out))
    title = f"leuksearch report: {report.study}"
    (report.out / "report.html").write_text(to_html(report.blocks, title))


class _Builder:
    """Adds each section's blocks, tables, figures and missing pieces in reading order."""

    def __init__(self, store: Store, data: StudyData, out: Path, centre: tuple[str, ...]):
        self.store = store
        self.data = data
        self.space = data.space
        self.out = out
        self.centre = centre
        self.primary = centre[0]
        self.blocks: list[Block] = []
        self.tables: dict[str, pd.DataFrame] = {}
        self.figures: list[Path] = []
        self.missing: list[str] = []
        self.full = data.trials[data.trials["full"]]

    def add(self, kind: str, text: str = "", **kw: Any) -> None:
        self.blocks.append(Block(kind, text, **kw))

    def figure(self, path: Path, caption: str) -> None:
        self.figures.append(path)
        self.add("figure", caption, path=path)

    def fig_path(self, stem: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)
        return self.out / "figures" / f"{safe}.png"

    def best_run(self, key: str | None = None) -> pd.Series | None:
        """The fully trained run with the best value of the study's own metric (validation,
        at its best epoch; never a test metric): of the cell of one point, if given."""
        t = self.full if key is None else self.data.trials[self.data.trials["cell"]]
        t = t if key is None else t[t["key"] == key]
        t = t[t["val"].notna()]
        if t.empty:
            return None
        best = t["val"].idxmin() if self.data.study.mode == "min" else t["val"].idxmax()
        return t.loc[best]

    def params_text(self, point: dict[str, Any]) -> str:
        factors = self.space.factors
        shown = {k: v for k, v in point.items() if k in factors and factors[k].searched}
        return ", ".join(f"{k}={display.short(v)}" for k, v in shown.items())

    # -- sections -------------------------------------------------------------------

    def build(self) -> Report:
        self.out.mkdir(parents=True, exist_ok=True)
        facts = header_facts(self.data)
        if self.full.empty:
            self.missing.append("no fully trained trial: no completed run to make statistics from.")
        self.absent_classes()
        for section in (
            self.ablation,
            self.configurations,
            self.segmentation,
            self.importance,
            self.complexity,
            self.noise,
            self.search,
        ):
            section()
        body, self.blocks = self.blocks, []
        self.add("h1", f"Study {facts['study']}: ablation report")
        if self.data.study.description:
            self.add("p", self.data.study.description.strip())
        self.add("list", items=[f"{k}: {v}" for k, v in facts.items() if k != "splits"])
        self.add("h3", "The splits: test images, grouping, duplicates, warnings")
        self.add("list", items=facts["splits"])
        self.add("h2", "What is missing")
        self.add("list", items=self.missing or ["nothing: every table has what it needs."])
        self.blocks.extend(body)
        cols = ["trial_id", "kind", "status", "fidelity", "full", "epochs_done", "seed", "fold"]
        trials = self.data.trials
        self.tables["trials"] = trials[cols + list(METRICS)].assign(point=trials["key"])
        return Report(
            facts["study"], self.out, facts, self.missing, self.tables, self.blocks, self.figures
        )

    def ablation(self) -> None:
        self.add("h2", "Ablation: one factor at a time")
        levels, notes = factor_levels(self.space)
        self.missing.extend(notes)
        if not levels:
            self.add("p", "The space names no ablation factors: no factor tables.")
            self.missing.append("ablation tables: the space names no ablation factors.")
            return
        self.add(
            "p",
            f"Baseline: {self.params_text(self.space.baseline())}. Each table varies one "
            f"factor from the baseline and is based on {FULL_DEFINITION}. {display.STATS_METHOD}",
        )
        frames = []
        single: dict[str, str] = {}  # point key -> label, for levels resting on one run
        for factor, lvls in levels.items():
            if not lvls:
                self.add("h3", f"Factor: {factor}")
                self.add(
                    "p", f"{factor} is inactive at the baseline: no level can be varied alone."
                )
                continue
            table = factor_table(self.data, factor, lvls, METRICS)
            frames.append(table)
            self.tables[f"ablation_{factor}"] = table
            self.factor_section(factor, lvls, table)
            self.binary_section(factor, lvls)
            n = table[table["metric"] == self.primary].set_index("level")
            for lv in lvls:
                if n.loc[lv.label, "n"] == 1 and pd.isna(n.loc[lv.label, "ci_low"]):
                    single.setdefault(
                        lv.key, "the baseline" if lv.baseline else f"{factor}={lv.label}"
                    )
        if frames:
            self.tables["ablation"] = pd.concat(frames, ignore_index=True)
        if single:
            self.missing.append(
                f"no confidence interval for {', '.join(single.values())}: a single run each "
                "(raise search.repeats for intervals)."
            )

    def factor_section(self, factor: str, levels: list[Level], table: pd.DataFrame) -> None:
        self.add("h3", f"Factor: {factor}")
        caption = display.factor_caption(table, factor, self.centre)
        self.add("table", caption, table=display.factor_display(table, self.centre))
        caption = f"{factor}: the other test metrics, mean ± std (percent)"
        self.add("table", caption, table=display.others_display(table, self.centre))
        for level in missing_levels(table):
            self.missing.append(f"{factor}={level}: never fully trained (no run behind its row).")
        if (table["n"] > 0).any():
            path = figures.factor_intervals(
                table, factor, self.primary, self.fig_path(f"factor_{factor}")
            )
            self.figure(
                path, f"{factor}: test {self.primary} per level, mean and 95 % CI (grey: baseline)"
            )
        curves = {}
        for lv in levels:
            best = self.best_run(lv.key)
            if best is not None:
                tid = int(best["trial_id"])
                curves[f"{lv.label} (trial {tid})"] = epochs_frame(self.store, tid)
        if curves:
            val = self.data.study.metric or "val_f1"
            path = figures.learning_curves(curves, val, factor, self.fig_path(f"curves_{factor}"))
            self.figure(
                path,
                f"{factor}: {val} and training loss per epoch of each level's best run "
                f"(best by {val})",
            )

    def positive_class(self) -> str | None:
        """The positive class of a two-class study (None otherwise)."""
        names = self.full["positive"].dropna()
        return str(names.iloc[0]) if len(names) else None

    def binary_section(self, factor: str, levels: list[Level]) -> None:
        """Two classes: the positive class's sensitivity, specificity, PPV and NPV per level."""
        positive = self.positive_class()
        if positive is None:
            return
        table = factor_table(self.data, factor, levels, tuple(BINARY_METRICS))
        self.tables[f"binary_{factor}"] = table
        caption = (
            f"{factor}: positive class '{positive}' (data.positive_class, else the second "
            "class): sensitivity, specificity, PPV and NPV of that class alone (percent), "
            "mean ± std and 95 % CI. " + display.interval_note(table, tuple(BINARY_METRICS))
        )
        self.add("table", caption, table=display.binary_display(table))

    def absent_classes(self) -> None:
        """Flag runs whose test split lacks a class (its zero recall drags macro averages)."""
        absent: dict[str, list[int]] = {}
        for tid, names in zip(self.full["trial_id"], self.full["absent"], strict=True):
            for name in names if isinstance(names, list) else []:
                absent.setdefault(name, []).append(int(tid))
        for name, tids in absent.items():
            self.missing.append(
                f"class '{name}' is absent from the test split of {len(tids)} run(s) (trials "
                f"{', '.join(map(str, tids[:10]))}{', ...' if len(tids) > 10 else ''}): its "
                "recall is undefined and the macro averages count it as 0."
            )

    def segmentation(self) -> None:
        add_section(self)  # only when trials stored Dice / IoU (multi-task)

    def configurations(self) -> None:
        self.add("h2", "Named configurations against the paper")
        if not configurations(self.space):
            self.add("p", "The space names no configurations (ablation.configurations).")
            return
        table, ref = configuration_table(self.data), reference_table(self.data)
        self.tables["configurations"], self.tables["reference"] = table, ref
        n = table.groupby("config", sort=False)["n"].max()
        self.missing.extend(f"configuration {c}: never fully trained." for c in n[n == 0].index)
        self.add(
            "table",
            "Test metrics per configuration, mean ± std over its fully trained runs (percent); "
            "paper columns only where the paper's value can be compared with this study.",
            table=display.configurations_display(table, ref),
        )
        spec = self.space.reference
        if spec is None:
            self.add("p", "The space gives no reference numbers.")
            return
        self.add("h3", f"The paper's numbers: {spec.source}")
        if spec.note:
            self.add("p", spec.note.strip())
        self.add(
            "table",
            "Every reference value (percent; a gain is the improvement over the bare backbone, "
            "ours = the configuration minus the same point with attention none).",
            table=display.reference_display(ref),
        )
        leaked = ref[ref["leakage"].notna()]
        for (config, dataset), group in leaked.groupby(["config", "dataset"], sort=False):
            self.add(
                "p",
                f"Leakage: the paper's {config} on {dataset} ({len(group)} value(s), marked "
                f"'(leakage)'): {group['leakage'].iloc[0]}",
            )
        self.missing.extend(impossible_values(spec.rows, spec.scale))
        bad = ref[~ref["comparable"].astype(bool)]
        if len(bad):
            parts = {p.split(":")[0] for why in bad["why_not"].astype(str) for p in why.split("; ")}
            self.missing.append(
                f"{len(bad)} of {len(ref)} reference values cannot be compared with this study "
                f"(they differ in: {', '.join(sorted(parts))}; see 'what differs' beside each); "
                "they are listed beside ours, not set against them."
            )

    def importance(self) -> None:
        self.add("h2", "Factor importance")
        table, notes = factor_importance(self.data, self.primary)
        self.tables["importance"] = table
        self.add(
            "p",
            f"Importance of each searched factor for test {self.primary} over every fully "
            "trained trial (ablation and exploration alike), normalised to sum 1, given only "
            f"from at least {MIN_TRIALS} such trials over at least {MIN_SEEDS} seeds. fANOVA: the "
            "share of the metric's variance a factor explains (random-forest functional "
            "ANOVA). PED-ANOVA: how differently a factor is distributed in the best 10 % of "
            "trials than in all of them; a range factor that the repeated ablation runs hold "
            "at one value can look important to it. Pruned trials have no test result and "
            "are not included.",
        )
        if table.empty:
            self.add("p", "Not computed: " + " ".join(notes))
            self.missing.append("factor importance: " + " ".join(notes))
            return
        self.add("table", table=display.importance_display(table))
        for note in notes:
            self.add("p", "Note: " + note)
        path = figures.importance_bars(table, self.fig_path("importance"))
        self.figure(path, f"Factor importance for test {self.primary}")

    def complexity(self) -> None:
        self.add("h2", "Complexity per architecture")
        table = complexity_table(self.data)
        self.tables["complexity"] = table
        if table.empty:
            self.add("p", "No trial has a profile (params, FLOPs, latency) yet.")
            self.missing.append("complexity table: no profiled trial.")
            return
        self.add(
            "table",
            "Params, FLOPs (one image at the study's size; a multiply-add is 2 FLOPs), size and "
            "median CPU latency over the runs that measured it (n = runs).",
            table=display.complexity_display(table),
        )

    def noise(self) -> None:
        if self.full["noise"].isna().all():
            return
        self.add("h2", "Test-time Gaussian noise")
        keys: dict[str | int, str] = {}  # point key (its cell) or trial id -> label
        for cname, point in configurations(self.space):
            keys.setdefault(point_key(self.space, point), cname)
        if self.space.ablation is not None:
            keys.setdefault(point_key(self.space, self.space.baseline()), "baseline")
        best = self.best_run()
        if best is not None:
            tid = int(best["trial_id"])
            keys[tid] = f"best by {self.data.study.metric} (trial {tid})"
        table = noise_table(self.data, [(label, key) for key, label in keys.items()])
        self.tables["noise"] = table
        for label, group in table.groupby("config", sort=False):
            caption = f"{label}: mean test metrics (percent) by noise sigma (0-255 scale)"
            self.add("table", caption, table=display.noise_display(group))

    def search(self) -> None:
        self.add("h2", "The search")
        study = metric_study(self.data, self.primary)
        if len(study.trials) >= 2 and any(t.params for t in study.trials):
            path = self.fig_path("parallel_coordinates")
            figures.parallel_coordinates(study, f"test {self.primary}", path)
            caption = (
                f"Parallel coordinates: every fully trained trial's factors and test {self.primary}"
            )
            self.figure(path, caption)
        else:
            self.add(
                "p",
                "No parallel-coordinate plot: fewer than two fully trained trials, or no searched factor.",
            )
        best = self.best_run()
        if best is None:
            return
        metric = self.data.study.metric
        self.add(
            "p",
            f"Best fully trained trial by the study's metric {metric} ({self.data.study.mode}, "
            f"its best epoch): trial {int(best['trial_id'])} ({best['kind']}, seed "
            f"{best['seed']}): {self.params_text(best['point'])}; {metric} "
            f"{display.num(best['val'], 4)}, test {self.primary} {display.num(best[self.primary])} "
            "(the test value is reported, never used to choose).",
        )
        if isinstance(best["confusion"], list) and best["confusion"]:
            names = best["class_names"] if isinstance(best["class_names"], list) else None
            title = f"trial {int(best['trial_id'])}: test confusion matrix"
            path = figures.confusion(
                best["confusion"], names, title, self.fig_path("confusion_best")
            )
            self.figure(
                path, "Confusion matrix of the best trial (rows: true class, columns: predicted)"
            )
