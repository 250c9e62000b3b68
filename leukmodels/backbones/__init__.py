"""Backbones by name, in timm's style: ``@register_backbone("resnet18")`` on an adapter class.

A :class:`BackboneAdapter` says everything leukmodels needs to know about one backbone:
its metadata (``num_stages``, ``feature_width``, ``native_se_stages``, ``dilatable``; read
without importing torch, so ``search`` validates spaces fast) and how to build and edit it
(``create``, ``stages``, ``branch_end``, ``attention_channels``, ``add_attention``,
``native_se_channels``, ``replace_native_se``, ``head_prefixes``; torch and timm are
imported inside those methods). ``leukmodels.sites`` and ``TrialParams.backbone`` derive
the valid names, sites and tables from this registry. Built-in families, one file each
(their docstrings say what a site is): :mod:`.resnet` (resnet18, resnet50),
:mod:`.mobilenetv4` (conv small / medium), :mod:`.mobilenetv3` (large_100),
:mod:`.efficientnet` (efficientnetv2_s, mobilenetv1_100), :mod:`.densenet` (densenet121),
:mod:`.ddrnet` (ddrnet, paper 002, not a timm model); :mod:`.timm_base` holds the shared timm logic, :mod:`.modules` the torch helpers.

Adding a backbone is one new file plus its test:

1. ``leukmodels/backbones/mynet.py``: subclass :class:`BackboneAdapter` (or
   :class:`~.timm_base.TimmBackbone` / :class:`~.timm_base.TimmBlocks` for a timm model),
   set ``num_stages`` and ``feature_width`` (plus ``native_se_stages`` / ``dilatable``),
   implement ``create(params) -> (module, pooled_width)`` (any ``nn.Module`` with
   ``forward`` -> pooled features and ``forward_features`` -> the last map;
   :class:`~.modules.PooledBackbone` adds the pooling to a plain feature extractor) and
   ``stages(module) -> [[block, ...], ...]``; override ``branch_end`` when a block has a
   skip connection (the attention must end the residual branch, before the add), or
   ``add_attention`` to insert it some other way. Decorate it with
   ``@register_backbone("mynet")``.
2. Import the module at the bottom of this file (a built-in) -- or keep it outside the
   package as a plugin (below).
3. ``tests/test_backbone_mynet.py``: the stage count and feature width match the built
   model, and the attention lands at the declared branch end
   (tests/test_backbone_registry.py shows how).

Plugins: a backbone registered outside this package must reach every process that
builds models (Ray workers, ``leuksearch`` subprocesses). The registry imports, the first
time it is asked for a name, the modules listed in ``$LEUKSEARCH_PLUGINS``
(comma-separated, e.g. ``LEUKSEARCH_PLUGINS=mylab.backbones``) and every entry point of
the group ``leuksearch.backbones`` (in a plugin's pyproject:
``[project.entry-points."leuksearch.backbones"] mynet = "mylab.backbones:MyNet"``; an
adapter class named there is registered under the entry point's name if it is not
already). The module must be importable on every node; ``leuksearch run`` passes
``$LEUKSEARCH_PLUGINS`` on to the Ray workers' environment.
"""

from __future__ import annotations

import importlib

from leukmodels.backbones.base import POOL_TYPES, BackboneAdapter
from leukmodels.backbones.registry import (
    ENTRY_POINT_GROUP,
    PLUGINS_ENV,
    backbone_names,
    get_backbone,
    load_plugins,
    plugin_env,
    register_backbone,
)

BUILTIN_FAMILIES = (
    "resnet",
    "mobilenetv4",
    "efficientnet",
    "mobilenetv3",
    "densenet",
    "ddrnet",
)
"""The built-in adapter modules, imported (registered) in the order their names are listed."""
for _family in BUILTIN_FAMILIES:
    importlib.import_module(f"{__name__}.{_family}")

__all__ = [
    "ENTRY_POINT_GROUP",
    "PLUGINS_ENV",
    "POOL_TYPES",
    "BackboneAdapter",
    "backbone_names",
    "get_backbone",
    "load_plugins",
    "plugin_env",
    "register_backbone",
]
