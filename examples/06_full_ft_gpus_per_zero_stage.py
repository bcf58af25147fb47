#!/usr/bin/env python
"""Scenario 6: full fine-tuning of a 7B and a 70B model. How many A100-80G GPUs does each ZeRO
stage need, with and without CPU offload, and how much host RAM does offload take?

Every other knob is LLaMA-Factory's default (micro-batch 1, gradient checkpointing, SDPA, AdamW,
bf16), seq 2048. For each stage the smallest GPU set that fits is found by evaluating 1, 2, 4 and
8 GPUs on one node, then 2, 3, ... 16 nodes of 8. Run: `python examples/06_full_ft_gpus_per_zero_stage.py`."""

import fitplan
from _transcript import fitplan as run_fitplan
from _transcript import gib, say, table

GPU = "A100-80G"
GPU_SETS = [f"{n}x{GPU}" for n in (1, 2, 4, 8)] + [f"{nodes}x8x{GPU}" for nodes in range(2, 17)]
STAGES = [(0, "none"), (1, "none"), (1, "optimizer"), (2, "none"), (2, "optimizer"),
          (3, "none"), (3, "optimizer"), (3, "all")]


def fewest_gpus(model: str, zero_stage: int, offload: str):
    """The first GPU set of GPU_SETS on which the configuration fits, with its estimate."""
    for gpu_set in GPU_SETS:
        est = fitplan.estimate(model, gpu_set, seq_len=2048, method="full", zero_stage=zero_stage, offload=offload)
        if est.fits:
            return gpu_set, est
    return None, fitplan.estimate(model, GPU_SETS[-1], seq_len=2048, method="full", zero_stage=zero_stage,
                                  offload=offload)


def main() -> None:
    for model in ("llama-2-7b", "llama-2-70b"):
        say(f"{model}, full fine-tuning, seq 2048, on {GPU} (GiB = 2^30 bytes):")
        rows = []
        for zero_stage, offload in STAGES:
            gpu_set, est = fewest_gpus(model, zero_stage, offload)
            if gpu_set is None:
                rows.append([f"ZeRO-{zero_stage}", offload, f"none up to {GPU_SETS[-1]}",
                             f"{gib(est.peak_bytes)} at {est.config.n_gpus} GPUs", "",
                             f"largest term: {max(est.breakdown_bytes, key=est.breakdown_bytes.get)}"])
                continue
            rows.append([f"ZeRO-{zero_stage}", offload, gpu_set, gib(est.peak_bytes),
                         gib(est.host_ram_bytes) if est.host_ram_bytes else "-", ""])
        table(["stage", "offload", "fewest GPUs", "peak GiB/GPU", "host RAM GiB/node", "why not"], rows)
    say("Why ZeRO-0/1/2 never fit the 70B: each GPU keeps the full 16-bit weights. The breakdown:")
    run_fitplan("estimate --model llama-2-70b --gpus 8xA100-80G --method full --zero 2 --offload optimizer")
    say("The cheapest 70B plan by GPU count offloads everything to the CPU; host RAM is then the limit:")
    run_fitplan("estimate --model llama-2-70b --gpus 1xA100-80G --method full --zero 3 --offload all")


if __name__ == "__main__":
    main()
