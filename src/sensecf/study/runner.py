"""The whole default study (`sensecf run`): data -> features -> classifiers -> fine-tune -> benchmark ->
augmentation -> intervention -> report, written step by step into one run folder so a rerun resumes.

The run folder is the only contract between the study and the report (report/html.py reads files only):
run.json, data_summary.json, schema.yaml, train.csv, test.csv, classifiers.json, model.pkl, fig1_*,
finetune.json, factuals.csv, benchmark.*, cfs/, augmentation*, table4.*, fig7_*, intervention.json.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from ..background import BackgroundJob
from ..backends.spec import parse_backend_spec
from ..console import console
from ..errors import ConfigError
from ..executor import Executor, LocalExecutor, make_executor
from ..files import read_json, warn_damaged, write_csv, write_json
from ..generators.base import check_methods, scope_chain
from ..generators.llm.resources import check_servers
from ..generators.options import scoped
from ..locking import FolderLock
from ..paths import default_adapter_dir
from ..provenance import package_versions
from .config import EXECUTION_SETTINGS, StudyConfig

ADAPTER_METHODS = ("llm-fine-tuned",)  # methods that wait for the study's fine-tuned adapter
FINETUNE_STEP = "fine-tune the LLM (LoRA)"
PREGENERATION_STEP = "augmentation CFs of the adapter methods"
FINETUNE_LOG = "finetune.log"
SPLIT_FILES = ("train.csv", "test.csv")


class Study:
    """Runs the steps of a study into `out_dir`; each step is skipped when its output already exists."""

    def __init__(self, config: StudyConfig, out_dir: Path):
        self.cfg, self.out = config, Path(out_dir)
        check_methods(config.methods + config.aug_methods)
        check_servers(config.methods + config.aug_methods, config.options)  # also checks every option key
        self.executor = make_executor(config.executor, address=config.ray_address)  # started at its first use
        self.lock = FolderLock(self.out, "run folder")  # one study per folder while this object lives
        previous = read_json(self.out / "run.json")
        if previous and previous.get("config") and _results_config(previous["config"]) != _results_config(
                asdict(config)):
            raise ConfigError(f"{self.out} holds a run with a different configuration; choose another --out "
                              "or delete the folder")
        self.out.mkdir(parents=True, exist_ok=True)
        self.timings: dict[str, float] = dict((previous or {}).get("timings_s") or {})
        self.adapter: str | None = None  # set by the fine-tuning step
        self.pregeneration: dict | None = None  # augmentation CFs the background job generates after the fine-tune
        self._save_run_info(status="running")

    def _save_run_info(self, status: str) -> None:
        write_json(self.out / "run.json", {"config": asdict(self.cfg), "status": status, "timings_s": self.timings,
                                            "reduction_unit": getattr(self, "unit", None),
                                            "versions": package_versions()})

    def _step(self, name: str, output: str, fn, done=None, before: float = 0.0) -> None:
        """Run `fn` unless its output exists (or `done()` says the output is complete); record its wall time (plus
        `before`: seconds of preparation that belong to the step)."""
        target = self.out / output
        if done() if done is not None else target.exists():
            console().print(f"[dim]✓ {name}: kept {target.name} from an earlier run[/]")
            return
        console().rule(f"[bold]{name}")
        t0 = time.perf_counter()
        fn()
        self.timings[name] = round(time.perf_counter() - t0 + before, 1)
        self._save_run_info(status="running")

    def _records(self, output: str, methods: list[str], key) -> bool:
        """Whether the JSON output exists, is readable and lists every one of `methods` (under `key(content)`)."""
        content = read_json(self.out / output)
        try:
            return content is not None and set(methods) <= set(key(content))
        except (KeyError, TypeError):
            return False

    @staticmethod
    def _pass(name: str, methods: list[str], first_pass: bool) -> tuple[str, list[str]]:
        """(step name, methods) of a step: the first pass leaves out the methods that wait for the adapter."""
        kept = [m for m in methods if not needs_adapter([m])] if first_pass else methods
        return (name if kept == methods else f"{name}: methods without the adapter"), kept

    def _executor(self, jobs: int = 1) -> Executor:
        """The configured executor: `jobs` local processes, or the run's Ray executor."""
        return LocalExecutor(jobs) if isinstance(self.executor, LocalExecutor) else self.executor

    # ---- steps -----------------------------------------------------------------------------------
    def load_data(self):
        from ..data.loading import load_dataset
        from ..data.split import patient_split, reduction_unit

        cfg = self.cfg
        t0 = time.perf_counter()
        ds = load_dataset(cfg.data, schema=cfg.schema, seed=cfg.seed, participants=cfg.participants, days=cfg.days,
                          demographics=cfg.demographics, cache_dir=self.out / "data")
        train, test = patient_split(ds, test_size=0.2, seed=cfg.seed)
        self.dataset, self.train, self.test = ds, train, test
        self.unit = reduction_unit(train, cfg.reduction_unit)

        def summary():
            g = ds.groups
            for name, part in zip(SPLIT_FILES, (train, test)):
                write_csv(self.out / name, part.frame, index=True)
            write_json(self.out / "data_summary.json", {
                "dataset": ds.name, "rows": len(ds), "participants": None if g is None else int(g.nunique()),
                "features": ds.schema.feature_names, "label_names": ds.schema.label_names,
                "class_counts": {int(k): int(v) for k, v in ds.y.value_counts().sort_index().items()},
                "train_rows": len(train), "test_rows": len(test),
                "train_participants": None if g is None else int(train.groups.nunique()),
                "test_participants": None if g is None else int(test.groups.nunique()),
                "reduction_unit": self.unit, "notes": ds.notes,
            })
            ds.schema.to_yaml(self.out / "schema.yaml")
        self._step("data", "data_summary.json", summary,
                   done=lambda: all((self.out / f).exists() for f in ("data_summary.json", "schema.yaml",
                                                                       *SPLIT_FILES)), before=time.perf_counter() - t0)

    def classifiers(self):
        from ..models.classifiers import Classifier, evaluate, reliability_table, train_classifier

        cfg, train, test = self.cfg, self.train, self.test

        def fit():
            results, reliability, fit_info = {}, {}, {}
            for kind in cfg.curve_kinds if cfg.classifier in cfg.curve_kinds else [cfg.classifier, *cfg.curve_kinds]:
                clf = train_classifier(kind, train.X, train.y, train.schema, seed=cfg.seed, groups=train.groups)
                results[kind] = evaluate(clf, test.X, test.y)
                reliability[kind] = reliability_table(test.y, clf.predict_proba(test.X)[:, 1])
                fit_info[kind] = clf.fit_info
                if kind == cfg.classifier:
                    clf.save(self.model_path)
            write_json(self.out / "classifiers.json", {"main": cfg.classifier, "test_metrics": results,
                                                       "reliability": reliability, "fit": fit_info})
        self._step("classifiers", "classifiers.json", fit,
                   done=lambda: self._records("classifiers.json", [cfg.classifier], lambda c: c["test_metrics"])
                   and self._model_readable())
        self.classifier = Classifier.load(self.model_path)

    def _model_readable(self) -> bool:
        """Whether model.pkl loads; a damaged one is warned about and retrained."""
        from ..models.classifiers import Classifier

        if not self.model_path.exists():
            return False
        try:
            Classifier.load(self.model_path)
            return True
        except ConfigError as e:
            warn_damaged(self.model_path, str(e))
            return False

    def classifier_curve(self, jobs: int = 2):
        from ..experiments.classifier_curve import classifier_curve

        cfg = self.cfg
        self._step("classifier curve (Fig 1)", "fig1_classifier_curve.png", lambda: classifier_curve(
            self.train, self.test, kinds=tuple(cfg.curve_kinds), fractions=tuple(cfg.curve_fractions),
            seeds=tuple(cfg.curve_seeds), out_dir=self.out, unit=self.unit, executor=self._executor(jobs)))

    @property
    def model_path(self) -> Path:
        return self.out / "model.pkl"

    def _finetune_config(self):
        from ..finetune.config import FinetuneConfig

        return FinetuneConfig.load(self.cfg.finetune_config).with_overrides(**self.cfg.finetune_overrides)

    def start_finetune(self) -> BackgroundJob | None:
        """Fine-tune the backend's model when a method needs the adapter: inline, or in a background process
        (returned; see `finish_finetune`) so that the steps which need no adapter use the other core."""
        base = finetune_base(scoped(ADAPTER_METHODS[0], self.cfg.options).get("backend"))
        if not self.cfg.finetune or base is None or not needs_adapter(self.cfg.methods + self.cfg.aug_methods):
            return None
        # the default recipe's adapter lives in a cache shared by runs (a rerun with the same data and config
        # skips training: the card records both); any other recipe or base model trains into the run folder
        default_recipe = base == "embedded" and self.cfg.finetune_config is None and not self.cfg.finetune_overrides
        self.adapter = str(default_adapter_dir() if default_recipe else self.out / "adapter")
        name, args = FINETUNE_STEP, (self.train, self.model_path, base, self._finetune_config(), self.adapter,
                                     self.cfg.seed, self.out / "finetune.json")
        if self._records("finetune.json", ["adapter"], lambda f: f) or not self._background():
            self._step(name, "finetune.json", lambda: train_adapter(*args),
                       done=lambda: self._records("finetune.json", ["adapter"], lambda f: f))
            return None
        console().rule(f"[bold]{name}")
        console().print(f"runs in a separate process while the steps that need no adapter go on, then generates "
                        f"the adapter methods' augmentation CFs; log: {self.out / FINETUNE_LOG}")
        self.pregeneration = self._pregeneration()
        return BackgroundJob(name, finetune_then_pregenerate, (*args, self.pregeneration),
                             self.out / FINETUNE_LOG).start()

    def _aug_train(self):
        """The training split the augmentation study uses (a stratified subsample of aug_train_rows)."""
        from ..data.split import subsample_fraction

        train = self.train
        if self.cfg.aug_train_rows and len(train) > self.cfg.aug_train_rows:
            train = subsample_fraction(train, self.cfg.aug_train_rows / len(train), seed=self.cfg.seed)
        return train

    def _pregeneration(self) -> dict | None:
        """pregenerate_cfs arguments for the augmentation CFs of the methods that need the adapter (None: none)."""
        methods = [m for m in self.cfg.aug_methods if needs_adapter([m])]
        if not methods or self._records("augmentation.json", self.cfg.aug_methods, lambda a: a["config"]["methods"]):
            return None
        return dict(train=self._aug_train(), methods=methods, scenarios=self.cfg.aug_scenarios,
                    seeds=self.cfg.aug_seeds, ratios=self.cfg.aug_ratios, classifier_kind=self.cfg.classifier,
                    out_dir=self.out, options=self._options(), budget=self.cfg.aug_budget, unit=self.unit)

    def _background(self) -> bool:
        if self.cfg.background_finetune is not None:
            return self.cfg.background_finetune
        import torch

        return not torch.cuda.is_available()

    def finish_finetune(self, job: BackgroundJob | None) -> None:
        """Wait for a background fine-tune; its failure is raised (naming the log) after the other steps saved."""
        if job is None:
            return
        console().rule(f"[bold]{FINETUNE_STEP}: waiting for the background process")
        out_json = self.out / "finetune.json"
        with console().status("fine-tuning") as status:
            waited = job.wait(on_poll=lambda line: status.update(f"fine-tuning: {line}"), until=out_json.is_file)
        if self.pregeneration and job.running:
            # the adapter is written and the background job generates the augmentation CFs: this process takes
            # the (scenario, seed) pairs from the other end instead of waiting
            from ..experiments.augmentation.run import pregenerate_cfs

            t0 = time.perf_counter()
            pregenerate_cfs(**self.pregeneration, reverse=True)
            self.timings[PREGENERATION_STEP + " (this process, from the last pair)"] = round(
                time.perf_counter() - t0, 1)
        with console().status("generating augmentation CFs") as status:
            waited += job.wait(on_poll=lambda line: status.update(f"background: {line}"))
        self.timings[FINETUNE_STEP + " (background)"] = round(out_json.stat().st_mtime - job.started_at, 1)
        if self.pregeneration:
            self.timings[PREGENERATION_STEP + " (background)"] = round(time.time() - out_json.stat().st_mtime, 1)
        self.timings["waiting for the background job"] = waited
        card = (read_json(out_json) or {}).get("card", {})
        console().print(f"adapter written: {self.adapter} ({card.get('steps')} steps, {card.get('wall_seconds')} s "
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
        from ..experiments.benchmark import run_benchmark

        name, methods = self._pass("counterfactual benchmark (Table III)", self.cfg.methods, first_pass)
        self._step(name, "benchmark.json", lambda: run_benchmark(
            self.train, self.test, self.classifier, methods, n_per_class=self.cfg.n_per_class, seed=self.cfg.seed,
            out_dir=self.out, options=self._options(), executor=self._executor()),
            done=lambda: self._records("benchmark.json", methods, lambda b: b["methods"]))

    def augmentation(self, first_pass: bool = False):
        """Table IV and Fig 7 (first pass as for the benchmark)."""
        from ..experiments.augmentation import run_augmentation

        name, methods = self._pass("augmentation (Table IV, Fig 7)", self.cfg.aug_methods, first_pass)
        train = self._aug_train()
        self._step(name, "augmentation.json", lambda: run_augmentation(
            train, self.test, methods, scenarios=tuple(self.cfg.aug_scenarios),
            seeds=tuple(self.cfg.aug_seeds), ratios=tuple(self.cfg.aug_ratios), classifier_kind=self.cfg.classifier,
            out_dir=self.out, options=self._options(), budget=self.cfg.aug_budget, unit=self.unit,
            executor=self._executor()),
            done=lambda: self._records("augmentation.json", methods, lambda a: a["config"]["methods"]))

    def intervention(self):
        from ..experiments.intervention import choose_example

        self._step("intervention example (Table II)", "intervention.json",
                   lambda: write_json(self.out / "intervention.json",
                                      choose_example(self.out, self.cfg.methods, self.test.X, self.train.X,
                                                     self.classifier, self.train.schema)),
                   done=lambda: read_json(self.out / "intervention.json") is not None)

    def report(self) -> Path:
        from ..report.html import render_report

        self._save_run_info(status="finished")  # before rendering, so the page shows the final status
        return render_report(self.out)

    def run(self) -> Path:
        """Run (or resume) every step; returns the path of report.html.

        While the embedded model fine-tunes in the background (CPU default), the Fig 1 curve, the benchmark
        and augmentation of every method that needs no adapter run in this process; the methods that need the
        adapter follow once it is written. A Ray instance this run started is stopped at the end.
        """
        try:
            return self._run_steps()
        finally:
            self.executor.close()

    def _run_steps(self) -> Path:
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


def _results_config(config: dict) -> dict:
    """The settings a run's results depend on (all but EXECUTION_SETTINGS)."""
    return {k: v for k, v in config.items() if k not in EXECUTION_SETTINGS}


def needs_adapter(methods) -> bool:
    """Whether any of `methods` generates with the fine-tuned adapter."""
    return any(scope_chain(m)[0] in ADAPTER_METHODS for m in methods)


def finetune_base(backend: str | None) -> str | None:
    """The model the study fine-tunes for a backend spec: the embedded model, an `hf:` checkpoint folder, or
    None for an OpenAI-compatible server (it serves its own adapter, e.g. vLLM --lora-modules)."""
    return parse_backend_spec(backend).finetune_base


def finetune_then_pregenerate(train, model_path: Path, base: str, config, adapter_dir: str, seed: int,
                              out_json: Path, pregeneration: dict | None) -> None:
    """The study's background job: the fine-tune, then (when given) the augmentation CFs of the methods that need
    the adapter (experiments/augmentation/run.pregenerate_cfs), which the augmentation step then reads back."""
    train_adapter(train, model_path, base, config, adapter_dir, seed, out_json)
    if pregeneration:
        from ..experiments.augmentation.run import pregenerate_cfs

        pregenerate_cfs(**pregeneration)


def train_adapter(train, model_path: Path, base: str, config, adapter_dir: str, seed: int, out_json: Path) -> None:
    """The study's fine-tuning step (also the background process's entry point): LoRA of `base` on SFT pairs of
    `train` labelled by the classifier saved at `model_path`; writes `out_json` = {adapter, card}."""
    from ..finetune.train import finetune
    from ..models.classifiers import Classifier

    path = finetune(train, Classifier.load(model_path), base=base, config=config, out_dir=adapter_dir, seed=seed)
    write_json(out_json, {"adapter": str(path), "card": read_json(path / "card.json")})
