"""DiCE / CFNOW / NICE wrappers on real UCI heart rows: constraints respected, failures reported per row."""

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import torch

from sensecf.errors import ConfigError
from sensecf.cf import FAILED, VALID
from sensecf.generators.base import GeneratorContext, build_generator
from sensecf.models.classifiers import train_classifier

from conftest import row_split

torch.set_num_threads(1)
METHODS = ["dice-random", "dice-genetic", "dice-kdtree", "cfnow-greedy", "cfnow-random",
           "nice-sparsity", "nice-proximity", "nice-plausibility"]
@pytest.fixture(scope="module")
def heart(heart_mini):
    train, test = row_split(heart_mini, 0)
    clf = train_classifier("nn", train.X, train.y, heart_mini.schema, seed=0)
    return train, test, clf


def _context(heart, **options):
    train, _, clf = heart
    return GeneratorContext(train.schema, clf, train.X, train.y, seed=0,
                            options={"cfnow_time_limit": 0.5, "cfnow_it_max": 200, "dice_sample_size": 300,
                                     "dice_max_iterations": 30, **options})


@pytest.mark.parametrize("method", METHODS)
def test_baseline_respects_constraints(heart, method):
    train, test, clf = heart
    facts = test.X.iloc[:3]
    target = 1 - clf.predict(facts)
    res = build_generator(method, _context(heart)).generate(facts, target)
    assert res.method == method and list(res.status.index) == list(facts.index)
    assert set(res.status) <= {"valid", "invalid", "failed"}
    assert (res.reason[res.status != VALID] != "").all()
    done = res.status != FAILED
    cfs, f = res.counterfactuals[done], facts[done]
    assert (cfs["age"] == f["age"]).all() and (cfs["sex"] == f["sex"]).all()
    assert (cfs["cholestoral"] <= f["cholestoral"] + 1e-9).all()
    valid = res.valid_mask
    if method != "dice-kdtree":  # kd-tree often finds no target-class row with the same age and sex
        assert valid.sum() >= 2, res.reason.to_dict()
    if valid.any():
        assert (clf.predict(res.counterfactuals[valid]) == res.target[valid].to_numpy()).all()
        assert (res.target_proba[valid] >= 0.5).all()


def test_per_row_failures_are_reported(heart):
    train, test, clf = heart
    facts = test.X.iloc[:4].copy()
    facts["cholestoral"] = facts["cholestoral"].astype(float)
    facts.iloc[0, facts.columns.get_loc("cholestoral")] = np.nan
    facts.iloc[1, facts.columns.get_loc("chest_pain_type")] = "Unknown pain"
    target = 1 - clf.predict(facts.iloc[2:])
    targets = np.array([0, 0, 1 - target[0], target[1]])   # row 3: target equals the current prediction
    res = build_generator("nice-sparsity", _context(heart)).generate(facts, targets)
    assert list(res.status) == ["failed", "failed", "failed", "valid"]
    assert "missing value in cholestoral" in res.reason.iloc[0]
    assert "'Unknown pain' of chest_pain_type not seen in training" in res.reason.iloc[1]
    assert "equals the current prediction" in res.reason.iloc[2]
    assert res.counterfactuals.iloc[:3].isna().all().all()


def test_package_exception_is_a_row_failure(heart, monkeypatch):
    _, test, clf = heart
    gen = build_generator("nice-proximity", _context(heart))
    calls = {"n": 0}
    original = gen._one

    def flaky(factual, target):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("package blew up")
        return original(factual, target)

    monkeypatch.setattr(gen, "_one", flaky)
    facts = test.X.iloc[:2]
    res = gen.generate(facts, 1 - clf.predict(facts))
    assert res.status.iloc[0] == "failed" and res.reason.iloc[0] == "RuntimeError: package blew up"
    assert res.status.iloc[1] == "valid"


def test_nice_projection_keeps_immutables_when_pool_differs(heart):
    """Every training row of the target class differs from the factual in age: the projected pool still gives
    a valid CF with the factual's age and sex."""
    _, test, clf = heart
    facts = test.X.iloc[:2].copy()
    facts["age"] = 77  # an age no training row has
    res = build_generator("nice-sparsity", _context(heart)).generate(facts, 1 - clf.predict(facts))
    ok = res.status != FAILED
    assert ok.any()
    assert (res.counterfactuals.loc[ok, "age"] == 77).all()


def test_unknown_method_is_config_error(heart):
    with pytest.raises(ConfigError, match="unknown counterfactual method 'dice-nope'"):
        build_generator("dice-nope", _context(heart))


def test_dice_permitted_range_follows_direction(heart):
    train, test, _ = heart
    gen = build_generator("dice-random", _context(heart))
    row = test.X.iloc[0]
    pr = gen.permitted_range(row)
    assert "age" not in pr and "sex" not in pr
    assert pr["cholestoral"][1] == pytest.approx(row["cholestoral"])
    assert pr["resting_blood_pressure"] == [pytest.approx(max(80, train.X["resting_blood_pressure"].min())),
                                            pytest.approx(min(220, train.X["resting_blood_pressure"].max()))]


OFFLINE_PROBE = """
import socket
attempts = []
def no_net(*a, **k):
    attempts.append(a)
    raise OSError('network disabled in test')
socket.socket.connect = no_net
socket.create_connection = no_net
socket.getaddrinfo = no_net
import nltk
nltk.data.path[:] = ['/nonexistent']
{imp}
print(f'attempts={{len(attempts)}}', cf.find_tabular.__name__)
"""


def test_cfnow_import_is_offline():
    """import_cfnow must not touch the network even though nltk's wordnet corpus is absent."""
    out = subprocess.run([sys.executable, "-c", OFFLINE_PROBE.format(imp=(
        "from sensecf.generators.baselines import import_cfnow; cf = import_cfnow()"))],
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "attempts=0 find_tabular" in out.stdout


def test_schema_copy_without_direction_allows_increase(heart):
    """Sanity check of the direction constraint itself: the same schema minus the constraint is less strict."""
    train, test, clf = heart
    free = dataclasses.replace(train.schema, features=[dataclasses.replace(f, direction="any")
                                                       for f in train.schema.features])
    ctx = dataclasses.replace(_context(heart), schema=free)
    gen = build_generator("dice-random", ctx)
    assert gen.permitted_range(test.X.iloc[0])["cholestoral"][1] == pytest.approx(train.X["cholestoral"].max())
