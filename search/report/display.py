"""Tidy numeric tables -> frames of display strings for the Markdown and HTML pages."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from search.report.collect import METRICS
from search.report.tables import NOISE_METRICS

# -- cells ----------------------------------------------------------------------------


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def num(x: Any, digits: int = 2, sign: bool = False) -> str:
    """A number, or "n/a" when there is none."""
    if not _finite(x):
        return "n/a"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def mean_std(mean: Any, std: Any) -> str:
    """``93.20 ± 1.05``; the mean alone for one run; "n/a" for none."""
    if not _finite(mean):
        return "n/a"
    return f"{mean:.2f} ± {std:.2f}" if _finite(std) else f"{mean:.2f}"


def interval(low: Any, high: Any, sign: bool = False) -> str:
    """``[91.80, 94.50]`` or "n/a"."""
    if not (_finite(low) and _finite(high)):
        return "n/a"
    return f"[{num(low, sign=sign)}, {num(high, sign=sign)}]"


def yes_no(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return "yes" if x else "no"


def big(x: Any) -> str:
    """12.30M / 456.70K style counts."""
    if not _finite(x):
        return "n/a"
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= size:
            return f"{x / size:.2f}{unit}"
    return f"{x:.0f}"


def short(v: Any) -> str:
    """A parameter value as a person reads it (4 significant digits for floats)."""
    if isinstance(v, list):
        return "+".join(map(str, v))
    return f"{v:.4g}" if isinstance(v, float) else str(v)


# -- tables ---------------------------------------------------------------------------


def _level_name(row: pd.Series) -> str:
    return str(row["level"]) + (" (baseline)" if row["baseline"] else "")


def factor_display(table: pd.DataFrame, centre: tuple[str, ...]) -> pd.DataFrame:
    """Per level: n, then per centre metric mean ± std, CI, Δ [CI] and 'CI excludes 0'."""
    rows = []
    for _, group in table.groupby("level", sort=False):
        by = group.set_index("metric")
        first = by.loc[centre[0]]
        row: dict[str, Any] = {"level": _level_name(first), "n": int(first["n"])}
        for m in centre:
            r = by.loc[m]
            row[f"{m} mean ± std"] = mean_std(r["mean"], r["std"])
            row[f"{m} 95% CI"] = interval(r["ci_low"], r["ci_high"])
            if r["baseline"]:
                row[f"Δ {m} [95% CI]"], row[f"{m}: CI excludes 0"] = "(baseline)", "-"
                continue
            d, ci = num(r["diff"], sign=True), interval(r["diff_low"], r["diff_high"], sign=True)
            row[f"Δ {m} [95% CI]"] = d if ci == "n/a" else f"{d} {ci}"
            row[f"{m}: CI excludes 0"] = yes_no(r["excludes_zero"])
        paired = first["paired"]
        row["Δ pairing"] = "" if paired is None else ("paired" if paired else "unpaired")
        rows.append(row)
    return pd.DataFrame(rows)


def others_display(table: pd.DataFrame, centre: tuple[str, ...]) -> pd.DataFrame:
    """Per level, mean ± std of the metrics the first table does not centre on."""
    others = [m for m in METRICS if m not in centre]
    rows = []
    for _, group in table.groupby("level", sort=False):
        by = group.set_index("metric")
        row = {"level": _level_name(by.iloc[0])}
        row.update({m: mean_std(by.loc[m, "mean"], by.loc[m, "std"]) for m in others})
        rows.append(row)
    return pd.DataFrame(rows)


def configurations_display(conf: pd.DataFrame, ref: pd.DataFrame) -> pd.DataFrame:
    """The paper-style table: configurations x metrics, then comparable paper values and Δ."""
    ok = ref[ref["comparable"].astype(bool)] if not ref.empty else ref
    rows = []
    for name, group in conf.groupby("config", sort=False):
        by = group.set_index("metric")
        row: dict[str, Any] = {"configuration": name, "n": int(by["n"].max())}
        row.update({m: mean_std(by.loc[m, "mean"], by.loc[m, "std"]) for m in METRICS})
        for _, r in ok[ok["config"] == name].iterrows():
            tag = r["metric"] + (" gain" if r["kind"] == "gain" else "")
            row[f"paper {tag}"] = num(r["paper"])
            row[f"Δ {tag} (ours - paper)"] = num(r["diff"], sign=True)
        rows.append(row)
    return pd.DataFrame(rows).fillna("")


def reference_display(ref: pd.DataFrame) -> pd.DataFrame:
    shown = ref.assign(
        paper=ref["paper"].map(num),
        ours=ref["ours"].map(num),
        diff=ref["diff"].map(lambda x: num(x, sign=True)),
        comparable=ref["comparable"].map(yes_no),
    )
    return shown.fillna("").rename(columns={"why_not": "why not comparable"})


def importance_display(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(
        ped_anova=table["ped_anova"].map(lambda x: num(x, 3)),
        fanova=table["fanova"].map(lambda x: num(x, 3)),
    )


def complexity_display(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(
        params=table["params"].map(big),
        flops=table["flops"].map(big),
        size_mb=table["size_mb"].map(num),
        latency_ms=table["latency_ms"].map(num),
    )


def noise_display(group: pd.DataFrame) -> pd.DataFrame:
    shown = group.drop(columns=["config"])
    shown = shown.assign(sigma=shown["sigma"].map(lambda s: f"{s:g}"))
    return shown.assign(**{m: shown[m].map(num) for m in NOISE_METRICS})
