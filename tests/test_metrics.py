"""Metric definitions against hand-computed values."""

import math

import numpy as np
import pandas as pd
import pytest

from sensecf.generators.base import CFResult
from sensecf.metrics import cf_metrics, diversity, per_class_metrics
from sensecf.schema import FeatureSpec, Schema

SCHEMA = Schema("toy", [FeatureSpec("a"), FeatureSpec("b", direction="decrease"),
                        FeatureSpec("c", "categorical", levels=["x", "y"], immutable=True)])
X_TRAIN = pd.DataFrame({"a": [0.0, 10.0, 5.0], "b": [0.0, 100.0, 50.0], "c": ["x", "y", "x"]})
Y_TRAIN = pd.Series([0, 1, 1])


class ThresholdModel:
    """Deterministic test double: class 1 iff a >= 3."""

    def predict_proba(self, X):
        p1 = (X["a"].astype(float).to_numpy() >= 3).astype(float)
        return np.column_stack([1 - p1, p1])

    def predict(self, X):
        return self.predict_proba(X).argmax(axis=1)


def toy_result():
    idx = pd.Index([10, 11, 12])
    facts = pd.DataFrame({"a": [2.0, 4.0, 1.0], "b": [20.0, 40.0, 10.0], "c": ["x", "y", "x"]}, index=idx)
    cfs = pd.DataFrame({"a": [5.0, 2.0, np.nan], "b": [20.0, 120.0, np.nan], "c": ["y", "y", np.nan]}, index=idx)
    return CFResult("toy", facts, pd.Series([1, 0, 1], index=idx), cfs,
                    pd.Series(["invalid", "invalid", "failed"], index=idx), pd.Series(["x", "y", "z"], index=idx),
                    pd.Series([1.0, 1.0, np.nan], index=idx), pd.Series([1.0, 2.0, 3.0], index=idx))


def test_cf_metrics_hand_computed():
    m = cf_metrics(toy_result(), X_TRAIN, Y_TRAIN, SCHEMA, ThresholdModel(), k_realism=1)
    d1 = math.sqrt(0.3 ** 2) + 1                 # a: 3/10, c changed
    d2 = math.sqrt(0.2 ** 2 + 0.8 ** 2)          # a: -2/10, b: 80/100
    assert m["n"] == 3
    assert m["validity"] == pytest.approx(2 / 3)
    assert m["distance"] == pytest.approx((d1 + d2) / 2)
    assert m["sparsity"] == pytest.approx(2.0)   # {a, c} and {a, b}
    assert m["plausibility"] == pytest.approx(0.5)  # b = 120 lies above the training max 100
    assert m["immutable_violations"] == 1 and m["direction_violations"] == 1
    assert m["seconds_per_valid_cf"] == pytest.approx(6 / 2)
    # nearest target-class training row: CF1 (5,20,y) -> (10,100,y); CF2 (2,120,y) -> (0,0,x)
    r1 = math.sqrt(0.5 ** 2 + 0.8 ** 2)
    r2 = math.sqrt(0.2 ** 2 + 1.2 ** 2) + 1
    assert m["realism"] == pytest.approx((r1 + r2) / 2)
    assert math.isnan(m["diversity"])


def test_not_flipped_cf_is_excluded_from_averages():
    res = toy_result()
    res.counterfactuals.loc[11, "a"] = 4.0       # stays class 1: not valid
    m = cf_metrics(res, X_TRAIN, Y_TRAIN, SCHEMA, ThresholdModel())
    assert m["validity"] == pytest.approx(1 / 3)
    assert m["distance"] == pytest.approx(1.3)
    assert m["plausibility"] == 1.0


def test_per_class_groups_by_original_class():
    per = per_class_metrics(toy_result(), X_TRAIN, Y_TRAIN, SCHEMA, ThresholdModel())
    assert set(per) == {0, 1}
    assert per[0]["n"] == 2 and per[0]["validity"] == pytest.approx(0.5)
    assert per[0]["distance"] == pytest.approx(1.3)
    assert per[1]["n"] == 1 and per[1]["validity"] == 1.0
    assert per[1]["distance"] == pytest.approx(math.sqrt(0.68))


def test_diversity_of_repeated_factual():
    cfs = pd.DataFrame({"a": [0.0, 10.0, 5.0], "b": [0.0, 0.0, 0.0], "c": ["x", "y", "x"]}, index=[7, 7, 8])
    assert diversity(cfs, X_TRAIN, SCHEMA) == pytest.approx(2.0)  # |10-0|/10 + Hamming 1
    assert math.isnan(diversity(cfs.iloc[[0, 2]], X_TRAIN, SCHEMA))
