#!/usr/bin/env python
"""Scenario 5: Qwen-14B-Chat on 24 GB cards. 4-bit QLoRA or 16-bit LoRA, and the longest
sequence each can train, on one, two and four cards.

"Longest" is the longest multiple of 128 tokens at which the recommender finds any plan (micro
batch 1 if need be), with the 5% memory headroom it always keeps. Run:
`python examples/05_qwen14b_on_24gb_cards.py`."""

from _transcript import fitplan as run_fitplan
from _transcript import say, table

import fitplan
from fitplan.solver.planner.questions import max_seq_len

MODEL = "qwen-14b-chat"
GPU_SETS = ["1xRTX4090", "2xRTX4090", "4xRTX4090", "1xA10", "1xRTX3090"]
VARIANTS = [
    ("4-bit QLoRA", dict(method="qlora", bits=4)),
    ("16-bit LoRA, no CPU offload", dict(method="lora", offload="none")),
    ("16-bit LoRA, CPU offload allowed", dict(method="lora")),
]


def main() -> None:
    say(f"{MODEL}: longest sequence that fits, and the plan at that length")
    rows = []
    for gpus in GPU_SETS:
        for label, pins in VARIANTS:
            longest = max_seq_len(fitplan.make_instance(MODEL, gpus, **pins))
            if longest is None:
                rows.append([gpus, label, "nothing fits", "", "", "", ""])
                continue
            rec = fitplan.recommend(MODEL, gpus, seq_len=longest, **pins)
            plan = rec.plan
            rows.append([gpus, label, longest, f"ZeRO-{plan.zero_stage}", plan.offload.value,
                         "ckpt" if plan.grad_ckpt else "no ckpt", f"{rec.tokens_per_s:,.0f}"])
    table(["GPUs", "variant", "longest seq", "ZeRO", "offload", "checkpointing", "tokens/s"], rows)
    say("The same answers from the command line, one card:")
    run_fitplan(f"recommend --model {MODEL} --gpus 1xRTX4090 --method qlora --bits 4 --max-seq-len")
    run_fitplan(f"recommend --model {MODEL} --gpus 1xRTX4090 --method lora --offload none --max-seq-len")
    say("Why 16-bit LoRA without offload does not fit one card (at 512 tokens):")
    run_fitplan(f"recommend --model {MODEL} --gpus 1xRTX4090 --method lora --offload none --seq-len 512")


if __name__ == "__main__":
    main()
