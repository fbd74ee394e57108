"""Backend specs ("embedded", "embedded:gemma", "hf:PATH", "openai:MODEL") -> TextBackend instances."""

from __future__ import annotations

from pathlib import Path

from sensecf.backends.base import TextBackend
from sensecf.errors import ConfigError

SPEC_FORMS = ("embedded", "embedded:smollm2", "embedded:gemma", "hf:PATH", "openai:MODEL")


def make_backend(spec: str = "embedded", *, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 adapter: str | Path | None = None, allow_remote: bool = False, cache_dir: str | Path | None = None,
                 batch_size: int = 8, concurrency: int | None = None, timeout: float | None = None,
                 max_retries: int | None = None) -> TextBackend:
    """Build the backend named by `spec`; wrapped in a CachedBackend when `cache_dir` is given.

    concurrency, timeout and max_retries apply to `openai:` backends (None = OpenAIBackend's defaults).
    """
    kind, _, arg = (spec or "").strip().partition(":")
    if kind == "embedded":
        from sensecf.backends.embedded import EMBEDDED_MODELS, EmbeddedBackend

        name = arg or "smollm2"
        if name not in EMBEDDED_MODELS:
            raise ConfigError(f"unknown embedded model {name!r} in backend spec {spec!r}; valid forms: "
                              f"{', '.join(SPEC_FORMS)}")
        backend: TextBackend = EmbeddedBackend(name, adapter=adapter, batch_size=batch_size)
    elif kind == "hf" and arg:
        from sensecf.backends.hf import HFBackend

        backend = HFBackend(arg, adapter=adapter, batch_size=batch_size)
    elif kind == "openai" and arg:
        from sensecf.backends.openai_backend import OpenAIBackend

        if adapter:
            raise ConfigError("an adapter cannot be attached to an openai backend; serve it (e.g. vLLM --lora-modules)"
                              " and name it in openai:MODEL")
        http = {k: v for k, v in (("concurrency", concurrency), ("timeout", timeout), ("max_retries", max_retries))
                if v is not None}
        backend = OpenAIBackend(arg, base_url=base_url, api_key_env=api_key_env, allow_remote=allow_remote, **http)
    else:
        raise ConfigError(f"unknown backend spec {spec!r}; valid forms: {', '.join(SPEC_FORMS)}")
    if cache_dir is not None:
        from sensecf.backends.cache import CachedBackend

        backend = CachedBackend(backend, cache_dir)
    return backend
