"""OpenAI-compatible backend against a real local HTTP server, the remote opt-in rule, the cache, specs, threads."""

from __future__ import annotations

import http.server
import json
import re
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

    def __init__(self):
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

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server():
    srv = FakeServer()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


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


GRAMMAR = 'root ::= "<new>\\n" ("- Steps: +1.0\\n")? "</new>"\n'


@pytest.mark.parametrize("guided, field", [("vllm", "structured_outputs"), ("llamacpp", "grammar"), ("off", None)])
def test_guided_decoding_sends_the_grammar_in_the_request_body(server, guided, field):
    b = backend(server, guided=guided)
    out = b.generate([chat("a"), chat("b")], SamplingSettings(n=2, temperature=0.7), grammars=[GRAMMAR, GRAMMAR + " "])
    assert out == [["echo: a #0", "echo: a #1"], ["echo: b #0", "echo: b #1"]]
    sent = {r["messages"][-1]["content"]: r for r in server.requests}
    for text, grammar in (("a", GRAMMAR), ("b", GRAMMAR + " ")):
        body = sent[text]
        assert not {"structured_outputs", "grammar"} - {field} & set(body)  # nothing else was sent
        if guided == "vllm":
            assert body["structured_outputs"] == {"grammar": grammar}
        elif guided == "llamacpp":
            assert body["grammar"] == grammar
    backend(server, guided=guided).generate([chat("c")], SamplingSettings())  # without grammars: plain
    assert not {"structured_outputs", "grammar"} & set(server.requests[-1])


def test_guided_must_name_a_server_type(server):
    with pytest.raises(ConfigError, match="guided must be one of off, vllm, llamacpp"):
        backend(server, guided="outlines")


def test_cache_key_includes_the_grammar(server, tmp_path):
    cached = CachedBackend(backend(server, guided="llamacpp"), tmp_path)
    settings = SamplingSettings()
    assert cached.key(chat("a"), settings) != cached.key(chat("a"), settings, GRAMMAR)
    assert cached.key(chat("a"), settings, GRAMMAR) != cached.key(chat("a"), settings, GRAMMAR + " ")
    cached.generate([chat("a")], settings)
    cached.generate([chat("a")], settings, grammars=[GRAMMAR])  # a constrained answer is another answer
    assert (cached.hits, cached.misses) == (0, 2) and server.requests[-1]["grammar"] == GRAMMAR
    cached.generate([chat("a")], settings, grammars=[GRAMMAR])
    assert (cached.hits, cached.misses, len(server.requests)) == (1, 2, 2)


def test_constrained_decoding_without_xgrammar_names_the_install_command(monkeypatch):
    from sensecf.backends.constrained import XGRAMMAR_PIP, GrammarConstraints

    monkeypatch.setitem(sys.modules, "xgrammar", None)  # import xgrammar raises ImportError
    with pytest.raises(ConfigError, match=re.escape(XGRAMMAR_PIP) + r" \(or option constrained=false\)"):
        GrammarConstraints(tokenizer=None, vocab_size=0)


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
