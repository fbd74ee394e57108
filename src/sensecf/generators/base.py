"""The generator contract and registry: `build_generator(name, context).generate(factuals, target) -> CFResult`.

Every method is a `CFMethod` (the template of DiCE's `generate_counterfactuals` and CARLA's recourse methods):
`generate` validates the factuals, asks the method's `propose` for candidate CFs of the rows that can be
explained, and verifies every candidate with the one shared `Verifier` (change rule, constraints, classifier) —
so "valid" means the same for every method and every table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import pandas as pd

from ..cf import FAILED, INVALID, VALID, CFResult, FeatureScale, Verifier, as_target_series
from ..cf.classifier import ProbabilisticClassifier
from ..errors import ConfigError
from ..schema import Schema
from .options import MethodOptions, check_keys, scoped


@dataclass
class GeneratorContext:
    """Everything a generator may need: schema, the black-box classifier, training data, seed and raw options
    (typed per method by `build_generator`)."""

    schema: Schema
    classifier: ProbabilisticClassifier
    X_train: pd.DataFrame
    y_train: pd.Series
    seed: int = 0
    options: dict = field(default_factory=dict)


@dataclass
class Proposal:
    """What a method proposes for the factuals it was asked about (position-aligned): candidate CFs (NaN rows =
    none, with the reason), seconds per row, and method-specific columns."""

    cfs: pd.DataFrame
    reason: list[str]
    seconds: np.ndarray
    extra: pd.DataFrame = field(default_factory=pd.DataFrame)


class CFMethod:
    """Template of every counterfactual method: subclasses implement `propose`; failures never raise per row."""

    name = "method"
    #: values of the `extra` columns for rows the method was not asked about (input problems, already the target)
    extra_defaults: dict = {}

    def __init__(self, context: GeneratorContext, options: MethodOptions):
        self.ctx, self.options = context, options
        self.schema, self.clf = context.schema, context.classifier
        self.X_train = self.schema.coerce(context.X_train)
        self.y_train = pd.Series(np.asarray(context.y_train).astype(int), index=self.X_train.index)
        self.scale = FeatureScale(self.schema, self.X_train)
        self.verifier = Verifier(self.schema, self.clf)
        self.train_levels = {c: set(self.X_train[c]) for c in self.schema.categorical}

    def propose(self, factuals: pd.DataFrame, current: np.ndarray, targets: np.ndarray) -> Proposal:
        """Candidate CFs for factuals predicted `current` that should reach `targets` (all position-aligned)."""
        raise NotImplementedError

    def input_problem(self, row: pd.Series) -> str:
        """Why a factual row cannot be explained ("" when it can): missing values or unseen categories."""
        for f in self.schema.features:
            v = row[f.name]
            if f.is_categorical:
                if str(v) not in self.train_levels[f.name]:
                    return f"category {v!r} of {f.name} not seen in training"
            elif np.isnan(float(v)):
                return f"missing value in {f.name}"
            elif not np.isfinite(float(v)):
                return f"non-finite value in {f.name}"
        return ""

    def generate(self, factuals: pd.DataFrame, target) -> CFResult:
        """One CF per factual row: validate, propose, verify (see the module docstring)."""
        facts = self.schema.coerce(factuals)
        targets = as_target_series(target, facts.index)
        n, idx = len(facts), facts.index
        reason = [self.input_problem(facts.iloc[i]) for i in range(n)]
        ok = np.array([not r for r in reason], dtype=bool)
        current = np.full(n, -1)
        if ok.any():
            current[ok] = self.clf.predict(facts[ok])
        for i in np.flatnonzero(ok & (current == targets.to_numpy())):
            reason[i], ok[i] = f"target {int(targets.iloc[i])} equals the current prediction", False
        cfs = pd.DataFrame(np.nan, index=idx, columns=self.schema.feature_names, dtype=object)
        status = pd.Series(FAILED, index=idx, dtype=object)
        proba = pd.Series(np.nan, index=idx, dtype=float)
        seconds = pd.Series(0.0, index=idx, dtype=float)
        extra = pd.DataFrame({k: [v] * n for k, v in self.extra_defaults.items()}, index=idx)
        todo = np.flatnonzero(ok)
        if len(todo):
            t0 = time.perf_counter()
            prop = self.propose(facts.iloc[todo], current[todo], targets.to_numpy()[todo])
            has = prop.cfs[self.schema.feature_names].notna().any(axis=1).to_numpy()
            rows = todo[has]
            for i, r in zip(todo, prop.reason):
                reason[i] = r
            seconds.iloc[todo] = prop.seconds
            if not prop.extra.empty:
                for col in prop.extra.columns:
                    if col not in extra:
                        extra[col] = pd.Series([None] * n, index=idx, dtype=object)
                    extra[col] = extra[col].astype(object)
                    extra.iloc[todo, extra.columns.get_loc(col)] = prop.extra[col].to_numpy()
            if len(rows):
                t1 = time.perf_counter()
                verdicts = self.verifier.check(facts.iloc[rows], prop.cfs.iloc[np.flatnonzero(has)],
                                               targets.to_numpy()[rows])
                share = (time.perf_counter() - t1) / len(rows)
                cfs.iloc[rows] = verdicts.cfs[self.schema.feature_names].to_numpy(dtype=object)
                proba.iloc[rows] = verdicts.proba
                status.iloc[rows] = np.where(verdicts.valid, VALID, INVALID)
                for i, problems in zip(rows, verdicts.problems):
                    reason[i] = "; ".join(problems)
                    seconds.iloc[i] += share
            if not np.any(prop.seconds):  # a method that does not time its rows: share the batch's time
                seconds.iloc[todo] = (time.perf_counter() - t0) / len(todo)
        for c in self.schema.continuous:
            cfs[c] = pd.to_numeric(cfs[c], errors="coerce")
        extra = extra.infer_objects() if not extra.empty else pd.DataFrame()
        return CFResult(self.name, facts, targets, cfs, status, pd.Series(reason, index=idx, dtype=object), proba,
                        seconds, extra=extra)


# ---- registry --------------------------------------------------------------------------------------------
GeneratorFactory = Callable[[GeneratorContext, MethodOptions], CFMethod]


@dataclass(frozen=True)
class MethodEntry:
    """A registered method: its factory, option family and a one-line description."""

    factory: GeneratorFactory
    options: type[MethodOptions]
    description: str = ""


_REGISTRY: dict[str, MethodEntry] = {}


def register(name: str, factory: GeneratorFactory, options: type[MethodOptions], description: str = "") -> None:
    """Register a method under a name (a factory `f(context, typed options) -> CFMethod`)."""
    _REGISTRY[name] = MethodEntry(factory, options, description)


ACTIONABLE = "@actionable"


def _registry() -> dict[str, MethodEntry]:
    from . import baselines, calibration  # noqa: F401  (importing the method modules registers the built-ins)
    from .llm import generator  # noqa: F401
    return _REGISTRY


def base_method(name: str) -> str:
    """The registered method behind a name: `nice-sparsity@actionable` -> `nice-sparsity`."""
    return name[:-len(ACTIONABLE)] if name.endswith(ACTIONABLE) else name


def scope_chain(name: str) -> list[str]:
    """The option scopes a method reads, general first: `llm-fine-tuned+calibrated@actionable` reads
    `llm-fine-tuned.*`, then `llm-fine-tuned+calibrated.*`, then its own."""
    chain = [name]
    while True:
        head = base_method(chain[0]) if chain[0].endswith(ACTIONABLE) else chain[0].rpartition("+")[0]
        if not head:
            return chain
        chain.insert(0, head)


def available_methods() -> list[str]:
    """Names of every registered counterfactual method (each also runs as `NAME@actionable`: with every feature
    of low or no actionability held fixed)."""
    return sorted(_registry())


def check_methods(methods) -> list[str]:
    """The method names, or a ConfigError naming the unknown ones and listing the available ones."""
    methods = list(methods)
    unknown = [m for m in methods if base_method(m) not in _registry()]
    if unknown:
        what = f"method {unknown[0]!r}" if len(unknown) == 1 else f"methods {unknown}"
        raise ConfigError(f"unknown counterfactual {what}; available: {', '.join(available_methods())}")
    return methods


def method_options(name: str, options: dict | None) -> MethodOptions:
    """The typed options `name` runs with (all keys checked against every family first; `METHOD.key` applies
    to METHOD and METHOD@actionable)."""
    registry = _registry()
    check_methods([name])
    families = {m: e.options for m, e in registry.items()}
    families.update({m + ACTIONABLE: e for m, e in families.items()})
    check_keys(options, families)
    values: dict = {}
    for scope in scope_chain(name):
        values.update(scoped(scope, options))
    return registry[base_method(name)].options.from_mapping(values, name)


def build_generator(name: str, context: GeneratorContext) -> CFMethod:
    """Instantiate a registered method by name with its typed options (from context.options). `NAME@actionable`
    runs NAME with the features of low or no actionability held fixed (immutable)."""
    opts = method_options(name, context.options)
    ctx = replace(context, options=dict(context.options or {}))
    if name != base_method(name):
        ctx = replace(ctx, schema=context.schema.with_fixed(
            [f.name for f in context.schema.features if not f.actionable]))
    gen = _registry()[base_method(name)].factory(ctx, opts)
    gen.name = name
    return gen
