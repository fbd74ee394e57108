"""Local OpenAI-compatible serving: `transformers serve` on 127.0.0.1 (offline), and a LoRA adapter merged into its
base model, which that server (it cannot load PEFT adapters) serves as a second model id. vLLM loads adapters
itself (--lora-modules); see docs/backends.md."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from sensecf.errors import ConfigError

MARKER = "sensecf-merged.json"
_SERVE = "from transformers.cli.transformers import main; main()"


def merge_adapter(adapter: str | Path, out: str | Path, base: str | Path | None = None) -> Path:
    """Save base + `adapter` (merged) with the base's tokenizer to `out`; returns `out`.

    `base` defaults to the adapter's `base_model_name_or_path`. The adapter's card.json is copied, so the prompt
    style it was trained with stays next to the weights. The saved generation config has `do_sample=True`:
    `transformers serve` then samples when a request's temperature is > 0 (it switches sampling off for
    temperature 0 only, and otherwise keeps the model's default, greedy). The folder is written under a
    temporary name and renamed, with MARKER written last; an existing complete folder is returned as it is.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sensecf.backends.hf import _attach_adapter

    adapter, out = Path(adapter), Path(out)
    if (out / MARKER).is_file():
        return out
    config = adapter / "adapter_config.json"
    if not config.is_file():
        raise ConfigError(f"adapter folder {adapter} has no adapter_config.json (expected a PEFT adapter)")
    base = Path(base or json.loads(config.read_text()).get("base_model_name_or_path") or "")
    if not (base / "config.json").is_file():
        raise ConfigError(f"base model folder {base} of adapter {adapter} has no config.json; pass base=")
    model = _attach_adapter(AutoModelForCausalLM.from_pretrained(base, dtype="auto"), adapter, merge=True)
    model.generation_config.do_sample = True
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    AutoTokenizer.from_pretrained(base).save_pretrained(tmp)
    if (adapter / "card.json").is_file():
        shutil.copy(adapter / "card.json", tmp / "card.json")
    (tmp / MARKER).write_text(json.dumps({"adapter": str(adapter.resolve()), "base": str(base.resolve())}))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TransformersServer:
    """`transformers serve` in a subprocess on 127.0.0.1, offline; a context manager.

    It serves any local checkpoint folder named as the request's model (loaded on first use), so one server
    gives a base model and a merged adapter. `threads` sets OMP_NUM_THREADS (torch's intra-op threads);
    `continuous_batching` batches concurrent requests (otherwise they are generated one after another).
    The server's output goes to `log` (a file), which a start-up failure quotes.
    """

    def __init__(self, log: str | Path, port: int | None = None, dtype: str = "float32", threads: int = 1,
                 continuous_batching: bool = False, device: str = "auto", startup_timeout: float = 120):
        self.port = port or free_port()
        self.log = Path(log)
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.cmd = [sys.executable, "-c", _SERVE, "serve", "--host", "127.0.0.1", "--port", str(self.port),
                    "--device", device, "--dtype", dtype, "--log-level", "info",
                    "--continuous-batching" if continuous_batching else "--no-continuous-batching"]
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                    "HF_HUB_DISABLE_UPDATE_CHECK": "1", "OMP_NUM_THREADS": str(threads)}
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None

    def start(self) -> "TransformersServer":
        """Start the server and wait until /health answers; ConfigError quoting the log when it does not."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(self.cmd, stdout=fh, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(self.base_url.removesuffix("/v1") + "/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.3)
        self.stop()
        tail = self.log.read_text(errors="replace")[-2000:]
        raise ConfigError(f"transformers serve did not become ready on port {self.port} (it needs fastapi and "
                          f"uvicorn, sensecf dependencies); log {self.log}:\n{tail}")

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        """Terminate (then kill after 10 s)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> "TransformersServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
