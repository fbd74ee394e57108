"""Fine-tuning settings: the paper's Table I defaults (resources/finetune_default.yaml) plus CPU overrides."""

from __future__ import annotations

import importlib.resources as ir
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import yaml

from ..errors import ConfigError
from ..generators.llm.prompt import STYLES
from .pairs import POLICIES

PRECISIONS = ("fp16", "bf16", "fp32")
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")


@dataclass(frozen=True)
class FinetuneConfig:
    """LoRA/SFT settings. `cpu` holds overrides applied by `effective(cuda=False)` (runs without a GPU)."""

    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.03
    target_modules: str | tuple[str, ...] = "all-linear"
    epochs: float = 2
    batch_size: int = 4
    grad_accum: int = 4
    learning_rate: float = 2e-4
    lr_scheduler: str = "linear"
    warmup_ratio: float = 0.0
    max_length: int = 512
    eval_steps: int = 50
    save_steps: int = 100
    logging_steps: int = 10
    precision: str = "fp16"
    gradient_checkpointing: bool = True
    max_steps: int | None = None
    threads: int | None = None
    max_pairs: int | None = None
    val_fraction: float = 0.1
    max_eval_pairs: int | None = 64
    prompt_style: str = "paper"
    target_min_proba: float = 0.5
    target_policy: str = "neighbour"
    distill_rounds: int = 0
    distill_factuals: int = 200
    distill_steps: int | None = None
    cpu: dict = field(default_factory=dict)

    def __post_init__(self):
        if isinstance(self.target_modules, list):
            object.__setattr__(self, "target_modules", tuple(self.target_modules))
        for name in ("lora_dropout", "val_fraction", "warmup_ratio", "epochs", "learning_rate"):
            v = getattr(self, name)
            if isinstance(v, str):  # YAML 1.1 reads "2e-4" as text
                try:
                    object.__setattr__(self, name, float(v))
                except ValueError:
                    pass  # validate() names the field
        self.validate()

    # ---- validation ------------------------------------------------------------------------------
    def validate(self, source: str = "fine-tuning config") -> None:
        """Raise ConfigError naming the first bad field."""
        positive_int = ("lora_r", "lora_alpha", "batch_size", "grad_accum", "max_length", "eval_steps", "save_steps",
                        "logging_steps")
        optional_positive_int = ("max_steps", "threads", "max_pairs", "max_eval_pairs", "distill_steps")

        def bad(name, why):
            raise ConfigError(f"{source}: field {name!r} {why}, got {getattr(self, name)!r}")

        for name in positive_int + optional_positive_int:
            v = getattr(self, name)
            if v is None and name in optional_positive_int:
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                bad(name, "must be a positive integer" + (" or null" if name in optional_positive_int else ""))
        for name in ("distill_rounds", "distill_factuals"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                bad(name, "must be a whole number >= 0")
        for name, lo, hi in (("lora_dropout", 0, 1), ("val_fraction", 0, 1), ("warmup_ratio", 0, 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v < hi:
                bad(name, f"must be a number in [{lo}, {hi})")
        for name in ("epochs", "learning_rate"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                bad(name, "must be a positive number")
        if self.precision not in PRECISIONS:
            bad("precision", f"must be one of {', '.join(PRECISIONS)}")
        if self.prompt_style not in STYLES:
            bad("prompt_style", f"must be one of {', '.join(STYLES)}")
        if self.target_policy not in POLICIES:
            bad("target_policy", f"must be one of {', '.join(POLICIES)}")
        v = self.target_min_proba
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.5 <= v < 1:
            bad("target_min_proba", "must be a number in [0.5, 1)")
        if self.lr_scheduler not in SCHEDULERS:
            bad("lr_scheduler", f"must be one of {', '.join(SCHEDULERS)}")
        if not isinstance(self.gradient_checkpointing, bool):
            bad("gradient_checkpointing", "must be true or false")
        tm = self.target_modules
        if not (isinstance(tm, str) and tm) and not (isinstance(tm, tuple) and tm and all(isinstance(t, str)
                                                                                         for t in tm)):
            bad("target_modules", "must be 'all-linear' or a non-empty list of module names")
        if not isinstance(self.cpu, dict):
            bad("cpu", "must be a mapping of field overrides")
        unknown = sorted(set(self.cpu) - _field_names() - {"cpu"}) + (["cpu"] if "cpu" in self.cpu else [])
        if unknown:
            raise ConfigError(f"{source}: unknown field(s) {unknown} under 'cpu'; known: {sorted(_field_names())}")
        if self.cpu:
            try:
                replace(self, cpu={}, **self.cpu)
            except ConfigError as e:
                raise ConfigError(f"{source}, under 'cpu': {str(e).split(': ', 1)[-1]}") from None

    # ---- construction ----------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path | None = None) -> "FinetuneConfig":
        """The packaged defaults, overridden by the keys of the YAML file at `path` (if given).

        A `cpu:` mapping in the file updates (not replaces) the default CPU overrides.
        """
        base = _read_yaml(ir.files("sensecf") / "resources" / "finetune_default.yaml", "finetune_default.yaml")
        if path is not None:
            path = Path(path)
            if not path.is_file():
                raise ConfigError(f"fine-tuning config file not found: {path}")
            user = _read_yaml(path, str(path))
            cpu = {**base.get("cpu", {}), **(user.pop("cpu", None) or {})}
            base.update(user)
            base["cpu"] = cpu
        return cls.from_dict(base, source=str(path or "finetune_default.yaml"))

    @classmethod
    def from_dict(cls, data: dict, source: str = "fine-tuning config") -> "FinetuneConfig":
        unknown = sorted(set(data) - _field_names())
        if unknown:
            raise ConfigError(f"{source}: unknown field(s) {unknown}; known: {sorted(_field_names())}")
        try:
            return cls(**data)
        except ConfigError as e:
            raise ConfigError(str(e).replace("fine-tuning config", source, 1)) from None

    def with_overrides(self, **changes) -> "FinetuneConfig":
        """A copy with these fields set on every device (they also replace the same CPU overrides)."""
        changes = {k: v for k, v in changes.items() if v is not None or k == "max_steps"}
        unknown = sorted(set(changes) - _field_names())
        if unknown:
            raise ConfigError(f"unknown fine-tuning field(s) {unknown}; known: {sorted(_field_names())}")
        cpu = {k: v for k, v in self.cpu.items() if k not in changes}
        return replace(self, **{**changes, "cpu": changes.get("cpu", cpu)})

    def effective(self, cuda: bool) -> "FinetuneConfig":
        """The settings used on this device: the CPU overrides applied when there is no CUDA GPU."""
        return self if cuda or not self.cpu else replace(self, cpu={}, **self.cpu)

    def to_dict(self) -> dict:
        d = asdict(self)
        if isinstance(d["target_modules"], tuple):
            d["target_modules"] = list(d["target_modules"])
        return d


def _field_names() -> set[str]:
    return {f.name for f in fields(FinetuneConfig)}


def _read_yaml(path, source: str) -> dict:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of fine-tuning fields")
    return data
