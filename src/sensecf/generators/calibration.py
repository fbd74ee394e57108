"""`<llm method>+calibrated`: the LLM proposes, the classifier decides how far.

Every answer the LLM gave for a factual (all sampled candidates, valid or not) is a proposed direction; the
black-box search (cf/search.py) turns each into the smallest valid CF along that direction, prunes the features
the flip does not need, and keeps, per factual, the CF that changes only actionable features first, then the one
of lowest actionability-weighted cost. A proposal's actionable-only restriction is tried beside it. When no
proposal of a factual flips, the proposals are combined (their union), and then the LLM is asked again
(`widen_rounds` more sampled rounds). Every CF found is searched again along the cheapest split of its change
over the features the LLM's answers for that factual proposed, by the classifier's local slope
(`reweight_rounds`): the LLM chooses the features, the classifier how much of each. Where no proposal gives an
actionable-only CF, the fallback (`fallback`, on by default) also searches the actionable features moved to their
edges and the nearest target-class training rows (projected onto the constraints); its CFs say
`proposed_by = fallback` (else `llm`), so a table can tell what the LLM found from what the search found for it.
A row fails, with its reason, only when nothing tried flips.

The plain LLM row keeps the paper's single-pass meaning; this row shows what calibration adds. Per CF it records
the raw proposal it came from, the number of LLM answers and classifier evaluations it took, and how the LLM
decoded (`decoding`, as the plain row).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import pandas as pd

from ..cf.search import Direction, DirectionSearch, Found, best_per_row, union_direction
from .base import CFMethod, GeneratorContext, Proposal, register
from .llm.generator import MODES, LLMGenerator, llm_from_options
from .options import LLMOptions, option

SUFFIX = "+calibrated"
FALLBACK = "fallback: "


@dataclass(frozen=True)
class CalibrationOptions(LLMOptions):
    """An LLM method's options plus the calibration step's."""

    margin: float = option(0.0, "calibration: the CF must reach p(target) >= 0.5 + margin")
    widen_rounds: int = option(1, "calibration: extra sampled LLM rounds for factuals no proposal could flip")
    widen_temperature: float = option(1.0, "calibration: sampling temperature of the extra rounds")
    reweight_rounds: int = option(2, "calibration: rounds that re-split a multi-feature CF's change over the same "
                                     "features by the classifier's local slope (cheapest weighted step)")
    fallback: bool = option(True, "calibration: where no LLM proposal gives an actionable-only CF, also search "
                                  "the actionable features' edges and the nearest target-class training rows "
                                  "(such CFs say proposed_by = fallback)")

    def __post_init__(self):
        super().__post_init__()
        if (not 0 <= self.margin < 0.5 or self.widen_rounds < 0 or self.widen_temperature <= 0
                or self.reweight_rounds < 0):
            from ..errors import ConfigError

            raise ConfigError(f"calibration needs 0 <= margin < 0.5, widen_rounds >= 0, widen_temperature > 0 and "
                              f"reweight_rounds >= 0 (got {self.margin}, {self.widen_rounds}, "
                              f"{self.widen_temperature}, {self.reweight_rounds})")


def describe_change(factual: pd.Series, cf: pd.Series, schema) -> str:
    """A proposal or CF as 'feature: +delta; feature: level' (display precision)."""
    from ..cf.constraints import changed_features

    parts = []
    for name in changed_features(factual, cf, schema):
        f = schema[name]
        if f.is_categorical:
            parts.append(f"{name}: {cf[name]}")
        else:
            delta = float(cf[name]) - float(factual[name])
            parts.append(f"{name}: {'+' if delta >= 0 else '-'}{f.format_value(abs(delta))}")
    return "; ".join(parts)


class CalibratedGenerator(CFMethod):
    """Calibration of an LLMGenerator's proposals (module docstring)."""

    extra_defaults = {"proposal": "", "calibrated_from": "", "llm_calls": 0, "classifier_calls": 0}

    def __init__(self, context: GeneratorContext, options: CalibrationOptions, inner: LLMGenerator):
        super().__init__(context, options)
        self.inner, self.name = inner, inner.name + SUFFIX
        self.extra_defaults = {**self.extra_defaults, "decoding": inner.decoding}
        self.search = DirectionSearch(self.schema, self.clf, self.X_train, margin=options.margin)

    def _directions(self, factuals: pd.DataFrame, rows, positions) -> list[Direction]:
        """Each distinct proposal of each row as a direction, plus its actionable-only restriction."""
        out, seen = [], set()
        for pos, row in zip(positions, rows):
            for k, proposal in enumerate(row.proposals):
                d = self.search.direction_from(pos, factuals.iloc[pos], proposal[self.schema.feature_names],
                                               f"proposal {k + 1}")
                key = (pos, d.delta.round(9).tobytes(), tuple(sorted(d.cats.items())))
                if key in seen or self.search.is_empty(d):
                    continue
                seen.add(key)
                out += self.search.with_actionable_part(d)
        return out

    def propose(self, factuals: pd.DataFrame, current: np.ndarray, targets: np.ndarray) -> Proposal:
        n = len(factuals)
        targets = np.asarray(targets, dtype=int)
        first = self.inner.propose(factuals, current, targets)
        rows = list(self.inner.last_rows)
        llm_seconds = first.seconds.copy()
        llm_calls = np.array([r.rounds * self.inner.candidates for r in rows])
        t1 = time.perf_counter()
        found = self._search(factuals, targets, self._directions(factuals, rows, range(n)))
        # widen: the union of a factual's proposals, then more sampled LLM rounds
        found += self._search(factuals, targets, self._unions(factuals, rows, self._missing(found, n)))
        search_seconds = time.perf_counter() - t1
        for round_ in range(self.options.widen_rounds):
            missing = self._missing(found, n)
            if not missing:
                break
            t2 = time.perf_counter()
            extra = self._sample_again(factuals.iloc[missing], current[missing], targets[missing], round_)
            llm_calls[missing] += [r.rounds * self.inner.candidates for r in extra]
            llm_seconds[missing] += (time.perf_counter() - t2) / len(missing)
            for pos, r in zip(missing, extra):
                rows[pos].proposals.extend(r.proposals)
            t3 = time.perf_counter()
            dirs = self._directions(factuals, [rows[i] for i in missing], missing)
            found += self._search(factuals, targets, dirs + self._unions(factuals, rows, missing))
            search_seconds += time.perf_counter() - t3
        t4 = time.perf_counter()
        if self.options.fallback:
            best = best_per_row(found, n)
            needed = [i for i in range(n) if best[i] is None or not best[i].actionable_only]
            found += self._search(factuals, targets, self._fallback_directions(factuals, targets, needed))
        search_seconds += time.perf_counter() - t4
        best = best_per_row(found, n)
        calls = np.bincount([f.row for f in found], weights=[f.calls for f in found], minlength=n).astype(int)
        cfs = pd.DataFrame(np.nan, index=factuals.index, columns=self.schema.feature_names, dtype=object)
        reason = [""] * n
        for i, f in enumerate(best):
            if f is not None:
                cfs.iloc[i] = f.cf[self.schema.feature_names].to_numpy(dtype=object)
            elif not rows[i].proposals and not self.options.fallback:
                reason[i] = f"no usable LLM proposal ({rows[i].reason or 'no answer'})"
            else:
                tried = f"{len(rows[i].proposals)} proposal(s)" + (" and the fallback" if self.options.fallback else "")
                reason[i] = f"no direction tried reaches the target within the feasible range ({tried} tried)"
        extra = pd.DataFrame({
            "proposal": [describe_change(factuals.iloc[i], r.proposals[0], self.schema) if r.proposals else ""
                         for i, r in enumerate(rows)],
            "calibrated_from": [f.source if f is not None else "" for f in best],
            "proposed_by": [("" if f is None else "fallback" if f.source.startswith(FALLBACK) else "llm")
                            for f in best],
            "llm_calls": llm_calls, "classifier_calls": calls}, index=factuals.index)
        seconds = llm_seconds + search_seconds / max(n, 1)
        # without a proposal (and without the fallback) there was nothing to search
        searched = np.array([bool(r.proposals) or self.options.fallback for r in rows])
        return Proposal(cfs, reason, seconds, extra, searched=searched)

    def _search(self, factuals, targets, directions: list[Direction]) -> list[Found]:
        """The search along `directions`, then `reweight_rounds` rounds along the classifier-weighted
        directions (DirectionSearch.reweighted) of what flipped, over the features any of these directions
        proposed for its factual."""
        found = self.search.run(factuals, targets, directions)
        proposed: dict[int, np.ndarray] = {}  # per factual: every numeric feature some direction moved
        for d in directions:
            proposed[d.row] = proposed.get(d.row, np.zeros(len(d.delta), bool)) | (d.delta != 0)
        last = found
        for _ in range(self.options.reweight_rounds):
            last = self.search.run(factuals, targets, self.search.reweighted(factuals, targets, last, proposed))
            for f in last:
                f.calls += 1  # the slope probes: one batched predict_proba call
            found += last
        return found

    @staticmethod
    def _missing(found: list[Found], n: int) -> list[int]:
        best = best_per_row(found, n)
        return [i for i in range(n) if best[i] is None]

    def _unions(self, factuals, rows, positions) -> list[Direction]:
        return [u for i in positions
                if (u := union_direction(self._directions(factuals, [rows[i]], [i]))) is not None]

    def _fallback_directions(self, factuals, targets, positions: list[int]) -> list[Direction]:
        """For factuals without an actionable-only CF from the LLM's proposals: the actionable features to their
        edges (alone and together) and the nearest target-class training rows (and their actionable parts)."""
        if not positions:
            return []
        edges, _ = self.search.actionable_edges(factuals.iloc[positions], targets[positions])
        dirs = [replace(d, row=positions[d.row]) for d in edges]
        dirs += self.search.neighbour_directions(factuals, targets, positions)
        return [replace(d, source=f"{FALLBACK}{d.source}") for d in dirs]

    def _sample_again(self, factuals, current, targets, round_: int):
        """A further sampled round of the inner LLM (its own settings, another seed, widen_temperature)."""
        inner = self.inner
        saved = (inner.temperature, inner.candidates, inner.ctx.seed)
        inner.temperature = self.options.widen_temperature
        inner.candidates = max(inner.candidates, 2)
        inner.ctx = replace(inner.ctx, seed=inner.ctx.seed + 7919 * (round_ + 1))
        try:
            inner.propose(factuals, current, targets)
            return list(inner.last_rows)
        finally:
            inner.temperature, inner.candidates = saved[0], saved[1]
            inner.ctx = replace(inner.ctx, seed=saved[2])


def calibrated_from_options(context: GeneratorContext, options: CalibrationOptions, mode: str) -> CalibratedGenerator:
    """`llm-<mode>+calibrated`: the LLM method built from the same options, wrapped in the calibration step."""
    llm_keys = {f for f in LLMOptions.keys()}
    inner = llm_from_options(context, LLMOptions(**{k: getattr(options, k) for k in llm_keys}), mode)
    inner.progress = False
    return CalibratedGenerator(context, options, inner)


for _mode in MODES:
    register(f"llm-{_mode}{SUFFIX}", partial(calibrated_from_options, mode=_mode), CalibrationOptions,
             f"LLM, {_mode}, calibrated by the classifier")
