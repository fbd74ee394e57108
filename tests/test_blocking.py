"""Goal-relative directions and the reasons of failed counterfactuals: a CF towards the undesired class may raise
glucose, one towards the desired class may not, and a failure names the constraint that blocked it."""

import numpy as np
import pandas as pd
import pytest

from sensecf.cf import Verifier
from sensecf.generators.base import GeneratorContext, build_generator
from sensecf.schema import FeatureSpec, Schema

SCHEMA = Schema("glucose", [FeatureSpec("glucose", "integer", "mg/dL", bounds=(40, 400), precision=0, better="lower"),
                            FeatureSpec("age", "integer", "years", bounds=(18, 90), precision=0, immutable=True),
                            FeatureSpec("steps", bounds=(0, 20), precision=1, actionability="high")],
                desired_class=0, label_names={0: "in range", 1: "hyperglycaemia risk"})


class Threshold:
    """predict_proba of a logistic curve on one feature: P(class 1) rises with it (or falls, sign -1)."""

    def __init__(self, feature: str, at: float, sign: float = 1.0):
        self.feature, self.at, self.sign = feature, at, sign

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p1 = 1 / (1 + np.exp(-self.sign * (X[self.feature].to_numpy(dtype=float) - self.at) / 5))
        return np.column_stack([1 - p1, p1])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)


@pytest.fixture(scope="module")
def train():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"glucose": rng.integers(60, 300, 300).astype(float),
                      "age": rng.integers(20, 80, 300).astype(float), "steps": rng.uniform(0, 20, 300).round(1)})
    return X, pd.Series((X["glucose"] > 150).astype(int))


def test_a_cf_towards_the_undesired_class_may_raise_glucose_towards_the_desired_one_not(train):
    verifier = Verifier(SCHEMA, Threshold("glucose", 150))
    fact = pd.DataFrame({"glucose": [120.0, 200.0], "age": [50.0, 50.0], "steps": [5.0, 5.0]})
    raised = fact.assign(glucose=[180.0, 260.0])
    verdicts = verifier.check(fact, raised, [1, 0])
    assert verdicts.valid.tolist() == [True, False]   # towards class 1 raising glucose is allowed (mirrored)
    assert "glucose: may only decrease toward class 0 (better: lower): 200 -> 260" in verdicts.problems[1]
    lowered = fact.assign(glucose=[100.0, 140.0])
    verdicts = verifier.check(fact, lowered, [1, 0])
    assert verdicts.valid.tolist() == [False, True]
    assert "glucose: may only increase toward class 1 (better: lower): 120 -> 100" in verdicts.problems[0]


@pytest.mark.parametrize("clf, blocker", [
    # class 1 only below 100 mg/dL: reaching class 0 needs glucose raised, which `better: lower` forbids
    (Threshold("glucose", 100, sign=-1), "glucose may only decrease toward class 0 (better: lower)"),
    (Threshold("age", 50), "age is immutable"),  # only age (immutable) decides the class
])
def test_a_failed_cf_names_the_constraint_that_blocked_it(train, clf, blocker):
    X, _ = train
    y = pd.Series(clf.predict(X))
    fact = X[y == 1].head(3)
    gen = build_generator("nice-sparsity", GeneratorContext(SCHEMA, clf, X, y, 0))
    res = gen.generate(fact, 0)
    assert (res.status == "failed").all(), res.reason.tolist()
    assert res.reason.str.contains(f"blocked by: {blocker}", regex=False).all(), res.reason.tolist()


def test_a_method_that_misses_a_reachable_cf_is_told_the_constraints_leave_a_way(train):
    """dice-kdtree only picks training rows with the factual's immutable value: none exists for age 19, yet the
    constraints leave a way (lower glucose), and the reason says so rather than blaming a constraint."""
    X, _ = train
    clf = Threshold("glucose", 150)
    y = pd.Series(clf.predict(X))
    fact = pd.DataFrame({"glucose": [200.0], "age": [19.0], "steps": [5.0]})
    res = build_generator("dice-kdtree", GeneratorContext(SCHEMA, clf, X, y, 0)).generate(fact, 0)
    assert res.status.iloc[0] == "failed"
    assert "the constraints leave a way" in res.reason.iloc[0] and "blocked by" not in res.reason.iloc[0]
