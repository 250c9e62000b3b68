"""Search spaces: a YAML file -> a validated :class:`Space`.

Sections: ``study``, ``description``, ``data`` (a :class:`~leukmodels.config.DataSpec`
plus optional named ``protocols``), ``search`` (:class:`SearchSpec`), ``ablation``
(baseline, factors and named configurations), ``space`` (the factors, see
:mod:`search.factors`), ``profiles`` (dotted-key overrides, ``--profile smoke``) and
``reference`` (the paper's numbers). Every error names the file, the line and the key.

Modules: :mod:`~search.space.models` (the section models and :class:`Space`),
:mod:`~search.space.loading` (:func:`load_space`), :mod:`~search.space.profiles`,
:mod:`~search.space.validation` (checks and the file:line error list) and
:mod:`~search.space.ablation` (:func:`iter_ablation_points`).
"""

from search.space.ablation import iter_ablation_points
from search.space.loading import load_space
from search.space.models import (
    DATA_FACTORS,
    SECTIONS,
    AblationSpec,
    CheckpointSpec,
    ReferenceSpec,
    ResourceSpec,
    SchedulerSpec,
    SearchSpec,
    Space,
)
from search.space.validation import validation_messages

__all__ = [
    "DATA_FACTORS",
    "SECTIONS",
    "AblationSpec",
    "CheckpointSpec",
    "ReferenceSpec",
    "ResourceSpec",
    "SchedulerSpec",
    "SearchSpec",
    "Space",
    "iter_ablation_points",
    "load_space",
    "validation_messages",
]
