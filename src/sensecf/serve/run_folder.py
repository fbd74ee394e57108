"""What the what-if server needs from a run folder (or a dataset without a run), and its only door into the rest
of sensecf: the other serve modules import the package's functions from here.

Training and test rows come from `RUN_DIR/train.csv` and `test.csv` (index = row id, as the study writes them),
the schema from `schema.yaml`, the classifier from `model.pkl`. The run's counterfactuals are `cfs/<method>.csv`,
one row per factual keyed by `factual_id` (a test row id), with the target and the method's status.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..cf import CFResult
from ..cf.constraints import changed_features, constraint_violations
from ..data.dataset import Dataset
from ..errors import ConfigError, DataError
from ..experiments.intervention import intervention_view, narrative
from ..generators.base import GeneratorContext, available_methods, build_generator
from ..metrics import cf_metrics
from ..models.classifiers import Classifier, train_classifier
from ..schema import Schema

__all__ = ["Workspace", "load_run", "from_data", "generate", "one_cf_metrics", "llm_text", "allowed_direction",
           "available_methods", "changed_features", "constraint_violations", "intervention_view", "narrative",
           "ConfigError"]


@dataclass
class Workspace:
    """Schema, classifier, training rows, test rows (index = row id as text) and the run's counterfactuals."""

    schema: Schema
    classifier: Classifier
    X_train: pd.DataFrame
    y_train: pd.Series
    test: pd.DataFrame
    groups: pd.Series | None  # participant id of each test row, when the schema names a group column
    cfs: dict[str, pd.DataFrame]  # method -> CF table indexed by factual id (text)
    options: dict  # generator options of the run
    seed: int
    source: str


def load_run(run_dir: str | Path) -> Workspace:
    """The workspace of a study or benchmark run folder (schema.yaml or run.json, model.pkl, cfs/*.csv)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"run folder not found: {run_dir}")
    model = run_dir / "model.pkl"
    if not model.is_file():
        raise ConfigError(f"{run_dir} has no model.pkl: not a run folder (`sensecf run --out DIR` writes one)")
    cfg = _run_config(run_dir)
    classifier = Classifier.load(model)
    files = [run_dir / n for n in ("train.csv", "test.csv", "schema.yaml")]
    missing = [p.name for p in files if not p.is_file()]
    if missing:
        raise ConfigError(f"{run_dir} lacks {', '.join(missing)}: not a complete run folder (`sensecf run --out "
                          "DIR` writes them)")
    schema = Schema.from_yaml(files[2])
    train, test = _read_rows(files[0], schema, True), _read_rows(files[1], schema, False)
    options = dict((cfg or {}).get("options") or {})
    options.setdefault("cache_dir", str(run_dir / "llm-cache"))
    finetune = run_dir / "finetune.json"
    if finetune.is_file():
        options.setdefault("adapter", json.loads(finetune.read_text())["adapter"])
    return _workspace(schema, classifier, train, test, _cf_tables(run_dir, schema, test.index), options,
                      int((cfg or {}).get("seed", 0)), f"run folder {run_dir}")


def from_data(train: Dataset, test: Dataset, classifier_kind: str, seed: int, options: dict) -> Workspace:
    """A workspace without a run: the given split, a freshly trained classifier, no stored counterfactuals."""
    clf = train_classifier(classifier_kind, train.X, train.y, train.schema, seed)
    frame = test.frame.copy()
    frame.index = frame.index.astype(str)
    return _workspace(train.schema, clf, train.frame, frame, {}, dict(options), seed,
                      f"{train.name.removesuffix('-train')} (classifier {classifier_kind} trained at start)")


def _workspace(schema: Schema, clf, train: pd.DataFrame, test: pd.DataFrame, cfs: dict, options: dict, seed: int,
               source: str) -> Workspace:
    groups = test[schema.group].astype(str) if schema.group and schema.group in test.columns else None
    return Workspace(schema, clf, train[schema.feature_names], train[schema.label].astype(int),
                     test[schema.feature_names], groups, cfs, options, seed, source)


def _run_config(run_dir: Path) -> dict | None:
    path = run_dir / "run.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())["config"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ConfigError(f"{path}: not a run.json with a 'config' object") from None


def _read_rows(path: Path, schema: Schema, require_label: bool) -> pd.DataFrame:
    """A train/test CSV of the run (first column = row id), validated against the schema."""
    frame = pd.read_csv(path, index_col=0, dtype={c: str for c in schema.categorical})
    frame.index = frame.index.astype(str)
    return schema.validate_frame(frame, source=str(path), require_label=require_label)


def _cf_tables(run_dir: Path, schema: Schema, test_ids: pd.Index) -> dict[str, pd.DataFrame]:
    """cfs/<method>.csv of the run, indexed by factual id; every id must be a test row."""
    tables = {}
    for path in sorted((run_dir / "cfs").glob("*.csv")):
        if path.stem == "factuals":
            continue
        table = pd.read_csv(path, dtype={c: str for c in schema.categorical} | {"factual_id": str, "reason": str})
        missing = [c for c in ("factual_id", "target", "status", *schema.feature_names) if c not in table.columns]
        if missing:
            raise DataError(f"missing column(s) {missing}", file=str(path), column=missing[0])
        table.index = table.pop("factual_id")
        unknown = table.index.difference(test_ids)
        if len(unknown):
            raise DataError(f"{len(unknown)} factual id(s) are not rows of this run's test split (e.g. "
                            f"{unknown[0]!r}): the folder mixes runs", file=str(path), row=unknown[0])
        tables[path.stem] = table
    return tables


def generate(ws: Workspace, method: str, factual: pd.DataFrame, target: int, options: dict) -> CFResult:
    """One counterfactual of a one-row factual frame with a registered method (ConfigError for bad options)."""
    ctx = GeneratorContext(ws.schema, ws.classifier, ws.X_train, ws.y_train, ws.seed, options)
    return build_generator(method, ctx).generate(factual, target)


def one_cf_metrics(ws: Workspace, factual: pd.Series, cf: pd.Series, target: int, status: str,
                   seconds: float) -> dict:
    """The benchmark's metrics (validity, distance, sparsity, plausibility, realism, ...) of a single CF."""
    idx = pd.Index([factual.name])
    frame = lambda s: s.to_frame().T.set_axis(idx)  # noqa: E731
    one = lambda v: pd.Series([v], index=idx)  # noqa: E731
    result = CFResult("one", frame(factual), one(int(target)), frame(cf), one(status), one(""), one(float("nan")),
                      one(float(seconds)))
    return cf_metrics(result, ws.X_train, ws.y_train, ws.schema, ws.classifier)


def llm_text(view: dict, schema: Schema, options: dict) -> str | None:
    """The LLM's narrative of an intervention view, or None when a number in it does not match the view."""
    from ..backends.openai_backend import SERVER_OPTIONS
    from ..experiments.intervention import llm_narrative
    from ..generators.base import method_options
    from ..generators.llm.resources import cached_backend

    opts = method_options("llm-zero-shot", options)
    server = {k: getattr(opts, k) for k in SERVER_OPTIONS} if opts.backend.startswith("openai:") else {}
    backend = cached_backend(opts.backend, base_url=opts.base_url, allow_remote=opts.allow_remote, **server)
    return llm_narrative(view, schema, backend)


def allowed_direction(spec, target: int, schema: Schema) -> str:
    """The direction a feature may move in a CF towards `target` (goal-relative where the schema has it)."""
    return spec.allowed_direction(target, schema.desired_class)
