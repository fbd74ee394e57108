"""Deliberate torch CPU thread count.

On the 2-core VMs this project is developed on, torch's default (2 intra-op threads) generated 3-6x slower
than 1 thread when other processes share the cores, so the default here is 1. Override with the environment
variable ``SENSECF_TORCH_THREADS`` (see benchmarks/bench_backends.py for the measurement).
"""

from __future__ import annotations

import os

from sensecf.errors import ConfigError

THREADS_ENV = "SENSECF_TORCH_THREADS"
DEFAULT_TORCH_THREADS = 1


def torch_threads() -> int:
    """The thread count requested by ``SENSECF_TORCH_THREADS`` (default 1)."""
    raw = os.environ.get(THREADS_ENV, "").strip()
    if not raw:
        return DEFAULT_TORCH_THREADS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{THREADS_ENV} must be a positive integer, got {raw!r}")
    return value


def configure_torch_threads(threads: int | None = None) -> int:
    """Set ``torch.set_num_threads`` to `threads` (or the env/default value) and return it."""
    import torch

    n = torch_threads() if threads is None else int(threads)
    if n < 1:
        raise ConfigError(f"torch thread count must be positive, got {threads!r}")
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
