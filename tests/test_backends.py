"""OpenAI-compatible backend against a real local HTTP server, the remote opt-in rule, the cache, specs, threads."""

from __future__ import annotations

import http.server
import ipaddress
import json
import logging
import sys
import threading
import time

import pytest

from sensecf.backends.base import BackendError, SamplingSettings
from sensecf.backends.cache import CachedBackend, adapter_fingerprint
from sensecf.backends.openai_backend import OpenAIBackend, is_loopback_url
from sensecf.backends.registry import make_backend
from sensecf.backends.threads import THREADS_ENV, configure_torch_threads, torch_threads
from sensecf.errors import ConfigError

SECRET = "sk-test-secret-0123456789"


class FakeServer:
    """A tiny OpenAI-compatible chat-completions server on 127.0.0.1; `script` lists the next replies' kinds."""

    def __init__(self, host: str = "127.0.0.1"):
        self.script: list[str] = []
        self.requests: list[dict] = []
        self.auth: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                    server.auth.append(self.headers.get("Authorization", ""))
                    kind = server.script.pop(0) if server.script else "ok"
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self._reply(kind, body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def _reply(self, kind, body):
                if kind.startswith("redirect:"):
                    self.send_response(307)
                    self.send_header("Location", kind.partition(":")[2])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if kind.startswith("trickle"):  # one byte every 0.25 s: of the headers, or of a 40-byte body
                    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n"
                    slow = head if kind == "trickle_head" else b"{" + b" " * 38 + b"}"
                    self.wfile.write(b"" if kind == "trickle_head" else head)
                    for k in range(len(slow)):
                        self.wfile.write(slow[k:k + 1])
                        self.wfile.flush()
                        time.sleep(0.25)
                    return
                if kind == "hang":
                    time.sleep(3.0)
                if kind == "slow":
                    time.sleep(1.0)
                if kind == "busy":
                    time.sleep(0.05)
                status, payload = 200, None
                if kind in ("429", "500", "400"):
                    status, payload = int(kind), json.dumps({"error": {"message": kind}}).encode()
                elif kind == "malformed":
                    payload = b'{"choices": [{"message": {"content": "unterminated'
                elif kind == "nochoices":
                    payload = json.dumps({"id": "x", "object": "chat.completion"}).encode()
                else:
                    text = "echo: " + body["messages"][-1]["content"]
                    n = 1 if kind == "ignore_n" else body.get("n", 1)
                    payload = json.dumps({
                        "id": "c1", "object": "chat.completion", "created": 0, "model": body["model"],
                        "choices": [{"index": k, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": f" {text} #{k} "}}
                                    for k in range(n)]}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://{host}:{self.port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def stop(srv: FakeServer) -> None:
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture
def server():
    srv = FakeServer()
    yield srv
    stop(srv)


_CONNECTS: list | None = None  # socket connect() targets while the `connects` fixture is active


def _audit(event: str, args: tuple) -> None:
    """Audit hook: record every socket connect(); block (never make) any connection off this machine."""
    if event == "socket.connect" and _CONNECTS is not None and isinstance(args[1], tuple):
        _CONNECTS.append(args[1][:2])
        if not ipaddress.ip_address(args[1][0]).is_loopback:
            raise OSError(f"test: blocked a connection off this machine to {args[1]}")


sys.addaudithook(_audit)


@pytest.fixture
def connects():
    """The (host, port) of every connection this test's process opens; off-machine ones are blocked."""
    global _CONNECTS
    _CONNECTS = []
    try:
        yield _CONNECTS
    finally:
        _CONNECTS = None


def chat(text: str) -> list[dict]:
    return [{"role": "system", "content": "You edit tables."}, {"role": "user", "content": text}]


def backend(server, **kw) -> OpenAIBackend:
    kw = {"timeout": 5, "max_retries": 2, "backoff": 0.01, **kw}
    return OpenAIBackend("tiny-model", base_url=server.url, **kw)


def test_success_in_order_with_bounded_concurrency(server):
    server.script = ["busy"] * 6
    out = backend(server, concurrency=2).generate([chat(f"q{i}") for i in range(6)], SamplingSettings(max_new_tokens=7))
    assert out == [[f"echo: q{i} #0"] for i in range(6)]
    assert server.max_in_flight <= 2
    sent = server.requests[0]
    assert sent["max_tokens"] == 7 and sent["temperature"] == 0.0
    assert sent["messages"] == chat(sent["messages"][-1]["content"])


def test_n_completions_and_server_ignoring_n(server):
    b = backend(server)
    assert b.generate([chat("a")], SamplingSettings(n=3, temperature=0.7)) == \
        [["echo: a #0", "echo: a #1", "echo: a #2"]]
    server.script = ["ignore_n", "ignore_n"]
    out = b.generate([chat("b")], SamplingSettings(n=2, temperature=0.7, seed=5))
    assert out == [["echo: b #0", "echo: b #0"]]
    assert [r["seed"] for r in server.requests[-2:]] == [5, 6]  # each extra request gets its own seed


def test_429_then_success_is_retried(server):
    server.script = ["429", "ok"]
    assert backend(server).generate([chat("x")], SamplingSettings()) == [["echo: x #0"]]
    assert len(server.requests) == 2


def test_persistent_500_fails_only_that_prompt(server):
    server.script = ["500", "500", "500"]
    out = backend(server, max_retries=2, concurrency=1).generate([chat("bad"), chat("good")], SamplingSettings())
    assert isinstance(out[0], BackendError) and "HTTP 500" in str(out[0]) and "3 attempts" in str(out[0])
    assert out[1] == ["echo: good #0"]
    assert len(server.requests) == 4


def test_client_error_is_not_retried(server):
    server.script = ["400"]
    out = backend(server).generate([chat("x")], SamplingSettings())
    assert isinstance(out[0], BackendError) and "HTTP 400" in str(out[0])
    assert len(server.requests) == 1


def test_timeout_is_retried_then_reported(server):
    server.script = ["slow", "slow"]
    start = time.perf_counter()
    out = backend(server, timeout=0.3, max_retries=1).generate([chat("x")], SamplingSettings())
    assert isinstance(out[0], BackendError) and "Timeout" in str(out[0])
    assert len(server.requests) == 2 and time.perf_counter() - start < 5


@pytest.mark.parametrize("kind", ["malformed", "nochoices"])
def test_malformed_reply_is_a_per_item_error(server, kind):
    server.script = [kind]
    out = backend(server).generate([chat("x"), chat("y")], SamplingSettings())
    errors = [o for o in out if isinstance(o, Exception)]
    assert len(errors) == 1 and isinstance(errors[0], BackendError) and "malformed" in str(errors[0])


@pytest.mark.parametrize("url,local", [
    ("http://127.0.0.1:8000/v1", True), ("http://127.5.0.9/v1", True), ("http://localhost:11434/v1", True),
    ("http://[::1]:8080/v1", True), ("https://api.openai.com/v1", False), ("http://10.0.0.5:8000/v1", False),
    ("http://192.168.1.2/v1", False), ("http://localhost.evil.com/v1", False), ("http://127.0.0.1.nip.io/v1", False),
])
def test_loopback_detection(url, local):
    assert is_loopback_url(url) is local


def test_remote_requires_explicit_opt_in(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("SENSECF_TEST_KEY", SECRET)
    with pytest.raises(ConfigError, match="remote server https://api.openai.com"):
        OpenAIBackend("gpt-4o", api_key_env="SENSECF_TEST_KEY")
    with pytest.raises(ConfigError, match="allow_remote"):
        OpenAIBackend("m", base_url="http://10.1.2.3:8000/v1", api_key_env="SENSECF_TEST_KEY")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://gpu-box.example.org/v1")  # the client's env var is gated too
    with pytest.raises(ConfigError, match="gpu-box"):
        OpenAIBackend("m", api_key_env="SENSECF_TEST_KEY")
    monkeypatch.delenv("OPENAI_BASE_URL")
    remote = OpenAIBackend("gpt-4o", api_key_env="SENSECF_TEST_KEY", allow_remote=True)
    assert remote.base_url == "https://api.openai.com/v1"
    assert SECRET not in repr(remote) and SECRET not in str(remote) and SECRET not in str(vars(remote))
    monkeypatch.delenv("SENSECF_TEST_KEY")
    with pytest.raises(ConfigError, match="SENSECF_TEST_KEY"):
        OpenAIBackend("gpt-4o", api_key_env="SENSECF_TEST_KEY", allow_remote=True)


def test_cache_hits_and_never_stores_the_key(server, tmp_path, monkeypatch):
    monkeypatch.setenv("SENSECF_TEST_KEY", SECRET)
    cached = CachedBackend(backend(server, api_key_env="SENSECF_TEST_KEY"), tmp_path / "cache")
    chats, settings = [chat("a"), chat("b")], SamplingSettings(max_new_tokens=9)
    first = cached.generate(chats, settings)
    assert (cached.hits, cached.misses, len(server.requests)) == (0, 2, 2)
    assert server.auth[0] == f"Bearer {SECRET}"  # the key really was used on the wire
    assert cached.generate(chats, settings) == first
    assert (cached.hits, cached.misses, len(server.requests)) == (2, 2, 2)
    cached.generate([chat("a")], SamplingSettings(max_new_tokens=10))  # other settings: other key
    assert (cached.misses, len(server.requests)) == (3, 3)
    for path in (tmp_path / "cache").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes()


def test_failures_are_not_cached(server, tmp_path):
    cached = CachedBackend(backend(server, max_retries=0), tmp_path)
    server.script = ["500"]
    assert isinstance(cached.generate([chat("x")], SamplingSettings())[0], BackendError)
    assert cached.generate([chat("x")], SamplingSettings()) == [["echo: x #0"]]
    assert (cached.hits, cached.misses) == (0, 2)


def test_adapter_fingerprint_tracks_weights(tmp_path):
    (tmp_path / "adapter_model.safetensors").write_bytes(b"weights-v1")
    first = adapter_fingerprint(str(tmp_path))
    (tmp_path / "adapter_model.safetensors").write_bytes(b"weights-v2")
    assert first and adapter_fingerprint(str(tmp_path)) != first
    assert adapter_fingerprint(None) is None and adapter_fingerprint("served-lora-name") is None


def test_make_backend_specs(server, tmp_path):
    b = make_backend("openai:tiny-model", base_url=server.url)
    assert isinstance(b, OpenAIBackend) and b.model_id == "tiny-model"
    c = make_backend("openai:tiny-model", base_url=server.url, cache_dir=tmp_path)
    assert isinstance(c, CachedBackend) and c.name == "openai" and c.model_id == "tiny-model"
    for bad in ("", "bogus", "hf:", "openai:", "embedded:llama", "llamacpp:x"):
        with pytest.raises(ConfigError, match="valid forms"):
            make_backend(bad)
    with pytest.raises(ConfigError, match="no config.json"):
        make_backend(f"hf:{tmp_path}")
    with pytest.raises(ConfigError, match="adapter"):
        make_backend("openai:m", base_url=server.url, adapter=str(tmp_path))


def test_threads_env(monkeypatch):
    import torch

    before = torch.get_num_threads()
    try:
        monkeypatch.delenv(THREADS_ENV, raising=False)
        assert torch_threads() == 1
        monkeypatch.setenv(THREADS_ENV, "2")
        assert configure_torch_threads() == 2 and torch.get_num_threads() == 2
        monkeypatch.setenv(THREADS_ENV, "zero")
        with pytest.raises(ConfigError, match=THREADS_ENV):
            configure_torch_threads()
    finally:
        torch.set_num_threads(before)


# ---- faults: redirects, proxies, deadlines, keys (issue #14) ------------------------------------------------------
@pytest.mark.parametrize("where", ["off-machine", "other-loopback"])
def test_redirects_are_never_followed(server, connects, where):
    other = FakeServer("127.0.0.2") if where == "other-loopback" else None
    target = (other.url if other else "http://10.255.255.1:9/v1") + "/chat/completions"
    server.script = [f"redirect:{target}"]
    try:
        out = backend(server).generate([chat("patient row")], SamplingSettings())
    finally:
        if other:
            stop(other)
    assert isinstance(out[0], BackendError) and "redirect" in str(out[0]) and target in str(out[0])
    assert len(server.requests) == 1  # not retried
    assert connects == [("127.0.0.1", server.port)]  # nothing else was connected to
    assert not other or other.requests == []  # the body was not re-sent


def test_proxy_variables_are_ignored_unless_trusted(server, connects, monkeypatch):
    for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(var, "http://10.255.255.1:3128")
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    assert backend(server).generate([chat("x")], SamplingSettings()) == [["echo: x #0"]]
    assert connects == [("127.0.0.1", server.port)] and len(server.requests) == 1
    with pytest.raises(ConfigError, match="through the proxy http://10.255.255.1:3128"):
        backend(server, trust_env=True)  # refused before any work
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # trusted variables that keep the server off the proxy
    assert backend(server, trust_env=True).generate([chat("y")], SamplingSettings()) == [["echo: y #0"]]
    assert {c[0] for c in connects} == {"127.0.0.1"}


def test_every_request_and_connection_is_checked_again(server, connects, monkeypatch):
    b = backend(server, max_retries=0)
    b._client.base_url = "http://10.255.255.1:9/v1"  # as if an address slipped past the construction check
    out = b.generate([chat("x")], SamplingSettings())
    assert isinstance(out[0], BackendError) and "refusing to send a request to 10.255.255.1" in str(out[0])
    # a trusted proxy variable that the construction check missed: the connection to the proxy is refused
    monkeypatch.setenv("HTTP_PROXY", "http://10.255.255.1:3128")
    monkeypatch.setattr("sensecf.backends.openai_backend.env_proxy", lambda url: None)
    out = backend(server, max_retries=0, trust_env=True).generate([chat("x")], SamplingSettings())
    assert isinstance(out[0], BackendError) and "refusing to connect to 10.255.255.1" in str(out[0])
    assert connects == [] and server.requests == []


@pytest.mark.parametrize("kind", ["trickle_head", "trickle_body"])
def test_request_deadline_cuts_off_a_trickling_server(server, kind):
    server.script = [kind]
    start = time.perf_counter()
    out = backend(server, timeout=1, max_retries=0).generate([chat("x")], SamplingSettings())
    took = time.perf_counter() - start
    assert isinstance(out[0], BackendError) and "Timeout: no complete reply within 1 s" in str(out[0])
    assert took < 2.5, took


def test_batch_deadline(server):
    server.script = ["hang"] * 3
    start = time.perf_counter()
    out = backend(server, timeout=10, batch_timeout=0.8, concurrency=1).generate([chat(f"q{i}") for i in range(3)],
                                                                                 SamplingSettings())
    assert time.perf_counter() - start < 2.5
    assert all(isinstance(o, BackendError) and "batch_timeout" in str(o) for o in out)
    assert len(server.requests) == 1  # the other prompts were not sent after the deadline


def test_key_goes_to_a_local_server_only_when_named(server, monkeypatch, caplog):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_LOG", "debug")
    caplog.set_level(logging.DEBUG)
    backend(server).generate([chat("x")], SamplingSettings())
    assert SECRET not in server.auth[-1]
    backend(server, api_key_env="OPENAI_API_KEY").generate([chat("x")], SamplingSettings())
    assert server.auth[-1] == f"Bearer {SECRET}"
    assert SECRET not in caplog.text
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):  # named explicitly, so it must be set
        backend(server, api_key_env="OPENAI_API_KEY")


def test_server_settings_pass_through_make_backend(server):
    b = make_backend("openai:m", base_url=server.url, timeout=7, batch_timeout=30, max_retries=1, concurrency=2,
                     trust_env=False)
    assert (b.timeout, b.batch_timeout, b.max_retries, b.concurrency) == (7, 30, 1, 2)
    with pytest.raises(ConfigError, match="timeout"):
        make_backend("openai:m", base_url=server.url, timeout="soon")
    with pytest.raises(ConfigError, match="openai: backends only"):
        make_backend("embedded", timeout=7)
