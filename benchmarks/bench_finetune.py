"""Fine-tuning on CPU: wall time, peak memory, steps/s and loss, then first-try validity/sparsity of the
zero-shot vs the fine-tuned embedded model.

    python benchmarks/bench_finetune.py [--data synthetic] [--config FILE] [--max-steps N] [--n 20] [--seed 0]
                                        [--candidates 4] [--skip-compare]

Trains with the CPU settings of resources/finetune_default.yaml (overridden by --config / --max-steps) into the
default adapter folder (~/.cache/sensecf/adapters/default, so `llm-fine-tuned` uses it afterwards; a rerun with
the same data and settings reuses it). Then, for --n test rows per predicted class, first tries only
(repair_rounds=0): llm-zero-shot (greedy), llm-fine-tuned greedy, and llm-fine-tuned drawing --candidates
sampled answers (temperature 0.7; 4 is its default in the compact style) of which the verifier keeps the
closest valid one; scored with
sensecf.metrics.per_class_metrics. Writes benchmarks/results/finetune.json and finetune.md after each stage.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from sensecf.backends.threads import configure_torch_threads
from sensecf.cli.options import split_from_options
from sensecf.finetune.config import FinetuneConfig
from sensecf.finetune.train import finetune
from sensecf.paths import default_adapter_dir
from sensecf.generators.base import GeneratorContext, build_generator
from sensecf.metrics import per_class_metrics
from sensecf.models.classifiers import train_classifier

RESULTS = Path(__file__).parent / "results"
CARD_KEYS = ("base_model", "data_hash", "steps", "wall_seconds", "seconds_per_step", "peak_rss_mb",
             "train_loss_first", "train_loss_last", "eval_loss", "max_length_used", "threads", "device", "adapter_mb")


def _markdown(report: dict) -> str:
    t = report["training"]
    lines = ["# Fine-tuning benchmark (CPU)", "",
             f"Data {report['data']} (seed {report['seed']}); pairs {t['pairs']['train_pairs']} train / "
             f"{t['pairs']['val_pairs_used']} validation; {t['steps']} steps of batch {report['config']['batch_size']} "
             f"in {t['wall_seconds']} s ({t['steps_per_second']:.3f} steps/s, {t['threads']} thread(s)); "
             f"peak RSS {t['peak_rss_mb']} MB; train loss {t['train_loss_first']:.3f} -> {t['train_loss_last']:.3f}, "
             f"eval loss {t['eval_loss']}.", ""]
    if report.get("compare"):
        lines += ["| method | class | n | first-try validity | sparsity | distance | plausibility |",
                  "|---|---|---|---|---|---|---|"]
        for method, per_class in report["compare"].items():
            for cls, m in per_class.items():
                lines.append(f"| {method} | {cls} | {m['n']} | {m['validity']:.2f} | {m['sparsity']:.2f} | "
                             f"{m['distance']:.3f} | {m['plausibility']:.2f} |")
    return "\n".join(lines) + "\n"


def _save(report: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "finetune.json").write_text(json.dumps(report, indent=2, default=str))
    (RESULTS / "finetune.md").write_text(_markdown(report))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="synthetic")
    ap.add_argument("--schema", default=None)
    ap.add_argument("--config", default=None, help="fine-tuning YAML overriding the packaged defaults")
    ap.add_argument("--max-steps", type=int, default=None, help="override the CPU step budget")
    ap.add_argument("--n", type=int, default=20, help="test rows per predicted class for the comparison")
    ap.add_argument("--candidates", type=int, default=4, help="sampled answers per factual in the last comparison")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=default_adapter_dir())
    ap.add_argument("--skip-compare", action="store_true", help="only train and record time/memory/loss")
    args = ap.parse_args(argv)

    cfg = FinetuneConfig.load(args.config)
    if args.max_steps:
        cfg = cfg.with_overrides(max_steps=args.max_steps)
    configure_torch_threads(cfg.effective(cuda=False).threads)
    train, test = split_from_options(args.data, args.schema, args.seed)
    clf = train_classifier("nn", train.X, train.y, train.schema, args.seed)
    adapter = finetune(train, clf, base="embedded", config=cfg, out_dir=args.out, seed=args.seed)
    card = json.loads((adapter / "card.json").read_text())
    training = {k: card[k] for k in CARD_KEYS}
    training.update(pairs=card["pairs"], steps_per_second=card["steps"] / max(card["wall_seconds"], 1e-9))
    report = {"data": args.data, "seed": args.seed, "adapter": str(adapter), "config": card["config"],
              "training": training, "versions": card["versions"], "compare": {}}
    _save(report)
    if args.skip_compare:
        return report

    pred = pd.Series(clf.predict(test.X), index=test.X.index)
    rng = np.random.default_rng(args.seed)
    picked = [idx for c in (0, 1) for idx in rng.permutation(pred.index[pred == c])[:args.n]]
    factuals, target = test.X.loc[picked], 1 - pred.loc[picked]
    runs = [("llm-zero-shot", "llm-zero-shot", {}),
            ("llm-fine-tuned, greedy", "llm-fine-tuned", {"candidates": 1}),
            (f"llm-fine-tuned, best of {args.candidates} sampled", "llm-fine-tuned",
             {"candidates": args.candidates, "temperature": 0.7})]
    for label, method, extra in runs:
        options = {"repair_rounds": 0, **extra, **({"adapter": str(adapter)} if method == "llm-fine-tuned" else {})}
        ctx = GeneratorContext(train.schema, clf, train.X, train.y, seed=args.seed, options=options)
        result = build_generator(method, ctx).generate(factuals, target)
        metrics = per_class_metrics(result, train.X, train.y, train.schema, clf)
        report["compare"][label] = {str(c): m for c, m in metrics.items()}
        report.setdefault("outcomes", {})[label] = result.summary()
        report.setdefault("generation_seconds", {})[label] = round(float(result.seconds.sum()), 1)
        _save(report)
    return report


if __name__ == "__main__":
    print(_markdown(main()))
