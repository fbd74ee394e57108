"""Disk cache of completions (sqlite), keyed by backend, model, adapter (+ weights hash), chat and settings."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sensecf.backends.base import Chat, SamplingSettings, TextBackend

CACHE_FILE = "completions.sqlite"


def adapter_fingerprint(adapter_id: str | None) -> str | None:
    """sha256 over an adapter folder's files (names + bytes), so retraining an adapter invalidates the cache."""
    if not adapter_id or not Path(adapter_id).is_dir():
        return None
    digest = hashlib.sha256()
    root = Path(adapter_id)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


class CachedBackend:
    """Wraps a backend; successful completions are stored in ``cache_dir/completions.sqlite`` and reused.

    Failures (exceptions) are never cached. Only prompts, settings, completions and the seconds a completion took
    to generate are stored — no API keys. `last_seconds` holds, per chat of the last call, the generation time
    (for a cached completion: what it cost when it was generated), so reported timings do not depend on the
    cache.
    """

    def __init__(self, inner: TextBackend, cache_dir: str | Path):
        self.inner = inner
        self.name = inner.name
        self.model_id = inner.model_id
        self.adapter_id = inner.adapter_id
        self.context_length = inner.context_length
        self.hits = 0
        self.misses = 0
        self.last_seconds: list[float] = []
        self.path = Path(cache_dir).expanduser() / CACHE_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._adapter_hash = adapter_fingerprint(inner.adapter_id)
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, completions TEXT NOT NULL)")

    def __repr__(self) -> str:
        return f"CachedBackend({self.inner!r}, cache={str(self.path)!r})"

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        try:
            with db:  # commits on success
                yield db
        finally:
            db.close()

    def key(self, chat: Chat, settings: SamplingSettings) -> str:
        """The cache key of one prompt under `settings`."""
        payload = {"backend": self.name, "model_id": self.model_id, "adapter_id": self.adapter_id,
                   "adapter_sha256": self._adapter_hash, "chat": chat, "settings": settings.as_dict()}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    def count_tokens(self, chat: Chat) -> int:
        """Delegates to the wrapped backend."""
        return self.inner.count_tokens(chat)

    def generate(self, chats: list[Chat], settings: SamplingSettings) -> list[list[str] | Exception]:
        """Cached completions where present; the rest come from the wrapped backend in one call."""
        keys = [self.key(chat, settings) for chat in chats]
        with self._connect() as db:
            found, cost = {}, {}
            for k in set(keys):
                row = db.execute("SELECT completions FROM completions WHERE key = ?", (k,)).fetchone()
                if row:
                    stored = json.loads(row[0])
                    found[k], cost[k] = (stored["completions"], stored["seconds"]) if isinstance(stored, dict) \
                        else (stored, 0.0)
        results: list[list[str] | Exception | None] = [found.get(k) for k in keys]
        self.last_seconds = [cost.get(k, 0.0) for k in keys]
        missing = [i for i, r in enumerate(results) if r is None]
        self.hits += len(chats) - len(missing)
        self.misses += len(missing)
        if missing:
            t0 = time.perf_counter()
            fresh = self.inner.generate([chats[i] for i in missing], settings)
            share = (time.perf_counter() - t0) / len(missing)
            with self._connect() as db:
                for i, out in zip(missing, fresh):
                    results[i] = out
                    self.last_seconds[i] = share
                    if not isinstance(out, Exception):
                        db.execute("INSERT OR REPLACE INTO completions VALUES (?, ?)",
                                   (keys[i], json.dumps({"completions": out, "seconds": share})))
        return results  # type: ignore[return-value]
