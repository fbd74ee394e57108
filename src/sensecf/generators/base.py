"""The generator protocol: generate(factuals, target) -> CFResult, plus the registry by method name."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Protocol

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..schema import Schema

VALID, INVALID, FAILED = "valid", "invalid", "failed"


@dataclass
class GeneratorContext:
    """Everything a generator may need: schema, the black-box classifier, training data and options."""

    schema: Schema
    classifier: object  # sensecf.models.Classifier: predict_proba(DataFrame) -> ndarray (n, 2)
    X_train: pd.DataFrame
    y_train: pd.Series
    seed: int = 0
    options: dict = field(default_factory=dict)


@dataclass
class CFResult:
    """One counterfactual per factual row (index aligned with the factuals).

    counterfactuals: schema feature columns; rows of failed generations are all-NaN.
    status: "valid" | "invalid" | "failed"; reason: empty when valid.
    target_proba: predicted probability of the target class for the CF (NaN when failed).
    seconds: wall time spent on the row.
    extra: optional per-row method-specific columns (e.g. LLM outcome, repair rounds).
    """

    method: str
    factuals: pd.DataFrame
    target: pd.Series
    counterfactuals: pd.DataFrame
    status: pd.Series
    reason: pd.Series
    target_proba: pd.Series
    seconds: pd.Series
    extra: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def valid_mask(self) -> pd.Series:
        return self.status == VALID

    @classmethod
    def concat(cls, method: str, parts: list["CFResult"]) -> "CFResult":
        """One result from the results of consecutive chunks of factuals."""
        cat = lambda attr: pd.concat([getattr(p, attr) for p in parts])  # noqa: E731
        extra = [p.extra for p in parts if not p.extra.empty]
        return cls(method, cat("factuals"), cat("target"), cat("counterfactuals"), cat("status"), cat("reason"),
                   cat("target_proba"), cat("seconds"), pd.concat(extra) if extra else pd.DataFrame())

    def summary(self) -> dict:
        counts = self.status.value_counts().to_dict()
        return {"method": self.method, "n": int(len(self.status)),
                **{s: int(counts.get(s, 0)) for s in (VALID, INVALID, FAILED)},
                "reasons": self.reason[self.reason != ""].value_counts().head(10).to_dict()}

    def to_frame(self) -> pd.DataFrame:
        """One table: CF feature columns + target/status/reason/target_proba/seconds (+ extra)."""
        out = self.counterfactuals.copy()
        out["target"] = self.target
        out["status"], out["reason"] = self.status, self.reason
        out["target_proba"], out["seconds"] = self.target_proba, self.seconds
        if not self.extra.empty:
            out = out.join(self.extra)
        return out


class CFGenerator(Protocol):
    """A counterfactual method. Implementations never raise per row: failures go into the result."""

    name: str

    def generate(self, factuals: pd.DataFrame, target: int | np.ndarray | pd.Series) -> CFResult: ...


GeneratorFactory = Callable[[GeneratorContext], CFGenerator]
_REGISTRY: dict[str, GeneratorFactory] = {}


def register(name: str):
    """Decorator: register a factory `f(context) -> CFGenerator` under a method name."""
    def deco(factory: GeneratorFactory) -> GeneratorFactory:
        _REGISTRY[name] = factory
        return factory
    return deco


def available_methods() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def build_generator(name: str, context: GeneratorContext) -> CFGenerator:
    """Instantiate a registered method by name; unknown names raise ConfigError listing the known ones."""
    _load_builtin()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown counterfactual method {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](replace(context, options=options_for(name, context.options)))


def options_for(method: str, options: dict | None) -> dict:
    """The options `method` sees: a key "METHOD.key" (e.g. llm-fine-tuned.backend) overrides "key" for that
    method only; keys scoped to other methods are left out. A scope that names no known method is an error."""
    _load_builtin()
    options = options or {}
    for key in options:
        scope = key.partition(".")[0] if "." in key else None
        if scope is not None and scope not in _REGISTRY:
            raise ConfigError(f"option {key!r}: {scope!r} is not a counterfactual method; available: "
                              f"{', '.join(sorted(_REGISTRY))}")
    prefix = method + "."
    return {**{k: v for k, v in options.items() if "." not in k},
            **{k[len(prefix):]: v for k, v in options.items() if k.startswith(prefix)}}


def _load_builtin() -> None:
    """Import the modules whose import registers the built-in methods."""
    import importlib

    for mod in ("sensecf.generators.baselines", "sensecf.generators.llm.generator"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:  # a module not written yet, not a missing dependency inside it
            if e.name != mod:
                raise


def as_target_series(target, index: pd.Index) -> pd.Series:
    """Broadcast an int or array target to a Series aligned with the factuals' index."""
    if np.isscalar(target):
        return pd.Series(int(target), index=index, dtype=int)
    arr = np.asarray(target).astype(int)
    if len(arr) != len(index):
        raise ConfigError(f"target has {len(arr)} entries for {len(index)} factuals")
    return pd.Series(arr, index=index, dtype=int)
