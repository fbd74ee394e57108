"""Bring your own model (`--model FILE`): the `sensecf train` output or any pickled / joblib scikit-learn
estimator or pipeline with predict_proba, checked against the schema before any work.

Checks, each failing with a ConfigError that names the file and the mismatch: the file unpickles; a sensecf
classifier has the schema's features, kinds and levels; any other model has predict_proba, classes 0 and 1 (when
it records `classes_`), the schema's feature columns (`feature_names_in_`, else `n_features_in_` and the
schema's column order), and answers a probe of a few rows with an (n, 2) array of probabilities.

A user's model sees the features as pandas reads the CSV they come from: numbers as numbers, integer-coded levels
of a categorical feature (0, 1, 2) as integers, other levels as text, in the column order it was fitted with.
Loading a pickle runs code from the file: only load models you trust.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..console import console
from ..errors import ConfigError
from ..schema import Schema
from .classifiers import Classifier, few_threads, train_classifier

TRUST_NOTE = "Loading a pickle runs code from the file: only load models you trust."
PROBE_ROWS = 5


class ExternalModel:
    """A user's fitted estimator behind the predict_proba contract (module docstring: how it sees the features)."""

    def __init__(self, estimator, schema: Schema, source: str):
        self.estimator, self.schema, self.source = estimator, schema, source
        names = getattr(estimator, "feature_names_in_", None)
        self.named = names is not None
        self.columns = [str(c) for c in names] if self.named else schema.feature_names
        self.codes = [f.name for f in schema.features
                      if f.is_categorical and all(re.fullmatch(r"-?[0-9]+", v) for v in f.levels)]

    @property
    def name(self) -> str:
        return f"{Path(self.source).name} ({type(self.estimator).__name__})"

    def model_input(self, X: pd.DataFrame):
        """The schema's features as the estimator takes them (a DataFrame if it was fitted on one)."""
        frame = self.schema.coerce(X)
        for c in self.codes:
            frame[c] = pd.to_numeric(frame[c], errors="coerce")
        frame = frame[self.columns]
        return frame if self.named else frame.to_numpy()

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """(n, 2) array: P(label 0), P(label 1)."""
        with few_threads():
            return np.asarray(self.estimator.predict_proba(self.model_input(X)), dtype=float)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)

    @property
    def refittable(self) -> bool:
        """Whether sklearn.base.clone can copy the estimator (an unfitted copy with the same parameters)."""
        return hasattr(self.estimator, "get_params")

    def refit(self, X: pd.DataFrame, y, seed: int = 0) -> "ExternalModel":
        """An unfitted copy of the estimator (same parameters, every random_state = seed) fitted on (X, y)."""
        from sklearn.base import clone

        est = clone(self.estimator)
        seeds = {k: seed for k in est.get_params() if k == "random_state" or k.endswith("__random_state")}
        est.set_params(**seeds)
        with few_threads():
            est.fit(self.model_input(X), np.asarray(y).astype(int))
        return ExternalModel(est, self.schema, self.source)


def fit_like(recipe, X: pd.DataFrame, y, schema: Schema, seed: int = 0, groups=None):
    """A classifier fitted on (X, y): `recipe` is a built-in kind (nn | lr | rf | gb), a sensecf Classifier (its
    kind and calibration are trained anew) or an ExternalModel (its estimator is cloned and refit)."""
    if isinstance(recipe, str):
        return train_classifier(recipe, X, y, schema, seed, groups=groups)
    if isinstance(recipe, Classifier):
        return train_classifier(recipe.kind, X, y, schema, seed, groups=groups, calibration=recipe.calibration)
    if isinstance(recipe, ExternalModel):
        return recipe.refit(X, y, seed)
    raise ConfigError(f"cannot train a classifier like {type(recipe).__name__}: give a kind or a loaded model")


def recipe_name(recipe) -> str:
    """How a fit_like recipe is named in result files."""
    return recipe if isinstance(recipe, str) else recipe.name


def load_model(path: str | Path, schema: Schema, probe: pd.DataFrame, split_seed: int | None = None,
               refit: bool = False):
    """The classifier in `path` (a sensecf Classifier or an ExternalModel), checked against `schema` and on the
    first rows of `probe` (module docstring). `split_seed`: the seed of the caller's split, compared with the
    seed of a `sensecf train` model (a warning when they differ: its training rows may be in the test split);
    `refit`: the caller trains the model's recipe on other data (fit_like), so its estimator must be clonable."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"model file not found: {path}")
    obj, version_note = _unpickle(path)
    if isinstance(obj, dict) and "classifier" in obj:
        obj = Classifier.from_saved(obj, path)
    if isinstance(obj, Classifier):
        _check_classifier_schema(obj.schema, schema, path)
        model = obj
        if split_seed is not None and obj.seed != split_seed:
            console().print(f"[yellow]warning:[/] {path} was trained with seed {obj.seed}, the split here uses "
                            f"seed {split_seed}: rows it was trained on may be in this test split (pass --seed "
                            f"{obj.seed})", highlight=False)
    else:
        _check_estimator(obj, schema, path)
        model = ExternalModel(obj, schema, str(path))
        if version_note:
            console().print(f"[yellow]warning:[/] {path}: {version_note}", highlight=False)
        if not model.named:
            console().print(f"[yellow]warning:[/] {path} was fitted without column names: its "
                            f"{len(schema.features)} inputs are taken to be the schema's features in this order: "
                            f"{', '.join(schema.feature_names)}", highlight=False)
    _probe(model, schema.coerce(probe.head(PROBE_ROWS)), path)
    if refit and isinstance(model, ExternalModel) and not model.refittable:
        raise ConfigError(f"{path}: a {type(model.estimator).__name__} cannot be refit (scikit-learn's clone needs "
                          "get_params), and this command trains the classifier on other data")
    return model


def _unpickle(path: Path):
    """(object, scikit-learn version note or '') from a pickle or joblib file."""
    import joblib
    from sklearn.exceptions import InconsistentVersionWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InconsistentVersionWarning)
        try:
            obj = joblib.load(path)
        except Exception as e:  # unpickling runs arbitrary code: anything can go wrong, and it all means "unusable"
            first = str(e).splitlines()[0] if str(e) else ""
            raise ConfigError(f"{path} is not a loadable model file ({type(e).__name__}: {first}); a model is "
                              "the model.pkl of `sensecf train` or a pickle/joblib file of a fitted estimator "
                              "whose code is importable here") from None
    notes = [str(w.message).splitlines()[0] for w in caught if issubclass(w.category, InconsistentVersionWarning)]
    return obj, (notes[0] + " (predictions may differ)" if notes else "")


def _check_classifier_schema(model: Schema, schema: Schema, path: Path) -> None:
    """A sensecf classifier's own schema must have the data's features, kinds and levels."""
    theirs, ours = set(model.feature_names), set(schema.feature_names)
    if theirs != ours:
        raise ConfigError(f"{path} was trained on features {model.feature_names}; the data's schema "
                          f"{schema.name!r} has {schema.feature_names} ({_difference(theirs, ours)})")
    for f in schema.features:
        g = model[f.name]
        if f.is_categorical != g.is_categorical:
            raise ConfigError(f"{path}: feature {f.name!r} is {g.kind} in the model, {f.kind} in the schema "
                              f"{schema.name!r}")
        unseen = sorted(set(f.levels or []) - set(g.levels or []))
        if unseen:
            raise ConfigError(f"{path}: feature {f.name!r} has level(s) {unseen} the model was not trained with "
                              f"(its levels: {g.levels})")


def _check_estimator(est, schema: Schema, path: Path) -> None:
    what = type(est).__name__
    if not callable(getattr(est, "predict_proba", None)):
        raise ConfigError(f"{path} holds a {what}, which has no predict_proba: sensecf explains classifiers that "
                          "give class probabilities")
    classes = getattr(est, "classes_", None)
    if classes is not None:
        try:
            ok = [int(c) for c in classes] == [0, 1] and all(float(c) == int(c) for c in classes)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ConfigError(f"{path}: the {what} predicts classes {list(classes)}; sensecf needs a binary "
                              f"classifier of the labels 0 and 1 (the column {schema.label!r})")
    names = getattr(est, "feature_names_in_", None)
    if names is not None:
        theirs, ours = {str(c) for c in names}, set(schema.feature_names)
        if theirs != ours:
            raise ConfigError(f"{path}: the {what} was fitted on columns {[str(c) for c in names]}; the schema "
                              f"{schema.name!r} has the features {schema.feature_names} ({_difference(theirs, ours)})")
        return
    n = getattr(est, "n_features_in_", None)
    if n is not None and int(n) != len(schema.features):
        raise ConfigError(f"{path}: the {what} takes {int(n)} input columns; the schema {schema.name!r} has "
                          f"{len(schema.features)} features ({', '.join(schema.feature_names)})")


def _difference(theirs: set, ours: set) -> str:
    parts = []
    if theirs - ours:
        parts.append(f"the model's {sorted(theirs - ours)} are not schema features")
    if ours - theirs:
        parts.append(f"the schema's {sorted(ours - theirs)} are not model inputs")
    return "; ".join(parts)


def _probe(model, rows: pd.DataFrame, path: Path) -> None:
    """predict_proba on a few rows of the data: an (n, 2) array of probabilities that sum to 1."""
    try:
        p = model.predict_proba(rows)
    except Exception as e:  # a user's model may raise anything on our rows; each means it does not fit the schema
        first = str(e).splitlines()[0] if str(e) else ""
        raise ConfigError(f"{path}: predict_proba failed on {len(rows)} row(s) of the data ({type(e).__name__}: "
                          f"{first[:300]}); the model must take the schema's feature columns") from None
    p = np.asarray(p)
    if p.ndim != 2 or p.shape != (len(rows), 2):
        raise ConfigError(f"{path}: predict_proba returned shape {p.shape} for {len(rows)} row(s); sensecf needs "
                          f"({len(rows)}, 2): P(label 0), P(label 1)")
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any() or not np.allclose(p.sum(axis=1), 1, atol=1e-6):
        raise ConfigError(f"{path}: predict_proba returned values that are not probabilities (e.g. {p[0].tolist()})")
