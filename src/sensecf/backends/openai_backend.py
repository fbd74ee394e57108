"""OpenAI-compatible chat-completions backend (GPT-4o, vLLM, Ollama, llama.cpp server) with a privacy gate."""

from __future__ import annotations

import ipaddress
import os
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

from sensecf.backends.base import BackendError, Chat, SamplingSettings
from sensecf.errors import ConfigError

DEFAULT_BASE_URL = "https://api.openai.com/v1"
GUIDED = ("off", "vllm", "llamacpp")  # how a server is sent the answer grammar (_guided_body)
_LOCAL_PLACEHOLDER_KEY = "sk-local-no-key"  # local servers accept any key; the client insists on one


def is_loopback_url(url: str) -> bool:
    """True when `url`'s host is localhost, 127.0.0.0/8 or ::1 (data sent there stays on this machine)."""
    host = (urlparse(url).hostname or "").strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or bool(mapped and mapped.is_loopback)


class OpenAIBackend:
    """Chat completions over HTTP with retries, bounded concurrency and per-prompt failures.

    A server that is not on this machine (including the default OpenAI URL) is refused unless
    ``allow_remote=True``: patient rows must not leave the machine without an explicit opt-in.
    The API key is read from ``api_key_env`` and is never stored on this object, logged or cached.
    ``guided`` names how the server takes an answer grammar ("vllm": structured outputs, "llamacpp": GBNF
    ``grammar``); "off" sends plain requests and ignores grammars.
    """

    name = "openai"

    def __init__(self, model: str, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 allow_remote: bool = False, timeout: float = 60, max_retries: int = 4, concurrency: int = 4,
                 backoff: float = 1.0, context_length: int = 128_000, guided: str = "off"):
        import openai

        if not model:
            raise ConfigError("openai backend needs a model name, e.g. openai:gpt-4o")
        url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        if urlparse(url).scheme not in ("http", "https") or not urlparse(url).hostname:
            raise ConfigError(f"base_url must be an http(s) URL, got {url!r}")
        local = is_loopback_url(url)
        if not local and not allow_remote:
            raise ConfigError(
                f"refusing to send data to the remote server {url}: patient rows would leave this machine. "
                "Pass allow_remote=True (CLI: --allow-remote) to opt in, or use a server on localhost.")
        key = os.environ.get(api_key_env)
        if not key and not local:
            raise ConfigError(f"the remote server {url} needs an API key in the environment variable {api_key_env}")
        if max_retries < 0 or concurrency < 1 or timeout <= 0:
            raise ConfigError("max_retries must be >= 0, concurrency >= 1 and timeout > 0")
        if guided not in GUIDED:
            raise ConfigError(f"guided must be one of {', '.join(GUIDED)}, got {guided!r}")
        self.guided = guided
        self.model_id = model
        self.adapter_id = None
        self.base_url = url
        self.api_key_env = api_key_env
        self.context_length = context_length
        self.max_retries, self.concurrency, self.backoff = max_retries, concurrency, backoff
        # Retries are ours (below) so the backoff is explicit; the client itself does not retry.
        self._client = openai.OpenAI(base_url=url, api_key=key or _LOCAL_PLACEHOLDER_KEY, timeout=timeout,
                                     max_retries=0)
        self._retryable = (openai.RateLimitError, openai.APITimeoutError, openai.APIConnectionError,
                           openai.InternalServerError)
        self._status_error = openai.APIStatusError

    def __repr__(self) -> str:
        return (f"OpenAIBackend(model_id={self.model_id!r}, base_url={self.base_url!r}, "
                f"api_key_env={self.api_key_env!r})")

    def count_tokens(self, chat: Chat) -> int:
        """Approximate prompt tokens (4 characters per token plus per-message overhead; no remote tokenizer)."""
        return sum(4 + len(m.get("content", "")) // 4 for m in chat) + 3

    def generate(self, chats: list[Chat], settings: SamplingSettings,
                 grammars: list[str] | None = None) -> list[list[str] | Exception]:
        """Completions for each chat, requested concurrently (with its grammar when `guided` is on); a failed
        prompt yields an exception in its slot."""
        extras = [_guided_body(self.guided, g) for g in grammars] if grammars is not None else [None] * len(chats)
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda i: self._one(i, chats[i], settings, extras[i]), range(len(chats))))

    def _one(self, index: int, chat: Chat, settings: SamplingSettings, extra: dict | None) -> list[str] | Exception:
        texts: list[str] = []
        try:
            # Servers that ignore `n` (llama.cpp, Ollama) return one choice: ask again for the rest.
            while len(texts) < settings.n:
                done = len(texts)
                texts += self._request(index, chat, settings, n=settings.n - done, seed=settings.seed + done,
                                       extra=extra)
        except BackendError as exc:
            return exc
        return texts[:settings.n]

    def _request(self, index: int, chat: Chat, settings: SamplingSettings, n: int, seed: int,
                 extra: dict | None = None) -> list[str]:
        kwargs = {"model": self.model_id, "messages": chat, "max_tokens": settings.max_new_tokens,
                  "temperature": settings.temperature, "top_p": settings.top_p, "seed": seed}
        if n > 1:
            kwargs["n"] = n
        if extra:
            kwargs["extra_body"] = extra
        for attempt in range(self.max_retries + 1):
            try:
                reply = self._client.chat.completions.create(**kwargs)
                return _texts(reply, index)
            except self._retryable as exc:
                if attempt == self.max_retries:
                    raise BackendError(f"prompt {index}: {self.base_url} failed after {attempt + 1} attempts: "
                                       f"{_describe(exc)}") from exc
                time.sleep(self.backoff * 2 ** attempt)
            except self._status_error as exc:  # 4xx other than 429: retrying will not help
                raise BackendError(f"prompt {index}: {self.base_url} refused the request: {_describe(exc)}") from exc
            except ValueError as exc:  # includes json.JSONDecodeError from a malformed body
                raise BackendError(f"prompt {index}: malformed reply from {self.base_url}: {exc}") from exc
        raise AssertionError("unreachable")


def _guided_body(guided: str, grammar: str) -> dict | None:
    """The request fields that carry a GBNF grammar: vLLM's structured outputs (vLLM >= 0.10.2; `guided_grammar`
    before, removed in 0.12) or llama.cpp server's `grammar`; None when guided decoding is off."""
    if guided == "vllm":
        return {"structured_outputs": {"grammar": grammar}}
    return {"grammar": grammar} if guided == "llamacpp" else None


def _describe(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    return f"HTTP {status}: {type(exc).__name__}" if status else f"{type(exc).__name__}: {exc}"


def _texts(reply, index: int) -> list[str]:
    """The message texts of a chat-completions reply, validated (malformed replies -> BackendError)."""
    choices = getattr(reply, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise BackendError(f"prompt {index}: malformed reply: no 'choices' list")
    texts = []
    for k, choice in enumerate(choices):
        content = getattr(getattr(choice, "message", None), "content", None)
        if not isinstance(content, str):
            raise BackendError(f"prompt {index}: malformed reply: choices[{k}].message.content is not text")
        texts.append(content.strip())
    return texts
