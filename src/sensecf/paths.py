"""Where sensecf keeps its caches: one root, $XDG_CACHE_HOME/sensecf (default ~/.cache/sensecf)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """The folder under which synthetic cohorts, converted models and adapters are cached."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "sensecf"


def default_adapter_dir() -> Path:
    """Where the default study's fine-tuned adapter lives (written by finetune, read by llm-fine-tuned)."""
    return cache_root() / "adapters" / "default"
