"""LoRA / QLoRA supervised fine-tuning of a chat model on counterfactual pairs (TRL SFTTrainer + PEFT).

The loss covers the answer only: pairs are given to TRL as conversational prompt-completion records
(prompt = system + user messages, completion = the assistant's `<new>` block), for which SFTConfig's
`completion_only_loss=True` masks every prompt token. TRL 1.16 computes the loss with a fused LM head, so
full-vocabulary logits are never materialised. The adapter lands in `out_dir` with `card.json` + `README.md`;
a rerun whose card matches (base, data hash, effective config, seed, quantization) skips training, and an
interrupted run resumes from the last checkpoint in `out_dir/checkpoints` (a self-distillation round,
finetune/distill.py, reruns from its start). With `distill_rounds` > 0 the adapter trains further on its own
calibrated CFs; the card records every round.
"""

from __future__ import annotations

import hashlib
import json
import math
import resource
import shutil
import time
from pathlib import Path

from ..backends.hf import accepts_system_role, fit_chat, plain_prompt
from ..backends.spec import parse_backend_spec
from ..console import console
from ..data.dataset import Dataset
from ..errors import ConfigError, DataError
from ..files import write_json
from ..paths import default_adapter_dir
from ..provenance import package_versions
from ..locking import FolderLock
from .config import FinetuneConfig
from .pairs import build_pairs
CARD = "card.json"
KEY_FILE = "sensecf-run-key.json"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def resolve_base(base: str | Path) -> tuple[Path, str]:
    """(checkpoint folder, model id for cards): "embedded[:name]" -> the converted embedded checkpoint, "hf:PATH"
    or a plain path -> that transformers checkpoint folder."""
    text = str(base)
    if text == "embedded" or text.startswith(("embedded:", "hf:")):
        spec = parse_backend_spec(text)
        if spec.kind == "embedded":
            from ..backends.embedded import embedded_checkpoint

            return embedded_checkpoint(spec.arg), f"embedded:{spec.arg}"
        text = spec.arg
    path = Path(text).expanduser()
    if not (path / "config.json").is_file():
        raise ConfigError(f"base model folder {path} has no config.json (expected a transformers checkpoint, "
                          "or 'embedded')")
    return path.resolve(), str(path.resolve())


def data_hash(pairs: list[dict]) -> str:
    """SHA-256 (first 16 hex digits) of the pairs' messages: changes with data, classifier, schema or prompt."""
    blob = json.dumps([p["messages"] for p in pairs], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def check_device(quantize: str | None, cfg: FinetuneConfig, cuda: bool) -> None:
    """ConfigError when the quantization or precision cannot run on this device."""
    if quantize not in (None, "nf4"):
        raise ConfigError(f"quantize must be 'nf4' or None, got {quantize!r}")
    if quantize == "nf4":
        if not cuda:
            raise ConfigError("quantize='nf4' (QLoRA) needs a CUDA GPU with bitsandbytes; none found — "
                              "fine-tune without --quantize on CPU")
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise ConfigError("quantize='nf4' needs bitsandbytes: pip install 'sensecf[gpu]'") from None
    if not cuda and cfg.precision == "fp16":
        raise ConfigError("field 'precision': fp16 mixed precision needs a CUDA GPU; use bf16 or fp32 on CPU")


def _load_model(path: Path, cfg: FinetuneConfig, quantize: str | None, cuda: bool):
    import torch
    from transformers import AutoModelForCausalLM

    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[cfg.precision]
    kwargs: dict = {"dtype": dtype}
    if quantize == "nf4":
        from transformers import BitsAndBytesConfig

        kwargs.update(quantization_config=BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype if dtype != torch.float32 else torch.bfloat16), device_map={"": 0})
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load base model from {path}: {exc}") from exc
    if quantize == "nf4":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    elif cuda:
        model = model.to("cuda")
    return model


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (Linux VmHWM) so the card measures training, not data loading."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _records(pairs: list[dict], tokenizer) -> list[dict]:
    """Prompt-completion records (loss on the completion only): conversational for chat models, plain text
    (sensecf.backends.hf.plain_prompt, as the HF backend prompts base models) without a chat template."""
    if not tokenizer.chat_template:
        return [{"prompt": plain_prompt(p["messages"][:-1]), "completion": " " + p["messages"][-1]["content"]}
                for p in pairs]
    system_role = accepts_system_role(tokenizer)
    fitted = [fit_chat(p["messages"], system_role) for p in pairs]
    return [{"prompt": m[:-1], "completion": m[-1:]} for m in fitted]


def _token_count(record: dict, tokenizer) -> int:
    if isinstance(record["prompt"], str):
        return len(tokenizer(record["prompt"] + record["completion"])["input_ids"]) + 1
    return len(tokenizer.apply_chat_template(record["prompt"] + record["completion"], tokenize=True,
                                             return_dict=True)["input_ids"])


def _loss_summary(history: list[dict]) -> dict:
    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    final = next((h for h in reversed(history) if "train_loss" in h), {})
    return {"train_loss_first": train[0][1] if train else None, "train_loss_last": train[-1][1] if train else None,
            "train_loss_mean": final.get("train_loss"), "train_loss_curve": train, "eval_loss_curve": evals}


def _readme(card: dict) -> str:
    c, p = card["config"], card["pairs"]
    lines = [
        f"# sensecf counterfactual adapter ({card['base_model']})", "",
        "LoRA adapter trained by `sensecf finetune` to answer the SenseCF counterfactual prompt with a minimal, "
        "valid, constraint-respecting `<new>` block (pairs: sensecf.finetune.pairs).", "",
        "| field | value |", "|---|---|",
        f"| base model | `{card['base_model']}` |",
        f"| quantization | {card['quantize'] or 'none'} |",
        f"| data hash | `{card['data_hash']}` ({card['dataset']}) |",
        f"| pairs | {p['train_pairs']} train, {p['val_pairs_used']} validation; {sum(p['skipped'].values())} "
        f"factuals skipped |",
        f"| LoRA | r {c['lora_r']}, alpha {c['lora_alpha']}, dropout {c['lora_dropout']}, "
        f"modules {c['target_modules']} |",
        f"| training | {card['steps']} steps, batch {c['batch_size']} x accum {c['grad_accum']}, lr "
        f"{c['learning_rate']}, {c['precision']}, max length {card['max_length_used']} |",
        f"| loss | train first {card['train_loss_first']}, last {card['train_loss_last']}; eval "
        f"{card['eval_loss']} |",
        f"| time | {card['wall_seconds']} s ({card['device']}, {card['threads']} thread(s)); peak RSS "
        f"{card['peak_rss_mb']} MB |",
        f"| seed | {card['seed']} |", "",
        "Use it: `sensecf benchmark --methods llm-fine-tuned --option adapter=<this folder>` (embedded base), or "
        "`--option backend=hf:<base folder> --option adapter=<this folder>`.", "",
        "All settings, versions and the loss curves are in `card.json`.",
    ]
    return "\n".join(lines) + "\n"


def _sft(model, lora, tokenizer, train_records: list[dict], eval_records: list[dict], cfg: FinetuneConfig,
         ckpt_dir: Path, seed: int, max_length: int, max_steps: int | None, cuda: bool, progress: bool,
         resume_from: str | None):
    """One TRL SFT run (completion-only loss; LoRA from `lora`, or the trainable PEFT `model` as given);
    returns (trainer, train result, seconds)."""
    import datasets
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(
        output_dir=str(ckpt_dir), num_train_epochs=cfg.epochs, max_steps=max_steps or -1,
        per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler, warmup_steps=cfg.warmup_ratio,
        eval_strategy="steps" if eval_records else "no", eval_steps=cfg.eval_steps,
        save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=1, logging_steps=cfg.logging_steps,
        report_to="none", seed=seed, data_seed=seed, bf16=cfg.precision == "bf16", fp16=cfg.precision == "fp16",
        gradient_checkpointing=cfg.gradient_checkpointing, max_length=max_length, completion_only_loss=True,
        use_cpu=not cuda, dataloader_num_workers=0, disable_tqdm=not progress)
    trainer = SFTTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(train_records),
                         eval_dataset=datasets.Dataset.from_list(eval_records) if eval_records else None,
                         processing_class=tokenizer, peft_config=lora)
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume_from)
    return trainer, result, time.perf_counter() - start


def finetune(train: Dataset, classifier, base: str | Path = "embedded", config: FinetuneConfig | None = None,
             out_dir: str | Path | None = None, seed: int = 0, quantize: str | None = None, resume: bool = True,
             progress: bool = True) -> Path:
    """Fine-tune `base` with LoRA (QLoRA with quantize="nf4", CUDA only) on SFT pairs of the training split;
    returns the adapter folder (default: default_adapter_dir()). Skips training when the folder's card matches.
    A second trainer of the same folder waits for the first (folder lock), then finds its card.
    """
    out = Path(out_dir).expanduser() if out_dir is not None else default_adapter_dir()
    with FolderLock(out, "adapter folder", wait=True):
        return _finetune(train, classifier, base, config, out, seed, quantize, resume, progress)


def _finetune(train: Dataset, classifier, base, config: FinetuneConfig | None, out: Path, seed: int,
              quantize: str | None, resume: bool, progress: bool) -> Path:
    import torch

    cuda = torch.cuda.is_available()
    cfg = (config or FinetuneConfig.load(None)).effective(cuda)
    check_device(quantize, cfg, cuda)
    base_path, base_id = resolve_base(base)
    threads = None
    if not cuda:
        from ..backends.threads import configure_torch_threads

        threads = configure_torch_threads(cfg.threads)

    train_pairs, val_pairs = build_pairs(train, classifier, train.schema, seed=seed, max_pairs=cfg.max_pairs,
                                         val_fraction=cfg.val_fraction, progress=progress, style=cfg.prompt_style,
                                         min_proba=cfg.target_min_proba, policy=cfg.target_policy)
    if not train_pairs:
        raise DataError(f"no fine-tuning pairs could be built from {train.name!r} "
                        f"(skipped: {train_pairs.stats['skipped']})")
    eval_pairs = val_pairs[:cfg.max_eval_pairs] if cfg.max_eval_pairs else list(val_pairs)
    key = {"base_model": base_id, "data_hash": data_hash(train_pairs + eval_pairs), "config": cfg.to_dict(),
           "seed": seed, "quantize": quantize}

    card_path = out / CARD
    if card_path.is_file() and all((out / f).is_file() for f in ADAPTER_FILES):
        card = json.loads(card_path.read_text())
        if card.get("key") == key:
            console().print(f"[dim]✓ fine-tune: kept the adapter in {out} (card matches data and config)[/]")
            return out
    ckpt_dir = out / "checkpoints"
    key_file = ckpt_dir / KEY_FILE
    if ckpt_dir.exists() and (not resume or not key_file.is_file() or json.loads(key_file.read_text()) != key):
        console().print(f"[yellow]discarding checkpoints in {ckpt_dir}: "
                      f"{'--no-resume' if not resume else 'they belong to other data or settings'}[/]")
        shutil.rmtree(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    write_json(key_file, key)
    card_path.unlink(missing_ok=True)  # the folder holds no finished adapter until the new card is written

    import peft
    from transformers import AutoTokenizer
    from transformers.trainer_utils import get_last_checkpoint

    tokenizer = AutoTokenizer.from_pretrained(base_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    train_records, eval_records = _records(train_pairs, tokenizer), _records(eval_pairs, tokenizer)
    longest = max(_token_count(r, tokenizer) for r in train_records + eval_records)
    max_length = cfg.max_length
    if longest > max_length:  # truncation would cut the answer off: fit the longest pair instead
        max_length = int(math.ceil(longest / 64) * 64)
        console().print(f"[yellow]max_length {cfg.max_length} is shorter than the longest pair ({longest} tokens); "
                      f"using {max_length} so no answer is truncated[/]")

    lora = peft.LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                           target_modules=cfg.target_modules if isinstance(cfg.target_modules, str)
                           else list(cfg.target_modules), bias="none", task_type="CAUSAL_LM")
    rss_scope = "training" if _reset_peak_rss() else "process"
    last = get_last_checkpoint(str(ckpt_dir)) if resume else None
    console().print(f"[bold]fine-tuning[/] {base_id}: {len(train_pairs)} pairs, {len(eval_pairs)} validation"
                    + (f", resuming from {Path(last).name}" if last else ""))
    model = _load_model(base_path, cfg, quantize, cuda)
    trainer, result, seconds = _sft(model, lora, tokenizer, train_records, eval_records, cfg, ckpt_dir, seed,
                                    max_length, cfg.max_steps, cuda, progress, last)
    eval_loss = trainer.evaluate().get("eval_loss") if eval_pairs else None
    trainer.model.save_pretrained(str(out))
    history, steps = list(trainer.state.log_history), int(result.global_step)

    distillation = []
    val_groups = {p["group"] for p in eval_pairs if p.get("group") is not None}
    for round_ in range(1, cfg.distill_rounds + 1):
        from .distill import adapter_backend, distill_pairs

        backend = adapter_backend(str(base), out)
        extra, round_stats = distill_pairs(train, classifier, backend, cfg.prompt_style, cfg.distill_factuals,
                                           seed + round_, val_groups)
        del backend
        console().print(f"self-distillation round {round_}: {round_stats['pairs']} calibrated CFs of "
                        f"{round_stats['factuals']} training factuals become pairs")
        records = _records(train_pairs + extra, tokenizer)
        model = peft.PeftModel.from_pretrained(_load_model(base_path, cfg, quantize, cuda), str(out),
                                               is_trainable=True)
        trainer, result, more = _sft(model, None, tokenizer, records, eval_records, cfg,
                                     ckpt_dir / f"distill-{round_}", seed + round_, max_length,
                                     cfg.distill_steps or cfg.max_steps, cuda, progress, None)
        eval_loss = trainer.evaluate().get("eval_loss") if eval_pairs else None
        trainer.model.save_pretrained(str(out))
        seconds += more
        steps += int(result.global_step)
        history += trainer.state.log_history
        distillation.append({"round": round_, **round_stats, "steps": int(result.global_step),
                             "seconds": round(more, 1), "eval_loss": eval_loss})

    stats = train_pairs.stats
    card = {
        "key": key, "base_model": base_id, "base_path": str(base_path), "quantize": quantize, "seed": seed,
        "dataset": train.name, "data_hash": key["data_hash"],
        "pairs": {**stats, "val_pairs_used": len(eval_pairs)}, "config": cfg.to_dict(),
        "max_length_used": max_length, "longest_pair_tokens": longest, "steps": steps,
        "epochs_done": round(float(trainer.state.epoch or 0), 3), "resumed_from": Path(last).name if last else None,
        "wall_seconds": round(seconds, 1), "seconds_per_step": round(seconds / max(steps, 1), 2),
        "distillation": distillation, **_loss_summary(history), "eval_loss": eval_loss,
        "peak_rss_mb": _peak_rss_mb(), "peak_rss_scope": rss_scope,
        "peak_cuda_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu", "threads": threads,
        "adapter_mb": round((out / ADAPTER_FILES[1]).stat().st_size / 2**20, 2),
        "versions": package_versions(), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (out / "README.md").write_text(_readme(card))
    write_json(card_path, card)  # written last: marks the adapter complete
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    console().print(f"[bold green]adapter written[/]: {out} ({card['steps']} steps, {card['wall_seconds']} s, "
                  f"train loss {card['train_loss_last']}, eval loss {eval_loss})")
    return out
