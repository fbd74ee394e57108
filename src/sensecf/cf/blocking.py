"""Which constraint kept a factual from a counterfactual: the reason a failed row gets besides the method's own.

Judged on the factual's nearest training rows that the classifier predicts as the target (real points beyond the
decision boundary; at most NEAREST, by the one distance). Each is projected onto the factual's constraints
(immutables set to the factual's values, moves against the allowed direction undone), once with all of them and
once with each one lifted, and the classifier scores every projection (one predict_proba call per batch):
- some row keeps the target with every constraint applied: the constraints leave a way, the method missed it;
- otherwise the constraints whose lifting alone lets a row through are named as the blockers, e.g.
  "blocked by: glucose may only decrease toward class 0 (better: lower)";
- otherwise they block together, and the ones the rows break most often are named.
Bounds never block here: training rows lie inside them (a CF outside them is invalid, and says so).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..schema import FeatureSpec, Schema
from .constraints import direction_rule
from .distance import FeatureScale

NEAREST = 50
MOST_BROKEN = 3


@dataclass
class Constraint:
    """One change constraint of a feature for a CF towards a given class: fixed, increase or decrease."""

    feature: FeatureSpec
    way: str
    text: str


def constraints_for(schema: Schema, target: int) -> list[Constraint]:
    """The immutables and the direction rules that hold for a CF towards `target`."""
    out = []
    for f in schema.features:
        if f.immutable:
            out.append(Constraint(f, "fixed", f"{f.name} is immutable"))
        elif not f.is_categorical and (rule := direction_rule(f, target, schema.desired_class)):
            out.append(Constraint(f, f.allowed_direction(target, schema.desired_class), f"{f.name} {rule}"))
    return out


def project(rows: pd.DataFrame, factual: pd.Series, constraints: list[Constraint], lifted=None) -> pd.DataFrame:
    """`rows` with the factual's constraints applied (immutables set to its values, moves against the allowed
    direction undone), all of them or all but `lifted`."""
    out = rows.copy()
    for c in constraints:
        if c is lifted:
            continue
        name, x = c.feature.name, factual[c.feature.name]
        if c.way == "fixed":
            out[name] = x
        else:
            clip = np.maximum if c.way == "increase" else np.minimum
            out[name] = clip(out[name].to_numpy(dtype=float), float(x))
    return out


def _broken(rows: pd.DataFrame, factual: pd.Series, c: Constraint) -> int:
    """How many rows break constraint c relative to the factual."""
    x = factual[c.feature.name]
    col = rows[c.feature.name]
    if c.way == "fixed":
        return int((col.astype(str) != str(x)).sum() if c.feature.is_categorical else (col != float(x)).sum())
    return int((col < float(x)).sum() if c.way == "increase" else (col > float(x)).sum())


def blocking_reasons(factuals: pd.DataFrame, targets, schema: Schema, classifier, X_train: pd.DataFrame,
                     train_pred: np.ndarray, scale: FeatureScale, nearest: int = NEAREST) -> list[str]:
    """Per factual (position-aligned with `targets`): what the constraints did to its search, in words ('' when
    it has no constraint). `X_train` is schema-coerced; `train_pred` the classifier's labels of its rows."""
    targets = np.asarray(targets, dtype=int)
    plans, frames = [], []
    for i in range(len(factuals)):
        x, t = factuals.iloc[i], int(targets[i])
        cons = constraints_for(schema, t)
        pool = X_train[train_pred == t]
        if cons and len(pool):
            pool = pool.iloc[np.argsort(scale.distance_from(x, pool), kind="stable")[:nearest]]
            frames += [project(pool, x, cons)] + [project(pool, x, cons, lifted=c) for c in cons]
        plans.append((x, t, cons, pool))
    labels = iter(())  # the predicted labels of each projected frame, in order
    if frames:
        pred = classifier.predict(pd.concat(frames, ignore_index=True))
        ends = np.cumsum([len(f) for f in frames])
        labels = iter(np.split(pred, ends[:-1]))
    return [_explain(x, t, cons, pool, labels) for x, t, cons, pool in plans]


def _explain(x: pd.Series, t: int, cons: list[Constraint], pool: pd.DataFrame, labels) -> str:
    if not cons:
        return ""
    if not len(pool):
        return f"no training row is predicted as class {t}"
    within = next(labels) == t
    lifted = [(int((next(labels) == t).sum()), c) for c in cons]
    k = len(pool)
    if within.any():
        return (f"the constraints leave a way: {int(within.sum())} of the {k} nearest training rows predicted as "
                f"class {t} keep that prediction within them")
    blockers = [c.text for n, c in sorted(lifted, key=lambda p: -p[0]) if n]
    if blockers:
        return f"blocked by: {'; '.join(blockers)}"
    broken = sorted(((_broken(pool, x, c), c) for c in cons), key=lambda p: -p[0])[:MOST_BROKEN]
    return (f"blocked by the constraints together (none of the {k} nearest training rows predicted as class {t} "
            f"keeps it with one lifted); most broken: "
            + "; ".join(f"{c.text} ({n}/{k})" for n, c in broken))
