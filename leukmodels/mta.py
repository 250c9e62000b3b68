"""Paper 001's MTA-CNN as a trial: TrialParams -> model, loss and labels (``family='mta_cnn'``).

The model is :class:`leukmodels.blocks.multitask.MultiTaskNet` (its docstring has the
layout): a shared encoder (``encoder``: ``plain``, the paper's conv-BN-dropout stages, or
a registered backbone's timm features), a classification branch with a ``flat`` or
``hierarchical`` head (``cls_head``) and, for ``task='multi'``, a nucleus-segmentation
branch with a ``unet`` or ``transunet`` decoder, optionally coupled to the classification
branch (``coupling``: alpha = sigmoid(beta)). ``task_width`` / ``task_depth`` size the
branches, ``dropout`` is the encoder's and the head's. The loss is
``cls_weight * L_cls + seg_weight * L_seg`` (:class:`leukmodels.seg_losses.MultiTaskLoss`)
with ``L_cls`` the trial's ``loss`` and ``L_seg`` the ``seg_loss`` (``focal``: a_c = N_b/N_f
of the training masks). The hierarchical head's "normal" class is class index 0 (the
sorted folder order puts Benign first in all_taleqani, ``benign`` in the synthetic set).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor, nn

from leukmodels.blocks.multitask import MultiTaskConfig, MultiTaskOutput, build_multitask
from leukmodels.config import TrialParams
from leukmodels.data.arrays import SplitArrays
from leukmodels.errors import DataError, UserError
from leukmodels.seg_losses import MultiTaskLoss, build_seg_loss, foreground_weight
from leukmodels.sites import MTA_FIELDS


def is_mta(params: TrialParams) -> bool:
    """Whether ``params`` describe paper 001's multi-task family."""
    return params.family == "mta_cnn"


def segments(params: TrialParams) -> bool:
    """Whether the trial trains (and so needs) nucleus masks."""
    return is_mta(params) and params.task == "multi"


def mta_config(params: TrialParams) -> MultiTaskConfig:
    """The :class:`MultiTaskConfig` of ``params``."""
    return MultiTaskConfig(
        encoder=params.encoder,
        decoder=params.decoder,
        head=params.cls_head,
        coupling=params.coupling,
        segmentation=params.task == "multi",
        width=params.task_width,
        depth=params.task_depth,
        dropout=params.dropout,
    )


def build_mta(params: TrialParams, num_classes: int) -> nn.Module:
    """The MTA-CNN ``params`` describe (never pretrained: it has no published weights)."""
    if params.pretrained:
        raise UserError("pretrained weights are for family='classifier'; mta_cnn starts fresh")
    if params.coupling and params.task != "multi":
        raise UserError("coupling needs two tasks: set task='multi' or coupling=False")
    if params.cls_head == "hierarchical" and num_classes < 2:
        raise UserError("the hierarchical head needs at least 2 classes")
    return build_multitask(mta_config(params), num_classes)


def mta_label(params: TrialParams) -> str:
    """E.g. ``mta_cnn[plain,cls+seg/unet,coupled,flat]``."""
    parts = [params.encoder]
    if params.task == "multi":
        parts.append(f"cls+seg/{params.decoder}")
        if params.coupling:
            parts.append("coupled")
    else:
        parts.append("cls")
    parts.append(params.cls_head)
    if (params.task_width, params.task_depth) != (128, 2):
        parts.append(f"w{params.task_width}x{params.task_depth}")
    return f"mta_cnn[{','.join(parts)}]"


def mta_arch_key(params: TrialParams, fields: tuple[str, ...]) -> dict[str, Any]:
    """The architecture key of an ``mta_cnn`` trial: its own fields, the rest ``None``."""
    key: dict[str, Any] = dict.fromkeys(fields)
    key.update({f: getattr(params, f) for f in MTA_FIELDS})
    if params.task != "multi":
        key["decoder"] = None
    return key


def train_masks_weight(train: SplitArrays) -> float:
    """``a_c = N_b / N_f`` over the training split's masks (each base image once)."""
    if train.masks is None:
        raise DataError("the focal segmentation loss needs nucleus masks in the training split")
    rows = np.unique(np.asarray(train.index))
    return foreground_weight(np.asarray(train.masks[i]) for i in rows)


def build_mta_loss(params: TrialParams, cls_loss: nn.Module, train: SplitArrays) -> MultiTaskLoss:
    """``cls_weight * cls_loss + seg_weight * seg_loss`` (classification only when single)."""
    seg = None
    if segments(params):
        weight = train_masks_weight(train) if params.seg_loss == "focal" else None
        seg = build_seg_loss(params.seg_loss, fg_weight=weight)
    return MultiTaskLoss(cls_loss, seg, (params.cls_weight, params.seg_weight))


def batch_loss(
    loss_fn: nn.Module, out: Tensor | MultiTaskOutput, y: Tensor, mask: Tensor | None
) -> tuple[Tensor, Tensor]:
    """(class logits, loss) of one batch, for a classifier or an MTA-CNN output."""
    if isinstance(out, MultiTaskOutput):
        total, _ = loss_fn(out.logits, y, out.mask_logits, mask)
        return out.logits, total
    return out, loss_fn(out, y)
