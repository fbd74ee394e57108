"""LLM counterfactuals: prompt (zero-/few-shot or fine-tuned), parse, verify with the shared Verifier, and send
failures back to the model with feedback for a few repair rounds.

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
to 1 for "paper" and to COMPACT_CANDIDATES for "compact". Options: generators/options.py (LLMOptions).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd

from ...backends.base import Chat, SamplingSettings, TextBackend
from ...backends.openai_backend import SERVER_OPTIONS
from ...backends.spec import parse_backend_spec
from ...console import progress_bar
from ...errors import ConfigError
from ..base import CFMethod, GeneratorContext, Proposal, register
from ..options import LLMOptions
from .parse import ParseResult, parse_answer
from .prompt import STYLES, build_chat, nearest_examples
from .resources import adapter_prompt_style, cached_backend, default_adapter

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
    reason: str = ""
    seconds: float = 0.0
    proposals: list[pd.Series] = field(default_factory=list)  # every parsed answer (for calibration)


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


class LLMGenerator(CFMethod):
    """Counterfactuals from a TextBackend with verify-and-repair (see the module docstring)."""

    extra_defaults = {"outcome": SKIPPED, "rounds": 0, "parse_failures": 0, "backend_errors": 0, "untagged": False,
                      "raw_text": ""}

    def __init__(self, context: GeneratorContext, backend: TextBackend, mode: str = "zero-shot", k: int = 3,
                 repair_rounds: int = 2, candidates: int = 1, temperature: float = 0.0, batch_size: int = 8,
                 max_new_tokens: int | None = None, require_tag: bool = False, progress: bool = True,
                 style: str = "paper"):
        if mode not in MODES:
            raise ConfigError(f"LLM mode must be one of {', '.join(MODES)}, got {mode!r}")
        if style not in STYLES:
            raise ConfigError(f"option prompt_style must be one of {', '.join(STYLES)}, got {style!r}")
        opts = LLMOptions(k=k, repair_rounds=repair_rounds, candidates=candidates, temperature=temperature,
                          batch_size=batch_size, max_new_tokens=max_new_tokens, require_tag=require_tag,
                          prompt_style=style)  # validates the settings
        super().__init__(context, opts)
        self.backend, self.mode, self.style = backend, mode, style
        self.k, self.repair_rounds, self.candidates = k, repair_rounds, candidates
        self.temperature, self.batch_size = temperature, batch_size
        self.name = f"llm-{mode}"
        # Each answer line is ~10 tokens; the tags and slack add a few dozen.
        # A compact (changes-only) answer rarely lists more than a few features.
        lines = len(self.schema.features) if style == "paper" else min(len(self.schema.features), 6)
        self.max_new_tokens = int(max_new_tokens or 32 + 14 * lines)
        self.require_tag, self.progress = require_tag, progress

    # --- helpers -----------------------------------------------------------------------------------
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
        facts = pd.DataFrame([row.factual] * len(parsed))
        verdicts = self.verifier.check(facts, frame, [row.target] * len(parsed))
        dist = self.scale.distance(facts, verdicts.cfs)
        for c, p, d, problems, (_, cf) in zip(parsed, verdicts.proba, dist, verdicts.problems,
                                              verdicts.cfs.iterrows()):
            c.parsed.row, c.proba, c.distance, c.problems = cf, float(p), float(d), problems
            row.proposals.append(cf)

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
            row.cf, row.reason, row.raw_text = best.parsed.row, "", best.text
            row.untagged = not best.parsed.tagged
            return
        parsed = [c for c in cands if c.parsed.ok]
        # feedback on the most promising answer: fewest problems, then highest target probability
        best = min(parsed, key=lambda c: (len(c.problems), -c.proba)) if parsed else cands[0]
        row.raw_text = best.text
        if parsed:
            row.cf, row.untagged, row.reason = best.parsed.row, not best.parsed.tagged, "; ".join(best.problems)
        else:
            row.reason = best.parsed.reason
        if not final:
            row.chat = row.base + [{"role": "assistant", "content": best.text},
                                   {"role": "user", "content": self.feedback(row, best)}]

    # --- the contract --------------------------------------------------------------------------------
    def propose(self, factuals: pd.DataFrame, current: np.ndarray, targets: np.ndarray) -> Proposal:
        rows = []
        for i in range(len(factuals)):
            chat = self.chat_for(factuals.iloc[i], int(current[i]), int(targets[i]))
            rows.append(_Row(factuals.iloc[i], int(current[i]), int(targets[i]), chat, chat))
        self._loop(rows)
        self.last_rows = rows  # the calibration step reads every parsed proposal from here
        cfs = pd.DataFrame(np.nan, index=factuals.index, columns=self.schema.feature_names, dtype=object)
        for i, r in enumerate(rows):
            if r.cf is not None:
                cfs.iloc[i] = r.cf[self.schema.feature_names].to_numpy(dtype=object)
        extra = pd.DataFrame({"outcome": [r.outcome for r in rows], "rounds": [r.rounds for r in rows],
                              "parse_failures": [r.parse_failures for r in rows],
                              "backend_errors": [r.backend_errors for r in rows],
                              "untagged": [r.untagged for r in rows],
                              "raw_text": [r.raw_text[:RAW_TEXT_CHARS] for r in rows]}, index=factuals.index)
        return Proposal(cfs, [r.reason for r in rows], np.array([r.seconds for r in rows]), extra)

    def _loop(self, rows: list[_Row]) -> None:
        with progress_bar(enabled=self.progress and bool(rows)) as bar:
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
                    share = (time.perf_counter() - t0) / len(batch)
                    # a cached answer counts what it cost when it was generated (backends/cache.py)
                    costs = getattr(self.backend, "last_seconds", None)
                    costs = costs if costs and len(costs) == len(batch) else [share] * len(batch)
                    t1 = time.perf_counter()
                    for r, out in zip(batch, outs):
                        self._handle(r, out, final)
                    verify = (time.perf_counter() - t1) / len(batch)
                    for r, cost in zip(batch, costs):
                        r.seconds += cost + verify
                    bar.advance(task, len(batch))
        for r in rows:
            r.outcome = r.outcome or GIVEN_UP


# --- registry ----------------------------------------------------------------------------------------------
def llm_from_options(context: GeneratorContext, options: LLMOptions, mode: str) -> LLMGenerator:
    """An LLMGenerator whose backend and settings come from typed options (see the module docstring)."""
    spec = parse_backend_spec(options.backend)
    # only llm-fine-tuned reads the adapter: zero- and few-shot are the base model, also when one options dict
    # serves every method (as in `sensecf run`); a model served behind an OpenAI-compatible endpoint (e.g. vLLM
    # --enable-lora) carries its adapter already
    adapter = options.adapter if mode == "fine-tuned" else None
    if mode == "fine-tuned" and not adapter and spec.local_model:
        adapter = str(default_adapter())
    style = options.prompt_style or (adapter_prompt_style(adapter) if mode == "fine-tuned" and adapter else "paper")
    # the compact answer is ~15 tokens: drawing several and keeping the closest valid one costs little, and a
    # CPU-fine-tuned model learns which feature to move more reliably than how far (benchmarks/results/finetune.md)
    candidates = options.candidates or (COMPACT_CANDIDATES if style == "compact" else 1)
    temperature = options.temperature if options.temperature is not None else (0.7 if candidates > 1 else 0.0)
    server = {k: getattr(options, k) for k in SERVER_OPTIONS} if spec.kind == "openai" else {}
    backend = cached_backend(options.backend, base_url=options.base_url, adapter=adapter,
                             allow_remote=options.allow_remote, cache_dir=options.cache_dir,
                             batch_size=options.batch_size, **server)
    return LLMGenerator(context, backend, mode=mode, k=options.k, repair_rounds=options.repair_rounds,
                        candidates=candidates, temperature=temperature, batch_size=options.batch_size,
                        max_new_tokens=options.max_new_tokens, require_tag=options.require_tag, style=str(style))


for _mode in MODES:  # llm-zero-shot, llm-few-shot, llm-fine-tuned
    register(f"llm-{_mode}", partial(llm_from_options, mode=_mode), LLMOptions, f"LLM, {_mode}")
