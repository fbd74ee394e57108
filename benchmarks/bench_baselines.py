"""Seconds per valid counterfactual of every baseline (DiCE, CFNOW, NICE) on one dataset and classifier.

    python benchmarks/bench_baselines.py [--data synthetic] [--n 10] [--cfnow-time-limit 10] [--seed 0]

One run through sensecf.experiments.benchmark.run_benchmark (resumable CSVs under
benchmarks/results/baselines-run/), then benchmarks/results/baselines.json and baselines.md with, per method:
seconds per valid CF, validity, mean seconds per row, and the status counts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pandas as pd
import torch

from sensecf.cli.options import split_from_options
from sensecf.experiments.benchmark import package_versions, run_benchmark
from sensecf.models.classifiers import train_classifier

METHODS = ["dice-random", "dice-genetic", "dice-kdtree", "cfnow-greedy", "cfnow-random", "nice-sparsity",
           "nice-proximity", "nice-plausibility"]
RESULTS = Path(__file__).parent / "results"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="synthetic")
    ap.add_argument("--schema", default=None)
    ap.add_argument("--n", type=int, default=10, help="test instances per class")
    ap.add_argument("--cfnow-time-limit", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--classifier", default="nn")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    train, test = split_from_options(args.data, args.schema, args.seed)
    clf = train_classifier(args.classifier, train.X, train.y, train.schema, args.seed)
    run_dir = RESULTS / "baselines-run"
    summary = run_benchmark(train, test, clf, METHODS, n_per_class=args.n, seed=args.seed, out_dir=run_dir,
                            options={"cfnow_time_limit": args.cfnow_time_limit})
    rows = {}
    for m, res in summary["methods"].items():
        frame = pd.read_csv(run_dir / "cfs" / f"{m}.csv")
        rows[m] = {"seconds_per_valid_cf": res["overall"]["seconds_per_valid_cf"],
                   "validity": res["overall"]["validity"], "mean_seconds_per_row": float(frame["seconds"].mean()),
                   **{k: res["summary"][k] for k in ("n", "valid", "invalid", "failed")}}
    out = {"data": args.data, "dataset": train.name, "n_train": len(train), "classifier": args.classifier,
           "n_per_class": args.n, "cfnow_time_limit": args.cfnow_time_limit, "seed": args.seed,
           "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
           "versions": package_versions(), "methods": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "baselines.json").write_text(json.dumps(out, indent=2))
    fmt = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    lines = [f"# Baselines: seconds per valid CF ({train.name}, {args.classifier}, {args.n}/class, "
             f"CFNOW limit {args.cfnow_time_limit:g} s)", "",
             "| method | s / valid CF | validity | s / row | valid | invalid | failed |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {m} | {fmt(r['seconds_per_valid_cf'])} | {fmt(r['validity'])} | {fmt(r['mean_seconds_per_row'])} | "
              f"{r['valid']} | {r['invalid']} | {r['failed']} |" for m, r in rows.items()]
    (RESULTS / "baselines.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
