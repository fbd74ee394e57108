"""Counterfactual quality metrics: the paper's four (§II-F) plus extras.

Definitions (n = number of factual rows of the result, failed ones included):
- validity = share of the n rows whose CF exists and is predicted as the target class (the paper's definition;
  constraint violations do not enter it — they are counted separately).
- "valid CFs" below = those CFs. distance, sparsity, plausibility and realism are means over the valid CFs, as
  in the paper; they are NaN when there are none.
- distance = L2 norm of the min–max-normalised continuous differences (min/max from the training data) plus the
  Hamming distance (count of differing values) of the categorical features.
- sparsity = mean number of changed features (constraints.changed_features, tolerance relative to the
  training range).
- plausibility = share of valid CFs whose every numeric value lies within the training data's observed
  [min, max] and every categorical value among the training data's observed categories.
- immutable_violations / direction_violations = number of generated (non-failed) CFs that change an immutable
  feature / move a feature against its allowed direction.
- seconds_per_valid_cf = total wall time over all n rows divided by the number of valid CFs.
- realism = mean distance (same metric as `distance`) from each valid CF to its k nearest training rows of the
  target class (lower = more realistic).
- diversity = mean pairwise distance between CFs of the same factual, computed when the factual index holds
  repeated labels (k > 1 CFs per factual); NaN otherwise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .generators.base import FAILED, CFResult
from .generators.constraints import DEFAULT_TOLERANCE, changed_features
from .schema import Schema

METRIC_KEYS = ("n", "validity", "distance", "sparsity", "plausibility", "immutable_violations",
               "direction_violations", "seconds_per_valid_cf", "realism", "diversity")


def _widths(X_train: pd.DataFrame, schema: Schema) -> tuple[pd.Series, pd.Series]:
    lo = X_train[schema.continuous].astype(float).min()
    hi = X_train[schema.continuous].astype(float).max()
    return lo, (hi - lo).where(hi - lo > 0, 1.0)


def pairwise_distance(A: pd.DataFrame, B: pd.DataFrame, X_train: pd.DataFrame, schema: Schema) -> np.ndarray:
    """(len(A), len(B)) matrix of L2(min–max-normalised continuous differences) + categorical Hamming."""
    _, width = _widths(X_train, schema)
    num = schema.continuous
    a = A[num].astype(float).to_numpy() / width.to_numpy()
    b = B[num].astype(float).to_numpy() / width.to_numpy()
    d = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2))
    for c in schema.categorical:
        d += A[c].astype(str).to_numpy()[:, None] != B[c].astype(str).to_numpy()[None, :]
    return d


def row_distance(factuals: pd.DataFrame, cfs: pd.DataFrame, X_train: pd.DataFrame, schema: Schema) -> pd.Series:
    """Row-wise distance between aligned factual and CF rows (the paper's distance)."""
    _, width = _widths(X_train, schema)
    num = schema.continuous
    diff = (cfs[num].astype(float) - factuals[num].astype(float)) / width
    d = np.sqrt((diff ** 2).sum(axis=1))
    for c in schema.categorical:
        d = d + (cfs[c].astype(str) != factuals[c].astype(str)).astype(float)
    return d


def in_training_support(cfs: pd.DataFrame, X_train: pd.DataFrame, schema: Schema) -> pd.Series:
    """True where every feature of the row lies in the training data's observed range / categories."""
    lo = X_train[schema.continuous].astype(float).min()
    hi = X_train[schema.continuous].astype(float).max()
    vals = cfs[schema.continuous].astype(float)
    ok = ((vals >= lo) & (vals <= hi)).all(axis=1)
    for c in schema.categorical:
        ok &= cfs[c].astype(str).isin(set(X_train[c].astype(str)))
    return ok


def _violations(factual: pd.Series, cf: pd.Series, schema: Schema, ranges: dict) -> tuple[bool, bool]:
    changed = set(changed_features(factual, cf, schema, ranges, DEFAULT_TOLERANCE))
    imm = any(f.immutable for f in schema.features if f.name in changed)
    direction = any(
        (f.direction == "increase" and float(cf[f.name]) < float(factual[f.name])) or
        (f.direction == "decrease" and float(cf[f.name]) > float(factual[f.name]))
        for f in schema.features if f.name in changed and not f.immutable and not f.is_categorical)
    return imm, direction


def cf_metrics(result: CFResult, X_train: pd.DataFrame, y_train, schema: Schema, classifier,
               k_realism: int = 5) -> dict:
    """All metrics of one CFResult (see the module docstring for the exact definitions)."""
    n = len(result.status)
    out = {k: float("nan") for k in METRIC_KEYS}
    out.update(n=n, immutable_violations=0, direction_violations=0)
    generated = (result.status != FAILED) & result.counterfactuals[schema.feature_names].notna().all(axis=1)
    if n == 0:
        return out
    facts, cfs = result.factuals.loc[generated], result.counterfactuals.loc[generated]
    target = result.target.loc[generated]
    flipped = pd.Series(classifier.predict(cfs) == target.to_numpy(), index=cfs.index) if len(cfs) else \
        pd.Series(dtype=bool)
    n_valid = int(flipped.sum())
    out["validity"] = n_valid / n
    out["seconds_per_valid_cf"] = float(result.seconds.sum()) / n_valid if n_valid else float("nan")
    ranges = {c: (float(X_train[c].min()), float(X_train[c].max())) for c in schema.continuous}
    viol = [_violations(facts.iloc[i], cfs.iloc[i], schema, ranges) for i in range(len(cfs))]
    out["immutable_violations"] = int(sum(v[0] for v in viol))
    out["direction_violations"] = int(sum(v[1] for v in viol))
    if n_valid == 0:
        return out
    vf, vc, vt = facts[flipped.to_numpy()], cfs[flipped.to_numpy()], target[flipped.to_numpy()]
    out["distance"] = float(row_distance(vf, vc, X_train, schema).mean())
    out["sparsity"] = float(np.mean([len(changed_features(vf.iloc[i], vc.iloc[i], schema, ranges))
                                     for i in range(len(vc))]))
    out["plausibility"] = float(in_training_support(vc, X_train, schema).mean())
    y = np.asarray(y_train).astype(int)
    real = []
    for t in sorted(set(vt)):
        pool = X_train[y == t]
        if len(pool):
            d = np.sort(pairwise_distance(vc[vt.to_numpy() == t], pool, X_train, schema), axis=1)
            real.append(d[:, :k_realism].mean(axis=1))
    out["realism"] = float(np.concatenate(real).mean()) if real else float("nan")
    out["diversity"] = diversity(vc, X_train, schema)
    return out


def diversity(cfs: pd.DataFrame, X_train: pd.DataFrame, schema: Schema) -> float:
    """Mean pairwise distance between CFs sharing a factual index label (NaN when every factual has one CF)."""
    vals = []
    for _, group in cfs.groupby(level=0):
        if len(group) > 1:
            d = pairwise_distance(group, group, X_train, schema)
            vals.append(d[np.triu_indices(len(group), k=1)].mean())
    return float(np.mean(vals)) if vals else float("nan")


def subset_result(result: CFResult, mask: pd.Series) -> CFResult:
    """The rows of a CFResult selected by a boolean mask aligned with its index."""
    m = mask.to_numpy()
    return CFResult(result.method, result.factuals[m], result.target[m], result.counterfactuals[m],
                    result.status[m], result.reason[m], result.target_proba[m], result.seconds[m],
                    result.extra[m] if not result.extra.empty else result.extra)


def per_class_metrics(result: CFResult, X_train: pd.DataFrame, y_train, schema: Schema, classifier,
                      k_realism: int = 5) -> dict[int, dict]:
    """cf_metrics per original class of the factual (the class the CF moves away from: 1 - target), as in
    the paper's Table III."""
    original = 1 - result.target.astype(int)
    return {int(c): cf_metrics(subset_result(result, original == c), X_train, y_train, schema, classifier,
                               k_realism) for c in sorted(original.unique())}
