"""Running the augmentation grid: one cell per (scenario, seed, source, ratio), recorded as it finishes.

Layout of `out_dir`:
  augmentation_config.json  the setup the cells belong to (a rerun with another setup is refused)
  augmentation_cells.jsonl   one line per finished cell; a rerun skips them (a partial last line is recomputed)
  aug_cfs/<scenario>-seed<k>-<method>.csv   generated CFs (all statuses), reused by a rerun
  augmentation.json          per scenario, method, ratio and seed: test metrics + aggregates (stats.summarize)
  table4.csv, table4.md      Table IV layout at ratio 100 % (or the largest ratio run)
  fig7_ratio_sweep.png       macro-F1 vs ratio per method, one panel per scenario

Ratio 100 % adds as many rows as were removed of the augmented class, for every source alike; with a `budget`
it adds min(removed rows, budget), and the tables say "of a budget of N". CF methods add only their valid CFs, so
they can add fewer (recorded per cell as n_added).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ...console import progress_bar
from ...data.dataset import Dataset
from ...data.split import REDUCTION_UNITS, reduction_unit, scarcity_scenario
from ...errors import ConfigError
from ...files import append_jsonl, read_json, read_jsonl, write_json
from ...generators.base import check_methods, method_options
from ...models.classifiers import evaluate, train_classifier
from ...provenance import json_safe, package_versions
from .sources import COMPARATORS, augmented_class, generate_cfs, oversample
from .stats import SCENARIOS, summarize
from .tables import plot_ratio_sweep, write_table4

CELLS_FILE = "augmentation_cells.jsonl"
CONFIG_FILE = "augmentation_config.json"


def _cf_path(out_dir: Path, scenario: str, seed: int, method: str) -> Path:
    return out_dir / "aug_cfs" / f"{scenario}-seed{seed}-{method}.csv"


def _fingerprint_options(options: dict, out_dir: Path) -> dict:
    """Generator options as text for the setup fingerprint; paths inside the run folder are relative, the cache
    folder is left out, so a copied run folder resumes."""
    out = {}
    for k, v in sorted(options.items()):
        if k.split(".")[-1] == "cache_dir":
            continue
        text = str(v)
        try:
            text = str(Path(text).resolve().relative_to(out_dir.resolve()))
        except (ValueError, OSError):
            pass
        out[k] = text
    return out


class ReducedModel:
    """The reduced split's classifier, trained on first use (CFs read from cache need none)."""

    def __init__(self, kind: str, reduced: Dataset, seed: int):
        self.kind, self.reduced, self.seed, self.clf = kind, reduced, seed, None

    def __call__(self):
        if self.clf is None:
            r = self.reduced
            self.clf = train_classifier(self.kind, r.X, r.y, r.schema, self.seed, groups=r.groups)
        return self.clf


def pair_setup(train: Dataset, scenario: str, seed: int, fraction: float, unit: str, budget: int | None,
               ratios: list[float]) -> tuple[Dataset, int, int, int, int]:
    """(reduced split, augmented class, removed rows of that class, rows at ratio 100 %, CFs to generate) of one
    (scenario, seed)."""
    reduced, removed = scarcity_scenario(train, scenario, fraction=fraction, seed=seed, unit=unit)
    target = augmented_class(scenario, reduced.y)
    n_removed = int((removed.y == target).sum())
    n_base = min(n_removed, int(budget)) if budget else n_removed
    return reduced, target, n_removed, n_base, math.ceil(max(ratios) * n_base)


def pregenerate_cfs(train: Dataset, methods: list[str], scenarios, seeds, ratios, classifier_kind: str,
                    out_dir: Path, options: dict, fraction: float = 0.5, budget: int | None = None,
                    unit: str = "auto", chunk: int = 10) -> None:
    """Generate (and cache in aug_cfs/) the CFs that run_augmentation with the same settings will add, without
    training or scoring the augmented models: lets another process (the study's background job, once the adapter
    exists) do the expensive generation while this one runs other steps."""
    unit = reduction_unit(train, unit)
    ratios = sorted({float(r) for r in ratios})
    (Path(out_dir) / "aug_cfs").mkdir(parents=True, exist_ok=True)
    for scenario in [str(s).upper() for s in scenarios]:
        for seed in [int(s) for s in seeds]:
            reduced, target, _, _, n_max = pair_setup(train, scenario, seed, fraction, unit, budget, ratios)
            for method in methods:
                generate_cfs(method, reduced, ReducedModel(classifier_kind, reduced, seed), target, n_max, seed,
                             options, _cf_path(Path(out_dir), scenario, seed, method), None, chunk)


class AugmentationRun:
    """The grid of one augmentation study (see run_augmentation)."""

    def __init__(self, train: Dataset, test: Dataset, methods: list[str], comparators: list[str], ratios: list[float],
                 classifier_kind: str, out_dir: Path, options: dict, fraction: float, budget: int | None,
                 unit: str, chunk: int):
        self.train, self.test, self.schema = train, test, train.schema
        self.methods, self.comparators, self.ratios = methods, comparators, ratios
        self.kind, self.out, self.options = classifier_kind, out_dir, options
        self.fraction, self.budget, self.unit, self.chunk = fraction, budget, unit, chunk
        self.cells_path = out_dir / CELLS_FILE
        self.cells = {(r["scenario"], r["seed"], r["method"], r["ratio"]): r for r in read_jsonl(self.cells_path)
                      if {"scenario", "seed", "method", "ratio", "metrics"} <= set(r)}
        self.baselines: dict[int, dict] = {}
        self.bar = self.overall = None

    def record(self, rec: dict) -> None:
        rec = json_safe(rec)
        self.cells[(rec["scenario"], rec["seed"], rec["method"], rec["ratio"])] = rec
        append_jsonl(self.cells_path, rec)

    def cell(self, base: dict, method: str, ratio: float, score, extra: dict | None = None) -> None:
        """Compute and record one cell unless a previous run finished it."""
        if (base["scenario"], base["seed"], method, ratio) not in self.cells:
            t0 = time.perf_counter()
            metrics = score()
            self.record({**base, "method": method, "ratio": ratio, **(extra or {}), "metrics": metrics,
                         "seconds": round(time.perf_counter() - t0, 2)})
        self.bar.advance(self.overall)

    def baseline_metrics(self, seed: int) -> dict:
        if seed not in self.baselines:  # the full-train model depends on the seed only
            clf = train_classifier(self.kind, self.train.X, self.train.y, self.schema, seed,
                                   groups=self.train.groups)
            self.baselines[seed] = evaluate(clf, self.test.X, self.test.y)
        return self.baselines[seed]

    def pair(self, scenario: str, seed: int) -> None:
        """Every cell of one (scenario, seed)."""
        reduced, target, n_removed, n_base, n_max = pair_setup(self.train, scenario, seed, self.fraction, self.unit,
                                                               self.budget, self.ratios)
        base = {"scenario": scenario, "seed": seed, "augmented_class": target, "n_removed": n_removed,
                "n_train": len(self.train), "n_reduced": len(reduced), "unit": self.unit}
        reduced_model = ReducedModel(self.kind, reduced, seed)
        self.cell(base, "baseline", 0.0, lambda: self.baseline_metrics(seed))
        self.cell(base, "reduced", 0.0, lambda: evaluate(reduced_model(), self.test.X, self.test.y))
        for source in self.methods + self.comparators:
            if all((scenario, seed, source, r) in self.cells for r in self.ratios):
                self.bar.advance(self.overall, len(self.ratios))
                continue
            self.bar.update(self.overall, description=f"{scenario} seed {seed} {source}")
            if source in self.comparators:
                pool = oversample(source, reduced.X, reduced.y, target, n_max, self.schema, seed)
            else:
                pool = generate_cfs(source, reduced, reduced_model, target, n_max, seed, self.options,
                                    _cf_path(self.out, scenario, seed, source), self.bar, self.chunk)
            for ratio in self.ratios:
                n_req = math.ceil(ratio * n_base)
                added = pool.iloc[:n_req]
                X_aug = pd.concat([reduced.X, added], ignore_index=True)
                y_aug = np.concatenate([reduced.y.to_numpy(), np.full(len(added), target)])
                groups = None
                if reduced.groups is not None:  # added rows form their own validation group
                    groups = np.concatenate([reduced.groups.astype(str).to_numpy(),
                                             np.full(len(added), "__augmented__")])
                self.cell(base, source, ratio, lambda: evaluate(
                    train_classifier(self.kind, X_aug, y_aug, self.schema, seed, groups=groups),
                    self.test.X, self.test.y),
                    {"n_requested": n_req, "n_added": len(added), "n_generated_for": n_max,
                     "n_available": len(pool)})


def run_augmentation(train: Dataset, test: Dataset, methods, scenarios=("A", "B", "C"), seeds=(0, 1, 2, 3, 4),
                     ratios=(0.2, 0.4, 0.6, 0.8, 1.0), classifier_kind: str = "nn",
                     out_dir: Path | str = Path("results/augmentation"), options: dict | None = None,
                     comparators=COMPARATORS, fraction: float = 0.5, budget: int | None = None,
                     unit: str = "auto", chunk: int = 10) -> dict:
    """Run (or resume) the augmentation study and write augmentation.json, table4.csv/.md and Fig 7.

    fraction: share of the halved class(es) removed; budget: cap of the rows added at ratio 100 % (None = as many
    as removed, the paper's setting); unit: "participants" (remove whole participants' rows of the halved class;
    the default when the data has a group column), "rows" or "auto"; options: generator options. Returns the
    augmentation.json content.
    """
    out_dir = Path(out_dir)
    options = dict(options or {})
    methods, comparators = check_methods(methods), list(comparators)
    ratios = sorted({float(r) for r in ratios})
    scenarios = [str(s).upper() for s in scenarios]
    seeds = [int(s) for s in seeds]
    if not ratios or ratios[0] <= 0:
        raise ConfigError(f"augmentation ratios must be positive, got {ratios}")
    bad = [s for s in scenarios if s not in SCENARIOS]
    if bad:
        raise ConfigError(f"unknown scarcity scenario(s) {bad}; available: {', '.join(SCENARIOS)}")
    bad = [c for c in comparators if c not in COMPARATORS]
    if bad:
        raise ConfigError(f"unknown comparator(s) {bad}; available: {', '.join(COMPARATORS)}")
    if budget is not None and budget < 1:
        raise ConfigError(f"the augmentation budget must be a positive number of rows, got {budget}")
    unit = reduction_unit(train, unit)
    for m in methods:
        method_options(m, options)
    (out_dir / "aug_cfs").mkdir(parents=True, exist_ok=True)
    _check_config(out_dir, json_safe({
        "dataset": train.name, "train_rows": len(train), "test_rows": len(test), "classifier": classifier_kind,
        "fraction": fraction, "budget": budget, "unit": unit,
        "generator_options": _fingerprint_options(options, out_dir)}))
    grid = AugmentationRun(train, test, methods, comparators, ratios, classifier_kind, out_dir, options, fraction,
                           budget, unit, chunk)
    per_pair = 2 + (len(methods) + len(comparators)) * len(ratios)
    with progress_bar() as bar:
        grid.bar = bar
        grid.overall = bar.add_task("augmentation cells", total=len(scenarios) * len(seeds) * per_pair)
        for scenario in scenarios:
            for seed in seeds:
                grid.pair(scenario, seed)
    summary = summarize(list(grid.cells.values()), methods=methods + comparators, scenarios=scenarios, seeds=seeds,
                        ratios=ratios)
    summary["config"] = {"methods": methods, "comparators": comparators, "scenarios": scenarios, "seeds": seeds,
                         "ratios": ratios, "classifier": classifier_kind, "fraction": fraction, "budget": budget,
                         "unit": unit, "generator_options": options}
    summary["label_names"] = {str(k): v for k, v in train.schema.label_names.items()}
    summary["versions"] = package_versions()
    summary = json_safe(summary)
    write_json(out_dir / "augmentation.json", summary)
    write_table4(summary, out_dir)
    plot_ratio_sweep(summary, out_dir / "fig7_ratio_sweep.png")
    return summary


def _check_config(out_dir: Path, fingerprint: dict) -> None:
    """Cells of a folder are only reused by a run with the same classifier, data sizes, fraction and options."""
    path = out_dir / CONFIG_FILE
    previous = read_json(path)
    if previous is not None and previous != fingerprint:
        diff = sorted(k for k in set(previous) | set(fingerprint) if previous.get(k) != fingerprint.get(k))
        raise ConfigError(f"{out_dir} holds augmentation cells of a different setup ({', '.join(diff)} "
                          "differ); choose another output folder or delete it")
    if previous is None:
        write_json(path, fingerprint)


__all__ = ["CELLS_FILE", "REDUCTION_UNITS", "run_augmentation"]
