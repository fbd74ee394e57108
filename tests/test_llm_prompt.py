"""The paper's prompt: instance lines, fixed features, allowed changes, few-shot examples, chat template."""

import numpy as np
import pandas as pd
import pytest

from sensecf.generators.llm.prompt import (COMPACT_SYSTEM_PROMPT, SYSTEM_PROMPT, build_chat, nearest_examples,
                                           render_answer, render_instance)
from sensecf.data.aireadi.schema import aireadi_stress_schema

SCHEMA = aireadi_stress_schema()


def table(n: int = 60, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"awake_pct": rng.uniform(2, 20, n), "light_pct": rng.uniform(40, 60, n),
                      "deep_pct": rng.uniform(10, 20, n), "rem_pct": rng.uniform(15, 25, n),
                      "mean_steps": rng.uniform(0, 120, n), "mean_glucose": rng.uniform(80, 200, n),
                      "hyper_events": rng.integers(0, 3, n).astype(float),
                      "time_in_range_pct": rng.uniform(50, 100, n), "age": rng.integers(40, 70, n).astype(float),
                      "gender": rng.choice(["female", "male"], n), "medication": rng.choice(["none", "oral"], n),
                      "subgroup": rng.choice(["healthy", "oral_t2dm"], n)})
    return X, pd.Series((X["mean_steps"] < 50).astype(int))


def test_render_instance_lines():
    X, _ = table()
    text = render_instance(X.iloc[0], SCHEMA)
    rows = text.splitlines()
    assert len(rows) == 12 and all(r.startswith("- ") for r in rows)
    assert rows[0] == f"- Awake %: {X.iloc[0]['awake_pct']:.1f}"  # unit already in the display name
    assert rows[5] == f"- Mean glucose (mg/dL): {X.iloc[0]['mean_glucose']:.1f}"
    assert rows[6] == f"- Hyperglycemic events: {int(X.iloc[0]['hyper_events'])}"  # unit ends the name
    assert rows[9] == f"- Gender: {X.iloc[0]['gender']}"
    assert render_answer(X.iloc[0], SCHEMA) == f"<new>\n{text}\n</new>"


def test_build_chat_contents():
    X, y = table()
    ex = nearest_examples(X.iloc[0], X, y, 0, SCHEMA, k=3)
    chat = build_chat(X.iloc[0], 1, 0, SCHEMA, ex)
    assert [m["role"] for m in chat] == ["system", "user"]
    assert chat[0]["content"] == SYSTEM_PROMPT and "expert in counterfactual explanations" in SYSTEM_PROMPT
    user = chat[1]["content"]
    assert '"high stress" (y = 1)' in user and '"moderate stress" (y = 0)' in user
    assert "Fixed features (never change them): Age, Gender, Medication, Patient subgroup." in user
    assert "- Mean steps (steps/min): mean steps per minute over the 2-hour window; may only increase; " \
           "allowed range 0 to 200 steps/min" in user
    assert "- Age (years): age at the study visit; FIXED, never change" in user
    assert "- Gender: gender (controlled-access in AI-READI; 'unknown' when not provided); FIXED" in user
    assert 'Examples of instances labelled "moderate stress":' in user and "Example 3:" in user
    for _, row in ex.iterrows():
        assert render_instance(row, SCHEMA) in user
    assert user.index("Example 3:") < user.index(render_instance(X.iloc[0], SCHEMA))
    assert "<new>" in user and "</new>" in user
    zero = build_chat(X.iloc[0], 1, 0, SCHEMA)[1]["content"]
    assert "Example" not in zero and render_instance(X.iloc[0], SCHEMA) in zero


def test_nearest_examples_target_class_and_shared_immutables():
    X, y = table(200)
    fact = X.iloc[3]
    ex = nearest_examples(fact, X, y, 0, SCHEMA, k=4)
    assert len(ex) == 4 and (y.loc[ex.index] == 0).all()
    assert list(ex.columns) == SCHEMA.feature_names
    # rows sharing all four immutables come first when there are enough of them
    same = (X[["gender", "medication", "subgroup"]] == fact[["gender", "medication", "subgroup"]]).all(axis=1) & \
        (X["age"] == fact["age"]) & (y == 0)
    assert (same.loc[ex.index].to_numpy() == np.sort(same.loc[ex.index].to_numpy())[::-1]).all()
    assert same.loc[ex.index].sum() == min(4, same.sum())
    assert nearest_examples(fact, X, y, 0, SCHEMA, k=1).index[0] == ex.index[0]


def test_chat_template_roles_with_the_embedded_tokenizer():
    from transformers import AutoTokenizer

    from sensecf.backends.embedded import embedded_checkpoint

    X, y = table()
    tok = AutoTokenizer.from_pretrained(embedded_checkpoint("smollm2"))
    text = tok.apply_chat_template(build_chat(X.iloc[0], 1, 0, SCHEMA), add_generation_prompt=True, tokenize=False)
    assert text.index("<|im_start|>system\n" + SYSTEM_PROMPT) < text.index("<|im_start|>user\nTask:")
    assert text.rstrip().endswith("<|im_start|>assistant")


def test_rules_for_mutable_categoricals_and_integers():
    from sensecf.schema import FeatureSpec, Schema

    s = Schema("mini", [FeatureSpec("pain", "categorical", levels=["none", "mild"], description="chest pain"),
                        FeatureSpec("visits", "integer", "per year", direction="decrease", bounds=(0, None))])
    user = build_chat(pd.Series({"pain": "mild", "visits": 3.0}), 1, 0, s)[1]["content"]
    assert "- pain: chest pain; may change; one of: none, mild" in user
    assert "- visits (per year): visits; may only decrease; at least 0 per year; whole numbers" in user
    assert "Fixed features" not in user and '"class 1" (y = 1)' in user


def test_compact_chat_keeps_the_rules_in_a_few_lines():
    X, _ = table()
    chat = build_chat(X.iloc[0], 1, 0, SCHEMA, style="compact")
    assert [m["role"] for m in chat] == ["system", "user"] and chat[0]["content"] == COMPACT_SYSTEM_PROMPT
    lines = chat[1]["content"].splitlines()
    assert lines[0] == "Fixed: Age, Gender, Medication, Patient subgroup. Mean steps may only increase."
    assert lines[1] == 'Instance ("high stress", y = 1):'
    assert "\n".join(lines[2:-1]) == render_instance(X.iloc[0], SCHEMA)
    assert lines[-1] == 'Fewest changes to make it "moderate stress" (y = 0).'  # the wanted class comes last
    assert len(chat[1]["content"]) < len(build_chat(X.iloc[0], 1, 0, SCHEMA)[1]["content"]) / 3
    with pytest.raises(ValueError, match="prompt style"):
        build_chat(X.iloc[0], 1, 0, SCHEMA, style="poem")
