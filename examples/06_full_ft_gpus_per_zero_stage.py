#!/usr/bin/env python
"""Scenario 6: full fine-tuning of a 7B and a 70B model (Llama-2). How many A100-80G GPUs does
each ZeRO stage need, with and without CPU offload, and how much host RAM does offload take?

Two answers per stage: with the usual recipe pinned (AdamW, bf16 mixed precision) and with the
optimizer and precision left to the recommender (8-bit Adam, pure bf16 ... when they save GPUs;
with the optimizer free, GaLore, APOLLO, BAdam or Adam-mini where plain AdamW fits nowhere).
Host RAM is not limited here so that the table can say how much each plan needs; the recommender
otherwise assumes 2x the node's GPU memory (see the last two commands). Seq 2048; nodes hold 8
GPUs. Run: `python examples/06_full_ft_gpus_per_zero_stage.py`."""

from _transcript import fitplan as run_fitplan
from _transcript import gib, say, table

import fitplan
from fitplan.solver.planner.questions import min_gpus
from fitplan.solver.problem.settings import SolverSettings

GPU, PER_NODE, MAX_GPUS = "A100-80G", 8, 64
STAGES = [(0, "none"), (1, "none"), (1, "optimizer"), (2, "none"), (2, "optimizer"),
          (3, "none"), (3, "optimizer"), (3, "all")]
UNLIMITED_HOST_RAM = SolverSettings(host_ram_bytes=64 * 2**40)
RECIPE = dict(optim="adamw", precision="bf16")


def gpu_set(count: int) -> str:
    return f"{count}x{GPU}" if count <= PER_NODE else f"{count // PER_NODE}x{PER_NODE}x{GPU}"


def fewest(model: str, **pins) -> tuple[str, str, str]:
    """(GPU set, host RAM GiB per node, what the plan chose) of the fewest GPUs that fit."""
    count = min_gpus(fitplan.make_instance(model, f"{PER_NODE}x{GPU}", method="full", **pins), UNLIMITED_HOST_RAM,
                     limit=MAX_GPUS)
    if count is None:
        return f"> {MAX_GPUS}", "", ""
    rec = fitplan.recommend(model, gpu_set(count), method="full", settings=UNLIMITED_HOST_RAM, **pins)
    host = gib(rec.estimate.host_ram_bytes) if rec.estimate.host_ram_bytes else "-"
    chosen = f"{rec.plan.optim.value}, {rec.plan.precision.value}"
    if rec.plan.memory_optimizer.value != "none":
        chosen = f"{rec.plan.memory_optimizer.value} ({rec.plan.optim.value}), {rec.plan.precision.value}"
    return gpu_set(count), host, chosen


def main() -> None:
    for model in ("llama-2-7b", "llama-2-70b"):
        say(f"{model}, full fine-tuning, seq 2048, on {GPU} (GiB = 2^30 bytes; host RAM per node):")
        rows = []
        for zero_stage, offload in STAGES:
            pinned = fewest(model, zero_stage=zero_stage, offload=offload, **RECIPE)
            free = fewest(model, zero_stage=zero_stage, offload=offload)
            rows.append([f"ZeRO-{zero_stage}", offload, *pinned[:2], *free])
        table(["stage", "offload", "AdamW+bf16: GPUs", "host RAM", "any optim: GPUs", "host RAM", "chosen"], rows)
    say("Why ZeRO-0/1/2 never fit the 70B: each GPU keeps all 16-bit weights, whatever the GPU count.")
    run_fitplan("estimate --model llama-2-70b --gpus 8x8xA100-80G --method full --zero 2 --offload optimizer")
    say("Offload moves the optimizer to host RAM, and host RAM becomes the limit:")
    run_fitplan("recommend --model llama-2-70b --gpus 2xA100-80G --method full --zero 3 --offload optimizer "
                "--optim adamw --precision bf16")
    run_fitplan("recommend --model llama-2-70b --gpus 2xA100-80G --method full --zero 3 --offload optimizer "
                "--optim adamw --precision bf16 --host-ram-gib 2048")


if __name__ == "__main__":
    main()
