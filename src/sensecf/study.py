"""The whole default study (`sensecf run`): data -> features -> classifiers -> fine-tune -> benchmark ->
augmentation -> intervention -> report, written step by step into one run folder so a rerun resumes."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import pandas as pd
import yaml
from rich.console import Console

from .background import BackgroundJob
from .errors import ConfigError
from .generators.base import options_for
from .locking import FolderLock
from .paths import default_adapter_dir
from .provenance import package_versions, write_json

console = Console(stderr=True)

BASELINE_METHODS = ["dice-random", "cfnow-greedy", "nice-sparsity", "nice-proximity"]
#: the augmentation study runs on a stratified subsample of the training split: label scarcity is a small-data
#: problem, a CPU budget of generated rows is then a meaningful share of what was removed, and the paper's NN is
#: retrained ~300 times
AUG_TRAIN_ROWS = 2000
LLM_METHODS = ["llm-zero-shot", "llm-few-shot", "llm-fine-tuned"]
ADAPTER_METHODS = ("llm-fine-tuned",)  # methods that wait for the study's fine-tuned adapter
FINETUNE_STEP = "fine-tune the LLM (LoRA)"
FINETUNE_LOG = "finetune.log"


@dataclass
class StudyConfig:
    """Every setting of a study run; a YAML file with these keys can be passed as --config."""

    data: str = "synthetic"
    schema: str | None = None
    demographics: str | None = None
    participants: int = 120
    days: int = 10
    seed: int = 0
    classifier: str = "nn"
    curve_kinds: list[str] = field(default_factory=lambda: ["nn", "lr", "rf", "gb"])
    curve_fractions: list[float] = field(default_factory=lambda: [1.0, 0.8, 0.6, 0.4, 0.2])
    curve_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    methods: list[str] = field(default_factory=lambda: BASELINE_METHODS + LLM_METHODS)
    n_per_class: int = 10
    finetune: bool = True
    finetune_config: str | None = None  # YAML over resources/finetune_default.yaml (as `sensecf finetune --config`)
    finetune_overrides: dict = field(default_factory=dict)  # FinetuneConfig fields set last, e.g. {max_steps: 60}
    # fine-tune in a separate process while the steps that need no adapter run: None = when there is no CUDA GPU
    # (on a single GPU the zero-/few-shot LLM would share the device with training)
    background_finetune: bool | None = None
    # LLM generators are selectable here (e.g. llm-fine-tuned) but regenerate CFs for every scenario and seed
    # (up to 600 rows; llm-fine-tuned ~0.9 s per row on one core), which the ~15-minute default does not afford
    aug_methods: list[str] = field(default_factory=lambda: ["nice-sparsity"])
    aug_train_rows: int | None = AUG_TRAIN_ROWS
    aug_scenarios: list[str] = field(default_factory=lambda: ["A", "B", "C"])
    aug_seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    aug_ratios: list[float] = field(default_factory=lambda: [0.2, 0.4, 0.6, 0.8, 1.0])
    aug_max_factuals: int = 40
    # single-pass LLM generation as in the paper's Table III: with the embedded model a feedback round bought 1 valid
    # CF in 60 requests for ~2 minutes (zero-/few-shot never recover; the compact fine-tuned model was not trained
    # on feedback turns); options {repair_rounds: N} turns the verify-and-repair loop on
    options: dict = field(default_factory=lambda: {"cfnow_time_limit": 3, "repair_rounds": 0})

    @classmethod
    def quick(cls) -> "StudyConfig":
        """A small, fast configuration for smoke tests (minutes on 2 cores)."""
        return cls(participants=24, days=5, curve_kinds=["nn", "lr"], curve_fractions=[1.0, 0.5], curve_seeds=[0],
                   methods=["nice-sparsity", "dice-random", "llm-few-shot", "llm-fine-tuned"], n_per_class=3,
                   finetune_overrides={"max_steps": 2, "max_pairs": 16, "max_eval_pairs": 2, "eval_steps": 2,
                                       "save_steps": 2, "logging_steps": 1},
                   aug_methods=["nice-sparsity"], aug_scenarios=["A"], aug_seeds=[0, 1], aug_ratios=[0.5, 1.0],
                   aug_train_rows=600, aug_max_factuals=20, options={"cfnow_time_limit": 2, "repair_rounds": 1})

    @classmethod
    def from_yaml(cls, path: str | Path, base: "StudyConfig | None" = None) -> "StudyConfig":
        """Override `base` (default settings) with the keys of a YAML file; unknown keys are an error."""
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"config file not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"{path}: unknown field(s) {unknown}; known: {sorted(known)}")
        cfg = asdict(base or cls())
        cfg.update(raw)
        return cls(**cfg)


class Study:
    """Runs the steps of a study into `out_dir`; each step is skipped when its output already exists."""

    def __init__(self, config: StudyConfig, out_dir: Path):
        self.cfg, self.out = config, Path(out_dir)
        self.lock = FolderLock(self.out, "run folder")  # one study per folder while this object lives
        self.out.mkdir(parents=True, exist_ok=True)
        self.timings: dict[str, float] = {}
        self.adapter: str | None = None  # set by the fine-tuning step
        run_file = self.out / "run.json"
        if run_file.exists():
            previous = json.loads(run_file.read_text()).get("config")
            if previous and previous != asdict(config):
                raise ConfigError(f"{self.out} holds a run with a different configuration; choose another --out "
                                  "or delete the folder")
        self._save_run_info(status="running")

    def _save_run_info(self, status: str) -> None:
        write_json(self.out / "run.json", {"config": asdict(self.cfg), "status": status, "timings_s": self.timings,
                                            "versions": package_versions()})

    def _step(self, name: str, output: str, fn, done=None) -> None:
        """Run `fn` unless its output exists (or `done()` says the output is complete); record its wall time."""
        target = self.out / output
        if done() if done is not None else target.exists():
            console.print(f"[dim]✓ {name}: kept {target.name} from an earlier run[/]")
            return
        console.rule(f"[bold]{name}")
        t0 = time.perf_counter()
        fn()
        self.timings[name] = round(time.perf_counter() - t0, 1)
        self._save_run_info(status="running")

    def _records(self, output: str, methods: list[str], key) -> bool:
        """Whether the JSON output exists and lists every one of `methods` (under `key(content)`)."""
        path = self.out / output
        return path.exists() and set(methods) <= set(key(json.loads(path.read_text())))

    @staticmethod
    def _pass(name: str, methods: list[str], first_pass: bool) -> tuple[str, list[str]]:
        """(step name, methods) of a step: the first pass leaves out the methods that wait for the adapter."""
        kept = [m for m in methods if m not in ADAPTER_METHODS] if first_pass else methods
        return (name if kept == methods else f"{name}: methods without the adapter"), kept

    # ---- steps -----------------------------------------------------------------------------------
    def load_data(self):
        from .data.loading import load_dataset
        from .data.split import patient_split

        cfg = self.cfg
        ds = load_dataset(cfg.data, schema=cfg.schema, seed=cfg.seed, participants=cfg.participants, days=cfg.days,
                          demographics=cfg.demographics, cache_dir=self.out / "data")
        train, test = patient_split(ds, test_size=0.2, seed=cfg.seed)
        self.dataset, self.train, self.test = ds, train, test

        def summary():
            g = ds.groups
            write_json(self.out / "data_summary.json", {
                "dataset": ds.name, "rows": len(ds), "participants": None if g is None else int(g.nunique()),
                "features": ds.schema.feature_names, "label_names": ds.schema.label_names,
                "class_counts": {int(k): int(v) for k, v in ds.y.value_counts().sort_index().items()},
                "train_rows": len(train), "test_rows": len(test),
                "train_participants": None if g is None else int(train.groups.nunique()),
                "test_participants": None if g is None else int(test.groups.nunique()),
                "notes": ds.notes,
            })
            ds.schema.to_yaml(self.out / "schema.yaml")
        self._step("data", "data_summary.json", summary)

    def classifiers(self):
        from .models.classifiers import Classifier, evaluate, train_classifier

        cfg, train, test = self.cfg, self.train, self.test

        def fit():
            results = {}
            for kind in cfg.curve_kinds if cfg.classifier in cfg.curve_kinds else [cfg.classifier, *cfg.curve_kinds]:
                clf = train_classifier(kind, train.X, train.y, train.schema, seed=cfg.seed)
                results[kind] = evaluate(clf, test.X, test.y)
                if kind == cfg.classifier:
                    clf.save(self.model_path)
            write_json(self.out / "classifiers.json", {"main": cfg.classifier, "test_metrics": results})
        self._step("classifiers", "classifiers.json", fit)
        self.classifier = Classifier.load(self.model_path)

    def classifier_curve(self, jobs: int = 2):
        from .experiments.classifier_curve import classifier_curve

        cfg = self.cfg
        self._step("classifier curve (Fig 1)", "fig1_classifier_curve.png", lambda: classifier_curve(
            self.train, self.test, kinds=tuple(cfg.curve_kinds), fractions=tuple(cfg.curve_fractions),
            seeds=tuple(cfg.curve_seeds), out_dir=self.out, jobs=jobs))

    @property
    def model_path(self) -> Path:
        return self.out / "model.pkl"

    def _finetune_config(self):
        from .finetune.config import FinetuneConfig

        return FinetuneConfig.load(self.cfg.finetune_config).with_overrides(**self.cfg.finetune_overrides)

    def start_finetune(self) -> BackgroundJob | None:
        """Fine-tune the backend's model when a method needs the adapter: inline, or in a background process
        (returned; see `finish_finetune`) so that the steps which need no adapter use the other core."""
        base = finetune_base(options_for(ADAPTER_METHODS[0], self.cfg.options).get("backend"))
        if not self.cfg.finetune or base is None or not needs_adapter(self.cfg.methods + self.cfg.aug_methods):
            return None
        # the default recipe's adapter lives in a cache shared by runs (a rerun with the same data and config
        # skips training: the card records both); any other recipe or base model trains into the run folder
        default_recipe = base == "embedded" and self.cfg.finetune_config is None and not self.cfg.finetune_overrides
        self.adapter = str(default_adapter_dir() if default_recipe else self.out / "adapter")
        name, args = FINETUNE_STEP, (self.train, self.model_path, base, self._finetune_config(), self.adapter,
                                     self.cfg.seed, self.out / "finetune.json")
        if (self.out / "finetune.json").exists() or not self._background():
            self._step(name, "finetune.json", lambda: train_adapter(*args))
            return None
        console.rule(f"[bold]{name}")
        console.print(f"runs in a separate process while the steps that need no adapter go on; log: "
                      f"{self.out / FINETUNE_LOG}")
        return BackgroundJob(name, train_adapter, args, self.out / FINETUNE_LOG).start()

    def _background(self) -> bool:
        if self.cfg.background_finetune is not None:
            return self.cfg.background_finetune
        import torch

        return not torch.cuda.is_available()

    def finish_finetune(self, job: BackgroundJob | None) -> None:
        """Wait for a background fine-tune; its failure is raised (naming the log) after the other steps saved."""
        if job is None:
            return
        console.rule(f"[bold]{FINETUNE_STEP}: waiting for the background process")
        with console.status("fine-tuning") as status:
            waited = job.wait(on_poll=lambda line: status.update(f"fine-tuning: {line}"))
        out_json = self.out / "finetune.json"
        self.timings[FINETUNE_STEP + " (background)"] = round(out_json.stat().st_mtime - job.started_at, 1)
        self.timings["waiting for the fine-tune"] = waited
        card = json.loads(out_json.read_text())["card"]
        console.print(f"adapter written: {self.adapter} ({card.get('steps')} steps, {card.get('wall_seconds')} s "
                      "of training)")
        self._save_run_info(status="running")

    def _options(self) -> dict:
        opts = dict(self.cfg.options)
        opts.setdefault("cache_dir", str(self.out / "llm-cache"))
        if self.adapter:
            opts.setdefault("adapter", self.adapter)
        return opts

    def benchmark(self, first_pass: bool = False):
        """Table III (a first pass leaves out the methods that wait for the adapter; the full call resumes)."""
        from .experiments.benchmark import run_benchmark

        name, methods = self._pass("counterfactual benchmark (Table III)", self.cfg.methods, first_pass)
        self._step(name, "benchmark.json", lambda: run_benchmark(
            self.train, self.test, self.classifier, methods, n_per_class=self.cfg.n_per_class, seed=self.cfg.seed,
            out_dir=self.out, options=self._options()),
            done=lambda: self._records("benchmark.json", methods, lambda b: b["methods"]))

    def augmentation(self, first_pass: bool = False):
        """Table IV and Fig 7 (first pass as for the benchmark)."""
        from .data.split import subsample_fraction
        from .experiments.augmentation import run_augmentation

        name, methods = self._pass("augmentation (Table IV, Fig 7)", self.cfg.aug_methods, first_pass)
        train = self.train
        if self.cfg.aug_train_rows and len(train) > self.cfg.aug_train_rows:
            train = subsample_fraction(train, self.cfg.aug_train_rows / len(train), seed=self.cfg.seed)
        self._step(name, "augmentation.json", lambda: run_augmentation(
            train, self.test, methods, scenarios=tuple(self.cfg.aug_scenarios),
            seeds=tuple(self.cfg.aug_seeds), ratios=tuple(self.cfg.aug_ratios), classifier_kind=self.cfg.classifier,
            out_dir=self.out, options={**self._options(), "max_factuals": self.cfg.aug_max_factuals}),
            done=lambda: self._records("augmentation.json", methods, lambda a: a["config"]["methods"]))

    def intervention(self):
        from .experiments.intervention import intervention_view, narrative

        def pick():
            bench = json.loads((self.out / "benchmark.json").read_text())
            cfs_dir = self.out / "cfs"
            best = None
            for method in self.cfg.methods:
                path = cfs_dir / f"{method}.csv"
                if not path.exists():
                    continue
                table = pd.read_csv(path, index_col=0)
                ok = table[(table["status"] == "valid") & (table["target"] == 0)]
                if len(ok):
                    best = (method, ok.index[0], table.loc[ok.index[0]])
                    if method.startswith("llm"):
                        break
            if best is None:
                write_json(self.out / "intervention.json", {"note": "no valid counterfactual for a high-stress "
                                                             "instance in the benchmark", "benchmark_methods":
                                                             list(bench.get("methods", {}))})
                return
            method, row_id, cf = best
            factual = self.test.X.loc[_same_type(row_id, self.test.X.index)]
            view = intervention_view(factual, cf[self.train.schema.feature_names], self.classifier, self.train.schema)
            view.update({"method": method, "row": str(row_id), "narrative": narrative(view, self.train.schema)})
            write_json(self.out / "intervention.json", view)
        self._step("intervention example (Table II)", "intervention.json", pick)

    def report(self) -> Path:
        from .report.html import render_report

        self._save_run_info(status="finished")  # before rendering, so the page shows the final status
        return render_report(self.out)

    def run(self) -> Path:
        """Run (or resume) every step; returns the path of report.html.

        While the embedded model fine-tunes in the background (CPU default), the Fig 1 curve, the benchmark
        and augmentation of every method that needs no adapter run in this process; the methods that need the
        adapter follow once it is written.
        """
        self.load_data()
        self.classifiers()
        job = self.start_finetune()
        try:
            self.classifier_curve(jobs=1 if job else 2)
            if job:
                self.benchmark(first_pass=True)
                self.augmentation(first_pass=True)
            self.finish_finetune(job)
        finally:
            if job:
                job.stop()
        self.benchmark()
        self.augmentation()
        self.intervention()
        return self.report()


def needs_adapter(methods) -> bool:
    """Whether any of `methods` generates with the fine-tuned adapter."""
    return any(m in ADAPTER_METHODS for m in methods)


def finetune_base(backend: str | None) -> str | None:
    """The model the study fine-tunes for a backend spec: the embedded model, an `hf:` checkpoint folder, or
    None for an OpenAI-compatible server (it serves its own adapter, e.g. vLLM --lora-modules)."""
    spec = str(backend or "embedded")
    if spec == "embedded" or spec.startswith("embedded:"):
        return spec
    return spec[3:] if spec.startswith("hf:") else None


def train_adapter(train, model_path: Path, base: str, config, adapter_dir: str, seed: int, out_json: Path) -> None:
    """The study's fine-tuning step (also the background process's entry point): LoRA of `base` on SFT pairs of
    `train` labelled by the classifier saved at `model_path`; writes `out_json` = {adapter, card}."""
    from .finetune.train import finetune
    from .models.classifiers import Classifier

    path = finetune(train, Classifier.load(model_path), base=base, config=config, out_dir=adapter_dir, seed=seed)
    write_json(out_json, {"adapter": str(path), "card": json.loads((path / "card.json").read_text())})


def _same_type(label, index: pd.Index):
    """CSV round-trips turn index labels into str/int; map back to the index's own type."""
    if label in index:
        return label
    for cand in (str(label), int(label) if str(label).lstrip("-").isdigit() else None):
        if cand is not None and cand in index:
            return cand
    raise ConfigError(f"row {label!r} is not in the test set")


def study_config_from(config_path: str | None, quick: bool, **overrides) -> StudyConfig:
    """Default or quick settings, overridden by a YAML config, then by explicit CLI flags (non-None values)."""
    base = StudyConfig.quick() if quick else StudyConfig()
    cfg = StudyConfig.from_yaml(config_path, base) if config_path else base
    data = asdict(cfg)
    data.update({k: v for k, v in overrides.items() if v is not None})
    return StudyConfig(**data)


__all__ = ["Study", "StudyConfig", "study_config_from"]
