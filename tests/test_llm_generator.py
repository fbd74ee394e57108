"""LLMGenerator's verify-and-repair loop with a scripted backend, the registry factories, narratives, and one
slow end-to-end run with the real embedded model."""

import time

import numpy as np
import pandas as pd
import pytest
import torch

from sensecf.backends.base import SamplingSettings
from sensecf.errors import ConfigError
from sensecf.cf import FAILED, INVALID, VALID
from sensecf.generators.base import GeneratorContext, build_generator
from sensecf.experiments.intervention import llm_narrative
from sensecf.generators.llm import resources as gen_mod
from sensecf.generators.llm.generator import LLMGenerator
from sensecf.generators.llm.prompt import COMPACT_SYSTEM_PROMPT, render_answer
from sensecf.models.classifiers import train_classifier
from sensecf.data.aireadi.schema import aireadi_stress_schema

torch.set_num_threads(1)
SCHEMA = aireadi_stress_schema()


def table(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Hand-made AI-READI-shaped table whose label is 'few steps' (high stress when mean_steps < 60)."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"awake_pct": rng.uniform(2, 20, n), "light_pct": rng.uniform(40, 60, n),
                      "deep_pct": rng.uniform(10, 20, n), "rem_pct": rng.uniform(15, 25, n),
                      "mean_steps": rng.uniform(0, 150, n), "mean_glucose": rng.uniform(80, 200, n),
                      "hyper_events": rng.integers(0, 3, n).astype(float),
                      "time_in_range_pct": rng.uniform(50, 100, n), "age": rng.integers(40, 70, n).astype(float),
                      "gender": rng.choice(["female", "male"], n), "medication": rng.choice(["none", "oral"], n),
                      "subgroup": rng.choice(["healthy", "oral_t2dm"], n)})
    return X, pd.Series((X["mean_steps"] < 60).astype(int))


@pytest.fixture(scope="module")
def setup():
    X, y = table()
    clf = train_classifier("lr", X, y, SCHEMA, seed=0)
    facts = X[(clf.predict(X) == 1) & (X["mean_steps"] < 30)].iloc[:3]
    return GeneratorContext(SCHEMA, clf, X, y, seed=0), facts


class Scripted:
    """Test double of a TextBackend: `script(call, prompt_index, chat)` -> list of answers or an exception."""

    name, model_id, adapter_id, context_length = "scripted", "scripted", None, 8192

    def __init__(self, script):
        self.script, self.calls = script, []

    def generate(self, chats, settings: SamplingSettings):
        self.calls.append((chats, settings))
        call = len(self.calls) - 1
        return [self.script(call, i, chat) for i, chat in enumerate(chats)]

    def count_tokens(self, chat):
        return sum(len(m["content"].split()) for m in chat)


def answer(fact: pd.Series, **changes) -> str:
    row = fact.copy()
    for k, v in changes.items():
        row[k] = v
    return render_answer(row, SCHEMA)


def run(setup, script, **kw):
    ctx, facts = setup
    backend = Scripted(script)
    res = LLMGenerator(ctx, backend, progress=False, **kw).generate(facts, 0)
    return res, backend, facts


def test_first_invalid_then_valid_is_repaired(setup):
    def script(call, i, chat):
        fact = setup[1].iloc[i]
        return [answer(fact, awake_pct=fact["awake_pct"] + 1)] if call == 0 else [answer(fact, mean_steps=140.0)]

    res, backend, facts = run(setup, script, repair_rounds=2)
    assert (res.status == VALID).all() and (res.reason == "").all()
    assert (res.extra["outcome"] == "repaired").all() and (res.extra["rounds"] == 2).all()
    assert (res.extra["parse_failures"] == 0).all()
    assert (res.counterfactuals["mean_steps"] == 140.0).all()
    assert (res.counterfactuals["age"] == facts["age"]).all()
    assert (res.target_proba > 0.5).all() and (res.seconds > 0).all()
    assert len(backend.calls) == 2
    repair = backend.calls[1][0][0]
    assert [m["role"] for m in repair] == ["system", "user", "assistant", "user"]
    assert repair[2]["content"] == answer(facts.iloc[0], awake_pct=facts.iloc[0]["awake_pct"] + 1)
    fb = repair[3]["content"]
    assert 'still predicts "high stress"' in fb and 'probability of "moderate stress": 0.' in fb
    assert "Mean steps" in fb and "Keep Age, Gender, Medication, Patient subgroup fixed." in fb


def test_valid_first_answer(setup):
    res, backend, _ = run(setup, lambda c, i, chat: [answer(setup[1].iloc[i], mean_steps=140.0)])
    assert (res.extra["outcome"] == "first_try").all() and (res.extra["rounds"] == 1).all()
    assert len(backend.calls) == 1 and res.summary()["valid"] == 3


def test_garbage_is_given_up_with_reason(setup):
    res, backend, _ = run(setup, lambda c, i, chat: ["I think the patient should walk more."], repair_rounds=2,
                          require_tag=True)
    assert (res.status == FAILED).all() and (res.reason == "no <new> block in the answer").all()
    assert (res.extra["outcome"] == "given_up").all() and (res.extra["parse_failures"] == 3).all()
    assert res.counterfactuals.isna().all().all() and res.target_proba.isna().all()
    assert (res.extra["raw_text"] == "I think the patient should walk more.").all()
    assert "could not be read: no <new> block" in backend.calls[1][0][0][-1]["content"]


def test_untagged_answer_is_accepted_and_marked(setup):
    res, _, _ = run(setup, lambda c, i, chat: [answer(setup[1].iloc[i], mean_steps=140.0)[6:-7]])
    assert (res.status == VALID).all() and res.extra["untagged"].all()
    res, _, _ = run(setup, lambda c, i, chat: [answer(setup[1].iloc[i], mean_steps=140.0)])
    assert not res.extra["untagged"].any()


def test_constraint_violation_is_fed_back_and_reported(setup):
    res, backend, facts = run(setup, lambda c, i, chat: [answer(setup[1].iloc[i], mean_steps=140.0, age=30.0)],
                              repair_rounds=1)
    assert (res.status == INVALID).all() and (res.extra["outcome"] == "given_up").all()
    assert res.reason.str.contains("age: immutable feature changed").all()
    assert "immutable feature changed" in backend.calls[1][0][0][-1]["content"]
    assert (res.counterfactuals["age"] == 30.0).all()  # the invalid CF is kept for inspection


def test_backend_errors_are_counted_and_retried(setup):
    def script(call, i, chat):
        return RuntimeError("HTTP 500 from server") if call == 0 or i == 0 else [answer(setup[1].iloc[i],
                                                                                        mean_steps=140.0)]

    res, backend, _ = run(setup, script, repair_rounds=1)
    assert res.extra["backend_errors"].tolist() == [2, 1, 1]
    assert res.status.tolist() == [FAILED, VALID, VALID]
    assert res.reason.iloc[0] == "backend error: HTTP 500 from server"
    assert res.extra["outcome"].tolist() == ["given_up", "repaired", "repaired"]
    assert [m["role"] for m in backend.calls[1][0][0]] == ["system", "user"]  # same chat retried


def test_backend_raising_for_the_batch_never_crashes(setup):
    def script(call, i, chat):
        raise MemoryError("out of memory")

    res, _, _ = run(setup, script, repair_rounds=0)
    assert (res.status == FAILED).all() and res.reason.str.startswith("backend error: out of memory").all()


def test_candidates_keep_the_valid_one_closest_to_the_factual(setup):
    def script(call, i, chat):
        f = setup[1].iloc[i]
        return [answer(f, age=20.0), answer(f, mean_steps=150.0, awake_pct=2.0), answer(f, mean_steps=120.0)]

    res, backend, _ = run(setup, script, candidates=3, temperature=0.8)
    assert backend.calls[0][1].n == 3 and backend.calls[0][1].temperature == 0.8
    assert (res.counterfactuals["mean_steps"] == 120.0).all() and (res.extra["parse_failures"] == 0).all()
    with pytest.raises(ConfigError, match="temperature > 0"):
        LLMGenerator(setup[0], backend, candidates=2, temperature=0.0)


def test_rows_already_at_the_target_are_skipped(setup):
    res, backend, _ = run(setup, lambda c, i, chat: [answer(setup[1].iloc[i], mean_steps=140.0)])
    ctx, facts = setup
    res = LLMGenerator(ctx, backend, progress=False).generate(facts, 1)
    assert (res.extra["outcome"] == "skipped").all() and res.reason.str.contains("equals the current").all()


def test_few_shot_prompt_has_target_class_examples(setup):
    seen = []
    res, backend, _ = run(setup, lambda c, i, chat: seen.append(chat) or ["x"], mode="few-shot", k=2,
                          repair_rounds=0)
    assert 'Examples of instances labelled "moderate stress":' in seen[0][1]["content"]
    assert "Example 2:" in seen[0][1]["content"] and "Example 3:" not in seen[0][1]["content"]


def test_compact_style_reads_changes_and_feeds_back_in_kind(setup):
    def script(call, i, chat):
        assert chat[0]["content"] == COMPACT_SYSTEM_PROMPT
        return ["<new>\n- Awake %: +1.0\n</new>"] if call == 0 else ["<new>\n- Mean steps (steps/min): +120\n</new>"]

    res, backend, facts = run(setup, script, style="compact", repair_rounds=1)
    assert (res.status == VALID).all() and (res.extra["outcome"] == "repaired").all()
    assert np.allclose(res.counterfactuals["mean_steps"], facts["mean_steps"] + 120, atol=0.05)  # display precision
    assert np.allclose(res.counterfactuals["awake_pct"], facts["awake_pct"])  # unlisted: the factual's value
    assert "only the changes" in backend.calls[1][0][0][-1]["content"]
    with pytest.raises(ConfigError, match="prompt_style"):
        LLMGenerator(setup[0], backend, style="verse")


@pytest.fixture
def made_backends(monkeypatch) -> list:
    """Records (spec, kwargs) of every backend the LLM factories make; each answers "x"."""
    made = []
    monkeypatch.setattr("sensecf.backends.registry.make_backend",
                        lambda spec, **kw: made.append((spec, kw)) or Scripted(lambda c, i, chat: ["x"]))
    monkeypatch.setattr(gen_mod, "_BACKENDS", {})
    return made


def test_fine_tuned_generator_takes_the_style_of_its_adapter(setup, made_backends, tmp_path):
    made = made_backends
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    ctx = GeneratorContext(SCHEMA, setup[0].classifier, setup[0].X_train, setup[0].y_train,
                           options={"adapter": str(adapter)})
    plain = build_generator("llm-fine-tuned", ctx)
    assert (plain.style, plain.candidates, plain.temperature) == ("paper", 1, 0.0)  # no card: the paper's prompt
    (adapter / "card.json").write_text('{"config": {"prompt_style": "compact"}}')
    compact = build_generator("llm-fine-tuned", ctx)
    assert (compact.style, compact.candidates, compact.temperature) == ("compact", 4, 0.7)  # short answers: 4 drawn
    zero_shot = build_generator("llm-zero-shot", ctx)
    assert zero_shot.style == "paper"
    assert made[-1][1]["adapter"] is None and made[-2][1]["adapter"] == str(adapter)  # zero-shot: the base model
    ctx.options.update(prompt_style="paper", candidates=1)
    explicit = build_generator("llm-fine-tuned", ctx)
    assert (explicit.style, explicit.candidates) == ("paper", 1)  # explicit options win


def test_factories_cache_backends_and_require_an_adapter(setup, made_backends, monkeypatch, tmp_path):
    made = made_backends
    ctx = GeneratorContext(SCHEMA, setup[0].classifier, setup[0].X_train, setup[0].y_train,
                           options={"backend": "hf:/models/x", "repair_rounds": 1, "k": 2})
    g1, g2 = build_generator("llm-zero-shot", ctx), build_generator("llm-few-shot", ctx)
    assert len(made) == 1 and made[0][0] == "hf:/models/x" and g1.backend is g2.backend
    assert (g1.name, g2.name, g2.k, g2.repair_rounds) == ("llm-zero-shot", "llm-few-shot", 2, 1)
    monkeypatch.setattr(gen_mod, "default_adapter_dir", lambda: tmp_path / "none")
    with pytest.raises(ConfigError, match="run `sensecf finetune` first"):
        build_generator("llm-fine-tuned", ctx)
    ctx.options["k"] = "many"
    with pytest.raises(ConfigError, match="option k='many'"):
        build_generator("llm-zero-shot", ctx)


def test_options_scoped_to_one_method(setup, made_backends):
    """A vLLM-served LoRA module for llm-fine-tuned, the base model for zero-shot: one options dict."""
    made = made_backends
    ctx = GeneratorContext(SCHEMA, setup[0].classifier, setup[0].X_train, setup[0].y_train,
                           options={"backend": "openai:llama", "base_url": "http://127.0.0.1:8000/v1",
                                    "llm-fine-tuned.backend": "openai:sensecf", "llm-fine-tuned.candidates": 2,
                                    "llm-fine-tuned.temperature": 0.5})
    zero, tuned = build_generator("llm-zero-shot", ctx), build_generator("llm-fine-tuned", ctx)
    assert [spec for spec, _ in made] == ["openai:llama", "openai:sensecf"]
    assert all(kw["base_url"] == "http://127.0.0.1:8000/v1" for _, kw in made)  # unscoped keys reach both
    assert (zero.candidates, tuned.candidates, tuned.temperature) == (1, 2, 0.5)
    ctx.options["llm-finetuned.backend"] = "openai:x"
    with pytest.raises(ConfigError, match="'llm-finetuned' is not a counterfactual method"):
        build_generator("llm-zero-shot", ctx)


def test_server_options_reach_an_openai_backend_only(setup, made_backends, tmp_path):
    made = made_backends
    server = {"timeout": 120, "max_retries": 1, "concurrency": 2, "batch_timeout": 600, "trust_env": False,
              "api_key_env": "VLLM_KEY"}
    ctx = GeneratorContext(SCHEMA, setup[0].classifier, setup[0].X_train, setup[0].y_train,
                           options={"backend": "openai:llama", "llm-fine-tuned.backend": "embedded",
                                    "llm-fine-tuned.adapter": str(tmp_path), **server})
    build_generator("llm-zero-shot", ctx)
    build_generator("llm-fine-tuned", ctx)
    assert server.items() <= made[0][1].items()  # the server's settings, from --option or a study config
    assert not set(server) & set(made[1][1])  # the embedded backend gets none of them


def view() -> dict:
    return {"factual": {"Mean steps": "20.0"}, "counterfactual": {"Mean steps": "140.0"},
            "changes": [{"feature": "mean_steps", "label": "Mean steps", "unit": "steps/min", "kind": "continuous",
                         "from": "20.0", "to": "140.0", "direction": "up", "change": 120.0, "percent": 600.0}],
            "proba_before": [0.1, 0.9], "proba_after": [0.8, 0.2], "class_before": 1, "class_after": 0,
            "label_before": "high stress", "label_after": "moderate stress", "fixed": ["Age"]}


@pytest.mark.parametrize("reply, ok", [
    ("Condition: high stress predicted (0.90).\nIntervention: raise Mean steps from 20.0 to 140.0 "
     "steps/min.\nWhy: the model then predicts moderate stress (0.80).", True),
    ("Condition: high stress.\nIntervention: walk 10000 steps.\nWhy: it helps.", False),  # invented number
    ("Walk more.", False),
    (RuntimeError("down"), False),
])
def test_llm_narrative_is_checked_against_the_view(reply, ok):
    backend = Scripted(lambda c, i, chat: reply if isinstance(reply, Exception) else [reply])
    got = llm_narrative(view(), SCHEMA, backend)
    assert (got == reply) if ok else got is None
    assert "20.0 -> 140.0 steps/min" in backend.calls[0][0][0][1]["content"]


@pytest.mark.slow
def test_real_embedded_backend_end_to_end(setup):
    """Two rows through the real embedded model: outcomes recorded, nothing crashes."""
    from sensecf.backends.registry import make_backend

    ctx, facts = setup
    t0 = time.perf_counter()
    backend = make_backend("embedded")
    res = LLMGenerator(ctx, backend, mode="few-shot", k=1, repair_rounds=0, progress=False,
                       max_new_tokens=130).generate(facts.iloc[:2], 0)
    assert set(res.extra["outcome"]) <= {"first_try", "given_up"} and (res.extra["rounds"] == 1).all()
    assert (res.extra["raw_text"].str.len() > 0).all() and (res.extra["backend_errors"] == 0).all()
    assert set(res.status) <= {VALID, INVALID, FAILED}
    assert ((res.status == VALID) | (res.reason != "")).all()
    assert time.perf_counter() - t0 < 600
