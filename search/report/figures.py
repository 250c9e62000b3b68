"""The report's figures as PNG files (matplotlib; Optuna's and scikit-learn's plots where
they exist). Every function returns the path it wrote."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import ConfusionMatrixDisplay

DPI = 110
BASE_COLOUR = "#7f7f7f"
LEVEL_COLOUR = "#1f77b4"


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def factor_bars(table: pd.DataFrame, factor: str, metric: str, path: Path) -> Path:
    """Mean ``metric`` per level with its 95 % CI (no bar where n < 2); baseline in grey."""
    rows = table[table["metric"] == metric].reset_index(drop=True)
    fig = Figure(figsize=(1.2 + 1.1 * max(len(rows), 2), 3.4))
    ax = fig.subplots()
    x = np.arange(len(rows))
    means = rows["mean"].to_numpy(dtype=float)
    low = rows["ci_low"].to_numpy(dtype=float)
    high = rows["ci_high"].to_numpy(dtype=float)
    colours = [BASE_COLOUR if b else LEVEL_COLOUR for b in rows["baseline"]]
    ax.bar(x, np.nan_to_num(means), color=colours)
    ci = np.isfinite(low) & np.isfinite(high)
    if ci.any():
        err = [means[ci] - low[ci], high[ci] - means[ci]]
        ax.errorbar(x[ci], means[ci], yerr=err, fmt="none", ecolor="black", capsize=4)
    for i, (m, n) in enumerate(zip(means, rows["n"], strict=True)):
        top = high[i] if np.isfinite(high[i]) else m
        if np.isfinite(top):
            ax.annotate(
                f"n={n}", (i, top), ha="center", va="bottom", xytext=(0, 2),
                textcoords="offset points", fontsize=8,
            )  # fmt: skip
        else:  # never fully trained: say so where the bar would be
            ax.text(i, 0.02, "n=0\nnot trained", ha="center", va="bottom", fontsize=8,
                    transform=ax.get_xaxis_transform())  # fmt: skip
    labels = [
        f"{lv}\n(baseline)" if b else str(lv)
        for lv, b in zip(rows["level"], rows["baseline"], strict=True)
    ]
    ax.set_xticks(x, labels, fontsize=8)
    lows = np.where(np.isfinite(low), low, means)
    highs = np.where(np.isfinite(high), high, means)
    if np.isfinite(lows).any():
        # room above the highest bar for its "n=" label, even at 100 %
        ax.set_ylim(max(0.0, np.nanmin(lows) - 5), np.nanmax(highs) + 5)
    ax.set_ylabel(f"test {metric} (%)")
    ax.set_title(f"{factor}: mean and 95 % bootstrap CI", fontsize=10)
    return _save(fig, path)


def learning_curves(
    curves: dict[str, pd.DataFrame], val_metric: str, factor: str, path: Path
) -> Path:
    """Per level, the best run's ``val_metric`` and training loss against epoch."""
    fig = Figure(figsize=(9, 3.2))
    ax_val, ax_loss = fig.subplots(1, 2)
    for label, ep in curves.items():
        if ep.empty:
            continue
        if val_metric in ep:
            ax_val.plot(ep["epoch"], ep[val_metric], marker="o", ms=3, label=label)
        if "train_loss" in ep:
            ax_loss.plot(ep["epoch"], ep["train_loss"], marker="o", ms=3, label=label)
    ax_val.set_xlabel("epoch")
    ax_val.set_ylabel(val_metric)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("train_loss")
    ax_val.legend(fontsize=7)
    fig.suptitle(f"{factor}: learning curves of each level's best run", fontsize=10)
    return _save(fig, path)


def parallel_coordinates(study: optuna.Study, target_name: str, path: Path) -> Path:
    """Optuna's parallel-coordinate plot of the study's trials."""
    from matplotlib import pyplot as plt

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", UserWarning)  # flat axes: matplotlib widens them
        ax = optuna.visualization.matplotlib.plot_parallel_coordinate(
            study, target_name=target_name
        )
    for coll in ax.collections:  # Optuna's "Blues" draws the worst trials near white
        coll.set_cmap("viridis")
    fig = ax.figure
    fig.set_size_inches(10, 4)
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def confusion(
    matrix: list[list[int]], class_names: list[str] | None, title: str, path: Path
) -> Path:
    """scikit-learn's confusion-matrix display (rows true, columns predicted)."""
    cm = np.asarray(matrix)
    fig = Figure(figsize=(1.6 + 0.9 * len(cm), 1.2 + 0.9 * len(cm)))
    ax = fig.subplots()
    ConfusionMatrixDisplay(cm, display_labels=class_names).plot(ax=ax, colorbar=False)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def importance_bars(table: pd.DataFrame, path: Path) -> Path:
    """Horizontal bars of each factor's importance, one group per evaluator."""
    fig = Figure(figsize=(6, 0.5 + 0.45 * max(len(table), 2)))
    ax = fig.subplots()
    y = np.arange(len(table))
    for i, col in enumerate(("fanova", "ped_anova")):
        ax.barh(y + 0.4 * i - 0.2, table[col].astype(float).fillna(0), height=0.4, label=col)
    ax.set_yticks(y, table["factor"])
    ax.invert_yaxis()
    ax.set_xlabel("importance (normalised)")
    ax.legend(fontsize=8)
    return _save(fig, path)
