"""The backend interface: a batch of chat prompts in, a batch of completions out."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol

from sensecf.errors import SenseCFError

Message = dict  # {"role": "system" | "user" | "assistant", "content": str}
Chat = list[Message]


@dataclass(frozen=True)
class SamplingSettings:
    """Decoding settings; part of the cache key."""

    max_new_tokens: int = 160
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    n: int = 1  # completions per prompt
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


class TextBackend(Protocol):
    """Generates completions for chats. Must return len(chats) lists of `settings.n` strings each.

    Failures for one prompt are returned as an exception object in place of its list, never raised
    for the whole batch (so a run continues and counts them). `grammars`, when given, holds one GBNF grammar per
    chat that its completions must follow (constrained decoding); a backend that cannot enforce it (an
    OpenAI-compatible server without guided decoding) answers in plain text.
    """

    name: str       # e.g. "embedded", "hf", "openai"
    model_id: str   # what the cache and reports call the model (path or remote model name)
    adapter_id: str | None
    context_length: int

    def generate(self, chats: list[Chat], settings: SamplingSettings,
                 grammars: list[str] | None = None) -> list[list[str] | Exception]: ...

    def count_tokens(self, chat: Chat) -> int: ...


class BackendError(SenseCFError):
    """One prompt failed (too long for the context, HTTP failure after retries, malformed reply).

    Returned in place of that prompt's completions, never raised for the whole batch.
    """
