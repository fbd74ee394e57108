"""Table III: every CF method on the same test instances, metrics per original class.

Layout of `out_dir`:
  cfs/<method>.csv   one row per factual: factual_id, CF features, target/status/reason/target_proba/seconds (+extra);
                     written when a method finishes; a method whose CSV exists is not rerun (resume).
  benchmark.json     per method: status summary, outcome counts, metrics overall and per class; seed, versions, time.
  benchmark.csv      one row per method and class.
  benchmark.md       Table III layout: rows = methods, column groups = class 0 / class 1.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..data.dataset import Dataset
from ..errors import ConfigError
from ..generators.base import CFResult, GeneratorContext, available_methods, build_generator
from ..metrics import cf_metrics, per_class_metrics
from ..provenance import json_safe, package_versions

TABLE_METRICS = ("validity", "distance", "sparsity", "plausibility")
JSON_METRICS = ("n", "validity", "distance", "sparsity", "plausibility", "immutable_violations",
                "direction_violations", "seconds_per_valid_cf", "realism", "diversity")
BASE_COLUMNS = ("target", "status", "reason", "target_proba", "seconds")
MAX_OUTCOME_LEVELS = 10


def sample_factuals(test: Dataset, classifier, n_per_class: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    """Up to n test rows per class, stratified by the classifier's prediction (seeded); target = the other class.

    Stratifying by the prediction (not the true label) means every sampled row really is predicted as its
    class, so a method is never asked for a CF towards the class the model already predicts.
    """
    X = test.X
    pred = pd.Series(classifier.predict(X), index=X.index)
    picked = [grp.sample(n=min(n_per_class, len(grp)), random_state=seed).index
              for _, grp in pred.groupby(pred)]
    idx = X.index[X.index.isin(np.concatenate([np.asarray(p) for p in picked]))] if picked else X.index[:0]
    return X.loc[idx], (1 - pred.loc[idx]).astype(int)


def result_to_csv(result: CFResult, path: Path) -> None:
    """Write a CFResult (to_frame with a factual_id column)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = result.to_frame()
    frame.insert(0, "factual_id", result.factuals.index)
    tmp = path.with_suffix(".csv.tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)


def result_from_csv(path: Path, method: str, factuals: pd.DataFrame, schema) -> CFResult:
    """Read back a CSV written by result_to_csv, aligned with `factuals` (which must hold the same ids)."""
    df = pd.read_csv(path, dtype={c: str for c in schema.categorical} | {"reason": str})
    ids = pd.Index(df["factual_id"]).astype(factuals.index.dtype)
    if not ids.sort_values().equals(factuals.index.sort_values()):
        raise ConfigError(f"{path} holds CFs for other factuals than this run's sample "
                          "(different --n, seed or data); use another output directory")
    df.index = ids
    df = df.loc[factuals.index]
    extra_cols = [c for c in df.columns if c not in set(schema.feature_names) | set(BASE_COLUMNS) | {"factual_id"}]
    return CFResult(method, factuals, df["target"].astype(int), df[schema.feature_names], df["status"],
                    df["reason"].fillna(""), df["target_proba"].astype(float), df["seconds"].astype(float),
                    df[extra_cols] if extra_cols else pd.DataFrame())


def outcome_counts(result: CFResult) -> dict[str, dict]:
    """Counts of each non-numeric extra column's values (e.g. outcome: first_try/repaired/given_up).

    Free-text columns (more than MAX_OUTCOME_LEVELS distinct values, e.g. the LLM's raw answers) are left out:
    they stay in cfs/<method>.csv."""
    out = {}
    for c in result.extra.columns:
        col = result.extra[c]
        if col.nunique(dropna=True) > MAX_OUTCOME_LEVELS:
            continue
        if col.dtype == bool or col.dtype == object or isinstance(col.dtype, pd.CategoricalDtype):
            out[c] = {str(k): int(v) for k, v in col.value_counts(dropna=True).items()}
    return out


def _fmt(v, key: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.2f}" if key != "n" else str(int(v))


def write_tables(summary: dict, out_dir: Path) -> None:
    """benchmark.csv (long) and benchmark.md (Table III layout) from the benchmark.json content."""
    rows = []
    for method, res in summary["methods"].items():
        for cls, m in res["per_class"].items():
            rows.append({"method": method, "class": int(cls), **{k: m.get(k) for k in JSON_METRICS}})
    pd.DataFrame(rows).to_csv(out_dir / "benchmark.csv", index=False)
    classes = sorted({int(c) for r in summary["methods"].values() for c in r["per_class"]})
    names = summary.get("label_names", {})
    head = "| Method | " + " | ".join(f"{names.get(str(c), f'class {c}')} {k}" for c in classes
                                      for k in TABLE_METRICS) + " |"
    lines = [f"# Counterfactual benchmark (Table III layout; n per class = {summary['n_per_class']}, "
             f"seed {summary['seed']}, classifier {summary['classifier']})", "", head,
             "|---" * (1 + len(classes) * len(TABLE_METRICS)) + "|"]
    for method, res in summary["methods"].items():
        cells = [_fmt(res["per_class"].get(str(c), {}).get(k), k) for c in classes for k in TABLE_METRICS]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += ["", "validity = share of factuals with a CF predicted as the target; distance, sparsity and "
              "plausibility are means over those valid CFs (lower distance/sparsity is better)."]
    (out_dir / "benchmark.md").write_text("\n".join(lines) + "\n")


def run_benchmark(train: Dataset, test: Dataset, classifier, methods: list[str], n_per_class: int = 50,
                  seed: int = 0, out_dir: Path | str = Path("results/benchmark"), options: dict | None = None,
                  batch_size: int = 10) -> dict:
    """Run every method on the same sampled test factuals; write CSVs as methods finish and the tables at the
    end; methods whose CSV already exists are read back instead of rerun. Returns the benchmark.json content."""
    out_dir = Path(out_dir)
    (out_dir / "cfs").mkdir(parents=True, exist_ok=True)
    schema = train.schema
    ctx = GeneratorContext(schema, classifier, train.X, train.y, seed, dict(options or {}))
    unknown = [m for m in methods if m not in available_methods()]
    if unknown:  # fail fast, before any long run
        raise ConfigError(f"unknown counterfactual method(s) {unknown}; available: {', '.join(available_methods())}")
    factuals, targets = sample_factuals(test, classifier, n_per_class, seed)
    summary = {"seed": seed, "n_per_class": n_per_class, "classifier": getattr(classifier, "name", "?"),
               "label_names": {str(k): v for k, v in schema.label_names.items()},
               "n_factuals": int(len(factuals)), "options": dict(options or {}), "versions": package_versions(),
               "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"), "methods": {}}
    with Progress(TextColumn("{task.description:<18}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  transient=False) as progress:
        for method in methods:
            path = out_dir / "cfs" / f"{method}.csv"
            if path.exists():
                result = result_from_csv(path, method, factuals, schema)
                progress.stop_task(progress.add_task(f"{method} (cached)", total=len(factuals),
                                                     completed=len(factuals)))  # its clock stops at 0:00:00
            else:
                gen = build_generator(method, ctx)
                task = progress.add_task(method, total=len(factuals))
                parts = []
                for start in range(0, len(factuals), batch_size):
                    chunk = factuals.iloc[start:start + batch_size]
                    parts.append(gen.generate(chunk, targets.loc[chunk.index]))
                    progress.advance(task, len(chunk))
                result = CFResult.concat(method, parts)
                result_to_csv(result, path)
            summary["methods"][method] = {
                "summary": result.summary(), "outcomes": outcome_counts(result),
                "overall": cf_metrics(result, train.X, train.y, schema, classifier),
                "per_class": {str(c): m for c, m in
                              per_class_metrics(result, train.X, train.y, schema, classifier).items()}}
    summary = json_safe(summary)
    (out_dir / "benchmark.json").write_text(json.dumps(summary, indent=2))
    write_tables(summary, out_dir)
    return summary
