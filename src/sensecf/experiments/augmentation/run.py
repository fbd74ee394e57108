"""Running the augmentation grid: one cell per (scenario, seed, source, ratio). The unit of work is a (scenario,
seed) pair (`run_pair`: one reduced model, one CF generation per method), run on an executor; this process records
each pair's CFs and cells as the pair finishes.

Layout of `out_dir`:
  augmentation_config.json  the setup the cells belong to (a rerun with another setup is refused)
  augmentation_cells.jsonl   one line per finished cell; a rerun skips them (a partial last line is recomputed) and
                             recomputes only the missing cells of a pair
  aug_cfs/<scenario>-seed<k>-<method>.csv   generated CFs (all statuses), reused by a rerun
  augmentation.json          per scenario, method, ratio and seed: test metrics + aggregates (stats.summarize)
  table4.csv, table4.md      Table IV layout at ratio 100 % (or the largest ratio run)
  fig7_ratio_sweep.png       macro-F1 vs ratio per method, one panel per scenario

Ratio 100 % adds as many rows as were removed of the augmented class, for every source alike; with a `budget`
it adds min(removed rows, budget), and the tables say "of a budget of N". CF methods add only their valid CFs, so
they can add fewer (recorded per cell as n_added).
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from ...console import progress_bar
from ...data.dataset import Dataset
from ...data.split import REDUCTION_UNITS, reduction_unit, scarcity_scenario
from ...errors import ConfigError
from ...executor import Executor, LocalExecutor
from ...files import append_jsonl, read_json, read_jsonl, write_json, write_text
from ...generators.base import check_methods, method_options
from ...models.classifiers import evaluate
from ...models.external import fit_like, recipe_name
from ...provenance import json_safe, package_versions
from .sources import COMPARATORS, augmented_class, cf_table, generate_cfs, oversample, read_cached, valid_cfs
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

    def __init__(self, kind, reduced: Dataset, seed: int):
        self.kind, self.reduced, self.seed, self.clf = kind, reduced, seed, None

    def __call__(self):
        if self.clf is None:
            r = self.reduced
            self.clf = fit_like(self.kind, r.X, r.y, r.schema, self.seed, groups=r.groups)
        return self.clf


def pair_setup(train: Dataset, scenario: str, seed: int, fraction: float, unit: str, budget: int | None,
               ratios: Sequence[float]) -> tuple[Dataset, int, int, int, int]:
    """(reduced split, augmented class, removed rows of that class, rows at ratio 100 %, CFs to generate) of one
    (scenario, seed)."""
    reduced, removed = scarcity_scenario(train, scenario, fraction=fraction, seed=seed, unit=unit)
    target = augmented_class(scenario, reduced.y)
    n_removed = int((removed.y == target).sum())
    n_base = min(n_removed, int(budget)) if budget else n_removed
    return reduced, target, n_removed, n_base, math.ceil(max(ratios) * n_base)


def pregenerate_cfs(train: Dataset, methods: list[str], scenarios, seeds, ratios, classifier_kind,
                    out_dir: Path, options: dict, fraction: float = 0.5, budget: int | None = None,
                    unit: str = "auto", chunk: int = 10, reverse: bool = False) -> None:
    """Generate (and cache in aug_cfs/) the CFs that run_augmentation with the same settings will add, without
    training or scoring the augmented models: lets another process (the study's background job, once the adapter
    exists) do the expensive generation while this one runs other steps. Runs in this process; tables already
    cached are kept, so two processes may share the work, one of them with `reverse` (the (scenario, seed) pairs
    from the last), meeting in the middle."""
    unit = reduction_unit(train, unit)
    ratios = sorted({float(r) for r in ratios})
    (Path(out_dir) / "aug_cfs").mkdir(parents=True, exist_ok=True)
    pairs = [(str(sc).upper(), int(sd)) for sc in scenarios for sd in seeds]
    for scenario, seed in reversed(pairs) if reverse else pairs:
        todo = [m for m in methods if read_cached(_cf_path(Path(out_dir), scenario, seed, m), train.schema) is None]
        if not todo:
            continue
        reduced, target, _, _, n_max = pair_setup(train, scenario, seed, fraction, unit, budget, ratios)
        for method in todo:
            path = _cf_path(Path(out_dir), scenario, seed, method)
            if read_cached(path, train.schema) is None:  # the other process may have written it meanwhile
                write_text(path, generate_cfs(method, reduced, ReducedModel(classifier_kind, reduced, seed),
                                              target, n_max, seed, options, chunk))


@dataclass(frozen=True)
class GridSetup:
    """What every (scenario, seed) pair of one study shares (sent to the executor once)."""

    train: Dataset
    test: Dataset
    methods: tuple[str, ...]
    comparators: tuple[str, ...]
    ratios: tuple[float, ...]
    kind: object  # a fit_like recipe: a built-in kind or a loaded model
    options: dict
    fraction: float
    budget: int | None
    unit: str
    chunk: int
    #: seed -> test metrics of the full-train model (it depends on the seed only), filled by the pairs of one process
    baselines: dict = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class PairJob:
    """One (scenario, seed) pair: the (method, ratio) cells a previous run finished, and the aug_cfs tables it
    left (method -> table)."""

    scenario: str
    seed: int
    done: frozenset = frozenset()
    cached_cfs: dict = field(default_factory=dict)


@dataclass
class PairResult:
    """The pair's new cell records and the CSV text of the aug_cfs files it generated (method -> text)."""

    scenario: str
    seed: int
    cells: list[dict] = field(default_factory=list)
    cf_csv: dict[str, str] = field(default_factory=dict)


def run_pair(setup: GridSetup, job: PairJob) -> PairResult:
    """Every unfinished cell of one (scenario, seed): the reduced model is trained once (only when a cell or the
    CFs need it) and each CF method generates once; nothing is written here (the caller records the result)."""
    train, test, schema, seed = setup.train, setup.test, setup.train.schema, job.seed
    reduced, target, n_removed, n_base, n_max = pair_setup(train, job.scenario, seed, setup.fraction, setup.unit,
                                                           setup.budget, setup.ratios)
    base = {"scenario": job.scenario, "seed": seed, "augmented_class": target, "n_removed": n_removed,
            "n_train": len(train), "n_reduced": len(reduced), "unit": setup.unit}
    out = PairResult(job.scenario, seed)
    reduced_model = ReducedModel(setup.kind, reduced, seed)

    def cell(method: str, ratio: float, score, extra: dict | None = None) -> None:
        if (method, ratio) not in job.done:
            t0 = time.perf_counter()
            metrics = score()
            out.cells.append({**base, "method": method, "ratio": ratio, **(extra or {}), "metrics": metrics,
                              "seconds": round(time.perf_counter() - t0, 2)})

    def baseline() -> dict:
        if seed not in setup.baselines:
            clf = fit_like(setup.kind, train.X, train.y, schema, seed, groups=train.groups)
            setup.baselines[seed] = evaluate(clf, test.X, test.y)
        return setup.baselines[seed]

    cell("baseline", 0.0, baseline)
    cell("reduced", 0.0, lambda: evaluate(reduced_model(), test.X, test.y))
    for source in setup.methods + setup.comparators:
        if all((source, r) in job.done for r in setup.ratios):
            continue
        by_llm = None  # per valid CF of a calibrated LLM source: whether the LLM proposed its direction
        if source in setup.comparators:
            pool = oversample(source, reduced.X, reduced.y, target, n_max, schema, seed)
        else:
            table = job.cached_cfs.get(source)
            if table is None:
                out.cf_csv[source] = generate_cfs(source, reduced, reduced_model, target, n_max, seed,
                                                  setup.options, setup.chunk)
                table = cf_table(io.StringIO(out.cf_csv[source]), schema)  # as a resumed run reads the file
            pool = valid_cfs(table, schema)
            if "proposed_by" in table.columns:
                by_llm = (table.loc[table["status"] == "valid", "proposed_by"] == "llm").to_numpy()
        for ratio in setup.ratios:
            n_req = math.ceil(ratio * n_base)
            added = pool.iloc[:n_req]
            X_aug = pd.concat([reduced.X, added], ignore_index=True)
            y_aug = np.concatenate([reduced.y.to_numpy(), np.full(len(added), target)])
            groups = None
            if reduced.groups is not None:  # added rows form their own validation group
                groups = np.concatenate([reduced.groups.astype(str).to_numpy(),
                                         np.full(len(added), "__augmented__")])
            cell(source, ratio, lambda: evaluate(
                fit_like(setup.kind, X_aug, y_aug, schema, seed, groups=groups), test.X, test.y),
                {"n_requested": n_req, "n_added": len(added), "n_generated_for": n_max, "n_available": len(pool),
                 **({} if by_llm is None else {"n_added_from_llm": int(by_llm[:n_req].sum())})})
    return out


def _run_grid(setup: GridSetup, scenarios: list[str], seeds: list[int], out_dir: Path, executor: Executor) -> dict:
    """Run the unfinished pairs on the executor; record each pair's CFs and cells as it arrives. Returns every
    cell record of the folder by (scenario, seed, method, ratio)."""
    cells_path = out_dir / CELLS_FILE
    cells = {(r["scenario"], r["seed"], r["method"], r["ratio"]): r for r in read_jsonl(cells_path)
             if {"scenario", "seed", "method", "ratio", "metrics"} <= set(r)}
    needed = {("baseline", 0.0), ("reduced", 0.0)} | {(m, r) for m in setup.methods + setup.comparators
                                                       for r in setup.ratios}
    jobs, missing = [], 0
    for scenario in scenarios:
        for seed in seeds:
            done = frozenset((m, r) for (sc, sd, m, r) in cells if (sc, sd) == (scenario, seed)) & needed
            if done != needed:
                todo = [m for m in setup.methods if not all((m, r) in done for r in setup.ratios)]
                cached = {m: read_cached(_cf_path(out_dir, scenario, seed, m), setup.train.schema) for m in todo}
                jobs.append(PairJob(scenario, seed, done, {m: t for m, t in cached.items() if t is not None}))
                missing += len(needed - done)
    with progress_bar() as bar:
        total = len(scenarios) * len(seeds) * len(needed)
        task = bar.add_task(f"augmentation: {len(jobs)} pair(s)", total=total, completed=total - missing)
        for _, result in executor.map(partial(run_pair, setup), jobs):
            for method, text in result.cf_csv.items():
                write_text(_cf_path(out_dir, result.scenario, result.seed, method), text)
            for rec in result.cells:
                rec = json_safe(rec)
                cells[(rec["scenario"], rec["seed"], rec["method"], rec["ratio"])] = rec
                append_jsonl(cells_path, rec)
            bar.update(task, advance=len(result.cells), description=f"{result.scenario} seed {result.seed} done")
    return cells


def run_augmentation(train: Dataset, test: Dataset, methods, scenarios=("A", "B", "C"), seeds=(0, 1, 2, 3, 4),
                     ratios=(0.2, 0.4, 0.6, 0.8, 1.0), classifier_kind="nn",
                     out_dir: Path | str = Path("results/augmentation"), options: dict | None = None,
                     comparators=COMPARATORS, fraction: float = 0.5, budget: int | None = None,
                     unit: str = "auto", chunk: int = 10, executor: Executor | None = None) -> dict:
    """Run (or resume) the augmentation study and write augmentation.json, table4.csv/.md and Fig 7.

    fraction: share of the halved class(es) removed; budget: cap of the rows added at ratio 100 % (None = as many
    as removed, the paper's setting); unit: "participants" (remove whole participants' rows of the halved class;
    the default when the data has a group column), "rows" or "auto"; options: generator options; executor: where
    the (scenario, seed) pairs run (default: one after another in this process); classifier_kind: the classifier
    trained on every set, a built-in kind or a loaded model whose recipe is refit (models.external.fit_like).
    Returns the augmentation.json content.
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
        "dataset": train.name, "train_rows": len(train), "test_rows": len(test),
        "classifier": recipe_name(classifier_kind),
        "fraction": fraction, "budget": budget, "unit": unit,
        "generator_options": _fingerprint_options(options, out_dir)}))
    setup = GridSetup(train, test, tuple(methods), tuple(comparators), tuple(ratios), classifier_kind, options,
                      fraction, budget, unit, chunk)
    cells = _run_grid(setup, scenarios, seeds, out_dir, executor or LocalExecutor())
    summary = summarize(list(cells.values()), methods=methods + comparators, scenarios=scenarios, seeds=seeds,
                        ratios=ratios)
    summary["config"] = {"methods": methods, "comparators": comparators, "scenarios": scenarios, "seeds": seeds,
                         "ratios": ratios, "classifier": recipe_name(classifier_kind), "fraction": fraction,
                         "budget": budget,
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
