"""OpenAI-compatible chat-completions backend (GPT-4o, vLLM, Ollama, llama.cpp server) with a privacy gate.

Patient rows go only to the configured server: one off this machine needs ``allow_remote``; redirects are never
followed; proxy variables are ignored unless ``trust_env=True`` (then the proxy is gated like the server); every
request URL and every TCP connection is checked again. Each HTTP request has a wall-clock deadline (``timeout``)
and each generate() call an optional one (``batch_timeout``): a request past it has its socket shut down.
"""

from __future__ import annotations

import importlib
import ipaddress
import os
import socket
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from urllib.parse import urlparse

from sensecf.backends.base import BackendError, Chat, SamplingSettings
from sensecf.errors import ConfigError

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
_LOCAL_PLACEHOLDER_KEY = "sk-local-no-key"  # local servers accept any key; the client insists on one
#: generator options (`--option key=value`) passed to OpenAIBackend by llm-* methods with an openai: backend
SERVER_OPTIONS = ("api_key_env", "timeout", "batch_timeout", "max_retries", "concurrency", "trust_env")


def server_options(spec: str, options: dict) -> dict:
    """The SERVER_OPTIONS among generator `options`, for make_backend(spec, **them); none unless spec is openai:."""
    return {k: options[k] for k in SERVER_OPTIONS if k in options} if str(spec).startswith("openai:") else {}


def is_loopback_host(host: str | None) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1 (data sent there stays on this machine)."""
    host = (host or "").strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or bool(mapped and mapped.is_loopback)


def is_loopback_url(url: str) -> bool:
    """True when `url`'s host is loopback (see is_loopback_host)."""
    return is_loopback_host(urlparse(url).hostname)


def env_proxy(url: str) -> str | None:
    """The proxy that the environment (HTTP(S)_PROXY, ALL_PROXY, NO_PROXY) names for `url`, if any."""
    parts = urlparse(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    return None if not proxy or urllib.request.proxy_bypass(parts.hostname or "") else proxy


def check_endpoint(base_url: str | None, allow_remote: bool = False, trust_env: bool = False) -> str:
    """The server URL (base_url, else OPENAI_BASE_URL, else OpenAI's); ConfigError when it, or with trust_env
    the environment's proxy for it, is off this machine and allow_remote is not set."""
    url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    if urlparse(url).scheme not in ("http", "https") or not urlparse(url).hostname:
        raise ConfigError(f"base_url must be an http(s) URL, got {url!r}")
    if allow_remote:
        return url
    if not is_loopback_url(url):
        raise ConfigError(
            f"refusing to send data to the remote server {url}: patient rows would leave this machine. "
            "Pass allow_remote=True (CLI: --allow-remote) to opt in, or use a server on localhost.")
    proxy = env_proxy(url) if trust_env else None
    if proxy and not is_loopback_url(proxy):
        raise ConfigError(f"refusing to send data to {url} through the proxy {proxy} (from the environment, "
                          "trust_env=true): patient rows would leave this machine. Set NO_PROXY for the server, "
                          "drop trust_env, or pass allow_remote=True.")
    return url


def _number(name: str, value, cast, minimum: float, strict: bool = False):
    """`value` as int/float, ConfigError naming the option when it is not a number >= (or >) `minimum`."""
    try:
        number = cast(value)
    except (TypeError, ValueError):
        number = None
    if number is None or isinstance(value, bool) or number < minimum or (strict and number == minimum):
        raise ConfigError(f"option {name}={value!r}: expected a number {'>' if strict else '>='} {minimum}")
    return number


def _shutdown(sock) -> None:
    """Shut a socket down (wakes a thread blocked reading it); a closed or detached socket is ignored."""
    if sock is not None:
        try:
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass


class _Deadline:
    """One HTTP request's wall-clock deadline: when it passes, the request's socket is shut down."""

    def __init__(self, seconds: float, batch: "_Batch"):
        self.seconds, self.batch, self.expired = seconds, batch, False
        self._sock = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self.expire)
        self._timer.daemon = True

    def __enter__(self) -> "_Deadline":
        self.batch.live.add(self)
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()
        self.batch.live.discard(self)

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            _shutdown(self._sock)

    def connected(self, stream) -> None:
        """The request's network stream (TCP, then TLS) is known: remember its socket (shut it if expired)."""
        with self._lock:
            self._sock = stream.get_extra_info("socket")
            if self.expired:
                _shutdown(self._sock)


class _Batch:
    """One generate() call: its deadline (time.monotonic) and the requests in flight."""

    def __init__(self, seconds: float | None):
        self.deadline = None if seconds is None else time.monotonic() + seconds
        self.stopped = threading.Event()
        self.live: set[_Deadline] = set()

    def stop(self) -> None:
        """End every request in flight and every retry pause, and start no new request (Ctrl-C)."""
        self.stopped.set()
        for request in list(self.live):
            request.expire()


class OpenAIBackend:
    """Chat completions over HTTP with retries, bounded concurrency, deadlines and per-prompt failures.

    A server that is not on this machine (including the default OpenAI URL) is refused unless
    ``allow_remote=True``: patient rows must not leave the machine without an explicit opt-in.
    The API key is read from ``api_key_env`` (default OPENAI_API_KEY) and is never stored on this object, logged
    or cached; a loopback server gets it only when ``api_key_env`` is given explicitly.
    """

    name = "openai"

    def __init__(self, model: str, base_url: str | None = None, api_key_env: str | None = None,
                 allow_remote: bool = False, timeout: float = 60, max_retries: int = 4, concurrency: int = 4,
                 batch_timeout: float | None = None, trust_env: bool = False, backoff: float = 1.0,
                 context_length: int = 128_000):
        import openai

        if not model:
            raise ConfigError("openai backend needs a model name, e.g. openai:gpt-4o")
        if not isinstance(trust_env, bool) or not isinstance(allow_remote, bool):
            raise ConfigError("options trust_env and allow_remote must be true or false")
        url = check_endpoint(base_url, allow_remote, trust_env)
        local = is_loopback_url(url)
        key_env = api_key_env or DEFAULT_KEY_ENV
        needs_key = bool(api_key_env) or not local  # a loopback server gets the key only when its variable is named
        key = os.environ.get(key_env) if needs_key else None
        if needs_key and not key:
            raise ConfigError(f"the server {url} needs an API key in the environment variable {key_env}")
        self.timeout = _number("timeout", timeout, float, 0, strict=True)
        self.batch_timeout = None if batch_timeout is None else _number("batch_timeout", batch_timeout, float, 0,
                                                                        strict=True)
        self.max_retries = _number("max_retries", max_retries, int, 0)
        self.concurrency = _number("concurrency", concurrency, int, 1)
        self.model_id = model
        self.adapter_id = None
        self.base_url = url
        self.api_key_env = key_env
        self.allow_remote = allow_remote
        self.context_length = context_length
        self.backoff = backoff
        self._local = threading.local()  # the _Deadline of the request this thread is sending
        # Retries are ours (below) so the backoff is explicit; the client itself does not retry. Redirects are not
        # followed, proxy/netrc/certificate variables are read only with trust_env, and connections are not
        # kept alive, so that every request's socket is known to its deadline (see _trace).
        http = importlib.import_module(openai.DefaultHttpxClient.__mro__[1].__module__.split(".")[0])
        client = openai.DefaultHttpxClient(
            follow_redirects=False, trust_env=trust_env, timeout=self.timeout,
            limits=http.Limits(max_connections=None, max_keepalive_connections=0),
            event_hooks={"request": [self._on_request]})
        self._client = openai.OpenAI(base_url=url, api_key=key or _LOCAL_PLACEHOLDER_KEY, timeout=self.timeout,
                                     max_retries=0, http_client=client)
        self._retryable = (openai.RateLimitError, openai.APITimeoutError, openai.APIConnectionError,
                           openai.InternalServerError)
        self._timeout_error = openai.APITimeoutError
        self._status_error = openai.APIStatusError

    def __repr__(self) -> str:
        return (f"OpenAIBackend(model_id={self.model_id!r}, base_url={self.base_url!r}, "
                f"api_key_env={self.api_key_env!r})")

    def count_tokens(self, chat: Chat) -> int:
        """Approximate prompt tokens (4 characters per token plus per-message overhead; no remote tokenizer)."""
        return sum(4 + len(m.get("content", "")) // 4 for m in chat) + 3

    def generate(self, chats: list[Chat], settings: SamplingSettings) -> list[list[str] | Exception]:
        """Completions for each chat, requested concurrently; a failed prompt yields an exception in its slot.
        An interrupt (Ctrl-C) ends the requests in flight instead of waiting for them."""
        batch = _Batch(self.batch_timeout)
        pool = ThreadPoolExecutor(max_workers=self.concurrency)
        try:
            return list(pool.map(lambda ic: self._one(ic[0], ic[1], settings, batch), enumerate(chats)))
        except BaseException:
            batch.stop()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _one(self, index: int, chat: Chat, settings: SamplingSettings, batch: _Batch) -> list[str] | Exception:
        texts: list[str] = []
        try:
            # Servers that ignore `n` (llama.cpp, Ollama) return one choice: ask again for the rest.
            while len(texts) < settings.n:
                done = len(texts)
                texts += self._request(index, chat, settings, n=settings.n - done, seed=settings.seed + done,
                                       batch=batch)
        except BackendError as exc:
            return exc
        return texts[:settings.n]

    def _seconds_left(self, index: int, batch: _Batch) -> float:
        """This request's deadline in seconds: `timeout`, cut by the batch's; BackendError when none is left."""
        if batch.stopped.is_set():
            raise BackendError(f"prompt {index}: stopped")
        if batch.deadline is None:
            return self.timeout
        left = min(self.timeout, batch.deadline - time.monotonic())
        if left <= 0:
            raise BackendError(f"prompt {index}: the batch deadline (batch_timeout {self.batch_timeout:g} s) passed")
        return left

    def _request(self, index: int, chat: Chat, settings: SamplingSettings, n: int, seed: int,
                 batch: _Batch) -> list[str]:
        kwargs = {"model": self.model_id, "messages": chat, "max_tokens": settings.max_new_tokens,
                  "temperature": settings.temperature, "top_p": settings.top_p, "seed": seed}
        if n > 1:
            kwargs["n"] = n
        for attempt in range(self.max_retries + 1):
            deadline = _Deadline(self._seconds_left(index, batch), batch)
            try:
                with deadline:
                    self._local.deadline = deadline
                    reply = self._client.chat.completions.create(**kwargs)
                return _texts(reply, index)
            except self._retryable as exc:
                why = _describe(exc)
                if deadline.expired or isinstance(exc, self._timeout_error):
                    why = f"Timeout: no complete reply within {deadline.seconds:.3g} s" + (
                        " (what was left of batch_timeout)" if deadline.seconds < self.timeout else "")
                if attempt == self.max_retries:
                    raise BackendError(f"prompt {index}: {self.base_url} failed after {attempt + 1} attempts: "
                                       f"{why}") from exc
                batch.stopped.wait(min(self.backoff * 2 ** attempt, self._seconds_left(index, batch)))
            except self._status_error as exc:  # 4xx other than 429, 3xx: retrying will not help
                if 300 <= exc.status_code < 400:
                    raise BackendError(
                        f"prompt {index}: {self.base_url} answered with a redirect (HTTP {exc.status_code} to "
                        f"{exc.response.headers.get('location', '?')}); redirects are never followed, so that "
                        "patient rows go only to the configured server: set base_url to the final address"
                    ) from exc
                raise BackendError(f"prompt {index}: {self.base_url} refused the request: {_describe(exc)}") from exc
            except ValueError as exc:  # includes json.JSONDecodeError from a malformed body
                raise BackendError(f"prompt {index}: malformed reply from {self.base_url}: {exc}") from exc
            finally:
                self._local.deadline = None
        raise AssertionError("unreachable")

    def _refuse_remote(self, host: str | None, what: str) -> None:
        if not self.allow_remote and not is_loopback_host(host):
            raise BackendError(f"refusing to {what} {host}: it is off this machine and allow_remote is not set")

    def _on_request(self, request) -> None:
        """httpx request hook: the request's host must be loopback (unless allow_remote); attach the tracer."""
        self._refuse_remote(request.url.host, "send a request to")
        request.extensions["trace"] = partial(self._trace, self._local.deadline)

    def _trace(self, deadline: _Deadline, event: str, info: dict) -> None:
        """httpcore trace hook: check every TCP connection's host; hand its socket to the request's deadline."""
        if event.endswith(".connect_tcp.started"):
            self._refuse_remote(info.get("host"), "connect to")
        elif event.endswith((".connect_tcp.complete", ".start_tls.complete")):
            deadline.connected(info["return_value"])


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
