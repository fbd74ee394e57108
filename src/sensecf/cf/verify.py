"""The verifier every counterfactual passes: snap to the change rule, check constraints and finiteness, then ask
the classifier (one predict_proba call per batch, never on rows with non-finite or out-of-bounds values)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..schema import Schema
from .constraints import snap_to_factual, violation_table

NOT_FLIPPED = "prediction did not flip"


@dataclass
class Verdicts:
    """Per candidate row (position-aligned with the input): the snapped CF, p(target), problems, validity."""

    cfs: pd.DataFrame
    proba: np.ndarray
    problems: list[list[str]]

    @property
    def valid(self) -> np.ndarray:
        return np.array([not p for p in self.problems], dtype=bool)


class Verifier:
    """Checks candidates against the schema and the classifier; a CF is valid when it reaches the target class
    and breaks no constraint (one definition of valid for every method and table)."""

    def __init__(self, schema: Schema, classifier):
        self.schema, self.classifier = schema, classifier

    def scorable(self, cfs: pd.DataFrame) -> np.ndarray:
        """Rows safe to show the classifier: finite numbers inside the clinical bounds, known levels (a 400-digit
        number from an LLM answer never reaches predict_proba)."""
        ok = np.ones(len(cfs), dtype=bool)
        for f in self.schema.features:
            if f.is_categorical:
                ok &= np.isin(cfs[f.name].astype(str).to_numpy(), f.levels)
                continue
            v = cfs[f.name].to_numpy(dtype=float)
            ok &= np.isfinite(v)
            lo, hi = f.bounds
            with np.errstate(invalid="ignore"):
                if lo is not None:
                    ok &= ~(v < lo - 1e-9)
                if hi is not None:
                    ok &= ~(v > hi + 1e-9)
        return ok

    def check(self, factuals: pd.DataFrame, cfs: pd.DataFrame, targets) -> Verdicts:
        """Verdicts for position-aligned factuals, candidate CFs and targets."""
        schema = self.schema
        cfs = snap_to_factual(factuals, schema.coerce(cfs), schema)
        targets = np.asarray(targets, dtype=int)
        problems = violation_table(factuals, cfs, schema, targets)
        proba = np.full(len(cfs), np.nan)
        flipped = np.zeros(len(cfs), dtype=bool)
        scorable = self.scorable(cfs)
        if scorable.any():
            try:
                p = self.classifier.predict_proba(cfs[scorable])
                proba[scorable] = p[np.arange(len(p)), targets[scorable]]
                flipped[scorable] = p.argmax(axis=1) == targets[scorable]
            except Exception as e:  # a classifier that rejects a row fails those rows, not the run
                for i in np.flatnonzero(scorable):
                    problems[i].insert(0, f"classifier failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
                scorable[:] = False
        for i in np.flatnonzero(scorable):
            if not flipped[i]:
                problems[i].insert(0, f"{NOT_FLIPPED} (p(target) = {proba[i]:.3f})")
        return Verdicts(cfs, proba, problems)
