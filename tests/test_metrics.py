"""Metric definitions against hand-computed values."""

import math

import numpy as np
import pandas as pd
import pytest

from sensecf.cf import CFResult
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
    """Rows 10 and 11 reach the target but break a constraint (immutable c changed; b may only decrease): never
    valid. Row 12 failed. So validity 0 and the per-CF means are undefined."""
    m = cf_metrics(toy_result(), X_TRAIN, Y_TRAIN, SCHEMA, ThresholdModel(), k_realism=1)
    assert m["n"] == 3 and m["validity"] == 0
    assert m["immutable_violations"] == 1 and m["direction_violations"] == 1 and m["constraint_violations"] == 2
    assert math.isnan(m["distance"]) and math.isnan(m["seconds_per_valid_cf"])


def valid_result():
    """Three CFs of the toy schema (see test_valid_cf_metrics_hand_computed)."""
    idx = pd.Index([10, 11, 12])
    facts = pd.DataFrame({"a": [2.0, 4.0, 1.0], "b": [20.0, 40.0, 10.0], "c": ["x", "y", "x"]}, index=idx)
    cfs = pd.DataFrame({"a": [5.0, 2.0, 1.0], "b": [10.0, 40.001, 120.0], "c": ["x", "y", "x"]}, index=idx)
    return CFResult("toy", facts, pd.Series([1, 0, 1], index=idx), cfs,
                    pd.Series(["valid", "valid", "invalid"], index=idx), pd.Series(["", "", "z"], index=idx),
                    pd.Series([1.0, 1.0, 0.0], index=idx), pd.Series([1.0, 2.0, 3.0], index=idx))


def test_valid_cf_metrics_hand_computed():
    """Row 10 changes a and b (valid); row 11 changes a only (b's 40.001 shows as 40.00: no change); row 12
    moves b against its direction and does not flip (a unchanged): not valid."""
    m = cf_metrics(valid_result(), X_TRAIN, Y_TRAIN, SCHEMA, ThresholdModel(), k_realism=1)
    d1 = math.sqrt(0.3 ** 2 + 0.1 ** 2)          # a: 3/10, b: -10/100
    d2 = 0.2                                      # a: -2/10
    assert m["validity"] == pytest.approx(2 / 3)
    assert m["distance"] == pytest.approx((d1 + d2) / 2)
    assert m["sparsity"] == pytest.approx(1.5)    # {a, b} and {a}
    # features without an actionability setting are "medium" (weight 2)
    assert m["cost"] == pytest.approx((2 * d1 + 2 * d2) / 2)
    assert m["actionable_share"] == 1.0 and m["actionable_only"] == 1.0
    assert m["plausibility"] == 1.0
    assert m["direction_violations"] == 1 and m["immutable_violations"] == 0
    assert m["seconds_per_valid_cf"] == pytest.approx(6 / 2)


def test_not_flipped_cf_is_excluded_from_averages():
    res = valid_result()
    res.counterfactuals.loc[11, "a"] = 4.0       # stays class 1: not valid
    m = cf_metrics(res, X_TRAIN, Y_TRAIN, SCHEMA, ThresholdModel())
    assert m["validity"] == pytest.approx(1 / 3)
    assert m["distance"] == pytest.approx(math.sqrt(0.1))


def test_per_class_groups_by_original_class():
    per = per_class_metrics(valid_result(), X_TRAIN, Y_TRAIN, SCHEMA, ThresholdModel())
    assert set(per) == {0, 1}
    assert per[0]["n"] == 2 and per[0]["validity"] == pytest.approx(0.5)
    assert per[0]["distance"] == pytest.approx(math.sqrt(0.1))
    assert per[1]["n"] == 1 and per[1]["validity"] == 1.0
    assert per[1]["distance"] == pytest.approx(0.2)


def test_diversity_of_repeated_factual():
    cfs = pd.DataFrame({"a": [0.0, 10.0, 5.0], "b": [0.0, 0.0, 0.0], "c": ["x", "y", "x"]}, index=[7, 7, 8])
    assert diversity(cfs, X_TRAIN, SCHEMA) == pytest.approx(2.0)  # |10-0|/10 + Hamming 1
    assert math.isnan(diversity(cfs.iloc[[0, 2]], X_TRAIN, SCHEMA))
