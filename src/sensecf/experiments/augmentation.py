"""Table IV and Fig 7: counterfactual data augmentation under label scarcity (the paper's X_aug).

For each scenario (A: class 1 halved, B: class 0 halved, C: both halved) and seed:
  baseline  = the classifier trained on the full training split,
  reduced   = the same kind trained on the reduced split,
  augmented = the reduced split plus counterfactuals OF THE REMOVED CLASS (the augmented class), generated with the
              reduced model from factuals of the other class and labelled with the target class; only VALID CFs are
              added, up to ratio x (number of removed rows of that class, or the `max_factuals` budget if lower).
In scenario C both classes lose rows; the augmented class is the minority class of the reduced split (class 1 on
a tie) and is recorded per seed as `augmented_class`. Counterfactuals are generated once per (scenario, seed,
method) for the largest ratio; smaller ratios use a prefix of the same list. Comparators beyond the paper:
random oversampling and SMOTE (SMOTENC with categorical features) of the same class, same counts.

Layout of `out_dir`:
  augmentation_config.json  the setup the cells belong to (a rerun with another setup is refused)
  augmentation_cells.jsonl   one line per finished (scenario, seed, method, ratio) cell; a rerun skips them
  aug_cfs/<scenario>-seed<k>-<method>.csv   generated CFs (all statuses), reused by a rerun
  augmentation.json          per scenario, method, ratio and seed: accuracy/precision/recall/f1/auc + aggregates
  table4.csv, table4.md      Table IV layout at ratio 100 % (or the largest ratio run)
  fig7_ratio_sweep.png       F1 vs ratio per method, one panel per scenario
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from scipy import stats

from ..data.dataset import Dataset
from ..errors import ConfigError
from ..generators.base import CFResult, GeneratorContext, available_methods, build_generator
from ..models.classifiers import evaluate, train_classifier
from ..provenance import json_safe, package_versions
from .benchmark import result_to_csv

METRICS = ("accuracy", "precision", "recall", "f1", "auc")
ABBREV = {"accuracy": "ACC", "precision": "PRE", "recall": "REC", "f1": "F1", "auc": "AUC"}
COMPARATORS = ("random-oversampling", "smote")
SCENARIOS = {"A": "class 1 halved", "B": "class 0 halved", "C": "both classes halved"}
CELLS_FILE = "augmentation_cells.jsonl"


# ---- arithmetic --------------------------------------------------------------------------------------------
def mean_ci(values) -> dict:
    """Mean, 95 % t-interval half-width and count of the finite values (NaN when none / half-width NaN if n=1)."""
    v = np.asarray([x for x in values if x is not None], dtype=float)
    v = v[np.isfinite(v)]
    n = len(v)
    if n == 0:
        return {"mean": float("nan"), "ci95": float("nan"), "n": 0}
    half = float(stats.t.ppf(0.975, n - 1) * v.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return {"mean": float(v.mean()), "ci95": half, "n": n}


def percent_change(new: float, ref: float) -> float:
    """(new - ref) / ref x 100; NaN when ref is 0 or missing."""
    if ref is None or new is None or not np.isfinite(ref) or not np.isfinite(new) or ref == 0:
        return float("nan")
    return (new - ref) / ref * 100.0


def pooled_recovery(f1_aug, f1_red, f1_base, n_boot: int = 2000, seed: int = 0, eps: float = 1e-9) -> dict:
    """Share of the lost F1 recovered over seeds: sum(F1_aug - F1_red) / sum(F1_base - F1_red) (the mean gain over
    the mean loss), with a 95 % percentile bootstrap interval over seeds (lo, hi). A per-seed ratio is unstable:
    a seed whose reduced model lost almost nothing divides by ~0. NaN when no F1 was lost on average."""
    gain = np.asarray(f1_aug, float) - np.asarray(f1_red, float)
    loss = np.asarray(f1_base, float) - np.asarray(f1_red, float)
    keep = np.isfinite(gain) & np.isfinite(loss)
    gain, loss = gain[keep], loss[keep]
    n = len(gain)
    out = {"mean": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": n}
    if n == 0 or loss.sum() <= eps:
        return out
    out["mean"] = float(gain.sum() / loss.sum())
    if n > 1:
        draws = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
        g, l = gain[draws].sum(axis=1), loss[draws].sum(axis=1)
        ratios = np.where(l > eps, g / np.where(l > eps, l, 1.0), np.nan)
        out["lo"], out["hi"] = (float(x) for x in np.nanpercentile(ratios, [2.5, 97.5]))
    return out


def augmented_class(scenario: str, reduced_y: pd.Series) -> int:
    """The class whose rows are added back: 1 in A, 0 in B, the reduced split's minority (1 on a tie) in C."""
    if scenario == "A":
        return 1
    if scenario == "B":
        return 0
    counts = reduced_y.value_counts()
    return 0 if counts.get(0, 0) < counts.get(1, 0) else 1


# ---- augmentation sources ----------------------------------------------------------------------------------
def oversample(kind: str, X: pd.DataFrame, y: pd.Series, target: int, n_new: int, schema, seed: int) -> pd.DataFrame:
    """`n_new` synthetic rows of class `target` by random oversampling or SMOTE/SMOTENC (imbalanced-learn),
    shuffled with the seed so that any prefix is a random subset."""
    from imblearn.over_sampling import SMOTE, SMOTENC, RandomOverSampler

    if n_new <= 0:
        return X.iloc[:0].copy()
    n_target = int((y == target).sum())
    strategy = {int(target): n_target + int(n_new)}
    Xc = X[schema.feature_names].copy()
    for c in schema.categorical:
        Xc[c] = Xc[c].astype(str)
    if kind == "random-oversampling":
        sampler = RandomOverSampler(sampling_strategy=strategy, random_state=seed)
    elif kind == "smote":
        k = min(5, n_target - 1)
        if k < 1:
            raise ConfigError(f"SMOTE needs at least 2 rows of class {target}; the reduced split has {n_target}")
        if schema.categorical:
            sampler = SMOTENC(categorical_features=list(schema.categorical), sampling_strategy=strategy,
                              k_neighbors=k, random_state=seed)
        else:
            sampler = SMOTE(sampling_strategy=strategy, k_neighbors=k, random_state=seed)
    else:
        raise ConfigError(f"unknown comparator {kind!r}; available: {', '.join(COMPARATORS)}")
    X_res, _ = sampler.fit_resample(Xc, np.asarray(y).astype(int))
    new = pd.DataFrame(X_res).iloc[len(Xc):].reset_index(drop=True)
    new.columns = schema.feature_names
    for f in schema.features:
        if f.kind == "integer":
            new[f.name] = new[f.name].astype(float).round()
    return new.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def _cf_path(out_dir: Path, scenario: str, seed: int, method: str) -> Path:
    return out_dir / "aug_cfs" / f"{scenario}-seed{seed}-{method}.csv"


def generate_cfs(method: str, reduced: Dataset, model, target: int, n_max: int, seed: int, options: dict,
                 path: Path, progress: Progress | None = None) -> pd.DataFrame:
    """Valid CFs of class `target` from up to `n_max` factuals of the other class in `reduced` (those the reduced
    model predicts as the other class, sampled with the seed); cached in `path` (all statuses). `model` is a
    callable returning the reduced-data classifier (only trained when the CFs are not cached)."""
    schema = reduced.schema
    if not path.exists():
        clf = model()
        pool = reduced.X[(reduced.y != target).to_numpy()]
        pool = pool[clf.predict(pool) != target]
        factuals = pool.sample(n=min(n_max, len(pool)), random_state=seed)
        gen = build_generator(method, GeneratorContext(schema, clf, reduced.X, reduced.y, seed, options))
        task = progress.add_task(f"  CFs {method}", total=len(factuals)) if progress else None
        parts = []
        for start in range(0, len(factuals), 5):
            chunk = factuals.iloc[start:start + 5]
            parts.append(gen.generate(chunk, target))
            if progress:
                progress.advance(task, len(chunk))
        if task is not None:
            progress.remove_task(task)
        if not parts:  # no factual of the other class: an empty table with the right columns
            pd.DataFrame(columns=["factual_id", *schema.feature_names, "status"]).to_csv(path, index=False)
        else:
            result_to_csv(CFResult.concat(method, parts), path)
    table = pd.read_csv(path, dtype={c: str for c in schema.categorical} | {"reason": str})
    return table.loc[table["status"] == "valid", schema.feature_names].reset_index(drop=True)


# ---- the study ---------------------------------------------------------------------------------------------
def _read_cells(path: Path) -> dict[tuple, dict]:
    cells = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                cells[(rec["scenario"], rec["seed"], rec["method"], rec["ratio"])] = rec
    return cells


def run_augmentation(train: Dataset, test: Dataset, methods, scenarios=("A", "B", "C"), seeds=(0, 1, 2, 3, 4),
                     ratios=(0.2, 0.4, 0.6, 0.8, 1.0), classifier_kind: str = "nn",
                     out_dir: Path | str = Path("results/augmentation"), options: dict | None = None,
                     comparators=COMPARATORS) -> dict:
    """Run (or resume) the augmentation study and write augmentation.json, table4.csv/.md and Fig 7.

    options: `max_factuals` is a budget: ratio 100 % adds min(removed rows, max_factuals) rows for every source
    (CF methods and comparators alike; the number actually added is recorded per cell as n_added), `fraction` (0.5) is the share removed; every other key goes to the
    generators. Returns the augmentation.json content.
    """
    out_dir = Path(out_dir)
    options = dict(options or {})
    max_factuals = options.pop("max_factuals", None)
    fraction = float(options.pop("fraction", 0.5))
    methods, comparators = list(methods), list(comparators)
    ratios = sorted({float(r) for r in ratios})
    scenarios = [str(s).upper() for s in scenarios]
    if not ratios or ratios[0] <= 0:
        raise ConfigError(f"augmentation ratios must be positive, got {ratios}")
    bad = [s for s in scenarios if s not in SCENARIOS]
    if bad:
        raise ConfigError(f"unknown scarcity scenario(s) {bad}; available: {', '.join(SCENARIOS)}")
    unknown = [m for m in methods if m not in available_methods()]
    if unknown:
        raise ConfigError(f"unknown counterfactual method(s) {unknown}; available: {', '.join(available_methods())}")
    bad = [c for c in comparators if c not in COMPARATORS]
    if bad:
        raise ConfigError(f"unknown comparator(s) {bad}; available: {', '.join(COMPARATORS)}")

    from ..data.split import scarcity_scenario

    (out_dir / "aug_cfs").mkdir(parents=True, exist_ok=True)
    _check_config(out_dir, json_safe({
        "dataset": train.name, "train_rows": len(train), "test_rows": len(test), "classifier": classifier_kind,
        "fraction": fraction, "max_factuals": max_factuals,
        "generator_options": {k: str(v) for k, v in sorted(options.items())}}))
    cells_path = out_dir / CELLS_FILE
    cells = _read_cells(cells_path)
    schema = train.schema
    sources = methods + comparators
    per_pair = 2 + len(sources) * len(ratios)
    baselines: dict[int, dict] = {}

    def record(rec: dict) -> None:
        rec = json_safe(rec)
        cells[(rec["scenario"], rec["seed"], rec["method"], rec["ratio"])] = rec
        with cells_path.open("a") as fh:
            fh.write(json.dumps(rec) + "\n")

    with Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  transient=False) as progress:
        overall = progress.add_task("augmentation cells", total=len(scenarios) * len(seeds) * per_pair)
        for scenario in scenarios:
            for seed in seeds:
                seed = int(seed)
                reduced, removed = scarcity_scenario(train, scenario, fraction=fraction, seed=seed)
                target = augmented_class(scenario, reduced.y)
                n_removed = int((removed.y == target).sum())
                base = {"scenario": scenario, "seed": seed, "augmented_class": target, "n_removed": n_removed,
                        "n_train": len(train), "n_reduced": len(reduced)}
                red_clf = None

                def reduced_model():
                    nonlocal red_clf
                    if red_clf is None:
                        red_clf = train_classifier(classifier_kind, reduced.X, reduced.y, schema, seed)
                    return red_clf

                def cell(method, ratio, score, extra=None):
                    """Compute and record one cell unless a previous run finished it."""
                    if (scenario, seed, method, ratio) not in cells:
                        t0 = time.perf_counter()
                        metrics = score()
                        record({**base, "method": method, "ratio": ratio, **(extra or {}), "metrics": metrics,
                                "seconds": round(time.perf_counter() - t0, 2)})
                    progress.advance(overall)

                def baseline_metrics():
                    if seed not in baselines:  # the full-train model depends on the seed only
                        baselines[seed] = evaluate(train_classifier(classifier_kind, train.X, train.y, schema,
                                                                    seed), test.X, test.y)
                    return baselines[seed]

                cell("baseline", 0.0, baseline_metrics)
                cell("reduced", 0.0, lambda: evaluate(reduced_model(), test.X, test.y))
                # with a budget, "100 %" means min(removed rows, budget) for every source alike (CFs and
                # comparators), so the sweep compares equal numbers of added rows
                n_base = min(n_removed, int(max_factuals)) if max_factuals else n_removed
                n_max = math.ceil(max(ratios) * n_base)
                for source in sources:
                    todo = [r for r in ratios if (scenario, seed, source, r) not in cells]
                    if not todo:
                        progress.advance(overall, len(ratios))
                        continue
                    progress.update(overall, description=f"{scenario} seed {seed} {source}")
                    if source in comparators:
                        pool, n_gen = oversample(source, reduced.X, reduced.y, target, n_max, schema, seed), n_max
                    else:
                        n_gen = n_max
                        pool = generate_cfs(source, reduced, reduced_model, target, n_gen, seed, options,
                                            _cf_path(out_dir, scenario, seed, source), progress)
                    for ratio in ratios:
                        n_req = math.ceil(ratio * n_base)
                        added = pool.iloc[:n_req]
                        X_aug = pd.concat([reduced.X, added], ignore_index=True)
                        y_aug = np.concatenate([reduced.y.to_numpy(), np.full(len(added), target)])
                        cell(source, ratio, lambda: evaluate(
                            train_classifier(classifier_kind, X_aug, y_aug, schema, seed), test.X, test.y),
                             {"n_requested": n_req, "n_added": len(added), "n_generated_for": n_gen,
                              "n_available": len(pool)})
    summary = summarize(list(cells.values()), methods=sources, scenarios=scenarios, seeds=[int(s) for s in seeds],
                        ratios=ratios)
    summary["config"] = {"methods": methods, "comparators": comparators, "scenarios": scenarios,
                         "seeds": [int(s) for s in seeds], "ratios": ratios, "classifier": classifier_kind,
                         "fraction": fraction, "max_factuals": max_factuals, "generator_options": options}
    summary["label_names"] = {str(k): v for k, v in schema.label_names.items()}
    summary["versions"] = package_versions()
    summary = json_safe(summary)
    (out_dir / "augmentation.json").write_text(json.dumps(summary, indent=2))
    write_table4(summary, out_dir)
    plot_ratio_sweep(summary, out_dir / "fig7_ratio_sweep.png")
    return summary


def _check_config(out_dir: Path, fingerprint: dict) -> None:
    """Cells of a folder are only reused by a run with the same classifier, data sizes, fraction and options."""
    path = out_dir / "augmentation_config.json"
    if path.exists():
        previous = json.loads(path.read_text())
        if previous != fingerprint:
            diff = sorted(k for k in set(previous) | set(fingerprint) if previous.get(k) != fingerprint.get(k))
            raise ConfigError(f"{out_dir} holds augmentation cells of a different setup ({', '.join(diff)} "
                              "differ); choose another output folder or delete it")
    else:
        path.write_text(json.dumps(fingerprint, indent=2))


# ---- aggregation and outputs ---------------------------------------------------------------------------
def ratio_key(ratio: float) -> str:
    """JSON key of a ratio: 0.2 -> "0.2", 1.0 -> "1"."""
    return f"{float(ratio):g}"


def _agg(per_seed: dict[int, dict], keys=METRICS) -> dict:
    return {k: mean_ci([m.get(k) for m in per_seed.values()]) for k in keys}


def summarize(records: list[dict], methods, scenarios, seeds, ratios) -> dict:
    """augmentation.json content from cell records: per scenario the baseline, reduced and per-method/ratio
    metrics per seed, their mean and 95 % CI, the reduced model's drop vs baseline (%), each augmented model's
    change vs reduced (%) (computed per seed, then aggregated) and the fraction of lost F1 recovered (pooled over
    seeds, see pooled_recovery)."""
    seeds = [int(s) for s in seeds]
    by = {(r["scenario"], int(r["seed"]), r["method"], float(r["ratio"])): r for r in records}
    out = {"metrics": list(METRICS), "scenarios": {}}
    for sc in scenarios:
        base = {s: by[(sc, s, "baseline", 0.0)]["metrics"] for s in seeds if (sc, s, "baseline", 0.0) in by}
        red = {s: by[(sc, s, "reduced", 0.0)]["metrics"] for s in seeds if (sc, s, "reduced", 0.0) in by}
        info = {s: by[(sc, s, "reduced", 0.0)] for s in red}
        drop = {s: {k: percent_change(red[s][k], base[s][k]) for k in METRICS} for s in red if s in base}
        entry = {"description": SCENARIOS.get(sc, sc),
                 "augmented_class": {str(s): r["augmented_class"] for s, r in info.items()},
                 "n_removed": {str(s): r["n_removed"] for s, r in info.items()},
                 "baseline": {"per_seed": {str(s): m for s, m in base.items()}, "aggregate": _agg(base)},
                 "reduced": {"per_seed": {str(s): m for s, m in red.items()}, "aggregate": _agg(red),
                             "drop_vs_baseline_pct": _agg(drop)},
                 "methods": {}}
        for method in methods:
            per_ratio = {}
            for ratio in ratios:
                got = {s: by[(sc, s, method, float(ratio))] for s in seeds if (sc, s, method, float(ratio)) in by}
                if not got:
                    continue
                aug = {s: r["metrics"] for s, r in got.items()}
                change = {s: {k: percent_change(aug[s][k], red[s][k]) for k in METRICS} for s in aug if s in red}
                paired = [s for s in aug if s in red and s in base]
                per_ratio[ratio_key(ratio)] = {
                    "per_seed": {str(s): {**r["metrics"], "n_added": r.get("n_added"),
                                          "n_requested": r.get("n_requested")} for s, r in got.items()},
                    "aggregate": _agg(aug), "change_vs_reduced_pct": _agg(change),
                    "lost_f1_recovered": pooled_recovery([aug[s]["f1"] for s in paired],
                                                         [red[s]["f1"] for s in paired],
                                                         [base[s]["f1"] for s in paired]),
                    "n_added": mean_ci([r.get("n_added") for r in got.values()]),
                    "n_requested": mean_ci([r.get("n_requested") for r in got.values()])}
            if per_ratio:
                entry["methods"][method] = per_ratio
        out["scenarios"][sc] = entry
    return out


def _pm(agg: dict | None, scale: float = 1.0, digits: int = 3) -> str:
    if not agg or agg.get("mean") is None or not np.isfinite(agg["mean"]):
        return "–"
    ci = agg.get("ci95")
    tail = f" ± {ci * scale:.{digits}f}" if ci is not None and np.isfinite(ci) else ""
    return f"{agg['mean'] * scale:.{digits}f}{tail}"


RECOVERED_NOTE = ("Lost F1 recovered = sum over seeds of (F1_aug - F1_red) / sum of (F1_base - F1_red) "
                  "[95 % bootstrap interval over seeds], '–' when no F1 was lost on average.")


def format_recovered(row: dict, digits: int = 2) -> str:
    """A Table IV row's lost-F1-recovered cell: "0.48 [0.21, 0.90]", or "–"."""
    mean, lo, hi = (row.get(k) for k in ("lost_F1_recovered", "lost_F1_recovered_lo", "lost_F1_recovered_hi"))
    if mean is None or not np.isfinite(mean):
        return "–"
    interval = f" [{lo:.{digits}f}, {hi:.{digits}f}]" if lo is not None and np.isfinite(lo) else ""
    return f"{mean:.{digits}f}{interval}"


def table4_rows(summary: dict, ratio: float | None = None) -> list[dict]:
    """Table IV rows (scenario, model, ACC..AUC mean and CI, F1 change vs reduced %, lost F1 recovered) at
    `ratio` (default: 1.0 when run, else the largest ratio)."""
    ratios = summary.get("config", {}).get("ratios") or [1.0]
    ratio = ratio if ratio is not None else (1.0 if 1.0 in ratios else max(ratios))
    rows = []
    for sc, entry in summary["scenarios"].items():
        models = [("baseline (full train)", entry["baseline"]), ("reduced", entry["reduced"])]
        models += [(m, res[ratio_key(ratio)]) for m, res in entry["methods"].items() if ratio_key(ratio) in res]
        for name, res in models:
            row = {"scenario": sc, "description": entry["description"], "model": name, "ratio": ratio}
            for k in METRICS:
                agg = res["aggregate"][k]
                row[ABBREV[k]], row[ABBREV[k] + "_ci95"] = agg["mean"], agg["ci95"]
            change = res.get("change_vs_reduced_pct") or res.get("drop_vs_baseline_pct") or {}
            row["F1_change_pct"] = change.get("f1", {}).get("mean")
            row["F1_change_pct_ci95"] = change.get("f1", {}).get("ci95")
            recovered = res.get("lost_f1_recovered", {})
            row["lost_F1_recovered"] = recovered.get("mean")
            row["lost_F1_recovered_lo"], row["lost_F1_recovered_hi"] = recovered.get("lo"), recovered.get("hi")
            row["n_added"] = res.get("n_added", {}).get("mean")
            rows.append(row)
    return rows


def table4_markdown(summary: dict) -> str:
    """Table IV as Markdown: mean ± 95 % CI over seeds."""
    rows = table4_rows(summary)
    cfg = summary.get("config", {})
    ratio = rows[0]["ratio"] if rows else 1.0
    lines = [f"# Augmentation under label scarcity (Table IV layout; ratio {ratio:.0%} of the removed rows, "
             f"classifier {cfg.get('classifier', '?')}, seeds {cfg.get('seeds', '?')})", "",
             "| Scenario | Model | ACC | PRE | REC | F1 | AUC | F1 change % | lost F1 recovered | CFs added |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ci = {k: r[k + "_ci95"] for k in ABBREV.values()}
        cells = [_pm({"mean": r[k], "ci95": ci[k]}) for k in ABBREV.values()]
        change = _pm({"mean": r["F1_change_pct"], "ci95": r["F1_change_pct_ci95"]}, digits=1)
        lost = format_recovered(r)
        added = "–" if r["n_added"] is None or not np.isfinite(r["n_added"]) else f"{r['n_added']:.0f}"
        lines.append(f"| {r['scenario']} ({r['description']}) | {r['model']} | " + " | ".join(cells)
                     + f" | {change} | {lost} | {added} |")
    lines += ["", "F1 change %: reduced vs baseline for the reduced row, augmented vs reduced otherwise. "
              f"{RECOVERED_NOTE} "
              "Scenario C augments the reduced split's minority class (see augmented_class in augmentation.json)."]
    return "\n".join(lines) + "\n"


def write_table4(summary: dict, out_dir: Path) -> None:
    """table4.csv (numbers) and table4.md (formatted)."""
    pd.DataFrame(table4_rows(summary)).to_csv(out_dir / "table4.csv", index=False)
    (out_dir / "table4.md").write_text(table4_markdown(summary))


def plot_ratio_sweep(summary: dict, path: Path) -> Path:
    """Fig 7: test F1 vs augmentation ratio per method (mean and 95 % CI band), one panel per scenario, with the
    reduced model (dashed) and the full-train baseline (dotted) as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scen = summary["scenarios"]
    fig, axes = plt.subplots(1, max(len(scen), 1), figsize=(4.6 * max(len(scen), 1), 3.8), sharey=True,
                             squeeze=False)
    colors = plt.get_cmap("tab10")
    for ax, (sc, entry) in zip(axes[0], scen.items()):
        for i, (method, res) in enumerate(entry["methods"].items()):
            rs = sorted(res, key=float)
            x = np.array([float(r) * 100 for r in rs])
            m = np.array([res[r]["aggregate"]["f1"]["mean"] for r in rs], dtype=float)
            ci = np.nan_to_num(np.array([res[r]["aggregate"]["f1"]["ci95"] for r in rs], dtype=float))
            ax.plot(x, m, marker="o", color=colors(i), label=method)
            ax.fill_between(x, np.clip(m - ci, 0, 1), np.clip(m + ci, 0, 1), color=colors(i), alpha=0.15)
        for key, style, label in (("reduced", "--", "reduced (no augmentation)"),
                                  ("baseline", ":", "baseline (full train)")):
            val = entry[key]["aggregate"]["f1"]["mean"]
            if val is not None and np.isfinite(val):
                ax.axhline(val, color="black", linestyle=style, linewidth=1.2, label=label)
        ax.set_title(f"Scenario {sc}: {entry['description']}")
        ax.set_xlabel("augmentation ratio (% of removed rows)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test F1 (mean, 95 % CI band)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3), frameon=False)
    fig.tight_layout(rect=(0, 0.16, 1, 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
