"""TrialResult: one typed record from the training loop to the store, JSON both ways."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from factories import trial_result
from pydantic import ValidationError

from leukmodels.config import EPOCH_METRICS, EPOCH_TIMINGS
from leukmodels.metrics import classification_metrics
from leukmodels.results import EpochRow, Predictions, TestMetrics, TrialResult


def real_metrics() -> dict:
    y = np.array([0, 1, 1, 0, 1, 0])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3], [0.1, 0.9], [0.4, 0.6]])
    return classification_metrics(y, proba, ["hem", "ALL"])


def test_an_epoch_row_names_every_epoch_metric_and_nothing_else() -> None:
    assert set(EpochRow.model_fields) == {"epoch", *EPOCH_METRICS, *EPOCH_TIMINGS}
    row = EpochRow(epoch=2, val_f1=0.5, lr=0.1)
    assert row.metrics() == {"val_f1": 0.5, "lr": 0.1}
    assert row.report() == {"epoch": 2, "val_f1": 0.5, "lr": 0.1}


def test_the_json_trip_to_the_driver_keeps_everything_nan_included() -> None:
    result = trial_result(real_metrics(), noise={"5": real_metrics()}, checkpoint_path="/c.pt")
    result.epochs[0].train_loss = float("nan")  # a diverged epoch
    back = TrialResult.model_validate_json(result.model_dump_json())
    assert math.isnan(back.epochs[0].train_loss)
    back.epochs[0].train_loss = result.epochs[0].train_loss = 0.0
    assert back == result
    assert back.noise["5"].per_class["ALL"].support == 3
    assert back.epochs_done == 3 and back.test.binary.positive == "ALL"


def test_metrics_keys_are_checked_both_ways() -> None:
    metrics = real_metrics()
    TestMetrics.model_validate(metrics)
    with pytest.raises(ValidationError, match="ppv"):
        TestMetrics.model_validate({**metrics, "ppv": 0.5})  # a new metric needs a field
    del metrics["kappa"]
    with pytest.raises(ValidationError, match="kappa"):
        TestMetrics.model_validate(metrics)


def test_optional_parts_appear_only_when_a_trial_has_them() -> None:
    result = trial_result(real_metrics())
    plain = json.loads(result.model_dump_json())
    assert "predictions" not in plain and "segmentation" not in plain
    assert plain["checkpoint_path"] is None  # other optional values stay, as null
    result.predictions = Predictions(y_true=[0, 1, 1], y_pred=[0, 1, 0])
    back = TrialResult.model_validate_json(result.model_dump_json())
    assert back.predictions == result.predictions
