"""Fine-tuning: SFT pair construction (valid, constrained, minimal, plausible), Table I config, a tiny LoRA run."""

import json
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from sensecf.data.dataset import Dataset
from sensecf.errors import ConfigError
from sensecf.finetune.config import FinetuneConfig
from sensecf.finetune.pairs import (NO_NEIGHBOUR, actionable_counterfactual, build_pairs, display_values,
                                    grid_steps)
from sensecf.cf.constraints import changed_features, constraint_violations
from sensecf.generators.llm.parse import parse_answer
from sensecf.generators.llm.prompt import build_chat, render_answer
from sensecf.models.classifiers import train_classifier
from sensecf.schema import FeatureSpec, Schema

torch.set_num_threads(1)


def toy_dataset(n: int = 120, seed: int = 0) -> Dataset:
    """A labelled table with an immutable categorical (one level held by a single row), a feature that may
    only increase, one that may only decrease, and a mutable categorical; 30 participants."""
    rng = np.random.default_rng(seed)
    schema = Schema("toy", [
        FeatureSpec("site", "categorical", immutable=True, levels=["a", "b", "c"]),
        FeatureSpec("x1", "continuous", "u", "first signal", bounds=(-5, 5)),
        FeatureSpec("x2", "continuous", "u", "second signal", direction="increase", bounds=(-5, 5)),
        FeatureSpec("x3", "integer", "n", "a count", direction="decrease", bounds=(0, 10), precision=0),
        FeatureSpec("kind", "categorical", description="a category", levels=["p", "q", "r"]),
    ], label="label", label_names={0: "low", 1: "high"}, group="pid")
    df = pd.DataFrame({
        "site": rng.choice(["a", "b"], n), "x1": rng.normal(0, 1, n).round(3), "x2": rng.normal(0, 1, n).round(3),
        "x3": rng.integers(0, 10, n).astype(float), "kind": rng.choice(["p", "q", "r"], n),
        "pid": [f"P{i % 30:02d}" for i in range(n)]})
    df.loc[0, "site"] = "c"
    score = df.x1 + df.x2 - 0.3 * df.x3 + (df.kind == "q") + 1.0 + rng.normal(0, 0.3, n)
    df["label"] = (score > 0).astype(int)
    return Dataset("toy", schema, schema.validate_frame(df, "toy"))


@pytest.fixture(scope="module")
def toy():
    ds = toy_dataset()
    clf = train_classifier("lr", ds.X, ds.y, ds.schema, seed=0)
    train_pairs, val_pairs = build_pairs(ds, clf, ds.schema, seed=0, val_fraction=0.2, progress=False)
    return ds, clf, train_pairs, val_pairs


def _cf(pair, schema, X):
    factual = X.loc[pair["factual_id"]]
    parsed = parse_answer(pair["messages"][-1]["content"], schema, factual)
    assert parsed.row is not None, parsed
    return factual, parsed.row


def test_pairs_are_valid_constrained_minimal_and_plausible(toy):
    ds, clf, train_pairs, val_pairs = toy
    X = display_values(ds.X, ds.schema)
    assert len(train_pairs) > 60 and len(val_pairs) > 5
    for pair in list(train_pairs) + list(val_pairs):
        factual, cf = _cf(pair, ds.schema, X)
        cf_frame = cf.to_frame().T
        assert clf.predict(factual.to_frame().T)[0] == pair["current"] == 1 - pair["target"]
        assert clf.predict(cf_frame)[0] == pair["target"]                       # valid
        assert constraint_violations(factual, cf, ds.schema) == []              # immutables, directions, bounds
        changed = changed_features(factual, cf, ds.schema)
        assert changed == pair["changed"] and changed and "site" not in changed
        for name in changed:                                                    # minimal: no change is spare
            reverted = cf.copy()
            reverted[name] = factual[name]
            assert clf.predict(reverted.to_frame().T)[0] != pair["target"], (pair["factual_id"], name)
            assert (X[name].astype(str) == str(cf[name])).any() if ds.schema[name].is_categorical else \
                np.isclose(X[name].astype(float), float(cf[name])).any()        # plausible: a real row's value


def test_pairs_use_the_generator_prompt_and_split_by_participant(toy):
    ds, clf, train_pairs, val_pairs = toy
    X = display_values(ds.X, ds.schema)
    pair = train_pairs[0]
    factual, cf = _cf(pair, ds.schema, X)
    assert pair["messages"][:-1] == build_chat(factual, pair["current"], pair["target"], ds.schema)
    assert pair["messages"][-1] == {"role": "assistant", "content": render_answer(cf, ds.schema)}
    assert not {p["group"] for p in train_pairs} & {p["group"] for p in val_pairs}
    stats = train_pairs.stats
    assert stats["skipped"][NO_NEIGHBOUR] >= 1  # the lone site "c" row has no unlike neighbour
    assert stats["pairs"] + sum(stats["skipped"].values()) == stats["factuals_considered"] == len(ds)


def test_compact_pairs_with_a_margin(toy):
    ds, clf, _, _ = toy
    X = display_values(ds.X, ds.schema)
    pairs, _ = build_pairs(ds, clf, seed=0, max_pairs=20, val_fraction=0, progress=False, style="compact",
                           min_proba=0.8)
    assert len(pairs) >= 10
    for pair in pairs:
        factual = X.loc[pair["factual_id"]]
        assert pair["messages"][:-1] == build_chat(factual, pair["current"], pair["target"], ds.schema,
                                                   style="compact")
        answer = pair["messages"][-1]["content"]
        assert answer.count("\n- ") == len(pair["changed"])  # only the changed features are listed
        cf = parse_answer(answer, ds.schema, factual, partial=True).row
        assert clf.predict_proba(cf.to_frame().T)[0, pair["target"]] >= 0.8 and pair["target_proba"] >= 0.8
        assert constraint_violations(factual, cf, ds.schema) == []
    with pytest.raises(ConfigError, match="min_proba"):
        build_pairs(ds, clf, min_proba=0.4, progress=False)


def test_grid_pairs_are_single_round_step_changes(toy):
    ds, clf, _, _ = toy
    X = display_values(ds.X, ds.schema)
    steps = grid_steps(X, ds.schema)
    assert set(steps) == {"x1", "x2", "x3"} and steps["x3"] == 1.0 and steps["x1"] in (0.1, 0.2, 0.5, 1.0)
    pairs, _ = build_pairs(ds, clf, seed=0, max_pairs=30, val_fraction=0, progress=False, style="compact",
                           policy="grid")
    assert pairs.stats["pairs_by_policy"]["grid"] >= 25 and pairs.stats["grid_steps"] == steps
    for pair in pairs:
        factual = X.loc[pair["factual_id"]]
        cf = parse_answer(pair["messages"][-1]["content"], ds.schema, factual, partial=True).row
        assert clf.predict(cf.to_frame().T)[0] == pair["target"]
        assert constraint_violations(factual, cf, ds.schema) == []
        assert all(X[c].min() <= float(cf[c]) <= X[c].max() for c in ds.schema.continuous)  # plausible
        if pair["policy"] == "grid" and not ds.schema[pair["changed"][0]].is_categorical:
            assert len(pair["changed"]) == 1
            name = pair["changed"][0]
            multiple = (float(cf[name]) - float(factual[name])) / steps[name]
            assert abs(multiple - round(multiple)) < 1e-6 and 1 <= abs(round(multiple)) <= 10
            assert pair["messages"][-1]["content"].splitlines()[1].split(": ")[1][0] in "+-"  # a signed change


def test_actionable_pairs_prefer_an_actionable_change_to_a_cheaper_sleep_like_one():
    """Policy "actionable" is lexicographic, as calibration is: an actionable-only CF whenever the grid has one
    (a single change, else a pair), the low-actionability lever (x1, the classifier's easiest) only otherwise."""
    schema = Schema("act", [FeatureSpec("x1", "continuous", "u", "sleep-like", actionability="low", bounds=(-5, 5)),
                            FeatureSpec("x2", "continuous", "u", "steps-like", actionability="high", bounds=(-5, 5)),
                            FeatureSpec("x3", "continuous", "u", "glucose-like", actionability="medium",
                                        bounds=(-5, 5))], label="label")
    X = pd.DataFrame(np.random.default_rng(0).uniform(-2, 2, (200, 3)), columns=["x1", "x2", "x3"])
    clf = _Linear(schema, w=np.array([10.0, 1.0, 1.0]), b=-0.5)
    steps = grid_steps(X, schema)
    support = {c: (float(X[c].min()), float(X[c].max())) for c in steps}
    cf = lambda x2, x3: actionable_counterfactual(pd.Series({"x1": 0.0, "x2": x2, "x3": x3}), 1, clf, schema,  # noqa: E731
                                                  steps, support)
    single = cf(-0.5, 0.0)
    assert single["x1"] == 0.0 and single["x3"] == 0.0 and single["x2"] >= 0.5  # x1 by 0.1: cheaper
    pair = cf(-2.5, -2.5)
    assert pair["x1"] == 0.0 and pair["x2"] + pair["x3"] >= 0.5 and min(pair["x2"], pair["x3"]) > -2.5  # two needed
    sleep = cf(-5.0, -5.0)
    assert sleep["x1"] >= 1.05 and (sleep["x2"], sleep["x3"]) == (-5.0, -5.0)  # no actionable CF: the low lever


class _Linear:
    """p(1) = sigmoid(w . x + b): a classifier with a known boundary."""

    def __init__(self, schema, w, b):
        self.columns, self.w, self.b = [f.name for f in schema.features], w, b

    def predict_proba(self, X):
        p = 1 / (1 + np.exp(-(np.asarray(X[self.columns], dtype=float) @ self.w + self.b)))
        return np.column_stack([1 - p, p])


def test_max_pairs_is_balanced_and_seeded(toy):
    ds, clf, _, _ = toy
    a, _ = build_pairs(ds, clf, seed=3, max_pairs=10, val_fraction=0, progress=False)
    b, _ = build_pairs(ds, clf, seed=3, max_pairs=10, val_fraction=0, progress=False)
    assert [p["factual_id"] for p in a] == [p["factual_id"] for p in b] and len(a) == 10
    assert abs(a.stats["pairs_by_target"][0] - a.stats["pairs_by_target"][1]) <= 2
    with pytest.raises(ConfigError, match="max_pairs"):
        build_pairs(ds, clf, max_pairs=0, progress=False)


def test_config_defaults_are_table_one(tmp_path):
    cfg = FinetuneConfig.load(None)
    assert (cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.epochs, cfg.batch_size, cfg.grad_accum) == \
        (16, 32, 0.03, 2, 4, 4)
    assert (cfg.learning_rate, cfg.max_length, cfg.eval_steps, cfg.save_steps, cfg.precision) == \
        (2e-4, 512, 50, 100, "fp16")
    assert cfg.target_modules == "all-linear" and cfg.effective(cuda=True) == cfg
    cpu = cfg.effective(cuda=False)
    assert cpu.precision == "bf16" and cpu.max_steps and cpu.threads == 1 and cpu.lora_r == 16
    assert (cfg.prompt_style, cfg.target_policy) == ("paper", "neighbour")
    assert (cpu.prompt_style, cpu.target_policy) == ("compact", "actionable")  # actionable edits (issue 11)
    assert cfg.with_overrides(max_steps=5).effective(cuda=False).max_steps == 5
    user = tmp_path / "ft.yaml"
    user.write_text("learning_rate: 1e-4\ncpu: {max_steps: 7}\n")
    loaded = FinetuneConfig.load(user)
    assert loaded.learning_rate == 1e-4 and loaded.effective(False).max_steps == 7
    assert loaded.effective(False).precision == "bf16"  # the other CPU overrides are kept


@pytest.mark.parametrize("text, field", [("lora_r: 0", "lora_r"), ("precision: int8", "precision"),
                                         ("lora_dropout: 2", "lora_dropout"), ("bogus: 1", "bogus"),
                                         ("cpu: {batch_size: -1}", "batch_size"), ("cpu: {nope: 1}", "nope"),
                                         ("prompt_style: haiku", "prompt_style"),
                                         ("target_min_proba: 0.3", "target_min_proba"),
                                         ("cpu: {target_policy: random}", "target_policy")])
def test_config_errors_name_the_field(tmp_path, text, field):
    path = tmp_path / "bad.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=field) as err:
        FinetuneConfig.load(path)
    assert str(path) in str(err.value)


def test_cli_reports_a_bad_config_without_traceback(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("grad_accum: zero\n")
    run = subprocess.run([sys.executable, "-m", "sensecf", "finetune", "--config", str(path), "--out",
                          str(tmp_path / "ad")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "grad_accum" in run.stderr and "Traceback" not in run.stderr


def tiny_lora_setup(**overrides):
    """A one-feature-plus-category dataset, its LR classifier and a 2-step LoRA recipe (plus `overrides`)."""
    ds = toy_dataset(n=60, seed=1)
    schema = Schema("tiny", [ds.schema["x1"], ds.schema["kind"]], label="label", label_names={0: "low", 1: "high"},
                    group="pid")
    tiny = Dataset("tiny", schema, ds.frame[["x1", "kind", "label", "pid"]])
    clf = train_classifier("lr", tiny.X, tiny.y, schema, seed=0)
    cfg = FinetuneConfig.load(None).with_overrides(
        max_steps=2, batch_size=1, grad_accum=1, max_pairs=6, val_fraction=0.34, max_eval_pairs=1, eval_steps=1,
        save_steps=1, logging_steps=1, max_length=64, learning_rate=1e-3, **overrides)
    return tiny, clf, cfg


@pytest.mark.slow
def test_tiny_lora_run_changes_and_round_trips_the_adapter(tmp_path):
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from sensecf.finetune.train import finetune, resolve_base

    tiny, clf, cfg = tiny_lora_setup()
    with pytest.raises(ConfigError, match="nf4"):
        finetune(tiny, clf, config=cfg, out_dir=tmp_path / "q", quantize="nf4")
    out = finetune(tiny, clf, config=cfg, out_dir=tmp_path / "adapter", seed=0, progress=False)
    card = json.loads((out / "card.json").read_text())
    assert card["steps"] == 2 and card["pairs"]["train_pairs"] >= 3 and card["eval_loss"] > 0
    assert card["max_length_used"] >= card["longest_pair_tokens"] > 64  # never truncates an answer
    assert card["base_model"] == "embedded:smollm2" and "trl" in card["versions"]
    assert "LoRA" in (out / "README.md").read_text() and not (out / "checkpoints").exists()

    saved = load_file(out / "adapter_model.safetensors")
    lora_b = [v for k, v in saved.items() if "lora_B" in k]
    assert lora_b and any(v.abs().max() > 0 for v in lora_b)  # LoRA B starts at zero: training moved it
    base_path, _ = resolve_base("embedded")
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32), out)
    loaded = {k: v for k, v in model.state_dict().items() if "lora_B" in k}
    key = next(k for k in saved if "lora_B" in k)
    match = [k for k in loaded if k.replace(".default", "") == key]
    assert match and torch.allclose(loaded[match[0]].float(), saved[key].float())

    start = time.perf_counter()
    assert finetune(tiny, clf, config=cfg, out_dir=out, seed=0, progress=False) == out  # card matches: skipped
    assert time.perf_counter() - start < 20
    assert json.loads((out / "card.json").read_text())["finished"] == card["finished"]


def test_records_fit_templates_without_system_role_and_base_models(toy):
    from transformers import AutoTokenizer

    from sensecf.backends.hf import plain_prompt
    from sensecf.finetune.train import _records, resolve_base

    _, _, train_pairs, _ = toy
    messages = train_pairs[0]["messages"]
    tok = AutoTokenizer.from_pretrained(resolve_base("embedded")[0])
    assert _records(train_pairs[:1], tok) == [{"prompt": messages[:2], "completion": messages[2:]}]
    tok.chat_template = ("{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('Only user and "
                         "assistant roles are supported!') }}{% endif %}[{{ m['role'] }}] {{ m['content'] }}"
                         "{% endfor %}")  # Mistral-Instruct style (BioMistral)
    folded = _records(train_pairs[:1], tok)[0]
    assert [m["role"] for m in folded["prompt"]] == ["user"] and folded["completion"] == messages[2:]
    assert folded["prompt"][0]["content"].startswith(messages[0]["content"])
    assert folded["prompt"][0]["content"].endswith(messages[1]["content"])
    tok.chat_template = None
    plain = _records(train_pairs[:1], tok)[0]
    assert plain["prompt"] == plain_prompt(messages[:2]) and plain["completion"].strip() == messages[2]["content"]


@pytest.mark.slow
def test_self_distillation_round_trains_on_calibrated_cfs(tmp_path):
    """One self-distillation round: the tiny adapter's calibrated CFs of training factuals become pairs, the
    adapter trains further and the card records the round."""
    from sensecf.finetune.train import finetune

    tiny, clf, cfg = tiny_lora_setup(distill_rounds=1, distill_factuals=4, distill_steps=1)
    out = finetune(tiny, clf, config=cfg, out_dir=tmp_path / "adapter", seed=0, progress=False)
    card = json.loads((out / "card.json").read_text())
    [round_] = card["distillation"]
    assert round_["round"] == 1 and round_["factuals"] == 4 and 0 <= round_["pairs"] == round_["valid"] <= 4
    assert round_["steps"] == 1 and card["steps"] == 3
