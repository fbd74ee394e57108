"""Self-distillation (expert iteration): the fine-tuned model's own calibrated CFs of training factuals become the
pairs of a further training round.

A round samples training factuals (seeded; never of the validation pairs' participants), asks
llm-fine-tuned+calibrated with the current adapter for a CF of each (the LLM proposes, the classifier decides how
far), and keeps the valid ones — actionable-only ones first — as compact-style pairs: the prompt the generator
uses, answered with the calibrated changes at display precision.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..cf.constraints import changed_mask
from ..data.dataset import Dataset
from ..generators.base import GeneratorContext
from ..generators.calibration import CalibratedGenerator, CalibrationOptions
from ..generators.llm.generator import LLMGenerator
from ..generators.llm.prompt import build_chat, render_answer


def distill_pairs(train: Dataset, classifier, backend, style: str, n_factuals: int, seed: int,
                  exclude_groups: set[str] | None = None, candidates: int = 4) -> tuple[list[dict], dict]:
    """(pairs, stats) of one self-distillation round with `backend` (the model with the current adapter)."""
    schema = train.schema
    X = schema.coerce(train.X)
    pool = X.index
    if exclude_groups and train.groups is not None:
        pool = pool[~train.groups.astype(str).isin(exclude_groups).to_numpy()]
    rng = np.random.default_rng(seed)
    picked = X.loc[rng.choice(pool, size=min(n_factuals, len(pool)), replace=False)]
    current = classifier.predict(picked)
    ctx = GeneratorContext(schema, classifier, train.X, train.y, seed)
    inner = LLMGenerator(ctx, backend, mode="fine-tuned", style=style, repair_rounds=0, candidates=candidates,
                         temperature=0.7 if candidates > 1 else 0.0, progress=False)
    gen = CalibratedGenerator(ctx, CalibrationOptions(prompt_style=style), inner)
    result = gen.generate(picked, 1 - current)
    ok = result.status == "valid"
    pairs = []
    for idx in result.status.index[ok]:
        factual, cf = picked.loc[idx], result.counterfactuals.loc[idx]
        cur, target = int(classifier.predict(factual.to_frame().T)[0]), int(result.target[idx])
        answer = render_answer(cf, schema, factual if style == "compact" else None)
        pairs.append({"messages": build_chat(factual, cur, target, schema, style=style)
                      + [{"role": "assistant", "content": answer}],
                      "factual_id": idx.item() if hasattr(idx, "item") else idx, "current": cur, "target": target,
                      "policy": "distilled", "group": None if train.groups is None else str(train.groups[idx])})
    changed = changed_mask(picked[ok.to_numpy()], result.counterfactuals[ok], schema)
    only = ~changed[[c for c in schema.feature_names if not schema[c].actionable]].any(axis=1)
    stats = {"factuals": int(len(picked)), "valid": int(ok.sum()), "pairs": len(pairs),
             "actionable_only": int(only.sum()),
             "changed": {c: int(n) for c, n in changed.sum().items() if n}}
    return pairs, stats


def adapter_backend(base: str, adapter: Path, batch_size: int = 8):
    """A fresh (uncached) backend of the base model with `adapter` loaded (the adapter changes between rounds)."""
    from ..backends.registry import make_backend

    spec = base if str(base).startswith(("embedded", "hf:")) else f"hf:{base}"
    return make_backend(spec, adapter=adapter, batch_size=batch_size)
