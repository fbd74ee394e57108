"""Aggregates of the augmentation cells: means with t-intervals, relative changes, lost F1 recovered."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

#: test metrics of every trained model (models.classifiers.evaluate); macro_f1 is the primary F1
METRICS = ("accuracy", "precision", "recall", "f1", "macro_f1", "f1_class0", "f1_class1", "auc")
PRIMARY = "macro_f1"
SCENARIOS = {"A": "class 1 halved", "B": "class 0 halved", "C": "both classes halved"}


def mean_ci(values) -> dict:
    """Mean, 95 % t-interval half-width and count of the finite values (NaN when none / half-width NaN if n=1)."""
    v = np.asarray([x for x in values if x is not None], dtype=float)
    v = v[np.isfinite(v)]
    n = len(v)
    if n == 0:
        return {"mean": float("nan"), "ci95": float("nan"), "n": 0}
    half = float(stats.t.ppf(0.975, n - 1) * v.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return {"mean": float(v.mean()), "ci95": half, "n": n}


def percent_change(new: float, ref: float) -> float:
    """(new - ref) / ref x 100; NaN when ref is 0 or missing."""
    if ref is None or new is None or not np.isfinite(ref) or not np.isfinite(new) or ref == 0:
        return float("nan")
    return (new - ref) / ref * 100.0


def pooled_recovery(f1_aug, f1_red, f1_base, n_boot: int = 2000, seed: int = 0, eps: float = 1e-9) -> dict:
    """Share of the lost F1 recovered over seeds: sum(F1_aug - F1_red) / sum(F1_base - F1_red) (the mean gain over
    the mean loss), with a 95 % percentile bootstrap interval over seeds (lo, hi). A per-seed ratio is unstable:
    a seed whose reduced model lost almost nothing divides by ~0. NaN when no F1 was lost on average."""
    gain = np.asarray(f1_aug, float) - np.asarray(f1_red, float)
    loss = np.asarray(f1_base, float) - np.asarray(f1_red, float)
    keep = np.isfinite(gain) & np.isfinite(loss)
    gain, loss = gain[keep], loss[keep]
    n = len(gain)
    out = {"mean": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": n}
    if n == 0 or loss.sum() <= eps:
        return out
    out["mean"] = float(gain.sum() / loss.sum())
    if n > 1:
        draws = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
        g, lost = gain[draws].sum(axis=1), loss[draws].sum(axis=1)
        ratios = np.where(lost > eps, g / np.where(lost > eps, lost, 1.0), np.nan)
        out["lo"], out["hi"] = (float(x) for x in np.nanpercentile(ratios, [2.5, 97.5]))
    return out


def ratio_key(ratio: float) -> str:
    """JSON key of a ratio: 0.2 -> "0.2", 1.0 -> "1"."""
    return f"{float(ratio):g}"


def _agg(per_seed: dict[int, dict], keys=METRICS) -> dict:
    return {k: mean_ci([m.get(k) for m in per_seed.values()]) for k in keys}


def _counts(records: dict, key: str) -> dict:
    return mean_ci([r.get(key) for r in records.values()])


def summarize(records: list[dict], methods, scenarios, seeds, ratios) -> dict:
    """augmentation.json content from cell records: per scenario the baseline, reduced and per-method/ratio
    metrics per seed, their mean and 95 % CI, the reduced model's drop vs baseline (%), each augmented model's
    change vs reduced (%) (computed per seed, then aggregated) and the share of lost macro-F1 recovered (pooled
    over seeds, see pooled_recovery)."""
    seeds = [int(s) for s in seeds]
    by = {(r["scenario"], int(r["seed"]), r["method"], float(r["ratio"])): r for r in records}
    out = {"metrics": list(METRICS), "primary": PRIMARY, "scenarios": {}}
    for sc in scenarios:
        base = {s: by[(sc, s, "baseline", 0.0)]["metrics"] for s in seeds if (sc, s, "baseline", 0.0) in by}
        red = {s: by[(sc, s, "reduced", 0.0)]["metrics"] for s in seeds if (sc, s, "reduced", 0.0) in by}
        info = {s: by[(sc, s, "reduced", 0.0)] for s in red}
        drop = {s: {k: percent_change(red[s].get(k), base[s].get(k)) for k in METRICS} for s in red if s in base}
        entry = {"description": SCENARIOS.get(sc, sc),
                 "augmented_class": {str(s): r["augmented_class"] for s, r in info.items()},
                 "n_removed": {str(s): r["n_removed"] for s, r in info.items()},
                 "rows_removed": _counts(info, "n_removed"),
                 "baseline": {"per_seed": {str(s): m for s, m in base.items()}, "aggregate": _agg(base)},
                 "reduced": {"per_seed": {str(s): m for s, m in red.items()}, "aggregate": _agg(red),
                             "drop_vs_baseline_pct": _agg(drop)},
                 "methods": {}}
        for method in methods:
            per_ratio = {}
            for ratio in ratios:
                got = {s: by[(sc, s, method, float(ratio))] for s in seeds if (sc, s, method, float(ratio)) in by}
                if not got:
                    continue
                aug = {s: r["metrics"] for s, r in got.items()}
                change = {s: {k: percent_change(aug[s].get(k), red[s].get(k)) for k in METRICS}
                          for s in aug if s in red}
                paired = [s for s in aug if s in red and s in base]
                per_ratio[ratio_key(ratio)] = {
                    "per_seed": {str(s): {**r["metrics"], "n_added": r.get("n_added"),
                                          "n_requested": r.get("n_requested")} for s, r in got.items()},
                    "aggregate": _agg(aug), "change_vs_reduced_pct": _agg(change),
                    "lost_f1_recovered": pooled_recovery([aug[s].get(PRIMARY) for s in paired],
                                                         [red[s].get(PRIMARY) for s in paired],
                                                         [base[s].get(PRIMARY) for s in paired]),
                    "n_added": _counts(got, "n_added"), "n_requested": _counts(got, "n_requested")}
                if any("n_added_from_llm" in r for r in got.values()):
                    per_ratio[ratio_key(ratio)]["n_added_from_llm"] = _counts(got, "n_added_from_llm")
            if per_ratio:
                entry["methods"][method] = per_ratio
        out["scenarios"][sc] = entry
    return out
