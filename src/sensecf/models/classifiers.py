"""Black-box classifiers behind one contract: predict_proba(DataFrame of schema features) -> (n, 2) array.

The paper's "NN" is a small multilayer perceptron; LR, RF and gradient boosting complete Fig. 1.
Categorical features arrive as strings and are one-hot encoded inside the pipeline, so every caller
(generators, metrics, reports) passes plain schema-shaped DataFrames.

Honest validation: the NN's early stopping (and any probability calibration) validates on held-out
participants when `groups` are given — never on windows of the participant-days it trains on (those share their
sleep features and the day's label, so a random split rewards memorising). Without groups it validates on a
stratified random share of the rows.
"""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (accuracy_score, brier_score_loss, f1_score, log_loss, precision_score, recall_score,
                             roc_auc_score)
from sklearn.model_selection import GroupShuffleSplit, StratifiedShuffleSplit
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import ThreadpoolController

from ..errors import ConfigError, DataError
from ..files import write_bytes
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
CALIBRATIONS = (None, "sigmoid", "isotonic")
VALIDATION_SHARE = 0.15
NN_MAX_EPOCHS, NN_PATIENCE = 300, 20
#: minibatches per NN epoch: the batch grows with the data, so early stopping checks the validation loss after a
#: similar number of updates whatever the training size (windows of one participant-day are near-duplicates, and
#: a fixed batch would give many more updates per epoch, and memorisation between checks, on large data)
NN_BATCHES_PER_EPOCH = 30
ECE_BINS = 10


def _estimator(kind: str, seed: int):
    if kind == "nn":  # trained epoch by epoch with its own (group-aware) early stopping, see Classifier.fit
        return MLPClassifier(hidden_layer_sizes=(64, 32), alpha=1e-3, learning_rate_init=1e-3, batch_size=200,
                             random_state=seed)
    if kind == "lr":
        return LogisticRegression(max_iter=2000, random_state=seed)
    if kind == "rf":
        return RandomForestClassifier(n_estimators=300, min_samples_leaf=2, n_jobs=1, random_state=seed)
    if kind == "gb":
        return HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, random_state=seed)
    raise ConfigError(f"unknown classifier {kind!r}; available: {', '.join(CLASSIFIER_KINDS)}")


def validation_split(y, groups=None, share: float = VALIDATION_SHARE, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train positions, validation positions): by group (no participant on both sides) when groups are given and
    there are enough of them, else a stratified row split."""
    y = np.asarray(y).astype(int)
    idx = np.arange(len(y))
    if groups is not None and len(np.unique(np.asarray(groups).astype(str))) >= 4:
        g = np.asarray(groups).astype(str)
        for attempt in range(20):  # both classes must appear on both sides
            tr, va = next(GroupShuffleSplit(n_splits=1, test_size=share, random_state=seed + attempt)
                          .split(idx, groups=g))
            if len(np.unique(y[tr])) == 2 and len(np.unique(y[va])) == 2:
                return tr, va
    return next(StratifiedShuffleSplit(n_splits=1, test_size=share, random_state=seed).split(idx, y))


class Classifier:
    """A fitted (or fittable) sklearn pipeline bound to a schema."""

    def __init__(self, kind: str, schema: Schema, seed: int = 0, calibration: str | None = None):
        if calibration not in CALIBRATIONS:
            raise ConfigError(f"calibration must be one of {CALIBRATIONS}, got {calibration!r}")
        self.kind, self.schema, self.seed, self.calibration = kind, schema, seed, calibration
        pre = ColumnTransformer([
            ("num", StandardScaler(), schema.continuous),
            ("cat", OneHotEncoder(handle_unknown="ignore",
                                  categories=[schema[c].levels for c in schema.categorical]), schema.categorical),
        ])
        self.pipeline = Pipeline([("pre", pre), ("model", _estimator(kind, seed))])
        self.calibrator = None
        self.fit_info: dict = {}

    @property
    def name(self) -> str:
        return self.kind

    def _frame(self, X: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in self.schema.feature_names if c not in X.columns]
        if missing:
            raise DataError(f"classifier input lacks feature column(s) {missing}", column=missing[0])
        return self.schema.coerce(X)

    def fit(self, X: pd.DataFrame, y, groups=None) -> "Classifier":
        """Fit on (X, y); `groups` (participant ids) make early stopping and calibration validate on held-out
        participants."""
        y = np.asarray(y).astype(int)
        if len(np.unique(y)) < 2:
            raise DataError(f"cannot train classifier {self.kind!r}: the training labels hold one class only")
        X = self._frame(X)
        needs_val = self.kind == "nn" or self.calibration is not None
        tr, va = validation_split(y, groups, seed=self.seed) if needs_val else (np.arange(len(y)), None)
        with _THREADPOOLS.limit(limits=THREADS):
            if self.kind == "nn":
                self._fit_nn(X, y, tr, va)
            else:
                self.pipeline.fit(X.iloc[tr], y[tr])
            if self.calibration is not None:
                self.calibrator = CalibratedClassifierCV(FrozenEstimator(self.pipeline), method=self.calibration)
                self.calibrator.fit(X.iloc[va], y[va])
        self.fit_info["validation"] = "none" if not needs_val else ("participants" if groups is not None else "rows")
        return self

    def _fit_nn(self, X: pd.DataFrame, y: np.ndarray, tr: np.ndarray, va: np.ndarray) -> None:
        """Epochs of partial_fit on the training positions; keeps the weights of the epoch with the lowest
        validation log-loss (patience NN_PATIENCE epochs)."""
        pre, net = self.pipeline.named_steps["pre"], self.pipeline.named_steps["model"]
        Z = pre.fit(X.iloc[tr]).transform(X)
        Z = Z.toarray() if hasattr(Z, "toarray") else Z
        z_tr, z_va = Z[tr], Z[va]
        net.set_params(batch_size=max(32, int(np.ceil(len(tr) / NN_BATCHES_PER_EPOCH))))
        rng = np.random.default_rng(self.seed)
        best, best_loss, since = None, np.inf, 0
        for epoch in range(NN_MAX_EPOCHS):
            order = rng.permutation(len(tr))
            net.partial_fit(z_tr[order], y[tr][order], classes=[0, 1])
            loss = log_loss(y[va], net.predict_proba(z_va), labels=[0, 1])
            if loss < best_loss - 1e-5:
                best, best_loss, since = copy.deepcopy((net.coefs_, net.intercepts_)), loss, 0
                self.fit_info.update(best_epoch=epoch + 1, validation_log_loss=round(float(loss), 5))
            else:
                since += 1
                if since >= NN_PATIENCE:
                    break
        net.coefs_, net.intercepts_ = best

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """(n, 2) array: P(label 0), P(label 1) (calibrated when the classifier was built with a calibration)."""
        model = self.calibrator if self.calibrator is not None else self.pipeline
        with _THREADPOOLS.limit(limits=THREADS):
            return model.predict_proba(self._frame(X))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)

    def save(self, path: str | Path) -> Path:
        """Pickle the classifier atomically (with the scikit-learn version it was fitted with)."""
        path = Path(path)
        write_bytes(path, pickle.dumps({"sklearn": sklearn.__version__, "classifier": self}))
        return path

    @staticmethod
    def load(path: str | Path) -> "Classifier":
        """A classifier saved by `save`; ConfigError names the file when it is missing, damaged or too old."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"classifier file not found: {path}")
        try:
            with path.open("rb") as fh:
                blob = pickle.load(fh)
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError, TypeError) as e:
            raise ConfigError(f"{path} is not a readable sensecf classifier ({type(e).__name__}: {e}); retrain "
                              "it") from None
        if not isinstance(blob, dict) or "classifier" not in blob:
            raise ConfigError(f"{path} is not a sensecf classifier file; retrain it")
        if blob.get("sklearn") != sklearn.__version__:
            raise ConfigError(f"{path} was saved with scikit-learn {blob.get('sklearn')}, this is "
                              f"{sklearn.__version__}; retrain it")
        return blob["classifier"]


def train_classifier(kind: str, X: pd.DataFrame, y, schema: Schema, seed: int = 0, groups=None,
                     calibration: str | None = None) -> Classifier:
    """Build and fit a classifier of the given kind (see Classifier.fit for `groups`)."""
    return Classifier(kind, schema, seed, calibration).fit(X, y, groups=groups)


def expected_calibration_error(y, p1, bins: int = ECE_BINS) -> float:
    """ECE of P(class 1): the row-weighted mean |observed rate - mean predicted| over `bins` equal-width bins."""
    y, p1 = np.asarray(y, dtype=float), np.asarray(p1, dtype=float)
    which = np.minimum((p1 * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            total += m.sum() * abs(y[m].mean() - p1[m].mean())
    return float(total / max(len(y), 1))


def reliability_table(y, p1, bins: int = ECE_BINS) -> list[dict]:
    """Per equal-width bin of P(class 1): rows, mean predicted, observed rate (for a reliability plot)."""
    y, p1 = np.asarray(y, dtype=float), np.asarray(p1, dtype=float)
    which = np.minimum((p1 * bins).astype(int), bins - 1)
    return [{"bin": b, "rows": int((which == b).sum()), "mean_predicted": float(p1[which == b].mean()),
             "observed": float(y[which == b].mean())} for b in range(bins) if (which == b).any()]


def evaluate(clf: Classifier, X: pd.DataFrame, y) -> dict[str, float]:
    """accuracy, precision/recall/f1 (positive = label 1), macro_f1 and per-class F1, ROC AUC, Brier score and
    expected calibration error."""
    y = np.asarray(y).astype(int)
    proba = clf.predict_proba(X)[:, 1]
    pred = (proba >= 0.5).astype(int)
    per_class = f1_score(y, pred, labels=[0, 1], average=None, zero_division=0)
    both = len(np.unique(y)) == 2
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "macro_f1": float(per_class.mean()),
        "f1_class0": float(per_class[0]), "f1_class1": float(per_class[1]),
        "auc": float(roc_auc_score(y, proba)) if both else float("nan"),
        "brier": float(brier_score_loss(y, proba, labels=[0, 1])),
        "ece": expected_calibration_error(y, proba),
    }
