#!/usr/bin/env python
"""Scenario 1: Qwen-7B-Chat, LoRA, on 4 A10 (24 GB) with DeepSpeed ZeRO-2 at 1024 tokens. Why is
memory per card so high, and which plans are faster or lighter?

Run: `python examples/01_qwen7b_lora_4xa10.py`."""

from _transcript import fitplan as run_fitplan
from _transcript import gib, say, table

import fitplan

MODEL, GPUS, SEQ = "qwen-7b-chat", "4xA10", 1024


def variants_table() -> None:
    say("The same LoRA job, one knob changed at a time (per GPU, GiB = 2^30 bytes):")
    variants = [
        ("as reported: LoRA, ZeRO-2", dict(method="lora", zero_stage=2)),
        ("no DeepSpeed (plain DDP)", dict(method="lora", zero_stage=0)),
        ("ZeRO-3: weights sharded", dict(method="lora", zero_stage=3)),
        ("QLoRA 8-bit, no ZeRO", dict(method="qlora", bits=8, zero_stage=0)),
        ("QLoRA 4-bit, no ZeRO", dict(method="qlora", bits=4, zero_stage=0)),
        ("LoRA, ZeRO-2, micro-batch 4", dict(method="lora", zero_stage=2, micro_batch=4)),
    ]
    rows = []
    for label, knobs in variants:
        est = fitplan.estimate(MODEL, GPUS, seq_len=SEQ, **knobs)
        weights = est.breakdown_bytes.get("weights", 0) + est.breakdown_bytes.get("zero3_gathered_layer", 0)
        rows.append([label, gib(weights), gib(est.tensor_peak_bytes), gib(est.peak_bytes),
                     "fits" if est.fits else "OOM"])
    table(["plan", "base weights", "tensors", "required", "verdict"], rows)


def main() -> None:
    say("What the user ran (LLaMA-Factory defaults for everything not named: rank 8, micro-batch 1):")
    run_fitplan(f"estimate --model {MODEL} --gpus {GPUS} --seq-len {SEQ} --method lora --zero 2")
    variants_table()
    say("The fastest plan on these cards, every knob decided by the recommender, and the next two:")
    run_fitplan(f"recommend --model {MODEL} --gpus {GPUS} --seq-len {SEQ} --top 3")


if __name__ == "__main__":
    main()
