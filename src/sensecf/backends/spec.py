"""Backend specs ("embedded", "embedded:gemma", "hf:PATH", "openai:MODEL"), parsed in one place."""

from __future__ import annotations

from dataclasses import dataclass

from sensecf.errors import ConfigError

SPEC_FORMS = ("embedded", "embedded:smollm2", "embedded:gemma", "hf:PATH", "openai:MODEL")
EMBEDDED_NAMES = ("smollm2", "gemma")


@dataclass(frozen=True)
class BackendSpec:
    """A parsed backend spec: kind ("embedded" | "hf" | "openai") and its argument (model name, folder, id)."""

    kind: str
    arg: str

    @property
    def local_model(self) -> bool:
        """Whether the model's weights are on this machine (so sensecf can fine-tune them)."""
        return self.kind in ("embedded", "hf")

    @property
    def finetune_base(self) -> str | None:
        """What the study fine-tunes for this backend: "embedded:<name>", an hf checkpoint folder, or None for
        an OpenAI-compatible server (it serves its own adapter, e.g. vLLM --lora-modules)."""
        if self.kind == "embedded":
            return "embedded" if self.arg == "smollm2" else f"embedded:{self.arg}"
        return self.arg if self.kind == "hf" else None

    def __str__(self) -> str:
        return f"{self.kind}:{self.arg}"


def parse_backend_spec(spec: str | None) -> BackendSpec:
    """Parse a backend spec (None = "embedded"); ConfigError lists the valid forms."""
    kind, _, arg = ("embedded" if spec is None else str(spec)).strip().partition(":")
    if kind == "embedded":
        arg = arg or "smollm2"
        if arg not in EMBEDDED_NAMES:
            raise ConfigError(f"unknown embedded model {arg!r} in backend spec {spec!r}; valid forms: "
                              f"{', '.join(SPEC_FORMS)}")
        return BackendSpec("embedded", arg)
    if kind in ("hf", "openai") and arg:
        return BackendSpec(kind, arg)
    raise ConfigError(f"unknown backend spec {spec!r}; valid forms: {', '.join(SPEC_FORMS)}")
