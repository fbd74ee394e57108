"""`sensecf run --quick`: the whole study end to end on a tiny synthetic cohort, then a resume."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from sensecf.errors import ConfigError
from sensecf.generators.options import scoped as options_for
from sensecf.study import StudyConfig, finetune_base, study_config_from


def test_config_file_overrides_and_rejects_unknown_fields(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("n_per_class: 7\nmethods: [nice-sparsity]\n")
    cfg = study_config_from(str(good), quick=True, seed=3)
    assert (cfg.n_per_class, cfg.methods, cfg.seed) == (7, ["nice-sparsity"], 3)
    assert cfg.participants == StudyConfig.quick().participants
    bad = tmp_path / "bad.yaml"
    bad.write_text("n_per_klass: 7\n")
    with pytest.raises(ConfigError, match="n_per_klass"):
        study_config_from(str(bad), quick=True)


@pytest.mark.parametrize("backend, base", [(None, "embedded"), ("embedded:gemma", "embedded:gemma"),
                                           ("hf:/models/llama", "/models/llama"), ("openai:sensecf", None)])
def test_the_study_fine_tunes_the_backend_model(backend, base):
    assert finetune_base(backend) == base  # an OpenAI-compatible server serves its own adapter: no fine-tune
    scoped = {"backend": backend, "llm-fine-tuned.backend": "openai:sensecf"}
    assert finetune_base(options_for("llm-fine-tuned", scoped).get("backend")) is None  # the method's own backend


@pytest.mark.slow
def test_quick_run_end_to_end_and_resume(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "sensecf", "run", "--quick", "--out", str(out)]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=1500)
    assert first.returncode == 0, first.stderr[-3000:]
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "finished"
    html = (out / "report.html").read_text()
    for heading in ("Table III", "Table IV", "Intervention"):
        assert heading in html
    bench = json.loads((out / "benchmark.json").read_text())
    assert set(StudyConfig.quick().methods) <= set(bench["methods"])
    aug = json.loads((out / "augmentation.json").read_text())
    assert "A" in json.dumps(aug)
    # the quick recipe fine-tuned in a background process, into the run folder (the default adapter cache is
    # kept for the default recipe), while the methods without the adapter ran first
    finetune = json.loads((out / "finetune.json").read_text())
    assert finetune["adapter"] == str(out / "adapter") and finetune["card"]["steps"] == 2
    assert "Traceback" not in (out / "finetune.log").read_text()
    assert list(run["timings_s"])[:5] == ["data", "classifiers", "classifier curve (Fig 1)",
                                          "counterfactual benchmark (Table III): methods without the adapter",
                                          "augmentation (Table IV, Fig 7)"]
    assert "fine-tune the LLM (LoRA) (background)" in run["timings_s"]
    fine_tuned = bench["methods"]["llm-fine-tuned"]["outcomes"]["outcome"]
    assert sum(fine_tuned.values()) == bench["n_factuals"]  # every factual answered by the fine-tuned model
    # a rerun keeps every finished step
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "kept benchmark.json" in second.stderr
    # the run folder is the report's only input: a copy without the data cache, on a "machine" with an empty
    # sensecf cache, renders every section
    copy = tmp_path / "elsewhere"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("data", "llm-cache", "report.html", "*.png"))
    shutil.copy(out / "fig1_classifier_curve.png", copy)
    shutil.copy(out / "fig7_ratio_sweep.png", copy)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "empty-cache")}
    res = subprocess.run([sys.executable, "-m", "sensecf", "report", str(copy)], capture_output=True, text=True,
                         timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    html = (copy / "report.html").read_text()
    assert "Not run." not in html and "could not build" not in html


def test_run_refuses_a_folder_of_another_configuration(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"config": {"seed": 99}}))
    res = subprocess.run([sys.executable, "-m", "sensecf", "run", "--quick", "--out", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2
    assert "different configuration" in res.stderr and "Traceback" not in res.stderr
