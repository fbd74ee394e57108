"""Issue #11's targets: LLM counterfactuals that are valid, minimal and actionable once the classifier calibrates
the LLM's proposals, against the baselines (also restricted to actionable features), before and after
self-distillation — on the default synthetic data and on the real UCI heart data.

    python benchmarks/bench_calibration.py [--data synthetic,uci-heart] [--n 50] [--distill-rounds 1]

Per dataset: the patient-level split (seed 0), the NN classifier, the default CPU fine-tuning recipe (adapter
cached under benchmarks/results/calibration/<data>/adapter, retrained only when data or recipe change) and the
same recipe with self-distillation; Table III of every method on the same n factuals per class.
Writes benchmarks/results/calibration/<data>/{plain,distilled}/ (benchmark.json/csv/md, cfs/) and
benchmarks/results/calibration.{json,md} with every target and whether it was met.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from sensecf.console import set_verbose
from sensecf.data.loading import load_dataset
from sensecf.data.split import patient_split
from sensecf.experiments.benchmark import result_from_csv, run_benchmark, sample_factuals
from sensecf.metrics import cf_rows
from sensecf.finetune.config import FinetuneConfig
from sensecf.finetune.train import finetune
from sensecf.models.classifiers import train_classifier
from sensecf.provenance import package_versions

OUT = Path(__file__).parent / "results"
BASELINES = ["nice-sparsity", "cfnow-greedy", "dice-random"]
ACTIONABLE = [f"{m}@actionable" for m in BASELINES]
LLM = ["llm-fine-tuned", "llm-fine-tuned+calibrated"]
CALIBRATED = "llm-fine-tuned+calibrated"
PAIRED = ("cost", "distance")


def per_class(summary: dict, method: str, key: str) -> list[float]:
    """The metric of a method in both classes (NaN-safe list)."""
    return [m.get(key) if m.get(key) is not None else math.nan
            for m in summary["methods"][method]["per_class"].values()]


def parse_failure_rate(summary: dict, method: str, candidates: int) -> float:
    """Share of the method's LLM answers that could not be parsed."""
    outcomes = summary["methods"][method]["outcomes"]
    rounds = sum(int(k) * v for k, v in outcomes.get("rounds", {}).items())
    failures = sum(int(k) * v for k, v in outcomes.get("parse_failures", {}).items())
    return failures / max(rounds * candidates, 1)


def paired(out_dir: Path, train, test, clf, n: int, methods: list[str]) -> dict[str, dict]:
    """Per baseline and class: the mean cost and distance of the calibrated row and of the baseline over the
    factuals that both made valid (like for like: each method's own means average over the factuals it solved, and
    the @actionable baselines solve only the easy ones)."""
    schema = train.schema
    factuals, targets_ = sample_factuals(test, clf, n, 0)  # the benchmark's sample (run_benchmark, seed 0)
    rows = {m: cf_rows(result_from_csv(out_dir / "cfs" / f"{m}.csv", m, factuals, schema), train.X, schema, clf)
            for m in [CALIBRATED, *methods]}
    out = {}
    for m in methods:
        per = {}
        for c in (0, 1):
            both = (((1 - targets_.to_numpy()) == c) & rows[m]["valid"].to_numpy()
                    & rows[CALIBRATED]["valid"].to_numpy())
            mean = lambda name, k: float(rows[name][k].to_numpy()[both].mean()) if both.any() else None  # noqa: E731
            per[str(c)] = {"n": int(both.sum()), **{f"{k}_calibrated": mean(CALIBRATED, k) for k in PAIRED},
                           **{f"{k}_baseline": mean(m, k) for k in PAIRED}}
        out[m] = per
    return out


def targets(plain: dict, distilled: dict) -> dict[str, dict]:
    """Every target of the issue: measured value(s) per class and whether met."""
    cal = lambda k: per_class(plain, CALIBRATED, k)  # noqa: E731
    out = {}

    def add(name, values, ok):
        out[name] = {"measured": values, "met": bool(ok)}

    add("calibrated validity >= 0.99", cal("validity"), all(v >= 0.99 for v in cal("validity")))
    add("calibrated violations = 0", cal("constraint_violations"), all(v == 0 for v in cal("constraint_violations")))
    add("calibrated plausibility = 1.00", cal("plausibility"), all(v >= 0.995 for v in cal("plausibility")))
    for b in BASELINES + ACTIONABLE:
        add(f"calibrated cost <= {b}", [cal("cost"), per_class(plain, b, "cost")],
            all(c <= o or math.isnan(o) for c, o in zip(cal("cost"), per_class(plain, b, "cost"))))
    add("calibrated actionable-only where feasible >= 0.95", cal("actionable_when_feasible"),
        all(v >= 0.95 for v in cal("actionable_when_feasible")))
    add("calibrated sparsity <= nice-sparsity", [cal("sparsity"), per_class(plain, "nice-sparsity", "sparsity")],
        all(c <= o for c, o in zip(cal("sparsity"), per_class(plain, "nice-sparsity", "sparsity"))))
    add("calibrated s/valid CF <= nice-sparsity",
        [cal("seconds_per_valid_cf"), per_class(plain, "nice-sparsity", "seconds_per_valid_cf")],
        all(c <= o for c, o in zip(cal("seconds_per_valid_cf"), per_class(plain, "nice-sparsity",
                                                                          "seconds_per_valid_cf"))))
    for b in ACTIONABLE:
        add(f"calibrated validity >= {b}", [cal("validity"), per_class(plain, b, "validity")],
            all(c >= o for c, o in zip(cal("validity"), per_class(plain, b, "validity"))))
    best = [min(vals) for vals in zip(*[per_class(plain, b, "distance") for b in ACTIONABLE])]
    add("calibrated distance <= best @actionable baseline", [cal("distance"), best],
        all(c <= o for c, o in zip(cal("distance"), best)))
    if distilled:
        add("distilled plain: validity where actionable feasible >= 0.95",
            per_class(distilled, "llm-fine-tuned", "actionable_when_feasible"),
            all(v >= 0.95 for v in per_class(distilled, "llm-fine-tuned", "actionable_when_feasible")))
        add("distilled plain: valid CFs actionable-only >= 0.90",
            per_class(distilled, "llm-fine-tuned", "actionable_only"),
            all(v >= 0.90 for v in per_class(distilled, "llm-fine-tuned", "actionable_only")))
    return out


def training_seconds(adapter: Path) -> float:
    """The wall time the adapter's training took (from its card, so a kept adapter reports its training)."""
    return float(json.loads((Path(adapter) / "card.json").read_text())["wall_seconds"])


def run_dataset(name: str, n: int, distill_rounds: int) -> dict:
    ds = load_dataset(name)
    train, test = patient_split(ds, 0.2, 0)
    clf = train_classifier("nn", train.X, train.y, train.schema, 0, groups=train.groups)
    root = OUT / "calibration" / name
    cfg = FinetuneConfig.load(None)
    plain_adapter = finetune(train, clf, config=cfg, out_dir=root / "adapter", seed=0)
    finetune_seconds = training_seconds(plain_adapter)
    options = {"cfnow_time_limit": 3, "repair_rounds": 0, "adapter": str(plain_adapter),
               "cache_dir": str(root / "llm-cache")}
    plain = run_benchmark(train, test, clf, BASELINES + ACTIONABLE + LLM, n_per_class=n, seed=0,
                          out_dir=root / "plain", options=options)
    distilled, distill_seconds = {}, None
    if distill_rounds:
        adapter = finetune(train, clf, config=cfg.with_overrides(distill_rounds=distill_rounds),
                           out_dir=root / "adapter-distilled", seed=0)
        distill_seconds = training_seconds(adapter)
        distilled = run_benchmark(train, test, clf, LLM, n_per_class=n, seed=0, out_dir=root / "distilled",
                                  options={**options, "adapter": str(adapter)})
    candidates = 4
    return {"dataset": name, "n_per_class": n, "distill_rounds": distill_rounds,
            "finetune_seconds": round(finetune_seconds, 1),
            "distill_seconds": None if distill_seconds is None else round(distill_seconds, 1),
            "parse_failure_rate": {m: parse_failure_rate(s, m, candidates) for s, m in
                                   ((plain, "llm-fine-tuned"), *(((distilled, "llm-fine-tuned"),) if distilled
                                                                 else ()))},
            "table": {s_name: {m: {k: per_class(s, m, k) for k in
                                   ("validity", "distance", "cost", "sparsity", "plausibility", "actionable_share",
                                    "actionable_when_feasible", "actionable_feasible", "from_llm",
                                    "constraint_violations", "seconds_per_valid_cf")}
                               for m in s["methods"]}
                      for s_name, s in (("plain", plain), ("distilled", distilled)) if s},
            "paired": paired(root / "plain", train, test, clf, n, BASELINES + ACTIONABLE),
            "targets": targets(plain, distilled)}


def fmt(v) -> str:
    if isinstance(v, list):
        return " / ".join(fmt(x) for x in v)
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="synthetic,uci-heart")
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--distill-rounds", type=int, default=1)
    args = ap.parse_args()
    set_verbose(False)
    names = args.data.split(",")
    fresh = [run_dataset(n, args.n, args.distill_rounds) for n in names]
    previous = OUT / "calibration.json"  # read after the runs: another dataset may have finished meanwhile
    kept = json.loads(previous.read_text())["results"] if previous.exists() else []
    results = [r for r in kept if r["dataset"] not in names] + fresh
    previous.write_text(json.dumps({"results": results, "versions": package_versions()}, indent=2, default=str))
    lines = ["# Calibrated LLM counterfactuals vs baselines (issue #11 targets)", "",
             "`python benchmarks/bench_calibration.py --data DATA --n N --distill-rounds R` (one section per "
             "dataset; a run replaces its datasets' sections); values are class 0 / class 1.", ""]
    for r in results:
        lines += [f"## {r['dataset']} (n = {r['n_per_class']} per class, {r.get('distill_rounds', '?')} "
                  "self-distillation round(s))", "",
                  f"Fine-tune {r['finetune_seconds']} s; with self-distillation {r['distill_seconds']} s. LLM "
                  f"answers that failed to parse: " + ", ".join(f"{k} {v:.1%}" for k, v in
                                                              r["parse_failure_rate"].items()), ""]
        for part, table in r["table"].items():
            keys = list(next(iter(table.values())))
            lines += [f"### {part} adapter", "", "| method | " + " | ".join(keys) + " |",
                      "|---" * (len(keys) + 1) + "|"]
            lines += [f"| {m} | " + " | ".join(fmt(v) for v in row.values()) + " |" for m, row in table.items()]
            lines.append("")
        if r.get("paired"):
            lines += ["### on the factuals both methods solved: calibrated / baseline (n), class 0; class 1", "",
                      "| baseline | cost, class 0 | cost, class 1 | distance, class 0 | distance, class 1 |",
                      "|---|---|---|---|---|"]
            for b, per in r["paired"].items():
                cells = [f"{fmt(v[k + '_calibrated'])} / {fmt(v[k + '_baseline'])} (n = {v['n']})"
                         for k in PAIRED for v in per.values()]
                lines.append(f"| {b} | " + " | ".join(cells) + " |")
            lines.append("")
        lines += ["### targets", "", "| target | measured | met |", "|---|---|---|"]
        lines += [f"| {k} | {fmt(v['measured'])} | {'yes' if v['met'] else '**no**'} |"
                  for k, v in r["targets"].items()]
        lines.append("")
    (OUT / "calibration.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
