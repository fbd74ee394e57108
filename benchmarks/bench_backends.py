"""Tokens per second of the embedded backend by batch size and torch thread count.

    python benchmarks/bench_backends.py [--model smollm2] [--batches 1,4,8,16] [--threads 1,2]
        [--dtypes bfloat16] [--max-new-tokens 32] [--fresh]

Greedy decoding of counterfactual-style prompts (the paper's Fig. 4 layout, seeded random values). For each
(dtype, threads, batch) cell one generate() call over `batch` prompts is timed after a warm-up; generated tokens are
counted by re-tokenising the completions. Writes benchmarks/results/backends.json and backends.md.
The machine is shared: the load average before and after each cell is recorded next to the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
import transformers
from rich.progress import Progress

from sensecf.backends.base import SamplingSettings
from sensecf.backends.embedded import EmbeddedBackend

RESULTS = Path(__file__).parent / "results"
JSON = RESULTS / "backends.json"
FEATURES = [("Awake %", 5, 25), ("Light %", 40, 65), ("Deep %", 5, 25), ("REM %", 10, 30),
            ("Mean steps", 0, 900), ("Mean glucose", 80, 200), ("Hyperglycemic events", 0, 4),
            ("Time in range %", 40, 100)]


def cf_prompts(n: int, seed: int) -> list[list[dict]]:
    """`n` counterfactual prompts with seeded random feature values."""
    rng = np.random.default_rng(seed)
    chats = []
    for _ in range(n):
        lines = "\n".join(f"- {name}: {rng.uniform(lo, hi):.1f}" for name, lo, hi in FEATURES)
        chats.append([
            {"role": "system", "content": "You are an expert in counterfactual explanations."},
            {"role": "user", "content": "The model labels this instance 'high stress'. Change it minimally so the "
                                        "label becomes 'moderate stress'. Fixed features: Age, Gender.\n"
                                        f"{lines}\nAnswer with the modified instance inside <new> </new>."}])
    return chats


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--batches", default="1,4,8,16")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--dtypes", default="bfloat16", help="comma list of bfloat16 (the checkpoint) / float32")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fresh", action="store_true", help="ignore cells of a previous run with the same settings")
    args = ap.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    settings = SamplingSettings(max_new_tokens=args.max_new_tokens, seed=args.seed)

    config = {"model": f"embedded:{args.model}", "max_new_tokens": args.max_new_tokens, "seed": args.seed}
    previous = json.loads(JSON.read_text()) if JSON.is_file() and not args.fresh else {}
    cells = previous.get("cells", []) if all(previous.get(k) == v for k, v in config.items()) else []
    done = {(c["dtype"], c["threads"], c["batch"]) for c in cells}
    out = {**config, "cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
           "transformers": transformers.__version__, "load_seconds": previous.get("load_seconds", {}), "cells": cells}
    for dtype in args.dtypes.split(","):
        todo = [(t, b) for b in batches for t in threads if (dtype, t, b) not in done]  # interleaved: same load
        if not todo:
            continue
        start = time.perf_counter()
        backend = EmbeddedBackend(args.model, threads=threads[0], dtype=dtype)
        out["load_seconds"][dtype] = round(time.perf_counter() - start, 1)
        backend.generate(cf_prompts(1, args.seed), SamplingSettings(max_new_tokens=4))  # warm-up
        with Progress() as bar:
            task = bar.add_task(f"benchmark cells ({dtype})", total=len(todo))
            for t, b in todo:
                backend.threads, backend.batch_size = t, b
                chats = cf_prompts(b, args.seed + b)
                load_before = os.getloadavg()[0]
                t0 = time.perf_counter()
                outs = backend.generate(chats, settings)
                secs = time.perf_counter() - t0
                tokens = sum(len(backend.tokenizer(o[0], add_special_tokens=False)["input_ids"])
                             for o in outs if not isinstance(o, Exception))
                cells.append({"dtype": dtype, "threads": t, "batch": b, "seconds": round(secs, 2),
                              "new_tokens": tokens, "tokens_per_s": round(tokens / secs, 1),
                              "seconds_per_prompt": round(secs / b, 2),
                              "failed": sum(isinstance(o, Exception) for o in outs),
                              "load_avg_before": round(load_before, 2),
                              "load_avg_after": round(os.getloadavg()[0], 2)})
                write(out)  # after every cell, so an interrupted run keeps (and resumes from) its results
                bar.advance(task)
    print("\n".join(write(out)))
    return out


def write(out: dict) -> list[str]:
    """Write backends.json and backends.md; return the markdown lines."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    JSON.write_text(json.dumps(out, indent=2))
    cells = sorted(out["cells"], key=lambda c: (c["dtype"], c["threads"], c["batch"]))
    lines = [f"# Embedded backend throughput ({out['model']}, greedy, max {out['max_new_tokens']} new tokens, "
             f"{out['cpu_count']} CPUs)", "",
             "| dtype | threads | batch | seconds | new tokens | tokens/s | s/prompt | load avg before→after |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    lines += [f"| {c['dtype']} | {c['threads']} | {c['batch']} | {c['seconds']} | {c['new_tokens']} | "
              f"{c['tokens_per_s']} | {c['seconds_per_prompt']} | {c['load_avg_before']}→{c['load_avg_after']} |"
              for c in cells]
    lines += ["", f"Model load (s, checkpoint already converted): {out['load_seconds']}. torch {out['torch']}, "
                  f"transformers {out['transformers']}. The machine is shared: compare cells with similar load."]
    (RESULTS / "backends.md").write_text("\n".join(lines) + "\n")
    return lines


if __name__ == "__main__":
    main()
