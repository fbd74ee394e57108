"""Calibration of LLM proposals by the classifier: on a model with a known (linear) boundary the calibrated CF
lies on the boundary, respects every constraint and drops the features the flip does not need."""

import numpy as np
import pandas as pd
import pytest

from sensecf.cf.search import DirectionSearch
from sensecf.generators.base import GeneratorContext, build_generator
from sensecf.generators.calibration import CalibratedGenerator, CalibrationOptions
from sensecf.generators.llm.generator import LLMGenerator
from sensecf.models.classifiers import train_classifier
from sensecf.schema import FeatureSpec, Schema

SCHEMA = Schema("lin", [FeatureSpec("a", bounds=(0, 10), precision=2, actionability="high"),
                        FeatureSpec("b", bounds=(0, 10), precision=2, actionability="low"),
                        FeatureSpec("c", "integer", bounds=(0, 100), precision=0, immutable=True)],
                desired_class=1)


@pytest.fixture(scope="module")
def linear():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.uniform(0, 10, 600), "b": rng.uniform(0, 10, 600),
                      "c": rng.integers(20, 80, 600).astype(float)})
    y = (X["a"] + X["b"] > 10).astype(int)
    clf = train_classifier("lr", X, y, SCHEMA, seed=0)
    return X, y, clf


def boundary_a(clf, b: float, c: float) -> float:
    """The value of a where the fitted logistic regression's logit is 0, for given b and c (analytic)."""
    pipe = clf.pipeline
    scaler = pipe.named_steps["pre"].named_transformers_["num"]
    w, b0 = pipe.named_steps["model"].coef_[0], pipe.named_steps["model"].intercept_[0]
    mean, std = scaler.mean_, scaler.scale_
    rest = w[1] * (b - mean[1]) / std[1] + w[2] * (c - mean[2]) / std[2] + b0
    return mean[0] - rest * std[0] / w[0]


class Scripted:
    """A TextBackend that answers every prompt with the same compact-style change list."""

    name, model_id, adapter_id, context_length = "scripted", "scripted", None, 8192

    def __init__(self, answers):
        self.answers, self.calls = answers, 0

    def generate(self, chats, settings):
        self.calls += len(chats)
        return [list(self.answers) for _ in chats]

    def count_tokens(self, chat):
        return 1


def calibrated(linear, answers, **opts):
    X, y, clf = linear
    ctx = GeneratorContext(SCHEMA, clf, X, y)
    inner = LLMGenerator(ctx, Scripted(answers), style="compact", repair_rounds=0, progress=False,
                         candidates=len(answers), temperature=0.7 if len(answers) > 1 else 0.0)
    return CalibratedGenerator(ctx, CalibrationOptions(**opts), inner)


def test_calibrated_cf_lies_on_the_boundary_and_drops_unneeded_features(linear):
    X, y, clf = linear
    facts = pd.DataFrame({"a": [3.0, 2.0], "b": [3.0, 4.0], "c": [40.0, 60.0]})
    assert (clf.predict(facts) == 0).all()
    gen = calibrated(linear, ["<new>\n- a: +5.0\n- b: +4.0\n</new>"])
    res = gen.generate(facts, 1)
    assert (res.status == "valid").all(), res.reason.tolist()
    for i in range(2):
        cf, f = res.counterfactuals.iloc[i], facts.iloc[i]
        assert cf["b"] == f["b"] and cf["c"] == f["c"]      # b (low actionability) was not needed; c is fixed
        assert cf["a"] == pytest.approx(boundary_a(clf, f["b"], f["c"]), abs=0.02)  # on the boundary
    assert (res.target_proba >= 0.5).all() and (res.target_proba < 0.52).all()     # minimal: just over it
    assert (res.extra["llm_calls"] == 1).all() and (res.extra["classifier_calls"] > 3).all()
    assert res.extra["proposal"].iloc[0] == "a: +5.00; b: +4.00"
    assert (res.extra["decoding"] == "plain").all()  # the inner LLM's decoding, recorded per row


def test_too_small_proposals_are_scaled_up_and_margin_is_respected(linear):
    facts = pd.DataFrame({"a": [3.0], "b": [3.0], "c": [40.0]})
    res = calibrated(linear, ["<new>\n- a: +0.5\n</new>"], margin=0.2).generate(facts, 1)
    assert res.status.iloc[0] == "valid" and res.target_proba.iloc[0] >= 0.7
    assert res.counterfactuals["a"].iloc[0] > boundary_a(linear[2], 3.0, 40.0)


def test_directions_against_the_rules_and_hopeless_ones_fail_with_a_reason(linear):
    facts = pd.DataFrame({"a": [3.0], "b": [3.0], "c": [40.0]})
    down = Schema("lin", [FeatureSpec("a", bounds=(0, 10), direction="decrease"), *SCHEMA.features[1:]],
                  desired_class=1)
    X, y, clf = linear
    search = DirectionSearch(down, clf, X)
    d = search.direction_from(0, facts.iloc[0], pd.Series({"a": 9.0, "b": 3.0, "c": 40.0}))
    assert not np.any(search.clean(d, 1).delta)   # a may only decrease: the proposal's direction is dropped
    res = calibrated(linear, ["<new>\n- a: -1.0\n</new>"], widen_rounds=0, fallback=False).generate(facts, 1)
    assert res.status.iloc[0] == "failed" and "no direction tried reaches the target" in res.reason.iloc[0]


def test_the_fallback_finds_the_actionable_cf_the_proposals_missed_and_says_so(linear):
    X, y, clf = linear
    facts = pd.DataFrame({"a": [3.0], "b": [3.0], "c": [40.0]})
    res = calibrated(linear, ["<new>\n- a: -1.0\n</new>"], widen_rounds=0).generate(facts, 1)
    assert res.status.iloc[0] == "valid" and res.extra["proposed_by"].iloc[0] == "fallback"
    cf = res.counterfactuals.iloc[0]
    assert cf["b"] == 3.0 and cf["c"] == 40.0       # actionable-only: the low-actionability b is left alone
    assert cf["a"] == pytest.approx(boundary_a(clf, 3.0, 40.0), abs=0.02)
    assert res.extra["calibrated_from"].iloc[0].startswith("fallback: ")


def test_reweighting_splits_a_change_over_the_proposed_features_at_the_lowest_cost():
    both = Schema("lin2", [FeatureSpec("a", bounds=(0, 10), precision=2, actionability="high"),
                           FeatureSpec("b", bounds=(0, 10), precision=2, actionability="high")], desired_class=1)
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"a": rng.uniform(0, 10, 800), "b": rng.uniform(0, 10, 800)})
    y = (X["a"] + X["b"] > 10).astype(int)
    clf = train_classifier("lr", X, y, both, seed=0)
    ctx = GeneratorContext(both, clf, X, y)
    facts = pd.DataFrame({"a": [3.0], "b": [3.0]})
    answer = ["<new>\n- a: +5.0\n- b: +0.5\n</new>"]   # mostly a: along it the boundary is far from cheapest
    res = {}
    for rounds in (0, 2):
        inner = LLMGenerator(ctx, Scripted(answer), style="compact", repair_rounds=0, progress=False, candidates=1)
        gen = CalibratedGenerator(ctx, CalibrationOptions(reweight_rounds=rounds, fallback=False), inner)
        res[rounds] = gen.generate(facts, 1)
        assert res[rounds].status.iloc[0] == "valid" and res[rounds].extra["proposed_by"].iloc[0] == "llm"
    moved = res[2].counterfactuals.iloc[0][["a", "b"]].astype(float) - facts.iloc[0]
    assert moved["a"] == pytest.approx(moved["b"], rel=0.25)   # equal weights, equal slopes: an even split
    cost = {r: np.hypot(*(res[r].counterfactuals.iloc[0][["a", "b"]].astype(float) - facts.iloc[0]))
            for r in res}
    assert cost[2] < 0.85 * cost[0]


def test_registered_names_and_actionable_restriction(linear):
    X, y, clf = linear
    ctx = GeneratorContext(SCHEMA, clf, X, y, options={"margin": 0.1})
    gen = build_generator("nice-sparsity@actionable", ctx)
    facts = pd.DataFrame({"a": [3.0], "b": [3.0], "c": [40.0]})
    res = gen.generate(facts, 1)
    assert gen.name == "nice-sparsity@actionable" and res.status.iloc[0] == "valid"
    assert res.counterfactuals["b"].iloc[0] == 3.0   # only the actionable feature may move


def test_pruning_keeps_a_categorical_switch_the_flip_needs():
    schema = Schema("cat", [FeatureSpec("a", bounds=(0, 10), precision=2, actionability="high"),
                            FeatureSpec("diet", "categorical", levels=["off", "on"], actionability="low")],
                    desired_class=1)
    rng = np.random.default_rng(2)
    X = pd.DataFrame({"a": rng.uniform(0, 10, 800), "diet": rng.choice(["off", "on"], 800)})
    y = (X["a"] + 5 * (X["diet"] == "on") > 10).astype(int)
    clf = train_classifier("lr", X, y, schema, seed=0)
    search = DirectionSearch(schema, clf, X)
    fact = schema.coerce(pd.DataFrame({"a": [3.0], "diet": ["off"]}))
    d = search.direction_from(0, fact.iloc[0], pd.Series({"a": 9.0, "diet": "on"}))
    found = search.run(fact, np.array([1]), [d])[0]
    assert found.cf is not None and found.cf["diet"] == "on"   # the switch is needed: a alone stops at 9
    assert clf.predict(found.cf.to_frame().T)[0] == 1
