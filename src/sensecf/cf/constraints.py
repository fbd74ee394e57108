"""The change rule and the constraint checks every method's counterfactuals go through.

Change rule (one rule for sparsity, constraints, the intervention view and the verifier): a numeric feature has
changed only when its value differs from the factual's once both are rounded as they are shown
(FeatureSpec.display_round: the prompt's and the report's precision); a categorical feature when its level
differs. So 52.0885 -> 52.1 (a rewrite at display precision) and 13848 -> 13847.99999 are not changes.

Directions: a feature's allowed direction for a counterfactual towards `target` is FeatureSpec.allowed_direction
(absolute `direction`, or goal-relative `better` mirrored away from the schema's desired class). With target None
the goal-relative direction is the one towards the desired class.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..schema import FeatureSpec, Schema


def _display(values, f: FeatureSpec) -> np.ndarray:
    """Numeric values rounded as displayed (NaN and inf kept)."""
    arr = np.asarray(values, dtype=float)
    out = arr.copy()
    finite = np.isfinite(arr)
    out[finite] = [f.display_round(v) for v in arr[finite]]
    return out


def changed_mask(factuals: pd.DataFrame, cfs: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Row-aligned (by position) boolean table: which features of each CF differ from its factual."""
    out = {}
    for f in schema.features:
        a, b = factuals[f.name].to_numpy(), cfs[f.name].to_numpy()
        if f.is_categorical:
            out[f.name] = a.astype(str) != b.astype(str)
        else:
            da, db = _display(a, f), _display(b, f)
            out[f.name] = ~((da == db) | (np.isnan(da) & np.isnan(db)))
    return pd.DataFrame(out, index=cfs.index)


def changed_features(factual: pd.Series, cf: pd.Series, schema: Schema) -> list[str]:
    """Names of features whose value differs between factual and CF (the change rule above)."""
    mask = changed_mask(factual.to_frame().T, cf.to_frame().T, schema).iloc[0]
    return [n for n in schema.feature_names if mask[n]]


def snap_to_factual(factuals: pd.DataFrame, cfs: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """CFs whose unchanged features (change rule) carry the factual's exact value and whose integer features are
    whole numbers: what is shown is what is verified."""
    out = cfs.copy()
    unchanged = ~changed_mask(factuals, cfs, schema)
    for f in schema.features:
        if f.is_categorical:
            continue
        keep = unchanged[f.name].to_numpy()
        vals = out[f.name].to_numpy(dtype=float).copy()
        vals[keep] = factuals[f.name].to_numpy(dtype=float)[keep]
        if f.kind == "integer":
            vals = np.where(np.isfinite(vals), np.round(vals), vals)
        out[f.name] = vals
    return out


def violation_table(factuals: pd.DataFrame, cfs: pd.DataFrame, schema: Schema, targets=None) -> list[list[str]]:
    """Per CF row (aligned by position): human-readable violations of levels, finiteness, clinical bounds,
    immutables and allowed directions ([] if none)."""
    n = len(cfs)
    targets = [None] * n if targets is None else [None if t is None else int(t) for t in np.asarray(targets)]
    changed = changed_mask(factuals, cfs, schema).to_numpy()
    problems: list[list[str]] = [[] for _ in range(n)]
    for j, f in enumerate(schema.features):
        col, fact = cfs[f.name].to_numpy(), factuals[f.name].to_numpy()
        if f.is_categorical:
            for i in np.flatnonzero(~np.isin(col.astype(str), f.levels)):
                problems[i].append(f"{f.name}: {col[i]!r} is not one of {f.levels}")
        else:
            v = np.asarray(col, dtype=float)
            lo, hi = f.bounds
            for i in range(n):
                if not np.isfinite(v[i]):
                    problems[i].append(f"{f.name}: {'missing value' if np.isnan(v[i]) else 'not a finite number'}")
                elif lo is not None and v[i] < lo - 1e-9:
                    problems[i].append(f"{f.name}: {f.format_value(v[i])} below the lower bound {lo:g}")
                elif hi is not None and v[i] > hi + 1e-9:
                    problems[i].append(f"{f.name}: {f.format_value(v[i])} above the upper bound {hi:g}")
        for i in np.flatnonzero(changed[:, j]):
            if f.immutable:
                problems[i].append(f"{f.name}: immutable feature changed ({fact[i]} -> {col[i]})")
                continue
            if f.is_categorical or not np.isfinite(float(col[i])):
                continue
            way = f.allowed_direction(targets[i], schema.desired_class)
            a, b = float(fact[i]), float(col[i])
            if (way == "increase" and b < a) or (way == "decrease" and b > a):
                problems[i].append(f"{f.name}: may only {way} ({f.format_value(a)} -> {f.format_value(b)})")
    return problems


def constraint_violations(factual: pd.Series, cf: pd.Series, schema: Schema, target: int | None = None) -> list[str]:
    """Violations of one CF (see violation_table)."""
    return violation_table(factual.to_frame().T, cf.to_frame().T, schema, None if target is None else [target])[0]


def violation_mask(factual: pd.Series, cands: pd.DataFrame, schema: Schema, target: int | None = None) -> np.ndarray:
    """Vectorised check of many candidates of one factual: True where a candidate breaks a level, a bound, an
    immutable or an allowed direction, or holds a missing / non-finite value."""
    bad = np.zeros(len(cands), dtype=bool)
    for f in schema.features:
        col = cands[f.name]
        if f.is_categorical:
            s = col.astype(str).to_numpy()
            bad |= ~np.isin(s, f.levels)
            if f.immutable:
                bad |= s != str(factual[f.name])
            continue
        v = col.to_numpy(dtype=float)
        x = float(factual[f.name])
        bad |= ~np.isfinite(v)
        moved = _display(v, f) != f.display_round(x)
        way = f.allowed_direction(target, schema.desired_class)
        if f.immutable:
            bad |= moved
        elif way == "increase":
            bad |= moved & (v < x)
        elif way == "decrease":
            bad |= moved & (v > x)
        lo, hi = f.bounds
        if lo is not None:
            bad |= v < lo - 1e-9
        if hi is not None:
            bad |= v > hi + 1e-9
    return bad


def project_to_constraints(factual: pd.Series, cf: pd.Series, schema: Schema, target: int | None = None) -> pd.Series:
    """Repair what can be repaired without a model: reset immutables, undo forbidden directions, clip to
    bounds, round integers. Used by baseline wrappers whose packages lack these options."""
    out = cf.copy()
    for f in schema.features:
        if f.immutable:
            out[f.name] = factual[f.name]
            continue
        if f.is_categorical:
            continue
        v = float(out[f.name])
        way = f.allowed_direction(target, schema.desired_class)
        if way == "increase":
            v = max(v, float(factual[f.name]))
        elif way == "decrease":
            v = min(v, float(factual[f.name]))
        lo, hi = f.bounds
        v = v if lo is None else max(v, lo)
        v = v if hi is None else min(v, hi)
        out[f.name] = float(round(v)) if f.kind == "integer" else v
    return out
