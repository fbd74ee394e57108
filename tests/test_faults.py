"""Faults a long study must survive (issue #14): hostile numbers in LLM answers, damaged or partial result files,
a loosely typed schema, bad CSV values, a remote endpoint refused before any work, copied run folders."""

import json

import pandas as pd
import pytest

import sensecf.experiments.benchmark as bench
from sensecf.backends.cache import CachedBackend
from sensecf.data.tabular import load_csv_dataset
from sensecf.errors import ConfigError, DataError
from sensecf.experiments.augmentation.run import _fingerprint_options
from sensecf.generators.base import GeneratorContext
from sensecf.generators.llm.generator import LLMGenerator
from sensecf.models.classifiers import Classifier, train_classifier
from sensecf.schema import Schema
from sensecf.study import Study, StudyConfig

from conftest import row_split


class Fixed:
    """A TextBackend answering every prompt with the same text."""

    name, model_id, adapter_id, context_length = "fixed", "fixed", None, 8192

    def __init__(self, text):
        self.text = text

    def generate(self, chats, settings):
        return [[self.text] * settings.n for _ in chats]

    def count_tokens(self, chat):
        return 1


@pytest.fixture(scope="module")
def split(heart_mini):
    train, test = row_split(heart_mini, 1)
    return train, test, train_classifier("lr", train.X, train.y, heart_mini.schema, seed=0)


def test_a_400_digit_number_fails_its_row_and_replays_safely_from_the_cache(split, tmp_path):
    train, test, clf = split
    ctx = GeneratorContext(train.schema, clf, train.X, train.y)
    answer = "<new>\n- cholestoral: -" + "9" * 400 + "\n</new>"
    facts = test.X.iloc[:2]
    for _ in range(2):  # the second pass replays the cached completion
        backend = CachedBackend(Fixed(answer), tmp_path)
        res = LLMGenerator(ctx, backend, style="compact", repair_rounds=0, progress=False).generate(
            facts, 1 - clf.predict(facts))
        assert (res.status == "failed").all() and res.reason.str.contains("not a finite number").all()
    assert backend.hits == 2


def test_damaged_and_partial_benchmark_files_are_recomputed(split, tmp_path, monkeypatch, capsys):
    train, test, clf = split
    first = bench.run_benchmark(train, test, clf, ["nice-sparsity"], n_per_class=3, out_dir=tmp_path,
                                batch_size=2)
    path = tmp_path / "cfs" / "nice-sparsity.csv"
    text = path.read_text()
    path.write_text(text[: len(text) // 2])                       # a CSV cut in half
    again = bench.run_benchmark(train, test, clf, ["nice-sparsity"], n_per_class=3, out_dir=tmp_path,
                                batch_size=2)
    assert "unreadable" in capsys.readouterr().err
    for c in ("0", "1"):  # the same CFs again (timings aside)
        got, want = (x["methods"]["nice-sparsity"]["per_class"][c] for x in (again, first))
        assert {k: got[k] for k in ("validity", "distance", "sparsity", "cost")} == \
            {k: want[k] for k in ("validity", "distance", "sparsity", "cost")}
    # an interrupted method keeps its finished chunks: only the rest is generated
    full = pd.read_csv(path)
    path.unlink()
    full.iloc[:2].to_csv(tmp_path / "cfs" / "nice-sparsity.partial.csv", index=False)
    asked = []
    real = bench.build_generator

    def counting(name, ctx):
        gen = real(name, ctx)
        original = gen.generate
        gen.generate = lambda facts, target: asked.append(len(facts)) or original(facts, target)
        return gen

    monkeypatch.setattr(bench, "build_generator", counting)
    bench.run_benchmark(train, test, clf, ["nice-sparsity"], n_per_class=3, out_dir=tmp_path, batch_size=2)
    assert sum(asked) == len(full) - 2 and not (tmp_path / "cfs" / "nice-sparsity.partial.csv").exists()


def test_partial_cell_line_is_skipped_and_finished_cells_are_kept(heart_mini, tmp_path):
    from sensecf.experiments.augmentation import CELLS_FILE, run_augmentation

    train, test = row_split(heart_mini, 0)
    kw = dict(scenarios=("A",), seeds=(0,), ratios=(1.0,), classifier_kind="lr", out_dir=tmp_path, budget=5,
              comparators=("random-oversampling",))
    run_augmentation(train, test, [], **kw)
    cells = tmp_path / CELLS_FILE
    lines = cells.read_text().splitlines()
    cells.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])  # a kill mid-line
    run_augmentation(train, test, [], **kw)
    records = [json.loads(x) for x in cells.read_text().splitlines() if x.strip().endswith("}")]
    assert len(records) == len(lines)                     # the cut cell was recomputed, the others kept
    (tmp_path / "augmentation.json").write_text('{"scenarios": ')                 # truncated summary
    run_augmentation(train, test, [], **kw)
    assert json.loads((tmp_path / "augmentation.json").read_text())["scenarios"]


def test_truncated_model_file_is_a_clear_error(split, tmp_path):
    _, _, clf = split
    path = clf.save(tmp_path / "model.pkl")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ConfigError, match="model.pkl is not a readable sensecf classifier"):
        Classifier.load(path)


@pytest.mark.parametrize("body, message", [
    ("name: x\ngroupp: pid\nfeatures:\n  - name: a\n", r"unknown field\(s\) \['groupp'\] \(did you mean 'group'\?\)"),
    ("name: x\nfeatures:\n  - name: a\n    immutable: 'false'\n", "immutable must be true or false"),
    ("name: x\nfeatures:\n  - name: a\n    kind: categorical\n    levels: 'a,b,c'\n", "levels must be a list"),
    ("name: x\nfeatures:\n  - name: a\n    kind: categorical\n    levels: [no, yes]\n", "quote it"),
    ("name: x\nfeatures:\n  - name: a\n    bounds: 400\n", r"bounds must be a list \[lower, upper\]"),
    ("name: x\nlabel_names: [no, yes]\nfeatures:\n  - name: a\n", "label_names must be a mapping"),
    ("name: x\nfeatures:\n  - name: a\n    precision: two\n", "precision must be a whole number"),
])
def test_strict_schema_loader(tmp_path, body, message):
    path = tmp_path / "s.yaml"
    path.write_text(body)
    with pytest.raises(ConfigError, match=message):
        Schema.from_yaml(path)


def test_schema_paths_that_are_not_yaml_files(tmp_path):
    with pytest.raises(ConfigError, match="is not a file"):
        Schema.from_yaml(tmp_path)
    binary = tmp_path / "s.yaml"
    binary.write_bytes(b"\xff\xfe\x00\x81" * 10)
    with pytest.raises(ConfigError, match="not a text file"):
        Schema.from_yaml(binary)


@pytest.mark.parametrize("value, message", [(9999, "outside the clinical bounds"), ("inf", "not a finite number")])
def test_csv_values_outside_bounds_or_infinite_name_the_cell(heart_mini, tmp_path, value, message):
    frame = heart_mini.frame.copy()
    frame["cholestoral"] = frame["cholestoral"].astype(object)
    frame.loc[frame.index[4], "cholestoral"] = value
    csv, schema = tmp_path / "h.csv", tmp_path / "h.yaml"
    frame.to_csv(csv, index=False)
    heart_mini.schema.to_yaml(schema)
    with pytest.raises(DataError, match=message) as err:
        load_csv_dataset(csv, schema)
    assert err.value.row == 6 and err.value.column == "cholestoral" and err.value.file == str(csv)


def test_out_of_bounds_rows_dropped_and_counted_when_the_schema_says_so(heart_mini, tmp_path):
    frame = heart_mini.frame.copy()
    frame.loc[frame.index[[2, 4]], "cholestoral"] = 9999
    csv, schema = tmp_path / "h.csv", tmp_path / "h.yaml"
    frame.to_csv(csv, index=False)
    heart_mini.schema.out_of_bounds = "drop"
    heart_mini.schema.to_yaml(schema)
    ds = load_csv_dataset(csv, schema)
    assert len(ds.frame) == len(frame) - 2 and ds.frame["cholestoral"].max() < 9999
    assert any("dropped 2 row(s) with cholestoral outside" in n for n in ds.notes)
    with pytest.raises(ConfigError, match="out_of_bounds must be one of"):
        Schema.from_dict({**heart_mini.schema.to_dict(), "out_of_bounds": "ignore"})


def test_remote_endpoint_is_refused_before_any_work(tmp_path):
    cfg = StudyConfig(methods=["llm-zero-shot"], aug_methods=[], options={"backend": "openai:gpt-4o"})
    with pytest.raises(ConfigError, match="remote server https://api.openai.com/v1"):
        Study(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match="unknown option 'bakend'"):
        Study(StudyConfig(options={"bakend": "x"}), tmp_path / "run")


def test_a_copied_run_folder_keeps_its_augmentation_fingerprint(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    opts = lambda root: {"cache_dir": str(root / "llm-cache"), "adapter": str(root / "adapter"), "k": 3}  # noqa
    assert _fingerprint_options(opts(a), a) == _fingerprint_options(opts(b), b) == {"adapter": "adapter", "k": "3"}
