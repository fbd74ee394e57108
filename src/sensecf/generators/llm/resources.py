"""What the LLM generators load: backends built once per process, and fine-tuned adapters (the default one and
the prompt style an adapter was trained with)."""

from __future__ import annotations

import json
from pathlib import Path

from ...backends.base import TextBackend
from ...errors import ConfigError
from ...paths import default_adapter_dir

_BACKENDS: dict[tuple, TextBackend] = {}


def cached_backend(spec: str = "embedded", **kwargs) -> TextBackend:
    """make_backend(spec, **kwargs), built once per distinct (spec, settings) in this process."""
    from ...backends import registry

    key = (spec, tuple(sorted((k, str(v)) for k, v in kwargs.items())))
    if key not in _BACKENDS:
        _BACKENDS[key] = registry.make_backend(spec, **kwargs)
    return _BACKENDS[key]


def default_adapter() -> Path:
    """The adapter saved by the last default `sensecf finetune`; ConfigError when there is none."""
    adapter = default_adapter_dir()
    if not (adapter / "adapter_config.json").is_file():
        raise ConfigError(f"no fine-tuned adapter at {adapter}: run `sensecf finetune` first "
                          "(or pass --option adapter=PATH)")
    return adapter


def adapter_card(adapter: str | Path) -> dict:
    """An adapter's card.json ({} when it has none or it cannot be read)."""
    card = Path(adapter) / "card.json"
    try:
        return json.loads(card.read_text()) if card.is_file() else {}
    except (OSError, json.JSONDecodeError):
        return {}


def adapter_prompt_style(adapter: str | Path) -> str:
    """The prompt style an adapter was trained with (its card's config), "paper" when it has no card."""
    return adapter_card(adapter).get("config", {}).get("prompt_style", "paper")


def check_servers(methods, options: dict | None) -> None:
    """Before any work: ConfigError when an LLM method would send patient rows to an OpenAI-compatible server (or,
    with trust_env, a proxy) off this machine without allow_remote."""
    from ...backends.openai_backend import check_endpoint
    from ...backends.spec import parse_backend_spec
    from ..base import method_options
    from ..options import LLMOptions

    for method in dict.fromkeys(methods):
        opts = method_options(method, options)
        if isinstance(opts, LLMOptions) and parse_backend_spec(opts.backend).kind == "openai":
            check_endpoint(opts.base_url, opts.allow_remote, opts.trust_env)
