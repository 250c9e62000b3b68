"""The split facts behind a report's header: test images per split, whether grouping by
patient really happened, what the leakage guard found and every split warning.

They come from each fully trained run's stored :class:`~leukmodels.results.SplitFacts`
(one entry per distinct split); runs stored before the split facts existed give only
their test-set size (from the confusion matrix), and the header says what is unknown.
"""

from __future__ import annotations

import numpy as np
from pydantic import ValidationError

from leukmodels.results import SplitFacts
from search.report.collect import StudyData

MAX_SPLITS = 12
"""Distinct splits listed in full; the rest are counted."""


def stored_facts(data: StudyData) -> list[SplitFacts]:
    """The distinct split facts of the fully trained runs, in trial order."""
    t = data.trials[data.trials["full"]]
    seen: dict[str, SplitFacts] = {}
    for raw in t["split"]:
        if not isinstance(raw, dict):
            continue
        try:
            facts = SplitFacts.model_validate(raw)
        except ValidationError:
            continue
        seen.setdefault(facts.hash, facts)
    return list(seen.values())


def split_lines(data: StudyData) -> list[str]:
    """Header lines: per split its sizes, grouping, duplicates and warnings; what is unknown."""
    facts = stored_facts(data)
    lines = [line for f in facts[:MAX_SPLITS] for line in f.header()]
    if len(facts) > MAX_SPLITS:
        lines.append(f"... and {len(facts) - MAX_SPLITS} more split(s) (tables/trials.csv)")
    t = data.trials[data.trials["full"]]
    if not any(f.sizes for f in facts):
        sizes = [int(np.sum(c)) for c in t["confusion"] if isinstance(c, list) and c]
        if sizes:
            lo, hi = min(sizes), max(sizes)
            n = f"{lo}" if lo == hi else f"{lo}-{hi}"
            lines.append(
                f"test images per run: {n} (from the confusion matrices; the runs recorded "
                "no split sizes)"
            )
        else:
            lines.append("test images: unknown (no fully trained run)")
    if all(f.grouped_by_patient is None for f in facts):
        lines.append("grouping by patient: not recorded by the runs (see split protocol)")
    return lines
