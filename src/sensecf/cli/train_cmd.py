"""`sensecf train` (split, fit, evaluate, save a classifier) and `sensecf curve` (Fig. 1)."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Optional

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from ..errors import ConfigError
from .app import app
from .options import data_option, parse_list, schema_option, split_from_options

console = Console()
METRICS = ("accuracy", "precision", "recall", "f1", "macro_f1", "auc", "ece")


def _split_ids(train, test) -> pd.DataFrame:
    """One row per dataset row: its index label, participant (if any) and side (train/test)."""
    parts = []
    for side, ds in (("train", train), ("test", test)):
        part = pd.DataFrame({"row": ds.frame.index, "split": side})
        if ds.groups is not None:
            part.insert(1, ds.schema.group, ds.groups.to_numpy())
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


@app.command()
def train(
    out: Path = typer.Option(..., help="Output folder: model.pkl, metrics.json, split.csv, schema.yaml."),
    data: Optional[str] = data_option(),
    schema: Optional[str] = schema_option(),
    classifier: str = typer.Option("nn", help="Classifier: nn | lr | rf | gb."),
    seed: int = typer.Option(0, help="Seed of the synthetic data, the split and the classifier."),
    test_size: float = typer.Option(0.2, help="Share of participants (or rows) held out for testing."),
    participants: int = typer.Option(120, help="Participants of the synthetic cohort."),
    days: int = typer.Option(10, help="Days per participant of the synthetic cohort."),
) -> None:
    """Split the data by patient, train a classifier, evaluate it on the test set and save it."""
    import sklearn

    from ..models.classifiers import CLASSIFIER_KINDS, evaluate, train_classifier

    if classifier not in CLASSIFIER_KINDS:
        raise ConfigError(f"unknown classifier {classifier!r}; available: {', '.join(CLASSIFIER_KINDS)}")
    train_ds, test_ds = split_from_options(data, schema, seed, test_size, participants=participants, days=days)
    console.print(f"[bold]{train_ds.name.removesuffix('-train')}[/]: train {len(train_ds)} rows, "
                  f"test {len(test_ds)} rows")
    clf = train_classifier(classifier, train_ds.X, train_ds.y, train_ds.schema, seed=seed, groups=train_ds.groups)
    scores = {"train": evaluate(clf, train_ds.X, train_ds.y), "test": evaluate(clf, test_ds.X, test_ds.y)}
    out.mkdir(parents=True, exist_ok=True)
    clf.save(out / "model.pkl")
    _split_ids(train_ds, test_ds).to_csv(out / "split.csv", index=False)
    train_ds.schema.to_yaml(out / "schema.yaml")
    counts = {side: {int(k): int(v) for k, v in ds.y.value_counts().sort_index().items()}
              for side, ds in (("train", train_ds), ("test", test_ds))}
    (out / "metrics.json").write_text(json.dumps({
        "data": data or "synthetic", "dataset": train_ds.name.removesuffix("-train"), "classifier": classifier,
        "seed": seed, "test_size": test_size, "rows": {"train": len(train_ds), "test": len(test_ds)},
        "class_counts": counts, "metrics": scores, "notes": train_ds.notes,
        "versions": {"python": platform.python_version(), "scikit-learn": sklearn.__version__},
    }, indent=2))
    table = Table(title=f"{classifier} ({CLASSIFIER_KINDS[classifier]})")
    table.add_column("set")
    for m in METRICS:
        table.add_column(m, justify="right")
    for side, vals in scores.items():
        table.add_row(side, *(f"{vals[m]:.3f}" for m in METRICS))
    console.print(table)
    console.print(f"saved {out / 'model.pkl'}, metrics.json, split.csv, schema.yaml")


@app.command()
def curve(
    out: Path = typer.Option(..., help="Output folder: fig1_classifier_curve.csv/.png; rerun to resume."),
    data: Optional[str] = data_option(),
    schema: Optional[str] = schema_option(),
    seed: int = typer.Option(0, help="Seed of the synthetic data and the train/test split."),
    kinds: str = typer.Option("nn,lr,rf,gb", help="Comma-separated classifiers."),
    fractions: str = typer.Option("1.0,0.8,0.6,0.4,0.2", help="Shares of the training data."),
    seeds: str = typer.Option("0,1,2", help="Seeds of the subsamples and classifiers."),
    participants: int = typer.Option(120, help="Participants of the synthetic cohort."),
    days: int = typer.Option(10, help="Days per participant of the synthetic cohort."),
) -> None:
    """Fig. 1: test F1 of each classifier vs the share of training data (mean and 95 % CI over seeds)."""
    from ..experiments.classifier_curve import CURVE_CSV, CURVE_PNG, classifier_curve, summarize_curve

    kind_list = parse_list(kinds, str, "--kinds")
    fraction_list = parse_list(fractions, float, "--fractions")
    seed_list = parse_list(seeds, int, "--seeds")
    train_ds, test_ds = split_from_options(data, schema, seed, participants=participants, days=days)
    df = classifier_curve(train_ds, test_ds, kinds=kind_list, fractions=fraction_list, seeds=seed_list, out_dir=out)
    summary = summarize_curve(df, "macro_f1")
    table = Table(title="test macro-F1: mean ± 95 % CI half-width over seeds")
    table.add_column("classifier")
    fr = sorted(summary["fraction"].unique(), reverse=True)
    for f in fr:
        table.add_column(f"{f:.0%}", justify="right")
    for kind in kind_list:
        cells = summary[summary["kind"] == kind].set_index("fraction")
        table.add_row(kind, *(f"{cells.at[f, 'mean']:.3f} ± {cells.at[f, 'hi'] - cells.at[f, 'mean']:.3f}"
                              for f in fr))
    console.print(table)
    console.print(f"saved {out / CURVE_CSV} and {out / CURVE_PNG}")
