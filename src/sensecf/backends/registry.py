"""Backend specs -> TextBackend instances."""

from __future__ import annotations

from pathlib import Path

from sensecf.backends.base import TextBackend
from sensecf.backends.spec import parse_backend_spec
from sensecf.errors import ConfigError


def make_backend(spec: str = "embedded", *, base_url: str | None = None, api_key_env: str | None = None,
                 adapter: str | Path | None = None, allow_remote: bool = False, cache_dir: str | Path | None = None,
                 batch_size: int = 8, **server: object) -> TextBackend:
    """Build the backend named by `spec` (backends/spec.py); wrapped in a CachedBackend when `cache_dir` is given.
    `server` holds further OpenAIBackend arguments (timeout, batch_timeout, max_retries, concurrency, trust_env)."""
    parsed = parse_backend_spec(spec)
    if server and parsed.kind != "openai":
        raise ConfigError(f"{', '.join(sorted(server))} apply to openai: backends only, not {spec!r}")
    if parsed.kind == "embedded":
        from sensecf.backends.embedded import EmbeddedBackend

        backend: TextBackend = EmbeddedBackend(parsed.arg, adapter=adapter, batch_size=batch_size)
    elif parsed.kind == "hf":
        from sensecf.backends.hf import HFBackend

        backend = HFBackend(parsed.arg, adapter=adapter, batch_size=batch_size)
    else:
        from sensecf.backends.openai_backend import OpenAIBackend

        if adapter:
            raise ConfigError("an adapter cannot be attached to an openai backend; serve it (e.g. vLLM --lora-modules)"
                              " and name it in openai:MODEL")
        backend = OpenAIBackend(parsed.arg, base_url=base_url, api_key_env=api_key_env, allow_remote=allow_remote,
                                **server)
    if cache_dir is not None:
        from sensecf.backends.cache import CachedBackend

        backend = CachedBackend(backend, cache_dir)
    return backend
