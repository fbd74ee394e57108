"""Where the added rows come from: counterfactuals of a CF method, or random oversampling / SMOTE(NC)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...cf import CFResult
from ...data.dataset import Dataset
from ...errors import ConfigError
from ...files import warn_damaged
from ...generators.base import GeneratorContext, build_generator

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
                 chunk: int = 10) -> str:
    """CFs of class `target` from up to `n_max` factuals of the other class in `reduced` (those the reduced model
    predicts as the other class, sampled with the seed), every status, as the CSV text of an aug_cfs file. `model`
    is a callable returning the reduced-data classifier. Factuals go to the method `chunk` at a time (LLM
    backends batch them)."""
    schema = reduced.schema
    clf = model()
    pool = reduced.X[(reduced.y != target).to_numpy()]
    pool = pool[clf.predict(pool) != target]
    factuals = pool.sample(n=min(n_max, len(pool)), random_state=seed)
    gen = build_generator(method, GeneratorContext(schema, clf, reduced.X, reduced.y, seed, options))
    parts = [gen.generate(factuals.iloc[start:start + chunk], target) for start in range(0, len(factuals), chunk)]
    if not parts:  # no factual of the other class: an empty table with the right columns
        return pd.DataFrame(columns=["factual_id", *schema.feature_names, "status"]).to_csv(index=False)
    result = CFResult.concat(method, parts)
    frame = result.to_frame()
    frame.insert(0, "factual_id", result.factuals.index)
    return frame.to_csv(index=False)


def cf_table(source, schema) -> pd.DataFrame:
    """An aug_cfs table (a CSV path or text buffer) as every run reads it; ValueError when it lacks columns."""
    table = pd.read_csv(source, dtype={c: str for c in schema.categorical} | {"reason": str})
    if not {"status", *schema.feature_names} <= set(table.columns):
        raise ValueError("missing columns")
    return table


def valid_cfs(table: pd.DataFrame, schema) -> pd.DataFrame:
    """The features of the valid CFs of an aug_cfs table, in its order."""
    return table.loc[table["status"] == "valid", schema.feature_names].reset_index(drop=True)


def read_cached(path: Path, schema) -> pd.DataFrame | None:
    """The aug_cfs table at `path`; None when there is none or it is unreadable (warned about: recomputed)."""
    if not path.exists():
        return None
    try:
        return cf_table(path, schema)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as e:
        warn_damaged(path, f"{type(e).__name__}: {e}")
        return None
