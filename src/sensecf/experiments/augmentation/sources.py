"""Where the added rows come from: counterfactuals of a CF method, or random oversampling / SMOTE(NC)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...cf import CFResult
from ...data.dataset import Dataset
from ...errors import ConfigError
from ...files import warn_damaged, write_csv
from ...generators.base import GeneratorContext, build_generator
from ..benchmark import result_to_csv

COMPARATORS = ("random-oversampling", "smote")


def augmented_class(scenario: str, reduced_y: pd.Series) -> int:
    """The class whose rows are added back: 1 in A, 0 in B, the reduced split's minority (1 on a tie) in C."""
    if scenario == "A":
        return 1
    if scenario == "B":
        return 0
    counts = reduced_y.value_counts()
    return 0 if counts.get(0, 0) < counts.get(1, 0) else 1


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


def generate_cfs(method: str, reduced: Dataset, model, target: int, n_max: int, seed: int, options: dict,
                 path: Path, progress=None, chunk: int = 10) -> pd.DataFrame:
    """Valid CFs of class `target` from up to `n_max` factuals of the other class in `reduced` (those the reduced
    model predicts as the other class, sampled with the seed); cached in `path` (all statuses; an unreadable
    cache is recomputed). `model` is a callable returning the reduced-data classifier (only trained when the CFs
    are not cached). Factuals go to the method `chunk` at a time (LLM backends batch them)."""
    schema = reduced.schema
    table = _read_cached(path, schema)
    if table is None:
        clf = model()
        pool = reduced.X[(reduced.y != target).to_numpy()]
        pool = pool[clf.predict(pool) != target]
        factuals = pool.sample(n=min(n_max, len(pool)), random_state=seed)
        gen = build_generator(method, GeneratorContext(schema, clf, reduced.X, reduced.y, seed, options))
        task = progress.add_task(f"  CFs {method}", total=len(factuals)) if progress else None
        parts = []
        for start in range(0, len(factuals), chunk):
            part = factuals.iloc[start:start + chunk]
            parts.append(gen.generate(part, target))
            if progress:
                progress.advance(task, len(part))
        if task is not None:
            progress.remove_task(task)
        if not parts:  # no factual of the other class: an empty table with the right columns
            write_csv(path, pd.DataFrame(columns=["factual_id", *schema.feature_names, "status"]))
        else:
            result_to_csv(CFResult.concat(method, parts), path)
        table = _read_cached(path, schema)
    return table.loc[table["status"] == "valid", schema.feature_names].reset_index(drop=True)


def _read_cached(path: Path, schema) -> pd.DataFrame | None:
    if not path.exists():
        return None
    try:
        table = pd.read_csv(path, dtype={c: str for c in schema.categorical} | {"reason": str})
        if not {"status", *schema.feature_names} <= set(table.columns):
            raise ValueError("missing columns")
        return table
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as e:
        warn_damaged(path, f"{type(e).__name__}: {e}")
        return None
