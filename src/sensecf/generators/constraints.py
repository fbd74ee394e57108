"""Checks every method's candidates against the schema: immutables, directions, bounds, and the target."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..schema import Schema

#: numeric changes smaller than this (relative to the feature's training range) are not "changes"
DEFAULT_TOLERANCE = 1e-6


def changed_features(factual: pd.Series, cf: pd.Series, schema: Schema, ranges: dict | None = None,
                     tol: float = DEFAULT_TOLERANCE) -> list[str]:
    """Names of features whose value differs between factual and CF.

    Numeric: |cf - factual| > tol * (range width, or 1 when no range is known), so float noise such as
    13848 -> 13847.99999 does not count. Categorical: string inequality.
    """
    out = []
    for f in schema.features:
        a, b = factual[f.name], cf[f.name]
        if f.is_categorical:
            if str(a) != str(b):
                out.append(f.name)
            continue
        width = 1.0
        if ranges and f.name in ranges:
            lo, hi = ranges[f.name]
            width = max(float(hi) - float(lo), 1e-12)
        if abs(float(b) - float(a)) > tol * width:
            out.append(f.name)
    return out


def constraint_violations(factual: pd.Series, cf: pd.Series, schema: Schema, ranges: dict | None = None,
                          tol: float = DEFAULT_TOLERANCE) -> list[str]:
    """Human-readable violations of immutables, allowed directions, clinical bounds and levels ([] if none)."""
    problems = []
    changed = set(changed_features(factual, cf, schema, ranges, tol))
    for f in schema.features:
        v = cf[f.name]
        if f.is_categorical:
            if str(v) not in f.levels:
                problems.append(f"{f.name}: {v!r} is not one of {f.levels}")
        else:
            if v is None or (isinstance(v, float) and np.isnan(v)):
                problems.append(f"{f.name}: missing value")
                continue
            lo, hi = f.bounds
            if lo is not None and float(v) < lo - 1e-9:
                problems.append(f"{f.name}: {f.format_value(v)} below the lower bound {lo:g}")
            if hi is not None and float(v) > hi + 1e-9:
                problems.append(f"{f.name}: {f.format_value(v)} above the upper bound {hi:g}")
        if f.name not in changed:
            continue
        if f.immutable:
            problems.append(f"{f.name}: immutable feature changed ({factual[f.name]} -> {v})")
        elif f.direction == "increase" and float(v) < float(factual[f.name]):
            problems.append(f"{f.name}: may only increase ({f.format_value(factual[f.name])} -> {f.format_value(v)})")
        elif f.direction == "decrease" and float(v) > float(factual[f.name]):
            problems.append(f"{f.name}: may only decrease ({f.format_value(factual[f.name])} -> {f.format_value(v)})")
    return problems


def project_to_constraints(factual: pd.Series, cf: pd.Series, schema: Schema) -> pd.Series:
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
        if f.direction == "increase":
            v = max(v, float(factual[f.name]))
        elif f.direction == "decrease":
            v = min(v, float(factual[f.name]))
        lo, hi = f.bounds
        v = v if lo is None else max(v, lo)
        v = v if hi is None else min(v, hi)
        out[f.name] = float(round(v)) if f.kind == "integer" else v
    return out
