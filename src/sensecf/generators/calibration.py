"""`<llm method>+calibrated`: the LLM proposes, the classifier decides how far.

Every answer the LLM gave for a factual (all sampled candidates, valid or not) is a proposed direction; the
black-box search (cf/search.py) turns each into the smallest valid CF along that direction, prunes the features
the flip does not need, and keeps, per factual, the CF that changes only actionable features first, then the one
of lowest actionability-weighted cost. A proposal's actionable-only restriction is tried beside it. When no
proposal of a factual flips, the proposals are combined (their union), and then the LLM is asked again
(`widen_rounds` more sampled rounds) before the row fails with its reason.

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

from ..cf.search import Direction, DirectionSearch, best_per_row, union_direction
from .base import CFMethod, GeneratorContext, Proposal, register
from .llm.generator import MODES, LLMGenerator, llm_from_options
from .options import LLMOptions, option

SUFFIX = "+calibrated"


@dataclass(frozen=True)
class CalibrationOptions(LLMOptions):
    """An LLM method's options plus the calibration step's."""

    margin: float = option(0.0, "calibration: the CF must reach p(target) >= 0.5 + margin")
    widen_rounds: int = option(1, "calibration: extra sampled LLM rounds for factuals no proposal could flip")
    widen_temperature: float = option(1.0, "calibration: sampling temperature of the extra rounds")

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.margin < 0.5 or self.widen_rounds < 0 or self.widen_temperature <= 0:
            from ..errors import ConfigError

            raise ConfigError(f"calibration needs 0 <= margin < 0.5, widen_rounds >= 0 and widen_temperature > 0 "
                              f"(got {self.margin}, {self.widen_rounds}, {self.widen_temperature})")


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
                out.append(d)
                actionable = self.search.restrict(d, self.schema.actionable)
                if not self.search.is_empty(actionable) and not (np.array_equal(actionable.delta, d.delta)
                                                                 and actionable.cats == d.cats):
                    out.append(replace(actionable, source=f"proposal {k + 1}, actionable features only"))
        return out

    def propose(self, factuals: pd.DataFrame, current: np.ndarray, targets: np.ndarray) -> Proposal:
        n = len(factuals)
        first = self.inner.propose(factuals, current, targets)
        rows = list(self.inner.last_rows)
        llm_seconds = first.seconds.copy()
        llm_calls = np.array([r.rounds * self.inner.candidates for r in rows])
        t1 = time.perf_counter()
        found = self.search.run(factuals, targets, self._directions(factuals, rows, range(n)))
        best = best_per_row(found, n)
        calls = np.bincount([f.row for f in found], weights=[f.calls for f in found], minlength=n).astype(int)
        # widen: the union of a factual's proposals, then more sampled LLM rounds
        missing = [i for i in range(n) if best[i] is None]
        union = [u for i in missing
                 if (u := union_direction([d for d in self._directions(factuals, [rows[i]], [i])])) is not None]
        if union:
            more = self.search.run(factuals, targets, union)
            for f in more:
                calls[f.row] += f.calls
            for i, f in enumerate(best_per_row(more, n)):
                best[i] = best[i] or f
        search_seconds = time.perf_counter() - t1
        for round_ in range(self.options.widen_rounds):
            missing = [i for i in range(n) if best[i] is None]
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
            dirs += [u for i in missing if (u := union_direction(self._directions(factuals, [rows[i]], [i])))]
            more = self.search.run(factuals, targets, dirs)
            for f in more:
                calls[f.row] += f.calls
            for i, f in enumerate(best_per_row(more, n)):
                best[i] = best[i] or f
            search_seconds += time.perf_counter() - t3
        cfs = pd.DataFrame(np.nan, index=factuals.index, columns=self.schema.feature_names, dtype=object)
        reason = [""] * n
        for i, f in enumerate(best):
            if f is not None:
                cfs.iloc[i] = f.cf[self.schema.feature_names].to_numpy(dtype=object)
            elif not rows[i].proposals:
                reason[i] = f"no usable LLM proposal ({rows[i].reason or 'no answer'})"
            else:
                reason[i] = (f"no proposed direction reaches the target within the feasible range "
                             f"({len(rows[i].proposals)} proposal(s) tried)")
        extra = pd.DataFrame({
            "proposal": [describe_change(factuals.iloc[i], r.proposals[0], self.schema) if r.proposals else ""
                         for i, r in enumerate(rows)],
            "calibrated_from": [f.source if f is not None else "" for f in best],
            "llm_calls": llm_calls, "classifier_calls": calls}, index=factuals.index)
        seconds = llm_seconds + search_seconds / max(n, 1)
        searched = np.array([bool(r.proposals) for r in rows])  # without a proposal there was nothing to search
        return Proposal(cfs, reason, seconds, extra, searched=searched)

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
