"""Zero-shot vs few-shot LLM counterfactuals with verify-and-repair on one dataset and classifier.

    python benchmarks/bench_llm.py [--data synthetic] [--n 10] [--backend embedded] [--repair-rounds 2] [--seed 0]

One run through sensecf.experiments.benchmark.run_benchmark (resumable CSVs under benchmarks/results/llm-run/),
then benchmarks/results/llm.json and llm.md with, per method: validity at the first try, validity after repair,
seconds per valid CF, parse failures, outcome counts and the most frequent failure reasons.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pandas as pd
import torch

from sensecf.cli.cf_cmd import train_test
from sensecf.experiments.benchmark import package_versions, run_benchmark
from sensecf.models.classifiers import train_classifier

METHODS = ["llm-zero-shot", "llm-few-shot"]
RESULTS = Path(__file__).parent / "results"


def method_row(frame: pd.DataFrame) -> dict:
    """Per-method numbers from a cfs/<method>.csv written by run_benchmark."""
    asked = frame[frame["outcome"] != "skipped"]
    n = max(len(asked), 1)
    valid = int((asked["status"] == "valid").sum())
    return {"n": int(len(asked)), "validity_first_try": float((asked["outcome"] == "first_try").sum() / n),
            "validity_after_repair": float(valid / n),
            "seconds_per_valid_cf": float(asked["seconds"].sum() / valid) if valid else None,
            "mean_seconds_per_row": float(asked["seconds"].mean()) if len(asked) else None,
            "mean_rounds": float(asked["rounds"].mean()) if len(asked) else None,
            "parse_failures": int(asked["parse_failures"].sum()),
            "backend_errors": int(asked["backend_errors"].sum()),
            "outcomes": asked["outcome"].value_counts().to_dict(),
            "top_reasons": asked.loc[asked["status"] != "valid", "reason"].fillna("").str.slice(0, 80)
            .value_counts().head(5).to_dict()}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="synthetic")
    ap.add_argument("--schema", default=None)
    ap.add_argument("--n", type=int, default=10, help="test instances per class")
    ap.add_argument("--backend", default="embedded")
    ap.add_argument("--repair-rounds", type=int, default=2)
    ap.add_argument("--k", type=int, default=3, help="few-shot examples")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--classifier", default="nn")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    train, test = train_test(args.data, args.schema, args.seed)
    clf = train_classifier(args.classifier, train.X, train.y, train.schema, args.seed)
    run_dir = RESULTS / "llm-run"
    options = {"backend": args.backend, "repair_rounds": args.repair_rounds, "k": args.k}
    run_benchmark(train, test, clf, METHODS, n_per_class=args.n, seed=args.seed, out_dir=run_dir, options=options,
                  batch_size=2 * args.n)
    rows = {m: method_row(pd.read_csv(run_dir / "cfs" / f"{m}.csv", keep_default_na=False,
                                      na_values=[""])) for m in METHODS}
    out = {"data": args.data, "dataset": train.name, "n_train": len(train), "classifier": args.classifier,
           "n_per_class": args.n, **options, "seed": args.seed, "cpu_count": os.cpu_count(),
           "torch_threads": torch.get_num_threads(), "versions": package_versions(), "methods": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "llm.json").write_text(json.dumps(out, indent=2, default=str))
    fmt = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    lines = [f"# LLM counterfactuals: zero- vs few-shot ({train.name}, {args.classifier}, {args.n}/class, "
             f"backend {args.backend}, {args.repair_rounds} repair rounds)", "",
             "| method | n | valid first try | valid after repair | s / valid CF | mean rounds | parse failures |"
             " backend errors |", "|---|---|---|---|---|---|---|---|"]
    for m, r in rows.items():
        lines.append(f"| {m} | {r['n']} | {fmt(r['validity_first_try'])} | {fmt(r['validity_after_repair'])} | "
                     f"{fmt(r['seconds_per_valid_cf'])} | {fmt(r['mean_rounds'])} | {r['parse_failures']} | "
                     f"{r['backend_errors']} |")
    lines += ["", "Most frequent failure reasons:"]
    for m, r in rows.items():
        lines += [f"- {m}: " + "; ".join(f"{k or '(none)'} ×{v}" for k, v in r["top_reasons"].items())]
    (RESULTS / "llm.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return out


if __name__ == "__main__":
    main()
