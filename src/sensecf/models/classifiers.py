"""Black-box classifiers behind one contract: predict_proba(DataFrame of schema features) -> (n, 2) array.

The paper's "NN" is a small multilayer perceptron; LR, RF and gradient boosting complete Fig. 1.
Categorical features arrive as strings and are one-hot encoded inside the pipeline, so every caller
(generators, metrics, reports) passes plain schema-shaped DataFrames.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import ThreadpoolController

from ..errors import ConfigError, DataError
from ..schema import Schema

# OpenMP/BLAS threads per fit or predict. These models are small: on a busy 2-core machine one thread was
# 10-100x faster than the default (histogram boosting: 58 s -> 0.6 s fit, 250 -> 35 ms per 1-row predict).
THREADS = 1
_THREADPOOLS = ThreadpoolController()

CLASSIFIER_KINDS = {
    "nn": "multilayer perceptron (the paper's NN)",
    "lr": "logistic regression",
    "rf": "random forest",
    "gb": "histogram gradient boosting",
}


def _estimator(kind: str, seed: int):
    if kind == "nn":
        return MLPClassifier(hidden_layer_sizes=(64, 32), alpha=1e-3, learning_rate_init=1e-3, max_iter=400,
                             early_stopping=True, validation_fraction=0.15, n_iter_no_change=20, random_state=seed)
    if kind == "lr":
        return LogisticRegression(max_iter=2000, random_state=seed)
    if kind == "rf":
        return RandomForestClassifier(n_estimators=300, min_samples_leaf=2, n_jobs=1, random_state=seed)
    if kind == "gb":
        return HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, random_state=seed)
    raise ConfigError(f"unknown classifier {kind!r}; available: {', '.join(CLASSIFIER_KINDS)}")


class Classifier:
    """A fitted (or fittable) sklearn pipeline bound to a schema."""

    def __init__(self, kind: str, schema: Schema, seed: int = 0):
        self.kind, self.schema, self.seed = kind, schema, seed
        pre = ColumnTransformer([
            ("num", StandardScaler(), schema.continuous),
            ("cat", OneHotEncoder(handle_unknown="ignore",
                                  categories=[schema[c].levels for c in schema.categorical]), schema.categorical),
        ])
        self.pipeline = Pipeline([("pre", pre), ("model", _estimator(kind, seed))])

    @property
    def name(self) -> str:
        return self.kind

    def _frame(self, X: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in self.schema.feature_names if c not in X.columns]
        if missing:
            raise DataError(f"classifier input lacks feature column(s) {missing}", column=missing[0])
        X = X[self.schema.feature_names].copy()
        for c in self.schema.categorical:
            X[c] = X[c].astype(str)
        for c in self.schema.continuous:
            X[c] = X[c].astype(float)
        return X

    def fit(self, X: pd.DataFrame, y) -> "Classifier":
        y = np.asarray(y).astype(int)
        if len(np.unique(y)) < 2:
            raise DataError(f"cannot train classifier {self.kind!r}: the training labels hold one class only")
        with _THREADPOOLS.limit(limits=THREADS):
            self.pipeline.fit(self._frame(X), y)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """(n, 2) array: P(label 0), P(label 1)."""
        with _THREADPOOLS.limit(limits=THREADS):
            return self.pipeline.predict_proba(self._frame(X))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            pickle.dump({"sklearn": sklearn.__version__, "classifier": self}, fh)
        return path

    @staticmethod
    def load(path: str | Path) -> "Classifier":
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"classifier file not found: {path}")
        with path.open("rb") as fh:
            blob = pickle.load(fh)
        if blob.get("sklearn") != sklearn.__version__:
            raise ConfigError(f"{path} was saved with scikit-learn {blob.get('sklearn')}, this is "
                              f"{sklearn.__version__}; retrain it")
        return blob["classifier"]


def train_classifier(kind: str, X: pd.DataFrame, y, schema: Schema, seed: int = 0) -> Classifier:
    """Build and fit a classifier of the given kind."""
    return Classifier(kind, schema, seed).fit(X, y)


def evaluate(clf: Classifier, X: pd.DataFrame, y) -> dict[str, float]:
    """accuracy, precision, recall, f1 (positive = label 1) and ROC AUC."""
    y = np.asarray(y).astype(int)
    proba = clf.predict_proba(X)[:, 1]
    pred = (proba >= 0.5).astype(int)
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "auc": float(roc_auc_score(y, proba)) if len(np.unique(y)) == 2 else float("nan"),
    }
