"""Constrained decoding (the answer grammar, xgrammar) vs plain decoding of the embedded model, first tries only.

    python benchmarks/bench_constrained.py [--data synthetic] [--n 20] [--seed 0] [--runs zero-paper,...]

For --n test rows per predicted class (target = the other class), each run generates once without and once
with the grammar (option constrained), repair_rounds=0: llm-zero-shot and llm-few-shot in the paper style,
llm-zero-shot in the compact style (4 sampled answers, as llm-fine-tuned draws them), and llm-fine-tuned with the
default adapter (~/.cache/sensecf/adapters/default; skipped with a note when absent). Per run: answers, the share
that fails to parse (with the reasons), first-try validity, seconds and tokens per answer, the share of answers
that ran to max_new_tokens. Every answer is recorded at the backend, so the figures count all sampled answers.
Writes benchmarks/results/constrained.json and constrained.md after each run.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from sensecf.backends.threads import configure_torch_threads
from sensecf.cli.options import split_from_options
from sensecf.generators.base import GeneratorContext, build_generator
from sensecf.generators.llm.parse import parse_answer
from sensecf.generators.llm.resources import adapter_card
from sensecf.models.classifiers import train_classifier
from sensecf.paths import default_adapter_dir
from sensecf.provenance import package_versions

RESULTS = Path(__file__).parent / "results"
RUNS = {  # name -> (method, options)
    "zero-paper": ("llm-zero-shot", {"prompt_style": "paper"}),
    "few-paper": ("llm-few-shot", {"prompt_style": "paper"}),
    "zero-compact": ("llm-zero-shot", {"prompt_style": "compact"}),
    "fine-tuned": ("llm-fine-tuned", {}),
}


class Recorder:
    """Wraps a backend: every (chat, answers) pair it returns, and the wall and CPU seconds it took (on a shared
    machine the CPU seconds of this one-thread process are the steadier figure)."""

    def __init__(self, inner):
        self.inner, self.answers, self.seconds, self.cpu_seconds = inner, {}, 0.0, 0.0

    def generate(self, chats, settings, grammars=None):
        t0, c0 = time.perf_counter(), time.process_time()
        out = self.inner.generate(chats, settings, grammars=grammars)
        self.seconds += time.perf_counter() - t0
        self.cpu_seconds += time.process_time() - c0
        for chat, texts in zip(chats, out):
            if not isinstance(texts, Exception):
                self.answers[id(chat)] = texts
        return out


def measure(gen, factuals: pd.DataFrame, targets: pd.Series) -> dict:
    """One first-try run of `gen` with every answer recorded and parsed again for its reason."""
    recorder = Recorder(gen.backend)
    gen.backend = recorder
    result = gen.generate(factuals, targets)
    gen.backend = recorder.inner
    tokenizer = recorder.inner.tokenizer
    reasons, tokens, answers = Counter(), [], 0
    for row in gen.last_rows:
        for text in recorder.answers.get(id(row.chat), []):
            answers += 1
            tokens.append(len(tokenizer(text, add_special_tokens=False)["input_ids"]))
            parsed = parse_answer(text, gen.schema, row.factual, gen.require_tag, partial=gen.style == "compact")
            reasons[parsed.reason or "ok"] += 1
    failed = answers - reasons["ok"]
    outcomes = result.extra["outcome"]
    return {"style": gen.style, "constrained": gen.constrained, "candidates": gen.candidates,
            "temperature": gen.temperature, "max_new_tokens": gen.max_new_tokens, "factuals": len(factuals),
            "answers": answers, "parse_failure_rate": failed / max(answers, 1),
            "unreadable_rate": (failed - reasons["copied the factual unchanged"]) / max(answers, 1),
            "first_try_validity": float((outcomes == "first_try").mean()),
            "seconds_per_answer": recorder.seconds / max(answers, 1),
            "seconds_per_factual": recorder.seconds / max(len(factuals), 1),
            "cpu_seconds_per_answer": recorder.cpu_seconds / max(answers, 1),
            "cpu_seconds_per_factual": recorder.cpu_seconds / max(len(factuals), 1),
            "tokens_per_answer": float(np.mean(tokens)) if tokens else None,
            "hit_token_budget": float(np.mean([t >= gen.max_new_tokens - 1 for t in tokens])) if tokens else None,
            "reasons": {k: v for k, v in reasons.most_common() if k != "ok"}}


def _markdown(report: dict) -> str:
    lines = [f"# Constrained decoding: parse failures and time (embedded model, {report['dataset']}, "
             f"{report['n_per_class']}/class, first tries, seed {report['seed']})", "",
             f"Timings: one torch thread on a shared machine ({report['cpu_count']} cores shared with other work); "
             "CPU seconds are the steadier figure.", "",
             "| run | method | style | constrained | answers | parse failures | unreadable | first-try valid | "
             "CPU s / answer | wall s / answer | tokens / answer | ran to budget |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, r in report["runs"].items():
        lines.append(f"| {key} | {r['method']} | {r['style']} | {'yes' if r['constrained'] else 'no'} | "
                     f"{r['answers']} | "
                     f"{r['parse_failure_rate']:.1%} | {r['unreadable_rate']:.1%} | {r['first_try_validity']:.2f} | "
                     f"{r['cpu_seconds_per_answer']:.2f} | {r['seconds_per_answer']:.2f} | "
                     f"{r['tokens_per_answer']:.0f} | {r['hit_token_budget']:.0%} |")
    lines += ["", "CPU seconds per factual, plain -> constrained (wall seconds in brackets):"]
    for name, saved in report["time_saved"].items():
        lines.append(f"- {name}: {saved['plain']:.1f} s -> {saved['constrained']:.1f} s ({saved['saved_share']:.0%} "
                     f"saved; wall {saved['wall_plain']:.1f} s -> {saved['wall_constrained']:.1f} s)")
    lines += ["", "Parse failure reasons (all answers):"]
    for key, r in report["runs"].items():
        lines.append(f"- {key}: " + ("; ".join(f"{k[:70]} ×{v}" for k, v in r["reasons"].items()) or "none"))
    lines += ["", "Notes:", *[f"- {note}" for note in report["notes"]]] if report["notes"] else []
    return "\n".join(lines) + "\n"


def _save(report: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "constrained.json").write_text(json.dumps(report, indent=2, default=str))
    (RESULTS / "constrained.md").write_text(_markdown(report))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="synthetic")
    ap.add_argument("--schema", default=None)
    ap.add_argument("--n", type=int, default=20, help="test rows per predicted class")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated subset of {', '.join(RUNS)}")
    args = ap.parse_args(argv)
    configure_torch_threads()
    train, test = split_from_options(args.data, args.schema, args.seed)
    clf = train_classifier("nn", train.X, train.y, train.schema, args.seed)
    pred = pd.Series(clf.predict(test.X), index=test.X.index)
    rng = np.random.default_rng(args.seed)
    picked = [idx for c in (0, 1) for idx in rng.permutation(pred.index[pred == c])[:args.n]]
    factuals, targets = test.X.loc[picked], 1 - pred.loc[picked]
    report = {"data": args.data, "dataset": train.name, "n_per_class": args.n, "seed": args.seed,
              "cpu_count": os.cpu_count(), "versions": package_versions(), "runs": {}, "time_saved": {}, "notes": []}
    adapter = default_adapter_dir()
    for name in args.runs.split(","):
        method, extra = RUNS[name]
        if method == "llm-fine-tuned":
            if not (adapter / "adapter_config.json").is_file():
                report["notes"].append(f"{name}: skipped, no default adapter at {adapter} (run `sensecf finetune`)")
                _save(report)
                continue
            extra = {"adapter": str(adapter)}
            report["adapter_card"] = adapter_card(adapter).get("config", {})
        for constrained in (False, True):
            options = {"repair_rounds": 0, "constrained": constrained, **extra}
            gen = build_generator(method, GeneratorContext(train.schema, clf, train.X, train.y, seed=args.seed,
                                                           options=options))
            gen.progress = False
            key = f"{name}, {'grammar' if constrained else 'plain'}"
            report["runs"][key] = {"method": method, **measure(gen, factuals, targets)}
            print(key, {k: v for k, v in report["runs"][key].items() if k != "reasons"}, flush=True)
            _save(report)
        plain, grammar = (report["runs"][f"{name}, {k}"] for k in ("plain", "grammar"))
        report["time_saved"][name] = {
            "plain": plain["cpu_seconds_per_factual"], "constrained": grammar["cpu_seconds_per_factual"],
            "saved_share": 1 - grammar["cpu_seconds_per_factual"] / plain["cpu_seconds_per_factual"],
            "wall_plain": plain["seconds_per_factual"], "wall_constrained": grammar["seconds_per_factual"]}
        _save(report)
    return report


if __name__ == "__main__":
    print(_markdown(main()))
