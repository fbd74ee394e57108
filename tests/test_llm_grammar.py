"""The answer grammar (constrained decoding) against what render_answer writes and parse_answer reads, checked
with xgrammar's matcher; plus one slow run of the real embedded model decoding under it."""

import numpy as np
import pandas as pd
import pytest
import torch
import xgrammar as xgr

from sensecf.cf.constraints import constraint_violations
from sensecf.data.aireadi.schema import aireadi_stress_schema
from sensecf.generators.base import GeneratorContext, build_generator
from sensecf.generators.llm.grammar import answer_grammar
from sensecf.generators.llm.parse import parse_answer
from sensecf.generators.llm.prompt import render_answer
from sensecf.models.classifiers import train_classifier
from sensecf.schema import FeatureSpec, Schema

SCHEMA = aireadi_stress_schema()
_COMPILER = xgr.GrammarCompiler(xgr.TokenizerInfo([]), cache_enabled=False)  # text-only matching


def accepts(grammar: str, text: str) -> bool:
    """Whether the grammar accepts exactly `text`."""
    matcher = xgr.GrammarMatcher(_COMPILER.compile_grammar(grammar), terminate_without_stop_token=True)
    return matcher.accept_string(text) and matcher.is_terminated()


def random_rows(schema: Schema, n: int, rng) -> pd.DataFrame:
    """n random factuals inside the schema's bounds and levels, at display precision."""
    cols = {}
    for f in schema.features:
        if f.is_categorical:
            cols[f.name] = rng.choice(f.levels, n)
        else:
            lo, hi = (b if b is not None else d for b, d in zip(f.bounds, (-500.0, 500.0)))
            cols[f.name] = [f.display_round(v) for v in rng.uniform(lo, hi, n)]
    return pd.DataFrame(cols)


def random_cf(fact: pd.Series, schema: Schema, target: int, rng) -> pd.Series:
    """A random counterfactual of `fact` inside the bounds that keeps the fixed features and the allowed
    directions, with at least one change."""
    cf = fact.copy()
    while cf.equals(fact):
        for f in schema.features:
            if f.immutable or rng.random() < 0.6:
                continue
            if f.is_categorical:
                cf[f.name] = rng.choice([lv for lv in f.levels if lv != fact[f.name]])
                continue
            way = f.allowed_direction(target, schema.desired_class)
            sign = {"increase": 1, "decrease": -1}.get(way, rng.choice([-1, 1]))
            step = 1.0 if f.kind == "integer" else 10.0 ** -f.precision
            cf[f.name] = f.display_round(np.clip(fact[f.name] + sign * step * rng.integers(1, 300),
                                                 *(b if b is not None else s for b, s in zip(f.bounds, (-1e6, 1e6)))))
    return cf


@pytest.mark.parametrize("style", ["paper", "compact"])
def test_grammar_accepts_what_render_answer_writes(style, heart_mini):
    rng = np.random.default_rng(0)
    for schema in (SCHEMA, heart_mini.schema):
        facts = random_rows(schema, 12, rng)
        for i, (_, fact) in enumerate(facts.iterrows()):
            target = i % 2
            cf = random_cf(fact, schema, target, rng)
            text = render_answer(cf, schema, fact if style == "compact" else None)
            grammar = answer_grammar(schema, fact, target, style)
            assert accepts(grammar, text), (grammar, text)
            assert parse_answer(text, schema, fact, partial=style == "compact").ok


def test_numbers_on_the_allowed_side_only():
    """A feature with no bounds (negative values allowed): every other number on the allowed side is accepted,
    the factual's own value and the other side are not."""
    rng = np.random.default_rng(1)
    values = [0.0, 5.0, -5.0, 12.3, 99.9, 100.0, -0.4, 1234.5, -80.2]
    for way in ("increase", "decrease", "any"):
        schema = Schema("s", [FeatureSpec("x", precision=1, direction=way),
                              FeatureSpec("age", "integer", immutable=True)])
        for v in values:
            fact = pd.Series({"x": v, "age": 40})
            grammar = answer_grammar(schema, fact, 0, "paper")
            for w in [*values, *np.round(v + rng.normal(0, 3, 12), 1), v + 0.1, v - 0.1, v + 10, v - 10]:
                w = round(float(w), 1)
                ok = (w > v and way != "decrease") or (w < v and way != "increase")
                text = render_answer(pd.Series({"x": w, "age": 40}), schema)
                assert accepts(grammar, text) == ok, (way, v, w)


def test_grammar_rejects_fixed_changes_forbidden_signs_unknown_features_and_copies():
    fact = random_rows(SCHEMA, 1, np.random.default_rng(2)).iloc[0]
    fact["mean_steps"] = 20.0
    paper, compact = (answer_grammar(SCHEMA, fact, 0, style) for style in ("paper", "compact"))
    walk = fact.copy()
    walk["mean_steps"] = 60.0
    assert accepts(paper, render_answer(walk, SCHEMA)) and accepts(compact, render_answer(walk, SCHEMA, fact))
    older = walk.copy()
    older["age"] = fact["age"] + 1
    assert not accepts(paper, render_answer(older, SCHEMA))
    assert not accepts(compact, render_answer(older, SCHEMA, fact))  # a line for the fixed Age
    sit = fact.copy()
    sit["mean_steps"] = 10.0  # towards moderate stress, steps may only rise
    assert not accepts(paper, render_answer(sit, SCHEMA))
    assert not accepts(compact, render_answer(sit, SCHEMA, fact))
    assert accepts(answer_grammar(SCHEMA, fact, 1, "compact"), render_answer(sit, SCHEMA, fact))  # mirrored
    assert not accepts(compact, "<new>\n- Coffee: +1.0\n</new>")
    assert not accepts(compact, "<new>\n</new>")  # no change
    assert not accepts(compact, "<new>\n- Mean steps (steps/min): +0.0\n</new>")
    assert not accepts(paper, render_answer(fact, SCHEMA))  # the factual copied unchanged
    assert not accepts(paper, render_answer(walk, SCHEMA) + "\nMore text")


def test_no_allowed_change_leaves_only_the_unchanged_answer():
    schema = Schema("s", [FeatureSpec("x", precision=1, direction="decrease", bounds=(0, 10)),
                          FeatureSpec("age", "integer", immutable=True)])
    fact = pd.Series({"x": 0.0, "age": 40})
    assert accepts(answer_grammar(schema, fact, 0, "paper"), render_answer(fact, schema))
    assert answer_grammar(schema, fact, 0, "compact") == 'root ::= "<new>\\n" "</new>"\n'


def test_invalid_style_is_an_error():
    with pytest.raises(ValueError, match="prompt style"):
        answer_grammar(SCHEMA, random_rows(SCHEMA, 1, np.random.default_rng(0)).iloc[0], 0, "free")


@pytest.mark.slow
@pytest.mark.parametrize("style", ["compact", "paper"])
def test_embedded_model_under_the_grammar_writes_only_readable_allowed_answers(style):
    torch.set_num_threads(1)
    rng = np.random.default_rng(3)
    X = random_rows(SCHEMA, 200, rng)
    y = pd.Series((X["mean_steps"] < 60).astype(int))
    clf = train_classifier("lr", X, y, SCHEMA, seed=0)
    facts = X[clf.predict(X) == 1].iloc[:3]
    options = {"candidates": 2, "temperature": 0.7, "repair_rounds": 0, "prompt_style": style}
    gen = build_generator("llm-zero-shot", GeneratorContext(SCHEMA, clf, X, y, seed=0, options=options))
    assert gen.constrained
    res = gen.generate(facts, 0)
    assert (res.extra["parse_failures"] == 0).all() and not res.extra["untagged"].any()
    proposals = [(row.factual, cf) for row in gen.last_rows for cf in row.proposals]
    assert len(proposals) == 6
    for fact, cf in proposals:
        broken = [p for p in constraint_violations(fact, cf, SCHEMA, 0) if "immutable" in p or "may only" in p]
        assert not broken, broken
