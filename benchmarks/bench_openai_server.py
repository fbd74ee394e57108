"""Counterfactuals per second through a real OpenAI-compatible server (`transformers serve`) by client concurrency.

    python benchmarks/bench_openai_server.py [--adapter DIR] [--n 8] [--concurrency 1,4,16]
                                             [--modes sequential,continuous] [--data synthetic] [--seed 0]

The fine-tuned adapter (default: ~/.cache/sensecf/adapters/default, written by `sensecf finetune`) is merged into
the embedded SmolLM2 checkpoint (`sensecf.backends.serving.merge_adapter`) and served on 127.0.0.1 by
`transformers serve` (float32, one torch thread), once generating requests one after another ("sequential") and
once with continuous batching ("continuous"). llm-fine-tuned then answers the same 2 x n test factuals
(prompt style from the adapter's card, greedy, one answer per factual, no repair rounds) through OpenAIBackend
with 1, 4 and 16 requests in flight (generator batch = the largest concurrency). A warm-up request per server
loads the model first. Reported: wall seconds, answers and valid CFs per second, validity, backend errors.
Writes benchmarks/results/openai_server.json and .md.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from sensecf.backends.base import SamplingSettings
from sensecf.backends.embedded import embedded_checkpoint
from sensecf.backends.registry import make_backend
from sensecf.backends.serving import TransformersServer, merge_adapter
from sensecf.cli.cf_cmd import train_test
from sensecf.experiments.benchmark import sample_factuals
from sensecf.generators.base import GeneratorContext
from sensecf.generators.llm.generator import LLMGenerator, adapter_prompt_style
from sensecf.models.classifiers import train_classifier
from sensecf.paths import default_adapter_dir
from sensecf.files import write_json
from sensecf.provenance import package_versions

RESULTS = Path(__file__).parent / "results"


def measure(ctx: GeneratorContext, factuals, targets, model: str, base_url: str, concurrency: int, batch: int,
            style: str) -> dict:
    """One llm-fine-tuned pass over the factuals with `concurrency` requests in flight."""
    backend = make_backend(f"openai:{model}", base_url=base_url, concurrency=concurrency, timeout=900)
    gen = LLMGenerator(ctx, backend, mode="fine-tuned", repair_rounds=0, batch_size=batch, progress=False,
                       style=style)
    t0 = time.perf_counter()
    res = gen.generate(factuals, targets)
    wall = time.perf_counter() - t0
    answered = int((res.extra["backend_errors"] == 0).sum())
    valid = int((res.status == "valid").sum())
    return {"concurrency": concurrency, "seconds": round(wall, 1), "factuals": len(factuals), "answers": answered,
            "valid": valid, "answers_per_s": round(answered / wall, 3), "valid_cfs_per_s": round(valid / wall, 3),
            "backend_errors": int(res.extra["backend_errors"].sum()), "load_after": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--adapter", type=Path, default=None)
    ap.add_argument("--n", type=int, default=8, help="test factuals per class")
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--modes", default="sequential,continuous")
    ap.add_argument("--data", default="synthetic")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    adapter = args.adapter or default_adapter_dir()
    style = adapter_prompt_style(adapter)
    train, test = train_test(args.data, None, args.seed)
    clf = train_classifier("nn", train.X, train.y, train.schema, args.seed)
    ctx = GeneratorContext(train.schema, clf, train.X, train.y, args.seed)
    factuals, targets = sample_factuals(test, clf, args.n, args.seed)
    result = {"adapter": str(adapter), "prompt_style": style, "data": args.data, "n_factuals": len(factuals),
              "seed": args.seed, "cpu_count": os.cpu_count(), "platform": platform.platform(),
              "versions": package_versions(), "modes": {}}
    with tempfile.TemporaryDirectory(prefix="sensecf-bench-serve-") as tmp:
        merged = str(merge_adapter(adapter, Path(tmp) / "merged", base=embedded_checkpoint()))
        for mode in args.modes.split(","):
            with TransformersServer(log=Path(tmp) / f"{mode}.log", continuous_batching=mode == "continuous") as srv:
                t0 = time.perf_counter()
                warm = make_backend(f"openai:{merged}", base_url=srv.base_url, timeout=900)
                warm.generate([[{"role": "user", "content": "Hi"}]], SamplingSettings(max_new_tokens=4))
                warmup = round(time.perf_counter() - t0, 1)
                rows = [measure(ctx, factuals, targets, merged, srv.base_url, c, max(levels), style) for c in levels]
                result["modes"][mode] = {"warmup_seconds": warmup, "rows": rows}
                for r in rows:
                    print(mode, r, flush=True)
            write_json(RESULTS / "openai_server.json", result)
    (RESULTS / "openai_server.md").write_text(markdown(result))
    print(markdown(result))
    return result


def markdown(result: dict) -> str:
    lines = [f"# llm-fine-tuned through `transformers serve` ({result['n_factuals']} factuals, "
             f"{result['data']}, prompt style {result['prompt_style']}, {result['cpu_count']} CPUs, shared machine)",
             "", "| server | concurrency | wall s | answers/s | valid CFs/s | valid | backend errors | load after |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for mode, m in result["modes"].items():
        for r in m["rows"]:
            lines.append(f"| {mode} | {r['concurrency']} | {r['seconds']} | {r['answers_per_s']} | "
                         f"{r['valid_cfs_per_s']} | {r['valid']}/{r['factuals']} | {r['backend_errors']} | "
                         f"{r['load_after']} |")
    lines += ["", "Warm-up (model load" + (", continuous-batching set-up" if "continuous" in result["modes"] else "")
              + ") seconds, not in the wall times: " + ", ".join(f"{k} {m['warmup_seconds']}"
                                                               for k, m in result["modes"].items()) + ".",
              "Greedy decoding: the answers differ between concurrencies only where batched (continuous) "
              "decoding changes the arithmetic."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
