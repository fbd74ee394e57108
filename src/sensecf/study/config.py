"""StudyConfig: every setting of a `sensecf run`, from defaults, a YAML file and CLI flags."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from ..data.aireadi import DEFAULT_DAYS, DEFAULT_PARTICIPANTS
from ..errors import ConfigError

BASELINE_METHODS = ["dice-random", "cfnow-greedy", "nice-sparsity", "nice-proximity", "nice-sparsity@actionable"]
LLM_METHODS = ["llm-zero-shot", "llm-few-shot", "llm-fine-tuned"]
#: what the classifier's calibration of the LLM's proposals adds (the plain rows keep the paper's single pass; the
#: calibrated rows reuse their cached answers)
CALIBRATED_METHODS = ["llm-zero-shot+calibrated", "llm-fine-tuned+calibrated"]
#: the augmentation study runs on a stratified subsample of the training split: label scarcity is a small-data
#: problem, and the paper's NN is retrained for every cell
AUG_TRAIN_ROWS = 2000
#: how the work runs, not what it computes: a run folder resumes with other values of these
EXECUTION_SETTINGS = ("executor", "ray_address")


@dataclass
class StudyConfig:
    """Every setting of a study run; a YAML file with these keys can be passed as --config."""

    data: str = "synthetic"
    schema: str | None = None
    demographics: str | None = None
    participants: int = DEFAULT_PARTICIPANTS
    days: int = DEFAULT_DAYS
    seed: int = 0
    classifier: str = "nn"
    #: how scarcity is simulated (Fig 1 and scenarios A/B/C): participants (default for data with a group column)
    #: or rows
    reduction_unit: str = "auto"
    curve_kinds: list[str] = field(default_factory=lambda: ["nn", "lr", "rf", "gb"])
    curve_fractions: list[float] = field(default_factory=lambda: [1.0, 0.8, 0.6, 0.4, 0.2])
    curve_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    methods: list[str] = field(default_factory=lambda: BASELINE_METHODS + LLM_METHODS + CALIBRATED_METHODS)
    n_per_class: int = 10
    finetune: bool = True
    finetune_config: str | None = None  # YAML over resources/finetune_default.yaml (as `sensecf finetune --config`)
    finetune_overrides: dict = field(default_factory=dict)  # FinetuneConfig fields set last, e.g. {max_steps: 60}
    # fine-tune in a separate process while the steps that need no adapter run: None = when there is no CUDA GPU
    # (on a single GPU the zero-/few-shot LLM would share the device with training)
    background_finetune: bool | None = None
    aug_methods: list[str] = field(default_factory=lambda: ["nice-sparsity", "llm-fine-tuned+calibrated"])
    aug_train_rows: int | None = AUG_TRAIN_ROWS
    aug_scenarios: list[str] = field(default_factory=lambda: ["A", "B", "C"])
    aug_seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    aug_ratios: list[float] = field(default_factory=lambda: [0.2, 0.4, 0.6, 0.8, 1.0])
    #: rows added at ratio 100 % are capped at this budget (null = as many as were removed, the paper's setting)
    aug_budget: int | None = 20
    # single-pass LLM generation as in the paper's Table III: with the embedded model a feedback round bought 1 valid
    # CF in 60 requests for ~2 minutes (zero-/few-shot never recover; the compact fine-tuned model was not trained
    # on feedback turns); options {repair_rounds: N} turns the verify-and-repair loop on. The zero-shot row's
    # calibration rows do not widen with an extra sampled round in the study: with paper-style prompts that round
    # made the zero-shot row take 153 s instead of 61 s for 20 factuals (7 valid instead of 0); for the fine-tuned
    # row's 300 augmentation CFs it took 389 s of CPU for 16 more valid CFs (104 valid without it), the study
    # 10 min 55 s; Table III's fine-tuned factuals all flipped in the first round (benchmarks keep the default 1)
    options: dict = field(default_factory=lambda: {"cfnow_time_limit": 3, "repair_rounds": 0,
                                                   "llm-zero-shot+calibrated.widen_rounds": 0,
                                                   "llm-fine-tuned+calibrated.widen_rounds": 0})
    #: where the Fig 1 cells, augmentation pairs and chunks of CF generation run: local (this machine's processes)
    #: or ray (Ray tasks on a local Ray instance, or on the cluster at ray_address; docs/cluster.md)
    executor: str = "local"
    ray_address: str | None = None

    @classmethod
    def quick(cls) -> "StudyConfig":
        """A small, fast configuration for smoke tests (minutes on 2 cores)."""
        return cls(participants=24, days=5, curve_kinds=["nn", "lr"], curve_fractions=[1.0, 0.5], curve_seeds=[0],
                   methods=["nice-sparsity", "dice-random", "llm-few-shot", "llm-fine-tuned",
                            "llm-fine-tuned+calibrated"], n_per_class=3,
                   finetune_overrides={"max_steps": 2, "max_pairs": 16, "max_eval_pairs": 2, "eval_steps": 2,
                                       "save_steps": 2, "logging_steps": 1},
                   aug_methods=["nice-sparsity"], aug_scenarios=["A"], aug_seeds=[0, 1], aug_ratios=[0.5, 1.0],
                   aug_train_rows=600, aug_budget=20, options={"cfnow_time_limit": 2, "repair_rounds": 1})

    @classmethod
    def from_yaml(cls, path: str | Path, base: "StudyConfig | None" = None) -> "StudyConfig":
        """Override `base` (default settings) with the keys of a YAML file; unknown keys are an error."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping of study settings")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"{path}: unknown field(s) {unknown}; known: {sorted(known)}")
        cfg = asdict(base or cls())
        cfg.update(raw)
        return cls(**cfg)


def study_config_from(config_path: str | None, quick: bool, **overrides) -> StudyConfig:
    """Default or quick settings, overridden by a YAML config, then by explicit CLI flags (non-None values)."""
    base = StudyConfig.quick() if quick else StudyConfig()
    cfg = StudyConfig.from_yaml(config_path, base) if config_path else base
    data = asdict(cfg)
    data.update({k: v for k, v in overrides.items() if v is not None})
    return StudyConfig(**data)
