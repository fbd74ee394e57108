"""Fig. 1: test F1 of each classifier as the share of training data shrinks (seeded subsamples of participants —
fewer labelled people — where the data has a group column, else stratified rows)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy import stats

from ..console import progress_bar
from ..data.dataset import Dataset
from ..data.split import reduction_unit, subsample_fraction
from ..errors import ConfigError
from ..files import write_csv
from ..models.classifiers import CLASSIFIER_KINDS, evaluate, train_classifier

CURVE_CSV = "fig1_classifier_curve.csv"
CURVE_PNG = "fig1_classifier_curve.png"
METRICS = ("accuracy", "precision", "recall", "f1", "macro_f1", "f1_class0", "f1_class1", "auc", "brier", "ece")
COLUMNS = ["kind", "fraction", "seed", "unit", "n_train", "n_participants", "n_test", *METRICS]


def _done(path: Path, n_test: int) -> pd.DataFrame:
    """Rows of an earlier run that match this test set (a rerun resumes from them)."""
    if not path.exists():
        return pd.DataFrame(columns=COLUMNS)
    try:
        old = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        return pd.DataFrame(columns=COLUMNS)
    if list(old.columns) != COLUMNS:
        return pd.DataFrame(columns=COLUMNS)
    old = old.dropna(subset=["kind", "fraction", "seed", "n_test"])  # a line a kill cut short
    return old[old["n_test"] == n_test]


def summarize_curve(df: pd.DataFrame, metric: str = "macro_f1", confidence: float = 0.95) -> pd.DataFrame:
    """Per (kind, fraction): mean, std, n and the t-interval bounds of `metric` over seeds."""
    g = df.groupby(["kind", "fraction"])[metric]
    out = g.agg(["mean", "std", "count"]).reset_index()
    half = stats.t.ppf(0.5 + confidence / 2, np.maximum(out["count"] - 1, 1)) * out["std"] / np.sqrt(out["count"])
    half = half.fillna(0.0)
    out["lo"], out["hi"] = out["mean"] - half, out["mean"] + half
    return out


def plot_curve(df: pd.DataFrame, path: str | Path, metric: str = "macro_f1", title: str | None = None) -> Path:
    """Line per classifier: mean `metric` vs % of training data, shaded 95 % CI over seeds; saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarize_curve(df, metric)
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=150)
    for kind in df["kind"].unique():
        part = summary[summary["kind"] == kind].sort_values("fraction")
        x = part["fraction"] * 100
        (line,) = ax.plot(x, part["mean"], marker="o", label=f"{kind.upper()}: {CLASSIFIER_KINDS.get(kind, kind)}")
        ax.fill_between(x, part["lo"], part["hi"], color=line.get_color(), alpha=0.15, linewidth=0)
    n_seeds = df["seed"].nunique()
    unit = df["unit"].iloc[0] if "unit" in df and len(df) else "rows"
    label = {"macro_f1": "macro-F1", "f1": "F1 (class 1)"}.get(metric, metric)
    ax.set_xlabel(f"training {'participants' if unit == 'participants' else 'rows'} used (%)")
    ax.set_ylabel(f"test {label}")
    ax.set_title(title or f"Test {label} vs training-set size (mean, 95 % CI over {n_seeds} seed(s))",
                 fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _fit_cell(train: Dataset, test: Dataset, kind: str, fraction: float, seed: int, unit: str) -> dict:
    sub = subsample_fraction(train, fraction, seed, unit=unit)
    clf = train_classifier(kind, sub.X, sub.y, train.schema, seed=seed, groups=sub.groups)
    return {"kind": kind, "fraction": fraction, "seed": seed, "unit": unit, "n_train": len(sub),
            "n_participants": None if sub.groups is None else int(sub.groups.nunique()), "n_test": len(test),
            **{k: v for k, v in evaluate(clf, test.X, test.y).items() if k in METRICS}}


def classifier_curve(train: Dataset, test: Dataset, kinds=("nn", "lr", "rf", "gb"),
                     fractions=(1.0, 0.8, 0.6, 0.4, 0.2), seeds=(0, 1, 2),
                     out_dir: str | Path | None = None, jobs: int = 2, unit: str = "auto") -> pd.DataFrame:
    """Train each classifier kind on fractions of `train` (per seed; by participants or rows, see
    subsample_fraction) and score it on `test`.

    Returns one row per (kind, fraction, seed) with the test metrics (macro-F1 primary). With out_dir,
    rows are appended to fig1_classifier_curve.csv as they finish (a rerun resumes from it) and
    fig1_classifier_curve.png is drawn at the end. `jobs` fits run in parallel processes (joblib; each fit uses
    one BLAS thread), in any order: the result is sorted.
    """
    kinds = [str(k) for k in kinds]
    unknown = [k for k in kinds if k not in CLASSIFIER_KINDS]
    if unknown:
        raise ConfigError(f"unknown classifier(s) {unknown}; available: {', '.join(CLASSIFIER_KINDS)}")
    fractions = sorted({float(f) for f in fractions}, reverse=True)
    if not fractions or not all(0 < f <= 1 for f in fractions):
        raise ConfigError(f"fractions must lie in (0, 1], got {fractions}")
    seeds = [int(s) for s in seeds]
    unit = reduction_unit(train, unit)
    if not kinds or not seeds:
        raise ConfigError("the classifier curve needs at least one classifier kind and one seed")
    csv = Path(out_dir) / CURVE_CSV if out_dir is not None else None
    if csv is not None:
        csv.parent.mkdir(parents=True, exist_ok=True)
    done = _done(csv, len(test)) if csv is not None else pd.DataFrame(columns=COLUMNS)
    done = done[done["unit"] == unit]
    rows = done.to_dict("records")
    have = {(r["kind"], float(r["fraction"]), int(r["seed"])) for r in rows}
    if csv is not None:
        write_csv(csv, pd.DataFrame(rows, columns=COLUMNS))
    cells = [(s, f, k) for s in seeds for f in fractions for k in kinds if (k, f, s) not in have]
    with progress_bar(width=34) as progress:
        task = progress.add_task("classifier curve (Fig 1)", total=len(seeds) * len(fractions) * len(kinds),
                                 completed=len(seeds) * len(fractions) * len(kinds) - len(cells))
        fits = Parallel(n_jobs=min(jobs, max(len(cells), 1)), return_as="generator_unordered")(
            delayed(_fit_cell)(train, test, kind, fraction, seed, unit) for seed, fraction, kind in cells)
        for row in fits:
            rows.append(row)
            if csv is not None:
                pd.DataFrame([row], columns=COLUMNS).to_csv(csv, mode="a", header=False, index=False)
            progress.update(task, advance=1, description=f"{row['kind']} {row['fraction']:.0%} seed {row['seed']}")
    df = pd.DataFrame(rows, columns=COLUMNS)
    df = df[df["kind"].isin(kinds) & df["fraction"].isin(fractions) & df["seed"].isin(seeds)]
    df = df.sort_values(["kind", "fraction", "seed"], ascending=[True, False, True], ignore_index=True,
                        key=lambda col: col.map(kinds.index) if col.name == "kind" else col)
    if out_dir is not None:
        plot_curve(df, Path(out_dir) / CURVE_PNG)
    return df
