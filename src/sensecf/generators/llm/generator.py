"""LLM counterfactuals: prompt (zero-/few-shot or fine-tuned), parse, verify with the classifier and the
constraints, and send failures back to the model with feedback for a few repair rounds.

A repair turn is the base chat + the model's last answer + a short user message saying what failed (parse
problem, prediction not flipped with the current probability of the target, constraint violations) and what
to do (change more of the mutable features, keep the fixed ones). Only the latest exchange is kept, so the
prompt stays short for small models.

By default an answer without <new> tags is still read (parse_answer(require_tag=False)); such rows are marked
in the `untagged` extra column, and option require_tag=true makes the tags mandatory.

The prompt style (prompt.py: "paper" = Fig. 4 prompt and whole-instance answer, "compact" = short prompt and
changes-only answer) is option prompt_style; llm-fine-tuned defaults to the style its adapter was trained
with (recorded in the adapter's card.json), the others to "paper". Option candidates (answers drawn per
factual and round; > 1 samples at temperature 0.7 and keeps the valid answer closest to the factual) defaults
to 1 for "paper" and to COMPACT_CANDIDATES for "compact".
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ...backends.base import Chat, SamplingSettings, TextBackend
from ...backends.openai_backend import server_options
from ...errors import ConfigError
from ...paths import default_adapter_dir
from ...schema import Schema
from ..base import FAILED, INVALID, VALID, CFResult, GeneratorContext, as_target_series, register
from ..constraints import constraint_violations
from .parse import ParseResult, parse_answer
from .prompt import STYLES, build_chat, nearest_examples, normalised_distance

MODES = ("zero-shot", "few-shot", "fine-tuned")
FIRST_TRY, REPAIRED, GIVEN_UP, SKIPPED = "first_try", "repaired", "given_up", "skipped"
RAW_TEXT_CHARS = 600
COMPACT_CANDIDATES = 4


@dataclass
class _Row:
    """Per-factual state of the verify-and-repair loop."""

    factual: pd.Series
    current: int
    target: int
    base: Chat
    chat: Chat
    rounds: int = 0
    parse_failures: int = 0
    backend_errors: int = 0
    raw_text: str = ""
    untagged: bool = False
    outcome: str = ""
    cf: pd.Series | None = None
    proba: float = math.nan
    problems: list[str] = field(default_factory=list)
    reason: str = ""
    seconds: float = 0.0


@dataclass
class _Candidate:
    text: str
    parsed: ParseResult
    proba: float = math.nan
    problems: list[str] = field(default_factory=list)
    distance: float = math.inf

    @property
    def valid(self) -> bool:
        return self.parsed.ok and not self.problems


class LLMGenerator:
    """Counterfactuals from a TextBackend with verify-and-repair (see the module docstring)."""

    def __init__(self, context: GeneratorContext, backend: TextBackend, mode: str = "zero-shot", k: int = 3,
                 repair_rounds: int = 2, candidates: int = 1, temperature: float = 0.0, batch_size: int = 8,
                 max_new_tokens: int | None = None, require_tag: bool = False, progress: bool = True,
                 style: str = "paper"):
        if mode not in MODES:
            raise ConfigError(f"LLM mode must be one of {', '.join(MODES)}, got {mode!r}")
        if style not in STYLES:
            raise ConfigError(f"option prompt_style must be one of {', '.join(STYLES)}, got {style!r}")
        if k < 1 or repair_rounds < 0 or candidates < 1 or batch_size < 1:
            raise ConfigError(f"need k >= 1, repair_rounds >= 0, candidates >= 1, batch_size >= 1 (got k={k}, "
                              f"repair_rounds={repair_rounds}, candidates={candidates}, batch_size={batch_size})")
        if candidates > 1 and temperature <= 0:
            raise ConfigError(f"candidates={candidates} needs sampling: set temperature > 0 (e.g. 0.7)")
        self.ctx, self.schema, self.clf, self.backend = context, context.schema, context.classifier, backend
        self.mode, self.k, self.repair_rounds, self.style = mode, k, repair_rounds, style
        self.candidates, self.temperature, self.batch_size = candidates, temperature, batch_size
        self.name = f"llm-{mode}"
        # Each answer line is ~10 tokens; the tags and slack add a few dozen.
        # A compact (changes-only) answer rarely lists more than a few features.
        lines = len(self.schema.features) if style == "paper" else min(len(self.schema.features), 6)
        self.max_new_tokens = int(max_new_tokens or 32 + 14 * lines)
        self.require_tag, self.progress = require_tag, progress
        self.X_train = self._clean(context.X_train)
        self.y_train = pd.Series(np.asarray(context.y_train).astype(int), index=self.X_train.index)
        self.ranges = {c: (float(self.X_train[c].min()), float(self.X_train[c].max())) for c in self.schema.continuous}

    # --- helpers -----------------------------------------------------------------------------------
    def _clean(self, df: pd.DataFrame) -> pd.DataFrame:
        out = df[self.schema.feature_names].copy()
        for f in self.schema.features:
            out[f.name] = out[f.name].astype(str) if f.is_categorical else pd.to_numeric(out[f.name], errors="coerce")
        return out

    def chat_for(self, factual: pd.Series, current: int, target: int) -> Chat:
        """The first-round chat of one factual for this generator's mode."""
        examples = None
        if self.mode == "few-shot":
            examples = nearest_examples(factual, self.X_train, self.y_train, target, self.schema, self.k)
        return build_chat(factual, current, target, self.schema, examples, style=self.style)

    def _label(self, y: int) -> str:
        return self.schema.label_names.get(int(y), f"class {int(y)}")

    def feedback(self, row: _Row, cand: _Candidate) -> str:
        """The repair message for a failed candidate."""
        fixed = [f.label for f in self.schema.features if f.immutable]
        mutable = [f.label for f in self.schema.features if not f.immutable]
        keep = f" Keep {', '.join(fixed)} fixed." if fixed else ""
        fmt = (f" Answer again with all {len(self.schema.features)} features, one \"- Feature: value\" line each, "
               "between <new> and </new>." if self.style == "paper" else
               " Answer again with only the changes, one \"- Feature: +change\" or \"- Feature: -change\" line each, "
               "between <new> and </new>.")
        tgt = self._label(row.target)
        if not cand.parsed.ok:
            if cand.parsed.reason == "copied the factual unchanged":
                return (f"You returned the instance unchanged, so the label is still \"{self._label(row.current)}\". "
                        f"Change some of {', '.join(mutable)} so that the label becomes \"{tgt}\".{keep}{fmt}")
            return f"Your answer could not be read: {cand.parsed.reason}.{fmt}"
        parts = []
        if cand.problems and cand.problems[0].startswith("prediction did not flip"):
            parts.append(f"the classifier still predicts \"{self._label(row.current)}\" (probability of \"{tgt}\": "
                         f"{cand.proba:.2f}); change the features that may change ({', '.join(mutable)}) more")
        parts += [p for p in cand.problems if not p.startswith("prediction did not flip")]
        return f"The modified instance is not accepted: {'; '.join(parts)}.{keep}{fmt}"

    def _verify(self, row: _Row, cands: list[_Candidate]) -> None:
        parsed = [c for c in cands if c.parsed.ok]
        if not parsed:
            return
        frame = pd.DataFrame([c.parsed.row for c in parsed])[self.schema.feature_names]
        frame = self._clean(frame)
        proba = self.clf.predict_proba(frame)
        dist = normalised_distance(row.factual, frame, self.schema, self.ranges)
        for c, p, d, (_, cf) in zip(parsed, proba, dist, frame.iterrows()):
            c.parsed.row, c.proba, c.distance = cf, float(p[row.target]), float(d)
            c.problems = constraint_violations(row.factual, cf, self.schema, self.ranges)
            if int(np.argmax(p)) != row.target:
                c.problems.insert(0, f"prediction did not flip (p(target) = {c.proba:.3f})")

    def _handle(self, row: _Row, out, final: bool) -> None:
        """Record one round's answers for a row: done, or a feedback turn for the next round."""
        row.rounds += 1
        if isinstance(out, Exception):
            row.backend_errors += 1
            if row.cf is None:  # an earlier invalid CF keeps its own reason
                row.reason = f"backend error: {str(out).splitlines()[0] if str(out) else type(out).__name__}"[:300]
            return  # retried next round with the same chat
        cands = [_Candidate(t, parse_answer(t, self.schema, row.factual, self.require_tag,
                                                   partial=self.style == "compact")) for t in out]
        row.parse_failures += sum(not c.parsed.ok for c in cands)
        self._verify(row, cands)
        valid = [c for c in cands if c.valid]
        if valid:
            best = min(valid, key=lambda c: c.distance)
            row.outcome = FIRST_TRY if row.rounds == 1 else REPAIRED
            row.cf, row.proba, row.problems, row.reason, row.raw_text = best.parsed.row, best.proba, [], "", best.text
            row.untagged = not best.parsed.tagged
            return
        parsed = [c for c in cands if c.parsed.ok]
        # feedback on the most promising answer: fewest problems, then highest target probability
        best = min(parsed, key=lambda c: (len(c.problems), -c.proba)) if parsed else cands[0]
        row.raw_text = best.text
        if parsed:
            row.cf, row.proba, row.problems = best.parsed.row, best.proba, best.problems
            row.untagged = not best.parsed.tagged
            row.reason = "; ".join(best.problems)
        else:
            row.reason = best.parsed.reason
        if not final:
            row.chat = row.base + [{"role": "assistant", "content": best.text},
                                   {"role": "user", "content": self.feedback(row, best)}]

    # --- the protocol --------------------------------------------------------------------------------
    def generate(self, factuals: pd.DataFrame, target) -> CFResult:
        """One CF per factual; failures and repairs are recorded per row (never raised)."""
        facts = self._clean(factuals)
        targets = as_target_series(target, facts.index)
        n = len(facts)
        rows: list[_Row | None] = [None] * n
        skipped: dict[int, str] = {}
        ok = ~facts[self.schema.continuous].isna().any(axis=1).to_numpy() if self.schema.continuous else np.ones(n, bool)
        current = np.full(n, -1)
        if ok.any():
            current[ok] = self.clf.predict(facts[ok])
        for i in range(n):
            fact, tgt = facts.iloc[i], int(targets.iloc[i])
            if not ok[i]:
                skipped[i] = f"missing value in {fact[self.schema.continuous].isna().idxmax()}"
            elif current[i] == tgt:
                skipped[i] = f"target {tgt} equals the current prediction"
            else:
                chat = self.chat_for(fact, int(current[i]), tgt)
                rows[i] = _Row(fact, int(current[i]), tgt, chat, chat)
        self._loop([r for r in rows if r is not None])
        return self._result(facts, targets, rows, skipped)

    def _loop(self, rows: list[_Row]) -> None:
        cols = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*cols, disable=not self.progress or not rows, transient=True) as bar:
            for rnd in range(self.repair_rounds + 1):
                pending = [r for r in rows if not r.outcome]
                if not pending:
                    break
                task = bar.add_task(f"{self.name} round {rnd + 1}", total=len(pending))
                settings = SamplingSettings(max_new_tokens=self.max_new_tokens, temperature=self.temperature,
                                            n=self.candidates, seed=self.ctx.seed + 1000 * rnd)
                final = rnd == self.repair_rounds
                for b in range(0, len(pending), self.batch_size):
                    batch = pending[b:b + self.batch_size]
                    t0 = time.perf_counter()
                    try:
                        outs = self.backend.generate([r.chat for r in batch], settings)
                        if len(outs) != len(batch):
                            raise RuntimeError(f"backend returned {len(outs)} results for {len(batch)} prompts")
                    except Exception as exc:  # a backend breaking its contract fails this batch, not the run
                        outs = [exc] * len(batch)
                    for r, out in zip(batch, outs):
                        self._handle(r, out, final)
                    share = (time.perf_counter() - t0) / len(batch)
                    for r in batch:
                        r.seconds += share
                    bar.advance(task, len(batch))
        for r in rows:
            r.outcome = r.outcome or GIVEN_UP

    def _result(self, facts: pd.DataFrame, targets: pd.Series, rows: list[_Row | None],
                skipped: dict[int, str]) -> CFResult:
        idx = facts.index
        cfs = pd.DataFrame(np.nan, index=idx, columns=self.schema.feature_names, dtype=object)
        status = pd.Series(FAILED, index=idx, dtype=object)
        reason = pd.Series("", index=idx, dtype=object)
        proba = pd.Series(np.nan, index=idx, dtype=float)
        seconds = pd.Series(0.0, index=idx, dtype=float)
        extra = pd.DataFrame({"outcome": SKIPPED, "rounds": 0, "parse_failures": 0, "backend_errors": 0,
                              "untagged": False, "raw_text": ""}, index=idx)
        for i, r in enumerate(rows):
            if r is None:
                reason.iloc[i] = skipped[i]
                continue
            if r.cf is not None:
                cfs.iloc[i] = r.cf[self.schema.feature_names].to_numpy(dtype=object)
                proba.iloc[i] = r.proba
                status.iloc[i] = VALID if r.outcome != GIVEN_UP else INVALID
            reason.iloc[i] = "" if r.outcome != GIVEN_UP else r.reason
            seconds.iloc[i] = r.seconds
            extra.iloc[i] = [r.outcome, r.rounds, r.parse_failures, r.backend_errors, r.untagged,
                             r.raw_text[:RAW_TEXT_CHARS]]
        for c in self.schema.continuous:
            cfs[c] = pd.to_numeric(cfs[c], errors="coerce")
        return CFResult(self.name, facts, targets, cfs, status, reason, proba, seconds, extra=extra)


# --- narratives ------------------------------------------------------------------------------------------
_NUM = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?")


def _view_numbers(view: dict) -> list[float]:
    vals = []
    for text in [*view["factual"].values(), *view["counterfactual"].values()]:
        vals += [float(x) for x in _NUM.findall(str(text))]
    for c in view["changes"]:
        vals += [abs(c["change"])] if c.get("change") is not None else []
        vals += [abs(c["percent"])] if c.get("percent") is not None else []
    probs = [*view["proba_before"], *view["proba_after"]]
    return vals + probs + [100 * p for p in probs] + [0.0, 1.0, 2.0, 100.0]


def narrative_chat(view: dict, schema: Schema) -> Chat:
    """Chat asking for a three-line Table II narrative built only from the view's numbers."""
    changes = "\n".join(f"- {c['label']}: {c['from']} -> {c['to']}" + (f" {c['unit']}" if c["unit"] else "")
                        for c in view["changes"]) or "- none"
    b, a = view["class_before"], view["class_after"]
    user = (f"A model predicts \"{view['label_before']}\" for a patient (probability "
            f"{view['proba_before'][b]:.2f}). A counterfactual changes:\n{changes}\n"
            f"After the changes the model predicts \"{view['label_after']}\" (probability "
            f"{view['proba_after'][a]:.2f}). Fixed: {', '.join(view['fixed']) or 'none'}.\n"
            "Write exactly three short lines for a clinician, using only the numbers above:\n"
            "Condition: ...\nSuggested changes: ...\nWhy: ...")
    return [{"role": "system", "content": "You are a clinician who explains model-based recommendations "
             "briefly and faithfully."}, {"role": "user", "content": user}]


def llm_narrative(view: dict, schema: Schema, backend: TextBackend, max_new_tokens: int = 160) -> str | None:
    """An LLM-written Condition / Suggested changes / Why narrative for an intervention view, or None when the
    backend fails, the three lines are missing, or the text states a number that is not in the view."""
    out = backend.generate([narrative_chat(view, schema)], SamplingSettings(max_new_tokens=max_new_tokens))[0]
    if isinstance(out, Exception) or not out or not out[0].strip():
        return None
    text = out[0].strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    heads = ("condition:", "suggested changes:", "why:")
    picked = [next((ln for ln in lines if ln.lower().lstrip("*- ").startswith(h)), None) for h in heads]
    if any(p is None for p in picked):
        return None
    allowed = _view_numbers(view)
    for p in picked:
        for x in _NUM.findall(p):
            v = abs(float(x))
            if not any(math.isclose(v, a, rel_tol=0.02, abs_tol=0.011) for a in allowed):
                return None
    return "\n".join(p.lstrip("*- ") for p in picked)


# --- registry ----------------------------------------------------------------------------------------------
_BACKENDS: dict[tuple, TextBackend] = {}


def cached_backend(spec: str = "embedded", **kwargs) -> TextBackend:
    """make_backend(spec, **kwargs), built once per distinct (spec, settings) in this process."""
    from ...backends.registry import make_backend

    key = (spec, tuple(sorted((k, str(v)) for k, v in kwargs.items())))
    if key not in _BACKENDS:
        _BACKENDS[key] = make_backend(spec, **kwargs)
    return _BACKENDS[key]


def default_adapter() -> Path:
    """The adapter saved by the last default `sensecf finetune`; ConfigError when there is none."""
    adapter = default_adapter_dir()
    if not (adapter / "adapter_config.json").is_file():
        raise ConfigError(f"no fine-tuned adapter at {adapter}: run `sensecf finetune` first "
                          "(or pass --option adapter=PATH)")
    return adapter


def adapter_prompt_style(adapter: str | Path) -> str:
    """The prompt style an adapter was trained with (its card.json config), "paper" when it has no card."""
    card = Path(adapter) / "card.json"
    if not card.is_file():
        return "paper"
    return json.loads(card.read_text()).get("config", {}).get("prompt_style", "paper")


def _opt(options: dict, key: str, kind, default):
    value = options.get(key, default)
    if value is None:
        return value
    if kind is bool:
        text = str(value).strip().lower()
        if text not in ("true", "false", "1", "0", "yes", "no"):
            raise ConfigError(f"option {key}={value!r} must be true or false")
        return text in ("true", "1", "yes")
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"option {key}={value!r} must be {kind.__name__}") from None


def llm_from_context(context: GeneratorContext, mode: str) -> LLMGenerator:
    """An LLMGenerator whose backend and settings come from context.options (see the module docstring)."""
    o = context.options or {}
    spec = str(o.get("backend", "embedded"))
    # only llm-fine-tuned reads the adapter: zero- and few-shot are the base model, also when one options dict
    # serves every method (as in `sensecf run`); a model served behind an OpenAI-compatible endpoint (e.g. vLLM
    # --enable-lora) carries its adapter already
    adapter = o.get("adapter") if mode == "fine-tuned" else None
    if mode == "fine-tuned" and not adapter and not spec.startswith("openai:"):
        adapter = default_adapter()
    style = o.get("prompt_style") or (adapter_prompt_style(adapter) if mode == "fine-tuned" and adapter else "paper")
    # the compact answer is ~15 tokens: drawing several and keeping the closest valid one costs little, and a
    # CPU-fine-tuned model learns which feature to move more reliably than how far (benchmarks/results/finetune.md)
    candidates = _opt(o, "candidates", int, COMPACT_CANDIDATES if style == "compact" else 1)
    batch_size = _opt(o, "batch_size", int, 8)
    backend = cached_backend(spec, base_url=o.get("base_url"), adapter=adapter,
                             allow_remote=_opt(o, "allow_remote", bool, False), cache_dir=o.get("cache_dir"),
                             batch_size=batch_size, **server_options(spec, o))
    return LLMGenerator(context, backend, mode=mode, k=_opt(o, "k", int, 3),
                        repair_rounds=_opt(o, "repair_rounds", int, 2), candidates=candidates,
                        temperature=_opt(o, "temperature", float, 0.7 if candidates > 1 else 0.0),
                        batch_size=batch_size, max_new_tokens=_opt(o, "max_new_tokens", int, None),
                        require_tag=_opt(o, "require_tag", bool, False), style=str(style))


for _mode in MODES:  # llm-zero-shot, llm-few-shot, llm-fine-tuned
    register(f"llm-{_mode}")(partial(llm_from_context, mode=_mode))
