"""Classifier contract on the real UCI heart data: train / evaluate / save / load for all four kinds."""

import pickle

import numpy as np
import pytest

from sensecf.errors import ConfigError, DataError
from sensecf.models.classifiers import CLASSIFIER_KINDS, Classifier, evaluate, train_classifier


@pytest.fixture(scope="module")
def split(uci_heart_split):
    return uci_heart_split


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(CLASSIFIER_KINDS))
def test_train_evaluate_save_load_roundtrip(split, kind, tmp_path):
    train, test = split
    clf = train_classifier(kind, train.X, train.y, train.schema, seed=0)
    m = evaluate(clf, test.X, test.y)
    assert set(m) == {"accuracy", "precision", "recall", "f1", "macro_f1", "f1_class0", "f1_class1", "auc", "brier",
                      "ece"}
    assert m["accuracy"] > 0.75 and m["auc"] > 0.85          # real signal on the held-out patients
    proba = clf.predict_proba(test.X)
    assert proba.shape == (len(test), 2) and np.allclose(proba.sum(axis=1), 1)
    assert (clf.predict(test.X) == proba.argmax(axis=1)).all()
    loaded = Classifier.load(clf.save(tmp_path / "m.pkl"))
    assert loaded.kind == kind and loaded.schema.feature_names == train.schema.feature_names
    np.testing.assert_array_equal(loaded.predict_proba(test.X), proba)
    again = train_classifier(kind, train.X, train.y, train.schema, seed=0)
    np.testing.assert_allclose(again.predict_proba(test.X), proba)   # seeded


def test_contract_errors(split, tmp_path):
    train, _ = split
    with pytest.raises(ConfigError, match="unknown classifier 'svm'"):
        train_classifier("svm", train.X, train.y, train.schema)
    one = train.y == 1
    with pytest.raises(DataError, match="one class"):
        train_classifier("lr", train.X[one], train.y[one], train.schema)
    clf = train_classifier("lr", train.X, train.y, train.schema)
    with pytest.raises(DataError, match="max_hr"):
        clf.predict_proba(train.X.drop(columns=["max_hr"]))
    path = clf.save(tmp_path / "lr.pkl")
    blob = pickle.loads(path.read_bytes())
    blob["sklearn"] = "0.1"
    path.write_bytes(pickle.dumps(blob))
    with pytest.raises(ConfigError, match="retrain"):
        Classifier.load(path)
    with pytest.raises(ConfigError, match="not found"):
        Classifier.load(tmp_path / "none.pkl")


def test_early_stopping_validates_on_held_out_participants():
    """Two participants whose days are duplicated many times: a row split would put copies of the same days on
    both sides of the early-stopping split; the group split never does."""
    from sensecf.models.classifiers import validation_split

    groups = np.repeat([f"p{i}" for i in range(20)], 30)
    y = np.tile([0, 1], 300)
    tr, va = validation_split(y, groups, seed=0)
    assert not set(groups[tr]) & set(groups[va]) and len(set(groups[va])) >= 2
    rows_tr, rows_va = validation_split(y, None, seed=0)
    assert set(groups[rows_tr]) & set(groups[rows_va])   # without groups the same participants are on both sides


def test_macro_f1_and_calibration_metrics_are_exact():
    class Fixed:
        def predict_proba(self, X):
            p = X["p"].to_numpy(dtype=float)
            return np.column_stack([1 - p, p])

    import pandas as pd

    X = pd.DataFrame({"p": [0.9, 0.8, 0.3, 0.2, 0.6, 0.1]})
    y = [1, 1, 0, 0, 0, 1]
    m = evaluate(Fixed(), X, y)
    # predictions 1 1 0 0 1 0: class 1 precision 2/3 recall 2/3; class 0 precision 2/3 recall 2/3
    assert m["f1_class1"] == pytest.approx(2 / 3) and m["f1_class0"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx(2 / 3) and m["f1"] == pytest.approx(2 / 3)
    assert m["brier"] == pytest.approx(np.mean((np.array([0.9, 0.8, 0.3, 0.2, 0.6, 0.1]) - y) ** 2))
    # bins of 0.1: each prediction alone in its bin -> ECE = mean |y - p|
    assert m["ece"] == pytest.approx(np.mean(np.abs(np.array(y) - [0.9, 0.8, 0.3, 0.2, 0.6, 0.1])))
