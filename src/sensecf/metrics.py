"""Counterfactual quality metrics: the paper's four (§II-F) plus extras.

Definitions (n = number of factual rows of the result, failed ones included):
- valid CF = a generated CF that the shared Verifier accepts: predicted as the target class AND breaking no
  constraint (immutables, allowed directions, clinical bounds, levels). One definition for every method and
  every table; the stored status is re-derived, not trusted.
- validity = valid CFs / n. distance, cost, sparsity, plausibility, actionable shares and realism are means over
  the valid CFs, as in the paper; NaN when there are none.
- distance = L2 norm of the min–max-normalised numeric differences (min/max from the training data) plus the
  Hamming distance of the categorical features (cf.FeatureScale).
- cost = the same with every feature's change weighted by its actionability (schema.ACTIONABILITY_WEIGHTS:
  high 1, medium 2, low 4).
- sparsity = mean number of changed features (the change rule: a value that equals the factual's once both are
  rounded to display precision is not a change; cf/constraints.py).
- plausibility = share of valid CFs whose every value lies within the training data's observed range/categories.
- actionable_share = mean over valid CFs of the share of their changed features whose actionability is medium or
  high; actionable_only = share of valid CFs that change only such features.
- immutable_violations / direction_violations = generated (non-failed) CFs that change an immutable feature /
  move a feature against its allowed direction; constraint_violations = generated CFs breaking any constraint.
- seconds_per_valid_cf = total wall time over all n rows divided by the number of valid CFs.
- realism = mean distance from each valid CF to its k nearest training rows of the target class (lower = more
  realistic); diversity = mean pairwise distance between CFs of the same factual (k > 1 CFs per factual), NaN
  otherwise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .cf import FAILED, CFResult, FeatureScale, Verifier
from .cf.constraints import changed_mask
from .schema import Schema

METRIC_KEYS = ("n", "validity", "distance", "cost", "sparsity", "plausibility", "actionable_share",
               "actionable_only", "immutable_violations", "direction_violations", "constraint_violations",
               "seconds_per_valid_cf", "realism", "diversity")
#: per-CF quantities whose mean is reported with a bootstrap interval
PER_CF = ("distance", "cost", "sparsity", "plausibility", "actionable_share")


def cf_rows(result: CFResult, X_train: pd.DataFrame, schema: Schema, classifier) -> pd.DataFrame:
    """One row per factual: generated, valid, the violation kinds and (for valid CFs) the per-CF quantities."""
    scale = FeatureScale(schema, schema.coerce(X_train))
    cfs_all = schema.coerce(result.counterfactuals)
    generated = ((result.status != FAILED) & cfs_all.notna().any(axis=1)).to_numpy()
    out = pd.DataFrame({"generated": generated, "valid": False, "immutable": False, "direction": False,
                        "violation": False, **{k: np.nan for k in PER_CF}, "actionable_only": np.nan,
                        "seconds": result.seconds.to_numpy(dtype=float)}, index=result.status.index)
    if not generated.any():
        return out
    facts = schema.coerce(result.factuals)[generated]
    verdicts = Verifier(schema, classifier).check(facts, cfs_all[generated], result.target[generated])
    pos = np.flatnonzero(generated)
    joined = ["; ".join(p) for p in verdicts.problems]
    violation = [any(not q.startswith(("prediction did not flip", "classifier failed")) for q in p)
                 for p in verdicts.problems]
    out.iloc[pos, out.columns.get_loc("valid")] = verdicts.valid
    out.iloc[pos, out.columns.get_loc("immutable")] = ["immutable feature changed" in t for t in joined]
    out.iloc[pos, out.columns.get_loc("direction")] = [": may only " in t for t in joined]
    out.iloc[pos, out.columns.get_loc("violation")] = violation
    ok = verdicts.valid
    if ok.any():
        vf, vc = facts[ok], verdicts.cfs[ok]
        changed = changed_mask(vf, vc, schema)
        actionable = np.array([schema[c].actionable for c in schema.feature_names])
        n_changed = changed.sum(axis=1).to_numpy()
        n_act = changed.to_numpy()[:, actionable].sum(axis=1)
        vpos = pos[ok]
        values = {"distance": scale.distance(vf, vc), "cost": scale.cost(vf, vc), "sparsity": n_changed,
                  "plausibility": scale.in_support(vc).astype(float),
                  "actionable_share": np.where(n_changed > 0, n_act / np.maximum(n_changed, 1), np.nan),
                  "actionable_only": (n_act == n_changed).astype(float)}
        for k, v in values.items():
            out.iloc[vpos, out.columns.get_loc(k)] = v
    return out


def cf_metrics(result: CFResult, X_train: pd.DataFrame, y_train, schema: Schema, classifier,
               k_realism: int = 5) -> dict:
    """All metrics of one CFResult (see the module docstring for the exact definitions)."""
    n = len(result.status)
    out = {k: float("nan") for k in METRIC_KEYS}
    out.update(n=n, immutable_violations=0, direction_violations=0, constraint_violations=0)
    if n == 0:
        return out
    rows = cf_rows(result, X_train, schema, classifier)
    n_valid = int(rows["valid"].sum())
    out["validity"] = n_valid / n
    out["seconds_per_valid_cf"] = float(rows["seconds"].sum()) / n_valid if n_valid else float("nan")
    gen = rows[rows["generated"]]
    out["immutable_violations"] = int(gen["immutable"].sum())
    out["direction_violations"] = int(gen["direction"].sum())
    out["constraint_violations"] = int(gen["violation"].sum())
    if n_valid == 0:
        return out
    valid = rows[rows["valid"]]
    for k in (*PER_CF, "actionable_only"):
        out[k] = float(valid[k].mean())
    X = schema.coerce(X_train)
    scale = FeatureScale(schema, X)
    vc = schema.coerce(result.counterfactuals)[rows["valid"].to_numpy()]
    vc = vc.set_axis(result.counterfactuals.index[rows["valid"].to_numpy()])
    vt = result.target[rows["valid"].to_numpy()].to_numpy()
    y = np.asarray(y_train).astype(int)
    real = []
    for t in sorted(set(vt)):
        pool = X[y == t]
        if len(pool):
            d = np.sort(scale.pairwise(vc[vt == t], pool), axis=1)
            real.append(d[:, :k_realism].mean(axis=1))
    out["realism"] = float(np.concatenate(real).mean()) if real else float("nan")
    out["diversity"] = diversity(vc, X, schema)
    return out


def bootstrap_intervals(result: CFResult, X_train: pd.DataFrame, schema: Schema, classifier, n_boot: int = 1000,
                        seed: int = 0) -> dict[str, list[float]]:
    """95 % percentile bootstrap intervals (resampling factuals) of validity and of the per-CF means (distance,
    cost, sparsity, plausibility, actionable_share): {metric: [lo, hi]} (NaN where undefined)."""
    rows = cf_rows(result, X_train, schema, classifier)
    n = len(rows)
    out = {k: [float("nan"), float("nan")] for k in ("validity", *PER_CF)}
    if n < 2:
        return out
    draws = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    valid = rows["valid"].to_numpy(dtype=float)
    out["validity"] = [float(x) for x in np.percentile(valid[draws].mean(axis=1), [2.5, 97.5])]
    for k in PER_CF:
        v = rows[k].to_numpy(dtype=float)
        sums = np.nansum(np.where(valid[draws] > 0, v[draws], np.nan), axis=1)
        counts = valid[draws].sum(axis=1)
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        if np.isfinite(means).any():
            out[k] = [float(x) for x in np.nanpercentile(means, [2.5, 97.5])]
    return out


def robustness(result: CFResult, X_train: pd.DataFrame, schema: Schema, classifier, retrained=None,
               draws: int = 20, noise: float = 0.01, seed: int = 0) -> dict:
    """Robustness of the valid CFs (Hamman et al., ICML 2023): noise_validity = mean share of `draws` copies of
    each valid CF, every numeric value moved uniformly within ±noise x its training range, that the classifier
    still predicts as the target; retrain_validity = share of valid CFs that `retrained` (the same kind of model
    trained with another seed) also predicts as the target (NaN without it)."""
    rows = cf_rows(result, X_train, schema, classifier)
    out = {"noise_validity": float("nan"), "retrain_validity": float("nan")}
    ok = rows["valid"].to_numpy()
    if not ok.any():
        return out
    scale = FeatureScale(schema, schema.coerce(X_train))
    cfs = schema.coerce(result.counterfactuals)[ok]
    target = result.target.to_numpy()[ok]
    rng = np.random.default_rng(seed)
    noisy = pd.concat([cfs] * draws, ignore_index=True)
    jitter = rng.uniform(-noise, noise, (len(noisy), len(scale.num))) * scale.width
    noisy[scale.num] = noisy[scale.num].to_numpy(dtype=float) + jitter
    hits = (classifier.predict(noisy) == np.tile(target, draws)).reshape(draws, -1)
    out["noise_validity"] = float(hits.mean())
    if retrained is not None:
        out["retrain_validity"] = float((retrained.predict(cfs) == target).mean())
    return out


def diversity(cfs: pd.DataFrame, X_train: pd.DataFrame, schema: Schema) -> float:
    """Mean pairwise distance between CFs sharing a factual index label (NaN when every factual has one CF)."""
    scale = FeatureScale(schema, schema.coerce(X_train))
    vals = []
    for _, group in cfs.groupby(level=0):
        if len(group) > 1:
            d = scale.pairwise(group, group)
            vals.append(d[np.triu_indices(len(group), k=1)].mean())
    return float(np.mean(vals)) if vals else float("nan")


def per_class_metrics(result: CFResult, X_train: pd.DataFrame, y_train, schema: Schema, classifier,
                      k_realism: int = 5) -> dict[int, dict]:
    """cf_metrics per original class of the factual (the class the CF moves away from: 1 - target), as in
    the paper's Table III."""
    original = 1 - result.target.astype(int)
    return {int(c): cf_metrics(result.subset(original == c), X_train, y_train, schema, classifier, k_realism)
            for c in sorted(original.unique())}
