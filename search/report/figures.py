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

from search.report.stats import (
    COVERS_IMAGES,
    COVERS_SEEDS,
    COVERS_SEEDS_IMAGES,
    COVERS_SEEDS_SPLITS,
)

DPI = 110
COVERS_SHORT = {
    COVERS_SEEDS: "seeds only (one fixed test set)",
    COVERS_SEEDS_SPLITS: "seeds and test splits",
    COVERS_SEEDS_IMAGES: "seeds and test images",
    COVERS_IMAGES: "test images only (one run)",
}
BASE_COLOUR = "#7f7f7f"
LEVEL_COLOUR = "#1f77b4"


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def factor_intervals(table: pd.DataFrame, factor: str, metric: str, path: Path) -> Path:
    """Mean ``metric`` per level as a point with its 95 % CI (none where there is no
    interval), the baseline in grey with a dotted line at its mean. Points, not bars: the
    axis fits the intervals and no length stands for a value."""
    rows = table[table["metric"] == metric].reset_index(drop=True)
    fig = Figure(figsize=(1.4 + 1.1 * max(len(rows), 2), 3.4))
    ax = fig.subplots()
    x = np.arange(len(rows))
    means = rows["mean"].to_numpy(dtype=float)
    low = rows["ci_low"].to_numpy(dtype=float)
    high = rows["ci_high"].to_numpy(dtype=float)
    for i, base in enumerate(rows["baseline"]):
        colour = BASE_COLOUR if base else LEVEL_COLOUR
        if np.isfinite(low[i]) and np.isfinite(high[i]):
            ax.vlines(x[i], low[i], high[i], color=colour, lw=2)
            ax.hlines([low[i], high[i]], x[i] - 0.08, x[i] + 0.08, color=colour, lw=1.5)
        if np.isfinite(means[i]):
            ax.plot(x[i], means[i], "o", color=colour, ms=7, zorder=3)
        if base and np.isfinite(means[i]):
            ax.axhline(means[i], color=BASE_COLOUR, ls=":", lw=1)
    for i, n in enumerate(rows["n"]):
        if not np.isfinite(means[i]):  # never fully trained: say so where the point would be
            ax.text(i, 0.04, "n=0\nnot trained", ha="center", va="bottom", fontsize=8,
                    transform=ax.get_xaxis_transform())  # fmt: skip
            continue
        images = rows["n_images"][i]
        label = f"n={n}" + (f"×{int(images)}" if pd.notna(images) else "")
        if np.isnan(low[i]):
            label += "\nno CI"
        ax.annotate(label, (i, 0.0), xycoords=("data", "axes fraction"), xytext=(0, 3),
                    textcoords="offset points", ha="center", va="bottom", fontsize=7)  # fmt: skip
    labels = [
        f"{lv}\n(baseline)" if b else str(lv)
        for lv, b in zip(rows["level"], rows["baseline"], strict=True)
    ]
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    finite = np.concatenate([v[np.isfinite(v)] for v in (means, low, high)])
    if finite.size:
        pad = max(0.5, 0.12 * float(np.ptp(finite)))
        ax.set_ylim(float(finite.min()) - 1.6 * pad, float(finite.max()) + pad)
    ax.set_ylabel(f"test {metric} (%)")
    covers = ", ".join(
        dict.fromkeys(COVERS_SHORT.get(c, str(c)) for c in rows["covers"].dropna() if c)
    )
    ax.set_title(f"{factor}: mean and 95 % CI\nover {covers or 'nothing: no interval'}", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
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
