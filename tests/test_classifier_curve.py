"""Fig. 1 classifier curve (CSV + PNG, resume) and the `sensecf train` / `sensecf curve` commands."""

import json

import matplotlib.image as mpimg
import pandas as pd
import pytest
from typer.testing import CliRunner

from sensecf.data.split import subsample_fraction
from sensecf.errors import ConfigError
from sensecf.experiments import classifier_curve as cc


@pytest.fixture(scope="module")
def split(uci_heart_split):
    train, test = uci_heart_split
    return subsample_fraction(train, 0.5, seed=0), test


@pytest.mark.slow
def test_curve_writes_csv_png_and_resumes(split, tmp_path, monkeypatch):
    train, test = split
    df = cc.classifier_curve(train, test, kinds=("lr", "gb"), fractions=(0.5, 1.0), seeds=(0, 1), out_dir=tmp_path)
    assert len(df) == 8 and list(df["kind"].unique()) == ["lr", "gb"]
    assert df.groupby("fraction")["n_train"].first().to_dict() == {0.5: len(train) // 2, 1.0: len(train)}
    assert df[["accuracy", "f1", "auc"]].gt(0.6).all().all()
    on_disk = pd.read_csv(tmp_path / cc.CURVE_CSV)
    assert len(on_disk) == 8 and set(on_disk.columns) >= {"kind", "fraction", "seed", "f1", "auc"}
    img = mpimg.imread(tmp_path / cc.CURVE_PNG)
    assert img.shape[0] > 400 and img.shape[1] > 600
    # a rerun resumes from the CSV: nothing is retrained, the same table comes back
    monkeypatch.setattr(cc, "train_classifier", lambda *a, **k: pytest.fail("retrained a finished cell"))
    again = cc.classifier_curve(train, test, kinds=("lr", "gb"), fractions=(1.0, 0.5), seeds=(0, 1), out_dir=tmp_path)
    pd.testing.assert_frame_equal(again, df, check_dtype=False)


def test_summary_interval():
    df = pd.DataFrame({"kind": "lr", "fraction": 1.0, "seed": [0, 1, 2], "f1": [0.7, 0.8, 0.9]})
    s = cc.summarize_curve(df, "f1").iloc[0]
    assert s["mean"] == pytest.approx(0.8) and s["lo"] < 0.7 and s["hi"] > 0.9   # t(2) interval is wide


def test_curve_rejects_bad_settings(split):
    train, test = split
    with pytest.raises(ConfigError, match="unknown classifier"):
        cc.classifier_curve(train, test, kinds=("svm",))
    with pytest.raises(ConfigError, match="fractions"):
        cc.classifier_curve(train, test, fractions=(0.0,))


@pytest.mark.slow
def test_cli_train_and_curve(tmp_path):
    from sensecf.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["train", "--data", "uci-heart", "--classifier", "lr", "--out", str(tmp_path / "t")])
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "t" / "metrics.json").read_text())
    assert metrics["rows"] == {"train": 596, "test": 150} and metrics["metrics"]["test"]["auc"] > 0.85
    split_ids = pd.read_csv(tmp_path / "t" / "split.csv")
    assert split_ids["split"].value_counts().to_dict() == {"train": 596, "test": 150}
    assert (tmp_path / "t" / "model.pkl").exists() and "test" in res.output
    res = runner.invoke(app, ["curve", "--data", "uci-heart", "--kinds", "lr", "--fractions", "1.0,0.5",
                              "--seeds", "0", "--out", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "c" / cc.CURVE_PNG).exists() and len(pd.read_csv(tmp_path / "c" / cc.CURVE_CSV)) == 2
    res = runner.invoke(app, ["train", "--data", "nowhere", "--out", str(tmp_path / "x")])
    assert isinstance(res.exception, ConfigError) and "accepted" in str(res.exception)
    res = runner.invoke(app, ["curve", "--data", "uci-heart", "--fractions", "a,b", "--out", str(tmp_path / "x")])
    assert isinstance(res.exception, ConfigError) and "--fractions" in str(res.exception)
