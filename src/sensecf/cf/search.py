"""Black-box search along proposed directions: the classifier decides how far (only predict_proba is used).

A direction is a proposed change of a factual (e.g. an LLM's answer): numeric deltas plus categorical switches.
For every (factual, direction) pair, vectorised over all pairs (one predict_proba call per search step):
1. clean: immutable features and components against the allowed direction (towards the pair's target) are
   dropped; numeric values stay inside the feasible box (clinical bounds ∩ training range, so every point is
   plausible) and are rounded as displayed (integers whole);
2. magnitude: the point x + s·d is scored at s = 1 (the proposal) and at the box edge; the smallest flipping s is
   found by bisection between the factual (s = 0) and the smallest flipping s seen (up and down from the proposal);
3. pruning: changed features are reverted one at a time (least actionable and largest changes first) while the
   prediction stays at the target (with the margin);
4. a last bisection on the pruned direction.
A pair that does not flip even at the box edge fails. `best_per_row` picks, per factual, the flipped point that
changes only actionable features first, then the lowest actionability-weighted cost, then the fewest changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ..schema import Schema
from .blocking import NEAREST, constraints_for, project
from .constraints import changed_mask
from .distance import FeatureScale

BISECTION_STEPS = 14
NEIGHBOURS = 5
SLOPE_STEP = 0.01  # central-difference step, share of each feature's training width


@dataclass
class Direction:
    """A proposed change of factual `row` (position in the factual table): numeric deltas in the order of
    schema.continuous (0 = unchanged), categorical switches {feature: level}, and where it came from."""

    row: int
    delta: np.ndarray
    cats: dict = field(default_factory=dict)
    source: str = ""


@dataclass
class Found:
    """The search's result for one pair: the CF row (or None), p(target), and how it was found."""

    row: int
    cf: pd.Series | None
    proba: float
    source: str
    calls: int
    actionable_only: bool = False
    cost: float = np.inf
    n_changed: int = 0


class DirectionSearch:
    """Vectorised magnitude search and pruning along directions (module docstring)."""

    def __init__(self, schema: Schema, classifier, X_train: pd.DataFrame, margin: float = 0.0,
                 steps: int = BISECTION_STEPS):
        self.schema, self.clf, self.margin, self.steps = schema, classifier, float(margin), steps
        self.X_train, self._pools = X_train, None
        self.scale = FeatureScale(schema, X_train)
        self.num = schema.continuous
        lo = np.array([self.scale.ranges[c][0] for c in self.num], dtype=float)
        hi = np.array([self.scale.ranges[c][1] for c in self.num], dtype=float)
        for j, c in enumerate(self.num):
            b_lo, b_hi = schema[c].bounds
            lo[j] = lo[j] if b_lo is None else max(lo[j], b_lo)
            hi[j] = hi[j] if b_hi is None else min(hi[j], b_hi)
        self.lo, self.hi = lo, hi
        self.weight = np.array([schema[c].weight for c in self.num], dtype=float)
        self.mutable = np.array([not schema[c].immutable for c in self.num], dtype=bool)
        self.actionable = np.array([schema[c].actionable for c in self.num], dtype=bool)

    # ---- directions ----------------------------------------------------------------------------------
    def direction_from(self, row: int, factual: pd.Series, proposal: pd.Series, source: str = "") -> Direction:
        """The change from `factual` to `proposal` as a Direction (unchanged features, by the change rule, are 0)."""
        changed = changed_mask(factual.to_frame().T, proposal.to_frame().T, self.schema).iloc[0]
        delta = np.array([float(proposal[c]) - float(factual[c]) if changed[c] else 0.0 for c in self.num])
        cats = {c: str(proposal[c]) for c in self.schema.categorical if changed[c]}
        return Direction(row, np.nan_to_num(delta, nan=0.0, posinf=0.0, neginf=0.0), cats, source)

    def clean(self, d: Direction, target: int) -> Direction:
        """Drop immutable changes and components against the allowed direction towards `target`."""
        delta = np.where(self.mutable, d.delta, 0.0)
        for j, c in enumerate(self.num):
            way = self.schema[c].allowed_direction(target, self.schema.desired_class)
            if (way == "increase" and delta[j] < 0) or (way == "decrease" and delta[j] > 0):
                delta[j] = 0.0
        cats = {c: v for c, v in d.cats.items() if not self.schema[c].immutable and v in self.schema[c].levels}
        return Direction(d.row, delta, cats, d.source)

    def restrict(self, d: Direction, features) -> Direction:
        """The direction with only `features` changed."""
        keep = np.array([c in features for c in self.num])
        return Direction(d.row, np.where(keep, d.delta, 0.0), {c: v for c, v in d.cats.items() if c in features},
                         d.source)

    def with_actionable_part(self, d: Direction, label: str = "actionable features only") -> list[Direction]:
        """`d`, and its actionable-only restriction when that is a different, non-empty direction."""
        act = self.restrict(d, self.schema.actionable)
        if self.is_empty(act) or (np.array_equal(act.delta, d.delta) and act.cats == d.cats):
            return [d]
        return [d, replace(act, source=f"{d.source}, {label}")]

    @staticmethod
    def is_empty(d: Direction) -> bool:
        return not np.any(d.delta) and not d.cats

    # ---- directions the classifier suggests -------------------------------------------------------------
    def actionable_edges(self, factuals: pd.DataFrame, targets) -> tuple[list[Direction], np.ndarray]:
        """Per factual: its actionable numeric features moved to an allowed edge of the feasible box, each alone
        (every allowed side) and all together (each on the side that raises p(target) more), as directions; and
        whether any of these points reaches the target (two predict_proba calls in all)."""
        targets = np.asarray(targets, dtype=int)
        n = len(factuals)
        act = np.flatnonzero(self.actionable)
        base = factuals[self.num].to_numpy(dtype=float)
        moves = []  # (row, feature index, new value)
        for i in range(n):
            for j in act:
                way = self.schema[self.num[j]].allowed_direction(targets[i], self.schema.desired_class)
                edges = {"increase": [self.hi[j]], "decrease": [self.lo[j]]}.get(way, [self.hi[j], self.lo[j]])
                moves += [(i, j, e) for e in edges if e != base[i, j]]
        if not moves:
            return [], np.zeros(n, dtype=bool)
        values = base[[m[0] for m in moves]].copy()
        for k, (_, j, value) in enumerate(moves):
            values[k, j] = value
        frame = self._frame(factuals.iloc[[m[0] for m in moves]], values, [{}] * len(moves))
        flips, pt = self._flips(frame, targets[[m[0] for m in moves]])
        feasible = np.zeros(n, dtype=bool)
        together, best = base.copy(), {}
        out = []
        for (i, j, value), f, p in zip(moves, flips, pt):
            feasible[i] |= f
            out.append(Direction(i, np.where(np.arange(len(self.num)) == j, value - base[i, j], 0.0), {},
                                 f"{self.num[j]} to the edge of its feasible range"))
            if p > best.get((i, j), -1.0):
                best[(i, j)], together[i, j] = p, value
        feasible |= self._flips(self._frame(factuals, together, [{}] * n), targets)[0]
        out += [Direction(i, together[i] - base[i], {}, "all actionable features to their edges")
                for i in range(n) if np.any(together[i] != base[i])]
        return out, feasible

    def neighbour_directions(self, factuals: pd.DataFrame, targets, positions, k: int = NEIGHBOURS
                             ) -> list[Direction]:
        """Towards training rows the classifier predicts as each listed factual's target, projected onto the
        factual's constraints (cf/blocking.py): of its NEAREST nearest such rows, the `k` nearest whose projection
        keeps the target (else the `k` nearest projections); and each direction's actionable-only part. One
        predict_proba call for all factuals."""
        if self._pools is None:  # the training rows by predicted class, once per search
            pred = np.asarray(self.clf.predict(self.X_train))
            self._pools = {c: self.X_train[pred == c] for c in (0, 1)}
        targets = np.asarray(targets, dtype=int)
        plans = []
        for pos in positions:
            pool = self._pools[int(targets[pos])]
            x = factuals.iloc[pos]
            near = pool.iloc[np.argsort(self.scale.pairwise(factuals.iloc[[pos]], pool)[0], kind="stable")[:NEAREST]]
            plans.append((pos, x, project(near, x, constraints_for(self.schema, int(targets[pos])))))
        if not any(len(p) for _, _, p in plans):
            return []
        frames = pd.concat([p for _, _, p in plans], ignore_index=True)
        keeps = np.split(np.asarray(self.clf.predict(frames)), np.cumsum([len(p) for _, _, p in plans])[:-1])
        out = []
        for (pos, x, projected), label in zip(plans, keeps):
            flips = label == targets[pos]
            chosen = projected[flips].iloc[:k] if flips.any() else projected.iloc[:k]
            for rank, (_, r) in enumerate(chosen.iterrows(), start=1):
                d = Direction(pos, r[self.num].to_numpy(dtype=float) - x[self.num].to_numpy(dtype=float),
                              {c: str(r[c]) for c in self.schema.categorical if str(r[c]) != str(x[c])},
                              f"target-class training row {rank}")
                if not self.is_empty(d):
                    out += self.with_actionable_part(d)
        return out

    def reweighted(self, factuals: pd.DataFrame, targets, found: list[Found],
                   also: dict[int, np.ndarray] | None = None) -> list[Direction]:
        """For each flipped result: the cheapest direction over its moved numeric features and those `also`
        allows for its factual (position -> mask over schema.continuous, e.g. every feature the LLM proposed for
        it), by the classifier's local slope at the CF (central differences of p(target), one predict_proba call):
        Δ_j ∝ slope_j · width_j² / weight_j² (the minimiser of the weighted L2 cost on a locally linear
        boundary); a moved feature whose slope points against the CF's own step is dropped; scaled so the
        linearised change of p(target) equals the CF's. Only actionable features join an actionable-only CF;
        results with fewer than two free features are skipped."""
        targets = np.asarray(targets, dtype=int)
        done = [f for f in found if f.cf is not None]
        if not done:
            return []
        base = factuals.iloc[[f.row for f in done]][self.num].to_numpy(dtype=float)
        point = np.vstack([f.cf[self.num].to_numpy(dtype=float) for f in done])
        moved = point != base
        joins = np.zeros_like(moved)
        for i, f in enumerate(done):  # an actionable-only CF stays one
            joins[i] = (also or {}).get(f.row, joins[i]) & (self.actionable if f.actionable_only else True)
        free = (moved | joins) & self.mutable
        keep = free.sum(axis=1) >= 2
        if not keep.any():
            return []
        done, base, point = [f for f, k in zip(done, keep) if k], base[keep], point[keep]
        moved, free = moved[keep], free[keep]
        h = SLOPE_STEP * self.scale.width
        probes, owners = [], []
        for i, f in enumerate(done):
            for j in np.flatnonzero(free[i]):
                for sign in (1.0, -1.0):
                    v = point[i].copy()
                    v[j] += sign * h[j]
                    probes.append(v)
                    owners.append((i, j, sign))
        cats = [{c: f.cf[c] for c in self.schema.categorical} for f in done]
        frame = self._frame(factuals.iloc[[done[i].row for i, _, _ in owners]], np.vstack(probes),
                            [cats[i] for i, _, _ in owners])
        pt = self.clf.predict_proba(frame)[np.arange(len(owners)), targets[[done[i].row for i, _, _ in owners]]]
        slope = np.zeros_like(point)
        for (i, j, sign), p in zip(owners, pt):
            slope[i, j] += sign * p / (2 * h[j])
        step = point - base
        agrees = np.where(moved, np.sign(slope) == np.sign(step), True)
        raw = np.where(free & agrees, slope * self.scale.width ** 2 / self.weight ** 2, 0.0)
        out = []
        for i, f in enumerate(done):
            gain = float(slope[i] @ raw[i])
            if gain <= 0 or np.count_nonzero(raw[i]) == 0:
                continue
            delta = raw[i] * float(slope[i] @ step[i]) / gain
            switched = {c: str(f.cf[c]) for c in self.schema.categorical
                        if str(f.cf[c]) != str(factuals.iloc[f.row][c])}
            out.append(Direction(f.row, delta, switched, f"{f.source}, reweighted by the classifier's slope"))
        return out

    # ---- points and scores ------------------------------------------------------------------------------
    def _round(self, values: np.ndarray) -> np.ndarray:
        out = values.copy()
        for j, c in enumerate(self.num):
            f = self.schema[c]
            out[:, j] = np.round(out[:, j]) if f.kind == "integer" else np.round(out[:, j], f.precision)
        return out

    def _points(self, base: np.ndarray, delta: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Numeric values of x + s·d inside the box (components that move), rounded as displayed."""
        moved = delta != 0
        raw = base + s[:, None] * delta
        inside = np.clip(raw, np.minimum(self.lo, base), np.maximum(self.hi, base))
        return np.where(moved, self._round(inside), base)

    def _frame(self, facts: pd.DataFrame, values: np.ndarray, cats: list[dict]) -> pd.DataFrame:
        out = facts.copy().reset_index(drop=True)
        out[self.num] = values
        for i, switches in enumerate(cats):
            for c, v in switches.items():
                out.loc[i, c] = v
        return out

    def _flips(self, frame: pd.DataFrame, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = self.clf.predict_proba(frame)
        pt = p[np.arange(len(p)), targets]
        return (p.argmax(axis=1) == targets) & (pt >= 0.5 + self.margin), pt

    # ---- the search -------------------------------------------------------------------------------------
    def run(self, factuals: pd.DataFrame, targets, directions: list[Direction]) -> list[Found]:
        """Search every direction (module docstring); one Found per direction, in order."""
        if not directions:
            return []
        targets = np.asarray(targets, dtype=int)
        dirs = [self.clean(d, targets[d.row]) for d in directions]
        k = len(dirs)
        facts = factuals.iloc[[d.row for d in dirs]]
        tgt = targets[[d.row for d in dirs]]
        base = facts[self.num].to_numpy(dtype=float)
        delta = np.vstack([d.delta for d in dirs]) if self.num else np.zeros((k, 0))
        cats = [d.cats for d in dirs]
        calls = np.zeros(k, dtype=int)
        live = np.array([not self.is_empty(d) for d in dirs])

        def score(values, mask, switches=None):
            """Scores the points of the pairs in `mask` (with `switches`, default the pairs' current ones)."""
            switches = cats if switches is None else switches
            idx = np.flatnonzero(mask)
            flips, pt = np.zeros(k, dtype=bool), np.full(k, np.nan)
            if len(idx):
                f, p = self._flips(self._frame(facts.iloc[idx], values[idx], [switches[i] for i in idx]), tgt[idx])
                flips[idx], pt[idx] = f, p
                calls[idx] += 1
            return flips, pt

        # magnitude: s = 1 (the proposal) and the box edge
        with np.errstate(divide="ignore", invalid="ignore"):
            to_edge = np.where(delta > 0, (np.maximum(self.hi, base) - base) / delta,
                               np.where(delta < 0, (np.minimum(self.lo, base) - base) / delta, 0.0))
        s_edge = np.maximum(np.nan_to_num(to_edge, nan=0.0, posinf=0.0).max(axis=1, initial=0.0), 1.0)
        at_one, _ = score(self._points(base, delta, np.ones(k)), live)
        at_edge, _ = score(self._points(base, delta, s_edge), live & ~at_one)
        ok = live & (at_one | at_edge)
        hi = np.where(at_one, 1.0, s_edge)
        hi = self._bisect(base, delta, hi, ok, score)
        # pruning: revert changed features one at a time while the flip holds
        point = self._points(base, delta, hi)
        order = self._prune_order(base, point, cats)
        for step in range(max((len(o) for o in order), default=0)):
            trial, trial_cats = point.copy(), [dict(c) for c in cats]
            mask = ok.copy()
            for i in range(k):
                if not ok[i] or step >= len(order[i]) or self._n_changed(base[i], point[i], cats[i]) <= 1:
                    mask[i] = False
                    continue
                name = order[i][step]
                if name in trial_cats[i]:
                    del trial_cats[i][name]
                else:
                    trial[i, self.num.index(name)] = base[i, self.num.index(name)]
            flips, _ = score(trial, mask, trial_cats) if mask.any() else (np.zeros(k, bool), None)
            if flips.any():
                keep = flips & mask
                point[keep] = trial[keep]
                for i in np.flatnonzero(keep):
                    cats[i] = trial_cats[i]
        # a last bisection on the pruned direction
        delta = np.where(ok[:, None], point - base, 0.0)
        s_final = self._bisect(base, delta, np.ones(k), ok, score)
        point = self._points(base, delta, s_final)
        final_frame = self._frame(facts, point, cats)
        flips, pt = self._flips(final_frame, tgt) if k else (np.zeros(0, bool), np.zeros(0))
        calls += ok
        out = []
        for i in range(k):
            cf = final_frame.iloc[i].rename(factuals.index[dirs[i].row]) if ok[i] and flips[i] else None
            out.append(Found(dirs[i].row, cf, float(pt[i]), dirs[i].source, int(calls[i])))
        self._describe(factuals, out)
        return out

    def _bisect(self, base, delta, hi, ok, score) -> np.ndarray:
        lo = np.zeros(len(hi))
        hi = hi.copy()
        for _ in range(self.steps):
            mid = (lo + hi) / 2
            same = np.all(self._points(base, delta, mid) == self._points(base, delta, hi), axis=1)
            active = ok & ~same
            if not active.any():
                break
            flips, _ = score(self._points(base, delta, mid), active)
            hi = np.where(active & flips, mid, hi)
            lo = np.where(active & ~flips, mid, lo)
        return hi

    def _n_changed(self, base_row, point_row, cats) -> int:
        return int(np.sum(point_row != base_row)) + len(cats)

    def _prune_order(self, base, point, cats) -> list[list[str]]:
        """Per pair: changed features, least actionable (highest weight) and largest normalised change first."""
        orders = []
        for i in range(len(base)):
            size = np.abs(point[i] - base[i]) / self.scale.width
            items = [(self.weight[j] * size[j], self.num[j]) for j in np.flatnonzero(point[i] != base[i])]
            items += [(self.schema[c].weight, c) for c in cats[i]]
            orders.append([name for _, name in sorted(items, reverse=True)])
        return orders

    def _describe(self, factuals: pd.DataFrame, found: list[Found]) -> None:
        done = [f for f in found if f.cf is not None]
        if not done:
            return
        facts = factuals.iloc[[f.row for f in done]]
        cfs = pd.DataFrame([f.cf for f in done])[self.schema.feature_names]
        changed = changed_mask(facts, cfs, self.schema).to_numpy()
        actionable = np.array([self.schema[c].actionable for c in self.schema.feature_names])
        cost = self.scale.cost(facts, cfs)
        for f, ch, c in zip(done, changed, cost):
            f.actionable_only, f.cost, f.n_changed = bool(not (ch & ~actionable).any()), float(c), int(ch.sum())


def best_per_row(found: list[Found], n_rows: int) -> list[Found | None]:
    """Per factual position: the flipped result changing only actionable features first, then the lowest cost,
    then the fewest changes (None when no direction of that factual flipped)."""
    best: list[Found | None] = [None] * n_rows
    for f in found:
        if f.cf is None:
            continue
        key = (not f.actionable_only, f.cost, f.n_changed)
        cur = best[f.row]
        if cur is None or key < (not cur.actionable_only, cur.cost, cur.n_changed):
            best[f.row] = f
    return best


def union_direction(directions: list[Direction]) -> Direction | None:
    """One direction combining several of the same factual: per feature the largest proposed (normalised by
    magnitude) change; None for no directions."""
    if not directions:
        return None
    stack = np.vstack([d.delta for d in directions])
    pick = np.abs(stack).argmax(axis=0)
    delta = stack[pick, np.arange(stack.shape[1])]
    cats: dict = {}
    for d in directions:
        cats.update({c: v for c, v in d.cats.items() if c not in cats})
    return Direction(directions[0].row, delta, cats, "union of proposals")


def actionable_feasible(factuals: pd.DataFrame, targets, schema: Schema, classifier, X_train: pd.DataFrame,
                        margin: float = 0.0) -> np.ndarray:
    """Per factual: whether an actionable-only CF exists within the feasible box (DirectionSearch.actionable_edges:
    some actionable numeric feature alone, or all of them together, moved to an allowed edge reaches the target).
    A property of the factual and the classifier, the same for every method."""
    return DirectionSearch(schema, classifier, X_train, margin=margin).actionable_edges(factuals, targets)[1]
