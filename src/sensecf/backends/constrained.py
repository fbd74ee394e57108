"""Constrained decoding for transformers' generate: GBNF grammars compiled by xgrammar against the model's
tokenizer and enforced by xgrammar's transformers logits processor (one grammar matcher per generated row)."""

from __future__ import annotations

from sensecf.errors import ConfigError

XGRAMMAR_PIP = "pip install --no-deps xgrammar==0.2.9 && pip install 'apache-tvm-ffi>=0.1.11'"


class GrammarConstraints:
    """Compiles grammars for one tokenizer (cached by text) and builds the logits processor of a batch."""

    def __init__(self, tokenizer, vocab_size: int):
        try:
            import xgrammar
        except ImportError as exc:
            raise ConfigError(f"constrained decoding needs xgrammar: {XGRAMMAR_PIP} (or option constrained=false)"
                              ) from exc
        self._xgr = xgrammar
        info = xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size)
        self._compiler = xgrammar.GrammarCompiler(info, max_threads=1)  # caches compiled grammars by text

    def compile(self, grammar: str):
        """The compiled grammar; raises on a malformed grammar."""
        return self._compiler.compile_grammar(grammar)

    def processor(self, compiled: list, n: int):
        """A fresh (single-use) logits processor for a batch whose rows are each prompt repeated `n` times in a
        row (generate's num_return_sequences order and generate_shared_prefill's)."""
        from transformers import LogitsProcessorList

        return LogitsProcessorList([self._xgr.contrib.hf.LogitsProcessor([g for g in compiled for _ in range(n)])])
