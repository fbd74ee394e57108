"""One-call counterfactuals for a user's own table and model (the README's Python example)."""

from __future__ import annotations

import pandas as pd

from .cf import CFResult
from .generators.base import GeneratorContext, build_generator
from .schema import Schema


def generate_counterfactuals(method: str, model, schema: Schema, X_train: pd.DataFrame, y_train,
                             factuals: pd.DataFrame, target, options: dict | None = None, seed: int = 0) -> CFResult:
    """CFs of `factuals` towards `target` (a class, or one per row) with a registered method, for any `model`
    with predict_proba/predict over DataFrames holding the schema's columns (a fitted scikit-learn pipeline, or
    sensecf's Classifier). `options` as on the command line (generators/options.py)."""
    context = GeneratorContext(schema, model, X_train[schema.feature_names], pd.Series(y_train), seed,
                               dict(options or {}))
    return build_generator(method, context).generate(factuals[schema.feature_names], target)
