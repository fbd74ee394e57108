"""How the default synthetic cohort compares with the method-independent figures it is calibrated to.

    python benchmarks/bench_synthetic.py [--seeds 5]

Targets (issue #12; the paper's NN baseline and reduced-data drops, never CF or augmentation results):
- NN on the full training set: positive-class F1 0.68 ± 0.03, AUC 0.78 ± 0.03 (accuracy 71.8 %);
- NN macro-F1 with 20 % of the training participants >= 8 % below the full-data value;
- scenarios A, B, C (the default study's augmentation setup) each lose >= 5 % macro-F1;
- NN expected calibration error on the test set <= 0.05.
Writes benchmarks/results/synthetic.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from sensecf.console import set_verbose
from sensecf.data.loading import load_dataset
from sensecf.data.split import patient_split, scarcity_scenario, subsample_fraction
from sensecf.models.classifiers import evaluate, expected_calibration_error, train_classifier
from sensecf.provenance import package_versions
from sensecf.study import StudyConfig

OUT = Path(__file__).parent / "results"


def fit(ds, test, seed: int, **kw) -> dict:
    return evaluate(train_classifier("nn", ds.X, ds.y, ds.schema, seed, groups=ds.groups, **kw), test.X, test.y)


def ece_gap(nn, train, test, seed: int) -> dict:
    """Where the NN's test ECE comes from: ECE on the training rows vs the held-out participants, for the fitted
    NN and for a logistic regression (which cannot memorise people), and the two sides' positive shares."""
    out = {f"{side}_positive_share": round(float(d.y.mean()), 3) for side, d in (("train", train), ("test", test))}
    lr = train_classifier("lr", train.X, train.y, train.schema, seed, groups=train.groups)
    for kind, clf in (("nn", nn), ("lr", lr)):
        for side, d in (("train", train), ("test", test)):
            out[f"{kind}_{side}_ece"] = round(expected_calibration_error(d.y, clf.predict_proba(d.X)[:, 1]), 3)
    return out


def mean(rows: list[dict], key: str) -> float:
    return float(np.mean([r[key] for r in rows]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    set_verbose(False)
    cfg = StudyConfig()
    t0 = time.perf_counter()
    ds = load_dataset("synthetic", seed=cfg.seed, participants=cfg.participants, days=cfg.days)
    train, test = patient_split(ds, 0.2, cfg.seed)
    seeds = range(args.seeds)
    nets = [train_classifier("nn", train.X, train.y, train.schema, s, groups=train.groups) for s in seeds]
    full = [evaluate(nn, test.X, test.y) for nn in nets]
    calibrated = [fit(train, test, s, calibration="sigmoid") for s in seeds]
    few = [fit(subsample_fraction(train, 0.2, s, unit="participants"), test, s) for s in seeds]
    aug = subsample_fraction(train, cfg.aug_train_rows / len(train), seed=cfg.seed)
    base = [fit(aug, test, s) for s in seeds]
    scen = {sc: [fit(scarcity_scenario(aug, sc, 0.5, s, unit="participants")[0], test, s) for s in seeds]
            for sc in cfg.aug_scenarios}
    drop = lambda rows, ref: 100 * (mean(rows, "macro_f1") / mean(ref, "macro_f1") - 1)  # noqa: E731
    res = {"rows": len(ds), "positive_share": round(float(ds.y.mean()), 3), "seeds": list(seeds),
           "nn_full": {k: round(mean(full, k), 3) for k in ("accuracy", "f1", "macro_f1", "auc", "brier", "ece")},
           "nn_full_calibrated_ece": round(mean(calibrated, "ece"), 3),
           "ece_gap_seed0": ece_gap(nets[0], train, test, seeds[0]),
           "nn_20pct_participants_macro_f1": round(mean(few, "macro_f1"), 3),
           "drop_20pct_participants_pct": round(drop(few, full), 1),
           "scenario_drop_pct": {sc: round(drop(rows, base), 1) for sc, rows in scen.items()},
           "seconds": round(time.perf_counter() - t0, 1), "versions": package_versions()}
    targets = {"F1 0.68 ± 0.03": abs(res["nn_full"]["f1"] - 0.68) <= 0.03,
               "AUC 0.78 ± 0.03": abs(res["nn_full"]["auc"] - 0.78) <= 0.03,
               "20 % participants >= 8 % lower": res["drop_20pct_participants_pct"] <= -8,
               **{f"scenario {sc} >= 5 % lower": d <= -5 for sc, d in res["scenario_drop_pct"].items()},
               "ECE <= 0.05": res["nn_full"]["ece"] <= 0.05}
    res["targets_met"] = targets
    OUT.mkdir(exist_ok=True)
    (OUT / "synthetic.json").write_text(json.dumps(res, indent=2))
    lines = ["# Synthetic cohort vs the published figures it is calibrated to", "",
             f"`python benchmarks/bench_synthetic.py --seeds {args.seeds}` (default cohort: {cfg.participants} "
             f"participants, {cfg.days} days, seed {cfg.seed}; {res['rows']} windows, "
             f"{res['positive_share']:.1%} high stress).", "",
             "| figure | measured (mean over seeds) | target | met |", "|---|---|---|---|",
             f"| NN F1 (class 1) | {res['nn_full']['f1']:.3f} | 0.68 ± 0.03 | {targets['F1 0.68 ± 0.03']} |",
             f"| NN AUC | {res['nn_full']['auc']:.3f} | 0.78 ± 0.03 | {targets['AUC 0.78 ± 0.03']} |",
             f"| NN accuracy | {res['nn_full']['accuracy']:.3f} | 0.718 (paper) | – |",
             f"| NN macro-F1, 20 % of participants vs all | {res['drop_20pct_participants_pct']:+.1f} % | <= -8 % | "
             f"{targets['20 % participants >= 8 % lower']} |",
             *[f"| scenario {sc} macro-F1 vs full (augmentation setup) | {d:+.1f} % | <= -5 % | "
               f"{targets[f'scenario {sc} >= 5 % lower']} |" for sc, d in res["scenario_drop_pct"].items()],
             f"| NN ECE (test) | {res['nn_full']['ece']:.3f} (sigmoid-calibrated: "
             f"{res['nn_full_calibrated_ece']:.3f}) | <= 0.05 | {targets['ECE <= 0.05']} |", "",
             "Where the test ECE comes from (seed 0): ECE on the training rows / on the held-out participants — NN "
             f"{res['ece_gap_seed0']['nn_train_ece']:.3f} / {res['ece_gap_seed0']['nn_test_ece']:.3f}, logistic "
             f"regression {res['ece_gap_seed0']['lr_train_ece']:.3f} / {res['ece_gap_seed0']['lr_test_ece']:.3f}; "
             f"high-stress share {res['ece_gap_seed0']['train_positive_share']:.3f} (train) vs "
             f"{res['ece_gap_seed0']['test_positive_share']:.3f} (test).", ""]
    (OUT / "synthetic.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
