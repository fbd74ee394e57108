"""Table IV at the paper's setting: augmentation with the calibrated fine-tuned LLM, NICE, SMOTE and random
oversampling, ratio 100 % = as many rows as were removed (no budget), 5 seeds, on the default study's setup.

    python benchmarks/bench_augmentation_llm.py [--work runs/bench-augmentation-llm] [--methods ...]
        [--budget N] [--train-rows 2000]

`sensecf run` caps the rows added at a stated budget (aug_budget) to fit its time; this runs the default study's
data, classifier, fine-tune (the cached default adapter when its card matches) and augmentation with `--methods`
as aug_methods and `--budget` (default: none, the paper's setting), in a resumable work folder, then copies
augmentation.json, table4.md/.csv and fig7_ratio_sweep.png to benchmarks/results/augmentation_llm/ with the wall
time and the per-row generation cost of each method.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import pandas as pd

from sensecf.study import Study, StudyConfig

RESULTS = Path(__file__).parent / "results" / "augmentation_llm"
OUTPUTS = ("augmentation.json", "table4.md", "table4.csv", "fig7_ratio_sweep.png")


def generation_cost(work: Path, methods: list[str]) -> dict:
    """Rows generated, valid share and seconds per row of each method over all aug_cfs tables."""
    cost = {}
    for method in methods:
        tables = [pd.read_csv(p) for p in sorted((work / "aug_cfs").glob(f"*-{method}.csv"))]
        rows = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
        if rows.empty:
            continue
        cost[method] = {"rows": len(rows), "valid_share": round(float((rows["status"] == "valid").mean()), 3),
                        "seconds_per_row": round(float(rows["seconds"].mean()), 3),
                        "seconds_total": round(float(rows["seconds"].sum()), 1)}
    return cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="runs/bench-augmentation-llm", help="resumable work folder")
    parser.add_argument("--methods", default="nice-sparsity,llm-fine-tuned+calibrated")
    parser.add_argument("--budget", type=int, default=None, help="cap of rows added at 100 %% (default: none)")
    parser.add_argument("--train-rows", type=int, default=StudyConfig().aug_train_rows)
    args = parser.parse_args()
    methods = args.methods.split(",")
    work = Path(args.work)
    t0 = time.perf_counter()
    study = Study(StudyConfig(methods=[m for m in methods if m.startswith("llm-")], aug_methods=methods,
                              aug_budget=args.budget, aug_train_rows=args.train_rows), work)
    study.load_data()
    study.classifiers()
    study.finish_finetune(study.start_finetune())
    (work / "augmentation.json").unlink(missing_ok=True)  # always re-summarised (finished cells are reused)
    study.augmentation()
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        shutil.copy(work / name, RESULTS / name)
    report = {"methods": methods, "config": study.cfg.__dict__,
              "wall_seconds_this_invocation": round(time.perf_counter() - t0, 1),
              "step_seconds": study.timings, "generation": generation_cost(work, methods),
              "adapter": json.loads((work / "finetune.json").read_text())["card"]}
    (RESULTS / "run.json").write_text(json.dumps(report, indent=2, default=str))
    budget = f" --budget {args.budget}" if args.budget else ""
    lines = ["# Table IV with the calibrated fine-tuned LLM", "",
             f"`python benchmarks/bench_augmentation_llm.py --methods {args.methods}{budget} --train-rows "
             f"{args.train_rows}` (default study setup: synthetic cohort, seed {study.cfg.seed}, "
             f"{study.cfg.aug_train_rows}-row training subsample, reduction by participants, "
             + (f"budget {args.budget} rows" if args.budget else "ratio 100 % = every removed row (no budget)")
             + f", seeds {study.cfg.aug_seeds}). Generation cost from the counterfactual tables (one core; a "
             "resumed invocation reuses them):",
             "", "| method | rows generated | valid | s per row | s total |", "|---|---|---|---|---|"]
    for method, c in report["generation"].items():
        lines.append(f"| {method} | {c['rows']} | {c['valid_share']:.2f} | {c['seconds_per_row']:.2f} | "
                     f"{c['seconds_total']} |")
    lines += ["", (work / "table4.md").read_text()]
    (RESULTS / "README.md").write_text("\n".join(lines) + "\n")
    print((RESULTS / "README.md").read_text())


if __name__ == "__main__":
    main()
