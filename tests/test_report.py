"""The one-page HTML report: full and partial run folders, damaged files, figures, CLI, headless browser."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from sensecf.data.dataset import Dataset  # noqa: E402
from sensecf.errors import ConfigError  # noqa: E402
from sensecf.report.figures import change_frequency, latent_space, radar_chart  # noqa: E402
from sensecf.report.html import SECTIONS, render_report  # noqa: E402
from sensecf.schema import FeatureSpec, Schema  # noqa: E402

HEADINGS = [h for _, h in SECTIONS]


def toy() -> Dataset:
    rng = np.random.default_rng(1)
    n = 160
    schema = Schema("toy", [FeatureSpec("a", "continuous", "mg/dL", bounds=(-10, 10), display="Glucose A"),
                            FeatureSpec("b", "continuous", bounds=(-10, 10)),
                            FeatureSpec("g", "categorical", levels=["x", "y"], immutable=True)],
                    label="label", label_names={0: "moderate", 1: "high"})
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "g": rng.choice(["x", "y"], n)})
    frame["label"] = (frame["a"] + frame["b"] > 0).astype(int)
    return Dataset("toy", schema, frame)


def _png(path, title):
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [0, 1])
    ax.set_title(title)
    fig.savefig(path)
    plt.close(fig)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A complete hand-made study folder: real benchmark CFs (nice-sparsity, lr) plus hand-written JSONs."""
    from sensecf.experiments.augmentation import plot_ratio_sweep, summarize, write_table4
    from sensecf.experiments.benchmark import run_benchmark, sample_factuals
    from sensecf.experiments.intervention import intervention_view, narrative
    from sensecf.models.classifiers import train_classifier

    d = tmp_path_factory.mktemp("run")
    ds = toy()
    train, test = ds.subset(ds.frame.index[:120]), ds.subset(ds.frame.index[120:])
    clf = train_classifier("lr", train.X, train.y, ds.schema, 0)
    run_benchmark(train, test, clf, ["nice-sparsity", "nice-proximity"], n_per_class=4, seed=0, out_dir=d)
    factuals, _ = sample_factuals(test, clf, 4, 0)
    factuals.rename_axis("factual_id").to_csv(d / "factuals.csv")
    train.frame.to_csv(d / "train.csv")  # as the study writes it: features, label (and group)
    ds.schema.to_yaml(d / "schema.yaml")
    (d / "run.json").write_text(json.dumps({"config": {"data": "toy", "seed": 0, "aug_seeds": [0, 1]},
                                            "status": "finished", "timings_s": {"data": 1.5},
                                            "versions": {"python": "3.11", "numpy": np.__version__}}))
    (d / "data_summary.json").write_text(json.dumps({
        "dataset": "toy", "rows": 160, "participants": 40, "class_counts": {"0": 80, "1": 80},
        "label_names": {"0": "moderate", "1": "high"}, "notes": ["Medication <derived> from study_group"]}))
    (d / "classifiers.json").write_text(json.dumps({"main": "lr", "test_metrics": {
        "lr": {"accuracy": 0.9, "precision": 0.8, "recall": 0.85, "f1": 0.82, "auc": 0.93}}}))
    _png(d / "fig1_classifier_curve.png", "fig1")
    (d / "finetune.json").write_text(json.dumps({"adapter": "/cache/adapters/default", "card": {
        "base_model": "embedded:smollm2", "steps": 120, "wall_seconds": 400.5, "seconds_per_step": 3.3,
        "config": {"prompt_style": "compact", "target_policy": "grid", "lora_r": 16, "batch_size": 2},
        "pairs": {"train_pairs": 360, "val_pairs_used": 8, "skipped": {"no neighbour": 2}},
        "train_loss_first": 0.44, "train_loss_last": 0.1}}))
    cfs = pd.read_csv(d / "cfs" / "nice-sparsity.csv", dtype={"g": str})
    row = cfs[cfs["status"] == "valid"].iloc[0]
    view = intervention_view(test.X.loc[row["factual_id"]], row, clf, ds.schema)
    view.update({"method": "nice-sparsity", "row": str(row["factual_id"]), "narrative": narrative(view, ds.schema)})
    (d / "intervention.json").write_text(json.dumps(view))
    recs = []
    for seed, (base, red, aug) in enumerate([(0.8, 0.6, 0.7), (0.8, 0.7, 0.8)]):
        for method, ratio, f1 in (("baseline", 0.0, base), ("reduced", 0.0, red), ("smote", 1.0, aug)):
            recs.append({"scenario": "A", "seed": seed, "method": method, "ratio": ratio, "augmented_class": 1,
                         "n_removed": 30, "n_added": 30, "n_requested": 30,
                         "metrics": {"accuracy": f1, "precision": f1, "recall": f1, "f1": f1, "macro_f1": f1,
                                     "auc": f1}})
    aug = summarize(recs, methods=["smote"], scenarios=["A"], seeds=[0, 1], ratios=[1.0])
    aug["config"] = {"ratios": [1.0], "seeds": [0, 1], "classifier": "lr", "methods": [], "comparators": ["smote"]}
    (d / "augmentation.json").write_text(json.dumps(aug))
    write_table4(aug, d)
    plot_ratio_sweep(aug, d / "fig7_ratio_sweep.png")
    return d


def _notrun(html: str) -> list[str]:
    return re.findall(r'class="notrun"><strong>Not run\.</strong>([^<]*)', html)


def test_full_report_has_every_section_and_is_self_contained(run_dir):
    out = render_report(run_dir)
    html = out.read_text()
    for h in HEADINGS:
        assert f"<h2>{h}</h2>" in html, h
    assert _notrun(html) == []
    assert "could not build" not in html
    assert not re.search(r"""(src|href)\s*=\s*["'](https?:)?//""", html)  # no external resources
    assert "<link" not in html and "<script" not in html
    imgs = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(imgs) == 4  # Fig 1, 6, 8 and 7
    assert all(base64.b64decode(i)[:4] == b"\x89PNG" for i in imgs)
    assert "Medication &lt;derived&gt; from study_group" in html  # escaped
    assert "0.750 ± " in html  # Table IV F1 mean ± CI
    assert "Glucose A" in html and "Condition: the model predicts" in html
    assert "compact / grid" in html and "120 × 2 ×" in html and "0.440 → 0.100" in html  # the adapter card
    for name in ("fig6_radar.png", "fig8_latent_space.png", "fig6_change_frequency.csv", "fig7_ratio_sweep.png"):
        assert (run_dir / name).exists(), name


def test_partial_run_dir_renders_not_run_notes(tmp_path, run_dir):
    for name in ("run.json", "data_summary.json"):
        shutil.copy(run_dir / name, tmp_path / name)
    html = render_report(tmp_path, tmp_path / "out" / "r.html").read_text()
    for h in HEADINGS:
        assert f"<h2>{h}</h2>" in html, h
    notes = _notrun(html)
    assert len(notes) == 7, notes
    assert any("benchmark" in n for n in notes) and any("intervention.json" in n for n in notes)
    assert any("finetune.json is absent" in n for n in notes)


def test_empty_and_damaged_run_dirs(tmp_path, run_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert len(_notrun(render_report(empty).read_text())) == len(SECTIONS)
    damaged = tmp_path / "damaged"
    shutil.copytree(run_dir, damaged)
    (damaged / "benchmark.json").write_text("{not json")
    (damaged / "augmentation.json").write_text(json.dumps({"scenarios": {"A": {}}}))
    html = render_report(damaged).read_text()
    assert "could not build this section: ConfigError" in html and "benchmark.json: not valid JSON" in html
    assert html.count("could not build this section") == 2
    with pytest.raises(ConfigError, match="run folder not found"):
        render_report(tmp_path / "nope")


def test_change_frequency_counts_changed_features(tmp_path):
    schema = toy().schema
    factuals = pd.DataFrame({"a": [0.0, 1.0, 2.0], "b": [0.0, 0.0, 0.0], "g": ["x", "y", "x"]},
                            index=pd.Index(["r1", "r2", "r3"]))
    table = pd.DataFrame({"factual_id": ["r1", "r2", "r3"], "a": [0.5, 1.0, 3.0], "b": [0.0, 0.2, 0.0],
                          "g": ["x", "y", "y"], "target": [1, 1, 0], "status": ["valid", "valid", "invalid"]})
    freq = change_frequency(factuals, {"m": table, "none": table.assign(status="failed")}, schema)
    assert freq.loc["m"].tolist() == [0.5, 0.5, 0.0]  # r3 is invalid and not counted
    assert freq.loc["none"].isna().all()
    assert radar_chart(freq, tmp_path / "r.png", schema).exists()
    X_train = pd.concat([factuals] * 3, ignore_index=True)
    assert latent_space(X_train, factuals, {"m": table}, schema, tmp_path / "l.png").exists()


def test_cli_report(run_dir, tmp_path):
    from typer.testing import CliRunner

    from sensecf.cli import app

    res = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(tmp_path / "cli.html")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "cli.html").read_text().count("<h2>") == len(SECTIONS)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _console_messages(html_path, profile) -> list[str]:
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--dump-dom",
                           html_path.as_uri()], capture_output=True, text=True, timeout=90)
    assert "</html>" in proc.stdout  # the page loaded
    return [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_report_opens_in_headless_chromium_without_console_errors(run_dir, tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>undefined_function()</script></body></html>")
    assert _console_messages(bad, tmp_path / "p1")  # the check can see an error
    assert _console_messages(render_report(run_dir), tmp_path / "p2") == []
