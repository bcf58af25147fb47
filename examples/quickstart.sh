#!/usr/bin/env bash
# The README's first commands: how much memory LoRA of a 7B takes on one A100-80G, then the
# fastest plan that fits the same model on eight 8 GB Tesla P4s at 1024 tokens.
# Expected output: examples/expected/quickstart.txt (checked by tests/test_examples.py).
set -u
run() { echo "\$ fitplan $*"; fitplan "$@" 2>&1 || echo "[exit $?]"; echo; }

run estimate --model qwen2.5-7b --gpus 1xA100-80G --seq-len 2048
run recommend --model qwen2.5-7b --gpus 8xP4 --seq-len 1024
