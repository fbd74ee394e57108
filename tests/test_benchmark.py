"""Benchmark files and resume; intervention view and narrative; CLI option parsing."""

import json

import pandas as pd
import pytest
import torch

import sensecf.experiments.benchmark as bench
from sensecf.cli.cf_cmd import parse_options
from sensecf.errors import ConfigError
from sensecf.experiments.intervention import format_text, intervention_view, narrative
from sensecf.models.classifiers import train_classifier

from conftest import heart_mini_dataset, row_split

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def split(heart_mini):
    train, test = row_split(heart_mini, 1)
    return train, test, train_classifier("lr", train.X, train.y, heart_mini.schema, seed=0)


def test_benchmark_writes_tables_and_resumes(split, tmp_path, monkeypatch):
    train, test, clf = split
    methods = ["nice-sparsity", "dice-random"]
    out = bench.run_benchmark(train, test, clf, methods, n_per_class=3, seed=0, out_dir=tmp_path,
                              options={"dice_sample_size": 300})
    for name in ("benchmark.json", "benchmark.csv", "benchmark.md", "cfs/nice-sparsity.csv", "cfs/dice-random.csv"):
        assert (tmp_path / name).exists(), name
    data = json.loads((tmp_path / "benchmark.json").read_text())
    assert data == out and data["seed"] == 0 and data["versions"]["dice-ml"]
    assert set(data["methods"]) == set(methods)
    for m in methods:
        per = data["methods"][m]["per_class"]
        assert set(per) == {"0", "1"} and per["0"]["n"] == 3 and per["1"]["n"] == 3
        assert data["methods"][m]["summary"]["n"] == 6
        assert data["methods"][m]["outcomes"]["projected"]
    table = pd.read_csv(tmp_path / "benchmark.csv")
    assert len(table) == 4 and {"validity", "distance", "sparsity", "plausibility"} <= set(table.columns)
    md = (tmp_path / "benchmark.md").read_text()
    assert "| nice-sparsity |" in md and "no disease validity" in md
    csv = pd.read_csv(tmp_path / "cfs" / "nice-sparsity.csv")
    assert csv["factual_id"].isin(test.frame.index).all() and len(csv) == 6

    def must_not_run(*a, **k):
        raise AssertionError("a finished method was rerun")

    monkeypatch.setattr(bench, "build_generator", must_not_run)
    again = bench.run_benchmark(train, test, clf, methods, n_per_class=3, seed=0, out_dir=tmp_path,
                                options={"dice_sample_size": 300})
    for m in methods:
        assert again["methods"][m]["per_class"] == data["methods"][m]["per_class"]
    monkeypatch.undo()  # another sample: the CSVs of the first are named and recomputed, never mixed in
    smaller = bench.run_benchmark(train, test, clf, methods, n_per_class=2, seed=0, out_dir=tmp_path)
    assert all(smaller["methods"][m]["summary"]["n"] == 4 for m in methods)


def test_resume_recomputes_only_what_another_setup_made(split, tmp_path, monkeypatch):
    """A method's CSV made under other options (or another adapter, or classifier) is not reused; the others are."""
    train, test, clf = split
    bench.run_benchmark(train, test, clf, ["nice-sparsity", "dice-random"], n_per_class=2, seed=0, out_dir=tmp_path,
                        options={"dice_sample_size": 300})
    built = []
    real = bench.build_generator
    monkeypatch.setattr(bench, "build_generator", lambda name, ctx: built.append(name) or real(name, ctx))
    bench.run_benchmark(train, test, clf, ["nice-sparsity", "dice-random"], n_per_class=2, seed=0, out_dir=tmp_path,
                        options={"dice_sample_size": 200})
    assert set(built) == {"dice-random"}  # nice-sparsity's options did not change
    factuals, targets = bench.sample_factuals(test, clf, 2, seed=0)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"first")
    ctx = bench.GeneratorContext(train.schema, clf, train.X, train.y, 0, {"adapter": str(adapter)})
    sample = bench.sample_setup(ctx, factuals, targets)
    first = bench.method_setup("llm-fine-tuned", ctx, sample)
    (adapter / "adapter_model.safetensors").write_bytes(b"retrained")
    assert bench.method_setup("llm-fine-tuned", ctx, sample)["options"] != first["options"]
    assert bench.method_setup("llm-zero-shot", ctx, sample) == bench.method_setup(
        "llm-zero-shot", ctx, sample) and "adapter_fingerprint" not in str(
        bench.method_setup("llm-zero-shot", ctx, sample))
    other = train_classifier("nn", train.X, train.y, train.schema, seed=0)
    assert bench.sample_setup(ctx, factuals, targets)["classifier"] != bench.sample_setup(
        bench.GeneratorContext(train.schema, other, train.X, train.y, 0, {}), factuals, targets)["classifier"]


def test_benchmark_rejects_unknown_method_before_running(split, tmp_path):
    train, test, clf = split
    with pytest.raises(ConfigError, match="nope"):
        bench.run_benchmark(train, test, clf, ["nice-sparsity", "nope"], n_per_class=2, out_dir=tmp_path)
    assert not (tmp_path / "cfs" / "nice-sparsity.csv").exists()


def test_sampling_is_stratified_and_seeded(split):
    _, test, clf = split
    X1, t1 = bench.sample_factuals(test, clf, 4, seed=3)
    X2, t2 = bench.sample_factuals(test, clf, 4, seed=3)
    assert X1.index.equals(X2.index) and t1.value_counts().to_dict() == {0: 4, 1: 4}
    assert (clf.predict(X1) != t1.to_numpy()).all()


def test_outcome_counts_from_extra(split):
    _, test, clf = split
    from sensecf.cf import CFResult
    idx = test.X.index[:3]
    res = CFResult("llm", test.X.loc[idx], pd.Series(1, index=idx), test.X.loc[idx], pd.Series("valid", index=idx),
                   pd.Series("", index=idx), pd.Series(0.9, index=idx), pd.Series(1.0, index=idx),
                   extra=pd.DataFrame({"outcome": ["first_try", "repaired", "first_try"], "rounds": [0, 1, 0]},
                                      index=idx))
    assert bench.outcome_counts(res) == {"outcome": {"first_try": 2, "repaired": 1}}


def test_intervention_view_and_narrative_match_numbers(split):
    train, test, clf = split
    schema = train.schema
    factual = test.X.iloc[0]
    cf = factual.copy()
    cf["resting_blood_pressure"] = factual["resting_blood_pressure"] - 20
    cf["chest_pain_type"] = next(lv for lv in schema["chest_pain_type"].levels if lv != factual["chest_pain_type"])
    view = intervention_view(factual, cf, clf, schema)
    by = {c["feature"]: c for c in view["changes"]}
    assert set(by) == {"resting_blood_pressure", "chest_pain_type"}
    bp = by["resting_blood_pressure"]
    assert bp["direction"] == "down" and bp["change"] == pytest.approx(-20)
    assert bp["percent"] == pytest.approx(-20 / factual["resting_blood_pressure"] * 100)
    p_after = clf.predict_proba(cf.to_frame().T)[0]
    assert view["proba_after"] == pytest.approx(list(p_after))
    text = narrative(view, schema)
    assert f"{p_after.max():.3f}" in text and "decrease resting_blood_pressure" in text
    flipped = view["class_after"] != view["class_before"]
    assert ("do not change the prediction" in text) == (not flipped)
    assert "*resting_blood_pressure" in format_text(view)


def test_table_ii_example_prefers_a_patient_the_model_is_sure_of(split, tmp_path):
    from sensecf.experiments.intervention import EXAMPLE_MIN_CONFIDENCE, choose_example
    from sensecf.generators.base import GeneratorContext, build_generator

    train, test, clf = split
    schema = train.schema
    goal = schema.desired_class if schema.desired_class is not None else 0
    p_now = clf.predict_proba(test.X)[:, 1 - goal]
    unsure = test.X.index[(p_now >= 0.5) & (p_now < EXAMPLE_MIN_CONFIDENCE)][:1]
    sure = test.X.index[p_now >= 0.8][:1]
    assert len(unsure) and len(sure)
    gen = build_generator("nice-sparsity", GeneratorContext(schema, clf, train.X, train.y))
    result = gen.generate(test.X.loc[unsure.append(sure)], goal)
    assert (result.status == "valid").all()
    (tmp_path / "cfs").mkdir()
    bench.result_to_csv(result, tmp_path / "cfs" / "nice-sparsity.csv")
    view = choose_example(tmp_path, ["nice-sparsity"], test.X, train.X, clf, schema)
    assert view["row"] == str(sure[0]) and view["proba_before"][1 - goal] >= 0.8


def test_parse_options():
    assert parse_options(["cfnow_time_limit=2", "backend=openai:gpt-4o", "repair=true"]) == \
        {"cfnow_time_limit": 2, "backend": "openai:gpt-4o", "repair": True}
    with pytest.raises(ConfigError, match="key=value"):
        parse_options(["novalue"])


@pytest.fixture
def cli_data(monkeypatch):
    """The shared --data handling replaced by the UCI heart mini dataset, split 80/20 (seeded)."""
    def split_from_options(data, schema, seed):
        return row_split(heart_mini_dataset(), seed)

    import sensecf.cli.options as options
    monkeypatch.setattr(options, "split_from_options", split_from_options)
    return split_from_options(None, None, 0)


def test_cli_benchmark_and_explain(cli_data, tmp_path):
    from typer.testing import CliRunner

    from sensecf.cli.app import app
    from sensecf.errors import DataError

    runner = CliRunner()
    res = runner.invoke(app, ["benchmark", "--methods", "nice-sparsity", "--n", "2", "--out", str(tmp_path),
                              "--classifier", "lr", "--option", "nice_justified=false"])
    assert res.exit_code == 0, res.output
    assert "| nice-sparsity |" in res.output
    data = json.loads((tmp_path / "benchmark.json").read_text())
    assert data["options"] == {"nice_justified": False}  # one default per setting: in the typed options

    _, test = cli_data
    row = str(test.frame.index[0])
    res = runner.invoke(app, ["explain", "--row", row, "--classifier", "lr", "--json"])
    assert res.exit_code == 0, res.output
    view = json.loads(res.output)
    assert view["row"] == row and view["method"] == "nice-sparsity" and view["status"] == "valid"
    assert view["class_after"] != view["class_before"] and view["narrative"].startswith("Condition:")
    res = runner.invoke(app, ["explain", "--row", row, "--classifier", "lr"])
    assert res.exit_code == 0 and "Intervention" in res.output
    res = runner.invoke(app, ["explain", "--row", "no-such-row"])
    assert isinstance(res.exception, DataError) and "not in the test split" in str(res.exception)
