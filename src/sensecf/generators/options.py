"""Typed options per method family (modelled on PEFT's config dataclasses and scikit-learn's set_params).

Options arrive as a mapping (CLI `--option key=value`, a study config's `options:`). A key applies to every
method whose family knows it; `METHOD.key` (e.g. `llm-fine-tuned.backend`) overrides `key` for that method only.
A key that no family knows, or a scoped key its method's family does not know, is a ConfigError naming the valid
keys. Every setting has its one default here.
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass, field, fields
from typing import Literal, Optional

from ..errors import ConfigError

_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def option(default, help: str, **kwargs):
    """A dataclass field with its help text (shown in errors and docs)."""
    return field(default=default, metadata={"help": help, **kwargs})


@dataclass(frozen=True)
class MethodOptions:
    """Base of the option families: typed fields, coercion from text, unknown keys rejected."""

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def help(cls) -> dict[str, str]:
        """{key: help text} of every option."""
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}

    @classmethod
    def from_mapping(cls, values: dict, method: str = "") -> "MethodOptions":
        """The options of `values` this family knows (others are ignored: they belong to other families), each
        coerced to its field's type; ConfigError names the key and the expected type."""
        hints = typing.get_type_hints(cls)
        kwargs = {k: _coerce(k, v, hints[k], method) for k, v in values.items() if k in hints}
        try:
            return cls(**kwargs)
        except ConfigError as e:
            raise ConfigError(f"{method or cls.__name__}: {e}") from None


def _coerce(key: str, value, kind, method: str):
    where = f"option {key}={value!r}" + (f" ({method})" if method else "")
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.strip().lower() in ("null", "none", "")):
            return None
        kind = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where} must be one of {', '.join(map(str, args))}")
        return value
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text not in _TRUE + _FALSE:
            raise ConfigError(f"{where} must be true or false")
        return text in _TRUE
    if kind is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ConfigError(f"{where} must be a whole number")
        try:
            return int(str(value).strip()) if isinstance(value, str) else int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be a whole number") from None
    if kind is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where} must be a number")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be a number") from None
    if kind is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{where} must be text")
        return str(value)
    raise TypeError(f"unsupported option type {kind!r} for {key}")


def _positive(opts, *names) -> None:
    for name in names:
        v = getattr(opts, name)
        if v is not None and v <= 0:
            raise ConfigError(f"option {name} must be positive, got {v}")


@dataclass(frozen=True)
class DiceOptions(MethodOptions):
    """DiCE (dice-random, dice-genetic, dice-kdtree)."""

    dice_total_cfs: int = option(1, "counterfactuals DiCE generates per factual (the closest valid one is kept)")
    dice_sample_size: int = option(1000, "dice-random: random samples per factual")
    dice_max_iterations: int = option(100, "dice-genetic: generations of the genetic search")

    def __post_init__(self):
        _positive(self, "dice_total_cfs", "dice_sample_size", "dice_max_iterations")


@dataclass(frozen=True)
class CfnowOptions(MethodOptions):
    """CFNOW (cfnow-greedy, cfnow-random)."""

    cfnow_time_limit: float = option(10.0, "seconds of search per factual (the package default is 120)")
    cfnow_it_max: int = option(1000, "search iterations per factual")

    def __post_init__(self):
        _positive(self, "cfnow_time_limit", "cfnow_it_max")


@dataclass(frozen=True)
class NiceOptions(MethodOptions):
    """NICE (nice-sparsity, nice-proximity, nice-plausibility)."""

    nice_justified: bool = option(True, "nearest unlike neighbours only among correctly classified training rows")


@dataclass(frozen=True)
class LLMOptions(MethodOptions):
    """LLM generators (llm-zero-shot, llm-few-shot, llm-fine-tuned); see docs/backends.md."""

    backend: str = option("embedded", "embedded | embedded:gemma | hf:PATH | openai:MODEL")
    base_url: Optional[str] = option(None, "base URL of an OpenAI-compatible server")
    allow_remote: bool = option(False, "allow sending patient rows to a non-loopback server")
    timeout: float = option(60.0, "OpenAI-compatible server: wall-clock seconds a request may take in all")
    batch_timeout: Optional[float] = option(None, "OpenAI-compatible server: seconds one batch of requests may take")
    max_retries: int = option(4, "OpenAI-compatible server: retries of a failed request")
    concurrency: int = option(4, "OpenAI-compatible server: requests in flight at once")
    trust_env: bool = option(False, "OpenAI-compatible server: honour proxy variables (each proxy is checked too)")
    api_key_env: Optional[str] = option(None, "environment variable holding the API key (a loopback server gets a "
                                              "key only when this is given)")
    adapter: Optional[str] = option(None, "llm-fine-tuned: PEFT adapter folder (default: the default adapter)")
    prompt_style: Optional[Literal["paper", "compact"]] = option(
        None, "paper (Fig. 4 prompt, whole instance) | compact (signed changes); default: paper, llm-fine-tuned: "
              "its adapter's style")
    candidates: Optional[int] = option(None, "answers drawn per factual and round (default 1 for paper, 4 for "
                                             "compact); > 1 samples and keeps the closest valid one")
    temperature: Optional[float] = option(None, "sampling temperature (default 0 = greedy; 0.7 with candidates > 1)")
    repair_rounds: int = option(2, "feedback rounds after a failed first answer")
    k: int = option(3, "llm-few-shot: examples (nearest training rows of the target class)")
    batch_size: int = option(8, "prompts per backend call")
    max_new_tokens: Optional[int] = option(None, "answer budget in tokens (default: by prompt style)")
    require_tag: bool = option(False, "reject answers without <new> tags")
    cache_dir: Optional[str] = option(None, "folder of the completion cache (sqlite)")

    def __post_init__(self):
        _positive(self, "timeout", "batch_timeout", "concurrency", "candidates", "k", "batch_size", "max_new_tokens")
        if self.max_retries < 0 or self.repair_rounds < 0:
            raise ConfigError(f"options max_retries and repair_rounds must be >= 0, got {self.max_retries}, "
                              f"{self.repair_rounds}")
        if self.temperature is not None and self.temperature < 0:
            raise ConfigError(f"option temperature must be >= 0, got {self.temperature}")
        if (self.candidates or 1) > 1 and self.temperature == 0:
            raise ConfigError(f"candidates={self.candidates} needs sampling: set temperature > 0 (e.g. 0.7)")


FAMILIES: tuple[type[MethodOptions], ...] = (DiceOptions, CfnowOptions, NiceOptions, LLMOptions)


def scoped(method: str, options: dict | None) -> dict:
    """The raw options `method` sees: unscoped keys, overridden by `METHOD.key` keys of that method."""
    options = options or {}
    prefix = method + "."
    return {**{k: v for k, v in options.items() if "." not in k},
            **{k[len(prefix):]: v for k, v in options.items() if k.startswith(prefix)}}


def check_keys(options: dict | None, families: dict[str, type[MethodOptions]]) -> None:
    """ConfigError for a key no family knows, or a scoped key its method (a key of `families`) does not know."""
    known = sorted({k for fam in set(families.values()) for k in fam.keys()})
    for key in options or {}:
        scope, dot, name = key.rpartition(".")
        if not dot:
            if key not in known:
                raise ConfigError(f"unknown option {key!r}{_close(key, known)}; valid options: {', '.join(known)}")
            continue
        if scope not in families:
            raise ConfigError(f"option {key!r}: {scope!r} is not a counterfactual method{_close(scope, families)}; "
                              f"available: {', '.join(sorted(families))}")
        valid = families[scope].keys()
        if name not in valid:
            raise ConfigError(f"option {key!r}: {scope} has no option {name!r}{_close(name, valid)}; its options: "
                              f"{', '.join(valid)}")


def _close(word: str, choices) -> str:
    hit = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {hit[0]!r}?)" if hit else ""
