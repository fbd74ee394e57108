"""The black-box contract every generator and metric relies on (CARLA's MLModel, reduced to what is used)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd


@runtime_checkable
class ProbabilisticClassifier(Protocol):
    """A binary classifier over schema-shaped DataFrames (feature columns named by the schema)."""

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """(n, 2) array: P(label 0), P(label 1)."""
        ...

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The most probable label per row."""
        ...
