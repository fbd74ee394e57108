"""Local Hugging Face transformers backend (+ optional PEFT adapter, NF4 on CUDA)."""

from __future__ import annotations

from pathlib import Path

from sensecf.console import progress_bar

from sensecf.backends.base import BackendError, Chat, SamplingSettings
from sensecf.backends.threads import configure_torch_threads
from sensecf.errors import ConfigError

_DTYPES = ("auto", "float32", "bfloat16", "float16")


def plain_prompt(chat: Chat) -> str:
    """Fallback prompt for base models without a chat template: the messages' texts joined, assistant cue last."""
    parts = [m["content"] if m["role"] == "system" else f"{m['role'].capitalize()}: {m['content']}" for m in chat]
    return "\n\n".join(parts) + "\n\nAssistant:"


def accepts_system_role(tokenizer) -> bool:
    """Whether the tokenizer's chat template renders a system message (Mistral-Instruct's, used by BioMistral,
    raises instead)."""
    try:
        tokenizer.apply_chat_template([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
                                      tokenize=False)
        return True
    except Exception:  # jinja2 raise_exception(...) in the template
        return False


def fit_chat(messages: Chat, system_role: bool) -> Chat:
    """`messages` as a chat template accepts them: without a system role (see accepts_system_role), the system
    text is prepended to the first user message."""
    if system_role or len(messages) < 2 or messages[0]["role"] != "system":
        return messages
    system, user, *rest = messages
    return [{"role": "user", "content": f"{system['content']}\n\n{user['content']}"}, *rest]


class HFBackend:
    """Generates with a local transformers causal LM; batched, left-padded, greedy or seeded sampling."""

    name = "hf"

    def __init__(self, model_path: str | Path, adapter: str | Path | None = None, quantize: str | None = None,
                 dtype: str = "auto", batch_size: int = 8, threads: int | None = None, progress: bool = False):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(model_path).expanduser()
        if not (path / "config.json").is_file():
            raise ConfigError(f"model folder {path} has no config.json (expected a transformers checkpoint)")
        if dtype not in _DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
        if quantize not in (None, "nf4"):
            raise ConfigError(f"quantize must be 'nf4' or None, got {quantize!r}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        self.threads = configure_torch_threads(threads)
        self.batch_size = batch_size
        self.progress = progress
        self.model_id = str(path.resolve())
        self.adapter_id = str(Path(adapter).expanduser().resolve()) if adapter else None

        load_kwargs: dict = {"dtype": dtype if dtype == "auto" else getattr(torch, dtype)}
        if quantize == "nf4":
            load_kwargs.update(_nf4_kwargs())
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")
            model = AutoModelForCausalLM.from_pretrained(path, **load_kwargs)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load model from {path}: {exc}") from exc
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.system_role = bool(self.tokenizer.chat_template) and accepts_system_role(self.tokenizer)
        if self.adapter_id:
            model = _attach_adapter(model, Path(self.adapter_id), merge=quantize is None)
        self.model = model.eval()
        self.context_length = int(getattr(model.config, "max_position_embeddings", None) or 2048)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model_id={self.model_id!r}, adapter_id={self.adapter_id!r})"

    def prompt_text(self, chat: Chat) -> str:
        """The chat rendered as the model's prompt (chat template, or plain concatenation for base models)."""
        if self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(fit_chat(chat, self.system_role), add_generation_prompt=True,
                                                      tokenize=False)
        return plain_prompt(chat)

    def _encode(self, chat: Chat) -> list[int]:
        text = self.prompt_text(chat)
        # A chat template already contains the BOS token where the model wants one.
        return self.tokenizer(text, add_special_tokens=not self.tokenizer.chat_template)["input_ids"]

    def count_tokens(self, chat: Chat) -> int:
        """Number of prompt tokens of `chat` (template included)."""
        return len(self._encode(chat))

    def generate(self, chats: list[Chat], settings: SamplingSettings) -> list[list[str] | Exception]:
        """Completions for each chat (`settings.n` each); a failed prompt yields an exception in its slot."""
        configure_torch_threads(self.threads)
        results: list[list[str] | Exception | None] = [None] * len(chats)
        encoded: dict[int, list[int]] = {}
        for i, chat in enumerate(chats):
            try:
                ids = self._encode(chat)
            except Exception as exc:  # a malformed chat fails only its own slot
                results[i] = BackendError(f"prompt {i}: cannot render chat: {exc}")
                continue
            if len(ids) + settings.max_new_tokens > self.context_length:
                results[i] = BackendError(
                    f"prompt {i}: {len(ids)} prompt tokens + {settings.max_new_tokens} new tokens exceed the "
                    f"context length {self.context_length} of {self.model_id}")
            else:
                encoded[i] = ids
        order = sorted(encoded, key=lambda i: len(encoded[i]))  # similar lengths together: less padding
        batches = [order[k:k + self.batch_size] for k in range(0, len(order), self.batch_size)]
        with progress_bar(enabled=self.progress and len(batches) >= 2, transient=True) as bar:
            task = bar.add_task(f"generating ({self.model_id})", total=len(batches))
            for b, batch in enumerate(batches):
                try:
                    outs = self._generate_batch([encoded[i] for i in batch], settings, seed=settings.seed + b)
                    for i, out in zip(batch, outs):
                        results[i] = out
                except Exception as exc:  # e.g. out of memory: fail this batch's prompts, keep the run going
                    for i in batch:
                        results[i] = BackendError(f"prompt {i}: generation failed: {exc}")
                bar.advance(task)
        return results  # type: ignore[return-value]

    def _generate_batch(self, batch: list[list[int]], settings: SamplingSettings, seed: int) -> list[list[str]]:
        import torch

        padded = self.tokenizer.pad({"input_ids": batch}, padding=True, return_tensors="pt")
        padded = {k: v.to(self.model.device) for k, v in padded.items()}
        greedy = settings.temperature == 0
        n_seq = 1 if greedy else settings.n
        kwargs: dict = {"max_new_tokens": settings.max_new_tokens, "pad_token_id": self.tokenizer.pad_token_id}
        if greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p, top_k=None)
        # Seed a forked RNG so sampling is reproducible without touching the caller's global RNG state.
        with torch.random.fork_rng(devices=[]), torch.inference_mode():
            torch.manual_seed(seed)
            out = generate_shared_prefill(self.model, padded, n_seq, **kwargs)
        new = out[:, padded["input_ids"].shape[1]:]
        texts = [t.strip() for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]
        per_prompt = [texts[k * n_seq:(k + 1) * n_seq] for k in range(len(batch))]
        return [seqs * settings.n if greedy else seqs for seqs in per_prompt]  # greedy: n identical copies


def generate_shared_prefill(model, padded: dict, n: int, **generate_kwargs):
    """`model.generate` with `n` sequences per left-padded prompt, reading each prompt once.

    `num_return_sequences=n` would copy every prompt n times before the forward pass, and on a CPU that prompt
    pass is most of the cost (10 compact prompts x 4 samples: 28 s -> 9 s for SmolLM2 on one core). Here the
    prompts but their last token fill a KV cache once, the cache is repeated n times, and generate continues
    from it. Position ids follow the attention mask exactly as generate's own, so greedy output is unchanged.
    """
    if n == 1:
        return model.generate(**padded, **generate_kwargs)
    from transformers import DynamicCache

    head_mask = padded["attention_mask"][:, :-1]
    cache = DynamicCache(config=model.config)
    model(input_ids=padded["input_ids"][:, :-1], attention_mask=head_mask, cache=cache, use_cache=True,
          position_ids=(head_mask.long().cumsum(-1) - 1).masked_fill(head_mask == 0, 1))
    cache.batch_repeat_interleave(n)
    return model.generate(**{k: v.repeat_interleave(n, dim=0) for k, v in padded.items()}, cache=cache,
                          **generate_kwargs)


def _nf4_kwargs() -> dict:
    import torch

    if not torch.cuda.is_available():
        raise ConfigError("quantize='nf4' needs a CUDA GPU (bitsandbytes); none found — use quantize=None on CPU")
    try:
        from transformers import BitsAndBytesConfig
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise ConfigError("quantize='nf4' needs bitsandbytes: pip install 'sensecf[gpu]'") from exc
    bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                             bnb_4bit_compute_dtype=torch.bfloat16)
    return {"quantization_config": bnb, "device_map": "auto"}


def _attach_adapter(model, adapter: Path, merge: bool):
    from peft import PeftModel

    if not (adapter / "adapter_config.json").is_file():
        raise ConfigError(f"adapter folder {adapter} has no adapter_config.json (expected a PEFT adapter)")
    try:
        model = PeftModel.from_pretrained(model, str(adapter))
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ConfigError(f"cannot load adapter {adapter} onto the base model: {exc}") from exc
    # Merging LoRA weights into the base makes generation as fast as the base model (not possible for 4-bit).
    return model.merge_and_unload() if merge else model
