"""Augmentation study (Table IV, Fig 7): scenarios, recovery arithmetic, comparators, end-to-end on UCI heart."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from sensecf.data.dataset import Dataset
from sensecf.errors import ConfigError
from sensecf.experiments.augmentation import (augmented_class, pooled_recovery, mean_ci, oversample,
                                              percent_change, plot_ratio_sweep, summarize, table4_markdown,
                                              table4_rows)
from sensecf.schema import FeatureSpec, Schema


def toy_dataset(n: int = 200, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    schema = Schema("toy", [FeatureSpec("a", "continuous", bounds=(-10, 10)),
                            FeatureSpec("k", "integer", bounds=(0, 10)),
                            FeatureSpec("g", "categorical", levels=["x", "y"], immutable=True)], label="label")
    frame = pd.DataFrame({"a": rng.normal(size=n), "k": rng.integers(0, 10, n).astype(float),
                          "g": rng.choice(["x", "y"], n)})
    frame["label"] = (frame["a"] + 0.3 * rng.normal(size=n) > 0.4).astype(int)
    return Dataset("toy", schema, frame)


# ---- scenarios ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scenario", ["A", "B", "C"])
def test_scarcity_scenario_counts(scenario):
    split = pytest.importorskip("sensecf.data.split")
    ds = toy_dataset(301)
    n = ds.y.value_counts()
    halved = {"A": {1}, "B": {0}, "C": {0, 1}}[scenario]
    removed_sets = []
    for seed in (0, 1):
        reduced, removed = split.scarcity_scenario(ds, scenario, fraction=0.5, seed=seed)
        assert len(reduced) + len(removed) == len(ds)
        assert not set(reduced.frame.index) & set(removed.frame.index)
        for c in (0, 1):
            kept = int((reduced.y == c).sum())
            if c in halved:
                assert abs(kept - n[c] / 2) <= 1, (scenario, c, kept, n[c])
            else:
                assert kept == n[c]
        assert set(removed.y.unique()) == halved
        again, _ = split.scarcity_scenario(ds, scenario, fraction=0.5, seed=seed)
        assert again.frame.index.equals(reduced.frame.index)  # seeded
        removed_sets.append(set(removed.frame.index))
    assert removed_sets[0] != removed_sets[1]  # the seed matters


def test_augmented_class_per_scenario():
    y = pd.Series([0] * 30 + [1] * 20)
    assert augmented_class("A", y) == 1 and augmented_class("B", y) == 0
    assert augmented_class("C", y) == 1  # minority of the reduced split
    assert augmented_class("C", pd.Series([0] * 10 + [1] * 25)) == 0
    assert augmented_class("C", pd.Series([0] * 10 + [1] * 10)) == 1  # tie -> class 1


# ---- arithmetic --------------------------------------------------------------------------------------------
def test_recovery_arithmetic_hand_example():
    one = pooled_recovery([0.70], [0.60], [0.80])
    assert one["mean"] == pytest.approx(0.5) and one["n"] == 1 and math.isnan(one["lo"])  # no interval from 1 seed
    assert pooled_recovery([0.55], [0.60], [0.80])["mean"] == pytest.approx(-0.25)
    assert math.isnan(pooled_recovery([0.70], [0.60], [0.60])["mean"])  # no F1 lost
    assert math.isnan(pooled_recovery([0.70], [0.65], [0.60])["mean"])  # reduced beat the baseline
    # a seed that lost almost nothing does not dominate: per-seed ratios would be (-1.3 + 0.5) / 2 = -0.4
    two = pooled_recovery([0.712, 0.70], [0.725, 0.60], [0.735, 0.80])
    assert two["mean"] == pytest.approx((-0.013 + 0.10) / (0.010 + 0.20))
    assert two["lo"] == pytest.approx(-1.3) and two["hi"] == pytest.approx(0.5)  # resamples of one seed only
    assert percent_change(0.7, 0.6) == pytest.approx(16.6667, abs=1e-4)
    assert percent_change(0.6, 0.8) == pytest.approx(-25.0)
    assert math.isnan(percent_change(0.5, 0.0))
    m = mean_ci([1.0, 2.0, 3.0, float("nan"), None])
    assert m["n"] == 3 and m["mean"] == pytest.approx(2.0)
    assert m["ci95"] == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)  # t(0.975, 2) * sd 1 / sqrt(3)
    one = mean_ci([0.4])
    assert one["mean"] == 0.4 and math.isnan(one["ci95"])
    assert mean_ci([])["n"] == 0


def _rec(scenario, seed, method, ratio, f1, **extra):
    metrics = {"accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": f1, "macro_f1": f1, "auc": 0.5}
    return {"scenario": scenario, "seed": seed, "method": method, "ratio": ratio, "metrics": metrics,
            "augmented_class": 1, "n_removed": 40, **extra}


def hand_summary():
    recs = [_rec("A", 0, "baseline", 0.0, 0.8), _rec("A", 1, "baseline", 0.0, 0.8),
            _rec("A", 0, "reduced", 0.0, 0.6), _rec("A", 1, "reduced", 0.0, 0.7),
            _rec("A", 0, "m", 1.0, 0.7, n_added=40, n_requested=40, n_added_from_llm=30),
            _rec("A", 1, "m", 1.0, 0.8, n_added=30, n_requested=40, n_added_from_llm=20),
            _rec("A", 0, "m", 0.5, 0.65, n_added=20, n_requested=20),
            _rec("C", 0, "baseline", 0.0, 0.8), _rec("C", 0, "reduced", 0.0, 0.8),
            _rec("C", 0, "m", 1.0, 0.9, n_added=40, n_requested=40)]
    s = summarize(recs, methods=["m"], scenarios=["A", "C"], seeds=[0, 1], ratios=[0.5, 1.0])
    s["config"] = {"ratios": [0.5, 1.0], "seeds": [0, 1], "classifier": "lr"}
    return s


def test_summarize_hand_records(tmp_path):
    s = hand_summary()
    a = s["scenarios"]["A"]
    assert a["reduced"]["drop_vs_baseline_pct"]["f1"]["mean"] == pytest.approx((-25.0 - 12.5) / 2)
    full = a["methods"]["m"]["1"]
    assert full["aggregate"]["f1"]["mean"] == pytest.approx(0.75)
    rec = full["lost_f1_recovered"]  # gains 0.1 + 0.1 over losses 0.2 + 0.1; one seed alone: 0.5 or 1.0
    assert rec["mean"] == pytest.approx(2 / 3) and rec["n"] == 2
    assert (rec["lo"], rec["hi"]) == (pytest.approx(0.5), pytest.approx(1.0))
    assert full["change_vs_reduced_pct"]["f1"]["mean"] == pytest.approx((100 / 6 + 100 * 0.1 / 0.7) / 2)
    assert full["n_added"]["mean"] == 35
    assert a["methods"]["m"]["0.5"]["aggregate"]["f1"]["n"] == 1  # only seed 0 finished this ratio
    c = s["scenarios"]["C"]["methods"]["m"]["1"]
    assert math.isnan(c["lost_f1_recovered"]["mean"])  # no F1 lost

    rows = table4_rows(s)
    assert [r["model"] for r in rows if r["scenario"] == "A"] == ["baseline (full train)", "reduced", "m"]
    assert all(r["ratio"] == 1.0 for r in rows)
    md = table4_markdown(s)
    assert "0.750 ± " in md and "| C (both classes halved) | m |" in md
    assert "| 35 (25 by the LLM) |" in md   # a calibrated LLM row says how many of its rows the LLM proposed
    png = plot_ratio_sweep(s, tmp_path / "fig7.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---- comparators -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["random-oversampling", "smote"])
def test_oversample_adds_rows_of_the_target_class(kind):
    ds = toy_dataset(120)
    X, y = ds.X, ds.y
    new = oversample(kind, X, y, target=1, n_new=25, schema=ds.schema, seed=0)
    assert len(new) == 25 and list(new.columns) == ds.schema.feature_names
    assert new["g"].isin(["x", "y"]).all()
    assert (new["k"] == new["k"].round()).all()  # integer feature stays integral
    if kind == "random-oversampling":  # copies of class-1 rows
        ones = {tuple(r) for r in X[y == 1].astype(str).itertuples(index=False)}
        assert all(tuple(r) in ones for r in new.astype(str).itertuples(index=False))
    again = oversample(kind, X, y, target=1, n_new=25, schema=ds.schema, seed=0)
    pd.testing.assert_frame_equal(new, again)
    assert oversample(kind, X, y, target=1, n_new=0, schema=ds.schema, seed=0).empty


def test_bad_configuration_raises(tmp_path):
    from sensecf.experiments.augmentation import run_augmentation

    ds = toy_dataset(60)
    with pytest.raises(ConfigError, match="scenario"):
        run_augmentation(ds, ds, [], scenarios=("D",), out_dir=tmp_path)
    with pytest.raises(ConfigError, match="unknown counterfactual method"):
        run_augmentation(ds, ds, ["no-such-method"], scenarios=("A",), out_dir=tmp_path)
    with pytest.raises(ConfigError, match="comparator"):
        run_augmentation(ds, ds, [], scenarios=("A",), out_dir=tmp_path, comparators=("adasyn",))
    with pytest.raises(ConfigError, match="ratios"):
        run_augmentation(ds, ds, [], scenarios=("A",), ratios=(0.0, 1.0), out_dir=tmp_path)


# ---- end to end on real data -------------------------------------------------------------------------------
@pytest.mark.slow
def test_augmentation_end_to_end_uci_heart(tmp_path):
    split = pytest.importorskip("sensecf.data.split")
    tabular = pytest.importorskip("sensecf.data.tabular")
    from sensecf.experiments.augmentation import CELLS_FILE, run_augmentation

    ds = tabular.load_uci_heart()
    train, test = split.patient_split(ds, 0.25, 0)
    kw = dict(scenarios=("A", "C"), seeds=(0, 1), ratios=(0.5, 1.0), classifier_kind="lr", out_dir=tmp_path,
              budget=15, comparators=("smote",))
    summary = run_augmentation(train, test, ["nice-sparsity"], **kw)
    for name in ("augmentation.json", "table4.csv", "table4.md", "fig7_ratio_sweep.png"):
        assert (tmp_path / name).exists(), name
    lines = (tmp_path / CELLS_FILE).read_text().splitlines()
    assert len(lines) == 2 * 2 * (2 + 2 * 2)  # scenarios x seeds x (baseline, reduced, 2 sources x 2 ratios)
    cells = [json.loads(x) for x in lines]
    for c in cells:
        assert set(c["metrics"]) == {"accuracy", "precision", "recall", "f1", "macro_f1", "f1_class0", "f1_class1",
                                     "auc", "brier", "ece"}
        if c["method"] == "smote":
            # the budget caps every source alike: 100 % = min(removed rows, max_factuals)
            assert c["n_added"] == c["n_requested"] == math.ceil(c["ratio"] * min(c["n_removed"], 15))
        if c["method"] == "nice-sparsity":
            assert 0 < c["n_added"] <= c["n_requested"] == math.ceil(c["ratio"] * min(c["n_removed"], 15))
    a = summary["scenarios"]["A"]
    assert set(a["augmented_class"].values()) == {1}
    assert a["baseline"]["aggregate"]["f1"]["n"] == 2
    assert set(a["methods"]) == {"nice-sparsity", "smote"} and set(a["methods"]["smote"]) == {"0.5", "1"}
    # the CFs added are valid CFs of the removed class, generated from the other class
    cfs = pd.read_csv(tmp_path / "aug_cfs" / "A-seed0-nice-sparsity.csv")
    assert (cfs["target"] == 1).all() and (cfs["status"] == "valid").any()
    table = pd.read_csv(tmp_path / "table4.csv")
    assert set(table["model"]) == {"baseline (full train)", "reduced", "nice-sparsity", "smote"}
    # resume: nothing is recomputed, the same aggregates come back
    again = run_augmentation(train, test, ["nice-sparsity"], **kw)
    assert (tmp_path / CELLS_FILE).read_text().splitlines() == lines
    assert again["scenarios"] == summary["scenarios"]
    with pytest.raises(ConfigError, match="classifier"):  # cells of another setup are never mixed in
        run_augmentation(train, test, ["nice-sparsity"], **{**kw, "classifier_kind": "nn"})


def test_pregenerated_cfs_are_what_the_augmentation_adds(tmp_path, monkeypatch):
    """pregenerate_cfs (the study's background job) writes exactly the CF tables run_augmentation then reads
    back without generating anything."""
    from sensecf.data.tabular import load_uci_heart
    from sensecf.data.split import patient_split
    from sensecf.experiments.augmentation import sources
    from sensecf.experiments.augmentation.run import pregenerate_cfs, run_augmentation

    train, test = patient_split(load_uci_heart(), 0.25, 0)
    kw = dict(scenarios=("A",), seeds=(0, 1), ratios=(0.5, 1.0), classifier_kind="lr", out_dir=tmp_path,
              options={}, budget=6)
    pregenerate_cfs(train, ["nice-sparsity"], **kw)
    tables = sorted(p.name for p in (tmp_path / "aug_cfs").iterdir())
    assert tables == ["A-seed0-nice-sparsity.csv", "A-seed1-nice-sparsity.csv"]
    monkeypatch.setattr(sources, "build_generator", lambda *a: pytest.fail("CFs were generated again"))
    pregenerate_cfs(train, ["nice-sparsity"], **kw)  # cached tables are kept
    summary = run_augmentation(train, test, ["nice-sparsity"], comparators=(), **kw)
    assert summary["scenarios"]["A"]["methods"]["nice-sparsity"]["1"]["n_added"]["mean"] > 0


def test_pregeneration_from_the_last_pair_writes_the_same_tables(tmp_path):
    """The study's main process generates from the last (scenario, seed) pair backwards while the background job
    goes forwards: the tables must not depend on the order, and a table one process wrote is not redone."""
    from sensecf.data.tabular import load_uci_heart
    from sensecf.data.split import patient_split
    from sensecf.experiments.augmentation.run import pregenerate_cfs

    train, _ = patient_split(load_uci_heart(), 0.25, 0)
    kw = dict(scenarios=("A", "B"), seeds=(0,), ratios=(1.0,), classifier_kind="lr", options={}, budget=5)
    pregenerate_cfs(train, ["nice-sparsity"], out_dir=tmp_path / "forward", **kw)
    backward = tmp_path / "backward"
    pregenerate_cfs(train, ["nice-sparsity"], out_dir=backward, reverse=True, **kw)
    names = sorted(p.name for p in (backward / "aug_cfs").iterdir())
    assert names == ["A-seed0-nice-sparsity.csv", "B-seed0-nice-sparsity.csv"]
    for name in names:
        fwd = pd.read_csv(tmp_path / "forward" / "aug_cfs" / name).drop(columns="seconds")
        bwd = pd.read_csv(backward / "aug_cfs" / name).drop(columns="seconds")
        pd.testing.assert_frame_equal(fwd, bwd)
    stamp = (backward / "aug_cfs" / names[0]).stat().st_mtime_ns
    pregenerate_cfs(train, ["nice-sparsity"], out_dir=backward, **kw)
    assert (backward / "aug_cfs" / names[0]).stat().st_mtime_ns == stamp
