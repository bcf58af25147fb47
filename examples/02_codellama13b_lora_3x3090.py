#!/usr/bin/env python
"""Scenario 2: CodeLlama-13B, LoRA rank 64 (alpha 32), micro-batch 1, gradient accumulation 16,
bf16, on 3 RTX 3090 (24 GB). Does it fit; if not, why; and which QLoRA plan does?

The report gives no sequence length: LLaMA-Factory's default cutoff_len, 2048, is used. LoRA alpha
only scales the update, it takes no memory, so there is no flag for it.
Run: `python examples/02_codellama13b_lora_3x3090.py`."""

from _transcript import fitplan as run_fitplan
from _transcript import say

JOB = "--model codellama-13b --gpus 3xRTX3090 --seq-len 2048 --lora-rank 64 --micro-batch 1 --grad-accum 16 --precision bf16"


def main() -> None:
    say("As reported: 16-bit LoRA, plain data parallel (each card holds the whole model):")
    run_fitplan(f"estimate {JOB} --method lora")
    say("ZeRO-3 shards the 16-bit base over the three cards instead of copying it:")
    run_fitplan(f"estimate {JOB} --method lora --zero 3")
    say("The fastest QLoRA plan, keeping the user's rank, batch and precision:")
    run_fitplan(f"recommend {JOB} --method qlora")


if __name__ == "__main__":
    main()
