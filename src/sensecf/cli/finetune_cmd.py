"""`sensecf finetune`: LoRA/QLoRA fine-tuning of a chat model on counterfactual pairs of the training split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from .app import app
from .options import MODEL_HELP, classifier_for, data_option, model_option, schema_option, split_from_options


@app.command()
def finetune(
    data: Optional[str] = data_option(),
    schema: Optional[str] = schema_option(),
    base: str = typer.Option("embedded", help="'embedded' (SmolLM2-135M-Instruct, CPU) or a transformers "
                                              "checkpoint folder (e.g. Llama-3.1-8B-Instruct)."),
    config: Optional[Path] = typer.Option(None, help="YAML overriding resources/finetune_default.yaml (Table I)."),
    quantize: Optional[str] = typer.Option(None, help="'nf4' = QLoRA via bitsandbytes (CUDA only)."),
    out: Optional[Path] = typer.Option(None, help="Adapter folder (default: ~/.cache/sensecf/adapters/default, "
                                                  "which llm-fine-tuned uses)."),
    max_steps: Optional[int] = typer.Option(None, help="Stop after this many optimizer steps (overrides config)."),
    seed: int = typer.Option(0, help="Seed of the split, classifier, pairs and training."),
    model: Optional[Path] = model_option("Classifier that labels the training pairs instead of a newly trained "
                                         "nn: " + MODEL_HELP),
    resume: bool = typer.Option(True, help="Resume from the last checkpoint in OUT/checkpoints."),
):
    """Build SFT pairs from the training split (labelled by a new NN classifier, or --model) and train a LoRA
    adapter with TRL + PEFT."""
    from ..finetune.config import FinetuneConfig
    from ..finetune.train import check_device, finetune as run_finetune

    cfg = FinetuneConfig.load(config)
    if max_steps is not None:
        cfg = cfg.with_overrides(max_steps=max_steps)
    import torch

    check_device(quantize, cfg.effective(torch.cuda.is_available()), torch.cuda.is_available())
    train, _ = split_from_options(data, schema, seed)
    clf = classifier_for(model, "nn", train, seed)
    path = run_finetune(train, clf, base=base, config=cfg, out_dir=out, seed=seed, quantize=quantize, resume=resume)
    card = json.loads((path / "card.json").read_text())
    Console().print(f"[bold green]adapter[/]: {path}\n  pairs {card['pairs']['train_pairs']} train / "
                    f"{card['pairs']['val_pairs_used']} validation, {card['steps']} steps, "
                    f"{card['wall_seconds']} s, train loss {card['train_loss_last']}, eval loss {card['eval_loss']}")
