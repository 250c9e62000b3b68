"""The segmentation section of a report: Dice and IoU of multi-task trials (paper 001).

Shown only when some trial of the study stored segmentation metrics
(:data:`~search.report.collect.SEG_METRICS`, percent). Three tables:

- **per ablation factor**: each level's Dice and IoU (macro over test images), mean, 95 %
  CI over runs and the difference from the baseline, as the classification tables (levels
  without a segmentation branch have no row values);
- **single- vs multi-task**: when ``task`` is an ablation factor, accuracy, F1 and Dice of
  its two levels side by side with their intervals (does the second task help the first?);
- **per named configuration**: Dice and IoU, macro and pooled over pixels, mean ± std.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from search.report import display
from search.report.ablation import factor_levels, factor_table
from search.report.collect import SEG_METRICS, StudyData
from search.report.paper import configuration_table, configurations

SEG_CENTRE = ("dice", "iou")


def has_segmentation(data: StudyData) -> bool:
    """Whether any trial of the study stored Dice / IoU."""
    return "dice" in data.trials and bool(data.trials["dice"].notna().any())


def add_section(builder: Any) -> None:
    """Append the segmentation tables to a report builder (``search.report.build``)."""
    data: StudyData = builder.data
    if not has_segmentation(data):
        return
    builder.add("h2", "Nucleus segmentation (multi-task trials)")
    builder.add(
        "p",
        "Dice and IoU of the predicted nucleus masks on the test split (threshold 0.5), "
        "macro = the mean over test images, pooled = from the pixel counts of all of them; "
        "percent. Single-task levels have no segmentation branch and so no values.",
    )
    levels, _ = factor_levels(data.space)
    for factor, lvls in levels.items():
        if not lvls:
            continue
        table = factor_table(data, factor, lvls, SEG_CENTRE)
        if table["n"].fillna(0).max() == 0:
            continue
        builder.tables[f"segmentation_{factor}"] = table
        caption = f"{factor}: test Dice and IoU per level. " + display.interval_note(
            table, SEG_CENTRE
        )
        builder.add("table", caption, table=display.factor_display(table, SEG_CENTRE))
    if "task" in levels and levels["task"]:
        table = factor_table(data, "task", levels["task"], ("accuracy", "f1", "dice"))
        builder.tables["single_vs_multi_task"] = table
        builder.add("h3", "Single- vs multi-task")
        builder.add(
            "table",
            "Classification with and without the segmentation task (and its Dice), each "
            "level's runs with 95 % CIs; Δ is against the baseline. "
            + display.interval_note(table, ("accuracy", "f1")),
            table=display.factor_display(table, ("accuracy", "f1", "dice")),
        )
    _configurations(builder, data)


def _configurations(builder: Any, data: StudyData) -> None:
    if not configurations(data.space):
        return
    table = configuration_table(data, tuple(SEG_METRICS))
    builder.tables["segmentation_configurations"] = table
    rows = []
    for name, group in table.groupby("config", sort=False):
        by = group.set_index("metric")
        row: dict[str, Any] = {"configuration": name, "n": int(by["n"].max())}
        for m in SEG_METRICS:
            row[m] = display.mean_std(by.loc[m, "mean"], by.loc[m, "std"])
        rows.append(row)
    builder.add(
        "table",
        "Segmentation per named configuration, mean ± std over its fully trained runs (percent).",
        table=pd.DataFrame(rows),
    )
