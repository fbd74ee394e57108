"""Shared handling of the dataset options (--data/--schema/--seed), comma-separated lists, the LLM server check
and the "nothing but backend errors" exit code for CLI commands."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, TypeVar

import typer
from rich.console import Console

from ..data.dataset import Dataset
from ..errors import ConfigError

T = TypeVar("T")

DATA_HELP = "synthetic | AI-READI folder | uci-heart | CSV (with --schema)."
SCHEMA_HELP = "Schema YAML for a CSV dataset."


def data_option(default: Optional[str] = None):
    """The --data option (None means the synthetic AI-READI cohort)."""
    return typer.Option(default, help=DATA_HELP)


def schema_option():
    """The --schema option."""
    return typer.Option(None, help=SCHEMA_HELP)


def dataset_from_options(data: str | None, schema: str | Path | None, seed: int = 0, participants: int = 120,
                         days: int = 10, demographics: str | Path | None = None,
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
