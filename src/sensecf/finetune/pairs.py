"""Supervised fine-tuning pairs: (the generator's prompt for a training factual, a target counterfactual).

How a target counterfactual is chosen for a factual x of the training split (never the test split). Every
numeric value is first rounded as the prompt shows it (FeatureSpec.format_value), so the answer text, once
parsed back, is exactly the row that was checked; current = the classifier's prediction, target = the other
class; a CF must reach p(target) >= `min_proba` (0.5 = just flip; higher asks for a margin).

Policy "neighbour" (the paper-style default):
1. Candidates = training rows with x's immutable values and p(target) >= `min_proba`, ordered by the paper's
   distance (L2 of min-max-normalised numeric differences + categorical Hamming). Each is projected onto x's
   constraints (cf/constraints.project_to_constraints: immutables kept, forbidden directions undone,
   clinical bounds), so every CF value comes from a real row (plausible).
2. For each of the `neighbours` nearest candidates, the smallest subset of its feature changes that still
   reaches the target is found: exhaustively over all subsets (by size, then distance) when it changes at most
   `exhaustive_up_to` features, else greedily (add the change that most raises the target probability until it
   flips, then drop every change whose removal keeps the flip). No single changed feature can be reverted with
   the prediction staying at the target (minimal).
3. The CF with the fewest changes (then the smallest distance) over these neighbours is kept.

Policy "grid": single changes on a grid — each mutable numeric feature moved by 1-10 whole multiples of a round
step (1, 2 or 5 x 10^k, about 1/10 of its 1-99 % training range; allowed direction; within the clinical bounds
and the training range, so plausible), each other level of a mutable categorical. Features are ranked per target
class by how many training factuals (a seeded sample of 200) one of their grid changes moves to that class;
the CF is the smallest grid change of the highest-ranked feature that reaches the target, and x's
nearest-neighbour CF (above) when no single change does. This teaches the classifier's easiest lever (on the
default data: REM sleep), not the patient's.

Policy "actionable" (the CPU default): the same grid, actionable-only first (as calibration ranks CFs): the
single grid change of an actionable feature (medium or high actionability) of lowest actionability-weighted size
(weight x range-normalised change: steps before glucose), else the cheapest pair of changes of two actionable
features, else the cheapest single change of a low-actionability feature (sleep), else the nearest-neighbour CF.
The answers are small, patient-actionable edits ("Mean steps: +4.0"); the calibration step
(generators/calibration.py) decides how far.

Factuals for which no candidate yields a valid CF are skipped and counted in `stats["skipped"]` by reason.
The pair is rendered in the requested prompt style (generators/llm/prompt.py): the whole instance ("paper")
or only the changed features ("compact").
Pairs are split into train/validation by participant (the schema's group column) when there is one.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit, ShuffleSplit

from ..data.dataset import Dataset
from ..errors import ConfigError, DataError
from ..cf.constraints import changed_features, constraint_violations, project_to_constraints
from ..cf.distance import FeatureScale
from ..console import progress_bar
from ..generators.llm.prompt import build_chat, render_answer
from ..schema import Schema

NO_NEIGHBOUR = "no training row of the target class shares the immutable values"
NO_VALID = "no constrained neighbour change reaches the target class"
POLICIES = ("neighbour", "grid", "actionable")
GRID_MULTIPLES, GRID_DIVISIONS = 10, 10


class PairList(list):
    """A list of SFT pairs plus `stats` (factuals considered, pairs built, skipped by reason)."""

    def __init__(self, items=(), stats: dict | None = None):
        super().__init__(items)
        self.stats = stats or {}


def display_values(X: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Numeric values rounded exactly as the prompt renders them; categoricals as strings."""
    out = X[schema.feature_names].copy()
    for f in schema.features:
        out[f.name] = out[f.name].astype(str) if f.is_categorical else \
            out[f.name].map(lambda v, f=f: float(f.format_value(v)))
    return out


def _apply(factual: pd.Series, source: pd.Series, masks: np.ndarray, features: list[str]) -> pd.DataFrame:
    """One row per mask: the factual with `source`'s values on the features the mask selects."""
    rows = pd.DataFrame([factual] * len(masks)).reset_index(drop=True)
    for j, name in enumerate(features):
        rows.loc[masks[:, j], name] = source[name]
    return rows


def _subset_masks(changed: list[str]) -> np.ndarray:
    return np.array([[f in combo for f in changed] for k in range(1, len(changed) + 1)
                     for combo in combinations(changed, k)], dtype=bool)


def _greedy(factual, source, changed, classifier, target, min_proba) -> pd.Series | None:
    """Forward selection of changes by target probability until the flip, then backward pruning."""
    chosen: list[str] = []
    remaining = list(changed)
    while remaining:
        masks = np.array([[f in chosen or f == g for f in changed] for g in remaining], dtype=bool)
        proba = classifier.predict_proba(_apply(factual, source, masks, changed))
        best = int(np.argmax(proba[:, target]))
        chosen.append(remaining.pop(best))
        if proba[best].argmax() == target and proba[best, target] >= min_proba:
            break
    else:
        return None
    for name in list(chosen):  # drop every change the flip does not need
        trial = [c for c in chosen if c != name]
        if not trial:
            continue
        p = classifier.predict_proba(_apply(factual, source, np.array([[f in trial for f in changed]]), changed))[0]
        if p.argmax() == target and p[target] >= min_proba:
            chosen = trial
    return _apply(factual, source, np.array([[f in chosen for f in changed]]), changed).iloc[0]


def target_counterfactual(factual: pd.Series, target: int, candidates: pd.DataFrame, classifier, schema: Schema,
                          scale: FeatureScale, neighbours: int = 3, exhaustive_up_to: int = 10,
                          min_proba: float = 0.5) -> pd.Series | None:
    """The minimal CF of `factual` reaching p(target) >= `min_proba`, built from its nearest target-class
    `candidates` (display space)."""
    if candidates.empty:
        return None
    sources = []
    for pos in np.argsort(scale.distance_from(factual, candidates), kind="stable")[:neighbours]:
        source = project_to_constraints(factual, candidates.iloc[pos], schema, target)
        changed = changed_features(factual, source, schema)
        if changed:
            sources.append((source, changed))
    rows = []
    for source, changed in sources:
        if len(changed) <= exhaustive_up_to:
            rows.append(_apply(factual, source, _subset_masks(changed), changed))
        else:
            cf = _greedy(factual, source, changed, classifier, target, min_proba)
            if cf is not None:
                rows.append(cf.to_frame().T)
    if not rows:
        return None
    rows = pd.concat(rows, ignore_index=True)
    proba = classifier.predict_proba(rows)
    rows = rows[(proba.argmax(axis=1) == target) & (proba[:, target] >= min_proba)]
    if rows.empty:
        return None
    n_changed = [len(changed_features(factual, r, schema)) for _, r in rows.iterrows()]
    best = np.lexsort((scale.distance_from(factual, rows), n_changed))[0]
    return rows.iloc[best].rename(factual.name)


def grid_steps(X: pd.DataFrame, schema: Schema, divisions: int = GRID_DIVISIONS) -> dict[str, float]:
    """Per mutable numeric feature: a round step (1, 2 or 5 x 10^k) of about 1/`divisions` of its 1-99 % range
    in X, at least one displayed digit (1 for integers)."""
    steps = {}
    for f in schema.features:
        if f.immutable or f.is_categorical:
            continue
        lo, hi = np.nanquantile(X[f.name].astype(float), [0.01, 0.99])
        smallest = 1.0 if f.kind == "integer" else 10.0 ** -f.precision
        raw = max((hi - lo) / divisions, smallest)
        power = 10.0 ** np.floor(np.log10(raw))
        steps[f.name] = float(next(m * power for m in (1, 2, 5, 10) if m * power >= raw - 1e-12))
    return steps


def _grid_moves(factual: pd.Series, schema: Schema, steps: dict[str, float], support: dict[str, tuple[float, float]],
                target: int, multiples: int = GRID_MULTIPLES) -> tuple[list[pd.Series], list[str], list[float]]:
    """Every single change on the grid inside the clinical bounds and the training range `support` (so a CF
    stays plausible): (rows, changed feature, range-normalised size)."""
    rows, names, sizes = [], [], []
    for f in schema.features:
        if f.immutable:
            continue
        if f.is_categorical:
            moves = [(lv, 1.0) for lv in f.levels if lv != str(factual[f.name])]
        else:
            lo, hi = support[f.name]
            width = max(hi - lo, 1e-12)
            lo = lo if f.bounds[0] is None else max(lo, f.bounds[0])
            hi = hi if f.bounds[1] is None else min(hi, f.bounds[1])
            way = f.allowed_direction(target, schema.desired_class)
            signs = {"increase": (1,), "decrease": (-1,)}.get(way, (1, -1))
            moves = [(float(f.format_value(float(factual[f.name]) + s * k * steps[f.name])),
                      k * steps[f.name] / width) for s in signs for k in range(1, multiples + 1)]
            moves = [(v, size) for v, size in moves if lo <= v <= hi]
        for value, size in moves:
            row = factual.copy()
            row[f.name] = value
            rows.append(row)
            names.append(f.name)
            sizes.append(size)
    return rows, names, sizes


def reliable_features(X: pd.DataFrame, current: pd.Series, classifier, schema: Schema, steps: dict[str, float],
                      support: dict[str, tuple[float, float]], target: int, sample: int = 200,
                      seed: int = 0) -> list[str]:
    """Mutable features ordered by how many factuals of the other class one of their grid changes moves to
    `target` (most first)."""
    pool = X[current != target]
    pool = pool.sample(min(sample, len(pool)), random_state=seed)
    hits: dict[str, int] = {}
    for _, factual in pool.iterrows():
        rows, names, _ = _grid_moves(factual, schema, steps, support, target)
        if rows:
            flipped = classifier.predict_proba(pd.DataFrame(rows))[:, target] >= 0.5
            for name in {n for n, ok in zip(names, flipped) if ok}:
                hits[name] = hits.get(name, 0) + 1
    mutable = [f.name for f in schema.features if not f.immutable]
    return sorted(mutable, key=lambda n: -hits.get(n, 0))


def grid_counterfactual(factual: pd.Series, target: int, classifier, schema: Schema, steps: dict[str, float],
                        support: dict[str, tuple[float, float]], order: list[str], min_proba: float = 0.5
                        ) -> pd.Series | None:
    """The smallest grid change (module docstring, policy "grid") reaching p(target) >= `min_proba` of the first
    feature in `order` that has one, or None."""
    rows, names, sizes = _grid_moves(factual, schema, steps, support, target)
    if not rows:
        return None
    proba = classifier.predict_proba(pd.DataFrame(rows))[:, target]
    ok = np.flatnonzero(proba >= min_proba)
    if ok.size == 0:
        return None
    rank = {n: i for i, n in enumerate(order)}
    return rows[min(ok, key=lambda i: (rank.get(names[i], len(rank)), sizes[i]))]  # first of ties


def actionable_counterfactual(factual: pd.Series, target: int, classifier, schema: Schema, steps: dict[str, float],
                              support: dict[str, tuple[float, float]], min_proba: float = 0.5) -> pd.Series | None:
    """The minimal-cost grid CF (module docstring, policy "actionable"), actionable-only first: the single grid
    change of an actionable feature of lowest actionability-weighted size reaching p(target) >= `min_proba`; else
    the cheapest pair of changes of two actionable numeric features; else the cheapest single change of any
    mutable feature (sleep included); else None."""
    rows, names, sizes = _grid_moves(factual, schema, steps, support, target)
    if not rows:
        return None
    cost = np.array([schema[n].weight * s for n, s in zip(names, sizes)])
    ok = classifier.predict_proba(pd.DataFrame(rows))[:, target] >= min_proba
    actionable = np.array([schema[n].actionable for n in names])
    cheapest = lambda mask: rows[min(np.flatnonzero(mask), key=lambda i: (cost[i], sizes[i]))]  # noqa: E731
    if (ok & actionable).any():
        return cheapest(ok & actionable)
    pair = _cheapest_actionable_pair(rows, names, cost, classifier, schema, target, min_proba)
    if pair is not None:
        return pair
    return cheapest(ok) if ok.any() else None


def _cheapest_actionable_pair(rows: list[pd.Series], names: list[str], cost: np.ndarray, classifier, schema: Schema,
                              target: int, min_proba: float) -> pd.Series | None:
    """The grid row combining two single changes of two actionable numeric features of lowest joint cost (the
    hypotenuse of their costs) that reaches p(target) >= `min_proba`; None when no pair does."""
    by_feature: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        if schema[n].actionable and not schema[n].is_categorical:
            by_feature.setdefault(n, []).append(i)
    combos, combo_cost = [], []
    for f1, f2 in combinations(sorted(by_feature), 2):
        for i in by_feature[f1]:
            for j in by_feature[f2]:
                row = rows[i].copy()
                row[f2] = rows[j][f2]
                combos.append(row)
                combo_cost.append(float(np.hypot(cost[i], cost[j])))
    if not combos:
        return None
    ok = classifier.predict_proba(pd.DataFrame(combos))[:, target] >= min_proba
    return combos[min(np.flatnonzero(ok), key=lambda i: combo_cost[i])] if ok.any() else None


def _split(pairs: list[dict], val_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    if val_fraction <= 0 or len(pairs) < 2:
        return pairs, []
    groups = [p["group"] for p in pairs]
    idx = np.arange(len(pairs))
    if all(g is not None for g in groups) and len(set(groups)) >= 2:
        splitter = GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
        tr, va = next(splitter.split(idx, groups=groups))
    else:
        tr, va = next(ShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed).split(idx))
    return [pairs[i] for i in sorted(tr)], [pairs[i] for i in sorted(va)]


def build_pairs(train: Dataset, classifier, schema: Schema | None = None, seed: int = 0, max_pairs: int | None = None,
                val_fraction: float = 0.1, neighbours: int = 3, progress: bool = True, style: str = "paper",
                min_proba: float = 0.5, policy: str = "neighbour") -> tuple[PairList, PairList]:
    """SFT pairs from the training split: {"messages": system+user+assistant, "factual_id", "current", "target",
    "changed", "target_proba", "policy" (that built the CF), "group"}; returns (train_pairs, val_pairs), both
    carrying the same `stats`.

    Factuals are visited in a seeded order alternating the two predicted classes, so `max_pairs` keeps both
    directions balanced. See the module docstring for how each target CF is chosen.
    """
    schema = schema or train.schema
    if max_pairs is not None and max_pairs < 1:
        raise ConfigError(f"max_pairs must be positive, got {max_pairs}")
    if policy not in POLICIES:
        raise ConfigError(f"target policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    if not 0.5 <= min_proba < 1:
        raise ConfigError(f"min_proba (target probability of a pair's CF) must be in [0.5, 1), got {min_proba}")
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if sorted(schema.label_names) != [0, 1]:
        raise ConfigError(f"fine-tuning pairs need a binary label (0/1); schema {schema.name!r} has "
                          f"{sorted(schema.label_names)}")
    if len(train) == 0:
        raise DataError("the training split is empty; no fine-tuning pairs can be built")
    X = display_values(train.X, schema)
    proba = classifier.predict_proba(X)
    current = pd.Series(proba.argmax(axis=1), index=X.index).astype(int)
    confident = pd.DataFrame(proba >= min_proba, index=X.index)  # column t: may serve as a target-t neighbour
    groups = train.groups
    imm = schema.immutable
    key = X[imm].astype(str).agg("|".join, axis=1) if imm else pd.Series("", index=X.index)

    rng = np.random.default_rng(seed)
    order = X.index[rng.permutation(len(X))]
    rank = current.loc[order].groupby(current.loc[order]).cumcount()
    order = rank.sort_values(kind="stable").index  # alternate the two classes, seeded within each
    scale = FeatureScale(schema, X)
    pool = {(k, c): X.loc[(key == k) & (current == c) & confident[c]] for k, c in set(zip(key, current))}
    steps = grid_steps(X, schema) if policy in ("grid", "actionable") else {}
    support = {c: (float(X[c].min()), float(X[c].max())) for c in steps}
    orders = {t: reliable_features(X, current, classifier, schema, steps, support, t, seed=seed)
              for t in (0, 1)} if policy == "grid" else {}

    pairs: list[dict] = []
    by_policy = dict.fromkeys(POLICIES, 0)
    skipped = {NO_NEIGHBOUR: 0, NO_VALID: 0}
    considered = 0
    with progress_bar(enabled=progress, transient=True) as bar:
        task = bar.add_task("building fine-tuning pairs", total=max_pairs or len(order))
        for idx in order:
            if max_pairs is not None and len(pairs) >= max_pairs:
                break
            considered += 1
            factual, cur = X.loc[idx], int(current[idx])
            target = 1 - cur
            cf, used = None, policy
            if policy == "grid":
                cf = grid_counterfactual(factual, target, classifier, schema, steps, support, orders[target],
                                         min_proba)
            elif policy == "actionable":
                cf = actionable_counterfactual(factual, target, classifier, schema, steps, support, min_proba)
            if cf is None:
                used = "neighbour"
                candidates = pool.get((key[idx], target), X.iloc[:0])
                if candidates.empty:
                    skipped[NO_NEIGHBOUR] += 1
                    continue
                cf = target_counterfactual(factual, target, candidates, classifier, schema, scale, neighbours,
                                           min_proba=min_proba)
            p_target = None if cf is None else float(classifier.predict_proba(cf.to_frame().T)[0, target])
            if cf is None or p_target < min_proba or constraint_violations(factual, cf, schema, target):
                skipped[NO_VALID] += 1
                continue
            by_policy[used] += 1
            answer = render_answer(cf, schema, factual if style == "compact" else None)
            messages = build_chat(factual, cur, target, schema, style=style) + [
                {"role": "assistant", "content": answer}]
            pairs.append({"messages": messages, "factual_id": idx.item() if hasattr(idx, "item") else idx,
                          "current": cur, "target": target, "changed": changed_features(factual, cf, schema),
                          "target_proba": round(p_target, 4), "policy": used,
                          "group": None if groups is None else str(groups[idx])})
            bar.update(task, completed=len(pairs) if max_pairs else considered)
    stats = {"factuals_considered": considered, "pairs": len(pairs), "skipped": skipped, "policy": policy,
             "pairs_by_policy": by_policy, **({"grid_steps": steps} if steps else {}),
             **({"grid_order": orders} if orders else {}),
             "pairs_changing": pd.Series([c for p in pairs for c in p["changed"]]).value_counts().to_dict(),
             "pairs_by_target": {t: sum(p["target"] == t for p in pairs) for t in (0, 1)}}
    tr, va = _split(pairs, val_fraction, seed)
    stats.update(train_pairs=len(tr), val_pairs=len(va))
    return PairList(tr, stats), PairList(va, stats)
