"""One distance for every method, metric and search: the paper's L2 of min-max-normalised numeric differences
plus the Hamming distance of categoricals, with the normalisation taken from the training data once; and `cost`,
the same distance with each feature's change weighted by its actionability (schema.ACTIONABILITY_WEIGHTS)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..schema import Schema


class FeatureScale:
    """Training ranges of a schema's features (Schema.observed_ranges) and the distances built on them."""

    def __init__(self, schema: Schema, X_train: pd.DataFrame):
        self.schema = schema
        self.ranges = schema.observed_ranges(X_train)
        self.num, self.cat = schema.continuous, schema.categorical
        self.width = np.array([max(self.ranges[c][1] - self.ranges[c][0], 1e-12) for c in self.num], dtype=float)
        self.num_weight = np.array([schema[c].weight for c in self.num], dtype=float)
        self.cat_weight = np.array([schema[c].weight for c in self.cat], dtype=float)

    def numeric(self, frame: pd.DataFrame) -> np.ndarray:
        """Numeric features divided by their training widths."""
        return frame[self.num].to_numpy(dtype=float) / self.width

    def differences(self, factuals: pd.DataFrame, cfs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Row-aligned (normalised numeric differences, categorical mismatches)."""
        d_num = self.numeric(cfs) - self.numeric(factuals)
        d_cat = np.column_stack([cfs[c].astype(str).to_numpy() != factuals[c].astype(str).to_numpy()
                                 for c in self.cat]) if self.cat else np.zeros((len(cfs), 0), dtype=bool)
        return d_num, d_cat

    def distance(self, factuals: pd.DataFrame, cfs: pd.DataFrame) -> np.ndarray:
        """Row-wise distance between position-aligned factual and CF rows."""
        d_num, d_cat = self.differences(factuals, cfs)
        return np.sqrt((d_num ** 2).sum(axis=1)) + d_cat.sum(axis=1)

    def cost(self, factuals: pd.DataFrame, cfs: pd.DataFrame) -> np.ndarray:
        """Row-wise actionability-weighted distance (inf when an actionability-'none' feature changes)."""
        d_num, d_cat = self.differences(factuals, cfs)
        with np.errstate(invalid="ignore"):
            num = np.where(d_num != 0, d_num * self.num_weight, 0.0)
            cat = np.where(d_cat, self.cat_weight, 0.0)
        return np.sqrt((num ** 2).sum(axis=1)) + cat.sum(axis=1)

    def distance_from(self, factual: pd.Series, rows: pd.DataFrame) -> np.ndarray:
        """Distance of each row to one factual."""
        return self.distance(pd.DataFrame([factual] * len(rows), index=rows.index), rows)

    def pairwise(self, A: pd.DataFrame, B: pd.DataFrame) -> np.ndarray:
        """(len(A), len(B)) matrix of distances."""
        a, b = self.numeric(A), self.numeric(B)
        d = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2))
        for c in self.cat:
            d += A[c].astype(str).to_numpy()[:, None] != B[c].astype(str).to_numpy()[None, :]
        return d

    def in_support(self, cfs: pd.DataFrame) -> np.ndarray:
        """True where every value lies in the training range / observed categories (plausibility)."""
        ok = np.ones(len(cfs), dtype=bool)
        for c in self.num:
            lo, hi = self.ranges[c]
            v = cfs[c].to_numpy(dtype=float)
            ok &= (v >= lo) & (v <= hi)
        for c in self.cat:
            ok &= cfs[c].astype(str).isin(set(self.ranges[c])).to_numpy()
        return ok
