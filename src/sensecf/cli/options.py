"""Shared handling of the dataset options (--data/--schema/--seed), comma-separated lists, the LLM server check
and the "nothing but backend errors" exit code for CLI commands."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, TypeVar

import typer
from rich.console import Console

from ..data.aireadi import DEFAULT_DAYS, DEFAULT_PARTICIPANTS
from ..data.dataset import Dataset
from ..errors import ConfigError

T = TypeVar("T")

DATA_HELP = ("synthetic | AI-READI folder | uci-heart | CSV (with --schema, or FILE.schema.yaml beside it) | CGM/"
             "wearable export file or folder (docs/data-formats.md).")
SCHEMA_HELP = "Schema YAML for a CSV dataset."
EXECUTOR_HELP = "Where the work runs: local (this machine's processes) | ray (Ray tasks; docs/cluster.md)."
RAY_ADDRESS_HELP = "With --executor ray: the cluster to use (auto | HOST:PORT); default: a local Ray instance."
MODEL_HELP = ("Classifier to use instead of training one (--classifier is then ignored): the model.pkl of `sensecf "
              "train`, or a pickle/joblib file of a fitted scikit-learn estimator or pipeline with predict_proba "
              "over the schema's feature columns (labels 0/1), checked before any work. Use the --seed of its "
              "split so its training rows stay out of the test rows. Loading a pickle runs code from the file: "
              "only load models you trust.")


def data_option(default: Optional[str] = None):
    """The --data option (None means the synthetic AI-READI cohort)."""
    return typer.Option(default, help=DATA_HELP)


def schema_option():
    """The --schema option."""
    return typer.Option(None, help=SCHEMA_HELP)


def executor_option(default: Optional[str] = "local"):
    """The --executor option (None leaves the choice to a config file)."""
    return typer.Option(default, "--executor", help=EXECUTOR_HELP)


def ray_address_option():
    """The --ray-address option."""
    return typer.Option(None, "--ray-address", help=RAY_ADDRESS_HELP)


def dataset_from_options(data: str | None, schema: str | Path | None, seed: int = 0,
                         participants: int = DEFAULT_PARTICIPANTS, days: int = DEFAULT_DAYS,
                         demographics: str | Path | None = None,
                         cache_dir: str | Path | None = None) -> Dataset:
    """Load the dataset named by --data (default "synthetic") with --schema; prints nothing, raises SenseCFError."""
    from ..data.loading import load_dataset

    return load_dataset(data or "synthetic", schema=schema, seed=seed, participants=participants, days=days,
                        demographics=demographics, cache_dir=cache_dir)


def split_from_options(data: str | None, schema: str | Path | None, seed: int = 0,
                       test_size: float = 0.2, **kwargs) -> tuple[Dataset, Dataset]:
    """dataset_from_options + the patient-level split: (train, test)."""
    from ..data.split import patient_split

    return patient_split(dataset_from_options(data, schema, seed, **kwargs), test_size=test_size, seed=seed)


def model_option(help: str = MODEL_HELP):
    """The --model option (None: train a classifier of the --classifier kind)."""
    return typer.Option(None, help=help)


def classifier_for(model: Path | None, kind: str, train: Dataset, seed: int):
    """The --model file loaded and checked against the training split's schema and rows, else a newly trained
    classifier of `kind` (its early stopping validates on held-out participants, as in the study)."""
    if model is not None:
        from ..models.external import load_model

        return load_model(model, train.schema, train.X, split_seed=seed)
    from ..models.classifiers import train_classifier

    return train_classifier(kind, train.X, train.y, train.schema, seed, groups=train.groups)


def parse_list(text: str, cast: Callable[[str], T], option: str) -> list[T]:
    """'a,b,c' -> [cast(a), cast(b), cast(c)]; ConfigError naming the option on a bad item or an empty list."""
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise ConfigError(f"{option} needs at least one value")
    try:
        return [cast(t) for t in items]
    except ValueError:
        raise ConfigError(f"{option}: cannot read {text!r} as a comma-separated list of "
                          f"{getattr(cast, '__name__', 'values')}") from None


def check_llm_servers(methods: list[str], options: dict) -> None:
    """Before any work: the privacy check of every LLM method's server (generators/llm/resources.check_servers)."""
    from ..generators.llm.resources import check_servers

    check_servers(methods, options)


def exit_if_only_backend_errors(out_dir: Path, methods: list[str]) -> None:
    """Exit code 1, with a one-line summary, when a method found no counterfactual at all (no valid or invalid
    CF in out_dir/cfs/METHOD.csv) and its failures include backend errors (e.g. its LLM server never answered)."""
    import pandas as pd

    from ..cf import INVALID, VALID

    failed = {}
    for method in methods:
        path = out_dir / "cfs" / f"{method}.csv"
        if path.exists():
            table = pd.read_csv(path, usecols=["status", "reason"], dtype=str).fillna("")
            errors = table["reason"][table["reason"].str.startswith("backend error")]
            if len(errors) and not table["status"].isin([VALID, INVALID]).any():
                failed[method] = errors.iloc[0]
    if failed:
        Console(stderr=True, soft_wrap=True).print(
            f"[bold red]no counterfactual at all from {', '.join(failed)}:[/] every row failed with backend errors, "
            f"e.g. {next(iter(failed.values()))} (results: {out_dir})", highlight=False)
        raise typer.Exit(1)
