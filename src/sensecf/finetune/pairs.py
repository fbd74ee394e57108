"""Supervised fine-tuning pairs: (the generator's prompt for a training factual, a target counterfactual).

How a target counterfactual is chosen for a factual x of the training split (never the test split):

1. Work in *display space*: every numeric value is rounded as the prompt shows it (FeatureSpec.format_value),
   so the answer text, once parsed back, is exactly the row that was checked below.
2. current = the classifier's prediction for x, target = the other class.
3. Candidates = training rows with x's immutable values that the classifier predicts as the target class,
   ordered by the paper's distance (L2 of min-max-normalised numeric differences + categorical Hamming).
   Each candidate is projected onto x's constraints (generators/constraints.project_to_constraints: immutables
   kept, forbidden directions undone, clinical bounds), so every CF value comes from a real row (plausible).
4. For each of the `neighbours` nearest candidates, the smallest subset of its feature changes that still
   flips the classifier is found: exhaustively over all subsets (by size, then distance) when it changes at
   most `exhaustive_up_to` features, else greedily (add the change that most raises the target probability
   until it flips, then drop every change whose removal keeps the flip). Either way no single changed feature
   can be reverted with the prediction staying at the target (minimal).
5. The CF with the fewest changes (then the smallest distance) over these neighbours is kept; it is checked
   once more for validity and constraint violations.

Factuals for which no candidate yields a valid CF are skipped and counted in `stats["skipped"]` by reason.
Pairs are split into train/validation by participant (the schema's group column) when there is one.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
from rich.progress import Progress
from sklearn.model_selection import GroupShuffleSplit, ShuffleSplit

from ..data.dataset import Dataset
from ..errors import ConfigError, DataError
from ..generators.constraints import changed_features, constraint_violations, project_to_constraints
from ..generators.llm.prompt import build_chat, render_answer
from ..schema import Schema

NO_NEIGHBOUR = "no training row of the target class shares the immutable values"
NO_VALID = "no constrained neighbour change reaches the target class"


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


class _Distance:
    """The paper's distance (metrics.pairwise_distance) with the training ranges computed once."""

    def __init__(self, X_ref: pd.DataFrame, schema: Schema):
        lo, hi = X_ref[schema.continuous].min(), X_ref[schema.continuous].max()
        self.width = (hi - lo).where(hi - lo > 0, 1.0).to_numpy(float)
        self.num, self.cat = schema.continuous, schema.categorical

    def __call__(self, factual: pd.Series, rows: pd.DataFrame) -> np.ndarray:
        a = factual[self.num].to_numpy(float) / self.width
        b = rows[self.num].to_numpy(float) / self.width
        d = np.sqrt(((b - a) ** 2).sum(axis=1))
        for c in self.cat:
            d += rows[c].astype(str).to_numpy() != str(factual[c])
        return d


def _apply(factual: pd.Series, source: pd.Series, masks: np.ndarray, features: list[str]) -> pd.DataFrame:
    """One row per mask: the factual with `source`'s values on the features the mask selects."""
    rows = pd.DataFrame([factual] * len(masks)).reset_index(drop=True)
    for j, name in enumerate(features):
        rows.loc[masks[:, j], name] = source[name]
    return rows


def _subset_masks(changed: list[str]) -> np.ndarray:
    return np.array([[f in combo for f in changed] for k in range(1, len(changed) + 1)
                     for combo in combinations(changed, k)], dtype=bool)


def _greedy(factual, source, changed, classifier, target) -> pd.Series | None:
    """Forward selection of changes by target probability until the flip, then backward pruning."""
    chosen: list[str] = []
    remaining = list(changed)
    while remaining:
        masks = np.array([[f in chosen or f == g for f in changed] for g in remaining], dtype=bool)
        proba = classifier.predict_proba(_apply(factual, source, masks, changed))
        best = int(np.argmax(proba[:, target]))
        chosen.append(remaining.pop(best))
        if proba[best].argmax() == target:
            break
    else:
        return None
    for name in list(chosen):  # drop every change the flip does not need
        trial = [c for c in chosen if c != name]
        if trial and classifier.predict(_apply(factual, source, np.array([[f in trial for f in changed]]),
                                               changed))[0] == target:
            chosen = trial
    return _apply(factual, source, np.array([[f in chosen for f in changed]]), changed).iloc[0]


def target_counterfactual(factual: pd.Series, target: int, candidates: pd.DataFrame, classifier, schema: Schema,
                          distance: _Distance, neighbours: int = 3, exhaustive_up_to: int = 10
                          ) -> pd.Series | None:
    """The minimal valid CF of `factual` built from its nearest target-class `candidates` (display space)."""
    if candidates.empty:
        return None
    sources = []
    for pos in np.argsort(distance(factual, candidates), kind="stable")[:neighbours]:
        source = project_to_constraints(factual, candidates.iloc[pos], schema)
        changed = changed_features(factual, source, schema)
        if changed:
            sources.append((source, changed))
    rows = []
    for source, changed in sources:
        if len(changed) <= exhaustive_up_to:
            rows.append(_apply(factual, source, _subset_masks(changed), changed))
        else:
            cf = _greedy(factual, source, changed, classifier, target)
            if cf is not None:
                rows.append(cf.to_frame().T)
    if not rows:
        return None
    rows = pd.concat(rows, ignore_index=True)
    rows = rows[classifier.predict(rows) == target]
    if rows.empty:
        return None
    n_changed = [len(changed_features(factual, r, schema)) for _, r in rows.iterrows()]
    best = np.lexsort((distance(factual, rows), n_changed))[0]
    return rows.iloc[best].rename(factual.name)


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
                val_fraction: float = 0.1, neighbours: int = 3, progress: bool = True) -> tuple[PairList, PairList]:
    """SFT pairs from the training split: {"messages": system+user+assistant, "factual_id", "current", "target",
    "changed", "target_proba", "group"}; returns (train_pairs, val_pairs), both carrying the same `stats`.

    Factuals are visited in a seeded order alternating the two predicted classes, so `max_pairs` keeps both
    directions balanced. See the module docstring for how each target CF is chosen.
    """
    schema = schema or train.schema
    if max_pairs is not None and max_pairs < 1:
        raise ConfigError(f"max_pairs must be positive, got {max_pairs}")
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if sorted(schema.label_names) != [0, 1]:
        raise ConfigError(f"fine-tuning pairs need a binary label (0/1); schema {schema.name!r} has "
                          f"{sorted(schema.label_names)}")
    if len(train) == 0:
        raise DataError("the training split is empty; no fine-tuning pairs can be built")
    X = display_values(train.X, schema)
    current = pd.Series(classifier.predict(X), index=X.index).astype(int)
    groups = train.groups
    imm = schema.immutable
    key = X[imm].astype(str).agg("|".join, axis=1) if imm else pd.Series("", index=X.index)

    rng = np.random.default_rng(seed)
    order = X.index[rng.permutation(len(X))]
    rank = current.loc[order].groupby(current.loc[order]).cumcount()
    order = rank.sort_values(kind="stable").index  # alternate the two classes, seeded within each
    distance = _Distance(X, schema)
    pool = {(k, c): X.loc[(key == k) & (current == c)] for k, c in set(zip(key, current))}

    pairs: list[dict] = []
    skipped = {NO_NEIGHBOUR: 0, NO_VALID: 0}
    considered = 0
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("building fine-tuning pairs", total=max_pairs or len(order))
        for idx in order:
            if max_pairs is not None and len(pairs) >= max_pairs:
                break
            considered += 1
            factual, cur = X.loc[idx], int(current[idx])
            target = 1 - cur
            candidates = pool.get((key[idx], target), X.iloc[:0])
            if candidates.empty:
                skipped[NO_NEIGHBOUR] += 1
                continue
            cf = target_counterfactual(factual, target, candidates, classifier, schema, distance, neighbours)
            proba = None if cf is None else float(classifier.predict_proba(cf.to_frame().T)[0, target])
            if cf is None or proba < 0.5 or constraint_violations(factual, cf, schema):
                skipped[NO_VALID] += 1
                continue
            messages = build_chat(factual, cur, target, schema) + [
                {"role": "assistant", "content": render_answer(cf, schema)}]
            pairs.append({"messages": messages, "factual_id": idx.item() if hasattr(idx, "item") else idx,
                          "current": cur, "target": target, "changed": changed_features(factual, cf, schema),
                          "target_proba": round(proba, 4),
                          "group": None if groups is None else str(groups[idx])})
            bar.update(task, completed=len(pairs) if max_pairs else considered)
    stats = {"factuals_considered": considered, "pairs": len(pairs), "skipped": skipped,
             "pairs_by_target": {t: sum(p["target"] == t for p in pairs) for t in (0, 1)}}
    tr, va = _split(pairs, val_fraction, seed)
    stats.update(train_pairs=len(tr), val_pairs=len(va))
    return PairList(tr, stats), PairList(va, stats)
