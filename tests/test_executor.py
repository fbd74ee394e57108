"""Executors: the map contract (positions, the task's own errors) on local processes and on a real local Ray with
2 CPUs; Fig 1, augmentation and batch CF generation give exactly the same results on Ray as on the local executor;
the study and CLI settings."""

import json
import math
import os
import sys
from dataclasses import replace
from functools import partial

import pandas as pd
import pytest
from typer.testing import CliRunner

from sensecf.errors import ConfigError
from sensecf.executor import LocalExecutor, make_executor

from conftest import heart_mini_dataset, row_split

NO_RAY = "ray is not installed (pip install 'sensecf[ray]')"


@pytest.mark.parametrize("jobs", [1, 2])
def test_local_executor_yields_positions_and_raises_the_task_error(jobs):
    ex = LocalExecutor(jobs)
    assert sorted(ex.map(math.sqrt, [1, 4, 9])) == [(0, 1.0), (1, 2.0), (2, 3.0)]
    with pytest.raises(ConfigError, match="jobs must be at least 1"):  # raised inside the task
        list(ex.map(partial(make_executor, jobs=0), ["local"]))


def test_make_executor_rejects_bad_settings(monkeypatch):
    with pytest.raises(ConfigError, match="unknown executor 'dask'; available: local, ray"):
        make_executor("dask")
    with pytest.raises(ConfigError, match="needs --executor ray"):
        make_executor("local", address="auto")
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as without the package
    with pytest.raises(ConfigError, match=r"pip install 'sensecf\[ray\]'"):
        make_executor("ray")


def test_local_ray_starts_with_usage_stats_off_and_a_closed_proxy(monkeypatch):
    from sensecf.executor import _CLOSED_PROXY, _local_ray_environment

    monkeypatch.setenv("http_proxy", "http://proxy.example:3128")
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    monkeypatch.delenv("RAY_USAGE_STATS_ENABLED", raising=False)
    with _local_ray_environment() as task_env:
        assert os.environ["RAY_USAGE_STATS_ENABLED"] == "0"
        assert os.environ["http_proxy"] == os.environ["HTTP_PROXY"] == _CLOSED_PROXY
        assert task_env["http_proxy"] == "http://proxy.example:3128"  # the tasks get the caller's values back
    assert os.environ["http_proxy"] == "http://proxy.example:3128"  # restored in this process
    assert "HTTP_PROXY" not in os.environ and "RAY_USAGE_STATS_ENABLED" not in os.environ


def test_study_records_the_executor_and_resumes_with_another(tmp_path):
    pytest.importorskip("ray", reason=NO_RAY)
    from sensecf.study import Study, StudyConfig

    cfg = StudyConfig.quick()
    Study(cfg, tmp_path).lock.release()
    assert json.loads((tmp_path / "run.json").read_text())["config"]["executor"] == "local"
    # how the work runs is not what it computes: the folder resumes on a cluster (Ray connects at first use)
    Study(replace(cfg, executor="ray", ray_address="auto"), tmp_path).lock.release()
    config = json.loads((tmp_path / "run.json").read_text())["config"]
    assert (config["executor"], config["ray_address"]) == ("ray", "auto")
    with pytest.raises(ConfigError, match="different configuration"):
        Study(replace(cfg, seed=5), tmp_path)
    with pytest.raises(ConfigError, match="unknown executor"):
        Study(replace(cfg, executor="dask"), tmp_path / "other")


# ---- a real local Ray with 2 CPUs ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_executor():
    ray = pytest.importorskip("ray", reason=NO_RAY)
    with make_executor("ray", num_cpus=2) as ex:
        yield ex
    assert not ray.is_initialized()  # the instance it started is stopped


@pytest.mark.slow
def test_ray_executor_contract(ray_executor):
    import ray

    assert sorted(ray_executor.map(math.sqrt, [1, 4, 9, 16])) == [(0, 1.0), (1, 2.0), (2, 3.0), (3, 4.0)]
    assert ray.cluster_resources()["CPU"] == 2  # started at the first map
    # the workers run with usage stats off, the tasks with the caller's proxy settings (not the closed proxy)
    seen = dict(ray_executor.map(lambda name: os.environ.get(name), ["RAY_USAGE_STATS_ENABLED", "http_proxy"]))
    assert seen == {0: "0", 1: os.environ.get("http_proxy", "")}
    assert list(ray_executor.map(math.sqrt, [])) == []
    with pytest.raises(ConfigError, match="jobs must be at least 1"):  # the task's own exception, not Ray's
        list(ray_executor.map(partial(make_executor, jobs=0), ["local"]))


def _sorted_csv(path, keys, drop=()):
    frame = pd.read_csv(path).drop(columns=list(drop))
    return frame.sort_values(keys, ignore_index=True)


@pytest.mark.slow
def test_fig1_curve_on_ray_equals_local(uci_heart_split, ray_executor, tmp_path):
    from sensecf.experiments.classifier_curve import CURVE_CSV, classifier_curve

    train, test = uci_heart_split
    kw = dict(kinds=("lr", "gb"), fractions=(1.0, 0.5), seeds=(0, 1))
    local = classifier_curve(train, test, out_dir=tmp_path / "local", jobs=1, **kw)
    on_ray = classifier_curve(train, test, out_dir=tmp_path / "ray", executor=ray_executor, **kw)
    assert len(on_ray) == 8
    pd.testing.assert_frame_equal(on_ray, local, check_exact=True)
    keys = ["kind", "fraction", "seed"]
    pd.testing.assert_frame_equal(_sorted_csv(tmp_path / "ray" / CURVE_CSV, keys),
                                  _sorted_csv(tmp_path / "local" / CURVE_CSV, keys), check_exact=True)


def _cells(path):
    return {(c["scenario"], c["seed"], c["method"], c["ratio"]): {k: v for k, v in c.items() if k != "seconds"}
            for c in map(json.loads, path.read_text().splitlines())}


@pytest.mark.slow
def test_augmentation_on_ray_equals_local_and_resumes_across_executors(uci_heart_split, ray_executor, tmp_path):
    from sensecf.experiments.augmentation import CELLS_FILE, run_augmentation

    train, test = uci_heart_split
    kw = dict(scenarios=("A",), seeds=(0, 1), ratios=(0.5, 1.0), classifier_kind="lr", budget=10,
              comparators=("smote",))
    local = run_augmentation(train, test, ["nice-sparsity"], out_dir=tmp_path / "local", **kw)
    on_ray = run_augmentation(train, test, ["nice-sparsity"], out_dir=tmp_path / "ray", executor=ray_executor, **kw)
    cells = _cells(tmp_path / "ray" / CELLS_FILE)
    assert len(cells) == 2 * (2 + 2 * 2) and cells == _cells(tmp_path / "local" / CELLS_FILE)  # floats equal
    assert all(c["n_added"] > 0 for k, c in cells.items() if k[2] == "nice-sparsity")
    assert on_ray["scenarios"] == local["scenarios"]
    for seed in (0, 1):
        name = f"aug_cfs/A-seed{seed}-nice-sparsity.csv"
        pd.testing.assert_frame_equal(_sorted_csv(tmp_path / "ray" / name, ["factual_id"], ["seconds"]),
                                      _sorted_csv(tmp_path / "local" / name, ["factual_id"], ["seconds"]),
                                      check_exact=True)
    # a pair cut short resumes on Ray: only its missing cells are computed, from the CFs the local run left
    path, cfs = tmp_path / "local" / CELLS_FILE, tmp_path / "local" / "aug_cfs" / "A-seed1-nice-sparsity.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-3]) + "\n")
    stamp = cfs.stat().st_mtime_ns
    again = run_augmentation(train, test, ["nice-sparsity"], out_dir=tmp_path / "local", executor=ray_executor,
                             **kw)
    assert _cells(path) == cells and len(path.read_text().splitlines()) == len(lines)
    assert cfs.stat().st_mtime_ns == stamp and again["scenarios"] == local["scenarios"]


@pytest.mark.slow
def test_batch_generation_on_ray_equals_local(ray_executor, tmp_path):
    from sensecf.experiments.benchmark import run_benchmark
    from sensecf.models.classifiers import train_classifier

    ds = heart_mini_dataset()
    train, test = row_split(ds, 1)
    clf = train_classifier("lr", train.X, train.y, ds.schema, seed=0)
    methods = ["nice-sparsity", "dice-random"]
    kw = dict(n_per_class=3, seed=0, options={"dice_sample_size": 300}, batch_size=2, n_boot=50)
    local = run_benchmark(train, test, clf, methods, out_dir=tmp_path / "local", **kw)
    on_ray = run_benchmark(train, test, clf, methods, out_dir=tmp_path / "ray", executor=ray_executor, **kw)
    for m in methods:  # 6 factuals in chunks of 2: three tasks per method
        a = pd.read_csv(tmp_path / "ray" / "cfs" / f"{m}.csv").drop(columns="seconds")
        b = pd.read_csv(tmp_path / "local" / "cfs" / f"{m}.csv").drop(columns="seconds")
        assert len(a) == 6 and (a["status"] == "valid").any()
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        for c in ("0", "1"):
            timing = ("seconds_per_valid_cf",)
            ray_m, local_m = on_ray["methods"][m]["per_class"][c], local["methods"][m]["per_class"][c]
            assert {k: v for k, v in ray_m.items() if k not in timing} == \
                {k: v for k, v in local_m.items() if k not in timing}


@pytest.mark.slow
def test_cli_curve_with_executor_ray(ray_executor, tmp_path):
    from sensecf.cli import app

    args = ["curve", "--data", "uci-heart", "--kinds", "lr", "--fractions", "1.0,0.5", "--seeds", "0",
            "--out", str(tmp_path)]
    res = CliRunner().invoke(app, args + ["--executor", "ray"])
    assert res.exit_code == 0, res.output
    assert len(pd.read_csv(tmp_path / "fig1_classifier_curve.csv")) == 2
    res = CliRunner().invoke(app, args + ["--executor", "local", "--ray-address", "auto"])
    assert res.exit_code == 1 and isinstance(res.exception, ConfigError)
