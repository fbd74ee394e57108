"""Table III: every CF method on the same test instances, metrics per original class.

Layout of `out_dir`:
  factuals.csv       the sampled factuals (factual_id, features, target), written when they are sampled.
  cfs/<method>.csv   one row per factual: factual_id, CF features, target/status/reason/target_proba/seconds (+extra);
                     written when a method finishes; a method whose CSV exists is not rerun (resume). While a
                     method runs, finished chunks go to cfs/<method>.partial.csv, so an interrupted method resumes
                     from its last chunk. An unreadable CSV is warned about and recomputed.
  cfs/<method>.setup.json  what the method's CFs depend on (method_setup: its typed options with the adapter's
                     fingerprint, the factuals and targets, the classifier's probabilities on them); a CSV or
                     partial CSV made under another setup (e.g. a retrained adapter) is named and recomputed.
  benchmark.json     per method: status summary, outcome counts, metrics overall and per class with 95 % bootstrap
                     intervals; seed, versions, time.
  benchmark.csv      one row per method and class.
  benchmark.md       Table III layout: rows = methods, column groups = class 0 / class 1; then violations and
                     seconds per valid CF.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from ..cf import STATUSES, CFResult
from ..console import console, progress_bar
from ..data.dataset import Dataset
from ..errors import ConfigError
from ..executor import Executor, LocalExecutor
from ..backends.cache import adapter_fingerprint
from ..files import read_json, warn_damaged, write_csv, write_json, write_text
from ..generators.base import GeneratorContext, build_generator, check_methods, method_options
from ..cf.search import actionable_feasible
from ..metrics import bootstrap_intervals, cf_metrics, cf_rows, per_class_metrics, robustness
from ..paths import default_adapter_dir
from ..provenance import json_safe, package_versions

TABLE_METRICS = ("validity", "distance", "sparsity", "plausibility")
EXTRA_TABLE_METRICS = ("cost", "actionable_share", "actionable_when_feasible", "from_llm", "noise_validity",
                       "retrain_validity", "constraint_violations", "seconds_per_valid_cf")
JSON_METRICS = ("n", "validity", "distance", "cost", "sparsity", "plausibility", "actionable_share",
                "actionable_only", "actionable_feasible", "actionable_when_feasible", "noise_validity",
                "retrain_validity", "from_llm", "immutable_violations", "direction_violations", "constraint_violations",
                "seconds_per_valid_cf", "realism", "diversity")
BASE_COLUMNS = ("target", "status", "reason", "target_proba", "seconds")
MAX_OUTCOME_LEVELS = 10
FACTUALS_FILE = "factuals.csv"


class DamagedFile(Exception):
    """A result file that cannot be read back (truncated, not a CSV, wrong columns)."""


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


def write_factuals(path: Path, factuals: pd.DataFrame, targets: pd.Series) -> None:
    """factuals.csv: factual_id, the feature columns and the target class."""
    frame = factuals.copy()
    frame.insert(0, "factual_id", factuals.index)
    frame["target"] = targets.to_numpy()
    write_csv(path, frame)


def read_factuals(path: Path, schema) -> tuple[pd.DataFrame, pd.Series]:
    """(factuals indexed by factual_id as text, targets) from factuals.csv."""
    frame = pd.read_csv(path, dtype={c: str for c in schema.categorical} | {"factual_id": str})
    frame.index = pd.Index(frame.pop("factual_id"), name=None)
    return frame[schema.feature_names], frame["target"].astype(int)


def result_to_csv(result: CFResult, path: Path) -> None:
    """Write a CFResult (to_frame with a factual_id column) atomically."""
    frame = result.to_frame()
    frame.insert(0, "factual_id", result.factuals.index)
    write_csv(path, frame)


def _read_cf_table(path: Path, schema) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, dtype={c: str for c in schema.categorical} | {"reason": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as e:
        raise DamagedFile(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    missing = [c for c in ("factual_id", *schema.feature_names, *BASE_COLUMNS) if c not in df.columns]
    if missing:
        raise DamagedFile(f"missing column(s) {missing}")
    return df[df["status"].isin(STATUSES) & df["factual_id"].notna()]  # a line cut short is not a row


def _as_result(df: pd.DataFrame, method: str, factuals: pd.DataFrame, schema) -> CFResult:
    extra_cols = [c for c in df.columns if c not in set(schema.feature_names) | set(BASE_COLUMNS) | {"factual_id"}]
    return CFResult(method, factuals, df["target"].astype(int), df[schema.feature_names], df["status"],
                    df["reason"].fillna(""), df["target_proba"].astype(float), df["seconds"].astype(float),
                    df[extra_cols] if extra_cols else pd.DataFrame())


def result_from_csv(path: Path, method: str, factuals: pd.DataFrame, schema) -> CFResult:
    """Read back a CSV written by result_to_csv, aligned with `factuals` (which must hold the same ids).
    DamagedFile when it cannot be read; ConfigError when it belongs to other factuals."""
    df = _read_cf_table(path, schema)
    try:
        ids = pd.Index(df["factual_id"]).astype(factuals.index.dtype)
    except (TypeError, ValueError):
        ids = pd.Index(df["factual_id"].astype(str))
    if len(ids) < len(factuals) and ids.isin(factuals.index).all():
        raise DamagedFile(f"holds {len(ids)} of the {len(factuals)} factuals (cut short)")
    if not ids.sort_values().equals(factuals.index.sort_values()):
        raise ConfigError(f"{path} holds CFs for other factuals than this run's sample "
                          "(different --n, seed or data); use another output directory")
    df.index = ids
    return _as_result(df.loc[factuals.index], method, factuals, schema)


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


def from_llm(result: CFResult, mask: np.ndarray, valid: np.ndarray) -> float:
    """Share of the valid CFs (of the rows in `mask`) whose direction an LLM proposed, for methods that record it
    (`proposed_by`: the calibrated rows, whose fallback search is the rest); NaN for other methods."""
    if "proposed_by" not in result.extra.columns or not valid.any():
        return float("nan")
    return float((result.extra["proposed_by"].to_numpy()[mask][valid] == "llm").mean())


def _fmt(v, key: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if key in ("n", "constraint_violations"):
        return str(int(v))
    return f"{v:.1f}" if key == "seconds_per_valid_cf" else f"{v:.2f}"


def _ci(m: dict, key: str) -> str:
    lo, hi = (m.get("ci95") or {}).get(key, [None, None])
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return ""
    return f" [{lo:.2f}, {hi:.2f}]"


def write_tables(summary: dict, out_dir: Path) -> None:
    """benchmark.csv (long) and benchmark.md (Table III layout) from the benchmark.json content."""
    rows = []
    for method, res in summary["methods"].items():
        for cls, m in res["per_class"].items():
            ci = m.get("ci95", {})
            rows.append({"method": method, "class": int(cls), **{k: m.get(k) for k in JSON_METRICS},
                         **{f"{k}_ci95_{end}": ci.get(k, [None, None])[i] for k in ci
                            for i, end in enumerate(("lo", "hi"))}})
    write_csv(out_dir / "benchmark.csv", pd.DataFrame(rows))
    classes = sorted({int(c) for r in summary["methods"].values() for c in r["per_class"]})
    names = summary.get("label_names", {})
    label = lambda c: names.get(str(c), f"class {c}")  # noqa: E731

    def table(keys, with_ci):
        head = "| Method | " + " | ".join(f"{label(c)} {k}" for c in classes for k in keys) + " |"
        lines = [head, "|---" * (1 + len(classes) * len(keys)) + "|"]
        for method, res in summary["methods"].items():
            cells = []
            for c in classes:
                m = res["per_class"].get(str(c), {})
                cells += [_fmt(m.get(k), k) + (_ci(m, k) if with_ci else "") for k in keys]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        return lines

    lines = [f"# Counterfactual benchmark (Table III layout; n per class = {summary['n_per_class']}, "
             f"seed {summary['seed']}, classifier {summary['classifier']})", "",
             *table(TABLE_METRICS, True), "", "## Cost, actionability, violations and time", "",
             *table(EXTRA_TABLE_METRICS, False), "",
             "valid = the CF is predicted as the target class AND breaks no constraint (immutables, directions, "
             "clinical bounds); validity = valid CFs / factuals [95 % bootstrap interval over factuals]. distance, "
             "sparsity, plausibility, cost (actionability-weighted distance) and actionable_share (share of "
             "changed features of medium/high actionability) are means over valid CFs (lower distance/sparsity/"
             "cost is better). actionable_when_feasible = share of the factuals for which an actionable-only CF "
             "exists (actionable_feasible in benchmark.json) that got a valid actionable-only CF. from_llm = share "
             "of a calibrated row's valid CFs whose direction the LLM proposed (the rest came from its fallback "
             "search: actionable features to their edges, nearest target-class training rows). noise_validity = "
             "share of valid CFs still valid under ±1 % noise of each range (20 draws); retrain_validity = under the "
             "classifier retrained with another seed. constraint_violations = generated CFs that break a "
             "constraint (never valid)."]
    write_text(out_dir / "benchmark.md", "\n".join(lines) + "\n")


def _generate_chunk(method: str, ctx: GeneratorContext, chunk: tuple[pd.DataFrame, pd.Series]) -> pd.DataFrame:
    """One unit of batch generation: the method built from (name, context) on one chunk of factuals; its rows
    as the CSV holds them (factual_id first)."""
    factuals, targets = chunk
    part = build_generator(method, ctx).generate(factuals, targets).to_frame()
    part.insert(0, "factual_id", factuals.index)
    return part


def _run_method(method: str, ctx: GeneratorContext, factuals: pd.DataFrame, targets: pd.Series, out_dir: Path,
                batch_size: int, bar, executor: Executor) -> CFResult:
    """Generate one method's CFs in chunks on the executor; finished chunks survive an interruption (partial
    CSV)."""
    schema = ctx.schema
    partial_path = out_dir / "cfs" / f"{method}.partial.csv"
    done = pd.DataFrame()
    if partial_path.exists():
        try:
            done = _read_cf_table(partial_path, schema)
            done = done[done["factual_id"].astype(str).isin(set(map(str, factuals.index)))]
        except DamagedFile as e:
            warn_damaged(partial_path, str(e))
            done = pd.DataFrame()
    have = set(done["factual_id"].astype(str)) if len(done) else set()
    todo = factuals[~pd.Index(map(str, factuals.index)).isin(have)]
    task = bar.add_task(method, total=len(factuals), completed=len(factuals) - len(todo))
    chunks = [(todo.iloc[start:start + batch_size], targets.loc[todo.index[start:start + batch_size]])
              for start in range(0, len(todo), batch_size)]
    for _, part in executor.map(partial(_generate_chunk, method, ctx), chunks):
        done = pd.concat([done, part], ignore_index=True) if len(done) else part.reset_index(drop=True)
        write_csv(partial_path, done)
        bar.advance(task, len(part))
    done.index = pd.Index(done["factual_id"].astype(str))
    done = done.loc[[str(i) for i in factuals.index]]
    done.index = factuals.index
    result = _as_result(done, method, factuals, schema)
    result_to_csv(result, out_dir / "cfs" / f"{method}.csv")
    partial_path.unlink(missing_ok=True)
    return result


def sample_setup(ctx: GeneratorContext, factuals: pd.DataFrame, targets: pd.Series) -> dict:
    """What every method's CFs of a run depend on: the factuals and targets, the seed, and a digest of the
    classifier's probabilities on the factuals (a retrained classifier changes it). Computed once per run."""
    proba = np.round(np.asarray(ctx.classifier.predict_proba(factuals), dtype=float), 6)
    return {"factuals": hashlib.sha256(pd.util.hash_pandas_object(factuals, index=True).to_numpy()
                                       .tobytes()).hexdigest()[:16],
            "targets": [int(t) for t in targets], "seed": ctx.seed,
            "classifier": hashlib.sha256(proba.tobytes()).hexdigest()[:16]}


def method_setup(method: str, ctx: GeneratorContext, sample: dict) -> dict:
    """What a method's CFs depend on, for the resume check: the run's `sample_setup` and the method's typed options
    (cache folder left out; a fine-tuned generator's adapter fingerprinted by content beside its path)."""
    opts = {k: v for k, v in vars(method_options(method, ctx.options)).items() if k != "cache_dir"}
    if "adapter" in opts and "fine-tuned" in method:  # only the fine-tuned generators load the adapter
        opts["adapter_fingerprint"] = adapter_fingerprint(str(opts["adapter"] or default_adapter_dir()))
    return json_safe({"method": method, "options": {k: str(v) for k, v in sorted(opts.items())}, **sample})


def _drop_stale(out_dir: Path, method: str, setup: dict) -> None:
    """Remove the method's CSV and partial CSV when they were made under another setup (named in a warning);
    then record the current setup."""
    setup_path = out_dir / "cfs" / f"{method}.setup.json"
    previous = read_json(setup_path)
    if previous == setup:
        return
    made = [p for p in (out_dir / "cfs" / f"{method}.csv", out_dir / "cfs" / f"{method}.partial.csv") if p.exists()]
    if made:
        what = ("no setup record" if previous is None else
                "other " + ", ".join(sorted(k for k in set(previous) | set(setup) if previous.get(k) != setup.get(k))))
        console().print(f"[yellow]{method}: {', '.join(p.name for p in made)} in {out_dir / 'cfs'} were made "
                        f"under {what}; recomputing[/]")
        for p in made:
            p.unlink()
    write_json(setup_path, setup)


def retrain(classifier, train: Dataset, seed: int):
    """The same classifier recipe trained on the same data with another seed: a sensecf Classifier's kind, a
    loaded model's cloned estimator (None for models that cannot be refit)."""
    from ..models.classifiers import Classifier
    from ..models.external import ExternalModel, fit_like

    if not (isinstance(classifier, Classifier) or (isinstance(classifier, ExternalModel) and classifier.refittable)):
        return None
    return fit_like(classifier, train.X, train.y, train.schema, seed=seed, groups=train.groups)


def run_benchmark(train: Dataset, test: Dataset, classifier, methods: list[str], n_per_class: int = 50,
                  seed: int = 0, out_dir: Path | str = Path("results/benchmark"), options: dict | None = None,
                  batch_size: int = 10, n_boot: int = 1000, executor: Executor | None = None) -> dict:
    """Run every method on the same sampled test factuals; write CSVs as methods finish and the tables at the
    end; methods whose CSV already exists are read back instead of rerun. Chunks of `batch_size` factuals of a
    method are generated on `executor` (default: one after another in this process; each chunk builds the
    method anew, so a chunk's CFs do not depend on where or after which chunk it ran). Returns the
    benchmark.json content."""
    out_dir = Path(out_dir)
    schema = train.schema
    options = dict(options or {})
    methods = check_methods(methods)
    for m in methods:  # fail fast on any bad option, before any long run
        method_options(m, options)
    (out_dir / "cfs").mkdir(parents=True, exist_ok=True)
    ctx = GeneratorContext(schema, classifier, train.X, train.y, seed, options)
    factuals, targets = sample_factuals(test, classifier, n_per_class, seed)
    sample = sample_setup(ctx, factuals, targets)
    write_factuals(out_dir / FACTUALS_FILE, factuals, targets)
    feasible = pd.Series(actionable_feasible(schema.coerce(factuals), targets, schema, classifier, train.X),
                         index=factuals.index)
    retrained = retrain(classifier, train, seed + 1)
    summary = {"seed": seed, "n_per_class": n_per_class, "classifier": getattr(classifier, "name", "?"),
               "label_names": {str(k): v for k, v in schema.label_names.items()},
               "n_factuals": int(len(factuals)), "options": options, "versions": package_versions(),
               "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"), "methods": {}}
    with progress_bar(width=18) as bar:
        for method in methods:
            path = out_dir / "cfs" / f"{method}.csv"
            _drop_stale(out_dir, method, method_setup(method, ctx, sample))
            result = None
            if path.exists():
                try:
                    result = result_from_csv(path, method, factuals, schema)
                    bar.stop_task(bar.add_task(f"{method} (cached)", total=len(factuals), completed=len(factuals)))
                except DamagedFile as e:  # its complete rows are reused like those of an interrupted method
                    warn_damaged(path, str(e))
                    path.replace(out_dir / "cfs" / f"{method}.partial.csv")
            if result is None:
                result = _run_method(method, ctx, factuals, targets, out_dir, batch_size, bar,
                                     executor or LocalExecutor())
            per_class = {}
            rows = cf_rows(result, train.X, schema, classifier)
            for c, m in per_class_metrics(result, train.X, train.y, schema, classifier).items():
                mask = ((1 - result.target.astype(int)) == c).to_numpy()
                part = result.subset(mask)
                feas = feasible.to_numpy()[mask]
                valid = rows["valid"].to_numpy()[mask]
                got = valid & (rows["actionable_only"] == 1).to_numpy()[mask]
                per_class[str(c)] = {
                    **m, **robustness(part, train.X, schema, classifier, retrained, seed=seed),
                    "actionable_feasible": float(feas.mean()) if len(feas) else float("nan"),
                    "actionable_when_feasible": float(got[feas].mean()) if feas.any() else float("nan"),
                    "from_llm": from_llm(result, mask, valid),
                    "ci95": bootstrap_intervals(part, train.X, schema, classifier, n_boot, seed)}
            summary["methods"][method] = {
                "summary": result.summary(), "outcomes": outcome_counts(result),
                "overall": cf_metrics(result, train.X, train.y, schema, classifier), "per_class": per_class}
    summary = json_safe(summary)
    write_json(out_dir / "benchmark.json", summary)
    write_tables(summary, out_dir)
    return summary
